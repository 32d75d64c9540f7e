"""The fast solver: co-content descent, KCL, agreement with ngspice."""
from dataclasses import replace

import numpy as np
import pytest
from conftest import random_network

from circuitprop.backends import ConvergenceError, FastBackend
from circuitprop.backends.fast import steady_state_backend
from circuitprop.backends.spice import SpiceBackend, SpiceOptions
from circuitprop.model import DiodeModel, Network
from circuitprop.model.energy import kcl_residual, max_abs_residual, neuron_current

SHAPES = [
    dict(spec="6-5-3"),
    dict(spec="6-5-3", doubled_outputs=False),
    dict(spec="5-4-4-2", skip=((0, 3), (1, 3))),
    dict(spec="5-4-3-2", amplifier_gain=3.0),
    dict(spec="4-6-3", diode=DiodeModel(series_resistance=200.0), bias_input=True),
    dict(spec="4-3-3-3-2", amplifier_gain=2.0, skip=((1, 4),)),
    # deep, every kind of skip crossbar (inputs to every hidden layer, every hidden layer to the outputs,
    # layer i to i+2), a gain per hidden layer (the middle one without amplifier)
    dict(spec="5-4-4-4-2", amplifier_gain=(2.0, None, 3.0),
         skip=((0, 2), (0, 3), (1, 3), (2, 4), (1, 4))),
    # inverted copies: the layers feeding another hidden layer drive their crossbars with -A V too
    dict(spec="5-4-4-4-2", amplifier_gain=(2.0, 1.5, 3.0), inverted_copies=True,
         skip=((0, 2), (1, 3), (2, 4), (1, 4))),
    # non-reciprocal amplifiers: backward current gain 1/A instead of A
    dict(spec="5-4-4-2", amplifier_gain=4.0, backward_gain=0.25, skip=((0, 2), (1, 3))),
    # a dropped crossbar between consecutive layers: two hidden layers side by side, both fed by the inputs
    dict(spec="5-4-4-2", amplifier_gain=2.0, drop=((1, 2),), skip=((0, 2), (1, 3))),
]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: s["spec"] + ("+" + "+".join(
    k for k in s if k != "spec") if len(s) > 1 else ""))
def test_fast_agrees_with_ngspice_to_a_microvolt(shape, rng):
    shape = dict(shape)
    spec = shape.pop("spec")
    # bias sources placed so that the Shockley diodes carry real current at these node voltages
    net = random_network(spec, seed=3, v_low=-0.45, v_high=-0.3, **shape)
    x = rng.uniform(0, 1, (4, net.architecture.n_features))
    currents = rng.normal(0, 3e-6, (4, net.layer_sizes[-1]))  # nudging currents on
    fast = FastBackend().solve(net, x, currents)
    assert fast.converged and fast.residual < 1e-12
    spice = SpiceBackend(fold_inputs=False, options=SpiceOptions.tight()).solve(net, x, currents)
    diff = np.max(np.abs(fast.flat() - spice.flat()))
    assert diff < 1e-6, f"fast and ngspice differ by {diff} V"
    # some diodes must carry real current for the test to mean something
    diode_currents = np.concatenate([neuron_current(v, -0.45, -0.3, net.architecture.diode)[0].ravel()
                                     for v in fast.voltages[1:-1]])
    assert np.max(np.abs(diode_currents)) > 1e-7


def test_cocontent_decreases_monotonically_and_kcl_holds(rng):
    net = random_network("8-6-5-3", amplifier_gain=2.0, skip=((0, 3),), v_low=-0.1, v_high=0.2)
    x = rng.uniform(0, 1, (5, 8))
    currents = rng.normal(0, 1e-5, (5, 6))
    sol = FastBackend().solve(net, x, currents, record_cocontent=True)
    trace = sol.info["cocontent"]
    assert trace.shape[0] == sol.iterations + 1
    steps = np.diff(trace, axis=0)
    assert np.all(steps <= 1e-18 + 1e-12 * np.abs(trace[1:])), steps.max()
    assert trace[0].sum() > trace[-1].sum()  # it did descend
    res = max_abs_residual(kcl_residual(net, sol.voltages, currents))
    assert res < 1e-12


