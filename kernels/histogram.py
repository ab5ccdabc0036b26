"""Exact histograms of whole tensors, on the CPU (Numba) and the GPU (Numba CUDA).

The contract (docs/architecture.md, "Histogram"): edges ``e_0 < ... < e_B``; a value
``v`` falls in bin ``k`` when ``e_k <= v < e_{k+1}``, the last bin includes
``e_B``; values below ``e_0`` (underflow), above ``e_B`` (overflow), NaN, +inf
and -inf are counted apart, in that order (:data:`SPECIALS`).  Every element is
compared with the float64 edges as a float64 number (float32, bfloat16,
float16 and integers up to 2**53 convert exactly; larger int64 values round to
the nearest float64 first, exactly as the NumPy reference does).

:func:`histogram_cpu` and :func:`histogram_cuda` take the same arguments -- a
flat buffer, the offset of logical element (0, 0), the row and column address
maps of :mod:`._layout` (what :func:`dlviz_gpu.tensors.as_matrix` gives), the
element decoding, the edges and the scale -- and both return host arrays
``(counts (B,) int64, specials (5,) int64)``.  :func:`histogram_many_cpu` and
:func:`histogram_many_cuda` do a list of tensors in one call (one row of
counts per tensor); :func:`minmax_cpu` / :func:`minmax_cuda` are the exact
min/max pass behind ``range=None``.

Address order
    The layout of a tensor does not matter to a histogram, so
    :func:`normalise` turns the two axis maps into the cheapest walk over the
    same elements: negative strides flipped, dimensions sorted by stride and
    merged where they are one run, giving an *outer* axis map and an *inner*
    run.  A contiguous tensor of any shape becomes one unit-stride run.

CPU strategy
    Tasks (a few per thread) take equal shares of the elements; each counts
    into its own private int32 bins (two interleaved sub-histograms when the
    bins are few, so that runs of equal values do not chain stores to one
    counter) and the task rows are summed at the end: no atomics.  A task
    works in chunks of :data:`CPU_CHUNK` elements as float32 or float64
    *lanes*: unit-stride float32/float64 runs are read in place; bfloat16,
    float16, integers, bool and every other walk are decoded a chunk at a
    time into the task's small lane buffer (memory O(threads x chunk), never
    a copy of the tensor).  Three passes per chunk:

    1. *classify* (vectorised): uniform bins in linear, log or symlog space
       give the bin by arithmetic, ``g = (T(v) - T(e_0)) * B / (T(e_B) -
       T(e_0))`` (``T`` the identity, ``ln``, or the symlog transform, with
       a vectorisable ``ln``); out-of-range values, NaN and +-inf go to their
       counters by exact comparisons with the edges (pre-rounded to the lane
       type, so float32 comparisons are exact).  A value whose ``g`` lies
       within ``eps`` of a bin boundary is flagged instead of trusted --
       except 0.0 when 0 is an edge, which has its own exact test (zeros on
       a symmetric range would otherwise all be flagged).
    2. *fix* (scalar, rare): flagged values walk from their guess over the
       float64 edges.
    3. *count* (scalar): increment the private bins.

    Why the arithmetic bin of an unflagged value is exact: ``g`` is a
    monotone function of ``v`` (a subtraction and a multiplication by a
    positive constant, each rounded monotonically; the ``ln`` used for log
    and symlog bins is monotone up to a bound :data:`LN_DELTA` it is given).
    Before a run, :func:`plan_bins` evaluates ``g`` -- the same compiled
    code -- at every edge ``t_j`` (in the lane type) and at the value just
    below it, and measures how far it strays past ``j``; ``eps`` is twice
    that, plus the ``ln`` bound, plus a floor covering the rounding of the
    flag test itself.  Then ``k + eps <= g(v) <= k + 1 - eps`` is impossible
    unless ``t_k <= v < t_{k+1}``.  When the edges are too uneven or too
    narrow for the lane precision (``eps`` would exceed :data:`MAX_EPS`)
    the next option is tried: float32 lanes -> float64 lanes -> a search
    over the edges (arbitrary edges end there: a table of equal cells over
    the range narrows each value to a few bins, then a fixed-depth binary
    search and a walk).

    Compilation: one parallel driver per kind of input (decoding x lane
    width x read in place or gathered) and the heavy chunk code twice in all
    (float32 and float64 lanes), cached on disk (``cache=True``; the drivers
    by :func:`._cache.cached_factory_kernel`).

GPU strategy
    One launch per tensor (per host slab when a host array is streamed); a
    block walks tiles of consecutive elements; each thread decodes its
    element, finds the bin by the same arithmetic guess followed by a walk
    over the float64 edges (binary search for arbitrary edges), and counts
    it into a shared-memory int32 histogram.  At the end each block adds its
    non-zero counters into the tensor's int64 row in global memory with
    atomics.  More than :data:`CUDA_SHARED_BINS` bins do not fit in shared
    memory and use global int64 atomics directly.  Many tensors are many
    launches into one (T, B + 5) device array copied back once; a packed
    pointer table (one launch for all tensors) would save the ~10 us launch
    overhead per tensor, worth it only for thousands of tiny tensors.
"""

from __future__ import annotations

import functools
import math

import numba
import numpy as np
from numba import prange

from . import _layout
from ._cache import cached_factory_kernel
from ._common import import_cuda
from ._common import (DECODE_BF16, DECODE_F16, DECODE_NATIVE, decode_bf16,
                      decode_bf16_f32, decode_f16, decode_f16_f32)
from ._parallel import serialised
from ._family import Family
from .reference import histogram as _reference

cuda = None     # numba.cuda once a GPU path runs (see _common.import_cuda)


def _import_cuda():
    return import_cuda(globals())


SCALES = ("linear", "log", "symlog")
# the out-of-range counters, in the order of the ``specials`` arrays
SPECIALS = ("underflow", "overflow", "nan", "posinf", "neginf")
MAX_BINS = 1 << 24

# Slots of the private count arrays: 0 underflow, 1..B the bins, then B+1
# overflow, B+2 NaN, B+3 +inf, B+4 -inf.  SLOTS_EXTRA = slots besides the bins.
SLOTS_EXTRA = 5

# How the CPU finds the bin (chosen per run by plan_bins).
MODE_LIN32 = 0    # linear arithmetic in float32 lanes (float32/bf16/fp16/small ints)
MODE_LIN64 = 1    # linear arithmetic in float64 lanes
MODE_LOG64 = 2    # log-uniform edges, float64 lanes
MODE_SYM64 = 3    # symlog-uniform edges, float64 lanes
MODE_SEARCH = 4   # binary search over arbitrary edges
MODE_NAMES = {MODE_LIN32: "linear/float32", MODE_LIN64: "linear/float64",
              MODE_LOG64: "log/float64", MODE_SYM64: "symlog/float64",
              MODE_SEARCH: "binary search"}

# Elements per CPU chunk (its slots stay in L1) and per flag block.
CPU_CHUNK = 2048
CPU_BLOCK = 64
# Elements per task at least, and tasks per thread at most.
CPU_MIN_TASK = 1 << 16
CPU_TASKS_PER_THREAD = 4
# Above this many slots one private histogram per task (memory) instead of two.
CPU_SUB_MAX_SLOTS = 1 << 15
# The arithmetic bin is trusted only when eps (in bins) stays below this.
MAX_EPS = 1.0 / 16.0
# Bound on the log approximation's error and non-monotonicity (natural-log
# units; measured < 1e-12 over the whole float64 range, see tests).
LN_DELTA = 1e-10

_LN2 = math.log(2.0)
_SQRT2 = math.sqrt(2.0)


# --------------------------------------------------------------------------
# Element helpers (CPU)
# --------------------------------------------------------------------------

