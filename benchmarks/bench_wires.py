"""Cost of wire resistance (IR drop) in the fast solver, against ideal wires in the same run.

Run:  .venv/bin/python benchmarks/bench_wires.py

For 196-32-10 (14x14 MNIST) and 784-100-10 circuits (doubled inputs, bias, amplifiers of gain 4, ideal
diodes, conductances in [1e-7, 1e-5] S) it prints:

* ``prepare``: seconds to derive the solver (ideal wires: sums; with wires: one sparse LU per crossbar and
  one solve per non-source port, :mod:`circuitprop.model.wires`);
* ``solve``: seconds for the free phase of a batch of 1,000 inputs to the KCL tolerance, and examples/s;
* ``train step``: seconds of one EP step at batch 16 (free + two nudged phases + rule + update), both paths;
* the ratio wired / ideal for each.

Every figure is the median of repeats measured in this run (``time.perf_counter``).
"""
from __future__ import annotations

import statistics
import time
from dataclasses import replace

import circuitprop  # noqa: F401  (before numpy: sets OPENBLAS_THREAD_TIMEOUT, see circuitprop/__init__.py)
import numpy as np

from circuitprop.backends import FastBackend
from circuitprop.model import DiodeModel, Network, make_architecture


def median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    from circuitprop.learning import EPTrainer
    from circuitprop.model.wires import _CACHE
    rng = np.random.default_rng(0)
    print(f"{'circuit':<12} {'wires':>8} {'prepare s':>10} {'solve 1000 s':>13} {'ex/s':>8} {'train step s':>13}")
    for spec, repeats in (("196-32-10", 5), ("784-100-10", 2)):
        arch = make_architecture(spec, amplifier_gain=4.0, bias_input=True, diode=DiodeModel(kind="ideal"))
        base = Network.random(arch, g_min=1e-7, g_max=1e-5, seed=0)
        x = rng.uniform(0, 1, (1000, arch.n_features))
        figures = {}
        for ohms in (0.0, 1.0):
            net = Network(replace(arch, wire_resistance=ohms), base.conductances)
            backend = FastBackend(max_sweeps=5000)

            def prepare():
                _CACHE.clear()  # time the factorisation, not the cache
                return backend.prepare(net)

            t_prepare = median_time(prepare, repeats)
            prepared = backend.prepare(net)
            t_solve = median_time(lambda: prepared.solve(x), repeats)
            trainer = EPTrainer(layers=spec, wire_resistance=ohms, g_max=1e-5, verbose=False, seed=0)
            trainer._setup()
            trainer.network_ = Network(trainer._architecture(), {k: g.copy() for k, g in base.conductances.items()})
            batch, targets = x[:16], np.eye(arch.n_classes)[rng.integers(0, arch.n_classes, 16)]

            def step():
                _CACHE.clear()
                trainer.train_batch(batch, trainer._targets(targets.argmax(1)))

            t_step = median_time(step, repeats + 1)
            figures[ohms] = (t_prepare, t_solve, t_step)
            print(f"{spec:<12} {ohms:>6g} Ω {t_prepare:>10.3f} {t_solve:>13.3f} {1000 / t_solve:>8.0f} {t_step:>13.4f}",
                  flush=True)
        (p0, s0, k0), (p1, s1, k1) = figures[0.0], figures[1.0]
        print(f"{spec:<12} {'ratio':>8} {p1 / p0:>10.1f}x {s1 / s0:>12.1f}x {'':>8} {k1 / k0:>12.1f}x")


if __name__ == "__main__":
    main()
