"""The diode of the hidden neurons: Shockley or ideal, named model cards, bias compensation."""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..declare import setting, validate
from ..errors import NetworkError
from .constants import BOLTZMANN, CHARGE, TNOM_KELVIN


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

    kind: str = setting("shockley", "diode law", kind=str, choices=("shockley", "ideal"))
    saturation_current: float = setting(1e-12, "shockley diode saturation current IS", unit="A", low=0.0,
                                        low_open=True, high=1.0)
    emission_coefficient: float = setting(1.0, "shockley diode emission coefficient N", low=0.0, low_open=True,
                                          high=100.0)
    series_resistance: float = setting(0.0, "shockley diode series resistance RS", unit="ohm", low=0.0, high=1e9)
    temperature: float = setting(TNOM_KELVIN, "temperature; sets the thermal voltage kT/q", unit="K", low=0.0,
                                 low_open=True, high=1e4)
    spice_ideal_n: float = setting(0.001, "emission coefficient of the near-ideal SPICE diode that stands for an "
                                          "ideal diode in netlists", low=0.0, low_open=True, high=100.0)

    def __post_init__(self):
        validate(self, "diode", error=NetworkError)

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
