"""The network: one source of truth for an analog circuit.

A :class:`Network` is a layered nonlinear resistive network.  Layer 0 holds the
input voltage sources, the last layer holds the output nodes (each with a
current source for nudging), the layers in between hold hidden neurons made of
two antiparallel diodes to ground, each in series with a bias voltage source.
Crossbars of programmable conductances (siemens) join any two layers ``a < b``
(skip crossbars included).  Netlists (:mod:`circuitprop.netlist`) and solver
matrices (:mod:`circuitprop.backends`) are derived from it and never edited in
two places.

Node order
----------
Everywhere in circuitprop the nodes of a layer are ordered as follows.

* Input layer (``layer 0``): the ``n_features`` voltages ``+gain*x``, then (if
  ``doubled_inputs``) the ``n_features`` voltages ``-gain*x``, then (if
  ``bias_input``) a node at ``+bias_voltage`` and, with doubled inputs, one at
  ``-bias_voltage`` (so that biases of either sign need only positive
  conductances).
* Hidden layers: neuron ``0 .. size-1``.
* Output layer: ``n_classes`` nodes, then (if ``doubled_outputs``) the
  ``n_classes`` "minus" nodes; the score of class ``k`` is ``V[k] - V[K+k]``.
"""
from __future__ import annotations

import io
import json
import math
import os
import re
import tempfile
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import networkx as nx
import numpy as np

from .kernels import input_voltages_into

#: Boltzmann constant (J/K) and elementary charge (C) as used by ngspice 39.
BOLTZMANN = 1.38064852e-23
CHARGE = 1.6021766208e-19
#: Nominal temperature of SPICE simulators (27 °C), kelvin.
TNOM_KELVIN = 300.15

#: Largest magnitude (volts) of any source voltage, bias or input voltage circuitprop accepts, and the
#: largest gain (V/V) of inputs and amplifiers: beyond it a "solution" is floating-point noise, not physics.
MAX_VOLTAGE = 1e6
MAX_GAIN = 1e6
#: Largest conductance (siemens) accepted: a 1 micro-ohm resistor.
MAX_CONDUCTANCE = 1e6
#: Range (ohms per cell) of a non-zero wire resistance: below 1 micro-ohm the line equations lose all
#: precision against the cell conductances; above 1 megaohm per cell the wire is not a wire.
MIN_WIRE_RESISTANCE = 1e-6
MAX_WIRE_RESISTANCE = 1e6
#: Physical orders of crossbar lines (see :func:`circuitprop.wires.line_orders`).
WIRE_LAYOUTS = ("interleaved", "node-order")

FORMAT_NAME = "circuitprop-network"
FORMAT_VERSION = 1


class NetworkError(ValueError):
    """Raised for an invalid network description (says what and where)."""