@numba.njit(inline="always", cache=True, error_model="numpy")
def _lane32(raw, decode):
    # `decode` is a compile-time constant of every caller: one branch survives.
    if decode == DECODE_BF16:
        return decode_bf16_f32(raw)
    if decode == DECODE_F16:
        return decode_f16_f32(raw)
    return np.float32(raw)


@numba.njit(inline="always", cache=True, error_model="numpy")
def _lane64(raw, decode):
    if decode == DECODE_BF16:
        return decode_bf16(raw)
    if decode == DECODE_F16:
        return decode_f16(raw)
    return np.float64(raw)


@numba.njit(inline="always", cache=True, error_model="numpy")
def _ln(x):
    """Natural log of a positive normal float64, vectorisable (no libm call).

    x = 2**e * m with m in [sqrt(1/2), sqrt(2)); ln m = 2 atanh(z), z = (m-1)/(m+1),
    |z| < 0.172, series to z**13: absolute error below 1e-12.  Garbage (but no
    trap) for zero, negative, subnormal, inf or NaN input; callers never use it.
    """
    bits = np.float64(x).view(np.uint64)
    e = np.int64((bits >> np.uint64(52)) & np.uint64(0x7FF)) - 1023
    m = np.uint64((bits & np.uint64(0xFFFFFFFFFFFFF))
                  | np.uint64(0x3FF0000000000000)).view(np.float64)
    big = m > _SQRT2
    m = m * 0.5 if big else m
    e = e + 1 if big else e
    z = (m - 1.0) / (m + 1.0)
    z2 = z * z
    p = 1.0 / 13.0
    p = p * z2 + 1.0 / 11.0
    p = p * z2 + 1.0 / 9.0
    p = p * z2 + 1.0 / 7.0
    p = p * z2 + 1.0 / 5.0
    p = p * z2 + 1.0 / 3.0
    p = p * z2 + 1.0
    return np.float64(e) * _LN2 + 2.0 * z * p


# The arithmetic bin guess per mode.  p = (t0, s, c, inv_c, ln_c): the
# transformed e_0, bins per transformed unit, and the symlog constants.
@numba.njit(inline="always", cache=True, error_model="numpy")
def _guess_lin(x, p):
    return (x - p[0]) * p[1]


@numba.njit(inline="always", cache=True, error_model="numpy")
def _guess_log(x, p):
    return (_ln(x) - p[0]) * p[1]


@numba.njit(inline="always", cache=True, error_model="numpy")
def _guess_sym(x, p):
    # symlog T(v) = v / c inside [-c, c], sign(v) * (1 + ln(|v| / c)) outside
    ax = abs(x)
    t = ax * p[3] if ax <= p[2] else 1.0 + (_ln(ax) - p[4])
    t = -t if x < 0.0 else t
    return (t - p[0]) * p[1]


@numba.njit(inline="always", cache=True, error_model="numpy")
def _guess(mode, x, p):
    if mode == MODE_LOG64:
        return _guess_log(x, p)
    if mode == MODE_SYM64:
        return _guess_sym(x, p)
    return _guess_lin(x, p)


def walk(edges, nbins, k, x):
    """The bin of ``x`` (``edges[0] <= x <= edges[nbins]``), starting from guess ``k``."""
    while k > 0 and x < edges[k]:
        k -= 1
    while k < nbins - 1 and x >= edges[k + 1]:
        k += 1
    return k


def bsearch(edges, nbins, x):
    """The bin of ``x`` (``edges[0] <= x <= edges[nbins]``) by branch-free binary search.

    The last ``k`` in ``[0, nbins)`` with ``edges[k] <= x``; the last bin
    includes ``edges[nbins]`` because the search never looks past it.
    """
    base = 0
    n = nbins
    while n > 1:
        half = n >> 1
        base = base + half if edges[base + half] <= x else base
        n -= half
    return base


_walk = numba.njit(inline="always", cache=True)(walk)


# --------------------------------------------------------------------------
# CPU chunk passes (the elements arrive as float32 or float64 lanes)
# --------------------------------------------------------------------------

@numba.njit(inline="always", cache=True, error_model="numpy")
def _classify32(xs, slots, bmin, p, q):
    """Pass 1 in float32 lanes.

    q = (lo_thr, hi_thr, bm1, eps, s_over, s_nan, s_pinf, s_ninf, z_val, z_slot).
    A slot is the bin + 1, 0 underflow, B+1.. the specials; a flagged value
    gets minus (bin guess + 1).  bmin[b] < 0 marks blocks holding a flag.
    ``z_val`` (0.0 when 0 is an edge, else NaN) goes straight to ``z_slot``:
    exact zeros on a symmetric range -- pruned weights, ReLU outputs -- would
    otherwise all be flagged.  Everything is a select, so the loop vectorises.
    """
    zero = np.float32(0.0)
    one = np.float32(1.0)
    inf = np.float32(np.inf)
    lo_thr, hi_thr, bm1, eps, s_over, s_nan, s_pinf, s_ninf, z_val, z_slot = q
    half = np.float32(0.5)
    half_eps = half - eps
    m = xs.size
    nb = (m + CPU_BLOCK - 1) // CPU_BLOCK
    for b in range(nb):
        i0 = b * CPU_BLOCK
        xb = xs[i0: min(i0 + CPU_BLOCK, m)]
        sb = slots[i0: i0 + xb.size]
        acc = np.int32(0)
        for i in range(xb.size):
            x = np.float32(xb[i])
            g = (x - p[0]) * p[1]
            gc = g if g > zero else zero
            gc = gc if gc < bm1 else bm1
            kf = np.floor(gc)
            f = gc - kf
            sf = kf + one
            sf = -sf if abs(f - half) > half_eps else sf
            sf = z_slot if x == z_val else sf
            sf = zero if x < lo_thr else sf
            sf = s_over if x > hi_thr else sf
            sf = s_nan if x != x else sf
            sf = s_pinf if x == inf else sf
            sf = s_ninf if x == -inf else sf
            si = np.int32(sf)
            acc = si if si < acc else acc
            sb[i] = si
        bmin[b] = acc
    return nb


def _make_classify64(guess):
    """Pass 1 in float64 lanes for one guess function (linear, log or symlog); see _classify32.

    One loop per guess rather than a switch inside the loop, so each copy
    vectorises.
    """
    @numba.njit(inline="always", cache=True, error_model="numpy")
    def classify(xs, slots, bmin, p, q):
        zero = 0.0
        one = 1.0
        lo_thr, hi_thr, bm1, eps, s_over, s_nan, s_pinf, s_ninf, z_val, z_slot = q
        half_eps = 0.5 - eps
        m = xs.size
        nb = (m + CPU_BLOCK - 1) // CPU_BLOCK
        for b in range(nb):
            i0 = b * CPU_BLOCK
            xb = xs[i0: min(i0 + CPU_BLOCK, m)]
            sb = slots[i0: i0 + xb.size]
            acc = np.int32(0)
            for i in range(xb.size):
                x = np.float64(xb[i])
                g = guess(x, p)
                gc = g if g > zero else zero
                gc = gc if gc < bm1 else bm1
                kf = np.floor(gc)
                f = gc - kf
                sf = kf + one
                sf = -sf if abs(f - 0.5) > half_eps else sf
                sf = z_slot if x == z_val else sf
                sf = zero if x < lo_thr else sf
                sf = s_over if x > hi_thr else sf
                sf = s_nan if x != x else sf
                sf = s_pinf if x == np.inf else sf
                sf = s_ninf if x == -np.inf else sf
                si = np.int32(sf)
                acc = si if si < acc else acc
                sb[i] = si
            bmin[b] = acc
        return nb
    return classify


_classify_lin64 = _make_classify64(_guess_lin)
_classify_log64 = _make_classify64(_guess_log)
_classify_sym64 = _make_classify64(_guess_sym)


