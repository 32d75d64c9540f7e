"""A training run around an estimator: checkpoints, the metrics log, the output lock, interrupts, the
dead-network check and the steady-state check of fixed sweeps, as callbacks of
:meth:`EPTrainer.fit <circuitprop.learning.EPTrainer.fit>`.

:class:`TrainingRun` is what ``circuitprop train`` uses; in Python::

    run = TrainingRun(EPTrainer(layers="784-100-10"), checkpoint="out/model.ckpt.npz", log="out/model.log.jsonl")
    trainer = run.fit(X, y, eval_set=(X_test, y_test))     # kill it, run it again with resume=True: it goes on

* The checkpoint is written atomically every ``checkpoint_every`` batches and at each epoch's end; the
  epoch's log line is written only once the checkpoint holding it is safe on disk, so a resumed run never logs
  an epoch twice.  A run that starts from scratch (nothing to resume) renames an older log it finds to
  ``<stem>.superseded-<n>.jsonl`` rather than appending to it.
* Ctrl-C (SIGINT), SIGTERM or SIGHUP stops the run after the current batch with its checkpoint saved (a second
  Ctrl-C stops at once); ``resume=True`` then continues exactly: same conductances, optimizer, random state
  and position in the epoch.
* A lock beside the checkpoint stops two runs from writing the same files.
"""
from __future__ import annotations

import json
import signal
import warnings
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from ..backends.fast import steady_state_backend
from ..io.safety import DeferredInterrupt, Interrupted, OutputLock, clean_stale_temporaries
from .checkpoint import jsonable, read_checkpoint
from .diagnostics import DeadNetworkWarning, PrecisionWarning, SteadyStateWarning, dead_state, nudge_below_resolution

#: Settings a resumed run takes from the caller, not from the checkpoint: how it runs, not what it computes.
EXECUTION_SETTINGS = ("verbose", "spice_workers")


class Callback:
    """What :meth:`EPTrainer.fit <circuitprop.learning.EPTrainer.fit>` calls; both hooks do nothing here."""

    def on_batch_end(self, trainer) -> bool:
        """After each batch; True stops the run."""
        return False

    def on_epoch_end(self, trainer, record):
        """After each epoch, with its record (already in ``trainer.history_``)."""


class Checkpointer(Callback):
    """Save the trainer's state to ``path`` every ``every`` batches and at each epoch's end."""

    def __init__(self, path, every: int = 500):
        self.path = Path(path)
        self.every = int(every)
        self.batches = 0

    def save(self, trainer):
        trainer.save_checkpoint(self.path)

    def on_batch_end(self, trainer) -> bool:
        self.batches += 1
        if self.batches % self.every == 0:
            self.save(trainer)
        return False

    def on_epoch_end(self, trainer, record):
        self.save(trainer)


class EpochLog(Callback):
    """Append each epoch's record to a JSON-lines file."""

    def __init__(self, path):
        self.path = Path(path)

    def on_epoch_end(self, trainer, record):
        with open(self.path, "a") as fh:
            fh.write(json.dumps(record) + "\n")


def set_aside_log(path) -> Path | None:
    """Before a run starts from scratch: rename an existing, non-empty log ``path`` to
    ``<stem>.superseded-<n><suffix>`` (the first free ``n``) so the new run's epochs are not appended to an
    older run's, and warn.  Returns the new name, or None when there was nothing to move."""
    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return None
    n = 1
    while (kept := path.with_name(f"{path.stem}.superseded-{n}{path.suffix}")).exists():
        n += 1
    path.rename(kept)
    warnings.warn(f"{path} holds a log but the run starts from scratch (no checkpoint to resume): "
                  f"the old log is kept as {kept.name}", stacklevel=3)
    return kept


class DeadNetworkCheck(Callback):
    """After each epoch, warn (:class:`DeadNetworkWarning`) and mark the record ``dead`` when the network can
    no longer learn (every neuron of a hidden layer clipped, or scores independent of the input), judged on
    the first ``n_examples`` training examples."""

    def __init__(self, X, n_examples: int = 128):
        self.X = X[:n_examples]

    def on_epoch_end(self, trainer, record):
        dead = dead_state(trainer, self.X)
        if dead:
            record["dead"] = True
            warnings.warn(f"epoch {record['epoch']}: {dead}", DeadNetworkWarning, stacklevel=4)


