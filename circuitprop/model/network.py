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

import hashlib
import json
import warnings
from pathlib import Path

import numpy as np

from ..errors import NetworkError
from ..io.files import atomic_savez, load_npz_with_spec
from .architecture import (
    Architecture,
    _check_int,
    _check_real,
    architecture_from_dict,
    architecture_to_dict,
    check_memory,
    validate_architecture,
)
from .constants import MAX_CONDUCTANCE, MAX_VOLTAGE

FORMAT_NAME = "circuitprop-network"
FORMAT_VERSION = 1


#: The initialisations of :meth:`Network.random`.
INITS = ("uniform", "amplifier", "balanced")


def amplifier_init_scales(architecture: Architecture) -> dict:
    """Scale of each crossbar's initial conductances that keeps amplified layers from loading the ones before.

    Behind a bidirectional amplifier of gain ``A`` (an ideal transformer) a crossbar leaving hidden layer ``a``
    weighs ``A**2`` times its conductance on layer ``a``'s nodes.  Drawn from the same range as the crossbars
    that drive layer ``a``, it would set layer ``a``'s voltages more than they do (with 1024 neurons a side and
    ``A = 4``: 17 mS against 1.6 mS at init) and the learning signal would barely reach them.  So the crossbars
    leaving layer ``a`` get the scale ``s_a / A_a**2``, where ``s_a`` is the largest scale of the crossbars
    entering layer ``a`` (1 for crossbars from the inputs): ``1 / A**2`` behind each hidden layer with input
    skips, ``1 / A**(2k)`` behind the ``k``-th hidden layer of a chain without skips.  Layers without an
    amplifier keep the scale of their inputs.  With a backward current gain ``c`` other than ``A``
    (non-reciprocal amplifiers) the load is ``A * c`` times the conductance, and that is the divisor.

    Returns
    -------
    dict
        ``{(a, b): scale}`` for every crossbar (1.0 for crossbars from the inputs).
    """
    entering = {}
    scales = {}
    for a, b in sorted(architecture.crossbars):
        if a == 0:
            scale = 1.0
        else:
            layer = architecture.hidden[a - 1]
            scale = entering.get(a, 1.0) / (layer.forward_gain * layer.current_gain)  # A**2 for a transformer
        scales[(a, b)] = scale
        entering[b] = max(entering.get(b, 0.0), scale)
    return scales


def balanced_init_scales(architecture: Architecture) -> dict:
    """Scale of each crossbar's initial conductances that caps the load an amplified layer puts on the one before.

    Behind a bidirectional amplifier (forward gain ``A``, backward current gain ``B``) a crossbar leaving hidden
    layer ``a`` weighs ``A * B`` times its conductance on layer ``a``'s nodes.  With every crossbar drawn from
    the same range, the load on a node of layer ``a`` from the crossbars entering it is proportional to
    ``L_in(a) = sum_c n_c s_(c,a)`` (``n_c`` nodes in layer ``c``, ``s`` the scales chosen so far; inputs have
    scale 1) and the load from the crossbars leaving it to ``L_out(a) = A B sum_b n_b``.  All crossbars leaving
    ``a`` get the scale ``min(1, L_in(a) / L_out(a))``: unchanged where the amplified layer does not outweigh
    its inputs (a 1024-neuron layer feeding 20 outputs through gain 4: 320 against 1568 doubled inputs), cut to
    the inputs' weight where it would (1024 -> 1024 through gain 4: ``1568 / (16 * 1024)``).  Unlike
    :func:`amplifier_init_scales` it leaves narrow output crossbars and networks that are not overloaded alone.

    Returns
    -------
    dict
        ``{(a, b): scale}`` for every crossbar (1.0 for crossbars from the inputs).
    """
    sizes = architecture.layer_sizes
    load_in = dict.fromkeys(range(len(sizes)), 0.0)
    scales = {}
    for a in range(len(sizes) - 1):  # crossbars run forward, so every load into ``a`` is known by now
        leaving = [b for aa, b in architecture.crossbars if aa == a]
        scale = 1.0
        if a > 0:
            layer = architecture.hidden[a - 1]
            load_out = layer.forward_gain * layer.current_gain * sum(sizes[b] for b in leaving)
            scale = min(1.0, load_in[a] / (load_out * (2 if architecture.inverted(a) else 1)))
        for b in leaving:
            scales[(a, b)] = scale
            load_in[b] += architecture.row_count(a) * scale
    return scales


_INIT_SCALES = {"amplifier": amplifier_init_scales, "balanced": balanced_init_scales}


