"""What circuitprop survives: kill -9 and SIGTERM at random moments of training and of sweeps.

For each case (training with the fast backend, training with ngspice solving every phase, a sweep on Dask) and
each signal, the script runs the job once uninterrupted (the reference), then ``--trials`` times: start it,
send the signal after a random delay within the reference's duration, run the same command again (``--resume``
for training; a sweep resumes by itself) until it finishes, and compare the result with the reference bit for
bit (the final conductances of a training; every run's recorded result of a sweep). A trial counts as an exact
resume when the results are identical.

    .venv/bin/python experiments/survival.py --trials 20            # about 30 minutes on 2 cores

Results go to ``experiments/results/survival/summary.json`` (one record per case and signal) and a table is
printed. The data are generated (two separable classes in the official IDX layout), so nothing is downloaded.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from circuitprop.io.datasets import write_two_class_mnist

OUT = Path(__file__).resolve().parent / "results" / "survival"


def make_data(root: Path, n_train: int, n_test: int) -> Path:
    write_two_class_mnist(root, n_train, n_test)
    for path in (root / "mnist").iterdir():
        SUMS[path.name] = hashlib.md5(path.read_bytes()).hexdigest()
    return root


def cli(*args):
    """The command line in a fresh process, with the MD5 sums of the generated files in place of the official
    ones (``SUMS``, set by :func:`make_data`)."""
    prelude = ("import sys; from circuitprop.io import datasets; "
               f"datasets.MD5['mnist'] = {json.dumps(SUMS)}; "
               "from circuitprop.cli import main; sys.exit(main(sys.argv[1:]))")
    return [sys.executable, "-c", prelude, *args]


SUMS = {}


def train_command(data, out, backend):
    common = ["train", "--data-dir", str(data), "--size", "4", "--layers", "16-4-10", "--batch-size", "8",
              "--lr", "3e3", "--limit-test", "40", "-o", str(out)]
    if backend == "fast":
        return cli(*common, "--epochs", "100", "--limit-train", "2000")
    return cli(*common, "--backend", "spice", "--epochs", "3", "--limit-train", "160")


def conductances(path):
    with np.load(path) as z:
        return {k: z[k].copy() for k in z.files if k.startswith("g_")}


def same_model(a, b):
    ga, gb = conductances(a), conductances(b)
    return ga.keys() == gb.keys() and all(np.array_equal(ga[k], gb[k]) for k in ga)


def run_until_done(cmd, resume_flag=None, limit=20):
    """Run ``cmd`` (adding ``resume_flag`` after the first try) until it exits 0; returns the attempts."""
    for attempt in range(1, limit + 1):
        proc = subprocess.run(cmd + ([resume_flag] if resume_flag else []), capture_output=True, text=True)
        if proc.returncode == 0:
            return attempt
    raise RuntimeError(f"{cmd[-1]}: did not finish in {limit} attempts: {proc.stderr[-500:]}")


def interrupt(cmd, delay, signum):
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=signum == signal.SIGKILL)
    time.sleep(delay)
    if proc.poll() is None:
        if signum == signal.SIGKILL:
            os.killpg(proc.pid, signal.SIGKILL)  # the whole job, ngspice workers and Dask processes included
        else:
            proc.send_signal(signum)
    try:
        _, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL) if signum == signal.SIGKILL else proc.kill()
        _, err = proc.communicate()
    return proc.returncode, err


def training_case(work, data, backend, signum, trials, rng):
    reference = work / f"ref-{backend}.npz"
    t0 = time.perf_counter()
    ref = subprocess.run(train_command(data, reference, backend) + ["--overwrite"], capture_output=True, text=True)
    if ref.returncode != 0:
        raise RuntimeError(f"reference training failed: {ref.stderr[-800:]}")
    duration = time.perf_counter() - t0
    exact, codes = 0, []
    for trial in range(trials):
        out = work / f"{backend}-{signum}-{trial}.npz"
        code, err = interrupt(train_command(data, out, backend), rng.uniform(0.1, 0.95) * duration, signum)
        codes.append(code)
        run_until_done(train_command(data, out, backend), "--resume")
        exact += same_model(out, reference)
    return {"reference_seconds": round(duration, 2), "exit_codes": sorted(set(codes)), "exact": exact}


SWEEP = """name = "survival"
[base]
dataset = "mnist"
size = 4
verify_checksums = false
layers = "16-4-10"
epochs = 6
batch_size = 8
learning_rate = 1e4
limit_train = 600
limit_test = 40
[axes]
seed = [0, 1, 2, 3]
"""


def sweep_results(folder: Path) -> dict:
    out = {}
    for path in sorted((folder / "runs").glob("*.json")):
        record = json.loads(path.read_text())
        out[record["run_id"]] = (record["status"], record.get("test_accuracy"), record.get("final_train_loss"))
    return out


def sweep_case(work, data, signum, trials, rng):
    spec = work / "survival.toml"
    spec.write_text(SWEEP.replace('dataset = "mnist"', f'dataset = "mnist"\ndata_dir = "{data}"'))
    reference = work / "sweep-ref"
    shutil.rmtree(reference, ignore_errors=True)
    t0 = time.perf_counter()
    ref = subprocess.run(cli("sweep", str(spec), "--results", str(reference), "--workers", "2"), capture_output=True,
                         text=True)
    if ref.returncode != 0:
        raise RuntimeError(f"reference sweep failed: {ref.stderr[-800:]}")
    duration = time.perf_counter() - t0
    expected = sweep_results(reference)
    exact, codes = 0, []
    for trial in range(trials):
        folder = work / f"sweep-{signum}-{trial}"
        code, _ = interrupt(cli("sweep", str(spec), "--results", str(folder), "--workers", "2"),
                            rng.uniform(0.1, 0.95) * duration, signum)
        codes.append(code)
        run_until_done(cli("sweep", str(spec), "--results", str(folder), "--workers", "2"))
        exact += sweep_results(folder) == expected
    return {"reference_seconds": round(duration, 2), "exit_codes": sorted(set(codes)), "exact": exact}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--cases", nargs="+", default=["fast", "spice", "sweep"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    OUT.mkdir(parents=True, exist_ok=True)
    summary_path = OUT / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    work = Path(tempfile.mkdtemp(prefix="circuitprop-survival-"))
    try:
        data = make_data(work / "data", 2000, 40)
        for case in args.cases:
            for signum in (signal.SIGKILL, signal.SIGTERM):
                key = f"{case} {signal.Signals(signum).name}"
                if key in summary and summary[key]["trials"] >= args.trials:
                    continue  # resumable: a finished case is not run again
                t0 = time.perf_counter()
                if case == "sweep":
                    result = sweep_case(work, data, signum, args.trials, rng)
                else:
                    result = training_case(work, data, case, signum, args.trials, rng)
                result.update(trials=args.trials, wall_seconds=round(time.perf_counter() - t0, 1))
                summary[key] = result
                tmp = summary_path.with_suffix(".tmp")
                tmp.write_text(json.dumps(summary, indent=1))
                os.replace(tmp, summary_path)
                print(f"{key}: {result['exact']}/{result['trials']} exact resumes, exit codes {result['exit_codes']}",
                      flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("\n| job | signal | trials | exact resumes | exit status of the interrupted run |")
    print("|---|---|---|---|---|")
    for key, r in summary.items():
        case, name = key.split()
        print(f"| {case} | {name} | {r['trials']} | {r['exact']} | {', '.join(str(c) for c in r['exit_codes'])} |")


if __name__ == "__main__":
    main()
