"""``circuitprop train`` and ``circuitprop eval``."""
from __future__ import annotations

import json
import sys
import tempfile
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..backends import SpiceBackend, get_backend
from ..backends.spice import settling_time
from ..config import CONFIGS, FLAT, TrainingConfig
from ..io.datasets import load_dataset, load_split
from ..io.progress import progress
from ..io.safety import OutputLock
from ..learning import EPTrainer, TrainingRun
from ..learning.diagnostics import DeadNetworkWarning
from ..model import Network, parse_layers
from ..model.energy import static_power
from ..netlist import DIALECTS, SUFFIXES, write_netlist
from ..studies.plots import FORMATS, plot_training_curve
from . import argtypes as A
from .options import add_group, add_off_alias, add_setting, collect, examples, paragraph

GROUP_TITLES = {"circuit": "circuit", "neuron": "neurons", "ep": "equilibrium propagation", "optimizer": "optimizer",
                "devices": "devices", "solver": "solver"}


def image_size(text):
    """Side of the (downsampled) square images: a divisor of 28."""
    value = A.positive_int(text)
    if 28 % value:
        raise A.argparse.ArgumentTypeError(f"{value}: images are 28x28, so the size must divide 28 "
                                           "(28, 14, 7, 4, 2 or 1)")
    return value


def add_commands(sub, fmt):
    s = sub.add_parser("train", help="train a circuit with equilibrium propagation", formatter_class=fmt,
                       description=paragraph("Train a circuit with equilibrium propagation. Every setting below is "
                                             "declared once in circuitprop.config (unit and range in brackets); init "
                                             "shares the circuit, neuron and device settings."),
                       epilog=examples(
                           "circuitprop train --dataset mnist --epochs 3 --check-spice 200 --export ngspice",
                           "circuitprop train --layers 784-1024-10 --batch-size 4 --solver-sweeps 4 --dtype float32",
                           "circuitprop train --dataset fashion-mnist --noise-sigma 1e-5 --noise-samples 4",
                           "circuitprop train --backend spice --spice-workers 2 --diode 1n4148 --input-gain 30 "
                           "--target 0.8 --lr 300 --g-max 1e-5",
                           "circuitprop train ... --resume                        # continue a stopped run exactly"))
    data = s.add_argument_group("data")
    data.add_argument("--dataset", default="mnist", choices=("mnist", "fashion-mnist", "kmnist"),
                      help="dataset (official IDX files)")
    data.add_argument("--data-dir", help="folder holding <dataset>/<official .gz files> "
                                         "(default: $CIRCUITPROP_DATA or ~/.cache/circuitprop)")
    data.add_argument("--size", type=image_size, default=28, help="downsample images to size x size (28, 14, 7, 4, "
                                                                  "2, 1)")
    data.add_argument("--limit-train", type=A.positive_int, help="use only the first N training images")
    data.add_argument("--limit-test", type=A.positive_int, help="use only the first N test images")
    data.add_argument("--validation", type=A.positive_int, metavar="N",
                      help="hold out the last N training images and score on them instead of the test set, which "
                           "is then not read (for choosing settings)")
    for name, cls in CONFIGS.items():
        add_group(s, cls, GROUP_TITLES[name])
    add_group(s, TrainingConfig, "training")
    add_off_alias(s, "doubled_inputs", "--single-inputs")
    add_off_alias(s, "doubled_outputs", "--single-outputs")
    out = s.add_argument_group("output")
    out.add_argument("-o", "--output", default="out/model.npz", help="trained model file")
    out.add_argument("--checkpoint", help="checkpoint file (default: OUTPUT with .ckpt.npz)")
    out.add_argument("--resume", action="store_true", help="continue from the checkpoint if it exists")
    out.add_argument("--overwrite", action="store_true",
                     help="start afresh even if a checkpoint exists (deletes it and the log)")
    out.add_argument("--log", help="per-epoch metrics, JSON lines (default: OUTPUT with .log.jsonl)")
    out.add_argument("--check-spice", type=A.nonnegative_int, default=0, metavar="N",
                     help="after training, evaluate N test images with ngspice and compare with the fast solver")
    out.add_argument("--figure-format", choices=FORMATS, default="png",
                     help="file format of the training curve (pdf and svg are vector, for papers)")
    out.add_argument("--export", choices=DIALECTS,
                     help="also write the trained network as a netlist in this dialect")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("eval", help="test accuracy of a trained model", formatter_class=fmt,
                       epilog=examples("circuitprop eval out/model.npz",
                                       "circuitprop eval out/model.npz --backend spice --limit 200 --spice-workers 2",
                                       "circuitprop eval out/model.npz --energy --settling 20 --capacitance 1e-12",
                                       "circuitprop eval out/model.npz --wire-resistance 1 --json"))
    s.add_argument("model", help="model file (.npz) written by train")
    s.add_argument("--dataset", default="mnist", choices=("mnist", "fashion-mnist", "kmnist"),
                   help="dataset whose test split is scored")
    s.add_argument("--data-dir", help="folder holding <dataset>/<official .gz files> "
                                      "(default: $CIRCUITPROP_DATA or ~/.cache/circuitprop)")
    s.add_argument("--size", type=image_size, default=None, help="image size (default: from the model's inputs)")
    add_setting(s, "backend")
    s.add_argument("--limit", type=A.positive_int, help="evaluate only the first N test images (use with spice)")
    s.add_argument("--flat", action="store_true", help="spice: simulate the full flat netlist (slow)")
    add_setting(s, "spice_workers")
    add_setting(s, "wire_resistance", default=None,
                help="evaluate the trained conductances in crossbars with this line resistance per cell "
                     "(IR drop; default: the model's own) [ohm]")
    add_setting(s, "wire_layout", default=None, help="physical order of the lines (default: the model's own)")
    s.add_argument("--energy", action="store_true",
                   help="also report the static power (W) dissipated at each image's free-phase operating point")
    s.add_argument("--settling", type=A.nonnegative_int, default=0, metavar="N",
                   help="with --energy: free-phase settling time of the first N images from ngspice transients")
    s.add_argument("--capacitance", type=A.positive, default=1e-12,
                   help="node capacitance to ground for --settling, farads")
    s.add_argument("--json", action="store_true", help="print the result as one JSON object instead of a summary")
    s.add_argument("--settling-tolerance", type=A.positive, default=1e-3,
                   help="a node has settled when it stays within this many volts of its DC value")
    s.set_defaults(func=cmd_eval)


