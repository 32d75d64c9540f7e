"""Netlists: derive a circuit from a network, write it in four dialects, read SPICE safely."""
from pathlib import Path

from ..io.files import atomic_write_bytes
from .circuit import Circuit, Element, Param, build_circuit
from .reader import NetlistError, parse_netlist, read_netlist
from .writers import DIALECTS, render

SUFFIXES = {"ngspice": ".cir", "xyce": ".cir", "ltspice": ".net", "spectre": ".scs", "vacask": ".sim"}


def write_netlist(network, path, dialect="ngspice", *, inputs=None, output_currents=None,
                  input_parameters=False, fold_inputs=False, options=None) -> Path:
    """Write ``network`` as a netlist file (atomically) and return its path.

    See :func:`build_circuit` for ``inputs``, ``output_currents``,
    ``input_parameters`` and ``fold_inputs``, :func:`render` for ``options``.
    """
    circuit = build_circuit(network, inputs, output_currents, fold_inputs=fold_inputs,
                            input_parameters=input_parameters)
    text = render(circuit, dialect, options=options)
    return atomic_write_bytes(path, text.encode("ascii"))


__all__ = ["Circuit", "Element", "Param", "build_circuit", "render", "write_netlist", "DIALECTS", "SUFFIXES",
           "parse_netlist", "read_netlist", "NetlistError"]
