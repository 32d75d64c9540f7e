"""Equilibrium-propagation trainer (scikit-learn conventions: parameters in ``__init__``, work in ``fit``).

Units
-----
Conductances, ``g_min``, ``g_max`` and ``beta`` are in siemens.  Learning rates
are in normalised units: with conductances measured in units of
``conductance_unit`` (``g_n = g / conductance_unit``) the update is
``g_n <- g_n - learning_rate * dL/dg_n`` where ``L`` is the mean squared error
of the class scores in volts squared.  So ``learning_rate = 0.01`` means the
same thing for a 1 uS and a 1 mS device range when ``conductance_unit`` moves
with it.

One training step (a batch)
---------------------------
1. free phase (output currents 0) -> scores ``V+ - V-`` -> error ``y - score``;
2. nudged phases from the estimator (``+beta``; ``+beta, -beta``; or a random
   sign), with output currents ``beta * (y - score)`` (doubled outputs: ``+`` on
   the plus node, ``-`` on the minus node), warm-started from the free state;
3. node voltages are measured (``noise``), the rule forms the weighted sum of
   ``1/2 * dV**2`` across each conductance (local), the optimizer steps and the
   conductances are clipped to ``[g_min, g_max]``.
"""
from __future__ import annotations

import json
import math
import time
import warnings
from contextlib import ExitStack, nullcontext
from pathlib import Path

import numpy as np

from ..backends import get_backend
from ..kernels import project
from ..network import (DiodeModel, Network, NetworkError, atomic_savez, compensated_bias, load_npz_with_spec,
                       make_architecture)
from ..safety import DeferredInterrupt, OutputLock, clean_stale_temporaries
from .devices import DeviceModel, make_device
from .diagnostics import DeadNetworkWarning, dead_state
from .estimators import get_estimator
from .noise import MeasurementNoise
from .optimizers import SGD
from .rules import get_rule
from .schedules import get_schedule

CHECKPOINT_FORMAT = "circuitprop-checkpoint"
CHECKPOINT_VERSION = 1