class SteadyStateCheck(Callback):
    """After each epoch of a run whose fast solver stops after a fixed number of sweeps, compare the classes
    of the first ``n_examples`` training examples with those of the same circuit at its steady state (every
    KCL residual below 1e-10 A, float64): the record gets ``steady_state_changed`` (how many differ) and
    ``steady_state_checked``, and a :class:`SteadyStateWarning` when more than ``tolerance`` of them differ.

    Fixed sweeps are a truncated relaxation; a circuit can drift during training to where they no longer
    reach its steady state, and then the figures are the truncation's, not the circuit's (ngspice would
    disagree). Runs solved to their tolerance, or by ngspice, are not checked.
    """

    def __init__(self, X, n_examples: int = 256, tolerance: float = 0.02):
        self.X = X[:n_examples]
        self.tolerance = tolerance

    def on_epoch_end(self, trainer, record):
        solver = trainer.solver
        if solver.backend != "fast" or not solver.solver_sweeps or len(self.X) == 0:
            return
        fixed = np.argmax(trainer.decision_function(self.X), axis=1)
        net = trainer.network_
        exact = steady_state_backend(net)
        steady = np.argmax(net.scores(exact.solve(net, self.X).outputs), axis=1)
        changed = int(np.sum(fixed != steady))
        record["steady_state_changed"] = changed
        record["steady_state_checked"] = len(self.X)
        if changed > self.tolerance * len(self.X):
            warnings.warn(f"epoch {record['epoch']}: {changed} of the first {len(self.X)} training examples change "
                          f"class when the circuit is solved to its steady state instead of "
                          f"{solver.solver_sweeps} fixed sweeps per phase: the training no longer follows the "
                          "circuit's steady state; use more --solver-sweeps", SteadyStateWarning, stacklevel=4)


class PrecisionCheck(Callback):
    """After the first batch of a float32 run on the fast backend, warn (:class:`PrecisionWarning`) when the
    nudge reaching a hidden layer is below float32's resolution there, judged at the steady state on the first
    ``n_examples`` training examples (:func:`~circuitprop.learning.diagnostics.nudge_below_resolution`).  Checked
    once per run."""

    def __init__(self, X, y, n_examples: int = 16):
        self.X, self.y = X[:n_examples], np.asarray(y)[:n_examples]
        self.done = False

    def on_batch_end(self, trainer) -> bool:
        if not self.done:
            self.done = True
            problem = nudge_below_resolution(trainer, self.X, self.y)
            if problem:
                warnings.warn(problem, PrecisionWarning, stacklevel=4)
        return False


class StopAfter(Callback):
    """Stop the run (after saving, when a checkpointer is given) once ``batches`` batches ran."""

    def __init__(self, batches: int, checkpointer: Checkpointer | None = None):
        self.batches = int(batches)
        self.checkpointer = checkpointer
        self.ran = 0

    def on_batch_end(self, trainer) -> bool:
        self.ran += 1
        if self.ran >= self.batches:
            if self.checkpointer is not None:
                self.checkpointer.save(trainer)
            return True
        return False


class InterruptGuard(Callback):
    """Turn Ctrl-C, SIGTERM or SIGHUP into a stop after the current batch, with the checkpoint saved
    (raises :class:`~circuitprop.io.safety.Interrupted` naming the signal)."""

    def __init__(self, interrupt: DeferredInterrupt, checkpointer: Checkpointer | None = None):
        self.interrupt = interrupt
        self.checkpointer = checkpointer

    def on_batch_end(self, trainer) -> bool:
        if self.interrupt.requested:
            epoch, batch = trainer.position_
            if self.checkpointer is not None:
                self.checkpointer.save(trainer)
                print(f"interrupted ({signal.Signals(self.interrupt.signum).name}): checkpoint "
                      f"{self.checkpointer.path} saved after epoch {epoch + 1}, batch {batch}; continue with --resume",
                      flush=True)
            raise Interrupted(self.interrupt.signum)
        return False


