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

The family :data:`MOMENTS` follows the kernel contract
(docs/architecture.md, "The kernel contract"): :func:`moments_cpu`,
:func:`moments_cuda` (one block per row, its threads across the columns,
Chan's update in shared memory; per-row partials merged on the host) and
the float64 reference :func:`dlviz_gpu.kernels.reference.moments.moments`.
Partials of disjoint pieces -- the CPU's tasks, the GPU's rows, a Dask
block, a rank -- are (K, 10) arrays that :func:`merge` folds and
:func:`finalize` turns into :data:`FIELDS`.  The watch keeps torch
reductions for tensors on a GPU (:mod:`dlviz_gpu.watch.probes`: nothing
synchronises inside a training step).  The CPU kernel is compiled once per
dtype and cached on disk (``cache=True``).
"""

from __future__ import annotations

import functools
import math

import numba
import numpy as np
from numba import prange

from ._common import (DECODE_BF16, DECODE_F16, DECODE_NATIVE, decode_value, import_cuda,
                      make_exact_moments)
from ._family import Family
from ._parallel import parallel_jit
from .reference import moments as _reference

__all__ = ["moments_cpu", "moments_cuda", "merge", "finalize", "MOMENTS", "FIELDS",
           "DECODE_NATIVE", "DECODE_BF16", "DECODE_F16"]

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


@numba.njit(inline="always", cache=True)
def _tally(v, shift, n, s, ss, mn, mx, z, nn, pi, ni):
    """One element into a run's count, sums shifted by its first finite element (``shift``,
    taken when ``n`` is 0), min, max and zero / NaN / +inf / -inf counts (CPU and CUDA)."""
    if math.isfinite(v):
        if n == 0:
            shift = v
        d = v - shift
        s += d
        ss += d * d
        n += 1
        if v < mn:
            mn = v
        if v > mx:
            mx = v
        if v == 0.0:
            z += 1
    elif v != v:
        nn += 1
    elif v > 0:
        pi += 1
    else:
        ni += 1
    return shift, n, s, ss, mn, mx, z, nn, pi, ni


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
        shift, n, s, ss, mn, mx, z, nn, pi, ni = _tally(v, shift, n, s, ss, mn, mx, z, nn, pi,
                                                        ni)
        if has_prev and math.isfinite(v):
            q = _value(p[i, j], decode)
            if math.isfinite(q):
                dd += (v - q) * (v - q)
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


def finalize(parts: np.ndarray, numel: int) -> np.ndarray:
    """The :data:`FIELDS` array from partial results (the contract's *finalize*).

    Parameters
    ----------
    parts : (K, 10) float64 ndarray
        Partials of disjoint pieces of one tensor: count, mean, m2, min, max,
        zeros, nan, +inf, -inf, diffsq (what the CPU kernel's tasks and the
        CUDA kernel's rows write; :func:`merge` folds any number into one).
        Merged in order with Chan's update.
    numel : int
        Elements of the whole tensor.
    """
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
    has_prev = prev is not None
    if has_prev:
        if prev.shape != x.shape or prev.dtype != x.dtype or not prev.flags.c_contiguous:
            raise ValueError(f"prev: expected a C-contiguous array of shape {x.shape} and dtype "
                             f"{x.dtype}; got {prev.shape} {prev.dtype}")
    if x.dtype == np.bool_:
        x = x.view(np.uint8)
    p = prev.view(x.dtype) if has_prev else np.empty((0, 0), x.dtype)
    nrows, ncols = x.shape
    ntasks = _ntasks(nrows, ncols)
    parts = np.zeros((ntasks, _SLOTS))
    parts[:, _MIN] = np.inf
    parts[:, _MAX] = -np.inf
    rowmax = np.empty(nrows if rows else 0)
    if nrows and ncols:
        _moments(x, p, decode, has_prev, rows, ntasks, parts, rowmax)
    out = finalize(parts, nrows * ncols)
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


# ---------------------------------------------------------------------------
# merge: partials of disjoint pieces -> one partial (vectorised Chan update)
# ---------------------------------------------------------------------------

def _identity(k: int) -> np.ndarray:
    parts = np.zeros((k, _SLOTS))
    parts[:, _MIN] = np.inf
    parts[:, _MAX] = -np.inf
    return parts


def _merge_pairs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    na, nb = a[:, _N], b[:, _N]
    tot = na + nb
    with np.errstate(all="ignore"):
        delta = b[:, _MEAN] - a[:, _MEAN]
        mean = np.where(np.isfinite(delta), a[:, _MEAN] + delta * nb / tot,
                        a[:, _MEAN] * (na / tot) + b[:, _MEAN] * (nb / tot))
        m2 = a[:, _M2] + b[:, _M2] + delta * delta * na * nb / tot
    out = a + b                          # the counts and diffsq add
    out[:, _N] = tot
    out[:, _MEAN] = np.where(na == 0, b[:, _MEAN], np.where(nb == 0, a[:, _MEAN], mean))
    out[:, _M2] = np.where(na == 0, b[:, _M2], np.where(nb == 0, a[:, _M2], m2))
    out[:, _MIN] = np.minimum(a[:, _MIN], b[:, _MIN])
    out[:, _MAX] = np.maximum(a[:, _MAX], b[:, _MAX])
    return out


def merge(parts: np.ndarray) -> np.ndarray:
    """Fold partials of disjoint pieces of a tensor into one (the contract's *merge*).

    Exact for the counts, min and max; Chan's pairwise update for the mean
    and m2, done as a balanced tree (log2(K) vectorised steps), so chunks
    computed apart -- CUDA rows, Dask blocks, ranks -- merge as stably as
    the kernel's own tasks.

    Parameters
    ----------
    parts : (K, 10) float64 ndarray

    Returns
    -------
    (1, 10) float64 ndarray
        :func:`finalize` turns it into the :data:`FIELDS` array.
    """
    parts = np.asarray(parts, np.float64).reshape(-1, _SLOTS)
    if len(parts) == 0:
        return _identity(1)
    while len(parts) > 1:
        if len(parts) % 2:
            parts = np.concatenate([parts, _identity(1)])
        parts = _merge_pairs(parts[0::2], parts[1::2])
    return parts


# ---------------------------------------------------------------------------
# CUDA: one block per row, its threads across the columns
# ---------------------------------------------------------------------------

cuda = None     # numba.cuda once a GPU path runs (see _common.import_cuda)

#: threads per block of :func:`moments_cuda` (a power of two: tree reduction)
CUDA_BLOCK = 128
#: ... under the simulator, which runs each thread as a Python thread
CUDA_SIM_BLOCK = 32
#: most blocks launched; each walks rows ``b, b + grid, ...``
CUDA_MAX_BLOCKS = 8192


def _import_cuda():
    return import_cuda(globals())


@functools.lru_cache(maxsize=None)
def cuda_moments_kernel(decode: int, has_prev: bool, want_rows: bool, tpb: int = CUDA_BLOCK):
    """The CUDA kernel for one decoding, ``tpb`` threads per block (memoised).

    Block ``b`` takes rows ``b, b + gridDim, ...``.  For each, thread ``t``
    walks columns ``t, t + tpb, ...`` (coalesced reads), summing its
    finite elements shifted by the first one it meets; the block then merges
    its threads' (count, mean, m2) with Chan's update in a shared-memory
    tree, and thread 0 writes the row's partial (the slots of
    :func:`finalize`) and, with ``want_rows``, the row's largest ``|x|``.
    """
    _import_cuda()
    from ._common import cuda_decoder, cuda_device

    dec = cuda_decoder(decode)
    tally = cuda_device(_tally.py_func)
    f64 = numba.float64

    def kernel(x, p, parts, rowmax):
        sh = cuda.shared.array((_SLOTS, tpb), f64)
        tid = cuda.threadIdx.x
        nrows = x.shape[0]
        ncols = x.shape[1]
        row = cuda.blockIdx.x
        while row < nrows:
            n = 0.0
            shift = 0.0
            s = 0.0
            ss = 0.0
            mn = math.inf
            mx = -math.inf
            z = 0.0
            nn = 0.0
            pi = 0.0
            ni = 0.0
            dd = 0.0
            j = tid
            while j < ncols:
                v = dec(x[row, j])
                shift, n, s, ss, mn, mx, z, nn, pi, ni = tally(v, shift, n, s, ss, mn, mx, z,
                                                               nn, pi, ni)
                if has_prev and math.isfinite(v):
                    q = dec(p[row, j])
                    if math.isfinite(q):
                        dd += (v - q) * (v - q)
                j += tpb
            mean = 0.0
            m2 = 0.0
            if n > 0.0:
                mean = s / n
                m2 = ss - s * mean
                mean += shift
                if m2 < 0.0:
                    m2 = 0.0
            sh[_N, tid] = n
            sh[_MEAN, tid] = mean
            sh[_M2, tid] = m2
            sh[_MIN, tid] = mn
            sh[_MAX, tid] = mx
            sh[_ZEROS, tid] = z
            sh[_NAN, tid] = nn
            sh[_PINF, tid] = pi
            sh[_NINF, tid] = ni
            sh[_DIFF, tid] = dd
            cuda.syncthreads()
            step = tpb // 2
            while step > 0:
                if tid < step:
                    o = tid + step
                    na = sh[_N, tid]
                    nb = sh[_N, o]
                    if nb > 0.0:
                        if na == 0.0:
                            sh[_MEAN, tid] = sh[_MEAN, o]
                            sh[_M2, tid] = sh[_M2, o]
                        else:
                            tot = na + nb
                            delta = sh[_MEAN, o] - sh[_MEAN, tid]
                            sh[_MEAN, tid] += delta * nb / tot
                            sh[_M2, tid] += sh[_M2, o] + delta * delta * na * nb / tot
                        sh[_N, tid] = na + nb
                    sh[_MIN, tid] = min(sh[_MIN, tid], sh[_MIN, o])
                    sh[_MAX, tid] = max(sh[_MAX, tid], sh[_MAX, o])
                    for k in range(_ZEROS, _SLOTS):
                        sh[k, tid] += sh[k, o]
                cuda.syncthreads()
                step //= 2
            if tid == 0:
                for k in range(_SLOTS):
                    parts[row, k] = sh[k, 0]
                if want_rows:
                    if sh[_NAN, 0] > 0.0:
                        rowmax[row] = math.nan
                    elif sh[_PINF, 0] + sh[_NINF, 0] > 0.0:
                        rowmax[row] = math.inf
                    elif sh[_N, 0] > 0.0:
                        rowmax[row] = max(abs(sh[_MIN, 0]), abs(sh[_MAX, 0]))
                    else:
                        rowmax[row] = 0.0
            cuda.syncthreads()          # the next row reuses the shared slots
            row += cuda.gridDim.x

    return cuda.jit(kernel)


def _device_matrix(arr, name: str, like=None):
    """``arr`` as a 2-D C-contiguous device array (host arrays are copied over).

    With ``like`` (a device array), ``arr`` must have its shape and dtype.
    """
    if isinstance(arr, np.ndarray):
        ok = arr.ndim == 2 and arr.flags.c_contiguous
        dev = arr
    else:
        # numba device arrays (real or simulated) as they are; CuPy, torch, ...
        # through __cuda_array_interface__
        dev = arr if hasattr(arr, "copy_to_host") else cuda.as_cuda_array(arr)
        ok = dev.ndim == 2 and (dev.is_c_contiguous() if hasattr(dev, "is_c_contiguous")
                                else bool(dev.flags["C_CONTIGUOUS"]))
    stored = np.dtype(np.uint8) if dev.dtype == np.bool_ else dev.dtype    # as the kernel reads
    if not ok or (like is not None and (dev.shape != like.shape or stored != like.dtype)):
        want = ("a C-contiguous 2-D array" if like is None else
                f"a C-contiguous array of shape {tuple(like.shape)} and dtype {like.dtype}")
        raise ValueError(f"{name}: expected {want}; got shape {tuple(dev.shape)}, "
                         f"dtype {dev.dtype}")
    if isinstance(dev, np.ndarray):
        dev = cuda.to_device(dev.view(np.uint8) if dev.dtype == np.bool_ else dev)
    elif dev.dtype == np.bool_:
        dev = dev.view(np.uint8)
    return dev


def moments_cuda(x, prev=None, decode: int = DECODE_NATIVE, rows: bool = False):
    """:func:`moments_cpu` on the GPU: same parameters, same result (host arrays).

    ``x`` and ``prev`` are device arrays (numba, CuPy, torch CUDA tensors:
    anything with ``__cuda_array_interface__``, read in place) or host
    ndarrays (copied to the device).  The per-row partials come back to the
    host (80 bytes a row) and are merged there (:func:`merge`,
    :func:`finalize`).  A row whose shifted sums overflow (values beyond
    about 1e154) is rare enough that the whole tensor is then read once more
    by :func:`moments_cpu` on a host copy, which handles it exactly.
    """
    _import_cuda()
    xd = _device_matrix(x, "x")
    has_prev = prev is not None
    pd = _device_matrix(prev, "prev", like=xd) if has_prev else xd
    nrows, ncols = xd.shape
    parts = _identity(nrows)
    rowmax = np.zeros(nrows if rows else 0)
    if nrows and ncols:
        dparts = cuda.to_device(parts)
        drowmax = cuda.device_array(max(nrows, 1) if rows else 1, np.float64)
        blocks = min(nrows, CUDA_MAX_BLOCKS)
        tpb = CUDA_SIM_BLOCK if numba.config.ENABLE_CUDASIM else CUDA_BLOCK
        cuda_moments_kernel(int(decode), has_prev, bool(rows), tpb)[blocks, tpb](
            xd, pd, dparts, drowmax)
        parts = dparts.copy_to_host()
        if rows:
            rowmax = drowmax.copy_to_host()[:nrows]
    live = parts[:, _N] > 0
    if not (np.isfinite(parts[live, _MEAN]).all() and np.isfinite(parts[live, _M2]).all()):
        return moments_cpu(xd.copy_to_host(), pd.copy_to_host() if has_prev else None, decode,
                           rows)
    out = finalize(merge(parts), nrows * ncols)
    return (out, rowmax) if rows else out


#: the family (docs/architecture.md, "The kernel contract")
MOMENTS = Family("moments", moments_cpu, moments_cuda, _reference.moments,
                 "count, mean, m2, min, max, zeros, NaN/inf counts and the update "
                 "norm of a whole tensor")
