"""Measurement noise on node voltages (uncertainty paper; DESIGN.md section 1).

Relaxation is deterministic; noise enters only when node voltages are
measured: ``V_meas = V + sigma * xi`` with ``xi ~ N(0, 1)`` independent per
node and per measurement.  With ``n_samples`` measurements per phase, the
learning rule uses the mean of the ``n_samples`` squared drops.

``sigma`` is a **standard deviation in volts** (the variance is ``sigma**2``).
The effective noise of the averaged rule falls as ``sigma / sqrt(n_samples)``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class MeasurementNoise:
    """Gaussian measurement noise.

    Parameters
    ----------
    sigma : float
        Standard deviation of one measurement, volts (variance ``sigma**2`` V^2).
    n_samples : int
        Measurements per node per phase, averaged by the rule.
    """

    sigma: float = 0.0
    n_samples: int = 1

    def __post_init__(self):
        if not (self.sigma >= 0 and np.isfinite(self.sigma)):
            raise ValueError(f"noise sigma must be a finite standard deviation >= 0 V, got {self.sigma!r}")
        if int(self.n_samples) != self.n_samples or self.n_samples < 1:
            raise ValueError(f"n_samples must be an integer >= 1, got {self.n_samples!r}")

    def measure(self, voltages: list, rng: np.random.Generator) -> tuple:
        """Measured voltages of every layer and the weight of each measurement row.

        Returns ``(layers, row_weight)``: each layer has ``batch * n_samples`` rows
        (``n_samples`` noisy copies of each sample); ``row_weight = 1/n_samples``.
        With ``sigma = 0`` the voltages are returned unchanged with weight 1.
        """
        if self.sigma == 0.0:
            return list(voltages), 1.0
        n = int(self.n_samples)
        measured = []
        for v in voltages:  # input nodes are measured too: the rule needs the drop across each resistor
            rep = np.repeat(v, n, axis=0)
            dtype = rep.dtype if rep.dtype in (np.float32, np.float64) else np.float64
            measured.append(rep + dtype.type(self.sigma) * rng.standard_normal(rep.shape, dtype=dtype))
        return measured, 1.0 / n
