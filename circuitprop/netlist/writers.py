"""Netlist writers for four dialects: ngspice, Xyce, LTspice and Spectre.

Each writer renders a :class:`~circuitprop.netlist.circuit.Circuit`; names in it
are checked identifiers and values finite floats, so no line can be injected.
"""
from __future__ import annotations

from .circuit import Circuit, Param, fmt, safe_comment

DIALECTS = ("ngspice", "xyce", "ltspice", "spectre")


def _spice_value(value) -> str:
    if isinstance(value, Param):
        return "{" + fmt(value.scale) + "*" + value.name + "}"
    return fmt(value)


def _spice_lines(circuit: Circuit, dialect: str, options: dict | None, analysis: bool) -> list:
    lines = ["* " + safe_comment(circuit.title)]
    lines += ["* " + safe_comment(c) for c in circuit.comments]
    lines.append(f"* dialect: {dialect}")
    if circuit.parameters:
        lines.append("* inputs left as parameters: set x_<k> (feature values) before simulating")
        for name, value in circuit.parameters.items():
            lines.append(f".param {name}={fmt(value)}")
    dc = "" if dialect == "ltspice" else "DC "
    for e in circuit.elements:
        n = " ".join(e.nodes)
        if e.kind in ("R", "C"):
            lines.append(f"{e.name} {n} {_spice_value(e.value)}")
        elif e.kind in ("V", "I"):
            lines.append(f"{e.name} {n} {dc}{_spice_value(e.value)}")
        elif e.kind == "D":
            lines.append(f"{e.name} {n} {e.model}")
        elif e.kind == "E":
            lines.append(f"{e.name} {n} {fmt(e.value)}")
        elif e.kind == "F":
            lines.append(f"{e.name} {n} {e.control} {fmt(e.value)}")
        else:  # pragma: no cover - Circuit only builds the kinds above
            raise ValueError(f"unknown element kind {e.kind!r}")
    for name, params in circuit.models.items():
        body = " ".join(f"{k}={fmt(v)}" for k, v in params.items())
        lines.append(f".model {name} D({body})")
    if options and dialect in ("ngspice", "ltspice"):
        lines.append(".options " + " ".join(f"{k}={fmt(v)}" for k, v in options.items()))
    if analysis:
        lines.append(".op")
        if dialect == "ltspice":
            lines.append(".backanno")
    lines.append(".end")
    return lines


def _spectre_value(value) -> str:
    if isinstance(value, Param):
        return f"{fmt(value.scale)}*{value.name}"
    return fmt(value)


def _spectre_lines(circuit: Circuit, analysis: bool) -> list:
    lines = ["// " + safe_comment(circuit.title)]
    lines += ["// " + safe_comment(c) for c in circuit.comments]
    lines += ["// dialect: spectre", "simulator lang=spectre"]
    if circuit.parameters:
        lines.append("// inputs left as parameters: set x_<k> (feature values) before simulating")
        lines.append("parameters " + " ".join(f"{k}={fmt(v)}" for k, v in circuit.parameters.items()))
    for name, params in circuit.models.items():
        body = " ".join(f"{k.lower()}={fmt(v)}" for k, v in params.items())
        lines.append(f"model {name} diode {body}")
    for e in circuit.elements:
        n = "(" + " ".join(e.nodes) + ")"
        if e.kind == "R":
            lines.append(f"{e.name} {n} resistor r={_spectre_value(e.value)}")
        elif e.kind == "C":
            lines.append(f"{e.name} {n} capacitor c={_spectre_value(e.value)}")
        elif e.kind == "V":
            lines.append(f"{e.name} {n} vsource type=dc dc={_spectre_value(e.value)}")
        elif e.kind == "I":
            lines.append(f"{e.name} {n} isource type=dc dc={_spectre_value(e.value)}")
        elif e.kind == "D":
            lines.append(f"{e.name} {n} {e.model}")
        elif e.kind == "E":
            lines.append(f"{e.name} {n} vcvs gain={fmt(e.value)}")
        elif e.kind == "F":
            lines.append(f"{e.name} {n} cccs gain={fmt(e.value)} probe={e.control}")
        else:  # pragma: no cover
            raise ValueError(f"unknown element kind {e.kind!r}")
    if analysis:
        lines.append("dcOp dc")
    return lines


def render(circuit: Circuit, dialect: str = "ngspice", *, options: dict | None = None,
           analysis: bool = True) -> str:
    """Render ``circuit`` as netlist text in ``dialect`` (one of :data:`DIALECTS`).

    ``options`` (ngspice and LTspice only) become a ``.options`` line, e.g.
    ``{"reltol": 1e-9}``; ``analysis`` adds the operating-point analysis.
    """
    if dialect not in DIALECTS:
        raise ValueError(f"unknown netlist dialect {dialect!r}; choose one of {', '.join(DIALECTS)}")
    if options:
        for key in options:
            if not (isinstance(key, str) and key.isalnum()):
                raise ValueError(f"unsafe option name {key!r}")
    if dialect != "ngspice" and any(e.kind == "F" and not e.control.startswith("v") for e in circuit.elements):
        raise ValueError(f"this circuit was built with sense_sources=False (a CCCS senses a VCVS), which only "
                         f"ngspice accepts; build it with sense_sources=True to write {dialect}")
    lines = _spectre_lines(circuit, analysis) if dialect == "spectre" else _spice_lines(
        circuit, dialect, options, analysis)
    return "\n".join(lines) + "\n"