class EPTrainer:
    """Train an analog network with equilibrium propagation.

    Parameters
    ----------
    layers : str
        ``features-hidden...-classes`` (undoubled), e.g. ``"784-100-10"``.
    backend : {"fast", "spice"}
        Solver of every phase: the fast co-content solver or ngspice.
    beta : float
        Nudging strength, siemens (output currents are ``beta * error``).
    estimator : {"centered", "one-sided", "random-sign"}
    rule : {"dv2", "sign"}
        Local rule: the ``dV**2`` rule or its sign-only variant.
    learning_rate : float or sequence
        One rate (normalised units) or one per crossbar, in crossbar order.  The
        sensitivity of the loss to one conductance falls with the total
        conductance at a node, so useful rates are large: 1e4 to 1e6 for
        MNIST-size layers with the default ``conductance_unit`` and ``target``.
    lr_decay : float
        With ``lr_schedule="exponential"``, the learning rate of epoch ``e`` (from 0) is
        ``learning_rate * lr_decay**e``.
    lr_schedule : {"exponential", "cosine"}
        ``"cosine"``: the rate falls from ``learning_rate`` to 0 along half a cosine over all epochs,
        updated every batch (see :mod:`circuitprop.learning.schedules`).
    momentum : float
    sign_sgd : bool
        Step by the sign of the gradient estimate.
    noise_sigma : float
        Standard deviation (volts) of each node-voltage measurement.
    noise_samples : int
        Measurements per phase averaged by the rule.
    epochs, batch_size : int
    g_min, g_max : float
        Device conductance range, siemens; every update is clipped to it.
    g_init : tuple of float
        Initial conductances drawn uniformly in this range (siemens).
    conductance_unit : float
        Siemens per normalised conductance unit (sets the meaning of the learning rate).
    target : float
        Score (volts) asked of the correct class; the others are asked 0 V.
    diode : {"ideal", "shockley"} or a model card name
        ``"shockley"``: circuitprop's generic diode with the biases as given.  A card of
        :data:`circuitprop.network.DIODE_CARDS` (e.g. ``"1n4148"``): that diode, with the biases moved in by
        its forward voltage at 1 uA (:func:`~circuitprop.network.compensated_bias`) so that the neuron still
        clips near ``[v_low, v_high]``.
    spice_ideal_n : float
        Emission coefficient of the near-ideal SPICE diode that stands for an ideal diode in netlists.
    v_low, v_high : float
        Diode bias voltages of hidden neurons, volts.
    amplifier_gain : float or None
    doubled_outputs : bool
    input_gain : float
        Volts per unit of input feature.
    bias_input : bool
        Add bias input nodes at +1 V and -1 V (a bias of either sign for every neuron they reach).
    skip : tuple
        Extra crossbars ``(a, b)``.
    solver_sweeps : int or None
        Fast backend: fixed number of sweeps per phase (``None``: to the KCL tolerance).
    solver_tol : float
        Fast backend KCL tolerance, amperes.
    fold_inputs : bool
        SPICE backend: Norton-fold the input crossbars.
    spice_workers : int
        SPICE backend: ngspice worker processes solving each batch in parallel (1: in this process).
        An execution setting, like ``verbose``: a resumed run uses the value given, not the checkpoint's.
    dtype : {"float64", "float32"}
        Floating-point type of the conductances, the fast solver and the update (end to end).
        float32 halves the memory traffic of a step; accuracy is the same on MNIST (BENCHMARKS.md).
    device : None, str, dict or DeviceModel
        Non-idealities of the programmable conductances (:mod:`circuitprop.learning.devices`): a preset
        name (``"reram"``, ``"pcm"``, ``"ecram"``), a :class:`~circuitprop.learning.devices.DeviceModel`
        or its dict; ``None`` or ``"ideal"``: every update exactly as the optimizer asks.
    wire_resistance : float
        Ohms of word line and bit line per crossbar cell (IR drop, :mod:`circuitprop.wires`); 0 for
        ideal wires.  Every phase is then solved with the lines, and the rule uses the drop across each
        cell.  Costs one sparse factorisation per crossbar and step: meant for small circuits.
    wire_layout : {"interleaved", "node-order"}
        Physical order of the lines (:func:`circuitprop.wires.line_orders`).
    seed : int
    verbose : bool
        Progress bar and per-epoch lines.

    Attributes
    ----------
    network_ : Network
    history_ : list of dict
        Per-epoch metrics.
    """

    def __init__(self, layers="784-100-10", backend="fast", beta=1e-6, estimator="centered", rule="dv2",
                 learning_rate=3e5, lr_decay=1.0, lr_schedule="cosine", momentum=0.5, sign_sgd=False,
                 noise_sigma=0.0, noise_samples=1, epochs=3, batch_size=16, g_min=1e-8, g_max=1e-4,
                 g_init=(1e-7, 2e-6), conductance_unit=1e-6, target=0.02, diode="ideal", spice_ideal_n=0.001,
                 v_low=0.0, v_high=1.0,
                 amplifier_gain=4.0, doubled_outputs=True, input_gain=1.0, bias_input=True, skip=(),
                 solver_sweeps=None, solver_tol=1e-10, fold_inputs=True, dtype="float64", device=None, wire_resistance=0.0,
                 wire_layout="interleaved", spice_workers=1, seed=0, verbose=True):
        self.layers = layers
        self.backend = backend
        self.beta = beta
        self.estimator = estimator
        self.rule = rule
        self.learning_rate = learning_rate
        self.lr_decay = lr_decay
        self.lr_schedule = lr_schedule
        self.momentum = momentum
        self.sign_sgd = sign_sgd
        self.noise_sigma = noise_sigma
        self.noise_samples = noise_samples
        self.epochs = epochs
        self.batch_size = batch_size
        self.g_min = g_min
        self.g_max = g_max
        self.g_init = g_init
        self.conductance_unit = conductance_unit
        self.target = target
        self.diode = diode
        self.spice_ideal_n = spice_ideal_n
        self.v_low = v_low
        self.v_high = v_high
        self.amplifier_gain = amplifier_gain
        self.doubled_outputs = doubled_outputs
        self.input_gain = input_gain
        self.bias_input = bias_input
        self.skip = skip
        self.solver_sweeps = solver_sweeps
        self.solver_tol = solver_tol
        self.fold_inputs = fold_inputs
        self.dtype = dtype
        self.device = device
        self.wire_resistance = wire_resistance
        self.wire_layout = wire_layout
        self.spice_workers = spice_workers
        self.seed = seed
        self.verbose = verbose

    # -- scikit-learn plumbing ------------------------------------------------
    def get_params(self, deep=True) -> dict:
        import inspect
        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        return {n: getattr(self, n) for n in names}

    def set_params(self, **params):
        for k, v in params.items():
            if k not in self.get_params():
                raise ValueError(f"unknown parameter {k!r}")
            setattr(self, k, v)
        return self

    # -- building blocks ---------------------------------------------------------
    def _validate(self):
        def finite(name, value, low=None, low_open=True, high=None, unit=""):
            ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) \
                and math.isfinite(value)
            if ok and low is not None:
                ok = value > low if low_open else value >= low
            if ok and high is not None:
                ok = value < high
            if not ok:
                bound = "" if low is None else f"{'>' if low_open else '>='} {low} "
                bound += "" if high is None else f"and < {high} "
                raise ValueError(f"{name} must be {bound}{'and ' if bound else ''}finite{unit}, got {value!r}")
        finite("beta", self.beta, 0, unit=" (siemens)")
        finite("g_min", self.g_min, 0, unit=" (siemens)")
        finite("g_max", self.g_max, 0, unit=" (siemens)")
        if not self.g_min < self.g_max:
            raise ValueError(f"need 0 < g_min < g_max (siemens), got {self.g_min}, {self.g_max}")
        finite("target", self.target, unit=" (volts)")
        finite("momentum", self.momentum, 0, low_open=False, high=1)
        finite("lr_decay", self.lr_decay, 0)
        finite("noise_sigma", self.noise_sigma, 0, low_open=False, unit=" (volts)")
        finite("conductance_unit", self.conductance_unit, 0, unit=" (siemens)")
        finite("wire_resistance", self.wire_resistance, 0, low_open=False, unit=" (ohms per cell)")
        rates = self.learning_rate if isinstance(self.learning_rate, (list, tuple)) else [self.learning_rate]
        for rate in rates:
            finite("learning_rate", rate, 0, low_open=False)
        if self.dtype not in ("float64", "float32"):
            raise ValueError(f"dtype must be 'float64' or 'float32', got {self.dtype!r}")
        make_device(self.device)  # raises on an unknown preset or malformed device
        for name in ("batch_size", "noise_samples", "epochs", "spice_workers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < (name != "epochs"):
                raise ValueError(f"{name} must be an integer >= {int(name != 'epochs')}, got {value!r}")

    def _architecture(self):
        v_low, v_high = self.v_low, self.v_high
        if self.diode in ("ideal", "shockley"):
            diode = DiodeModel(kind=self.diode, spice_ideal_n=self.spice_ideal_n)
        else:
            diode = DiodeModel.from_card(self.diode, spice_ideal_n=self.spice_ideal_n)
            v_low, v_high = compensated_bias(diode, v_low, v_high)
        return make_architecture(self.layers, skip=tuple(tuple(s) for s in self.skip),
                                 amplifier_gain=self.amplifier_gain, v_low=v_low, v_high=v_high,
                                 diode=diode, doubled_outputs=self.doubled_outputs,
                                 input_gain=self.input_gain, bias_input=self.bias_input,
                                 wire_resistance=float(self.wire_resistance), wire_layout=self.wire_layout,
                                 name=f"circuitprop EP {self.layers}")

    def _make_network(self, rng_seed) -> Network:
        lo, hi = self.g_init
        return Network.random(self._architecture(), g_min=max(lo, self.g_min), g_max=min(hi, self.g_max),
                              seed=rng_seed, dtype=self.dtype)

    def _make_backend(self):
        if self.backend == "fast":
            opts = {"tol": self.solver_tol, "dtype": self.dtype}
            if self.solver_sweeps:
                opts["fixed_sweeps"] = int(self.solver_sweeps)
                opts["fixed_sweeps_residual"] = False  # nobody reads it in the loop; it costs a sweep
            return get_backend("fast", **opts)
        if self.backend == "spice":
            if self.dtype != "float64":
                raise ValueError("dtype='float32' is for the fast backend; ngspice computes in float64")
            return get_backend("spice", fold_inputs=self.fold_inputs, workers=self.spice_workers)
        raise ValueError(f"unknown backend {self.backend!r}; choose 'fast' or 'spice'")

    def _optimizer(self, network):
        lr = self.learning_rate
        if isinstance(lr, (list, tuple)):
            keys = network.architecture.crossbars
            if len(lr) != len(keys):
                raise ValueError(f"{len(lr)} learning rates given for {len(keys)} crossbars {list(keys)}")
            lr = {k: float(v) for k, v in zip(keys, lr)}
        return SGD(lr, momentum=self.momentum, sign=self.sign_sgd)

    def _targets(self, y) -> np.ndarray:
        n_classes = self.network_.architecture.n_classes
        y = np.asarray(y)
        if y.ndim != 1 or y.min() < 0 or y.max() >= n_classes:
            raise ValueError(f"labels must be integers in [0, {n_classes - 1}], shape (n,)")
        return self.target * np.eye(n_classes)[y]

    # -- one batch ---------------------------------------------------------------------
    def _solver(self, backend, network):
        if hasattr(backend, "prepare"):
            prepared = backend.prepare(network)
            return prepared.solve
        return lambda x, currents=None, initial=None: backend.solve(network, x, currents, initial)

    def _incremental_solver(self):
        """The fast solver's matrices, kept across batches and updated from the kernel's row/column sums."""
        prepared = getattr(self, "_prepared", None)
        if prepared is None or prepared.network is not self.network_ or not prepared.shares_conductances:
            prepared = self._prepared = self._backend.prepare(self.network_)
        return prepared

    def train_batch(self, x, targets) -> float:
        """One EP step on a batch; returns the free-phase loss (V^2, mean over the batch).

        Safe to call after changing ``network_.conductances`` by hand: the solver is prepared afresh
        (inside :meth:`fit` it is kept and updated incrementally instead).
        """
        self._prepared = None
        self._next_drive = None
        return self._step(x, targets)

    def _step(self, x, targets, next_x=None) -> float:
        """One EP step; with ``next_x`` (the next batch's features) the update pass also forms that
        batch's input drive, so the next step never reads the input crossbar just for it."""
        net = self.network_
        device = getattr(self, "_device", None)
        incremental = hasattr(self._backend, "prepare") and device is None and net.architecture.wire_resistance == 0
        drive = None
        if incremental:
            prepared = self._incremental_solver()
            solve = prepared.solve
            drive, v_in = self._input_drive(x)
        else:
            seen = net
            if device is not None and device.read_noise is not None:  # this batch's reads of the devices
                seen = Network(net.architecture, {k: device.read_noise.read(g, self._rng)
                                                  for k, g in net.conductances.items()}, dtype=net.dtype)
            solve = self._solver(self._backend, seen)
        free = solve(x, input_drive=drive, input_voltages=v_in) if drive is not None else solve(x)
        error = targets - net.scores(free.outputs)
        loss = 0.5 * float(np.vdot(error, error)) / error.shape[0]  # mean over the batch of 1/2 |error|^2
        unit = self.conductance_unit
        beta_n = self.beta / unit
        estimator = self._estimator
        betas = estimator.betas(beta_n, self._rng)
        currents = [net.output_currents_from_score_currents(b * unit * error) for b in betas]
        if len(betas) > 1 and (incremental or self.backend == "spice"):
            # all nudged phases as one batch: one solver call (for ngspice, one netlist and one matrix
            # ordering instead of one per phase)
            nudged = _solve_stacked(solve, x, currents, free)
        else:
            nudged = [solve(x, c, free) for c in currents]
        w_free, w_nudged = estimator.weights(beta_n, betas)
        batch = x.shape[0]
        phases = []
        for sol, w in [(free, w_free)] + list(zip(nudged, w_nudged)):
            if w == 0.0:
                continue
            measured, row_weight = self._noise.measure(sol.voltages, self._rng)
            phases.append((measured, w * row_weight / batch))
        grads = self._rule.gradient(net, phases)  # dL/dg_n, volts^2 (low-rank factors for the dV^2 rule)
        project = {}
        if incremental and next_x is not None:
            v_next = net.input_voltages(next_x, dtype=prepared.dtype)
            project = {key: v_next for key in net.conductances if key[0] == 0}
        sums = self._optimizer_.step(net.conductances, grads, self.g_min, self.g_max, grad_scale=unit,
                                     project=project, device=device, rng=self._rng)
        if incremental:
            prepared.update_sums(sums)
            drives = {key[1]: sums[key][2] for key in project if key in sums and sums[key][2] is not None}
            self._next_drive = (next_x, drives, v_next) if len(drives) == len(project) and project else None
        return loss

    def _input_drive(self, x):
        """The input crossbars' drive of batch ``x`` and its input voltages: from the previous update pass when
        it formed them (for this very array, or equal features), else computed in the same arithmetic (so that
        a resumed run is bit-for-bit an uninterrupted one)."""
        pending = getattr(self, "_next_drive", None)
        self._next_drive = None
        if pending is not None and (pending[0] is x or (pending[0].shape == x.shape and np.array_equal(pending[0], x))):
            return pending[1], pending[2]
        v_in = self.network_.input_voltages(x, dtype=self._prepared.dtype)
        return {b: project(v_in, g) for (a, b), g in self.network_.conductances.items() if a == 0}, v_in

    # -- fit / predict -------------------------------------------------------------------
    def _setup(self, resume_from=None):
        self._validate()
        self._backend = self._make_backend()
        self._estimator = get_estimator(self.estimator)
        self._rule = get_rule(self.rule)
        self._schedule = get_schedule(self.lr_schedule, self.lr_decay)
        self._noise = MeasurementNoise(self.noise_sigma, int(self.noise_samples))
        self._device = make_device(self.device)
        if resume_from is None:
            self.network_ = self._make_network(self.seed)
            if self._device is not None:
                for g in self.network_.conductances.values():
                    self._device.initialize(g, self.g_min, self.g_max)
            self._optimizer_ = self._optimizer(self.network_)
            self._rng = np.random.default_rng(self.seed + 1)
            self.history_ = []
            self._position = (0, 0)
            self._epoch_loss = [0.0, 0]

    def fit(self, X, y, X_test=None, y_test=None, checkpoint=None, resume=False, checkpoint_every=500,
            log=None, stop_after_batches=None):
        """Train on ``X`` (n, features) and integer labels ``y``.

        Parameters
        ----------
        X_test, y_test : optional
            Evaluated after each epoch (test accuracy in the history).
        checkpoint : path, optional
            Written atomically every ``checkpoint_every`` batches and at each
            epoch end; with ``resume=True`` an existing checkpoint is continued
            exactly (conductances, optimizer, RNG state, position in the epoch).
        log : path, optional
            JSON-lines file with one line of metrics per epoch.
        stop_after_batches : int, optional
            Stop (after checkpointing) once this many batches ran in this call.
        """
        X = _check_X(X)
        y = np.asarray(y)
        if X.shape[0] != y.shape[0]:
            raise ValueError(f"X has {X.shape[0]} samples but y has {y.shape[0]} labels")
        with ExitStack() as stack:
            if checkpoint:
                stack.enter_context(OutputLock(checkpoint))
                clean_stale_temporaries(checkpoint)
            if resume and checkpoint and Path(checkpoint).exists():
                self._load_checkpoint(checkpoint)
                self._setup(resume_from=checkpoint)
            else:
                self._setup()
            if X.shape[1] != self.network_.architecture.n_features:
                raise ValueError(f"X has {X.shape[1]} features, the network expects "
                                 f"{self.network_.architecture.n_features}")
            interrupt = stack.enter_context(DeferredInterrupt())
            return self._fit_loop(X, y, X_test, y_test, checkpoint, checkpoint_every, log, stop_after_batches,
                                  interrupt)

    def _fit_loop(self, X, y, X_test, y_test, checkpoint, checkpoint_every, log, stop_after_batches, interrupt):
        targets_all = self._targets(y)
        self._prepared = None
        self._next_drive = None
        n = X.shape[0]
        n_batches = math.ceil(n / int(self.batch_size))
        start_epoch, start_batch = self._position
        self._ran = 0
        for epoch in range(start_epoch, int(self.epochs)):
            t0 = time.perf_counter()
            bar = _progress(range(start_batch, n_batches), total=n_batches, initial=start_batch,
                            desc=f"epoch {epoch + 1}/{self.epochs}", disable=None if self.verbose else True)
            if self._run_batches(X, targets_all, epoch, bar, n_batches, checkpoint, checkpoint_every,
                                 stop_after_batches, interrupt):
                return self
            start_batch = 0
            total, count = self._epoch_loss
            record = {"epoch": epoch + 1, "train_loss": total / count if count else None,
                      "seconds": time.perf_counter() - t0}
            if X_test is not None:
                record["test_accuracy"] = self.score(X_test, y_test)
            dead = dead_state(self, X[:128])
            if dead:
                record["dead"] = True
                warnings.warn(f"epoch {epoch + 1}: {dead}", DeadNetworkWarning, stacklevel=3)
            self.history_.append(record)
            self._position = (epoch + 1, 0)
            self._epoch_loss = [0.0, 0]
            if self.verbose:
                print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()),
                      flush=True)
            if log:
                with open(log, "a") as fh:
                    fh.write(json.dumps(record) + "\n")
            if checkpoint:
                self.save_checkpoint(checkpoint)
        return self

    def _run_batches(self, X, targets_all, epoch, bar, n_batches, checkpoint, checkpoint_every, stop_after_batches,
                     interrupt) -> bool:
        """The batches of one epoch (from ``bar``'s first); True when ``stop_after_batches`` was reached."""
        from ..kernels import training_threads
        bs = int(self.batch_size)
        order = np.random.default_rng([self.seed, epoch]).permutation(X.shape[0])
        losses = []
        with training_threads() if self.backend == "fast" else nullcontext():
            x_next = None
            for b in bar:
                idx = order[b * bs:(b + 1) * bs]
                following = order[(b + 1) * bs:(b + 2) * bs]
                self._optimizer_.scale = self._schedule(epoch, b / n_batches, int(self.epochs))
                x = x_next if x_next is not None else X[idx]  # the array the last step formed the drive of
                x_next = X[following] if following.size else None
                loss = self._step(x, targets_all[idx], x_next)
                if not math.isfinite(loss):
                    raise FloatingPointError(f"loss became {loss} at epoch {epoch + 1}, batch {b}")
                losses.append(loss)
                self._epoch_loss = [self._epoch_loss[0] + loss, self._epoch_loss[1] + 1]
                self._ran += 1
                self._position = (epoch, b + 1)
                if hasattr(bar, "set_postfix") and b % 20 == 0:
                    bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}")
                if interrupt.requested:
                    if hasattr(bar, "close"):
                        bar.close()
                    if checkpoint:
                        self.save_checkpoint(checkpoint)
                        print(f"interrupted: checkpoint {checkpoint} saved after epoch {epoch + 1}, batch {b + 1}; "
                              "continue with --resume", flush=True)
                    raise KeyboardInterrupt
                if checkpoint and self._ran % checkpoint_every == 0:
                    self.save_checkpoint(checkpoint)
                if stop_after_batches is not None and self._ran >= stop_after_batches:
                    if checkpoint:
                        self.save_checkpoint(checkpoint)
                    return True
        return False

    def decision_function(self, X, batch_size=500) -> np.ndarray:
        """Class scores (volts) of the free phase."""
        X = _check_X(X)
        solve = self._solver(self._backend, self.network_)
        out = [self.network_.scores(solve(X[i:i + batch_size]).outputs) for i in range(0, X.shape[0], batch_size)]
        return np.concatenate(out)

    def predict(self, X) -> np.ndarray:
        return np.argmax(self.decision_function(X), axis=1)

    def score(self, X, y) -> float:
        """Accuracy (fraction correct)."""
        return float(np.mean(self.predict(X) == np.asarray(y)))

    # -- checkpoints -------------------------------------------------------------------
    def save_checkpoint(self, path) -> Path:
        params = self.get_params()
        params["skip"] = [list(s) for s in params["skip"]]
        params["g_init"] = list(params["g_init"])
        if isinstance(params["device"], DeviceModel):
            params["device"] = params["device"].to_dict()
        spec = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "params": params,
                "position": list(self._position), "rng": _jsonable(self._rng.bit_generator.state),
                "history": self.history_, "epoch_loss": list(self._epoch_loss)}
        arrays = {f"g_{a}_{b}": g for (a, b), g in self.network_.conductances.items()}
        arrays.update(self._optimizer_.state())
        return atomic_savez(path, spec=spec, **arrays)

    def _load_checkpoint(self, path, warn=True):
        box = {}

        def members(spec):
            for key in ("params", "position", "rng", "history"):
                if key not in spec:
                    raise NetworkError(f"{path}: checkpoint has no {key!r} entry")
            params = spec["params"]
            if not isinstance(params, dict):
                raise NetworkError(f"{path}: checkpoint params must be an object, got {params!r:.80}")
            params = dict(params)
            params.setdefault("lr_schedule", "exponential")  # checkpoints written before schedules existed
            params.setdefault("dtype", "float64")  # and before the dtype option
            params.setdefault("device", None)  # and before device models
            params.setdefault("spice_ideal_n", 0.001)  # the DiodeModel default such checkpoints were made with
            params.setdefault("spice_workers", 1)  # and before parallel ngspice
            known = self.get_params()
            missing = sorted(set(known) - set(params) - {"verbose"})
            unknown = sorted(set(params) - set(known))
            if missing or unknown:
                raise NetworkError(f"{path}: checkpoint params {'lack ' + str(missing) if missing else ''}"
                                   f"{' and ' if missing and unknown else ''}"
                                   f"{'have unknown ' + str(unknown) if unknown else ''}")
            try:
                params["skip"] = tuple(tuple(s) for s in params["skip"])
                params["g_init"] = tuple(params["g_init"])
            except TypeError as exc:
                raise NetworkError(f"{path}: malformed checkpoint params: {exc}") from None
            position = spec["position"]
            if not (isinstance(position, list) and len(position) == 2
                    and all(isinstance(p, int) and not isinstance(p, bool) and p >= 0 for p in position)):
                raise NetworkError(f"{path}: checkpoint position must be [epoch, batch], got {position!r:.80}")
            if not isinstance(spec["history"], list) or not all(isinstance(h, dict) for h in spec["history"]):
                raise NetworkError(f"{path}: checkpoint history must be a list of objects")
            epoch_loss = spec.get("epoch_loss", [0.0, 0])
            if not (isinstance(epoch_loss, list) and len(epoch_loss) == 2):
                raise NetworkError(f"{path}: checkpoint epoch_loss must be [sum, count]")
            try:
                arch = EPTrainer(**{k: v for k, v in params.items() if k != "verbose"})._architecture()
            except (NetworkError, ValueError, TypeError) as exc:
                raise NetworkError(f"{path}: checkpoint settings do not make a network: {exc}") from None
            box.update(params=params, arch=arch)
            sizes = arch.layer_sizes
            shapes = {}
            for a, b in arch.crossbars:
                shapes[f"g_{a}_{b}"] = shapes[f"velocity_{a}_{b}"] = (sizes[a], sizes[b])
            return shapes

        try:
            spec, arrays = load_npz_with_spec(path, CHECKPOINT_FORMAT, members)
            arch = box["arch"]
            missing = [f"g_{a}_{b}" for a, b in arch.crossbars if f"g_{a}_{b}" not in arrays]
            if missing:
                raise NetworkError(f"{path}: checkpoint lacks conductance array(s) {missing}")
            rng = np.random.default_rng()
            try:
                rng.bit_generator.state = spec["rng"]
            except (TypeError, ValueError, KeyError) as exc:
                raise NetworkError(f"{path}: checkpoint RNG state is malformed ({exc})") from None
            net = Network(arch, {(a, b): arrays[f"g_{a}_{b}"] for a, b in arch.crossbars}, dtype=box["params"]["dtype"])
        except NetworkError as exc:
            raise ValueError(str(exc)) from None
        params = box["params"]
        given = self.get_params()
        differ = [f"{k} ({given[k]!r} given, {v!r} in the checkpoint)" for k, v in params.items()
                  if k not in ("verbose", "epochs", "spice_workers") and k in given
                  and _jsonable(given[k]) != _jsonable(v)]
        if differ and warn:
            warnings.warn(f"resuming {path}: the checkpoint's settings are used, not the ones given: "
                          + "; ".join(differ), stacklevel=3)
        verbose = self.verbose
        epochs = self.epochs
        self.set_params(**{k: v for k, v in params.items() if k not in ("verbose", "spice_workers")})
        self.verbose, self.epochs = verbose, max(epochs, params["epochs"])
        self._validate()
        self.network_ = net
        self._optimizer_ = self._optimizer(net)
        self._optimizer_.load_state(arrays)
        self._rng = rng
        self._position = tuple(spec["position"])
        self.history_ = spec["history"]
        self._epoch_loss = [float(spec.get("epoch_loss", [0.0, 0])[0]), int(spec.get("epoch_loss", [0.0, 0])[1])]

    @classmethod
    def from_checkpoint(cls, path, **overrides) -> "EPTrainer":
        """A trainer restored from a checkpoint, ready to ``predict`` or to ``fit(..., resume=True)``.

        ``overrides`` (e.g. ``verbose=False``, more ``epochs``) are applied on top of the checkpoint's settings.
        """
        trainer = cls()
        trainer._load_checkpoint(path, warn=False)
        trainer.set_params(**overrides)
        trainer._setup(resume_from=path)
        return trainer


