"""Crossbars with wire resistance: port reduction, fast solver vs ngspice, power, the learning rule."""
from dataclasses import replace

import numpy as np
import pytest

from circuitprop.backends.fast import FastBackend
from circuitprop.backends.spice import SpiceBackend, SpiceOptions, source_power
from circuitprop.model import DiodeModel, Network, NetworkError, compensated_bias, make_architecture
from circuitprop.model.energy import cocontent, conductance_gradient, kcl_residual, static_power
from circuitprop.model.wires import CrossbarLines, cell_drops
from circuitprop.netlist import build_circuit


def _dense_line_matrix(g, wire):
    """Independent nodal matrix of ports + line nodes, built element by element (loops, no tricks)."""
    m, n = g.shape
    names = [("p_row", i) for i in range(m)] + [("p_col", j) for j in range(n)]
    names += [("r", i, j) for i in range(m) for j in range(n)] + [("c", i, j) for i in range(m) for j in range(n)]
    index = {k: i for i, k in enumerate(names)}
    y = np.zeros((len(names), len(names)))

    def resistor(p, q, conductance):
        i, j = index[p], index[q]
        y[i, i] += conductance
        y[j, j] += conductance
        y[i, j] -= conductance
        y[j, i] -= conductance

    for i in range(m):
        for j in range(n):
            resistor(("r", i, j), ("c", i, j), g[i, j])
            resistor(("p_row", i) if j == 0 else ("r", i, j - 1), ("r", i, j), 1.0 / wire)
            resistor(("c", i, j), ("p_col", j) if i == m - 1 else ("c", i + 1, j), 1.0 / wire)
    return y, m + n


def test_port_matrices_are_the_schur_complement_of_the_line_network():
    rng = np.random.default_rng(0)
    g = rng.uniform(1e-6, 1e-4, (4, 3))
    wire = 20.0
    y, p = _dense_line_matrix(g, wire)
    schur = y[:p, :p] - y[:p, p:] @ np.linalg.solve(y[p:, p:], y[p:, :p])
    lines = CrossbarLines(g, wire)
    rc, cc = lines.column_ports
    assert np.allclose(lines.row_ports, schur[:4, :4], rtol=1e-10, atol=1e-16)
    assert np.allclose(rc, schur[:4, 4:], rtol=1e-10, atol=1e-16)
    assert np.allclose(cc, schur[4:, 4:], rtol=1e-10, atol=1e-16)
    # equal port voltages drive no current (each row of the full port matrix sums to zero)
    full = np.block([[lines.row_ports, rc], [rc.T, cc]])
    assert np.max(np.abs(full.sum(axis=1))) < 1e-12 * np.abs(full).max()


def test_tiny_wire_resistance_gives_the_ideal_crossbar():
    g = np.random.default_rng(1).uniform(1e-7, 1e-5, (30, 7))
    lines = CrossbarLines(g, 1e-6)
    rc, cc = lines.column_ports
    assert np.allclose(rc, -g, rtol=1e-6)
    assert np.allclose(np.diag(cc), g.sum(0), rtol=1e-6)
    assert np.allclose(lines.row_ports, np.diag(g.sum(1)), rtol=1e-6, atol=1e-6 * g.max())


def test_line_voltages_satisfy_kcl_at_every_line_node():
    rng = np.random.default_rng(2)
    g = rng.uniform(1e-6, 1e-4, (5, 4))
    wire = 30.0
    lines = CrossbarLines(g, wire)
    u, v = rng.uniform(-1, 1, (2, 5)), rng.uniform(-1, 1, (2, 4))
    rows, cols = lines.line_voltages(u, v)
    gw = 1.0 / wire
    row_left = np.concatenate([u[:, :, None], rows[:, :, :-1]], axis=2)
    row_right = np.concatenate([rows[:, :, 1:], rows[:, :, -1:]], axis=2)  # last node: no segment on the right
    kcl_rows = gw * (rows - row_left) + gw * (rows - row_right) + g * (rows - cols)
    col_up = np.concatenate([cols[:, :1, :], cols[:, :-1, :]], axis=1)  # first node: no segment above
    col_down = np.concatenate([cols[:, 1:, :], v[:, None, :]], axis=1)
    kcl_cols = gw * (cols - col_up) + gw * (cols - col_down) + g * (cols - rows)
    scale = gw * 1.0
    assert np.max(np.abs(kcl_rows)) < 1e-12 * scale
    assert np.max(np.abs(kcl_cols)) < 1e-12 * scale
    assert np.allclose(cell_drops(Network(make_architecture("2-2"), {(0, 1): np.full((4, 4), 1e-5)}), (0, 1),
                                  u[:, :4], v), u[:, :4, None] - v[:, None, :])


