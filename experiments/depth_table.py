"""Issue 24: the depth table, its figure, and every circuit scored at its steady state.

Reads the runs of ``experiments/run_depth.sh`` (experiments/results/depth/e<EPOCHS>/<dataset>_<cell>_s<seed>/)
and the backpropagation references of ``experiments/depth_backprop.py`` (results/depth/backprop/e<EPOCHS>/),
and writes into the e<EPOCHS> folder:

* ``depth_table.md``: per dataset and cell, the test error after the last epoch (mean over the seeds found,
  each seed listed), how many of the first N test images change class when the same circuit is solved to
  its steady state, the backpropagation reference's error and the seconds per training epoch;
* ``depth_curves.png``: test error against epoch, EP (solid) and backpropagation (dashed), one panel per
  dataset.

Training and the per-epoch test accuracy use the trainer's fixed number of relaxation sweeps per phase (as
published EP code does).  ``--steady-state N`` also solves the first N test images of every model to its
steady state (every KCL residual below 1e-10 A, float64, over-relaxed), the circuit that ngspice would
simulate, and records the accuracy and how many predictions the fixed sweeps got differently, in
``steady_state.json`` beside the model (computed once).

Runs trained with ``AUGMENT=K`` (random shifts) are read from e<EPOCHS>_shiftK/ with ``--augment K``, beside
the backpropagation references trained with ``--augment-shift K``.

Run:  .venv/bin/python experiments/depth_table.py [--epochs 2] [--augment K] [--steady-state 10000]
"""
import argparse
import json
import os
from pathlib import Path

import numpy as np

from circuitprop.backends import FastBackend
from circuitprop.backends.fast import steady_state_backend
from circuitprop.io.datasets import load_dataset
from circuitprop.io.files import atomic_write_bytes
from circuitprop.model import Network

ROOT = Path(__file__).resolve().parent / "results" / "depth"
CELLS = ["1H", "1H-2048", "1H-3072", "2H", "3H", "2H+skip", "3H+skip", "2H+skip-drop12", "3H+skip-drop12-23"]
DATASETS = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}


def target_tag(target):
    """Folder suffix of the runs made with run_depth.sh's ``TARGET=target`` (spelled as there): none for its
    default, 0.02 V."""
    return f"_target{target}" if target and target != "0.02" else ""


