"""The physics in one place: diode laws, pseudo-powers, co-content, KCL residuals.

Every solver and every physics test uses these functions.  A *state* is a list
of per-layer voltage arrays ``[V0, V1, ..., VL]`` of shape ``(batch, n_layer)``
in volts, layer 0 being the input sources (see :mod:`circuitprop.network` for
the node order).  Output currents are amperes injected into the output nodes,
shape ``(batch, n_out)``.

For a crossbar ``(a, b)`` with conductances ``G`` (siemens) the pseudo-power is
``1/2 * sum_ij G_ij (A_a V_a,i - V_b,j)**2`` where ``A_a`` is the forward gain
of the amplifier after layer ``a`` (1 without one).  A neuron contributes the
pseudo-powers of its two diodes, an output current source ``-I*V``.  With wire resistance
(:mod:`circuitprop.wires`) a crossbar's pseudo-power is half the power dissipated in its cells and
wire segments, and its currents come from its exact port matrices.
"""
from __future__ import annotations

import numpy as np
from scipy.special import wrightomega, xlogy

from .diode import DiodeModel
from .network import Network
from .wires import cell_drops, crossbar_lines, has_wires

#: Exponent above which the Shockley exponential is continued linearly (like SPICE's limexp),
#: so that solvers never overflow; physical states never reach it.
EXP_LIMIT = 80.0


def diode_current(v, diode: DiodeModel):
    """Current (A) and its derivative (S) of a Shockley diode (with RS) at forward voltage ``v`` (V).

    Returns
    -------
    current, conductance : ndarray
    """
    v = np.asarray(v, dtype=np.float64) if not isinstance(v, np.ndarray) else v
    isat = diode.saturation_current
    nvt = diode.emission_coefficient * diode.thermal_voltage
    rs = diode.series_resistance
    if rs > 0:
        z = np.log(isat * rs / nvt) + (v + isat * rs) / nvt
        w = wrightomega(z)
        current = (nvt / rs) * w - isat
        return current, w / ((1.0 + w) * rs)
    x = v / nvt
    e = np.exp(np.minimum(x, EXP_LIMIT))
    current = isat * (e - 1.0)
    if x.size and np.max(x) > EXP_LIMIT:  # rare: continue the exponential linearly (never overflows)
        current = current + isat * e * np.maximum(x - EXP_LIMIT, 0.0)
    return current, isat * e / nvt


def diode_pseudo_power(v, diode: DiodeModel):
    """Pseudo-power ``p(v) = integral_0^v i(u) du`` (watts) of a Shockley diode (with RS)."""
    v = np.asarray(v, dtype=np.float64)
    isat = diode.saturation_current
    nvt = diode.emission_coefficient * diode.thermal_voltage
    rs = diode.series_resistance
    if rs > 0:
        i, _ = diode_current(v, diode)
        # co-content = i*v - content; content = nVt[(IS+i)ln(1+i/IS) - i] + RS i^2 / 2
        s = np.maximum(isat + i, 0.0)
        content = nvt * (xlogy(s, s / isat) - i) + 0.5 * rs * i * i
        return i * v - content
    x = v / nvt
    xc = np.minimum(x, EXP_LIMIT)
    over = np.maximum(x - EXP_LIMIT, 0.0)
    e = np.exp(xc)
    return isat * nvt * (e * (1.0 + over + 0.5 * over * over) - 1.0) - isat * v


def neuron_current(v, v_low: float, v_high: float, diode: DiodeModel):
    """Current (A) leaving a node at ``v`` through its two diodes, and its derivative (S).

    One diode goes from the node to a source at ``v_high``, the other from a
    source at ``v_low`` to the node.  Only for Shockley diodes.
    """
    i_hi, g_hi = diode_current(v - v_high, diode)
    i_lo, g_lo = diode_current(v_low - v, diode)
    return i_hi - i_lo, g_hi + g_lo


