"""Fast NumPy solver: exact block coordinate descent on the co-content.

Nodes of a layer are not connected to each other, so with its neighbours
fixed every node of a layer solves a scalar monotone equation (KCL)::

    coef_i * V_i - drive_i + i_neuron(V_i) = 0,
    coef_i  = sum_in G_ji + c*A * sum_out G_ik,
    drive_i = sum_in G_ji u_j + c * sum_out G_ik V_k + I_i,

where ``u_j = A_j V_j`` is the voltage that drives a crossbar (amplifier
output), ``A`` the forward gain and ``c`` the backward current gain of the
amplifier after this layer.  Ideal diodes give a clamp
``V = clip(drive/coef, v_low, v_high)`` (Millman's theorem); Shockley diodes a
safeguarded Newton iteration.  A sweep updates the layers one after another,
from the first hidden layer to the outputs (block Gauss-Seidel), each from its
neighbours' latest voltages, so skip crossbars stay exact.  When
``c == A`` (ideal transformers) each update is the exact minimum of the
co-content over that block, so the co-content decreases monotonically and the
sweeps converge to the unique steady state.

With ``fixed_sweeps`` at small batches, a network of one ideal-diode hidden layer runs all its sweeps in
one numba call (:func:`circuitprop.shockley.ideal_chain_sweeps`), the same updates in the same order.

The input crossbars do not change during relaxation: their drive (the Norton
equivalent of the inputs) is computed once per batch and reused by every sweep
and by the nudged phases.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ...kernels.fused import crossbar_sums
from ...kernels.fused import input_voltages as input_voltages_of
from ...kernels.shockley import (
    clipped_neurons,
    ideal_chain_sweeps,
    ideal_crossbar_pass,
    shockley_current,
    shockley_neurons,
    shockley_residual,
)
from ...model import Network
from ...model.energy import cocontent, neuron_current, node_conductances
from ..base import ConvergenceError, Solution


@dataclass
class FastSolverConfig:
    """Settings of the fast solver.

    Parameters
    ----------
    tol : float
        KCL residual tolerance, amperes: converged when every free node's net
        current is below it.
    max_sweeps : int
        Cap on the number of sweeps over all layers.
    fixed_sweeps : int or None
        Run exactly this many sweeps (as published EP code does) and report the
        residual and ``converged`` flag without raising.
    vtol : float
        Largest voltage change (volts) in a sweep below which the residual is
        checked (checking costs about one sweep).
    on_fail : {"raise", "warn", "flag"}
        What to do when ``max_sweeps`` is reached without convergence.
    dtype : {"float64", "float32"}
        Floating-point type of the solve.
    newton_xtol : float or None
        Step (volts) at which the scalar Newton iteration of Shockley neurons
        stops; ``None`` picks 1e-13 V (float64) or 1e-6 V (float32).
    fixed_sweeps_residual : bool
        With ``fixed_sweeps``, compute the KCL residual of the result (costs about
        one sweep).  ``False`` skips it: the solution then reports ``residual=nan``
        and ``converged=False`` (not checked); the training loop uses this.
    relaxation : float
        Over-relaxation factor omega in (0, 2): each node moves ``omega`` times the
        way to its exact block minimum, then is clipped to its diode bounds
        (projected successive over-relaxation, Cryer 1971).  1 is plain coordinate
        descent.  The fixed point, and so the steady state and its KCL check, are
        the same for every omega; omega > 1 speeds up deep chains whose layers
        move together (``benchmarks/bench_deep.py``).  Ideal diodes only.
    crossbar_pass : bool
        Read a large hidden-to-hidden crossbar once per sweep instead of twice
        where the sweep order allows it (layer ``a`` updated just before layer
        ``b`` of crossbar ``(a, b)``, ideal diodes, numba installed): one pass
        updates ``a`` and forms its drive into ``b``
        (:func:`~circuitprop.kernels.shockley.ideal_crossbar_pass`).  The same
        updates in the same order, summed in another order (results agree to
        rounding); ``False`` keeps the two matrix products.
    warm_sweeps : int or None
        With ``fixed_sweeps``: the sweeps of a solve warm-started from another
        state (``initial``; the nudged phases start from the free phase), which
        then begins by updating the output layer, so that the new output
        currents reach every layer joined to the outputs in the first sweep
        rather than the second.  A network whose hidden layers all reach the
        outputs directly (skip crossbars) needs 1 for the EP gradient of a
        full nudged relaxation; a chain of H hidden layers about H
        (``benchmarks/bench_deep.py``).  ``None``: ``fixed_sweeps``, in plain
        layer order.
    """

    tol: float = 1e-12
    max_sweeps: int = 1000
    fixed_sweeps: int | None = None
    vtol: float = 1e-10
    on_fail: str = "raise"
    dtype: str = "float64"
    newton_xtol: float | None = None
    fixed_sweeps_residual: bool = True
    relaxation: float = 1.0
    crossbar_pass: bool = True
    warm_sweeps: int | None = None

    def __post_init__(self):
        if self.on_fail not in ("raise", "warn", "flag"):
            raise ValueError(f"on_fail must be 'raise', 'warn' or 'flag', got {self.on_fail!r}")
        if self.dtype not in ("float64", "float32"):
            raise ValueError(f"dtype must be 'float64' or 'float32', got {self.dtype!r}")
        if not self.tol > 0 or self.max_sweeps < 1:
            raise ValueError("tol must be > 0 A and max_sweeps >= 1")
        if self.fixed_sweeps is not None and self.fixed_sweeps < 1:
            raise ValueError("fixed_sweeps must be >= 1")
        if self.warm_sweeps is not None and (self.fixed_sweeps is None or self.warm_sweeps < 1):
            raise ValueError("warm_sweeps (fixed sweeps of the warm-started, nudged phases) must be >= 1 and needs "
                             "fixed_sweeps")
        if not 0.0 < self.relaxation < 2.0:
            raise ValueError(f"relaxation (over-relaxation factor omega) must be in (0, 2), got {self.relaxation!r}")


class PreparedNetwork:
    """Solver matrices derived from one network (valid until its conductances change)."""

    def __init__(self, network: Network, config: FastSolverConfig):
        self.network = network
        self.config = config
        arch = network.architecture
        dt = np.dtype(config.dtype)
        self.dtype = dt
        self.n_layers = arch.n_layers
        self.sizes = arch.layer_sizes
        self.diode = arch.diode
        self.omega = float(config.relaxation)
        if self.omega != 1.0 and self.diode.kind != "ideal":
            raise ValueError(f"over-relaxation (relaxation={self.omega}) needs ideal diodes: the exact minimum of a "
                             f"Shockley neuron is not a linear step away; use relaxation=1")
        self.xtol = config.newton_xtol or (1e-13 if dt == np.float64 else 1e-6)
        self.g = {k: v.astype(dt, copy=False) for k, v in network.conductances.items()}
        self.incoming = {l: [] for l in range(self.n_layers)}
        self.outgoing = {l: [] for l in range(self.n_layers)}
        for (a, b) in network.conductances:
            self.incoming[b].append((a, arch.forward_gain(a)))
            if a > 0:
                self.outgoing[a].append((b, arch.current_gain(a)))
        # the same arithmetic as the training update's sums (kernels.update), so resumed runs are exact
        self.sums = {k: crossbar_sums(g, rows=k[0] > 0) for k, g in network.conductances.items()}
        self._set_coef()
        self.bounds = {l: (h.v_low, h.v_high) for l, h in enumerate(arch.hidden, start=1)}
        self.passes = _crossbar_passes(arch) if config.crossbar_pass and self.diode.kind == "ideal" else {}
        self.gain = [arch.forward_gain(l) for l in range(self.n_layers)]
        self.inverted = [arch.inverted(l) for l in range(self.n_layers)]  # layers with an inverted copy
        self.current_gain = [arch.current_gain(l) for l in range(self.n_layers)]
        self._transfer = {}

    def _set_coef(self):
        coef = node_conductances(self.network, self.sums)
        self.coef = {l: c.astype(self.dtype) for l, c in coef.items()}

    @property
    def shares_conductances(self) -> bool:
        """True when the solver reads the network's own arrays (same dtype), so in-place updates reach it."""
        return all(self.g[k] is v for k, v in self.network.conductances.items())

    def update_sums(self, sums: dict) -> None:
        """Refresh the solver after the conductances changed in place.

        ``sums`` maps crossbars to their new ``(row_sums, column_sums)`` (siemens), as the fused
        update kernel returns them: the node conductances are updated from these vectors instead
        of re-reading the arrays.  Crossbars not in ``sums`` are summed again.
        """
        if not self.shares_conductances:
            raise ValueError("this solver holds copies of the conductances (another dtype); prepare it again")
        for key, g in self.network.conductances.items():
            self.sums[key] = sums[key][:2] if key in sums else crossbar_sums(g, rows=key[0] > 0)
        self._set_coef()
        self._transfer.clear()

    # -- pieces -----------------------------------------------------------
    def input_drive(self, v_in: np.ndarray) -> dict:
        """Current (A) that the input sources push into each layer joined to them (Norton)."""
        drive = {}
        for b in range(1, self.n_layers):
            if (0, b) in self.g:
                drive[b] = v_in @ self.g[(0, b)]
        return drive

    def drive(self, layer, state, fixed_drive, currents, formed=None, leave_out=None):
        """Current (A) pushed into ``layer`` by everything but its own neurons: ``fixed + term_1 + term_2 ...``.

        The first term's product is the output array (no copy of the fixed drive); ``fixed + term`` equals
        ``term + fixed`` exactly, so the sum is the same as adding the terms to a copy of ``fixed`` in order.
        ``formed = (key, current)`` gives the term of incoming crossbar ``key`` (amperes, an array this call may
        overwrite; a crossbar pass formed it); ``leave_out`` (a crossbar's key) leaves that outgoing term out.
        """
        fixed = fixed_drive.get(layer)
        d = None
        for a, _ in self.incoming[layer]:
            if a == 0:
                continue
            if formed is not None and (a, layer) == formed[0]:
                d = _accumulate(d, formed[1], fixed)
                continue
            # the rows are driven by A*V (and by -A*V, an inverted copy's)
            term = self.network.architecture.row_voltages(a, state[a]) @ self.g[(a, layer)]
            d = _accumulate(d, term, fixed)
        for b, cb in self.outgoing[layer]:
            if (layer, b) == leave_out:
                continue
            term = state[b] @ self.g[(layer, b)].T
            if self.inverted[layer]:  # the inverted copy's rows feed their current back with the opposite sign
                term = self.network.architecture.fold_rows(layer, term)
            if cb != 1.0:
                np.multiply(term, cb, out=term)
            d = _accumulate(d, term, fixed)
        if d is None:
            d = np.zeros_like(state[layer]) if fixed is None else fixed.copy()
        if layer == self.n_layers - 1 and currents is not None:
            d += currents
        return d

    def low_rank_drive(self, layer, state, fixed_drive):
        """The drive of a hidden layer as ``(base, sources, transfer)`` when its only term besides the fixed
        (input) drive comes from a few downstream nodes (at most ``LOW_RANK_MAX``, e.g. the output layer):
        ``drive = base + sources @ transfer`` (amperes), for the kernels to add row by row instead of forming
        it; else ``None``.  ``transfer`` (the current gain times the transposed crossbar) is cached until
        :meth:`update_sums`."""
        if (layer == self.n_layers - 1 or fixed_drive.get(layer) is None or self.inverted[layer]
                or any(a != 0 for a, _ in self.incoming[layer]) or len(self.outgoing[layer]) != 1):
            return None
        b, cb = self.outgoing[layer][0]
        if self.sizes[b] > LOW_RANK_MAX:
            return None
        transfer = self._transfer.get(layer)
        if transfer is None:
            transfer = np.ascontiguousarray(self.g[(layer, b)].T, dtype=np.float64) * cb
            self._transfer[layer] = transfer
        return fixed_drive[layer], state[b], transfer

    def solve_layer(self, layer, state, fixed_drive, currents, out=None):
        """New voltages (V) of ``layer`` with its neighbours at ``state``: :meth:`drive` then :meth:`update`,
        or both in one kernel pass for a hidden layer with a low-rank drive (:meth:`low_rank_drive`),
        written into ``out`` when given (a buffer not aliasing ``state``)."""
        split = self.low_rank_drive(layer, state, fixed_drive) if self.omega == 1.0 else None
        if split is not None and self.diode.kind == "ideal" and split[0].size < IDEAL_KERNEL_MIN_SIZE:
            split = None  # numpy's three calls cost less than the kernel's call at this size
        if split is not None:
            lo, hi = self.bounds[layer]
            base, sources, transfer = split
            if self.diode.kind == "ideal":
                v = clipped_neurons(self.coef[layer], base, lo, hi, sources, transfer, out=out)
            else:
                v = shockley_neurons(self.coef[layer], base, lo, hi, self.diode, self.xtol, self.dtype,
                                     sources=sources, transfer=transfer, out=out)
            if v is not None:
                return v
        return self.update(layer, self.drive(layer, state, fixed_drive, currents), state[layer])

    def crossbar_pass(self, a, b, state, fixed_drive, currents, formed=None, out=None):
        """Layer ``a``'s new voltages (V) and the current (A) they push into layer ``b`` through crossbar
        ``(a, b)``, from one pass over it (:func:`~circuitprop.kernels.shockley.ideal_crossbar_pass`), or
        ``None`` (numba not available).  ``formed``: the term of an incoming crossbar that the pass before
        formed (see :meth:`drive`)."""
        base = self.drive(a, state, fixed_drive, currents, formed=formed, leave_out=(a, b))
        lo, hi = self.bounds[a]
        return ideal_crossbar_pass(self.g[(a, b)], state[b], base, self.coef[a], self.current_gain[a],
                                   self.gain[a], lo, hi, omega=self.omega, previous=state[a], out=out,
                                   inverted=self.inverted[a])

    def _chain_sweeps(self, state, fixed_drive, currents, sweeps) -> bool:
        """Run all ``fixed_sweeps`` in one kernel call (:func:`~circuitprop.shockley.ideal_chain_sweeps`) when the
        network is inputs -> one ideal-diode hidden layer -> outputs (a skip crossbar from the inputs allowed),
        updating ``state`` in place; ``False`` (nothing done) otherwise."""
        if (self.n_layers != 3 or self.diode.kind != "ideal" or self.sizes[2] > LOW_RANK_MAX or self.omega != 1.0
                or [a for a, _ in self.incoming[1]] != [0] or (1, 2) not in self.g or 1 not in fixed_drive
                or self.inverted[1]):
            return False
        transfer = self._transfer.get("chain")
        if transfer is None:
            transfer = self._transfer["chain"] = np.ascontiguousarray(self.g[(1, 2)].T, dtype=np.float64)
        batch = state[0].shape[0]
        zeros = None
        if 2 not in fixed_drive or currents is None:
            zeros = np.zeros((batch, self.sizes[2]), dtype=self.dtype)
        lo, hi = self.bounds[1]
        return ideal_chain_sweeps(state[1], state[2], np.ascontiguousarray(fixed_drive[1]),
                                  np.ascontiguousarray(fixed_drive[2]) if 2 in fixed_drive else zeros,
                                  np.ascontiguousarray(currents) if currents is not None else zeros, transfer,
                                  self.coef[1], self.coef[2], self.gain[1], self.outgoing[1][0][1], lo, hi,
                                  sweeps)

    def update(self, layer, drive, previous, coef=None):
        """New voltages of ``layer`` (or of the nodes whose total conductances ``coef`` are given) for ``drive``."""
        coef = self.coef[layer] if coef is None else coef
        if self.omega != 1.0:  # projected SOR: a step omega times the way to the block minimum, then the clamp
            step = drive / coef - previous
            step *= self.dtype.type(self.omega)
            v = previous + step
            if layer == self.n_layers - 1:
                return v
            lo, hi = self.bounds[layer]
            return np.clip(v, lo, hi, out=v)
        if layer == self.n_layers - 1:
            return drive / coef
        lo, hi = self.bounds[layer]
        if self.diode.kind == "ideal":
            return np.clip(drive / coef, lo, hi)
        fast = shockley_neurons(coef, drive, lo, hi, self.diode, self.xtol, self.dtype)
        return fast if fast is not None else self._newton(coef, drive, lo, hi, previous)

    def _newton(self, coef, drive, lo, hi, x0):
        """Solve ``coef*V - drive + i_neuron(V) = 0`` elementwise (safeguarded Newton)."""
        # The root always lies in [min(v_lin, v_low), max(v_lin, v_high)]: below it the lower diode
        # pushes current in and the conductances pull up, above it the reverse (no evaluation needed).
        v_lin = drive / coef
        lower = np.minimum(v_lin, lo)
        upper = np.maximum(v_lin, hi)
        x = np.clip(x0, lower, upper)
        flat_x, flat_lo, flat_hi = x.ravel(), lower.ravel(), upper.ravel()
        coef_b = np.broadcast_to(coef, x.shape).ravel()
        drive_f = drive.ravel()
        active = np.arange(flat_x.size)
        for _ in range(200):
            xa = flat_x[active]
            i, g = neuron_current(xa, lo, hi, self.diode)
            ca = coef_b[active]
            f = ca * xa - drive_f[active] + i
            fpos = f > 0
            la = np.where(fpos, flat_lo[active], xa)
            ua = np.where(fpos, xa, flat_hi[active])
            xn = xa - f / (ca + g)
            out = (xn < la) | (xn > ua) | ~np.isfinite(xn)
            xn = np.where(out, 0.5 * (la + ua), xn)
            flat_x[active] = xn
            flat_lo[active], flat_hi[active] = la, ua
            step = np.abs(xn - xa)
            keep = (step > self.xtol * (1.0 + np.abs(xn))) & (ua - la > self.xtol)
            active = active[keep]
            if active.size == 0:
                break
        return flat_x.reshape(x.shape).astype(self.dtype, copy=False)

    def residuals(self, state, fixed_drive, currents) -> list:
        """Physical KCL residual (A) of layers 1..L at ``state`` (projected for ideal diodes)."""
        return [self._layer_residual(layer, state, fixed_drive, currents) for layer in range(1, self.n_layers)]

    def _layer_residual(self, layer, state, fixed_drive, currents):
        d = self.drive(layer, state, fixed_drive, currents)
        v = state[layer]
        r = self.coef[layer] * v - d
        if layer < self.n_layers - 1:
            lo, hi = self.bounds[layer]
            if self.diode.kind == "ideal":
                r = np.where(v >= hi, np.maximum(r, 0), r)
                r = np.where(v <= lo, np.minimum(r, 0), r)
            else:
                current = shockley_current(v, lo, hi, self.diode)
                r = r + (current if current is not None else neuron_current(v, lo, hi, self.diode)[0])
        return r

    def max_residual(self, state, fixed_drive, currents) -> float:
        """Largest physical KCL residual (A) over layers 1..L, as ``max |residuals(...)|``; Shockley layers with a
        low-rank drive are checked in one kernel pass (:func:`~circuitprop.shockley.shockley_residual`)."""
        worst = 0.0
        for layer in range(1, self.n_layers):
            split = self.low_rank_drive(layer, state, fixed_drive) if self.diode.kind != "ideal" else None
            if split is not None:
                lo, hi = self.bounds[layer]
                base, sources, transfer = split
                r = shockley_residual(state[layer], self.coef[layer], base, lo, hi, self.diode, sources, transfer)
                if r is not None:
                    worst = max(worst, r)
                    continue
            r = _max_abs([self._layer_residual(layer, state, fixed_drive, currents)])
            if np.isnan(r):
                return r
            worst = max(worst, r)
        return worst

    # -- the solve ----------------------------------------------------------
    def solve(self, inputs, output_currents=None, initial: Solution | None = None,
              record_cocontent: bool = False, input_drive: dict | None = None,
              input_voltages: np.ndarray | None = None) -> Solution:
        """Steady state of a batch (see :class:`~circuitprop.backends.base.Backend`).

        ``input_drive`` (``{layer: amperes (batch, n)}``) gives the Norton drive of the input
        crossbars when the caller already has it (the training loop gets it from the update pass);
        otherwise it is computed here.  ``input_voltages`` likewise gives
        the input-source voltages (volts, this solver's dtype) when the caller formed them already.
        """
        cfg = self.config
        if input_voltages is not None:
            features = np.asarray(inputs)
            expected = (features.reshape(-1, self.network.architecture.n_features).shape[0], self.sizes[0])
            if input_voltages.shape != expected or input_voltages.dtype != self.dtype:
                raise ValueError(f"input voltages have shape {input_voltages.shape} and dtype {input_voltages.dtype}, "
                                 f"expected {expected} and {np.dtype(self.dtype)}")
            v_in = input_voltages
        else:
            v_in = input_voltages_of(self.network, inputs, dtype=self.dtype)
        batch = v_in.shape[0]
        currents = None
        if output_currents is not None:
            currents = np.asarray(output_currents, dtype=self.dtype)
            if currents.shape != (batch, self.sizes[-1]):
                raise ValueError(f"output currents have shape {currents.shape}, expected {(batch, self.sizes[-1])}")
        fixed = None
        if initial is not None:
            if len(initial.voltages) != self.n_layers or initial.voltages[0].shape != v_in.shape:
                raise ValueError("initial state does not match this network and batch")
            state = [v_in] + [np.array(v, dtype=self.dtype) for v in initial.voltages[1:]]
        else:
            state = [v_in]
            for layer in range(1, self.n_layers):
                lo, hi = self.bounds.get(layer, (0.0, 0.0))
                start = 0.5 * (lo + hi) if layer < self.n_layers - 1 else 0.0
                state.append(np.full((batch, self.sizes[layer]), start, dtype=self.dtype))
        if fixed is None and input_drive is not None:
            fixed = {layer: np.asarray(d, dtype=self.dtype) for layer, d in input_drive.items()}
        if fixed is None:
            fixed = self.input_drive(v_in)
        trace = []
        if record_cocontent:
            trace.append(cocontent(self.network, [s.astype(float) for s in state], currents))
        fixed_sweeps = cfg.warm_sweeps if (initial is not None and cfg.warm_sweeps) else cfg.fixed_sweeps
        n_max = fixed_sweeps or cfg.max_sweeps
        residual = float("nan")
        converged = False
        sweeps = 0
        if initial is not None and cfg.warm_sweeps:
            # the outputs' new currents reach every layer joined to the outputs in the first sweep, not the second
            last = self.n_layers - 1
            state[last] = self.update(last, self.drive(last, state, fixed, currents), state[last])
        # Small batches of a one-hidden-layer ideal-diode network: every fixed sweep in one kernel call, on
        # ``state`` in place (then the loop below has nothing left to do).
        chained = (fixed_sweeps is not None and not record_cocontent
                   and batch * self.sizes[1] < IDEAL_KERNEL_MIN_SIZE
                   and self._chain_sweeps(state, fixed, currents, fixed_sweeps))
        if chained:
            sweeps, n_max = fixed_sweeps, 0
        # Layers written in place swap with a spare buffer each sweep (state[l] is owned by this solve:
        # copied from ``initial`` or freshly filled), so no new arrays are allocated per sweep.
        reuse = (self.diode.kind == "ideal" or self.dtype == np.float64) and not chained  # Shockley writes float64
        spare = {l: np.empty_like(state[l]) for l in range(1, self.n_layers - 1)} if reuse else {}
        # Over-relaxed steps keep moving by a few rounding units where plain coordinate descent lands on a
        # fixed point of the arithmetic: below that size, the residual decides.
        vtol = cfg.vtol if self.omega == 1.0 else max(cfg.vtol, 16 * float(np.finfo(self.dtype).eps)
                                                       * max(1.0, *(float(np.max(np.abs(b))) for b in
                                                                    self.bounds.values())))
        for sweeps in range(1, n_max + 1):
            change = 0.0
            # Block Gauss-Seidel in layer order: every layer sees its neighbours' latest voltages, and a crossbar
            # (l, l + 1) read by a crossbar pass is read once (the pass forms layer l + 1's drive through it).
            received = None  # (crossbar, drive through it) formed by the pass of the layer before
            for l in range(1, self.n_layers):
                target = self.passes.get(l)
                done = self.crossbar_pass(l, target, state, fixed, currents, received, out=spare.get(l)) \
                    if target is not None else None
                if done is not None:
                    v, received = done[0], ((l, target), done[1])
                elif received is not None:
                    v, received = self.update(l, self.drive(l, state, fixed, currents, formed=received), state[l]), None
                else:
                    v = self.solve_layer(l, state, fixed, currents, out=spare.get(l))
                if fixed_sweeps is None:
                    change = max(change, float(np.max(np.abs(v - state[l]))))
                if v is spare.get(l):
                    spare[l] = state[l]
                state[l] = v
            if record_cocontent:
                trace.append(cocontent(self.network, [s.astype(float) for s in state], currents))
            if fixed_sweeps is None and change <= vtol:
                residual = self.max_residual(state, fixed, currents)
                if residual <= cfg.tol:
                    converged = True
                    break
        if not all(np.isfinite(v).all() for v in state[1:]):
            raise ConvergenceError(f"fast solver: node voltages became non-finite after {sweeps} sweeps; "
                                   "check for extreme conductances, gains or inputs")
        if not converged and (fixed_sweeps is None or cfg.fixed_sweeps_residual):
            residual = self.max_residual(state, fixed, currents)
            converged = residual <= cfg.tol
        info = {}
        if record_cocontent:
            info["cocontent"] = np.array(trace)
        solution = Solution(voltages=state, iterations=sweeps, residual=residual, converged=converged, info=info)
        if not converged and fixed_sweeps is None:
            report_failure(cfg, f"fast solver: no steady state after {sweeps} sweeps (max_sweeps); largest KCL "
                                f"residual {residual:.3g} A > tol {cfg.tol:.3g} A. Raise max_sweeps, loosen tol, "
                                f"or use dtype='float64'.")
        return solution


