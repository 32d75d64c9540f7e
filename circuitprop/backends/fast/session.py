"""The fast solver's training session: solver matrices kept across batches and updated, not rebuilt.

Per batch: :meth:`FastSession.free` solves the free phase with the input crossbars' drive (the Norton
current of the inputs) formed once, :meth:`FastSession.nudged` solves all nudged phases as one stacked batch
warm-started from the free phase with that same drive, and :meth:`FastSession.update` lets the fused update
kernel (:func:`circuitprop.kernels.fused.update`) return the new row and column sums of every crossbar and the
*next* batch's input drive in the same pass over the conductances, so the next step never reads the input
crossbar just for it.  Everything here is arithmetic the solver would do anyway, in the same order, so a
resumed run is bit for bit an uninterrupted one.

Networks with wire resistance, or read noise on the devices (every batch sees freshly read conductances), are
prepared afresh for every batch.
"""
from __future__ import annotations

import numpy as np

from ...kernels.fused import input_voltages, project, training_threads
from ..base import Solution, split_stacked


class FastSession:
    """A :class:`~circuitprop.backends.base.Session` of the fast backend.

    Parameters
    ----------
    backend : FastBackend
    network : Network
        The network being trained; its conductance arrays are updated in place by the trainer's steps.
    read : callable or None
        ``read(network) -> Network``: the network as one batch's solves see it (device read noise), called
        once per batch; ``None`` reads the stored conductances.
    """

    def __init__(self, backend, network, read=None):
        self.backend = backend
        self.network = network
        self.read = read
        self.incremental = read is None and network.architecture.wire_resistance == 0
        self._prepared = None
        self._pending = None  # (features, input drive, input voltages) the last update formed for the next batch
        self._batch = None  # (features, prepared solver, input drive, input voltages) of the current batch

    # -- the solver ---------------------------------------------------------------------------------------
    def _solver(self):
        """The prepared solver of this batch: kept and updated (incremental) or prepared afresh."""
        if not self.incremental:
            seen = self.read(self.network) if self.read is not None else self.network
            return self.backend.prepare(seen)
        prepared = self._prepared
        if prepared is None or prepared.network is not self.network or not prepared.shares_conductances:
            prepared = self._prepared = self.backend.prepare(self.network)
        return prepared

    def _input_drive(self, prepared, x):
        """The input crossbars' drive (A) of batch ``x`` and its input voltages (V): from the previous update
        pass when it formed them (for this very array, or equal features), else computed in the same
        arithmetic (so that a resumed run is bit for bit an uninterrupted one)."""
        pending, self._pending = self._pending, None
        if pending is not None and (pending[0] is x or (pending[0].shape == x.shape and np.array_equal(pending[0], x))):
            return pending[1], pending[2]
        v_in = input_voltages(self.network, x, dtype=prepared.dtype)
        return {b: project(v_in, g) for (a, b), g in self.network.conductances.items() if a == 0}, v_in

    # -- the session interface -------------------------------------------------------------------------------
    def free(self, inputs) -> Solution:
        prepared = self._solver()
        if self.incremental:
            drive, v_in = self._input_drive(prepared, inputs)
        elif hasattr(prepared, "input_drive") and prepared.network.architecture.wire_resistance == 0:
            v_in = input_voltages(prepared.network, inputs, dtype=prepared.dtype)
            drive = prepared.input_drive(v_in)
        else:  # wired crossbars form their own drive
            drive = v_in = None
        self._batch = (inputs, prepared, drive, v_in)
        return prepared.solve(inputs, input_drive=drive, input_voltages=v_in)

    def nudged(self, inputs, output_currents: list, free: Solution) -> list:
        x, prepared, drive, v_in = self._batch
        if x is not inputs:
            raise ValueError("nudged phases must follow the free phase of the same batch")
        k = len(output_currents)
        if k > 1 and self.incremental:
            # all nudged phases as one batch: one solver call, warm-started from the free phase
            initial = Solution(voltages=[np.concatenate([v] * k) for v in free.voltages])
            stacked = prepared.solve(np.concatenate([inputs] * k), np.concatenate(output_currents), initial,
                                     input_drive={layer: np.concatenate([d] * k) for layer, d in drive.items()},
                                     input_voltages=initial.voltages[0])
            return split_stacked(stacked, inputs.shape[0], k)
        return [prepared.solve(inputs, c, free, input_drive=drive, input_voltages=v_in) for c in output_currents]

    def update(self, step, next_inputs=None) -> None:
        net = self.network
        if not self.incremental:
            step({})
            return
        prepared = self._prepared
        request = {}
        v_next = None
        if next_inputs is not None:
            v_next = input_voltages(net, next_inputs, dtype=prepared.dtype)
            request = {key: v_next for key in net.conductances if key[0] == 0}
        sums = step(request)
        prepared.update_sums(sums)
        drives = {key[1]: sums[key][2] for key in request if key in sums and sums[key][2] is not None}
        self._pending = (next_inputs, drives, v_next) if request and len(drives) == len(request) else None

    def training(self):
        """Context for a run of batches: the kernels' thread settings for training (see
        :func:`circuitprop.kernels.fused.training_threads`)."""
        return training_threads()

    def solve(self, inputs) -> Solution:
        """A free phase outside training (scoring): the stored conductances, no state kept."""
        return self.backend.prepare(self.network).solve(inputs)