def read_log(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def steady_state(folder, X, y, batch=500):
    """Accuracy of the model in ``folder`` at its steady state on (X, y), and disagreement with its fixed-sweep
    solve (cached in steady_state.json for this number of images)."""
    cache = folder / "steady_state.json"
    if cache.exists():
        record = json.loads(cache.read_text())
        if record["images"] == len(X):
            return record
    net = Network.load(folder / "model.npz")
    solver = _training_solver(folder)
    sweeps, relaxation = solver["fixed_sweeps"], solver["relaxation"]
    exact = steady_state_backend(net)
    fixed = FastBackend(fixed_sweeps_residual=False, **solver)
    correct = differ = unconverged = 0
    most = 0
    for i in range(0, len(X), batch):
        xb, yb = X[i:i + batch], y[i:i + batch]
        s = exact.solve(net, xb)
        unconverged += int(not s.converged)
        most = max(most, s.iterations)
        p_exact = np.argmax(net.scores(s.outputs), axis=1)
        p_fixed = np.argmax(net.scores(fixed.solve(net, xb).outputs), axis=1)
        correct += int(np.sum(p_exact == yb))
        differ += int(np.sum(p_exact != p_fixed))
    record = {"images": len(X), "accuracy": correct / len(X), "fixed_sweeps": sweeps,
              **({"fixed_sweeps_relaxation": relaxation} if relaxation != 1.0 else {}),
              **({"fixed_sweeps_dtype": solver["dtype"]} if solver["dtype"] != "float32" else {}),
              "predictions_differing_from_fixed_sweeps": differ, "batches_not_converged": unconverged,
              "most_sweeps": most, "solver": f"fast, tol 1e-10 A, float64, relaxation {exact.config.relaxation}"}
    atomic_write_bytes(cache, json.dumps(record, indent=1).encode())
    return record


def _training_solver(folder, checkpoint=None):
    """The fast solver the model in ``folder`` was trained and scored with, as ``FastBackend`` settings: its fixed
    sweeps per phase, over-relaxation factor and floating-point type (read from its checkpoint, ``checkpoint`` or
    ``folder/model.ckpt.npz``)."""
    from circuitprop.learning.checkpoint import read_checkpoint
    settings = read_checkpoint(checkpoint or folder / "model.ckpt.npz")[0]
    return {"fixed_sweeps": int(settings["solver_sweeps"]), "relaxation": float(settings.get("solver_relaxation", 1.0)),
            "dtype": str(settings.get("dtype", "float32"))}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--steady-state", type=int, default=0, metavar="N",
                        help="also score every model at its steady state on the first N test images")
    parser.add_argument("--augment", type=int, default=0, metavar="K",
                        help="the runs trained with AUGMENT=K (random shifts of up to K pixels; e<EPOCHS>_shiftK/)")
    parser.add_argument("--flip", action="store_true",
                        help="the runs trained with FLIP=1 (random mirror images; e<EPOCHS>[_shiftK]_flip/)")
    parser.add_argument("--sweeps", type=int, default=6,
                        help="the deep runs trained with SWEEPS=S sweeps per phase (e<EPOCHS>..._sweepsS/)")
    parser.add_argument("--init", default="none", choices=("none", "amplifier", "balanced"),
                        help="the runs trained with INIT=amplifier or INIT=balanced (--g-init-scaling; "
                             "e<EPOCHS>..._ampinit/ or _balinit/)")
    parser.add_argument("--target", metavar="T",
                        help="the runs trained with TARGET=T (output target voltage in V, as written in the folder "
                             "name; e<EPOCHS>..._targetT/)")
    parser.add_argument("--nudged", type=int, metavar="N",
                        help="the runs trained with NUDGED=N sweeps in the nudged phases (e<EPOCHS>..._nudgedN/)")
    parser.add_argument("--relax", metavar="W",
                        help="the runs trained with RELAX=W (over-relaxation factor, as written in the folder name; "
                             "e<EPOCHS>..._relaxW/)")
    parser.add_argument("--dtype", default="float32", choices=("float32", "float64"),
                        help="the runs trained with DTYPE=float64 (e<EPOCHS>..._float64/)")
    parser.add_argument("--gain", metavar="G",
                        help="the runs trained with GAIN=G (amplifier gain other than 4, as written in the folder "
                             "name; e<EPOCHS>..._gainG/)")
    parser.add_argument("--lr", metavar="IN-HID-OUT",
                        help="the runs trained with rates other than the defaults (LR_IN, LR_HID, LR_OUT as written in "
                             "the folder name, e.g. 3e6-0-3e5; e<EPOCHS>..._lrIN-HID-OUT/)")
    args = parser.parse_args()
    init_tag = "" if args.init == "none" else f"_{args.init[:3]}init"  # as run_depth.sh names the folders
    sweeps_tag = f"_sweeps{args.sweeps}" if args.sweeps != 6 else ""
    target_suffix = target_tag(args.target)
    if not target_suffix:
        args.target = None
    lr_tag = (f"_gain{args.gain}" if args.gain and args.gain != "4" else "") + (f"_lr{args.lr}" if args.lr else "")
    solver_tag = ((f"_nudged{args.nudged}" if args.nudged else "") + (f"_relax{args.relax}" if args.relax else "")
                  + (f"_{args.dtype}" if args.dtype != "float32" else ""))
    # backpropagation has no circuit initialisation, sweeps, circuit rates nor target voltage: its references
    # are told apart by the data settings only
    bp_tag = (f"_shift{args.augment}" if args.augment else "") + ("_flip" if args.flip else "")
    tag = bp_tag + init_tag + sweeps_tag + solver_tag + lr_tag + target_suffix
    folder = ROOT / f"e{args.epochs}{tag}"
    if not folder.is_dir():
        raise SystemExit(f"depth_table.py: no runs in {folder} (the folder run_depth.sh writes for these settings; "
                         f"--target must be spelled as in TARGET=..., e.g. 0.005)")
    bp_folder = ROOT / "backprop" / f"e{args.epochs}"
    rows, curves = [], {}
    for dataset, label in DATASETS.items():
        test = None
        for cell in CELLS:
            runs = sorted(folder.glob(f"{dataset}_{cell}_s*"), key=lambda p: int(p.name.rsplit("_s", 1)[1]))
            runs = [r for r in runs if (r / "model.log.jsonl").exists()]
            if not runs:
                continue
            errors, seconds, seeds, ss = [], [], [], []
            for run in runs:
                log = read_log(run / "model.log.jsonl")
                seeds.append(run.name.rsplit("_s", 1)[1])
                finished = len(log) >= args.epochs and (run / "done").exists()
                errors.append(100 * (1 - log[-1]["test_accuracy"]) if finished else None)
                seconds.extend(h["seconds"] for h in log)
                curves.setdefault((dataset, cell), []).append([100 * (1 - h["test_accuracy"]) for h in log])
                if args.steady_state and finished:
                    if test is None:
                        _, _, Xt, yt = load_dataset(dataset, os.environ.get("CIRCUITPROP_DATA"))
                        test = (Xt[:args.steady_state], yt[:args.steady_state])
                    record = steady_state(run, *test)
                    ss.append(record)
                elif (run / "steady_state.json").exists():
                    ss.append(json.loads((run / "steady_state.json").read_text()))
            bp = [json.loads(p.read_text()) for p in sorted(bp_folder.glob(f"{dataset}_{cell}_s*.json"))
                  if "_val" not in p.stem and p.stem[len(f"{dataset}_{cell}_s"):].lstrip("0123456789") == bp_tag]
            for b in bp:
                curves.setdefault((dataset, cell, "bp"), []).append(
                    [100 * (1 - h["test_accuracy"]) for h in b["history"]])
            done = [e for e in errors if e is not None]
            rows.append({
                "dataset": label, "cell": cell,
                "error": f"{np.mean(done):.2f}" if done else "running",
                "seeds": ", ".join(f"{e:.2f}" if e is not None else "-" for e in errors) + f" (seeds {', '.join(seeds)})",
                "steady": "; ".join(f"{r['predictions_differing_from_fixed_sweeps']} of {r['images']}" for r in ss) or "-",
                "bp": ", ".join(f"{100 * (1 - b['test_accuracy']):.2f}" for b in bp) or "-",
                "seconds": f"{np.mean(seconds):.0f}",
            })
    augmented = (f" Trained on images shifted at random by up to {args.augment} pixel{'s' if args.augment > 1 else ''} "
                 "along each axis (new shifts "
                 "every epoch); the papers compared against do not augment." if args.augment else "")
    if args.init == "amplifier":
        augmented += (" Initial conductances behind each amplified hidden layer divided by the gain squared"
                      " (--g-init-scaling amplifier).")
    elif args.init == "balanced":
        augmented += (" Initial conductances behind each amplified hidden layer scaled so that their amplified load"
                      " is at most that of the layer's inputs (--g-init-scaling balanced).")
    if args.sweeps != 6:
        augmented += f" The deep circuits relaxed with {args.sweeps} sweeps per phase (6 elsewhere); 1H with 4."
    if args.nudged:
        augmented += (f" The nudged phases of the deep circuits relaxed with {args.nudged} sweeps, begun with the"
                      " outputs.")
    if args.relax:
        augmented += f" Every sweep over-relaxed with omega = {args.relax} (--solver-relaxation)."
    if args.dtype != "float32":
        augmented += f" Solved in {args.dtype} (float32 elsewhere)."
    if args.target:
        augmented += f" Output target {args.target} V (0.02 V elsewhere)."
    if args.flip:
        augmented += (" Trained with a random half of the images mirrored left to right (a new half every epoch);"
                      " the papers compared against do not augment.")
    lines = [f"Test error (%) on the 10,000 test images after {args.epochs} epochs: EP with the training's fixed "
             "sweeps per phase, and backpropagation (same topology and clipping activation); the test images, "
             "among the first N, whose class changes when the circuit is solved to its steady state instead; "
             "seconds per training epoch." + augmented, "",
             "| dataset | network | EP test error (%) | each seed | class changed at steady state | backprop | s / epoch |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['dataset']} | {r['cell']} | {r['error']} | {r['seeds']} | {r['steady']} | {r['bp']} | "
              f"{r['seconds']} |" for r in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    atomic_write_bytes(folder / "depth_table.md", text.encode())
    plot(curves, folder / "depth_curves.png", args.epochs)


def plot(curves, path, epochs):
    import matplotlib
    import matplotlib.ticker
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(DATASETS), figsize=(11, 4.2))
    colours = dict(zip(CELLS, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    for ax, (dataset, label) in zip(axes, DATASETS.items()):
        for cell in CELLS:
            for kind, style in (("ep", "-"), ("bp", "--")):
                key = (dataset, cell) if kind == "ep" else (dataset, cell, "bp")
                for i, curve in enumerate(curves.get(key, [])):
                    ax.plot(range(1, len(curve) + 1), curve, style, color=colours[cell], marker="o", ms=3,
                            label=f"{cell} {'EP' if kind == 'ep' else 'backprop'}" if i == 0 else None)
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.yaxis.set_minor_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel("test error (%)")
        ax.set_title(f"{label}: EP (solid) and backpropagation (dashed)")
        ax.grid(True, which="both", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:  # a dataset with no runs yet has an empty panel
            ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