def test_line_layout_permutes_the_physical_lines():
    rng = np.random.default_rng(6)
    g = rng.uniform(1e-6, 1e-4, (4, 3))
    rows, cols = [2, 0, 3, 1], [1, 2, 0]
    y, p = _dense_line_matrix(g[np.ix_(rows, cols)], 15.0)  # the crossbar as laid out
    schur = y[:p, :p] - y[:p, p:] @ np.linalg.solve(y[p:, p:], y[p:, :p])
    physical = np.concatenate([rows, 4 + np.array(cols)])
    in_node_order = np.empty_like(schur)
    in_node_order[np.ix_(physical, physical)] = schur
    lines = CrossbarLines(g, 15.0, rows, cols)
    rc, cc = lines.column_ports
    assert np.allclose(np.block([[lines.row_ports, rc], [rc.T, cc]]), in_node_order, rtol=1e-10, atol=1e-16)
    with pytest.raises(ValueError, match="permutation"):
        CrossbarLines(g, 15.0, [0, 0, 1, 2])


def test_interleaved_layout_pairs_differential_lines():
    from circuitprop.model.wires import line_orders
    arch = make_architecture("3-2-2", bias_input=True, wire_resistance=1.0)
    assert list(line_orders(arch, (0, 1))[0]) == [0, 3, 1, 4, 2, 5, 6, 7]
    assert list(line_orders(arch, (1, 2))[1]) == [0, 2, 1, 3]
    assert list(line_orders(replace(arch, wire_layout="node-order"), (0, 1))[0]) == list(range(8))
    with pytest.raises(NetworkError, match="wire_layout"):
        Network.random(replace(arch, wire_layout="zigzag"))


def _wired(diode, amplifier_gain, wire=50.0, layers="6-5-3", seed=1, layout="interleaved"):
    v_low, v_high = (0.0, 1.0) if diode.kind == "ideal" else compensated_bias(diode, 0.0, 1.0)
    arch = make_architecture(layers, amplifier_gain=amplifier_gain, diode=diode, bias_input=True,
                             wire_resistance=wire, v_low=v_low, v_high=v_high, wire_layout=layout)
    return Network.random(arch, g_min=1e-6, g_max=1e-4, seed=seed)


@pytest.mark.parametrize("card,gain,layout", [("1n4148", None, "interleaved"), ("1n4148", 2.0, "interleaved"),
                                               ("generic", None, "node-order"), ("1n4148", 2.0, "node-order")])
def test_wired_fast_solver_agrees_with_ngspice_to_a_microvolt(card, gain, layout):
    net = _wired(DiodeModel.from_card(card), gain, layout=layout)
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 1, (3, 6)) * 3.0
    currents = rng.normal(0, 3e-5, (3, net.layer_sizes[-1]))
    fast = FastBackend(tol=1e-15, max_sweeps=20000).solve(net, x, currents)
    spice = SpiceBackend(options=SpiceOptions.tight()).solve(net, x, currents)
    assert spice.info["fold_inputs"] is False  # wired crossbars are always written flat
    assert np.max(np.abs(fast.flat() - spice.flat())) < 1e-6
    # and the lines matter here: without them the operating point moves by far more than that
    plain = FastBackend(tol=1e-15, max_sweeps=20000).solve(Network(replace(net.architecture, wire_resistance=0.0),
                                                                   net.conductances), x, currents)
    assert np.max(np.abs(plain.flat() - fast.flat())) > 1e-3
    assert max(float(np.max(np.abs(r))) for r in kcl_residual(net, fast.voltages, currents)) < 1e-14


