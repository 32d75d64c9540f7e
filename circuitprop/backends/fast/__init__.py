"""The fast co-content solver: exact block coordinate descent (``solver``), crossbars with wire resistance
(``wired``), and the training session that keeps its matrices across batches (``session``)."""
from .backend import FastBackend, steady_state_backend
from .session import FastSession
from .solver import FastSolverConfig, PreparedNetwork, report_failure

__all__ = ["FastBackend", "FastSession", "FastSolverConfig", "PreparedNetwork", "report_failure",
           "steady_state_backend"]
