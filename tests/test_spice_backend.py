"""ngspice backend: physics checks at ngspice's own solution."""
import numpy as np
import pytest
from conftest import random_network
from scipy.special import lambertw

from circuitprop.backends import ConvergenceError, FastBackend
from circuitprop.backends.spice import SpiceBackend, SpiceError, SpiceOptions, operating_point, run_ngspice_batch
from circuitprop.model import Architecture, DiodeModel, HiddenLayer, Network, make_architecture
from circuitprop.model.energy import cocontent_gradient, kcl_residual, max_abs_residual
from circuitprop.netlist import parse_netlist, write_netlist

pytestmark = pytest.mark.spice


def test_kcl_and_cocontent_gradient_vanish_at_ngspice_solution(rng):
    net = random_network("6-5-4-3", amplifier_gain=2.0, skip=((0, 3),), v_low=-0.3, v_high=-0.1)
    x = rng.uniform(0, 1, (3, 6))
    currents = rng.normal(0, 1e-6, (3, 6))
    sol = SpiceBackend(fold_inputs=False, options=SpiceOptions.tight()).solve(net, x, currents)
    assert max_abs_residual(kcl_residual(net, sol.voltages, currents)) < 1e-9
    assert max_abs_residual(cocontent_gradient(net, sol.voltages, currents)) < 1e-9  # Lemma 4.1


def test_folded_inputs_give_the_same_voltages(rng):
    net = random_network("12-6-3", v_low=-0.2, v_high=0.1)
    x = rng.uniform(0, 1, (3, 12))
    opts = SpiceOptions.tight()
    flat = SpiceBackend(fold_inputs=False, options=opts).solve(net, x)
    folded = SpiceBackend(fold_inputs=True, options=opts).solve(net, x)
    np.testing.assert_allclose(folded.flat(), flat.flat(), atol=1e-9)


def test_voltage_divider_closed_form():
    c = parse_netlist("* divider\nV1 in 0 DC 1\nR1 in mid 1k\nR2 mid 0 3k\n.end\n")
    assert operating_point(c)["mid"] == pytest.approx(0.75, abs=1e-9)


def test_diode_clamp_closed_form():
    """1 V source, conductance g to a neuron node, upper diode biased at v_high (Lambert W)."""
    g1, v_high = 1e-4, 0.2
    d = DiodeModel()
    arch = Architecture(n_features=1, hidden=(HiddenLayer(1, v_low=-5.0, v_high=v_high),), n_classes=1,
                        crossbars=((0, 1), (1, 2)), doubled_inputs=False, doubled_outputs=False)
    net = Network(arch, {(0, 1): np.array([[g1]]), (1, 2): np.array([[1e-5]])})
    sol = SpiceBackend(fold_inputs=False, options=SpiceOptions.tight()).solve(net, [[1.0]])
    # g1 (1 - V) = IS (exp((V - v_high)/nVt) - 1)  ->  V by Lambert W
    isat, nvt = d.saturation_current, d.thermal_voltage
    a = 1.0 + isat / g1
    v = a - nvt * np.real(lambertw(isat / (g1 * nvt) * np.exp((a - v_high) / nvt)))
    assert sol.voltages[1][0, 0] == pytest.approx(v, abs=1e-7)
    assert sol.voltages[2][0, 0] == pytest.approx(v, abs=1e-7)  # no current through the output crossbar
    assert v > v_high + 0.3  # the diode conducts: a real clamp, not a linear divider


