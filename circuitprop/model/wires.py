"""Crossbars with wire resistance (IR drop), reduced exactly to their ports.

Layout of one crossbar of ``m`` rows (the nodes, or amplifier outputs, of layer ``a``) and ``n``
columns (the nodes of layer ``b``), with ``r_w = Architecture.wire_resistance`` ohms per cell::

    port row i --r_w-- R[i,0] --r_w-- R[i,1] -- ... --r_w-- R[i,n-1]        (word line i)
                         |              |                      |
                       g[i,0]         g[i,1]                 g[i,n-1]       (cell conductances)
                         |              |                      |
                       C[i,0]         C[i,1]                 C[i,n-1]
                         |r_w           |r_w                   |r_w         (bit lines run down to
                       C[i+1,0]  ...                                          row m-1, then --r_w--
                                                                              port column j)

Every cell adds one segment to its row line and one to its column line; the ports are the layer
nodes.  The ``2*m*n`` line nodes are connected only to segments and cells, so they can be eliminated:
the crossbar is then exactly a linear multi-port with port conductance matrix (a Schur complement)

    [I_rows]   [P_rr    P_rc] [u]
    [I_cols] = [P_rc^T  P_cc] [v]

(amperes flowing into the crossbar at its ports for port voltages ``u`` (rows) and ``v`` (columns)).
With ideal wires ``P_rr = diag(row sums)``, ``P_cc = diag(column sums)`` and ``P_rc = -g``.  The
elimination needs one sparse LU of the line network (``scipy.sparse.linalg.splu``) and one solve per
port that is not an input source.  Port currents are summed from cell currents (KCL along each
line), never as ``g_w - g_w**2 * ...`` differences, so no precision is lost to the large wire
conductances.

Everything here is derived from the network (conductances plus ``wire_resistance``): netlists write
the same segments flat (:func:`circuitprop.netlist.circuit.build_circuit`).
"""
from __future__ import annotations

import hashlib
from collections import OrderedDict

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spl

from .network import Network