@dataclass(frozen=True)
class DiodeModel:
    """A diode of the hidden neurons.

    Parameters
    ----------
    kind : {"shockley", "ideal"}
        ``"shockley"``: ``i = IS*(exp(v_d/(N*V_T)) - 1)`` with series resistance
        ``RS``.  ``"ideal"``: zero current in reverse, any current at zero
        forward drop, so the neuron clips its node voltage exactly to
        ``[v_low, v_high]``.  SPICE has no ideal diode: exported netlists use a
        near-ideal Shockley diode (``spice_ideal_n``), which adds a forward drop
        of about ``spice_ideal_n*V_T*ln(I/IS)`` volts.
    saturation_current : float
        ``IS``, amperes.
    emission_coefficient : float
        ``N``, dimensionless.
    series_resistance : float
        ``RS``, ohms (0 for none).
    temperature : float
        Kelvin; sets the thermal voltage ``V_T = k*T/q``.
    spice_ideal_n : float
        Emission coefficient used for an ideal diode in SPICE netlists.  The
        default 0.001 gives a forward drop of about 0.5 mV at microamperes
        (0.01 gave about 5 mV, enough to change 1 prediction in 200 of a
        trained MNIST circuit whose class scores are tens of millivolts);
        ngspice converges with it on the trained circuits of RESULTS.md.
    """

    kind: str = "shockley"
    saturation_current: float = 1e-12
    emission_coefficient: float = 1.0
    series_resistance: float = 0.0
    temperature: float = TNOM_KELVIN
    spice_ideal_n: float = 0.001

    def __post_init__(self):
        if self.kind not in ("shockley", "ideal"):
            raise NetworkError(f"diode kind must be 'shockley' or 'ideal', got {self.kind!r}")
        for name in ("saturation_current", "emission_coefficient", "temperature", "spice_ideal_n"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise NetworkError(f"diode {name} must be a finite positive number, got {value!r}")
        rs = self.series_resistance
        if not (isinstance(rs, (int, float)) and math.isfinite(rs) and rs >= 0):
            raise NetworkError(f"diode series_resistance must be finite and >= 0 ohm, got {rs!r}")

    @classmethod
    def from_card(cls, name: str, **overrides) -> "DiodeModel":
        """A Shockley diode from a named model card of :data:`DIODE_CARDS` (e.g. ``"1n4148"``)."""
        key = str(name).lower()
        if key not in DIODE_CARDS:
            raise NetworkError(f"unknown diode model card {name!r}; known: {', '.join(DIODE_CARDS)}")
        return cls(kind="shockley", **{**DIODE_CARDS[key], **overrides})

    def forward_voltage(self, current: float) -> float:
        """Forward voltage (V) at which the diode carries ``current`` amperes (> 0)."""
        if self.kind == "ideal":
            return 0.0
        nvt = self.emission_coefficient * self.thermal_voltage
        return nvt * math.log1p(current / self.saturation_current) + self.series_resistance * current

    @property
    def thermal_voltage(self) -> float:
        """``V_T = k*T/q`` in volts."""
        return BOLTZMANN * self.temperature / CHARGE

    @property
    def spice_parameters(self) -> dict:
        """Parameters of the SPICE diode model that stands for this diode."""
        n = self.spice_ideal_n if self.kind == "ideal" else self.emission_coefficient
        params = {"IS": float(self.saturation_current), "N": float(n)}
        if self.kind == "shockley" and self.series_resistance > 0:
            params["RS"] = float(self.series_resistance)
        return params


#: Named diode model cards (SPICE parameters IS in amperes, N, RS in ohms). "1n4148": the values commonly
#: published for the 1N4148 small-signal diode; "generic": circuitprop's default Shockley diode.
DIODE_CARDS = {
    "generic": {"saturation_current": 1e-12, "emission_coefficient": 1.0, "series_resistance": 0.0},
    "1n4148": {"saturation_current": 4.352e-9, "emission_coefficient": 1.906, "series_resistance": 0.6458},
}


def compensated_bias(diode: DiodeModel, v_low: float, v_high: float, current: float = 1e-6) -> tuple:
    """Bias voltages that make a neuron of real diodes clip near ``[v_low, v_high]``.

    A real diode conducts only past its forward voltage ``V_f`` (about 0.5 V for a 1N4148 at 1 uA), so a
    neuron biased at ``(v_low, v_high)`` would clip at ``(v_low - V_f, v_high + V_f)``.  This returns
    ``(v_low + V_f, v_high - V_f)`` with ``V_f`` taken at ``current`` amperes; raises when the range
    ``v_high - v_low`` is smaller than ``2 V_f``.
    """
    vf = diode.forward_voltage(current)
    lo, hi = v_low + vf, v_high - vf
    if not lo < hi:
        raise NetworkError(f"a neuron clipping at [{v_low}, {v_high}] V cannot be built from diodes with a "
                           f"forward voltage of {vf:.3f} V at {current:g} A: the range must exceed {2 * vf:.3f} V")
    return lo, hi


@dataclass(frozen=True)
class HiddenLayer:
    """Hidden neurons of one layer.

    Parameters
    ----------
    size : int
        Number of neurons (nodes).
    v_low, v_high : float
        Bias voltages (volts) of the two diodes: one conducts when the node is
        above ``v_high``, the other when it is below ``v_low``.
    amplifier_gain : float or None
        Gain ``A`` of the forward VCVS of a bidirectional amplifier after this
        layer (``None``: no amplifier).  Crossbars leaving the layer are then
        driven by ``A*V``.
    backward_gain : float or None
        Gain of the backward CCCS; ``None`` means equal to ``amplifier_gain``
        (an ideal transformer, which keeps the circuit energy-based).  Any other
        value makes the circuit non-reciprocal: the EP gradient is then biased.
    """

    size: int
    v_low: float = 0.0
    v_high: float = 1.0
    amplifier_gain: float | None = None
    backward_gain: float | None = None

    @property
    def forward_gain(self) -> float:
        """Forward voltage gain (1 without amplifier)."""
        return 1.0 if self.amplifier_gain is None else float(self.amplifier_gain)

    @property
    def current_gain(self) -> float:
        """Backward current gain (1 without amplifier)."""
        if self.amplifier_gain is None:
            return 1.0
        return float(self.amplifier_gain if self.backward_gain is None else self.backward_gain)


@dataclass(frozen=True)
class Architecture:
    """Topology and element parameters (everything but the conductances).

    Parameters
    ----------
    n_features : int
        Number of input features ``x`` (e.g. 784 for MNIST).
    hidden : tuple of HiddenLayer
        Hidden layers in order.
    n_classes : int
        Number of outputs (classes).
    crossbars : tuple of (int, int)
        Pairs of layers ``(a, b)`` with ``a < b`` joined by a crossbar.  Layer 0
        is the input layer, layer ``len(hidden)+1`` the output layer.
    doubled_inputs : bool
        Inputs as the pair ``(+x, -x)`` of voltage sources.
    bias_input : bool
        Extra input node(s) at ``+bias_voltage`` (and ``-bias_voltage`` when
        inputs are doubled).
    input_gain : float
        Volts per unit of ``x``.
    bias_voltage : float
        Volts of the bias input.
    doubled_outputs : bool
        Two output nodes per class; score = ``V+ - V-``.
    diode : DiodeModel
        The diode of every hidden neuron.
    wire_resistance : float
        Ohms of word line and of bit line per crossbar cell (IR drop), 0 for ideal wires.  Row line
        ``i`` of a crossbar is driven at its first cell and column line ``j`` is read after its last
        row; every cell adds one segment of this resistance to its row line and one to its column
        line (see :mod:`circuitprop.wires`).  Netlists write the segments flat; the fast solver
        reduces the lines exactly to dense port matrices.
    wire_layout : {"interleaved", "node-order"}
        Physical order of the lines when ``wire_resistance > 0``: ``"interleaved"`` puts the lines of each
        differential pair (``+x_k`` next to ``-x_k``, the ``+`` and ``-`` output of each class) side by side;
        ``"node-order"`` lays them out in node order (:func:`circuitprop.wires.line_orders`).
    name : str
        Free text, only written in comments of netlists.
    """

    n_features: int
    hidden: tuple = ()
    n_classes: int = 10
    crossbars: tuple = ()
    doubled_inputs: bool = True
    bias_input: bool = False
    input_gain: float = 1.0
    bias_voltage: float = 1.0
    doubled_outputs: bool = True
    diode: DiodeModel = field(default_factory=DiodeModel)
    wire_resistance: float = 0.0
    wire_layout: str = "interleaved"
    name: str = "circuitprop network"

    @property
    def n_layers(self) -> int:
        """Number of layers, input and output included."""
        return len(self.hidden) + 2

    @property
    def output_layer(self) -> int:
        return len(self.hidden) + 1

    @property
    def layer_sizes(self) -> tuple:
        """Number of circuit nodes per layer (inputs doubled, outputs doubled)."""
        n_bias = (2 if self.doubled_inputs else 1) if self.bias_input else 0
        n_in = self.n_features * (2 if self.doubled_inputs else 1) + n_bias
        n_out = self.n_classes * (2 if self.doubled_outputs else 1)
        return (n_in, *(h.size for h in self.hidden), n_out)

    def forward_gain(self, layer: int) -> float:
        """Voltage gain applied to the nodes of ``layer`` when they drive a crossbar."""
        if 1 <= layer <= len(self.hidden):
            return self.hidden[layer - 1].forward_gain
        return 1.0

    def current_gain(self, layer: int) -> float:
        if 1 <= layer <= len(self.hidden):
            return self.hidden[layer - 1].current_gain
        return 1.0

    def layer_graph(self) -> nx.Graph:
        """Graph whose vertices are layers and whose edges are crossbars."""
        graph = nx.Graph()
        graph.add_nodes_from(range(self.n_layers))
        graph.add_edges_from(self.crossbars)
        return graph

    @property
    def is_reciprocal(self) -> bool:
        """True when every amplifier is an ideal transformer (energy-based circuit)."""
        return all(h.current_gain == h.forward_gain for h in self.hidden)


def _check_int(value, what, minimum=1):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise NetworkError(f"{what} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_real(value, what, positive=False, limit=None):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise NetworkError(f"{what} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or (positive and value <= 0):
        raise NetworkError(f"{what} must be finite{' and positive' if positive else ''}, got {value!r}")
    if limit is not None and abs(value) > limit:
        raise NetworkError(f"{what} is {value!r}; circuitprop accepts magnitudes up to {limit:g}")
    return value


def _check_bool(value, what):
    if not isinstance(value, (bool, np.bool_)):
        raise NetworkError(f"{what} must be true or false, got {value!r}")
    return bool(value)


def validate_architecture(arch: Architecture) -> None:
    """Raise :class:`NetworkError` naming the first problem found in ``arch``."""
    _check_int(arch.n_features, "n_features")
    _check_int(arch.n_classes, "n_classes")
    _check_real(arch.input_gain, "input_gain (V per unit of x)", positive=True, limit=MAX_GAIN)
    _check_real(arch.bias_voltage, "bias_voltage (V)", limit=MAX_VOLTAGE)
    wire = _check_real(arch.wire_resistance, "wire_resistance (ohms per cell)", limit=MAX_WIRE_RESISTANCE)
    if wire < 0 or 0 < wire < MIN_WIRE_RESISTANCE:
        raise NetworkError(f"wire_resistance (ohms per cell) must be 0 (ideal wires) or between "
                           f"{MIN_WIRE_RESISTANCE:g} and {MAX_WIRE_RESISTANCE:g} ohms, got {wire!r}")
    if arch.wire_layout not in WIRE_LAYOUTS:
        raise NetworkError(f"wire_layout must be one of {', '.join(WIRE_LAYOUTS)}, got {arch.wire_layout!r}")
    for flag in ("doubled_inputs", "bias_input", "doubled_outputs"):
        _check_bool(getattr(arch, flag), flag)
    if not isinstance(arch.name, str):
        raise NetworkError(f"name must be text, got {arch.name!r}")
    if not isinstance(arch.hidden, (tuple, list)):
        raise NetworkError(f"hidden must be a sequence of HiddenLayer, got {arch.hidden!r}")
    if not isinstance(arch.crossbars, (tuple, list)):
        raise NetworkError(f"crossbars must be a sequence of (a, b) pairs, got {arch.crossbars!r}")
    for i, h in enumerate(arch.hidden, start=1):
        if not isinstance(h, HiddenLayer):
            raise NetworkError(f"hidden layer {i} must be a HiddenLayer, got {type(h).__name__}")
        _check_int(h.size, f"hidden layer {i} size")
        lo = _check_real(h.v_low, f"hidden layer {i} v_low (V)", limit=MAX_VOLTAGE)
        hi = _check_real(h.v_high, f"hidden layer {i} v_high (V)", limit=MAX_VOLTAGE)
        if not lo < hi:
            raise NetworkError(f"hidden layer {i}: v_low ({lo} V) must be below v_high ({hi} V)")
        if h.amplifier_gain is not None:
            _check_real(h.amplifier_gain, f"hidden layer {i} amplifier_gain", positive=True, limit=MAX_GAIN)
        if h.backward_gain is not None:
            if h.amplifier_gain is None:
                raise NetworkError(f"hidden layer {i}: backward_gain given without amplifier_gain")
            _check_real(h.backward_gain, f"hidden layer {i} backward_gain", positive=True, limit=MAX_GAIN)
    if not isinstance(arch.diode, DiodeModel):
        raise NetworkError(f"diode must be a DiodeModel, got {type(arch.diode).__name__}")
    seen = set()
    for pair in arch.crossbars:
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise NetworkError(f"crossbar {pair!r} must be a pair of layers (a, b)")
        a, b = (_check_int(p, f"crossbar {pair!r} layer", minimum=0) for p in pair)
        if not a < b < arch.n_layers:
            raise NetworkError(
                f"crossbar {pair!r}: need 0 <= a < b <= {arch.n_layers - 1} (layer 0 = inputs, "
                f"layer {arch.n_layers - 1} = outputs)")
        if (a, b) in seen:
            raise NetworkError(f"crossbar {pair!r} is listed twice")
        seen.add((a, b))
    graph = arch.layer_graph()
    for layer in range(1, arch.n_layers):
        if not nx.has_path(graph, 0, layer):
            raise NetworkError(
                f"layer {layer} has no DC path: no chain of crossbars joins it to the input layer")


def dense_crossbars(n_layers: int) -> tuple:
    """Crossbars between consecutive layers: ``((0, 1), (1, 2), ...)``."""
    return tuple((i, i + 1) for i in range(n_layers - 1))


class Network:
    """An analog network: an :class:`Architecture` plus conductance arrays.

    Parameters
    ----------
    architecture : Architecture
    conductances : dict
        ``{(a, b): array}`` with one array of shape ``(layer_sizes[a], layer_sizes[b])``
        in siemens per crossbar; element ``[i, j]`` joins node ``i`` of layer ``a`` to
        node ``j`` of layer ``b``.
    dtype : {"float64", "float32"}
        Floating-point type the conductances are held in (float32 halves memory traffic
        in training; see :class:`~circuitprop.learning.EPTrainer`'s ``dtype``).
    """

    def __init__(self, architecture: Architecture, conductances: dict, dtype="float64"):
        validate_architecture(architecture)
        dtype = np.dtype(dtype)
        if dtype not in (np.float64, np.float32):
            raise NetworkError(f"conductance dtype must be float64 or float32, got {dtype}")
        if not isinstance(conductances, dict):
            raise NetworkError(f"conductances must be a dict {{(a, b): array}}, got {type(conductances).__name__}")
        self.architecture = architecture
        self.conductances = {}
        sizes = architecture.layer_sizes
        given = {}
        for k, v in conductances.items():
            if not isinstance(k, (tuple, list)) or len(k) != 2:
                raise NetworkError(f"conductance key {k!r} must be a pair of layers (a, b)")
            given[tuple(_check_int(x, f"conductance key {k!r} layer", minimum=0) for x in k)] = v
        extra = set(given) - set(architecture.crossbars)
        if extra:
            raise NetworkError(f"conductances given for crossbars not in the architecture: {sorted(extra)}")
        for key in architecture.crossbars:
            if key not in given:
                raise NetworkError(f"no conductance array for crossbar {key}")
            array = np.asarray(given[key])
            if array.dtype.kind not in "fiu":
                raise NetworkError(f"crossbar {key}: conductances must be real numbers, got an array of "
                                   f"dtype {array.dtype}")
            array = np.array(array, dtype=dtype)
            expected = (sizes[key[0]], sizes[key[1]])
            if array.shape != expected:
                raise NetworkError(
                    f"crossbar {key}: conductance array has shape {array.shape}, expected {expected} "
                    f"(layer sizes {sizes})")
            check_conductances(array, f"crossbar {key}")
            self.conductances[key] = array

    # -- construction -----------------------------------------------------
    @classmethod
    def random(cls, architecture: Architecture, g_min: float = 1e-7, g_max: float = 1e-5,
               seed=None, init: str = "uniform", dtype="float64") -> "Network":
        """A network with random conductances (siemens).

        ``init="uniform"`` draws each conductance uniformly in ``[g_min, g_max]``.
        """
        _check_real(g_min, "g_min", positive=True)
        _check_real(g_max, "g_max", positive=True)
        if not g_min < g_max:
            raise NetworkError(f"g_min ({g_min} S) must be below g_max ({g_max} S)")
        if init != "uniform":
            raise NetworkError(f"unknown init {init!r} (known: 'uniform')")
        validate_architecture(architecture)
        check_memory(architecture)
        rng = np.random.default_rng(seed)
        sizes = architecture.layer_sizes
        conductances = {
            (a, b): rng.uniform(g_min, g_max, size=(sizes[a], sizes[b])) for a, b in architecture.crossbars
        }
        return cls(architecture, conductances, dtype=dtype)

    @property
    def dtype(self) -> np.dtype:
        """Floating-point type of the conductance arrays."""
        return next(iter(self.conductances.values())).dtype if self.conductances else np.dtype(np.float64)

    def copy(self) -> "Network":
        return Network(self.architecture, {k: v.copy() for k, v in self.conductances.items()}, dtype=self.dtype)

    # -- conveniences -------------------------------------------------------
    @property
    def layer_sizes(self) -> tuple:
        return self.architecture.layer_sizes

    def input_voltages(self, x, dtype=np.float64) -> np.ndarray:
        """Voltages (volts) of the input nodes for features ``x`` of shape (B, n_features), as ``dtype``.

        Columns: ``gain * x``, then ``-gain * x`` (doubled inputs), then the bias source(s).  Written into
        one fresh array (no intermediate copies: the fast solver calls this once per phase).
        """
        arch = self.architecture
        x = np.asarray(x, dtype=np.float64)
        if x.ndim == 1:
            x = x[None, :]
        if x.ndim != 2 or x.shape[1] != arch.n_features:
            raise NetworkError(
                f"inputs have shape {x.shape}, expected (batch, {arch.n_features})")
        batch, n = x.shape
        v = np.empty((batch, arch.layer_sizes[0]), dtype=dtype)
        n_bias = v.shape[1] - (2 * n if arch.doubled_inputs else n)  # bias sources: what layer_sizes counts after x
        checked = input_voltages_into(x, arch.input_gain, arch.doubled_inputs, n_bias, arch.bias_voltage, v)
        if checked is not None:  # one numba pass wrote v and measured x (at batch 4: 2 us instead of 12)
            largest, finite = checked
        else:  # max and min propagate NaN and see infinities: one check without an |x| temporary
            largest = max(float(np.max(x)), -float(np.min(x))) if x.size else 0.0
            finite = np.isfinite(largest)
        if not finite:
            bad = tuple(int(i) for i in np.argwhere(~np.isfinite(x))[0])
            raise NetworkError(f"inputs contain non-finite values (first at sample {bad[0]}, feature {bad[1]})")
        largest *= arch.input_gain
        if largest > MAX_VOLTAGE:
            bad = tuple(int(i) for i in np.unravel_index(np.argmax(np.abs(x)), x.shape))
            raise NetworkError(f"input at sample {bad[0]}, feature {bad[1]} makes a source of {largest:.3g} V "
                               f"(input_gain {arch.input_gain:g} V per unit); circuitprop accepts up to "
                               f"{MAX_VOLTAGE:g} V")
        if checked is not None:
            return v
        np.multiply(x, arch.input_gain, out=v[:, :n], casting="unsafe")
        column = n
        if arch.doubled_inputs:
            np.negative(v[:, :n], out=v[:, n:2 * n])
            column = 2 * n
        if arch.bias_input:
            v[:, column] = arch.bias_voltage
            if arch.doubled_inputs:
                v[:, column + 1] = -arch.bias_voltage
        return v

    def scores(self, output_voltages) -> np.ndarray:
        """Class scores (volts) from the output-node voltages (B, n_out)."""
        v = np.asarray(output_voltages)
        k = self.architecture.n_classes
        return v[:, :k] - v[:, k:] if self.architecture.doubled_outputs else v

    def output_currents_from_score_currents(self, score_current) -> np.ndarray:
        """Currents (amperes) injected into output nodes for a current per class score."""
        score_current = np.asarray(score_current, dtype=np.float64)
        if self.architecture.doubled_outputs:
            return np.concatenate([score_current, -score_current], axis=1)
        return score_current

    def node_names(self) -> list:
        """Node names in the fixed order used by every backend (``n<layer>_<index>``)."""
        return [f"n{layer}_{i}" for layer, size in enumerate(self.layer_sizes) for i in range(size)]

    def fingerprint(self) -> str:
        """A hash of the architecture and conductances (changes with any conductance)."""
        import hashlib
        h = hashlib.sha256(json.dumps(architecture_to_dict(self.architecture), sort_keys=True).encode())
        for key in self.architecture.crossbars:
            h.update(np.ascontiguousarray(self.conductances[key]).tobytes())
        return h.hexdigest()[:16]

    def __repr__(self):
        sizes = "-".join(str(s) for s in self.layer_sizes)
        return f"Network({sizes}, crossbars={list(self.architecture.crossbars)})"

    # -- persistence ------------------------------------------------------
    def save(self, path) -> Path:
        """Write the network to ``path`` (a ``.npz`` holding arrays plus a JSON spec), atomically."""
        arrays = {f"g_{a}_{b}": g for (a, b), g in self.conductances.items()}
        spec = {"format": FORMAT_NAME, "version": FORMAT_VERSION,
                "architecture": architecture_to_dict(self.architecture)}
        return atomic_savez(path, spec=spec, **arrays)

    @classmethod
    def load(cls, path) -> "Network":
        """Read a network written by :meth:`save`; errors name the file and the problem."""
        arch_box = []

        def members(spec):
            version = spec.get("version")
            if version != FORMAT_VERSION:
                raise NetworkError(f"{path}: unsupported network format version {version!r} "
                                   f"(this circuitprop reads version {FORMAT_VERSION})")
            try:
                arch = architecture_from_dict(spec.get("architecture"))
                validate_architecture(arch)
                check_memory(arch)
            except NetworkError as exc:
                raise NetworkError(f"{path}: {exc}") from None
            except (KeyError, TypeError) as exc:
                raise NetworkError(f"{path}: malformed architecture spec: {exc}") from None
            arch_box.append(arch)
            sizes = arch.layer_sizes
            return {f"g_{a}_{b}": (sizes[a], sizes[b]) for a, b in arch.crossbars}

        _, arrays = load_npz_with_spec(path, FORMAT_NAME, members)
        arch = arch_box[0]
        conductances = {}
        for a, b in arch.crossbars:
            key = f"g_{a}_{b}"
            if key not in arrays:
                raise NetworkError(f"{path}: missing conductance array {key!r}")
            conductances[(a, b)] = arrays[key]
        dtype = np.float32 if all(v.dtype == np.float32 for v in conductances.values()) else np.float64
        try:
            return cls(arch, conductances, dtype=dtype)
        except NetworkError as exc:
            raise NetworkError(f"{path}: {exc}") from exc


def check_conductances(array: np.ndarray, where: str) -> None:
    """Raise if any conductance is non-finite or not positive, naming the first bad entry."""
    bad = ~np.isfinite(array) | (array <= 0) | (array > MAX_CONDUCTANCE)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise NetworkError(
            f"{where}: conductance at index {index} is {array[index]!r} S; conductances must be "
            f"finite, > 0 and <= {MAX_CONDUCTANCE:g} S ({int(bad.sum())} bad entries)")


# -- (de)serialisation helpers ------------------------------------------------

def architecture_to_dict(arch: Architecture) -> dict:
    d = asdict(arch)
    d["crossbars"] = [list(p) for p in arch.crossbars]
    return d


def architecture_from_dict(d: dict) -> Architecture:
    """Inverse of :func:`architecture_to_dict`; raises :class:`NetworkError` on a malformed spec."""
    if not isinstance(d, dict):
        raise NetworkError(f"architecture spec must be an object, got {type(d).__name__}")
    d = dict(d)
    known = {f.name for f in fields(Architecture)}
    unknown = set(d) - known
    if unknown:
        raise NetworkError(f"unknown architecture fields: {sorted(unknown)}")
    if "n_features" not in d:
        raise NetworkError("architecture spec has no n_features")
    diode = d.pop("diode", {})
    if not isinstance(diode, dict):
        raise NetworkError(f"diode spec must be an object, got {diode!r}")
    dfields = {f.name for f in fields(DiodeModel)}
    if set(diode) - dfields:
        raise NetworkError(f"unknown diode parameters: {sorted(set(diode) - dfields)}")
    hidden = []
    hfields = {f.name for f in fields(HiddenLayer)}
    layers = d.pop("hidden", [])
    if not isinstance(layers, list):
        raise NetworkError(f"hidden must be a list of layers, got {layers!r}")
    for i, h in enumerate(layers, start=1):
        if not isinstance(h, dict):
            raise NetworkError(f"hidden layer {i} must be an object, got {h!r}")
        if set(h) - hfields:
            raise NetworkError(f"unknown hidden-layer parameters: {sorted(set(h) - hfields)}")
        if "size" not in h:
            raise NetworkError(f"hidden layer {i} has no size")
        hidden.append(HiddenLayer(**h))
    pairs = d.pop("crossbars", [])
    if not isinstance(pairs, list) or not all(isinstance(p, list) and len(p) == 2 for p in pairs):
        raise NetworkError(f"crossbars must be a list of [a, b] pairs, got {str(pairs)[:80]}")
    crossbars = tuple(tuple(p) for p in pairs)
    return Architecture(hidden=tuple(hidden), crossbars=crossbars, diode=DiodeModel(**diode), **d)


def atomic_write_bytes(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file and ``os.replace`` (never half-written)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual mode
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def atomic_savez(path, spec: dict, **arrays) -> Path:
    """Save arrays plus a JSON ``spec`` into one ``.npz`` file, atomically."""
    buffer = io.BytesIO()
    np.savez(buffer, __spec__=np.frombuffer(json.dumps(spec).encode(), dtype=np.uint8), **arrays)
    return atomic_write_bytes(path, buffer.getvalue())


#: Largest JSON spec accepted in a circuitprop ``.npz`` file, bytes.
MAX_SPEC_BYTES = 1 << 22
#: Room allowed for the ``.npy`` header of a member, bytes.
_NPY_HEADER_BYTES = 1 << 16


def _read_member(zf, info, path, what, shape=None, max_bytes=None):
    """Read one ``.npy`` member after checking its declared size, dtype and shape (no pickles)."""
    fmt = np.lib.format
    if max_bytes is not None and info.file_size > max_bytes + _NPY_HEADER_BYTES:
        raise NetworkError(f"{path}: member {what!r} declares {info.file_size} bytes, more than the "
                           f"{max_bytes} its spec allows; refusing to decompress it")
    try:
        with zf.open(info) as fh:
            version = fmt.read_magic(fh)
            header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            got_shape, _, dtype = header(fh)
        if shape is not None:
            if dtype.kind != "f" or dtype.itemsize > 8:
                raise NetworkError(f"{path}: {what!r} has dtype {dtype}, expected real floats (float64)")
            if tuple(got_shape) != tuple(shape):
                raise NetworkError(f"{path}: {what!r} has shape {tuple(got_shape)}, expected {tuple(shape)}")
        elif dtype != np.uint8 or len(got_shape) != 1:
            raise NetworkError(f"{path}: {what!r} is not a byte string")
        with zf.open(info) as fh:
            return fmt.read_array(fh, allow_pickle=False)
    except NetworkError:
        raise
    except Exception as exc:  # zipfile.BadZipFile, ValueError, EOFError, zlib.error
        raise NetworkError(f"{path}: cannot read {what!r} ({type(exc).__name__}: {exc})") from None


def load_npz_with_spec(path, expected_format: str, members=None):
    """Read an ``.npz`` written by :func:`atomic_savez`; returns ``(spec, arrays)``.

    The JSON spec is read first.  ``members(spec)`` returns ``{name: shape}`` of the float arrays
    the file must hold; any other member is refused, and every member's declared size, dtype and
    shape are checked before it is decompressed (a hostile file cannot make it allocate more than
    its spec declares).  Arrays the callable names but the file lacks are simply absent from the
    result (the caller says which are required).
    """
    import zipfile
    path = Path(path)
    if not path.exists():
        raise NetworkError(f"{path}: no such file")
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise NetworkError(f"{path}: not a circuitprop file ({type(exc).__name__}: {exc})") from None
    with zf:
        infos = {}
        for info in zf.infolist():
            if not info.filename.endswith(".npy") or "/" in info.filename:
                raise NetworkError(f"{path}: unexpected member {info.filename[:80]!r}; not a circuitprop file")
            infos[info.filename[:-4]] = info
        if "__spec__" not in infos:
            raise NetworkError(f"{path}: no '__spec__' entry; not a circuitprop file")
        raw = _read_member(zf, infos.pop("__spec__"), path, "__spec__", max_bytes=MAX_SPEC_BYTES)
        try:
            spec = json.loads(raw.tobytes().decode())
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise NetworkError(f"{path}: corrupt JSON spec: {exc}") from None
        if not isinstance(spec, dict):
            raise NetworkError(f"{path}: the spec is a JSON {type(spec).__name__}, expected an object")
        if spec.get("format") != expected_format:
            raise NetworkError(f"{path}: format is {spec.get('format')!r}, expected {expected_format!r}")
        if members is None:
            raise NetworkError("load_npz_with_spec needs the expected members")  # pragma: no cover
        expected = members(spec)
        unknown = sorted(set(infos) - set(expected))
        if unknown:
            shown = ", ".join(repr(u[:40]) for u in unknown[:5])
            raise NetworkError(f"{path}: unknown member(s) {shown}{' ...' if len(unknown) > 5 else ''} "
                               f"(this file's spec expects {sorted(expected)[:6]}...)")
        arrays = {}
        for name, info in infos.items():
            shape = expected[name]
            arrays[name] = _read_member(zf, info, path, name, shape=shape, max_bytes=8 * math.prod(shape))
    return spec, arrays


_LAYER_SPEC = re.compile(r"^[0-9]+(?:[-,][0-9]+)+$", re.ASCII)


def parse_layers(text: str) -> tuple:
    """Parse a layer spec such as ``"784-100-10"`` into ``(n_features, [hidden...], n_classes)``.

    Only ASCII digits joined by single ``-`` (or ``,``) are accepted: ``784--10``, ``-5-3``, ``4_0-3-2``
    and non-ASCII digits are refused.
    """
    spec = str(text).strip()
    if not _LAYER_SPEC.match(spec):
        shown = spec if len(spec) <= 60 else spec[:57] + "..."
        raise NetworkError(f"layer spec {shown!r}: expected positive integers joined by '-', e.g. 784-100-10")
    parts = [int(p) for p in re.split(r"[-,]", spec)]
    if any(p < 1 for p in parts):
        raise NetworkError(f"layer spec {spec!r}: every layer needs at least 1 node, e.g. 784-100-10")
    return parts[0], parts[1:-1], parts[-1]


def conductance_bytes(arch: Architecture, itemsize: int = 8) -> int:
    """Bytes the conductance arrays of ``arch`` take (float64 by default)."""
    sizes = arch.layer_sizes
    return sum(sizes[a] * sizes[b] for a, b in arch.crossbars) * itemsize


def physical_memory_bytes() -> int:
    """Total physical memory of this machine, bytes (a large number when unknown)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 1 << 50


def check_memory(arch: Architecture) -> None:
    """Refuse an architecture whose conductances alone would not fit in half of this machine's memory."""
    need = conductance_bytes(arch)
    have = physical_memory_bytes()
    if need > have // 2:
        raise NetworkError(
            f"layers {'-'.join(str(s) for s in arch.layer_sizes)} (circuit nodes) need {need / 2**30:.3g} GiB "
            f"for the conductances alone (training needs about 4x that); this machine has "
            f"{have / 2**30:.3g} GiB of memory")


def make_architecture(layers: str, *, skip: tuple = (), amplifier_gain=None, v_low=0.0, v_high=1.0,
                      diode: DiodeModel | None = None, **kwargs) -> Architecture:
    """Build an :class:`Architecture` from a spec such as ``"784-100-10"``.

    ``layers`` counts features, hidden neurons and classes (not doubled nodes).
    ``skip`` adds crossbars between non-adjacent layers.  Other keyword arguments
    go to :class:`Architecture`.
    """
    n_features, hidden_sizes, n_classes = parse_layers(layers)
    hidden = tuple(HiddenLayer(size=s, v_low=v_low, v_high=v_high, amplifier_gain=amplifier_gain)
                   for s in hidden_sizes)
    crossbars = dense_crossbars(len(hidden) + 2) + tuple(tuple(p) for p in skip)
    return Architecture(n_features=n_features, hidden=hidden, n_classes=n_classes,
                        crossbars=crossbars, diode=diode or DiodeModel(), **kwargs)


__all__ = ["Network", "Architecture", "HiddenLayer", "DiodeModel", "NetworkError", "make_architecture",
           "DIODE_CARDS", "compensated_bias",
           "parse_layers", "dense_crossbars", "validate_architecture", "replace"]