def test_transformer_coupled_amplifier_closed_form():
    """DESIGN.md: E gain 3, sense source, F gain 3: V_h = 0.4375 V, V_o = 0.9375 V."""
    text = """* transformer
V1 x 0 DC 1
R1 x h 1k
E1 a 0 h 0 3
VS a a2 DC 0
R2 a2 o 2k
R3 o 0 5k
F1 h 0 VS 3
.end
"""
    v = operating_point(parse_netlist(text))
    g1, g2, g3 = 1e-3, 0.5e-3, 0.2e-3
    # minimum of 1/2 g1 (1-h)^2 + 1/2 g2 (3h-o)^2 + 1/2 g3 o^2
    m = np.array([[g1 + 9 * g2, -3 * g2], [-3 * g2, g2 + g3]])
    h, o = np.linalg.solve(m, [g1, 0.0])
    assert (h, o) == pytest.approx((0.4375, 0.9375))
    assert v["h"] == pytest.approx(h, abs=1e-9) and v["o"] == pytest.approx(o, abs=1e-9)


def test_network_amplifier_with_nudging_current_closed_form():
    g1, g2, current = 2e-5, 1e-5, 3e-7
    arch = Architecture(n_features=1, hidden=(HiddenLayer(1, v_low=-10, v_high=10, amplifier_gain=3.0),),
                        n_classes=1, crossbars=((0, 1), (1, 2)), doubled_inputs=False, doubled_outputs=False)
    net = Network(arch, {(0, 1): np.array([[g1]]), (1, 2): np.array([[g2]])})
    sol = SpiceBackend(fold_inputs=False, options=SpiceOptions.tight()).solve(net, [[1.0]], [[current]])
    v_h = 1 + 3 * current / g1
    v_o = 3 * v_h + current / g2
    assert sol.voltages[1][0, 0] == pytest.approx(v_h, abs=1e-8)
    assert sol.voltages[2][0, 0] == pytest.approx(v_o, abs=1e-8)


@pytest.mark.parametrize("spec, options", [("4-3-2", {}), ("4-3-3-2", dict(inverted_copies=True, skip=((1, 3),))),
                                           ("4-3-3-2", dict(backward_gain=0.5, skip=((0, 2),))),
                                           ("4-3-3-2", dict(drop=((1, 2),), skip=((0, 2), (1, 3))))])
def test_exported_netlist_through_ngspice_program_matches_shared_mode(tmp_path, rng, spec, options):
    # exported netlists sense each amplifier's current with a 0 V source; the library's own circuit does not
    net = random_network(spec, amplifier_gain=2.0, v_low=-0.2, v_high=0.1, **options)
    x = rng.uniform(0, 1, 4)
    path = write_netlist(net, tmp_path / "net.cir", "ngspice", inputs=x, options=SpiceOptions.tight().as_dict())
    batch = run_ngspice_batch(path)
    shared = SpiceBackend(fold_inputs=False, options=SpiceOptions.tight()).solve(net, x[None])
    for name, v in zip(net.node_names(), shared.flat()[0]):
        assert batch[name] == pytest.approx(v, abs=1e-9), name


def test_nonconvergence_names_the_analysis_and_library_recovers():
    bad = parse_netlist("* hard\nV1 a 0 DC 100\nD1 a 0 dm\n.model dm D(IS=1e-14 N=1)\n.end\n")
    with pytest.raises(ConvergenceError, match=r"operating point \(\.op\).*gmin stepping and source stepping"):
        operating_point(bad, SpiceOptions(itl1=2, gminsteps=0, srcsteps=0))
    good = parse_netlist("* ok\nV1 a 0 DC 1\nR1 a b 1k\nR2 b 0 1k\n.end\n")
    assert operating_point(good)["b"] == pytest.approx(0.5)


def test_ngspice_error_raises_and_library_recovers():
    from circuitprop.backends.spice import NgSpiceSession
    session = NgSpiceSession.get()
    with pytest.raises(SpiceError, match="could not find a valid modelname|circuit not parsed"):
        session.load("* broken\nV1 a 0 1\nD1 a 0 nomodel\n.end\n", key="broken")
    good = parse_netlist("* ok\nV1 a 0 DC 2\nR1 a b 1k\nR2 b 0 1k\n.end\n")
    assert operating_point(good)["b"] == pytest.approx(1.0)


