"""The fast backend: the co-content solver behind the backend interface."""
from __future__ import annotations

from ...model import Network
from ..base import Solution
from .session import FastSession
from .solver import FastSolverConfig, PreparedNetwork
from .wired import WiredNetwork


class FastBackend:
    """The fast co-content solver behind the :class:`~circuitprop.backends.base.Backend` interface.

    Parameters are the fields of :class:`FastSolverConfig` (or ``config=``).
    """

    name = "fast"

    def __init__(self, config: FastSolverConfig | None = None, **options):
        self.config = config if config is not None else FastSolverConfig(**options)

    def prepare(self, network: Network) -> PreparedNetwork:
        """Derive solver matrices once; reuse them for all phases of a batch.

        Crossbars with wire resistance get :class:`~circuitprop.backends.fast.wired.WiredNetwork` (their
        lines reduced exactly to port matrices).
        """
        if network.architecture.wire_resistance > 0:
            return WiredNetwork(network, self.config)
        return PreparedNetwork(network, self.config)

    def solve(self, network, inputs, output_currents=None, initial=None, record_cocontent=False) -> Solution:
        return self.prepare(network).solve(inputs, output_currents, initial, record_cocontent)

    def session(self, network: Network, read=None):
        """A training session on ``network`` (:class:`~circuitprop.backends.fast.session.FastSession`)."""
        return FastSession(self, network, read=read)