def neuron_pseudo_power(v, v_low: float, v_high: float, diode: DiodeModel):
    """Pseudo-power (W) of a neuron's two diodes; ``inf`` outside the clip range for ideal diodes."""
    v = np.asarray(v, dtype=np.float64)
    if diode.kind == "ideal":
        scale = max(abs(v_low), abs(v_high), 1.0) * 1e-9
        inside = (v >= v_low - scale) & (v <= v_high + scale)
        return np.where(inside, 0.0, np.inf)
    return diode_pseudo_power(v - v_high, diode) + diode_pseudo_power(v_low - v, diode)


def _check_state(network: Network, state) -> list:
    sizes = network.layer_sizes
    if len(state) != len(sizes):
        raise ValueError(f"state has {len(state)} layers, network has {len(sizes)}")
    for layer, (v, n) in enumerate(zip(state, sizes)):
        if v.ndim != 2 or v.shape[1] != n:
            raise ValueError(f"state layer {layer} has shape {v.shape}, expected (batch, {n})")
    return list(state)


def cocontent(network: Network, state, output_currents=None) -> np.ndarray:
    """Co-content (total pseudo-power, watts) of each sample, shape ``(batch,)``."""
    arch = network.architecture
    state = _check_state(network, state)
    total = np.zeros(state[0].shape[0])
    if has_wires(network):
        total += 0.5 * _wired_crossbar_power(network, state)
    for (a, b), g in ([] if has_wires(network) else network.conductances.items()):
        u = arch.row_voltages(a, state[a])
        vb = state[b]
        total += 0.5 * ((u * u) @ g.sum(axis=1) - 2.0 * np.einsum("bi,ij,bj->b", u, g, vb, optimize=True)
                        + (vb * vb) @ g.sum(axis=0))
    for layer, h in enumerate(arch.hidden, start=1):
        total += neuron_pseudo_power(state[layer], h.v_low, h.v_high, arch.diode).sum(axis=1)
    if output_currents is not None:
        total -= np.sum(np.asarray(output_currents) * state[-1], axis=1)
    return total


def resistive_currents(network: Network, state, physical: bool = True) -> list:
    """Current (A) leaving each node of layers 1..L through crossbars (and amplifiers).

    With ``physical=True`` the backward CCCS gain of each amplifier scales the
    current drawn from the hidden node (what KCL sees); with ``physical=False``
    the forward gain is used, which gives the gradient of the co-content.
    """
    arch = network.architecture
    out = [np.zeros_like(v) for v in state]
    if has_wires(network):
        for (a, b) in network.conductances:
            ga = arch.forward_gain(a)
            into_rows, into_cols = crossbar_lines(network, (a, b)).port_currents(ga * state[a], state[b],
                                                                                 rows=a > 0)
            out[b] += into_cols
            if a > 0:
                out[a] += (arch.current_gain(a) if physical else ga) * into_rows
        return out[1:]
    for (a, b), g in network.conductances.items():
        ga = arch.forward_gain(a)
        u = arch.row_voltages(a, state[a])
        # current flowing from the terminal of a into node b, through each resistor
        out[b] += state[b] * g.sum(axis=0) - u @ g
        back = arch.current_gain(a) if physical else ga
        # a row of an inverted copy draws its current from the node through a transformer of ratio -A
        out[a] += back * arch.fold_rows(a, u * g.sum(axis=1) - state[b] @ g.T)
    return out[1:]


