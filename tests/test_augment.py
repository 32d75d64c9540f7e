"""Random translations and mirror images of training images (circuitprop.learning.augment) and their use in training."""
import numpy as np
import pytest
from conftest import fit_run

from circuitprop.learning import EPTrainer
from circuitprop.learning.augment import RandomFlip, RandomShift


def test_shift_moves_every_pixel_by_the_shift_and_zero_fills():
    side = 5
    aug = RandomShift(2, side * side)
    rng = np.random.default_rng(0)
    images = rng.uniform(0.1, 1.0, (9, side * side))
    shifts = np.array([(dr, dc) for dr in (-2, 0, 2) for dc in (-1, 0, 1)])
    out = aug.apply(images, shifts)
    assert out.shape == images.shape and images.min() > 0  # the input is untouched below
    for k, (dr, dc) in enumerate(shifts):
        before, after = images[k].reshape(side, side), out[k].reshape(side, side)
        for r in range(side):
            for c in range(side):
                src = (r - dr, c - dc)
                inside = 0 <= src[0] < side and 0 <= src[1] < side
                assert after[r, c] == (before[src] if inside else 0.0), (k, r, c)
    np.testing.assert_array_equal(aug.apply(images, np.zeros((9, 2), int)), images)


def test_draw_covers_the_range_and_depends_on_seed_and_epoch_only():
    aug = RandomShift(1, 784)
    a = aug.draw(5000, seed=3, epoch=0)
    assert a.shape == (5000, 2) and set(np.unique(a)) == {-1, 0, 1}
    np.testing.assert_array_equal(a, RandomShift(1, 784).draw(5000, seed=3, epoch=0))
    assert not np.array_equal(a, aug.draw(5000, seed=3, epoch=1))
    assert not np.array_equal(a, aug.draw(5000, seed=4, epoch=0))
    # each of the 9 shifts about equally often (5000/9 = 556 expected; 4 sigma ~ 90)
    counts = np.unique(a[:, 0] * 3 + a[:, 1], return_counts=True)[1]
    assert counts.size == 9 and np.all(np.abs(counts - 5000 / 9) < 100)


@pytest.mark.parametrize("pixels, features, match", [(1, 10, "square"), (3, 9, "out of view"), (-1, 9, ">= 0")])
def test_bad_settings_are_refused(pixels, features, match):
    with pytest.raises(ValueError, match=match):
        RandomShift(pixels, features)


def images(n=24, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 1, (n, 9)), rng.integers(0, 3, n)


def trainer(**kw):
    params = dict(layers="9-4-3", epochs=2, batch_size=4, verbose=False, beta=1e-7, learning_rate=0.5,
                  diode="ideal", v_low=-0.1, v_high=0.1, solver_tol=1e-12, target=0.1, augment_shift=1, seed=2)
    params.update(kw)
    return EPTrainer(**params)


def test_training_sees_each_epochs_shifted_images(monkeypatch):
    X, y = images()
    tr = trainer()
    seen = []
    step = EPTrainer._step
    monkeypatch.setattr(EPTrainer, "_step", lambda self, x, t, nx=None: seen.append(x.copy()) or step(self, x, t, nx))
    tr.fit(X, y)
    aug = RandomShift(1, 9)
    expected = []
    for epoch in range(2):
        order = np.random.default_rng([tr.seed, epoch]).permutation(len(X))
        shifts = aug.draw(len(X), tr.seed, epoch)
        expected += [aug.apply(X[order[b:b + 4]], shifts[order[b:b + 4]]) for b in range(0, len(X), 4)]
    assert len(seen) == len(expected) == 12
    for got, want in zip(seen, expected):
        np.testing.assert_array_equal(got, want)
    first = np.random.default_rng([tr.seed, 0]).permutation(len(X))[:4]
    assert not np.array_equal(seen[0], X[first])  # the shifts did move something


def test_augmented_run_resumes_exactly(tmp_path):
    X, y = images(40, seed=1)
    full = trainer(momentum=0.5).fit(X, y)
    ckpt = tmp_path / "run.ckpt.npz"
    fit_run(trainer(momentum=0.5), X, y, checkpoint=ckpt, stop_after_batches=13)  # stopped in epoch 2
    resumed = fit_run(trainer(momentum=0.5), X, y, checkpoint=ckpt, resume=True)
    for key, g in full.network_.conductances.items():
        np.testing.assert_array_equal(resumed.network_.conductances[key], g)
    unshifted = trainer(momentum=0.5, augment_shift=0).fit(X, y)
    assert not np.array_equal(unshifted.network_.conductances[(0, 1)], full.network_.conductances[(0, 1)])


