"""The backpropagation reference: its gradients against finite differences, and that it learns."""
import json

import numpy as np
import pytest

from circuitprop.learning import BackpropMLP


def _loss(model, X, T):
    acts, _ = model._forward(X)
    return 0.5 * np.sum((acts[-1] - T) ** 2) / len(X)


def _finite_differences(model, X, T, array, h=1e-6):
    """Central differences of the loss in every entry of ``array`` (a weight or bias array of ``model``)."""
    fd = np.zeros_like(array)
    for idx in np.ndindex(array.shape):
        array[idx] += h
        up = _loss(model, X, T)
        array[idx] -= 2 * h
        down = _loss(model, X, T)
        array[idx] += h
        fd[idx] = (up - down) / (2 * h)
    return fd


@pytest.mark.parametrize("skip", [(), ((0, 2), (1, 3), (0, 3))])
def test_gradients_match_finite_differences(skip):
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 1, (7, 6))
    y = rng.integers(0, 3, 7)
    model = BackpropMLP(layers="6-5-4-3", skip=skip, epochs=0, verbose=False, v_low=-0.5, v_high=0.5,
                        dtype="float64").fit(X, y)
    T = model._targets(y)
    grads_w, grads_b = model._backward(*model._forward(X), T)
    for key, w in model.weights_.items():
        np.testing.assert_allclose(grads_w[key], _finite_differences(model, X, T, w), rtol=1e-5, atol=1e-9)
    for layer, bias in model.biases_.items():
        np.testing.assert_allclose(grads_b[layer], _finite_differences(model, X, T, bias), rtol=1e-5, atol=1e-9)
    # some units must be clipped and some not, or the clip's derivative is not tested
    pre = model._forward(X)[1][1]
    assert np.any((pre > -0.5) & (pre < 0.5)) and np.any((pre <= -0.5) | (pre >= 0.5))


def test_learns_a_separable_task_and_checks_its_input():
    rng = np.random.default_rng(1)
    centres = rng.uniform(0, 1, (3, 8))
    y = rng.integers(0, 3, 600)
    X = centres[y] + rng.normal(0, 0.1, (600, 8))
    model = BackpropMLP(layers="8-16-16-3", skip=((0, 2),), epochs=5, batch_size=8, learning_rate=0.05,
                        verbose=False).fit(X[:500], y[:500], eval_set=(X[500:], y[500:]))
    assert model.history_[-1]["test_accuracy"] > 0.95
    assert model.history_[-1]["train_loss"] < model.history_[0]["train_loss"]
    assert json.loads(json.dumps(model.history_)) == model.history_  # plain numbers: written as JSON by scripts
    with pytest.raises(ValueError, match="needs"):
        model.fit(X[:, :5], y)
    with pytest.raises(ValueError, match="non-adjacent"):
        BackpropMLP(layers="8-16-3", skip=((0, 1),)).fit(X, y)
    with pytest.raises(ValueError, match="3 weight matrices"):
        BackpropMLP(layers="8-16-16-3", learning_rate=[0.1, 0.1]).fit(X, y)


def test_adam_first_step_moves_every_parameter_by_the_step_size_against_its_gradient():
    """Bias-corrected Adam's first step is -rate * g / (|g| + eps): every weight with a nonzero gradient moves
    by the step size, whatever the scale of its gradient (which is why it suits uncentred inputs)."""
    rng = np.random.default_rng(2)
    X = rng.uniform(0, 1, (4, 6))
    y = rng.integers(0, 3, 4)
    kwargs = dict(layers="6-5-3", skip=(), epochs=1, batch_size=4, lr_schedule="constant", dtype="float64",
                  verbose=False, seed=3)
    start = BackpropMLP(epochs=0, **{k: v for k, v in kwargs.items() if k != "epochs"}).fit(X, y)
    grads_w, grads_b = start._backward(*start._forward(X), start._targets(y))
    model = BackpropMLP(optimizer="adam", learning_rate=1e-3, **kwargs)
    # the same example order as fit: one batch of all four examples, so the order does not change the gradient
    model.fit(X, y)
    for key, w0 in start.weights_.items():
        expected = w0 - 1e-3 * grads_w[key] / (np.abs(grads_w[key]) + 1e-8)
        np.testing.assert_allclose(model.weights_[key], expected, rtol=0, atol=1e-12)
    for layer, b0 in start.biases_.items():
        expected = b0 - 1e-3 * grads_b[layer] / (np.abs(grads_b[layer]) + 1e-8)
        np.testing.assert_allclose(model.biases_[layer], expected, rtol=0, atol=1e-12)


def test_adam_learns_and_bad_optimizer_settings_are_refused():
    rng = np.random.default_rng(1)
    centres = rng.uniform(0, 1, (3, 8))
    y = rng.integers(0, 3, 600)
    X = centres[y] + rng.normal(0, 0.1, (600, 8))
    model = BackpropMLP(layers="8-16-16-3", skip=((0, 2),), epochs=5, batch_size=8, learning_rate=3e-3,
                        optimizer="adam", verbose=False).fit(X[:500], y[:500], eval_set=(X[500:], y[500:]))
    assert model.history_[-1]["test_accuracy"] > 0.95
    assert model.history_[-1]["train_loss"] < model.history_[0]["train_loss"]
    with pytest.raises(ValueError, match="optimizer must be"):
        BackpropMLP(layers="8-16-3", optimizer="rmsprop").fit(X, y)
    with pytest.raises(ValueError, match="adam_beta2"):
        BackpropMLP(layers="8-16-3", optimizer="adam", adam_beta2=1.0).fit(X, y)


def test_nonnegative_hidden_keeps_only_the_hidden_to_hidden_matrices_nonnegative():
    rng = np.random.default_rng(3)
    X = rng.uniform(0, 1, (60, 6))
    y = (X[:, 0] > X[:, 1]).astype(int) + (X[:, 2] > 0.5)
    kw = dict(layers="6-8-8-8-3", skip=((0, 2), (1, 4)), epochs=30, batch_size=6, learning_rate=0.2, verbose=False,
              dtype="float64")
    signed = BackpropMLP(**kw).fit(X, y)
    model = BackpropMLP(**kw, nonnegative_hidden=True).fit(X, y)
    assert model.nonnegative_ == {(1, 2), (2, 3)}
    for key, w in model.weights_.items():
        if key in model.nonnegative_:
            assert w.min() >= 0 and w.max() > 0, key  # projected, still used
        else:
            assert w.min() < 0 < w.max(), key  # the input, output and skip matrices stay signed
    assert min(w.min() for k, w in signed.weights_.items() if k in model.nonnegative_) < 0
    # the units start inside their range: the bias takes off the non-negative matrices' mean drive
    fresh = BackpropMLP(**dict(kw, epochs=0), nonnegative_hidden=True).fit(X, y)
    _, pre = fresh._forward(X)
    for layer in (2, 3):
        assert np.mean((pre[layer] > 0) & (pre[layer] < 1)) > 0.25, layer
    assert model.history_[-1]["train_loss"] < 0.8 * model.history_[0]["train_loss"]  # it still learns
