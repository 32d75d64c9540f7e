"""EP gradients against finite differences, estimator bias orders, noise, checkpoints."""
import json
import warnings

import numpy as np
import pytest
from conftest import fit_run

from circuitprop.backends import FastBackend
from circuitprop.errors import ConfigError
from circuitprop.learning import (CosineAnnealing, EPTrainer, ExponentialDecay, MeasurementNoise, SignRule,
                                  get_schedule)
from circuitprop.learning.ep import weighted_half_drop_squared


def small_trainer(**kw):
    params = dict(layers="5-4-3", epochs=0, batch_size=6, verbose=False, beta=1e-9, g_init=(1e-6, 1e-5),
                  learning_rate=1.0, momentum=0.0, v_low=-0.1, v_high=0.1, diode="shockley",
                  amplifier_gain=2.0, solver_tol=1e-16, target=0.1)  # tolerances below are set for 0.1 V
    params.update(kw)
    return EPTrainer(**params)


def data(n=6, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 1, (n, 5)), rng.integers(0, 3, n)


def ep_gradient(trainer, X, T):
    """dL/dg_n from one training step with learning rate 1 and no momentum."""
    net = trainer.network_
    before = {k: v.copy() for k, v in net.conductances.items()}
    trainer.train_batch(X, T)
    grads = {k: (before[k] - net.conductances[k]) / trainer.conductance_unit for k in before}
    for k in before:
        net.conductances[k][...] = before[k]
    return grads


def fd_gradient(trainer, X, T, backend):
    net = trainer.network_
    unit = trainer.conductance_unit

    def loss():
        s = net.scores(backend.solve(net, X).outputs)
        return 0.5 * np.mean(np.sum((T - s) ** 2, axis=1))

    h = 1e-4 * unit
    grads = {}
    for key, g in net.conductances.items():
        fd = np.zeros_like(g)
        for idx in np.ndindex(g.shape):
            g[idx] += h
            up = loss()
            g[idx] -= 2 * h
            dn = loss()
            g[idx] += h
            fd[idx] = (up - dn) / (2 * h) * unit
        grads[key] = fd
    return grads


def cosine(a, b):
    a = np.concatenate([v.ravel() for v in a.values()])
    b = np.concatenate([v.ravel() for v in b.values()])
    return a @ b / np.linalg.norm(a) / np.linalg.norm(b), np.linalg.norm(a - b) / np.linalg.norm(b)


def test_ep_gradient_matches_finite_differences_fast_backend():
    X, y = data()
    tr = small_trainer().fit(X, y)
    T = tr._targets(y)
    cos, rel = cosine(ep_gradient(tr, X, T), fd_gradient(tr, X, T, FastBackend(tol=1e-16)))
    assert cos >= 0.999 and rel < 1e-3, (cos, rel)


def test_ep_gradient_of_a_deep_skip_network_matches_finite_differences():
    # three hidden layers, skip crossbars of every kind, one amplifier gain per hidden layer
    X, y = data()
    tr = small_trainer(layers="5-4-4-4-3", skip=((0, 2), (0, 3), (1, 3), (2, 4), (1, 4)),
                       amplifier_gain=[2.0, 0.0, 1.5]).fit(X, y)
    arch = tr.network_.architecture
    assert len(arch.crossbars) == 9 and [h.amplifier_gain for h in arch.hidden] == [2.0, None, 1.5]
    T = tr._targets(y)
    cos, rel = cosine(ep_gradient(tr, X, T), fd_gradient(tr, X, T, FastBackend(tol=1e-16)))
    assert cos >= 0.999 and rel < 1e-3, (cos, rel)


def test_ep_gradient_with_a_dropped_crossbar_matches_finite_differences():
    # layer 2 fed by the inputs only (no 1-2 crossbar); both hidden layers drive the outputs
    X, y = data()
    tr = small_trainer(layers="5-4-4-3", drop=((1, 2),), skip=((0, 2), (1, 3)), amplifier_gain=2.0).fit(X, y)
    assert tr.network_.architecture.crossbars == ((0, 1), (2, 3), (0, 2), (1, 3))
    T = tr._targets(y)
    cos, rel = cosine(ep_gradient(tr, X, T), fd_gradient(tr, X, T, FastBackend(tol=1e-16)))
    assert cos >= 0.999 and rel < 1e-3, (cos, rel)


