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
import tempfile
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import networkx as nx
import numpy as np

#: Boltzmann constant (J/K) and elementary charge (C) as used by ngspice 39.
BOLTZMANN = 1.38064852e-23
CHARGE = 1.6021766208e-19
#: Nominal temperature of SPICE simulators (27 °C), kelvin.
TNOM_KELVIN = 300.15

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


def _check_real(value, what, positive=False):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise NetworkError(f"{what} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or (positive and value <= 0):
        raise NetworkError(f"{what} must be finite{' and positive' if positive else ''}, got {value!r}")
    return value


def validate_architecture(arch: Architecture) -> None:
    """Raise :class:`NetworkError` naming the first problem found in ``arch``."""
    _check_int(arch.n_features, "n_features")
    _check_int(arch.n_classes, "n_classes")
    _check_real(arch.input_gain, "input_gain", positive=True)
    _check_real(arch.bias_voltage, "bias_voltage")
    for i, h in enumerate(arch.hidden, start=1):
        if not isinstance(h, HiddenLayer):
            raise NetworkError(f"hidden layer {i} must be a HiddenLayer, got {type(h).__name__}")
        _check_int(h.size, f"hidden layer {i} size")
        lo = _check_real(h.v_low, f"hidden layer {i} v_low")
        hi = _check_real(h.v_high, f"hidden layer {i} v_high")
        if not lo < hi:
            raise NetworkError(f"hidden layer {i}: v_low ({lo} V) must be below v_high ({hi} V)")
        if h.amplifier_gain is not None:
            _check_real(h.amplifier_gain, f"hidden layer {i} amplifier_gain", positive=True)
        if h.backward_gain is not None:
            if h.amplifier_gain is None:
                raise NetworkError(f"hidden layer {i}: backward_gain given without amplifier_gain")
            _check_real(h.backward_gain, f"hidden layer {i} backward_gain", positive=True)
    if not isinstance(arch.diode, DiodeModel):
        raise NetworkError(f"diode must be a DiodeModel, got {type(arch.diode).__name__}")
    seen = set()
    for pair in arch.crossbars:
        if len(pair) != 2:
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
        ``{(a, b): array}`` with one float64 array of shape
        ``(layer_sizes[a], layer_sizes[b])`` in siemens per crossbar; element
        ``[i, j]`` joins node ``i`` of layer ``a`` to node ``j`` of layer ``b``.
    """

    def __init__(self, architecture: Architecture, conductances: dict):
        validate_architecture(architecture)
        self.architecture = architecture
        self.conductances = {}
        sizes = architecture.layer_sizes
        given = {tuple(int(x) for x in k): v for k, v in conductances.items()}
        extra = set(given) - set(architecture.crossbars)
        if extra:
            raise NetworkError(f"conductances given for crossbars not in the architecture: {sorted(extra)}")
        for key in architecture.crossbars:
            if key not in given:
                raise NetworkError(f"no conductance array for crossbar {key}")
            array = np.array(given[key], dtype=np.float64)
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
               seed=None, init: str = "uniform") -> "Network":
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
        rng = np.random.default_rng(seed)
        sizes = architecture.layer_sizes
        conductances = {
            (a, b): rng.uniform(g_min, g_max, size=(sizes[a], sizes[b])) for a, b in architecture.crossbars
        }
        return cls(architecture, conductances)

    def copy(self) -> "Network":
        return Network(self.architecture, {k: v.copy() for k, v in self.conductances.items()})

    # -- conveniences -------------------------------------------------------
    @property
    def layer_sizes(self) -> tuple:
        return self.architecture.layer_sizes

    def input_voltages(self, x) -> np.ndarray:
        """Voltages (volts) of the input nodes for features ``x`` of shape (B, n_features)."""
        arch = self.architecture
        x = np.asarray(x, dtype=np.float64)
        if x.ndim == 1:
            x = x[None, :]
        if x.ndim != 2 or x.shape[1] != arch.n_features:
            raise NetworkError(
                f"inputs have shape {x.shape}, expected (batch, {arch.n_features})")
        if not np.all(np.isfinite(x)):
            raise NetworkError("inputs contain non-finite values")
        parts = [arch.input_gain * x]
        if arch.doubled_inputs:
            parts.append(-arch.input_gain * x)
        if arch.bias_input:
            parts.append(np.full((x.shape[0], 1), arch.bias_voltage))
            if arch.doubled_inputs:
                parts.append(np.full((x.shape[0], 1), -arch.bias_voltage))
        return np.concatenate(parts, axis=1)

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
        spec, arrays = load_npz_with_spec(path, FORMAT_NAME)
        version = spec.get("version")
        if version != FORMAT_VERSION:
            raise NetworkError(f"{path}: unsupported network format version {version!r} "
                               f"(this circuitprop reads version {FORMAT_VERSION})")
        try:
            arch = architecture_from_dict(spec["architecture"])
        except (KeyError, TypeError) as exc:
            raise NetworkError(f"{path}: malformed architecture spec: {exc}") from exc
        conductances = {}
        for a, b in arch.crossbars:
            key = f"g_{a}_{b}"
            if key not in arrays:
                raise NetworkError(f"{path}: missing conductance array {key!r}")
            conductances[(a, b)] = arrays[key]
        try:
            return cls(arch, conductances)
        except NetworkError as exc:
            raise NetworkError(f"{path}: {exc}") from exc


def check_conductances(array: np.ndarray, where: str) -> None:
    """Raise if any conductance is non-finite or not positive, naming the first bad entry."""
    bad = ~np.isfinite(array) | (array <= 0)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise NetworkError(
            f"{where}: conductance at index {index} is {array[index]!r} S; conductances must be "
            f"finite and > 0 ({int(bad.sum())} bad entries)")


# -- (de)serialisation helpers ------------------------------------------------

def architecture_to_dict(arch: Architecture) -> dict:
    d = asdict(arch)
    d["crossbars"] = [list(p) for p in arch.crossbars]
    return d


def architecture_from_dict(d: dict) -> Architecture:
    d = dict(d)
    known = {f.name for f in fields(Architecture)}
    unknown = set(d) - known
    if unknown:
        raise NetworkError(f"unknown architecture fields: {sorted(unknown)}")
    diode = d.pop("diode", {})
    dfields = {f.name for f in fields(DiodeModel)}
    if set(diode) - dfields:
        raise NetworkError(f"unknown diode parameters: {sorted(set(diode) - dfields)}")
    hidden = []
    hfields = {f.name for f in fields(HiddenLayer)}
    for h in d.pop("hidden", []):
        if set(h) - hfields:
            raise NetworkError(f"unknown hidden-layer parameters: {sorted(set(h) - hfields)}")
        hidden.append(HiddenLayer(**h))
    crossbars = tuple(tuple(p) for p in d.pop("crossbars", []))
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


def load_npz_with_spec(path, expected_format: str):
    """Read an ``.npz`` written by :func:`atomic_savez`; returns ``(spec, arrays)``."""
    path = Path(path)
    if not path.exists():
        raise NetworkError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except Exception as exc:  # zipfile.BadZipFile, ValueError, OSError
        raise NetworkError(f"{path}: not a circuitprop file ({type(exc).__name__}: {exc})") from exc
    if "__spec__" not in arrays:
        raise NetworkError(f"{path}: no '__spec__' entry; not a circuitprop file")
    try:
        spec = json.loads(arrays.pop("__spec__").tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise NetworkError(f"{path}: corrupt JSON spec: {exc}") from exc
    if spec.get("format") != expected_format:
        raise NetworkError(f"{path}: format is {spec.get('format')!r}, expected {expected_format!r}")
    return spec, arrays


def parse_layers(text: str) -> tuple:
    """Parse a layer spec such as ``"784-100-10"`` into ``(n_features, [hidden...], n_classes)``."""
    try:
        parts = [int(p) for p in str(text).replace(",", "-").split("-") if p.strip()]
    except ValueError as exc:
        raise NetworkError(f"layer spec {text!r}: expected integers joined by '-', e.g. 784-100-10") from exc
    if len(parts) < 2 or any(p < 1 for p in parts):
        raise NetworkError(f"layer spec {text!r}: need at least inputs-outputs, all positive, e.g. 784-100-10")
    return parts[0], parts[1:-1], parts[-1]


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
           "parse_layers", "dense_crossbars", "validate_architecture", "replace"]