def node_conductances(network: Network, sums: dict | None = None) -> dict:
    """Total conductance (S) seen by every node of layers 1..L, ``{layer: (n,)}``.

    ``sum_in G_ji + c*A * sum_out G_ik``: the incoming crossbars' column sums plus, for a hidden layer, its
    outgoing crossbars' row sums times the amplifier's current and voltage gains.  ``sums`` gives
    ``{(a, b): (row_sums, column_sums)}`` already at hand (the fast solver keeps them up to date; row sums
    of crossbars from the input layer are not needed and may be ``None``); otherwise they are computed.
    """
    arch = network.architecture
    if has_wires(network):
        total = {layer: np.zeros(size) for layer, size in enumerate(network.layer_sizes) if layer > 0}
        for (a, b) in network.conductances:
            lines = crossbar_lines(network, (a, b))
            total[b] += np.diag(lines.column_ports[1])
            if a > 0:
                total[a] += arch.current_gain(a) * arch.forward_gain(a) * np.diag(lines.row_ports)
        return total
    if sums is None:
        sums = {k: (g.sum(axis=1), g.sum(axis=0)) for k, g in network.conductances.items()}
    total = {layer: np.zeros(size) for layer, size in enumerate(network.layer_sizes) if layer > 0}
    for (a, b), (rows, cols) in sums.items():
        total[b] += cols
        if a > 0:
            total[a] += arch.current_gain(a) * arch.forward_gain(a) * arch.fold_rows(a, rows, signed=False)
    return total


def current_scale(network: Network, state, output_currents=None) -> list:
    """Per free node, the sum of the magnitudes of the currents its conductances can carry (A).

    ``sum_j G_ij (|u_i| + |V_j|)`` over every crossbar touching the node (plus the output current): an upper
    bound of the crossbar currents, the scale against which a KCL residual is judged (relative residual).
    """
    arch = network.architecture
    state = _check_state(network, state)
    out = [np.zeros_like(v, dtype=np.float64) for v in state]
    for (a, b), g in network.conductances.items():
        u = np.abs(arch.row_voltages(a, state[a]))
        if has_wires(network):
            lines = crossbar_lines(network, (a, b))
            rc, cc = (np.abs(p) for p in lines.column_ports)
            out[b] += np.abs(state[b]) @ cc + u @ rc
            if a > 0:
                out[a] += arch.current_gain(a) * (u @ np.abs(lines.row_ports) + np.abs(state[b]) @ rc.T)
            continue
        vb = np.abs(state[b])
        out[b] += vb * g.sum(axis=0) + u @ g
        out[a] += arch.current_gain(a) * arch.fold_rows(a, u * g.sum(axis=1) + vb @ g.T, signed=False)
    if output_currents is not None:
        out[-1] += np.abs(np.asarray(output_currents))
    return out[1:]


def kcl_residual(network: Network, state, output_currents=None, physical: bool = True) -> list:
    """KCL residual (A) at every free node of layers 1..L: net current leaving the node.

    For ideal diodes the diode current is whatever KCL needs on its side: at
    ``V = v_high`` the upper diode can carry any current out of the node, at
    ``V = v_low`` the lower one any current in; outside the range the residual
    is ``inf``.
    """
    arch = network.architecture
    state = _check_state(network, state)
    res = resistive_currents(network, state, physical=physical)
    for layer, h in enumerate(arch.hidden, start=1):
        v = state[layer]
        r = res[layer - 1]
        if arch.diode.kind == "ideal":
            tol = max(abs(h.v_low), abs(h.v_high), 1.0) * 1e-12
            at_hi = v >= h.v_high - tol
            at_lo = v <= h.v_low + tol
            # at v_high the upper diode can only carry current out of the node (r <= 0 is balanced),
            # at v_low the lower diode can only push current in (r >= 0 is balanced)
            r = np.where(at_hi, np.maximum(r, 0.0), r)
            r = np.where(at_lo, np.minimum(r, 0.0), r)
            r = np.where((v > h.v_high + 1e3 * tol) | (v < h.v_low - 1e3 * tol), np.inf, r)
        else:
            r = r + neuron_current(v, h.v_low, h.v_high, arch.diode)[0]
        res[layer - 1] = r
    if output_currents is not None:
        res[-1] = res[-1] - np.asarray(output_currents)
    return res