def test_ep_gradient_with_inverted_copies_matches_finite_differences():
    # hidden layers driving the next with A*V and -A*V: crossbars leaving them have twice the rows
    X, y = data()
    tr = small_trainer(layers="5-4-4-4-3", skip=((0, 2), (1, 3), (2, 4)), amplifier_gain=[2.0, 1.5, 3.0],
                       inverted_copies=True).fit(X, y)
    arch = tr.network_.architecture
    assert [h.inverted_copy for h in arch.hidden] == [True, True, False]
    assert tr.network_.conductances[(1, 2)].shape == (8, 4) and tr.network_.conductances[(3, 4)].shape == (4, 6)
    T = tr._targets(y)
    cos, rel = cosine(ep_gradient(tr, X, T), fd_gradient(tr, X, T, FastBackend(tol=1e-16)))
    assert cos >= 0.999 and rel < 1e-3, (cos, rel)


def test_the_ep_rule_is_the_exact_gradient_only_with_reciprocal_amplifiers():
    # backward current gain = forward gain: an ideal transformer, the circuit keeps a co-content and the
    # Delta V^2 rule is its gradient; any other backward gain breaks reciprocity and with it that identity
    X, y = data()
    cosines = {}
    for backward in (None, 0.5, 8.0):
        tr = small_trainer(layers="5-4-4-3", skip=((0, 2), (1, 3)), amplifier_gain=2.0,
                           backward_gain=backward).fit(X, y)
        assert [h.current_gain for h in tr.network_.architecture.hidden] == [backward or 2.0] * 2
        T = tr._targets(y)
        cosines[backward] = cosine(ep_gradient(tr, X, T), fd_gradient(tr, X, T, FastBackend(tol=1e-16)))[0]
    assert cosines[None] >= 0.999 and cosines[0.5] < 0.99 and cosines[8.0] < 0.99, cosines


@pytest.mark.parametrize("diode", ["shockley", "ideal"])
def test_nudged_sweeps_converge_to_the_steady_state_gradient(diode):
    # every hidden layer has a crossbar to the outputs; the free phase relaxed to its steady state by its sweeps
    X, y = data()
    kw = dict(layers="5-4-4-4-3", skip=((0, 2), (0, 3), (1, 4), (2, 4)), amplifier_gain=[2.0, 2.0, 2.0],
              diode=diode, g_init_scaling="amplifier")
    exact = small_trainer(**kw).fit(X, y)
    T = exact._targets(y)
    reference = ep_gradient(exact, X, T)
    cosines = [cosine(ep_gradient(small_trainer(**kw, solver_sweeps=200, solver_nudged_sweeps=n).fit(X, y), X, T),
                      reference)[0] for n in (1, 2, 3, 200)]
    assert cosines[0] >= 0.999 and np.all(np.diff(cosines) > -1e-9) and cosines[-1] > 1 - 1e-9, cosines
    with pytest.raises(ConfigError, match="solver_nudged_sweeps needs solver_sweeps"):
        small_trainer(**kw, solver_nudged_sweeps=1)


@pytest.mark.spice
def test_ep_gradient_with_ngspice_in_the_loop_matches_fast_and_finite_differences():
    from circuitprop.backends.spice import SpiceBackend, SpiceOptions
    X, y = data(4)
    fast = small_trainer(beta=1e-8, batch_size=4).fit(X, y)
    T = fast._targets(y)
    g_fast = ep_gradient(fast, X, T)
    spice = small_trainer(beta=1e-8, batch_size=4, backend="spice").fit(X, y)
    spice._backend = SpiceBackend(fold_inputs=False, options=SpiceOptions.tight())
    for k in fast.network_.conductances:
        spice.network_.conductances[k][...] = fast.network_.conductances[k]
    g_spice = ep_gradient(spice, X, T)
    cos, rel = cosine(g_spice, g_fast)
    assert cos > 0.9999 and rel < 1e-2, (cos, rel)
    cos, rel = cosine(g_spice, fd_gradient(spice, X, T, spice._backend))
    assert cos >= 0.999, (cos, rel)


