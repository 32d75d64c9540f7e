"""The fused conductance update: low-rank EP gradient, momentum, step and clipping in one pass.

The ΔV² rule's gradient for a crossbar is a low-rank matrix (an outer-product identity)::

    dL/dg[i, j] = a[i] + b[j] - sum_r left[r, i] * right[r, j]

with ``r`` running over the measured rows of all phases (batch x phases x noise samples; 8 for a
centered step at batch 4), ``a = 1/2 sum_r w_r u_ri**2``, ``b = 1/2 sum_r w_r v_rj**2`` and
``left = w * u``, ``right = v`` (see :class:`LowRankGradient`).  So the dense gradient never has to
exist: one pass over the conductances forms each element of it from the factors, updates the
momentum buffer, steps, clips to the device range and accumulates the row and column sums that
the fast solver needs (so its matrices are updated, not rebuilt).

Two implementations give the same result (tested): a numba kernel (one pass, both cores) used
when numba is installed, and a pure-numpy fallback (a matrix product into a preallocated buffer
and in-place passes, no full-size temporaries).  Set ``CIRCUITPROP_KERNELS=numpy`` to force the
fallback.
"""
from __future__ import annotations

import os
import types
import warnings
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits


@dataclass
class LowRankGradient:
    """``dL/dg = a[:, None] + b[None, :] - left.T @ right`` (volts squared, per normalised conductance).

    Attributes
    ----------
    a : ndarray, shape (n_a,)
    b : ndarray, shape (n_b,)
    left : ndarray, shape (rows, n_a)
        Weighted source-side voltages ``w_r * A_a V_a,r`` (volts).
    right : ndarray, shape (rows, n_b)
        Target-side voltages ``V_b,r`` (volts).
    """

    a: np.ndarray
    b: np.ndarray
    left: np.ndarray
    right: np.ndarray

    def dense(self) -> np.ndarray:
        """The full gradient array (for tests and the generic optimizer path)."""
        return self.a[:, None] + self.b[None, :] - self.left.T @ self.right

    @property
    def shape(self) -> tuple:
        return (self.a.shape[0], self.b.shape[0])


_NUMBA_IMPORTED = None  # None: not tried yet; then whether numba imported (and OMP_WAIT_POLICY was set)


def _numba_available() -> bool:
    """Whether the numba kernels are used: numba imports and ``CIRCUITPROP_KERNELS`` is not ``numpy`` (read on
    every call, so it can be switched at run time; the import is tried once)."""
    global _NUMBA_IMPORTED
    if os.environ.get("CIRCUITPROP_KERNELS", "").lower() == "numpy":
        return False
    if _NUMBA_IMPORTED is None:
        try:
            import numba  # noqa: F401
        except ImportError:
            _NUMBA_IMPORTED = False
            return False
        # numba's OpenMP threads keep spinning after each parallel loop, and OpenBLAS's after each product: on
        # two cores they starve each other (the solver ran 4x slower, measured). Passive OpenMP threads sleep
        # instead (set before numba starts its threads; the workqueue layer avoids the spinning too but costs
        # about 0.2 ms per parallel loop, which doubled a training step). CHANGELOG.md, measurement history of 0.1.0.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        guard_numba_cache()
        _NUMBA_IMPORTED = True
    return _NUMBA_IMPORTED


def guard_numba_cache() -> bool:
    """Make numba recompile, with a one-line warning naming the cache folder, when a cached kernel cannot be
    loaded (a truncated, emptied, random or swapped file: UnpicklingError, EOFError, OverflowError, TypeError,
    "LLVM bitcode parsing error", ...) instead of failing on every start; a cache entry that cannot be saved
    over a damaged index replaces the index.  Returns whether the guard is installed (numba's ``Cache`` class
    as this version of numba has it)."""
    try:
        from numba.core import caching
    except ImportError:  # pragma: no cover - numba is optional
        return False
    cache = getattr(caching, "Cache", None)
    if cache is None or getattr(cache.load_overload, "_circuitprop_guard", False):
        return cache is not None
    load, save = cache.load_overload, cache.save_overload

    def load_overload(self, sig, target_context):
        try:
            return load(self, sig, target_context)
        except Exception as exc:  # noqa: BLE001 - any damage to the cache files
            warnings.warn(f"numba cache of {getattr(self, '_name', 'a kernel')} in "
                          f"{getattr(self, '_cache_path', '?')} is unreadable ({type(exc).__name__}: "
                          f"{str(exc)[:120]}); compiling it again", RuntimeWarning, stacklevel=2)
            return None

    def save_overload(self, sig, data):
        try:
            return save(self, sig, data)
        except Exception:  # noqa: BLE001 - the index is damaged: start it afresh
            index = getattr(getattr(self, "_cache_file", None), "_index_path", None)
            if index:
                try:
                    os.unlink(index)
                    return save(self, sig, data)
                except Exception:  # noqa: BLE001 - the cache stays unusable; the kernel still runs
                    return None
            return None

    load_overload._circuitprop_guard = True
    cache.load_overload, cache.save_overload = load_overload, save_overload
    return True


