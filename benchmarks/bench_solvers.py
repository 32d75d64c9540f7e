"""Operating-point throughput: ngspice backend, PySpice's high-level path, fast solver, bare numpy.

Run:  .venv/bin/python benchmarks/bench_solvers.py            (about 3-4 minutes)
      .venv/bin/python benchmarks/bench_solvers.py --quick    (smaller sample counts)

Every figure is measured in this run; ratios compare figures of this run only.

Sections
--------
1. ngspice: free + two nudged phases for N input samples on 392-64-20 and
   1568-100-20 networks, with circuitprop's SpiceBackend (loaded once, sources
   changed with ``alter``; flat netlist and Norton-folded inputs) and with
   PySpice's high-level ``simulator.operating_point()`` (re-renders and
   re-parses the netlist at every call; fewer samples, it is slow).
2. fast solver vs ngspice backend per sample on 1568-100-20.
3. fast solver throughput on 1568-1024-10 at batch 4, 64, 256 (free + two
   nudged phases), and the same matrix products timed bare with numpy.
4. one Shockley layer solve (256 x 1024 nodes, the drive of a real sweep): the
   numpy Newton iteration (the fallback without numba), the scalar closed form
   and the SIMD closed form of ``circuitprop.kernels.shockley``, in ns per node.
"""
from __future__ import annotations

import argparse
import logging
import os
import time

import circuitprop  # noqa: F401  (before numpy: sets OPENBLAS_THREAD_TIMEOUT, see circuitprop/__init__.py)
import numpy as np

from circuitprop.backends import FastBackend
from circuitprop.backends.spice import SpiceBackend
from circuitprop.model import DiodeModel, Network, make_architecture


def network(spec, seed=0, diode=None, **kw):
    arch = make_architecture(spec, v_low=0.0, v_high=1.0, diode=diode or DiodeModel(), **kw)
    return Network.random(arch, g_min=1e-7, g_max=1e-5, seed=seed)


def nudge_currents(net, free_outputs, beta, rng):
    """Nudging currents for MSE on random one-hot targets (amperes)."""
    k = net.architecture.n_classes
    y = np.eye(k)[rng.integers(0, k, free_outputs.shape[0])]
    score = net.scores(free_outputs)
    return net.output_currents_from_score_currents(beta * (y - score))


def three_phases(backend, net, x, rng, beta=1e-6):
    free = backend.solve(net, x)
    plus = backend.solve(net, x, nudge_currents(net, free.outputs, beta, rng), initial=free)
    minus = backend.solve(net, x, nudge_currents(net, free.outputs, -beta, rng), initial=free)
    return free, plus, minus


def pyspice_high_level(net, x):
    """Seconds per operating point through PySpice's Circuit + simulator.operating_point()."""
    from PySpice.Spice.Netlist import Circuit

    from circuitprop.netlist.circuit import build_circuit
    logging.getLogger("PySpice").setLevel(logging.CRITICAL)
    times = []
    for s in range(x.shape[0]):
        t0 = time.perf_counter()
        elements = build_circuit(net, inputs=x[s])
        circuit = Circuit("bench")
        circuit.model("dneuron", "D", **elements.models["dneuron"])
        for e in elements.elements:
            nodes = [circuit.gnd if n == "0" else n for n in e.nodes]
            if e.kind == "R":
                circuit.R(e.name[1:], *nodes, e.value)
            elif e.kind == "V":
                circuit.V(e.name[1:], *nodes, e.value)
            elif e.kind == "I":
                circuit.I(e.name[1:], *nodes, e.value)
            elif e.kind == "D":
                circuit.D(e.name[1:], *nodes, model="dneuron")
        analysis = circuit.simulator(simulator="ngspice-shared").operating_point()
        _ = analysis.nodes
        times.append(time.perf_counter() - t0)
    return float(np.mean(times))


