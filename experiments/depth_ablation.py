"""Issue 24: what each crossbar of a trained deep circuit carries, and what the circuit loses without it.

Run:  .venv/bin/python experiments/depth_ablation.py RUN_FOLDER ... [--images 1000] > table.md

For each run folder of run_depth.sh (model.npz, or the last checkpoint of a run still going) the trained
circuit is solved to its steady state (steady_state_backend: every KCL residual below 1e-10 A) on the first
``--images`` images it was scored on: the validation images (the last 10,000 training images) for a folder of
a ``..._val`` run, else the test images.  Printed, as markdown:

* per hidden layer: the share of neurons at their lower clip (below 1 uV: the diode to ground conducts) and
  the mean node voltage;
* per crossbar: the median conductance, the share of devices above twice g_min (the device floor, the
  smallest conductance in the network), its term in the voltages of the nodes it touches (an unclipped node
  settles at the conductance-weighted mean of what drives it, a sum of one term per crossbar: forward into
  the layer it feeds, backward through the amplifier into the hidden layer it leaves; the script checks that
  the terms add up to the node voltages), and the accuracy when every device of that crossbar is set to
  g_min ("cut": the circuit solved again without what it learnt there).

A crossbar whose cut costs nothing is one the circuit does not use; the hidden-to-hidden crossbars are the
ones depth adds.
"""
import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from depth_crossbar_change import trained_network  # noqa: E402

from circuitprop.backends.fast import steady_state_backend  # noqa: E402
from circuitprop.io.datasets import load_split  # noqa: E402
from circuitprop.model import Network  # noqa: E402
from circuitprop.model.energy import node_conductances  # noqa: E402

VALIDATION = 10000  # run_depth.sh VALIDATION=1: the last 10,000 training images


def scored_images(folder: Path, count: int):
    """The first ``count`` images the run in ``folder`` was scored on, and a phrase saying which."""
    dataset = folder.name.split("_")[0]  # run_depth.sh names folders <dataset>_<cell>_s<seed>
    if folder.parent.name.endswith("_val"):
        X, y = load_split(dataset, "train")
        return X[-VALIDATION:][:count], y[-VALIDATION:][:count], f"first {count} validation images"
    X, y = load_split(dataset, "test", limit=count)
    return X, y, f"first {count} test images"


def solve(network: Network, X):
    """Steady-state node voltages (V) of ``network`` on ``X``, one array per layer."""
    solution = steady_state_backend(network, on_fail="raise").solve(network, X)
    return solution.voltages


def accuracy(network: Network, voltages, y) -> float:
    return float(np.mean(network.scores(voltages[-1]).argmax(axis=1) == y))


def contributions(network: Network, voltages) -> dict:
    """Each crossbar's share of the node voltages it touches, ``{(a, b): (into_b, into_a)}`` (V).

    A node whose diodes carry no current settles at the conductance-weighted mean of what drives it:
    ``V = (sum_in u @ G + c * sum_out fold(V_b @ G.T)) / G_total`` (``node_conductances``), so its voltage is
    the sum of one term per crossbar touching it: ``u @ G / G_total`` from a crossbar entering it, the
    amplifier's fed-back ``c * fold(V_b @ G.T) / G_total`` from a crossbar leaving it.  ``into_a`` is
    ``None`` for crossbars from the inputs.
    """
    arch = network.architecture
    total = node_conductances(network)
    out = {}
    for (a, b), g in network.conductances.items():
        g = np.asarray(g, dtype=np.float64)
        into_b = arch.row_voltages(a, voltages[a]) @ g / total[b]
        into_a = None
        if a > 0:
            into_a = arch.current_gain(a) * arch.fold_rows(a, voltages[b] @ g.T) / total[a]
        out[(a, b)] = (into_b, into_a)
    return out


def unclipped(network: Network, voltages) -> list:
    """Per layer 1..L, the nodes whose diodes carry no current (outputs: all), boolean ``(batch, n)``."""
    masks = []
    for layer, v in enumerate(voltages[1:], start=1):
        if layer <= len(network.architecture.hidden):
            h = network.architecture.hidden[layer - 1]
            masks.append((v > h.v_low + 1e-6) & (v < h.v_high - 1e-6))
        else:
            masks.append(np.ones_like(v, dtype=bool))
    return masks


def mean_abs(values, mask) -> float:
    return float(np.mean(np.abs(values[mask]))) if mask.any() else float("nan")


def report(folder: Path, count: int) -> None:
    network = trained_network(folder)
    network = Network(network.architecture, network.conductances, dtype="float64")
    X, y, which = scored_images(folder, count)
    voltages = solve(network, X)
    g_min = min(float(np.min(g)) for g in network.conductances.values())
    print(f"\n### {folder.parent.name}/{folder.name}\n")
    print(f"Steady state on the {which}: accuracy {100 * accuracy(network, voltages, y):.2f} %; "
          f"g_min {g_min * 1e6:.3g} uS.\n")
    print("| hidden layer | neurons at the lower clip | mean node voltage (mV) |")
    print("|---|---|---|")
    for layer, v in enumerate(voltages[1:-1], start=1):
        print(f"| {layer} | {100 * np.mean(v < 1e-6):.1f} % | {1e3 * np.mean(v):.3f} |")
    parts = contributions(network, voltages)
    masks = unclipped(network, voltages)
    # the decomposition is exact on unclipped nodes: check it before printing it
    for layer, mask in enumerate(masks, start=1):
        total = sum(into_b for (_, b), (into_b, _) in parts.items() if b == layer)
        total = total + sum(into_a for (a, _), (_, into_a) in parts.items() if a == layer)
        gap = np.abs(total - voltages[layer])[mask]
        if gap.size and gap.max() > 1e-6 * max(1e-3, float(np.abs(voltages[layer]).max())):
            raise RuntimeError(f"layer {layer}: the crossbar terms miss the node voltage by {gap.max():.3g} V")
    print("\nMean magnitude of each crossbar's term in the voltage of the unclipped nodes it touches (mV; "
          "forward: the nodes it feeds, backward: the amplified hidden layer it leaves).\n")
    print("| crossbar | shape | median (uS) | devices above 2 g_min | forward (mV) | backward (mV) "
          "| accuracy with it cut |")
    print("|---|---|---|---|---|---|---|")
    for (a, b), g in network.conductances.items():
        into_b, into_a = parts[(a, b)]
        back = "-" if into_a is None else f"{1e3 * mean_abs(into_a, masks[a - 1]):.3g}"
        cut = network.copy()
        cut.conductances[(a, b)][...] = g_min
        print(f"| ({a}, {b}) | {g.shape[0]} x {g.shape[1]} | {np.median(g) * 1e6:.4f} | "
              f"{100 * np.mean(g > 2 * g_min):.1f} % | {1e3 * mean_abs(into_b, masks[b - 1]):.3g} | {back} | "
              f"{100 * accuracy(cut, solve(cut, X), y):.2f} % |", flush=True)

def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--images", type=int, default=1000, help="images solved per circuit (default 1000)")
    args = parser.parse_args()
    if args.images < 1:
        parser.error("--images must be at least 1")
    print("# What each crossbar carries (experiments/depth_ablation.py)")
    for folder in args.folders:
        report(folder, args.images)


if __name__ == "__main__":
    main()
