"""The Shockley-neuron solve (circuitprop.kernels.shockley): closed form, SIMD exp/log, fallbacks, against the numpy
Newton iteration of the fast backend, KCL and scipy's Wright omega."""
import math

import numpy as np
import pytest
from conftest import random_network

from circuitprop.backends import FastBackend
from circuitprop.kernels.shockley import _build, shockley_neurons, shockley_residual
from circuitprop.model import DiodeModel
from circuitprop.model.energy import neuron_current

pytest.importorskip("numba")

CASES = [
    (1.0, 1e-12, 0.0, 0.0, 1.0), (1.906, 4.352e-9, 0.0, 0.0, 1.0), (0.05, 1e-14, 0.0, 0.0, 1.0),
    (1.906, 4.352e-9, 0.6458, 0.0, 1.0),  # the 1N4148 card
    (1.906, 4.352e-9, 0.6458, 0.267, 0.733),  # its compensated bias: both diodes conduct between the knees
    (1.0, 1e-9, 50.0, 0.49, 0.51),  # a narrow window: one correction is not enough, Newton finishes
    (1.0, 1e-3, 0.0, 0.0, 1.0),  # huge IS: exponents past the model's linear continuation (EXP_LIMIT)
]


@pytest.mark.parametrize("method", ["vector", "scalar"])
@pytest.mark.parametrize("n, isat, rs, v_low, v_high", CASES)
def test_shockley_solve_matches_the_numpy_iteration_and_kcl(rng, method, n, isat, rs, v_low, v_high):
    diode = DiodeModel("shockley", saturation_current=isat, emission_coefficient=n, series_resistance=rs)
    prepared = FastBackend().prepare(random_network("5-40-3", diode=diode))
    coef = np.concatenate([rng.uniform(1e-6, 1e-4, 20), rng.uniform(1e-4, 1e-2, 20)])
    # linear solutions far below, inside and far above the knees, a dense sweep across the window, extremes
    drive = coef * np.concatenate([rng.uniform(-3.0, 4.0, (16, 40)),
                                   np.linspace(v_low - 0.3, v_high + 0.3, 64)[:, None] + np.zeros(40),
                                   np.array([-1e4, -50.0, 50.0, 1e4])[:, None] + np.zeros(40)])
    fast = shockley_neurons(coef, drive, v_low, v_high, diode, 1e-13, np.float64, method=method)
    slow = prepared._newton(coef, drive, v_low, v_high, np.full(drive.shape, 0.5 * (v_low + v_high)))
    np.testing.assert_allclose(fast, slow, atol=1e-11, rtol=1e-13)
    current, conductance = neuron_current(fast, v_low, v_high, diode)
    residual = coef * fast - drive + current
    scale = np.abs(coef * fast) + np.abs(drive) + np.abs(current)
    # KCL: the node is within 1e-13 V of its root, up to the rounding of the terms
    slack = 1e-13 * (coef + conductance) * (1 + np.abs(fast)) + 1e-15 * scale
    assert np.all(np.abs(residual) <= slack)


def test_vector_and_scalar_paths_agree_on_a_large_layer(rng):
    """The parallel SIMD kernel (batch x nodes above the threading threshold) equals the scalar one."""
    diode = DiodeModel.from_card("1n4148")
    coef = rng.uniform(1e-4, 1e-2, 1024)
    drive = coef * rng.normal(0.5, 0.4, (128, 1024))
    vector = shockley_neurons(coef, drive, 0.267, 0.733, diode, 1e-13, np.float64, method="vector")
    scalar = shockley_neurons(coef, drive, 0.267, 0.733, diode, 1e-13, np.float64, method="scalar")
    np.testing.assert_allclose(vector, scalar, atol=1e-13, rtol=0)


def test_wright_omega_matches_scipy():
    from scipy.special import wrightomega
    omega = _build()["omega"]
    z = np.concatenate([np.linspace(-800, 800, 20001), np.linspace(-5, 5, 20001), np.logspace(0, 300, 500)])
    ours = np.array([omega(v) for v in z])
    ref = np.real(wrightomega(z))
    ok = ref > 1e-300
    assert np.all(np.isfinite(ours))
    np.testing.assert_allclose(ours[ok], ref[ok], rtol=1e-14)
    assert np.all(ours[~ok] < 1e-300)


def test_simd_exp_and_log_match_numpy(rng):
    kernels = _build()
    x = np.concatenate([rng.uniform(-708, 709, 5000), rng.uniform(-1, 1, 5000), [0.0, -708.0, 709.0, 1e-3]])
    out, work = np.empty_like(x), np.empty_like(x)
    kernels["vexp"](x, out, work)
    np.testing.assert_allclose(out, np.exp(x), rtol=4e-16)
    y = np.concatenate([np.exp(rng.uniform(-690, 700, 5000)), rng.uniform(0.5, 2.0, 5000),
                        [1.0, math.sqrt(2.0), math.sqrt(0.5), 2.2250738585072014e-308, 1.7e308]])
    out, work = np.empty_like(y), np.empty_like(y)
    kernels["vlog"](y, out, work)
    np.testing.assert_allclose(out, np.log(y), rtol=4e-16, atol=1e-300)


