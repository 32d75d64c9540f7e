"""Local learning rules: conductance updates from the voltage drops across each conductance only.

A *weighted phase* is ``(voltages, weight)``: per-layer measured voltages
``(rows, n)`` and the weight that the estimator gives to that phase (already
divided by the number of rows it averages over).  For a crossbar ``(a, b)``
the drop across conductance ``[i, j]`` is ``A_a V_a,i - V_b,j``.
"""
from __future__ import annotations

import numpy as np

from ..model.wires import cell_drops, has_wires
from .estimators import from_registry
from ..kernels.fused import LowRankGradient, weighted_rows


def low_rank_gradients(network, phases) -> dict:
    """The ΔV² gradient of every crossbar as a :class:`~circuitprop.learning.kernels.LowRankGradient`.

    ``sum_phases weight * sum_rows 1/2 (A_a V_a,i - V_b,j)**2 = a_i + b_j - sum_r (w_r u_ri) v_rj``: the
    phases are stacked as rows, and the dense array is never formed.
    """
    arch = network.architecture
    if has_wires(network):
        raise ValueError("with wire resistance the drop across a cell is not A_a V_a,i - V_b,j: use "
                         "wired_gradients (DeltaVSquaredRule does this by itself)")
    stacked, lefts, halves = {}, {}, {}  # per layer: every phase's rows; gain * w_r * V_r; 1/2 sum_r w_r V_r**2
    weights = np.concatenate([np.full(p[0][0].shape[0], p[1]) for p in phases])  # w_r
    sources = {a for a, _ in network.conductances}
    for layer in sorted({layer for key in network.conductances for layer in key}):
        rows = np.concatenate([p[0][layer] for p in phases], axis=0)
        stacked[layer] = rows
        lefts[layer], halves[layer] = weighted_rows(rows, weights, arch.forward_gain(layer), left=layer in sources)
    out = {}
    for (a, b) in network.conductances:
        ga = arch.forward_gain(a)
        a_term = halves[a] if ga == 1.0 else halves[a].dtype.type(ga * ga) * halves[a]
        out[(a, b)] = LowRankGradient(a=a_term, b=halves[b], left=lefts[a], right=stacked[b])
    return out


def wired_gradients(network, phases) -> dict:
    """``sum_phases weight * sum_rows 1/2 (drop across the cell)**2`` for crossbars with wire resistance (V^2).

    The drop across each cell (between its word-line and bit-line nodes) is a linear function of the
    measured node voltages (:func:`circuitprop.wires.cell_drops`), so measurement noise on the nodes
    reaches the cells as it would through the lines.  Dense arrays.
    """
    arch = network.architecture
    out = {}
    for (a, b), g in network.conductances.items():
        acc = np.zeros(g.shape)
        for voltages, weight in phases:
            drops = cell_drops(network, (a, b), arch.forward_gain(a) * voltages[a], voltages[b])
            acc += 0.5 * weight * np.einsum("rij,rij->ij", drops, drops)
        out[(a, b)] = acc
    return out


def weighted_half_drop_squared(network, phases) -> dict:
    """``sum_phases weight * sum_rows 1/2 (A_a V_a,i - V_b,j)**2`` for every crossbar (V^2), as dense arrays.

    With wire resistance the drop is the one across each cell (:func:`wired_gradients`)."""
    if has_wires(network):
        return wired_gradients(network, phases)
    return {key: grad.dense() for key, grad in low_rank_gradients(network, phases).items()}


class DeltaVSquaredRule:
    """The EP rule ``dL/dg = 1/(2 beta) [(dV^beta)**2 - (dV^0)**2]`` (weights from the estimator).

    :meth:`gradient` returns low-rank factors, which :class:`~circuitprop.learning.optimizers.SGD`
    applies in one fused pass.
    """

    name = "dv2"

    def gradient(self, network, phases) -> dict:
        if has_wires(network):
            return wired_gradients(network, phases)
        return low_rank_gradients(network, phases)


class SignRule:
    """Sign-only rule: the sign of ``|dV^beta| - |dV^0|`` per sample, averaged over the batch.

    Needs exactly two phases with weights of opposite signs (the first gets the
    positive weight's sign).  Cost: one elementwise pass per sample over each
    crossbar, so meant for small networks and hardware studies.
    """

    name = "sign"

    def gradient(self, network, phases) -> dict:
        if len(phases) != 2:
            raise ValueError("the sign rule needs two phases")
        (p1, w1), (p2, w2) = phases
        if np.sign(w1) == np.sign(w2):
            raise ValueError("the sign rule needs phases of opposite weights")
        if w1 < 0:
            (p1, w1), (p2, w2) = (p2, w2), (p1, w1)
        arch = network.architecture
        out = {}
        for (a, b) in network.conductances:
            ga = arch.forward_gain(a)
            acc = np.zeros(network.conductances[(a, b)].shape)
            rows = p1[a].shape[0]
            for r in range(rows):
                d1 = np.abs(cell_drops(network, (a, b), ga * p1[a][r:r + 1], p1[b][r:r + 1])[0])
                d2 = np.abs(cell_drops(network, (a, b), ga * p2[a][r:r + 1], p2[b][r:r + 1])[0])
                acc += np.sign(d1 - d2)
            out[(a, b)] = acc / rows
        return out


RULES = {"dv2": DeltaVSquaredRule, "sign": SignRule}


def get_rule(name):
    return from_registry(RULES, name, "rule")
