"""Physics helpers against finite differences."""
import numpy as np
import pytest
from conftest import random_network

from circuitprop.model import DiodeModel
from circuitprop.model.energy import (
    cocontent,
    cocontent_gradient,
    conductance_gradient,
    diode_current,
    diode_pseudo_power,
)


@pytest.mark.parametrize("rs", [0.0, 50.0])
def test_diode_current_is_derivative_of_pseudo_power(rs):
    d = DiodeModel(series_resistance=rs)
    v = np.linspace(-0.5, 0.75, 41)
    h = 1e-6
    fd = (diode_pseudo_power(v + h, d) - diode_pseudo_power(v - h, d)) / (2 * h)
    i, g = diode_current(v, d)
    np.testing.assert_allclose(fd, i, rtol=1e-5, atol=1e-15)
    fdi = (diode_current(v + h, d)[0] - diode_current(v - h, d)[0]) / (2 * h)
    np.testing.assert_allclose(fdi, g, rtol=1e-5, atol=1e-15)


def test_series_resistance_law_is_consistent():
    d = DiodeModel(series_resistance=100.0)
    v = np.array([0.6, 0.8, 1.2])
    i, _ = diode_current(v, d)
    vd = v - i * 100.0  # drop across the junction
    np.testing.assert_allclose(i, d.saturation_current * np.expm1(vd / d.thermal_voltage), rtol=1e-9)


def test_thermal_voltage_is_kT_over_q_at_27C():
    assert DiodeModel().thermal_voltage == pytest.approx(1.380649e-23 * 300.15 / 1.602176634e-19, rel=1e-6)


def test_cocontent_gradient_matches_finite_differences(rng):
    net = random_network("3-4-3-2", amplifier_gain=2.0, skip=((0, 3),), v_low=-0.2, v_high=0.3)
    state = [net.input_voltages(rng.uniform(0, 1, (2, 3)))] + [rng.normal(0, 0.2, (2, s))
                                                                 for s in net.layer_sizes[1:]]
    currents = rng.normal(0, 1e-5, (2, net.layer_sizes[-1]))
    grad = cocontent_gradient(net, state, currents)
    h = 1e-6
    for layer in range(1, len(state)):
        for i in range(state[layer].shape[1]):
            up = [s.copy() for s in state]
            dn = [s.copy() for s in state]
            up[layer][:, i] += h
            dn[layer][:, i] -= h
            fd = (cocontent(net, up, currents) - cocontent(net, dn, currents)) / (2 * h)
            np.testing.assert_allclose(grad[layer - 1][:, i], fd, rtol=1e-5, atol=1e-12)


def test_conductance_gradient_matches_finite_differences(rng):
    net = random_network("3-2-2", amplifier_gain=1.5)
    state = [net.input_voltages(rng.uniform(0, 1, (3, 3)))] + [rng.normal(0, 0.2, (3, s))
                                                                 for s in net.layer_sizes[1:]]
    grads = conductance_gradient(net, state)
    for key, g in net.conductances.items():
        i, j = 1, 1
        h = 1e-9
        up, dn = net.copy(), net.copy()
        up.conductances[key][i, j] += h
        dn.conductances[key][i, j] -= h
        fd = (cocontent(up, state).sum() - cocontent(dn, state).sum()) / (2 * h)
        assert grads[key][i, j] == pytest.approx(fd, rel=1e-6)


@pytest.mark.parametrize("amplifier", [None, 3.0])
def test_static_power_equals_the_power_ngspice_sources_deliver(amplifier):
    from circuitprop.backends import FastBackend
    from circuitprop.backends.spice import SpiceOptions, source_power
    from circuitprop.model import DiodeModel, Network, make_architecture
    from circuitprop.model.energy import static_power
    from circuitprop.netlist.circuit import build_circuit
    # ngspice's diode replaces the exponential below -3 N V_T by the SPICE2 cubic -IS(1 + (3 N V_T/(e V))^3):
    # for the 1N4148 (IS = 4.4 nA) that changes reverse currents by ~IS * 1e-3, hence 8e-8 relative here;
    # for the generic diode (IS = 1 pA) the difference is below 1e-11 relative.
    for diode, rel in ((DiodeModel(), 1e-9), (DiodeModel.from_card("1n4148"), 1e-6)):
        arch = make_architecture("4-5-3", diode=diode, amplifier_gain=amplifier, v_low=-0.3, v_high=0.6,
                                 bias_input=True)
        net = Network.random(arch, g_min=1e-6, g_max=3e-5, seed=2)
        x = np.array([[1.0, 0.2, 0.7, 0.4]])
        currents = np.linspace(-2e-6, 2e-6, net.layer_sizes[-1])[None, :]
        state = FastBackend(tol=1e-16).solve(net, x, currents).voltages
        power = static_power(net, state)
        circuit = build_circuit(net, inputs=x[0], output_currents=currents[0])
        spice = source_power(circuit, SpiceOptions.tight())
        assert power["total"][0] == pytest.approx(spice, rel=rel)
        assert power["diodes"][0] > 0 and power["crossbars"][0] > 0