@pytest.mark.parametrize("rs", [0.0, 0.6458])
def test_numba_neuron_current_matches_energy(rng, rs):
    from circuitprop.kernels.shockley import shockley_current
    diode = DiodeModel("shockley", saturation_current=4.352e-9, emission_coefficient=1.906, series_resistance=rs)
    v = np.concatenate([rng.uniform(-2.0, 3.0, (300, 257)), np.linspace(-8.0, 9.0, 257)[None, :]])
    if rs == 0.0:  # past the model's linear continuation of the exponential too
        v[0, :3] = [6.0, -5.0, 40.0]
    ours = shockley_current(v, 0.267, 0.733, diode)
    ref = neuron_current(v, 0.267, 0.733, diode)[0]
    np.testing.assert_allclose(ours, ref, rtol=1e-13, atol=1e-24)


@pytest.mark.parametrize("card, v_low, v_high", [("generic", 0.0, 1.0), ("1n4148", 0.267, 0.733)])
def test_low_rank_drive_inside_the_kernel(rng, card, v_low, v_high):
    """``drive + sources @ transfer`` added row by row in the kernels equals the formed drive: the same
    voltages (to rounding of the sum) and the same largest KCL residual as numpy's."""
    diode = DiodeModel("shockley") if card == "generic" else DiodeModel.from_card(card)
    coef = rng.uniform(1e-4, 1e-2, 300)
    base = coef * rng.normal(0.5, 0.5, (260, 300))  # 260 x 300 > the threading threshold: the parallel kernel
    sources = rng.uniform(-0.5, 1.5, (260, 7))
    transfer = rng.uniform(1e-6, 1e-4, (7, 300)) * coef.mean() / 1e-4
    drive = base + sources @ transfer
    fused = shockley_neurons(coef, base, v_low, v_high, diode, 1e-13, np.float64, sources=sources, transfer=transfer)
    formed = shockley_neurons(coef, drive, v_low, v_high, diode, 1e-13, np.float64)
    np.testing.assert_allclose(fused, formed, atol=1e-12, rtol=0)
    moved = fused + rng.normal(0, 1e-3, fused.shape)  # a state that is not a solution: residuals of all sizes
    residual = coef * moved - drive + neuron_current(moved, v_low, v_high, diode)[0]
    assert shockley_residual(moved, coef, base, v_low, v_high, diode, sources, transfer) == pytest.approx(
        np.abs(residual).max(), rel=1e-9)
    assert shockley_residual(fused, coef, base, v_low, v_high, diode, sources, transfer) < 1e-12 * np.abs(drive).max()
    with pytest.raises(ValueError, match="low-rank drive"):
        shockley_neurons(coef, base, v_low, v_high, diode, 1e-13, np.float64, sources=sources, transfer=transfer[:, :5])


def test_solver_fused_path_matches_the_formed_drive(rng):
    """A Shockley network solved with the low-rank drive in the kernel equals the same solve with the drive
    formed by numpy products (the path the solver takes for wider downstream layers), and its KCL residual
    from the fused kernel equals the one from ``residuals()``."""
    import circuitprop.backends.fast.solver as fast_module
    net = random_network("30-40-5", diode=DiodeModel.from_card("1n4148"), amplifier_gain=2.0)
    x = 30 * rng.uniform(0, 1, (9, 30))
    prepared = FastBackend(tol=1e-12).prepare(net)
    assert prepared.low_rank_drive(1, prepared.solve(x).voltages, prepared.input_drive(
        net.input_voltages(x))) is not None
    fused = prepared.solve(x)
    state = fused.voltages
    fixed = prepared.input_drive(state[0])
    assert prepared.max_residual(state, fixed, None) == pytest.approx(
        max(float(np.abs(r).max()) for r in prepared.residuals(state, fixed, None)), rel=1e-9, abs=1e-18)
    original = fast_module.LOW_RANK_MAX
    fast_module.LOW_RANK_MAX = 0
    try:
        formed = FastBackend(tol=1e-12).prepare(net).solve(x)
    finally:
        fast_module.LOW_RANK_MAX = original
    np.testing.assert_allclose(fused.flat(), formed.flat(), atol=1e-11)
    assert fused.converged and formed.converged


