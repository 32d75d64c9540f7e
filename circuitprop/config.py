"""Every setting of circuitprop, declared once, grouped by what it configures.

- :class:`CircuitConfig`: topology and sources: layer sizes, skip crossbars, amplifiers, inputs, outputs, wires;
- :class:`NeuronConfig`: the hidden neurons: diode model and its bias voltages;
- :class:`EPConfig`: the EP rule: nudging strength, estimator, local rule, target, measurement noise;
- :class:`OptimizerConfig`: learning rate, its schedule, momentum;
- :class:`DeviceConfig`: the programmable conductances: device range, initial range, non-idealities;
- :class:`SolverConfig`: which backend solves the phases, and how;
- :class:`TrainingConfig`: epochs, batch size, seed, augmentation, progress output.

Each field is declared with :func:`circuitprop.declare.setting` (type, unit, default, range, help): the
command-line options of ``init``, ``train`` and ``eval`` and their ``--help``, the checks, checkpoints and sweep
specs are all derived from these declarations.  Field names are unique across the configs, so a setting can
also be named alone (``EPTrainer(beta=1e-6)``, ``beta = 1e-6`` in a sweep spec, ``params["beta"]`` in a
checkpoint); :data:`FLAT` maps each name to its config.

Units: volts (V), amperes (A), siemens (S), ohms.  ``noise_sigma`` is a standard deviation (volts), not a
variance.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass

from .declare import declared, default_of, from_dict, inherit, setting, to_dict, validate
from .errors import ConfigError, NetworkError
from .model import (
    DIODE_CARDS,
    MAX_CONDUCTANCE,
    MAX_GAIN,
    MAX_VOLTAGE,
    MAX_WIRE_RESISTANCE,
    WIRE_LAYOUTS,
    DiodeModel,
    compensated_bias,
    circuit_crossbars,
    Network,
    make_architecture,
    parse_layers,
)
from .model.architecture import hidden_feeders
from .model.devices import PRESETS, make_device

ESTIMATORS = ("centered", "one-sided", "random-sign")
RULES = ("dv2", "sign")
SCHEDULES = ("cosine", "exponential")
BACKENDS = ("fast", "spice")
DTYPES = ("float64", "float32")
DIODES = ("ideal", "shockley") + tuple(DIODE_CARDS)
#: Largest number of sweeps per phase (a bound against runaway settings).
MAX_SWEEPS = 100_000


def _check_skip(value):
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"expected a list of layer pairs like [[0, 2]], got {value!r:.80}")
    for pair in value:
        if isinstance(pair, str):
            pair = parse_pair(pair)
        if (not isinstance(pair, (list, tuple)) or len(pair) != 2
                or not all(isinstance(p, int) and not isinstance(p, bool) and p >= 0 for p in pair)
                or not pair[0] < pair[1]):
            raise ValueError(f"{pair!r:.40} is not a pair of layers (a, b) with 0 <= a < b")


def parse_pair(text: str) -> tuple:
    """``"0-2"`` -> ``(0, 2)``: the two layers a skip crossbar joins."""
    try:
        a, b = (int(p) for p in str(text).split("-"))
    except ValueError:
        raise ValueError(f"{text!r:.40}: expected two layer indices like 0-2") from None
    return a, b


def _normalize_skip(value):
    return tuple(parse_pair(p) if isinstance(p, str) else (int(p[0]), int(p[1])) for p in value)


def _check_device(value):
    make_device(value)  # raises ValueError naming the preset or piece


class Config:
    """Behaviour shared by the configs: validation on creation, plain dicts, one place for cross-field checks."""

    def __post_init__(self):
        self.validate()

    def validate(self, prefix: str | None = None):
        """Check every field (and the constraints between fields); raises :class:`ConfigError`."""
        validate(self, prefix)
        self.check_together()
        return self

    def check_together(self):
        """Constraints that involve several fields (none by default)."""

    def to_dict(self) -> dict:
        return to_dict(self)

    @classmethod
    def from_dict(cls, values: dict, where: str = ""):
        return from_dict(cls, values, where)


def _normalize_gain(value):
    """One gain of 0 means no amplifier (``None``); in a per-layer list a 0 stays (the architecture reads it)."""
    if isinstance(value, list):
        return value
    return None if value == 0 else value


@dataclass
class CircuitConfig(Config):
    """Topology and sources of the circuit."""

    layers: str = setting("784-100-10", "features-hidden...-classes (undoubled counts), e.g. 784-100-10",
                          kind=str, check=parse_layers, metavar="SPEC")
    skip: tuple = setting((), "extra crossbar between layers a-b (repeatable), e.g. 0-2 (inputs to layer 2)",
                          kind=object, check=_check_skip, normalize=_normalize_skip, metavar="A-B")
    drop: tuple = setting((), "leave out the crossbar between consecutive layers a-b (repeatable), e.g. 1-2 with "
                              "--skip 0-2 --skip 1-3: two hidden layers side by side", kind=object,
                          check=_check_skip, normalize=_normalize_skip, metavar="A-B")
    amplifier_gain: float | list | None = setting(4.0, "gain of the bidirectional amplifier after every hidden "
                                                       "layer, or one per hidden layer (0: none)", low=0.0,
                                                  high=MAX_GAIN, optional=True, count="+",
                                                  normalize=_normalize_gain)
    backward_gain: float | list | None = setting(None, "backward current gain of the bidirectional amplifiers, "
                                                       "one for all or one per hidden layer (unset or 0: "
                                                       "the forward gain, an ideal transformer; any other "
                                                       "value makes the circuit non-reciprocal, so the EP "
                                                       "rule is no longer its exact gradient)", low=0.0,
                                                 high=MAX_GAIN, optional=True, count="+",
                                                 normalize=_normalize_gain)
    inverted_copies: bool = setting(False, "every hidden layer that drives another hidden layer drives its "
                                           "crossbars with an inverted copy -A*V too (a second VCVS of gain -A "
                                           "with its CCCS), so hidden-to-hidden weights take both signs; needs "
                                           "amplifiers", kind=bool)
    input_gain: float = setting(1.0, "volts per unit of input feature (pixel values are in [0, 1])", unit="V",
                                low=0.0, low_open=True, high=MAX_GAIN)
    bias_input: bool = setting(True, "bias input nodes at +1 V and -1 V (a bias of either sign for every neuron "
                                     "they reach)", kind=bool)
    doubled_inputs: bool = setting(True, "inputs as the pair (+x, -x) of voltage sources", kind=bool)
    doubled_outputs: bool = setting(True, "two output nodes per class (score = V+ - V-)", kind=bool)
    wire_resistance: float = setting(0.0, "word- and bit-line resistance per crossbar cell (IR drop; 0: ideal "
                                          "wires; slow, for small circuits)", unit="ohm", low=0.0,
                                     high=MAX_WIRE_RESISTANCE, metavar="OHMS")
    wire_layout: str = setting("interleaved", "physical order of the lines: differential pairs side by side, "
                                              "or node order", kind=str, choices=WIRE_LAYOUTS)
    name: str = setting("", "free text written in netlist comments (empty: 'circuitprop EP LAYERS')", kind=str)

    def check_together(self):
        _, hidden, _ = parse_layers(self.layers)
        try:
            pairs = circuit_crossbars(len(hidden), _normalize_skip(self.skip), _normalize_skip(self.drop),
                                      self.layers)
        except NetworkError as exc:
            raise ConfigError(str(exc)) from None
        if self.inverted_copies:
            feeding = sorted(hidden_feeders(len(hidden), pairs))
            if not feeding:
                raise ConfigError(f"inverted_copies applies to hidden layers that drive another hidden layer; "
                                  f"{self.layers} has none (the outputs are read as differences already)")
            gains = self.amplifier_gain
            if not isinstance(gains, list):
                gains = [gains] * len(hidden)
            unamplified = [a for a in feeding if a <= len(gains) and not gains[a - 1]]
            if unamplified:
                raise ConfigError(f"inverted_copies: hidden layer(s) {unamplified} have no amplifier; an inverted "
                                  f"copy is an output of the amplifier (give --amplifier-gain)")


@dataclass
class NeuronConfig(Config):
    """The hidden neurons: two antiparallel diodes to ground, each in series with a bias source."""

    diode: str = setting("ideal", "neuron diodes: ideal (exact clip), shockley (IS, N, RS below) or a model card "
                                  "(biases moved in by its forward voltage at 1 uA, so it still clips near "
                                  "[v_low, v_high])", kind=str, choices=DIODES, aliases=("--diode-model",))
    saturation_current: float = inherit(DiodeModel, "saturation_current", flag="--diode-is")
    emission_coefficient: float = inherit(DiodeModel, "emission_coefficient", flag="--diode-n")
    series_resistance: float = inherit(DiodeModel, "series_resistance", flag="--diode-rs")
    spice_ideal_n: float = inherit(DiodeModel, "spice_ideal_n")
    v_low: float = setting(0.0, "lower diode bias of hidden neurons", unit="V", low=-MAX_VOLTAGE, high=MAX_VOLTAGE)
    v_high: float = setting(1.0, "upper diode bias of hidden neurons", unit="V", low=-MAX_VOLTAGE,
                            high=MAX_VOLTAGE)

    def check_together(self):
        if not self.v_low < self.v_high:
            raise ConfigError(f"need v_low < v_high (V), got {self.v_low} and {self.v_high}")


@dataclass
class EPConfig(Config):
    """The equilibrium-propagation rule: nudging, estimator, local rule, target and measurement noise."""

    beta: float = setting(1e-6, "nudging strength: output currents are beta * error", unit="S", low=0.0,
                          low_open=True, high=MAX_CONDUCTANCE)
    estimator: str = setting("centered", "gradient estimator: centered (+beta, -beta), one-sided (+beta) or "
                                         "random-sign", kind=str, choices=ESTIMATORS)
    rule: str = setting("dv2", "local rule: the dV^2 rule or its sign-only variant", kind=str, choices=RULES)
    target: float = setting(0.02, "score asked of the correct class (the others are asked 0 V)", unit="V",
                            low=-MAX_VOLTAGE, high=MAX_VOLTAGE)
    noise_sigma: float = setting(0.0, "measurement noise: standard deviation of each node-voltage measurement",
                                 unit="V", low=0.0, high=MAX_VOLTAGE)
    noise_samples: int = setting(1, "measurements per phase averaged by the rule", kind=int, low=1,
                                 high=1_000_000)
    noise_inputs: bool = setting(True, "measure the input nodes too, each with its own noise (false: inputs are "
                                       "sources of known voltage; only hidden and output nodes are measured, as "
                                       "in the uncertainty paper)", kind=bool)


@dataclass
class OptimizerConfig(Config):
    """Stochastic gradient descent on normalised conductances ``g / conductance_unit``."""

    learning_rate: float | list = setting(3e5, "learning rate (normalised units), or one per crossbar in "
                                               "crossbar order", low=0.0, count="+", aliases=("--lr",))
    lr_schedule: str = setting("cosine", "exponential: lr * lr_decay**epoch; cosine: from lr to 0 over the run, "
                                         "every batch", kind=str, choices=SCHEDULES)
    lr_decay: float = setting(1.0, "with the exponential schedule, the rate of epoch e is lr * lr_decay**e",
                              low=0.0, low_open=True, high=1e6)
    momentum: float = setting(0.5, "heavy-ball momentum", low=0.0, high=1.0, high_open=True)
    sign_sgd: bool = setting(False, "step by the sign of the gradient estimate", kind=bool)
    conductance_unit: float = setting(1e-6, "siemens per normalised conductance unit (sets the meaning of the "
                                            "learning rate)", unit="S", low=0.0, low_open=True,
                                      high=MAX_CONDUCTANCE)


@dataclass
class DeviceConfig(Config):
    """The programmable conductances: device range, initial range and non-idealities."""

    g_min: float = setting(1e-8, "smallest conductance a device can take; every update is clipped to it",
                           unit="S", low=0.0, low_open=True, high=MAX_CONDUCTANCE)
    g_max: float = setting(1e-4, "largest conductance a device can take", unit="S", low=0.0, low_open=True,
                           high=MAX_CONDUCTANCE)
    g_init: tuple = setting((1e-7, 2e-6), "initial conductances drawn uniformly in [LOW, HIGH] (within "
                                          "[g_min, g_max])", unit="S", low=0.0, low_open=True,
                            high=MAX_CONDUCTANCE, count=2, metavar=("LOW", "HIGH"))
    g_init_scaling: str = setting("none", "amplifier: divide the initial conductances of each crossbar leaving "
                                  "an amplified hidden layer by the gain squared (and by the scale of that "
                                  "layer's own inputs; floored at g_min), so amplified layers do not load the "
                                  "layers before them; balanced: scale the crossbars leaving a hidden layer only "
                                  "as far as their amplified load exceeds the load of the crossbars entering it "
                                  "(narrow output crossbars and one-hidden-layer networks stay as drawn) "
                                  "(Network.random)", kind=str, choices=("none", "amplifier", "balanced"))
    device: object = setting(None, "device non-idealities: a preset (ideal, " + ", ".join(p for p in PRESETS
                                   if p != "ideal") + "), a DeviceModel or its dict", kind=object,
                             check=_check_device, choices=tuple(PRESETS), optional=True)

    def check_together(self):
        if not self.g_min < self.g_max:
            raise ConfigError(f"need 0 < g_min < g_max (S), got {self.g_min} and {self.g_max}")
        if not self.g_init[0] <= self.g_init[1]:
            raise ConfigError(f"g_init must be (low, high) with low <= high (S), got {self.g_init}")
        if not max(self.g_init[0], self.g_min) < min(self.g_init[1], self.g_max):
            raise ConfigError(f"g_init {self.g_init} S has no room inside the device range [g_min, g_max] = "
                              f"[{self.g_min:g}, {self.g_max:g}] S; give an initial range inside it (--g-init LOW HIGH)")


@dataclass
class SolverConfig(Config):
    """Which backend solves every phase, and its settings."""

    backend: str = setting("fast", "solver of every phase: the fast co-content solver or ngspice", kind=str,
                           choices=BACKENDS)
    dtype: str = setting("float64", "floating-point type of conductances, solver and update (fast backend)",
                         kind=str, choices=DTYPES)
    solver_sweeps: int | None = setting(None, "fast backend: exactly this many relaxation sweeps per phase "
                                              "(published EP code uses 4); default: relax to the KCL tolerance",
                                        kind=int, low=1, high=MAX_SWEEPS, optional=True)
    solver_nudged_sweeps: int | None = setting(None, "fast backend, with solver_sweeps: sweeps of the nudged "
                                                     "phases, warm-started from the free phase and begun with the "
                                                     "outputs (1 suffices when every hidden layer has a crossbar "
                                                     "to the outputs); default: solver_sweeps", kind=int, low=1,
                                               high=MAX_SWEEPS, optional=True)
    solver_tol: float = setting(1e-10, "fast backend: KCL residual tolerance", unit="A", low=0.0, low_open=True,
                                high=1.0)
    solver_relaxation: float = setting(1.0, "fast backend: over-relaxation factor omega of each layer update "
                                            "(1: plain coordinate descent; 1.5-1.8 speeds up deep networks; same "
                                            "steady state; ideal diodes)", low=0.0, low_open=True, high=2.0,
                                       high_open=True)
    fold_inputs: bool = setting(True, "spice backend: Norton-fold the input crossbars (exact for linear "
                                      "inputs; much faster)", kind=bool)
    spice_workers: int = setting(1, "spice backend: ngspice processes solving each batch in parallel", kind=int,
                                 low=1, high=64, metavar="N")

    def check_together(self):
        # a setting that would do nothing with this backend is refused, not silently ignored
        if self.backend == "spice" and self.dtype != "float64":
            raise ConfigError("dtype='float32' is for the fast backend; ngspice computes in float64")
        if self.backend == "spice" and self.solver_sweeps is not None:
            raise ConfigError("solver_sweeps applies to the fast backend; ngspice solves every phase to its own "
                              "convergence tolerances (drop --solver-sweeps, or use --backend fast)")
        if self.solver_nudged_sweeps is not None and self.solver_sweeps is None:
            raise ConfigError("solver_nudged_sweeps needs solver_sweeps (fixed sweeps of the free phase): a solve to "
                              "the KCL tolerance has no sweep count to shorten")
        if self.backend == "spice" and self.solver_relaxation != 1.0:
            raise ConfigError("solver_relaxation applies to the fast backend (drop --solver-relaxation, or use "
                              "--backend fast)")
        if self.backend == "fast" and not self.fold_inputs:
            raise ConfigError("fold_inputs=False (--no-fold-inputs) applies to the spice backend; the fast solver "
                              "always uses the exact Norton drive of the inputs")


@dataclass
class TrainingConfig(Config):
    """How long and in what order to train (the estimator's own parameters)."""

    epochs: int = setting(3, "passes over the training set (0: initialise only)", kind=int, low=0, high=1_000_000)
    batch_size: int = setting(16, "examples per EP step", kind=int, low=1, high=1_000_000)
    seed: int = setting(0, "random seed (initial conductances, example order, noise)", kind=int, low=0)
    augment_shift: int = setting(0, "move each training image by a random whole number of pixels, up to this "
                                 "many along each axis, new shifts every epoch (0: no augmentation; the "
                                 "papers compared against use none)", kind=int, low=0, high=27)
    augment_flip: bool = setting(False, "mirror a random half of the training images left to right, a new half "
                                 "every epoch (for garments, not digits; the papers compared against use "
                                 "none)", kind=bool)
    verbose: bool = setting(True, "progress bar and per-epoch lines", kind=bool, cli=False)


#: The configs of :class:`~circuitprop.learning.EPTrainer`, by parameter name (``TrainingConfig``'s fields are
#: the trainer's own top-level parameters).
CONFIGS = {"circuit": CircuitConfig, "neuron": NeuronConfig, "ep": EPConfig, "optimizer": OptimizerConfig,
           "devices": DeviceConfig, "solver": SolverConfig}

#: Every setting's name -> the parameter (config) that holds it (``None``: a top-level training setting).
FLAT = {name: group for group, cls in CONFIGS.items() for name in declared(cls)}
FLAT.update({name: None for name in declared(TrainingConfig)})

#: The value that files written before a setting existed were made with (where it differs from today's default).
LEGACY = {"lr_schedule": "exponential", "dtype": "float64", "device": None, "spice_ideal_n": 0.001,
          "spice_workers": 1}
#: Settings a checkpoint may lack: those added after the first checkpoints (``LEGACY``), those added later
#: whose defaults are what earlier releases did (the configs' fields, ``noise_inputs``, ``solver_relaxation``),
#: and ``verbose`` (not a property of the run).
OPTIONAL_IN_FILES = set(LEGACY) | {"doubled_inputs", "name", "saturation_current", "emission_coefficient",
                                   "series_resistance", "verbose", "noise_inputs", "solver_relaxation",
                                   "augment_shift", "augment_flip", "g_init_scaling",
                                   "solver_nudged_sweeps", "inverted_copies", "backward_gain", "drop"}


def architecture_from(circuit: CircuitConfig, neuron: NeuronConfig):
    """The :class:`~circuitprop.model.Architecture` these settings describe (the circuit's one derivation).

    A diode model card (e.g. ``"1n4148"``) moves the biases in by its forward voltage at 1 uA
    (:func:`~circuitprop.model.compensated_bias`) so that the neuron still clips near ``[v_low, v_high]``.
    """
    v_low, v_high = neuron.v_low, neuron.v_high
    if neuron.diode in ("ideal", "shockley"):
        diode = DiodeModel(kind=neuron.diode, saturation_current=neuron.saturation_current,
                           emission_coefficient=neuron.emission_coefficient,
                           series_resistance=neuron.series_resistance, spice_ideal_n=neuron.spice_ideal_n)
    else:
        diode = DiodeModel.from_card(neuron.diode, spice_ideal_n=neuron.spice_ideal_n)
        v_low, v_high = compensated_bias(diode, v_low, v_high)
    return make_architecture(circuit.layers, skip=circuit.skip, drop=circuit.drop,
                             amplifier_gain=circuit.amplifier_gain, inverted_copies=circuit.inverted_copies,
                             backward_gain=circuit.backward_gain, v_low=v_low, v_high=v_high, diode=diode,
                             doubled_inputs=circuit.doubled_inputs, doubled_outputs=circuit.doubled_outputs,
                             input_gain=circuit.input_gain, bias_input=circuit.bias_input,
                             wire_resistance=float(circuit.wire_resistance), wire_layout=circuit.wire_layout,
                             name=circuit.name or f"circuitprop EP {circuit.layers}")


def initial_network(architecture, devices: DeviceConfig, seed, dtype="float64"):
    """The random starting :class:`~circuitprop.model.Network` these device settings describe (the trainer's
    and ``circuitprop init``'s one draw): uniform in ``g_init`` within ``[g_min, g_max]`` (S), scaled per crossbar
    with ``g_init_scaling`` and floored at ``g_min``."""
    lo, hi = devices.g_init
    return Network.random(architecture, g_min=max(lo, devices.g_min), g_max=min(hi, devices.g_max), seed=seed,
                          dtype=dtype, init="uniform" if devices.g_init_scaling == "none" else devices.g_init_scaling,
                          floor=devices.g_min)


def declaration(name: str) -> tuple:
    """``(dataclasses.Field, Setting)`` of a setting by its name."""
    cls = TrainingConfig if FLAT[name] is None else CONFIGS[FLAT[name]]
    return declared(cls)[name]


def spec_of(name: str):
    """The :class:`~circuitprop.declare.Setting` of a setting by its name."""
    return declaration(name)[1]


def defaults() -> dict:
    """``{setting: default}`` for every setting (flat)."""
    out = {}
    for cls in list(CONFIGS.values()) + [TrainingConfig]:
        out.update({name: default_of(f) for name, (f, _) in declared(cls).items()})
    return out


def split(flat: dict, where: str = "") -> tuple:
    """Group flat settings by config: ``({config name: {field: value}}, {training field: value})``; unknown
    names are refused with the closest known ones."""
    groups, top = {}, {}
    for name, value in flat.items():
        if name not in FLAT:
            near = difflib.get_close_matches(name, FLAT, n=3)
            raise ConfigError(f"{where}{': ' if where else ''}unknown setting {name!r}"
                              + (f" (did you mean {', '.join(near)}?)" if near else ""))
        if FLAT[name] is None:
            top[name] = value
        else:
            groups.setdefault(FLAT[name], {})[name] = value
    return groups, top


__all__ = ["CircuitConfig", "NeuronConfig", "EPConfig", "OptimizerConfig", "DeviceConfig", "SolverConfig",
           "TrainingConfig", "CONFIGS", "FLAT", "LEGACY", "OPTIONAL_IN_FILES", "architecture_from", "defaults",
           "split", "declaration", "spec_of", "parse_pair"]