def test_wired_ideal_neurons_clip_and_meet_kcl():
    net = _wired(DiodeModel(kind="ideal"), 4.0, wire=20.0)
    x = np.random.default_rng(4).uniform(-1, 1, (5, 6)) * 2.0
    sol = FastBackend(tol=1e-13, max_sweeps=20000).solve(net, x)
    hidden = sol.voltages[1]
    assert hidden.min() >= 0.0 and hidden.max() <= 1.0
    assert np.any(hidden == 0.0) or np.any(hidden == 1.0)  # some neuron clips
    assert max(float(np.max(np.abs(r))) for r in kcl_residual(net, sol.voltages)) < 1e-12


def test_wired_static_power_equals_ngspice_source_power():
    net = _wired(DiodeModel.from_card("generic"), None, wire=40.0)
    x = np.random.default_rng(5).uniform(0, 1, (1, 6)) * 2.0
    sol = FastBackend(tol=1e-16, max_sweeps=20000).solve(net, x)
    ours = static_power(net, sol.voltages)["total"][0]
    theirs = source_power(build_circuit(net, inputs=x[0]), SpiceOptions.tight())
    assert ours == pytest.approx(theirs, rel=1e-9)


def test_cell_drop_rule_is_the_conductance_derivative_of_the_cocontent():
    """Envelope theorem: at fixed node voltages, dE/dg_ij = 1/2 (drop across the cell)**2 (lines re-solved)."""
    net = _wired(DiodeModel(kind="ideal"), None, wire=25.0, layers="3-2-2")
    state = [net.input_voltages(np.array([[0.3, -0.8, 0.5]])), np.array([[0.2, 0.7]]), np.array([[0.1, -0.2, 0.3, 0.0]])]
    grad = conductance_gradient(net, state)
    for key in net.conductances:
        for index in [(0, 0), (1, 1)]:
            step = 1e-9
            values = []
            for sign in (1, -1):
                g = {k: v.copy() for k, v in net.conductances.items()}
                g[key][index] += sign * step
                values.append(cocontent(Network(net.architecture, g), state)[0])
            assert (values[0] - values[1]) / (2 * step) == pytest.approx(grad[key][index], rel=1e-5)


@pytest.mark.parametrize("wire", [0.0, 200.0])
def test_ep_gradient_with_wires_is_the_loss_gradient(wire):
    """Centered EP estimate with the cell-drop rule against finite differences of the loss (physics, not a rule)."""
    arch = make_architecture("2-2-2", amplifier_gain=2.0, diode=DiodeModel.from_card("generic"), bias_input=True,
                             wire_resistance=wire, v_low=0.0, v_high=0.5)
    net = Network.random(arch, g_min=1e-5, g_max=1e-3, seed=2)
    x, target = np.array([[0.9, 0.3]]), np.array([[0.05, -0.05]])
    backend = FastBackend(tol=1e-17, max_sweeps=100000)

    def loss(network):
        return 0.5 * np.sum((target - network.scores(backend.solve(network, x).outputs)) ** 2)

    error = target - net.scores(backend.solve(net, x).outputs)
    beta = 1e-7
    nudged = {sign: backend.solve(net, x, net.output_currents_from_score_currents(sign * beta * error))
              for sign in (1, -1)}
    plus, minus = (conductance_gradient(net, nudged[s].voltages) for s in (1, -1))
    for key, g in net.conductances.items():
        ep = (plus[key] - minus[key]) / (2 * beta)
        fd = np.zeros_like(g)
        for index in np.ndindex(g.shape):
            values = []
            for sign in (1, -1):
                changed = {k: v.copy() for k, v in net.conductances.items()}
                changed[key][index] += sign * 1e-9
                values.append(loss(Network(arch, changed)))
            fd[index] = (values[0] - values[1]) / 2e-9
        assert np.max(np.abs(ep - fd)) < 1e-6 * np.max(np.abs(fd))


def test_netlist_writes_every_segment_and_refuses_folding():
    net = _wired(DiodeModel(kind="ideal"), 2.0, wire=5.0, layers="2-3-2")
    circuit = build_circuit(net)
    segments = [e for e in circuit.elements if e.name.startswith("rw")]
    cells = sum(g.size for g in net.conductances.values())
    assert len(segments) == 2 * cells and all(e.value == 5.0 for e in segments)
    with pytest.raises(NetworkError, match="fold_inputs"):
        build_circuit(net, fold_inputs=True)