def _paths(output):
    out = Path(output)
    stem = out.with_suffix("")
    return out, Path(f"{stem}.ckpt.npz"), Path(f"{stem}.log.jsonl"), Path(f"{stem}.curve.png")


def prepare_outputs(*paths) -> None:
    """Create the folders of ``paths`` and check that files can be written there, before any work."""
    for path in paths:
        folder = Path(path).parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=folder, prefix=".circuitprop-write-test."):
                pass
        except OSError as exc:
            raise OSError(f"cannot write {path}: {exc.strerror or exc} (folder {folder})") from None
        if Path(path).is_dir():
            raise OSError(f"{path} is a folder; give a file name")


def cmd_train(args):
    out, ckpt, log, png = _paths(args.output)
    png = png.with_suffix("." + args.figure_format)
    ckpt = Path(args.checkpoint) if args.checkpoint else ckpt
    log = Path(args.log) if args.log else log
    settings = collect(args, FLAT)
    trainer = EPTrainer(**settings)  # checks every setting before any file is touched or data loaded
    n_features = parse_layers(trainer.circuit.layers)[0]
    if args.resume and args.overwrite:
        raise ValueError("--resume and --overwrite contradict each other; give one")
    if args.validation and args.limit_test:
        raise ValueError("--limit-test applies to the test set, which --validation does not read; drop one")
    prepare_outputs(out, ckpt, log, png)
    with OutputLock(out):
        if not args.resume and ckpt.exists():
            if not args.overwrite:
                raise ValueError(f"checkpoint {ckpt} exists: use --resume to continue it or --overwrite to "
                                 "start afresh (which deletes it)")
            for stale in (ckpt, log):
                stale.unlink(missing_ok=True)
        elif not args.resume and log.exists():
            log.unlink()  # a log without its checkpoint belongs to no run that can go on
        if args.validation:
            X, y = load_split(args.dataset, "train", args.data_dir, size=args.size, limit=args.limit_train)
            if not args.validation < len(X):
                raise ValueError(f"--validation {args.validation} must be below the {len(X)} training images")
            X, y, Xt, yt = X[:-args.validation], y[:-args.validation], X[-args.validation:], y[-args.validation:]
        else:
            X, y, Xt, yt = load_dataset(args.dataset, args.data_dir, size=args.size, limit_train=args.limit_train,
                                        limit_test=args.limit_test)
        scored = f"validation: the last {len(Xt)} training images" if args.validation else f"{len(Xt)} test images"
        if n_features != X.shape[1]:
            raise ValueError(f"--layers starts with {n_features} features but {args.size}x{args.size} images "
                             f"have {X.shape[1]}; use --layers {X.shape[1]}-...")
        epochs = trainer.epochs
        print(f"training {trainer.circuit.layers} on {args.dataset} ({X.shape[0]} images, {args.size}x{args.size}), "
              f"backend={trainer.solver.backend}, {epochs} epoch{'s' if epochs != 1 else ''}, scored on {scored}",
              flush=True)
        with warnings.catch_warnings():
            warnings.simplefilter("always", DeadNetworkWarning)
            warnings.showwarning = _show_warning
            TrainingRun(trainer, checkpoint=ckpt, log=log, resume=args.resume).fit(X, y, eval_set=(Xt, yt))
        trainer.network_.save(out)
        acc = trainer.score(Xt, yt)
        print(f"{'validation' if args.validation else 'test'} accuracy ({trainer.solver.backend} backend, "
              f"{scored}): {acc * 100:.2f} %")
        print(f"wrote model {out}, checkpoint {ckpt}, log {log}")
        if trainer.history_:
            plot_training_curve(trainer.history_, png, title=curve_title(trainer, args.dataset))
            print(f"wrote training curve {png}")
        if args.check_spice:
            _check_spice(trainer, Xt[:args.check_spice], yt[:args.check_spice])
        if args.export:
            path = write_netlist(trainer.network_, out.with_suffix(SUFFIXES[args.export]), args.export,
                                 input_parameters=True)
            print(f"wrote {args.export} netlist {path} (inputs as parameters x_0..x_{n_features - 1})")


