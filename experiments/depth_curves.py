"""Issue 24: test error against epoch of chosen runs side by side, with reference lines (one figure, one table).

Each run is a folder of ``experiments/run_depth.sh`` (its ``model.log.jsonl`` holds the test accuracy after every
epoch), or the JSON record of a backpropagation reference written by ``experiments/depth_backprop.py`` (drawn
dashed); give it as ``RUN`` or ``RUN=label``.  Writes ``OUTPUT.png`` (test error in % against epoch, the
last ``--zoom`` epochs in a second panel) and ``OUTPUT.md`` (per run: epochs logged, final and best test error,
and the epoch of the best; the best is read off the test set, so it is shown, never chosen).

Run:  .venv/bin/python experiments/depth_curves.py --output experiments/results/depth/fashion_e30 \\
          --line 9.4="issue target" --line 10.29="best DRN" RUN[=label] [RUN[=label] ...]
"""
import argparse
import json
from pathlib import Path

from circuitprop.io.files import atomic_write_bytes


def read_errors(run: Path) -> list:
    """Test error (%) after each logged epoch of ``run``: a run_depth.sh folder or a depth_backprop.py record."""
    if run.suffix == ".json":
        try:
            records = json.loads(run.read_text())["history"]
        except FileNotFoundError:
            raise SystemExit(f"depth_curves.py: {run} does not exist") from None
        except (json.JSONDecodeError, KeyError, TypeError):
            raise SystemExit(f"depth_curves.py: {run} is not a depth_backprop.py record (JSON with a 'history')")
    else:
        log = run / "model.log.jsonl"
        if not log.exists():
            raise SystemExit(f"depth_curves.py: {log} does not exist (not a run_depth.sh run folder?)")
        records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    errors = [100 * (1 - r["test_accuracy"]) for r in records if "test_accuracy" in r]
    if not errors:
        raise SystemExit(f"depth_curves.py: {run} has no epoch with a test accuracy")
    return errors


def parse_pair(text: str):
    head, sep, tail = text.partition("=")
    return head, (tail if sep else None)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", metavar="RUN[=label]",
                        help="a run_depth.sh run folder, or a depth_backprop.py record (.json, drawn dashed)")
    parser.add_argument("--output", required=True, help="path without suffix: OUTPUT.png and OUTPUT.md are written")
    parser.add_argument("--line", action="append", default=[], metavar="ERROR=label",
                        help="a horizontal reference line at this test error (%%), e.g. 9.4=\"issue target\"")
    parser.add_argument("--zoom", type=int, default=10, help="epochs shown in the right-hand panel (0: none)")
    args = parser.parse_args()
    runs = []
    for text in args.runs:
        folder, label = parse_pair(text)
        folder = Path(folder)
        runs.append((label or folder.name, folder, read_errors(folder)))
    lines = []
    for text in args.line:
        value, label = parse_pair(text)
        try:
            lines.append((float(value), label or ""))
        except ValueError:
            raise SystemExit(f"depth_curves.py: --line {text!r}: expected ERROR=label with ERROR a number (%)")

    table = ["| run | folder or record | epochs | final test error (%) | lowest (%) and its epoch |",
             "|---|---|---|---|---|"]
    for label, folder, errors in runs:
        best = min(range(len(errors)), key=errors.__getitem__)
        table.append(f"| {label} | `{folder}` | {len(errors)} | {errors[-1]:.2f} | "
                     f"{errors[best]:.2f} (epoch {best + 1}) |")
    text = "\n".join(table) + "\n"
    output = Path(args.output)  # a name such as fashion_target0.005 has no suffix to replace: append
    png, md = output.parent / f"{output.name}.png", output.parent / f"{output.name}.md"
    output.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(md, text.encode())
    print(text)

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    panels = 2 if args.zoom else 1
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 4.2), squeeze=False)
    longest = max(len(errors) for _, _, errors in runs)
    for k, ax in enumerate(axes[0]):
        first = 1 if k == 0 else max(1, longest - args.zoom + 1)
        for label, run, errors in runs:
            epochs = list(range(first, len(errors) + 1))
            ax.plot(epochs, errors[first - 1:], marker="o" if k else None, markersize=3, label=label,
                    linestyle="--" if run.suffix == ".json" else "-")
        for value, label in lines:
            ax.axhline(value, color="grey", linestyle="--", linewidth=0.8)
            ax.annotate(label, (first, value), textcoords="offset points", xytext=(2, 2), fontsize=8, color="grey")
        if k:
            shown = [e for _, _, errors in runs for e in errors[first - 1:]] + [v for v, _ in lines]
            ax.set_ylim(min(shown) - 0.1, max(shown) + 0.1)
            ax.set_title(f"last {args.zoom} epochs")
        ax.set_xlabel("epoch")
        ax.set_ylabel("test error (%)")
        ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(3, len(runs)), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.06 + 0.04 * ((len(runs) - 1) // 3), 1, 1))
    fig.savefig(png, dpi=120, bbox_inches="tight")
    print(f"wrote {png} and {md}")


if __name__ == "__main__":
    main()