class Network:
    """An analog network: an :class:`Architecture` plus conductance arrays.

    Parameters
    ----------
    architecture : Architecture
    conductances : dict
        ``{(a, b): array}`` with one array of shape ``architecture.crossbar_shape(a, b)``
        (``(layer_sizes[a], layer_sizes[b])``, or twice the rows behind an inverted copy) in siemens per
        crossbar; element ``[i, j]`` joins node ``i`` of layer ``a`` (row ``size + i``: its inverted copy)
        to node ``j`` of layer ``b``.
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
            expected = architecture.crossbar_shape(*key)
            if array.shape != expected:
                raise NetworkError(
                    f"crossbar {key}: conductance array has shape {array.shape}, expected {expected} "
                    f"(layer sizes {sizes})")
            check_conductances(array, f"crossbar {key}")
            self.conductances[key] = array

    # -- construction -----------------------------------------------------
    @classmethod
    def random(cls, architecture: Architecture, g_min: float = 1e-7, g_max: float = 1e-5,
               seed=None, init: str = "uniform", dtype="float64", floor: float | None = None) -> "Network":
        """A network with random conductances (siemens).

        ``init="uniform"`` draws each conductance uniformly in ``[g_min, g_max]``.  ``init="amplifier"`` and
        ``init="balanced"`` then multiply each crossbar by :func:`amplifier_init_scales` or
        :func:`balanced_init_scales` (the same draws, scaled; raised to ``floor`` siemens where that is given,
        the device minimum).  A crossbar whose whole scaled range lies below ``floor`` starts with every
        conductance equal to it (a chain of amplified layers without skips: ``1 / A**(2k)`` behind the ``k``-th);
        a warning names it.
        """
        _check_real(g_min, "g_min", positive=True)
        _check_real(g_max, "g_max", positive=True)
        if not g_min < g_max:
            raise NetworkError(f"g_min ({g_min} S) must be below g_max ({g_max} S)")
        if init not in INITS:
            raise NetworkError(f"unknown init {init!r} (known: {', '.join(map(repr, INITS))})")
        validate_architecture(architecture)
        check_memory(architecture)
        rng = np.random.default_rng(seed)
        conductances = {
            (a, b): rng.uniform(g_min, g_max, size=architecture.crossbar_shape(a, b)) for a, b in architecture.crossbars
        }
        if init in _INIT_SCALES:
            for key, scale in _INIT_SCALES[init](architecture).items():
                conductances[key] *= scale
                if floor is not None:
                    np.maximum(conductances[key], floor, out=conductances[key])
                    if g_max * scale <= floor:
                        warnings.warn(
                            f"crossbar {key[0]}-{key[1]}: the {init!r} initial scale {scale:.3g} puts its whole "
                            f"range ({g_min * scale:.3g} to {g_max * scale:.3g} S) below the floor {floor:.3g} S, so "
                            f"every one of its conductances starts at {floor:.3g} S: no random draw is left to "
                            f"tell its neurons apart", stacklevel=2)
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

    def input_voltages(self, x, dtype=np.float64, out=None) -> np.ndarray:
        """Voltages (volts) of the input nodes for features ``x`` of shape (B, n_features), as ``dtype``.

        Columns: ``gain * x``, then ``-gain * x`` (doubled inputs), then the bias source(s).  Written into
        one array (``out`` when given: the fast solver's kernel writes the same values in one pass,
        :func:`circuitprop.kernels.fused.input_voltages`).  Non-finite features and sources above
        ``MAX_VOLTAGE`` are refused, naming the sample and feature.
        """
        x = self.check_inputs(x)
        batch, n = x.shape
        arch = self.architecture
        v = np.empty((batch, arch.layer_sizes[0]), dtype=dtype) if out is None else out
        # max and min propagate NaN and see infinities: one check without an |x| temporary
        largest = max(float(np.max(x)), -float(np.min(x))) if x.size else 0.0
        self.check_input_extremes(x, largest, np.isfinite(largest))
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

    def check_inputs(self, x) -> np.ndarray:
        """Features as a float64 array of shape (B, n_features) (a 1-D vector is one sample)."""
        arch = self.architecture
        x = np.asarray(x, dtype=np.float64)
        if x.ndim == 1:
            x = x[None, :]
        if x.ndim != 2 or x.shape[1] != arch.n_features:
            raise NetworkError(f"inputs have shape {x.shape}, expected (batch, {arch.n_features})")
        return x

    def check_input_extremes(self, x, largest: float, finite: bool) -> None:
        """Refuse features ``x`` whose largest magnitude is ``largest`` (``finite``: no NaN or infinity seen),
        naming the first bad sample and feature."""
        arch = self.architecture
        if not finite:
            bad = tuple(int(i) for i in np.argwhere(~np.isfinite(x))[0])
            raise NetworkError(f"inputs contain non-finite values (first at sample {bad[0]}, feature {bad[1]})")
        largest *= arch.input_gain
        if largest > MAX_VOLTAGE:
            bad = tuple(int(i) for i in np.unravel_index(np.argmax(np.abs(x)), x.shape))
            raise NetworkError(f"input at sample {bad[0]}, feature {bad[1]} makes a source of {largest:.3g} V "
                               f"(input_gain {arch.input_gain:g} V per unit); circuitprop accepts up to "
                               f"{MAX_VOLTAGE:g} V")

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
            return {f"g_{a}_{b}": arch.crossbar_shape(a, b) for a, b in arch.crossbars}

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