@numba.njit(inline="always", cache=True, error_model="numpy")
def _fix(xs, slots, bmin, nb, edges, nbins):
    """Pass 2: flagged values get their bin from the float64 edges (walk from the guess)."""
    m = slots.size
    for b in range(nb):
        if bmin[b] < 0:
            for i in range(b * CPU_BLOCK, min(b * CPU_BLOCK + CPU_BLOCK, m)):
                s = slots[i]
                if s < 0:
                    x = np.float64(xs[i])
                    slots[i] = np.int32(_walk(edges, nbins, np.int64(-s) - 1, x) + 1)


@numba.njit(inline="always", cache=True, error_model="numpy")
def _count(slots, cnt, nslots, nsub):
    """Pass 3: count the slots (unsigned indices: no negative-index wraparound code)."""
    m = slots.size
    if nsub == 2:
        c1 = cnt[nslots:]
        i = 0
        while i + 2 <= m:
            cnt[np.uint32(slots[i])] += 1
            c1[np.uint32(slots[i + 1])] += 1
            i += 2
        if i < m:
            cnt[np.uint32(slots[i])] += 1
    else:
        for i in range(m):
            cnt[np.uint32(slots[i])] += 1


@numba.njit(inline="always", cache=True, error_model="numpy")
def _search_count(xs, cnt, edges, nbins, table, p):
    """Arbitrary edges: classify and count each value (scalar, float64).

    ``table`` splits [e_0, e_B] into ``table.size - 1`` equal cells and holds
    the bin of every cell boundary, so a value's bin lies between the entries
    of its cell: a binary search over those few bins, then a walk that makes
    the answer exact whatever the cell arithmetic rounded to.
    p = (e_0, cells per unit, largest power of two below the widest cell's bin count).
    """
    steps = np.int64(p[2])
    e0 = edges[0]
    eb = edges[nbins]
    ncell = table.size - 1
    last = np.float64(ncell - 1)
    for i in range(xs.size):
        x = np.float64(xs[i])
        if x != x:
            s = nbins + 2
        elif x == np.inf:
            s = nbins + 3
        elif x == -np.inf:
            s = nbins + 4
        elif x < e0:
            s = 0
        elif x > eb:
            s = nbins + 1
        else:
            g = (x - p[0]) * p[1]
            g = g if g > 0.0 else 0.0
            g = g if g < last else last
            cell = np.int64(g)
            base = table[cell]
            top = table[cell + 1]
            # fixed trip count (the widest cell's): no mispredicted loop exits
            half = steps
            while half > 0:
                cand = min(base + half, top)
                base = cand if edges[cand] <= x else base
                half >>= 1
            s = _walk(edges, nbins, base, x) + 1
        cnt[np.uint32(s)] += 1


@numba.njit(cache=True, error_model="numpy")
def _chunk(xs, mode, slots, bmin, cnt, nslots, nsub, edges, nbins, table, p32, q32, p64, q64):
    """The three passes over one chunk of float32 or float64 lanes.

    Not inlined into the parallel drivers: they stay small (Numba's parfor
    passes are the bulk of the compile time), and this, the heavy code,
    compiles twice in all (float32 and float64 lanes) whatever the dtypes.
    """
    if mode == MODE_SEARCH:
        _search_count(xs, cnt, edges, nbins, table, p64)
        return
    m = xs.size
    if mode == MODE_LIN32:
        nb = _classify32(xs, slots, bmin, p32, q32)
    elif mode == MODE_LOG64:
        nb = _classify_log64(xs, slots, bmin, p64, q64)
    elif mode == MODE_SYM64:
        nb = _classify_sym64(xs, slots, bmin, p64, q64)
    else:
        nb = _classify_lin64(xs, slots, bmin, p64, q64)
    _fix(xs, slots[:m], bmin, nb, edges, nbins)
    _count(slots[:m], cnt, nslots, nsub)


# --------------------------------------------------------------------------
# min / max pass
# --------------------------------------------------------------------------

# Finite min/max as reductions over order-preserving integer keys: the float
# bits with the magnitude bits flipped for negative numbers sort like the
# floats, integer min/max reductions vectorise without fast-math, and a key
# is made a sentinel for NaN/inf by an integer test on the exponent bits.
_K32_NONE_LO = np.int64(0x7FFFFFFF)
_K32_NONE_HI = np.int64(-0x80000000)
_K64_NONE_LO = np.int64(0x7FFFFFFFFFFFFFFF)
_K64_NONE_HI = np.int64(-0x8000000000000000)


@numba.njit(cache=True, error_model="numpy")
def _mm_chunk32(xs, acc):
    none_lo = np.int32(0x7FFFFFFF)
    none_hi = np.int32(-0x80000000)
    expo = np.int32(0x7F800000)
    mag = np.int32(0x7FFFFFFF)
    lo = np.int32(acc[0])
    hi = np.int32(acc[1])
    lp = np.int32(acc[2])
    for i in range(xs.size):
        b = np.float32(xs[i]).view(np.int32)
        fin = (b & expo) != expo
        k = b ^ ((b >> np.int32(31)) & mag)
        lo = min(lo, k if fin else none_lo)
        hi = max(hi, k if fin else none_hi)
        lp = min(lp, b if fin & (b > np.int32(0)) else none_lo)
    acc[0] = lo
    acc[1] = hi
    acc[2] = lp


@numba.njit(cache=True, error_model="numpy")
def _mm_chunk64(xs, acc):
    none_lo = np.int64(0x7FFFFFFFFFFFFFFF)
    none_hi = np.int64(-0x8000000000000000)
    expo = np.int64(0x7FF0000000000000)
    mag = np.int64(0x7FFFFFFFFFFFFFFF)
    lo = acc[0]
    hi = acc[1]
    lp = acc[2]
    for i in range(xs.size):
        b = np.float64(xs[i]).view(np.int64)
        fin = (b & expo) != expo
        k = b ^ ((b >> np.int64(63)) & mag)
        lo = min(lo, k if fin else none_lo)
        hi = max(hi, k if fin else none_hi)
        lp = min(lp, b if fin & (b > np.int64(0)) else none_lo)
    acc[0] = lo
    acc[1] = hi
    acc[2] = lp


def _unkey(keys: np.ndarray, lane32: bool, none) -> float:
    """The float of an order-preserving key (see _mm_chunk32), ``none`` for the sentinel."""
    k = int(keys)
    if lane32:
        if k in (int(_K32_NONE_LO), int(_K32_NONE_HI)):
            return none
        k32 = np.int32(k)
        b = k32 ^ ((k32 >> np.int32(31)) & np.int32(0x7FFFFFFF))
        return float(np.array([b], np.int32).view(np.float32)[0])
    if k in (int(_K64_NONE_LO), int(_K64_NONE_HI)):
        return none
    k64 = np.int64(k)
    b = k64 ^ ((k64 >> np.int64(63)) & np.int64(0x7FFFFFFFFFFFFFFF))
    return float(np.array([b], np.int64).view(np.float64)[0])


# --------------------------------------------------------------------------
# CPU drivers: one per (decoding, lane width, read in place?)
# --------------------------------------------------------------------------

@numba.njit(inline="always", cache=True, error_model="numpy")
def _gather(flat, offset, oax, iax, n_in, pos, b, out, s0, dec, lane32):
    """Decode elements pos.. (across outer rows) into out[s0:], up to a chunk.

    Returns (elements gathered, new pos).  ``dec`` and ``lane32`` are
    constants of the caller, so only one decoding survives compilation.
    """
    t1, k2, t2, k3, t3 = iax
    fill = 0
    while pos < b and fill < CPU_CHUNK:
        r = pos // n_in
        c = pos - r * n_in
        take = min(n_in - c, b - pos, CPU_CHUNK - fill)
        base = offset + _layout.axis_offset(oax, r)
        dst = out[s0 + fill: s0 + fill + take]
        if k2 == 1 and k3 == 1 and t1 == 1:
            src = flat[base + c: base + c + take]
            if lane32:
                for j in range(take):
                    dst[j] = _lane32(src[j], dec)
            else:
                for j in range(take):
                    dst[j] = _lane64(src[j], dec)
        else:
            for j in range(take):
                a = base + _layout.axis_offset(iax, c + j)
                dst[j] = _lane32(flat[a], dec) if lane32 else _lane64(flat[a], dec)
        fill += take
        pos += take
    return fill, pos


