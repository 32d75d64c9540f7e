"""Optimizers that turn gradient estimates into conductance updates, clipped to the device range, and the
learning-rate schedules that scale them.

Schedules
---------
Learning-rate schedules: the factor that multiplies every learning rate at a point of training.

A schedule is a callable ``schedule(epoch, fraction, epochs) -> float`` where ``epoch`` counts from 0,
``fraction`` in [0, 1) is how far through that epoch the current batch is, and ``epochs`` is the length of
the run.  It depends on the position only, so a resumed run follows the same schedule exactly.
"""
from __future__ import annotations

import math

import numpy as np

from ..kernels.fused import LowRankGradient, update


class SGD:
    """Stochastic gradient descent with momentum and per-crossbar learning rates.

    Parameters
    ----------
    learning_rate : float or dict
        One rate, or ``{(a, b): rate}`` per crossbar (normalised units, see
        :class:`~circuitprop.learning.trainer.EPTrainer`).
    momentum : float
        Heavy-ball momentum in [0, 1).
    sign : bool
        Sign-SGD: step by ``learning_rate * sign(gradient)``.
    """

    def __init__(self, learning_rate=0.01, momentum=0.0, sign=False):
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.sign = sign
        self.velocity = {}
        self.scale = 1.0  # multiplies every rate (a learning-rate schedule sets it)

    def rate(self, key):
        if isinstance(self.learning_rate, dict):
            if key not in self.learning_rate:
                raise ValueError(f"no learning rate for crossbar {key}")
            return float(self.learning_rate[key])
        return float(self.learning_rate)

    def step(self, params: dict, grads: dict, lower: float, upper: float, grad_scale: float = 1.0,
             project: dict | None = None, device=None, rng=None) -> dict:
        """Update ``params`` in place by ``grad_scale * grads`` and clip them to ``[lower, upper]``.

        ``grads`` holds dense arrays or :class:`~circuitprop.kernels.LowRankGradient` factors; the
        latter go through the fused kernel (one pass, no full-size temporaries).  Returns
        ``{key: (row_sums, column_sums, projection)}`` that the fused kernel computed on the way (dense
        updates return nothing for their keys); ``projection`` is ``voltages @ params[key]`` of the
        updated array for the keys of ``project`` (``{key: voltages}``), else ``None``.

        ``device`` (a :class:`~circuitprop.learning.devices.DeviceModel`) turns each desired change into
        what such a device does (noise from ``rng``); updates then go through the dense path.
        """
        sums = {}
        for key, grad in grads.items():
            step = self.scale * self.rate(key)
            if isinstance(grad, LowRankGradient) and device is not None:
                grad = grad.dense()
            if isinstance(grad, LowRankGradient):
                vel = None
                if self.momentum:
                    vel = self.velocity.get(key)
                    if vel is None:
                        vel = self.velocity[key] = np.zeros_like(params[key])
                sums[key] = update(params[key], vel, grad, grad_scale, step, self.momentum, self.sign, lower, upper,
                                   rows=key[0] > 0,  # row sums matter only for crossbars leaving a hidden layer
                                   project=(project or {}).get(key))
                continue
            grad = grad_scale * grad
            if self.sign:
                grad = np.sign(grad)
            if self.momentum:
                vel = self.velocity.get(key)
                vel = grad.copy() if vel is None else self.momentum * vel + grad
                self.velocity[key] = vel
                grad = vel
            if device is not None:
                device.apply(key, params[key], -step * grad, rng, lower, upper)
                continue
            params[key] -= step * grad
            np.clip(params[key], lower, upper, out=params[key])
        return sums

    def state(self) -> dict:
        return {f"velocity_{a}_{b}": v for (a, b), v in self.velocity.items()}

    def load_state(self, arrays: dict) -> None:
        self.velocity = {}
        for name, v in arrays.items():
            if name.startswith("velocity_"):
                a, b = name[len("velocity_"):].split("_")
                self.velocity[(int(a), int(b))] = np.array(v)  # same dtype as saved (the conductances')


# -- learning-rate schedules ---------------------------------------------------------------------------------

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
