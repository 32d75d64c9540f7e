"""The pieces of the EP rule: gradient estimators, measurement noise, and the local learning rules.

Estimators
----------
Gradient estimators of equilibrium propagation: which phases, with which weights.

An estimator turns "the free state" into a list of nudged phases to solve and,
once solved, into weighted states whose weighted sum of pseudo-power
derivatives ``dP/dg = 1/2 * dV**2`` is the gradient estimate
(thesis, Theorem 4.2 and Appendix A)::

    one-sided:    dL/dg ~ (1/beta)     * [dP/dg(s^beta)  - dP/dg(s^0)]        bias O(beta)
    centered:     dL/dg ~ (1/(2 beta)) * [dP/dg(s^+beta) - dP/dg(s^-beta)]    bias O(beta**2)
    random sign:  one-sided with beta -> s*beta, s = +-1 drawn per batch       unbiased at first order on average

``beta`` is in the same unit as the conductances being trained.

Measurement noise
-----------------
Measurement noise on node voltages (the uncertainty paper: Peters & Talatchian 2025).

Relaxation is deterministic; noise enters only when node voltages are
measured: ``V_meas = V + sigma * xi`` with ``xi ~ N(0, 1)`` independent per
node and per measurement.  With ``n_samples`` measurements per phase, the
learning rule uses the mean of the ``n_samples`` squared drops.

``sigma`` is a **standard deviation in volts** (the variance is ``sigma**2``).
The effective noise of the averaged rule falls as ``sigma / sqrt(n_samples)``.

Local rules
-----------
Local learning rules: conductance updates from the voltage drops across each conductance only.

A *weighted phase* is ``(voltages, weight)``: per-layer measured voltages
``(rows, n)`` and the weight that the estimator gives to that phase (already
divided by the number of rows it averages over).  For a crossbar ``(a, b)``
the drop across conductance ``[i, j]`` is ``A_a V_a,i - V_b,j``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..kernels.fused import LowRankGradient, weighted_rows
from ..model.wires import cell_drops, has_wires

# -- estimators ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class OneSided:
    """Free phase and one nudged phase at ``+beta``."""

    name = "one-sided"

    def betas(self, beta, rng):
        return [beta]

    def weights(self, beta, signed_betas):
        """Weights of (free, nudged...) states in the estimate of dL/dg."""
        (b,) = signed_betas
        return -1.0 / b, [1.0 / b]

    needs_free = True


@dataclass(frozen=True)
class Centered:
    """Nudged phases at ``+beta`` and ``-beta`` (the free phase only sets the nudging currents)."""

    name = "centered"
    needs_free = False

    def betas(self, beta, rng):
        return [beta, -beta]

    def weights(self, beta, signed_betas):
        return 0.0, [1.0 / (2.0 * beta), -1.0 / (2.0 * beta)]


@dataclass(frozen=True)
class RandomSign:
    """One-sided with the sign of ``beta`` drawn at random for every batch."""

    name = "random-sign"
    needs_free = True

    def betas(self, beta, rng):
        return [beta if rng.random() < 0.5 else -beta]

    def weights(self, beta, signed_betas):
        (b,) = signed_betas
        return -1.0 / b, [1.0 / b]


ESTIMATORS = {"one-sided": OneSided, "centered": Centered, "random-sign": RandomSign}


def from_registry(registry: dict, name, kind: str):
    """An instance of ``registry[name]``; an object that is not a name is returned as it is."""
    if not isinstance(name, str):
        return name
    if name not in registry:
        raise ValueError(f"unknown {kind} {name!r}; choose one of {', '.join(registry)}")
    return registry[name]()


def get_estimator(name):
    return from_registry(ESTIMATORS, name, "estimator")


# -- measurement noise ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class MeasurementNoise:
    """Gaussian measurement noise.

    Parameters
    ----------
    sigma : float
        Standard deviation of one measurement, volts (variance ``sigma**2`` V^2).
    n_samples : int
        Measurements per node per phase, averaged by the rule.
    inputs : bool
        Whether the input nodes are measured too (each with its own noise).  ``False``: the inputs are
        sources of known voltage and only the free nodes (hidden and output: the network's state) are
        measured, as in the uncertainty paper; the input crossbar's update then costs what one sample costs.
    """

    sigma: float = 0.0
    n_samples: int = 1
    inputs: bool = True

    def __post_init__(self):
        if not (self.sigma >= 0 and np.isfinite(self.sigma)):
            raise ValueError(f"noise sigma must be a finite standard deviation >= 0 V, got {self.sigma!r}")
        if int(self.n_samples) != self.n_samples or self.n_samples < 1:
            raise ValueError(f"n_samples must be an integer >= 1, got {self.n_samples!r}")

    def measure(self, voltages: list, rng: np.random.Generator) -> tuple:
        """Measured voltages of every layer and the weight of each measurement row.

        Returns ``(layers, row_weight)``: each layer has ``batch * n_samples`` rows
        (``n_samples`` noisy copies of each sample, side by side); ``row_weight = 1/n_samples``.
        With ``inputs=False`` the input layer keeps its ``batch`` exact rows (each stands for its
        ``n_samples`` identical copies; see :func:`low_rank_gradients`).
        With ``sigma = 0`` the voltages are returned unchanged with weight 1.
        """
        if self.sigma == 0.0:
            return list(voltages), 1.0
        n = int(self.n_samples)
        measured = []
        for layer, v in enumerate(voltages):
            if layer == 0 and not self.inputs:
                measured.append(v)
                continue
            rep = np.repeat(v, n, axis=0)
            dtype = rep.dtype if rep.dtype in (np.float32, np.float64) else np.float64
            measured.append(rep + dtype.type(self.sigma) * rng.standard_normal(rep.shape, dtype=dtype))
        return measured, 1.0 / n


# -- local rules ---------------------------------------------------------------------------------------------

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
    source_halves = {}  # the same over a crossbar's rows, for layers with an inverted copy
    sources = {a for a, _ in network.conductances}
    for layer in sorted({layer for key in network.conductances for layer in key}):
        rows = np.concatenate([p[0][layer] for p in phases], axis=0)
        # w_r; a layer measured once per sample while the others were measured n times (exact inputs,
        # MeasurementNoise(inputs=False)) has one row standing for n copies: weight n * w
        weights = np.concatenate([np.full(p[0][layer].shape[0], p[1] * _copies(p[0], layer)) for p in phases])
        stacked[layer] = rows
        if layer in sources and arch.inverted(layer):
            # as rows of its crossbars the layer is V and its inverted copy -V: the same squares twice
            lefts[layer], half = weighted_rows(np.concatenate([rows, -rows], axis=1), weights,
                                               arch.forward_gain(layer))
            halves[layer], source_halves[layer] = half[:rows.shape[1]], half
        else:
            lefts[layer], halves[layer] = weighted_rows(rows, weights, arch.forward_gain(layer),
                                                        left=layer in sources)
    out = {}
    for (a, b) in network.conductances:
        ga = arch.forward_gain(a)
        a_half = source_halves.get(a, halves[a])
        a_term = a_half if ga == 1.0 else a_half.dtype.type(ga * ga) * a_half
        right = stacked[b]
        if right.shape[0] != stacked[a].shape[0]:  # sum_k w u_i V_k,j = (n w) u_i mean_k V_k,j: n times fewer rows
            n = right.shape[0] // stacked[a].shape[0]
            right = right.reshape(stacked[a].shape[0], n, right.shape[1]).mean(axis=1, dtype=np.float64)
            right = right.astype(stacked[b].dtype, copy=False)
        out[(a, b)] = LowRankGradient(a=a_term, b=halves[b], left=lefts[a], right=right)
    return out


def _copies(layers, layer) -> int:
    """How many measured copies one row of ``layer`` stands for (1 unless it was measured fewer times)."""
    most = max(v.shape[0] for v in layers)
    rows = layers[layer].shape[0]
    if most % rows:
        raise ValueError(f"layer {layer} has {rows} measured rows, not a divisor of the other layers' {most}")
    return most // rows


def _same_rows(layers, layer):
    """The rows of ``layer`` repeated to the other layers' count (its exact copies), for dense rules."""
    n = _copies(layers, layer)
    return layers[layer] if n == 1 else np.repeat(layers[layer], n, axis=0)


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
            drops = cell_drops(network, (a, b), arch.forward_gain(a) * _same_rows(voltages, a), voltages[b])
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
            acc = np.zeros(network.conductances[(a, b)].shape)
            rows = p1[b].shape[0]
            u1, u2 = (arch.row_voltages(a, _same_rows(p, a)) for p in (p1, p2))
            for r in range(rows):
                d1 = np.abs(cell_drops(network, (a, b), u1[r:r + 1], p1[b][r:r + 1])[0])
                d2 = np.abs(cell_drops(network, (a, b), u2[r:r + 1], p2[b][r:r + 1])[0])
                acc += np.sign(d1 - d2)
            out[(a, b)] = acc / rows
        return out


RULES = {"dv2": DeltaVSquaredRule, "sign": SignRule}


def get_rule(name):
    return from_registry(RULES, name, "rule")
