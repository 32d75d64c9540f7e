"""The one small interface every backend implements: solve a batch of operating points."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


class ConvergenceError(RuntimeError):
    """A steady state was not found; the message says which analysis and what was tried."""


@dataclass
class Solution:
    """DC steady states of a batch.

    Attributes
    ----------
    voltages : list of ndarray
        One array per layer, shape ``(batch, layer_size)``, volts; layer 0 holds
        the input-source voltages.  Node order: see :mod:`circuitprop.network`.
    iterations : int
        Sweeps (fast backend) or operating points solved (SPICE backend).
    residual : float
        Largest absolute KCL residual over all free nodes, amperes (``nan`` when
        the backend does not compute it).
    converged : bool
        Whether the residual tolerance was met.
    info : dict
        Backend-specific details.
    """

    voltages: list
    iterations: int = 0
    residual: float = float("nan")
    converged: bool = True
    info: dict = field(default_factory=dict)

    @property
    def outputs(self) -> np.ndarray:
        """Output-node voltages, ``(batch, n_out)``."""
        return self.voltages[-1]

    def flat(self) -> np.ndarray:
        """All node voltages concatenated in node order, ``(batch, n_nodes)``."""
        return np.concatenate(self.voltages, axis=1)


class Backend(Protocol):
    """Solve the DC steady state of a network for a batch of inputs.

    ``inputs`` are feature vectors ``(batch, n_features)``; ``output_currents``
    are amperes injected into the output nodes ``(batch, n_out)`` (zeros, the
    free phase, when ``None``); ``initial`` is an optional :class:`Solution` to
    warm-start from (backends may ignore it).
    """

    name: str

    def solve(self, network, inputs, output_currents=None, initial: Solution | None = None) -> Solution:
        ...


def get_backend(name: str, **options):
    """Backend by name: ``"fast"`` (:class:`FastBackend`) or ``"spice"`` (:class:`SpiceBackend`)."""
    if name == "fast":
        from .fast import FastBackend
        return FastBackend(**options)
    if name in ("spice", "ngspice"):
        from .spice import SpiceBackend
        return SpiceBackend(**options)
    raise ValueError(f"unknown backend {name!r}; choose 'fast' or 'spice'")
