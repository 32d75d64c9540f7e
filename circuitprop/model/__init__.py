"""The model: one source of truth for an analog circuit (its architecture plus conductance arrays).

==================  ==========================================================================================
module              what it holds
==================  ==========================================================================================
``constants``       physical constants and the limits accepted for element values
``diode``           :class:`DiodeModel` (Shockley or ideal), named model cards, bias compensation
``architecture``    :class:`HiddenLayer`, :class:`Architecture`, layer specs, validation, (de)serialisation
``network``         :class:`Network`: an architecture plus one conductance array per crossbar; save/load
``energy``          the physics: diode laws, pseudo-powers, co-content, KCL residuals, dP/dg, static power
``wires``           crossbars with wire resistance: line networks and their exact reduction
``devices``         non-idealities of programmable conductances (ReRAM, PCM, ECRAM presets)
==================  ==========================================================================================

Netlists (:mod:`circuitprop.netlist`) and solver matrices (:mod:`circuitprop.backends`) are derived from a
:class:`Network` and never edited in two places.
"""
from dataclasses import replace

from ..errors import NetworkError
from .architecture import (
                           Architecture,
                           HiddenLayer,
                           architecture_from_dict,
                           architecture_to_dict,
                           check_memory,
                           conductance_bytes,
                           circuit_crossbars,
                           dense_crossbars,
                           make_architecture,
                           parse_layers,
                           physical_memory_bytes,
                           validate_architecture,
)
from .constants import (
                           BOLTZMANN,
                           CHARGE,
                           MAX_CONDUCTANCE,
                           MAX_GAIN,
                           MAX_VOLTAGE,
                           MAX_WIRE_RESISTANCE,
                           MIN_WIRE_RESISTANCE,
                           TNOM_KELVIN,
                           WIRE_LAYOUTS,
)
from .diode import DIODE_CARDS, DiodeModel, compensated_bias
from .network import FORMAT_NAME, FORMAT_VERSION, Network, check_conductances

__all__ = ["Network", "Architecture", "HiddenLayer", "DiodeModel", "NetworkError", "make_architecture",
           "DIODE_CARDS", "compensated_bias", "parse_layers", "dense_crossbars", "circuit_crossbars",
           "validate_architecture", "replace",
           "architecture_from_dict", "architecture_to_dict", "check_memory", "conductance_bytes",
           "physical_memory_bytes", "check_conductances", "FORMAT_NAME", "FORMAT_VERSION", "BOLTZMANN", "CHARGE",
           "TNOM_KELVIN", "MAX_CONDUCTANCE", "MAX_GAIN", "MAX_VOLTAGE", "MAX_WIRE_RESISTANCE",
           "MIN_WIRE_RESISTANCE", "WIRE_LAYOUTS"]
