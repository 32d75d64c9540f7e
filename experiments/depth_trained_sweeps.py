"""Issue 24: how many relaxation sweeps a trained deep circuit needs for an accurate EP gradient.

Run:  .venv/bin/python experiments/depth_trained_sweeps.py RUN_FOLDER ... > table.md

For each run folder of run_depth.sh (model.npz, or the last checkpoint of a run still going), the circuit is
rebuilt from the run's own settings with its trained conductances, and on each of ``--batches`` batches of four
MNIST or Fashion-MNIST training images (the run's dataset, read from the folder name; the first images of
the training set) the centred EP
gradient (float32, as training runs) with 2, 3, 4, 5, 6 and 8 fixed sweeps per phase is compared with the
gradient at the steady state (1e-12 A, float64).  Printed: the smallest cosine over the batches for each sweep
count.  benchmarks/bench_deep.py measures the same at the initial conductances; this says whether a trained
circuit still settles as fast (the cosine levels off near 0.999 because training runs in float32).
"""
import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_deep import gradient  # noqa: E402
from depth_crossbar_change import trained_network  # noqa: E402  (this folder is on sys.path when run as a script)

from circuitprop.io.datasets import load_dataset  # noqa: E402
from circuitprop.learning import EPTrainer  # noqa: E402
from circuitprop.learning.checkpoint import read_checkpoint  # noqa: E402
from circuitprop.model import Network  # noqa: E402

SWEEPS = (2, 3, 4, 5, 6, 8)


def trainer_with(settings: dict, network: Network, X, y, **kw) -> EPTrainer:
    """A trainer with the run's settings (``kw`` overriding), set up on (X, y), holding ``network``'s
    conductances."""
    params = dict(settings, epochs=0, verbose=False, batch_size=len(X), augment_shift=0, augment_flip=False)
    params.update(kw)
    tr = EPTrainer(**params).fit(X, y)
    for key, g in network.conductances.items():
        tr.network_.conductances[key][...] = g
    return tr


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--batches", type=int, default=3, help="batches of 4 training images (default 3)")
    args = parser.parse_args()
    print("| run | training sweeps | " + " | ".join(f"cosine, {s} sweeps" for s in SWEEPS) + " |")
    print("|---|---|" + "---|" * len(SWEEPS))
    for folder in args.folders:
        settings = dict(read_checkpoint(folder / "model.ckpt.npz")[0])
        network = trained_network(folder)
        dataset = folder.name.split("_")[0]  # run_depth.sh names folders <dataset>_<cell>_s<seed>
        X, y, _, _ = load_dataset(dataset, None, limit_train=4 * args.batches, limit_test=4)
        worst = {s: 1.0 for s in SWEEPS}
        for b in range(args.batches):
            xb, yb = X[4 * b:4 * b + 4], y[4 * b:4 * b + 4]
            exact = trainer_with(settings, network, xb, yb, solver_sweeps=None, solver_tol=1e-12,
                                 solver_relaxation=1.8, dtype="float64")
            reference = gradient(exact, xb, yb)
            for s in SWEEPS:
                g = gradient(trainer_with(settings, network, xb, yb, solver_sweeps=s, dtype="float32"), xb, yb)
                worst[s] = min(worst[s], float(g @ reference / np.linalg.norm(g) / np.linalg.norm(reference)))
        print(f"| {folder.parent.name}/{folder.name} | {settings.get('solver_sweeps')} | "
              + " | ".join(f"{worst[s]:.4f}" for s in SWEEPS) + " |", flush=True)


if __name__ == "__main__":
    main()
