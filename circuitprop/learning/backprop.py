"""A backpropagation reference: the same layer sizes, skip connections and activation, trained in NumPy.

The papers on deep resistive networks report the gap between equilibrium propagation in the circuit and
backpropagation in the digital network of the same shape; :class:`BackpropMLP` is that digital network. Its
hidden units apply the ideal-diode neuron's transfer ``clip(z, v_low, v_high)`` (volts, as in the circuit),
or a plain ReLU when ``v_high`` is ``inf``. Each crossbar ``(a, b)`` of the circuit, skip crossbars
included, is a dense weight matrix from layer ``a`` to layer ``b``; signed weights and a bias per unit stand
for the circuit's doubled inputs, doubled outputs and bias sources. The loss is the squared error of the
ten scores against the targets (the EP trainer's cost), minimised by SGD with heavy-ball momentum or by Adam.

Like :class:`~circuitprop.learning.EPTrainer` it follows scikit-learn's conventions: parameters in
``__init__``, work in :meth:`fit`, fitted attributes end in ``_``, ``history_`` holds one record per epoch.
"""
from __future__ import annotations

import inspect
import math
import time

import numpy as np

from ..model.architecture import parse_layers
from ..io.progress import progress
from .augment import Augmentation


class BackpropMLP:
    """A multilayer perceptron with the topology of a circuit, trained by backpropagation.

    Parameters
    ----------
    layers : str
        ``features-hidden...-classes``, as the circuit's ``layers`` (e.g. ``"784-1024-1024-10"``).
    skip : tuple of (a, b)
        Extra weight matrices from layer ``a`` to layer ``b > a + 1`` (layer 0 is the input).
    v_low, v_high : float
        Clipping bounds of the hidden units (volts in the circuit): ``clip(z, v_low, v_high)``;
        ``v_high = inf`` gives a ReLU shifted to ``v_low``.
    target : float
        Score asked of the correct class (the others are asked 0), as the EP trainer's ``target``.
    learning_rate : float or list of float
        Step size, one for all weight matrices or one per matrix (in the order of :attr:`crossbars_`).
    momentum : float
        Heavy-ball momentum in [0, 1) (``optimizer="sgd"``), or Adam's first-moment decay beta1.
    optimizer : {"sgd", "adam"}
        SGD with heavy-ball momentum, or Adam (Kingma and Ba 2015: bias-corrected first and second moments,
        beta2 ``adam_beta2``, epsilon 1e-8), which is insensitive to the scale of each weight's gradient.
    adam_beta2 : float
        Adam's second-moment decay, in [0, 1).
    lr_schedule : {"cosine", "constant"}
        Cosine annealing of the step size to 0 over the run (per batch), or a constant step.
    epochs, batch_size, seed : int
        Passes over the data, examples per step, random seed (initial weights, example order).
    augment_shift : int
        Move each training image by a random whole number of pixels, up to this many along each axis, new
        shifts every epoch (:class:`~circuitprop.learning.augment.RandomShift`, as the EP trainer); 0: none.
    augment_flip : bool
        Mirror a random half of the training images left to right, a new half every epoch
        (:class:`~circuitprop.learning.augment.RandomFlip`, as the EP trainer).
    dtype : {"float32", "float64"}
        Floating-point type of weights and activations.
    nonnegative_hidden : bool
        Keep every matrix between two hidden layers non-negative, as the circuit's conductances are: a hidden
        layer drives the next through one node per neuron (no inverted copy, unlike the doubled inputs and
        outputs), so in the circuit one hidden layer can only excite the next.  Those matrices start uniform in
        [0, bound] (the receiving layer's bias lowered by their mean drive, so the units start inside their
        range) and are clipped at 0 after every step.
    verbose : bool
        Progress bar and one line per epoch.
    """

    def __init__(self, layers="784-100-10", skip=(), v_low=0.0, v_high=1.0, target=1.0, learning_rate=0.05,
                 momentum=0.9, optimizer="sgd", adam_beta2=0.999, lr_schedule="cosine", epochs=10, batch_size=32,
                 seed=0, dtype="float32", augment_shift=0, augment_flip=False, nonnegative_hidden=False,
                 verbose=True):
        self.layers = layers
        self.skip = skip
        self.v_low = v_low
        self.v_high = v_high
        self.target = target
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.optimizer = optimizer
        self.adam_beta2 = adam_beta2
        self.lr_schedule = lr_schedule
        self.epochs = epochs
        self.batch_size = batch_size
        self.seed = seed
        self.dtype = dtype
        self.augment_shift = augment_shift
        self.augment_flip = augment_flip
        self.nonnegative_hidden = nonnegative_hidden
        self.verbose = verbose

    # -- scikit-learn protocol ------------------------------------------------------------------------------
    def get_params(self, deep=True) -> dict:
        """The parameters of ``__init__`` and their values (scikit-learn's convention)."""
        names = list(inspect.signature(type(self).__init__).parameters)[1:]
        return {k: getattr(self, k) for k in names}

    def set_params(self, **params):
        for k, v in params.items():
            if k not in self.get_params():
                raise ValueError(f"BackpropMLP has no parameter {k!r}")
            setattr(self, k, v)
        return self

    # -- the network --------------------------------------------------------------------------------------------
    def _check(self):
        n_features, hidden, n_classes = parse_layers(self.layers)
        sizes = [n_features, *hidden, n_classes]
        crossbars = [(i, i + 1) for i in range(len(sizes) - 1)]
        for pair in self.skip:
            a, b = (int(v) for v in pair)
            if not 0 <= a < b - 1 < len(sizes) - 1:
                raise ValueError(f"skip {pair!r}: need layers 0 <= a < b - 1 <= {len(sizes) - 2} "
                                 f"(a skip joins non-adjacent layers of {self.layers})")
            if (a, b) not in crossbars:
                crossbars.append((a, b))
        if not self.v_low < self.v_high:
            raise ValueError(f"need v_low < v_high, got {self.v_low} and {self.v_high}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum}")
        if self.optimizer not in ("sgd", "adam"):
            raise ValueError(f"optimizer must be 'sgd' or 'adam', got {self.optimizer!r}")
        if not 0 <= self.adam_beta2 < 1:
            raise ValueError(f"adam_beta2 must be in [0, 1), got {self.adam_beta2}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")
        if self.lr_schedule not in ("cosine", "constant"):
            raise ValueError(f"lr_schedule must be 'cosine' or 'constant', got {self.lr_schedule!r}")
        rates = self.learning_rate if isinstance(self.learning_rate, (list, tuple)) else \
            [self.learning_rate] * len(crossbars)
        if len(rates) != len(crossbars):
            raise ValueError(f"{len(rates)} learning rates given for {len(crossbars)} weight matrices {crossbars}")
        if not all(r >= 0 and math.isfinite(r) for r in rates):
            raise ValueError(f"learning rates must be finite and >= 0, got {rates}")
        return sizes, crossbars, [float(r) for r in rates]

    def _initialise(self, sizes, crossbars, rng):
        fan_in = {b: sum(sizes[a] for a, bb in crossbars if bb == b) for b in range(1, len(sizes))}
        self.weights_ = {}
        # biases put the hidden units inside their linear range at the start
        mid = 0.5 * (self.v_low + min(self.v_high, self.v_low + 1.0))
        self.biases_ = {b: np.full(sizes[b], mid if b < len(sizes) - 1 else 0.0, dtype=self.dtype)
                        for b in range(1, len(sizes))}
        for a, b in crossbars:  # uniform with the variance 1/fan_in of LeCun's initialisation
            bound = math.sqrt(3.0 / fan_in[b])
            low = 0.0 if (a, b) in self.nonnegative_ else -bound
            self.weights_[(a, b)] = rng.uniform(low, bound, (sizes[a], sizes[b])).astype(self.dtype)
            if low == 0.0:  # their mean drive, from units near mid-range, taken off the bias
                self.biases_[b] -= np.dtype(self.dtype).type(mid * sizes[a] * bound / 2)

    def _forward(self, X):
        acts = [X]
        pre = [None]
        n = len(self.sizes_)
        for b in range(1, n):
            z = self.biases_[b] + sum(acts[a] @ self.weights_[(a, bb)] for a, bb in self.crossbars_ if bb == b)
            pre.append(z)
            acts.append(z if b == n - 1 else np.clip(z, self.v_low, self.v_high))
        return acts, pre

    def _backward(self, acts, pre, T):
        n = len(self.sizes_)
        batch = T.shape[0]
        delta = {n - 1: (acts[-1] - T) / batch}  # d(mean 1/2 |s - t|^2)/ds
        grads_w, grads_b = {}, {}
        for b in range(n - 1, 0, -1):
            if b < n - 1:  # collect the error from every matrix leaving layer b, then the clip's derivative
                d = sum(delta[bb] @ self.weights_[(a, bb)].T for a, bb in self.crossbars_ if a == b)
                delta[b] = d * ((pre[b] > self.v_low) & (pre[b] < self.v_high))
            grads_b[b] = delta[b].sum(axis=0)
        for a, b in self.crossbars_:
            grads_w[(a, b)] = acts[a].T @ delta[b]
        return grads_w, grads_b

    def _targets(self, y):
        T = np.zeros((len(y), self.sizes_[-1]), dtype=self.dtype)
        T[np.arange(len(y)), y] = self.target
        return T

    # -- training -------------------------------------------------------------------------------------------
    def fit(self, X, y, eval_set=None):
        """Train on ``X`` (n, features) with labels ``y`` (n,); ``eval_set=(X_test, y_test)`` is scored after
        every epoch (``history_``)."""
        sizes, crossbars, rates = self._check()
        X = np.asarray(X, dtype=self.dtype)
        y = np.asarray(y)
        if X.ndim != 2 or X.shape[1] != sizes[0]:
            raise ValueError(f"X has shape {X.shape}; the network {self.layers} needs (n, {sizes[0]})")
        if y.shape != (X.shape[0],):
            raise ValueError(f"y has shape {y.shape}, expected ({X.shape[0]},)")
        if y.size and (y.min() < 0 or y.max() >= sizes[-1]):
            raise ValueError(f"labels must be in 0..{sizes[-1] - 1}")
        augment = Augmentation(sizes[0], shift=self.augment_shift, flip=self.augment_flip)
        rng = np.random.default_rng(self.seed)
        self.sizes_, self.crossbars_ = sizes, crossbars
        hidden = range(1, len(sizes) - 1)
        self.nonnegative_ = {(a, b) for a, b in crossbars if a in hidden and b in hidden} \
            if self.nonnegative_hidden else set()
        self._initialise(sizes, crossbars, rng)
        rate_of = dict(zip(crossbars, rates))
        # every parameter array (weights by crossbar, biases by layer) with its step size; a bias steps as the
        # fastest matrix feeding its layer
        rate_of.update({b: max(r for (a, bb), r in zip(crossbars, rates) if bb == b) for b in self.biases_})
        step_of = _Momentum(self.momentum) if self.optimizer == "sgd" else _Adam(self.momentum, self.adam_beta2)
        n_batches = math.ceil(len(X) / self.batch_size)
        total = max(1, self.epochs * n_batches)
        step = 0
        self.history_ = []
        for epoch in range(self.epochs):
            order = rng.permutation(len(X))
            change = augment.epoch(len(X), self.seed, epoch) if augment else None
            loss_sum = 0.0
            started = time.perf_counter()
            batches = range(n_batches)
            if self.verbose:
                batches = progress(batches, total=n_batches, desc=f"backprop epoch {epoch + 1}/{self.epochs}")
            for i in batches:
                idx = order[i * self.batch_size:(i + 1) * self.batch_size]
                T = self._targets(y[idx])
                acts, pre = self._forward(X[idx] if change is None else change(X[idx], idx))
                loss_sum += 0.5 * np.sum((acts[-1] - T) ** 2)
                grads_w, grads_b = self._backward(acts, pre, T)
                scale = 0.5 * (1 + math.cos(math.pi * step / total)) if self.lr_schedule == "cosine" else 1.0
                for params, grads in ((self.weights_, grads_w), (self.biases_, grads_b)):
                    for k, g in grads.items():
                        params[k] += step_of(k, g, rate_of[k] * scale)
                for k in self.nonnegative_:
                    np.maximum(self.weights_[k], 0, out=self.weights_[k])
                step += 1
            # plain Python numbers: a history is written as JSON
            record = {"epoch": epoch + 1, "train_loss": float(loss_sum) / len(X),
                      "seconds": time.perf_counter() - started}
            if eval_set is not None:
                record["test_accuracy"] = self.score(*eval_set)
            self.history_.append(record)
            if self.verbose:
                print(f"epoch {epoch + 1}: train loss {record['train_loss']:.4g}"
                      + (f", test accuracy {100 * record['test_accuracy']:.2f} %" if eval_set is not None else ""))
        return self

    def decision_function(self, X) -> np.ndarray:
        """Scores (n, classes) of ``X``."""
        if not hasattr(self, "weights_"):
            raise ValueError("this BackpropMLP is not fitted yet: call fit first")
        return self._forward(np.asarray(X, dtype=self.dtype))[0][-1]

    def predict(self, X) -> np.ndarray:
        return np.argmax(self.decision_function(X), axis=1)

    def score(self, X, y) -> float:
        """Accuracy on ``(X, y)``."""
        return float(np.mean(self.predict(X) == np.asarray(y)))


class _Momentum:
    """Heavy-ball SGD: the step of parameter ``key`` for gradient ``g`` at step size ``rate``."""

    def __init__(self, momentum):
        self.momentum = momentum
        self.velocity = {}

    def __call__(self, key, g, rate):
        v = self.velocity.setdefault(key, np.zeros_like(g))
        v *= self.momentum
        v -= np.asarray(rate, dtype=g.dtype) * g
        return v


class _Adam:
    """Adam (Kingma and Ba 2015) with bias-corrected moments; one step counter per parameter array."""

    def __init__(self, beta1, beta2, eps=1e-8):
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self.moments = {}

    def __call__(self, key, g, rate):
        m, v, t = self.moments.get(key, (np.zeros_like(g), np.zeros_like(g), 0))
        t += 1
        m *= self.beta1
        m += (1 - self.beta1) * g
        v *= self.beta2
        v += (1 - self.beta2) * g * g
        self.moments[key] = (m, v, t)
        m_hat = m / (1 - self.beta1 ** t)
        v_hat = v / (1 - self.beta2 ** t)
        return (-rate * m_hat / (np.sqrt(v_hat) + self.eps)).astype(g.dtype)
