"""ngspice backend, through PySpice in shared-library mode.

A network is rendered and loaded once per set of conductances; each operating
point then only changes source values with ``alter`` and runs ``op``, so the
netlist is never re-rendered or re-parsed between samples or phases.  With
``fold_inputs=True`` (the default for training loops) the input crossbars are
replaced by their Norton equivalents, which is exact for linear resistors and
ideal input sources and makes each ``op`` about 1000x cheaper on MNIST-size
circuits (``DESIGN.md`` section 4).  Use ``fold_inputs=False`` to simulate the
full flat netlist that is exported.  In both, each backward amplifier (CCCS) senses
its forward amplifier's (VCVS) branch current directly, which only ngspice accepts
(``build_circuit(sense_sources=False)``): the same circuit as the exported one, whose
0 V sense sources every dialect understands, with two equations fewer per amplifier.
"""
from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import numpy as np

from ...model.energy import current_scale, kcl_residual, max_abs_residual, node_conductances
from ...netlist.circuit import Circuit, build_circuit, node
from ...netlist.writers import render
from ...model import DiodeModel, Network, NetworkError, replace
from ..base import ConvergenceError, Solution, SolveSession
from ...model.energy import static_power


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


class SpiceBackend:
    """Solve operating points with ngspice.

    Parameters
    ----------
    fold_inputs : bool
        Use Norton equivalents of the input crossbars (exact; much faster).  Ignored for networks
        with wire resistance, whose crossbars are always written flat (their lines couple the nodes).
    sweep : bool
        With folded inputs, solve a whole batch in one ngspice DC sweep: every folded input current and
        output current becomes a table (``pwl``) of the sweep variable, sample ``s`` at sweep value ``s``.
        ngspice then orders its matrix once per batch instead of once per ``op`` and starts each sample
        from the previous one (about 5x faster on 1568-100-20; BENCHMARKS.md).  Each sample is still a
        full DC solution and is checked against KCL like any other; if the sweep fails, the batch is solved
        sample by sample with ``op`` (which also tries gmin and source stepping).
    options : SpiceOptions
        ngspice tolerances and convergence aids.
    workers : int
        With ``workers > 1``, each batch is split into contiguous shares solved at once by that many worker
        processes, each with its own ngspice (ngspice is not re-entrant) limited to one OpenMP thread
        (ngspice's threads spin and would slow the other workers down: 3x, measured on 2 cores).  Results
        are identical to ``workers=1`` up to ngspice's tolerances (each share starts its sweep from its own
        first sample).  Children ignore Ctrl-C (the caller decides when to stop) and
        exit with this process or on :meth:`close`.
    """

    name = "spice"
    sweep_tightening = 1e-2  # sweep tolerances relative to ``options`` (see ``_solve_sweep``)
    #: A worker process is replaced by a fresh one after this many solves.  ngspice slows down as it loads
    #: netlist after netlist in one process (its memory grows): in a 10-epoch training, 0.23 s per batch of
    #: 16 just after the workers started became 0.32 s after about 6,000 batches.
    recycle_after = 1000

    def __init__(self, fold_inputs: bool = True, options: SpiceOptions | None = None, sweep: bool = True,
                 workers: int = 1):
        if int(workers) != workers or workers < 1:
            raise ValueError(f"workers must be a positive integer, got {workers!r}")
        self.fold_inputs = fold_inputs
        self.options = options or SpiceOptions()
        self.sweep = sweep
        self.workers = int(workers)
        self.ngspice = NgSpiceSession.get()
        self.netlist_text = None
        self._children = []
        self._templates = {}

    def session(self, network: Network, read=None) -> SolveSession:
        """A training session on ``network``: every phase solved by ngspice (the nudged phases of a batch in one
        netlist); ``read(network)`` gives the network each batch sees (device read noise)."""
        return SolveSession(self, network, read=read)

    def close(self) -> None:
        """Stop the worker processes (they are started again when needed)."""
        for child in self._children:
            child.close()
        self._children = []

    def __del__(self):  # pragma: no cover - depends on the garbage collector
        try:
            self.close()
        except Exception:
            pass

    def _parallel(self, network, inputs, currents) -> Solution:
        """Solve contiguous shares of the batch in the worker processes at once (recycled, see ``recycle_after``)."""
        batch = currents.shape[0]
        shares = [s for s in np.array_split(np.arange(batch), min(self.workers, batch)) if s.size]
        for index, child in enumerate(self._children):
            if child.calls >= self.recycle_after:  # see recycle_after
                child.close()
                self._children[index] = _SpiceChild(self.fold_inputs, self.options, self.sweep)
        while len(self._children) < len(shares):
            self._children.append(_SpiceChild(self.fold_inputs, self.options, self.sweep))
        for child, share in zip(self._children, shares):
            child.send(network, inputs[share], currents[share])
        errors, parts = [], []
        for index, (child, share) in enumerate(zip(self._children, shares)):
            try:
                parts.append(child.receive(what=f"samples {share[0]}-{share[-1]} of the batch"))
            except (ConvergenceError, SpiceError) as exc:
                errors.append(exc)
                if child.process.poll() is not None:  # dead: started afresh next time
                    self._children[index] = None
        self._children = [c for c in self._children if c is not None]
        if errors:
            raise errors[0]
        voltages = [np.concatenate(layer, axis=0) for layer in zip(*(p.voltages for p in parts))]
        return Solution(voltages=voltages, iterations=batch, residual=max(p.residual for p in parts),
                        converged=True, info=dict(parts[0].info, workers=len(shares)))

    def _folds(self, network: Network) -> bool:
        return self.fold_inputs and network.architecture.wire_resistance == 0

    def _ensure_loaded(self, network: Network):
        key = (network.fingerprint(), self._folds(network), tuple(sorted(self.options.as_dict().items())))
        if self.ngspice.loaded == key:
            return
        circuit = build_circuit(network, fold_inputs=self._folds(network), sense_sources=False)
        self.netlist_text = render(circuit, "ngspice", options=self.options.simulator_options(), analysis=False)
        self.ngspice.load(self.netlist_text, key)
        self._simulated = simulated_network(network)

    def solve(self, network: Network, inputs, output_currents=None, initial=None) -> Solution:
        """Solve one operating point per sample (``initial`` is ignored: ngspice starts cold)."""
        if self.workers > 1:
            x = np.atleast_2d(np.asarray(inputs, dtype=np.float64))
            n_out = network.layer_sizes[-1]
            currents = np.zeros((x.shape[0], n_out)) if output_currents is None else np.asarray(
                output_currents, float)
            if currents.shape != (x.shape[0], n_out):
                raise ValueError(f"output currents have shape {currents.shape}, expected {(x.shape[0], n_out)}")
            if x.shape[0] > 1:
                return self._parallel(network, x, currents)
        return self._solve_here(network, inputs, output_currents)

    def _solve_here(self, network: Network, inputs, output_currents=None) -> Solution:
        sizes = network.layer_sizes
        v_in = network.input_voltages(inputs)
        batch = v_in.shape[0]
        currents = np.zeros((batch, sizes[-1])) if output_currents is None else np.asarray(output_currents, float)
        if currents.shape != (batch, sizes[-1]):
            raise ValueError(f"output currents have shape {currents.shape}, expected {(batch, sizes[-1])}")
        self._simulated = simulated_network(network)
        folded = {}
        fold = self._folds(network)
        if fold:
            for (a, b), g in network.conductances.items():
                if a == 0:
                    folded[b] = v_in @ g
        names = [node(layer, i) for layer in range(1, len(sizes)) for i in range(sizes[layer])]
        def split(out):
            voltages, start = [v_in], 0
            for layer in range(1, len(sizes)):
                voltages.append(out[:, start:start + sizes[layer]])
                start += sizes[layer]
            return voltages

        if fold and self.sweep and batch > 1:
            try:
                voltages = split(self._solve_sweep(network, folded, currents, names))
                residual = check_solution(self._simulated, voltages, currents, self.options, what="ngspice sweep")
                return Solution(voltages=voltages, iterations=batch, residual=residual, converged=True,
                                info={"fold_inputs": fold, "sweep": True})
            except ConvergenceError:
                pass  # sample by sample below, with ngspice's convergence aids
        voltages = split(self._solve_each(network, v_in, folded, currents, names, fold))
        residual = check_solution(self._simulated, voltages, currents, self.options, what="ngspice")
        return Solution(voltages=voltages, iterations=batch, residual=residual, converged=True,
                        info={"fold_inputs": fold})

    def _solve_sweep(self, network, folded, currents, names) -> np.ndarray:
        """All samples of a batch in one DC sweep (see ``sweep`` in the class docstring)."""
        batch = currents.shape[0]
        if not all(np.all(np.isfinite(v)) for v in (currents, *folded.values())):
            raise ValueError("the folded input currents or output currents are not finite")
        # each sample starts from the previous one, so Newton stops one step earlier than from a cold start:
        # ask for 100x tighter voltages to keep the same KCL accuracy (about one more iteration per sample)
        options = self.options.simulator_options()
        options.update(reltol=options["reltol"] * self.sweep_tightening, vntol=options["vntol"] * self.sweep_tightening)
        key = (network.architecture, tuple(sorted(options.items())))
        template = self._templates.get(key)
        if template is None:
            template = self._templates[key] = _SweepNetlist(network, options)
        text = template.text(network, folded, currents)
        session = self.ngspice
        session.load(text, key=None)
        try:
            session.ng.clear_output()
            rc = session._command(f"dc vsweepx 0 {batch - 1} 1".encode("ascii"))
            low = session.output().lower()
            plot = session.ng.plot_names[0] if session.ng.plot_names else ""
            if rc != 0 or not plot.startswith("dc") or "no convergence" in low or "error" in low:
                raise ConvergenceError("ngspice DC sweep did not converge")
            out = np.stack([_vector_array(session, plot, n) for n in names], axis=1)
        finally:
            session.command("destroy all", check=False)
            session.loaded = None
        if out.shape[0] != batch:
            raise ConvergenceError(f"ngspice DC sweep returned {out.shape[0]} of {batch} samples")
        return out

    def _solve_each(self, network, v_in, folded, currents, names, fold) -> np.ndarray:
        """One ``op`` per sample on the loaded netlist, sources changed with ``alter``."""
        self._ensure_loaded(network)
        batch = v_in.shape[0]
        out = np.empty((batch, len(names)))
        session = self.ngspice
        for s in range(batch):
            if fold:
                for b, drive in folded.items():
                    for j, value in enumerate(drive[s]):
                        session.alter(f"if{b}_{j}", value)
            else:
                for i, value in enumerate(v_in[s]):
                    session.alter(f"vin{i}", value)
            for k, value in enumerate(currents[s]):
                session.alter(f"iout{k}", value)
            plot = session.op(what=f"sample {s} of the batch")
            out[s] = session.vectors(plot, names)
            session.command("destroy all", check=False)
        return out


