"""Guards for long runs: an output lock, stale temporary files, and Ctrl-C at a safe point.

* :class:`OutputLock` stops two trainings from writing the same files at once (an
  ``flock`` on a hidden ``.NAME.lock`` file beside the output, removed when the run
  ends; the kernel releases the lock when a process dies, so a killed run never
  leaves a lock that blocks the next one).
* :func:`clean_stale_temporaries` removes the temporary files that
  :func:`circuitprop.network.atomic_write_bytes` leaves when a process is killed
  in the middle of a write (never a finished file).
* :class:`DeferredInterrupt` turns the first Ctrl-C (SIGINT) into a flag that the
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


class DeferredInterrupt:
    """Context manager: the first SIGINT sets :attr:`requested`; a second one raises at once.

    Outside the main thread (Dask workers, Jupyter background threads) it does nothing.
    """

    def __init__(self):
        self.requested = False
        self._previous = None

    def _handler(self, signum, frame):
        if self.requested:
            signal.signal(signal.SIGINT, self._previous or signal.default_int_handler)
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            try:
                self._previous = signal.signal(signal.SIGINT, self._handler)
            except ValueError:  # pragma: no cover - e.g. a sub-interpreter
                self._previous = None
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None
        return False