# -- numpy fallback -------------------------------------------------------------------------------------------

class _Buffers:
    """Preallocated full-size work arrays, one per (shape, dtype): no page faults on fresh temporaries."""

    def __init__(self):
        self._arrays = {}

    def get(self, shape, dtype):
        key = (tuple(shape), np.dtype(dtype).str)
        array = self._arrays.get(key)
        if array is None:
            array = self._arrays[key] = np.empty(shape, dtype=dtype)
        return array


_BUFFERS = _Buffers()


def update_numpy(conductance, velocity, grad: LowRankGradient, grad_scale, step, momentum, sign, lower, upper,
                 rows=True, project=None):
    """Numpy version of :func:`update` (same arguments and result)."""
    dtype = conductance.dtype
    work = _BUFFERS.get(conductance.shape, dtype)
    left = np.asarray(grad.left, dtype=dtype)
    right = np.asarray(grad.right, dtype=dtype)
    np.matmul(left.T, right, out=work)                       # the cross term, into the buffer
    np.subtract(np.asarray(grad.a, dtype)[:, None], work, out=work)
    work += np.asarray(grad.b, dtype)[None, :]
    if sign:
        np.sign(work, out=work)
        work *= np.sign(grad_scale)
    else:
        work *= dtype.type(grad_scale)
    if velocity is not None:
        velocity *= dtype.type(momentum)
        velocity += work
        np.multiply(velocity, dtype.type(step), out=work)
    else:
        work *= dtype.type(step)
    conductance -= work
    np.clip(conductance, lower, upper, out=conductance)
    drive = None if project is None else np.asarray(project, dtype=dtype) @ conductance
    return ((conductance.sum(axis=1, dtype=np.float64) if rows else None), conductance.sum(axis=0, dtype=np.float64),
            drive)


#: Row blocks of the numba kernel, fixed (not the thread count) so that sums, and so training runs,
#: are bit-for-bit the same on any machine and across a resume.
CHUNKS = 8
#: Arrays (crossbars, or layers x batch for the Newton kernel) smaller than this run on one thread.
PARALLEL_MIN_SIZE = 65536


# -- numba kernel -----------------------------------------------------------------------------------------------

def renamed(func, suffix):
    """A copy of ``func`` named ``<name>_<suffix>``, to compile one function with several sets of options.

    numba's on-disk cache (``cache=True``) finds an entry by the function's name, source line, bytecode
    and signature, not by its options: ``njit(parallel=True)(f)`` and ``njit(f)`` share one entry, and
    whichever was compiled first was loaded for both.  The parallel kernels then ran on one thread (the
    Shockley solve took 35 ms per batch of 256 instead of 20) whenever a small batch had run first.
    """
    code = func.__code__.replace(co_name=f"{func.__code__.co_name}_{suffix}")
    if hasattr(code, "co_qualname"):  # Python >= 3.11
        code = code.replace(co_qualname=f"{code.co_qualname}_{suffix}")
    copy = types.FunctionType(code, func.__globals__, f"{func.__name__}_{suffix}", func.__defaults__,
                              func.__closure__)
    copy.__qualname__ = f"{func.__qualname__}_{suffix}"
    copy.__module__ = func.__module__
    copy.__doc__ = func.__doc__
    return copy


_KERNEL = None
_SUMS = None
_ROW_SUMS = None
# Inlined helpers of the kernels, reached as module globals (set before the kernels compile), never as closure
# variables: numba keys its on-disk cache on the pickled closure, and a jitted function pickles with a
# per-process id, so a kernel that closed over one missed the cache and compiled again in every process
# (about 20 s at the start of every training run, measured).
_FLUSH = None
_GRADIENT_HEAD = None


def _flush_columns():
    """``colsum += part; part = 0`` after row ``done`` when a block of ``block`` rows (counted from the chunk's
    first row ``start``) or the chunk (``stop``) ends: the one place (inlined in every update loop and in
    :func:`crossbar_sums`) where partial column sums are rounded into the float64 sums, so both are bit-identical.

    ``part`` has the conductances' dtype, so the update loops stay in one precision (a float32 loop that also
    adds into a float64 array runs 4 lanes wide instead of 8: the kernel took 0.58 ms instead of 0.48 ms
    per 1568 x 1024 step).  ``block`` is even (pairs of rows never straddle a flush) or at least the chunk.
    """
    global _FLUSH
    if _FLUSH is None:
        import numba

        @numba.njit(inline="always")
        def flush(colsum, part, done, start, stop, block):
            if (done - start + 1) % block == 0 or done + 1 == stop:
                for j in range(part.shape[0]):
                    colsum[j] += part[j]
                    part[j] = 0
        _FLUSH = flush
    return _FLUSH


