"""Diagnostics of a network during training."""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..backends.fast import FastBackend, steady_state_backend


class DeadNetworkWarning(RuntimeWarning):
    """The network has reached a state from which it cannot learn (e.g. every hidden neuron clipped)."""


class SteadyStateWarning(RuntimeWarning):
    """The fixed relaxation sweeps of a training no longer reach the circuit's steady state: the classes they
    give differ from the circuit's (:class:`~circuitprop.learning.run.SteadyStateCheck`)."""


class PrecisionWarning(RuntimeWarning):
    """The nudge reaching a hidden layer is below the resolution of the solver's floating-point type there: the
    EP gradient of the crossbars around that layer is rounding noise (:func:`nudge_below_resolution`)."""


def nudge_moves(trainer, X, y) -> tuple:
    """How far the nudge moves each layer: the free steady state on ``X`` (float64, every KCL residual below
    1e-10 A) and, per non-input layer, the largest ``|V(+beta) - V(-beta)|`` (volts) of the nudged steady states
    (labels ``y``; ``[]`` when the outputs need no nudge).  The nudged phases start from the free one and are
    solved until the residual is a hundredth of the nudging currents, however small those are."""
    net = trainer.network_
    exact = steady_state_backend(net)
    free = exact.solve(net, X)
    error = trainer._targets(y) - net.scores(free.outputs)
    currents = [net.output_currents_from_score_currents(sign * trainer.ep.beta * error) for sign in (1.0, -1.0)]
    largest = float(np.max(np.abs(currents[0])))
    if largest == 0.0:
        return free, []
    config = replace(exact.config, tol=min(exact.config.tol, 1e-2 * largest), on_fail="flag")
    plus, minus = (FastBackend(config).solve(net, X, output_currents=c, initial=free) for c in currents)
    return free, [float(np.max(np.abs(plus.voltages[k] - minus.voltages[k]))) for k in range(1, len(free.voltages))]


def nudge_below_resolution(trainer, X, y) -> str:
    """Describe the hidden layers whose nudge the training's float32 solves cannot resolve, or return ``""``.

    At the circuit's steady state (float64, every KCL residual below 1e-10 A) on ``X`` with labels ``y``, the
    nudged phases at +beta and -beta move each hidden node by ``|V(+beta) - V(-beta)|``.  Where the largest such
    move in a layer is nonzero but below float32's resolution of that layer's voltages (its machine epsilon
    times the largest ``|V|``), a float32 relaxation cannot represent it and the EP gradient of the crossbars
    around that layer is rounding noise.  This happens in chains of amplified layers without skip crossbars,
    where the nudge fades by orders of magnitude per layer (``experiments/depth_chain_probe.py``).  Only float32
    runs of the fast backend are checked; a layer the nudge does not move (by less than a thousand float64
    rounding steps: e.g. the returns of the doubled outputs' opposite nudges cancel behind a uniform output
    crossbar) is not reported, as no precision would help there.
    """
    solver = trainer.solver
    if solver.backend != "fast" or solver.dtype != "float32" or len(X) == 0:
        return ""
    free, moves = nudge_moves(trainer, X, y)
    if not moves:
        return ""
    problems = []
    for layer, move in enumerate(moves[:-1], start=1):
        largest_v = float(np.max(np.abs(free.voltages[layer])))
        resolution = float(np.finfo(np.float32).eps) * largest_v
        residue = 1000 * float(np.finfo(np.float64).eps) * largest_v  # float64 rounding: the nudge did not move it
        if residue < move < resolution:
            problems.append(f"hidden layer {layer}: at most {move:.2g} V, float32 resolves {resolution:.2g} V there")
    if not problems:
        return ""
    return (f"the nudge (beta = {trainer.ep.beta:g} S) moves " + "; ".join(problems) + ". The EP gradient of the "
            "crossbars around those layers is float32 rounding noise: train with --dtype float64, or give the layers "
            "skip crossbars to the outputs")


def dead_state(trainer, X) -> str:
    """Describe why the trained network is dead on ``X`` (free phase), or return ``""`` if it is not.

    A network is *dead* when every neuron of some hidden layer sits at the same voltage for every
    example (all clipped, usually to ``v_low`` = 0 V), or when the class scores do not depend on the
    input at all.  Then no gradient reaches the layers below: the EP updates are zero and the accuracy
    stays at the share of the most common class.  The usual cause is a learning rate too large for the
    layer size: one early step drives the conductances into the clipped region.
    """
    if len(X) < 2:
        return ""
    net = trainer.network_
    solution = trainer.free_phase(X)
    problems = []
    for layer, v in enumerate(solution.voltages[1:-1], start=1):
        if np.ptp(v) == 0.0:
            problems.append(f"every neuron of hidden layer {layer} is at {float(v.flat[0]):.3g} V for every example")
    scores = net.scores(solution.outputs)
    if np.all(np.ptp(scores, axis=0) <= 1e-12):
        problems.append("the class scores do not depend on the input")
    if not problems:
        return ""
    return ("the network is dead (" + "; ".join(problems) + "): no gradient reaches the inputs and it cannot "
            f"learn any more. Likely cause: learning rate {trainer.optimizer.learning_rate!r} too large for this layer "
            "size; try a 10x smaller --lr, or a smaller --target")
