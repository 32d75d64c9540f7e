"""Analyses beyond the training loop: operating points of netlists (in-process or in a crash-proof child
process), source power, settling time and transient energy, and an independent ngspice run of a netlist file."""
from __future__ import annotations

import math
import os
import pickle
import re
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ...model import DiodeModel, Network
from ...model.energy import diode_current, node_conductances, static_power
from ...netlist.circuit import Circuit, Param, build_circuit
from ...netlist.writers import render
from ..base import ConvergenceError
from .ngspice import NgSpiceSession, SpiceError, SpiceOptions, vector_array


def _effective_options(circuit: Circuit, options: SpiceOptions | None) -> dict:
    """The ngspice ``.options`` of a solve: circuitprop's tolerances, then the netlist's own ``.options``
    (within the reader's bounds), then the caller's."""
    opts = SpiceOptions().simulator_options() if options is None else {}
    opts.update(getattr(circuit, "options", {}) or {})
    if options is not None:
        opts.update(options.simulator_options())
    return opts


@contextmanager
def _circuit_op(circuit: Circuit, options: SpiceOptions | None):
    """Load ``circuit`` (rendered anew by circuitprop's writer), run ``op``, yield ``(session, plot)``, and
    always leave ngspice without the circuit and its results."""
    session = NgSpiceSession.get()
    opts = _effective_options(circuit, options)
    session.load(render(circuit, "ngspice", options=opts or None, analysis=False), key=("circuit", id(circuit)))
    try:
        yield session, session.op(what=f"netlist {circuit.title!r}")
    finally:
        session.command("destroy all", check=False)
        session.loaded = None


def operating_point(circuit: Circuit, options: SpiceOptions | None = None) -> dict:
    """Node voltages (volts) of a parsed or generated :class:`Circuit`, solved by ngspice and checked.

    The circuit is rendered anew by circuitprop's writer, so only safe cards reach ngspice.  Free parameters
    keep their values in the circuit.  Every node's KCL residual is recomputed from ngspice's voltages and
    branch currents (:func:`circuit_residual`); a node whose residual exceeds ``residual_rtol`` of its current
    scale (plus ``1000 * abstol``) raises :class:`ConvergenceError` instead of returning a wrong voltage.
    """
    names = circuit.node_names()
    with _circuit_op(circuit, options) as (session, plot):
        values = session.vectors(plot, names)
        branch = {e.name: session.vector(plot, f"{e.name}#branch") for e in circuit.elements if e.kind in ("V", "E")}
    if not np.all(np.isfinite(values)):
        bad = names[int(np.argmax(~np.isfinite(values)))]
        raise ConvergenceError(f"ngspice returned a non-finite voltage at node {bad!r} of {circuit.title!r}")
    volts = dict(zip(names, values))
    check = options or SpiceOptions()
    residual, scale = circuit_residual(circuit, volts, branch, gmin=_effective_options(circuit, options)["gmin"])
    for name in names:
        r, c = residual[name], scale[name]
        if not (np.isfinite(r) and abs(r) <= check.residual_rtol * c + 1e3 * check.abstol):
            raise ConvergenceError(
                f"ngspice's operating point of {circuit.title!r} violates KCL at node {name!r}: residual {r:.3g} A "
                f"against a current scale of {c:.3g} A (tolerance residual_rtol={check.residual_rtol:g} relative). "
                "ngspice stopped short of the steady state; check for extreme element values")
    return volts


def circuit_residual(circuit: Circuit, volts: dict, branch: dict, gmin: float = 0.0) -> tuple:
    """KCL at every node of ``circuit``: ``({node: net current leaving it}, {node: sum of |currents|})``, amperes.

    From the node voltages (``volts``) and the branch currents of the voltage sources and VCVS (``branch``,
    flowing from the ``+`` node through the element, ngspice's convention): resistors by Ohm's law, current
    sources and CCCS from their values, diodes as ngspice models them: the Shockley law with the series
    resistance, SPICE's reverse-bias law ``-IS * (1 + (3 N V_T / (e v))**3)`` below ``-3 N V_T``, and ``gmin``
    (siemens) across the junction.
    """
    v = dict(volts, **{"0": 0.0})
    net = {n: 0.0 for n in v}
    scale = {n: 0.0 for n in v}
    params = circuit.parameters

    def value(e):
        return params[e.value.name] * e.value.scale if isinstance(e.value, Param) else float(e.value)

    def leave(a, b, current):
        net[a] += current
        net[b] -= current
        scale[a] += abs(current)
        scale[b] += abs(current)

    for e in circuit.elements:
        a, b = e.nodes[0], e.nodes[1]
        if e.kind == "R":
            leave(a, b, (v[a] - v[b]) / value(e))
        elif e.kind == "I":
            leave(a, b, value(e))
        elif e.kind in ("V", "E"):
            leave(a, b, branch[e.name])
        elif e.kind == "F":
            leave(a, b, value(e) * branch[e.control])
        elif e.kind == "D":
            card = circuit.models[e.model]
            diode = DiodeModel(kind="shockley", saturation_current=card.get("IS", 1e-14),
                               emission_coefficient=card.get("N", 1.0), series_resistance=card.get("RS", 0.0))
            drop = v[a] - v[b]
            nvt = diode.emission_coefficient * diode.thermal_voltage
            if drop < -3.0 * nvt:  # SPICE's reverse-bias law (no breakdown voltage given)
                current = -diode.saturation_current * (1.0 + (3.0 * nvt / (math.e * drop)) ** 3)
            else:
                current = float(diode_current(drop, diode)[0])
            leave(a, b, current + gmin * drop)
    return net, scale


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
            time = vector_array(session, plot, "time")
            waves = np.stack([vector_array(session, plot, n) for n in names], axis=1)
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


def operating_point_isolated(circuit: Circuit, options: SpiceOptions | None = None, timeout: float = 600) -> dict:
    """:func:`operating_point` in a child process, so that an ngspice crash cannot kill the caller.

    ngspice runs in-process as a shared library: a netlist that crashes it (ngspice 39 segfaults on a
    node named ``temper``) would take a Jupyter kernel or a Dask worker down with it.  Netlists read
    from files are solved here, by ``python -m circuitprop.backends.spice.child``.  Raises
    :class:`SpiceError` when the child dies or times out (``timeout`` seconds), and the child's own
    error (:class:`ConvergenceError` or :class:`SpiceError`) otherwise.
    """
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
