"""Netlist writers for five dialects: ngspice, Xyce, LTspice, Spectre and VACASK.

Each writer renders a :class:`~circuitprop.netlist.circuit.Circuit`; names in it
are checked identifiers and values finite floats, so no line can be injected.
"""
from __future__ import annotations

from ..model.constants import BOLTZMANN, CHARGE, TNOM_KELVIN
from .circuit import Circuit, Param, fmt, safe_comment

DIALECTS = ("ngspice", "xyce", "ltspice", "spectre", "vacask")
#: ngspice ``.options`` -> VACASK ``options`` (the others have no VACASK counterpart and are left out).
VACASK_OPTIONS = ("reltol", "abstol", "vntol", "gmin")
#: The temperature (deg C) at which VACASK's Verilog-A diode has circuitprop's thermal voltage. Its V_T = k T / q
#: uses the constants of Verilog-A's ``constants.vams`` (k = 1.3806503e-23 J/K, q = 1.602176462e-19 C, CODATA
#: 1998); circuitprop's diode, like ngspice's, uses k = 1.38064852e-23 J/K and q = 1.6021766208e-19 C at 300.15 K.
#: At 27 deg C the two thermal voltages differ by 1.4e-6 relative, about a microvolt at a diode's forward
#: voltage; netlists set ``temp`` and every diode model's ``tnom`` to this value instead (measured: 5e-14 V).
VACASK_TEMPERATURE = TNOM_KELVIN * (BOLTZMANN / CHARGE) / (1.3806503e-23 / 1.602176462e-19) - 273.15


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


def _instance_lines(circuit: Circuit, source: str, cccs) -> list:
    """Element instances in the syntax Spectre and VACASK share (``name (nodes) master params``); ``source`` is
    what precedes a source's value, ``cccs(element)`` the parameters of a CCCS."""
    lines = []
    for e in circuit.elements:
        n = "(" + " ".join(e.nodes) + ")"
        if e.kind == "R":
            lines.append(f"{e.name} {n} resistor r={_spectre_value(e.value)}")
        elif e.kind == "C":
            lines.append(f"{e.name} {n} capacitor c={_spectre_value(e.value)}")
        elif e.kind in ("V", "I"):
            lines.append(f"{e.name} {n} {'vsource' if e.kind == 'V' else 'isource'} {source}{_spectre_value(e.value)}")
        elif e.kind == "D":
            lines.append(f"{e.name} {n} {e.model}")
        elif e.kind == "E":
            lines.append(f"{e.name} {n} vcvs gain={fmt(e.value)}")
        elif e.kind == "F":
            lines.append(f"{e.name} {n} cccs {cccs(e)}")
        else:  # pragma: no cover - Circuit only builds the kinds above
            raise ValueError(f"unknown element kind {e.kind!r}")
    return lines


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
    lines += _instance_lines(circuit, source="type=dc dc=", cccs=lambda e: f"gain={fmt(e.value)} probe={e.control}")
    if analysis:
        lines.append("dcOp dc")
    return lines


def _vacask_lines(circuit: Circuit, options: dict | None, analysis: bool) -> list:
    """VACASK (``.sim``): SPICE-like instances with parenthesised nodes, OSDI resistor and diode models, the
    built-in sources; the operating point is written to ``op1.raw`` (ASCII)."""
    lines = ["// " + safe_comment(circuit.title)]  # the first line is the title; written as a comment too
    lines += ["// " + safe_comment(c) for c in circuit.comments]
    capacitors = any(e.kind == "C" for e in circuit.elements)
    lines += ["// dialect: vacask (the first line is the title)", "", "ground 0", 'load "resistor.osdi"']
    lines += ['load "capacitor.osdi"'] * capacitors + ['load "diode.osdi"'] * bool(circuit.models)
    lines += ["model resistor resistor", "model vsource vsource", "model isource isource", "model vcvs vcvs",
              "model cccs cccs"] + ["model capacitor capacitor"] * capacitors
    for name, params in circuit.models.items():
        lines.append(f"model {name} diode " + " ".join(f"{k.lower()}={fmt(v)}" for k, v in params.items())
                     + f" tnom={fmt(VACASK_TEMPERATURE)}")
    if circuit.parameters:
        lines.append("// inputs left as parameters: set x_<k> (feature values) before simulating")
        lines.append("parameters " + " ".join(f"{k}={fmt(v)}" for k, v in circuit.parameters.items()))
    lines += _instance_lines(circuit, source="dc=", cccs=lambda e: f'ctlinst="{e.control}" gain={fmt(e.value)}')
    if analysis:
        opts = {k: v for k, v in (options or {}).items() if k in VACASK_OPTIONS}
        opts["temp"] = VACASK_TEMPERATURE
        lines += ["", "control", '  options rawfile="ascii"' + "".join(f" {k}={fmt(v)}" for k, v in opts.items()),
                  "  analysis op1 op", "endc"]
    return lines


def render(circuit: Circuit, dialect: str = "ngspice", *, options: dict | None = None,
           analysis: bool = True) -> str:
    """Render ``circuit`` as netlist text in ``dialect`` (one of :data:`DIALECTS`).

    ``options`` (ngspice, LTspice; VACASK takes reltol, abstol, vntol and gmin) become an options line, e.g.
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
    if dialect == "spectre":
        lines = _spectre_lines(circuit, analysis)
    elif dialect == "vacask":
        lines = _vacask_lines(circuit, options, analysis)
    else:
        lines = _spice_lines(circuit, dialect, options, analysis)
    return "\n".join(lines) + "\n"