def test_ideal_diodes_clip_exactly_and_match_near_ideal_ngspice(rng):
    """Ideal diodes: exact clamp; ngspice gets a near-ideal Shockley diode (N = 0.001).

    The near-ideal diode adds a forward drop of about N*V_T*ln(I/IS) (about 0.5 mV
    at microamperes), so agreement is within 1.5 mV rather than 1 uV, and the
    drop shrinks in proportion to N.
    """
    net = random_network("6-8-3", diode=DiodeModel(kind="ideal"), v_low=0.0, v_high=0.1)
    x = rng.uniform(0, 1, (4, 6))
    fast = FastBackend().solve(net, x)
    h = fast.voltages[1]
    assert h.min() >= 0.0 and h.max() <= 0.1
    assert np.any(h == 0.0) and np.any(h == 0.1)
    assert fast.residual < 1e-12
    assert max_abs_residual(kcl_residual(net, fast.voltages)) < 1e-12
    spice = SpiceBackend(fold_inputs=False, options=SpiceOptions.tight()).solve(net, x)
    gap = np.max(np.abs(spice.flat() - fast.flat()))
    assert gap < 1.5e-3
    blunt = Network(replace(net.architecture, diode=replace(net.architecture.diode, spice_ideal_n=0.01)),
                    net.conductances)
    blunt_gap = np.max(np.abs(SpiceBackend(fold_inputs=False).solve(blunt, x).flat() - fast.flat()))
    assert 5 * gap < blunt_gap < 1e-2  # the SPICE-side error is the diode's drop, proportional to N


def test_non_convergence_raises_or_is_flagged(rng):
    net = random_network("6-5-3")
    x = rng.uniform(0, 1, (2, 6))
    with pytest.raises(ConvergenceError, match="no steady state after 1 sweeps"):
        FastBackend(max_sweeps=1, tol=1e-20).solve(net, x)
    sol = FastBackend(max_sweeps=1, tol=1e-20, on_fail="flag").solve(net, x)
    assert not sol.converged and sol.residual > 1e-20
    fixed = FastBackend(fixed_sweeps=2).solve(net, x)
    assert fixed.iterations == 2 and np.isfinite(fixed.residual)


def test_warm_start_reaches_same_state_faster(rng):
    net = random_network("6-5-4-3", amplifier_gain=2.0)
    x = rng.uniform(0, 1, (3, 6))
    backend = FastBackend()
    free = backend.solve(net, x)
    currents = rng.normal(0, 1e-7, (3, 6))
    cold = backend.solve(net, x, currents)
    warm = backend.solve(net, x, currents, initial=free)
    assert warm.iterations < cold.iterations
    np.testing.assert_allclose(warm.flat(), cold.flat(), atol=1e-7)


@pytest.mark.parametrize("skip, moved", [((), {2}), (((1, 3),), {1, 2})])
def test_warm_sweeps_begin_with_the_outputs(rng, skip, moved):
    """A warm-started solve with ``warm_sweeps`` updates the outputs first: in one sweep from the free steady
    state the nudge moves every hidden layer joined to the outputs (plain order: none), and many warm sweeps
    reach the nudged steady state."""
    net = random_network("6-5-4-3", amplifier_gain=2.0, skip=skip)
    x = rng.uniform(0, 1, (3, 6))
    free = FastBackend(tol=1e-14).solve(net, x)
    currents = rng.normal(0, 1e-6, (3, 6))
    plain = FastBackend(fixed_sweeps=1).solve(net, x, currents, initial=free)
    warm = FastBackend(fixed_sweeps=5, warm_sweeps=1).solve(net, x, currents, initial=free)
    assert warm.iterations == 1 and FastBackend(fixed_sweeps=5, warm_sweeps=1).solve(net, x).iterations == 5
    for layer in (1, 2):
        assert np.max(np.abs(plain.voltages[layer] - free.voltages[layer])) < 1e-9
        change = np.max(np.abs(warm.voltages[layer] - free.voltages[layer]))
        assert change > 1e-6 if layer in moved else change < 1e-9, (layer, change)
    steady = FastBackend(tol=1e-14).solve(net, x, currents)
    many = FastBackend(fixed_sweeps=5, warm_sweeps=3000).solve(net, x, currents, initial=free)
    np.testing.assert_allclose(many.flat(), steady.flat(), rtol=0, atol=1e-9)
    assert max_abs_residual(kcl_residual(net, many.voltages, currents)) < 1e-12


