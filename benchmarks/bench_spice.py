"""ngspice in the training loop: cost of one EP step's phases on the Kendall-size 1N4148 circuit.

Run:  .venv/bin/python benchmarks/bench_spice.py [--model PATH] [--repeats N]

The circuit is 784-100-10 features/hidden/classes (1568-100-20 nodes, doubled inputs and outputs, bias,
amplifiers of gain 4) with 1N4148 neurons, inputs x30, as trained by ``experiments/real_diodes_kendall.sh``;
by default its trained conductances (``experiments/results/real_diodes/kendall-1n4148.npz``).  One EP step
at batch 16 solves a free phase (16 samples) and the two nudged phases (32 samples, nudging currents of
1 uA scale).  For each way of running ngspice it prints the median wall time of those two solves over
``--repeats`` batches of MNIST test images (random pixels if the data are not found), the milliseconds per
operating point, and the speed-up against the first row, measured in the same run:

* ``op per sample``: the netlist loaded once per network, one ``op`` per sample after ``alter``-ing the
  folded input and output sources (``SpiceBackend(sweep=False)``);
* ``dc sweep``: one netlist per batch whose sources are ``pwl`` tables of a swept variable, one ``dc``
  analysis (``SpiceBackend()``, the default);
* ``dc sweep, 2 workers``: the same split across two ngspice worker processes (``workers=2``).

Every solution is KCL-checked by the backend; the largest node-voltage difference against the first row
is printed too.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import circuitprop  # noqa: F401  (before numpy: sets OPENBLAS_THREAD_TIMEOUT, see circuitprop/__init__.py)
import numpy as np

from circuitprop.backends.spice import SpiceBackend
from circuitprop.model import Network

ROOT = Path(__file__).resolve().parents[1]


def images(count, n_features, rng):
    try:
        from circuitprop.io.datasets import load_split
        data_dir = os.environ.get("CIRCUITPROP_DATA") or str(ROOT.parent / "shared" / "data")
        X, _ = load_split("mnist", "test", data_dir, limit=count)
        return X
    except Exception as exc:  # no data here: random pixels (say so)
        print(f"(MNIST not found: {exc}; using random pixels)")
        return rng.uniform(0, 1, (count, n_features))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "experiments/results/real_diodes/kendall-1n4148.npz"))
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    net = Network.load(args.model)
    rng = np.random.default_rng(0)
    batch = 16
    X = images(batch * args.repeats, net.architecture.n_features, rng)
    n_out = net.layer_sizes[-1]
    currents = [rng.normal(0, 1e-6, (2 * batch, n_out)) for _ in range(args.repeats)]
    runs = [("op per sample", dict(sweep=False)), ("dc sweep", dict()), ("dc sweep, 2 workers", dict(workers=2))]
    print(f"model {args.model}: {'-'.join(map(str, net.layer_sizes))} nodes, diode "
          f"{net.architecture.diode.kind}, batch {batch}: free phase (16) + nudged phases (32)")
    print(f"{'ngspice runs':<22} {'s per EP step':>14} {'ms per op. point':>17} {'speed-up':>9} {'max |dV| V':>11}")
    base_time, base_solutions = None, None
    for label, options in runs:
        backend = SpiceBackend(**options)
        backend.solve(net, X[:batch])  # worker start-up and first load outside the timing
        times, solutions = [], []
        for r in range(args.repeats):
            x = X[r * batch:(r + 1) * batch]
            start = time.perf_counter()
            free = backend.solve(net, x)
            nudged = backend.solve(net, np.concatenate([x, x]), currents[r])
            times.append(time.perf_counter() - start)
            solutions.append(np.concatenate([free.flat(), nudged.flat()]))
        backend.close()
        step = statistics.median(times)
        if base_time is None:
            base_time, base_solutions = step, solutions
        diff = max(np.max(np.abs(a - b)) for a, b in zip(solutions, base_solutions))
        print(f"{label:<22} {step:>14.3f} {step / (3 * batch) * 1e3:>17.2f} {base_time / step:>8.2f}x {diff:>11.1e}")


if __name__ == "__main__":
    main()