def report_failure(config: FastSolverConfig, message: str) -> None:
    """Raise, warn or do nothing about a solve that did not converge, as ``config.on_fail`` says."""
    if config.on_fail == "raise":
        raise ConvergenceError(message)
    if config.on_fail == "warn":
        warnings.warn(message, RuntimeWarning, stacklevel=3)


#: Smallest ideal-diode layer (batch x nodes) solved by :func:`~circuitprop.shockley.clipped_neurons`; below it the
#: numpy path is faster (at batch 4 x 1024: 15 against 10-13 us per call, ``benchmarks/bench_solvers.py``).
IDEAL_KERNEL_MIN_SIZE = 65536

#: Largest downstream layer whose drive the Shockley kernel adds itself (see ``PreparedNetwork.low_rank_drive``).
LOW_RANK_MAX = 32


#: Smallest crossbar (conductances) read by a crossbar pass; below it the two products cost less.
CROSSBAR_PASS_MIN_SIZE = 1 << 16


@lru_cache(maxsize=64)
def _crossbar_passes(arch) -> dict:
    """``{a: a + 1}`` for every hidden layer ``a`` whose crossbar to the next hidden layer has at least
    ``CROSSBAR_PASS_MIN_SIZE`` conductances: the sweep updates ``a`` just before ``a + 1``, so one pass over that
    crossbar updates ``a`` and forms ``a + 1``'s drive.  (Layers that share no crossbar could move together, a
    colouring of the layer graph as earlier releases did; one at a time, in order, every layer sees its
    neighbours' latest voltages, and the steady state takes as many sweeps or fewer on every topology of
    ``benchmarks/bench_deep.py``.)"""
    sizes = arch.layer_sizes
    return {a: a + 1 for a in range(1, arch.n_layers - 2)
            if (a, a + 1) in arch.crossbars and sizes[a] * sizes[a + 1] >= CROSSBAR_PASS_MIN_SIZE}


def _accumulate(total, term, fixed):
    """``total + term``, or ``term + fixed`` for the first term (in place in ``term``, a fresh product)."""
    if total is None:
        if fixed is not None:
            term += fixed
        return term
    total += term
    return total


def _max_abs(arrays) -> float:
    return max(float(np.max(np.abs(a))) if a.size else 0.0 for a in arrays)
