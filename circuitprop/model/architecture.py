"""The architecture of a network: layers, crossbars, sources and neurons (everything but the conductances)."""
from __future__ import annotations

import math
import os
import re
from dataclasses import asdict, dataclass, field, fields

import networkx as nx
import numpy as np

from ..errors import NetworkError
from .constants import MAX_GAIN, MAX_VOLTAGE, MAX_WIRE_RESISTANCE, MIN_WIRE_RESISTANCE, WIRE_LAYOUTS
from .diode import DiodeModel


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
    inverted_copy : bool
        A second output of the amplifier at ``-A*V`` (a VCVS of gain ``-A`` with its CCCS of gain
        ``-c``: an ideal transformer of ratio ``-A``).  Crossbars leaving the layer then have ``2*size``
        rows, the first ``size`` driven by ``A*V`` and the rest by ``-A*V``, so they weigh the layer's
        neurons with both signs, as the doubled inputs do for the input crossbars.  Needs an amplifier.
    """

    size: int
    v_low: float = 0.0
    v_high: float = 1.0
    amplifier_gain: float | None = None
    backward_gain: float | None = None
    inverted_copy: bool = False

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

    def inverted(self, layer: int) -> bool:
        """True when hidden ``layer`` drives its crossbars with an inverted copy too (``2*size`` rows)."""
        return 1 <= layer <= len(self.hidden) and self.hidden[layer - 1].inverted_copy

    def row_count(self, layer: int) -> int:
        """Rows of every crossbar leaving ``layer``: its nodes, twice over with an inverted copy."""
        return self.layer_sizes[layer] * (2 if self.inverted(layer) else 1)

    def crossbar_shape(self, a: int, b: int) -> tuple:
        """Shape ``(rows, columns)`` of the conductance array of crossbar ``(a, b)``."""
        return self.row_count(a), self.layer_sizes[b]

    def row_voltages(self, layer: int, voltages):
        """Voltages (V) that drive the rows of a crossbar leaving ``layer``, from its node voltages (last axis):
        ``A*V``, followed by ``-A*V`` with an inverted copy."""
        gain = self.forward_gain(layer)
        u = voltages if gain == 1.0 else gain * voltages
        return np.concatenate([u, -u], axis=-1) if self.inverted(layer) else u

    def fold_rows(self, layer: int, values, signed: bool = True):
        """Per-row quantities of a crossbar leaving ``layer`` (last axis) brought back to its nodes: the row
        of the inverted copy counts with the opposite sign (``signed``: currents, voltage derivatives) or
        the same (conductance sums, magnitudes).  Without an inverted copy: ``values`` itself."""
        if not self.inverted(layer):
            return values
        n = self.layer_sizes[layer]
        return values[..., :n] - values[..., n:] if signed else values[..., :n] + values[..., n:]

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
        if _check_bool(h.inverted_copy, f"hidden layer {i} inverted_copy"):
            if h.amplifier_gain is None:
                raise NetworkError(f"hidden layer {i}: an inverted copy is an output of the amplifier; give the "
                                   f"layer an amplifier_gain")
            if arch.wire_resistance > 0:
                raise NetworkError(f"hidden layer {i}: inverted copies are not supported with wire resistance yet")
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


def hidden_feeders(n_hidden: int, crossbars) -> set:
    """The hidden layers (1..n_hidden) with a crossbar into another hidden layer: those an inverted copy serves
    (the outputs are read as differences already)."""
    return {a for a, b in crossbars if 1 <= a and b <= n_hidden}


def dense_crossbars(n_layers: int) -> tuple:
    """Crossbars between consecutive layers: ``((0, 1), (1, 2), ...)``."""
    return tuple((i, i + 1) for i in range(n_layers - 1))


def circuit_crossbars(n_hidden: int, skip=(), drop=(), layers: str = "") -> tuple:
    """The crossbars of a layered circuit with ``n_hidden`` hidden layers: those between consecutive layers
    except the ``drop`` pairs, then the ``skip`` pairs, in the order given (the order of per-crossbar settings
    such as learning rates).  Raises :class:`NetworkError` when a dropped pair is not a crossbar between
    consecutive layers."""
    dense = dense_crossbars(n_hidden + 2)
    dropped = {tuple(p) for p in drop}
    unknown = sorted(dropped - set(dense))
    if unknown:
        first, second = unknown[0]
        droppable = ", ".join(f"{a}-{b}" for a, b in dense)
        raise NetworkError(f"cannot drop crossbar {first}-{second}{' of ' + layers if layers else ''}: only "
                           f"crossbars between consecutive layers ({droppable}) can be dropped")
    return tuple(p for p in dense if p not in dropped) + tuple(tuple(p) for p in skip)


def architecture_to_dict(arch: Architecture) -> dict:
    d = asdict(arch)
    d["crossbars"] = [list(p) for p in arch.crossbars]
    for h in d["hidden"]:  # written only when set: files and fingerprints of networks without it are unchanged
        if not h["inverted_copy"]:
            del h["inverted_copy"]
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
    return sum(math.prod(arch.crossbar_shape(a, b)) for a, b in arch.crossbars) * itemsize


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


def _per_hidden_layer(value, n_hidden: int, layers: str, what: str) -> list:
    """One value per hidden layer from one value or a list of them (``None`` or 0: none)."""
    if isinstance(value, (list, tuple)):
        if len(value) != n_hidden:
            raise NetworkError(f"{len(value)} {what} given for {n_hidden} hidden layers ({layers}): give one, "
                               f"or one per hidden layer")
        return [None if v is None or v == 0 else v for v in value]
    return [None if value == 0 else value] * n_hidden


def make_architecture(layers: str, *, skip: tuple = (), amplifier_gain=None, v_low=0.0, v_high=1.0,
                      diode: DiodeModel | None = None, inverted_copies: bool = False, backward_gain=None,
                      drop: tuple = (), **kwargs) -> Architecture:
    """Build an :class:`Architecture` from a spec such as ``"784-100-10"``.

    ``layers`` counts features, hidden neurons and classes (not doubled nodes).
    ``skip`` adds crossbars between non-adjacent layers; ``drop`` leaves out crossbars between consecutive
    layers (every layer must still be joined to the inputs by some chain of crossbars).  ``amplifier_gain`` is
    one gain for every hidden layer or a list with one per hidden layer (``None``: no amplifier).
    ``inverted_copies`` gives every hidden layer that drives another hidden layer an inverted copy
    (:class:`HiddenLayer`).  ``backward_gain`` is the amplifiers' backward current gain, one for every
    amplified layer or a list with one per hidden layer (``None``: the forward gain, an ideal transformer; any
    other value makes the circuit non-reciprocal, :class:`HiddenLayer`).  Other keyword arguments go to
    :class:`Architecture`.
    """
    n_features, hidden_sizes, n_classes = parse_layers(layers)
    gains = _per_hidden_layer(amplifier_gain, len(hidden_sizes), layers, "amplifier gains")
    if isinstance(backward_gain, (list, tuple)) or not backward_gain:
        backward = _per_hidden_layer(backward_gain, len(hidden_sizes), layers, "backward gains")
    elif any(gains):  # one value: the amplified layers only
        backward = [backward_gain if g else None for g in gains]
    else:
        raise NetworkError(f"backward_gain {backward_gain} given, but no hidden layer of {layers} has an "
                           f"amplifier (give --amplifier-gain)")
    crossbars = circuit_crossbars(len(hidden_sizes), skip, drop, layers)
    feeds_hidden = hidden_feeders(len(hidden_sizes), crossbars)
    hidden = tuple(HiddenLayer(size=s, v_low=v_low, v_high=v_high, amplifier_gain=g, backward_gain=c,
                               inverted_copy=bool(inverted_copies) and layer in feeds_hidden)
                   for layer, (s, g, c) in enumerate(zip(hidden_sizes, gains, backward), start=1))
    return Architecture(n_features=n_features, hidden=hidden, n_classes=n_classes,
                        crossbars=crossbars, diode=diode or DiodeModel(), **kwargs)