def test_estimator_bias_orders():
    """One-sided bias ~ beta, centered ~ beta^2: fitted slopes on a log-log plot."""
    X, y = data(6, seed=3)
    betas = np.array([8e-6, 4e-6, 2e-6, 1e-6])
    tight = FastBackend(tol=1e-30, vtol=1e-16, max_sweeps=20000, on_fail="flag")  # solver floor far below
    ref_tr = small_trainer(beta=5e-8).fit(X, y)  # centered: its own bias is ~1e-3 of the smallest tested
    ref_tr._backend = tight
    T = ref_tr._targets(y)
    ref = ep_gradient(ref_tr, X, T)
    slopes = {}
    for est in ("one-sided", "centered"):
        errs = []
        for b in betas:
            tr = small_trainer(beta=b, estimator=est).fit(X, y)
            tr._backend = tight
            g = ep_gradient(tr, X, T)
            errs.append(np.sqrt(sum(np.sum((g[k] - ref[k]) ** 2) for k in g)))
        slopes[est] = np.polyfit(np.log(betas), np.log(errs), 1)[0]
    assert 0.8 < slopes["one-sided"] < 1.2, slopes
    assert 1.8 < slopes["centered"] < 2.2, slopes


def test_zero_noise_reproduces_noiseless_update_exactly():
    X, y = data()
    a = small_trainer(noise_sigma=0.0).fit(X, y)
    b = small_trainer(noise_sigma=0.0, noise_samples=7).fit(X, y)
    T = a._targets(y)
    ga, gb = ep_gradient(a, X, T), ep_gradient(b, X, T)
    for k in ga:
        np.testing.assert_array_equal(ga[k], gb[k])


def test_noise_spread_shrinks_as_one_over_sqrt_n():
    rng = np.random.default_rng(0)
    X, y = data()
    tr = small_trainer().fit(X, y)
    net = tr.network_
    sol = FastBackend().solve(net, X)
    spreads = []
    for n in (1, 4, 16, 64):
        noise = MeasurementNoise(sigma=0.01, n_samples=n)
        estimates = []
        for _ in range(200):
            measured, w = noise.measure(sol.voltages, rng)
            estimates.append(weighted_half_drop_squared(net, [(measured, w)])[(1, 2)])
        spreads.append(np.std(np.array(estimates), axis=0).mean())
    slope = np.polyfit(np.log([1, 4, 16, 64]), np.log(spreads), 1)[0]
    assert -0.6 < slope < -0.4, (slope, spreads)


@pytest.mark.parametrize("skip", [(), ((0, 2),)])
def test_exact_inputs_give_the_sum_over_every_measured_copy(skip):
    # MeasurementNoise(inputs=False): the input rows are kept once per sample and the rule collapses the
    # n noisy copies of the other side; the result must equal the plain sum over all copies with the
    # inputs repeated, crossbar by crossbar (the skip crossbar from the inputs included)
    rng = np.random.default_rng(3)
    X, y = data()
    tr = small_trainer(layers="5-4-3" if not skip else "5-4-4-3", skip=skip).fit(X, y)
    net = tr.network_
    free = FastBackend().solve(net, X)
    nudged = FastBackend().solve(net, X, rng.normal(0, 1e-9, (len(X), net.layer_sizes[-1])))
    noise = MeasurementNoise(sigma=0.01, n_samples=5, inputs=False)
    phases = []
    for sol, w in ((free, -1.3), (nudged, 1.3)):
        measured, row_weight = noise.measure(sol.voltages, rng)
        assert measured[0].shape[0] == len(X) and measured[1].shape[0] == 5 * len(X)
        np.testing.assert_array_equal(measured[0], sol.voltages[0])  # the inputs are not measured
        phases.append((measured, w * row_weight))
    collapsed = weighted_half_drop_squared(net, phases)
    arch = net.architecture
    for (a, b) in net.conductances:
        expected = 0.0
        for measured, w in phases:
            u = arch.forward_gain(a) * np.repeat(measured[a], 5, axis=0) if a == 0 else \
                arch.forward_gain(a) * measured[a]
            expected = expected + w * 0.5 * ((u[:, :, None] - measured[b][:, None, :]) ** 2).sum(axis=0)
        np.testing.assert_allclose(collapsed[(a, b)], expected, rtol=1e-9, atol=1e-15)
    # the sign rule reads the input rows as their copies too
    repeated = [([np.repeat(m[0], 5, axis=0)] + m[1:], w) for m, w in phases]
    signs, reference = SignRule().gradient(net, phases), SignRule().gradient(net, repeated)
    for key in signs:
        np.testing.assert_array_equal(signs[key], reference[key])