def section_spice(quick):
    print("\n## 1. ngspice operating points (free + 2 nudged phases per sample)")
    rng = np.random.default_rng(0)
    rows = []
    for spec, n_samples, n_flat, n_hl in (("196-64-10", 100, 100 if not quick else 10, 3),
                                          ("784-100-10", 100, 3 if not quick else 1, 2 if not quick else 1)):
        net = network(spec)
        sizes = "-".join(map(str, net.layer_sizes))
        x = rng.uniform(0, 1, (n_samples, net.architecture.n_features))
        folded = SpiceBackend(fold_inputs=True)
        t0 = time.perf_counter()
        three_phases(folded, net, x, rng)
        t_fold = (time.perf_counter() - t0) / (3 * n_samples)
        flat = SpiceBackend(fold_inputs=False)
        flat.solve(net, x[:1])  # load once (counted separately below)
        t0 = time.perf_counter()
        three_phases(flat, net, x[:n_flat], rng)
        t_flat = (time.perf_counter() - t0) / (3 * n_flat)
        t_hl = pyspice_high_level(net, x[:n_hl])
        rows.append((sizes, t_fold, t_flat, t_hl))
        print(f"{sizes:>12}: SpiceBackend folded {t_fold * 1e3:8.2f} ms/op ({3 * n_samples} ops) | "
              f"SpiceBackend flat {t_flat * 1e3:8.1f} ms/op ({3 * n_flat} ops) | "
              f"PySpice operating_point() {t_hl * 1e3:8.1f} ms/op ({n_hl} ops) | "
              f"speed-up folded {t_hl / t_fold:7.0f}x, flat {t_hl / t_flat:5.1f}x")
    return rows


def section_fast_vs_spice(quick):
    print("\n## 2. fast solver vs ngspice backend, 1568-100-20, free + 2 nudged phases")
    rng = np.random.default_rng(1)
    net = network("784-100-10")
    n = 100
    x = rng.uniform(0, 1, (n, 784))
    fast = FastBackend()
    three_phases(fast, net, x, rng)  # warm-up
    reps = 20
    t0 = time.perf_counter()
    for _ in range(reps):
        three_phases(fast, net, x, rng)
    t_fast = (time.perf_counter() - t0) / (reps * n)
    spice = SpiceBackend(fold_inputs=True)
    t0 = time.perf_counter()
    three_phases(spice, net, x, rng)
    t_fold = (time.perf_counter() - t0) / n
    n_flat = 1 if quick else 2
    flat = SpiceBackend(fold_inputs=False)
    flat.solve(net, x[:1])
    t0 = time.perf_counter()
    three_phases(flat, net, x[:n_flat], rng)
    t_flat = (time.perf_counter() - t0) / n_flat
    print(f"fast solver (batch {n}, float64, Shockley diodes, tol 1e-12 A): {t_fast * 1e6:9.1f} us/sample")
    print(f"ngspice backend, folded inputs:                     {t_fold * 1e6:9.1f} us/sample -> "
          f"fast is {t_fold / t_fast:8.0f}x faster")
    print(f"ngspice backend, flat netlist ({n_flat} samples):            {t_flat * 1e6:9.1f} us/sample -> "
          f"fast is {t_flat / t_fast:8.0f}x faster")
    return t_fast, t_fold, t_flat


