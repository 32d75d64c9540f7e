"""Result 4 of the trainer issue: a trained network, exported, evaluated by ngspice.

Two ngspice evaluations, both compared with the fast solver's predictions:

1. all ``--images`` test images on the Norton-folded circuit (each input crossbar replaced by its exact
   Norton equivalent; what `circuitprop export --fold-inputs --inputs ...` writes per image);
2. the first ``--flat-images`` images on the full flat netlist (every input resistor present) written with
   its inputs as parameters (what `circuitprop export` writes, stored under netlists/), read back through
   circuitprop's safe reader, loaded into ngspice once, inputs set with `alter` for each image. On a trained
   1568-100-20 circuit one flat operating point takes 10-45 s here: ngspice's Newton iteration converges in
   10-25 steps, but every `op` first reorders the sparse matrix (each hidden row holds 1,570 entries), which
   takes about half of the time (`rusage all`: "Matrix reorder time").

Two images are also run through the `ngspice -b` program on a flat netlist file with numeric inputs, as an
independent check of the shared-library path.

Each flat-netlist image is appended to ``--flat-log`` as soon as it is solved, so a killed run resumes
where it stopped (images of another model, told apart by the network fingerprint, are ignored).

Run:  .venv/bin/python experiments/export_check.py MODEL.npz [--images 200] [--flat-images 200]
Writes experiments/results/export_check.json.
"""
import argparse
import json
import os
import tempfile
from dataclasses import replace
import time
from pathlib import Path

import numpy as np

from circuitprop.backends import FastBackend
from circuitprop.backends.spice import NgSpiceSession, SpiceBackend, run_ngspice_batch
from circuitprop.io.datasets import load_dataset
from circuitprop.netlist import read_netlist, render, write_netlist
from circuitprop.io.files import atomic_write_bytes
from circuitprop.model import Network


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--flat-images", type=int, default=8)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--netlist", default="netlists/mnist-784-100-10.cir")
    parser.add_argument("--output", default="experiments/results/export_check.json")
    parser.add_argument("--spice-ideal-n", type=float, default=None,
                        help="emission coefficient of the near-ideal SPICE diode that stands for an ideal one "
                             "(default: the model's own)")
    parser.add_argument("--flat-log", default="experiments/results/export_check.flat.jsonl",
                        help="per-image flat-netlist results, appended as they finish; a rerun on the same "
                             "model resumes from it")
    args = parser.parse_args()
    net = Network.load(args.model)
    if args.spice_ideal_n is not None:
        arch = net.architecture
        net = Network(replace(arch, diode=replace(arch.diode, spice_ideal_n=args.spice_ideal_n)), net.conductances)
    size = int(round(np.sqrt(net.architecture.n_features)))
    _, _, Xt, yt = load_dataset("mnist", args.data_dir, size=size, limit_train=1, limit_test=args.images)
    fast_scores = net.scores(FastBackend().solve(net, Xt).outputs)
    t0 = time.perf_counter()
    folded = SpiceBackend(fold_inputs=True)
    folded_scores = np.concatenate([net.scores(folded.solve(net, Xt[i:i + 50]).outputs)
                                    for i in range(0, len(Xt), 50)])
    folded_seconds = (time.perf_counter() - t0) / len(Xt)
    n_flat = min(args.flat_images, len(Xt))

    path = write_netlist(net, args.netlist, "ngspice", input_parameters=True)
    circuit = read_netlist(path)  # the exported file, through the safe reader
    session = NgSpiceSession.get()
    session.load(render(circuit, "ngspice", analysis=False), key=("export-check", str(path)))
    k = net.architecture.n_classes
    out_names = [f"n{len(net.layer_sizes) - 1}_{j}" for j in range(net.layer_sizes[-1])]
    fingerprint = net.fingerprint()
    done = _read_flat_log(args.flat_log, fingerprint)
    todo = [i for i in range(n_flat) if i not in done]
    if todo:
        print(f"flat netlist: {len(done)} of {n_flat} images already in {args.flat_log}", flush=True)
    t0 = time.perf_counter()
    for count, s in enumerate(todo):
        for i, v in enumerate(net.input_voltages(Xt[s:s + 1])[0]):
            session.alter(f"vin{i}", v)
        t1 = time.perf_counter()
        plot = session.op(what=f"test image {s}")
        v = session.vectors(plot, out_names)
        session.command("destroy all", check=False)
        score = v[:k] - v[k:] if net.architecture.doubled_outputs else v
        done[s] = {"model": fingerprint, "image": s, "scores_V": [float(x) for x in score],
                   "seconds": time.perf_counter() - t1}
        with open(args.flat_log, "a") as fh:  # one whole line per image; a torn last line is ignored on read
            fh.write(json.dumps(done[s]) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        print(f"flat netlist: image {s} ({count + 1}/{len(todo)} this run), "
              f"{time.perf_counter() - t0:.0f} s", flush=True)
    spice_scores = np.array([done[s]["scores_V"] for s in range(n_flat)]).reshape(n_flat, -1)
    seconds = float(sum(done[s]["seconds"] for s in range(n_flat)))
    session.loaded = None

    batch_check = []
    with tempfile.TemporaryDirectory() as tmp:
        for s in range(2):
            numeric = write_netlist(net, Path(tmp) / f"img{s}.cir", "ngspice", inputs=Xt[s])
            volts = run_ngspice_batch(numeric)
            v = np.array([volts[n] for n in out_names])
            sc = v[:k] - v[k:] if net.architecture.doubled_outputs else v
            batch_check.append(float(np.max(np.abs(sc - spice_scores[s]))))

    def same(a, b):
        return float(np.mean(np.argmax(a, 1) == np.argmax(b, 1)))
    result = {"model": args.model, "netlist": str(path), "diode": net.architecture.diode.kind,
              "spice_ideal_n": net.architecture.diode.spice_ideal_n,
              "folded": {"images": len(Xt), "same_prediction_as_fast": same(folded_scores, fast_scores),
                         "accuracy_fast": float(np.mean(np.argmax(fast_scores, 1) == yt)),
                         "accuracy_ngspice": float(np.mean(np.argmax(folded_scores, 1) == yt)),
                         "max_score_difference_V": float(np.max(np.abs(fast_scores - folded_scores))),
                         "ngspice_seconds_per_image": folded_seconds},
              "flat_exported_netlist": {
                  "images": n_flat, "same_prediction_as_fast": same(spice_scores, fast_scores[:n_flat]),
                  "max_score_difference_V": float(np.max(np.abs(fast_scores[:n_flat] - spice_scores))),
                  "max_difference_to_folded_V": float(np.max(np.abs(folded_scores[:n_flat] - spice_scores))),
                  "ngspice_seconds_per_image": seconds / max(n_flat, 1)},
              "ngspice_batch_program_vs_shared_library_V": batch_check}
    atomic_write_bytes(args.output, json.dumps(result, indent=2).encode())
    print(json.dumps(result, indent=2))


def _read_flat_log(path, fingerprint) -> dict:
    """Finished flat-netlist images of this model (by fingerprint) from the append-only log."""
    done = {}
    if not os.path.exists(path):
        return done
    with open(path, "rb+") as fh:  # end a line torn by a kill so the next append starts clean
        size = fh.seek(0, os.SEEK_END)
        if size:
            fh.seek(size - 1)
            if fh.read(1) != b"\n":
                fh.write(b"\n")
    with open(path) as fh:
        for line in fh:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line torn by a kill
            if rec.get("model") == fingerprint:
                done[int(rec["image"])] = rec
    return done


if __name__ == "__main__":
    main()
