"""Deep networks: the sweeps each topology needs, and EP training speed at batch 4, float32.

Run:  .venv/bin/python benchmarks/bench_deep.py [--examples 2000] [--topologies 1H 2H 2H+skip 3H 3H+skip ...]
                                                [--init uniform|amplifier|balanced] [--train-sweeps S]
                                                [--nudged-sweeps N]

For 1, 2 and 3 hidden layers of 1024 (MNIST inputs doubled, a bias pair, 10 classes doubled), without and with
skip crossbars from the inputs to every hidden layer, at the initial conductances (seed 0; ``--init`` picks the
initialisation, ``--g-init-scaling`` of training) and on the first four MNIST training images, it prints:

* sweeps to steady state: sweeps until every node's KCL residual is below 1e-10 A (float64), plain
  coordinate descent (omega = 1) and over-relaxed (omega = 1.5);
* sweeps needed: the fewest fixed sweeps per phase (float32, as training runs) whose EP gradient (centred,
  beta = 1 uS) has cosine >= 0.999 with the gradient at the steady state;
* training speed with those sweeps (or ``--train-sweeps``, at least): examples/s of ``EPTrainer.fit`` over ``--examples`` MNIST images (batch 4,
  float32, centred EP), and the same per conductance relative to the one-hidden-layer network measured in
  this run (the baseline: 1.00 means "as fast per conductance as 1H");
* the same examples/s with the solver's crossbar pass switched off (``FastSolverConfig.crossbar_pass``: every
  hidden-to-hidden crossbar then costs two matrix products per sweep), measured in the same run, and the
  speed-up of the pass;
* with ``--nudged-sweeps N``: the same training with N sweeps in the nudged phases (warm-started from the free
  phase, outputs first; ``--solver-nudged-sweeps``), its gradient's cosine with the steady state's, and its speed
  per conductance against 1H at whichever of its two settings is faster with cosine >= 0.999.

Topologies ``2H+skip-all`` and ``3H+skip-all`` have the skip crossbars of the depth study (inputs to every hidden
layer and every hidden layer to the outputs, ``experiments/run_depth.sh``).
"""
import contextlib
import argparse
import time

import circuitprop  # noqa: F401  (before numpy: sets OPENBLAS_THREAD_TIMEOUT, see circuitprop/__init__.py)
import numpy as np

from circuitprop.backends import ConvergenceError, FastBackend
from circuitprop.backends.fast import solver as fast_solver
from circuitprop.io.datasets import load_dataset
from circuitprop.learning import EPTrainer

TOPOLOGIES = {
    "1H": ("784-1024-10", ()),
    "2H": ("784-1024-1024-10", ()),
    "2H+skip": ("784-1024-1024-10", ((0, 2),)),
    "3H": ("784-1024-1024-1024-10", ()),
    "3H+skip": ("784-1024-1024-1024-10", ((0, 2), (0, 3))),
    # the skip crossbars of the depth study (experiments/run_depth.sh): inputs -> every hidden layer and every
    # hidden layer -> outputs
    "2H+skip-all": ("784-1024-1024-10", ((0, 2), (1, 3))),
    "3H+skip-all": ("784-1024-1024-1024-10", ((0, 2), (0, 3), (1, 4), (2, 4))),
}
SWEEPS = (2, 3, 4, 5, 6, 8, 10, 12, 16, 24, 32, 48, 64)


INIT = {"init": "none"}  # --init, as the trainers' g_init_scaling


def trainer(layers, skip, **kw):
    params = dict(layers=layers, skip=skip, batch_size=4, epochs=0, verbose=False, seed=0, estimator="centered",
                  g_init_scaling=INIT["init"])
    params.update(kw)
    return EPTrainer(**params)


def gradient(tr, X, y):
    """dL/dg (normalised, V^2) of one EP step on the batch (X, y), as the rule hands it to the optimizer; the
    step itself is undone."""
    net = tr.network_
    before = {k: v.copy() for k, v in net.conductances.items()}
    captured = {}
    step = tr.optimizer_.step

    def capture(conductances, grads, *args, **kwargs):
        captured.update({k: (g.dense() if hasattr(g, "dense") else np.asarray(g)).astype(np.float64)
                         for k, g in grads.items()})
        return step(conductances, grads, *args, **kwargs)

    tr.optimizer_.step = capture
    try:
        tr.train_batch(X, tr._targets(y))
    finally:
        tr.optimizer_.step = step
        for k, v in before.items():
            net.conductances[k][...] = v
    return np.concatenate([captured[k].ravel() for k in sorted(captured)])


@contextlib.contextmanager
def without_crossbar_pass():
    """Training as before the crossbar pass: the trainer builds its own solver config, so the pass is switched
    off where the solver looks it up (no crossbar qualifies)."""
    passes = fast_solver._crossbar_passes
    fast_solver._crossbar_passes = lambda arch: {}
    try:
        yield
    finally:
        fast_solver._crossbar_passes = passes


def examples_per_second(layers, skip, sweeps, X, y, nudged=None):
    tr = trainer(layers, skip, solver_sweeps=sweeps, solver_nudged_sweeps=nudged, dtype="float32", epochs=1)
    t0 = time.perf_counter()
    tr.fit(X, y)
    return len(X) / tr.history_[0].get("seconds", time.perf_counter() - t0)


