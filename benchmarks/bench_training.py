"""EP training throughput on 1568-1024-10 at batch 4 (centered EP, 4 sweeps per phase: the published setting).

Run:  .venv/bin/python benchmarks/bench_training.py [--examples 4000]

Prints examples/s of `EPTrainer.train_batch` and, measured in the same run, the time of the bare numpy products
one EP step needs at least (input projection of the batch, the two gradient products of the input crossbar)
so that the ratio shows how close the step is to the machine's matrix-product cost.
DESIGN.md reports a published PyTorch implementation at about 91 examples/s on this machine, same settings.
"""
import argparse
import time

import numpy as np

from circuitprop.learning import EPTrainer


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=4000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 1, (args.examples, 784))
    y = rng.integers(0, 10, args.examples)
    trainer = EPTrainer(layers="784-1024-10", batch_size=4, solver_sweeps=4, epochs=0, verbose=False,
                        doubled_outputs=False).fit(X, y)
    T = trainer._targets(y)
    trainer.train_batch(X[:4], T[:4])
    t0 = time.perf_counter()
    for i in range(0, args.examples, 4):
        trainer.train_batch(X[i:i + 4], T[i:i + 4])
    step = (time.perf_counter() - t0) / (args.examples / 4)
    g = trainer.network_.conductances[(0, 1)]
    v = trainer.network_.input_voltages(X[:4])
    h = rng.uniform(size=(8, 1024))
    t0 = time.perf_counter()
    for _ in range(args.examples // 4):
        _ = v @ g
        _ = np.concatenate([v, v]).T @ h
    bare = (time.perf_counter() - t0) / (args.examples / 4)
    print(f"EP training, 1568-1024-10, batch 4, 4 sweeps: {4 / step:8.0f} examples/s "
          f"({step * 1e3:.2f} ms per step; bare products {bare * 1e3:.2f} ms = {100 * bare / step:.0f} % of it)")
    print(f"vs the published PyTorch implementation's 91 examples/s (DESIGN.md): {4 / step / 91:.1f}x")


if __name__ == "__main__":
    main()