class _SweepNetlist:
    """The DC-sweep netlist of one architecture, with its values refreshed from each network.

    Rendering the netlist anew for every batch (:func:`build_circuit` and :func:`render`) cost as much as
    ngspice's own work on a 1568-100-20 circuit.  The netlist is rendered once; each call rewrites only the
    resistor values of the crossbars and folded input conductances (by element name: ``r<a>_<b>_<i>_<j>``
    is ``1/g[a,b][i,j]``, ``rf<b>_<j>`` is ``1/sum_i g[0,b][i,j]``) and the ``pwl`` tables of the folded
    input currents and output currents.  On creation, the refreshed text is checked to be identical to a
    full rendering of the same network, so the two cannot drift apart.
    """

    def __init__(self, network: Network, options: dict):
        self.options = options
        circuit = build_circuit(network, fold_inputs=True, sense_sources=False)
        full = self._render(circuit, *self._drives(network))
        self.swept = [e for e in circuit.elements if e.name.startswith(("if", "iout"))]
        self.lines = self._lines_without(circuit, {e.name for e in self.swept})
        index = {ln.split(" ", 1)[0]: k for k, ln in enumerate(self.lines) if not ln.startswith(("*", "."))}
        self.slots = []  # (first line, conductance key, folded?) in the order build_circuit writes them
        for (a, b), g in network.conductances.items():
            names = [f"rf{b}_{j}" for j in range(g.shape[1])] if a == 0 else [
                f"r{a}_{b}_{i}_{j}" for i in range(g.shape[0]) for j in range(g.shape[1])]
            rows = [index[n] for n in names]
            if rows != list(range(rows[0], rows[0] + len(rows))):
                raise AssertionError(f"crossbar {a}->{b}: resistor lines are not contiguous in the netlist")
            self.slots.append((rows[0], (a, b), a == 0))
        self.prefixes = [ln.rsplit(" ", 1)[0] + " " for ln in self.lines]
        if self.text(network, *self._drives(network)) != full:
            raise AssertionError("the cached sweep netlist differs from a full rendering of the network")

    @staticmethod
    def _drives(network):
        sizes = network.layer_sizes
        rng = np.random.default_rng(0)  # any values: only used to compare two renderings
        folded = {b: rng.normal(size=(2, sizes[b])) for (a, b) in network.conductances if a == 0}
        return folded, rng.normal(size=(2, sizes[-1]))

    def _render(self, circuit, folded, currents) -> str:
        """The reference: a full rendering of ``circuit`` (from :func:`build_circuit`; slow)."""
        swept = self._tables_of(folded, currents)
        tables = [self._table(e, swept[e.name]) for e in circuit.elements if e.name in swept]
        lines = self._lines_without(circuit, swept)
        return "\n".join(lines[:-1] + tables + ["vsweepx sweepx 0 DC 0", lines[-1]])

    def _lines_without(self, circuit, names) -> list:
        """Netlist lines of ``circuit`` without the elements named in ``names`` (they become tables)."""
        kept = Circuit(circuit.title, [e for e in circuit.elements if e.name not in names], circuit.models,
                       circuit.parameters, circuit.comments, circuit.options)
        return render(kept, "ngspice", options=self.options, analysis=False).splitlines()

    @staticmethod
    def _tables_of(folded, currents) -> dict:
        swept = {f"if{b}_{j}": drive[:, j] for b, drive in folded.items() for j in range(drive.shape[1])}
        swept.update({f"iout{k}": currents[:, k] for k in range(currents.shape[1])})
        return swept

    @staticmethod
    def _table(element, values) -> str:
        # names and nodes are circuitprop's own; values are finite floats (checked by the caller)
        points = ", ".join(f"{k}.0, {v!r}" for k, v in enumerate(values.tolist()))
        return f"b{element.name} {element.nodes[0]} {element.nodes[1]} I=pwl(V(sweepx), {points})"

    def text(self, network, folded, currents) -> str:
        """The netlist of ``network`` with these folded input currents and output currents (amperes)."""
        lines = list(self.lines)
        for first, key, is_folded in self.slots:
            g = network.conductances[key]
            resistance = 1.0 / (g.sum(axis=0) if is_folded else g.ravel())
            if not np.all(np.isfinite(resistance)):
                raise NetworkError(f"crossbar {key}: a conductance gives a non-finite resistance")
            prefixes = self.prefixes[first:first + resistance.size]
            lines[first:first + resistance.size] = [p + repr(v) for p, v in zip(prefixes, resistance.tolist())]
        swept = self._tables_of(folded, currents)
        tables = [self._table(e, swept[e.name]) for e in self.swept]
        return "\n".join(lines[:-1] + tables + ["vsweepx sweepx 0 DC 0", lines[-1]])


