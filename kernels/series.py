"""Long 1-D series -> per-pixel-column first / min / max / last (M4), CPU and CUDA.

The contract (docs/architecture.md, "Series"): for each pixel column, the first, the
minimum, the maximum and the last finite sample, with their indices in the
original series.  Drawing those four per column, in index order, is
pixel-identical to drawing every sample.  NaN and +-inf samples are skipped
and counted per column (``nan_count``); on a tie the earliest sample wins.

Both backends take the same arguments::

    m4_cpu(buffer, offset, stride, decode, start, end, smoothing=0.0, ema_state=None)
    m4_cuda(...same...)

``buffer`` is a flat buffer holding every sample (raw uint16 bits for
bfloat16 / float16, decoded in the kernels), sample ``i`` sits at
``buffer[offset + i * stride]`` (any stride, negative included), and column
``p`` holds samples ``start[p] <= i < end[p]``.  :func:`column_runs` computes
those runs on the host, by binary search (index space, or over a monotonic x),
so only the window's samples are ever read.  Both return a dict of host
``(W,)`` arrays (the result is a few KiB; it comes back to the host):

``first``, ``last``, ``min``, ``max``              float64, NaN in empty columns
``first_index``, ``last_index``, ``min_index``, ``max_index``  int64, -1 in empty columns
``count``, ``nan_count``                          int64

Smoothing (``smoothing = w`` in (0, 1)) is TensorBoard's debiased exponential
moving average, fused into the same kernels (the smoothed series is never
materialised, so extra memory stays O(columns)):

    last = 0; k = 0
    for each sample v:  if v is finite: last = w*last + (1-w)*v; k += 1;
                                        smoothed = last / (1 - w**k)
                        else:           smoothed = v  (stays NaN/inf: skipped, counted)

The recurrence is a linear one, so it runs as a *scan*: the samples are cut
into segments; pass 1 summarises each segment as ``(n, L)`` = (finite samples,
EMA of the segment started from 0), the host chains the summaries
(``last_out = last_in * w**n + L``) into each segment's starting state, and
pass 2 recomputes the smoothed values of every segment from its own state and
folds them straight into the M4 accumulators.  The same two passes run on the
GPU (a CUDA block per segment, a block-level scan of per-thread pieces
inside), so the GPU never copies the series to the host.  ``ema_state =
(i0, k0, last0)`` says the EMA state just before sample ``i0`` is known (k0
finite samples folded, biased EMA ``last0``); the default ``(0, 0, 0.0)``
starts at sample 0, so smoothing a window also reads the samples before it.
:func:`ema_cpu` / :func:`ema_cuda` materialise the smoothed values of a range
with the same scan (for drawing a deep zoom sample by sample, and for tests).

CPU strategy
    Segments of whole columns (long columns split) run in parallel, one task
    each, no atomics; the per-segment partials are merged in index order.
    Contiguous float input goes through a vectorised fast path, block by
    block (4096 samples, L1-resident): one fused integer loop over the raw
    bits counts non-finite samples (exponent all ones) and takes the min and
    max of an order-preserving integer key (sign-magnitude -> two's
    complement, -0.0 and +0.0 equal); LLVM vectorises integer min/max
    reductions, not float ones.  Only a block that improves the running min or
    max is searched (vectorised, 32 at a time) for the first index of the new
    extreme.  A block holding NaN/inf takes a scalar loop.  Strided input and
    the smoothed path are scalar loops.

GPU strategy
    One block of ``CUDA_BLOCK`` threads per segment (a column, or a piece of a
    column longer than ``CUDA_SEGMENT``): threads stride through the segment
    (coalesced), keep (value, index) accumulators, and meet in a shared-memory
    tree reduction where ties go to the smaller index.  Per-segment partials
    are merged on the host.  Host buffers are streamed in slabs.
"""

from __future__ import annotations

import functools
import math

import numba
import numpy as np
from numba import prange

from ._common import import_cuda
from ._common import (DECODE_BF16, DECODE_F16, DECODE_NATIVE, decode_bf16, decode_f16,
                      window_problem)
from ._parallel import parallel_jit
from ._family import Family
from .reference import series as _reference

cuda = None     # numba.cuda once a GPU path runs (see _common.import_cuda)


def _import_cuda():
    return import_cuda(globals())


STATS = ("first", "last", "min", "max", "first_index", "last_index", "min_index",
         "max_index", "count", "nan_count")

# Samples per vectorised CPU block: small enough to stay in L1 while it is
# searched for a new extreme.
CPU_BLOCK = 4096
# A CPU task never holds less than this many samples (unless its column is shorter).
CPU_SEGMENT_MIN = 1 << 16
# Fewer samples than this run on the calling thread (raw M4, the x check).
CPU_SERIAL_BELOW = 1 << 18
# Threads per CUDA block, and most samples one block takes.  Under the
# simulator (every thread a Python thread) blocks are smaller so CI stays
# fast; the algorithm is the same for any power of two.
CUDA_BLOCK = 256
CUDA_SIM_BLOCK = 32
# Most samples one block takes (128 per thread): a 10^8-sample view on 1200
# columns becomes ~3600 blocks, several waves, so the last wave's tail is short.
CUDA_SEGMENT = 1 << 15
# Host data goes to the GPU in slabs of at most this size.
CUDA_STREAM_BYTES = 256 << 20

_I64_MAX = np.iinfo(np.int64).max
_I64_MIN = np.iinfo(np.int64).min
_LOW63 = np.int64(0x7FFFFFFFFFFFFFFF)

# partial-result layout: fpart[s] = (first, last, min, max) values,
# ipart[s] = (first_index, last_index, min_index, max_index, count, nan_count)
_NF, _NI = 4, 6


# --------------------------------------------------------------------------
# Shared host-side helpers: decoding, column runs, segment plans, merging
# --------------------------------------------------------------------------

@numba.njit(inline="always", cache=True)
def _value(x, decode):
    """A stored element as float64 (``decode`` is a runtime flag)."""
    if decode == DECODE_BF16:
        return decode_bf16(x)
    if decode == DECODE_F16:
        return decode_f16(x)
    return np.float64(x)


