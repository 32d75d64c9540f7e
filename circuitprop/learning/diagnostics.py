"""Diagnostics of a network during training."""
from __future__ import annotations

import numpy as np


class DeadNetworkWarning(RuntimeWarning):
    """The network has reached a state from which it cannot learn (e.g. every hidden neuron clipped)."""


class SteadyStateWarning(RuntimeWarning):
    """The fixed relaxation sweeps of a training no longer reach the circuit's steady state: the classes they
    give differ from the circuit's (:class:`~circuitprop.learning.run.SteadyStateCheck`)."""


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