def test_1n4148_model_card_agrees_with_ngspice_to_a_microvolt():
    from circuitprop.model import DiodeModel, compensated_bias
    diode = DiodeModel.from_card("1n4148")
    assert (diode.saturation_current, diode.emission_coefficient, diode.series_resistance) == (4.352e-9, 1.906, 0.6458)
    v_low, v_high = compensated_bias(diode, 0.0, 1.0)
    arch = make_architecture("6-5-3", diode=diode, v_low=v_low, v_high=v_high, amplifier_gain=2.0)
    net = Network.random(arch, g_min=1e-6, g_max=2e-5, seed=3)
    x = np.random.default_rng(0).uniform(0, 1, (4, 6)) * 3.0  # drives that push neurons past both knees
    fast = FastBackend(tol=1e-15).solve(net, x)
    spice = SpiceBackend(options=SpiceOptions.tight()).solve(net, x)
    assert np.max(np.abs(fast.flat() - spice.flat())) < 1e-6
    # the compensated neuron clips near [0, 1] V: exactly there at 1 uA, beyond by N*V_T*ln(I/1uA) at more
    hidden, vt = fast.voltages[1], diode.emission_coefficient * diode.thermal_voltage
    assert hidden.min() > -vt * np.log(100) and hidden.max() < 1 + vt * np.log(100)  # currents < 100 uA here
    neuron = DiodeModel.from_card("1n4148")
    assert neuron.forward_voltage(1e-6) == pytest.approx(v_low)


def test_transient_energy_of_an_rc_node_is_what_the_sources_deliver():
    """Energy from the sources, computed in closed form on the source side, against the integrated
    dissipation plus the capacitor's energy that settling_time computes from ngspice's waveforms."""
    from circuitprop.backends.spice import settling_time
    arch = make_architecture("1-1", doubled_outputs=False)
    g1, g2, capacitance = 3e-6, 1e-6, 1e-12
    net = Network(arch, {(0, 1): np.array([[g1], [g2]])})
    times, energies = settling_time(net, np.array([[0.8]]), capacitance, tolerance=1e-4, energy=True)
    total, tau = g1 + g2, capacitance / (g1 + g2)
    v_final = (g1 - g2) * 0.8 / total
    t = times[0]
    integral_v = v_final * (t - tau * (1 - np.exp(-t / tau)))
    delivered = 0.64 * total * t - 0.8 * (g1 - g2) * integral_v  # sum of V_source * i_source over time
    assert energies[0] == pytest.approx(delivered, rel=2e-3)  # measured: 1.4e-4 (time step 0.1 tau)
    assert energies[0] > 0.5 * capacitance * v_final ** 2  # more than the stored energy alone


def test_settling_time_of_an_rc_node_matches_the_exponential():
    from circuitprop.backends.spice import settling_time
    arch = make_architecture("1-1", doubled_outputs=False)  # one output node joined to +x and -x
    net = Network(arch, {(0, 1): np.array([[3e-6], [1e-6]])})
    capacitance, tol = 1e-12, 1e-4
    x = np.array([[0.8]])
    v_final = (3e-6 * 0.8 - 1e-6 * 0.8) / 4e-6
    tau = capacitance / 4e-6
    expected = tau * np.log(v_final / tol)
    got = settling_time(net, x, capacitance, tolerance=tol)[0]
    assert got == pytest.approx(expected, rel=0.02)