def test_non_square_features_are_refused_before_training():
    rng = np.random.default_rng(0)
    X, y = rng.uniform(0, 1, (8, 5)), rng.integers(0, 3, 8)
    with pytest.raises(ValueError, match="square"):
        trainer(layers="5-4-3").fit(X, y)


def test_backprop_reference_trains_on_the_same_shifted_images(monkeypatch):
    from circuitprop.learning.backprop import BackpropMLP
    X, y = images(16, seed=3)
    seen = []
    forward = BackpropMLP._forward
    monkeypatch.setattr(BackpropMLP, "_forward", lambda self, x: seen.append(np.array(x)) or forward(self, x))
    BackpropMLP(layers="9-4-3", epochs=1, batch_size=4, seed=5, augment_shift=1, verbose=False,
                dtype="float64").fit(X, y)
    aug = RandomShift(1, 9)
    shifted = aug.apply(X, aug.draw(16, 5, 0))  # every image moved by its epoch-0 shift
    rows = np.concatenate(seen)
    assert rows.shape == X.shape
    # the batches hold exactly the 16 shifted images, each once, in some order
    matches = [[i for i in range(16) if np.array_equal(row, shifted[i])] for row in rows]
    assert sorted(m[0] for m in matches if len(m) == 1) == list(range(16))
    assert not np.array_equal(shifted, X)


def test_flip_mirrors_the_chosen_images_left_to_right():
    side = 4
    aug = RandomFlip(side * side)
    images = np.arange(3 * side * side, dtype=float).reshape(3, side * side)
    out = aug.apply(images, np.array([True, False, True]))
    for k, flipped in enumerate([True, False, True]):
        before, after = images[k].reshape(side, side), out[k].reshape(side, side)
        for r in range(side):
            for c in range(side):
                assert after[r, c] == before[r, side - 1 - c if flipped else c]
    assert images[0, 0] == 0  # the input is untouched
    flips = aug.draw(4000, seed=1, epoch=0)
    assert flips.dtype == bool and abs(flips.mean() - 0.5) < 0.04  # 4 sigma
    np.testing.assert_array_equal(flips, RandomFlip(16).draw(4000, seed=1, epoch=0))
    assert not np.array_equal(flips, aug.draw(4000, seed=1, epoch=1))
    with pytest.raises(ValueError, match="augment_flip needs square"):
        RandomFlip(10)


def test_training_with_shifts_and_flips_sees_shifted_then_mirrored_images(monkeypatch):
    X, y = images()
    tr = trainer(augment_flip=True)
    seen = []
    step = EPTrainer._step
    monkeypatch.setattr(EPTrainer, "_step", lambda self, x, t, nx=None: seen.append(x.copy()) or step(self, x, t, nx))
    tr.fit(X, y)
    shift, flip = RandomShift(1, 9), RandomFlip(9)
    expected = []
    for epoch in range(2):
        order = np.random.default_rng([tr.seed, epoch]).permutation(len(X))
        shifts, flips = shift.draw(len(X), tr.seed, epoch), flip.draw(len(X), tr.seed, epoch)
        for b in range(0, len(X), 4):
            rows = order[b:b + 4]
            expected.append(flip.apply(shift.apply(X[rows], shifts[rows]), flips[rows]))
    assert len(seen) == len(expected) == 12
    for got, want in zip(seen, expected):
        np.testing.assert_array_equal(got, want)
    # the flips changed what the circuit saw (against the shifts alone)
    tr_shift = trainer()
    seen_shift = []
    monkeypatch.setattr(EPTrainer, "_step",
                        lambda self, x, t, nx=None: seen_shift.append(x.copy()) or step(self, x, t, nx))
    tr_shift.fit(X, y)
    assert any(not np.array_equal(a, b) for a, b in zip(seen, seen_shift))


def test_backprop_reference_sees_the_same_mirrored_images(monkeypatch):
    from circuitprop.learning.backprop import BackpropMLP
    X, y = images(16, seed=4)
    seen = []
    forward = BackpropMLP._forward
    monkeypatch.setattr(BackpropMLP, "_forward", lambda self, x: seen.append(np.array(x)) or forward(self, x))
    BackpropMLP(layers="9-4-3", epochs=1, batch_size=4, seed=5, augment_flip=True, verbose=False,
                dtype="float64").fit(X, y)
    flip = RandomFlip(9)
    changed = flip.apply(X, flip.draw(16, 5, 0))
    rows = np.concatenate(seen)
    matches = [[i for i in range(16) if np.array_equal(row, changed[i])] for row in rows]
    assert sorted(m[0] for m in matches if len(m) == 1) == list(range(16))
    assert not np.array_equal(changed, X)