class _SpiceChild:
    """A worker process with its own ngspice (``python -m circuitprop.backends.spice.worker``).

    A plain subprocess, not :mod:`multiprocessing`: it works the same from scripts without a
    ``__main__`` guard, Jupyter kernels and Dask workers.
    """

    def __init__(self, fold_inputs, options, sweep):
        import pickle
        import subprocess
        import sys
        import os
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


def simulated_network(network: Network) -> Network:
    """The network ngspice actually simulates: an ideal diode becomes its near-ideal SPICE diode.

    KCL residuals of ngspice's solutions are computed on this network (for an ideal diode the
    SPICE node sits a fraction of a millivolt beyond the clip, where the ideal law has no finite
    residual).  The conductance arrays are shared, not copied.
    """
    diode = network.architecture.diode
    if diode.kind != "ideal":
        return network
    spice_diode = DiodeModel("shockley", saturation_current=diode.saturation_current,
                             emission_coefficient=diode.spice_ideal_n, temperature=diode.temperature)
    twin = object.__new__(Network)
    twin.architecture = replace(network.architecture, diode=spice_diode)
    twin.conductances = network.conductances
    return twin


def check_solution(network: Network, voltages, currents, options: SpiceOptions, what: str) -> float:
    """Largest KCL residual (A) of a solution; raise :class:`ConvergenceError` if it is not a solution.

    Non-finite voltages, or a node whose residual exceeds ``options.residual_rtol`` times its
    current scale plus ``1000 * options.abstol``, mean the simulator returned something that does
    not satisfy Kirchhoff's current law: an error, never a silently wrong voltage.
    """
    if not all(np.all(np.isfinite(v)) for v in voltages):
        raise ConvergenceError(f"{what}: the solution has non-finite node voltages")
    residual = kcl_residual(network, voltages, currents)
    scale = current_scale(network, voltages, currents)
    floor = 1e3 * options.abstol
    for layer, (r, s) in enumerate(zip(residual, scale), start=1):
        bad = ~np.isfinite(r) | (np.abs(r) > options.residual_rtol * s + floor)
        if bad.any():
            sample, index = (int(i) for i in np.argwhere(bad)[0])
            raise ConvergenceError(
                f"{what}: the returned voltages violate KCL at node n{layer}_{index} of sample {sample}: "
                f"residual {r[sample, index]:.3g} A against a current scale of {s[sample, index]:.3g} A "
                f"(tolerance residual_rtol={options.residual_rtol:g} relative). The simulator did not converge "
                "to a steady state; check for extreme element values")
    return max_abs_residual(residual)


