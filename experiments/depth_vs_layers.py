"""Issue 24: test error against the number of hidden layers, every seed, beside the DRN papers (MNIST or Fashion-MNIST).

Each depth is read from the run folders of ``experiments/run_depth.sh`` that hold its best settings at the
same training budget (10 epochs, no augmentation):

* 1H: ``e10/`` (uniform initialisation, 4 sweeps per phase; the 1H circuit is not helped by the amplifier
  scaling, result in ``e10_ampinit/``);
* 2H+skip, 3H+skip: ``e10_ampinit_sweeps3/`` (``--g-init-scaling amplifier``, 3 sweeps per phase);
* 2H (no skip crossbars): ``e10_ampinit_sweeps8/`` (the same initialisation, 8 sweeps per phase: with 4 the
  trained circuit drifted to where the fixed sweeps no longer gave its steady state, ``e10_ampinit_sweeps4/``);
* 3H (no skip crossbars): ``e10_ampinit_sweeps8/`` (not run: at initialisation no fixed count up to 64 sweeps
  gives the steady state's gradient, ``benchmarks/bench_deep.py``);
* width controls 1H-2048 and 1H-3072 (one hidden layer of 2 x 1024 or 3 x 1024, settings of 1H): ``e10/``,
  drawn at the depth whose neurons they hold; the same with the deep cells' initialisation: ``e10_ampinit/``;
* 2H+skip-drop12 and 3H+skip-drop12-23 (the skip circuits without their hidden-to-hidden crossbars: layers side
  by side): ``e10_ampinit_sweeps3/``; 2H+skip with the 1-2 crossbar frozen (rate 0):
  ``e10_ampinit_sweeps3_lr3e6-0-3e5/``.

``--target T`` reads the runs trained with that output target (``run_depth.sh TARGET=T``: every folder above
with ``_targetT`` appended) and writes ``..._targetT.md/.png``.

It writes ``experiments/results/depth/depth_vs_layers.md`` (``depth_vs_layers_fashion.md`` with ``--dataset
fashion-mnist``; per cell: each seed's final test error, mean and
sample standard deviation, and the backpropagation references of ``experiments/depth_backprop.py``, SGD and
Adam, where they exist) and ``depth_vs_layers.png`` (error against depth, one point per seed, the means joined, and the two
DRN papers' figures).  Only finished runs (a ``done`` marker and the full number of epochs) count.

Run:  .venv/bin/python experiments/depth_vs_layers.py [--epochs 10] [--dataset fashion-mnist] [--target 0.005]
"""
import argparse
import json
from pathlib import Path

import numpy as np

from circuitprop.io.files import atomic_write_bytes
from depth_table import target_tag  # experiments/ is on the path when this script runs

ROOT = Path(__file__).resolve().parent / "results" / "depth"
#: (cell, hidden layers, skip crossbars, folder suffix after e<EPOCHS>)
CELLS = [
    ("1H", 1, None, ""),
    ("2H+skip", 2, True, "_ampinit_sweeps3"),
    ("3H+skip", 3, True, "_ampinit_sweeps3"),
    ("2H", 2, False, "_ampinit_sweeps8"),
    ("3H", 3, False, "_ampinit_sweeps8"),
    # width controls: one hidden layer holding the neurons of 2 or 3 layers of 1024, drawn at that count
    ("1H-2048", 2, "width", ""),
    ("1H-3072", 3, "width", ""),
    # the same with the deep cells' initialisation (output crossbar started A**2 smaller)
    ("1H-2048", 2, "width-ampinit", "_ampinit"),
    ("1H-3072", 3, "width-ampinit", "_ampinit"),
    # the skip circuits without their hidden-to-hidden crossbars (--drop): layers side by side
    ("2H+skip-drop12", 2, "side", "_ampinit_sweeps3"),
    ("3H+skip-drop12-23", 3, "side", "_ampinit_sweeps3"),
    # 2H+skip with its hidden-to-hidden crossbar frozen at its initial conductances (learning rate 0)
    ("2H+skip", 2, "frozen", "_ampinit_sweeps3_lr3e6-0-3e5"),
]
#: Test error (%) of deep resistive networks, 1, 2 and 3 hidden layers of 1024 (issue 24's sources).
PAPERS = {
    "mnist": {"fast DRN (Scellier et al., ICML 2024)": [1.57, 1.48, 1.66],
              "universal DRN (Phys. Rev. Applied 2025)": [1.53, 1.60, 1.77]},
    "fashion-mnist": {"universal DRN (Phys. Rev. Applied 2025)": [10.38, 10.29, 11.23]},
}
LABELS = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}
OUTPUT = {"mnist": "depth_vs_layers", "fashion-mnist": "depth_vs_layers_fashion"}


