"""A safe reader for SPICE netlists.

It accepts the subset circuitprop writes plus plain R, D, V, I, E and F cards,
``.model`` (diodes), ``.param`` (numbers), ``.options`` (numbers), ``.op``,
``.title`` and ``.end``.  Everything that can run commands or read other files
(``.control`` blocks, ``shell``, ``.include``/``.lib``, ``.exec``, behavioural
sources, subcircuits, ...) is refused with an error naming the line.  The
result is a :class:`~circuitprop.netlist.circuit.Circuit`, which is rendered
again from scratch before any simulator sees it: the file's own text never is.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

import networkx as nx

from ..model import MAX_CONDUCTANCE, MAX_GAIN, MAX_VOLTAGE
from .circuit import Circuit, Param

_SUFFIX = {"t": 1e12, "g": 1e9, "meg": 1e6, "k": 1e3, "mil": 25.4e-6, "m": 1e-3, "u": 1e-6,
           "n": 1e-9, "p": 1e-12, "f": 1e-15}
_NUMBER = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?)(meg|mil|[tgkmunpf])?[a-z]*$")
_PARAM_EXPR = re.compile(r"^\{\s*(?:([+-]?[0-9.e+-]+)\s*\*\s*)?([a-z_][a-z0-9_]*)\s*\}$")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
#: Node names: SPICE allows digits first (``1``, ``2``), which writers emit as they are.
_NODE = re.compile(r"^[a-z0-9_]+$")
#: Names ngspice takes for the ground node besides ``0``.
GROUND_ALIASES = {"0", "gnd"}

#: Dot commands refused because they can execute commands or read arbitrary files.
_DANGEROUS = {".control", ".endc", ".include", ".inc", ".lib", ".exec", ".endl", ".func", ".csparam",
              ".shell", ".system", ".if", ".elseif", ".else", ".endif", ".ahdl", ".hdl", ".load"}
_ALLOWED_DOT = {".model", ".param", ".options", ".option", ".op", ".end", ".title"}
#: Names ngspice reserves for special variables; a node called ``temper`` crashes ngspice 39.
RESERVED_NAMES = {"temper", "hertz", "time"}
#: Longest line (characters) read; longer ones are refused without being echoed.
MAX_LINE = 10_000
#: Ranges of diode model parameters accepted: IS in amperes, N, RS in ohms.
DIODE_LIMITS = {"IS": (0.0, 1.0, True), "N": (0.0, 100.0, True), "RS": (0.0, 1e9, False)}
#: Largest magnitude of a current source, amperes.
MAX_CURRENT = 1e3
#: ``.options`` a netlist may set, with the range accepted (inclusive): tolerances no looser than ngspice's
#: defaults allow, iteration limits that still converge.  Options that change the circuit itself (``rshunt``,
#: ``temp``, ``tnom``, ``gmin`` above 1e-9 S, ...) or anything else are refused: circuitprop checks every
#: solution against KCL for the circuit as written.
OPTION_LIMITS = {"reltol": (1e-12, 1e-3), "abstol": (1e-18, 1e-6), "vntol": (1e-15, 1e-3), "gmin": (0.0, 1e-9),
                 "itl1": (10, 1e6), "itl2": (10, 1e6), "gminsteps": (0, 1000), "srcsteps": (0, 1000)}


def _show(text: str, width: int = 40) -> str:
    """A token or line for an error message, cut to ``width`` characters."""
    text = str(text)
    return repr(text) if len(text) <= width else repr(text[:width]) + f"... ({len(text)} characters)"


class NetlistError(ValueError):
    """A netlist that cannot be read safely or correctly; names the line."""


def _number(token: str, where: str, params: dict) -> float | Param:
    token = token.lower()
    m = _NUMBER.match(token)
    if m:
        value = float(m.group(1)) * _SUFFIX.get(m.group(2) or "", 1.0)
        if not math.isfinite(value):
            raise NetlistError(f"{where}: {_show(token)} is not a finite number")
        return value
    m = _PARAM_EXPR.match(token)
    if m:
        name = m.group(2)
        if name not in params:
            raise NetlistError(f"{where}: unknown parameter {name!r}")
        try:
            scale = float(m.group(1)) if m.group(1) else 1.0
        except ValueError:
            raise NetlistError(f"{where}: scale in {_show(token)} is not a number") from None
        if not math.isfinite(scale):
            raise NetlistError(f"{where}: scale in {_show(token)} is not a finite number")
        return Param(name, scale)
    raise NetlistError(f"{where}: {_show(token)} is not a number (expressions other than "
                       "{scale*param} are not supported)")


def _node(token: str, where: str) -> str:
    """A node name: letters, digits and '_' (digits first allowed, as in ``v1 1 0 1``); ground aliases -> ``0``."""
    token = token.lower()
    if token in GROUND_ALIASES or (token.isdigit() and int(token) == 0):
        return "0"
    if not _NODE.match(token):
        raise NetlistError(f"{where}: node name {_show(token)} has characters other than letters, digits and '_'")
    return _name(token, where, node=True)


def _name(token: str, where: str, node: bool = False) -> str:
    token = token.lower()
    if not node and token in GROUND_ALIASES:
        return "0"
    if not node and not _NAME.match(token):
        raise NetlistError(f"{where}: name {_show(token)} must start with a letter and hold only letters, digits "
                           "and '_'")
    if token in RESERVED_NAMES:
        raise NetlistError(f"{where}: {token!r} is a name ngspice reserves ({', '.join(sorted(RESERVED_NAMES))}); "
                           "rename the node or element")
    if len(token) > 64:
        raise NetlistError(f"{where}: name {_show(token)} is longer than 64 characters")
    return token


def _logical_lines(text: str, source: str = "<netlist>"):
    """Yield ``(line_number, text)`` with continuation lines joined and comments removed."""
    current, start = None, 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split(";", 1)[0]
        if current is not None and len(current) > MAX_LINE:
            raise NetlistError(f"{source}:{start}: the card is longer than {MAX_LINE} characters (with "
                               "continuations)")
        line = re.split(r"\s\$\s", line, maxsplit=1)[0].strip()
        if number == 1:
            continue  # SPICE: the first line is the title, never a card
        if not line or line.startswith("*"):
            continue
        if line.startswith("+"):
            if current is None:
                raise NetlistError(f"{source}:{number}: continuation '+' with no line before it")
            current += " " + line[1:]
            continue
        if current is not None:
            yield start, current
        current, start = line, number
    if current is not None:
        yield start, current


def parse_netlist(text: str, source: str = "<netlist>") -> Circuit:
    """Parse netlist ``text`` into a :class:`Circuit`, refusing anything executable."""
    if not isinstance(text, str):
        raise NetlistError(f"{source}: netlist must be text")
    if "\x00" in text:
        raise NetlistError(f"{source}: binary data (NUL byte) in netlist")
    lines = text.splitlines()
    for number, raw in enumerate(lines, start=1):
        if len(raw) > MAX_LINE:
            raise NetlistError(f"{source}:{number}: line is {len(raw)} characters long (limit {MAX_LINE}); it starts "
                               f"with {_show(raw.strip(), 40)}")
    title = lines[0].lstrip("* ").strip() if lines else ""
    circuit = Circuit(title=title or source)
    params: dict = {}
    options: dict = {}
    # security screen over every line, before anything else, comments aside
    for number, raw in enumerate(lines, start=1):
        if number == 1:
            continue
        words = raw.strip().lower().split()
        if words and not words[0].startswith("*"):
            first = words[0]
            if first in _DANGEROUS or first in ("shell", "exec", "source", "sh", "system") or first.startswith(
                    "pre_"):
                raise NetlistError(f"{source}:{number}: refused {_show(first)}: netlists with executable "
                                   "content (.control blocks, shell commands, includes) are not run")
    ended = False
    elements = []  # parsed once every .param is known (SPICE reads .param wherever it stands)
    for number, line in _logical_lines(text, source):
        where = f"{source}:{number}"
        if ended:
            raise NetlistError(f"{where}: text after .end")
        tokens = line.replace("(", " ( ").replace(")", " ) ").replace("=", " = ").split()
        head = tokens[0].lower()
        if head.startswith("."):
            if head not in _ALLOWED_DOT:
                raise NetlistError(f"{where}: unsupported command {_show(head)} (allowed: "
                                   f"{', '.join(sorted(_ALLOWED_DOT))})")
            if head in (".end", ".op") and len(tokens) > 1:
                raise NetlistError(f"{where}: {head} takes no arguments, got {_show(' '.join(tokens[1:]))}")
            if head == ".end":
                ended = True
            elif head == ".param":
                for key, value in _pairs(tokens[1:], where):
                    number = _number(value, where, params)  # an earlier parameter may be named: {2*p0}
                    if isinstance(number, Param):
                        number = params[number.name] * number.scale
                    name = _name(key, where)
                    params[name] = circuit.parameters[name] = number
            elif head in (".options", ".option"):
                for key, value in _pairs(tokens[1:], where):
                    options[_option(key, value, where)] = _number(value, where, {})
            elif head == ".model":
                _parse_model(tokens, circuit, where)
            elif head == ".title":
                circuit.title = " ".join(tokens[1:])
            continue
        elements.append((tokens, where))
    for tokens, where in elements:
        _parse_element(tokens, circuit, where, params)
    _check_references(circuit, source)
    _check_values(circuit, source)
    _check_dc_paths(circuit, source)
    circuit.options = options
    return circuit


def _option(key: str, value: str, where: str) -> str:
    """An accepted ``.options`` name whose value lies in :data:`OPTION_LIMITS`."""
    key = key.lower()
    if key not in OPTION_LIMITS:
        raise NetlistError(f"{where}: .options {_show(key)} is not accepted (it may change the circuit or the "
                           f"check of its solution); accepted: {', '.join(OPTION_LIMITS)}")
    number = _number(value, where, {})
    low, high = OPTION_LIMITS[key]
    if not low <= number <= high:
        raise NetlistError(f"{where}: .options {key}={number:g} is outside [{low:g}, {high:g}]: a looser setting "
                           "lets ngspice stop far from the circuit's steady state")
    return key


def _pairs(tokens, where):
    tokens = [t for t in tokens if t not in ("(", ")")]
    pairs = []
    i = 0
    while i < len(tokens):
        if i + 2 < len(tokens) and tokens[i + 1] == "=":
            pairs.append((tokens[i], tokens[i + 2]))
            i += 3
        else:
            raise NetlistError(f"{where}: expected name=value, got {_show(' '.join(tokens[i:i + 3]))}")
    return pairs


def _parse_model(tokens, circuit, where):
    if len(tokens) < 3:
        raise NetlistError(f"{where}: .model needs a name and a type")
    name = _name(tokens[1], where)
    kind = tokens[2].lower()
    if kind != "d":
        raise NetlistError(f"{where}: model type {_show(kind)} is not supported (only diode models 'D')")
    known = {"is", "n", "rs"}
    params = {}
    for key, value in _pairs(tokens[3:], where):
        key = key.lower()
        if key not in known:
            raise NetlistError(f"{where}: diode parameter {_show(key)} is not supported (known: IS, N, RS)")
        v = _number(value, where, {})
        low, high, open_low = DIODE_LIMITS[key.upper()]
        if not (low < v <= high if open_low else low <= v <= high):
            unit = {"IS": " A", "RS": " ohm"}.get(key.upper(), "")
            raise NetlistError(f"{where}: diode model {name!r}: {key.upper()} = {v:g}{unit} is outside "
                               f"{'(' if open_low else '['}{low:g}, {high:g}]{unit}")
        params[key.upper()] = v
    circuit.models[name] = params


_ARITY = {"r": 2, "d": 2, "v": 2, "i": 2, "e": 4, "f": 2}


def _parse_element(tokens, circuit, where, params):
    name = _name(tokens[0], where)
    kind = name[0]
    if kind not in _ARITY:
        raise NetlistError(f"{where}: element {_show(tokens[0])}: type {kind.upper()!r} is not supported "
                           "(supported: R, D, V, I, E, F)")
    n = _ARITY[kind]
    if len(tokens) < n + 2:
        raise NetlistError(f"{where}: element {_show(tokens[0])} needs {n} nodes and a value")
    nodes = tuple(_node(t, where) for t in tokens[1:1 + n])
    rest = tokens[1 + n:]
    if kind == "d":
        if len(rest) != 1:
            raise NetlistError(f"{where}: diode {name!r}: expected 'Dname anode cathode model'")
        circuit.add("D", name, nodes, model=_name(rest[0], where))
        return
    if kind == "f":
        if len(rest) != 2:
            raise NetlistError(f"{where}: CCCS {name!r}: expected 'Fname n+ n- Vsense gain'")
        circuit.add("F", name, nodes, _number(rest[1], where, {}), control=_name(rest[0], where))
        return
    if kind in ("v", "i") and rest and rest[0].lower() == "dc":
        rest = rest[1:]
    if len(rest) != 1:
        raise NetlistError(f"{where}: element {name!r}: expected one DC value, got {_show(' '.join(rest))} "
                           "(only DC values are supported)")
    value = _number(rest[0], where, params)
    _check_value(kind.upper(), name, value, params, where)
    circuit.add(kind.upper(), name, nodes, value)


def _check_value(kind, name, value, params, where):
    """Refuse values that make no physical circuit (a negative resistor) or only floating-point noise."""
    number = params[value.name] * value.scale if isinstance(value, Param) else value
    via = f" (via parameter {value.name!r})" if isinstance(value, Param) else ""
    if kind == "R":
        if not number >= 1.0 / MAX_CONDUCTANCE:
            raise NetlistError(f"{where}: resistor {name!r} has resistance {number:g} ohm{via}; it must be > 0 "
                               f"(at least {1.0 / MAX_CONDUCTANCE:g} ohm)")
    elif kind == "V" and abs(number) > MAX_VOLTAGE:
        raise NetlistError(f"{where}: source {name!r} is {number:g} V{via}; circuitprop accepts up to {MAX_VOLTAGE:g} V")
    elif kind == "I" and abs(number) > MAX_CURRENT:
        raise NetlistError(f"{where}: source {name!r} is {number:g} A{via}; circuitprop accepts up to {MAX_CURRENT:g} A")
    elif kind in ("E", "F") and abs(number) > MAX_GAIN:
        raise NetlistError(f"{where}: gain of {name!r} is {number:g}{via}; circuitprop accepts up to {MAX_GAIN:g}")


def _check_references(circuit: Circuit, source: str):
    names = {e.name for e in circuit.elements}
    if len(names) != len(circuit.elements):
        seen = set()
        for e in circuit.elements:
            if e.name in seen:
                raise NetlistError(f"{source}: element {e.name!r} is defined twice")
            seen.add(e.name)
    for e in circuit.elements:
        if e.kind == "D" and e.model not in circuit.models:
            raise NetlistError(f"{source}: diode {e.name!r} uses undefined model {e.model!r}")
        if e.kind == "F" and not (e.control in names and e.control.startswith("v")):
            raise NetlistError(f"{source}: CCCS {e.name!r} senses {e.control!r}, which is not a voltage source")
    if not circuit.elements:
        raise NetlistError(f"{source}: no elements")


def _check_values(circuit: Circuit, source: str):
    """Check every value again with the final parameter values (a later ``.param`` may change one)."""
    for e in circuit.elements:
        if e.kind in ("R", "V", "I", "E", "F"):
            _check_value(e.kind, e.name, e.value, circuit.parameters, f"{source}: element {e.name!r}")


def _check_dc_paths(circuit: Circuit, source: str):
    """Refuse nodes with no DC path to ground (ngspice would solve them with gmin alone: a made-up voltage)."""
    graph = nx.Graph()
    graph.add_node("0")
    for e in circuit.elements:
        nodes = list(e.nodes)
        graph.add_nodes_from(nodes)
        if e.kind in ("R", "V", "D"):
            graph.add_edge(nodes[0], nodes[1])
        elif e.kind == "E":
            graph.add_edge(nodes[0], nodes[1])  # the output port is a voltage source
    floating = sorted(set(graph.nodes) - nx.node_connected_component(graph, "0"))
    if floating:
        shown = ", ".join(floating[:5]) + (" ..." if len(floating) > 5 else "")
        raise NetlistError(f"{source}: node(s) {shown} have no DC path to ground (connected only through current "
                           "sources or controlled-source inputs, or not at all to node 0); their voltage is undefined")


def read_netlist(path) -> Circuit:
    """Read and parse a netlist file (see :func:`parse_netlist`)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="ascii", errors="strict")
    except FileNotFoundError:
        raise NetlistError(f"{path}: no such file") from None
    except UnicodeDecodeError as exc:
        raise NetlistError(f"{path}: not an ASCII netlist ({exc})") from None
    return parse_netlist(text, str(path))
