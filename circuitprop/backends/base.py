"""The one small interface every backend implements: solve a batch of operating points."""
from __future__ import annotations

from contextlib import nullcontext
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


class Session(Protocol):
    """A backend's state for one network through the phases and batches of training.

    Opened by ``backend.session(network)``.  Per batch the trainer calls :meth:`free`, then :meth:`nudged`
    (warm-started from the free phase), then :meth:`update`, which applies the conductance update and
    readies the session for the next batch.  Whatever the backend keeps between those calls (matrices,
    the input drive of the batch, the next batch's input voltages) stays inside the session.
    """

    network: object

    def free(self, inputs) -> Solution:
        """The free phase of a batch of features ``(batch, n_features)`` (output currents 0)."""
        ...

    def nudged(self, inputs, output_currents: list, free: Solution) -> list:
        """One :class:`Solution` per array of output currents (amperes, ``(batch, n_out)``), warm-started
        from ``free``, the free phase of the same ``inputs``."""
        ...

    def update(self, step, next_inputs=None) -> None:
        """Apply an update: ``step(project)`` changes the network's conductances in place and returns
        ``{crossbar: (row_sums, column_sums, drive)}`` (siemens; any may be ``None``), where ``project`` is
        ``{crossbar: input voltages}`` of ``next_inputs`` that the session asks the update pass to multiply
        by the new conductances (the next batch's input drive, amperes)."""
        ...

    def solve(self, inputs) -> Solution:
        """A free phase outside training (scoring the stored conductances)."""
        ...

    def training(self):
        """Context for a run of training batches (thread settings of the backend's kernels)."""
        ...


class SolveSession:
    """A :class:`Session` for any backend with ``solve``: each phase is one ``solve`` call; the nudged phases
    of a batch are stacked into one call (for ngspice: one netlist and one matrix ordering instead of one
    per phase)."""

    def __init__(self, backend, network, read=None):
        self.backend = backend
        self.network = network
        self.read = read  # read(network) -> the network this batch's solves see (device read noise)
        self._seen = network

    def free(self, inputs) -> Solution:
        self._seen = self.read(self.network) if self.read is not None else self.network
        return self.backend.solve(self._seen, inputs)

    def nudged(self, inputs, output_currents: list, free: Solution) -> list:
        k = len(output_currents)
        if k == 1:
            return [self.backend.solve(self._seen, inputs, output_currents[0], free)]
        batch = inputs.shape[0]
        initial = Solution(voltages=[np.concatenate([v] * k) for v in free.voltages])
        stacked = self.backend.solve(self._seen, np.concatenate([inputs] * k), np.concatenate(output_currents),
                                     initial)
        return split_stacked(stacked, batch, k)

    def update(self, step, next_inputs=None) -> None:
        step({})

    def solve(self, inputs) -> Solution:
        """A free phase outside training (scoring)."""
        return self.backend.solve(self.network, inputs)

    def training(self):
        """Nothing to set up: ngspice runs in its own processes."""
        return nullcontext()


def split_stacked(stacked: Solution, batch: int, k: int) -> list:
    """The ``k`` solutions of ``batch`` samples each that one stacked solve holds."""
    return [Solution(voltages=[v[i * batch:(i + 1) * batch] for v in stacked.voltages], iterations=stacked.iterations,
                     residual=stacked.residual, converged=stacked.converged) for i in range(k)]
