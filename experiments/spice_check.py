"""A trained network of any topology checked in ngspice, resumably: the README main command's check.

The check of ``circuitprop train --check-spice N`` (the Norton-folded circuit: each input crossbar replaced
by its exact Norton equivalent, solved by ngspice in DC sweeps of ``--chunk`` images, near-ideal SPICE diodes
for ideal ones), on the first ``--images`` test images, compared image by image with the fast solver:

* at its steady state (every KCL residual below 1e-10 A, float64), the circuit ngspice simulates;
* with the fixed number of sweeps per phase the network was trained and scored with (``--sweeps``), i.e.
  the test accuracy the training log reports.

Deep networks of 1024-wide layers take about 25 s per image with ngspice 46's KLU solver (ngspice 39's
Sparse 1.3 did not finish one in 25 minutes), so every finished chunk is appended to ``--log`` at once, one JSON line per
image, and a rerun continues where a kill stopped it (images of another model, told apart by the network's
fingerprint, are ignored).  ``--nodeset`` solves each image by an ``op`` whose netlist carries the fast
solver's steady state as ``.nodeset`` (ngspice's Newton iteration starts there and runs to its own
tolerances; the answer is KCL-checked like every other).  ``--export`` also writes the full netlist (every resistor present) in the ngspice
dialect and records its size and SHA-256.

Run:  .venv/bin/python experiments/spice_check.py MODEL.npz --dataset mnist [--images 200] [--chunk 10]
          [--sweeps 6] [--nodeset] [--reverse] [--ideal-n N] [--only I ...] [--log LOG.jsonl]
          [--output RESULT.json] [--export NETLIST.cir]

The summary lists every image whose class differs from the steady state's, with the steady state's margin
between its two highest class scores: the near-ideal SPICE diode conducts about ``N*V_T*ln(I/IS)`` (0.5 mV
at N = 0.001) beyond the ideal clip, so a near tie can flip.  ``--ideal-n`` simulates a sharper diode
(its own default log and summary, ``MODEL.spice-nN.*``); ``--only I ...`` checks just the images named, e.g.
the near ties of a finished check again with a sharper diode (summary ``MODEL.spice[-nN].onlyI-J.json``, so the
summary of all images stays).
"""
import argparse
import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np

from circuitprop.backends import FastBackend
from circuitprop.backends.fast import steady_state_backend
from circuitprop.backends.spice import NgSpiceSession, SpiceBackend
from circuitprop.backends.spice.backend import check_solution, simulated_network
from circuitprop.backends.spice.ngspice import SpiceOptions
from circuitprop.netlist.circuit import build_circuit, node
from circuitprop.netlist.writers import render
from circuitprop.io.datasets import load_dataset
from circuitprop.io.files import atomic_write_bytes
from circuitprop.model import Network
from circuitprop.netlist import write_netlist
from depth_table import _training_solver  # the training's solver settings, from its checkpoint
from export_check import _read_flat_log as read_log  # the same append-only per-image log, by fingerprint


def top2_margin(scores) -> np.ndarray:
    """Per image, the highest class score minus the second highest (volts)."""
    ordered = np.sort(np.asarray(scores), axis=1)
    return ordered[:, -1] - ordered[:, -2]


def nodeset_solve(net, x, start) -> np.ndarray:
    """ngspice operating points of the folded circuit, one image at a time, each netlist carrying the fast
    solver's state ``start`` (list of per-layer voltages) as ``.nodeset``: ngspice's Newton iteration begins
    there instead of at 0 V, then runs to its own tolerances; the result is checked against KCL like every
    ngspice solution.  Returns the output-node voltages (images, outputs)."""
    options = SpiceOptions()
    # Newton starts next to the answer and so stops a step earlier than from 0 V: 100x tighter voltage
    # tolerances keep the KCL accuracy of a cold start (as SpiceBackend's DC sweeps do)
    simulator = options.simulator_options()
    simulator.update(reltol=simulator["reltol"] * SpiceBackend.sweep_tightening,
                     vntol=simulator["vntol"] * SpiceBackend.sweep_tightening)
    session = NgSpiceSession.get()
    sizes = net.layer_sizes
    outputs = []
    for k in range(len(x)):
        circuit = build_circuit(net, inputs=x[k], fold_inputs=True, sense_sources=False)
        text = render(circuit, "ngspice", options=simulator, analysis=False)
        guess = [f"v({node(layer, i)})={start[layer][k, i]:.12g}" for layer in range(1, len(sizes))
                 for i in range(sizes[layer])]
        lines = [".nodeset " + " ".join(guess[j:j + 8]) for j in range(0, len(guess), 8)]
        head, end = text.rsplit(".end", 1)
        session.load(head + "\n".join(lines) + "\n.end" + end, key=None)
        plot = session.op(what=f"image {k} of the chunk (nodeset)")
        names = [node(layer, i) for layer in range(1, len(sizes)) for i in range(sizes[layer])]
        flat = session.vectors(plot, names)
        session.command("destroy all", check=False)
        voltages, at = [net.input_voltages(x[k:k + 1])], 0
        for layer in range(1, len(sizes)):
            voltages.append(flat[None, at:at + sizes[layer]])
            at += sizes[layer]
        check_solution(simulated_network(net), voltages, np.zeros((1, sizes[-1])), options, what="ngspice (nodeset)")
        outputs.append(voltages[-1][0])
    session.loaded = None
    return np.array(outputs)


