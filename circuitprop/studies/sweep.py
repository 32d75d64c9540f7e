"""Sweeps: many trainings over a grid of settings, on Dask, with results that are never lost.

A sweep spec is a TOML file::

    name = "noise-mnist"
    [base]                       # one training: EPTrainer parameters plus data options
    dataset = "mnist"            # data options: dataset, size, limit_train, limit_test, data_dir,
                                 # verify_checksums (false for data that are not the official files),
                                 # validation (evaluate on the last N training images, not the test set)
    limit_train = 10000
    layers = "784-100-10"
    epochs = 2
    [axes]                       # every combination of these values is one run
    noise_sigma = [0.0, 0.001, 0.01]
    noise_samples = [1, 4]
    seed = [0, 1, 2]

Each run has an id derived from its full configuration.  A worker writes its
result (configuration, per-epoch and final metrics, wall time, versions, or
the error and traceback) to ``RESULTS/runs/<id>.json`` atomically (a temporary
file and ``os.replace``), so killing the sweep at any moment, even with
``kill -9``, loses no finished run and leaves no partial result.  Running the
same sweep again skips the runs that have a result and does the rest.

Runs execute on Dask distributed: an embedded ``LocalCluster`` with one
single-threaded worker process per core by default, or an existing cluster at
``scheduler`` (or the ``DASK_SCHEDULER_ADDRESS`` environment variable), where
the workers need circuitprop installed and the data reachable.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import platform
import re
import time
import tomllib
import traceback
from functools import lru_cache
from pathlib import Path

import numpy as np
import scipy

from .._version import __version__
from ..config import FLAT, spec_of
from ..config import defaults as setting_defaults
from ..errors import ConfigError
from ..io.datasets import load_dataset
from ..io.files import atomic_write_bytes
from ..io.progress import progress
from ..learning.trainer import EPTrainer

DATA_KEYS = ("dataset", "size", "limit_train", "limit_test", "data_dir", "verify_checksums", "validation")
#: Derived settings: ``effective_learning_rate`` (eta/beta, one value or one per crossbar) sets
#: ``learning_rate = eta/beta * beta`` (element by element for a list).
DERIVED_KEYS = ("effective_learning_rate",)


class SweepError(ValueError):
    """A malformed sweep spec (names the file and the key)."""


# -- specs ------------------------------------------------------------------------------------------

def load_spec(path) -> dict:
    """Read and check a TOML sweep spec."""
    path = Path(path)
    try:
        spec = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise SweepError(f"{path}: no such file") from None
    except tomllib.TOMLDecodeError as exc:
        raise SweepError(f"{path}: not valid TOML: {exc}") from None
    except RecursionError:
        raise SweepError(f"{path}: arrays or tables nested too deep to be a sweep spec") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SweepError(f"{path}: cannot read it ({exc})") from None
    return check_spec(spec, str(path))


_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$", re.ASCII)


def check_spec(spec: dict, where: str = "<spec>") -> dict:
    if not isinstance(spec, dict):
        raise SweepError(f"{where}: a sweep spec is a table of name, [base] and [axes]")
    known = set(FLAT) | set(DATA_KEYS) | set(DERIVED_KEYS)
    unknown = set(spec) - {"name", "base", "axes"}
    if unknown:
        raise SweepError(f"{where}: unknown top-level keys {sorted(unknown)} (allowed: name, base, axes)")
    for section in ("base", "axes"):
        if not isinstance(spec.get(section, {}), dict):
            raise SweepError(f"{where}: {section} must be a table ([{section}] with name = value lines), "
                             f"got {spec[section]!r:.60}")
    base = dict(spec.get("base", {}))
    axes = dict(spec.get("axes", {}))
    for section, keys in (("base", base), ("axes", axes)):
        bad = set(keys) - known
        if bad:
            raise SweepError(f"{where}: [{section}] has unknown settings {sorted(bad)}")
    for key, values in axes.items():
        if not isinstance(values, list) or not values:
            raise SweepError(f"{where}: [axes] {key} must be a non-empty list of values")
    for section, key, value in ([("base", k, v) for k, v in base.items()]
                                + [("axes", k, v) for k, vs in axes.items() for v in vs]):
        if key in FLAT:  # checked against the setting's declaration (range, type, choices)
            try:
                spec_of(key).validate(key, value)
            except ConfigError as exc:
                raise SweepError(f"{where}: [{section}] {exc}") from None
    for section, value in ([("base", base["effective_learning_rate"])] if "effective_learning_rate" in base else []) \
            + [("axes", v) for v in axes.get("effective_learning_rate", [])]:
        values = value if isinstance(value, list) else [value]
        if not values or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0
                                 and math.isfinite(v) for v in values):
            raise SweepError(f"{where}: [{section}] effective_learning_rate must be a positive number or a list of "
                             f"them (one per crossbar), got {value!r:.60}")
    both = set(base) & set(axes)
    if "effective_learning_rate" in set(base) | set(axes) and "learning_rate" in set(base) | set(axes):
        raise SweepError(f"{where}: give learning_rate or effective_learning_rate, not both")
    if both:
        raise SweepError(f"{where}: {sorted(both)} given in both [base] and [axes]")
    default = re.sub(r"[^A-Za-z0-9_.-]", "_", Path(where).stem).strip("._") or "sweep"
    name = spec.get("name", default if where != "<spec>" else "sweep")
    if not isinstance(name, str) or not _SAFE_NAME.match(name) or ".." in name:
        raise SweepError(f"{where}: name {str(name)[:60]!r} must be a plain folder name (letters, digits, '_', '-', "
                         "'.', no '..' and no '/'): results go to sweeps/<name>")
    checked = {"name": name, "base": base, "axes": axes}
    if count_runs(checked) > MAX_RUNS:
        expand(checked)  # raises, naming the count
    return checked


#: Largest number of runs a sweep may hold: beyond it a spec is almost certainly a mistake (10 axes of 10
#: values make 10**10 runs), and even listing the runs would exhaust memory.
MAX_RUNS = 100_000


def count_runs(spec: dict) -> int:
    """Number of runs of a spec: the product of its axes' lengths (computed, not listed)."""
    return math.prod(len(values) for values in spec["axes"].values())