def test_noise_is_reproducible_with_a_seed():
    X, y = data()
    a = small_trainer(noise_sigma=0.05, noise_samples=3, epochs=2, seed=5).fit(X, y)
    b = small_trainer(noise_sigma=0.05, noise_samples=3, epochs=2, seed=5).fit(X, y)
    c = small_trainer(noise_sigma=0.05, noise_samples=3, epochs=2, seed=6).fit(X, y)
    k = (0, 1)
    np.testing.assert_array_equal(a.network_.conductances[k], b.network_.conductances[k])
    assert not np.array_equal(a.network_.conductances[k], c.network_.conductances[k])


@pytest.mark.parametrize("schedule", ["exponential", "cosine"])
def test_checkpoint_resume_is_exact(tmp_path, schedule):
    rng = np.random.default_rng(1)
    X, y = rng.uniform(0, 1, (40, 5)), rng.integers(0, 3, 40)
    kw = dict(epochs=2, batch_size=4, noise_sigma=0.02, noise_samples=2, momentum=0.5, learning_rate=0.5,
              beta=1e-7, estimator="random-sign", diode="ideal", solver_tol=1e-12, lr_schedule=schedule,
              lr_decay=0.7)
    full = small_trainer(**kw).fit(X, y)
    ckpt = tmp_path / "run.ckpt.npz"
    fit_run(small_trainer(**kw), X, y, checkpoint=ckpt, stop_after_batches=13)  # killed mid-epoch 2
    resumed = fit_run(small_trainer(**kw), X, y, checkpoint=ckpt, resume=True)
    for k in full.network_.conductances:
        np.testing.assert_array_equal(resumed.network_.conductances[k], full.network_.conductances[k])
    assert [p.name for p in tmp_path.iterdir()] == ["run.ckpt.npz"]


def test_a_run_started_from_scratch_keeps_an_older_log_aside(tmp_path):
    X, y = data(12)
    ckpt, log = tmp_path / "run.ckpt.npz", tmp_path / "run.log.jsonl"
    fit_run(small_trainer(epochs=2, batch_size=4), X, y, checkpoint=ckpt, log=log)
    old = log.read_text()
    assert [json.loads(line)["epoch"] for line in old.splitlines()] == [1, 2]
    ckpt.unlink()  # the checkpoint is lost: resume has nothing to continue, the run starts again
    with pytest.warns(UserWarning, match="superseded-1"):
        fit_run(small_trainer(epochs=1, batch_size=4), X, y, checkpoint=ckpt, log=log, resume=True)
    assert [json.loads(line)["epoch"] for line in log.read_text().splitlines()] == [1]
    assert (tmp_path / "run.log.superseded-1.jsonl").read_text() == old
    # resuming an existing checkpoint appends to the log as before
    fit_run(small_trainer(epochs=2, batch_size=4), X, y, checkpoint=ckpt, log=log, resume=True)
    assert [json.loads(line)["epoch"] for line in log.read_text().splitlines()] == [1, 2]