class CrossbarLines:
    """The line network of one crossbar with wire resistance.

    Parameters
    ----------
    conductance : ndarray, shape (m, n)
        Cell conductances, siemens, in node order.
    wire_resistance : float
        Ohms per cell segment (> 0).
    row_order, column_order : sequence of int, optional
        Physical layout: the word line at position ``p`` (counted from the top, the far end of the bit
        lines) belongs to row ``row_order[p]``; the bit line at position ``q`` (counted from the drivers)
        to column ``column_order[q]``.  Default: node order.  Every method takes and returns node order.
    """

    def __init__(self, conductance: np.ndarray, wire_resistance: float, row_order=None, column_order=None):
        g = np.asarray(conductance, dtype=np.float64)
        if g.ndim != 2:
            raise ValueError(f"conductance must be a 2-d array, got shape {g.shape}")
        if not wire_resistance > 0:
            raise ValueError(f"wire_resistance must be > 0 ohms, got {wire_resistance!r}")
        self.conductance = g
        self.wire_conductance = gw = 1.0 / float(wire_resistance)
        m, n = g.shape
        self.shape = (m, n)
        self.row_order = _order(row_order, m, "row_order")
        self.column_order = _order(column_order, n, "column_order")
        self._row_position = np.argsort(self.row_order)  # physical position of logical row i
        self._column_position = np.argsort(self.column_order)
        g = self._physical = g[np.ix_(self.row_order, self.column_order)]
        cells = m * n
        r = np.arange(cells).reshape(m, n)
        c = r + cells
        first = [r.ravel(), r[:, :-1].ravel(), c[:-1, :].ravel()]
        second = [c.ravel(), r[:, 1:].ravel(), c[1:, :].ravel()]
        weight = [g.ravel(), np.full(m * (n - 1), gw), np.full((m - 1) * n, gw)]
        i, j, w = (np.concatenate(x) for x in (first, second, weight))
        diag = np.bincount(i, w, 2 * cells) + np.bincount(j, w, 2 * cells)
        self.row_end = r[:, 0].copy()     # line node next to row port i
        self.column_end = c[-1, :].copy()  # line node next to column port j
        diag[self.row_end] += gw
        diag[self.column_end] += gw
        idx = np.arange(2 * cells)
        matrix = sp.coo_matrix((np.concatenate([-w, -w, diag]),
                                (np.concatenate([i, j, idx]), np.concatenate([j, i, idx]))),
                               shape=(2 * cells, 2 * cells)).tocsc()
        self._lu = spl.splu(matrix, permc_spec="MMD_AT_PLUS_A")
        self._columns = None
        self._rows = None

    # -- line voltages -----------------------------------------------------------------------
    def line_voltages(self, u: np.ndarray, v: np.ndarray) -> tuple:
        """Row-line and column-line voltages (V), each ``(batch, m, n)``, for port voltages ``u`` (batch, m)
        and ``v`` (batch, n)."""
        m, n = self.shape
        u = np.atleast_2d(np.asarray(u, dtype=np.float64))
        v = np.atleast_2d(np.asarray(v, dtype=np.float64))
        if u.shape[1] != m or v.shape[1] != n or u.shape[0] != v.shape[0]:
            raise ValueError(f"port voltages of shapes {u.shape} and {v.shape} do not fit a {m}x{n} crossbar")
        rhs = np.zeros((2 * m * n, u.shape[0]))
        rhs[self.row_end] = self.wire_conductance * u[:, self.row_order].T
        rhs[self.column_end] = self.wire_conductance * v[:, self.column_order].T
        x = self._lu.solve(rhs)
        lines = x.T.reshape(u.shape[0], 2, m, n)[:, :, self._row_position][:, :, :, self._column_position]
        return lines[:, 0], lines[:, 1]

    def power(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Power (W) dissipated in the cells and wire segments, per sample, at port voltages ``u``, ``v``."""
        rows, cols = self.line_voltages(u, v)
        rows, cols = rows[:, self.row_order][:, :, self.column_order], cols[:, self.row_order][:, :, self.column_order]
        u, v = np.atleast_2d(u)[:, self.row_order], np.atleast_2d(v)[:, self.column_order]  # physical order
        cells = np.einsum("bij,ij->b", (rows - cols) ** 2, self._physical)
        segments = (((u - rows[:, :, 0]) ** 2).sum(1) + (np.diff(rows, axis=2) ** 2).sum((1, 2))
                    + ((cols[:, -1, :] - v) ** 2).sum(1) + (np.diff(cols, axis=1) ** 2).sum((1, 2)))
        return cells + self.wire_conductance * segments

    def cell_drops(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Voltage (V) across every cell, row line minus column line, ``(batch, m, n)``."""
        rows, cols = self.line_voltages(u, v)
        return rows - cols

    # -- port matrices -----------------------------------------------------------------------
    def _port_response(self, ends: np.ndarray) -> tuple:
        """Currents into the row and column ports (A) when each port of ``ends`` in turn is at 1 V."""
        m, n = self.shape
        rhs = np.zeros((2 * m * n, ends.size))
        rhs[ends, np.arange(ends.size)] = self.wire_conductance
        x = self._lu.solve(rhs).reshape(2, m, n, ends.size)
        cell_current = self._physical[:, :, None] * (x[0] - x[1])  # row line -> column line, per cell
        into_rows = cell_current.sum(axis=1)  # (m, k): what enters row line i must leave through its cells
        into_cols = -cell_current.sum(axis=0)  # (n, k)
        return into_rows[self._row_position], into_cols[self._column_position]  # node order of the ports

    @property
    def column_ports(self) -> tuple:
        """``(P_rc, P_cc)``: siemens, shapes (m, n) and (n, n)."""
        if self._columns is None:
            into_rows, into_cols = self._port_response(self.column_end[self._column_position])
            self._columns = (into_rows, _symmetrised(into_cols))
        return self._columns

    @property
    def row_ports(self) -> np.ndarray:
        """``P_rr``: siemens, shape (m, m) (one sparse solve per row: costly for input crossbars)."""
        if self._rows is None:
            into_rows, _ = self._port_response(self.row_end[self._row_position])
            self._rows = _symmetrised(into_rows)
        return self._rows

    def port_currents(self, u: np.ndarray, v: np.ndarray, rows: bool = True) -> tuple:
        """Currents (A) into the row ports ``(batch, m)`` (``None`` unless ``rows``) and the column ports
        ``(batch, n)`` at port voltages ``u``, ``v``."""
        rc, cc = self.column_ports
        cols = u @ rc + v @ cc
        return ((u @ self.row_ports + v @ rc.T) if rows else None), cols


def _order(order, size, what) -> np.ndarray:
    if order is None:
        return np.arange(size)
    order = np.asarray(order)
    if order.shape != (size,) or not np.array_equal(np.sort(order), np.arange(size)):
        raise ValueError(f"{what} must be a permutation of 0..{size - 1}")
    return order


def line_orders(arch, key: tuple) -> tuple:
    """Physical order ``(row_order, column_order)`` of the lines of crossbar ``key`` (see :class:`CrossbarLines`).

    ``wire_layout="interleaved"`` puts the two lines of every differential pair side by side: the word lines
    of ``+x_k`` and ``-x_k`` (and of the two bias inputs) in a crossbar from the inputs, the bit lines of the
    ``+`` and ``-`` nodes of each class in a crossbar into doubled outputs.  The pair then sees nearly the same
    line resistance, so IR drop does not shift the difference it encodes.  ``"node-order"`` lays the lines
    out in node order (all ``+x`` lines, then all ``-x`` lines).
    """
    a, b = key
    sizes = arch.layer_sizes
    rows, cols = np.arange(sizes[a]), np.arange(sizes[b])
    if arch.wire_layout != "interleaved":
        return rows, cols
    if a == 0 and arch.doubled_inputs:
        n = arch.n_features
        pairs = np.stack([np.arange(n), np.arange(n) + n], axis=1).ravel()
        rows = np.concatenate([pairs, np.arange(2 * n, sizes[0])])  # the bias pair is already adjacent
    if b == arch.output_layer and arch.doubled_outputs:
        k = arch.n_classes
        cols = np.stack([np.arange(k), np.arange(k) + k], axis=1).ravel()
    return rows, cols


def _symmetrised(p: np.ndarray) -> np.ndarray:
    """The port matrix of a reciprocal network is symmetric; average away the solver's rounding."""
    return 0.5 * (p + p.T)


_CACHE: OrderedDict = OrderedDict()
_CACHE_SIZE = 8


def crossbar_lines(network: Network, key: tuple) -> CrossbarLines:
    """The :class:`CrossbarLines` of crossbar ``key`` of ``network`` (cached on the conductance values)."""
    g = network.conductances[key]
    wire = network.architecture.wire_resistance
    digest = hashlib.blake2b(np.ascontiguousarray(g, dtype=np.float64).tobytes(), digest_size=16).hexdigest()
    layout = network.architecture.wire_layout
    tag = (key, float(wire), layout, g.shape, digest)
    lines = _CACHE.get(tag)
    if lines is None:
        lines = CrossbarLines(g, wire, *line_orders(network.architecture, key))
        _CACHE[tag] = lines
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    else:
        _CACHE.move_to_end(tag)
    return lines


def has_wires(network_or_architecture) -> bool:
    """True when crossbars have wire resistance."""
    arch = getattr(network_or_architecture, "architecture", network_or_architecture)
    return arch.wire_resistance > 0


def cell_drops(network: Network, key: tuple, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Voltage (V) across every conductance of crossbar ``key``, ``(batch, m, n)``.

    ``u`` are the voltages driving the rows (``A_a V_a``, amplifier outputs included) and ``v`` the
    column nodes.  With ideal wires this is ``u_i - v_j``; with wire resistance it is the drop between the
    cell's own row-line and column-line nodes.
    """
    if has_wires(network):
        return crossbar_lines(network, key).cell_drops(u, v)
    return np.asarray(u)[:, :, None] - np.asarray(v)[:, None, :]


__all__ = ["CrossbarLines", "crossbar_lines", "cell_drops", "has_wires", "line_orders"]