#: Rows whose float32 column sums are added before they go into the float64 sums (relative rounding at most
#: ~16 float32 epsilons, ~1e-7 typically); float64 sums take whole chunks (then ``part`` is the sum itself).
COLUMN_BLOCK = 16


def _column_block(dtype, n) -> int:
    return COLUMN_BLOCK if np.dtype(dtype) == np.float32 else max(int(n), 1)


def _sums_kernel():
    global _SUMS
    if _SUMS is not None:
        return _SUMS
    import numba
    _flush_columns()

    @numba.njit(parallel=True, cache=True, nogil=True)
    def sums(conductance, colsum_parts, block):
        n, m = conductance.shape
        chunks = colsum_parts.shape[0]
        per = (n + chunks - 1) // chunks
        for c in numba.prange(chunks):
            colsum = colsum_parts[c]
            part = np.zeros(m, dtype=conductance.dtype)
            start, stop = c * per, min(n, (c + 1) * per)
            for i in range(start, stop):
                for j in range(m):
                    part[j] += conductance[i, j]
                _FLUSH(colsum, part, i, start, stop, block)
    _SUMS = sums
    return sums


def _row_sums_kernel():
    global _ROW_SUMS
    if _ROW_SUMS is None:
        import numba

        @numba.njit(cache=True, nogil=True)
        def row_sums(conductance, out):
            n, m = conductance.shape
            for i in range(n):
                total = 0.0
                for j in range(m):
                    total += conductance[i, j]
                out[i] = total
        _ROW_SUMS = row_sums
    return _ROW_SUMS


def row_sums(conductance):
    """Row sums (float64, siemens), the same in :func:`crossbar_sums` and :func:`update`: numpy's for wide
    crossbars, a plain loop for narrow ones (numpy took 18 µs for 1024 x 10 float32, the loop about 3)."""
    if conductance.shape[1] >= NARROW_COLUMNS or not _numba_available():
        return conductance.sum(axis=1, dtype=np.float64)
    out = np.empty(conductance.shape[0], dtype=np.float64)
    _row_sums_kernel()(np.ascontiguousarray(conductance), out)
    return out


def crossbar_sums(conductance, rows=True):
    """Row and column sums (float64, siemens) of a crossbar, in the same arithmetic as :func:`update`.

    The fast solver starts from these and is then kept up to date by the sums :func:`update` returns,
    so a resumed training computes exactly what an uninterrupted one does.  ``rows=False`` skips the
    row sums (``None``), which the solver needs only for crossbars leaving a hidden layer.
    """
    rowsum = row_sums(conductance) if rows else None
    if not _numba_available():
        return rowsum, conductance.sum(axis=0, dtype=np.float64)
    n, m = conductance.shape
    colsum_parts = np.zeros((min(CHUNKS, n), m), dtype=np.float64)
    _sums_kernel()(np.ascontiguousarray(conductance), colsum_parts, _column_block(conductance.dtype, n))
    return rowsum, colsum_parts.sum(axis=0)


_PROJECT_ROW = None


def _project_row():
    """``drive_parts[c, r, :] += project[r, i] * conductance[i, :]`` for every r: the one place (inlined in
    both the fused update and :func:`project`) where input drives are accumulated, so both are bit-identical."""
    global _PROJECT_ROW
    if _PROJECT_ROW is None:
        import numba

        @numba.njit(inline="always", fastmath=True)
        def project_row(conductance, project, drive_parts, c, i):
            m = conductance.shape[1]
            for r in range(project.shape[0]):
                w = project[r, i]
                drive = drive_parts[c, r]
                for j in range(m):
                    drive[j] += w * conductance[i, j]
        _PROJECT_ROW = project_row
    return _PROJECT_ROW