def finished_errors(folder, cell, epochs, dataset="mnist"):
    """Final test error (%) of every finished seed of ``cell`` in ``folder``: {seed: error}."""
    out = {}
    for run in sorted(folder.glob(f"{dataset}_{cell}_s*")):
        log_path = run / "model.log.jsonl"
        if not (run / "done").exists() or not log_path.exists():
            continue
        log = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
        if len(log) >= epochs:
            out[int(run.name.rsplit("_s", 1)[1])] = 100 * (1 - log[-1]["test_accuracy"])
    return dict(sorted(out.items()))


def steady_state_changes(folder, cell, seeds, dataset="mnist"):
    """Per seed, "k of N": test images whose class changes at the circuit's steady state (depth_table.py
    --steady-state N), or "-" where not computed."""
    out = []
    for seed in seeds:
        path = folder / f"{dataset}_{cell}_s{seed}" / "steady_state.json"
        record = json.loads(path.read_text()) if path.exists() else None
        out.append(f"{record['predictions_differing_from_fixed_sweeps']} of {record['images']}" if record else "-")
    return "; ".join(out)


def backprop_errors(cell, epochs, optimizer_tag="", dataset="mnist"):
    """Final test error (%) of the backpropagation references of ``cell`` trained with the optimizer whose file
    tag is ``optimizer_tag`` ("" for SGD, "_adam" for Adam), no augmentation: {seed: error}."""
    folder = ROOT / "backprop" / f"e{epochs}"
    out = {}
    for path in sorted(folder.glob(f"{dataset}_{cell}_s*.json")):
        rest = path.stem[len(f"{dataset}_{cell}_s"):]
        seed = rest[:len(rest) - len(rest.lstrip("0123456789"))]
        if seed and rest[len(seed):] == optimizer_tag:  # no validation, shift or flip tag
            out[int(seed)] = 100 * (1 - json.loads(path.read_text())["test_accuracy"])
    return out