@contextmanager
def _circuit_op(circuit: Circuit, options: SpiceOptions | None):
    """Load ``circuit`` (rendered anew by circuitprop's writer), run ``op``, yield ``(session, plot)``, and
    always leave ngspice without the circuit and its results."""
    session = NgSpiceSession.get()
    opts = dict(getattr(circuit, "options", {}) or {})
    if options is not None:
        opts.update(options.simulator_options())
    session.load(render(circuit, "ngspice", options=opts or None, analysis=False), key=("circuit", id(circuit)))
    try:
        yield session, session.op(what=f"netlist {circuit.title!r}")
    finally:
        session.command("destroy all", check=False)
        session.loaded = None


def operating_point(circuit: Circuit, options: SpiceOptions | None = None) -> dict:
    """Node voltages (volts) of a parsed or generated :class:`Circuit`, solved by ngspice.

    The circuit is rendered anew by circuitprop's writer, so only safe cards
    reach ngspice.  Free parameters keep their values in the circuit.
    """
    names = circuit.node_names()
    with _circuit_op(circuit, options) as (session, plot):
        values = session.vectors(plot, names)
    if not np.all(np.isfinite(values)):
        bad = names[int(np.argmax(~np.isfinite(values)))]
        raise ConvergenceError(f"ngspice returned a non-finite voltage at node {bad!r} of {circuit.title!r}")
    return dict(zip(names, values))