def _kernel():
    global _KERNEL
    if _KERNEL is not None:
        return _KERNEL
    import numba
    global _GRADIENT_HEAD
    _project_row()
    _flush_columns()

    @numba.njit(inline="always", fastmath=True)
    def gradient_head(cross, a_i, b, left, right, i, terms):
        """``cross = a_i + b - sum_{r < terms} left[r, i] * right[r]``, four rank-one terms per pass over the
        row (``terms`` a multiple of 4)."""
        m = cross.shape[0]
        if terms == 0:
            for j in range(m):
                cross[j] = a_i + b[j]
            return
        w0, w1, w2, w3 = left[0, i], left[1, i], left[2, i], left[3, i]
        x0, x1, x2, x3 = right[0], right[1], right[2], right[3]
        for j in range(m):
            cross[j] = a_i + b[j] - w0 * x0[j] - w1 * x1[j] - w2 * x2[j] - w3 * x3[j]
        for r in range(4, terms, 4):
            w0, w1, w2, w3 = left[r, i], left[r + 1, i], left[r + 2, i], left[r + 3, i]
            x0, x1, x2, x3 = right[r], right[r + 1], right[r + 2], right[r + 3]
            for j in range(m):
                cross[j] = cross[j] - w0 * x0[j] - w1 * x1[j] - w2 * x2[j] - w3 * x3[j]
    _GRADIENT_HEAD = gradient_head

    def fused(conductance, velocity, a, b, left, right, grad_scale, step, momentum, use_momentum, use_sign,
              lower, upper, colsum_parts, block, project, drive_parts):
        n, m = conductance.shape
        rows = left.shape[0]
        chunks = colsum_parts.shape[0]
        per = (n + chunks - 1) // chunks
        # The common cases (no sign): one pass over a row forms its last rank-one terms, updates velocity and
        # conductance, adds to the column sums and (for 4 projected rows, the training batch of 4) to the next
        # batch's drive, with each value in a register.  With momentum, 4 projected rows and a rank that is a
        # multiple of 8 (a centered step at batch 4 has rank 8) two rows share a pass and its last eight terms
        # are formed in it, so a rank-8 row needs no other pass; otherwise one row per pass and four terms.
        single = rows >= 4 and rows % 4 == 0 and not use_sign
        fused_projection = single and project.shape[0] == 4
        pairs = fused_projection and use_momentum and rows % 8 == 0
        for c in numba.prange(chunks):
            cross = np.empty(m, dtype=conductance.dtype)
            part = np.zeros(m, dtype=conductance.dtype)  # column sums since the last flush, in this dtype
            colsum = colsum_parts[c]
            if fused_projection:
                d0, d1, d2, d3 = drive_parts[c, 0], drive_parts[c, 1], drive_parts[c, 2], drive_parts[c, 3]
            else:
                d0 = d1 = d2 = d3 = cross
            start, stop = c * per, min(n, (c + 1) * per)
            paired = start
            if pairs:
                other = np.empty(m, dtype=conductance.dtype)
                zero = np.zeros(1, dtype=conductance.dtype)[0]
                head = rows - 8
                for i in range(start, stop - 1, 2):
                    k = i + 1
                    if head:  # the terms before the last eight, with a_i + b, into a row buffer each
                        _GRADIENT_HEAD(cross, a[i], b, left, right, i, head)
                        _GRADIENT_HEAD(other, a[k], b, left, right, k, head)
                        base_i, base_k, a_i, a_k = cross, other, zero, zero
                    else:
                        base_i, base_k, a_i, a_k = b, b, a[i], a[k]
                    r = head
                    e0, e1, e2, e3 = left[r, i], left[r + 1, i], left[r + 2, i], left[r + 3, i]
                    f0, f1, f2, f3 = left[r, k], left[r + 1, k], left[r + 2, k], left[r + 3, k]
                    w0, w1, w2, w3 = left[r + 4, i], left[r + 5, i], left[r + 6, i], left[r + 7, i]
                    u0, u1, u2, u3 = left[r + 4, k], left[r + 5, k], left[r + 6, k], left[r + 7, k]
                    z0, z1, z2, z3 = right[r], right[r + 1], right[r + 2], right[r + 3]
                    x0, x1, x2, x3 = right[r + 4], right[r + 5], right[r + 6], right[r + 7]
                    p0, p1, p2, p3 = project[0, i], project[1, i], project[2, i], project[3, i]
                    q0, q1, q2, q3 = project[0, k], project[1, k], project[2, k], project[3, k]
                    g_row, h_row = conductance[i], conductance[k]
                    v_row, u_row = velocity[i], velocity[k]
                    for j in range(m):
                        t0, t1, t2, t3 = z0[j], z1[j], z2[j], z3[j]
                        y0, y1, y2, y3 = x0[j], x1[j], x2[j], x3[j]
                        grad_i = (a_i + base_i[j] - e0 * t0 - e1 * t1 - e2 * t2 - e3 * t3
                                  - w0 * y0 - w1 * y1 - w2 * y2 - w3 * y3)
                        grad_k = (a_k + base_k[j] - f0 * t0 - f1 * t1 - f2 * t2 - f3 * t3
                                  - u0 * y0 - u1 * y1 - u2 * y2 - u3 * y3)
                        v = momentum * v_row[j] + grad_scale * grad_i
                        u = momentum * u_row[j] + grad_scale * grad_k
                        v_row[j] = v
                        u_row[j] = u
                        g = min(max(g_row[j] - step * v, lower), upper)
                        h = min(max(h_row[j] - step * u, lower), upper)
                        g_row[j] = g
                        h_row[j] = h
                        part[j] = part[j] + g + h
                        d0[j] = d0[j] + p0 * g + q0 * h
                        d1[j] = d1[j] + p1 * g + q1 * h
                        d2[j] = d2[j] + p2 * g + q2 * h
                        d3[j] = d3[j] + p3 * g + q3 * h
                    _FLUSH(colsum, part, k, start, stop, block)
                    paired = i + 2
            for i in range(paired, stop):
                ai = a[i]
                if single:
                    last = rows - 4
                    _GRADIENT_HEAD(cross, ai, b, left, right, i, last)
                    w0, w1, w2, w3 = left[last, i], left[last + 1, i], left[last + 2, i], left[last + 3, i]
                    x0, x1, x2, x3 = right[last], right[last + 1], right[last + 2], right[last + 3]
                    g_row = conductance[i]
                    if use_momentum:
                        v_row = velocity[i]
                        if fused_projection:
                            p0, p1, p2, p3 = project[0, i], project[1, i], project[2, i], project[3, i]
                            for j in range(m):
                                grad = cross[j] - w0 * x0[j] - w1 * x1[j] - w2 * x2[j] - w3 * x3[j]
                                v = momentum * v_row[j] + grad_scale * grad
                                v_row[j] = v
                                g = min(max(g_row[j] - step * v, lower), upper)
                                g_row[j] = g
                                part[j] += g
                                d0[j] += p0 * g
                                d1[j] += p1 * g
                                d2[j] += p2 * g
                                d3[j] += p3 * g
                        else:
                            for j in range(m):
                                grad = cross[j] - w0 * x0[j] - w1 * x1[j] - w2 * x2[j] - w3 * x3[j]
                                v = momentum * v_row[j] + grad_scale * grad
                                v_row[j] = v
                                g = min(max(g_row[j] - step * v, lower), upper)
                                g_row[j] = g
                                part[j] += g
                    else:
                        if fused_projection:
                            p0, p1, p2, p3 = project[0, i], project[1, i], project[2, i], project[3, i]
                            for j in range(m):
                                grad = cross[j] - w0 * x0[j] - w1 * x1[j] - w2 * x2[j] - w3 * x3[j]
                                g = min(max(g_row[j] - step * (grad_scale * grad), lower), upper)
                                g_row[j] = g
                                part[j] += g
                                d0[j] += p0 * g
                                d1[j] += p1 * g
                                d2[j] += p2 * g
                                d3[j] += p3 * g
                        else:
                            for j in range(m):
                                grad = cross[j] - w0 * x0[j] - w1 * x1[j] - w2 * x2[j] - w3 * x3[j]
                                g = min(max(g_row[j] - step * (grad_scale * grad), lower), upper)
                                g_row[j] = g
                                part[j] += g
                else:  # the general case: the gradient row, then the update
                    for j in range(m):
                        cross[j] = ai + b[j]
                    for r in range(rows):
                        w = left[r, i]
                        for j in range(m):
                            cross[j] -= w * right[r, j]
                    if use_sign:  # grad_scale is then the sign of the true scale (the wrapper sees to it)
                        for j in range(m):
                            cross[j] = np.sign(cross[j])
                    if use_momentum:  # branches outside the element loops, so each loop vectorises
                        for j in range(m):
                            v = momentum * velocity[i, j] + grad_scale * cross[j]
                            velocity[i, j] = v
                            g = min(max(conductance[i, j] - step * v, lower), upper)
                            conductance[i, j] = g
                            part[j] += g
                    else:
                        for j in range(m):
                            g = min(max(conductance[i, j] - step * (grad_scale * cross[j]), lower), upper)
                            conductance[i, j] = g
                            part[j] += g
                if not fused_projection:
                    _PROJECT_ROW(conductance, project, drive_parts, c, i)  # the next batch's drive, from this row
                _FLUSH(colsum, part, i, start, stop, block)

    def narrow(conductance, velocity, a, b, cross, grad_scale, step, momentum, use_momentum, use_sign,
               lower, upper, colsum_parts, block, project, drive_parts):
        """``fused`` for crossbars with few columns (e.g. the 1024 x 10 output crossbar), given the cross term
        ``cross = left.T @ right`` (a matrix product, as in :func:`update_numpy`): elements are indexed in
        place, with no row views.  A view costs an atomic reference-count increment and decrement, and
        ``fused`` takes about a dozen per row: 12 ns per element at 10 columns; rank-one terms over rows of
        10 columns vectorise poorly (4.6 ns per element), the product and this pass take about 1.9."""
        n, m = conductance.shape
        chunks = colsum_parts.shape[0]
        per = (n + chunks - 1) // chunks
        for c in numba.prange(chunks):
            part = np.zeros(m, dtype=conductance.dtype)
            row = np.empty(m, dtype=conductance.dtype)
            start, stop = c * per, min(n, (c + 1) * per)
            for i in range(start, stop):
                ai = a[i]
                for j in range(m):
                    row[j] = ai + b[j] - cross[i, j]
                if use_sign:  # a loop of its own: np.sign in the update loop kept it scalar (+40 % time)
                    for j in range(m):
                        row[j] = np.sign(row[j])
                for j in range(m):
                    grad = row[j]
                    if use_momentum:
                        v = momentum * velocity[i, j] + grad_scale * grad
                        velocity[i, j] = v
                        g = min(max(conductance[i, j] - step * v, lower), upper)
                    else:
                        g = min(max(conductance[i, j] - step * (grad_scale * grad), lower), upper)
                    conductance[i, j] = g
                    part[j] += g
                for r in range(project.shape[0]):  # the next batch's drive, from the updated row
                    pri = project[r, i]
                    for j in range(m):
                        drive_parts[c, r, j] += pri * conductance[i, j]
                _FLUSH(colsum_parts[c], part, i, start, stop, block)

    # threads for large crossbars, none for small ones (waking the threads costs more than the pass there);
    # the element arithmetic is the same, so results do not depend on the choice.  Narrow crossbars have
    # their own loop (a crossbar always takes the same one, so runs stay reproducible).
    options = dict(cache=True, nogil=True, fastmath=True)
    _KERNEL = tuple(CacheConsistent(lambda f=f, p=p, name=name: numba.njit(parallel=p, **options)(renamed(f, name)),
                                    (__name__, "_kernel", i))
                    for i, (f, p, name) in enumerate(((fused, True, "parallel"), (fused, False, "serial"),
                                                      (narrow, True, "parallel"), (narrow, False, "serial"))))
    return _KERNEL


