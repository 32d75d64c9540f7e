"""Node voltages of a layer of Shockley neurons, in closed form (Wright omega) and in SIMD (numba).

A hidden neuron is two diodes (saturation current ``IS``, emission coefficient ``N``, series resistance
``RS``) to bias sources at ``v_low`` and ``v_high``.  With the rest of the circuit fixed (one Gauss-Seidel
step of the fast solver), a node sees a conductance ``c`` to ground and a drive current ``d``, and its
voltage solves::

    c V - d + i(V - v_high) - i(v_low - V) = 0,     i(v) = IS (exp((v - RS i) / (N V_T)) - 1).

**Closed form.**  Only one diode conducts at a time: the upper one when ``d/c`` is above the midpoint
of the biases, else the lower one (the mirror image ``y = -V`` has the same equation).  With the other
diode at its saturation current ``-IS``, the equation is of Lambert-W type::

    beta (i + IS) = omega(z),   beta = (1/c + RS) / (N V_T),
    z = ln(beta IS) + ((d - IS)/c - v_high) / (N V_T) + beta IS,

with ``omega`` the Wright omega function (``omega + ln omega = z``); then
``V = v_high + N V_T (ln omega - ln(beta IS)) + RS i`` (the junction voltage plus the drop on RS: this
form does not cancel when the diode takes most of the drive, as ``(d - IS - i)/c`` does).  When
the other diode's exponential would move the node by more than ``xtol`` volts, one Newton step on the
full equation follows; its error is below ``step**2 / (2 N V_T)`` (``|f''/f'| <= 1/(N V_T)`` for a
diode), so it is accepted when that bound is below ``xtol``.  Otherwise (both diodes conducting hard:
a bias window of a few ``N V_T``) a safeguarded Newton iteration finishes.

**SIMD.**  ``math.exp`` and ``math.log`` are scalar library calls (5-7 ns each here), and they were the
cost of the solve.  The main kernel evaluates ``exp`` and ``log`` with branch-free polynomials
(Cody-Waite reduction, exponent bits set through an integer view of the array) that LLVM vectorises,
over rows of the batch, and computes ``omega`` for every node with the same fixed sequence (initial
guess of Lawrence, Corless & Jeffrey, ACM TOMS 38 (2012), Algorithm 917, and one or two fourth-order
corrections of Fritsch, Shafer & Crowley, chosen per row; none where ``z < SERIES_EXACT``, where the guess is
exact).  No phase is called with its output aliasing an input: LLVM's runtime overlap check would then
send the loop to its scalar fallback.  Per node at 256 x 1024: 2.2 ns (generic diode) and 5.1 ns (1N4148)
against 12 and 34 ns for the scalar closed form (``bench_solvers.py --only neurons``, two cores).  Nodes that need more than the closed form and one correction are finished by the scalar
path.  In a sweep, the hidden layer's drive from the few output nodes it feeds (``sources @ transfer``) is
added row by row inside the kernel, and :func:`shockley_residual` checks KCL in one pass, so no full-size
drive array is formed.  The results agree with the numpy Newton iteration of :mod:`circuitprop.backends.fast` to 1e-11 V
and satisfy KCL to rounding (``tests/test_shockley.py``).
"""
from __future__ import annotations

import math

import numpy as np

from ..model.energy import EXP_LIMIT
from .fused import PARALLEL_MIN_SIZE, CacheConsistent, _numba_available, renamed

#: Below this ``z`` the series guess of omega, ``e - e**2 + 3/2 e**3 - 8/3 e**4 + 125/24 e**5`` (``e = exp(z)``),
#: is exact to rounding (the next term, ``54/5 e**6``, is below 4e-19 of ``w``), so no correction is needed
SERIES_EXACT = -9.0

#: Below this exponent a diode's ``exp`` is skipped: ``IS*(exp(x) - 1)`` rounds to ``-IS`` exactly in float64.
NEGLIGIBLE_EXPONENT = -40.0

_KERNELS = None

# exp: x = k ln2 + r, |r| <= ln2/2, exp(r) by its Taylor series to degree 13 (truncation < 1e-17)
_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_SHIFT = 6755399441055744.0  # 1.5 * 2**52: adding it rounds to an integer held in the low mantissa bits
_SHIFT_BITS = int(np.array([_SHIFT]).view(np.int64)[0])
_EXP_TAYLOR = tuple(1.0 / math.factorial(k) for k in range(14))
# log: x = 2**e m, m in [sqrt(1/2), sqrt(2)), log m = 2 atanh(s), s = (m - 1)/(m + 1), |s| <= 0.1716
_MANTISSA = 0x000FFFFFFFFFFFFF
_ONE_BITS = 0x3FF0000000000000
_SQRT2_BITS = int(np.array([math.sqrt(2.0)]).view(np.int64)[0]) & 0x000FFFFFFFFFFFFF
_ATANH = tuple(2.0 / (2 * k + 1) for k in range(11))
#: fast-math flags that keep the exponent trick exact (no reassociation) and inf/nan semantics
_FASTMATH = {"contract", "arcp", "nsz"}