def test_conductances_stay_in_device_range():
    X, y = data(12)
    tr = small_trainer(learning_rate=1e6, g_min=2e-6, g_max=5e-6, g_init=(2e-6, 5e-6), epochs=3,
                       beta=1e-7, solver_tol=1e-12).fit(X, y)
    for g in tr.network_.conductances.values():
        assert g.min() >= 2e-6 and g.max() <= 5e-6


def test_training_reduces_loss_and_predicts():
    rng = np.random.default_rng(0)
    centers = rng.uniform(0, 1, (3, 5))
    y = rng.integers(0, 3, 300)
    X = np.clip(centers[y] + rng.normal(0, 0.05, (300, 5)), 0, 1)
    tr = EPTrainer(layers="5-8-3", epochs=15, batch_size=8, verbose=False, learning_rate=100.0,
                   target=0.5, seed=1).fit(X, y)
    assert tr.history_[-1]["train_loss"] < tr.history_[0]["train_loss"]
    assert tr.score(X, y) > 0.9


def test_bad_inputs_are_named():
    X, y = data()
    with pytest.raises(ValueError, match="6 samples but y has 5"):
        small_trainer().fit(X, y[:5])
    with pytest.raises(ValueError, match="expects 5"):
        small_trainer().fit(X[:, :4], y)
    with pytest.raises(ValueError, match=r"EPConfig.beta must be a finite number > 0 and <= 1e\+06 \(S\), got -1.0"):
        small_trainer(beta=-1.0)
    with pytest.raises(ValueError, match="EPConfig.estimator must be one of 'centered', 'one-sided', 'random-sign'"):
        small_trainer(estimator="magic")
    with pytest.raises(ValueError, match="unknown setting 'betta' \\(did you mean beta\\?\\)"):
        small_trainer(betta=1e-6)
    with pytest.raises(ValueError, match="standard deviation"):
        MeasurementNoise(sigma=-1.0)


def test_learning_rate_schedules():
    cosine = CosineAnnealing(0.0)
    assert cosine(0, 0.0, 4) == 1.0
    assert cosine(2, 0.0, 4) == pytest.approx(0.5)
    assert cosine(3, 0.999999, 4) == pytest.approx(0.0, abs=1e-9)
    factors = [cosine(e, f, 4) for e in range(4) for f in np.linspace(0, 1, 5, endpoint=False)]
    assert np.all(np.diff(factors) < 0)
    assert ExponentialDecay(0.5)(3, 0.7, 10) == 0.125
    with pytest.raises(ValueError, match="schedule"):
        get_schedule("linear")
    with pytest.raises(ValueError, match="schedule"):
        small_trainer(lr_schedule="step", epochs=1).fit(*data())


def test_cosine_schedule_sets_the_step_size():
    """With the cosine schedule, the last batch of a run steps by almost nothing."""
    X, y = data(8)
    tr = small_trainer(epochs=1, batch_size=8, lr_schedule="cosine").fit(X, y)
    # one batch per epoch and one epoch: the only batch is at position 0, where the factor is 1
    ref = small_trainer(epochs=1, batch_size=8, lr_schedule="exponential").fit(X, y)
    for k in tr.network_.conductances:
        np.testing.assert_array_equal(tr.network_.conductances[k], ref.network_.conductances[k])
    tr2 = small_trainer(epochs=2, batch_size=8, lr_schedule="cosine", learning_rate=1e3).fit(X, y)
    ref2 = small_trainer(epochs=2, batch_size=8, learning_rate=1e3, lr_schedule="exponential").fit(X, y)
    assert tr2.optimizer_.scale == pytest.approx(0.5)
    assert not np.array_equal(tr2.network_.conductances[(0, 1)], ref2.network_.conductances[(0, 1)])


def test_resume_with_other_settings_warns_and_keeps_the_checkpoints(tmp_path):
    X, y = data(12)
    ckpt = tmp_path / "run.ckpt.npz"
    fit_run(small_trainer(epochs=2, batch_size=4), X, y, checkpoint=ckpt, stop_after_batches=2)
    with pytest.warns(UserWarning, match=r"target \(0.3 given, 0.1 in the checkpoint\)"):
        tr = fit_run(small_trainer(epochs=2, batch_size=4, target=0.3), X, y, checkpoint=ckpt, resume=True)
    assert tr.target == 0.1
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit_run(small_trainer(epochs=2, batch_size=4), X, y, checkpoint=ckpt, resume=True)