def test_wire_resistance_is_validated_and_saved(tmp_path):
    for bad in (-1.0, 1e-9, float("nan"), 1e7):
        with pytest.raises(NetworkError, match="wire_resistance"):
            Network.random(make_architecture("2-2", wire_resistance=bad))
    net = _wired(DiodeModel(kind="ideal"), None, wire=3.5, layers="2-2-2")
    loaded = Network.load(net.save(tmp_path / "w.npz"))
    assert loaded.architecture.wire_resistance == 3.5


def test_training_with_wire_resistance_uses_the_cell_drops():
    from circuitprop.learning import EPTrainer
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 1, (64, 4))
    y = (X[:, 0] > X[:, 1]).astype(int)
    trainer = EPTrainer(layers="4-6-2", wire_resistance=200.0, epochs=1, batch_size=8, verbose=False,
                        g_max=1e-4, seed=0)
    trainer.fit(X, y)
    assert trainer.network_.architecture.wire_resistance == 200.0
    # one more step by hand: the update equals -lr * (cell-drop gradient) as the rule defines it
    from circuitprop.learning.ep import low_rank_gradients, wired_gradients
    with pytest.raises(ValueError, match="wire resistance"):
        low_rank_gradients(trainer.network_, [])
    sol = FastBackend().solve(trainer.network_, X[:8])
    grads = wired_gradients(trainer.network_, [(sol.voltages, 1.0)])
    direct = {k: 0.5 * (cell_drops(trainer.network_, k, trainer.network_.architecture.forward_gain(k[0]) * sol.voltages[k[0]],
                                   sol.voltages[k[1]]) ** 2).sum(0) for k in trainer.network_.conductances}
    for k in grads:
        assert np.allclose(grads[k], direct[k])


def test_cli_wire_resistance_from_init_to_netlist_to_op(tmp_path, capsys):
    from circuitprop.cli import main
    model = tmp_path / "w.npz"
    assert main(["init", "--layers", "3-2-2", "--amplifier-gain", "2", "--wire-resistance", "150", "--diode", "shockley",
                 "--g-init", "1e-5", "1e-3", "-o", str(model)]) == 0
    assert Network.load(model).architecture.wire_resistance == 150.0
    netlist = tmp_path / "w.cir"
    assert main(["export", str(model), "--inputs", "1,0.5,0.2", "-o", str(netlist)]) == 0
    assert "rwr0_1_0_0" in netlist.read_text()
    capsys.readouterr()
    assert main(["op", str(netlist)]) == 0  # the netlist reader and ngspice, on the flat lines
    spice = {ln.split(",")[0]: float(ln.split(",")[1]) for ln in capsys.readouterr().out.splitlines()[1:]}
    assert main(["op", str(model), "--backend", "fast", "--inputs", "1,0.5,0.2"]) == 0
    fast = {ln.split(",")[1]: float(ln.split(",")[2]) for ln in capsys.readouterr().out.splitlines()[1:]}
    assert fast and all(spice[name] == pytest.approx(v, abs=1e-6) for name, v in fast.items())


def test_cli_eval_with_wire_resistance(tmp_path, capsys, monkeypatch):
    import json

    from conftest import write_two_class_mnist

    from circuitprop.cli import main
    from circuitprop.io import datasets
    write_two_class_mnist(tmp_path, 10, 40)
    sums = {p.name: datasets._md5(p) for p in (tmp_path / "mnist").iterdir()}
    monkeypatch.setitem(datasets.MD5, "mnist", {**datasets.MD5["mnist"], **sums})
    monkeypatch.setattr(datasets, "URLS", {})  # offline: nothing is downloaded
    model = tmp_path / "m.npz"
    main(["init", "--layers", "784-4-10", "--diode", "ideal", "-o", str(model)])
    capsys.readouterr()
    results = {}
    for ohms in ("0", "1000"):
        assert main(["eval", str(model), "--data-dir", str(tmp_path), "--wire-resistance", ohms, "--energy", "--json"]) == 0
        results[ohms] = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert results["1000"]["wire_resistance_ohm"] == 1000.0
    # the lines dissipate and drop voltage: less power reaches the circuit than with ideal wires
    assert results["1000"]["static_power_W_mean"] < results["0"]["static_power_W_mean"]
