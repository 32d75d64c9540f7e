"""The ngspice shared library, one instance per process (ngspice is not re-entrant), its options and errors."""
from __future__ import annotations

import logging
import threading
from dataclasses import asdict, dataclass

import numpy as np

from ..base import ConvergenceError


class SpiceError(RuntimeError):
    """ngspice reported an error (the message quotes it)."""


@dataclass
class SpiceOptions:
    """ngspice ``.options`` for operating points.

    Parameters
    ----------
    reltol : float
        Relative tolerance of voltages and currents.
    abstol : float
        Absolute current tolerance, amperes.
    vntol : float
        Absolute voltage tolerance, volts.
    gmin : float
        Conductance (siemens) ngspice puts across every pn junction.
    itl1 : int
        Newton iteration limit of the DC operating point.
    gminsteps : int
        Number of gmin-stepping steps tried when plain Newton fails (0: none).
    srcsteps : int
        Number of source-stepping steps tried after that (0: none).
    klu : int
        1: factor the circuit matrix with KLU (ngspice 40 and later); 0: with ngspice's older Sparse 1.3.
        KLU solves the dense crossbar between two hidden layers in seconds where Sparse 1.3 needs tens of
        minutes per Newton iteration at 1024 x 1024; both are direct solvers and give the same solution to the
        tolerances above.  ngspice 39 and earlier ignore the option.
    residual_rtol : float
        circuitprop's own check of every solution: the KCL residual of each node, recomputed from
        ngspice's voltages, must be below ``residual_rtol`` times the node's current scale
        (:func:`circuitprop.energy.current_scale`) plus ``1000 * abstol``; otherwise the solve raises
        :class:`ConvergenceError` instead of returning a wrong voltage.  Converged solutions are at
        about 1e-10 relative.
    """

    reltol: float = 1e-6
    abstol: float = 1e-15
    vntol: float = 1e-9
    gmin: float = 1e-15
    itl1: int = 200
    gminsteps: int = 10
    srcsteps: int = 10
    klu: int = 1
    residual_rtol: float = 1e-6

    def simulator_options(self) -> dict:
        """The fields that are ngspice ``.options`` (``residual_rtol`` is circuitprop's own check)."""
        return {k: v for k, v in asdict(self).items() if k != "residual_rtol"}

    @classmethod
    def tight(cls) -> "SpiceOptions":
        """Tolerances for comparing with the fast solver to the microvolt."""
        return cls(reltol=1e-9, abstol=1e-15, vntol=1e-9, gmin=1e-15)

    def as_dict(self) -> dict:
        """The ngspice ``.options`` (same as :meth:`simulator_options`)."""
        return self.simulator_options()


_LOCK = threading.Lock()
_SESSION = None


