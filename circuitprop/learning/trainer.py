"""Equilibrium-propagation trainer (scikit-learn conventions: parameters in ``__init__``, work in ``fit``).

Units
-----
Conductances, ``g_min``, ``g_max`` and ``beta`` are in siemens.  Learning rates are in normalised units:
with conductances measured in units of ``conductance_unit`` (``g_n = g / conductance_unit``) the update is
``g_n <- g_n - learning_rate * dL/dg_n`` where ``L`` is the mean squared error of the class scores in volts
squared.  So ``learning_rate = 0.01`` means the same thing for a 1 uS and a 1 mS device range when
``conductance_unit`` moves with it.

One training step (a batch)
---------------------------
1. free phase (output currents 0) -> scores ``V+ - V-`` -> error ``y - score``;
2. nudged phases from the estimator (``+beta``; ``+beta, -beta``; or a random sign), with output currents
   ``beta * (y - score)`` (doubled outputs: ``+`` on the plus node, ``-`` on the minus node), warm-started
   from the free state;
3. node voltages are measured (``noise``), the rule forms the weighted sum of ``1/2 * dV**2`` across each
   conductance (local), the optimizer steps and the conductances are clipped to ``[g_min, g_max]``.

The phases are solved by a backend session (:class:`~circuitprop.backends.base.Session`); checkpoints, logs,
locks and interrupts belong to :class:`~circuitprop.learning.run.TrainingRun`, which drives :meth:`EPTrainer.fit`
through callbacks.
"""
from __future__ import annotations

import math
import time
from dataclasses import replace

import numpy as np

from ..backends import get_backend
from ..config import CONFIGS, FLAT, TrainingConfig, architecture_from, initial_network, split
from ..declare import declared, default_of
from ..errors import ConfigError
from ..io.progress import progress
from ..model import Network
from ..model.devices import make_device
from .augment import Augmentation
from .checkpoint import read_checkpoint, write_checkpoint
from .ep import MeasurementNoise, get_estimator, get_rule
from .optimizers import SGD, get_schedule

_TRAINING = {name: default_of(f) for name, (f, _) in declared(TrainingConfig).items()}


