"""One-pass summary statistics of a whole tensor (CPU, Numba): what the training watch records.

:func:`moments_cpu` reads a C-contiguous (R, C) array once, in place, and
returns the exact counts and the moments the watch stores for a parameter or
its gradient at a recorded step:

============  ===============================================================
``numel``     R * C
``count``     finite elements
``mean``      mean of the finite elements
``m2``        sum of squared deviations from ``mean`` (population variance
              is ``m2 / count``)
``sumsq``     sum of squares of the finite elements (the Frobenius norm is
              its square root; computed from ``m2``, ``mean`` and ``count``
              so that it shares their accuracy)
``min``       finite minimum (+inf when no element is finite)
``max``       finite maximum (-inf when none)
``zeros``     elements exactly equal to 0 (+0.0 and -0.0)
``nan``       NaN elements
``posinf``    +inf elements
``neginf``    -inf elements
``diffsq``    sum over the finite pairs of ``(x - prev)**2``, when a second
              array ``prev`` of the same shape is given (the update norm of
              a weight is its square root); else 0
============  ===============================================================

With ``rows=True`` it also returns the largest ``|x|`` of each row (NaN when
the row holds a NaN): the watch marks a unit dead when the row of its
gradient stays all zeros.

Accuracy
    Every element is read as a float64 number.  Each row is summed shifted by
    its first finite element, and rows are merged with Chan's pairwise
    update, so the variance is stable for data whose mean dwarfs its spread
    (docs/architecture.md, "Accuracy").  Counts, min and max are exact.  A row whose
    sums overflow on the way (values beyond about 1e154) is summed again
    scaled by a power of two, and a tensor whose row sums overflow is read
    once more that way: ``mean`` is +-inf only when the true sum exceeds
    float64, ``m2`` is inf when it or the sum does (as NumPy's), never NaN.

Strategy
    Tasks (a few per thread) take equal shares of the rows and keep private
    partials: no atomics.  A row is first summed on the fast path (no
    branches but the min/max selects; the floating-point reassociation this
    allows lets LLVM vectorise the sums); only when its sums come out
    non-finite does a second, careful loop classify NaN and +-inf.
    bfloat16 and float16 arrive as their raw ``uint16`` bits with a
    ``decode`` code (:mod:`._common`), exactly as in the other kernels.

CPU only: on a GPU the watch computes the same numbers with torch reductions
on the device (:mod:`dlviz_gpu.watch.probes`), so that nothing synchronises
with the host inside a training step.  Compiled once per dtype and cached on
disk (``cache=True``).
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import prange

from ._common import DECODE_BF16, DECODE_F16, DECODE_NATIVE, decode_value, make_exact_moments
from ._parallel import parallel_jit

__all__ = ["moments_cpu", "FIELDS", "DECODE_NATIVE", "DECODE_BF16", "DECODE_F16"]

#: Names of the entries of the array :func:`moments_cpu` returns, in order.
FIELDS = ("numel", "count", "mean", "m2", "sumsq", "min", "max", "zeros", "nan", "posinf",
          "neginf", "diffsq")

# partial slots per task
_N, _MEAN, _M2, _MIN, _MAX, _ZEROS, _NAN, _PINF, _NINF, _DIFF = range(10)
_SLOTS = 10
_FAST = {"reassoc", "contract", "nsz"}     # never nnan / ninf: NaN and inf must survive


_value = decode_value    # one element as float64


@numba.njit(inline="always", cache=True)
def _element(x, decode, r, c):
    return _value(x[r, c], decode)


# A row whose shifted sums overflow (values beyond ~1e154) is summed again
# without intermediate overflow (_common.make_exact_moments).
_exact_row = numba.njit(inline="always", cache=True)(make_exact_moments(_element))


@numba.njit(cache=True)
def _exact_all(x, decode, nrows, ncols):
    # the whole tensor through the same exact path (rare: a row's sum overflowed)
    return _exact_row(x, decode, 0, nrows, 0, ncols)


@numba.njit(fastmath=_FAST, cache=True)
def _row_fast(x, p, i, ncols, shift, decode, has_prev):
    s = 0.0
    ss = 0.0
    dd = 0.0
    mn = np.inf
    mx = -np.inf
    z = 0
    for j in range(ncols):
        v = _value(x[i, j], decode)
        d = v - shift
        s += d
        ss += d * d
        mn = min(mn, v)
        mx = max(mx, v)
        z += v == 0.0
        if has_prev:
            u = v - _value(p[i, j], decode)
            dd += u * u
    return s, ss, dd, mn, mx, z


@numba.njit(cache=True)
def _row_careful(x, p, i, ncols, shift, decode, has_prev, out):
    # out: count, sum, sumsq (shifted), diffsq, min, max, zeros, nan, posinf, neginf
    n = 0
    s = 0.0
    ss = 0.0
    dd = 0.0
    mn = np.inf
    mx = -np.inf
    z = 0
    nn = 0
    pi = 0
    ni = 0
    for j in range(ncols):
        v = _value(x[i, j], decode)
        if math.isfinite(v):
            n += 1
            d = v - shift
            s += d
            ss += d * d
            if v < mn:
                mn = v
            if v > mx:
                mx = v
            if v == 0.0:
                z += 1
            if has_prev:
                q = _value(p[i, j], decode)
                if math.isfinite(q):
                    dd += (v - q) * (v - q)
        elif v != v:
            nn += 1
        elif v > 0:
            pi += 1
        else:
            ni += 1
    out[0] = n
    out[1] = s
    out[2] = ss
    out[3] = dd
    out[4] = mn
    out[5] = mx
    out[6] = z
    out[7] = nn
    out[8] = pi
    out[9] = ni


@parallel_jit(cache=True)
def _moments(x, p, decode, has_prev, want_rows, ntasks, parts, rowmax):
    nrows, ncols = x.shape
    for t in prange(ntasks):
        r0 = t * nrows // ntasks
        r1 = (t + 1) * nrows // ntasks
        buf = np.empty(10)
        n = 0.0
        mean = 0.0
        m2 = 0.0
        mn = np.inf
        mx = -np.inf
        z = 0.0
        nn = 0.0
        pi = 0.0
        ni = 0.0
        dd = 0.0
        for i in range(r0, r1):
            # shift: the row's first finite element
            shift = 0.0
            for j in range(ncols):
                v = _value(x[i, j], decode)
                if math.isfinite(v):
                    shift = v
                    break
            s, ss, rdd, rmn, rmx, rz = _row_fast(x, p, i, ncols, shift, decode, has_prev)
            if math.isfinite(s) and math.isfinite(ss) and math.isfinite(rdd):
                rn = float(ncols)
                rnn = 0.0
                rpi = 0.0
                rni = 0.0
            else:
                _row_careful(x, p, i, ncols, shift, decode, has_prev, buf)
                rn = buf[0]
                s = buf[1]
                ss = buf[2]
                rdd = buf[3]
                rmn = buf[4]
                rmx = buf[5]
                rz = buf[6]
                rnn = buf[7]
                rpi = buf[8]
                rni = buf[9]
            rmean = 0.0
            rm2 = 0.0
            if rn > 0:
                rmean = s / rn                          # of the shifted values
                rm2 = ss - s * rmean
                rmean += shift
                if not (math.isfinite(rmean) and math.isfinite(rm2)):
                    _, total, rm2 = _exact_row(x, decode, i, i + 1, 0, ncols)
                    rmean = total / rn
                rm2 = max(rm2, 0.0)
            if want_rows:
                if rnn > 0:
                    rowmax[i] = np.nan
                elif rpi + rni > 0:
                    rowmax[i] = np.inf
                else:
                    rowmax[i] = max(abs(rmn), abs(rmx)) if rn > 0 else 0.0
            if rn > 0:
                tot = n + rn
                if n == 0:
                    # (not the update below: inf * 0 when the mean squared overflows)
                    mean = rmean
                    m2 = rm2
                else:
                    delta = rmean - mean
                    if math.isfinite(delta):
                        mean += delta * rn / tot
                    else:    # means of opposite signs near the float64 limit
                        mean = mean * (n / tot) + rmean * (rn / tot)
                    m2 += rm2 + delta * delta * n * rn / tot
                n = tot
                mn = min(mn, rmn)
                mx = max(mx, rmx)
            z += rz
            nn += rnn
            pi += rpi
            ni += rni
            dd += rdd
        if not math.isfinite(mean) or m2 != m2:
            # a row's sum overflowed: the mean is +-inf (or NaN when rows
            # overflowed both ways), and the spread, as NumPy reports it, inf
            m2 = np.inf
        parts[t, _N] = n
        parts[t, _MEAN] = mean
        parts[t, _M2] = m2
        parts[t, _MIN] = mn
        parts[t, _MAX] = mx
        parts[t, _ZEROS] = z
        parts[t, _NAN] = nn
        parts[t, _PINF] = pi
        parts[t, _NINF] = ni
        parts[t, _DIFF] = dd


def _merge(parts: np.ndarray, numel: int) -> np.ndarray:
    n = mean = m2 = 0.0
    for row in parts:
        rn = row[_N]
        if rn == 0:
            continue
        tot = n + rn
        if n == 0:
            mean, m2 = row[_MEAN], row[_M2]
        else:
            with np.errstate(over="ignore", invalid="ignore"):
                delta = row[_MEAN] - mean
                if math.isfinite(delta):
                    mean += delta * rn / tot
                else:    # means of opposite signs near the float64 limit (or one infinite)
                    mean = mean * (n / tot) + row[_MEAN] * (rn / tot)
                m2 += row[_M2] + delta * delta * n * rn / tot
        n = tot
    if n and (not math.isfinite(mean) or m2 != m2):
        m2 = math.inf          # as in the tasks: an overflowed sum, NumPy's std is inf
    out = np.empty(len(FIELDS))
    out[0] = numel
    out[1] = n
    out[2] = mean if n else np.nan
    out[3] = m2
    with np.errstate(over="ignore"):
        out[4] = m2 + n * mean * mean
    out[5] = parts[:, _MIN].min() if len(parts) else np.inf
    out[6] = parts[:, _MAX].max() if len(parts) else -np.inf
    out[7] = parts[:, _ZEROS].sum()
    out[8] = parts[:, _NAN].sum()
    out[9] = parts[:, _PINF].sum()
    out[10] = parts[:, _NINF].sum()
    out[11] = parts[:, _DIFF].sum()
    return out


def _ntasks(nrows: int, ncols: int) -> int:
    threads = numba.get_num_threads()
    if nrows * ncols < 1 << 16:
        return 1
    return max(1, min(nrows, 4 * threads))


def moments_cpu(x: np.ndarray, prev: np.ndarray | None = None, decode: int = DECODE_NATIVE,
                rows: bool = False):
    """Summary statistics of a whole array in one pass.

    Parameters
    ----------
    x : (R, C) ndarray, C-contiguous
        float64, float32, an integer or bool dtype, or ``uint16`` raw bits
        with ``decode`` = :data:`DECODE_BF16` / :data:`DECODE_F16`.
    prev : (R, C) ndarray, optional
        Same shape and dtype as ``x``: adds ``diffsq`` = sum of ``(x - prev)**2``.
    decode : int
        How to read the elements (:mod:`._common`).
    rows : bool
        Also return the largest ``|x|`` of each row.

    Returns
    -------
    stats : (12,) ndarray of float64
        In the order of :data:`FIELDS`.
    rowmax : (R,) ndarray of float64
        Only with ``rows=True``.
    """
    if x.ndim != 2 or not x.flags.c_contiguous:
        raise ValueError(f"x: expected a C-contiguous 2-D array; got ndim={x.ndim}, "
                         f"c_contiguous={x.flags.c_contiguous}")
    if x.dtype == np.bool_:
        x = x.view(np.uint8)
    has_prev = prev is not None
    if has_prev:
        if prev.shape != x.shape or prev.dtype != x.dtype or not prev.flags.c_contiguous:
            raise ValueError(f"prev: expected a C-contiguous array of shape {x.shape} and dtype "
                             f"{x.dtype}; got {prev.shape} {prev.dtype}")
        p = prev
    else:
        p = np.empty((0, 0), x.dtype)
    nrows, ncols = x.shape
    ntasks = _ntasks(nrows, ncols)
    parts = np.zeros((ntasks, _SLOTS))
    parts[:, _MIN] = np.inf
    parts[:, _MAX] = -np.inf
    rowmax = np.empty(nrows if rows else 0)
    if nrows and ncols:
        _moments(x, p, decode, has_prev, rows, ntasks, parts, rowmax)
    out = _merge(parts, nrows * ncols)
    if out[1] and not math.isfinite(out[2]):
        # Some row's sum overflowed float64 (values near its limits).  The
        # rows' means cannot be merged then; one more pass over the whole
        # tensor, scaled so that nothing overflows on the way, gives the mean
        # (+-inf only when the true sum is beyond float64) and m2.
        _, total, m2 = _exact_all(x, decode, np.int64(nrows), np.int64(ncols))
        with np.errstate(over="ignore"):
            out[2] = total / out[1]
            out[3] = m2
            out[4] = m2 + out[1] * out[2] * out[2]
    return (out, rowmax) if rows else out