def static_power(network: Network, state) -> dict:
    """Static power (watts) dissipated in the circuit at an operating point, per sample.

    Returns ``{"crossbars": (batch,), "diodes": (batch,), "total": (batch,)}``: ``sum G (A_a V_a,i - V_b,j)**2``
    over every crossbar resistor and ``i * v`` over every diode (with its series resistance; ideal diodes
    dissipate nothing).  At a steady state this equals the power the sources deliver (input and bias
    sources, amplifiers, nudging currents): Tellegen's theorem, checked against ngspice in the tests.
    """
    arch = network.architecture
    state = _check_state(network, state)
    resistors = np.zeros(state[0].shape[0])
    if has_wires(network):
        resistors += _wired_crossbar_power(network, state)
    for (a, b), g in ([] if has_wires(network) else network.conductances.items()):
        u = arch.row_voltages(a, state[a].astype(np.float64))
        v = state[b].astype(np.float64)
        g = g.astype(np.float64, copy=False)
        resistors += (u * u) @ g.sum(axis=1) - 2.0 * np.einsum("bi,ij,bj->b", u, g, v, optimize=True) \
            + (v * v) @ g.sum(axis=0)
    diodes = np.zeros_like(resistors)
    if arch.diode.kind != "ideal":
        for layer, h in enumerate(arch.hidden, start=1):
            v = state[layer].astype(np.float64)
            up = v - h.v_high
            down = h.v_low - v
            diodes += (diode_current(up, arch.diode)[0] * up + diode_current(down, arch.diode)[0] * down).sum(axis=1)
    return {"crossbars": resistors, "diodes": diodes, "total": resistors + diodes}


def _wired_crossbar_power(network: Network, state) -> np.ndarray:
    """Power (W) dissipated in the cells and wire segments of every crossbar, per sample."""
    arch = network.architecture
    total = np.zeros(state[0].shape[0])
    for (a, b), g in network.conductances.items():
        lines = crossbar_lines(network, (a, b))
        chunk = max(1, 2**22 // lines.conductance.size)  # samples per solve: ~64 MB of line voltages
        for start in range(0, total.size, chunk):
            part = slice(start, start + chunk)
            total[part] += lines.power(arch.forward_gain(a) * state[a][part].astype(np.float64),
                                       state[b][part].astype(np.float64))
    return total


def max_abs_residual(residuals) -> float:
    """Largest absolute KCL residual (A) over all layers and samples."""
    return max(float(np.max(np.abs(r))) if r.size else 0.0 for r in residuals)


def cocontent_gradient(network: Network, state, output_currents=None) -> list:
    """Gradient of the co-content with respect to the voltages of layers 1..L (A)."""
    return kcl_residual(network, state, output_currents, physical=False)


def conductance_gradient(network: Network, state) -> dict:
    """``dP/dG`` for every crossbar: ``1/2 * (A_a V_a,i - V_b,j)**2`` summed over the batch (V^2).

    This is the local quantity of the equilibrium-propagation rule: it needs
    only the voltage drop across each conductance.  With wire resistance the drop is the one
    across the cell itself (between its word-line and bit-line nodes).
    """
    arch = network.architecture
    grads = {}
    for (a, b) in network.conductances:
        u = arch.row_voltages(a, state[a])
        vb = state[b]
        if has_wires(network):
            grads[(a, b)] = 0.5 * (cell_drops(network, (a, b), u, vb) ** 2).sum(0)
            continue
        grads[(a, b)] = 0.5 * ((u * u).sum(0)[:, None] - 2.0 * u.T @ vb + (vb * vb).sum(0)[None, :])
    return grads


__all__ = ["diode_current", "diode_pseudo_power", "neuron_current", "neuron_pseudo_power", "cocontent",
           "kcl_residual", "cocontent_gradient", "conductance_gradient", "resistive_currents",
           "max_abs_residual", "current_scale", "static_power", "node_conductances"]
