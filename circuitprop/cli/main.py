"""The command line: thin wrappers that parse options and call the API.

Run ``circuitprop --help`` or ``circuitprop COMMAND --help``.
"""
from __future__ import annotations

import argparse
import io
import os
import signal
import sys
from pathlib import Path

import numpy as np

from .._version import __version__
from ..backends import ConvergenceError, FastBackend, SpiceBackend, SpiceError, get_backend
from ..backends.spice import SpiceOptions, operating_point, operating_point_isolated
from ..backends.vacask import VacaskError
from ..backends.vacask import operating_point as vacask_operating_point
from ..config import CircuitConfig, DeviceConfig, NeuronConfig, architecture_from, initial_network
from ..declare import declared
from ..errors import NetworkError
from ..io.datasets import load_split
from ..io.files import atomic_write_bytes
from ..io.progress import progress
from ..io.safety import StopOnSignal
from ..model import Network, make_architecture
from ..netlist import DIALECTS, SUFFIXES, NetlistError, build_circuit, read_netlist, write_netlist
from ..studies.plots import FORMATS, plot_accuracy_vs_noise, plot_beta_lr_maps, plot_critical_vs_samples
from ..studies.sweep import SweepError, converged, critical_levels, fit_power_law, load_results, load_spec, run_sweep
from . import argtypes as A
from . import train as train_commands
from .options import HelpFormatter, add_group, add_off_alias, add_setting, collect, examples, paragraph

#: The settings ``init`` takes (those of the circuit, its neurons and its devices, and the seed).
INIT_SETTINGS = (tuple(declared(CircuitConfig)) + tuple(declared(NeuronConfig))
                 + ("g_min", "g_max", "g_init", "g_init_scaling", "seed"))


class CLIError(Exception):
    """A user error: printed as one line, exit status 2."""


def _parse_inputs(text, n_features):
    """Inputs from a comma-separated list, a .npy file or a .csv file (one row per sample)."""
    if text is None:
        return None
    path = Path(text)
    if path.suffix in (".npy", ".csv", ".txt") and path.exists():
        try:
            x = np.load(path) if path.suffix == ".npy" else np.loadtxt(path, delimiter=",", ndmin=2)
        except Exception as exc:
            raise CLIError(f"{path}: cannot read inputs ({exc})") from None
    else:
        try:
            x = np.array([float(v) for v in text.split(",") if v.strip()])
        except ValueError:
            raise CLIError(f"--inputs {text!r}: expected comma-separated numbers or a .npy/.csv file") from None
    x = np.asarray(x)
    if x.dtype.kind not in "fiub":
        raise CLIError(f"--inputs: expected real numbers, got an array of dtype {x.dtype}")
    if x.ndim > 2:
        raise CLIError(f"--inputs: expected one row of features per sample (2-D), got shape {x.shape}")
    x = np.atleast_2d(x.astype(float))
    if x.shape[1] != n_features:
        raise CLIError(f"--inputs: got {x.shape[1]} values per sample, the network has {n_features} features")
    return x


def _load_network(path):
    return Network.load(path)


def cmd_init(args):
    settings = collect(args, INIT_SETTINGS)
    circuit = CircuitConfig(**{k: v for k, v in settings.items() if k in declared(CircuitConfig)})
    neuron = NeuronConfig(**{k: v for k, v in settings.items() if k in declared(NeuronConfig)})
    devices = DeviceConfig(**{k: v for k, v in settings.items() if k in declared(DeviceConfig)})
    arch = architecture_from(circuit, neuron)
    if neuron.diode not in ("ideal", "shockley"):
        print(f"{neuron.diode} diodes: biases {arch.hidden[0].v_low:.4f} V and {arch.hidden[0].v_high:.4f} V "
              f"(forward voltage {arch.diode.forward_voltage(1e-6):.4f} V at 1 uA)" if arch.hidden else
              f"{neuron.diode} diodes")
    net = initial_network(arch, devices, args.seed)
    net.save(args.output)
    print(f"wrote {args.output}: {net!r}")


