"""Backends behind one interface: solve the steady states of a batch (see :class:`Backend`), and open a
training session on a network (see :class:`Session`).

``fast``: the co-content solver (NumPy and numba).  ``spice``: ngspice through PySpice, loaded only when a
solve needs it.
"""
from .base import Backend, ConvergenceError, Session, Solution
from .fast import FastBackend, FastSolverConfig
from .spice import SpiceBackend, SpiceError, SpiceOptions

__all__ = ["Backend", "ConvergenceError", "Session", "Solution", "get_backend", "FastBackend", "FastSolverConfig",
           "SpiceBackend", "SpiceOptions", "SpiceError"]


def get_backend(name: str, **options):
    """Backend by name: ``"fast"`` (:class:`FastBackend`) or ``"spice"`` (:class:`SpiceBackend`)."""
    if name == "fast":
        return FastBackend(**options)
    if name in ("spice", "ngspice"):
        return SpiceBackend(**options)
    raise ValueError(f"unknown backend {name!r}; choose 'fast' or 'spice'")