def source_power(circuit: Circuit, options: SpiceOptions | None = None) -> float:
    """Total power (watts) the sources of ``circuit`` deliver at ngspice's operating point.

    Computed from ngspice's own node voltages and branch currents (``#branch`` vectors of the voltage
    sources and VCVS; current sources and CCCS from their values and ngspice's control currents), with
    ngspice's convention that a branch current flows into the ``+`` node through the element.  At a steady
    state it equals the power dissipated in resistors and diodes (:func:`circuitprop.energy.static_power`).
    """
    names = circuit.node_names()
    with _circuit_op(circuit, options) as (session, plot):
        volts = dict(zip(names, session.vectors(plot, names)))
        branch = {e.name: session.vector(plot, f"{e.name}#branch") for e in circuit.elements if e.kind in ("V", "E")}
    volts["0"] = 0.0
    delivered = 0.0
    for e in circuit.elements:
        drop = volts[e.nodes[0]] - volts[e.nodes[1]]
        if e.kind in ("V", "E"):
            delivered -= drop * branch[e.name]
        elif e.kind == "I":
            delivered -= drop * float(e.value)
        elif e.kind == "F":
            delivered -= drop * float(e.value) * branch[e.control]
    return delivered


def settling_time(network: Network, inputs, node_capacitance: float, tolerance: float = 1e-3,
                  options: SpiceOptions | None = None, max_time_constants: float = 200.0,
                  energy: bool = False):
    """Settling time (seconds) of the free phase of each input, from an ngspice transient.

    Every hidden and output node gets ``node_capacitance`` farads to ground and starts at 0 V; the inputs
    switch on at t = 0.  The settling time is the last instant at which any node differs from its DC
    operating point by more than ``tolerance`` volts.  The input crossbars are Norton-folded (exact in
    transients too: the capacitors sit on the hidden nodes, outside the crossbars), except with wire
    resistance, where they are written flat.  The simulated time
    is ``max_time_constants`` times the slowest node's ``C / G_total``; a transient that has not settled
    by then raises :class:`ConvergenceError`.

    With ``energy=True`` also returns the energy (joules) each inference takes from its sources, from
    switch-on to the settling time: the power dissipated in the resistors and diodes at ngspice's
    instantaneous node voltages (:func:`circuitprop.energy.static_power`, exact for memoryless elements),
    integrated over ngspice's time points (trapezoid rule), plus the energy ``C V**2 / 2`` then stored in
    the node capacitors.  Returns ``(times, energies)``.
    """
    session = NgSpiceSession.get()
    x = np.atleast_2d(np.asarray(inputs, dtype=np.float64))
    g_total = np.concatenate(list(node_conductances(network).values()))
    tau = node_capacitance / g_total.min()
    stop = max_time_constants * tau
    out = np.empty(x.shape[0])
    joules = np.empty(x.shape[0])
    opts = (options or SpiceOptions()).simulator_options()
    for s, row in enumerate(x):
        circuit = build_circuit(network, inputs=row, fold_inputs=network.architecture.wire_resistance == 0,
                                node_capacitance=node_capacitance)
        names = [n for n in circuit.node_names() if n.startswith("n") and not n.startswith("n0_")]
        session.load(render(circuit, "ngspice", options=opts, analysis=False), key=("tran", id(circuit)))
        try:
            dc = session.vectors(session.op(what=f"settling, sample {s}"), names)
            session.command("destroy all", check=False)
            session.command(f"tran {float(stop) / 2000!r} {float(stop)!r} uic")
            plot = session.ng.plot_names[0] if session.ng.plot_names else ""
            time = _vector_array(session, plot, "time")
            waves = np.stack([_vector_array(session, plot, n) for n in names], axis=1)
        finally:
            session.command("destroy all", check=False)
            session.loaded = None
        off = np.max(np.abs(waves - dc[None, :]), axis=1) > tolerance
        if off[-1]:
            raise ConvergenceError(f"sample {s}: the transient has not settled to {tolerance:g} V after "
                                   f"{stop:.3g} s ({max_time_constants:g} slowest time constants)")
        settle = np.nonzero(off)[0][-1] + 1 if off.any() else 0
        out[s] = time[settle]
        if energy:
            joules[s] = _transient_energy(network, row, names, time[:settle + 1], waves[:settle + 1],
                                          node_capacitance, static_power)
    return (out, joules) if energy else out


