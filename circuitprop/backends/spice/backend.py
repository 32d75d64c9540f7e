"""ngspice backend, through PySpice in shared-library mode.

A network is rendered and loaded once per set of conductances; each operating
point then only changes source values with ``alter`` and runs ``op``, so the
netlist is never re-rendered or re-parsed between samples or phases.  With
``fold_inputs=True`` (the default for training loops) the input crossbars are
replaced by their Norton equivalents, which is exact for linear resistors and
ideal input sources and makes each ``op`` about 1000x cheaper on MNIST-size
circuits (BENCHMARKS.md, "ngspice operating points").  Use ``fold_inputs=False`` to simulate the
full flat netlist that is exported.  In both, each backward amplifier (CCCS) senses
its forward amplifier's (VCVS) branch current directly, which only ngspice accepts
(``build_circuit(sense_sources=False)``): the same circuit as the exported one, whose
0 V sense sources every dialect understands, with two equations fewer per amplifier.
"""
from __future__ import annotations

import numpy as np

from ...model import DiodeModel, Network, NetworkError, replace
from ...model.energy import current_scale, kcl_residual, max_abs_residual
from ...netlist.circuit import Circuit, build_circuit, node
from ...netlist.writers import render
from ..base import ConvergenceError, Solution, SolveSession
from .ngspice import NgSpiceSession, SpiceError, SpiceOptions, vector_array
from .pool import SpiceWorker


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
                self._children[index] = SpiceWorker(self.fold_inputs, self.options, self.sweep)
        while len(self._children) < len(shares):
            self._children.append(SpiceWorker(self.fold_inputs, self.options, self.sweep))
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
            out = np.stack([vector_array(session, plot, n) for n in names], axis=1)
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
            g = np.asarray(network.conductances[key], dtype=np.float64)  # float32 networks: their exact values
            resistance = 1.0 / (g.sum(axis=0) if is_folded else g.ravel())
            if not np.all(np.isfinite(resistance)):
                raise NetworkError(f"crossbar {key}: a conductance gives a non-finite resistance")
            prefixes = self.prefixes[first:first + resistance.size]
            lines[first:first + resistance.size] = [p + repr(v) for p, v in zip(prefixes, resistance.tolist())]
        swept = self._tables_of(folded, currents)
        tables = [self._table(e, swept[e.name]) for e in self.swept]
        return "\n".join(lines[:-1] + tables + ["vsweepx sweepx 0 DC 0", lines[-1]])


def simulated_network(network: Network) -> Network:
    """The network ngspice actually simulates: an ideal diode becomes its near-ideal SPICE diode.

    KCL residuals of ngspice's solutions are computed on this network (for an ideal diode the
    SPICE node sits a fraction of a millivolt beyond the clip, where the ideal law has no finite
    residual), in float64: the conductance arrays are shared when they are float64, else copied to
    float64 (sums of a float32 crossbar's columns carry float32 rounding, about 1e-6 of the current scale
    at 1,000 rows, which the residual check would take for a simulator that did not converge).
    """
    diode = network.architecture.diode
    if any(g.dtype != np.float64 for g in network.conductances.values()):
        network = Network(network.architecture, {k: np.asarray(g, dtype=np.float64)
                                                 for k, g in network.conductances.items()})
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