@numba.njit(inline="always", cache=True)
def _pixel_key(xv, x0, x1, width):
    # -1 before the window, width after it; x == x1 (and any rounding up to
    # width at the top edge) goes to the last column.  Evaluated in this exact
    # order so the reference rounds identically.
    if xv < x0:
        return -1
    if xv > x1:
        return width
    q = ((xv - x0) * width) / (x1 - x0)
    if not q < width - 1:
        # the last column; also a quotient that overflowed to inf (or NaN), whose
        # integer conversion would be INT64_MIN
        return width - 1
    return math.floor(q)


@numba.njit(cache=True)
def _edges(xbuf, xoff, xstride, xdecode, has_x, n, x0, x1, width):
    # edges[p] = first sample whose pixel key is >= p; the key is monotone in
    # the sample index (x non-decreasing), so each column is a run.
    edges = np.empty(width + 1, np.int64)
    lo = 0
    for p in range(width + 1):
        a = lo
        b = n
        while a < b:
            m = (a + b) // 2
            if has_x:
                xv = _value(xbuf[xoff + m * xstride], xdecode)
            else:
                xv = np.float64(m)
            if _pixel_key(xv, x0, x1, width) >= p:
                b = m
            else:
                a = m + 1
        edges[p] = a
        lo = a
    return edges


def column_runs(n: int, x_range, width: int, x=None):
    """Which samples fall in each pixel column.

    Sample ``i`` sits at ``x = i`` (index space) or at ``x[i]``; its column is
    ``floor((x - x0) * width / (x1 - x0))`` for ``x0 <= x < x1``, ``x == x1``
    goes to the last column, anything else is outside.  Found by binary
    search: O(width log n) reads of x, none of y.

    Parameters
    ----------
    n : int
        Number of samples.
    x_range : (float, float)
        ``(x0, x1)``, ``x0 < x1``.
    width : int
        Number of pixel columns.
    x : (buffer, offset, stride, decode) or None
        Host address of a finite, non-decreasing x (see :func:`x_first_bad`).

    Returns
    -------
    start, end : (width,) int64 arrays
        Column ``p`` holds samples ``start[p] <= i < end[p]``; adjacent runs.
    outside : int
        Samples outside ``x_range``.
    """
    x0, x1 = float(x_range[0]), float(x_range[1])
    problem = window_problem(x0, x1, width)
    if problem:
        raise ValueError(f"x_range: {problem}")
    if x is None:
        xbuf, xoff, xstride, xdecode, has_x = np.zeros(1), 0, 0, DECODE_NATIVE, False
    else:
        xbuf, xoff, xstride, xdecode = x
        has_x = True
    edges = _edges(xbuf, np.int64(xoff), np.int64(xstride), np.int64(xdecode), has_x,
                   np.int64(n), x0, x1, np.int64(width))
    outside = int(edges[0] + (n - edges[-1]))
    return edges[:-1].copy(), edges[1:].copy(), outside


@numba.njit(inline="always", cache=True)
def _first_bad_range(xbuf, xoff, xstride, xdecode, lo, hi):
    # First i in [lo, hi) with x[i] not finite or x[i] < x[i-1]; hi if none.
    # Contiguous native x is checked 4096 at a time by a branch-free count
    # (vectorised), and only a block with a hit is scanned.
    if xstride == 1 and xdecode == DECODE_NATIVE and lo > 0:
        for b0 in range(lo, hi, CPU_BLOCK):
            b1 = min(b0 + CPU_BLOCK, hi)
            cur = xbuf[xoff + b0:xoff + b1]
            prev = xbuf[xoff + b0 - 1:xoff + b1 - 1]
            c = 0
            for j in range(cur.size):
                v = np.float64(cur[j])
                c += (v - v != 0.0) | (v < np.float64(prev[j]))
            if c:
                for j in range(cur.size):
                    v = np.float64(cur[j])
                    if v - v != 0.0 or v < np.float64(prev[j]):
                        return b0 + j
        return hi
    for i in range(lo, hi):
        v = _value(xbuf[xoff + i * xstride], xdecode)
        if not (v - v == 0.0):
            return i
        if i > 0 and v < _value(xbuf[xoff + (i - 1) * xstride], xdecode):
            return i
    return hi


@numba.njit(inline="always", cache=True)
def _first_bad_from(xbuf, xoff, xstride, xdecode, lo, hi, n):
    # sample 0 has no predecessor: it goes through the scalar path on its own
    start = lo
    if lo == 0:
        if _first_bad_range(xbuf, xoff, xstride, xdecode, 0, 1) == 0:
            return 0
        start = 1
    i = _first_bad_range(xbuf, xoff, xstride, xdecode, start, hi)
    return i if i < hi else n


@parallel_jit(cache=True)
def _first_bad(xbuf, xoff, xstride, xdecode, n, nchunks):
    step = (n + nchunks - 1) // nchunks
    found = np.full(nchunks, n, np.int64)
    for c in prange(nchunks):
        lo = c * step
        hi = min(lo + step, n)
        if lo < hi:
            found[c] = _first_bad_from(xbuf, xoff, xstride, xdecode, lo, hi, n)
    return found.min()


@numba.njit(cache=True)
def _first_bad_serial(xbuf, xoff, xstride, xdecode, n, nchunks):
    return _first_bad_from(xbuf, xoff, xstride, xdecode, 0, n, n)


@numba.njit(cache=True)
def _gather(buffer, offset, stride, decode, idx):
    out = np.empty(idx.size)
    for j in range(idx.size):
        out[j] = _value(buffer[offset + idx[j] * stride], decode) if idx[j] >= 0 else np.nan
    return out


def gather(buffer, offset, stride, decode, idx) -> np.ndarray:
    """Samples ``idx`` of a strided host series as float64 (NaN where ``idx < 0``)."""
    idx = np.ascontiguousarray(idx, dtype=np.int64)
    return _gather(buffer, np.int64(offset), np.int64(stride), np.int64(decode), idx)


