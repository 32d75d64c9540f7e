"""Device models: each piece's update statistics match its definition; composition; training with devices."""
import numpy as np
import pytest
from conftest import fit_run

from circuitprop.learning import EPTrainer
from circuitprop.model.devices import (
    AsymmetricSteps,
    CycleToCycle,
    DeviceModel,
    DeviceToDevice,
    NonlinearSteps,
    ProgrammingError,
    QuantizedStates,
    ReadNoise,
    SoftBounds,
    make_device,
)

LO, HI = 1e-8, 1e-4
SPAN = HI - LO
KEY = (0, 1)


def apply(pieces, g, delta, seed=0):
    g = np.array(g, dtype=float)
    DeviceModel(pieces=tuple(pieces)).apply(KEY, g, np.broadcast_to(delta, g.shape), np.random.default_rng(seed), LO, HI)
    return g


def mid(n=200_000):
    return np.full(n, LO + 0.5 * SPAN)


def test_quantized_states_are_the_only_values_and_small_updates_are_lost():
    q = QuantizedStates(16)
    rng = np.random.default_rng(0)
    g = q.quantize(rng.uniform(LO, HI, 5000), LO, HI)
    for _ in range(20):
        g = apply([q], g, rng.normal(0, 0.05 * SPAN, g.shape), seed=_)
    levels = q.levels(LO, HI)
    assert np.all(np.min(np.abs(g[:, None] - levels[None, :]), axis=1) < 1e-12 * SPAN)
    assert len(np.unique(np.round(g / SPAN, 9))) <= 16
    level = SPAN / 15
    start = q.quantize(mid(10), LO, HI)
    np.testing.assert_array_equal(apply([q], start, 0.49 * level), start)            # lost
    np.testing.assert_allclose(apply([q], start, 0.51 * level), start + level, rtol=1e-12)  # one level


def test_stochastic_rounding_keeps_the_mean_update():
    q = QuantizedStates(16, stochastic=True)
    start = q.quantize(mid(), LO, HI)
    step = 0.3 * SPAN / 15
    moved = apply([q], start, step) - start
    assert np.mean(moved) == pytest.approx(step, rel=0.02)
    assert set(np.round(moved / (SPAN / 15), 6)) == {0.0, 1.0}


def test_asymmetric_steps_scale_up_and_down():
    a = AsymmetricSteps.from_asymmetry(0.25)
    d = 1e-3 * SPAN
    assert (apply([a], mid(10), d) - mid(10)) == pytest.approx(1.25 * d)
    assert (apply([a], mid(10), -d) - mid(10)) == pytest.approx(-0.75 * d)


def test_soft_bounds_and_nonlinear_steps_depend_on_the_state():
    d = 1e-3 * SPAN
    g = np.full(4, LO + 0.75 * SPAN)
    assert (apply([SoftBounds()], g, d) - g) == pytest.approx(0.25 * d)
    assert (apply([SoftBounds()], g, -d) - g) == pytest.approx(-0.75 * d)
    assert (apply([NonlinearSteps(2.0)], g, d) - g) == pytest.approx(np.exp(-2.0 * 0.75) * d)
    assert (apply([NonlinearSteps(2.0)], g, -d) - g) == pytest.approx(-np.exp(-2.0 * 0.25) * d)


def test_cycle_to_cycle_spread_matches_sigma():
    d = 1e-4 * SPAN
    ratio = (apply([CycleToCycle(0.2)], mid(), d) - mid()) / d
    assert np.mean(ratio) == pytest.approx(1.0, abs=0.005)
    assert np.std(ratio) == pytest.approx(0.2, rel=0.02)
    again = (apply([CycleToCycle(0.2)], mid(), d, seed=1) - mid()) / d
    assert abs(np.corrcoef(ratio, again)[0, 1]) < 0.01  # drawn anew every update


def test_device_to_device_scales_are_fixed_per_device():
    model = DeviceModel(pieces=(DeviceToDevice(0.3, seed=5),))
    d = 1e-4 * SPAN
    g1, g2 = mid(), mid()
    model.apply(KEY, g1, np.full(g1.shape, d), np.random.default_rng(0), LO, HI)
    model.apply(KEY, g2, np.full(g2.shape, d), np.random.default_rng(1), LO, HI)
    s1, s2 = (g1 - mid()) / d, (g2 - mid()) / d
    np.testing.assert_allclose(s1, s2)  # the same devices step the same way whatever the update's noise
    assert np.std(s1) == pytest.approx(0.3, rel=0.03) and np.mean(s1) == pytest.approx(1.0, abs=0.01)


def test_programming_error_only_on_written_devices():
    g = mid()
    delta = np.where(np.arange(g.size) % 2 == 0, 1e-3 * SPAN, 0.0)
    out = apply([ProgrammingError(0.01)], g, delta)
    written = delta != 0
    np.testing.assert_array_equal(out[~written], g[~written])
    assert np.std(out[written] - g[written] - delta[written]) == pytest.approx(0.01 * SPAN, rel=0.02)


def test_read_noise_leaves_the_stored_value():
    g = mid()
    read = ReadNoise(0.05).read(g, np.random.default_rng(0))
    assert np.std(read / g - 1) == pytest.approx(0.05, rel=0.02)
    assert np.all(g == LO + 0.5 * SPAN)


def test_presets_round_trip_and_bad_specs_are_refused():
    for name in ("reram", "pcm", "ecram"):
        model = make_device(name)
        assert DeviceModel.from_dict(model.to_dict()).pieces == model.pieces
    assert make_device("ideal") is None and make_device(None) is None
    with pytest.raises(ValueError, match="unknown device preset"):
        make_device("memristor9000")
    with pytest.raises(ValueError, match="unknown device piece"):
        DeviceModel.from_dict({"pieces": [{"type": "Magic"}]})
    with pytest.raises(ValueError, match="n_states"):
        QuantizedStates(1)
    with pytest.raises(ValueError, match="sigma"):
        CycleToCycle(-0.1)


def test_training_with_a_device_resumes_exactly(tmp_path):
    rng = np.random.default_rng(0)
    X, y = rng.uniform(0, 1, (40, 5)), rng.integers(0, 3, 40)
    kw = dict(layers="5-4-3", epochs=2, batch_size=4, verbose=False, learning_rate=1e3, g_init=(1e-6, 1e-5),
              device="reram")
    full = EPTrainer(**kw).fit(X, y)
    ckpt = tmp_path / "c.npz"
    fit_run(EPTrainer(**kw), X, y, checkpoint=ckpt, stop_after_batches=13)
    resumed = fit_run(EPTrainer(**kw), X, y, checkpoint=ckpt, resume=True)
    for key, g in full.network_.conductances.items():
        np.testing.assert_array_equal(resumed.network_.conductances[key], g)  # device noise is checkpointed
        assert g.min() >= full.g_min and g.max() <= full.g_max
    ideal = EPTrainer(**{**kw, "device": None}).fit(X, y)
    assert not np.array_equal(ideal.network_.conductances[(0, 1)], full.network_.conductances[(0, 1)])
