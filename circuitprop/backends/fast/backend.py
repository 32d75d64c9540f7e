"""The fast backend: the co-content solver behind the backend interface."""
from __future__ import annotations

from ...model import Network
from ..base import Solution
from .session import FastSession
from .solver import FastSolverConfig, PreparedNetwork
from .wired import WiredNetwork


class FastBackend:
    """The fast co-content solver behind the :class:`~circuitprop.backends.base.Backend` interface.

    Parameters are the fields of :class:`FastSolverConfig` (or ``config=``).
    """

    name = "fast"

    def __init__(self, config: FastSolverConfig | None = None, **options):
        self.config = config if config is not None else FastSolverConfig(**options)

    def prepare(self, network: Network) -> PreparedNetwork:
        """Derive solver matrices once; reuse them for all phases of a batch.

        Crossbars with wire resistance get :class:`~circuitprop.backends.fast.wired.WiredNetwork` (their
        lines reduced exactly to port matrices).
        """
        if network.architecture.wire_resistance > 0:
            return WiredNetwork(network, self.config)
        return PreparedNetwork(network, self.config)

    def solve(self, network, inputs, output_currents=None, initial=None, record_cocontent=False) -> Solution:
        return self.prepare(network).solve(inputs, output_currents, initial, record_cocontent)

    def session(self, network: Network, read=None):
        """A training session on ``network`` (:class:`~circuitprop.backends.fast.session.FastSession`)."""
        return FastSession(self, network, read=read)


def steady_state_backend(network: Network, on_fail: str = "flag") -> FastBackend:
    """The fast backend set to solve ``network`` to its steady state: every KCL residual below 1e-10 A, float64,
    up to 20,000 sweeps, over-relaxed (omega 1.5) where that reaches the same state in fewer sweeps (ideal
    diodes).  What fixed-sweep results are checked against (:class:`~circuitprop.learning.run.SteadyStateCheck`,
    the depth study's tables, ``experiments/spice_check.py``); ``on_fail`` as :class:`FastSolverConfig`."""
    ideal = network.architecture.diode.kind == "ideal"
    return FastBackend(tol=1e-10, max_sweeps=20000, relaxation=1.5 if ideal else 1.0, on_fail=on_fail)
