"""Gradient estimators of equilibrium propagation: which phases, with which weights.

An estimator turns "the free state" into a list of nudged phases to solve and,
once solved, into weighted states whose weighted sum of pseudo-power
derivatives ``dP/dg = 1/2 * dV**2`` is the gradient estimate
(thesis, Theorem 4.2 and Appendix A)::

    one-sided:    dL/dg ~ (1/beta)     * [dP/dg(s^beta)  - dP/dg(s^0)]        bias O(beta)
    centered:     dL/dg ~ (1/(2 beta)) * [dP/dg(s^+beta) - dP/dg(s^-beta)]    bias O(beta**2)
    random sign:  one-sided with beta -> s*beta, s = +-1 drawn per batch       unbiased at first order on average

``beta`` is in the same unit as the conductances being trained.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class OneSided:
    """Free phase and one nudged phase at ``+beta``."""

    name = "one-sided"

    def betas(self, beta, rng):
        return [beta]

    def weights(self, beta, signed_betas):
        """Weights of (free, nudged...) states in the estimate of dL/dg."""
        (b,) = signed_betas
        return -1.0 / b, [1.0 / b]

    needs_free = True


@dataclass(frozen=True)
class Centered:
    """Nudged phases at ``+beta`` and ``-beta`` (the free phase only sets the nudging currents)."""

    name = "centered"
    needs_free = False

    def betas(self, beta, rng):
        return [beta, -beta]

    def weights(self, beta, signed_betas):
        return 0.0, [1.0 / (2.0 * beta), -1.0 / (2.0 * beta)]


@dataclass(frozen=True)
class RandomSign:
    """One-sided with the sign of ``beta`` drawn at random for every batch."""

    name = "random-sign"
    needs_free = True

    def betas(self, beta, rng):
        return [beta if rng.random() < 0.5 else -beta]

    def weights(self, beta, signed_betas):
        (b,) = signed_betas
        return -1.0 / b, [1.0 / b]


ESTIMATORS = {"one-sided": OneSided, "centered": Centered, "random-sign": RandomSign}


def from_registry(registry: dict, name, kind: str):
    """An instance of ``registry[name]``; an object that is not a name is returned as it is."""
    if not isinstance(name, str):
        return name
    if name not in registry:
        raise ValueError(f"unknown {kind} {name!r}; choose one of {', '.join(registry)}")
    return registry[name]()


def get_estimator(name):
    return from_registry(ESTIMATORS, name, "estimator")