def x_first_bad(buffer, offset, stride, decode, n: int) -> int:
    """Index of the first sample of x that is not finite or is below its predecessor; -1 if none.

    One parallel pass over x (the only full read of x that decimation needs).
    """
    if n == 0:
        return -1
    fn = _first_bad if n >= CPU_SERIAL_BELOW else _first_bad_serial
    nchunks = max(1, min(256, n // 4096))
    i = int(fn(buffer, np.int64(offset), np.int64(stride), np.int64(decode),
               np.int64(n), np.int64(nchunks)))
    return -1 if i >= n else i


@numba.njit(cache=True)
def _plan(start, end, max_len, fill_from):
    # Segments of at most max_len samples covering every column run, in index
    # order.  With fill_from >= 0 also "filler" segments (column -1) covering
    # everything from fill_from up to the runs and any gap between them: the
    # EMA must see every sample.  Returns nseg = -1 if the runs overlap or
    # start before fill_from (then the EMA order is undefined).
    nseg = 0
    pos = fill_from
    for p in range(start.size):
        a = start[p]
        b = end[p]
        if b <= a:
            continue
        if fill_from >= 0:
            if a < pos:
                return (np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int64), -1)
            nseg += (a - pos + max_len - 1) // max_len
            pos = b
        nseg += (b - a + max_len - 1) // max_len
    lo = np.empty(nseg, np.int64)
    hi = np.empty(nseg, np.int64)
    col = np.empty(nseg, np.int64)
    s = 0
    pos = fill_from
    for p in range(start.size):
        a = start[p]
        b = end[p]
        if b <= a:
            continue
        if fill_from >= 0:
            while pos < a:
                lo[s] = pos
                hi[s] = min(pos + max_len, a)
                col[s] = -1
                pos = hi[s]
                s += 1
            pos = b
        c = a
        while c < b:
            lo[s] = c
            hi[s] = min(c + max_len, b)
            col[s] = p
            c = hi[s]
            s += 1
    return lo, hi, col, nseg


def plan_segments(start, end, max_len: int, fill_from: int = -1):
    """``(seg_lo, seg_hi, seg_col)``: the runs cut into pieces of at most ``max_len``.

    ``fill_from >= 0`` adds filler segments (column -1) from ``fill_from`` on,
    so the EMA sees every sample.  Raises ValueError for overlapping runs then.
    """
    lo, hi, col, nseg = _plan(start, end, np.int64(max(1, max_len)), np.int64(fill_from))
    if nseg < 0:
        raise ValueError("start/end: with smoothing the column runs must be ascending, "
                         "non-overlapping and start at or after ema_state's sample")
    return lo, hi, col


@numba.njit(cache=True)
def _merge(seg_col, fpart, ipart, width):
    # Fold per-segment partials into columns, in index order: strict
    # comparisons keep the earliest sample on a tie.
    first = np.full(width, np.nan)
    last = np.full(width, np.nan)
    mn = np.full(width, np.nan)
    mx = np.full(width, np.nan)
    fi = np.full(width, -1, np.int64)
    li = np.full(width, -1, np.int64)
    mni = np.full(width, -1, np.int64)
    mxi = np.full(width, -1, np.int64)
    cnt = np.zeros(width, np.int64)
    nanc = np.zeros(width, np.int64)
    for s in range(seg_col.size):
        p = seg_col[s]
        if p < 0:
            continue
        c = ipart[s, 4]
        cnt[p] += c
        nanc[p] += ipart[s, 5]
        if c == 0:
            continue
        if fi[p] < 0:
            fi[p] = ipart[s, 0]
            first[p] = fpart[s, 0]
        li[p] = ipart[s, 1]
        last[p] = fpart[s, 1]
        if mni[p] < 0 or fpart[s, 2] < mn[p]:
            mni[p] = ipart[s, 2]
            mn[p] = fpart[s, 2]
        if mxi[p] < 0 or fpart[s, 3] > mx[p]:
            mxi[p] = ipart[s, 3]
            mx[p] = fpart[s, 3]
    return first, last, mn, mx, fi, li, mni, mxi, cnt, nanc


def _result(seg_col, fpart, ipart, width):
    return dict(zip(STATS, _merge(seg_col, fpart, ipart, np.int64(width))))


def empty_result(width: int) -> dict:
    """The result for columns that hold no sample."""
    return _result(np.empty(0, np.int64), np.empty((0, _NF)), np.empty((0, _NI), np.int64),
                   width)


@numba.njit(cache=True)
def _ema_chain(seg_n, seg_L, w, k0, last0):
    # Starting EMA state of every segment from the segment summaries:
    # last_out = last_in * w**n + L (the recurrence is linear).
    k = np.empty(seg_n.size, np.int64)
    last = np.empty(seg_n.size)
    kk = k0
    ll = last0
    for s in range(seg_n.size):
        k[s] = kk
        last[s] = ll
        ll = ll * w ** seg_n[s] + seg_L[s]
        kk += seg_n[s]
    return k, last


def _check_runs(start, end):
    start = np.ascontiguousarray(start, dtype=np.int64)
    end = np.ascontiguousarray(end, dtype=np.int64)
    if start.ndim != 1 or start.shape != end.shape:
        raise ValueError(f"start, end: expected two (W,) arrays of the same length; got shapes "
                         f"{start.shape} and {end.shape}")
    return start, end


def _ema_args(smoothing, ema_state):
    w = float(smoothing)
    if not 0.0 <= w < 1.0:
        raise ValueError(f"smoothing: expected a weight in [0, 1); got {smoothing!r}")
    i0, k0, last0 = (0, 0, 0.0) if ema_state is None else ema_state
    return w, int(i0), int(k0), float(last0)


def _key_params(buffer, decode):
    """(integer view of the buffer, is_float, exponent mask, magnitude mask, unsigned flip,
    round64).

    Floats are compared through an order-preserving integer key of their
    bits; integers through their value (uint64 with its top bit flipped).
    64-bit integers (``round64``) through the key of their float64 value:
    every sample is a float64 number (the contract), and two int64 values
    that round to the same float64 (beyond 2**53) tie, so the earliest wins,
    as on the GPU and in the reference.
    """
    dt = buffer.dtype
    if decode in (DECODE_BF16, DECODE_F16):
        e = 0x7F80 if decode == DECODE_BF16 else 0x7C00
        return buffer.view(np.int16), True, e, 0x7FFF, 0, False
    if dt == np.float32:
        return buffer.view(np.int32), True, 0x7F800000, 0x7FFFFFFF, 0, False
    if dt == np.float64:
        return buffer.view(np.int64), True, 0x7FF0000000000000, 0x7FFFFFFFFFFFFFFF, 0, False
    if dt.kind == "b":
        return buffer.view(np.uint8), False, 0, 0, 0, False
    if dt.kind in "iu":
        flip = _I64_MIN if dt == np.uint64 else 0
        return buffer, False, 0, 0, flip, dt.itemsize == 8
    raise TypeError(f"buffer: expected a float, integer or bool buffer; got dtype {dt}")


# --------------------------------------------------------------------------
# CPU
# --------------------------------------------------------------------------

def _cpu_segment_len(total: int) -> int:
    return max(CPU_SEGMENT_MIN, -(-total // (4 * numba.get_num_threads())))


@numba.njit(inline="always", cache=True)
def _fkey(x, mag):
    # float bits (sign-extended) -> integer with the float's order; -0 == +0
    xs = np.int64(x)
    s = xs >> 63
    return ((xs & mag) ^ s) - s


@numba.njit(inline="always", cache=True)
def _ikey(x, flip, round64):
    if round64:
        # the order-preserving key of the float64 the sample rounds to
        b = np.float64(x).view(np.int64)
        s = b >> 63
        return ((b & _LOW63) ^ s) - s
    return np.int64(x) ^ flip


@numba.njit(cache=True)
def _fblock(bb, ex, mag):
    # One fused integer loop (LLVM vectorises it): non-finite count, key min, key max.
    nf = 0
    kmin = _I64_MAX
    kmax = _I64_MIN
    for j in range(bb.size):
        xs = np.int64(bb[j])
        nf += (xs & ex) == ex
        s = xs >> 63
        k = ((xs & mag) ^ s) - s
        kmin = k if k < kmin else kmin
        kmax = k if k > kmax else kmax
    return nf, kmin, kmax


@numba.njit(cache=True)
def _iblock(bb, flip, round64):
    kmin = _I64_MAX
    kmax = _I64_MIN
    if round64:
        for j in range(bb.size):
            k = _ikey(bb[j], flip, True)
            kmin = k if k < kmin else kmin
            kmax = k if k > kmax else kmax
        return kmin, kmax
    for j in range(bb.size):
        k = np.int64(bb[j]) ^ flip
        kmin = k if k < kmin else kmin
        kmax = k if k > kmax else kmax
    return kmin, kmax


@numba.njit(cache=True)
def _find(bb, target, is_float, mag, flip, round64):
    # First j with key(bb[j]) == target; 32 at a time (the count vectorises).
    n = bb.size
    for b0 in range(0, n, 32):
        h = bb[b0:min(b0 + 32, n)]
        c = 0
        if is_float:
            for j in range(h.size):
                c += _fkey(h[j], mag) == target
        else:
            for j in range(h.size):
                c += _ikey(h[j], flip, round64) == target
        if c:
            for j in range(h.size):
                k = _fkey(h[j], mag) if is_float else _ikey(h[j], flip, round64)
                if k == target:
                    return b0 + j
    return -1


@numba.njit(cache=True)
def _segment_raw(flat, bits, offset, stride, lo, hi, is_float, ex, mag, flip, round64,
                 decode, fout, iout):
    cnt = 0
    fi = np.int64(-1)
    li = np.int64(-1)
    mni = np.int64(-1)
    mxi = np.int64(-1)
    kmin = np.int64(0)
    kmax = np.int64(0)
    if stride == 1:
        for b0 in range(lo, hi, CPU_BLOCK):
            b1 = min(b0 + CPU_BLOCK, hi)
            bb = bits[offset + b0:offset + b1]
            if is_float:
                nf, bmin, bmax = _fblock(bb, ex, mag)
            else:
                nf = 0
                bmin, bmax = _iblock(bb, flip, round64)
            if nf == 0:
                # every sample finite: whole-block bookkeeping, search only on improvement
                cnt += b1 - b0
                if fi < 0:
                    fi = b0
                li = b1 - 1
                if mni < 0 or bmin < kmin:
                    kmin = bmin
                    mni = b0 + _find(bb, bmin, is_float, mag, flip, round64)
                if mxi < 0 or bmax > kmax:
                    kmax = bmax
                    mxi = b0 + _find(bb, bmax, is_float, mag, flip, round64)
                continue
            for j in range(b1 - b0):
                x = bb[j]
                if (np.int64(x) & ex) == ex:
                    continue
                k = _fkey(x, mag)
                i = b0 + j
                cnt += 1
                if fi < 0:
                    fi = i
                li = i
                if mni < 0 or k < kmin:
                    kmin = k
                    mni = i
                if mxi < 0 or k > kmax:
                    kmax = k
                    mxi = i
    else:
        for i in range(lo, hi):
            x = bits[offset + i * stride]
            if is_float:
                if (np.int64(x) & ex) == ex:
                    continue
                k = _fkey(x, mag)
            else:
                k = _ikey(x, flip, round64)
            cnt += 1
            if fi < 0:
                fi = i
            li = i
            if mni < 0 or k < kmin:
                kmin = k
                mni = i
            if mxi < 0 or k > kmax:
                kmax = k
                mxi = i
    iout[0] = fi
    iout[1] = li
    iout[2] = mni
    iout[3] = mxi
    iout[4] = cnt
    iout[5] = (hi - lo) - cnt
    idx = (fi, li, mni, mxi)
    for q in range(4):
        fout[q] = _value(flat[offset + idx[q] * stride], decode) if idx[q] >= 0 else np.nan


@parallel_jit(cache=True)
def _m4_raw(flat, bits, offset, stride, is_float, ex, mag, flip, round64, decode, seg_lo,
            seg_hi, fpart, ipart):
    for s in prange(seg_lo.size):
        _segment_raw(flat, bits, offset, stride, seg_lo[s], seg_hi[s], is_float, ex, mag,
                     flip, round64, decode, fpart[s], ipart[s])


@numba.njit(cache=True)
def _m4_raw_serial(flat, bits, offset, stride, is_float, ex, mag, flip, round64, decode,
                   seg_lo, seg_hi, fpart, ipart):
    # Small windows (a deep zoom): no thread pool, whose wake-up can cost
    # milliseconds on a busy machine, for microseconds of work.
    for s in range(seg_lo.size):
        _segment_raw(flat, bits, offset, stride, seg_lo[s], seg_hi[s], is_float, ex, mag,
                     flip, round64, decode, fpart[s], ipart[s])


@parallel_jit(cache=True, fastmath={"contract"})
def _ema_summaries(flat, offset, stride, decode, w, seg_lo, seg_hi, out_n, out_l):
    c = 1.0 - w
    for s in prange(seg_lo.size):
        n = 0
        acc = 0.0
        for i in range(seg_lo[s], seg_hi[s]):
            v = _value(flat[offset + i * stride], decode)
            if v - v == 0.0:
                acc = acc * w + c * v
                n += 1
        out_n[s] = n
        out_l[s] = acc


@parallel_jit(cache=True, fastmath={"contract"})
def _m4_smooth(flat, offset, stride, decode, w, ids, seg_lo, seg_hi, seg_k, seg_last,
               fpart, ipart):
    c = 1.0 - w
    for t in prange(ids.size):
        s = ids[t]
        lo = seg_lo[s]
        hi = seg_hi[s]
        last = seg_last[s]
        p = w ** seg_k[s]
        cnt = 0
        fi = np.int64(-1)
        li = np.int64(-1)
        mni = np.int64(-1)
        mxi = np.int64(-1)
        fv = np.nan
        lv = np.nan
        mn = np.inf
        mx = -np.inf
        for i in range(lo, hi):
            v = _value(flat[offset + i * stride], decode)
            if v - v == 0.0:
                last = last * w + c * v
                p *= w
                sv = last / (1.0 - p)
                if sv - sv == 0.0:
                    cnt += 1
                    if fi < 0:
                        fi = i
                        fv = sv
                    li = i
                    lv = sv
                    if sv < mn:
                        mn = sv
                        mni = i
                    if sv > mx:
                        mx = sv
                        mxi = i
        ipart[s, 0] = fi
        ipart[s, 1] = li
        ipart[s, 2] = mni
        ipart[s, 3] = mxi
        ipart[s, 4] = cnt
        ipart[s, 5] = (hi - lo) - cnt
        fpart[s, 0] = fv
        fpart[s, 1] = lv
        fpart[s, 2] = mn if cnt else np.nan
        fpart[s, 3] = mx if cnt else np.nan


@parallel_jit(cache=True, fastmath={"contract"})
def _ema_write(flat, offset, stride, decode, w, ids, seg_lo, seg_hi, seg_k, seg_last,
               base, out):
    c = 1.0 - w
    for t in prange(ids.size):
        s = ids[t]
        last = seg_last[s]
        p = w ** seg_k[s]
        for i in range(seg_lo[s], seg_hi[s]):
            v = _value(flat[offset + i * stride], decode)
            if v - v == 0.0:
                last = last * w + c * v
                p *= w
                out[i - base] = last / (1.0 - p)
            else:
                out[i - base] = v


def _cpu_ema_states(buffer, offset, stride, decode, w, seg_lo, seg_hi, k0, last0):
    n = np.empty(seg_lo.size, np.int64)
    acc = np.empty(seg_lo.size)
    _ema_summaries(buffer, offset, stride, decode, w, seg_lo, seg_hi, n, acc)
    return _ema_chain(n, acc, w, np.int64(k0), last0)


def m4_cpu(buffer, offset, stride, decode, start, end, smoothing=0.0, ema_state=None):
    """Per-column first / min / max / last of a strided 1-D series, on the CPU.

    Parameters
    ----------
    buffer : (L,) ndarray
        Flat host buffer holding every sample (raw uint16 bits for bf16/fp16).
    offset, stride : int
        Sample ``i`` is ``buffer[offset + i * stride]``.
    decode : int
        ``DECODE_NATIVE``, ``DECODE_BF16`` or ``DECODE_F16``.
    start, end : (W,) int arrays
        Column ``p`` holds samples ``start[p] <= i < end[p]`` (see :func:`column_runs`).
    smoothing : float
        EMA weight in [0, 1); 0 reads the raw samples.
    ema_state : (int, int, float), optional
        ``(i0, k0, last0)``: the EMA state before sample ``i0`` (see the module
        docstring); default ``(0, 0, 0.0)``.

    Returns
    -------
    dict of (W,) ndarrays
        See :data:`STATS` and the module docstring.
    """
    start, end = _check_runs(start, end)
    width = start.size
    w, i0, k0, last0 = _ema_args(smoothing, ema_state)
    offset = np.int64(offset)
    stride = np.int64(stride)
    decode = np.int64(decode)
    if w == 0.0:
        total = int(np.maximum(end - start, 0).sum())
        seg_lo, seg_hi, seg_col = plan_segments(start, end, _cpu_segment_len(total))
        nseg = seg_lo.size
        fpart = np.empty((nseg, _NF))
        ipart = np.empty((nseg, _NI), np.int64)
        if nseg:
            bits, is_float, ex, mag, flip, round64 = _key_params(buffer, int(decode))
            run = _m4_raw if total >= CPU_SERIAL_BELOW else _m4_raw_serial
            run(buffer, bits, offset, stride, is_float, np.int64(ex), np.int64(mag),
                np.int64(flip), round64, decode, seg_lo, seg_hi, fpart, ipart)
        return _result(seg_col, fpart, ipart, width)
    total = int(max(end.max(initial=0) - i0, 0))
    seg_lo, seg_hi, seg_col = plan_segments(start, end, _cpu_segment_len(total), i0)
    nseg = seg_lo.size
    fpart = np.empty((nseg, _NF))
    ipart = np.empty((nseg, _NI), np.int64)
    if nseg:
        seg_k, seg_last = _cpu_ema_states(buffer, offset, stride, decode, w, seg_lo, seg_hi,
                                          k0, last0)
        ids = np.flatnonzero(seg_col >= 0).astype(np.int64)
        _m4_smooth(buffer, offset, stride, decode, w, ids, seg_lo, seg_hi, seg_k, seg_last,
                   fpart, ipart)
    return _result(seg_col, fpart, ipart, width)


def ema_cpu(buffer, offset, stride, decode, lo, hi, smoothing, ema_state=None):
    """Debiased EMA (TensorBoard's smoothing) of samples ``lo <= i < hi``, on the CPU.

    Same addressing as :func:`m4_cpu`.  Non-finite samples pass through
    unchanged and leave the EMA state alone.

    Returns
    -------
    (hi - lo,) float64 ndarray
    """
    w, i0, k0, last0 = _ema_args(smoothing, ema_state)
    lo, hi = int(lo), int(hi)
    out = np.empty(max(hi - lo, 0))
    if hi <= lo:
        return out
    seg_lo, seg_hi, seg_col = plan_segments(np.array([lo], np.int64), np.array([hi], np.int64),
                                            _cpu_segment_len(hi - i0), i0)
    offset, stride, decode = np.int64(offset), np.int64(stride), np.int64(decode)
    seg_k, seg_last = _cpu_ema_states(buffer, offset, stride, decode, w, seg_lo, seg_hi,
                                      k0, last0)
    ids = np.flatnonzero(seg_col >= 0).astype(np.int64)
    _ema_write(buffer, offset, stride, decode, w, ids, seg_lo, seg_hi, seg_k, seg_last,
               np.int64(lo), out)
    return out


def ema_checkpoints_cpu(buffer, offset, stride, decode, n, smoothing, every=1 << 16):
    """EMA states every ``every`` samples, for smoothing windows without re-reading the prefix.

    Returns
    -------
    positions, k, last : (ceil(n / every),) arrays
        The EMA state just before sample ``positions[j]`` (usable as
        ``ema_state=(positions[j], k[j], last[j])``).
    """
    w, _, _, _ = _ema_args(smoothing, None)
    every = max(int(every), 1)
    seg_lo = np.arange(0, int(n), every, dtype=np.int64)
    seg_hi = np.minimum(seg_lo + every, int(n)).astype(np.int64)
    k, last = _cpu_ema_states(buffer, np.int64(offset), np.int64(stride), np.int64(decode), w,
                              seg_lo, seg_hi, 0, 0.0)
    return seg_lo, k, last


# --------------------------------------------------------------------------
# CUDA
# --------------------------------------------------------------------------

def _cuda_block() -> int:
    return CUDA_SIM_BLOCK if numba.config.ENABLE_CUDASIM else CUDA_BLOCK


@functools.lru_cache(maxsize=None)
def _cuda_kernels(decode: int):
    """Memoised CUDA kernels for one element decoding: raw M4, EMA summary,
    smoothed M4, EMA values."""
    _import_cuda()

    from ._common import cuda_decoder, cuda_device

    BLOCK = _cuda_block()
    f64 = numba.float64
    i64 = numba.int64
    BIG = _I64_MAX

    dec = cuda_decoder(decode)

    def _reduce_store(t, s, lo, hi, sfi, sfv, sli, slv, smni, smn, smxi, smx, scnt,
                      fpart, ipart):
        # Tree reduction of the block's (value, index) accumulators; a tie
        # goes to the smaller index, so the result does not depend on the order.
        cuda.syncthreads()
        step = BLOCK // 2
        while step > 0:
            if t < step:
                u = t + step
                scnt[t] += scnt[u]
                if sfi[u] < sfi[t]:
                    sfi[t] = sfi[u]
                    sfv[t] = sfv[u]
                if sli[u] > sli[t]:
                    sli[t] = sli[u]
                    slv[t] = slv[u]
                if smn[u] < smn[t] or (smn[u] == smn[t] and smni[u] < smni[t]):
                    smn[t] = smn[u]
                    smni[t] = smni[u]
                if smx[u] > smx[t] or (smx[u] == smx[t] and smxi[u] < smxi[t]):
                    smx[t] = smx[u]
                    smxi[t] = smxi[u]
            cuda.syncthreads()
            step //= 2
        if t == 0:
            n = scnt[0]
            ipart[s, 0] = sfi[0] if n > 0 else -1
            ipart[s, 1] = sli[0] if n > 0 else -1
            ipart[s, 2] = smni[0] if n > 0 else -1
            ipart[s, 3] = smxi[0] if n > 0 else -1
            ipart[s, 4] = n
            ipart[s, 5] = (hi - lo) - n
            fpart[s, 0] = sfv[0] if n > 0 else math.nan
            fpart[s, 1] = slv[0] if n > 0 else math.nan
            fpart[s, 2] = smn[0] if n > 0 else math.nan
            fpart[s, 3] = smx[0] if n > 0 else math.nan
    reduce_store = cuda_device(_reduce_store)

    def _piece(lo, hi, t):
        # thread t's contiguous piece of the segment (the EMA scan needs order)
        c = (hi - lo + BLOCK - 1) // BLOCK
        a = min(lo + t * c, hi)
        return a, min(a + c, hi)
    piece = cuda_device(_piece)

    def _summary(flat, offset, stride, a, e, w):
        n = 0
        acc = 0.0
        c = 1.0 - w
        for i in range(a, e):
            v = dec(flat[offset + i * stride])
            if math.isfinite(v):
                acc = acc * w + c * v
                n += 1
        return n, acc
    summary = cuda_device(_summary)

    def _scan(t, sn, sl, w):
        # Inclusive Hillis-Steele scan of the per-thread (n, L) summaries, in
        # thread order: (n1, L1) then (n2, L2) = (n1 + n2, L1 * w**n2 + L2).
        cuda.syncthreads()
        d = 1
        while d < BLOCK:
            pn = 0
            pl = 0.0
            if t >= d:
                pn = sn[t - d]
                pl = sl[t - d]
            cuda.syncthreads()
            if t >= d:
                sl[t] = pl * math.pow(w, np.float64(sn[t])) + sl[t]
                sn[t] += pn
            cuda.syncthreads()
            d *= 2
    scan = cuda_device(_scan)

    @cuda.jit
    def m4_raw(flat, offset, stride, ids, seg_lo, seg_hi, fpart, ipart):
        sfi = cuda.shared.array(BLOCK, i64)
        sli = cuda.shared.array(BLOCK, i64)
        smni = cuda.shared.array(BLOCK, i64)
        smxi = cuda.shared.array(BLOCK, i64)
        scnt = cuda.shared.array(BLOCK, i64)
        sfv = cuda.shared.array(BLOCK, f64)
        slv = cuda.shared.array(BLOCK, f64)
        smn = cuda.shared.array(BLOCK, f64)
        smx = cuda.shared.array(BLOCK, f64)
        t = cuda.threadIdx.x
        s = ids[cuda.blockIdx.x]
        lo = seg_lo[s]
        hi = seg_hi[s]
        fi = BIG
        li = -1
        mni = BIG
        mxi = BIG
        cnt = 0
        fv = math.nan
        lv = math.nan
        mn = math.inf
        mx = -math.inf
        # threads stride through the segment: a warp reads consecutive samples
        for i in range(lo + t, hi, BLOCK):
            v = dec(flat[offset + i * stride])
            if math.isfinite(v):
                cnt += 1
                if fi == BIG:
                    fi = i
                    fv = v
                li = i
                lv = v
                if v < mn:
                    mn = v
                    mni = i
                if v > mx:
                    mx = v
                    mxi = i
        sfi[t] = fi
        sli[t] = li
        smni[t] = mni
        smxi[t] = mxi
        scnt[t] = cnt
        sfv[t] = fv
        slv[t] = lv
        smn[t] = mn
        smx[t] = mx
        reduce_store(t, s, lo, hi, sfi, sfv, sli, slv, smni, smn, smxi, smx, scnt,
                     fpart, ipart)

    @cuda.jit
    def ema_summary(flat, offset, stride, w, ids, seg_lo, seg_hi, out_n, out_l):
        sn = cuda.shared.array(BLOCK, i64)
        sl = cuda.shared.array(BLOCK, f64)
        t = cuda.threadIdx.x
        s = ids[cuda.blockIdx.x]
        a, e = piece(seg_lo[s], seg_hi[s], t)
        n, acc = summary(flat, offset, stride, a, e, w)
        sn[t] = n
        sl[t] = acc
        scan(t, sn, sl, w)
        if t == BLOCK - 1:
            out_n[s] = sn[t]
            out_l[s] = sl[t]

    @cuda.jit
    def m4_smooth(flat, offset, stride, w, ids, seg_lo, seg_hi, seg_k, seg_last,
                  fpart, ipart):
        sn = cuda.shared.array(BLOCK, i64)
        sl = cuda.shared.array(BLOCK, f64)
        sfi = cuda.shared.array(BLOCK, i64)
        sli = cuda.shared.array(BLOCK, i64)
        smni = cuda.shared.array(BLOCK, i64)
        smxi = cuda.shared.array(BLOCK, i64)
        scnt = cuda.shared.array(BLOCK, i64)
        sfv = cuda.shared.array(BLOCK, f64)
        slv = cuda.shared.array(BLOCK, f64)
        smn = cuda.shared.array(BLOCK, f64)
        smx = cuda.shared.array(BLOCK, f64)
        t = cuda.threadIdx.x
        s = ids[cuda.blockIdx.x]
        lo = seg_lo[s]
        hi = seg_hi[s]
        a, e = piece(lo, hi, t)
        n, acc = summary(flat, offset, stride, a, e, w)
        sn[t] = n
        sl[t] = acc
        scan(t, sn, sl, w)
        en = 0
        el = 0.0
        if t > 0:
            en = sn[t - 1]
            el = sl[t - 1]
        k = seg_k[s] + en
        last = seg_last[s] * math.pow(w, np.float64(en)) + el
        p = math.pow(w, np.float64(k))
        c = 1.0 - w
        fi = BIG
        li = -1
        mni = BIG
        mxi = BIG
        cnt = 0
        fv = math.nan
        lv = math.nan
        mn = math.inf
        mx = -math.inf
        for i in range(a, e):
            v = dec(flat[offset + i * stride])
            if math.isfinite(v):
                last = last * w + c * v
                p *= w
                sv = last / (1.0 - p)
                if math.isfinite(sv):
                    cnt += 1
                    if fi == BIG:
                        fi = i
                        fv = sv
                    li = i
                    lv = sv
                    if sv < mn:
                        mn = sv
                        mni = i
                    if sv > mx:
                        mx = sv
                        mxi = i
        sfi[t] = fi
        sli[t] = li
        smni[t] = mni
        smxi[t] = mxi
        scnt[t] = cnt
        sfv[t] = fv
        slv[t] = lv
        smn[t] = mn
        smx[t] = mx
        reduce_store(t, s, lo, hi, sfi, sfv, sli, slv, smni, smn, smxi, smx, scnt,
                     fpart, ipart)

    @cuda.jit
    def ema_values(flat, offset, stride, w, ids, seg_lo, seg_hi, seg_k, seg_last, base, out):
        sn = cuda.shared.array(BLOCK, i64)
        sl = cuda.shared.array(BLOCK, f64)
        t = cuda.threadIdx.x
        s = ids[cuda.blockIdx.x]
        a, e = piece(seg_lo[s], seg_hi[s], t)
        n, acc = summary(flat, offset, stride, a, e, w)
        sn[t] = n
        sl[t] = acc
        scan(t, sn, sl, w)
        en = 0
        el = 0.0
        if t > 0:
            en = sn[t - 1]
            el = sl[t - 1]
        last = seg_last[s] * math.pow(w, np.float64(en)) + el
        p = math.pow(w, np.float64(seg_k[s] + en))
        c = 1.0 - w
        for i in range(a, e):
            v = dec(flat[offset + i * stride])
            if math.isfinite(v):
                last = last * w + c * v
                p *= w
                out[i - base] = last / (1.0 - p)
            else:
                out[i - base] = v

    return {"m4_raw": m4_raw, "ema_summary": ema_summary, "m4_smooth": m4_smooth,
            "ema_values": ema_values}


def _slabs(buffer, offset, stride, seg_lo, seg_hi, ids):
    """``(ids, device buffer, offset)`` groups of segments; host data streamed in slabs.

    Device buffers pass through whole.  For host buffers each slab covers
    consecutive segments whose samples span at most ``CUDA_STREAM_BYTES``.
    """
    if not isinstance(buffer, np.ndarray):
        yield ids, buffer, offset
        return
    per = max(abs(int(stride)), 1) * buffer.dtype.itemsize
    k = 0
    while k < ids.size:
        j = k + 1
        while j < ids.size and (seg_hi[ids[j]] - seg_lo[ids[k]]) * per <= CUDA_STREAM_BYTES:
            j += 1
        a = int(seg_lo[ids[k]])
        b = int(seg_hi[ids[j - 1]]) - 1
        p, q = offset + a * stride, offset + b * stride
        lo_addr, hi_addr = min(p, q), max(p, q)
        host = np.ascontiguousarray(buffer[lo_addr:hi_addr + 1])
        yield ids[k:j], cuda.to_device(host), offset - lo_addr
        k = j


def _launch(kernel, buffer, offset, stride, seg_lo, seg_hi, ids, d_lo, d_hi, before, after):
    # before/after: the arguments around (flat, offset, stride, ids, seg_lo, seg_hi)
    for sub, dbuf, off in _slabs(buffer, offset, stride, seg_lo, seg_hi, ids):
        if sub.size == 0:
            continue
        kernel[sub.size, _cuda_block()](dbuf, np.int64(off), np.int64(stride), *before,
                                     cuda.to_device(sub), d_lo, d_hi, *after)


def _cuda_ema_states(kern, buffer, offset, stride, w, seg_lo, seg_hi, d_lo, d_hi, k0, last0):
    nseg = seg_lo.size
    d_n = cuda.device_array(nseg, np.int64)
    d_l = cuda.device_array(nseg, np.float64)
    _launch(kern["ema_summary"], buffer, offset, stride, seg_lo, seg_hi,
            np.arange(nseg, dtype=np.int64), d_lo, d_hi, (np.float64(w),), (d_n, d_l))
    # the chain over segments is sequential and tiny: the host does it
    return _ema_chain(d_n.copy_to_host(), d_l.copy_to_host(), w, np.int64(k0), last0)


def m4_cuda(buffer, offset, stride, decode, start, end, smoothing=0.0, ema_state=None):
    """Per-column first / min / max / last of a strided 1-D series, on the GPU.

    Same parameters and result as :func:`m4_cpu` (host arrays: the result is
    ``W`` numbers per statistic).  ``buffer`` may be a device array (anything
    ``numba.cuda`` kernels take: numba device arrays, cupy, objects with
    ``__cuda_array_interface__``) or a host ndarray, which is then streamed to
    the device in slabs.
    """
    _import_cuda()
    start, end = _check_runs(start, end)
    width = start.size
    w, i0, k0, last0 = _ema_args(smoothing, ema_state)
    offset, stride = int(offset), int(stride)
    if w == 0.0:
        seg_lo, seg_hi, seg_col = plan_segments(start, end, CUDA_SEGMENT)
    else:
        seg_lo, seg_hi, seg_col = plan_segments(start, end, CUDA_SEGMENT, i0)
    nseg = seg_lo.size
    if nseg == 0:
        return empty_result(width)
    kern = _cuda_kernels(int(decode))
    d_lo, d_hi = cuda.to_device(seg_lo), cuda.to_device(seg_hi)
    d_f = cuda.device_array((nseg, _NF), np.float64)
    d_i = cuda.device_array((nseg, _NI), np.int64)
    ids = np.flatnonzero(seg_col >= 0).astype(np.int64)
    if w == 0.0:
        _launch(kern["m4_raw"], buffer, offset, stride, seg_lo, seg_hi, ids, d_lo, d_hi,
                (), (d_f, d_i))
    else:
        seg_k, seg_last = _cuda_ema_states(kern, buffer, offset, stride, w, seg_lo, seg_hi,
                                           d_lo, d_hi, k0, last0)
        _launch(kern["m4_smooth"], buffer, offset, stride, seg_lo, seg_hi, ids, d_lo, d_hi,
                (np.float64(w),), (cuda.to_device(seg_k), cuda.to_device(seg_last), d_f, d_i))
    fpart = d_f.copy_to_host()
    ipart = d_i.copy_to_host()
    # filler rows were never written: only column segments reach the merge
    fpart[seg_col < 0] = np.nan
    ipart[seg_col < 0] = 0
    return _result(seg_col, fpart, ipart, width)


def ema_cuda(buffer, offset, stride, decode, lo, hi, smoothing, ema_state=None):
    """Debiased EMA of samples ``lo <= i < hi`` on the GPU; same parameters as :func:`ema_cpu`.

    Returns
    -------
    (hi - lo,) float64 numba device array
    """
    _import_cuda()
    w, i0, k0, last0 = _ema_args(smoothing, ema_state)
    lo, hi = int(lo), int(hi)
    out = cuda.device_array(max(hi - lo, 0), np.float64)
    if hi <= lo:
        return out
    seg_lo, seg_hi, seg_col = plan_segments(np.array([lo], np.int64), np.array([hi], np.int64),
                                            CUDA_SEGMENT, i0)
    kern = _cuda_kernels(int(decode))
    offset, stride = int(offset), int(stride)
    d_lo, d_hi = cuda.to_device(seg_lo), cuda.to_device(seg_hi)
    seg_k, seg_last = _cuda_ema_states(kern, buffer, offset, stride, w, seg_lo, seg_hi,
                                       d_lo, d_hi, k0, last0)
    ids = np.flatnonzero(seg_col >= 0).astype(np.int64)
    _launch(kern["ema_values"], buffer, offset, stride, seg_lo, seg_hi, ids, d_lo, d_hi,
            (np.float64(w),), (cuda.to_device(seg_k), cuda.to_device(seg_last),
                               np.int64(lo), out))
    return out


def ema_checkpoints_cuda(buffer, offset, stride, decode, n, smoothing, every=1 << 16):
    """:func:`ema_checkpoints_cpu` on the GPU (same parameters and host results)."""
    _import_cuda()
    w, _, _, _ = _ema_args(smoothing, None)
    every = max(int(every), 1)
    seg_lo = np.arange(0, int(n), every, dtype=np.int64)
    seg_hi = np.minimum(seg_lo + every, int(n)).astype(np.int64)
    if seg_lo.size == 0:
        return seg_lo, np.empty(0, np.int64), np.empty(0)
    kern = _cuda_kernels(int(decode))
    k, last = _cuda_ema_states(kern, buffer, int(offset), int(stride), w, seg_lo, seg_hi,
                               cuda.to_device(seg_lo), cuda.to_device(seg_hi), 0, 0.0)
    return seg_lo, k, last


#: the families (docs/architecture.md, "The kernel contract")
M4 = Family("m4", m4_cpu, m4_cuda, _reference.m4,
            "first, min, max and last sample of each pixel column of a series")
EMA_CHECKPOINTS = Family("ema_checkpoints", ema_checkpoints_cpu, ema_checkpoints_cuda,
                         _reference.ema_states,
                         "the smoothing EMA's state every so many samples")
EMA = Family("ema", ema_cpu, ema_cuda, _reference.ema,
             "TensorBoard's debiased EMA of a run of samples")
