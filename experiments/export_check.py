"""Result 4 of the trainer issue: a trained network, exported, evaluated by ngspice.

The model is written as a flat ngspice netlist with its inputs left as parameters (what `circuitprop
export` writes, stored under netlists/). That file is read back through circuitprop's safe reader,
loaded into ngspice once, and for each test image the input sources are set with `alter` and `op` is
run on the full flat circuit (every input resistor present, no folding). Predictions are compared with
the fast solver's. Two images are also run through the `ngspice -b` program on a netlist file with
numeric inputs, as an independent check of the shared-library path.

Run:  .venv/bin/python experiments/export_check.py MODEL.npz [--images 200]
Writes experiments/results/export_check.json.
"""
import argparse
import json
import os
import re
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from circuitprop.backends import FastBackend
from circuitprop.backends.spice import NgSpiceSession
from circuitprop.datasets import load_dataset
from circuitprop.netlist import read_netlist, render, write_netlist
from circuitprop.network import Network, atomic_write_bytes


def ngspice_batch(path):
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "out.raw"
        subprocess.run(["ngspice", "-b", "-r", str(raw), str(path)], check=True, capture_output=True,
                       env=dict(os.environ, SPICE_ASCIIRAWFILE="1"), timeout=600)
        lines = raw.read_text().splitlines()
    names, values, mode = [], [], None
    for line in lines:
        if line.startswith(("Variables:", "Values:")):
            mode = line[:-1]
            continue
        if mode == "Variables":
            names.append(line.split()[1])
        elif mode == "Values":
            values.append(float(line.split()[-1]))
    return {re.sub(r"^v\((.*)\)$", r"\1", n): v for n, v in zip(names, values)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--netlist", default="netlists/mnist-784-100-10.cir")
    parser.add_argument("--output", default="experiments/results/export_check.json")
    args = parser.parse_args()
    net = Network.load(args.model)
    size = int(round(np.sqrt(net.architecture.n_features)))
    _, _, Xt, yt = load_dataset("mnist", args.data_dir, size=size, limit_train=1, limit_test=args.images)
    fast_scores = net.scores(FastBackend().solve(net, Xt).outputs)

    path = write_netlist(net, args.netlist, "ngspice", input_parameters=True)
    circuit = read_netlist(path)  # the exported file, through the safe reader
    session = NgSpiceSession.get()
    session.load(render(circuit, "ngspice", analysis=False), key=("export-check", str(path)))
    k = net.architecture.n_classes
    out_names = [f"n{len(net.layer_sizes) - 1}_{j}" for j in range(net.layer_sizes[-1])]
    spice_scores = np.empty_like(fast_scores)
    t0 = time.perf_counter()
    for s in range(len(Xt)):
        for i, v in enumerate(net.input_voltages(Xt[s:s + 1])[0]):
            session.alter(f"vin{i}", v)
        plot = session.op(what=f"test image {s}")
        v = session.vectors(plot, out_names)
        session.command("destroy all", check=False)
        spice_scores[s] = v[:k] - v[k:] if net.architecture.doubled_outputs else v
        if s % 20 == 0:
            print(f"{s}/{len(Xt)} images, {time.perf_counter() - t0:.0f} s", flush=True)
    seconds = time.perf_counter() - t0
    session.loaded = None

    batch_check = []
    with tempfile.TemporaryDirectory() as tmp:
        for s in range(2):
            numeric = write_netlist(net, Path(tmp) / f"img{s}.cir", "ngspice", inputs=Xt[s])
            volts = ngspice_batch(numeric)
            v = np.array([volts[n] for n in out_names])
            sc = v[:k] - v[k:] if net.architecture.doubled_outputs else v
            batch_check.append(float(np.max(np.abs(sc - spice_scores[s]))))

    same = float(np.mean(np.argmax(fast_scores, 1) == np.argmax(spice_scores, 1)))
    result = {"model": args.model, "netlist": str(path), "images": len(Xt), "same_prediction": same,
              "accuracy_fast": float(np.mean(np.argmax(fast_scores, 1) == yt)),
              "accuracy_ngspice": float(np.mean(np.argmax(spice_scores, 1) == yt)),
              "max_score_difference_V": float(np.max(np.abs(fast_scores - spice_scores))),
              "ngspice_batch_program_vs_shared_library_V": batch_check,
              "ngspice_seconds_per_image": seconds / len(Xt),
              "diode": net.architecture.diode.kind}
    atomic_write_bytes(args.output, json.dumps(result, indent=2).encode())
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
