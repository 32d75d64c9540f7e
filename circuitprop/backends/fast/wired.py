"""Fast solver path for crossbars with wire resistance (IR drop).

The word and bit lines of every crossbar are linear, so they are eliminated exactly
(:mod:`circuitprop.wires`): each crossbar becomes a dense port conductance matrix.  Gathering them
gives, over the free nodes ``V`` (hidden and output layers, in node order), the linear system

    K V - d(x) - I + i_neuron(V) = 0,      d(x) = D_in^T v_in(x),

where ``K`` (siemens) holds the port matrices (the row blocks of a crossbar leaving an amplifier
scaled by its current and voltage gains ``c*A``, as in :mod:`circuitprop.backends.fast`), ``d`` is the
current pushed in by the input sources, ``I`` the nudging currents and ``i_neuron`` the diode currents
of hidden nodes.  The nodes of a layer are now coupled through the lines, so the solver runs exact
coordinate descent node by node (Gauss-Seidel): each node solves its scalar KCL with all others fixed
(a clip for ideal diodes, safeguarded Newton for Shockley diodes).  With reciprocal amplifiers ``K`` is
symmetric and each step is the exact minimum of the co-content along that node, so the sweeps converge
to the unique steady state.

Cost: one sparse LU per crossbar and one sparse solve per non-source port (column ports, plus row
ports of crossbars leaving a hidden layer) when the solver is prepared; a sweep then costs
``O(batch * F**2)`` with ``F`` free nodes.  Solves are in float64 whatever ``config.dtype`` says
(voltages are returned in ``config.dtype``).
"""
from __future__ import annotations

import numpy as np

from ...model import Network
from ...model.energy import cocontent, neuron_current
from ...model.wires import crossbar_lines
from ..base import ConvergenceError, Solution
from .solver import FastSolverConfig, PreparedNetwork, report_failure


