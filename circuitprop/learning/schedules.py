"""Learning-rate schedules: the factor that multiplies every learning rate at a point of training.

A schedule is a callable ``schedule(epoch, fraction, epochs) -> float`` where ``epoch`` counts from 0,
``fraction`` in [0, 1) is how far through that epoch the current batch is, and ``epochs`` is the length of
the run.  It depends on the position only, so a resumed run follows the same schedule exactly.
"""
from __future__ import annotations

import math


class ExponentialDecay:
    """Factor ``decay ** epoch`` (constant within an epoch; ``decay = 1``: a constant learning rate)."""

    def __init__(self, decay: float = 1.0):
        if not decay > 0:
            raise ValueError(f"lr decay must be > 0, got {decay}")
        self.decay = float(decay)

    def __call__(self, epoch: int, fraction: float, epochs: int) -> float:
        return self.decay ** epoch


class CosineAnnealing:
    """Factor falling from 1 to ``final`` along half a cosine over the whole run, updated every batch.

    Parameters
    ----------
    final : float
        Factor reached at the end of the last epoch.
    """

    def __init__(self, final: float = 0.0):
        if not 0.0 <= final <= 1.0:
            raise ValueError(f"final factor of the cosine schedule must be in [0, 1], got {final}")
        self.final = float(final)

    def __call__(self, epoch: int, fraction: float, epochs: int) -> float:
        t = min(1.0, (epoch + fraction) / max(int(epochs), 1))
        return self.final + (1.0 - self.final) * 0.5 * (1.0 + math.cos(math.pi * t))


SCHEDULES = {"exponential": ExponentialDecay, "cosine": CosineAnnealing}


def get_schedule(name: str, lr_decay: float = 1.0):
    """The schedule called ``name``: ``"exponential"`` (uses ``lr_decay``) or ``"cosine"`` (to 0)."""
    if name == "exponential":
        return ExponentialDecay(lr_decay)
    if name == "cosine":
        return CosineAnnealing(0.0)
    raise ValueError(f"unknown learning-rate schedule {name!r}; choose one of {sorted(SCHEDULES)}")
