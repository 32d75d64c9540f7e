"""EP training throughput at batch 4 (centered EP, 4 sweeps per phase: the published setting).

Run:  .venv/bin/python benchmarks/bench_training.py [--examples 4000] [--repeats 3]

For 1568-1024-10 and 1568-100-10 (784 features doubled plus a doubled bias; 10 outputs), in float64 and
float32, it prints examples/s of `EPTrainer.fit` (one epoch over random data; the epoch time excludes the
end-of-epoch checks) and, measured in the same run:

* the bandwidth floor: the fastest bare in-place pass over the same arrays a step must update
  (conductances and momentum buffers), by numpy (one core) or a numba loop (both cores);
* the step's ratio to that floor (target: within 2.5x);
* the previous implementation (dense gradient array, separate momentum/update/clip passes, solver rebuilt
  every batch) on the same shapes, as the baseline of the speed-up;
* the fused kernel on one core instead of two (what the second core gives).

The published PyTorch implementation runs at about 91 examples/s on this machine with these settings
(DESIGN.md; 71-101 as published, about 200 without its allocator cost).
"""
import argparse
import time

import circuitprop  # noqa: F401  (before numpy: sets OPENBLAS_THREAD_TIMEOUT, see circuitprop/__init__.py)
import numpy as np

from circuitprop.learning import EPTrainer


def make_trainer(layers, dtype, examples):
    return EPTrainer(layers=layers, batch_size=4, solver_sweeps=4, epochs=1, verbose=False, doubled_outputs=False,
                     dtype=dtype, estimator="centered")


def fused_rate(layers, dtype, X, y, repeats):
    """Examples/s of fit() with the fused kernel (best of ``repeats`` epochs), and the trained trainer."""
    best = 0.0
    for _ in range(repeats):
        trainer = make_trainer(layers, dtype, len(X)).fit(X, y)
        best = max(best, len(X) / trainer.history_[0]["seconds"])
    return best, trainer


class DenseRule:
    """The ΔV² rule returning dense gradient arrays (the previous implementation's path)."""

    name = "dv2-dense"

    def gradient(self, network, phases):
        from circuitprop.learning.ep import low_rank_gradients
        return {k: g.dense() for k, g in low_rank_gradients(network, phases).items()}


def baseline_rate(layers, dtype, X, y):
    """Examples/s of the previous step: dense gradients, separate passes, solver rebuilt every batch."""
    trainer = make_trainer(layers, dtype, len(X))
    trainer.epochs = 0
    trainer.fit(X[:8], y[:8])
    trainer._rule = DenseRule()
    T = trainer._targets(y)
    n = min(len(X), 800)
    trainer.train_batch(X[:4], T[:4])
    t0 = time.perf_counter()
    for i in range(0, n, 4):
        trainer.train_batch(X[i:i + 4], T[i:i + 4])  # prepares the solver afresh each call
    return n / (time.perf_counter() - t0)


def floor_seconds(trainer, repeats=20):
    """Fastest bare in-place read+write pass over every conductance and momentum array of the trainer."""
    import numba

    @numba.njit(parallel=True)
    def touch(a, scale):  # scale is a run-time value, so the compiler cannot drop the pass
        flat = a.reshape(-1)
        for i in numba.prange(flat.size):
            flat[i] = flat[i] * scale

    arrays = list(trainer.network_.conductances.values()) + list(trainer.optimizer_.velocity.values())
    for a in arrays:
        touch(a, a.dtype.type(1.0))
    best_numpy = best_numba = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        for a in arrays:
            a *= a.dtype.type(1.0)
        best_numpy = min(best_numpy, time.perf_counter() - t0)
        t0 = time.perf_counter()
        for a in arrays:
            touch(a, a.dtype.type(1.0))
        best_numba = min(best_numba, time.perf_counter() - t0)
    return min(best_numpy, best_numba), best_numpy, best_numba



def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=4000, help="examples per timed epoch")
    parser.add_argument("--repeats", type=int, default=3, help="epochs timed per setting (best is kept)")
    args = parser.parse_args()
    import numba

    from circuitprop.kernels.fused import backend_name
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 1, (args.examples, 784))
    y = rng.integers(0, 10, args.examples)
    print(f"update kernel: {backend_name()}, {numba.get_num_threads()} threads; batch 4, centered, 4 sweeps; "
          f"{args.examples} examples per epoch, best of {args.repeats}")
    print("floor: bare in-place pass over the conductances and momentum buffers, by numpy (1 core) and numba "
          "(2 cores), fastest of 20; step/floor against the faster of the two (target <= 2.5)")
    print(f"{'circuit':<14}{'dtype':<9}{'examples/s':>11}{'ms/step':>9}{'floor ms np|nb':>16}{'step/floor':>12}"
          f"{'previous ex/s':>15}{'speed-up':>10}{'1 core ex/s':>13}")
    for layers, name in (("784-1024-10", "1568-1024-10"), ("784-100-10", "1568-100-10")):
        for dtype in ("float64", "float32"):
            rate, trainer = fused_rate(layers, dtype, X, y, args.repeats)
            step = 4 / rate
            floor, by_numpy, by_numba = floor_seconds(trainer)
            previous = baseline_rate(layers, dtype, X, y)
            threads = numba.get_num_threads()
            numba.set_num_threads(1)
            one_core, _ = fused_rate(layers, dtype, X, y, args.repeats)
            numba.set_num_threads(threads)
            floors = f"{by_numpy * 1e3:.3f}|{by_numba * 1e3:.3f}"
            print(f"{name:<14}{dtype:<9}{rate:>11.0f}{step * 1e3:>9.3f}{floors:>16}{step / floor:>12.2f}"
                  f"{previous:>15.0f}{rate / previous:>9.1f}x{one_core:>13.0f}", flush=True)


if __name__ == "__main__":
    main()