def cmd_export(args):
    net = _load_network(args.model)
    x = _parse_inputs(args.inputs, net.architecture.n_features)
    if x is not None and x.shape[0] != 1:
        raise CLIError("--inputs: export takes one input vector")
    if args.fold_inputs and x is None:
        raise CLIError("--fold-inputs needs --inputs (the Norton equivalents depend on the input values)")
    out = args.output or Path(args.model).with_suffix(SUFFIXES[args.format])
    write_netlist(net, out, args.format, inputs=None if x is None else x[0],
                  input_parameters=args.inputs is None and not args.zero_inputs, fold_inputs=args.fold_inputs)
    print(f"wrote {out} ({args.format})")


def cmd_op(args):
    path = Path(args.file)
    if not path.exists():
        raise CLIError(f"{path}: no such file")
    out = io.StringIO() if args.output else sys.stdout  # a file is written only once all rows exist
    if path.suffix == ".npz":
        net = _load_network(path)
        x = _parse_inputs(args.inputs, net.architecture.n_features)
        if x is None:
            x = np.zeros((1, net.architecture.n_features))
        options = {"fold_inputs": args.fold_inputs} if args.backend == "spice" else {}
        sol = get_backend(args.backend, **options).solve(net, x)
        names = net.node_names()
        flat = sol.flat()
        out.write("sample,node,voltage_V\n")
        for s in range(flat.shape[0]):
            for name, v in zip(names, flat[s]):
                out.write(f"{s},{name},{v:.12g}\n")
        print(f"# backend={args.backend} max KCL residual {sol.residual:.3g} A", file=sys.stderr)
    else:
        if args.backend != "spice":
            raise CLIError("a netlist can only be solved with --backend spice (the fast solver needs a "
                           "circuitprop model file, .npz)")
        volts = operating_point_isolated(read_netlist(path))  # a child process: an ngspice crash cannot kill us
        out.write("node,voltage_V\n")
        for name, v in volts.items():
            out.write(f"{name},{v:.12g}\n")
    if args.output:
        atomic_write_bytes(args.output, out.getvalue().encode())


def cmd_verify(args):
    """Export the model's circuit for each of the first N test images, solve it in another simulator, and compare
    every node voltage and the predicted class with the fast solver."""
    net = _load_network(args.model)
    size = int(round(np.sqrt(net.architecture.n_features)))
    if size * size != net.architecture.n_features:
        raise CLIError(f"{args.model} has {net.architecture.n_features} input features, not square images")
    X, y = load_split(args.dataset, "test", args.data_dir, size=size, limit=args.images)
    fast = FastBackend(tol=1e-14, max_sweeps=100000).solve(net, X)
    skip = net.layer_sizes[0]  # the input nodes are voltage sources (a folded netlist has none)
    names = net.node_names()[skip:]
    flat = args.flat or net.architecture.wire_resistance > 0
    worst, agree, correct = 0.0, 0, 0
    for i in progress(range(len(X)), total=len(X), desc=f"{args.simulator}: {len(X)} images"):
        circuit = build_circuit(net, X[i], fold_inputs=not flat)
        if args.simulator == "vacask":
            volts = vacask_operating_point(circuit)
        else:
            volts = operating_point(circuit, SpiceOptions.tight())
        simulated = np.array([volts[n] for n in names])
        worst = max(worst, float(np.max(np.abs(simulated - fast.flat()[i, skip:]))))
        out = simulated[-net.layer_sizes[-1]:][None, :]
        label = int(np.argmax(net.scores(out)[0]))
        agree += label == int(np.argmax(net.scores(fast.outputs[i:i + 1])[0]))
        correct += label == int(y[i])
    ideal = net.architecture.diode.kind == "ideal"
    print(f"{args.simulator} on {len(X)} {args.dataset} test images ({'flat' if flat else 'Norton-folded'} netlist, "
          f"{len(names)} hidden and output nodes each): largest |V_{args.simulator} - V_fast| = {worst:.3g} V; same class as the fast "
          f"solver on {agree}/{len(X)}; accuracy {100 * correct / len(X):.1f} %"
          + (" (ideal diodes are near-ideal Shockley diodes in SPICE: expect millivolts)" if ideal else ""))