def _transient_energy(network, row, names, time, waves, capacitance, static_power) -> float:
    """Energy (J) drawn from the sources up to the last time point: dissipation integrated + capacitor energy."""
    sizes = network.layer_sizes
    state = [np.repeat(network.input_voltages(row[None, :]), len(time), axis=0)]
    state += [np.zeros((len(time), n)) for n in sizes[1:]]
    for column, name in enumerate(names):
        layer, index = (int(p) for p in name[1:].split("_"))
        state[layer][:, index] = waves[:, column]
    power = static_power(network, state)["total"]
    dissipated = float(np.sum(0.5 * (power[1:] + power[:-1]) * np.diff(time))) if len(time) > 1 else 0.0
    return dissipated + 0.5 * capacitance * float(np.sum(waves[-1] ** 2))


def _vector_array(session, plot, name) -> np.ndarray:
    info = session._vec(f"{plot}.{name}".encode("ascii"))
    if info == session._null or info.v_length < 1:
        raise SpiceError(f"ngspice has no vector {name!r} in plot {plot!r}")
    return np.array([info.v_realdata[i] for i in range(info.v_length)])


def operating_point_isolated(circuit: Circuit, options: SpiceOptions | None = None, timeout: float = 600) -> dict:
    """:func:`operating_point` in a child process, so that an ngspice crash cannot kill the caller.

    ngspice runs in-process as a shared library: a netlist that crashes it (ngspice 39 segfaults on a
    node named ``temper``) would take a Jupyter kernel or a Dask worker down with it.  Netlists read
    from files are solved here, by ``python -m circuitprop.backends.spice.child``.  Raises
    :class:`SpiceError` when the child dies or times out (``timeout`` seconds), and the child's own
    error (:class:`ConvergenceError` or :class:`SpiceError`) otherwise.
    """
    import pickle
    import subprocess
    import sys
    try:
        proc = subprocess.run([sys.executable, "-m", "circuitprop.backends.spice.child"],
                              input=pickle.dumps((circuit, options)), capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise SpiceError(f"ngspice did not finish the operating point of {circuit.title!r} in {timeout:g} s") from None
    if proc.returncode != 0 or not proc.stdout:
        code = proc.returncode
        how = f"signal {-code}" if code < 0 else f"exit status {code}"
        tail = proc.stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
        raise SpiceError(f"ngspice crashed ({how}) while solving {circuit.title!r}; the netlist was not solved "
                         f"(this process is unharmed){': ' + tail[0][:200] if tail[0] else ''}")
    message = pickle.loads(proc.stdout)  # written by our own child process
    if message[0] == "ok":
        return message[1]
    kind, text = message[1], message[2]
    error = {"ConvergenceError": ConvergenceError, "SpiceError": SpiceError}.get(kind, SpiceError)
    raise error(text if kind in ("ConvergenceError", "SpiceError") else f"{kind}: {text}")


def run_ngspice_batch(netlist_path, timeout: float = 600) -> dict:
    """Run the ``ngspice -b`` program on a netlist file circuitprop wrote; return ``{node: volts}``.

    An independent path to ngspice (a separate process, no shared library), used to check the
    shared-library backend and exported files. Only for netlists circuitprop wrote or read through
    :func:`circuitprop.netlist.read_netlist`: the file is handed to ngspice as it is.
    """
    import os
    import re
    import subprocess
    import tempfile
    from pathlib import Path
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "out.raw"
        proc = subprocess.run(["ngspice", "-b", "-r", str(raw), str(netlist_path)], capture_output=True,
                              text=True, env=dict(os.environ, SPICE_ASCIIRAWFILE="1"), timeout=timeout)
        if proc.returncode != 0 or not raw.exists():
            raise SpiceError(f"ngspice -b {netlist_path} failed: {(proc.stderr or proc.stdout).strip()[-400:]}")
        lines = raw.read_text().splitlines()
    names, values, mode = [], [], None
    for line in lines:
        if line.startswith(("Variables:", "Values:")):
            mode = line[:-1]
            continue
        if mode == "Variables":
            names.append(line.split()[1])
        elif mode == "Values":
            values.append(float(line.split()[-1]))
    return {m.group(1): v for n, v in zip(names, values) if (m := re.match(r"^v\((.*)\)$", n))}