def against(row, base):
    """Difference of the mean error from ``base``'s (1H, or the skip circuit of the same depth), with Welch's
    two-sided p-value when both have two seeds or more."""
    if base is None or row is base:
        return "-"
    diff = f"{row['mean'] - base['mean']:+.2f}"
    a, b = list(row["errors"].values()), list(base["errors"].values())
    if len(a) < 2 or len(b) < 2:
        return diff
    from scipy.stats import ttest_ind
    p = ttest_ind(a, b, equal_var=False).pvalue
    return f"{diff} (p {'< 0.01' if p < 0.01 else f'= {p:.2f}'})"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--dataset", choices=sorted(LABELS), default="mnist")
    parser.add_argument("--target", help="output target voltage of the runs, V, spelled as run_depth.sh's TARGET= "
                        "(default: the runs at the default 0.02 V)")
    args = parser.parse_args()
    dataset = args.dataset
    tag = target_tag(args.target)
    if not tag:
        args.target = None
    rows = []
    for cell, depth, skip, suffix in CELLS:
        folder = ROOT / f"e{args.epochs}{suffix}{tag}"
        errors = finished_errors(folder, cell, args.epochs, dataset)
        if not errors:
            continue
        values = np.array(list(errors.values()))
        rows.append({"cell": cell, "depth": depth, "skip": skip, "folder": folder.name, "errors": errors,
                     "mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else None,
                     "steady": steady_state_changes(folder, cell, errors, dataset),
                     "bp": backprop_errors(cell, args.epochs, dataset=dataset),
                     "bp_adam": backprop_errors(cell, args.epochs, "_adam", dataset)})
    if not rows:
        raise SystemExit(f"no finished {LABELS[dataset]} run of {args.epochs} epochs in the folders "
                         f"e{args.epochs}*{tag} of {ROOT}")
    target = f"{args.target} V" if args.target else "0.02 V (the default)"
    lines = [f"{LABELS[dataset]} test error (%) on the 10,000 test images after {args.epochs} epochs, every finished seed, "
             f"output target {target} (experiments/depth_vs_layers.py). Standard deviation: sample (n - 1) over "
             "the seeds.", "",
             "1H-2048 and 1H-3072 are width controls: one hidden layer holding the neurons of 2H or 3H (in the "
             "_ampinit folders with the deep cells' initialisation: the output crossbar started A^2 = 16 times "
             "smaller). The -drop cells are the skip circuits without their hidden-to-hidden crossbars (layers side "
             "by side); the 2H+skip row in the _lr3e6-0-3e5 folder has its 1-2 crossbar frozen at its initial "
             "conductances (rate 0).",
             "",
             "Backpropagation reference (experiments/depth_backprop.py, same shape and clipping activation, "
             "squared error): SGD with momentum (step sizes by fan-in) and Adam (step 1e-3, chosen on the "
             "validation split).", "",
             "Against 1H: difference of the means and the two-sided p-value of Welch's t-test over the seeds "
             "(a difference is resolved only if p is small; with 3 seeds a cell it takes about 0.1 point).", "",
             "Class changed at steady state: of the first N test images, those whose class changes when the circuit "
             "is solved to its steady state instead of the training's fixed sweeps (depth_table.py "
             "--steady-state N); many changes mean the figure is the truncated relaxation's, not the circuit's.", "",
             "| network | run folder | each seed | mean | std | against 1H (Welch p) | against the skip circuit of "
             "its depth (Welch p) | class changed at steady state | backprop, SGD | backprop, Adam |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    base = next((r for r in rows if r["cell"] == "1H"), None)
    skip_base = {r["depth"]: r for r in rows if r["skip"] is True}
    for r in rows:
        versus_skip = against(r, skip_base.get(r["depth"])) if r["skip"] not in (True, False, None) else "-"
        seeds = ", ".join(f"{e:.2f}" for e in r["errors"].values()) + f" (seeds {', '.join(map(str, r['errors']))})"
        std = f"{r['std']:.2f}" if r["std"] is not None else "-"
        bp, bp_adam = (", ".join(f"{e:.2f}" for e in r[k].values()) or "-" for k in ("bp", "bp_adam"))
        lines.append(f"| {r['cell']} | {r['folder']} | {seeds} | {r['mean']:.2f} | {std} | {against(r, base)} | "
                     f"{versus_skip} | {r['steady']} | {bp} | {bp_adam} |")
    text = "\n".join(lines) + "\n"
    print(text)
    atomic_write_bytes(ROOT / f"{OUTPUT[dataset]}{tag}.md", text.encode())
    plot(rows, ROOT / f"{OUTPUT[dataset]}{tag}.png", args.epochs, dataset, target)


def plot(rows, path, epochs, dataset="mnist", target="0.02 V (the default)"):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7.2, 6.0))
    one = [r for r in rows if r["depth"] == 1]
    for skip, colour, label in ((True, "C0", "circuitprop EP, skip crossbars"),
                                (False, "C3", "circuitprop EP, no skips"),
                                ("width", "C2", "circuitprop EP, one layer of 1024 x depth"),
                                ("width-ampinit", "C4", "the same, output crossbar started 16x smaller"),
                                ("side", "C1", "skip circuits without hidden-to-hidden crossbars"),
                                ("frozen", "C5", "2H+skip, 1-2 crossbar frozen at its initial values")):
        series = sorted(one + [r for r in rows if r["skip"] == skip], key=lambda r: r["depth"])
        if len(series) < 2:
            continue
        offset = {True: -0.04, False: 0.04, "width": 0.0, "width-ampinit": 0.08, "side": -0.08,
                  "frozen": 0.12}[skip]
        for r in series:
            ax.scatter([r["depth"] + offset] * len(r["errors"]), list(r["errors"].values()), color=colour,
                       s=18, alpha=0.6)
        ax.errorbar([r["depth"] + offset for r in series], [r["mean"] for r in series],
                    yerr=[r["std"] or 0 for r in series], color=colour, marker="o", capsize=3,
                    label=f"{label} (mean, sd; dots: seeds)")
        # the tables' reference (SGD); drawn when it exists beyond the shared one-hidden-layer point
        bp = [(r["depth"] + offset, np.mean(list(r["bp"].values()))) for r in series if r["bp"]]
        if len(bp) > 1 and skip in (True, False):
            ax.plot(*zip(*bp), "--", color=colour, marker="^", mfc="none",
                    label=f"backprop (SGD), same shapes{'' if skip else ', no skips'}")
    for (name, values), style in zip(PAPERS[dataset].items(), (":", "-.")):
        ax.plot([1, 2, 3], values, style, color="0.4", marker="s", ms=4, label=name)
    ax.set_xticks([1, 2, 3])
    ax.set_xlabel("hidden layers of 1024 (width controls: 1024 x that many neurons in one layer)")
    ax.set_ylabel(f"{LABELS[dataset]} test error (%)")
    ax.set_title(f"Error against depth ({epochs} epochs, output target {target.split(' (')[0]}; "
                 "papers: their own budgets)", fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")  # the legend sits below the axes
    plt.close(fig)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
