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