class CacheConsistent:
    """A cached numba kernel that runs the same machine code in every process: the code of its disk cache.

    numba's code for a function it has just compiled in a process differs from the same function loaded from
    its disk cache (``parallel=True`` kernels round differently in the last bit: 0.15 % of the conductances of a
    1570 x 100 crossbar after one fused update, measured; numba issue 10617 reports a speed difference), and a
    process that compiled a kernel keeps running its own copy even after saving it.  So a run that compiled its
    kernels and a run, or a resume, that loaded them would drift apart.  Here a signature the cache lacks is
    compiled by a child process (``python -m circuitprop.kernels.compile``), which saves it; this process then
    loads it.  Calls with a known signature go straight to the dispatcher, whose compilation is disabled (a new
    signature raises ``TypeError`` there and is primed).  When the child cannot do it (no writable cache, no
    numba internals of the expected shape), the kernel compiles here as numba would.

    ``key`` names the kernel for the child: ``(module, builder function, index into what it returns)``.
    Attributes (``py_func``, ``signatures``, ``stats``, ...) are the dispatcher's.
    """

    def __init__(self, make, key):
        self._make = make
        self._key = key
        self._dispatcher = make()
        self._ready = False  # a signature is compiled (and compilation disabled)

    def __getattr__(self, name):
        return getattr(self._dispatcher, name)

    def __call__(self, *args):
        if self._ready:
            try:
                return self._dispatcher(*args)
            except TypeError as exc:
                if "No matching definition" not in str(exc):
                    raise
        self._prime(args)
        return self._dispatcher(*args)

    def _prime(self, args):
        import numba
        dispatcher = self._dispatcher
        signature = tuple(numba.typeof(a) for a in args)
        if not self._cached(signature):
            compile_in_child(self._key, signature)
        dispatcher.disable_compile(False)
        dispatcher.compile(signature)  # from the cache when the child saved it, else here
        dispatcher.disable_compile()
        self._ready = True

    def _cached(self, signature) -> bool:
        try:
            cache = self._dispatcher._cache
            key = cache._index_key(signature, self._dispatcher.targetctx.codegen())
            return key in cache._cache_file._load_index()
        except Exception:  # noqa: BLE001 - numba internals of another shape: compile here
            return True