def _build():
    global _KERNELS
    # The helpers the kernels call become module globals, not closure variables: numba keys its on-disk cache on
    # the pickled closure, and a jitted function pickles with a per-process id, so every kernel that closed
    # over one compiled again in every process (see kernels.py; tests/test_kernels.py checks this).
    global _fritsch, diode_iv, drive_row, horner, neuron_row_current, node, omega, omega_correct, omega_guess
    global omega_log, other_diode_step, row_arguments, row_currents, row_drive, row_exponents, row_voltages
    global row_worst, vexp_call, vlog_call
    if _KERNELS is not None:
        return _KERNELS
    import numba

    scalar = numba.njit(inline="always", error_model="numpy")

    @scalar
    def omega_log(z):
        """Wright omega ``w + ln(w) = z`` for real ``z``, and ``ln(w)`` (relative error ~1e-15; tested
        against scipy).  ``ln(w)`` is returned because ``z - w`` loses digits when ``w`` is large."""
        if z < -2.0:
            e = math.exp(z)
            if e < 1e-17:  # w = e (1 - e + ...) to machine precision
                return e, z
            w = e * (1.0 + e * (-1.0 + e * (1.5 + e * (-8.0 / 3.0 + e * 125.0 / 24.0))))
            iterations = 1
        elif z <= 1.0:
            t = z - 1.0
            w = 1.0 + t * (0.5 + t * (1.0 / 16.0 + t * (-1.0 / 192.0 + t * (-1.0 / 3072.0 + t * 13.0 / 61440.0))))
            iterations = 2
        else:
            log_z = math.log(z)
            inv = 1.0 / z
            w = z - log_z + log_z * inv * (1.0 + inv * (0.5 * log_z - 1.0)
                                            + inv * inv * (log_z * log_z / 3.0 - 1.5 * log_z + 1.0))
            iterations = 2 if z < 4.0 else 1
        log_w = 0.0
        for _ in range(iterations):
            log_w = math.log(w)
            delta = _fritsch(z, w, log_w)
            w = w * (1.0 + delta)
            log_w += delta * (1.0 - delta * (0.5 - delta / 3.0))  # + log1p(delta), |delta| << 1
        return w, log_w

    @scalar
    def omega(z):
        return omega_log(z)[0]

    @scalar
    def _fritsch(z, w, log_w):
        """Relative correction of ``w`` towards ``omega(z)``, fourth order (Fritsch, Shafer & Crowley)."""
        r = z - w - log_w
        wp1 = 1.0 + w
        if wp1 > 1e150:  # q would overflow; the correction is r / (1 + w) there
            return r / wp1
        q = wp1 * (wp1 + 2.0 * r / 3.0)
        return r * (q - 0.5 * r) / (wp1 * (q - r))

    @scalar
    def diode_iv(v, isat, nvt, rs, log_k, limit):
        """Current (A) and conductance (S) of a diode at forward voltage ``v`` (V), as energy.diode_current."""
        if rs > 0.0:
            w = omega(log_k + (v + isat * rs) / nvt)
            return nvt / rs * w - isat, w / ((1.0 + w) * rs)
        x = v / nvt
        if x > limit:  # the model's linear continuation of the exponential (never overflows)
            e = math.exp(limit)
            return isat * (e * (1.0 + (x - limit)) - 1.0), isat * e / nvt
        e = math.exp(x)
        return isat * (e - 1.0), isat * e / nvt

    @numba.njit(error_model="numpy")
    def node(c, d, log_beta_isat, v_low, v_high, isat, nvt, rs, log_k, limit, xtol, max_iter, negligible):
        """Voltage (V) of one node: closed form, then Newton on the full equation when needed."""
        if d >= c * 0.5 * (v_low + v_high):  # the upper diode conducts (if any does)
            sign, dd, hi, lo = 1.0, d, v_high, v_low
        else:  # the lower one: the mirror image y = -V has the same equation
            sign, dd, hi, lo = -1.0, -d, -v_low, -v_high
        shifted = dd - isat
        beta = (1.0 / c + rs) / nvt
        w, log_w = omega_log(log_beta_isat + (shifted / c - hi) / nvt + beta * isat)
        current = w / beta - isat
        # the diode's junction voltage nVt ln((i + IS)/IS) plus RS i (no cancellation when it conducts hard)
        y = hi + nvt * (log_w - log_beta_isat) + rs * current
        exact = rs > 0.0 or (y - hi) / nvt <= limit
        if (lo - y) / nvt < negligible and exact:
            return sign * y  # the other diode's exponential moves the node by less than xtol
        lower = min(dd / c, lo)
        upper = max(dd / c, hi)
        x = min(max(y, lower), upper)
        for iteration in range(max_iter):
            i_hi, g_hi = diode_iv(x - hi, isat, nvt, rs, log_k, limit)
            i_lo, g_lo = diode_iv(lo - x, isat, nvt, rs, log_k, limit)
            f = c * x - dd + i_hi - i_lo
            if f > 0:
                upper = x
            else:
                lower = x
            step = f / (c + g_hi + g_lo)
            new = x - step
            if not (lower <= new <= upper):  # Newton left the bracket: bisect
                new = 0.5 * (lower + upper)
                done = upper - lower <= xtol
            elif iteration == 0 and exact:  # from the closed form: error below step**2 / (2 nVt)
                done = step * step <= nvt * xtol * (1.0 + abs(new))
            else:
                done = abs(step) <= xtol * (1.0 + abs(new)) or upper - lower <= xtol
            x = new
            if done:
                break
        return sign * x

    def scalar_rows(coef, log_beta_isat, drive, v_low, v_high, isat, nvt, rs, log_k, limit, xtol, max_iter,
                    negligible, out):
        batch, n = drive.shape
        for s in numba.prange(batch):
            for k in range(n):
                out[s, k] = node(coef[k], drive[s, k], log_beta_isat[k], v_low, v_high, isat, nvt, rs, log_k,
                                 limit, xtol, max_iter, negligible)

    vector = numba.njit(inline="always", error_model="numpy", fastmath=_FASTMATH)

    @vector
    def horner(coefficients, x):
        """``sum(coefficients[k] * x**k)`` (a constant tuple: the loop unrolls)."""
        p = coefficients[-1]
        for k in range(len(coefficients) - 2, -1, -1):
            p = coefficients[k] + x * p
        return p

    @vector
    def vexp(x, out, bits_buffer):
        """``out = exp(min(max(x, -708), 709))`` elementwise (relative error ~2e-16), vectorisable when ``out`` is
        not ``x`` (aliased arrays fail LLVM's runtime overlap check and the loop runs scalar, ~2.7x slower)."""
        t_bits = bits_buffer.view(np.int64)
        out_bits = out.view(np.int64)
        for i in range(x.size):
            xi = min(max(x[i], -708.0), 709.0)
            t = xi * _LOG2E + _SHIFT
            bits_buffer[i] = t
            k = t - _SHIFT
            r = (xi - k * _LN2_HI) - k * _LN2_LO
            out[i] = horner(_EXP_TAYLOR, r)
        for i in range(x.size):  # times 2**k: add k to the exponent field
            out_bits[i] = out_bits[i] + ((t_bits[i] - _SHIFT_BITS) << 52)

    @vector
    def vlog(x, out, mantissa):
        """``out = log(x)`` elementwise for normal ``x > 0`` (relative error ~2e-16), vectorisable.

        ``mantissa`` is a work array of the same size.  ``out`` may be ``x`` but should not be: the loop then
        runs scalar (LLVM's runtime overlap check fails)."""
        x_bits = x.view(np.int64)
        out_bits = mantissa.view(np.int64)
        for i in range(x.size):  # mantissa in [sqrt(1/2), sqrt(2)) as a float, the exponent kept in x's bits
            b = x_bits[i]
            m = b & _MANTISSA
            big = m > _SQRT2_BITS
            out_bits[i] = m | (_ONE_BITS - (1 << 52) if big else _ONE_BITS)
        for i in range(x.size):
            b = x_bits[i]
            e = np.int32((b >> 52) - 1023 + (1 if (b & _MANTISSA) > _SQRT2_BITS else 0))
            f = mantissa[i] - 1.0
            s = f / (2.0 + f)
            s2 = s * s
            ef = np.float64(e)
            out[i] = ef * _LN2_HI + (s * horner(_ATANH, s2) + ef * _LN2_LO)

    # The row phases are separate (not inlined) functions: each is one simple loop that LLVM vectorises.
    phase = numba.njit(error_model="numpy", fastmath=_FASTMATH, nogil=True)
    vexp_call = phase(vexp.py_func)
    vlog_call = phase(vlog.py_func)

    @phase
    def row_arguments(d_row, coef, inv_coef, beta, log_beta_isat, v_low, v_high, isat, inv_nvt, z, a, b):
        """``z`` of each node (upper diode, or the lower one mirrored); ``a = min(z, 0)``, ``b = max(z, 1)``.
        Returns the numbers of nodes with ``z > 1``, with ``-2 <= z < 4`` and with ``z >= SERIES_EXACT`` (integer
        counts vectorise, a floating-point maximum does not)."""
        mid = 0.5 * (v_low + v_high)
        n_big = 0
        n_mid = 0
        n_correct = 0
        for k in range(z.size):
            up = d_row[k] >= coef[k] * mid
            shifted = (d_row[k] if up else -d_row[k]) - isat
            hi = v_high if up else -v_low
            zk = log_beta_isat[k] + (shifted * inv_coef[k] - hi) * inv_nvt + beta[k] * isat
            z[k] = zk
            a[k] = min(zk, 0.0)
            b[k] = max(zk, 1.0)
            n_big += 1 if zk > 1.0 else 0
            n_mid += 1 if -2.0 <= zk < 4.0 else 0
            n_correct += 1 if zk >= SERIES_EXACT else 0
        return n_big, n_mid, n_correct

    @phase
    def omega_guess(z, exp_z, log_z, w):
        """Initial guess of omega(z) (Lawrence et al.): series in exp(z), Taylor at 1, asymptotic series."""
        for k in range(z.size):
            zk = z[k]
            e = max(exp_z[k], 1e-20)  # no subnormal powers (x86 handles them ~100x slower); e < 1e-17 is w = e
            series = e * (1.0 + e * (-1.0 + e * (1.5 + e * (-8.0 / 3.0 + e * 125.0 / 24.0))))
            t = zk - 1.0
            taylor = 1.0 + t * (0.5 + t * (1.0 / 16.0 + t * (-1.0 / 192.0 + t * (-1.0 / 3072.0 + t * 13.0 / 61440.0))))
            lz = log_z[k]
            inv = 1.0 / max(zk, 1.0)
            asymptotic = zk - lz + lz * inv * (1.0 + inv * (0.5 * lz - 1.0) + inv * inv * (lz * lz / 3.0 - 1.5 * lz + 1.0))
            series = exp_z[k] if exp_z[k] < 1e-17 else series  # w = exp(z) to rounding there
            guess = series if zk < -2.0 else (taylor if zk <= 1.0 else asymptotic)
            w[k] = min(max(guess, 1e-300), 1e300)

    @phase
    def omega_correct(z, w, log_w):
        """One Fritsch correction of ``w``; ``log_w`` holds ln(w) before and is updated to ln(w) after.
        Nodes with ``z < SERIES_EXACT`` are left as they are (their guess is exact already)."""
        for k in range(z.size):
            r = z[k] - w[k] - log_w[k]
            wp1 = 1.0 + w[k]
            q = wp1 * (wp1 + 2.0 * r / 3.0)
            delta = r * (q - 0.5 * r) / (wp1 * (q - r))
            delta = delta if z[k] >= SERIES_EXACT else 0.0
            w[k] = max(w[k] * (1.0 + delta), 1e-300)
            log_w[k] += delta * (1.0 - delta * (0.5 - delta / 3.0))

    @phase
    def row_voltages(d_row, coef, inv_beta, log_beta_isat, v_low, v_high, isat, nvt, inv_nvt, rs, limit, negligible,
                     z, exp_z, w, log_w, y, other, out_row):
        """Node voltages from omega (NaN where the closed form is not the model: exponent past the limit);
        ``other`` = the other diode's exponent (<= 0).  Returns the number of nodes where it is not negligible."""
        mid = 0.5 * (v_low + v_high)
        n_other = 0
        for k in range(z.size):
            up = d_row[k] >= coef[k] * mid
            lo = v_low if up else -v_high
            hi = v_high if up else -v_low
            series = z[k] < SERIES_EXACT  # w is the series guess, exact to rounding, and ln w = z - w
            lw = z[k] - w[k] if series else log_w[k]
            w[k] = max(w[k], 1e-250)  # below that, w / beta is subnormal (slow) and negligible next to IS
            yk = hi + nvt * (lw - log_beta_isat[k]) + rs * (w[k] * inv_beta[k] - isat)
            y[k] = yk
            exact = rs > 0.0 or (yk - hi) * inv_nvt <= limit
            out_row[k] = (yk if up else -yk) if exact else np.nan
            exponent = min((lo - yk) * inv_nvt, 0.0)
            other[k] = exponent
            n_other += 1 if exponent >= negligible else 0
        return n_other

    @phase
    def other_diode_step(d_row, coef, inv_coef, inv_beta, v_low, v_high, isat, nvt, inv_nvt, rs, xtol, negligible, w,
                         y, other, exp_other, out_row):
        """One Newton step on the full equation where the other diode matters (NaN where it is not enough)."""
        mid = 0.5 * (v_low + v_high)
        for k in range(y.size):
            up = d_row[k] >= coef[k] * mid
            sign = 1.0 if up else -1.0
            dd = sign * d_row[k]
            hi = v_high if up else -v_low
            lo = v_low if up else -v_high
            yk = y[k]
            j = w[k] * inv_beta[k]  # i + IS of the conducting diode
            eo = max(exp_other[k], 1e-250)  # (no subnormals) the other diode without RS (its RS term is checked negligible below)
            f = coef[k] * yk - dd + (j - isat) - isat * (eo - 1.0)
            step = f / (coef[k] + j / (nvt + rs * j) + isat * eo * inv_nvt)
            new = yk - step
            ok = (step * step <= nvt * xtol * (1.0 + abs(new)) and isat * eo * rs * inv_nvt <= 1e-6
                  and min(dd * inv_coef[k], lo) <= new <= max(dd * inv_coef[k], hi))
            out_row[k] = (sign * new if ok else np.nan) if other[k] >= negligible else out_row[k]

    @numba.njit(inline="always")
    def drive_row(drive, sources, transfer, s, buffer):
        """Row ``s`` of the drive: ``drive[s]`` itself, or with the low-rank part added, in ``buffer``."""
        if transfer.shape[0] == 0:
            return drive[s]
        row_drive(drive[s], sources[s], transfer, buffer)
        return buffer

    @phase
    def row_drive(base_row, sources_row, transfer, d_row):
        """``d_row = base_row + sources_row @ transfer`` (amperes): the drive of a layer from its fixed part
        and a few neighbouring nodes (``transfer`` (r, n): their conductances, scaled by the current gain)."""
        for k in range(d_row.size):
            d_row[k] = base_row[k]
        for r in range(transfer.shape[0]):
            u = sources_row[r]
            t = transfer[r]
            for k in range(d_row.size):
                d_row[k] += u * t[k]

    def vector_rows(coef, inv_coef, beta, inv_beta, log_beta_isat, drive, sources, transfer, v_low, v_high, isat, nvt,
                    rs, log_k, limit, xtol, max_iter, negligible, chunks, out):
        batch, n = drive.shape
        inv_nvt = 1.0 / nvt
        for chunk in numba.prange(chunks):
            z = np.empty(n)
            a = np.empty(n)
            b = np.empty(n)
            w = np.empty(n)
            y = np.empty(n)
            e = np.empty(n)
            bits = np.empty(n)
            buffer = np.empty(n)
            # No phase is called with an output aliasing one of its inputs: LLVM would then take the scalar
            # fallback of its runtime overlap check (measured 2.7 against 1.0 ns per node for vexp).
            for s in range(chunk * batch // chunks, (chunk + 1) * batch // chunks):
                d_row = drive_row(drive, sources, transfer, s, buffer)
                out_row = out[s]
                n_big, n_mid, n_correct = row_arguments(d_row, coef, inv_coef, beta, log_beta_isat, v_low, v_high,
                                                        isat, inv_nvt, z, a, b)
                vexp_call(a, e, bits)  # exp(z), used where z < -2
                if n_big:
                    vlog_call(b, y, bits)  # log(z), used where z > 1
                omega_guess(z, e, y, w)
                # corrections: none where the series in exp(z) is exact (a row of linear-region nodes), two only
                # where the guess is poorer
                for _ in range(0 if n_correct == 0 else (2 if n_mid else 1)):
                    vlog_call(w, b, bits)
                    omega_correct(z, w, b)
                n_other = row_voltages(d_row, coef, inv_beta, log_beta_isat, v_low, v_high, isat, nvt, inv_nvt, rs,
                                       limit, negligible, z, e, w, b, y, a, out_row)  # a: the other exponent now
                if n_other:  # some nodes need the other diode: one Newton step for those
                    vexp_call(a, b, bits)
                    other_diode_step(d_row, coef, inv_coef, inv_beta, v_low, v_high, isat, nvt, inv_nvt, rs, xtol,
                                     negligible, w, y, a, b, out_row)
                for k in range(n):  # the rest: scalar path (rare unless the bias window is a few nVt)
                    if np.isnan(out_row[k]):
                        out_row[k] = node(coef[k], d_row[k], log_beta_isat[k], v_low, v_high, isat, nvt, rs, log_k,
                                          limit, xtol, max_iter, negligible)

    @phase
    def row_exponents(v_row, v_low, v_high, inv_nvt, limit, a, b):
        for k in range(v_row.size):
            a[k] = min(max((v_row[k] - v_high) * inv_nvt, -600.0), limit)
            b[k] = min(max((v_low - v_row[k]) * inv_nvt, -600.0), limit)

    @phase
    def row_currents(v_row, v_low, v_high, isat, inv_nvt, limit, e_hi, e_lo, out_row):
        for k in range(v_row.size):  # with the model's linear continuation past the limit
            over_hi = max((v_row[k] - v_high) * inv_nvt - limit, 0.0)
            over_lo = max((v_low - v_row[k]) * inv_nvt - limit, 0.0)
            out_row[k] = isat * (e_hi[k] * (1.0 + over_hi) - e_lo[k] * (1.0 + over_lo))

    @numba.njit(inline="always")
    def neuron_row_current(v_row, v_low, v_high, isat, nvt, inv_nvt, rs, log_k, limit, a, b, ea, eb, bits, out_row):
        """``out_row = i(v - v_high) - i(v_low - v)`` (A) for one row; ``a``, ``b``, ``ea``, ``eb``, ``bits`` are
        distinct work rows (no aliasing, which would keep the loops scalar)."""
        if rs > 0.0:
            for k in range(v_row.size):
                i_hi = nvt / rs * omega(log_k + (v_row[k] - v_high + isat * rs) * inv_nvt) - isat
                i_lo = nvt / rs * omega(log_k + (v_low - v_row[k] + isat * rs) * inv_nvt) - isat
                out_row[k] = i_hi - i_lo
        else:  # SIMD exp; exponents below -600 give IS*exp() < 1e-260 A instead of a subnormal (slow) or 0
            row_exponents(v_row, v_low, v_high, inv_nvt, limit, a, b)
            vexp_call(a, ea, bits)
            vexp_call(b, eb, bits)
            row_currents(v_row, v_low, v_high, isat, inv_nvt, limit, ea, eb, out_row)

    def current_rows(v, v_low, v_high, isat, nvt, rs, log_k, limit, out):
        """``out = i(v - v_high) - i(v_low - v)`` (A), the current leaving each node through its diodes."""
        batch, n = v.shape
        inv_nvt = 1.0 / nvt
        for s in numba.prange(batch):
            a = np.empty(n)
            b = np.empty(n)
            ea = np.empty(n)
            eb = np.empty(n)
            bits = np.empty(n)
            neuron_row_current(v[s], v_low, v_high, isat, nvt, inv_nvt, rs, log_k, limit, a, b, ea, eb, bits, out[s])

    def residual_rows(v, coef, drive, sources, transfer, v_low, v_high, isat, nvt, rs, log_k, limit, chunks, worst):
        """``worst[chunk]`` = largest ``|coef v - d + i_neuron(v)|`` (A) over its rows, ``d`` as in ``vector_rows``."""
        batch, n = v.shape
        inv_nvt = 1.0 / nvt
        for chunk in numba.prange(chunks):
            a = np.empty(n)
            b = np.empty(n)
            ea = np.empty(n)
            eb = np.empty(n)
            bits = np.empty(n)
            buffer = np.empty(n)
            current = np.empty(n)
            largest = 0.0
            for s in range(chunk * batch // chunks, (chunk + 1) * batch // chunks):
                d_row = drive_row(drive, sources, transfer, s, buffer)
                v_row = v[s]
                neuron_row_current(v_row, v_low, v_high, isat, nvt, inv_nvt, rs, log_k, limit, a, b, ea, eb, bits,
                                   current)
                largest = max(largest, row_worst(v_row, coef, d_row, current))
            worst[chunk] = largest

    @phase
    def row_worst(v_row, coef, d_row, current):
        """Largest ``|coef v - d + i|`` of a row; infinite if any is not finite (NaN included)."""
        largest = 0.0
        for k in range(v_row.size):
            x = abs(coef[k] * v_row[k] - d_row[k] + current[k])
            if not x <= largest:
                largest = x if x == x else np.inf
        return largest

    def clip_rows(coef, drive, sources, transfer, v_low, v_high, chunks, out):
        """Ideal-diode neurons: ``out = clip((drive + sources @ transfer) / coef, v_low, v_high)`` row by row
        (the drive summed in float64; NaN stays NaN).  Elements are indexed in place (no row views: at the
        training batch of 4 their reference counting would cost more than the row)."""
        batch, n = drive.shape
        for chunk in numba.prange(chunks):
            acc = np.empty(n)
            for s in range(chunk * batch // chunks, (chunk + 1) * batch // chunks):
                for k in range(n):
                    acc[k] = drive[s, k]
                for r in range(transfer.shape[0]):
                    u = np.float64(sources[s, r])
                    for k in range(n):
                        acc[k] += u * transfer[r, k]
                for k in range(n):
                    x = acc[k] / coef[k]
                    out[s, k] = v_low if x < v_low else (v_high if x > v_high else x)

    def chain_sweeps(fixed_hidden, fixed_out, currents, transfer, coef_hidden, coef_out, forward_gain, current_gain,
                     v_low, v_high, sweeps, hidden, out):
        """``sweeps`` block Gauss-Seidel sweeps of an ideal-diode hidden layer and the output layer it feeds,
        in place (see :func:`ideal_chain_sweeps`).  The rows of a batch are independent circuits, so each row
        runs all its sweeps by itself; the output rows' terms are taken four at a time (one pass over the hidden
        row per four instead of per one: 25 % less time).  One thread: at batch 4-8 waking a second one cost
        more than it saved (passive OpenMP threads sleep between loops; measured 158 against 39 us per call)."""
        batch, n = hidden.shape
        m = out.shape[1]
        inverse = 1.0 / coef_hidden  # multiplying by it: 1/4 of a row's time went into divisions
        m4 = m - m % 4
        for s in range(batch):
            acc = np.empty(n)
            u = np.empty(m)
            total = np.empty(m)
            for _ in range(sweeps):
                for r in range(m):
                    u[r] = current_gain * np.float64(out[s, r])
                for k in range(n):
                    acc[k] = fixed_hidden[s, k]
                for r in range(0, m4, 4):
                    u0, u1, u2, u3 = u[r], u[r + 1], u[r + 2], u[r + 3]
                    t0, t1, t2, t3 = transfer[r], transfer[r + 1], transfer[r + 2], transfer[r + 3]
                    for k in range(n):
                        acc[k] += u0 * t0[k] + u1 * t1[k] + u2 * t2[k] + u3 * t3[k]
                for r in range(m4, m):
                    ur = u[r]
                    tr = transfer[r]
                    for k in range(n):
                        acc[k] += ur * tr[k]
                for k in range(n):
                    x = acc[k] * inverse[k]
                    hidden[s, k] = v_low if x < v_low else (v_high if x > v_high else x)
                for r in range(0, m4, 4):
                    t0, t1, t2, t3 = transfer[r], transfer[r + 1], transfer[r + 2], transfer[r + 3]
                    s0 = s1 = s2 = s3 = 0.0
                    for k in range(n):
                        h = np.float64(hidden[s, k])
                        s0 += h * t0[k]
                        s1 += h * t1[k]
                        s2 += h * t2[k]
                        s3 += h * t3[k]
                    total[r], total[r + 1], total[r + 2], total[r + 3] = s0, s1, s2, s3
                for r in range(m4, m):
                    tr = transfer[r]
                    sr = 0.0
                    for k in range(n):
                        sr += np.float64(hidden[s, k]) * tr[k]
                    total[r] = sr
                for r in range(m):
                    out[s, r] = (forward_gain * total[r] + fixed_out[s, r] + currents[s, r]) / coef_out[r]

    def crossbar_pass(weights, sources, base, coef, current_gain, forward_gain, omega, previous, v_low, v_high,
                      zero, inverted, buffers, out, partial):
        """One pass over a hidden-to-hidden crossbar ``weights`` (n, m) that updates its source layer and
        forms the target layer's drive from it (see :func:`ideal_crossbar_pass`).  Row blocks run in
        parallel (``buffers.shape[0]`` of them, fixed, so sums do not depend on the thread count); each row
        is read once and used twice while it is in the L1 cache: ``x = (base + current_gain * weights[i] .
        sources) / coef[i]`` (over-relaxed by ``omega`` from ``previous``) clipped to ``[v_low, v_high]``,
        then ``forward_gain * x * weights[i]`` added to its block's share of ``partial``.  With ``inverted`` the
        crossbar has ``2 n`` rows and neuron ``i`` also drives row ``n + i`` with ``-x``: that row's dot product
        and share count with the opposite sign."""
        batch, n = base.shape
        m = weights.shape[1]
        chunks = buffers.shape[0]
        for chunk in numba.prange(chunks):
            acc = buffers[chunk]
            for s in range(batch):
                for k in range(m):
                    acc[s, k] = zero
            for i in range(chunk * n // chunks, (chunk + 1) * n // chunks):
                row = weights[i]
                neg = weights[n + i] if inverted else row  # the inverted copy's row (read only when inverted)
                for s in range(batch):
                    src = sources[s]
                    dot = zero
                    for k in range(m):
                        dot += row[k] * src[k]
                    if inverted:
                        for k in range(m):
                            dot -= neg[k] * src[k]
                    x = (base[s, i] + current_gain * dot) / coef[i]
                    if omega != 1.0:
                        x = previous[s, i] + omega * (x - previous[s, i])
                    x = v_low if x < v_low else (v_high if x > v_high else x)
                    out[s, i] = x
                    g = forward_gain * x
                    dst = acc[s]
                    for k in range(m):
                        dst[k] += g * row[k]
                    if inverted:
                        for k in range(m):
                            dst[k] -= g * neg[k]
        for s in range(batch):
            for k in range(m):
                total = zero
                for chunk in range(chunks):
                    total += buffers[chunk, s, k]
                partial[s, k] = total

    def pair(name, func, opts):
        """(parallel, serial) compilations of ``func``, under distinct names (see ``kernels.renamed``)."""
        return (CacheConsistent(lambda: numba.njit(parallel=True, **opts)(renamed(func, "parallel")),
                                (__name__, "_build", (name, 0))),
                CacheConsistent(lambda: numba.njit(**opts)(renamed(func, "serial")), (__name__, "_build", (name, 1))))

    options = dict(cache=True, nogil=True, error_model="numpy")
    _KERNELS = {
        "scalar": pair("scalar", scalar_rows, options),
        "vector": pair("vector", vector_rows, dict(options, fastmath=_FASTMATH)),
        "current": pair("current", current_rows, options),
        "residual": pair("residual", residual_rows, dict(options, fastmath=_FASTMATH)),
        "clip": pair("clip", clip_rows, options),
        "crossbar_pass": pair("crossbar_pass", crossbar_pass, dict(options, fastmath=True)),
        "chain": CacheConsistent(lambda: numba.njit(fastmath=True, **options)(chain_sweeps),
                                 (__name__, "_build", "chain")),
        "omega": numba.njit(error_model="numpy")(omega.py_func),
        "vexp": numba.njit(error_model="numpy", fastmath=_FASTMATH)(vexp.py_func),
        "vlog": numba.njit(error_model="numpy", fastmath=_FASTMATH)(vlog.py_func),
        "phases": {"row_arguments": row_arguments, "omega_guess": omega_guess, "omega_correct": omega_correct,
                   "row_voltages": row_voltages, "other_diode_step": other_diode_step, "vexp": vexp_call,
                   "vlog": vlog_call},
    }
    return _KERNELS


def shockley_neurons(coef, drive, v_low, v_high, diode, xtol, dtype, method="vector", sources=None, transfer=None,
                     out=None):
    """Node voltages (V) of a layer of Shockley neurons (two diodes, with or without series resistance).

    Solves ``coef*V - drive + i_neuron(V) = 0`` elementwise (see the module docstring).

    Parameters
    ----------
    coef : ndarray, shape (n,)
        Total conductance (S) from each node to fixed potentials.
    drive : ndarray, shape (..., n)
        Current (A) pushed into each node by those conductances.
    v_low, v_high : float
        Bias voltages (V) of the lower and upper diodes.
    diode : DiodeModel
        A Shockley diode.
    xtol : float
        Accuracy (V) of the node voltages.
    dtype : numpy dtype
        Of the result.
    method : {"vector", "scalar"}
        SIMD kernel (default) or the scalar closed form for every node (same result to ~1e-15 V).
    sources, transfer : ndarray, shape (batch, r) and (r, n), optional
        A low-rank part of the drive, added row by row inside the kernel: the drive is then
        ``drive + sources @ transfer`` (amperes; e.g. the few output nodes a hidden layer feeds, with
        ``transfer`` their conductances times the current gain), without forming that array.
    out : ndarray, optional
        Float64 array of the drive's shape to write the voltages into (a solver's reused buffer: fresh
        megabyte arrays cost page faults on every sweep); ignored for other dtypes.

    Returns
    -------
    ndarray or None
        ``None`` when numba is not available (the caller then uses its numpy iteration).
    """
    if not _numba_available():
        return None
    coef = np.ascontiguousarray(coef, dtype=np.float64)
    drive = np.ascontiguousarray(drive, dtype=np.float64)
    if transfer is not None and method != "vector":
        drive = drive + np.asarray(sources, dtype=np.float64) @ np.asarray(transfer, dtype=np.float64)
        transfer = None
    flat = drive.reshape(-1, drive.shape[-1])
    sources, transfer = _low_rank(sources, transfer, flat.shape)
    if not (out is not None and np.dtype(dtype) == np.float64 and out.dtype == np.float64 and out.shape == drive.shape
            and out.flags.c_contiguous):
        out = np.empty(drive.shape, dtype=np.float64)
    nvt = diode.emission_coefficient * diode.thermal_voltage
    isat = float(diode.saturation_current)
    rs = float(diode.series_resistance)
    kernels = _build()
    coef_row = np.broadcast_to(coef, drive.shape[-1:]).copy()
    negligible = max(NEGLIGIBLE_EXPONENT, math.log(xtol * float(coef_row.min()) / isat))
    beta = (1.0 / coef_row + rs) / nvt
    log_beta_isat = np.log(isat * beta)
    log_k = math.log(isat * rs / nvt) if rs > 0 else 0.0
    parallel = drive.size >= PARALLEL_MIN_SIZE
    common = (float(v_low), float(v_high), isat, float(nvt), rs, log_k, float(EXP_LIMIT), float(xtol), 200,
              negligible)
    if method == "scalar":
        kernel = kernels["scalar"][0 if parallel else 1]
        kernel(coef_row, log_beta_isat, flat, *common, out.reshape(flat.shape))
    elif method == "vector":
        kernel = kernels["vector"][0 if parallel else 1]
        chunks = min(flat.shape[0], 8 if parallel else 1)
        kernel(coef_row, 1.0 / coef_row, beta, 1.0 / beta, log_beta_isat, flat, sources, transfer, *common, chunks,
               out.reshape(flat.shape))
    else:
        raise ValueError(f"method must be 'vector' or 'scalar', got {method!r}")
    return out.astype(dtype, copy=False)


def clipped_neurons(coef, drive, v_low, v_high, sources, transfer, out=None):
    """Node voltages (V) of a layer of ideal-diode neurons with a low-rank drive, in one numba pass:
    ``clip((drive + sources @ transfer) / coef, v_low, v_high)`` (Millman's theorem, then the clamp).

    Parameters
    ----------
    coef : ndarray, shape (n,)
        Total conductance (S) from each node to fixed potentials.
    drive : ndarray, shape (batch, n)
        Current (A) from the fixed part of the circuit (the input crossbars); its dtype is the result's.
    v_low, v_high : float
        Bias voltages (V) of the lower and upper diodes.
    sources, transfer : ndarray, shape (batch, r) and (r, n)
        The rest of the drive, ``sources @ transfer`` (amperes; e.g. the output nodes this layer feeds, with
        ``transfer`` their conductances times the current gain), summed in float64 without forming it.
    out : ndarray, optional
        Array of the drive's shape and dtype to write into (the solver's reused buffer).

    Returns
    -------
    ndarray or None
        ``None`` when numba is not available (the caller then forms the drive with numpy).
    """
    if not _numba_available():
        return None
    drive = np.ascontiguousarray(drive)
    sources, transfer = _low_rank(sources, transfer, drive.shape)
    if not (out is not None and out.dtype == drive.dtype and out.shape == drive.shape and out.flags.c_contiguous):
        out = np.empty_like(drive)
    coef = np.ascontiguousarray(np.broadcast_to(coef, drive.shape[-1:]), dtype=np.float64)
    parallel = drive.size >= PARALLEL_MIN_SIZE
    kernel = _build()["clip"][0 if parallel else 1]
    kernel(coef, drive, sources, transfer, float(v_low), float(v_high), min(drive.shape[0], 8 if parallel else 1),
           out)
    return out


#: Row blocks of :func:`ideal_crossbar_pass` (fixed: its sums do not depend on the number of threads).
PASS_CHUNKS = 8


def ideal_crossbar_pass(weights, sources, base, coef, current_gain, forward_gain, v_low, v_high, omega=1.0,
                        previous=None, out=None, inverted=False):
    """Update a layer ``a`` of ideal-diode neurons and form the drive it gives the next layer ``b`` through the
    crossbar ``weights`` (a, b), in one pass over the crossbar.

    The solver's block Gauss-Seidel sweep updates ``a`` from ``b``'s voltages (through ``weights.T``) and
    then ``b`` from ``a``'s new voltages (through ``weights``): two products that each read the whole
    crossbar.  Here each row ``weights[i]`` (one neuron of ``a``) is read once: its dot product with
    ``sources`` gives neuron ``i``'s new voltage, which then adds ``forward_gain * v_i * weights[i]`` to
    ``b``'s drive, while the row is in cache.  The same updates in the same order as the two products (sums
    in the crossbar's dtype, reassociated: results agree to rounding).

    Parameters
    ----------
    weights : ndarray, shape (n_a, n_b)
        The crossbar's conductances (S), C-contiguous.
    sources : ndarray, shape (batch, n_b)
        Voltages (V) of layer ``b``, as seen through the crossbar.
    base : ndarray, shape (batch, n_a)
        Every other current (A) into ``a``'s nodes (inputs, other crossbars).
    coef : ndarray, shape (n_a,)
        Total conductance (S) of each node of ``a`` to everything but its diodes.
    current_gain, forward_gain : float
        The amplifier after ``a``: its current gain (into ``a``) and voltage gain (towards ``b``).
    v_low, v_high : float
        Diode bias voltages (V) of ``a``.
    omega, previous : float, ndarray (batch, n_a)
        Over-relaxation factor and the voltages it steps from (``omega = 1``: the plain block minimum).
    out : ndarray, optional
        Buffer for ``a``'s new voltages (not aliasing ``sources``, ``base`` or ``previous``).
    inverted : bool
        Layer ``a`` has an inverted copy: ``weights`` has ``2 n_a`` rows, the last ``n_a`` driven by ``-A V``
        (:class:`~circuitprop.model.HiddenLayer`).

    Returns
    -------
    (voltages, drive) or None
        ``a``'s new voltages (V) and the current (A) they push into ``b`` through the crossbar; ``None``
        when numba is not available (the caller then uses the two products).
    """
    if not _numba_available():
        return None
    dtype = weights.dtype
    batch, n_a = base.shape
    n_b = weights.shape[1]
    if not (out is not None and out.dtype == dtype and out.shape == base.shape and out.flags.c_contiguous):
        out = np.empty(base.shape, dtype=dtype)
    if previous is None:
        if omega != 1.0:
            raise ValueError("over-relaxation (omega != 1) needs the previous voltages")
        previous = base  # not read
    previous = np.ascontiguousarray(previous, dtype=dtype)
    partial = np.empty((batch, n_b), dtype=dtype)
    buffers = np.empty((PASS_CHUNKS, batch, n_b), dtype=dtype)
    parallel = weights.size >= PARALLEL_MIN_SIZE * 4
    kernel = _build()["crossbar_pass"][0 if parallel else 1]
    t = dtype.type
    kernel(np.ascontiguousarray(weights), np.ascontiguousarray(sources, dtype=dtype),
           np.ascontiguousarray(base, dtype=dtype), np.ascontiguousarray(coef, dtype=dtype), t(current_gain),
           t(forward_gain), t(omega), previous, t(v_low), t(v_high), t(0), bool(inverted), buffers, out, partial)
    return out, partial


def ideal_chain_sweeps(hidden, out, fixed_hidden, fixed_out, currents, transfer, coef_hidden, coef_out,
                       forward_gain, current_gain, v_low, v_high, sweeps):
    """Run ``sweeps`` sweeps of the fast solver on an ideal-diode hidden layer and the output layer it feeds,
    in one numba call (at the training batch of 4 the numpy path spends its time in call overhead).

    Each sweep solves ``hidden = clip((fixed_hidden + c * out @ G.T) / coef_hidden, v_low, v_high)`` and then
    ``out = (fixed_out + currents + A * hidden @ G) / coef_out``, the same block updates as
    :meth:`~circuitprop.backends.fast.PreparedNetwork.solve_layer` in the same order, with sums in float64
    (the hidden division is a product with ``1 / coef_hidden``: results agree with the numpy path to rounding).

    Parameters
    ----------
    hidden, out : ndarray, shapes (batch, n) and (batch, m)
        Starting voltages (V), overwritten with the result (C-contiguous, one dtype).
    fixed_hidden, fixed_out, currents : ndarray
        Fixed currents (A) into the hidden nodes (the input crossbar's drive) and into the output nodes (a
        skip crossbar's drive; the nudging currents).
    transfer : ndarray, shape (m, n)
        ``G.T`` in float64: the crossbar between the two layers (siemens), output nodes as rows.
    coef_hidden, coef_out : ndarray
        Total conductance (S) of each node to everything but its own diodes.
    forward_gain, current_gain : float
        The amplifier's voltage gain A and current gain c.
    v_low, v_high : float
        Bias voltages (V) of the diodes.
    sweeps : int

    Returns
    -------
    bool
        ``False`` (nothing done) when numba is not available.
    """
    if not _numba_available():
        return False
    _build()["chain"](fixed_hidden, fixed_out, currents, transfer, np.asarray(coef_hidden, dtype=np.float64),
                      np.asarray(coef_out, dtype=np.float64), float(forward_gain), float(current_gain),
                      float(v_low), float(v_high), int(sweeps), hidden, out)
    return True


def shockley_current(v, v_low, v_high, diode):
    """Current (A) leaving each node at ``v`` (V) through its two diodes, as
    ``energy.neuron_current(v, v_low, v_high, diode)[0]`` (tested to 1e-15 relative), in one numba pass;
    ``None`` without numba.  For the fast solver's KCL residuals."""
    if not _numba_available():
        return None
    v = np.asarray(v, dtype=np.float64)
    flat = np.ascontiguousarray(v.reshape(-1, v.shape[-1]) if v.ndim else v.reshape(1, 1))
    out = np.empty(flat.shape)
    nvt = diode.emission_coefficient * diode.thermal_voltage
    isat = float(diode.saturation_current)
    rs = float(diode.series_resistance)
    log_k = math.log(isat * rs / nvt) if rs > 0 else 0.0
    kernels = _build()
    kernel = kernels["current"][0 if flat.size >= PARALLEL_MIN_SIZE else 1]
    kernel(flat, float(v_low), float(v_high), isat, float(nvt), rs, log_k, float(EXP_LIMIT), out)
    return out.reshape(v.shape)


def _low_rank(sources, transfer, shape):
    """The ``(sources, transfer)`` arrays of the kernels (empty when there is no low-rank drive)."""
    if transfer is None:
        return np.zeros((shape[0], 0)), np.zeros((0, shape[1]))
    sources = np.ascontiguousarray(sources, dtype=np.float64).reshape(shape[0], -1)
    transfer = np.ascontiguousarray(transfer, dtype=np.float64)
    if transfer.shape != (sources.shape[1], shape[1]):
        raise ValueError(f"low-rank drive: sources {sources.shape} and transfer {transfer.shape} do not match the "
                         f"layer's drive {shape}")
    return sources, transfer


def shockley_residual(v, coef, drive, v_low, v_high, diode, sources=None, transfer=None):
    """Largest KCL residual (A) of a layer of Shockley neurons, ``max |coef v - d + i_neuron(v)|``, in one
    numba pass (``d = drive + sources @ transfer`` as in :func:`shockley_neurons`); ``None`` without numba.
    Equal to the fast solver's residual from :func:`shockley_current` to rounding (tested)."""
    if not _numba_available():
        return None
    v = np.ascontiguousarray(v, dtype=np.float64)
    flat = v.reshape(-1, v.shape[-1])
    drive = np.ascontiguousarray(np.broadcast_to(drive, v.shape), dtype=np.float64).reshape(flat.shape)
    sources, transfer = _low_rank(sources, transfer, flat.shape)
    coef_row = np.ascontiguousarray(np.broadcast_to(coef, flat.shape[-1:]), dtype=np.float64)
    nvt = diode.emission_coefficient * diode.thermal_voltage
    isat = float(diode.saturation_current)
    rs = float(diode.series_resistance)
    log_k = math.log(isat * rs / nvt) if rs > 0 else 0.0
    parallel = flat.size >= PARALLEL_MIN_SIZE
    chunks = max(1, min(flat.shape[0], 8 if parallel else 1))
    worst = np.zeros(chunks)
    kernel = _build()["residual"][0 if parallel else 1]
    kernel(flat, coef_row, drive, sources, transfer, float(v_low), float(v_high), isat, float(nvt), rs, log_k,
           float(EXP_LIMIT), chunks, worst)
    return float(worst.max())