class EPTrainer:
    """Train an analog network with equilibrium propagation.

    Every setting is declared once in :mod:`circuitprop.config` (type, unit, default, range, help).  Nested
    parameters follow scikit-learn: ``get_params()["ep__beta"]``, ``set_params(optimizer__learning_rate=1e5)``.

    Parameters
    ----------
    circuit : CircuitConfig or dict, optional
        Topology and sources (layer sizes, skip crossbars, amplifiers, inputs, outputs, wires).
    neuron : NeuronConfig or dict, optional
        The hidden neurons' diodes and bias voltages.
    ep : EPConfig or dict, optional
        The EP rule: nudging strength ``beta`` (S), estimator, local rule, target (V), measurement noise.
    optimizer : OptimizerConfig or dict, optional
        Learning rate (one, or one per crossbar), schedule, momentum.
    devices : DeviceConfig or dict, optional
        Device range ``[g_min, g_max]`` (S), initial range, non-idealities.
    solver : SolverConfig or dict, optional
        Backend (``"fast"`` or ``"spice"``) and its settings.
    epochs, batch_size, seed, augment_shift, augment_flip, verbose
        See :class:`~circuitprop.config.TrainingConfig`.
    warm_start : bool
        ``fit`` continues from the fitted state (network, optimizer, random state, position in the run)
        instead of starting afresh; :meth:`from_checkpoint` sets it.
    **settings : optional
        Any setting by its own name (``beta=1e-6``, ``layers="784-100-10"``, ``device="reram"``, ...): a
        shortcut for the field of the config that holds it (:data:`circuitprop.config.FLAT`).

    Attributes
    ----------
    network_ : Network
        The trained network (conductances in siemens).
    history_ : list of dict
        Per-epoch records: ``epoch``, ``train_loss`` (V^2), ``seconds``, and ``test_accuracy`` with an
        evaluation set.
    optimizer_ : SGD
        The optimizer with its momentum buffers.
    rng_ : numpy.random.Generator
        Random state of the run (estimator signs, measurement noise, device noise).
    position_ : tuple
        ``(epoch, batch)`` of the next batch to run.
    epoch_loss_ : list
        ``[sum, count]`` of the free-phase losses of the epoch so far.

    Examples
    --------
    >>> clf = EPTrainer(layers="784-100-10", epochs=3)                    # doctest: +SKIP
    >>> clf.fit(X, y, eval_set=(X_test, y_test)).score(X_test, y_test)     # doctest: +SKIP
    """

    def __init__(self, circuit=None, neuron=None, ep=None, optimizer=None, devices=None, solver=None, *,
                 epochs=_TRAINING["epochs"], batch_size=_TRAINING["batch_size"], seed=_TRAINING["seed"],
                 augment_shift=_TRAINING["augment_shift"], augment_flip=_TRAINING["augment_flip"],
                 verbose=_TRAINING["verbose"], warm_start=False,
                 **settings):
        given = {"circuit": circuit, "neuron": neuron, "ep": ep, "optimizer": optimizer, "devices": devices,
                 "solver": solver}
        groups, _ = split(settings)
        for name, cls in CONFIGS.items():
            setattr(self, name, _config(cls, given[name], groups.get(name, {}), name))
        self.epochs = epochs
        self.batch_size = batch_size
        self.seed = seed
        self.augment_shift = augment_shift
        self.augment_flip = augment_flip
        self.verbose = verbose
        self.warm_start = warm_start

    # -- scikit-learn plumbing ----------------------------------------------------------------------------
    @classmethod
    def _param_names(cls):
        return list(CONFIGS) + list(_TRAINING) + ["warm_start"]

    def get_params(self, deep=True) -> dict:
        """Parameters by name; with ``deep``, also every config field as ``config__field``."""
        params = {name: getattr(self, name) for name in self._param_names()}
        if deep:
            for name in CONFIGS:
                for field in declared(CONFIGS[name]):
                    params[f"{name}__{field}"] = getattr(params[name], field)
        return params

    def set_params(self, **params):
        """Set parameters: ``config`` (a config or dict), ``config__field``, a training parameter, or any
        setting by its own name; the changes to each config are checked together against its declarations."""
        changes = {}
        for key, value in params.items():
            if key in CONFIGS:
                setattr(self, key, _config(CONFIGS[key], value, {}, key))
            elif key in _TRAINING or key == "warm_start":
                setattr(self, key, value)
            else:
                group, _, field = key.partition("__")
                if not field:
                    group, field = FLAT.get(key, "?"), key
                if group not in CONFIGS or field not in declared(CONFIGS[group]):
                    raise ValueError(f"unknown parameter {key!r} of EPTrainer (see get_params())")
                changes.setdefault(group, {})[field] = value
        for group, fields in changes.items():
            setattr(self, group, replace(getattr(self, group), **fields))
        return self

    def settings(self) -> dict:
        """Every setting by its flat name (what checkpoints, logs and sweeps record)."""
        flat = {}
        for name in CONFIGS:
            config = getattr(self, name)
            flat.update({field: getattr(config, field) for field in declared(config)})
        flat.update({name: getattr(self, name) for name in _TRAINING})
        return flat

    def __getattr__(self, name):
        """A setting by its own name (``trainer.beta`` is ``trainer.ep.beta``)."""
        group = FLAT.get(name)
        if group is not None and group in self.__dict__:
            return getattr(self.__dict__[group], name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def _check_params(self) -> None:
        for name, cls in CONFIGS.items():
            config = getattr(self, name)
            if not isinstance(config, cls):
                raise ConfigError(f"{name} must be a {cls.__name__}, got {type(config).__name__}")
            config.validate()
        TrainingConfig(**{name: getattr(self, name) for name in _TRAINING})

    # -- building blocks ------------------------------------------------------------------------------------
    def _architecture(self):
        return architecture_from(self.circuit, self.neuron)

    def _make_backend(self):
        s = self.solver
        if s.backend == "fast":
            options = {"tol": s.solver_tol, "dtype": s.dtype, "relaxation": s.solver_relaxation}
            if s.solver_sweeps:
                options["fixed_sweeps"] = int(s.solver_sweeps)
                options["fixed_sweeps_residual"] = False  # nobody reads it in the loop; it costs a sweep
                if s.solver_nudged_sweeps:
                    options["warm_sweeps"] = int(s.solver_nudged_sweeps)
            return get_backend("fast", **options)
        return get_backend("spice", fold_inputs=s.fold_inputs, workers=s.spice_workers)

    def _make_optimizer(self, network):
        o = self.optimizer
        lr = o.learning_rate
        if isinstance(lr, (list, tuple)):
            keys = network.architecture.crossbars
            if len(lr) != len(keys):
                raise ValueError(f"{len(lr)} learning rates given for {len(keys)} crossbars {list(keys)}")
            lr = {k: float(v) for k, v in zip(keys, lr)}
        return SGD(lr, momentum=o.momentum, sign=o.sign_sgd)

    def _read_devices(self, network):
        """The network as this batch's solves see it: each conductance read once (device read noise)."""
        noise = self._device.read_noise
        if noise is None:
            return network
        return Network(network.architecture, {k: noise.read(g, self.rng_) for k, g in network.conductances.items()},
                       dtype=network.dtype)

    def _assemble(self):
        """The pieces of a run, from the settings: backend session, estimator, rule, noise, schedule, device."""
        self._backend = self._make_backend()
        self._estimator = get_estimator(self.ep.estimator)
        self._rule = get_rule(self.ep.rule)
        self._schedule = get_schedule(self.optimizer.lr_schedule, self.optimizer.lr_decay)
        self._noise = MeasurementNoise(self.ep.noise_sigma, int(self.ep.noise_samples), bool(self.ep.noise_inputs))
        self._device = make_device(self.devices.device)
        self._open_session()

    def _open_session(self):
        read = self._read_devices if self._device is not None else None  # a device is read at every batch
        self._session = self._backend.session(self.network_, read=read)

    def _initialize(self):
        """A fresh run: random conductances in ``g_init`` within ``[g_min, g_max]`` (scaled per crossbar with
        ``g_init_scaling``), zero momentum, position 0."""
        d = self.devices
        self.network_ = initial_network(self._architecture(), d, self.seed, dtype=self.solver.dtype)
        device = make_device(d.device)
        if device is not None:
            for g in self.network_.conductances.values():
                device.initialize(g, d.g_min, d.g_max)
        self.optimizer_ = self._make_optimizer(self.network_)
        self.rng_ = np.random.default_rng(self.seed + 1)
        self.history_ = []
        self.position_ = (0, 0)
        self.epoch_loss_ = [0.0, 0]

    def _targets(self, y) -> np.ndarray:
        n_classes = self.network_.architecture.n_classes
        y = np.asarray(y)
        if y.ndim != 1 or (y.size and (y.min() < 0 or y.max() >= n_classes)):
            raise ValueError(f"labels must be integers in [0, {n_classes - 1}], shape (n,)")
        return self.ep.target * np.eye(n_classes)[y]

    # -- one batch --------------------------------------------------------------------------------------------
    def train_batch(self, x, targets) -> float:
        """One EP step on a batch; returns the free-phase loss (V^2, mean over the batch).

        Safe to call after changing ``network_.conductances`` by hand: a new session is opened.
        """
        self._open_session()
        return self._step(np.asarray(x, dtype=np.float64), targets)

    def _step(self, x, targets, next_x=None) -> float:
        """One EP step; ``next_x`` (the next batch's features) lets the session prepare that batch during the
        update pass."""
        net = self.network_
        session = self._session
        free = session.free(x)
        error = targets - net.scores(free.outputs)
        loss = 0.5 * float(np.vdot(error, error)) / error.shape[0]  # mean over the batch of 1/2 |error|^2
        unit = self.optimizer.conductance_unit
        beta_n = self.ep.beta / unit
        betas = self._estimator.betas(beta_n, self.rng_)
        currents = [net.output_currents_from_score_currents(b * unit * error) for b in betas]
        nudged = session.nudged(x, currents, free)
        w_free, w_nudged = self._estimator.weights(beta_n, betas)
        batch = x.shape[0]
        phases = []
        for solution, weight in [(free, w_free)] + list(zip(nudged, w_nudged)):
            if weight == 0.0:
                continue
            measured, row_weight = self._noise.measure(solution.voltages, self.rng_)
            phases.append((measured, weight * row_weight / batch))
        grads = self._rule.gradient(net, phases)  # dL/dg_n, volts^2 (low-rank factors for the dV^2 rule)
        d = self.devices
        session.update(lambda project: self.optimizer_.step(net.conductances, grads, d.g_min, d.g_max,
                                                            grad_scale=unit, project=project, device=self._device,
                                                            rng=self.rng_), next_x)
        return loss

    # -- fit / predict ------------------------------------------------------------------------------------
    def fit(self, X, y, eval_set=None, validation_fraction=None, callbacks=()):
        """Train on ``X`` (n, features) and integer labels ``y``.

        With ``warm_start=True`` and a fitted state, the run goes on from :attr:`position_`.

        Parameters
        ----------
        eval_set : (X, y), optional
            Scored after each epoch (``test_accuracy`` in :attr:`history_`).
        validation_fraction : float, optional
            Hold out this last fraction of ``X`` as the evaluation set instead (not with ``eval_set``).
        callbacks : sequence
            Objects with ``on_batch_end(trainer) -> bool`` (True stops the run after this batch) and
            ``on_epoch_end(trainer, record)``; :class:`~circuitprop.learning.run.TrainingRun` uses them for
            checkpoints, logs, interrupts and the dead-network check.
        """
        X = _check_X(X)
        y = np.asarray(y)
        if X.shape[0] != y.shape[0]:
            raise ValueError(f"X has {X.shape[0]} samples but y has {y.shape[0]} labels")
        if validation_fraction is not None:
            if eval_set is not None:
                raise ValueError("give eval_set or validation_fraction, not both")
            if not 0.0 < validation_fraction < 1.0:
                raise ValueError(f"validation_fraction must be in (0, 1), got {validation_fraction!r}")
            cut = X.shape[0] - max(1, int(round(validation_fraction * X.shape[0])))
            X, y, eval_set = X[:cut], y[:cut], (X[cut:], y[cut:])
        self._check_params()
        if not (self.warm_start and hasattr(self, "network_")):
            self._initialize()
        if X.shape[1] != self.network_.architecture.n_features:
            raise ValueError(f"X has {X.shape[1]} features, the network expects "
                             f"{self.network_.architecture.n_features}")
        self._assemble()
        self._run(X, y, eval_set, list(callbacks))
        return self

    def _run(self, X, y, eval_set, callbacks):
        targets_all = self._targets(y)
        n = X.shape[0]
        batch_size = int(self.batch_size)
        n_batches = math.ceil(n / batch_size)
        start_epoch, start_batch = self.position_
        augment = Augmentation(X.shape[1], shift=self.augment_shift, flip=self.augment_flip)
        for epoch in range(start_epoch, int(self.epochs)):
            t0 = time.perf_counter()
            bar = progress(range(start_batch, n_batches), total=n_batches, initial=start_batch,
                           desc=f"epoch {epoch + 1}/{self.epochs}", enabled=bool(self.verbose))
            order = np.random.default_rng([self.seed, epoch]).permutation(n)
            change = augment.epoch(n, self.seed, epoch) if augment else None

            def examples(rows):  # the batch's features as the circuit sees them (moved, with augmentation)
                return X[rows] if change is None else change(X[rows], rows)
            losses = []
            stop = False
            try:
                with self._session.training():
                    x_next = None
                    for b in bar:
                        idx = order[b * batch_size:(b + 1) * batch_size]
                        following = order[(b + 1) * batch_size:(b + 2) * batch_size]
                        self.optimizer_.scale = self._schedule(epoch, b / n_batches, int(self.epochs))
                        x = x_next if x_next is not None else examples(idx)  # the array the last step prepared
                        x_next = examples(following) if following.size else None
                        loss = self._step(x, targets_all[idx], x_next)
                        if not math.isfinite(loss):
                            raise FloatingPointError(f"loss became {loss} at epoch {epoch + 1}, batch {b}")
                        losses.append(loss)
                        self.epoch_loss_ = [self.epoch_loss_[0] + loss, self.epoch_loss_[1] + 1]
                        self.position_ = (epoch, b + 1)
                        if hasattr(bar, "set_postfix") and b % 20 == 0:
                            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3g}")
                        stop = any([callback.on_batch_end(self) for callback in callbacks])
                        if stop:
                            return
            finally:
                if hasattr(bar, "close"):
                    bar.close()
            start_batch = 0
            total, count = self.epoch_loss_
            record = {"epoch": epoch + 1, "train_loss": total / count if count else None,
                      "seconds": time.perf_counter() - t0}
            if eval_set is not None:
                record["test_accuracy"] = self.score(*eval_set)
            self.history_.append(record)
            self.position_ = (epoch + 1, 0)
            self.epoch_loss_ = [0.0, 0]
            for callback in callbacks:
                callback.on_epoch_end(self, record)
            if self.verbose:
                print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()),
                      flush=True)

    def free_phase(self, X):
        """The free-phase :class:`~circuitprop.backends.base.Solution` of ``X`` with the stored conductances."""
        if getattr(self, "_session", None) is None or self._session.network is not self.network_:
            self._assemble()
        return self._session.solve(_check_X(X))

    def decision_function(self, X, batch_size=500) -> np.ndarray:
        """Class scores (volts) of the free phase (a progress display for more than 2,000 samples when
        ``verbose``)."""
        X = _check_X(X)
        starts = range(0, X.shape[0], batch_size)
        if self.verbose and X.shape[0] > 2000:
            starts = progress(starts, total=len(starts), desc=f"scoring {X.shape[0]:,} samples")
        out = [self.network_.scores(self.free_phase(X[i:i + batch_size]).outputs) for i in starts]
        return np.concatenate(out) if out else np.zeros((0, self.network_.architecture.n_classes))

    def predict(self, X) -> np.ndarray:
        return np.argmax(self.decision_function(X), axis=1)

    def score(self, X, y) -> float:
        """Accuracy (fraction correct)."""
        return float(np.mean(self.predict(X) == np.asarray(y)))

    # -- state (checkpoints) ----------------------------------------------------------------------------------
    def save_checkpoint(self, path):
        """Write the fitted state and every setting to ``path`` atomically (see :mod:`.checkpoint`)."""
        arrays = {f"g_{a}_{b}": g for (a, b), g in self.network_.conductances.items()}
        arrays.update(self.optimizer_.state())
        state = {"position": self.position_, "rng": self.rng_.bit_generator.state, "history": self.history_,
                 "epoch_loss": self.epoch_loss_}
        return write_checkpoint(path, self.settings(), state, arrays)

    def restore(self, state: dict, arrays: dict):
        """Take the fitted state of a checkpoint (as :func:`~.checkpoint.read_checkpoint` returns it); ``fit``
        then continues it (``warm_start`` is set)."""
        arch = self._architecture()
        self.network_ = Network(arch, {(a, b): arrays[f"g_{a}_{b}"] for a, b in arch.crossbars},
                                dtype=self.solver.dtype)
        self.optimizer_ = self._make_optimizer(self.network_)
        self.optimizer_.load_state(arrays)
        self.rng_ = state["rng"]
        self.position_ = tuple(state["position"])
        self.history_ = state["history"]
        self.epoch_loss_ = list(state["epoch_loss"])
        self.warm_start = True
        self._session = None
        return self

    @classmethod
    def from_checkpoint(cls, path, **overrides) -> "EPTrainer":
        """A trainer restored from a checkpoint with its settings (``overrides`` on top, e.g. ``verbose=False``
        or more ``epochs``), ready to ``predict`` or to ``fit`` on (it continues where the checkpoint stopped)."""
        settings, state, arrays = read_checkpoint(path)
        settings.pop("verbose", None)
        trainer = cls(**{k: v for k, v in settings.items() if k not in _TRAINING},
                      **{k: v for k, v in settings.items() if k in _TRAINING})
        trainer.set_params(**overrides)
        return trainer.restore(state, arrays)


def _config(cls, value, changes: dict, name: str):
    """A ``cls`` from ``value`` (an instance, a dict or None) with ``changes`` applied; checked."""
    if value is None:
        return cls(**changes)
    if isinstance(value, dict):
        return cls(**{**value, **changes})
    if not isinstance(value, cls):
        raise ConfigError(f"{name} must be a {cls.__name__} (or a dict of its settings), got {type(value).__name__}")
    return replace(value, **changes) if changes else value


def _check_X(X):
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (samples, features), got shape {X.shape}")
    if not np.all(np.isfinite(X)):
        raise ValueError("X contains non-finite values")
    return X


__all__ = ["EPTrainer"]
