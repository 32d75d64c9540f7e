"""Result 3 of the trainer issue: ngspice solves every phase of an EP training run.

A 14x14 MNIST circuit (196-32-10: 394-32-20 circuit nodes with doubled inputs, bias and outputs) is
trained on the first N training images (default 10,000, one pass) twice with the same seed: once with
ngspice solving every phase (Norton-folded input crossbars, exact) and once with the fast solver. Both
use Shockley diodes, so both simulate the same circuit. Test accuracy of each, on the 10,000 test
images (fast solver) and on the first 500 test images with ngspice, goes to
experiments/results/spice_in_the_loop.json.

Run:  .venv/bin/python experiments/spice_in_the_loop.py [--examples 10000]
"""
import argparse
import json
import time

import numpy as np

from circuitprop.backends import FastBackend
from circuitprop.backends.spice import SpiceBackend
from circuitprop.io.datasets import load_dataset
from circuitprop.learning import EPTrainer
from circuitprop.io.files import atomic_write_bytes


def accuracy(net, backend, X, y, chunk=250):
    scores = np.concatenate([net.scores(backend.solve(net, X[i:i + chunk]).outputs) for i in range(0, len(X), chunk)])
    return float(np.mean(np.argmax(scores, 1) == y))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=10000)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--output", default="experiments/results/spice_in_the_loop.json")
    args = parser.parse_args()
    X, y, Xt, yt = load_dataset("mnist", args.data_dir, size=14, limit_train=args.examples)
    params = dict(layers="196-32-10", epochs=1, batch_size=16, diode="shockley", bias_input=True,
                  learning_rate=1e4, lr_schedule="exponential", momentum=0.5, target=0.25, seed=0,
                  verbose=True)
    results = {"examples": args.examples, "params": params}
    models = {}
    for backend in ("spice", "fast"):
        t0 = time.perf_counter()
        trainer = EPTrainer(backend=backend, **params).fit(X, y)
        seconds = time.perf_counter() - t0
        models[backend] = trainer.network_
        results[backend] = {"train_seconds": seconds, "examples_per_second": args.examples / seconds,
                            "test_accuracy_fast_10000": accuracy(trainer.network_, FastBackend(), Xt, yt),
                            "test_accuracy_ngspice_500": accuracy(trainer.network_, SpiceBackend(), Xt[:500],
                                                                  yt[:500])}
        print(backend, results[backend], flush=True)
    diff = {k: float(np.max(np.abs(models["spice"].conductances[k] - models["fast"].conductances[k])
                         / models["fast"].conductances[k])) for k in models["fast"].conductances}
    results["max_relative_conductance_difference"] = {f"{a}-{b}": v for (a, b), v in diff.items()}
    results["accuracy_gap_points"] = 100 * abs(results["spice"]["test_accuracy_fast_10000"]
                                               - results["fast"]["test_accuracy_fast_10000"])
    atomic_write_bytes(args.output, json.dumps(results, indent=2).encode())
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