def test_from_checkpoint_restores_settings_without_warning(tmp_path):
    X, y = data(12)
    ckpt = tmp_path / "run.ckpt.npz"
    first = fit_run(small_trainer(epochs=1, batch_size=4), X, y, checkpoint=ckpt)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        restored = EPTrainer.from_checkpoint(ckpt, verbose=False)
    assert restored.layers == "5-4-3" and restored.target == 0.1 and not restored.verbose
    np.testing.assert_array_equal(restored.predict(X), first.predict(X))


@pytest.mark.spice
def test_training_with_parallel_ngspice_workers_equals_one_process():
    X, y = data(8, seed=5)
    one = small_trainer(backend="spice", epochs=1, batch_size=4, learning_rate=1e3).fit(X, y)
    two = small_trainer(backend="spice", epochs=1, batch_size=4, learning_rate=1e3, spice_workers=2).fit(X, y)
    two._backend.close()
    start = small_trainer(epochs=0).fit(X, y).network_  # same seed: the initial conductances
    for key, g in one.network_.conductances.items():
        moved = np.max(np.abs(g - start.conductances[key]))
        assert moved > 1e-9  # it trained
        assert np.max(np.abs(two.network_.conductances[key] - g)) < 1e-6 * moved
    with pytest.raises(ValueError, match="spice_workers"):
        small_trainer(backend="spice", epochs=1, spice_workers=0).fit(X, y)


@pytest.mark.parametrize("scaling", ["amplifier", "balanced"])
def test_scaled_init_is_the_trainers_and_the_clis_starting_network(tmp_path, scaling):
    from circuitprop.cli import main
    from circuitprop.model import Network
    from circuitprop.model.network import amplifier_init_scales, balanced_init_scales
    X, y = data()
    kw = dict(layers="5-4-4-3", skip=((0, 2),), g_init=(1e-6, 1e-5), g_min=1e-8, seed=4)
    start = small_trainer(g_init_scaling=scaling, **kw).fit(X, y).network_
    reference = Network.random(start.architecture, 1e-6, 1e-5, seed=4, init=scaling, floor=1e-8)
    for key, g in reference.conductances.items():
        np.testing.assert_array_equal(start.conductances[key], g)
    plain = small_trainer(**kw).fit(X, y).network_
    # gain 2: the amplifier rule divides by 4; the balanced one by the load ratio, 12 input nodes (5 doubled
    # inputs and a bias pair) against 2 x 2 x 4 neurons of layer 2 behind the amplifier
    assert start.architecture.layer_sizes[0] == 12
    expected = {"amplifier": 1 / 4, "balanced": 12 / 16}[scaling]
    scales = (amplifier_init_scales if scaling == "amplifier" else balanced_init_scales)(start.architecture)
    assert scales[(1, 2)] == pytest.approx(expected, rel=1e-15)
    np.testing.assert_allclose(start.conductances[(1, 2)], plain.conductances[(1, 2)] * expected, rtol=1e-15)
    np.testing.assert_array_equal(start.conductances[(0, 2)], plain.conductances[(0, 2)])
    model = tmp_path / "m.npz"
    assert main(["init", "--layers", "5-4-4-3", "--skip", "0-2", "--amplifier-gain", "2", "--g-init", "1e-6", "1e-5",
                 "--g-init-scaling", scaling, "--seed", "4", "-o", str(model)]) == 0
    from_cli = Network.load(model)
    for key, g in Network.random(from_cli.architecture, 1e-6, 1e-5, seed=4, init=scaling,
                                 floor=1e-8).conductances.items():
        np.testing.assert_array_equal(from_cli.conductances[key], g)


