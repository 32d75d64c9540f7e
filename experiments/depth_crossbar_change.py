"""Issue 24: how far each crossbar of a trained circuit moved from its initial conductances.

For every run folder given (one of run_depth.sh's, holding model.ckpt.npz, and model.npz once finished; a run
still going is read at its last checkpoint), the initial network
is drawn again from the run's own settings and seed (the trainer's draw, bit for bit), and each crossbar's
change is summarised: the 10 %, 50 % and 90 % quantiles of its conductances before and after (uS), and the
mean |g - g0| over the mean g0 (the relative change).  A crossbar whose quantiles barely moved did not learn.
Writes a Markdown table to stdout.

Run:  .venv/bin/python experiments/depth_crossbar_change.py experiments/results/depth/e10/mnist_2H+skip_s0 ...
"""
import sys
from pathlib import Path

import numpy as np

from circuitprop.learning import EPTrainer
from circuitprop.learning.checkpoint import read_checkpoint
from circuitprop.model import Network


def initial_network(folder: Path) -> Network:
    settings = dict(read_checkpoint(folder / "model.ckpt.npz")[0])
    settings.update(epochs=0, verbose=False)
    trainer = EPTrainer(**settings)
    trainer._initialize()
    return trainer.network_


def trained_network(folder: Path) -> Network:
    """The run's trained network: model.npz, or the last checkpoint of a run still going."""
    if (folder / "model.npz").exists():
        return Network.load(folder / "model.npz")
    return EPTrainer.from_checkpoint(folder / "model.ckpt.npz").network_


def main(folders):
    print("| run | crossbar | initial 10 / 50 / 90 % (uS) | trained 10 / 50 / 90 % (uS) | mean abs change / mean initial |")
    print("|---|---|---|---|---|")
    for folder in map(Path, folders):
        start = initial_network(folder)
        end = trained_network(folder)
        for key, g in end.conductances.items():
            g0 = np.asarray(start.conductances[key], dtype=np.float64)
            g = np.asarray(g, dtype=np.float64)
            q0, q = (np.quantile(a, [0.1, 0.5, 0.9]) * 1e6 for a in (g0, g))
            change = np.mean(np.abs(g - g0)) / np.mean(g0)
            print(f"| {folder.parent.name}/{folder.name} | {key} | {' / '.join(f'{v:.3g}' for v in q0)} | "
                  f"{' / '.join(f'{v:.3g}' for v in q)} | {change:.2f} |", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