def steady_state_sweeps(net, X, omega):
    s = FastBackend(tol=1e-10, max_sweeps=20000, on_fail="flag", relaxation=omega).solve(net, X)
    return s.iterations if s.converged else None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=2000)
    parser.add_argument("--topologies", nargs="+", default=list(TOPOLOGIES), choices=list(TOPOLOGIES))
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--train-sweeps", type=int, default=None, metavar="S",
                        help="time the deep networks' training with at least S sweeps per phase (what trained "
                             "circuits need, experiments/depth_trained_sweeps.py) instead of what the initial "
                             "circuit needs; 1H keeps its own count")
    parser.add_argument("--nudged-sweeps", type=int, default=None, metavar="N",
                        help="also time training with N sweeps in the nudged phases (--solver-nudged-sweeps), "
                             "every topology including 1H, with the cosine of that gradient")
    parser.add_argument("--init", default="uniform", choices=("uniform", "amplifier", "balanced"),
                        help="initial conductances: uniform, or scaled behind the amplifiers (--g-init-scaling)")
    args = parser.parse_args()
    INIT["init"] = "none" if args.init == "uniform" else args.init
    print(f"initialisation: {args.init}", flush=True)
    X, y, _, _ = load_dataset("mnist", args.data_dir, limit_train=max(args.examples, 4), limit_test=4)
    xb, yb = X[:4], y[:4]
    rows = []
    for name in args.topologies:
        layers, skip = TOPOLOGIES[name]
        # the reference gradient at the steady state (over-relaxed: the same state in fewer sweeps)
        exact = trainer(layers, skip, solver_tol=1e-12, solver_relaxation=1.8, dtype="float64").fit(xb, yb)
        net = exact.network_
        n_conductances = sum(g.size for g in net.conductances.values())
        plain, relaxed = steady_state_sweeps(net, xb, 1.0), steady_state_sweeps(net, xb, 1.5)
        try:
            reference = gradient(exact, xb, yb)
        except ConvergenceError as exc:
            print(f"{name}: no reference gradient ({exc})", flush=True)
            rows.append((name, layers, skip, n_conductances, plain, relaxed, None) + (float("nan"),) * 4)
            continue
        needed = None
        for s in SWEEPS:
            tr = trainer(layers, skip, solver_sweeps=s, dtype="float32").fit(xb, yb)
            g = gradient(tr, xb, yb)
            cosine = float(g @ reference / np.linalg.norm(g) / np.linalg.norm(reference))
            if cosine >= 0.999:
                needed = s
                break
        rate = baseline = float("nan")
        timed = needed if needed is None or args.train_sweeps is None or name == "1H" else max(needed, args.train_sweeps)
        if timed is not None:
            rate = examples_per_second(layers, skip, timed, X[:args.examples], y[:args.examples])
            with without_crossbar_pass():
                baseline = examples_per_second(layers, skip, timed, X[:args.examples], y[:args.examples])
        nudged_rate, nudged_cosine = float("nan"), float("nan")
        if timed is not None and args.nudged_sweeps is not None:
            tr = trainer(layers, skip, solver_sweeps=timed, solver_nudged_sweeps=args.nudged_sweeps,
                         dtype="float32").fit(xb, yb)
            g = gradient(tr, xb, yb)
            nudged_cosine = float(g @ reference / np.linalg.norm(g) / np.linalg.norm(reference))
            nudged_rate = examples_per_second(layers, skip, timed, X[:args.examples], y[:args.examples],
                                              nudged=args.nudged_sweeps)
            print(f"{name}: {nudged_rate:.0f} examples/s with {args.nudged_sweeps} nudged sweeps (gradient cosine "
                  f"{nudged_cosine:.4f})", flush=True)
        rows.append((name, layers, skip, n_conductances, plain, relaxed, needed if timed == needed
                     else f"{needed} (timed with {timed})", rate, baseline, nudged_rate, nudged_cosine))
        print(f"{name}: {n_conductances:,} conductances; steady state in {plain} sweeps (omega 1), {relaxed} "
              f"(omega 1.5); gradient needs {needed} sweeps; {rate:.0f} examples/s with {timed} ({baseline:.0f} without the "
              f"crossbar pass)", flush=True)
    base = next((r for r in rows if r[0] == "1H"), None)
    print("\n| topology | conductances | sweeps to 1e-10 A (omega 1 / 1.5) | sweeps for cosine 0.999 | examples/s |"
          " conductance-examples/s vs 1H | examples/s without the crossbar pass | speed-up of the pass |")
    print("|---|---|---|---|---|---|---|---|")
    for name, layers, skip, n, plain, relaxed, needed, rate, baseline, *_ in rows:
        ratio = rate * n / (base[7] * base[3]) if base and np.isfinite(base[7]) else float("nan")
        print(f"| {name} ({layers}{' skip ' + ' '.join(f'{a}-{b}' for a, b in skip) if skip else ''}) | {n:,} | "
              f"{plain} / {relaxed} | {needed} | {rate:.0f} | {ratio:.2f} | {baseline:.0f} | {rate / baseline:.2f} |")
    if args.nudged_sweeps is not None:
        # per conductance against 1H at its faster setting that keeps cosine 0.999 (same run)
        base_rate = base[7] if base else float("nan")
        if base and base[10] >= 0.999:
            base_rate = max(base_rate, base[9])
        print(f"\n| topology | examples/s, same sweeps in every phase | examples/s, {args.nudged_sweeps} nudged "
              f"sweep(s) | gradient cosine with {args.nudged_sweeps} nudged | speed-up | conductance-examples/s "
              f"vs 1H (its faster setting with cosine >= 0.999) |")
        print("|---|---|---|---|---|---|")
        for name, layers, skip, n, plain, relaxed, needed, rate, baseline, nudged_rate, nudged_cosine in rows:
            best = max(rate, nudged_rate) if nudged_cosine >= 0.999 else rate
            print(f"| {name} | {rate:.0f} | {nudged_rate:.0f} | {nudged_cosine:.4f} | {nudged_rate / rate:.2f} | "
                  f"{best * n / (base_rate * base[3]) if base else float('nan'):.2f} |")


if __name__ == "__main__":
    main()