def test_steady_state_check_counts_the_classes_that_fixed_sweeps_get_wrong():
    """After each epoch of a fixed-sweep run, the classes of the first training examples are compared with the
    circuit's steady state; a truncated relaxation that is far from it is reported and warned about."""
    from circuitprop.learning.diagnostics import SteadyStateWarning
    from circuitprop.learning.run import SteadyStateCheck
    rng = np.random.default_rng(0)
    X, y = rng.uniform(0, 1, (64, 5)), rng.integers(0, 3, 64)
    for sweeps in (2, 40):
        trainer = EPTrainer(layers="5-8-8-3", epochs=0, verbose=False, diode="ideal", solver_sweeps=sweeps).fit(X, y)
        net = trainer.network_
        steady = np.argmax(net.scores(FastBackend(tol=1e-12, max_sweeps=100000).solve(net, X).outputs), axis=1)
        expected = int(np.sum(trainer.predict(X) != steady))
        record = {"epoch": 1}
        if sweeps == 2:  # two sweeps barely reach the outputs of a two-hidden-layer circuit
            assert expected > 0.5 * len(X)
            with pytest.warns(SteadyStateWarning, match=f"{expected} of the first 64 training examples"):
                SteadyStateCheck(X, n_examples=64).on_epoch_end(trainer, record)
        else:
            assert expected == 0
            SteadyStateCheck(X, n_examples=64, tolerance=0.0).on_epoch_end(trainer, record)
        assert record == {"epoch": 1, "steady_state_changed": expected, "steady_state_checked": 64}
    # a run solved to its tolerance is not checked; a fixed-sweep run logs the check in every epoch's record
    record = {"epoch": 1}
    SteadyStateCheck(X).on_epoch_end(EPTrainer(layers="5-8-3", epochs=0, verbose=False).fit(X, y), record)
    assert record == {"epoch": 1}
    run = fit_run(EPTrainer(layers="5-8-3", epochs=2, verbose=False, diode="ideal", solver_sweeps=20), X, y)
    assert [h["steady_state_checked"] for h in run.history_] == [64, 64]


def test_precision_check_warns_when_float32_cannot_resolve_the_nudge():
    """A float32 run whose nudge moves a hidden layer by less than float32 resolves there is warned about once,
    after its first batch; the default nudge, and any float64 run, are not."""
    from circuitprop.learning.diagnostics import PrecisionWarning, nudge_below_resolution
    from circuitprop.learning.run import PrecisionCheck
    rng = np.random.default_rng(0)
    X, y = rng.uniform(0, 1, (32, 5)), rng.integers(0, 3, 32)
    kw = dict(layers="5-8-3", epochs=0, verbose=False, diode="ideal", solver_sweeps=10, dtype="float32")
    tiny = EPTrainer(beta=1e-15, **kw).fit(X, y)
    # measured directly: the largest move of the hidden layer between the +beta and -beta steady states
    net = tiny.network_
    exact = FastBackend(tol=1e-14, max_sweeps=100000)
    free = exact.solve(net, X[:16])
    error = tiny._targets(y[:16]) - net.scores(free.outputs)
    moved = [exact.solve(net, X[:16], output_currents=net.output_currents_from_score_currents(s * 1e-15 * error))
             for s in (1, -1)]
    move = np.max(np.abs(moved[0].voltages[1] - moved[1].voltages[1]))
    largest = np.max(np.abs(free.voltages[1]))
    assert 1e4 * np.finfo(np.float64).eps * largest < move < np.finfo(np.float32).eps * largest
    message = nudge_below_resolution(tiny, X[:16], y[:16])
    assert message.startswith(f"the nudge (beta = 1e-15 S) moves hidden layer 1: at most {move:.2g} V, float32 "
                              "resolves"), message
    check = PrecisionCheck(X, y)
    with pytest.warns(PrecisionWarning, match="float32 rounding noise: train with --dtype float64"):
        assert check.on_batch_end(tiny) is False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check.on_batch_end(tiny)  # once per run
        assert nudge_below_resolution(EPTrainer(**kw).fit(X, y), X[:16], y[:16]) == ""
        assert nudge_below_resolution(EPTrainer(beta=1e-16, **{**kw, "dtype": "float64"}).fit(X, y), X[:16],
                                      y[:16]) == ""
