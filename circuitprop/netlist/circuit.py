"""A flat list of circuit elements derived from a :class:`~circuitprop.network.Network`.

Every dialect writer renders this one list, so the element names, nodes and
values are decided in exactly one place.  Names are built from integers only
and values are checked finite floats: nothing a user provides can reach a
netlist line except through :func:`safe_comment`.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np

from ..model import Network, NetworkError
from ..model.wires import line_orders

_SAFE_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_SAFE_NODE = re.compile(r"^[a-z0-9_]+$")


def check_name(name: str, node: bool = False) -> str:
    """An element name (lower-case letters, digits and '_', starting with a letter) or, with ``node``, a node
    name (the same characters, digits first allowed: SPICE's ``1``, ``2``): nothing else reaches a netlist."""
    if not isinstance(name, str) or not (_SAFE_NODE if node else _SAFE_NAME).match(name):
        raise NetworkError(f"unsafe {'node ' if node else ''}name for a netlist: {name!r}")
    return name


def fmt(value) -> str:
    """Format a finite real number for any SPICE dialect (round-trip exact)."""
    value = float(value)
    if not math.isfinite(value):
        raise NetworkError(f"non-finite value {value!r} cannot be written to a netlist")
    return repr(value)


def safe_comment(text: str) -> str:
    """Make ``text`` safe to put after a comment marker: printable ASCII, one line."""
    text = "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in str(text))
    return text[:200]


@dataclass(frozen=True)
class Param:
    """A source value given as ``scale * parameter`` (for netlists with free inputs)."""

    name: str
    scale: float = 1.0


@dataclass(frozen=True)
class Element:
    """One two-terminal or controlled element.

    ``kind`` is one of ``R`` (resistor, ``value`` ohms), ``C`` (capacitor, farads), ``V`` (DC voltage
    source, volts), ``I`` (DC current source, amperes, flowing from ``nodes[0]``
    through the source into ``nodes[1]``), ``D`` (diode, anode then cathode,
    ``model`` names the model), ``E`` (VCVS: out+, out-, ctrl+, ctrl-, gain),
    ``F`` (CCCS: out+, out-, ``control`` = name of the sensing V source, gain; in netlists built with
    ``sense_sources=False``, for ngspice only, the controlling element is the VCVS itself).
    """

    kind: str
    name: str
    nodes: tuple
    value: object = 0.0
    model: str = ""
    control: str = ""


@dataclass
class Circuit:
    """Elements plus diode models and free parameters, in a fixed order."""

    title: str
    elements: list = field(default_factory=list)
    models: dict = field(default_factory=dict)
    parameters: dict = field(default_factory=dict)
    comments: list = field(default_factory=list)
    options: dict = field(default_factory=dict)

    def add(self, kind, name, nodes, value=0.0, model="", control=""):
        check_name(name)
        for n in nodes:
            if n != "0":
                check_name(n, node=True)
        if control:
            check_name(control)
        if not isinstance(value, Param):
            value = float(value)
            if not math.isfinite(value):
                raise NetworkError(f"element {name}: non-finite value")
        self.elements.append(Element(kind, name, tuple(nodes), value, model, control))

    def extend(self, kind, names, nodes, values):
        """Add many elements of one kind at once (``add`` for each, with the same checks, vectorised)."""
        names, nodes = list(names), [tuple(n) for n in nodes]
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        if not (len(names) == len(nodes) == values.size):
            raise NetworkError(f"extend: {len(names)} names, {len(nodes)} node pairs and {values.size} values")
        for word in dict.fromkeys(names):
            check_name(word)
        for word in dict.fromkeys(n for pair in nodes for n in pair if n != "0"):
            check_name(word, node=True)
        if not np.all(np.isfinite(values)):
            bad = names[int(np.argmax(~np.isfinite(values)))]
            raise NetworkError(f"element {bad}: non-finite value")
        self.elements.extend(Element(kind, name, pair, value) for name, pair, value
                             in zip(names, nodes, values.tolist()))

    def node_names(self) -> list:
        seen = dict.fromkeys(n for e in self.elements for n in e.nodes if n != "0")
        return list(seen)


def node(layer: int, index: int) -> str:
    return f"n{layer}_{index}"


def build_circuit(network: Network, inputs=None, output_currents=None, *, fold_inputs: bool = False,
                  input_parameters: bool = False, node_capacitance: float | None = None,
                  sense_sources: bool = True) -> Circuit:
    """Derive the element list of ``network``.

    Parameters
    ----------
    network : Network
    inputs : array_like, optional
        Feature vector ``x`` (n_features,); zeros when omitted.
    output_currents : array_like, optional
        Currents (A) injected into the output nodes (n_out,); zeros when omitted.
    fold_inputs : bool
        Replace each crossbar from the input layer by its Norton equivalent (one
        current source and one conductance to ground per node).  Exact for
        linear input resistors and ideal input sources; much faster in SPICE.
        Not available with wire resistance (the lines couple the column nodes, so
        the equivalent is not one element per node).
    input_parameters : bool
        Leave the inputs as netlist parameters ``x_0, x_1, ...`` (value 0)
        instead of numbers.  Not combinable with ``fold_inputs``.
    node_capacitance : float, optional
        Farads from every hidden and output node to ground (for transients; DC is unchanged).
    sense_sources : bool
        Each backward amplifier (CCCS) senses the current its forward amplifier (VCVS) delivers through a
        0 V source, as every SPICE dialect requires.  ``False`` (ngspice only; used by
        :class:`~circuitprop.backends.spice.SpiceBackend`) lets the CCCS sense the VCVS's own branch
        current instead, with the gain negated (ngspice's branch current flows into the + node): the
        same circuit with one node and one branch fewer per amplifier, about 30 % faster to solve.
    """
    arch = network.architecture
    sizes = network.layer_sizes
    if input_parameters and fold_inputs:
        raise NetworkError("input_parameters and fold_inputs cannot be combined")
    wire = arch.wire_resistance
    if fold_inputs and wire > 0:
        raise NetworkError("fold_inputs is not available with wire resistance: the word and bit lines couple "
                           "the nodes of a layer; write the crossbars flat (fold_inputs=False)")
    x = np.zeros(arch.n_features) if inputs is None else np.asarray(inputs, dtype=np.float64).reshape(-1)
    v_in = network.input_voltages(x[None, :])[0]
    i_out = np.zeros(sizes[-1]) if output_currents is None else np.asarray(output_currents, float).reshape(-1)
    if i_out.shape != (sizes[-1],):
        raise NetworkError(f"output currents have shape {i_out.shape}, expected ({sizes[-1]},)")

    circuit = Circuit(title=safe_comment(arch.name))
    circuit.comments += [
        "generated by circuitprop from a network description; do not edit by hand",
        "layers (circuit nodes): " + "-".join(str(s) for s in sizes),
        "conductances are in siemens in the network; resistors here are written in ohms (R = 1/G)",
        "node n<layer>_<index>: layer 0 = inputs, last layer = outputs",
    ]
    if fold_inputs:
        circuit.comments.append("input crossbars folded into Norton equivalents (current source + conductance)")
    if wire > 0:
        circuit.comments += [
            f"wire resistance {fmt(wire)} ohm per cell on every word and bit line: row i is driven at cell "
            "(i,0), column j is read after row m-1",
            f"line layout {safe_comment(arch.wire_layout)}; line nodes wr<a>_<b>_<p>_<q> (word line) and "
            "wc<a>_<b>_<p>_<q> (bit line) of crossbar a->b at physical row p, column q",
        ]

    # inputs
    n_feat = arch.n_features
    if not fold_inputs:
        for i in range(sizes[0]):
            if input_parameters and i < n_feat * (2 if arch.doubled_inputs else 1):
                k = i % n_feat
                sign = 1.0 if i < n_feat else -1.0
                circuit.parameters[f"x_{k}"] = 0.0
                value = Param(f"x_{k}", sign * arch.input_gain)
            else:
                value = v_in[i]
            circuit.add("V", f"vin{i}", (node(0, i), "0"), value)

    # hidden neurons and amplifiers
    diode_params = arch.diode.spice_parameters
    circuit.models["dneuron"] = diode_params
    for layer, h in enumerate(arch.hidden, start=1):
        circuit.add("V", f"vhi{layer}", (f"hi{layer}", "0"), h.v_high)
        circuit.add("V", f"vlo{layer}", (f"lo{layer}", "0"), h.v_low)
        for i in range(h.size):
            circuit.add("D", f"dh{layer}_{i}", (node(layer, i), f"hi{layer}"), model="dneuron")
            circuit.add("D", f"dl{layer}_{i}", (f"lo{layer}", node(layer, i)), model="dneuron")
        if h.amplifier_gain is not None:
            for i in range(h.size):
                circuit.add("E", f"e{layer}_{i}", (f"a{layer}_{i}", "0", node(layer, i), "0"), h.forward_gain)
                if sense_sources:
                    circuit.add("V", f"vs{layer}_{i}", (f"a{layer}_{i}", f"s{layer}_{i}"), 0.0)
                    circuit.add("F", f"f{layer}_{i}", (node(layer, i), "0"), h.current_gain,
                                control=f"vs{layer}_{i}")
                else:
                    circuit.add("F", f"f{layer}_{i}", (node(layer, i), "0"), -h.current_gain,
                                control=f"e{layer}_{i}")
        if h.inverted_copy:  # the amplifier's second output, -A V, and its CCCS of the opposite sign
            for i in range(h.size):
                circuit.add("E", f"en{layer}_{i}", (f"an{layer}_{i}", "0", node(layer, i), "0"), -h.forward_gain)
                if sense_sources:
                    circuit.add("V", f"vsn{layer}_{i}", (f"an{layer}_{i}", f"sn{layer}_{i}"), 0.0)
                    circuit.add("F", f"fn{layer}_{i}", (node(layer, i), "0"), -h.current_gain,
                                control=f"vsn{layer}_{i}")
                else:
                    circuit.add("F", f"fn{layer}_{i}", (node(layer, i), "0"), h.current_gain,
                                control=f"en{layer}_{i}")

    def terminal(layer, i):
        if 1 <= layer <= len(arch.hidden) and arch.hidden[layer - 1].amplifier_gain is not None:
            n = sizes[layer]
            if i >= n:  # a row of the inverted copy
                return f"sn{layer}_{i - n}" if sense_sources else f"an{layer}_{i - n}"
            return f"s{layer}_{i}" if sense_sources else f"a{layer}_{i}"
        return node(layer, i)

    # crossbars
    for (a, b), g in network.conductances.items():
        g = np.asarray(g, dtype=np.float64)  # a float32 network's values, exactly; resistances and sums in float64
        if a == 0 and fold_inputs:
            total = g.sum(axis=0)
            current = v_in @ g
            for j in range(sizes[b]):
                circuit.add("R", f"rf{b}_{j}", (node(b, j), "0"), 1.0 / total[j])
                circuit.add("I", f"if{b}_{j}", ("0", node(b, j)), current[j])
            continue
        resistance = 1.0 / g
        if wire > 0:
            _add_wired_crossbar(circuit, a, b, resistance, wire, [terminal(a, i) for i in range(sizes[a])],
                                [node(b, j) for j in range(sizes[b])], *line_orders(arch, (a, b)))
            continue
        rows, cols = range(g.shape[0]), range(sizes[b])
        sources, sinks = [terminal(a, i) for i in rows], [node(b, j) for j in cols]
        circuit.extend("R", [f"r{a}_{b}_{i}_{j}" for i in rows for j in cols],
                       [(src, sink) for src in sources for sink in sinks], resistance)

    # outputs with nudging current sources
    last = len(sizes) - 1
    for k in range(sizes[-1]):
        circuit.add("I", f"iout{k}", ("0", node(last, k)), i_out[k])
    if node_capacitance is not None:
        if not (math.isfinite(node_capacitance) and node_capacitance > 0):
            raise NetworkError(f"node capacitance must be finite and > 0 F, got {node_capacitance!r}")
        for layer in range(1, len(sizes)):
            for i in range(sizes[layer]):
                circuit.add("C", f"c{layer}_{i}", (node(layer, i), "0"), node_capacitance)
    return circuit


def _add_wired_crossbar(circuit: Circuit, a: int, b: int, resistance, wire: float, row_ports, column_ports,
                        row_order, column_order):
    """Cells plus one wire segment per cell on each word line and bit line (layout: :mod:`circuitprop.wires`).

    Line nodes are named by physical position (``p`` from the top, ``q`` from the drivers); cell ``i, j``
    keeps the name of its conductance in node order."""
    m, n = resistance.shape
    for p in range(m):
        i = int(row_order[p])
        for q in range(n):
            j = int(column_order[q])
            row, col = f"wr{a}_{b}_{p}_{q}", f"wc{a}_{b}_{p}_{q}"
            circuit.add("R", f"r{a}_{b}_{i}_{j}", (row, col), resistance[i, j])
            left = row_ports[i] if q == 0 else f"wr{a}_{b}_{p}_{q - 1}"
            circuit.add("R", f"rwr{a}_{b}_{p}_{q}", (left, row), wire)
            below = column_ports[j] if p == m - 1 else f"wc{a}_{b}_{p + 1}_{q}"
            circuit.add("R", f"rwc{a}_{b}_{p}_{q}", (col, below), wire)