def section_throughput(quick):
    print("\n## 3. fast solver throughput on 1568-1024-10, free + 2 nudged phases")
    rng = np.random.default_rng(2)
    results = []
    for diode_kind in ("ideal", "shockley"):
        net = network("784-1024-10", diode=DiodeModel(kind=diode_kind), doubled_outputs=False)
        for fixed in (4, None):
            backend = FastBackend(fixed_sweeps=fixed) if fixed else FastBackend(tol=1e-10)
            label = f"{diode_kind:8} {'4 sweeps (published setting)' if fixed else 'to KCL tol 1e-10 A':28}"
            for batch in (4, 64, 256):
                n_batches = max(2, (256 if quick else 1024) // batch)
                xs = rng.uniform(0, 1, (n_batches, batch, 784))
                three_phases(backend, net, xs[0], rng)
                sweeps = 0
                t0 = time.perf_counter()
                for xb in xs:
                    prepared = backend.prepare(net)
                    free = prepared.solve(xb)
                    p = prepared.solve(xb, nudge_currents(net, free.outputs, 1e-6, rng), initial=free)
                    m = prepared.solve(xb, nudge_currents(net, free.outputs, -1e-6, rng), initial=free)
                    sweeps += free.iterations + p.iterations + m.iterations
                dt = time.perf_counter() - t0
                rate = n_batches * batch / dt
                # the same matrix products, bare: input projection once per batch, then per sweep the
                # products of the sweeps this run did (hidden<-output and output<-hidden)
                g01 = net.conductances[(0, 1)]
                g12 = net.conductances[(1, 2)]
                v0 = net.input_voltages(xs[0])
                h = rng.uniform(0, 1, (batch, 1024))
                o = rng.uniform(0, 1, (batch, 10))
                per_batch_sweeps = sweeps / n_batches
                t0 = time.perf_counter()
                for _ in range(n_batches):
                    _ = v0 @ g01
                    for _ in range(int(round(per_batch_sweeps))):
                        _ = o @ g12.T
                        _ = h @ g12
                bare = time.perf_counter() - t0
                share = bare / dt
                flops = n_batches * (2 * batch * 1568 * 1024 + per_batch_sweeps * 4 * batch * 1024 * 10)
                results.append((diode_kind, fixed, batch, rate, share))
                print(f"{label} batch {batch:4d}: {rate:9.0f} samples/s | {per_batch_sweeps / 3:5.1f} sweeps/phase"
                      f" | bare matmul time / solver time = {share * 100:5.1f} % | "
                      f"{flops / dt / 1e9:6.1f} GFLOP/s of useful products")
    # machine reference
    a = rng.uniform(size=(256, 1568))
    b = rng.uniform(size=(1568, 1024))
    t0 = time.perf_counter()
    for _ in range(20):
        a @ b
    dt = (time.perf_counter() - t0) / 20
    print(f"reference: numpy float64 256x1568 @ 1568x1024: {2 * 256 * 1568 * 1024 / dt / 1e9:.1f} GFLOP/s")
    return results


def section_neurons(quick):
    print("\n## 4. Shockley layer solve, 256 x 1024 nodes (drive of the last free-phase sweep)")
    import circuitprop.backends.fast as fast_module
    from circuitprop.kernels.shockley import shockley_neurons
    rng = np.random.default_rng(3)
    rows = []
    for label, diode, v_low, v_high, gain in (("generic, bias 0/1 V", DiodeModel(kind="shockley"), 0.0, 1.0, 1.0),
                                              ("1N4148, compensated bias", DiodeModel.from_card("1n4148"),
                                               0.267, 0.733, 30.0)):
        net = network("784-1024-10", diode=diode, doubled_outputs=False)
        net = Network(make_architecture("784-1024-10", v_low=v_low, v_high=v_high, diode=diode,
                                        doubled_outputs=False), net.conductances)
        calls = []
        original = fast_module.shockley_neurons
        fast_module.shockley_neurons = lambda *a, **k: (calls.append(a), original(*a, **k))[1]
        try:
            prepared = FastBackend(fixed_sweeps=4).prepare(net)
            prepared.solve(gain * rng.uniform(0, 1, (256, 784)))
        finally:
            fast_module.shockley_neurons = original
        coef, drive, lo, hi, diode, xtol, dtype = calls[-1]
        start = np.full(drive.shape, 0.5 * (lo + hi))
        methods = {"numpy Newton": lambda: prepared._newton(coef, drive, lo, hi, start),
                   "scalar closed form": lambda: shockley_neurons(coef, drive, lo, hi, diode, xtol, dtype,
                                                                  method="scalar"),
                   "SIMD closed form": lambda: shockley_neurons(coef, drive, lo, hi, diode, xtol, dtype)}
        times = {}
        for name, f in methods.items():
            f()
            reps = 2 if name == "numpy Newton" else (5 if quick else 20)
            best = np.inf
            for _ in range(3):
                t0 = time.perf_counter()
                for _ in range(reps):
                    f()
                best = min(best, (time.perf_counter() - t0) / reps)
            times[name] = best / drive.size * 1e9
        agree = np.max(np.abs(methods["SIMD closed form"]() - methods["numpy Newton"]()))
        rows.append((label, times))
        print(f"{label:26}: " + " | ".join(f"{k} {v:6.1f} ns/node" for k, v in times.items())
              + f" | SIMD / numpy: {times['numpy Newton'] / times['SIMD closed form']:.0f}x faster, "
                f"agree to {agree:.1e} V")
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples")
    parser.add_argument("--only", choices=("spice", "fast-vs-spice", "throughput", "neurons"), help="one section")
    args = parser.parse_args()
    print(f"# circuitprop solver benchmark ({os.cpu_count()} cores, numpy {np.__version__}, "
          f"OPENBLAS_THREAD_TIMEOUT={os.environ.get('OPENBLAS_THREAD_TIMEOUT', 'unset')})")
    if args.only in (None, "spice"):
        section_spice(args.quick)
    if args.only in (None, "fast-vs-spice"):
        section_fast_vs_spice(args.quick)
    if args.only in (None, "throughput"):
        section_throughput(args.quick)
    if args.only in (None, "neurons"):
        section_neurons(args.quick)


if __name__ == "__main__":
    main()
