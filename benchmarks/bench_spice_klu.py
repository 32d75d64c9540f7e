"""ngspice on deep circuits: KLU against Sparse 1.3, by the width of the hidden layers.

Run:  .venv/bin/python benchmarks/bench_spice_klu.py [--widths 128 256 512 1024] [--sparse-max 256] [--images 4]

Each circuit is 784-n-n-10 with skip crossbars 0-2 and 1-3 (the depth study's 2H+skip), ideal-diode neurons,
amplifiers of gain 4, random initial conductances (seed 0).  The n x n crossbar between the two hidden layers
is a dense bipartite block of the circuit matrix: the part a sparse LU has to fill.  For each width, the
script solves the free phase of ``--images`` MNIST test images (random pixels if the data are not found)
the way ``experiments/spice_check.py`` does (folded inputs, one DC sweep), once with ``.options klu=1``
(circuitprop's default) and once with ``klu=0`` (ngspice's older Sparse 1.3), and prints the seconds per
image, the speed-up of KLU measured in the same run, and the largest node-voltage difference between the
two.  Sparse 1.3 grows about as n^4 here, so it runs only up to ``--sparse-max``.  Needs ngspice 40 or later
(``scripts/bootstrap.sh`` installs it).
"""
from __future__ import annotations

import argparse
import os
import platform
import time
from dataclasses import replace
from pathlib import Path

import circuitprop  # noqa: F401  (before numpy: sets OPENBLAS_THREAD_TIMEOUT, see circuitprop/__init__.py)
import numpy as np

from circuitprop.backends.spice import SpiceBackend, SpiceOptions
from circuitprop.backends.spice.ngspice import NgSpiceSession
from circuitprop.model import Network, make_architecture

from bench_spice import images  # MNIST test images, random pixels without the data (says so)

def cpu_name():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip() + f", {os.cpu_count()} cores"
    except OSError:
        pass
    return platform.machine()


def seconds_per_image(net, X, klu):
    backend = SpiceBackend(fold_inputs=True, options=replace(SpiceOptions(), klu=klu))
    start = time.perf_counter()
    solution = backend.solve(net, X)
    return (time.perf_counter() - start) / X.shape[0], solution.flat()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[128, 256, 512, 1024])
    parser.add_argument("--sparse-max", type=int, default=256, help="largest width solved with Sparse 1.3 too")
    parser.add_argument("--images", type=int, default=4)
    args = parser.parse_args()
    print(NgSpiceSession.get().version(), "|", cpu_name())
    X = images(args.images, 784, np.random.default_rng(0))
    print("| hidden width n | conductances | KLU s / image | Sparse 1.3 s / image | KLU speed-up | max |dV| (V) |")
    print("|---|---|---|---|---|---|")
    for n in args.widths:
        arch = make_architecture(f"784-{n}-{n}-10", amplifier_gain=4.0, skip=((0, 2), (1, 3)))
        net = Network.random(arch, seed=0)
        count = sum(g.size for g in net.conductances.values())
        klu_s, klu_v = seconds_per_image(net, X, 1)
        if n <= args.sparse_max:
            sparse_s, sparse_v = seconds_per_image(net, X, 0)
            row = f"{sparse_s:.2f} | {sparse_s / klu_s:.1f}x | {np.max(np.abs(klu_v - sparse_v)):.1e}"
        else:
            row = "- | - | -"
        print(f"| {n} | {count:,} | {klu_s:.2f} | {row} |", flush=True)


if __name__ == "__main__":
    main()