def test_warm_sweeps_need_fixed_sweeps():
    with pytest.raises(ValueError, match="warm_sweeps"):
        FastBackend(warm_sweeps=1)
    with pytest.raises(ValueError, match="warm_sweeps"):
        FastBackend(fixed_sweeps=3, warm_sweeps=0)


@pytest.mark.parametrize("kind, omega", [("ideal", 1.5), ("shockley", 1.0)])
def test_steady_state_backend_reaches_the_steady_state(rng, kind, omega):
    net = random_network("6-5-4-3", amplifier_gain=2.0, skip=((0, 2),), diode=DiodeModel(kind=kind))
    x = rng.uniform(0, 1, (3, 6))
    backend = steady_state_backend(net)
    assert backend.config.relaxation == omega  # over-relaxed only where the step is exact (ideal diodes)
    solution = backend.solve(net, x)
    assert solution.converged and max_abs_residual(kcl_residual(net, solution.voltages)) < 1e-10


def test_float32_is_close_to_float64(rng):
    net = random_network("20-16-5", v_low=-0.1, v_high=0.2)
    x = rng.uniform(0, 1, (8, 20))
    ref = FastBackend().solve(net, x)
    f32 = FastBackend(dtype="float32", tol=1e-8).solve(net, x)
    assert f32.voltages[1].dtype == np.float32
    assert np.max(np.abs(ref.flat() - f32.flat())) < 1e-5


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_session_nudged_phases_equal_cold_solves_from_the_free_state(rng, dtype):
    """The session solves the nudged phases as one stacked batch with the free phase's input voltages and
    drive; each equals a solve of its own from the free state."""
    net = random_network("6-5-3", seed=2, bias_input=True)
    backend = FastBackend(fixed_sweeps=3, dtype=dtype)
    session = backend.session(net)
    x = rng.uniform(0, 1, (4, 6))
    currents = [rng.normal(0, 1e-7, (4, 6)), rng.normal(0, 1e-7, (4, 6))]
    free = session.free(x)
    assert free.voltages[0].dtype == np.dtype(dtype)
    np.testing.assert_array_equal(free.voltages[0], net.input_voltages(x).astype(dtype))
    nudged = session.nudged(x, currents, free)
    prepared = backend.prepare(net)
    tol = 1e-12 if dtype == "float64" else 1e-6
    for c, solution in zip(currents, nudged):
        cold = prepared.solve(x, c, initial=free)
        np.testing.assert_allclose(solution.flat(), cold.flat(), rtol=0, atol=tol)
        assert not np.allclose(solution.flat(), free.flat(), rtol=0, atol=1e-9)  # the nudge moved the outputs
    with pytest.raises(ValueError, match="same batch"):
        session.nudged(x.copy(), currents, free)


def test_given_input_voltages_and_drive_give_the_same_solution(rng):
    net = random_network("6-5-3", seed=3, bias_input=True)
    prepared = FastBackend(fixed_sweeps=4, dtype="float32").prepare(net)
    x = rng.uniform(0, 1, (4, 6))
    v_in = net.input_voltages(x, dtype=np.float32)
    drive = prepared.input_drive(v_in)
    given = prepared.solve(x, input_drive=drive, input_voltages=v_in)
    assert given.voltages[0] is v_in
    for a, b in zip(given.voltages, prepared.solve(x).voltages):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="input voltages have shape"):
        prepared.solve(x, input_voltages=v_in[:3])
    with pytest.raises(ValueError, match="dtype"):
        prepared.solve(x, input_voltages=v_in.astype(np.float64))



