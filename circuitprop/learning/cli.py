"""``circuitprop train`` and ``circuitprop eval``."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .. import argtypes as A


def image_size(text):
    """Side of the (downsampled) square images: a divisor of 28."""
    value = A.positive_int(text)
    if 28 % value:
        raise A.argparse.ArgumentTypeError(f"{value}: images are 28x28, so the size must divide 28 "
                                           "(28, 14, 7, 4, 2 or 1)")
    return value


def add_commands(sub, fmt):
    s = sub.add_parser("train", help="train a circuit with equilibrium propagation", formatter_class=fmt)
    s.add_argument("--dataset", default="mnist", choices=("mnist", "fashion-mnist", "kmnist"))
    s.add_argument("--data-dir", help="folder holding <dataset>/<official .gz files> "
                                      "(default: $CIRCUITPROP_DATA or ~/.cache/circuitprop)")
    s.add_argument("--size", type=image_size, default=28, help="downsample images to size x size (28, 14, 7, 4, 2, 1)")
    s.add_argument("--layers", default="784-100-10", help="features-hidden...-classes (features = size*size)")
    s.add_argument("--backend", choices=("fast", "spice"), default="fast", help="solver of every phase")
    s.add_argument("--beta", type=A.positive, default=1e-6, help="nudging strength, siemens")
    s.add_argument("--estimator", choices=("centered", "one-sided", "random-sign"), default="centered")
    s.add_argument("--rule", choices=("dv2", "sign"), default="dv2", help="local learning rule")
    s.add_argument("--lr", type=A.positive, nargs="+", default=[3e5],
                   help="learning rate (normalised units), or one per crossbar")
    s.add_argument("--lr-decay", type=A.positive, default=1.0, help="learning rate of epoch e is lr * lr_decay**e")
    s.add_argument("--lr-schedule", choices=["exponential", "cosine"], default="cosine",
                   help="exponential: lr * lr_decay**epoch; cosine: from lr to 0 over the run, every batch")
    s.add_argument("--momentum", type=A.real(0.0, 1.0, open_maximum=True), default=0.5, help="heavy-ball momentum in [0, 1)")
    s.add_argument("--sign-sgd", action="store_true", help="step by the sign of the gradient estimate")
    s.add_argument("--noise-sigma", type=A.nonnegative, default=0.0,
                   help="measurement noise: standard deviation of each node-voltage measurement, volts")
    s.add_argument("--noise-samples", type=A.positive_int, default=1, help="measurements per phase averaged by the rule")
    s.add_argument("--epochs", type=A.positive_int, default=3)
    s.add_argument("--batch-size", type=A.positive_int, default=16)
    s.add_argument("--limit-train", type=A.positive_int, help="use only the first N training images")
    s.add_argument("--limit-test", type=A.positive_int, help="use only the first N test images")
    s.add_argument("--amplifier-gain", type=A.real(0.0, 1e6), default=4.0, help="bidirectional amplifier gain (0: none)")
    s.add_argument("--diode", choices=("ideal", "shockley"), default="ideal",
                   help="neuron diodes: ideal (exact clip) or circuitprop's generic Shockley diode")
    s.add_argument("--diode-model", choices=("1n4148", "generic"),
                   help="real diodes from a model card instead of --diode; the biases are moved in by the "
                        "forward voltage at 1 uA so that the neuron still clips near [0, 1] V")
    s.add_argument("--spice-ideal-n", type=A.positive, default=0.001,
                   help="emission coefficient of the near-ideal SPICE diode that stands for an ideal diode")
    s.add_argument("--g-min", type=A.positive, default=1e-8, help="device conductance range, siemens")
    s.add_argument("--g-max", type=A.positive, default=1e-4, help="device conductance range, siemens")
    s.add_argument("--target", type=A.finite, default=0.02, help="score asked of the correct class, volts")
    s.add_argument("--input-gain", type=A.real(0.0, 1e6, open_minimum=True), default=1.0,
                   help="volts per unit of input feature (pixel values are in [0, 1])")
    s.add_argument("--no-bias-input", action="store_true", help="no bias input nodes (+1 V and -1 V)")
    s.add_argument("--solver-sweeps", type=A.positive_int, default=None,
                   help="fast backend: exactly this many relaxation sweeps per phase (published EP code uses 4); "
                        "default: relax to the KCL tolerance")
    s.add_argument("--spice-workers", type=A.integer(1, 64), default=1, metavar="N",
                   help="spice backend: ngspice processes solving each batch in parallel (use the cores you have)")
    s.add_argument("--device", default="ideal", choices=("ideal", "reram", "pcm", "ecram"),
                   help="device non-idealities of the conductances (presets of circuitprop.learning.devices)")
    s.add_argument("--wire-resistance", type=A.nonnegative, default=0.0, metavar="OHMS",
                   help="word- and bit-line resistance per crossbar cell, ohms: every phase solved with IR drop "
                        "and the rule fed the drop across each cell (0: ideal wires; slow, for small circuits)")
    s.add_argument("--wire-layout", choices=("interleaved", "node-order"), default="interleaved",
                   help="physical order of the lines: differential pairs side by side, or node order")
    s.add_argument("--dtype", choices=("float64", "float32"), default="float64",
                   help="floating-point type of conductances, solver and update (fast backend)")
    s.add_argument("--seed", type=A.nonnegative_int, default=0)
    s.add_argument("-o", "--output", default="out/model.npz", help="trained model file")
    s.add_argument("--checkpoint", help="checkpoint file (default: OUTPUT with .ckpt.npz)")
    s.add_argument("--resume", action="store_true", help="continue from the checkpoint if it exists")
    s.add_argument("--overwrite", action="store_true",
                   help="start afresh even if a checkpoint exists (deletes it and the log)")
    s.add_argument("--log", help="per-epoch metrics, JSON lines (default: OUTPUT with .log.jsonl)")
    s.add_argument("--check-spice", type=A.nonnegative_int, default=0, metavar="N",
                   help="after training, evaluate N test images with ngspice and compare with the fast solver")
    s.add_argument("--export", choices=("ngspice", "xyce", "ltspice", "spectre"),
                   help="also write the trained network as a netlist in this dialect")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("eval", help="test accuracy of a trained model", formatter_class=fmt)
    s.add_argument("model", help="model file (.npz) written by train")
    s.add_argument("--dataset", default="mnist", choices=("mnist", "fashion-mnist", "kmnist"))
    s.add_argument("--data-dir")
    s.add_argument("--size", type=image_size, default=None, help="image size (default: from the model's inputs)")
    s.add_argument("--backend", choices=("fast", "spice"), default="fast")
    s.add_argument("--limit", type=A.positive_int, help="evaluate only the first N test images (use with spice)")
    s.add_argument("--flat", action="store_true", help="spice: simulate the full flat netlist (slow)")
    s.add_argument("--spice-workers", type=A.integer(1, 64), default=1, metavar="N",
                   help="spice: ngspice processes solving each chunk of images in parallel")
    s.add_argument("--wire-resistance", type=A.nonnegative, default=None, metavar="OHMS",
                   help="evaluate the trained conductances in crossbars with this line resistance per cell, "
                        "ohms (IR drop; default: the model's own)")
    s.add_argument("--wire-layout", choices=("interleaved", "node-order"), default=None,
                   help="physical order of the lines (default: the model's own)")
    s.add_argument("--energy", action="store_true",
                   help="also report the static power (W) dissipated at each image's free-phase operating point")
    s.add_argument("--settling", type=A.nonnegative_int, default=0, metavar="N",
                   help="with --energy: free-phase settling time of the first N images from ngspice transients")
    s.add_argument("--capacitance", type=A.positive, default=1e-12,
                   help="node capacitance to ground for --settling, farads")
    s.add_argument("--settling-tolerance", type=A.positive, default=1e-3,
                   help="a node has settled when it stays within this many volts of its DC value")
    s.set_defaults(func=cmd_eval)


def _paths(output):
    out = Path(output)
    stem = out.with_suffix("")
    return out, Path(f"{stem}.ckpt.npz"), Path(f"{stem}.log.jsonl"), Path(f"{stem}.curve.png")


def prepare_outputs(*paths) -> None:
    """Create the folders of ``paths`` and check that files can be written there, before any work."""
    import tempfile
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
    from ..datasets import load_dataset
    from ..netlist import SUFFIXES, write_netlist
    from ..network import parse_layers
    from ..plots import plot_training_curve
    from ..safety import OutputLock
    from .trainer import EPTrainer
    out, ckpt, log, png = _paths(args.output)
    ckpt = Path(args.checkpoint) if args.checkpoint else ckpt
    log = Path(args.log) if args.log else log
    n_features = parse_layers(args.layers)[0]
    if args.resume and args.overwrite:
        raise ValueError("--resume and --overwrite contradict each other; give one")
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
        X, y, Xt, yt = load_dataset(args.dataset, args.data_dir, size=args.size, limit_train=args.limit_train,
                                    limit_test=args.limit_test)
        if n_features != X.shape[1]:
            raise ValueError(f"--layers starts with {n_features} features but {args.size}x{args.size} images "
                             f"have {X.shape[1]}; use --layers {X.shape[1]}-...")
        lr = args.lr[0] if len(args.lr) == 1 else list(args.lr)
        trainer = EPTrainer(layers=args.layers, backend=args.backend, beta=args.beta, estimator=args.estimator,
                            rule=args.rule, learning_rate=lr, lr_decay=args.lr_decay, lr_schedule=args.lr_schedule,
                            momentum=args.momentum, sign_sgd=args.sign_sgd,
                            noise_sigma=args.noise_sigma, noise_samples=args.noise_samples, epochs=args.epochs,
                            batch_size=args.batch_size, g_min=args.g_min, g_max=args.g_max, target=args.target,
                            diode=args.diode_model or args.diode, spice_ideal_n=args.spice_ideal_n,
                            amplifier_gain=args.amplifier_gain or None,
                            bias_input=not args.no_bias_input, input_gain=args.input_gain, dtype=args.dtype,
                            solver_sweeps=args.solver_sweeps, device=args.device,
                            wire_resistance=args.wire_resistance, wire_layout=args.wire_layout,
                            spice_workers=args.spice_workers, seed=args.seed)
        print(f"training {args.layers} on {args.dataset} ({X.shape[0]} images, {args.size}x{args.size}), "
              f"backend={args.backend}, {args.epochs} epochs", flush=True)
        import warnings

        from .diagnostics import DeadNetworkWarning
        with warnings.catch_warnings():
            warnings.simplefilter("always", DeadNetworkWarning)
            warnings.showwarning = _show_warning
            trainer.fit(X, y, Xt, yt, checkpoint=ckpt, resume=args.resume, log=log)
        trainer.network_.save(out)
        acc = trainer.score(Xt, yt)
        print(f"test accuracy ({args.backend} backend, {Xt.shape[0]} images): {acc * 100:.2f} %")
        print(f"wrote model {out}, checkpoint {ckpt}, log {log}")
        if trainer.history_:
            plot_training_curve(trainer.history_, png, title=f"{args.layers} on {args.dataset}")
            print(f"wrote training curve {png}")
        if args.check_spice:
            _check_spice(trainer, Xt[:args.check_spice], yt[:args.check_spice])
        if args.export:
            path = write_netlist(trainer.network_, out.with_suffix(SUFFIXES[args.export]), args.export,
                                 input_parameters=True)
            print(f"wrote {args.export} netlist {path} (inputs as parameters x_0..x_{n_features - 1})")


def _show_warning(message, category, filename, lineno, file=None, line=None):
    import sys
    print(f"warning: {message}", file=sys.stderr, flush=True)


def _check_spice(trainer, X, y):
    from ..backends.spice import SpiceBackend
    net = trainer.network_
    fast_scores = trainer.decision_function(X)
    spice = SpiceBackend(fold_inputs=True, workers=trainer.spice_workers)
    spice_scores = np.concatenate([net.scores(spice.solve(net, X[i:i + 50]).outputs) for i in range(0, len(X), 50)])
    agree = np.mean(np.argmax(fast_scores, 1) == np.argmax(spice_scores, 1))
    acc = np.mean(np.argmax(spice_scores, 1) == y)
    diff = np.max(np.abs(fast_scores - spice_scores))
    print(f"ngspice check on {len(X)} test images: accuracy {acc * 100:.2f} %, same prediction as the fast "
          f"solver on {agree * 100:.1f} %, largest score difference {diff * 1e3:.2f} mV "
          f"({'near-ideal diodes in SPICE' if net.architecture.diode.kind == 'ideal' else 'same diodes'})")


def cmd_eval(args):
    from ..backends import get_backend
    from ..datasets import load_split
    from ..network import Network
    net = Network.load(args.model)
    if args.wire_resistance is not None or args.wire_layout is not None:
        from dataclasses import replace
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
    for i in range(0, len(Xt), chunk):
        solution = backend.solve(net, Xt[i:i + chunk])
        scores.append(net.scores(solution.outputs))
        if args.energy:
            from ..energy import static_power
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
            from ..backends.spice import settling_time
            times, transient = settling_time(net, Xt[:args.settling], args.capacitance, args.settling_tolerance,
                                             energy=True)
            energy = times * power[:len(times)]
            result.update(capacitance_F=args.capacitance, settling_images=int(len(times)),
                          settling_time_s_mean=float(times.mean()), settling_time_s_max=float(times.max()),
                          static_power_x_settling_J_mean=float(energy.mean()),
                          transient_energy_J_mean=float(transient.mean()),
                          transient_energy_J_max=float(transient.max()))
    print(json.dumps(result))