class WiredNetwork(PreparedNetwork):
    """Solver matrices of a network whose crossbars have wire resistance (see module docstring)."""

    def __init__(self, network: Network, config: FastSolverConfig):
        arch = network.architecture
        self.network = network
        self.config = config
        self.dtype = np.dtype(np.float64)  # the solve; results are returned in out_dtype
        self.out_dtype = np.dtype(config.dtype)
        self.n_layers = arch.n_layers
        self.sizes = arch.layer_sizes
        self.diode = arch.diode
        self.omega = 1.0  # node by node Gauss-Seidel; over-relaxation is not offered with wire resistance
        if config.relaxation != 1.0:
            raise ValueError("over-relaxation (relaxation != 1) is not offered with wire resistance")
        self.xtol = config.newton_xtol or 1e-13
        self.bounds = {l: (h.v_low, h.v_high) for l, h in enumerate(arch.hidden, start=1)}
        starts = np.cumsum((0,) + self.sizes[1:])
        self.slices = {l: slice(int(starts[l - 1]), int(starts[l])) for l in range(1, self.n_layers)}
        n_free = int(starts[-1])
        matrix = np.zeros((n_free, n_free))
        from_inputs = np.zeros((self.sizes[0], n_free))
        for (a, b) in network.conductances:
            lines = crossbar_lines(network, (a, b))
            rc, cc = lines.column_ports
            sb = self.slices[b]
            matrix[sb, sb] += cc
            if a == 0:
                from_inputs[:, sb] -= rc
                continue
            sa = self.slices[a]
            ga, ca = arch.forward_gain(a), arch.current_gain(a)
            matrix[sb, sa] += ga * rc.T
            matrix[sa, sa] += ca * ga * lines.row_ports
            matrix[sa, sb] += ca * rc
        self.matrix = matrix
        self.from_inputs = from_inputs
        self.diagonal = np.diag(matrix).copy()
        if not np.all(self.diagonal > 0):
            raise ConvergenceError("wired solver: a free node has no conductance to the rest of the circuit")
        self.coef = {l: self.diagonal[s] for l, s in self.slices.items()}
        self.layer_of = np.concatenate([np.full(self.sizes[l], l) for l in range(1, self.n_layers)])

    @property
    def shares_conductances(self) -> bool:
        return False  # port matrices are derived: conductance changes need a new prepare()

    def update_sums(self, sums: dict) -> None:
        raise ValueError("a network with wire resistance cannot be updated in place; prepare it again")

    def input_drive(self, v_in: np.ndarray) -> np.ndarray:
        """Current (A) the input sources push into every free node, ``(batch, F)``."""
        return v_in @ self.from_inputs

    def _free(self, state) -> np.ndarray:
        return np.concatenate([np.asarray(state[l], dtype=np.float64) for l in range(1, self.n_layers)], axis=1)

    def _layers(self, free, v_in) -> list:
        return [v_in.astype(self.out_dtype)] + [free[:, s].astype(self.out_dtype) for s in self.slices.values()]

    def _sweep(self, free, drive) -> float:
        """One Gauss-Seidel sweep over all free nodes in place; returns the largest change (V)."""
        change = 0.0
        output = self.n_layers - 1
        for node in range(free.shape[1]):
            layer = int(self.layer_of[node])
            coef = self.diagonal[node]
            node_drive = drive[:, node] - (free @ self.matrix[node] - coef * free[:, node])
            previous = free[:, node]
            if layer == output:
                new = node_drive / coef
            else:
                new = PreparedNetwork.update(self, layer, node_drive[:, None], previous[:, None],
                                             coef=np.array([coef]))[:, 0]
            change = max(change, float(np.max(np.abs(new - previous))) if new.size else 0.0)
            free[:, node] = new
        return change

    def free_residual(self, free, drive) -> np.ndarray:
        """KCL residual (A) of every free node, ``(batch, F)`` (projected for ideal diodes)."""
        r = free @ self.matrix.T - drive
        for layer, (lo, hi) in self.bounds.items():
            s = self.slices[layer]
            v = free[:, s]
            if self.diode.kind == "ideal":
                r[:, s] = np.where(v >= hi, np.maximum(r[:, s], 0), r[:, s])
                r[:, s] = np.where(v <= lo, np.minimum(r[:, s], 0), r[:, s])
            else:
                r[:, s] += neuron_current(v, lo, hi, self.diode)[0]
        return r

    def residuals(self, state, fixed_drive=None, currents=None) -> list:
        v_in = np.asarray(state[0], dtype=np.float64)
        drive = self.input_drive(v_in)
        if currents is not None:
            drive[:, self.slices[self.n_layers - 1]] += currents
        r = self.free_residual(self._free(state), drive)
        return [r[:, s] for s in self.slices.values()]

    def solve(self, inputs, output_currents=None, initial: Solution | None = None,
              record_cocontent: bool = False, input_drive=None, input_voltages=None) -> Solution:
        """Steady state of a batch (same contract as :meth:`PreparedNetwork.solve`; ``input_drive`` and
        ``input_voltages`` are formed here from ``inputs``)."""
        cfg = self.config
        v_in = self.network.input_voltages(inputs)
        batch = v_in.shape[0]
        drive = self.input_drive(v_in)
        currents = None
        if output_currents is not None:
            currents = np.asarray(output_currents, dtype=np.float64)
            if currents.shape != (batch, self.sizes[-1]):
                raise ValueError(f"output currents have shape {currents.shape}, expected {(batch, self.sizes[-1])}")
            drive[:, self.slices[self.n_layers - 1]] += currents
        if initial is not None:
            if len(initial.voltages) != self.n_layers or initial.voltages[0].shape != v_in.shape:
                raise ValueError("initial state does not match this network and batch")
            free = self._free(initial.voltages)
        else:
            free = np.zeros((batch, self.matrix.shape[0]))
            for layer, (lo, hi) in self.bounds.items():
                free[:, self.slices[layer]] = 0.5 * (lo + hi)
        trace = []
        if record_cocontent:
            trace.append(cocontent(self.network, self._layers(free, v_in), currents))
        n_max = cfg.fixed_sweeps or cfg.max_sweeps
        residual, converged, sweeps = float("nan"), False, 0
        for sweeps in range(1, n_max + 1):
            change = self._sweep(free, drive)
            if record_cocontent:
                trace.append(cocontent(self.network, self._layers(free, v_in), currents))
            if not np.all(np.isfinite(free)):
                raise ConvergenceError(f"wired solver: node voltages became non-finite after {sweeps} sweeps")
            if cfg.fixed_sweeps is None and change <= cfg.vtol:
                residual = float(np.max(np.abs(self.free_residual(free, drive)), initial=0.0))
                if residual <= cfg.tol:
                    converged = True
                    break
        if not converged and (cfg.fixed_sweeps is None or cfg.fixed_sweeps_residual):
            residual = float(np.max(np.abs(self.free_residual(free, drive)), initial=0.0))
            converged = residual <= cfg.tol
        info = {"wired": True}
        if record_cocontent:
            info["cocontent"] = np.array(trace)
        solution = Solution(voltages=self._layers(free, v_in), iterations=sweeps, residual=residual,
                            converged=converged, info=info)
        if not converged and cfg.fixed_sweeps is None:
            report_failure(cfg, f"wired solver: no steady state after {sweeps} sweeps (max_sweeps); largest KCL "
                                f"residual {residual:.3g} A > tol {cfg.tol:.3g} A. Raise max_sweeps or loosen tol.")
        return solution


__all__ = ["WiredNetwork"]
