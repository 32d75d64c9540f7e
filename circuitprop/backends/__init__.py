"""Backends behind one interface: solve the steady states of a batch (see :class:`Backend`)."""
from .base import Backend, ConvergenceError, Solution, get_backend
from .fast import FastBackend, FastSolverConfig

__all__ = ["Backend", "ConvergenceError", "Solution", "get_backend", "FastBackend", "FastSolverConfig",
           "SpiceBackend", "SpiceOptions", "SpiceError"]


def __getattr__(name):  # ngspice is loaded only when asked for
    if name in ("SpiceBackend", "SpiceOptions", "SpiceError"):
        from . import spice
        return getattr(spice, name)
    raise AttributeError(name)
