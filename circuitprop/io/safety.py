"""Guards for long runs: an output lock, stale temporary files, and Ctrl-C at a safe point.

* :class:`OutputLock` stops two trainings from writing the same files at once (an
  ``flock`` on a hidden ``.NAME.lock`` file beside the output, removed when the run
  ends; the kernel releases the lock when a process dies, so a killed run never
  leaves a lock that blocks the next one).
* :func:`clean_stale_temporaries` removes the temporary files that
  :func:`circuitprop.network.atomic_write_bytes` leaves when a process is killed
  in the middle of a write (never a finished file).
* :class:`DeferredInterrupt` turns the first Ctrl-C (SIGINT), SIGTERM or SIGHUP into a flag that the
  training loop checks between batches, so it stops at a consistent state with
  its checkpoint saved.  This matters with ngspice: a ``KeyboardInterrupt`` raised
  inside one of PySpice's cffi callbacks is printed and swallowed, so without it
  Ctrl-C would be lost.  A second Ctrl-C interrupts at once.
"""
from __future__ import annotations

import os
import signal
import threading
from pathlib import Path


class OutputBusyError(ValueError):
    """Another process holds the lock of an output file."""


class OutputLock:
    """Exclusive, non-blocking lock on ``path`` (a hidden ``.<name>.lock`` file beside it).

    Raises :class:`OutputBusyError` naming the process that holds it.
    """

    def __init__(self, path):
        self.target = Path(path)
        self.path = self.target.parent / f".{self.target.name}.lock"
        self._fd = None

    def __enter__(self):
        import fcntl
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise OutputBusyError(
                    f"{self.target} is being written by another training "
                    f"(process {holder}); wait for it to finish or choose another output") from None
            try:  # the holder may have removed the file between our open and our lock: lock the new one
                if os.stat(self.path).st_ino == os.fstat(fd).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, *exc):
        import fcntl
        if self._fd is not None:
            self.path.unlink(missing_ok=True)  # while still locked, so no one can lock the old file after us
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
        return False


def clean_stale_temporaries(path) -> int:
    """Remove ``.<name>.*.tmp`` files beside ``path`` left by a killed atomic write; returns how many.

    Call it only while holding the :class:`OutputLock` of ``path``.
    """
    path = Path(path)
    removed = 0
    if path.parent.is_dir():
        for tmp in path.parent.glob(f".{path.name}.*.tmp"):
            tmp.unlink(missing_ok=True)
            removed += 1
    return removed


#: The signals that ask a run to stop: Ctrl-C, ``kill``/``timeout``/SLURM/``docker stop``, a closed terminal.
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


class Interrupted(KeyboardInterrupt):
    """A run stopped by a signal; ``signum`` says which (the command line exits with ``128 + signum``)."""

    def __init__(self, signum: int = signal.SIGINT, message: str = ""):
        super().__init__(message or signal.Signals(signum).name)
        self.signum = int(signum)


class _SignalHandlers:
    """Install ``self._handler`` for ``self.signals`` on entry (main thread only; a signal ignored on purpose,
    as ``nohup`` ignores SIGHUP, stays ignored) and put the previous handlers back on exit."""

    signals = STOP_SIGNALS

    def _handler(self, signum, frame):  # pragma: no cover - defined by subclasses
        raise NotImplementedError

    def __enter__(self):
        self._previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in self.signals:
                if signal.getsignal(sig) is signal.SIG_IGN:
                    continue
                try:
                    self._previous[sig] = signal.signal(sig, self._handler)
                except (ValueError, OSError):  # pragma: no cover - e.g. a sub-interpreter
                    pass
        return self

    def _restore(self):
        for sig, previous in self._previous.items():
            signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
        self._previous = {}

    def __exit__(self, *exc):
        self._restore()
        return False


class DeferredInterrupt(_SignalHandlers):
    """Context manager: the first SIGINT, SIGTERM or SIGHUP sets :attr:`requested` (and :attr:`signum`); a
    second one raises :class:`Interrupted` at once.

    Outside the main thread (Dask workers, Jupyter background threads) it does nothing.
    """

    def __init__(self, signals=STOP_SIGNALS):
        self.signals = tuple(signals)
        self.requested = False
        self.signum = None
        self._previous = {}

    def _handler(self, signum, frame):
        if self.requested:
            self._restore()
            raise Interrupted(signum)
        self.requested = True
        self.signum = signum


class StopOnSignal(_SignalHandlers):
    """Context manager: SIGTERM and SIGHUP raise :class:`Interrupted` at once, as Ctrl-C raises
    ``KeyboardInterrupt``, so that ``finally`` blocks run (a sweep closes its Dask cluster; its finished runs are
    already on disk).  Outside the main thread it does nothing."""

    signals = tuple(sig for sig in STOP_SIGNALS if sig != signal.SIGINT)

    def _handler(self, signum, frame):
        raise Interrupted(signum)