class TrainingRun:
    """Run management for an :class:`~circuitprop.learning.EPTrainer`.

    Parameters
    ----------
    trainer : EPTrainer
    checkpoint : path, optional
        Checkpoint file (written atomically; a lock beside it keeps other runs out).
    log : path, optional
        JSON-lines file with one record per epoch.
    resume : bool
        Continue ``checkpoint`` when it exists.  Its settings are used (a warning lists those given
        differently), except how the run executes (``verbose``, ``spice_workers``) and ``epochs``, which
        may grow.
    checkpoint_every : int
        Batches between checkpoints within an epoch.
    dead_check : bool
        Check after each epoch whether the network can still learn.
    steady_check : bool
        With fixed solver sweeps, check after each epoch that they still give the steady state's classes
        (:class:`SteadyStateCheck`).
    precision_check : bool
        In a float32 run, check after the first batch that the nudge reaching every hidden layer is above float32's
        resolution there (:class:`PrecisionCheck`).
    """

    def __init__(self, trainer, checkpoint=None, log=None, resume=False, checkpoint_every=500, dead_check=True,
                 steady_check=True, precision_check=True):
        self.trainer = trainer
        self.checkpoint = Path(checkpoint) if checkpoint else None
        self.log = Path(log) if log else None
        self.resume = resume
        self.checkpoint_every = checkpoint_every
        self.dead_check = dead_check
        self.steady_check = steady_check
        self.precision_check = precision_check

    def fit(self, X, y, eval_set=None, stop_after_batches=None):
        """Train (or go on training) ``self.trainer`` on ``X``, ``y``; returns the trainer."""
        trainer = self.trainer
        with ExitStack() as stack:
            callbacks = []
            saver = None
            if self.checkpoint:
                stack.enter_context(OutputLock(self.checkpoint))
                clean_stale_temporaries(self.checkpoint)
                saver = Checkpointer(self.checkpoint, self.checkpoint_every)
            if self.resume and self.checkpoint and self.checkpoint.exists():
                self._restore(trainer)
            else:
                trainer.set_params(warm_start=False)
                if self.log:
                    set_aside_log(self.log)
            interrupt = stack.enter_context(DeferredInterrupt())
            callbacks.append(InterruptGuard(interrupt, saver))
            if stop_after_batches is not None:
                callbacks.append(StopAfter(stop_after_batches, saver))
            if self.dead_check:
                callbacks.append(DeadNetworkCheck(X))
            if self.steady_check:
                callbacks.append(SteadyStateCheck(X))
            if self.precision_check:
                callbacks.append(PrecisionCheck(X, y))
            if saver is not None:
                callbacks.append(saver)
            if self.log:  # after the checkpoint: an epoch is logged once its checkpoint is safe
                callbacks.append(EpochLog(self.log))
            return trainer.fit(X, y, eval_set=eval_set, callbacks=callbacks)

    def _restore(self, trainer):
        settings, state, arrays = read_checkpoint(self.checkpoint)
        given = trainer.settings()
        differ = [f"{k} ({given[k]!r} given, {v!r} in the checkpoint)" for k, v in settings.items()
                  if k not in EXECUTION_SETTINGS + ("epochs",) and k in given and jsonable(given[k]) != jsonable(v)]
        if differ:
            warnings.warn(f"resuming {self.checkpoint}: the checkpoint's settings are used, not the ones given: "
                          + "; ".join(differ), stacklevel=3)
        epochs = max(int(given["epochs"]), int(settings["epochs"]))
        trainer.set_params(**{k: v for k, v in settings.items() if k not in EXECUTION_SETTINGS + ("epochs",)})
        trainer.set_params(epochs=epochs)
        trainer.restore(state, arrays)


__all__ = ["TrainingRun", "Callback", "Checkpointer", "EpochLog", "DeadNetworkCheck", "SteadyStateCheck",
           "PrecisionCheck", "SteadyStateWarning", "PrecisionWarning", "StopAfter", "InterruptGuard"]