def test_fused_residual_reports_a_non_finite_state(rng):
    """A NaN or infinite voltage makes the fused KCL residual infinite (never a small number that passes a tolerance)."""
    diode = DiodeModel("shockley")
    coef = rng.uniform(1e-4, 1e-2, 300)
    base = coef * rng.normal(0.5, 0.5, (260, 300))
    sources, transfer = rng.uniform(0, 1, (260, 7)), rng.uniform(1e-6, 1e-4, (7, 300))
    v = shockley_neurons(coef, base, 0.0, 1.0, diode, 1e-13, np.float64, sources=sources, transfer=transfer)
    for bad in (np.nan, np.inf):
        broken = v.copy()
        broken[200, 17] = bad
        assert shockley_residual(broken, coef, base, 0.0, 1.0, diode, sources, transfer) == np.inf


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_ideal_diode_layers_with_a_low_rank_drive_match_the_numpy_clip(rng, dtype, monkeypatch):
    """The ideal-diode kernel (drive summed in the kernel, then the clamp) gives the numpy path's voltages
    (the same fixed sweeps with the drive formed by products) to rounding; NaN stays NaN."""
    import circuitprop.backends.fast.solver as fast_module
    from circuitprop.kernels.shockley import clipped_neurons
    monkeypatch.setattr(fast_module, "IDEAL_KERNEL_MIN_SIZE", 0)  # the kernel at this test's small size
    calls = []
    monkeypatch.setattr(fast_module, "clipped_neurons", lambda *a, **k: calls.append(1) or clipped_neurons(*a, **k))
    net = random_network("30-40-5", diode=DiodeModel(kind="ideal"), amplifier_gain=2.0, v_low=-0.05, v_high=0.05)
    x = rng.uniform(0, 1, (9, 30))
    currents = rng.normal(0, 1e-6, (9, 10))
    prepared = FastBackend(fixed_sweeps=5, dtype=dtype).prepare(net)
    assert prepared.low_rank_drive(1, prepared.solve(x).voltages, prepared.input_drive(
        net.input_voltages(x, dtype=dtype))) is not None
    fused = prepared.solve(x, currents)
    assert len(calls) >= 5  # the kernel solved the hidden layer in every sweep
    hidden = fused.voltages[1]
    assert hidden.dtype == np.dtype(dtype)
    clamped = (hidden == hidden.dtype.type(-0.05)) | (hidden == hidden.dtype.type(0.05))
    assert 0.05 < np.mean(clamped) < 0.95  # both the clamp and the linear region are exercised
    monkeypatch.setattr(fast_module, "LOW_RANK_MAX", 0)
    formed_solver = FastBackend(fixed_sweeps=5, dtype=dtype).prepare(net)
    assert formed_solver.low_rank_drive(1, fused.voltages, formed_solver.input_drive(fused.voltages[0])) is None
    formed = formed_solver.solve(x, currents)
    tol = 1e-12 if dtype == "float64" else 1e-5
    np.testing.assert_allclose(fused.flat(), formed.flat(), atol=tol, rtol=0)
    coef = np.full(3, 2.0)
    out = clipped_neurons(coef, np.array([[np.nan, 1.0, -5.0]]), -1.0, 1.0, np.zeros((1, 1)), np.zeros((1, 3)))
    assert np.isnan(out[0, 0]) and out[0, 1] == 0.5 and out[0, 2] == -1.0


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("skip", [(), ((0, 2),)])
def test_ideal_chain_kernel_runs_the_same_sweeps_as_the_numpy_path(rng, dtype, skip, monkeypatch):
    """Inputs -> ideal-diode hidden -> outputs with fixed sweeps: all sweeps in one kernel call give the
    layer-by-layer numpy sweeps' voltages to rounding (amplifier gains, a skip crossbar, nudging currents)."""
    import circuitprop.backends.fast.solver as fast_module
    from circuitprop.kernels.shockley import ideal_chain_sweeps
    calls = []
    monkeypatch.setattr(fast_module, "ideal_chain_sweeps",
                        lambda *a, **k: calls.append(1) or ideal_chain_sweeps(*a, **k))
    net = random_network("30-40-5", diode=DiodeModel(kind="ideal"), amplifier_gain=2.0, v_low=-0.05, v_high=0.05,
                         skip=skip)
    x = rng.uniform(0, 1, (6, 30))
    currents = rng.normal(0, 1e-6, (6, 10))
    prepared = FastBackend(fixed_sweeps=3, dtype=dtype).prepare(net)
    free = prepared.solve(x)
    nudged = prepared.solve(x, currents, initial=free)
    assert len(calls) == 2 and nudged.iterations == 3
    hidden = nudged.voltages[1]
    clamped = (hidden == hidden.dtype.type(-0.05)) | (hidden == hidden.dtype.type(0.05))
    assert 0.05 < np.mean(clamped) < 0.95  # both the clamp and the linear region are exercised
    monkeypatch.setattr(fast_module.PreparedNetwork, "_chain_sweeps", lambda *a: False)
    numpy_path = FastBackend(fixed_sweeps=3, dtype=dtype).prepare(net)
    reference = numpy_path.solve(x, currents, initial=numpy_path.solve(x))
    assert len(calls) == 2
    tol = 1e-12 if dtype == "float64" else 1e-5
    np.testing.assert_allclose(nudged.flat(), reference.flat(), atol=tol * max(1.0, np.abs(reference.flat()).max()),
                               rtol=0)