@functools.lru_cache(maxsize=None)
def _drivers(DEC: int, LANE32: bool, IN_PLACE: bool):
    """The parallel histogram and min/max drivers for one kind of input.

    ``IN_PLACE``: the buffer already holds the lanes (float32 or float64, no
    decoding), so unit-stride runs are read where they lie.  Otherwise --
    16-bit floats, integers, bool, and any non-unit-stride walk -- elements
    are gathered a chunk at a time into the task's small lane buffer,
    decoding on the way: memory stays O(threads x chunk), never a copy of the
    tensor.  ``scratch_w`` / ``scratch_r`` are a writable and a read-only
    view of the same per-task buffers, so the chunk code sees read-only lane
    arrays only and compiles once per lane width.
    """
    # One parallel function for both passes: each parfor costs seconds to
    # compile.  Cached on disk by cached_factory_kernel (Numba's own
    # cache=True would key it by the closure's ints and bools alone, blind to
    # changes in the helpers it calls, and let two combinations of the same
    # signature share machine-code symbol names).
    @numba.njit(parallel=True, error_model="numpy")
    def run(op, flat, scratch_w, scratch_r, offset, oax, iax, n_in, total, ntasks, contiguous,
            mode, edges, nbins, nsub, table, p32, q32, p64, q64, out):
        """op 0: count ``total`` elements (outer x inner) into out[task, slot];
        op 1: out[task, :3] = integer keys of (finite min, finite max,
        smallest finite value > 0)."""
        nslots = nbins + SLOTS_EXTRA
        step = (total + ntasks - 1) // ntasks
        for t in prange(ntasks):
            a = min(t * step, total)
            b = min(a + step, total)
            cnt = np.zeros(nsub * nslots if op == 0 else 0, np.int32)
            slots = np.empty(CPU_CHUNK, np.int32)
            bmin = np.empty(CPU_CHUNK // CPU_BLOCK + 1, np.int32)
            acc = np.empty(3, np.int64)
            acc[0] = _K32_NONE_LO if LANE32 else _K64_NONE_LO
            acc[1] = _K32_NONE_HI if LANE32 else _K64_NONE_HI
            acc[2] = acc[0]
            s0 = t * CPU_CHUNK
            pos = a
            while pos < b:
                if IN_PLACE:
                    if contiguous:
                        r = pos // n_in
                        c = pos - r * n_in
                        take = min(n_in - c, b - pos, CPU_CHUNK)
                        base = offset + _layout.axis_offset(oax, r) + c
                        xs = flat[base: base + take]
                        pos += take
                    else:
                        fill, pos = _gather(flat, offset, oax, iax, n_in, pos, b, scratch_w, s0,
                                            DEC, LANE32)
                        xs = scratch_r[s0: s0 + fill]
                else:
                    fill, pos = _gather(flat, offset, oax, iax, n_in, pos, b, scratch_w, s0,
                                        DEC, LANE32)
                    xs = scratch_r[s0: s0 + fill]
                if op == 0:
                    _chunk(xs, mode, slots, bmin, cnt, nslots, nsub, edges, nbins, table,
                           p32, q32, p64, q64)
                elif LANE32:
                    _mm_chunk32(xs, acc)
                else:
                    _mm_chunk64(xs, acc)
            if op == 0:
                for j in range(nslots):
                    v = np.int64(cnt[j])
                    if nsub == 2:
                        v += cnt[nslots + j]
                    out[t, j] = v
            else:
                out[t, 0] = acc[0]
                out[t, 1] = acc[1]
                out[t, 2] = acc[2]

    return serialised(cached_factory_kernel(run, DEC, LANE32, IN_PLACE))


# --------------------------------------------------------------------------
# Host-side planning
# --------------------------------------------------------------------------

def _runs(axis: _layout.Axis) -> list:
    k = axis.k2 * axis.k3
    return [(axis.n // k if k else 0, axis.t1), (axis.k2, axis.t2), (axis.k3, axis.t3)]


def _axis_of(runs: list) -> _layout.Axis:
    """An Axis over 0-3 (size, stride) runs, outermost first."""
    runs = list(runs)
    if not runs:
        return _layout.Axis(n=1, t1=0)
    while len(runs) < 3:
        runs.append((1, 0))
    (n1, t1), (k2, t2), (k3, t3) = runs
    return _layout.Axis(n=n1 * k2 * k3, t1=t1, k2=k2, t2=t2, k3=k3, t3=t3)


def normalise(offset: int, rows: _layout.Axis, cols: _layout.Axis):
    """The cheapest walk over the elements of a (rows x cols) matrix.

    Returns ``(offset, outer, inner)``: element ``i`` of the walk is
    ``offset + outer.offsets(i // inner.n) + inner.offsets(i % inner.n)``.
    Negative strides are flipped, the runs sorted by stride (largest outside)
    and merged where one continues another, so a contiguous tensor of any
    shape becomes one unit-stride inner run.  The same elements are visited
    (in another order), which is all a histogram needs.  Views with more
    separate runs than an Axis holds keep their original maps.
    """
    total = rows.n * cols.n
    runs = [(int(n), int(t)) for n, t in _runs(rows) + _runs(cols) if int(n) != 1]
    flat_offset = int(offset)
    flipped = []
    for n, t in runs:
        if t < 0:
            flat_offset += (n - 1) * t
            t = -t
        flipped.append((n, t))
    flipped.sort(key=lambda r: -r[1])  # stable: equal strides keep their order
    merged: list = []
    for n, t in flipped:
        if merged and merged[-1][1] == n * t:
            merged[-1] = (merged[-1][0] * n, t)
        else:
            merged.append((n, t))
    if not merged:
        return flat_offset, _layout.Axis(n=1, t1=0), _layout.Axis(n=max(total, 1), t1=1)
    if len(merged) - 1 > 3:
        return int(offset), rows, cols
    return flat_offset, _axis_of(merged[:-1]), _layout.Axis(n=merged[-1][0], t1=merged[-1][1])


def _axis_tuple(axis: _layout.Axis) -> tuple:
    return (np.int64(axis.t1), np.int64(axis.k2), np.int64(axis.t2),
            np.int64(axis.k3), np.int64(axis.t3))


def _ceil32(e: np.ndarray) -> np.ndarray:
    """Smallest float32 >= each float64 (inf above the float32 range)."""
    with np.errstate(over="ignore"):
        f = np.asarray(e, np.float64).astype(np.float32)
    low = f.astype(np.float64) < e
    f[low] = np.nextafter(f[low], np.float32(np.inf))
    return f


def _floor32(e: np.ndarray) -> np.ndarray:
    """Largest float32 <= each float64 (-inf below the float32 range)."""
    with np.errstate(over="ignore"):
        f = np.asarray(e, np.float64).astype(np.float32)
    high = f.astype(np.float64) > e
    f[high] = np.nextafter(f[high], np.float32(-np.inf))
    return f


@numba.njit(cache=True, error_model="numpy")
def _stray32(t, below, p):
    # max over inner edges j of how far g strays past j on the wrong side
    worst = 0.0
    nb = t.size - 1
    for j in range(1, nb):
        a = np.float64(j) - np.float64((t[j] - p[0]) * p[1])
        c = np.float64((below[j] - p[0]) * p[1]) - np.float64(j)
        if not (a < 1e300 and c < 1e300):   # NaN or inf: unusable
            return np.inf
        worst = max(worst, a, c)
    return worst


@numba.njit(cache=True, error_model="numpy")
def _stray64(mode, t, below, p):
    worst = 0.0
    nb = t.size - 1
    for j in range(1, nb):
        a = np.float64(j) - _guess(mode, t[j], p)
        c = _guess(mode, below[j], p) - np.float64(j)
        if not (a < 1e300 and c < 1e300):
            return np.inf
        worst = max(worst, a, c)
    return worst


def symlog_forward(v, linthresh):
    """The symlog transform: ``v / c`` inside ``[-c, c]``, ``sign(v) (1 + ln(|v| / c))`` outside.

    Continuous with a continuous slope at ``|v| = c``; ``c = linthresh``.
    """
    v = np.asarray(v, np.float64)
    a = np.abs(v)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(a <= linthresh, a / linthresh, 1.0 + np.log(a / linthresh))
    return np.copysign(out, v)


def symlog_inverse(t, linthresh):
    """Inverse of :func:`symlog_forward`."""
    t = np.asarray(t, np.float64)
    a = np.abs(t)
    with np.errstate(over="ignore"):
        out = np.where(a <= 1.0, a * linthresh, linthresh * np.exp(a - 1.0))
    return np.copysign(out, t)


class BinPlan:
    """How one set of edges is looked up (see :func:`plan_bins`)."""

    __slots__ = ("edges", "nbins", "mode", "eps", "p32", "q32", "p64", "q64", "scale",
                 "linthresh", "guess_mode", "table")

    def __repr__(self):
        return (f"BinPlan({self.nbins} bins, {MODE_NAMES[self.mode]}, eps={self.eps:.3g})")


def _guess_params(edges, scale, linthresh):
    """(guess mode for float64 lanes, (t0, s, c, inv_c, ln_c)) or None when not applicable."""
    nb = edges.size - 1
    e0, eb = float(edges[0]), float(edges[-1])
    if scale == "log":
        if not e0 > 0:
            return None
        t0, tb = math.log(e0), math.log(eb)
        return MODE_LOG64, (t0, nb / (tb - t0), 1.0, 1.0, 0.0)
    if scale == "symlog":
        # the same default as dv.histogram's, for callers that pass none
        c = float(linthresh) if linthresh is not None else 1e-3 * max(abs(e0), abs(eb))
        t0, tb = (float(x) for x in symlog_forward([e0, eb], c))
        return MODE_SYM64, (t0, nb / (tb - t0), c, 1.0 / c, math.log(c))
    return MODE_LIN64, (e0, nb / (eb - e0), 1.0, 1.0, 0.0)


def plan_bins(edges, scale: str = "linear", linthresh=None, allow32: bool = False) -> BinPlan:
    """Choose how values find their bin for ``edges``, and prove the choice exact.

    Parameters
    ----------
    edges : (B + 1,) float64 array
        Strictly increasing finite edges.
    scale : {"linear", "log", "symlog"}
        The spacing the edges were made with (a hint: any edges are exact).
    linthresh : float, optional
        The symlog linear threshold (needed for ``scale="symlog"``).
    allow32 : bool
        The input's values are exact in float32 (float32, bfloat16, float16,
        8/16-bit integers, bool): try float32 lanes first.

    Returns
    -------
    BinPlan
        ``mode`` (one of the ``MODE_*``), ``eps`` and the lane parameters.
    """
    edges = np.ascontiguousarray(edges, np.float64)
    nb = edges.size - 1
    plan = BinPlan()
    plan.edges = edges
    plan.nbins = nb
    plan.scale = scale
    plan.linthresh = linthresh
    slots = (nb + 1, nb + 2, nb + 3, nb + 4)
    lin = _guess_params(edges, "linear", None)
    own = _guess_params(edges, scale, linthresh)
    candidates = []
    if allow32 and nb + SLOTS_EXTRA < (1 << 22):
        candidates.append((MODE_LIN32, lin))
    if own is not None:
        candidates.append((own[0], own))
    if scale != "linear":
        candidates.append((MODE_LIN64, lin))
    elif edges[0] > 0:
        # explicit edges that happen to be log-spaced
        candidates.append((MODE_LOG64, _guess_params(edges, "log", None)))
    plan.guess_mode = own[0] if own is not None else MODE_LIN64
    for mode, g in candidates:
        params = g[1]
        if not all(math.isfinite(v) for v in params) or not params[1] > 0:
            continue
        if mode == MODE_LIN32:
            t = _ceil32(edges)
            with np.errstate(over="ignore"):    # -max -> -inf: _stray32 then refuses it
                below = np.nextafter(t, np.float32(-np.inf))
            p32 = tuple(np.float32(v) for v in params)
            worst = _stray32(t, below, p32)
            floor_eps = 2.0 ** -20
            delta = 0.0
        else:
            t = edges
            below = np.nextafter(edges, -np.inf)
            worst = _stray64(mode, t, below, params)
            floor_eps = 2.0 ** -40
            delta = 0.0 if mode == MODE_LIN64 else params[1] * LN_DELTA
        eps = 2.0 * worst + delta + floor_eps
        if not eps <= MAX_EPS:
            continue
        plan.mode = mode
        plan.eps = eps
        plan.table = np.zeros(2, np.int64)
        # 0.0 exactly an edge: its slot (the bin it starts, or the last bin)
        zj = np.flatnonzero(edges == 0.0)
        z_val, z_slot = (0.0, float(min(zj[0], nb - 1) + 1)) if zj.size else (math.nan, 0.0)
        if mode == MODE_LIN32:
            plan.p32 = p32
            plan.q32 = (_ceil32(edges[:1])[0], _floor32(edges[-1:])[0], np.float32(nb - 1),
                        np.float32(eps) if np.float32(eps) >= eps else
                        np.nextafter(np.float32(eps), np.float32(1)),
                        *(np.float32(s) for s in slots), np.float32(z_val), np.float32(z_slot))
            plan.p64 = (0.0, 1.0, 1.0, 1.0, 0.0)
            plan.q64 = (0.0,) * 8 + (math.nan, 0.0)
        else:
            plan.p32 = (np.float32(0),) * 5
            plan.q32 = (np.float32(0),) * 8 + (np.float32(np.nan), np.float32(0))
            plan.p64 = tuple(float(v) for v in params)
            plan.q64 = (float(edges[0]), float(edges[-1]), float(nb - 1), eps,
                        *(float(s) for s in slots), z_val, z_slot)
        return plan
    plan.mode = MODE_SEARCH
    plan.eps = math.nan
    plan.p32 = (np.float32(0),) * 5
    plan.q32 = (np.float32(0),) * 8 + (np.float32(np.nan), np.float32(0))
    plan.q64 = (0.0,) * 8 + (math.nan, 0.0)
    # the cell table of _search_count: 4 cells per bin (at most 2**20)
    ncell = int(min(max(4 * nb, 64), 1 << 20))
    e0, eb = float(edges[0]), float(edges[-1])
    per = ncell / (eb - e0)
    if not (math.isfinite(per) and per > 0):
        ncell, per = 1, 0.0
    bounds = e0 + np.arange(ncell + 1) / per if per > 0 else np.array([e0, eb])
    plan.table = np.clip(np.searchsorted(edges, bounds, side="right") - 1, 0, nb - 1
                         ).astype(np.int64)
    widest = int(np.diff(plan.table).max()) if plan.table.size > 1 else 0
    top = 1 << max(widest.bit_length() - 1, 0) if widest > 0 else 0
    plan.p64 = (e0, per, float(top), 1.0, 0.0)
    return plan


@functools.lru_cache(maxsize=None)
def _dummy_plan():
    """Plan arguments for a min/max run of the shared driver (unused there)."""
    return plan_bins(np.array([0.0, 1.0]))


def _allow32(dtype: np.dtype, decode: int) -> bool:
    if decode in (DECODE_BF16, DECODE_F16):
        return True
    dtype = np.dtype(dtype)
    return dtype == np.float32 or (dtype.kind in "iub" and dtype.itemsize <= 2)


def _ntasks(total: int, nslots: int) -> int:
    threads = numba.get_num_threads()
    per = CPU_TASKS_PER_THREAD if nslots <= CPU_SUB_MAX_SLOTS else 1
    n = min(max(1, total // CPU_MIN_TASK), per * threads)
    # int32 private counters: at most 2**30 elements per task
    return max(n, -(-total // (1 << 30)), 1)


def _readonly(a: np.ndarray) -> np.ndarray:
    if not a.flags.writeable:
        return a
    v = a.view()
    v.flags.writeable = False
    return v


def _kind(buffer: np.ndarray, decode: int) -> tuple:
    """(decoding, float32 lanes?, lanes read in place?) for a buffer: the driver key."""
    lane32 = _allow32(buffer.dtype, decode)
    in_place = decode == DECODE_NATIVE and buffer.dtype in (np.float32, np.float64)
    return int(decode), bool(lane32), bool(in_place)


def _buffers(buffer: np.ndarray, decode: int, ntasks: int):
    """(read-only flat buffer, per-task lane scratch writable, the same read-only)."""
    if buffer.ndim != 1:
        raise ValueError(f"buffer: expected a flat 1-D array; got shape {buffer.shape}")
    lane = np.float32 if _allow32(buffer.dtype, decode) else np.float64
    scratch = np.empty(ntasks * CPU_CHUNK, lane)
    return _readonly(buffer), scratch, _readonly(scratch)


def check_edges(edges) -> np.ndarray:
    """Edges as a contiguous float64 array; ValueError unless 1-D, >= 2, finite, increasing."""
    e = np.ascontiguousarray(edges, dtype=np.float64)
    if e.ndim != 1 or e.size < 2:
        raise ValueError(f"edges: expected a 1-D array of at least 2 edges; got shape {e.shape}")
    if e.size - 1 > MAX_BINS:
        raise ValueError(f"edges: expected at most {MAX_BINS} bins; got {e.size - 1}")
    if not np.isfinite(e).all():
        raise ValueError("edges: expected finite values; got NaN or inf")
    if not (np.diff(e) > 0).all():
        raise ValueError("edges: expected strictly increasing values")
    return e


def _specials(row: np.ndarray, nbins: int) -> np.ndarray:
    return np.array([row[0], row[nbins + 1], row[nbins + 2], row[nbins + 3], row[nbins + 4]],
                    np.int64)


def histogram_cpu(buffer, offset, rows, cols, edges, scale="linear", linthresh=None,
                  decode=DECODE_NATIVE, plan=None):
    """Exact histogram of a strided tensor, on the CPU.

    Parameters
    ----------
    buffer : (L,) ndarray
        Flat host buffer holding every element (raw uint16 bits for bf16/fp16).
    offset : int
        Element index in ``buffer`` of logical element (0, 0).
    rows, cols : _layout.Axis
        Address maps of the logical row and column axes (any layout: only
        the set of elements matters).
    edges : (B + 1,) float64 array
        Strictly increasing finite edges.
    scale : {"linear", "log", "symlog"}
        How the edges are spaced (the arithmetic bin guess; exact either way).
    linthresh : float, optional
        Linear threshold of symlog edges.
    decode : int
        ``DECODE_NATIVE``, ``DECODE_BF16`` or ``DECODE_F16``.
    plan : BinPlan, optional
        A :func:`plan_bins` result for these edges, to skip planning.

    Returns
    -------
    counts : (B,) int64 ndarray
    specials : (5,) int64 ndarray
        underflow, overflow, NaN, +inf, -inf (:data:`SPECIALS`).
    """
    edges = check_edges(edges)
    nb = edges.size - 1
    nslots = nb + SLOTS_EXTRA
    allow32 = _allow32(buffer.dtype, decode)
    if plan is None or (plan.mode == MODE_LIN32 and not allow32):
        # (a float32-lane plan is only valid for inputs exact in float32)
        plan = plan_bins(edges, scale, linthresh, allow32)
    total = int(rows.n) * int(cols.n)
    if total == 0:
        return np.zeros(nb, np.int64), np.zeros(5, np.int64)
    off, outer, inner = normalise(offset, rows, cols)
    contiguous = inner.simple and inner.t1 == 1
    ntasks = _ntasks(total, nslots)
    nsub = 2 if nslots <= CPU_SUB_MAX_SLOTS else 1
    out = np.empty((ntasks, nslots), np.int64)
    run = _drivers(*_kind(buffer, decode))
    flat, scratch_w, scratch_r = _buffers(buffer, decode, ntasks)
    run(0, flat, scratch_w, scratch_r, np.int64(off), _axis_tuple(outer), _axis_tuple(inner),
         np.int64(inner.n), np.int64(total), np.int64(ntasks), contiguous, np.int64(plan.mode),
         plan.edges, np.int64(nb), np.int64(nsub), plan.table, plan.p32, plan.q32, plan.p64,
         plan.q64, out)
    row = out.sum(axis=0)
    return row[1:nb + 1].copy(), _specials(row, nb)


def histogram_many_cpu(items, edges, scale="linear", linthresh=None):
    """Histograms of many tensors in one call, on the CPU.

    The tensors run one after another, each with every thread (a tensor is
    rarely so small that this matters; the per-tensor overhead is tens of
    microseconds).

    Parameters
    ----------
    items : sequence of (buffer, offset, rows, cols, decode)
        One entry per tensor, as for :func:`histogram_cpu`.
    edges : (B + 1,) or (T, B + 1) float64 array
        Shared edges, or one row of edges per tensor.
    scale, linthresh
        As for :func:`histogram_cpu`.

    Returns
    -------
    counts : (T, B) int64 ndarray
    specials : (T, 5) int64 ndarray
    """
    items = list(items)
    edges = np.asarray(edges, np.float64)
    rows_of_edges = edges.ndim == 2
    nb = edges.shape[-1] - 1
    counts = np.zeros((len(items), nb), np.int64)
    specials = np.zeros((len(items), 5), np.int64)
    plans: dict = {}
    for i, (buf, off, r, c, dec) in enumerate(items):
        e = edges[i] if rows_of_edges else edges
        key = (i if rows_of_edges else -1, _allow32(buf.dtype, dec))
        if key not in plans:
            plans[key] = plan_bins(check_edges(e), scale, linthresh, key[1])
        counts[i], specials[i] = histogram_cpu(buf, off, r, c, e, scale, linthresh, dec,
                                               plan=plans[key])
    return counts, specials


def minmax_cpu(buffer, offset, rows, cols, decode=DECODE_NATIVE):
    """Exact minimum and maximum of the finite values, and the smallest positive one.

    Returns
    -------
    (min, max, min_positive) : tuple of float
        ``(inf, -inf, inf)`` when the tensor holds no finite value; ``min_positive``
        is ``inf`` when it holds no finite value > 0.
    """
    total = int(rows.n) * int(cols.n)
    if total == 0:
        return math.inf, -math.inf, math.inf
    off, outer, inner = normalise(offset, rows, cols)
    contiguous = inner.simple and inner.t1 == 1
    ntasks = _ntasks(total, 0)
    out = np.empty((ntasks, 3), np.int64)
    dec, lane32, in_place = _kind(buffer, decode)
    run = _drivers(dec, lane32, in_place)
    flat, scratch_w, scratch_r = _buffers(buffer, decode, ntasks)
    p = _dummy_plan()
    run(1, flat, scratch_w, scratch_r, np.int64(off), _axis_tuple(outer), _axis_tuple(inner),
        np.int64(inner.n), np.int64(total), np.int64(ntasks), contiguous, np.int64(p.mode),
        p.edges, np.int64(p.nbins), np.int64(1), p.table, p.p32, p.q32, p.p64, p.q64, out)
    # keys compare like the floats; sentinels lose every comparison they should
    return (_unkey(out[:, 0].min(), lane32, math.inf), _unkey(out[:, 1].max(), lane32, -math.inf),
            _unkey(out[:, 2].min(), lane32, math.inf))


# --------------------------------------------------------------------------
# CUDA
# --------------------------------------------------------------------------

# Threads per block, and elements per block per tile (each thread TILE / BLOCK,
# with one 64-bit division per tile).
CUDA_BLOCK = 256
CUDA_TILE = 8192
# Bins (+ the 5 special slots) a block keeps in shared memory as int32: 48 KiB.
CUDA_SHARED_BINS = 12288
# Host data goes to the GPU in slabs of at most this many bytes.
CUDA_STREAM_BYTES = 256 << 20
# Guess modes on the GPU (float64 everywhere; the edge walk makes it exact).
GPU_LIN, GPU_LOG, GPU_SYM, GPU_SEARCH = 0, 1, 2, 3


def _cuda_block() -> int:
    # The simulator runs each thread as a Python thread: keep blocks small there.
    return 32 if numba.config.ENABLE_CUDASIM else CUDA_BLOCK


@functools.lru_cache(maxsize=None)
def _cuda_helpers(decode: int):
    """Device functions for one element decoding (memoised)."""
    _import_cuda()

    from ._common import cuda_decoder, cuda_device

    dec = cuda_decoder(decode)

    axis_off = cuda_device(_layout.cell_offset.py_func)

    return dec, axis_off


@functools.lru_cache(maxsize=None)
def cuda_hist_kernel(decode: int, shared: bool):
    """Memoised CUDA histogram kernel for one element decoding, shared or global counters."""
    _import_cuda()
    from ._common import cuda_device

    dec, axis_off = _cuda_helpers(decode)
    walk_d = cuda_device(walk)
    bsearch_d = cuda_device(bsearch)
    i32 = numba.int32
    i64 = numba.int64
    SHARED = shared
    TILE = CUDA_TILE

    def _slot(x, edges, nbins, gmode, t0, s, c, lnc):
        if x != x:
            return nbins + 2
        if x == math.inf:
            return nbins + 3
        if x == -math.inf:
            return nbins + 4
        if x < edges[0]:
            return 0
        if x > edges[nbins]:
            return nbins + 1
        if gmode == GPU_SEARCH:
            return bsearch_d(edges, nbins, x) + 1
        if gmode == GPU_LOG:
            t = math.log(x)
        elif gmode == GPU_SYM:
            ax = abs(x)
            t = ax / c if ax <= c else 1.0 + (math.log(ax) - lnc)
            t = -t if x < 0.0 else t
        else:
            t = x
        g = (t - t0) * s
        k = 0
        if g >= nbins - 1:
            k = nbins - 1
        elif g > 0.0:
            k = int(g)
        return walk_d(edges, nbins, k, x) + 1
    slot_of = cuda_device(_slot)

    @cuda.jit
    def kernel(flat, offset, oax, iax, n_in, start, stop, edges, nbins, gmode, t0, s, c, lnc,
               counts, row):
        nslots = nbins + 5
        tid = cuda.threadIdx.x
        nthr = cuda.blockDim.x
        sh = cuda.shared.array(0, i32)
        if SHARED:
            for k in range(tid, nslots, nthr):
                sh[k] = 0
            cuda.syncthreads()
        n = stop - start
        ntiles = (n + TILE - 1) // TILE
        for tile in range(cuda.blockIdx.x, ntiles, cuda.gridDim.x):
            i0 = start + tile * TILE
            i1 = min(i0 + TILE, stop)
            i = i0 + tid
            if i < i1:
                # (outer row, inner cell) of the thread's element: one division
                # per tile, then stepped (a warp reads consecutive elements)
                r = i // n_in
                j = i - r * n_in
                ro = offset + axis_off(oax[0], oax[1], oax[2], oax[3], oax[4], r)
                while True:
                    x = dec(flat[ro + axis_off(iax[0], iax[1], iax[2], iax[3], iax[4], j)])
                    sl = slot_of(x, edges, nbins, gmode, t0, s, c, lnc)
                    if SHARED:
                        cuda.atomic.add(sh, sl, i32(1))
                    else:
                        cuda.atomic.add(counts, (row, sl), i64(1))
                    i += nthr
                    if i >= i1:
                        break
                    j += nthr
                    if j >= n_in:
                        if n_in >= nthr:
                            j -= n_in
                            r += 1
                        else:
                            r = i // n_in
                            j = i - r * n_in
                        ro = offset + axis_off(oax[0], oax[1], oax[2], oax[3], oax[4], r)
        if SHARED:
            cuda.syncthreads()
            for k in range(tid, nslots, nthr):
                v = sh[k]
                if v != 0:
                    cuda.atomic.add(counts, (row, k), i64(v))

    return kernel


@functools.lru_cache(maxsize=None)
def cuda_minmax_kernel(decode: int):
    """Memoised CUDA min/max kernel for one element decoding."""
    _import_cuda()
    dec, axis_off = _cuda_helpers(decode)
    f64 = numba.float64
    TILE = CUDA_TILE

    @cuda.jit
    def kernel(flat, offset, oax, iax, n_in, start, stop, res):
        # res = (min, max, min_positive) in float64, reduced by atomics
        sh = cuda.shared.array(3, f64)
        tid = cuda.threadIdx.x
        nthr = cuda.blockDim.x
        if tid == 0:
            sh[0] = math.inf
            sh[1] = -math.inf
            sh[2] = math.inf
        cuda.syncthreads()
        lo = math.inf
        hi = -math.inf
        lp = math.inf
        n = stop - start
        ntiles = (n + TILE - 1) // TILE
        for tile in range(cuda.blockIdx.x, ntiles, cuda.gridDim.x):
            i0 = start + tile * TILE
            i1 = min(i0 + TILE, stop)
            i = i0 + tid
            if i < i1:
                r = i // n_in
                j = i - r * n_in
                ro = offset + axis_off(oax[0], oax[1], oax[2], oax[3], oax[4], r)
                while True:
                    x = dec(flat[ro + axis_off(iax[0], iax[1], iax[2], iax[3], iax[4], j)])
                    if math.isfinite(x):
                        lo = min(lo, x)
                        hi = max(hi, x)
                        if x > 0.0:
                            lp = min(lp, x)
                    i += nthr
                    if i >= i1:
                        break
                    j += nthr
                    if j >= n_in:
                        if n_in >= nthr:
                            j -= n_in
                            r += 1
                        else:
                            r = i // n_in
                            j = i - r * n_in
                        ro = offset + axis_off(oax[0], oax[1], oax[2], oax[3], oax[4], r)
        if lo <= hi:
            cuda.atomic.min(sh, 0, lo)
            cuda.atomic.max(sh, 1, hi)
        if lp < math.inf:
            cuda.atomic.min(sh, 2, lp)
        cuda.syncthreads()
        if tid == 0:
            cuda.atomic.min(res, 0, sh[0])
            cuda.atomic.max(res, 1, sh[1])
            cuda.atomic.min(res, 2, sh[2])

    return kernel


def _grid(n: int) -> int:
    tiles = max(1, -(-n // CUDA_TILE))
    if numba.config.ENABLE_CUDASIM:
        return min(tiles, 2)
    try:
        sms = cuda.get_current_device().MULTIPROCESSOR_COUNT
    except Exception:  # pragma: no cover - no device attribute
        sms = 80
    # int32 shared counters: keep each block under 2**30 elements
    return max(min(tiles, sms * 8), -(-n // (1 << 30)))


def _monotone(outer: _layout.Axis, inner: _layout.Axis) -> bool:
    """Addresses never decrease along the walk (normalised, non-overlapping runs)."""
    runs = [(n, t) for n, t in _runs(outer) + _runs(inner) if n != 1]
    ext = 0
    for n, t in reversed(runs):
        if t < 0 or t < ext:
            return False
        ext += (n - 1) * t
    return True


def _slabs(buffer, offset, outer, inner, total):
    """Yield ``(start, stop, buffer, offset)`` pieces of a tensor for the GPU.

    A device buffer goes whole.  A host buffer goes as copies of the memory
    span of consecutive logical elements ``[start, stop)``, each at most
    CUDA_STREAM_BYTES when addresses grow along the walk (then the span of
    a piece is its first and last address); otherwise as one piece.
    """
    if not isinstance(buffer, np.ndarray):
        yield 0, total, buffer, offset
        return
    n_in = inner.n

    def addr(i):
        r, j = divmod(int(i), n_in)
        return (offset + int(outer.offsets(np.array([r]))[0])
                + int(inner.offsets(np.array([j]))[0]))

    budget = max(1, CUDA_STREAM_BYTES // buffer.dtype.itemsize)
    if not _monotone(outer, inner) or addr(total - 1) - addr(0) + 1 <= budget:
        o_lo, o_hi = outer.extent()
        i_lo, i_hi = inner.extent()
        lo = max(offset + o_lo + i_lo, 0)
        hi = min(offset + o_hi + i_hi + 1, buffer.shape[0])
        yield 0, total, buffer[lo:hi], offset - lo
        return
    start = 0
    while start < total:
        a0 = addr(start)
        # the last stop whose span fits (addresses are monotone): binary search
        lo_b, hi_b = start + 1, total
        while lo_b < hi_b:
            mid = (lo_b + hi_b + 1) // 2
            if addr(mid - 1) - a0 + 1 <= budget:
                lo_b = mid
            else:
                hi_b = mid - 1
        stop = lo_b
        yield start, stop, buffer[a0: addr(stop - 1) + 1], offset - a0
        start = stop


def _gpu_guess(plan: BinPlan):
    """(gmode, t0, s, c, ln_c) for the CUDA kernel from a CPU plan."""
    if plan.mode == MODE_SEARCH:
        return GPU_SEARCH, 0.0, 1.0, 1.0, 0.0
    if plan.mode == MODE_LIN32:
        g = _guess_params(plan.edges, "linear", None)
        return GPU_LIN, g[1][0], g[1][1], 1.0, 0.0
    t0, s, c, _, lnc = plan.p64
    gm = {MODE_LIN64: GPU_LIN, MODE_LOG64: GPU_LOG, MODE_SYM64: GPU_SYM}[plan.mode]
    return gm, t0, s, c, lnc


def _cuda_run_into(counts_dev, row, buffer, offset, rows, cols, decode, plan, d_edges):
    total = int(rows.n) * int(cols.n)
    if total == 0:
        return
    nb = plan.nbins
    nslots = nb + SLOTS_EXTRA
    shared = nslots <= CUDA_SHARED_BINS
    kernel = cuda_hist_kernel(int(decode), shared)
    off, outer, inner = normalise(offset, rows, cols)
    oax, iax = _axis_tuple(outer), _axis_tuple(inner)
    gmode, t0, s, c, lnc = _gpu_guess(plan)
    block = _cuda_block()
    smem = nslots * 4 if shared else 0
    for start, stop, buf, boff in _slabs(buffer, off, outer, inner, total):
        if isinstance(buf, np.ndarray):
            buf = cuda.to_device(np.ascontiguousarray(buf))
        grid = _grid(stop - start)
        kernel[grid, block, 0, smem](
            buf, np.int64(boff), oax, iax, np.int64(inner.n), np.int64(start), np.int64(stop),
            d_edges, np.int64(nb), np.int64(gmode), np.float64(t0), np.float64(s),
            np.float64(c), np.float64(lnc), counts_dev, np.int64(row))


def histogram_cuda(buffer, offset, rows, cols, edges, scale="linear", linthresh=None,
                   decode=DECODE_NATIVE, plan=None):
    """Exact histogram of a strided tensor, on the GPU.

    Same parameters and result as :func:`histogram_cpu` (host arrays), except
    that ``buffer`` may be a device array (anything with
    ``__cuda_array_interface__``) or a host ndarray, which is then streamed
    to the device in slabs of at most :data:`CUDA_STREAM_BYTES`.
    """
    counts, specials = _histogram_many_cuda([(buffer, offset, rows, cols, decode)], edges,
                                            scale, linthresh, None if plan is None else [plan])
    return counts[0], specials[0]


def histogram_many_cuda(items, edges, scale="linear", linthresh=None):
    """Histograms of many tensors in one call, on the GPU.

    One kernel launch per tensor (per slab of a streamed host tensor) into
    one (T, B + 5) int64 device array, copied back once.  Same parameters and
    results as :func:`histogram_many_cpu`.
    """
    return _histogram_many_cuda(items, edges, scale, linthresh, None)


def _histogram_many_cuda(items, edges, scale, linthresh, plans):
    # plans: one precomputed bin plan per tensor (histogram_cuda passes its own)
    _import_cuda()
    items = list(items)
    edges = np.asarray(edges, np.float64)
    rows_of_edges = edges.ndim == 2
    nb = edges.shape[-1] - 1
    nslots = nb + SLOTS_EXTRA
    counts_dev = cuda.to_device(np.zeros((max(len(items), 1), nslots), np.int64))
    d_edges_cache: dict = {}
    for i, (buf, off, r, c, dec) in enumerate(items):
        e = check_edges(edges[i] if rows_of_edges else edges)
        key = i if rows_of_edges else -1
        if key not in d_edges_cache:
            plan = (plans[i] if plans is not None and i < len(plans) else
                    plan_bins(e, scale, linthresh, False))
            d_edges_cache[key] = (plan, cuda.to_device(e))
        plan, d_edges = d_edges_cache[key]
        _cuda_run_into(counts_dev, i, buf, off, r, c, dec, plan, d_edges)
    host = counts_dev.copy_to_host()[:len(items)]
    counts = host[:, 1:nb + 1].copy()
    specials = np.stack([_specials(row, nb) for row in host]) if len(items) else \
        np.zeros((0, 5), np.int64)
    return counts, specials


def minmax_cuda(buffer, offset, rows, cols, decode=DECODE_NATIVE):
    """Exact finite min, max and smallest positive value, on the GPU (see :func:`minmax_cpu`)."""
    _import_cuda()
    total = int(rows.n) * int(cols.n)
    if total == 0:
        return math.inf, -math.inf, math.inf
    off, outer, inner = normalise(offset, rows, cols)
    oax, iax = _axis_tuple(outer), _axis_tuple(inner)
    kernel = cuda_minmax_kernel(int(decode))
    res = cuda.to_device(np.array([math.inf, -math.inf, math.inf]))
    block = _cuda_block()
    for start, stop, buf, boff in _slabs(buffer, off, outer, inner, total):
        if isinstance(buf, np.ndarray):
            buf = cuda.to_device(np.ascontiguousarray(buf))
        kernel[_grid(stop - start), block](buf, np.int64(boff), oax, iax, np.int64(inner.n),
                                           np.int64(start), np.int64(stop), res)
    lo, hi, lp = res.copy_to_host()
    return float(lo), float(hi), float(lp)


#: the families (docs/architecture.md, "The kernel contract")
HISTOGRAM = Family("histogram", histogram_cpu, histogram_cuda, _reference.histogram,
                   "exact counts of a strided tensor's values in given bins")
HISTOGRAM_MANY = Family("histogram_many", histogram_many_cpu, histogram_many_cuda,
                        _reference.histogram_many,
                        "exact histograms of many tensors in one call")
MINMAX = Family("minmax", minmax_cpu, minmax_cuda, _reference.minmax,
                "exact finite min, max and smallest positive value of a tensor")
