"""Accuracy versus wire resistance (IR drop in the crossbars), MNIST.

1. Inference: the 784-100-10 network of ``experiments/ideal_to_real.sh`` (run it first; trained with ideal wires)
   evaluated on the 10,000 test images with every crossbar given ``R_w`` ohms of word and bit line per cell.
2. Training: 196-32-10 (14x14 images) trained with ideal wires and with ``R_w`` per cell (every phase solved
   with the lines, the rule fed the drop across each cell), 3 epochs on 20,000 images; each is tested with
   the wires it was trained with, and the ideal-wire network is also tested with each ``R_w``.
   Learning rate 1e5: the default 3e5 is too large for this small circuit (88 % against 48 % after one
   epoch on 10,000 images).

Both studies run for the two physical line layouts (``Architecture.wire_layout``): ``node-order`` (all
``+x`` word lines, then all ``-x`` lines, then the bias pair next to the read end of the bit lines) and
``interleaved`` (each differential pair side by side).

Every run writes ``experiments/results/wires/<layout>-<study>-<ohms>.json`` atomically and is skipped when that file exists,
so an interrupted study resumes without redoing finished runs.  Two runs at a time (one per core).

    .venv/bin/python experiments/wire_resistance.py          # about 35 min per layout on 2 cores
"""
from __future__ import annotations

import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("NUMBA_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "experiments" / "results" / "wires"
BIG_MODEL = ROOT / "experiments" / "results" / "ideal_to_real" / "ideal.npz"
INFERENCE_OHMS = (0.0, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
TRAIN_OHMS = (0.0, 1.0, 3.0, 10.0, 30.0)
SMALL = dict(layers="196-32-10", epochs=3, g_max=1e-5, learning_rate=1e5, seed=0, verbose=False)
SMALL_DATA = dict(size=14, limit_train=20000)
LAYOUTS = ("node-order", "interleaved")


def _write(name: str, record: dict) -> None:
    from circuitprop.io.files import atomic_write_bytes
    atomic_write_bytes(OUT / f"{name}.json", (json.dumps(record, indent=1) + "\n").encode())


def _accuracy(network, X, y) -> float:
    import numpy as np
    from circuitprop.backends.fast import FastBackend
    prepared = FastBackend(max_sweeps=5000).prepare(network)
    scores = np.concatenate([network.scores(prepared.solve(X[i:i + 2000]).outputs) for i in range(0, len(X), 2000)])
    return float(np.mean(np.argmax(scores, 1) == y))


def _with_wires(network, ohms, layout):
    from circuitprop.model import Network
    return Network(replace(network.architecture, wire_resistance=ohms, wire_layout=layout), network.conductances)


def inference_big(ohms: float, layout: str) -> dict:
    from circuitprop.io.datasets import load_split
    from circuitprop.model import Network
    X, y = load_split("mnist", "test")
    start = time.time()
    acc = _accuracy(_with_wires(Network.load(BIG_MODEL), ohms, layout), X, y)
    return {"study": "inference", "layers": "784-100-10", "wire_resistance_ohm": ohms, "wire_layout": layout,
            "test_accuracy": acc, "test_images": int(len(y)), "seconds": time.time() - start}


def train_small(ohms: float, layout: str) -> dict:
    from circuitprop.io.datasets import load_dataset
    from circuitprop.learning import EPTrainer
    X, y, Xt, yt = load_dataset("mnist", **SMALL_DATA)
    start = time.time()
    trainer = EPTrainer(wire_resistance=ohms, wire_layout=layout, **SMALL).fit(X, y)
    seconds = time.time() - start
    trainer.network_.save(OUT / f"{layout}-small-trained-{ohms:g}.npz")
    record = {"study": "training", "layers": SMALL["layers"], "wire_resistance_ohm": ohms, "wire_layout": layout,
              "test_accuracy": _accuracy(trainer.network_, Xt, yt), "test_images": int(len(yt)),
              "train_images": int(len(y)), "epochs": SMALL["epochs"], "train_seconds": seconds}
    if ohms == 0.0:  # the ideal-wire network in every wired crossbar (inference only)
        record["inference"] = {f"{r:g}": _accuracy(_with_wires(trainer.network_, r, layout), Xt, yt)
                               for r in TRAIN_OHMS if r > 0}
    return record


def _name(job) -> str:
    kind, ohms, layout = job
    return f"{layout}-{kind}-{ohms:g}"


def _run(job):
    kind, ohms, layout = job
    record = (inference_big if kind == "inference" else train_small)(ohms, layout)
    _write(_name(job), record)
    return f"{layout} {kind} R_w={ohms:g} ohm: {record['test_accuracy'] * 100:.2f} %"


def plot() -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = [json.loads(p.read_text()) for p in sorted(OUT.glob("*.json"))]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.0), sharey=True)
    floor = 1e-3  # R_w = 0 drawn at this abscissa on the log axis

    def series(ax, records, label, style):
        records = sorted(records, key=lambda r: r[0])
        if records:
            ax.plot([max(r, floor) for r, _ in records], [a * 100 for _, a in records], style, label=label)

    for ax, layout in zip(axes, LAYOUTS):
        mine = [r for r in rows if r.get("wire_layout") == layout]
        series(ax, [(r["wire_resistance_ohm"], r["test_accuracy"]) for r in mine if r["study"] == "inference"],
               "784-100-10 trained with ideal wires, tested with R_w", "o-")
        series(ax, [(r["wire_resistance_ohm"], r["test_accuracy"]) for r in mine if r["study"] == "training"],
               "196-32-10 trained and tested with R_w", "s-")
        ideal_small = [r for r in mine if r["study"] == "training" and r["wire_resistance_ohm"] == 0.0]
        if ideal_small:
            inf = ideal_small[0].get("inference", {})
            series(ax, [(0.0, ideal_small[0]["test_accuracy"])] + [(float(k), v) for k, v in inf.items()],
                   "196-32-10 trained with ideal wires, tested with R_w", "s--")
        ax.set_xscale("log")
        ax.set_title(f"{layout} line layout")
        ax.set_xlabel("wire resistance per cell, ohms (R_w = 0 drawn at 1e-3)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("MNIST test accuracy, %")
    axes[0].set_ylim(0, 100)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    path = OUT / "accuracy_vs_wire_resistance.png"
    fig.savefig(path, dpi=120)
    return path


def main() -> int:
    if not BIG_MODEL.exists():
        print(f"{BIG_MODEL} is missing: run `bash experiments/ideal_to_real.sh` first (it trains that network)",
              file=sys.stderr)
        return 2
    if not os.environ.get("CIRCUITPROP_DATA") and (ROOT.parent / "shared" / "data" / "mnist").is_dir():
        os.environ["CIRCUITPROP_DATA"] = str(ROOT.parent / "shared" / "data")
    OUT.mkdir(parents=True, exist_ok=True)
    jobs = [(kind, r, layout) for layout in LAYOUTS
            for kind, values in (("training", TRAIN_OHMS), ("inference", INFERENCE_OHMS)) for r in values]
    todo = [j for j in jobs if not (OUT / f"{_name(j)}.json").exists()]
    print(f"{len(jobs) - len(todo)} runs already done, {len(todo)} to go", flush=True)
    with ProcessPoolExecutor(max_workers=2) as pool:
        for line in pool.map(_run, todo):
            print(line, flush=True)
    print(f"wrote {plot()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