@pytest.mark.parametrize("card", ["1n4148", "generic"])
def test_batch_dc_sweep_equals_one_op_per_sample(card, monkeypatch):
    from circuitprop.model import DiodeModel, compensated_bias
    diode = DiodeModel.from_card(card)
    v_low, v_high = compensated_bias(diode, 0.0, 1.0)
    net = Network.random(make_architecture("6-5-3", diode=diode, v_low=v_low, v_high=v_high, amplifier_gain=2.0),
                         g_min=1e-6, g_max=2e-5, seed=4)
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, (7, 6)) * 3.0
    currents = rng.normal(0, 2e-5, (7, 6))
    swept = SpiceBackend(options=SpiceOptions.tight()).solve(net, x, currents)
    each = SpiceBackend(options=SpiceOptions.tight(), sweep=False).solve(net, x, currents)
    fast = FastBackend(tol=1e-15).solve(net, x, currents)
    assert np.max(np.abs(swept.flat() - each.flat())) < 1e-6
    assert np.max(np.abs(swept.flat() - fast.flat())) < 1e-6
    # a sweep that fails falls back to one op per sample
    def fail(*args, **kwargs):
        raise ConvergenceError("forced")
    monkeypatch.setattr(SpiceBackend, "_solve_sweep", fail)
    again = SpiceBackend(options=SpiceOptions.tight()).solve(net, x, currents)
    assert np.max(np.abs(again.flat() - each.flat())) < 1e-9


def _amplified_1n4148_network(seed=4):
    from circuitprop.model import compensated_bias
    diode = DiodeModel.from_card("1n4148")
    v_low, v_high = compensated_bias(diode, 0.0, 1.0)
    return Network.random(make_architecture("6-5-3", diode=diode, v_low=v_low, v_high=v_high, amplifier_gain=2.0),
                          g_min=1e-6, g_max=2e-5, seed=seed)


def test_cccs_sensing_its_vcvs_is_the_same_circuit_as_with_a_sense_source():
    from circuitprop.netlist.circuit import build_circuit
    from circuitprop.netlist.writers import render
    net = _amplified_1n4148_network()
    rng = np.random.default_rng(2)
    x, currents = rng.uniform(0, 3, 6), rng.normal(0, 2e-5, 6)
    with_source = build_circuit(net, x, currents, sense_sources=True)
    without = build_circuit(net, x, currents, sense_sources=False)
    assert len(without.node_names()) == len(with_source.node_names()) - 5  # one node fewer per amplifier
    a = operating_point(with_source, SpiceOptions.tight())
    b = operating_point(without, SpiceOptions.tight())
    hidden_and_out = [n for n in a if n.startswith(("n1_", "n2_"))]
    assert max(abs(a[n] - b[n]) for n in hidden_and_out) < 1e-9
    # the amplifier does work: its output differs from its input node
    assert max(abs(a[f"a1_{i}"] - a[f"n1_{i}"]) for i in range(5)) > 1e-3
    for dialect in ("xyce", "ltspice", "spectre"):
        with pytest.raises(ValueError, match="sense_sources"):
            render(without, dialect)
        render(with_source, dialect)


def test_cached_sweep_netlist_equals_a_full_rendering_for_a_new_network():
    from circuitprop.backends.spice.backend import _SweepNetlist
    from circuitprop.netlist.circuit import build_circuit
    net = _amplified_1n4148_network(seed=4)
    other = _amplified_1n4148_network(seed=9)  # same architecture, other conductances
    template = _SweepNetlist(net, SpiceOptions().simulator_options())
    rng = np.random.default_rng(3)
    folded = {1: rng.normal(0, 1e-5, (4, 5))}
    currents = rng.normal(0, 1e-6, (4, 6))
    assert template.text(other, folded, currents) == template._render(build_circuit(other, fold_inputs=True, sense_sources=False), folded, currents)
    assert template.text(other, folded, currents) != template.text(net, folded, currents)


def test_parallel_workers_give_the_one_process_solution_and_survive_a_dead_worker():
    net = _amplified_1n4148_network()
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, (7, 6)) * 3.0  # 7 samples: shares of 4 and 3
    currents = rng.normal(0, 2e-5, (7, 6))
    one = SpiceBackend(options=SpiceOptions.tight()).solve(net, x, currents)
    parallel = SpiceBackend(options=SpiceOptions.tight(), workers=2)
    try:
        two = parallel.solve(net, x, currents)
        assert two.info["workers"] == 2
        assert np.max(np.abs(two.flat() - one.flat())) < 1e-9
        assert np.all(np.isfinite(two.residual))
        parallel._children[1].process.kill()
        parallel._children[1].process.wait()
        with pytest.raises(SpiceError, match="worker process died"):
            parallel.solve(net, x, currents)
        again = parallel.solve(net, x, currents)  # a new worker is started
        assert np.max(np.abs(again.flat() - one.flat())) < 1e-9
    finally:
        parallel.close()
    with pytest.raises(ValueError, match="workers"):
        SpiceBackend(workers=0)


