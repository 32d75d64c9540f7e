"""Issue 24: accuracy of trained circuits on their own training images and on the test images.

A circuit whose training accuracy is close to its test accuracy is not overfitting: it is limited by what it
learns (capacity or learning), so regularisation such as data augmentation cannot help it.  Each model is
solved as it was trained (its fixed sweeps per phase, over-relaxation and floating-point type) on the 60,000 unchanged training images and
the 10,000 test images.

Run:  .venv/bin/python experiments/train_accuracy.py DATASET MODEL.npz [MODEL.npz ...]
"""
import os
import sys
from pathlib import Path

import numpy as np
from depth_table import _training_solver  # this folder is on sys.path when run as a script

from circuitprop.backends import FastBackend
from circuitprop.io.datasets import load_dataset
from circuitprop.model import Network


def accuracy(net, backend, X, y, batch=1000):
    correct = 0
    for i in range(0, len(X), batch):
        predicted = np.argmax(net.scores(backend.solve(net, X[i:i + batch]).outputs), axis=1)
        correct += int(np.sum(predicted == y[i:i + batch]))
    return correct / len(X)


def main(dataset, models):
    X, y, Xt, yt = load_dataset(dataset, os.environ.get("CIRCUITPROP_DATA"))
    print("| model | training accuracy | test accuracy |")
    print("|---|---|---|")
    for path in models:
        net = Network.load(path)
        backend = FastBackend(fixed_sweeps_residual=False, **_training_solver(Path(path).parent))
        print(f"| {path} | {100 * accuracy(net, backend, X, y):.2f} % | {100 * accuracy(net, backend, Xt, yt):.2f} % |",
              flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
