"""Issue 24: what a chain of three amplified hidden layers without skips (784-1024-1024-1024-10) needs to train.

At initialisation (seed 0) and on the first four training images of ``--dataset``, for each initialisation
(``--g-init-scaling`` amplifier and balanced) it prints:

* the crossbars whose whole initial range lies below g_min (they start with every conductance equal);
* how far the nudge reaches: the largest change of each layer's voltages between the +beta and -beta phases at
  the steady state;
* sweeps to the steady state (every KCL residual below 1e-10 A, float64) for several over-relaxation factors;
* the cosine between the EP gradient (centred, beta = 1 uS) of fixed sweeps per phase (free / nudged, float32 and
  float64) and the gradient at the steady state (plain coordinate descent to 1e-12 A, float64; the same with
  omega = 1.45 is printed as a check of that reference).

Run:  .venv/bin/python experiments/depth_chain_probe.py [--dataset mnist] [--inits amplifier balanced]
"""
import argparse
import os
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import bench_deep  # noqa: E402  (its trainer, gradient and steady-state helpers)

from circuitprop.io.datasets import load_dataset  # noqa: E402
from circuitprop.learning.diagnostics import nudge_moves  # noqa: E402

LAYERS = "784-1024-1024-1024-10"
OMEGAS = (1.0, 1.3, 1.45, 1.6, 1.75)
SETTINGS = [  # (free sweeps, nudged sweeps or None: the same), omega, dtype
    ((8, None), 1.0, "float32"), ((16, None), 1.0, "float32"), ((64, None), 1.0, "float32"),
    ((8, None), 1.45, "float32"), ((16, None), 1.45, "float32"), ((8, 3), 1.45, "float32"),
    ((16, 8), 1.45, "float32"), ((16, 8), 1.45, "float64"), ((16, 12), 1.45, "float64"),
    ((24, None), 1.45, "float64"), ((64, None), 1.0, "float64"),
]


def cosine(a, b):
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--inits", nargs="+", default=["amplifier", "balanced"], choices=("amplifier", "balanced"))
    args = parser.parse_args()
    X, y, _, _ = load_dataset(args.dataset, os.environ.get("CIRCUITPROP_DATA"), limit_train=4, limit_test=4)
    X, y = X[:4], y[:4]
    for init in args.inits:
        bench_deep.INIT["init"] = init
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            exact = bench_deep.trainer(LAYERS, (), solver_tol=1e-12, solver_relaxation=1.0, dtype="float64",
                                       amplifier_gain=[4, 4, 4]).fit(X, y)
        floored = [str(w.message).split(":")[0] for w in caught if "below the floor" in str(w.message)]
        print(f"## {init} initialisation ({args.dataset}, first 4 training images)")
        print(f"crossbars wholly below g_min at initialisation: {', '.join(floored) or 'none'}")
        reach = nudge_moves(exact, X, y)[1]
        print("largest |V(+beta) - V(-beta)| per layer (V): "
              + ", ".join(f"layer {k + 1}: {v:.2g}" for k, v in enumerate(reach)))
        net = exact.network_
        print("sweeps to 1e-10 A: " + ", ".join(f"omega {w}: {bench_deep.steady_state_sweeps(net, X, w)}"
                                                for w in OMEGAS), flush=True)
        reference = bench_deep.gradient(exact, X, y)
        check = bench_deep.gradient(bench_deep.trainer(LAYERS, (), solver_tol=1e-12, solver_relaxation=1.45,
                                                       dtype="float64", amplifier_gain=[4, 4, 4]).fit(X, y), X, y)
        print("reference gradient (omega 1, 1e-12 A) against the same at omega 1.45: "
              f"cosine {cosine(check, reference):.6f}")
        print("| free / nudged sweeps | omega | dtype | gradient cosine with the steady state's |")
        print("|---|---|---|---|")
        for (free, nudged), omega, dtype in SETTINGS:
            trainer = bench_deep.trainer(LAYERS, (), solver_sweeps=free, solver_nudged_sweeps=nudged,
                                         solver_relaxation=omega, dtype=dtype, amplifier_gain=[4, 4, 4]).fit(X, y)
            value = cosine(bench_deep.gradient(trainer, X, y), reference)
            print(f"| {free} / {nudged or free} | {omega} | {dtype} | {value:.4f} |", flush=True)
        print()


if __name__ == "__main__":
    main()