def test_worker_processes_are_recycled_with_the_same_results():
    net = _amplified_1n4148_network()
    rng = np.random.default_rng(5)
    x, currents = rng.uniform(0, 3, (4, 6)), rng.normal(0, 2e-5, (4, 6))
    backend = SpiceBackend(options=SpiceOptions.tight(), workers=2)
    backend.recycle_after = 2
    try:
        first = backend.solve(net, x, currents)
        pids = [c.process.pid for c in backend._children]
        backend.solve(net, x, currents)
        assert [c.process.pid for c in backend._children] == pids  # 2 calls each: not yet
        third = backend.solve(net, x, currents)
        assert all(c.process.pid not in pids for c in backend._children)  # replaced before the third
        assert np.max(np.abs(third.flat() - first.flat())) < 1e-12
    finally:
        backend.close()


def test_klu_is_the_default_solver_and_agrees_with_sparse(rng):
    """ngspice >= 40 factors with KLU when asked (the default); Sparse 1.3 gives the same steady state."""
    from dataclasses import replace

    from circuitprop.backends.spice.ngspice import NgSpiceSession
    from circuitprop.netlist.circuit import build_circuit
    from circuitprop.netlist.writers import render

    net = random_network("8-6-6-3", amplifier_gain=2.0, skip=((0, 2), (1, 3)), v_low=-0.3, v_high=-0.1)
    x = rng.uniform(0, 1, (2, 8))
    currents = rng.normal(0, 1e-6, (2, 6))
    klu = SpiceBackend(fold_inputs=False, options=SpiceOptions.tight()).solve(net, x, currents)
    sparse = SpiceBackend(fold_inputs=False, options=replace(SpiceOptions.tight(), klu=0)).solve(net, x, currents)
    np.testing.assert_allclose(klu.flat(), sparse.flat(), atol=1e-9)
    assert max_abs_residual(kcl_residual(net, klu.voltages, currents)) < 1e-9

    session = NgSpiceSession.get()
    session.load(render(build_circuit(net, inputs=x[0]), "ngspice", options=SpiceOptions().simulator_options(),
                        analysis=False), key="klu-test")
    try:
        assert "Using KLU" in session.command("op")
    finally:
        session.command("destroy all", check=False)
        session.loaded = None


@pytest.mark.parametrize("fold", [True, False])
def test_a_float32_network_is_simulated_with_its_exact_values(rng, fold):
    # the netlist's resistances, the folded sums and the KCL check work in float64: a float32 network (as
    # training in float32 writes) gives what its float64 copy gives, and passes the residual check (float32
    # column sums over a few hundred rows were off by about 1e-6 of the current scale, which the check
    # refused as non-convergence)
    net64 = random_network("300-40-4", amplifier_gain=4.0, v_low=0.0, v_high=1.0, seed=7,
                           diode=DiodeModel(kind="ideal"))
    net32 = Network(net64.architecture, {k: g.astype(np.float32) for k, g in net64.conductances.items()},
                    dtype="float32")
    exact = Network(net64.architecture, {k: g.astype(np.float64) for k, g in net32.conductances.items()})
    x = rng.uniform(0, 1, (3, 300))
    a = SpiceBackend(fold_inputs=fold).solve(net32, x)
    b = SpiceBackend(fold_inputs=fold).solve(exact, x)
    assert np.max(np.abs(a.flat() - b.flat())) < 1e-12
    assert a.residual < 1e-12