def chosen_images(n_images, only=None) -> list:
    """The test images to check: all ``n_images``, or those of ``only`` (sorted, once each).

    Raises ``SystemExit`` naming the valid range when ``only`` holds an image outside ``0 .. n_images - 1``.
    """
    if only is None:
        return list(range(n_images))
    outside = [i for i in only if not 0 <= i < n_images]
    if outside:
        raise SystemExit(f"spice_check.py: --only {' '.join(map(str, outside))}: images are numbered 0 to "
                         f"{n_images - 1} (--images {n_images})")
    return sorted(set(only))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--chunk", type=int, default=10, help="images per ngspice DC sweep (and per log write)")
    parser.add_argument("--sweeps", type=int, default=None,
                        help="the fixed sweeps per phase the model was trained with (default: from its checkpoint "
                             "beside it, MODEL.ckpt.npz, which also gives the over-relaxation factor)")
    parser.add_argument("--log", default=None, help="per-image results (default: MODEL.spice.jsonl)")
    parser.add_argument("--output", default=None, help="summary (default: MODEL.spice.json)")
    parser.add_argument("--export", default=None, help="also write the full ngspice netlist here")
    parser.add_argument("--reverse", action="store_true",
                        help="take the images last first: a second process on the same log meets the first halfway "
                             "(run the command once more afterwards for the summary of all images)")
    parser.add_argument("--ideal-n", type=float, default=None,
                        help="emission coefficient of the near-ideal SPICE diode (default: the model's, 0.001)")
    parser.add_argument("--only", type=int, nargs="+", default=None, metavar="I",
                        help="check only these test images (indices below --images), e.g. a near tie again with a "
                             "sharper diode (--ideal-n)")
    parser.add_argument("--nodeset", action="store_true",
                        help="solve each image with an op that starts from the fast solver's steady state "
                             "(.nodeset), not a cold DC sweep: far fewer Newton steps on deep networks")
    args = parser.parse_args()
    model = Path(args.model)
    stem = model.with_suffix("")
    log = Path(args.log or f"{stem}.spice.jsonl")
    output = Path(args.output or f"{stem}.spice.json")
    net = Network.load(model)
    if args.ideal_n is not None:
        from dataclasses import replace
        arch = net.architecture
        net.architecture = replace(arch, diode=replace(arch.diode, spice_ideal_n=args.ideal_n))
        tagged = stem.with_name(f"{stem.name}.spice-n{args.ideal_n:g}")
        log = Path(args.log or f"{tagged}.jsonl")
        output = Path(args.output or f"{tagged}.json")
    sweeps, relaxation, dtype = args.sweeps, 1.0, "float32"
    checkpoint = Path(f"{stem}.ckpt.npz")
    if checkpoint.exists():  # the training's own solver settings
        solver = _training_solver(model.parent, checkpoint)
        relaxation, dtype = solver["relaxation"], solver["dtype"]
        sweeps = solver["fixed_sweeps"] if sweeps is None else sweeps
    elif sweeps is None:
        raise SystemExit(f"spice_check.py: no checkpoint {checkpoint} to read the training's sweeps per phase from; "
                         "give --sweeps")
    size = int(round(np.sqrt(net.architecture.n_features)))
    _, _, Xt, yt = load_dataset(args.dataset, os.environ.get("CIRCUITPROP_DATA"), size=size, limit_train=1,
                                limit_test=args.images)
    fingerprint = net.fingerprint()
    done = read_log(log, fingerprint)
    spice = SpiceBackend(fold_inputs=True)
    exact = steady_state_backend(net, on_fail="raise")
    fixed = FastBackend(fixed_sweeps=sweeps, dtype=dtype, fixed_sweeps_residual=False, relaxation=relaxation)
    wanted = chosen_images(len(Xt), args.only)
    done = {i: r for i, r in done.items() if i in wanted}
    if args.only is not None and args.output is None:  # a summary of some images does not replace that of all
        output = output.with_name(f"{output.name[:-len('.json')]}.only{'-'.join(map(str, wanted))}.json")
    todo = [i for i in wanted if i not in done]
    if args.reverse:  # a second process on the same log works from the other end (the log keeps one line per image)
        todo.reverse()
    how = "one op per image from a .nodeset" if args.nodeset else f"{args.chunk} images per DC sweep"
    print(f"{model}: {len(done)} of {len(wanted)} images already in {log}; ngspice, {how}", flush=True)
    for start in range(0, len(todo), args.chunk):
        images = todo[start:start + args.chunk]
        x = Xt[images]
        steady = exact.solve(net, x)
        t0 = time.perf_counter()
        if args.nodeset:
            spice_scores = net.scores(nodeset_solve(net, x, steady.voltages))
        else:
            spice_scores = net.scores(spice.solve(net, x).outputs)
        seconds = (time.perf_counter() - t0) / len(images)
        exact_scores = net.scores(steady.outputs)
        fixed_scores = net.scores(fixed.solve(net, x).outputs)
        for k, i in enumerate(images):
            done[i] = {"model": fingerprint, "image": i, "label": int(yt[i]),
                       "ngspice_V": spice_scores[k].tolist(), "steady_state_V": exact_scores[k].tolist(),
                       "fixed_sweeps_V": fixed_scores[k].tolist(), "ngspice_seconds": seconds}
        with open(log, "ab", buffering=0) as fh:  # the chunk in one append: no line torn by a second process
            fh.write("".join(json.dumps(done[i]) + "\n" for i in images).encode())
            os.fsync(fh.fileno())
        print(f"images {len(done)}/{len(wanted)}: {seconds:.1f} s per image in ngspice", flush=True)
    order = sorted(done)
    take = lambda key: np.array([done[i][key] for i in order])  # noqa: E731
    labels = np.array([done[i]["label"] for i in order])
    ng, st, fx = take("ngspice_V"), take("steady_state_V"), take("fixed_sweeps_V")
    same = lambda a, b: int(np.sum(np.argmax(a, 1) == np.argmax(b, 1)))  # noqa: E731
    result = {"model": str(model), "dataset": args.dataset, "images": len(order), "method": (
              f"{NgSpiceSession.get().version()} (shared library, KLU), Norton-folded inputs, "
              + ("one op per image from a .nodeset of the fast solver's state" if args.nodeset else "DC sweep per chunk")
              + ", near-ideal diodes "
              f"(N = {net.architecture.diode.spice_ideal_n}); fast solver at steady state (1e-10 A, float64) "
              f"and with {sweeps} fixed sweeps ({dtype}"
              + (f", over-relaxed with omega = {relaxation:g})" if relaxation != 1.0 else ")")),
              "same_class_ngspice_vs_steady_state": same(ng, st),
              "same_class_ngspice_vs_fixed_sweeps": same(ng, fx),
              "accuracy_ngspice": float(np.mean(np.argmax(ng, 1) == labels)),
              "accuracy_steady_state": float(np.mean(np.argmax(st, 1) == labels)),
              "accuracy_fixed_sweeps": float(np.mean(np.argmax(fx, 1) == labels)),
              "max_score_difference_ngspice_vs_steady_state_V": float(np.max(np.abs(ng - st))),
              "max_score_difference_ngspice_vs_fixed_sweeps_V": float(np.max(np.abs(ng - fx))),
              "ngspice_seconds_per_image": float(np.mean([done[i]["ngspice_seconds"] for i in order])),
              "smallest_top2_margin_steady_state_V": float(np.min(top2_margin(st))),
              "changed_images": [{"image": i, "label": int(labels[k]), "ngspice_class": int(np.argmax(ng[k])),
                                  "steady_state_class": int(np.argmax(st[k])),
                                  "steady_state_top2_margin_V": float(top2_margin(st[k:k + 1])[0])}
                                 for k, i in enumerate(order) if np.argmax(ng[k]) != np.argmax(st[k])]}
    if args.export:
        path = write_netlist(net, args.export, "ngspice", input_parameters=True)
        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
        result["netlist"] = {"path": str(path), "bytes": Path(path).stat().st_size, "sha256": digest}
    atomic_write_bytes(output, json.dumps(result, indent=1).encode())
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