class NgSpiceSession:
    """One ngspice shared-library instance per process (ngspice is not re-entrant).

    All calls go through :meth:`command`, which raises :class:`SpiceError` with
    ngspice's own message on any error instead of letting it pass silently.
    """

    def __init__(self):
        logging.getLogger("PySpice").setLevel(logging.CRITICAL)
        try:
            from PySpice.Spice.NgSpice.Shared import NgSpiceShared
        except ImportError as exc:  # pragma: no cover - PySpice is a dependency
            raise SpiceError("PySpice is not installed: pip install PySpice") from exc
        try:
            self.ng = NgSpiceShared.new_instance()
        except OSError as exc:
            raise SpiceError(
                "could not load libngspice.so; install it with: sudo apt-get install ngspice libngspice0-dev"
            ) from exc
        self._command = self.ng._ngspice_shared.ngSpice_Command
        self._vec = self.ng._ngspice_shared.ngGet_Vec_Info
        from PySpice.Spice.NgSpice.Shared import FFI
        self._null = FFI.NULL  # looked up once: vector() runs once per node per operating point
        self.loaded = None  # key of the loaded circuit
        self.command("set nomoremode")

    @classmethod
    def get(cls) -> "NgSpiceSession":
        global _SESSION
        with _LOCK:
            if _SESSION is None:
                _SESSION = cls()
            return _SESSION

    def version(self) -> str:
        """The loaded library's version, e.g. ``ngspice-46``."""
        return next((w for w in self.command("version -f").split() if w.startswith("ngspice-")), "ngspice")

    def output(self) -> str:
        return "\n".join(self.ng._stdout + self.ng._stderr)

    def command(self, text: str, check: bool = True) -> str:
        """Run one ngspice command; raise :class:`SpiceError` if ngspice reports an error."""
        ng = self.ng
        ng.clear_output()
        rc = self._command(text.encode("ascii"))
        out = self.output()
        if check and (rc != 0 or _has_error(ng._stderr) or _has_error(ng._stdout)):
            raise SpiceError(f"ngspice command {text[:60]!r} failed: {_first_error(out)}")
        return out

    def load(self, text: str, key) -> None:
        """Load a netlist, replacing any loaded circuit."""
        self.loaded = None
        self.command("destroy all", check=False)
        self.command("remcirc", check=False)
        ng = self.ng
        ng.clear_output()
        ng._error_in_stdout = ng._error_in_stderr = False
        try:
            ng.load_circuit(text)
        except Exception as exc:  # PySpice raises NgSpiceCircuitError/NameError
            out = self.output()
            self.command("remcirc", check=False)
            raise SpiceError(f"ngspice could not load the netlist: {_first_error(out) or exc}") from None
        out = self.output()
        if _has_error(ng._stderr) or "circuit not parsed" in out.lower():
            detail = "; ".join(ln.strip() for ln in ng._stderr if ln.strip())[:600]
            self.command("remcirc", check=False)
            raise SpiceError(f"ngspice could not load the netlist: {detail}")
        self.loaded = key

    def alter(self, name: str, value: float) -> None:
        rc = self._command(f"alter {name} = {float(value)!r}".encode("ascii"))
        if rc != 0:
            raise SpiceError(f"ngspice: alter {name} failed")

    def op(self, what: str = "operating point") -> str:
        """Run ``op`` and return the plot name; raise :class:`ConvergenceError` when it fails.

        ngspice 39 tries plain Newton, then gmin stepping, then source stepping,
        then a pseudo-transient ("transient op").  A singular matrix (a node
        without a DC path), a parse error or a final failure raises, quoting
        what ngspice tried.
        """
        ng = self.ng
        ng.clear_output()
        rc = self._command(b"op")
        plots = ng.plot_names
        lines = ng._stdout + ng._stderr
        low = "\n".join(lines).lower()
        fatal = ("no convergence", "iteration limit", "simulation(s) aborted", "singular matrix",
                 "circuit not parsed", "error", "transient op failed")
        failed = rc != 0 or not plots or not plots[0].startswith("op") or any(s in low for s in fatal)
        if failed:
            self.command("destroy all", check=False)
            keys = ("error", "singular", "convergence", "gmin stepping failed", "source stepping failed",
                    "transient op", "iteration limit", "aborted")
            tried = [ln.strip() for ln in lines if any(k in ln.lower() for k in keys)]
            summary = "; ".join(dict.fromkeys(tried)) or "no result"
            raise ConvergenceError(
                f"ngspice DC operating point (.op) failed for {what}: {summary[:600]}. ngspice tried Newton "
                "iteration (itl1), then gmin stepping and source stepping as set in SpiceOptions (itl1, "
                "gminsteps, srcsteps); a singular matrix means a node without a DC path")
        return plots[0]

    def vector(self, plot: str, name: str) -> float:
        info = self._vec(f"{plot}.{name}".encode("ascii"))
        if info == self._null or info.v_length < 1:
            raise SpiceError(f"ngspice has no vector {name!r} in plot {plot!r}")
        return float(info.v_realdata[0])

    def vectors(self, plot: str, names) -> np.ndarray:
        return np.array([self.vector(plot, n) for n in names])



def _has_error(lines) -> bool:
    return any(("error" in ln.lower() and "warning" not in ln.lower()) for ln in lines)


def _first_error(out: str) -> str:
    for ln in out.splitlines():
        if "error" in ln.lower() or "abort" in ln.lower() or "convergence" in ln.lower():
            return ln.strip()
    return out.strip().splitlines()[-1] if out.strip() else ""


def vector_array(session, plot, name) -> np.ndarray:
    info = session._vec(f"{plot}.{name}".encode("ascii"))
    if info == session._null or info.v_length < 1:
        raise SpiceError(f"ngspice has no vector {name!r} in plot {plot!r}")
    return np.array([info.v_realdata[i] for i in range(info.v_length)])
