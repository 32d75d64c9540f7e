"""Issue 24: does a smaller initial scale of the crossbars behind the amplifiers speed up deep circuits without skips?

Run:  .venv/bin/python experiments/depth_init_sweeps.py > experiments/results/depth/init_sweeps.md

For 784-1024-1024-10 and 784-1024-1024-1024-10 (gain-4 amplifiers after every hidden layer, no skips), the
training's initial conductances (seed 0, uniform in g_init) are divided by 1, 4, 16, 64 on every crossbar
that leaves a hidden layer (floored at the device minimum g_min), the input crossbar kept (and, last row, by 16^k behind the k-th hidden layer); the fast solver
then counts the sweeps to the steady state (1e-10 A, float64) on the first four MNIST training images,
plain (omega 1) and over-relaxed (omega 1.5).  Behind an amplifier of gain A a crossbar weighs A^2 times its
conductance on the layer before it, so a chain of amplified layers is ill-conditioned unless each crossbar is
about A^2 smaller than the one before: 1/A^2 per layer, 1/A^(2k) at depth k.
"""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_deep import steady_state_sweeps, trainer  # noqa: E402

from circuitprop.io.datasets import load_dataset  # noqa: E402


def main():
    X, y, _, _ = load_dataset("mnist", None, limit_train=4, limit_test=4)
    print("| network | scale of the crossbars behind amplifiers | sweeps, omega 1 | sweeps, omega 1.5 |")
    print("|---|---|---|---|")
    for layers in ["784-1024-1024-10", "784-1024-1024-1024-10"]:
        tr = trainer(layers, (), amplifier_gain=4.0, dtype="float64").fit(X[:4], y[:4])
        net, g_min = tr.network_, tr.devices.g_min
        base = {k: v.copy() for k, v in net.conductances.items()}
        for scale in (1, 4, 16, 64, "16^k"):
            for k, v in net.conductances.items():  # "16^k": 1/A^(2k) behind the k-th hidden layer
                factor = 16.0 ** k[0] if scale == "16^k" else scale
                v[...] = np.maximum(base[k] / factor, g_min) if k[0] >= 1 else base[k]
            print(f"| {layers} | 1/{scale} | {steady_state_sweeps(net, X[:4], 1.0)} | "
                  f"{steady_state_sweeps(net, X[:4], 1.5)} |", flush=True)


if __name__ == "__main__":
    main()