@pytest.mark.parametrize("omega", [1.5, 1.8])
def test_over_relaxation_reaches_the_same_steady_state_in_fewer_sweeps(omega, rng):
    # a deep chain without skips, amplifiers of gain 4: the layers move together and plain coordinate descent
    # needs hundreds of sweeps; over-relaxation converges to the same KCL solution in far fewer
    net = random_network("12-10-10-10-4", amplifier_gain=4.0, v_low=0.0, v_high=1.0, seed=5,
                         diode=DiodeModel(kind="ideal"))
    x = rng.uniform(0, 1, (6, 12))
    currents = rng.normal(0, 1e-6, (6, net.layer_sizes[-1]))
    plain = FastBackend(tol=1e-14, max_sweeps=100000).solve(net, x, currents)
    fast = FastBackend(tol=1e-14, max_sweeps=100000, relaxation=omega).solve(net, x, currents)
    assert plain.converged and fast.converged
    assert max_abs_residual(kcl_residual(net, fast.voltages, currents)) < 1e-12
    assert np.max(np.abs(fast.flat() - plain.flat())) < 1e-8
    assert fast.iterations < plain.iterations / 2, (fast.iterations, plain.iterations)
    clipped = np.concatenate([v.ravel() for v in fast.voltages[1:-1]])
    assert np.any(clipped == 0.0) and np.any((clipped > 0) & (clipped < 1)), "some nodes must clip, some not"


def test_over_relaxation_is_refused_where_it_is_not_exact(rng):
    net = random_network("4-3-2", diode=DiodeModel(), v_low=-0.4, v_high=-0.3)
    with pytest.raises(ValueError, match="ideal diodes"):
        FastBackend(relaxation=1.5).solve(net, rng.uniform(0, 1, (2, 4)))
    with pytest.raises(ValueError, match=r"in \(0, 2\)"):
        FastBackend(relaxation=2.0)


@pytest.mark.parametrize("spec, skip, omega, inverted", [("12-10-10-4", ((0, 2), (1, 3)), 1.0, False),
                                                         ("12-10-10-10-4", ((0, 2), (0, 3), (1, 4), (2, 4)), 1.0, False),
                                                         ("12-10-10-10-4", (), 1.5, False),
                                                         ("12-10-10-10-4", ((0, 2), (1, 4)), 1.0, True),
                                                         ("12-10-10-10-4", (), 1.5, True)])
def test_crossbar_pass_gives_the_two_products_sweep_by_sweep(spec, skip, omega, inverted, rng, monkeypatch):
    from circuitprop.backends.fast import solver
    monkeypatch.setattr(solver, "CROSSBAR_PASS_MIN_SIZE", 1)  # these crossbars are small
    solver._crossbar_passes.cache_clear()
    try:
        net = random_network(spec, skip=skip, amplifier_gain=4.0, v_low=0.0, v_high=1.0, seed=3,
                             diode=DiodeModel(kind="ideal"), inverted_copies=inverted)
        x = rng.uniform(0, 1, (5, 12))
        currents = rng.normal(0, 1e-6, (5, net.layer_sizes[-1]))
        one, two = (FastBackend(tol=1e-14, max_sweeps=100000, relaxation=omega, crossbar_pass=p) for p in (True, False))
        passes = one.prepare(net).passes
        assert len(passes) == len(net.layer_sizes) - 3 and not two.prepare(net).passes  # every hidden pair
        calls = []
        kernel = solver.ideal_crossbar_pass
        monkeypatch.setattr(solver, "ideal_crossbar_pass", lambda *a, **k: calls.append(1) or kernel(*a, **k))
        for sweeps in (1, 2, 5):
            calls.clear()
            a = FastBackend(fixed_sweeps=sweeps, relaxation=omega, crossbar_pass=True).solve(net, x, currents)
            assert len(calls) == sweeps * len(passes)  # each crossbar read once per sweep
            b = FastBackend(fixed_sweeps=sweeps, relaxation=omega, crossbar_pass=False).solve(net, x, currents)
            assert np.max(np.abs(a.flat() - b.flat())) < 1e-12, sweeps
        a, b = one.solve(net, x, currents), two.solve(net, x, currents)
        assert a.converged and b.converged and a.iterations == b.iterations
        assert max_abs_residual(kcl_residual(net, a.voltages, currents)) < 1e-12
    finally:
        solver._crossbar_passes.cache_clear()
