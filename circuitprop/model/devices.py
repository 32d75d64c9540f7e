"""Device non-idealities of programmable conductances, as small composable pieces.

The optimizer decides a *desired* change ``delta`` (siemens) of every conductance; a real device does
not make exactly that change.  A :class:`DeviceModel` is an ordered list of pieces, each a frozen dataclass
that transforms the change or the written value (conductances in siemens, inside ``[g_min, g_max]``):

=====================  =====================================================================================
piece                  what it does to one update
=====================  =====================================================================================
DeviceToDevice         every device has its own fixed step scale ``1 + sigma * N(0, 1)`` (>= 0), drawn once
AsymmetricSteps        up steps are scaled by ``up``, down steps by ``down``
SoftBounds             a step shrinks linearly to 0 at the bound it moves toward
NonlinearSteps         a step shrinks as ``exp(-nonlinearity * distance travelled from its start bound)``
CycleToCycle           every step is scaled by ``1 + sigma * N(0, 1)``, drawn anew at each update
QuantizedStates        the written value is one of ``n_states`` equally spaced levels (nearest, or stochastic
                       rounding that keeps the mean update)
ProgrammingError       the written value is off by ``sigma * (g_max - g_min) * N(0, 1)`` (devices written only)
ReadNoise              every solve (read) sees ``g * (1 + sigma * N(0, 1))``; the stored value is unchanged
=====================  =====================================================================================

Pieces act in the order they are listed in :attr:`DeviceModel.pieces`; :func:`make_device` gives presets
(named after device types, with parameters chosen here as illustrative values in the ranges reported for
such devices, not fitted to any one publication).  Noise comes from the trainer's random generator, so a
resumed run stays exact.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

import numpy as np

from ..declare import setting, validate

#: Largest relative spread (standard deviation per unit) of a device piece: beyond it a "device" is noise.
MAX_SIGMA = 100.0


class _Piece:
    """A device piece checks its declared fields on creation (errors name the piece and the field)."""

    def __post_init__(self):
        validate(self, type(self).__name__)


@dataclass(frozen=True)
class DeviceToDevice(_Piece):
    """Fixed per-device step scale ``max(0, 1 + sigma * N(0, 1))`` (drawn once per device from ``seed``)."""

    sigma: float = setting(0.1, "device-to-device spread of the step size", low=0.0, high=MAX_SIGMA)
    seed: int = setting(0, "seed of the per-device scales", kind=int, low=0)

    def scales(self, key, shape):
        rng = np.random.default_rng([int(self.seed), int(key[0]), int(key[1])])
        return np.maximum(0.0, 1.0 + self.sigma * rng.standard_normal(shape))

    def step(self, key, g, delta, rng, lower, upper, cache):
        scales = cache.get(("d2d", key))
        if scales is None or scales.shape != delta.shape:
            scales = cache[("d2d", key)] = self.scales(key, delta.shape)
        return delta * scales


@dataclass(frozen=True)
class AsymmetricSteps(_Piece):
    """Up (``delta > 0``) steps times ``up``, down steps times ``down`` (both >= 0)."""

    up: float = setting(1.0, "scale of up steps", low=0.0, high=MAX_SIGMA)
    down: float = setting(1.0, "scale of down steps", low=0.0, high=MAX_SIGMA)

    @classmethod
    def from_asymmetry(cls, asymmetry: float) -> "AsymmetricSteps":
        """``up = 1 + a``, ``down = 1 - a`` for ``a`` in [-1, 1]."""
        if isinstance(asymmetry, bool) or not isinstance(asymmetry, (int, float)) or not abs(asymmetry) <= 1.0:
            raise ValueError(f"asymmetry must be a finite number in [-1, 1], got {asymmetry!r}")
        return cls(up=1.0 + asymmetry, down=1.0 - asymmetry)

    def step(self, key, g, delta, rng, lower, upper, cache):
        return np.where(delta > 0, delta * self.up, delta * self.down)


@dataclass(frozen=True)
class SoftBounds(_Piece):
    """A step shrinks linearly with the distance left to the bound it moves toward (0 at the bound)."""

    def step(self, key, g, delta, rng, lower, upper, cache):
        span = upper - lower
        room = np.where(delta > 0, upper - g, g - lower) / span
        return delta * np.clip(room, 0.0, 1.0)


@dataclass(frozen=True)
class NonlinearSteps(_Piece):
    """State-dependent steps: ``exp(-nonlinearity * x)``, ``x`` the fraction of the range already travelled
    from the bound the step moves away from (up steps shrink as ``g`` rises, down steps as it falls)."""

    nonlinearity: float = setting(1.0, "decay of the step along the range travelled", low=0.0, high=MAX_SIGMA)

    def step(self, key, g, delta, rng, lower, upper, cache):
        travelled = np.where(delta > 0, g - lower, upper - g) / (upper - lower)
        return delta * np.exp(-self.nonlinearity * np.clip(travelled, 0.0, 1.0))


@dataclass(frozen=True)
class CycleToCycle(_Piece):
    """Every step times ``1 + sigma * N(0, 1)``, drawn at each update."""

    sigma: float = setting(0.1, "cycle-to-cycle spread of the step size", low=0.0, high=MAX_SIGMA)

    def step(self, key, g, delta, rng, lower, upper, cache):
        if self.sigma == 0:
            return delta
        return delta * (1.0 + self.sigma * rng.standard_normal(delta.shape))


@dataclass(frozen=True)
class QuantizedStates(_Piece):
    """``n_states`` equally spaced conductance levels from ``g_min`` to ``g_max``.

    ``stochastic=False``: the new value is the level nearest to ``g + delta`` (updates smaller than half a
    level are lost).  ``stochastic=True``: rounded up with probability equal to the fraction of a level, so
    the mean update equals ``delta``.  Applied to values already on a level (the trainer quantises the
    initial conductances too).
    """

    n_states: int = setting(64, "number of conductance levels", kind=int, low=2, high=2**31)
    stochastic: bool = setting(False, "stochastic rounding (keeps the mean update)", kind=bool)

    def levels(self, lower, upper):
        return lower + (upper - lower) * np.arange(self.n_states) / (self.n_states - 1)

    def quantize(self, values, lower, upper, rng=None):
        level = (values - lower) / (upper - lower) * (self.n_states - 1)
        if self.stochastic and rng is not None:
            below = np.floor(level)
            level = below + (rng.random(level.shape) < (level - below))
        else:
            level = np.rint(level)
        level = np.clip(level, 0, self.n_states - 1)
        return lower + (upper - lower) * level / (self.n_states - 1)

    def write(self, key, g, target, rng, lower, upper, cache):
        return self.quantize(target, lower, upper, rng)


@dataclass(frozen=True)
class ProgrammingError(_Piece):
    """The written value is off by ``sigma * (g_max - g_min) * N(0, 1)``; only devices whose update is not 0."""

    sigma: float = setting(0.01, "programming error, relative to the range", low=0.0, high=MAX_SIGMA)

    def write(self, key, g, target, rng, lower, upper, cache):
        if self.sigma == 0:
            return target
        written = target != g
        noise = self.sigma * (upper - lower) * rng.standard_normal(target.shape)
        return np.where(written, target + noise, target)


@dataclass(frozen=True)
class ReadNoise(_Piece):
    """Every read (each batch's solves) sees ``g * (1 + sigma * N(0, 1))``, clipped to stay positive."""

    sigma: float = setting(0.01, "relative read noise of a conductance", low=0.0, high=MAX_SIGMA)

    def read(self, g, rng):
        return np.maximum(g * (1.0 + self.sigma * rng.standard_normal(g.shape)), np.finfo(g.dtype).tiny)


PIECES = {cls.__name__: cls for cls in (DeviceToDevice, AsymmetricSteps, SoftBounds, NonlinearSteps, CycleToCycle,
                                         QuantizedStates, ProgrammingError, ReadNoise)}


@dataclass(frozen=True)
class DeviceModel:
    """An ordered composition of device pieces (see the module docstring).

    Parameters
    ----------
    pieces : tuple
        Pieces applied in order: those with ``step`` change the desired update, then those with ``write``
        change the written value (after the step pieces, before clipping to ``[g_min, g_max]``);
        :class:`ReadNoise` acts on reads.
    name : str
        Free text (a preset's name).
    """

    pieces: tuple = ()
    name: str = "custom"
    _cache: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self):
        for piece in self.pieces:
            if type(piece).__name__ not in PIECES:
                raise ValueError(f"unknown device piece {piece!r}; known: {', '.join(PIECES)}")

    @property
    def quantizer(self):
        return next((p for p in self.pieces if isinstance(p, QuantizedStates)), None)

    @property
    def read_noise(self):
        return next((p for p in self.pieces if isinstance(p, ReadNoise)), None)

    def apply(self, key, g, delta, rng, lower, upper) -> None:
        """Change conductances ``g`` (in place) by the desired ``delta`` as this device does, then clip."""
        delta = np.asarray(delta, dtype=np.float64)
        for piece in self.pieces:
            if hasattr(piece, "step"):
                delta = piece.step(key, g, delta, rng, lower, upper, self._cache)
        target = g + delta
        for piece in self.pieces:
            if hasattr(piece, "write"):
                target = piece.write(key, g, target, rng, lower, upper, self._cache)
        np.clip(target, lower, upper, out=target)
        g[...] = target

    def initialize(self, g, lower, upper) -> None:
        """Put initial conductances on the device's levels (quantised devices), in place."""
        q = self.quantizer
        if q is not None:
            g[...] = q.quantize(g, lower, upper)

    def to_dict(self) -> dict:
        return {"name": self.name, "pieces": [{"type": type(p).__name__, **asdict(p)} for p in self.pieces]}

    @classmethod
    def from_dict(cls, d) -> "DeviceModel":
        if not isinstance(d, dict) or not isinstance(d.get("pieces", []), list):
            raise ValueError(f"a device is {{'name': ..., 'pieces': [{{'type': ..., ...}}]}}, got {d!r:.80}")
        pieces = []
        for p in d.get("pieces", []):
            p = dict(p)
            kind = PIECES.get(p.pop("type", None))
            if kind is None:
                raise ValueError(f"unknown device piece in {d!r:.80}; known: {', '.join(PIECES)}")
            known = {f.name for f in fields(kind)}
            if set(p) - known:
                raise ValueError(f"{kind.__name__}: unknown parameters {sorted(set(p) - known)}")
            pieces.append(kind(**p))
        return cls(pieces=tuple(pieces), name=str(d.get("name", "custom")))