def iter_runs(spec: dict):
    """Every run configuration of a spec (cartesian product of the axes), in a stable order, one at a time."""
    keys = sorted(spec["axes"])
    for values in itertools.product(*(spec["axes"][k] for k in keys)):
        config = dict(spec["base"])
        config.update(zip(keys, values))
        if "effective_learning_rate" in config:
            ratio, beta = config.pop("effective_learning_rate"), config.get("beta", 1e-6)
            config["learning_rate"] = [r * beta for r in ratio] if isinstance(ratio, list) else ratio * beta
        config.setdefault("verbose", False)
        yield config


def expand(spec: dict) -> list:
    """All run configurations of a spec, as a list (see :func:`iter_runs`); refuses more than
    :data:`MAX_RUNS`, naming the count, before listing any."""
    n = count_runs(spec)
    if n > MAX_RUNS:
        axes = " x ".join(f"{len(v)} {k}" for k, v in sorted(spec["axes"].items()))
        raise SweepError(f"sweep {spec.get('name', '')!r} has {n:,} runs ({axes}); circuitprop runs at most "
                         f"{MAX_RUNS:,} per sweep: split it into several specs")
    return list(iter_runs(spec))


def run_id(config: dict) -> str:
    """A stable id of a run configuration (hash of its canonical JSON)."""
    text = json.dumps({k: v for k, v in config.items() if k != "verbose"}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# -- one run (executes on a worker) -------------------------------------------------------------------

@lru_cache(maxsize=4)
def _data(dataset, size, limit_train, limit_test, data_dir, verify):
    return load_dataset(dataset, data_dir, size=size, limit_train=limit_train, limit_test=limit_test,
                        verify=verify, download=verify)


def _versions() -> dict:
    return {"circuitprop": __version__, "numpy": np.__version__, "scipy": scipy.__version__,
            "python": platform.python_version()}


def run_one(config: dict, results_dir) -> dict:
    """Train one configuration and write its result file atomically; returns the result record.

    Errors are recorded (status ``"failed"``, message and traceback) rather than raised.
    """
    rid = run_id(config)
    path = Path(results_dir) / "runs" / f"{rid}.json"
    record = {"run_id": rid, "config": config, "versions": _versions(), "host": platform.node()}
    t0 = time.perf_counter()
    try:
        params = {k: v for k, v in config.items() if k not in DATA_KEYS}
        X, y, Xt, yt = _data(config.get("dataset", "mnist"), int(config.get("size", 28)),
                             config.get("limit_train"), config.get("limit_test"), config.get("data_dir"),
                             bool(config.get("verify_checksums", True)))
        n_features = X.shape[1]
        params.setdefault("layers", f"{n_features}-100-10")
        held_out = config.get("validation")
        if held_out:  # tune on the last N training images; the test set is not read
            held_out = int(held_out)
            if not 0 < held_out < len(X):
                raise ValueError(f"validation = {held_out} must be between 1 and the {len(X) - 1} training images")
            X, y, Xt, yt = X[:-held_out], y[:-held_out], X[-held_out:], y[-held_out:]
            record["evaluated_on"] = f"validation: the last {held_out} training images"
        else:
            record["evaluated_on"] = "test set"
        trainer = EPTrainer(**params).fit(X, y, eval_set=(Xt, yt))
        history = trainer.history_
        record.update(status="ok", history=history,
                      test_accuracy=history[-1]["test_accuracy"] if history else trainer.score(Xt, yt),
                      best_test_accuracy=max((h["test_accuracy"] for h in history), default=None),
                      final_train_loss=history[-1]["train_loss"] if history else None)
    except Exception as exc:  # a failing run is recorded and the sweep goes on
        record.update(status="failed", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
    record["wall_seconds"] = time.perf_counter() - t0
    atomic_write_bytes(path, json.dumps(record, indent=1, default=float).encode())
    return {"run_id": rid, "status": record["status"], "error": record.get("error")}


# -- the sweep (driver) -----------------------------------------------------------------------------------

def finished_ids(results_dir) -> set:
    """Ids of the runs with a complete result file (an empty or unreadable file is not a result)."""
    folder = Path(results_dir) / "runs"
    if not folder.exists():
        return set()
    return {p.stem for p in folder.glob("*.json") if not p.name.startswith(".") and _read_record(p) is not None}


def _read_record(path):
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None
    if not isinstance(record, dict) or record.get("status") not in ("ok", "failed") or "config" not in record:
        return None
    return record


def _clean_temporaries(results_dir) -> int:
    """Remove temporary files left by a run killed while writing (never a finished result)."""
    folder = Path(results_dir) / "runs"
    removed = 0
    for p in folder.glob(".*.tmp") if folder.exists() else []:
        p.unlink(missing_ok=True)
        removed += 1
    return removed


def _client(scheduler=None, n_workers=None):
    try:
        import dask
        from distributed import Client, LocalCluster
    except ImportError:
        raise SweepError("sweeps run on Dask, which is not installed: pip install 'circuitprop[sweep]' "
                         "(dask[distributed] and pandas)") from None
    address = scheduler or dask.config.get("scheduler-address", None)
    if address:
        return Client(address), None
    n = n_workers or os.cpu_count() or 1
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")  # one BLAS thread per worker process: n workers fill n cores
    cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None)
    return Client(cluster), cluster


def run_sweep(spec, results_dir, scheduler=None, n_workers=None, progress=True, retry_failed=False) -> dict:
    """Run every configuration of ``spec`` that has no result yet; returns counts.

    Parameters
    ----------
    spec : dict or path
        A spec (see module docstring) or the path of a TOML spec.
    results_dir : path
        Results folder (created); ``runs/<id>.json`` per run plus ``spec.json``.
    scheduler : str, optional
        Address of an existing Dask scheduler; default: ``DASK_SCHEDULER_ADDRESS`` or a LocalCluster.
    n_workers : int, optional
        Workers of the LocalCluster (default: one per core).
    retry_failed : bool
        Run again the runs recorded as failed.
    """
    if not isinstance(spec, dict):
        spec = load_spec(spec)
    else:
        spec = check_spec(spec)
    results_dir = Path(results_dir)
    (results_dir / "runs").mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(results_dir / "spec.json", json.dumps(spec, indent=1).encode())
    _clean_temporaries(results_dir)
    configs = expand(spec)
    done = finished_ids(results_dir)
    if retry_failed:
        done = {rid for rid in done if _status(results_dir, rid) == "ok"}
    todo = [c for c in configs if run_id(c) not in done]
    counts = {"total": len(configs), "skipped": len(configs) - len(todo), "ok": 0, "failed": 0}
    if not todo:
        return counts
    client, cluster = _client(scheduler, n_workers)
    from distributed import as_completed
    try:
        futures = [client.submit(run_one, c, str(results_dir.resolve()), key=f"run-{run_id(c)}", pure=False)
                   for c in todo]
        bar = _bar(len(configs), counts["skipped"], spec["name"], progress)
        for future in as_completed(futures):
            result = future.result()
            counts["ok" if result["status"] == "ok" else "failed"] += 1
            if bar is not None:
                running = sum(1 for f in futures if f.status == "pending")
                bar.set_postfix(done=counts["ok"] + counts["skipped"], running=min(running, _n_threads(client)),
                                failed=counts["failed"])
                bar.update(1)
        if bar is not None:
            bar.close()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return counts


def _status(results_dir, rid):
    record = _read_record(Path(results_dir) / "runs" / f"{rid}.json")
    return None if record is None else record["status"]


def _n_threads(client) -> int:
    try:
        return sum(client.nthreads().values())
    except Exception:  # pragma: no cover
        return 1


def _bar(total, initial, name, enabled):
    if not enabled:
        return None
    return progress(None, total=total, initial=initial, desc=f"sweep {name}")


# -- analysis ---------------------------------------------------------------------------------------------

def load_results(results_dir):
    """All run records of a results folder as a tidy pandas DataFrame, one row per run.

    Columns: ``run_id``, ``status``, ``error``, every configuration key, ``test_accuracy`` (final),
    ``best_test_accuracy``, ``final_train_loss``, ``wall_seconds``.
    """
    try:
        import pandas as pd
    except ImportError:
        raise SweepError("sweep reports need pandas: pip install 'circuitprop[sweep]'") from None
    rows = []
    for path in sorted((Path(results_dir) / "runs").glob("*.json")):
        if path.name.startswith("."):
            continue
        rec = _read_record(path)
        if rec is None:
            raise SweepError(f"{path}: not a complete run result (empty, truncated or not JSON); delete it and run "
                             "the sweep again to redo that run")
        row = {"run_id": rec.get("run_id", path.stem), "status": rec["status"], "error": rec.get("error"),
               "test_accuracy": rec.get("test_accuracy"), "best_test_accuracy": rec.get("best_test_accuracy"),
               "final_train_loss": rec.get("final_train_loss"), "wall_seconds": rec.get("wall_seconds")}
        row.update(rec["config"])
        rows.append(row)
    df = pd.DataFrame(rows)
    if not df.empty:
        df["dataset"] = df.get("dataset", "mnist")
        defaults = setting_defaults()
        for col in ("noise_sigma", "noise_samples", "beta", "learning_rate", "seed"):
            if col not in df:  # a setting the specs left at the trainer's default
                df[col] = defaults[col]
            elif not isinstance(defaults[col], (list, tuple)):
                df[col] = df[col].fillna(defaults[col])
        # eta/beta, rounded so that values built as eta/beta * beta compare equal again; with one rate per
        # crossbar, the first crossbar's (the others are in the learning_rate column)
        first = df["learning_rate"].map(lambda v: v[0] if isinstance(v, (list, tuple)) and v else v)
        df["effective_learning_rate"] = [float(f"{lr / b:.10g}") if isinstance(lr, (int, float)) else float("nan")
                                         for lr, b in zip(first, df["beta"])]
    return df


#: A run *converged* when its final test accuracy is at least this (chance is 0.1 on ten classes).
CONVERGED_ACCURACY = 0.5


def converged(df, threshold: float = CONVERGED_ACCURACY):
    """Boolean Series: the run finished and its final test accuracy is >= ``threshold``."""
    return (df["status"] == "ok") & (df["test_accuracy"].fillna(0) >= threshold)


def critical_level(sigmas, accuracies, threshold):
    """Noise level (V) at which accuracy first falls below ``threshold``.

    ``sigmas`` increasing; linear interpolation in ``sigma`` between the last grid point above the
    threshold and the first below it.  ``nan`` when the accuracy never falls below it on the grid
    (or starts below it).
    """
    s = np.asarray(sigmas, float)
    a = np.asarray(accuracies, float)
    if a.size == 0 or not a[0] >= threshold:
        return float("nan")
    below = np.nonzero(a < threshold)[0]
    if below.size == 0:
        return float("nan")
    j = below[0]
    s0, s1, a0, a1 = s[j - 1], s[j], a[j - 1], a[j]
    return float(s0 + (a0 - threshold) / (a0 - a1) * (s1 - s0))


def relative_threshold(noiseless_accuracy: float, chance: float = 0.1) -> float:
    """Default critical threshold: halfway between chance and the noiseless accuracy."""
    return 0.5 * (chance + noiseless_accuracy)


def critical_levels(df, threshold=None):
    """Critical noise level per (dataset, noise_samples, seed).

    ``threshold``: a number (absolute accuracy, e.g. 0.9 as the uncertainty paper's sampling figure)
    or ``None`` for :func:`relative_threshold` of the dataset's mean noiseless accuracy.
    Returns a DataFrame with columns dataset, noise_samples, seed, threshold, sigma_c.
    """
    import pandas as pd
    ok = df[df["status"] == "ok"]
    rows = []
    columns = ["dataset", "noise_samples", "seed", "threshold", "sigma_c"]
    if ok[["beta", "learning_rate"]].drop_duplicates().shape[0] > 1:
        raise ValueError("critical levels need one (beta, learning_rate) setting; this table mixes several")
    for (dataset, n), group in ok.groupby(["dataset", "noise_samples"]):
        noiseless = ok[(ok["dataset"] == dataset) & (ok["noise_sigma"] == 0)]["test_accuracy"].mean()
        thr = relative_threshold(noiseless) if threshold is None else float(threshold)
        for seed, g in group.groupby("seed"):
            g = g.sort_values("noise_sigma")
            rows.append({"dataset": dataset, "noise_samples": int(n), "seed": seed, "threshold": thr,
                         "sigma_c": critical_level(g["noise_sigma"], g["test_accuracy"], thr)})
    return pd.DataFrame(rows, columns=columns)


def fit_power_law(n, sigma_c):
    """Fit ``sigma_c = a * N**k`` by least squares in log-log; returns ``(a, k, k_stderr)``."""
    n = np.asarray(n, float)
    s = np.asarray(sigma_c, float)
    keep = np.isfinite(s) & (s > 0)
    n, s = n[keep], s[keep]
    if len(np.unique(n)) < 2:
        return float("nan"), float("nan"), float("nan")
    if len(n) > 3:
        (k, log_a), cov = np.polyfit(np.log(n), np.log(s), 1, cov=True)
        k_err = float(np.sqrt(cov[0, 0]))
    else:
        k, log_a = np.polyfit(np.log(n), np.log(s), 1)
        k_err = float("nan")
    return float(np.exp(log_a)), float(k), k_err