def compile_in_child(key, signature, timeout: float = 900) -> bool:
    """Compile kernel ``key`` for ``signature`` in a child process, which saves it to numba's disk cache."""
    import pickle
    import subprocess
    import sys
    try:
        proc = subprocess.run([sys.executable, "-m", "circuitprop.kernels.compile"],
                              input=pickle.dumps((key, signature)), capture_output=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


def kernel_by_key(key):
    """The :class:`CacheConsistent` kernel that ``key`` names (see there)."""
    import importlib
    module, builder, index = key
    built = getattr(importlib.import_module(module), builder)()
    if index is None:
        return built
    for part in (index if isinstance(index, tuple) else (index,)):
        built = built[part]
    return built


#: Crossbars with fewer columns than this take the narrow kernel (per-row views cost more than the row).
NARROW_COLUMNS = 32


_PROJECT = None


def _project_kernel():
    global _PROJECT
    if _PROJECT is not None:
        return _PROJECT
    import numba
    _project_row()

    def project_rows(conductance, project, drive_parts):
        n, m = conductance.shape
        chunks = drive_parts.shape[0]
        per = (n + chunks - 1) // chunks
        for c in numba.prange(chunks):
            for i in range(c * per, min(n, (c + 1) * per)):
                _PROJECT_ROW(conductance, project, drive_parts, c, i)
    _PROJECT = CacheConsistent(lambda: numba.njit(parallel=True, cache=True, nogil=True, fastmath=True)(project_rows),
                               (__name__, "_project_kernel", None))
    return _PROJECT


def project(voltages, conductance):
    """``voltages @ conductance`` (amperes: the input drive of a batch) in the same arithmetic as the
    projection fused into :func:`update`, so that a resumed run computes exactly what an uninterrupted
    one does.  Numpy's matrix product without numba.
    """
    voltages = np.ascontiguousarray(voltages, dtype=conductance.dtype)
    if not _numba_available():
        return voltages @ conductance
    n, m = conductance.shape
    drive_parts = np.zeros((min(CHUNKS, n), voltages.shape[0], m), dtype=conductance.dtype)
    _project_kernel()(conductance, voltages, drive_parts)
    return drive_parts.sum(axis=0)


_ROWS = None


def _rows_kernel():
    global _ROWS
    if _ROWS is None:
        import numba

        @numba.njit(cache=True, nogil=True, fastmath=True)
        def weighted_rows(v, weights, gain, left, half):
            rows, n = v.shape
            total = np.zeros(n)
            for r in range(rows):
                w = weights[r]
                scale = gain * w
                for k in range(n):
                    x = np.float64(v[r, k])
                    total[k] += w * x * x
                if left.shape[0]:
                    for k in range(n):
                        left[r, k] = scale * v[r, k]
            for k in range(n):
                half[k] = 0.5 * total[k]
        _ROWS = weighted_rows
    return _ROWS


def weighted_rows(v, weights, gain=1.0, left=True):
    """``(gain * weights[:, None] * v, 1/2 sum_r weights[r] * v[r]**2)``: a layer's share of a
    :class:`LowRankGradient` (volts, volts squared), in ``v``'s dtype (sums in float64); ``left=False``
    returns ``None`` for the first.  One numba pass over ``v`` (numpy's takes four calls per layer).
    """
    weights = np.asarray(weights, dtype=np.float64)
    if not _numba_available():
        half = (0.5 * (weights @ (v.astype(np.float64) ** 2))).astype(v.dtype)
        return ((gain * weights).astype(v.dtype)[:, None] * v if left else None), half
    out_left = np.empty(v.shape if left else (0, v.shape[1]), dtype=v.dtype)
    half = np.empty(v.shape[1], dtype=v.dtype)
    _rows_kernel()(np.ascontiguousarray(v), weights, float(gain), out_left, half)
    return (out_left if left else None), half


_INPUTS = None


def _inputs_kernel():
    global _INPUTS
    if _INPUTS is None:
        import numba

        @numba.njit(cache=True, nogil=True)  # no fastmath: the NaN/infinity check must survive
        def doubled_inputs(x, gain, doubled, bias_columns, bias_voltage, out):
            batch, n = x.shape
            largest = 0.0
            poison = 0.0  # stays 0 unless some x is NaN or infinite (x * 0 is NaN then)
            for s in range(batch):
                for k in range(n):
                    value = x[s, k]
                    largest = max(largest, abs(value))
                    poison += value * 0.0
                    out[s, k] = gain * value
                if doubled:
                    for k in range(n):
                        out[s, n + k] = -out[s, k]
                column = 2 * n if doubled else n
                for b in range(bias_columns):
                    out[s, column + b] = bias_voltage if b == 0 else -bias_voltage
            return largest, poison
        _INPUTS = doubled_inputs
    return _INPUTS


def input_voltages(network, x, dtype=np.float64) -> np.ndarray:
    """:meth:`Network.input_voltages <circuitprop.model.Network.input_voltages>` in one numba pass (bit for bit
    the same values and the same errors; at batch 4: 2 us instead of 12); numpy without numba."""
    if not _numba_available():
        return network.input_voltages(x, dtype=dtype)
    x = network.check_inputs(x)
    arch = network.architecture
    batch, n = x.shape
    out = np.empty((batch, arch.layer_sizes[0]), dtype=dtype)
    bias_columns = out.shape[1] - (2 * n if arch.doubled_inputs else n)  # what layer_sizes counts after x
    largest, poison = _inputs_kernel()(x, float(arch.input_gain), bool(arch.doubled_inputs), int(bias_columns),
                                       float(arch.bias_voltage), out)
    network.check_input_extremes(x, largest, poison == 0.0)
    return out


def update_numba(conductance, velocity, grad: LowRankGradient, grad_scale, step, momentum, sign, lower, upper,
                 rows=True, project=None):
    """Numba version of :func:`update` (same arguments and result)."""
    dtype = conductance.dtype
    n, m = conductance.shape
    scalar = dtype.type
    chunks = min(CHUNKS, n)
    colsum_parts = np.zeros((chunks, m), dtype=np.float64)
    use_momentum = velocity is not None
    vel = velocity if use_momentum else np.empty((1, 1), dtype=dtype)
    project = np.zeros((0, n), dtype=dtype) if project is None else np.ascontiguousarray(project, dtype=dtype)
    drive_parts = np.zeros((chunks, project.shape[0], m), dtype=dtype)
    parallel, serial, narrow_parallel, narrow_serial = _kernel()
    left = np.ascontiguousarray(grad.left, dtype=dtype)
    right = np.ascontiguousarray(grad.right, dtype=dtype)
    if m < NARROW_COLUMNS:
        parallel, serial = narrow_parallel, narrow_serial
        factors = (np.matmul(left.T, right),)  # the cross term (n, m): small, and a product is the fast way
    else:
        factors = (left, right)
    kernel = parallel if conductance.size >= PARALLEL_MIN_SIZE else serial
    kernel(conductance, vel, np.ascontiguousarray(grad.a, dtype=dtype), np.ascontiguousarray(grad.b, dtype=dtype),
           *factors, scalar(np.sign(grad_scale) if sign else grad_scale), scalar(step), scalar(momentum),
           use_momentum, bool(sign), scalar(lower), scalar(upper), colsum_parts, _column_block(dtype, n), project,
           drive_parts)
    rowsum = row_sums(conductance) if rows else None
    drive = drive_parts.sum(axis=0) if project.shape[0] else None
    return rowsum, colsum_parts.sum(axis=0), drive


def update(conductance, velocity, grad: LowRankGradient, grad_scale, step, momentum, sign, lower, upper, rows=True,
           project=None):
    """One fused SGD step on a crossbar, in place; returns its new row and column sums (siemens).

    ``velocity <- momentum * velocity + grad_scale * grad`` (``sign(grad_scale * grad)`` with ``sign``;
    no velocity when ``velocity`` is None), then ``conductance <- clip(conductance - step * velocity,
    lower, upper)``, where ``grad`` is a :class:`LowRankGradient`.  ``rows=False`` skips the row sums
    (returned as ``None``).  ``project`` (rows, n_a): also return ``project @ conductance`` of the updated
    array, formed in the same pass (the next batch's input drive; see :func:`project`), else ``None``.
    Uses the numba kernel when available, else :func:`update_numpy`.

    Returns
    -------
    row_sums, column_sums, projection
    """
    impl = update_numba if _numba_available() else update_numpy
    return impl(conductance, velocity, grad, grad_scale, step, momentum, sign, lower, upper, rows, project)


def training_threads():
    """Context for a training loop that uses the numba kernel: BLAS limited to one thread.

    The kernel runs on every core; OpenBLAS's threads keep spinning for a while after each matrix
    product and then fight the kernel's threads for the two cores (measured: the step took 4-5x
    longer). At training batch sizes the products gain little from threads, so BLAS gets one.
    Without numba (numpy fallback) nothing is changed.
    """
    if not _numba_available():
        return nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def backend_name() -> str:
    """``"numba"`` or ``"numpy"``: which implementation :func:`update` uses."""
    return "numba" if _numba_available() else "numpy"