#: Illustrative presets: parameters chosen here in the ranges reported for these device types.
PRESETS = {
    "ideal": (),
    "reram": (DeviceToDevice(0.3), AsymmetricSteps.from_asymmetry(0.2), NonlinearSteps(1.0), CycleToCycle(0.3),
              QuantizedStates(64), ProgrammingError(0.005), ReadNoise(0.01)),
    "pcm": (DeviceToDevice(0.2), AsymmetricSteps(up=1.0, down=0.5), CycleToCycle(0.3), QuantizedStates(128),
            ReadNoise(0.02)),
    "ecram": (DeviceToDevice(0.05), AsymmetricSteps.from_asymmetry(0.05), SoftBounds(), CycleToCycle(0.05),
              QuantizedStates(1000, stochastic=True)),
}


def make_device(spec):
    """A :class:`DeviceModel` from ``None``/``"ideal"`` (no device effects: returns ``None``), a preset name,
    a dict (:meth:`DeviceModel.to_dict`) or a DeviceModel."""
    if spec is None or spec == "ideal":
        return None
    if isinstance(spec, DeviceModel):
        return spec if spec.pieces else None
    if isinstance(spec, str):
        if spec not in PRESETS:
            raise ValueError(f"unknown device preset {spec!r}; choose one of {', '.join(PRESETS)}")
        return DeviceModel(pieces=PRESETS[spec], name=spec)
    model = DeviceModel.from_dict(spec)
    return model if model.pieces else None
