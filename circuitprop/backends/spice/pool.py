"""Worker processes, each with its own ngspice, that solve shares of a batch at once
(:class:`~circuitprop.backends.spice.SpiceBackend` with ``workers > 1``)."""
from __future__ import annotations

import os
import pickle
import subprocess
import sys

from ..base import ConvergenceError, Solution
from .ngspice import SpiceError


class SpiceWorker:
    """A worker process with its own ngspice (``python -m circuitprop.backends.spice.worker``).

    A plain subprocess, not :mod:`multiprocessing`: it works the same from scripts without a
    ``__main__`` guard, Jupyter kernels and Dask workers.
    """

    def __init__(self, fold_inputs, options, sweep):
        env = dict(os.environ, OMP_NUM_THREADS="1")
        self.process = subprocess.Popen([sys.executable, "-m", "circuitprop.backends.spice.worker"],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        self._pickle = pickle
        self.calls = 0
        self._write(dict(fold_inputs=fold_inputs, options=options, sweep=sweep))

    def _write(self, message):
        try:
            self._pickle.dump(message, self.process.stdin, protocol=self._pickle.HIGHEST_PROTOCOL)
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # the worker is gone: receive() reports it

    def send(self, network, inputs, currents):
        self.calls += 1
        self._write((network, inputs, currents))

    def receive(self, what: str) -> Solution:
        try:
            status, payload = self._pickle.load(self.process.stdout)  # written by our own worker
        except (EOFError, OSError, self._pickle.UnpicklingError):
            code = self.process.poll()
            how = "" if code is None else (f" (signal {-code})" if code < 0 else f" (exit status {code})")
            raise SpiceError(f"the ngspice worker process died{how} while solving {what}") from None
        if status == "ok":
            return payload
        kind, text = payload
        raise (ConvergenceError if kind == "ConvergenceError" else SpiceError)(f"{what}: {text}")

    def close(self):
        try:
            self.process.stdin.close()
        except OSError:
            pass
        try:
            self.process.wait(timeout=5)
        except Exception:
            self.process.kill()