def curve_title(trainer, dataset: str) -> str:
    """What a training curve shows: circuit, data, neurons, devices, backend."""
    net = trainer.network_
    nodes = "-".join(str(n) for n in net.layer_sizes)
    diode = trainer.neuron.diode
    device = trainer.devices.device if isinstance(trainer.devices.device, str) else (
        "custom" if trainer.devices.device is not None else "ideal")
    extras = [f"{diode} diodes", f"{device} devices", f"{trainer.solver.backend} solver"]
    if net.architecture.wire_resistance:
        extras.append(f"{net.architecture.wire_resistance:g} ohm/cell wires")
    return f"{trainer.circuit.layers} ({nodes} nodes) on {dataset}\n" + ", ".join(extras)


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"warning: {message}", file=sys.stderr, flush=True)


def _check_spice(trainer, X, y):
    net = trainer.network_
    fast_scores = trainer.decision_function(X)
    spice = SpiceBackend(fold_inputs=True, workers=trainer.solver.spice_workers)
    spice_scores = np.concatenate([net.scores(spice.solve(net, X[i:i + 50]).outputs) for i in range(0, len(X), 50)])
    agree = np.mean(np.argmax(fast_scores, 1) == np.argmax(spice_scores, 1))
    acc = np.mean(np.argmax(spice_scores, 1) == y)
    diff = np.max(np.abs(fast_scores - spice_scores))
    print(f"ngspice check on {len(X)} test images: accuracy {acc * 100:.2f} %, same prediction as the fast "
          f"solver on {agree * 100:.1f} %, largest score difference {diff * 1e3:.2f} mV "
          f"({'near-ideal diodes in SPICE' if net.architecture.diode.kind == 'ideal' else 'same diodes'})")