def _solve_stacked(solve, x, currents, free):
    """Solve several nudged phases of one batch as a single stacked batch (one solver call, warm-started)."""
    from ..backends.base import Solution
    k = len(currents)
    batch = x.shape[0]
    initial = Solution(voltages=[np.concatenate([v] * k) for v in free.voltages],
                       info={"input_drive": {layer: np.concatenate([d] * k)
                                             for layer, d in free.info.get("input_drive", {}).items()}})
    if not initial.info["input_drive"]:
        del initial.info["input_drive"]
    if "features" in free.info:  # lets the solver reuse the stacked input voltages instead of forming them
        initial.info["features"] = np.concatenate([free.info["features"]] * k)
    stacked = solve(np.concatenate([x] * k), np.concatenate(currents), initial)
    return [Solution(voltages=[v[i * batch:(i + 1) * batch] for v in stacked.voltages], iterations=stacked.iterations,
                     residual=stacked.residual, converged=stacked.converged) for i in range(k)]


def _jsonable(state):
    return json.loads(json.dumps(state, default=lambda o: o.to_dict() if hasattr(o, "to_dict") else int(o)))


def _check_X(X):
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (samples, features), got shape {X.shape}")
    if not np.all(np.isfinite(X)):
        raise ValueError("X contains non-finite values")
    return X


def _progress(iterable, **kw):
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover
        return iterable
    return tqdm(iterable, leave=False, mininterval=0.5, **kw)
