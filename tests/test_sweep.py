"""Sweeps: resumable after kill -9, failures recorded, an explicit Dask scheduler, analysis helpers."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import write_two_class_mnist

from circuitprop.cli import main
from circuitprop.studies.sweep import (
    SweepError,
    check_spec,
    critical_level,
    expand,
    fit_power_law,
    load_results,
    run_id,
    run_sweep,
)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_two_class_mnist(tmp_path_factory.mktemp("data"), 64, 32)


def spec_for(data_dir, seeds=(0, 1), betas=(1e-6,), name="t"):
    return {"name": name,
            "base": {"dataset": "mnist", "size": 4, "data_dir": str(data_dir), "verify_checksums": False,
                     "layers": "16-4-10", "epochs": 1, "batch_size": 8, "learning_rate": 100.0,
                     "target": 0.1, "lr_schedule": "exponential"},
            "axes": {"seed": list(seeds), "beta": list(betas)}}


def write_spec(path, spec):
    lines = [f'name = "{spec["name"]}"', "[base]"]
    for k, v in spec["base"].items():
        lines.append(f"{k} = {json.dumps(v)}")
    lines.append("[axes]")
    for k, v in spec["axes"].items():
        lines.append(f"{k} = {json.dumps(v)}")
    path.write_text("\n".join(lines).replace("false", "false") + "\n")
    return path


def test_spec_checks_and_expansion(tmp_path):
    spec = check_spec(spec_for(tmp_path, seeds=(0, 1, 2), betas=(1e-6, 2e-6)))
    runs = expand(spec)
    assert len(runs) == 6 and len({run_id(r) for r in runs}) == 6
    maps = expand(check_spec({"axes": {"beta": [1e-7, 1e-6], "effective_learning_rate": [1e11]}}))
    assert sorted(r["learning_rate"] for r in maps) == pytest.approx([1e4, 1e5])
    per_crossbar = expand(check_spec({"base": {"beta": 1e-6}, "axes": {"effective_learning_rate": [[3e12, 3e11]]}}))
    assert per_crossbar[0]["learning_rate"] == pytest.approx([3e6, 3e5])
    with pytest.raises(SweepError, match="positive number or a list"):
        check_spec({"axes": {"effective_learning_rate": [[3e12, -1.0]]}})
    with pytest.raises(SweepError, match="not both"):
        check_spec({"base": {"learning_rate": 1.0}, "axes": {"effective_learning_rate": [1e11]}})
    with pytest.raises(SweepError, match="unknown settings"):
        check_spec({"base": {"lernrate": 1}})
    with pytest.raises(SweepError, match="non-empty list"):
        check_spec({"axes": {"seed": 3}})
    # values are checked against each setting's declaration, as on the command line
    with pytest.raises(SweepError, match=r"\[axes\] beta must be a finite number > 0 .* got -1.0"):
        check_spec({"axes": {"beta": [1e-6, -1.0]}})
    with pytest.raises(SweepError, match=r"\[base\] solver_sweeps must be an integer >= 1 and <= 100000"):
        check_spec({"base": {"solver_sweeps": 1e12}})
    with pytest.raises(SweepError, match="both"):
        check_spec({"base": {"seed": 1}, "axes": {"seed": [1, 2]}})


def test_failing_run_is_recorded_and_rerun_skips_finished(tmp_path, data_dir):
    spec = spec_for(data_dir, seeds=(0, 1))
    del spec["base"]["layers"]
    spec["axes"]["layers"] = ["16-4-10", "25-4-10"]  # 4x4 images have 16 features: the second fails when run
    counts = run_sweep(spec, tmp_path / "res", n_workers=2, progress=False)
    assert counts == {"total": 4, "skipped": 0, "ok": 2, "failed": 2}
    df = load_results(tmp_path / "res")
    assert len(df) == 4
    failed = df[df.status == "failed"]
    assert set(failed.layers) == {"25-4-10"} and failed.error.str.contains("expects 25").all()
    assert (df[df.status == "ok"].test_accuracy > 0).all()
    again = run_sweep(spec, tmp_path / "res", n_workers=1, progress=False)
    assert again == {"total": 4, "skipped": 4, "ok": 0, "failed": 0}


def test_sweep_killed_mid_way_restarts_and_completes_each_run_once(tmp_path, data_dir):
    spec_path = write_spec(tmp_path / "s.toml", spec_for(data_dir, seeds=list(range(10)), name="kill"))
    results = tmp_path / "res"
    cmd = [sys.executable, "-m", "circuitprop.cli", "sweep", str(spec_path), "--results", str(results),
           "--workers", "1"]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    runs = results / "runs"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(runs.glob("*.json"))) < 3:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # kill -9 the sweep and its workers
    proc.wait()
    before = {p.name for p in runs.glob("*.json")}
    assert 3 <= len(before) < 10
    for p in runs.glob("*.json"):
        json.loads(p.read_text())  # every result file is complete
    assert subprocess.run(cmd, capture_output=True, timeout=300).returncode == 0
    after = sorted(p.name for p in runs.iterdir())
    assert len(after) == 10 and before <= set(after)
    assert not any(name.startswith(".") for name in after)  # no temporary file left
    df = load_results(results)
    assert sorted(df.seed) == list(range(10)) and (df.status == "ok").all()


def test_sweep_on_an_explicit_local_cluster_address(tmp_path, data_dir, capsys):
    from distributed import LocalCluster
    spec_path = write_spec(tmp_path / "s.toml", spec_for(data_dir, seeds=(0, 1, 2), name="cluster"))
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        code = main(["sweep", str(spec_path), "--results", str(tmp_path / "res"),
                     "--scheduler", cluster.scheduler_address])
        assert code == 0
        hosts = {json.loads(p.read_text())["host"] for p in (tmp_path / "res" / "runs").glob("*.json")}
    assert "3 ok, 0 failed" in capsys.readouterr().out
    assert len(hosts) == 1


def test_critical_level_and_power_law():
    sigmas = [0.0, 0.01, 0.02, 0.04]
    assert critical_level(sigmas, [0.95, 0.94, 0.6, 0.1], 0.8) == pytest.approx(0.01 + 0.14 / 0.34 * 0.01)
    assert np.isnan(critical_level(sigmas, [0.95, 0.94, 0.93, 0.92], 0.8))
    n = np.array([1, 1, 4, 4, 16, 16, 64, 64])
    sigma = 0.01 * n ** 0.5 * np.exp(np.random.default_rng(0).normal(0, 0.01, n.size))
    a, k, k_err = fit_power_law(n, sigma)
    assert k == pytest.approx(0.5, abs=0.02) and a == pytest.approx(0.01, rel=0.05) and k_err < 0.02


def test_report_writes_tables_and_figures(tmp_path, data_dir, capsys):
    spec = spec_for(data_dir, seeds=(0, 1), name="rep")
    spec["axes"]["noise_sigma"] = [0.0, 0.01, 1.0]
    spec["axes"]["noise_samples"] = [1, 4]
    run_sweep(spec, tmp_path / "res", n_workers=2, progress=False)
    assert main(["sweep-report", str(tmp_path / "res")]) == 0
    out = capsys.readouterr().out
    assert "critical sigma" in out
    for name in ("runs.csv", "critical_levels.csv", "accuracy_vs_noise.png", "critical_vs_samples.png"):
        assert (tmp_path / "res" / name).exists(), name


def test_a_sweep_can_tune_on_a_validation_split_without_reading_the_test_set(tmp_path, data_dir):
    spec = spec_for(data_dir, seeds=(0,))
    spec["base"].update(validation=8, limit_test=1)
    assert run_sweep(spec, tmp_path / "res", n_workers=1, progress=False)["ok"] == 1
    record = json.loads(next((tmp_path / "res" / "runs").glob("*.json")).read_text())
    assert record["evaluated_on"] == "validation: the last 8 training images"
    spec["base"]["validation"] = 10 ** 6
    spec["name"] = "too-many"
    assert run_sweep(spec, tmp_path / "res2", n_workers=1, progress=False)["failed"] == 1