def cmd_demo(args):
    """Build a small example network, solve it with ngspice, print voltages, write its netlist."""
    arch = make_architecture("4-3-2", v_low=0.0, v_high=0.6, name="circuitprop demo 4-3-2")
    net = Network.random(arch, seed=0, g_min=1e-6, g_max=1e-5)
    x = np.array([[1.0, 0.0, 0.5, 0.25]])
    sol = SpiceBackend(fold_inputs=False).solve(net, x)
    fast = FastBackend().solve(net, x)
    print(f"network {net!r}; inputs x = {x[0].tolist()} (volts: +x and -x)")
    print("node,ngspice_V,fast_V")
    for name, v, f in zip(net.node_names(), sol.flat()[0], fast.flat()[0]):
        print(f"{name},{v:.9f},{f:.9f}")
    print(f"max |ngspice - fast| = {np.max(np.abs(sol.flat() - fast.flat())):.2e} V; "
          f"KCL residual at ngspice's solution {sol.residual:.2e} A")
    out = Path(args.output_dir)
    net.save(out / "demo.npz")
    path = write_netlist(net, out / "demo.cir", "ngspice", inputs=x[0])
    print(f"wrote {out / 'demo.npz'} and {path}")


EPILOG = examples(
    "bash scripts/main.sh                                   # train MNIST on the defaults, check it in ngspice",
    "circuitprop train --dataset mnist --epochs 3            # the same, step by step",
    "circuitprop COMMAND --help                              # every option, with its unit, range and default")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="circuitprop", description=__doc__.splitlines()[0],
                                formatter_class=HelpFormatter, epilog=EPILOG)
    p.add_argument("--version", action="version", version=f"circuitprop {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    fmt = HelpFormatter

    s = sub.add_parser("init", help="write a random network to a file", formatter_class=fmt,
                       description=paragraph("Write a random network. The circuit, neuron and device settings are "
                                             "those of train (same defaults and ranges); conductances are drawn "
                                             "uniformly in g_init within [g_min, g_max]."),
                       epilog=examples("circuitprop init --layers 784-100-10 -o model.npz",
                                       "circuitprop init --layers 4-3-2 --diode 1n4148 --skip 0-2 -o small.npz",
                                       "circuitprop init --layers 196-32-10 --wire-resistance 10 -o wired.npz"))
    s.add_argument("-o", "--output", required=True, help="model file to write (.npz)")
    add_group(s, CircuitConfig, "circuit")
    add_group(s, NeuronConfig, "neurons")
    add_group(s, DeviceConfig, "devices", exclude=("device",))
    add_setting(s, "seed")
    add_off_alias(s, "doubled_inputs", "--single-inputs")
    add_off_alias(s, "doubled_outputs", "--single-outputs")
    s.set_defaults(func=cmd_init)

    s = sub.add_parser("export", help="write a model as a netlist", formatter_class=fmt,
                       epilog=examples("circuitprop export model.npz                        # ngspice, inputs as "
                                       "parameters x_0, x_1, ...",
                                       "circuitprop export model.npz --format spectre -o model.scs",
                                       "circuitprop export model.npz --inputs x.npy --fold-inputs"))
    s.add_argument("model", help="model file (.npz)")
    s.add_argument("--format", choices=DIALECTS, default="ngspice", help="netlist dialect")
    s.add_argument("-o", "--output", help="netlist file (default: model name with the dialect's suffix)")
    s.add_argument("--inputs", help="one input vector: comma-separated features or a .npy/.csv file; "
                                    "without it the inputs are left as parameters x_0, x_1, ...")
    s.add_argument("--zero-inputs", action="store_true", help="write inputs as 0 V instead of parameters")
    s.add_argument("--fold-inputs", action="store_true",
                   help="replace input crossbars by Norton equivalents (needs --inputs)")
    s.set_defaults(func=cmd_export)

    s = sub.add_parser("op", help="solve the operating point of a model or netlist, print node voltages as CSV",
                       formatter_class=fmt,
                       epilog=examples("circuitprop op netlist.cir                           # ngspice, KCL-checked",
                                       "circuitprop op model.npz --backend fast --inputs 0.1,0.5,0.9,0.2",
                                       "circuitprop op model.npz --inputs x.npy -o volts.csv"))
    s.add_argument("file", help="model file (.npz) or SPICE netlist (executable content is refused)")
    s.add_argument("--backend", choices=("spice", "fast"), default="spice", help="solver")
    s.add_argument("--inputs", help="input vectors (model files only): comma-separated or .npy/.csv")
    s.add_argument("--fold-inputs", action="store_true", help="spice backend: Norton-fold the input crossbars")
    s.add_argument("-o", "--output", help="CSV file to write instead of standard output")
    s.set_defaults(func=cmd_op)

    s = sub.add_parser("verify", help="solve a model's exported circuit in ngspice or VACASK and compare with the "
                                      "fast solver", formatter_class=fmt,
                       epilog=examples("circuitprop verify out/model.npz --simulator vacask --images 5",
                                       "circuitprop verify out/model.npz --simulator ngspice --images 20 --flat"))
    s.add_argument("model", help="model file (.npz)")
    s.add_argument("--simulator", choices=("ngspice", "vacask"), default="ngspice", help="the other simulator")
    s.add_argument("--images", type=A.positive_int, default=5, help="first N test images")
    s.add_argument("--dataset", default="mnist", choices=("mnist", "fashion-mnist", "kmnist"), help="test images of")
    s.add_argument("--data-dir", help="folder holding <dataset>/<official .gz files> "
                                      "(default: $CIRCUITPROP_DATA or ~/.cache/circuitprop)")
    s.add_argument("--flat", action="store_true", help="the full flat netlist, as exported (default: the input "
                                                       "crossbars Norton-folded, exact and faster; wired models are "
                                                       "always flat)")
    s.set_defaults(func=cmd_verify)

    s = sub.add_parser("demo", help="solve a small example network with ngspice and write its netlist",
                       formatter_class=fmt, epilog=examples("circuitprop demo --output-dir out"))
    s.add_argument("--output-dir", default="out", help="folder for the model and netlist")
    s.set_defaults(func=cmd_demo)

    _add_training_commands(sub, fmt)
    _add_sweep_commands(sub, fmt)
    return p


def cmd_sweep(args):
    spec = load_spec(args.spec)
    results = Path(args.results or Path("sweeps") / spec["name"])
    counts = run_sweep(spec, results, scheduler=args.scheduler, n_workers=args.workers,
                       retry_failed=args.retry_failed)  # SIGTERM closes the cluster (main's StopOnSignal)
    print(f"sweep {spec['name']}: {counts['total']} runs, {counts['skipped']} already done, {counts['ok']} ok, "
          f"{counts['failed']} failed; results in {results}")


def cmd_sweep_report(args):
    df = load_results(args.results)
    if df.empty:
        raise CLIError(f"{args.results}: no run results")
    out = Path(args.output or args.results)
    df = df.assign(converged=converged(df, args.converged))
    atomic_write_bytes(out / "runs.csv", df.drop(columns=["error"]).to_csv(index=False).encode())
    print(f"{len(df)} runs ({int((df.status == 'failed').sum())} failed); wrote {out / 'runs.csv'}")
    single_setting = df[["beta", "learning_rate"]].drop_duplicates().shape[0] == 1
    if df["noise_sigma"].nunique() > 1 and single_setting:
        print(f"wrote {plot_accuracy_vs_noise(df, out / f'accuracy_vs_noise.{args.format}', noise_samples=1)}")
        levels = critical_levels(df, args.threshold)
        atomic_write_bytes(out / "critical_levels.csv", levels.to_csv(index=False).encode())
        for dataset, g in levels.groupby("dataset"):
            for n, gn in g.groupby("noise_samples"):
                print(f"{dataset} N={n}: critical sigma = {gn.sigma_c.mean():.3g} +- {gn.sigma_c.std():.2g} V "
                      f"(threshold {gn.threshold.iloc[0] * 100:.1f} %, {gn.sigma_c.notna().sum()} seeds)")
            if g["noise_samples"].nunique() > 1:
                a, k, k_err = fit_power_law(g["noise_samples"], g["sigma_c"])
                print(f"{dataset}: sigma_c ~ N^{k:.3f} +- {k_err:.3f} (central limit theorem: N^0.5)")
        if levels["noise_samples"].nunique() > 1:
            print(f"wrote {plot_critical_vs_samples(levels, out / f'critical_vs_samples.{args.format}')}")
    if df["beta"].nunique() > 1 and df["effective_learning_rate"].nunique() > 1:
        print(f"wrote {plot_beta_lr_maps(df, out / f'beta_lr_maps.{args.format}')}")


def _add_sweep_commands(sub, fmt):
    s = sub.add_parser("sweep", help="run a sweep of trainings on Dask (resumable)", formatter_class=fmt,
                       epilog=examples("circuitprop sweep experiments/sweeps/noise_curve.toml --results sweeps/noise",
                                       "circuitprop sweep spec.toml --scheduler tcp://10.0.0.5:8786    # a Dask cluster",
                                       "circuitprop sweep spec.toml --retry-failed"))
    s.add_argument("spec", help="TOML sweep spec ([base] settings, [axes] lists of values)")
    s.add_argument("--results", help="results folder (default: sweeps/<name>)")
    s.add_argument("--scheduler", help="address of an existing Dask scheduler (default: "
                                       "$DASK_SCHEDULER_ADDRESS, else an embedded LocalCluster)")
    s.add_argument("--workers", type=A.positive_int, help="LocalCluster worker processes (default: one per core)")
    s.add_argument("--retry-failed", action="store_true", help="run again the runs recorded as failed")
    s.set_defaults(func=cmd_sweep)
    s = sub.add_parser("sweep-report", help="tables and figures from a sweep's results", formatter_class=fmt,
                       epilog=examples("circuitprop sweep-report sweeps/noise",
                                       "circuitprop sweep-report sweeps/noise --threshold 0.9 -o figures"))
    s.add_argument("results", help="results folder of a sweep")
    s.add_argument("-o", "--output", help="folder for the CSV tables and figures (default: the results folder)")
    s.add_argument("--format", choices=FORMATS, default="png", help="file format of the figures")
    s.add_argument("--threshold", type=A.real(0.0, 1.0), default=None,
                   help="accuracy defining the critical noise level (default: halfway between chance and "
                        "the noiseless accuracy of each dataset)")
    s.add_argument("--converged", type=A.real(0.0, 1.0), default=0.5,
                   help="final test accuracy from which a run counts as converged")
    s.set_defaults(func=cmd_sweep_report)


def _add_training_commands(sub, fmt):
    train_commands.add_commands(sub, fmt)


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with StopOnSignal():  # SIGTERM/SIGHUP stop any command cleanly (training defers them to a batch's end)
            args.func(args)
    except BrokenPipeError:  # the reader of our output went away (`| head`): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes
        return 0
    except (CLIError, NetworkError, NetlistError, ConvergenceError, SpiceError, VacaskError, SweepError, ValueError,
            OSError, FloatingPointError) as exc:
        print(f"circuitprop {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM/SIGHUP (Interrupted): exit status 128 + signal
        signum = getattr(exc, "signum", signal.SIGINT)
        print(f"circuitprop {args.command}: interrupted ({signal.Signals(signum).name})", file=sys.stderr)
        return 128 + int(signum)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
