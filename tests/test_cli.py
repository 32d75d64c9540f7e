"""The command line, run in-process."""
import pytest

from circuitprop.cli import main
from circuitprop.model import Network


def test_init_export_op(tmp_path, capsys):
    model = tmp_path / "m.npz"
    assert main(["init", "--layers", "3-2-2", "--amplifier-gain", "2", "--diode", "shockley", "-o", str(model)]) == 0
    net = Network.load(model)
    assert net.layer_sizes == (8, 2, 4)  # +x, -x, and the +1 V and -1 V bias inputs (on by default, as in train)
    for fmt in ("ngspice", "xyce", "ltspice", "spectre"):
        assert main(["export", str(model), "--format", fmt, "-o", str(tmp_path / f"m.{fmt}")]) == 0
    assert "x_0" in (tmp_path / "m.ngspice").read_text()
    net_cir = tmp_path / "in.cir"
    assert main(["export", str(model), "--inputs", "1,0.5,0.2", "-o", str(net_cir)]) == 0
    capsys.readouterr()
    assert main(["op", str(net_cir)]) == 0
    spice_csv = capsys.readouterr().out.splitlines()
    assert main(["op", str(model), "--backend", "fast", "--inputs", "1,0.5,0.2"]) == 0
    fast_csv = capsys.readouterr().out.splitlines()
    spice = {ln.split(",")[0]: float(ln.split(",")[1]) for ln in spice_csv[1:]}
    fast = {ln.split(",")[1]: float(ln.split(",")[2]) for ln in fast_csv[1:]}
    for name, v in fast.items():
        assert spice[name] == pytest.approx(v, abs=1e-6)


def test_op_refuses_dangerous_netlist(tmp_path, capsys):
    evil = tmp_path / "evil.cir"
    evil.write_text("* evil\nV1 a 0 1\n.control\nshell touch /tmp/pwned\n.endc\n.end\n")
    assert main(["op", str(evil)]) == 2
    assert "refused" in capsys.readouterr().err


def test_clear_errors(tmp_path, capsys):
    assert main(["op", str(tmp_path / "missing.npz")]) == 2
    assert "no such file" in capsys.readouterr().err
    model = tmp_path / "m.npz"
    main(["init", "--layers", "3-2-2", "-o", str(model)])
    assert main(["op", str(model), "--inputs", "1,2"]) == 2
    assert "network has 3 features" in capsys.readouterr().err
    assert main(["init", "--layers", "3-x-2", "-o", str(model)]) == 2
    assert "layer spec" in capsys.readouterr().err


def test_help_mentions_every_command(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for cmd in ("init", "export", "op", "train", "eval"):
        assert cmd in out


def test_eval_prints_a_summary_and_json_on_request(tmp_path, capsys):
    import json

    from conftest import write_two_class_mnist

    from circuitprop.io import datasets
    data = write_two_class_mnist(tmp_path, 40, 12)
    sums = {p.name: datasets._md5(p) for p in (data / "mnist").iterdir()}
    datasets.MD5["mnist"], saved = sums, datasets.MD5["mnist"]
    try:
        model = tmp_path / "m.npz"
        assert main(["init", "--layers", "784-4-10", "-o", str(model)]) == 0
        capsys.readouterr()
        assert main(["eval", str(model), "--data-dir", str(data), "--energy"]) == 0
        text = capsys.readouterr().out
        assert "accuracy" in text and "% on 12 mnist test images (fast backend)" in text and "mW" in text
        assert main(["eval", str(model), "--data-dir", str(data), "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["images"] == 12
    finally:
        datasets.MD5["mnist"] = saved


def test_help_shows_each_default_once_and_every_option_has_help(capsys):
    for command in ("init", "export", "op", "train", "eval", "sweep", "sweep-report", "demo"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = capsys.readouterr().out
        assert text.count("(default: None)") == 0, command
        assert "examples:" in text, command
        parser_text = " ".join(text.split())
        assert "default: model name with the dialect's suffix) (default" not in parser_text
    from circuitprop.cli import build_parser
    for action in build_parser()._subparsers._group_actions[0].choices["train"]._actions:
        assert action.help, action.option_strings


def test_version(capsys):
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.startswith("circuitprop 0.")


def test_output_into_a_closed_pipe_is_not_an_error(tmp_path):
    import subprocess
    import sys
    model = tmp_path / "m.npz"
    assert main(["init", "--layers", "784-10-10", "-o", str(model)]) == 0
    proc = subprocess.run(f"{sys.executable} -m circuitprop op {model} --backend fast | head -2", shell=True,
                          capture_output=True, text=True)
    assert proc.stdout.splitlines() == ["sample,node,voltage_V", "0,n0_0,0"]
    assert "Broken pipe" not in proc.stderr and "Traceback" not in proc.stderr


def test_off_a_terminal_progress_is_plain_lines():
    import io

    from circuitprop.io.progress import progress
    stream = io.StringIO()
    bar = progress(range(5), total=5, desc="epoch 1/2", interval=0.0, stream=stream)
    bar.set_postfix(loss="1.2e-05")
    assert list(bar) == [0, 1, 2, 3, 4]
    lines = stream.getvalue().splitlines()
    assert lines[-1].startswith("epoch 1/2: 5/5 (100 %), ") and lines[-1].endswith("loss=1.2e-05")
    quiet = io.StringIO()
    assert list(progress(range(3), enabled=False, stream=quiet)) == [0, 1, 2] and quiet.getvalue() == ""


@pytest.mark.parametrize("fmt, magic", [("png", b"\x89PNG"), ("pdf", b"%PDF"), ("svg", b"<?xml")])
def test_figures_are_written_in_the_format_their_name_says(tmp_path, fmt, magic):
    from circuitprop.studies.plots import plot_training_curve
    path = plot_training_curve([{"epoch": 1, "train_loss": 3e-5, "test_accuracy": 0.96}], tmp_path / f"c.{fmt}")
    assert path.read_bytes().startswith(magic)
    with pytest.raises(ValueError, match="not '.jpg'"):
        plot_training_curve([{"epoch": 1, "train_loss": 3e-5}], tmp_path / "c.jpg")


def test_init_takes_a_backward_gain_per_hidden_layer(tmp_path):
    model = tmp_path / "m.npz"
    assert main(["init", "--layers", "3-2-2-2", "--amplifier-gain", "4", "--backward-gain", "0.25", "0.5",
                 "-o", str(model)]) == 0
    assert [h.current_gain for h in Network.load(model).architecture.hidden] == [0.25, 0.5]
    with pytest.raises(SystemExit) as stop:
        main(["init", "--layers", "3-2-2", "--backward-gain", "-1", "-o", str(model)])
    assert stop.value.code == 2


def test_init_drops_a_crossbar_and_names_a_bad_drop(tmp_path, capsys):
    model = tmp_path / "m.npz"
    assert main(["init", "--layers", "3-2-2-2", "--drop", "1-2", "--skip", "0-2", "--skip", "1-3",
                 "-o", str(model)]) == 0
    assert Network.load(model).architecture.crossbars == ((0, 1), (2, 3), (0, 2), (1, 3))
    capsys.readouterr()
    for bad, says in ((["--drop", "0-2"], "cannot drop crossbar 0-2"), (["--drop", "1-2"], "layer 2 has no DC path")):
        assert main(["init", "--layers", "3-2-2-2", *bad, "-o", str(tmp_path / "bad.npz")]) == 2
        assert says in capsys.readouterr().err
    assert not (tmp_path / "bad.npz").exists()