def cmd_eval(args):
    # options that would do nothing in this combination are refused, not ignored
    if args.settling and not args.energy:
        raise ValueError("--settling measures the settling time beside the static power: give --energy with it")
    if (args.capacitance != 1e-12 or args.settling_tolerance != 1e-3) and not args.settling:
        raise ValueError("--capacitance and --settling-tolerance apply to --settling N (with --energy)")
    if args.backend == "fast" and (args.flat or args.spice_workers != 1):
        raise ValueError("--flat and --spice-workers apply to --backend spice")
    net = Network.load(args.model)
    if args.wire_resistance is not None or args.wire_layout is not None:
        arch = net.architecture
        arch = replace(arch, wire_resistance=arch.wire_resistance if args.wire_resistance is None else args.wire_resistance,
                       wire_layout=args.wire_layout or arch.wire_layout)
        net = Network(arch, net.conductances)
    size = args.size or int(round(np.sqrt(net.architecture.n_features)))
    if size * size != net.architecture.n_features:
        raise ValueError(f"{args.model} has {net.architecture.n_features} input features, not "
                         f"{size}x{size} images")
    Xt, yt = load_split(args.dataset, "test", args.data_dir, size=size, limit=args.limit)
    options = {"fold_inputs": not args.flat, "workers": args.spice_workers} if args.backend == "spice" else {}
    backend = get_backend(args.backend, **options)
    chunk = 50 if args.backend == "spice" else 1000
    scores, power = [], []
    starts = range(0, len(Xt), chunk)
    for i in progress(starts, total=len(starts), desc=f"{args.backend}: {len(Xt):,} images in chunks of {chunk}"):
        solution = backend.solve(net, Xt[i:i + chunk])
        scores.append(net.scores(solution.outputs))
        if args.energy:
            power.append(static_power(net, solution.voltages)["total"])
    scores = np.concatenate(scores)
    acc = float(np.mean(np.argmax(scores, 1) == yt))
    result = {"model": str(args.model), "backend": args.backend, "images": int(len(Xt)), "accuracy": acc,
              "wire_resistance_ohm": net.architecture.wire_resistance, "wire_layout": net.architecture.wire_layout}
    if args.energy:
        power = np.concatenate(power)
        result.update(static_power_W_mean=float(power.mean()), static_power_W_min=float(power.min()),
                      static_power_W_max=float(power.max()))
        if args.settling:
            times, transient = settling_time(net, Xt[:args.settling], args.capacitance, args.settling_tolerance,
                                             energy=True)
            energy = times * power[:len(times)]
            result.update(capacitance_F=args.capacitance, settling_images=int(len(times)),
                          settling_time_s_mean=float(times.mean()), settling_time_s_max=float(times.max()),
                          static_power_x_settling_J_mean=float(energy.mean()),
                          transient_energy_J_mean=float(transient.mean()),
                          transient_energy_J_max=float(transient.max()))
    if args.json:
        print(json.dumps(result))
        return
    print(f"{args.model}: accuracy {acc * 100:.2f} % on {len(Xt)} {args.dataset} test images "
          f"({args.backend} backend{', wire resistance %g ohm per cell (%s)' % (net.architecture.wire_resistance, net.architecture.wire_layout) if net.architecture.wire_resistance else ''})")
    if args.energy:
        print(f"static power per inference: mean {result['static_power_W_mean'] * 1e3:.4g} mW "
              f"(min {result['static_power_W_min'] * 1e3:.4g}, max {result['static_power_W_max'] * 1e3:.4g})")
    if args.settling:
        print(f"settling to {args.settling_tolerance:g} V with {args.capacitance:g} F per node ({result['settling_images']} "
              f"images): mean {result['settling_time_s_mean'] * 1e9:.4g} ns, max {result['settling_time_s_max'] * 1e9:.4g} ns; "
              f"energy per inference: static x settling {result['static_power_x_settling_J_mean'] * 1e12:.4g} pJ, "
              f"transient {result['transient_energy_J_mean'] * 1e12:.4g} pJ (max "
              f"{result['transient_energy_J_max'] * 1e12:.4g} pJ)")
