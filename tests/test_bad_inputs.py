"""Every kind of bad input gets a clear error, loses nothing and never crashes the caller.

One test (or parametrised family) per kind in the README's "What circuitprop refuses" table.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest
from conftest import fit_run, write_idx, write_two_class_mnist

from circuitprop.backends import FastBackend
from circuitprop.backends.base import ConvergenceError
from circuitprop.backends.spice import (
    SpiceBackend,
    SpiceError,
    SpiceOptions,
    check_solution,
    operating_point_isolated,
    simulated_network,
)
from circuitprop.cli import main
from circuitprop.io import datasets
from circuitprop.io.safety import OutputLock
from circuitprop.learning import EPTrainer
from circuitprop.learning.diagnostics import DeadNetworkWarning, dead_state
from circuitprop.model import DiodeModel, Network, NetworkError, architecture_to_dict, make_architecture, parse_layers
from circuitprop.netlist import parse_netlist
from circuitprop.netlist.circuit import Circuit
from circuitprop.netlist.reader import NetlistError
from circuitprop.studies.sweep import SweepError, check_spec, finished_ids, load_results, run_sweep


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_two_class_mnist(tmp_path_factory.mktemp("data"), 400, 40)


@pytest.fixture
def unverified(monkeypatch, data_dir):
    """Generated files pass the MD5 check (they are not the official ones)."""
    sums = {p.name: datasets._md5(p) for p in (data_dir / "mnist").iterdir()}
    monkeypatch.setitem(datasets.MD5, "mnist", sums)
    return data_dir


def train_args(data_dir, out, *extra):
    return ["train", "--data-dir", str(data_dir), "--size", "4", "--layers", "16-4-10", "--epochs", "1",
            "--batch-size", "8", "--lr", "1e4", "--limit-test", "20", "-o", str(out), *extra]


# -- 1. ngspice crashes --------------------------------------------------------------------------------

def test_reserved_ngspice_names_are_refused():
    with pytest.raises(NetlistError, match="'temper' is a name ngspice reserves"):
        parse_netlist("* t\nV1 temper 0 1\nR1 temper 0 1k\n.end\n")


def test_an_ngspice_crash_does_not_kill_the_caller():
    # ngspice 39 segfaults on a node named temper; the reader refuses it, so build the circuit directly
    circuit = Circuit("crash")
    circuit.add("V", "v1", ("temper", "0"), 1.0)
    circuit.add("R", "r1", ("temper", "0"), 1e3)
    with pytest.raises(SpiceError):
        operating_point_isolated(circuit)
    good = Circuit("divider")
    good.add("V", "v1", ("a", "0"), 1.0)
    good.add("R", "r1", ("a", "b"), 1e3)
    good.add("R", "r2", ("b", "0"), 3e3)
    assert operating_point_isolated(good)["b"] == pytest.approx(0.75, abs=1e-9)  # and we are still alive


# -- 2, 3, 10. training outputs --------------------------------------------------------------------------

def test_train_refuses_to_delete_an_existing_checkpoint(unverified, tmp_path, capsys):
    out = tmp_path / "m.npz"
    assert main(train_args(unverified, out)) == 0
    ckpt = tmp_path / "m.ckpt.npz"
    before = ckpt.read_bytes()
    assert main(train_args(unverified, out)) == 2
    assert "checkpoint" in capsys.readouterr().err and ckpt.read_bytes() == before
    assert main(train_args(unverified, out, "--overwrite")) == 0


def test_train_on_a_validation_split_never_reads_the_test_set(unverified, tmp_path, capsys):
    train_only = tmp_path / "data"
    (train_only / "mnist").mkdir(parents=True)
    for f in (unverified / "mnist").glob("train-*"):
        shutil.copy(f, train_only / "mnist" / f.name)
    args = [a for a in train_args(train_only, tmp_path / "m.npz") if a not in ("--limit-test", "20")]
    assert main(args + ["--validation", "100"]) == 0
    out = capsys.readouterr().out
    assert "300 images" in out and "validation accuracy (fast backend, validation: the last 100 training images)" in out
    assert main(args + ["--validation", "100", "--limit-test", "20", "--overwrite"]) == 2
    assert "--validation does not read" in capsys.readouterr().err
    assert main(args + ["--validation", "400", "--overwrite"]) == 2
    assert "must be below the 400 training images" in capsys.readouterr().err


def test_train_creates_missing_folders_and_checks_writability_first(unverified, tmp_path, capsys):
    out = tmp_path / "new" / "deeper" / "m.npz"
    assert main(train_args(unverified, out)) == 0
    assert out.exists() and (out.parent / "m.log.jsonl").exists()
    locked = tmp_path / "ro"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):  # root ignores permissions: use a path under a file instead
            target = tmp_path / "afile"
            target.write_text("x")
            out = target / "m.npz"
        else:
            out = locked / "m.npz"
        t0 = time.perf_counter()
        assert main(train_args(unverified, out)) == 2
        assert "cannot write" in capsys.readouterr().err
        assert time.perf_counter() - t0 < 5  # refused before loading data or training
    finally:
        locked.chmod(0o700)


def test_two_trainings_on_one_output_the_second_refuses(unverified, tmp_path, capsys):
    out = tmp_path / "m.npz"
    with OutputLock(out):
        assert main(train_args(unverified, out)) == 2
    assert "being written by another training" in capsys.readouterr().err
    assert not (tmp_path / "m.ckpt.npz").exists()
    assert main(train_args(unverified, out)) == 0  # the lock is gone with its holder
    assert not (tmp_path / ".m.npz.lock").exists()


# -- 4. Ctrl-C with ngspice in the loop ------------------------------------------------------------------

#: The child starts with the default dispositions: run under nohup or as a background job, the test itself
#: inherits SIGHUP or SIGINT ignored, which the trainer then rightly keeps ignored (tested on its own below).
RESET_SIGNALS = ("import signal; signal.signal(signal.SIGHUP, signal.SIG_DFL); "
                 "signal.signal(signal.SIGINT, signal.default_int_handler); ")


def test_ctrl_c_during_spice_training_stops_with_the_checkpoint_saved(unverified, tmp_path):
    out = tmp_path / "m.npz"
    code = (RESET_SIGNALS + "import sys; from circuitprop.io import datasets; from circuitprop.cli import main; "
            f"datasets.MD5['mnist'] = {json.dumps(datasets.MD5['mnist'])}; "
            "sys.exit(main(sys.argv[1:]))")
    args = train_args(unverified, out, "--backend", "spice")
    args[args.index("--epochs") + 1] = "50"
    proc = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().startswith("training")
    time.sleep(2.0)
    proc.send_signal(signal.SIGINT)
    t0 = time.perf_counter()
    stdout, stderr = proc.communicate(timeout=60)
    assert time.perf_counter() - t0 < 15
    assert proc.returncode == 130, stderr
    assert "checkpoint" in stdout and "saved" in stdout
    trainer = EPTrainer.from_checkpoint(tmp_path / "m.ckpt.npz", verbose=False)
    assert trainer.position_[0] * 50 + trainer.position_[1] > 0


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_stop_training_like_ctrl_c(unverified, tmp_path, signum):
    """kill, timeout, SLURM and docker stop send SIGTERM; a closed terminal SIGHUP: the run saves its checkpoint
    after the current batch and exits with 128 + the signal; --resume then finishes it."""
    out = tmp_path / "m.npz"
    code = (RESET_SIGNALS + "import sys; from circuitprop.io import datasets; from circuitprop.cli import main; "
            f"datasets.MD5['mnist'] = {json.dumps(datasets.MD5['mnist'])}; "
            "sys.exit(main(sys.argv[1:]))")
    args = train_args(unverified, out)
    args[args.index("--epochs") + 1] = "1000000"  # cannot finish before the signal (400 epochs once did, in 1.5 s)
    proc = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().startswith("training")
    time.sleep(1.5)
    proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signum, stderr
    assert f"interrupted ({signal.Signals(signum).name})" in stdout and "saved" in stdout
    trainer = EPTrainer.from_checkpoint(tmp_path / "m.ckpt.npz", verbose=False)
    assert trainer.position_ != (0, 0)
    assert trainer.position_[0] < 400


# -- 5. model files --------------------------------------------------------------------------------------

def small_net():
    return Network.random(make_architecture("3-2-2"), seed=0)


def rewrite_npz(src, dst, members):
    """Copy an npz, replacing/adding members given as {name: bytes or ndarray} (None removes)."""
    import io
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            name = info.filename[:-4]
            if name not in members:
                zout.writestr(info, zin.read(info))
        for name, value in members.items():
            if value is None:
                continue
            buf = io.BytesIO()
            np.save(buf, value)
            zout.writestr(name + ".npy", buf.getvalue())


def spec_array(spec):
    return np.frombuffer(json.dumps(spec).encode(), dtype=np.uint8)


def test_model_file_with_unknown_member_is_refused(tmp_path):
    src = small_net().save(tmp_path / "m.npz")
    rewrite_npz(src, tmp_path / "bad.npz", {"payload": np.zeros(3)})
    with pytest.raises(NetworkError, match="unknown member"):
        Network.load(tmp_path / "bad.npz")


def test_model_file_member_larger_than_declared_is_not_decompressed(tmp_path):
    src = small_net().save(tmp_path / "m.npz")
    rewrite_npz(src, tmp_path / "bomb.npz", {"g_0_1": np.zeros((2000, 1000))})  # 16 MB of zeros, ~16 kB zipped
    assert (tmp_path / "bomb.npz").stat().st_size < 100_000
    with pytest.raises(NetworkError, match="declares .* bytes"):
        Network.load(tmp_path / "bomb.npz")


@pytest.mark.parametrize("change, message", [
    (lambda spec: [1, 2], "JSON list"),
    (lambda spec: {**spec, "architecture": 5}, "architecture spec must be an object"),
    (lambda spec: {**spec, "architecture": {**spec["architecture"], "crossbars": [[0, 1, 2], [1, 2]]}},
     r"crossbars must be a list of \[a, b\] pairs"),
    (lambda spec: {**spec, "architecture": {**spec["architecture"], "doubled_inputs": "yes"}},
     "doubled_inputs must be true or false"),
    (lambda spec: {**spec, "architecture": {**spec["architecture"], "input_gain": 1e300}}, "magnitudes up to"),
])
def test_malformed_model_specs_are_named(tmp_path, change, message):
    net = small_net()
    src = net.save(tmp_path / "m.npz")
    spec = {"format": "circuitprop-network", "version": 1, "architecture": architecture_to_dict(net.architecture)}
    rewrite_npz(src, tmp_path / "bad.npz", {"__spec__": spec_array(change(spec))})
    with pytest.raises(NetworkError, match=message):
        Network.load(tmp_path / "bad.npz")


def test_complex_and_misshaped_conductances_are_refused(tmp_path):
    net = small_net()
    with pytest.raises(NetworkError, match="real numbers"):
        Network(net.architecture, {k: v.astype(complex) for k, v in net.conductances.items()})
    src = net.save(tmp_path / "m.npz")
    rewrite_npz(src, tmp_path / "c.npz", {"g_0_1": net.conductances[(0, 1)].astype(complex)})
    with pytest.raises(NetworkError, match="dtype complex128"):
        Network.load(tmp_path / "c.npz")
    rewrite_npz(src, tmp_path / "s.npz", {"g_0_1": net.conductances[(0, 1)][:1]})
    with pytest.raises(NetworkError, match=r"has shape \(1, 2\), expected \(6, 2\)"):
        Network.load(tmp_path / "s.npz")
    with pytest.raises(NetworkError, match="pair of layers"):
        Network(net.architecture, {(0, 1, 2): net.conductances[(0, 1)]})


# -- 6. silent wrong results -------------------------------------------------------------------------------

def test_absurd_voltages_are_refused_not_solved():
    with pytest.raises(NetworkError, match="input_gain"):
        Network.random(make_architecture("3-2-2", input_gain=1e300), seed=0)
    net = small_net()
    with pytest.raises(NetworkError, match="sample 1, feature 2"):
        FastBackend().solve(net, np.array([[0.0, 0, 0], [0, 0, 1e300]]))


def test_spice_solutions_are_checked_against_kcl():
    net = Network.random(make_architecture("4-3-2", diode=DiodeModel("ideal"), amplifier_gain=2.0),
                         g_min=1e-6, g_max=1e-5, seed=1)
    x = np.random.default_rng(0).uniform(0, 1, (3, 4))
    sol = SpiceBackend().solve(net, x)
    assert np.isfinite(sol.residual) and sol.residual < 1e-12  # the SPICE diode, not inf
    wrong = [v.copy() for v in sol.voltages]
    wrong[1][1, 2] += 1e-3  # one node off by a millivolt
    with pytest.raises(ConvergenceError, match="violate KCL at node n1_2 of sample 1"):
        check_solution(simulated_network(net), wrong, None, SpiceOptions(), what="test")
    wrong[1][1, 2] = np.nan
    with pytest.raises(ConvergenceError, match="non-finite"):
        check_solution(simulated_network(net), wrong, None, SpiceOptions(), what="test")


def test_op_on_ideal_diode_model_prints_a_finite_residual(tmp_path, capsys):
    model = tmp_path / "m.npz"
    assert main(["init", "--layers", "3-2-2", "--diode", "ideal", "-o", str(model)]) == 0
    assert main(["op", str(model), "--backend", "spice", "--inputs", "1,0.5,0.2"]) == 0
    err = capsys.readouterr().err
    residual = float(err.split("residual")[1].split()[0])
    assert np.isfinite(residual) and residual < 1e-12


def test_netlist_node_without_dc_path_is_refused():
    with pytest.raises(NetlistError, match="node.* b have no DC path"):
        parse_netlist("* t\nV1 a 0 1\nR1 a 0 1k\nI1 0 b 1m\n.end\n")


# -- 7. layer specs ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("spec", ["784--10", "-5-3", "4_0-3-2", "\u0664-3-2", "5-3-", "5", "5-0-3", " ", "5-3x"])
def test_bad_layer_specs_are_refused(spec):
    with pytest.raises(NetworkError, match="layer spec"):
        parse_layers(spec)


def test_huge_layer_spec_says_how_much_memory_it_needs(tmp_path, capsys):
    assert main(["init", "--layers", "100000-100000-10", "-o", str(tmp_path / "m.npz")]) == 2
    err = capsys.readouterr().err
    assert "GiB for the conductances" in err and "MemoryError" not in err


# -- 8. command-line values ------------------------------------------------------------------------------------

@pytest.mark.parametrize("option, value", [
    ("--limit-train", "0"), ("--limit-test", "-3"), ("--size", "0"), ("--size", "-1"), ("--size", "5"),
    ("--lr", "-1"), ("--lr", "nan"), ("--lr", "inf"), ("--beta", "inf"), ("--beta", "0"), ("--target", "nan"),
    ("--epochs", "-1"), ("--batch-size", "0"), ("--momentum", "1"), ("--noise-sigma", "-0.1"),
    ("--noise-samples", "0"), ("--g-min", "-1e-8"), ("--solver-sweeps", "1000000000"), ("--diode-is", "1e10")])
def test_bad_cli_values_fail_at_parse_time(option, value, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", option, value])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert re.search(f"argument (--[a-z-]+/)?{option}", err), err


# -- 9. checkpoints -----------------------------------------------------------------------------------------------

def ckpt_trainer(**kw):
    params = dict(layers="5-4-3", epochs=2, batch_size=4, verbose=False, learning_rate=1e3, g_init=(1e-6, 1e-5))
    params.update(kw)
    return EPTrainer(**params)


def test_resumed_epoch_logs_the_loss_of_the_whole_epoch(tmp_path):
    rng = np.random.default_rng(0)
    X, y = rng.uniform(0, 1, (40, 5)), rng.integers(0, 3, 40)
    full = ckpt_trainer().fit(X, y)
    ckpt = tmp_path / "c.npz"
    fit_run(ckpt_trainer(), X, y, checkpoint=ckpt, stop_after_batches=10)  # stopped exactly at the end of epoch 1
    fit_run(ckpt_trainer(), X, y, checkpoint=ckpt, stop_after_batches=3, resume=True)  # and again inside epoch 2
    resumed = fit_run(ckpt_trainer(), X, y, checkpoint=ckpt, resume=True, log=tmp_path / "log.jsonl")
    assert [h["train_loss"] for h in resumed.history_] == pytest.approx([h["train_loss"] for h in full.history_],
                                                                          rel=1e-12)
    for line in (tmp_path / "log.jsonl").read_text().splitlines():
        assert np.isfinite(json.loads(line)["train_loss"])


@pytest.mark.parametrize("damage, message", [
    (lambda spec, arrays: arrays.update(g_0_1=arrays["g_0_1"][:1]), r"has shape \(1, 4\), expected \(12, 4\)"),
    (lambda spec, arrays: spec.pop("params"), "no 'params' entry"),
    (lambda spec, arrays: spec.pop("rng"), "no 'rng' entry"),
    (lambda spec, arrays: spec["params"].pop("beta"), "lack"),
    (lambda spec, arrays: spec.update(rng={"bit_generator": "nonsense"}), "RNG state is malformed"),
    (lambda spec, arrays: arrays.pop("g_1_2"), "lacks conductance"),
    (lambda spec, arrays: spec.update(position=[0, -1]), "position"),
])
def test_damaged_checkpoints_are_named(tmp_path, damage, message):
    rng = np.random.default_rng(0)
    X, y = rng.uniform(0, 1, (8, 5)), rng.integers(0, 3, 8)
    ckpt = tmp_path / "c.npz"
    fit_run(ckpt_trainer(epochs=1), X, y, checkpoint=ckpt)
    with zipfile.ZipFile(ckpt) as zf:
        import io
        arrays = {i.filename[:-4]: np.load(io.BytesIO(zf.read(i))) for i in zf.infolist()}
    spec = json.loads(arrays.pop("__spec__").tobytes())
    damage(spec, arrays)
    np.savez(tmp_path / "bad.npz", __spec__=spec_array(spec), **arrays)
    with pytest.raises(ValueError, match=message):
        fit_run(ckpt_trainer(), X, y, checkpoint=tmp_path / "bad.npz", resume=True)


def test_stale_temporaries_are_removed_on_start(tmp_path):
    rng = np.random.default_rng(0)
    X, y = rng.uniform(0, 1, (8, 5)), rng.integers(0, 3, 8)
    ckpt = tmp_path / "c.npz"
    stale = tmp_path / ".c.npz.k1ll3d.tmp"  # what a kill -9 during atomic_write_bytes leaves
    stale.write_bytes(b"half a checkpoint")
    other = tmp_path / ".other.npz.x.tmp"
    other.write_bytes(b"not ours")
    fit_run(ckpt_trainer(epochs=1), X, y, checkpoint=ckpt)
    assert not stale.exists() and other.exists() and ckpt.exists()


# -- 11. eval needs only the test files ---------------------------------------------------------------------------

def test_eval_needs_only_the_test_files(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "kmnist"
    folder.mkdir()
    rng = np.random.default_rng(0)
    write_idx(folder / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (12, 28, 28)))
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", rng.integers(0, 10, 12))
    sums = {p.name: datasets._md5(p) for p in folder.iterdir()}
    monkeypatch.setitem(datasets.MD5, "kmnist", {**datasets.MD5["kmnist"], **sums})
    monkeypatch.setattr(datasets, "URLS", {})  # offline: nothing is downloaded
    model = tmp_path / "m.npz"
    assert main(["init", "--layers", "16-4-10", "-o", str(model)]) == 0
    capsys.readouterr()
    assert main(["eval", str(model), "--dataset", "kmnist", "--data-dir", str(tmp_path), "--energy", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["images"] == 12 and 0 <= result["accuracy"] <= 1
    assert 0 < result["static_power_W_min"] <= result["static_power_W_mean"] <= result["static_power_W_max"]
    assert main(["train", "--dataset", "kmnist", "--data-dir", str(tmp_path), "--size", "4", "--layers", "16-4-10",
                 "-o", str(tmp_path / "t.npz")]) == 2
    assert "train-images-idx3-ubyte.gz" in capsys.readouterr().err


# -- 12. netlist values -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, message", [
    ("* t\n.param p=-2\nV1 a 0 1\nR1 a 0 {1*p}\n.end\n", "resistance -2 ohm \\(via parameter 'p'\\)"),
    ("* t\n.param p=2\nV1 a 0 1\nR1 a 0 {-1*p}\n.end\n", "resistance -2 ohm"),
    ("* t\nV1 a 0 1\nR1 a 0 1e-300\n.end\n", "must be > 0"),
    ("* t\nV1 a 0 1\nD1 a 0 dd\n.model dd D(IS=0)\n.end\n", "IS = 0 A is outside"),
    ("* t\nV1 a 0 1\nD1 a 0 dd\n.model dd D(IS=-1e-12)\n.end\n", "IS = -1e-12 A is outside"),
    ("* t\nV1 a 0 1\nD1 a 0 dd\n.model dd D(IS=1e-12 RS=1e30)\n.end\n", "RS = 1e\\+30 ohm is outside"),
    ("* t\nV1 a 0 1\nD1 a 0 dd\n.model dd D(IS=1e-12 N=0)\n.end\n", "N = 0 is outside"),
    ("* t\nV1 a 0 1e300\nR1 a 0 1k\n.end\n", "accepts up to"),
])
def test_netlist_values_that_make_no_circuit_are_refused(text, message):
    with pytest.raises(NetlistError, match=message):
        parse_netlist(text)


def test_over_long_netlist_line_is_reported_without_echoing_it():
    line = "R1 a 0 " + "9" * 50_000
    with pytest.raises(NetlistError) as exc:
        parse_netlist(f"* t\nV1 a 0 1\n{line}\n.end\n")
    assert "50007 characters" in str(exc.value) and len(str(exc.value)) < 300
    with pytest.raises(NetlistError) as exc:
        parse_netlist("* t\nV1 a 0 1\nR1 a 0 " + "1" * 5000 + "x\n.end\n")
    assert len(str(exc.value)) < 300


# -- 13. sweeps -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["/tmp/evil", "../evil", "a/../../b", "a/b", "..", ""])
def test_sweep_names_stay_inside_the_results_folder(name):
    with pytest.raises(SweepError, match="plain folder name"):
        check_spec({"name": name})


def test_sweep_spec_sections_must_be_tables():
    with pytest.raises(SweepError, match="base must be a table"):
        check_spec({"base": 5})
    with pytest.raises(SweepError, match="axes must be a table"):
        check_spec({"axes": [1, 2]})


def test_empty_run_file_is_not_done_and_report_names_bad_files(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "0123456789abcdef.json").write_bytes(b"")
    assert finished_ids(tmp_path) == set()
    with pytest.raises(SweepError, match="0123456789abcdef.json: not a complete run result"):
        load_results(tmp_path)


def test_sweep_without_dask_says_which_extra_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    spec = {"name": "t", "base": {"epochs": 1}, "axes": {"seed": [0]}}
    with pytest.raises(SweepError, match=r"circuitprop\[sweep\]"):
        run_sweep(spec, tmp_path / "res", progress=False)


# -- 14. dead networks ------------------------------------------------------------------------------------------

def test_a_dead_network_is_detected_and_warned_about():
    rng = np.random.default_rng(0)
    X, y = rng.uniform(0, 1, (64, 5)), rng.integers(0, 3, 64)
    healthy = ckpt_trainer(epochs=1, learning_rate=10.0, diode="ideal")
    healthy.fit(X, y)
    assert dead_state(healthy, X) == ""
    dead = ckpt_trainer(epochs=1, learning_rate=10.0, diode="ideal").fit(X, y)
    g = dead.network_.conductances[(0, 1)]
    n = dead.network_.architecture.n_features
    g[:n] = dead.g_min      # the +x inputs barely reach the hidden layer
    g[n:] = dead.g_max      # the -x inputs and the -1 V bias pull every neuron below 0 V: all clipped
    message = dead_state(dead, X)
    assert "every neuron of hidden layer 1 is at 0 V" in message and "learning rate" in message
    with pytest.warns(DeadNetworkWarning, match="dead"):  # the run's check after each epoch
        fit_run(ckpt_trainer(epochs=1, learning_rate=1e12, diode="ideal"), X, y)


# -- input files on the command line --------------------------------------------------------------------------

def test_bad_input_arrays_are_refused(tmp_path, capsys):
    model = tmp_path / "m.npz"
    assert main(["init", "--layers", "3-2-2", "-o", str(model)]) == 0
    np.save(tmp_path / "x3.npy", np.zeros((2, 2, 3)))
    np.save(tmp_path / "c.npy", np.zeros((1, 3), complex))
    np.save(tmp_path / "o.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    for name, message in (("x3.npy", "2-D"), ("c.npy", "dtype complex128"), ("o.npy", "cannot read inputs")):
        capsys.readouterr()
        assert main(["op", str(model), "--backend", "fast", "--inputs", str(tmp_path / name)]) == 2
        assert message in capsys.readouterr().err
    assert main(["export", str(model), "--fold-inputs"]) == 2
    assert "--fold-inputs needs --inputs" in capsys.readouterr().err


def test_a_full_disk_names_the_file_and_a_resumed_run_logs_each_epoch_once(tmp_path, monkeypatch):
    """The checkpoint of epoch 1 cannot be written (ENOSPC): the error names the file, the previous checkpoint
    stays, the epoch is not logged; the resumed run then logs epochs 1 and 2 once each."""
    import errno
    rng = np.random.default_rng(0)
    X, y = rng.uniform(0, 1, (40, 5)), rng.integers(0, 3, 40)
    ckpt, log = tmp_path / "m.ckpt.npz", tmp_path / "m.log.jsonl"
    fit_run(ckpt_trainer(epochs=2, batch_size=8), X, y, checkpoint=ckpt, log=log, stop_after_batches=2)
    before = ckpt.read_bytes()
    real_fsync = os.fsync

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match=f"cannot write {ckpt} .*No space left on device"):
        fit_run(ckpt_trainer(epochs=2, batch_size=8), X, y, checkpoint=ckpt, log=log, resume=True)
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert ckpt.read_bytes() == before and not log.exists()
    assert not list(tmp_path.glob(".m.ckpt.npz.*.tmp"))
    fit_run(ckpt_trainer(epochs=2, batch_size=8), X, y, checkpoint=ckpt, log=log, resume=True)
    assert [json.loads(line)["epoch"] for line in log.read_text().splitlines()] == [1, 2]


def test_an_ignored_sighup_stays_ignored_under_nohup():
    """nohup starts a command with SIGHUP ignored; circuitprop's handlers must not make it react to it."""
    from circuitprop.io.safety import DeferredInterrupt, StopOnSignal
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with StopOnSignal(), DeferredInterrupt():
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGHUP)  # ignored: nothing happens
    finally:
        signal.signal(signal.SIGHUP, previous)
