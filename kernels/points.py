"""x, y (+ value, + category) -> per-pixel count / sum / min / max / per-category count.

Both backends meet the points rule of docs/architecture.md ("Points") exactly
and share one signature: :func:`points_stats_cpu` and
:func:`points_stats_cuda` take each input column as a :class:`Column` (a flat
buffer read in place, the element offset of point 0, an element stride that
may be negative or 0, and a decoding for bfloat16 / float16 bits) and return
``(planes, counters)``.

Pixel of a point (every backend and the reference round identically)::

    px = floor(((x - x0) * W) / (x1 - x0))     for x0 <= x <= x1, at most W - 1

evaluated in float64 in exactly that order; ``x == x1`` lands in the last
column (NumPy's ``histogram2d`` convention), and so does the rare ``x < x1``
whose quotient rounds up to ``W``.  The same for y with H.  A point with a NaN
or infinite coordinate is counted in ``nonfinite_xy``; a finite point outside
the window in ``outside``.  Nothing is dropped silently.

Planes (row 0 is the ``y_range[0]`` side):

``count``       (H, W) int64: points, or with a value column the points whose
                value is finite
``nan_count``   (H, W) int64: points whose value is NaN / +-inf (zeros without
                a value column); they never reach sum / min / max
``sum``         (H, W) float64, with a value column
``min``/``max`` (H, W) float64, with a value column; NaN in empty pixels
``count_cat``   (H, W, K) int64, with a category column of integer codes 0..K-1

Counters: ``outside`` (finite points outside the window), ``nonfinite_xy``
and ``bad_category`` (codes that are negative, >= K, non-integral or NaN,
wherever the point lies; the caller turns a non-zero count into an error).
Points with a bad code are left out of ``count_cat`` (and, without a value
column, of ``count``), but still counted in ``outside`` / ``nonfinite_xy``.

CPU strategy
    Parallel over tasks of consecutive points; each thread owns private
    accumulator planes (no atomics), merged in parallel at the end.  A task
    walks its points in chunks of ``CPU_CHUNK``: a branch-free loop over
    slices (which LLVM vectorises) turns coordinates into flat pixel indices,
    with two extra bins for "outside" and "non-finite" so the scatter loop
    has no branch for them; then a scalar loop scatters.  Counts are uint8
    with a uint32 carry plane (``+= 1`` that wraps to 0 adds one to the
    carry, and marks its block dirty so the merge reads only carries that
    exist): 800 x 600 private counts are 480 KB per thread and stay in L2.
    (A thread's carry is uint32: exact up to 2**40 points per pixel and
    thread.)
    sum / min / max live in one 16-byte record per pixel (float64 sum,
    min/max in float32 when the values are float32, bf16 or fp16 -- exact),
    one cache line per point, fetched ahead with a software prefetch.
    A pixel whose sum overflows on the way (values near float64's limits;
    +-inf or NaN although the total may be finite) is summed again by two
    more passes over the points, for the flagged pixels only, scaled by a
    power of two (:func:`_exact_sums`; on the GPU the same passes): sums are
    +-inf only when the true total exceeds float64, never NaN.

    Private count_cat planes are threads x pixels x K bytes.  When that
    would exceed ``CPU_CAT_BUDGET`` (256 MiB; e.g. 800 x 600 x 256 categories
    on more than two threads) the categories are processed in groups that
    fit, one pass over the points per group (the coordinates are re-read;
    memory stays bounded).

GPU strategy
    A grid-stride loop, one point per thread per step.  Counts (and per
    category counts) are privatised in shared memory when the canvas fits
    (``CUDA_SHARED_CELLS`` cells); otherwise, and for value statistics,
    global atomics (min/max only attempted when they would change the pixel).
    Host columns are streamed to the device in chunks of ``CUDA_CHUNK`` points.
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import numba
import numpy as np
from numba import prange

from ._cache import cached_factory_kernel
from ._common import import_cuda
from ._common import (DECODE_BF16, DECODE_F16, DECODE_NATIVE, decode_bf16,
                      decode_bf16_f32, decode_f16, decode_f16_f32, decode_value, window_problem)
from ._parallel import parallel_jit, serialised
from ._family import Family
from .reference import points as _reference

cuda = None     # numba.cuda once a GPU path runs (see _common.import_cuda)


def _import_cuda():
    return import_cuda(globals())


# Points per chunk of a CPU task: the index buffer (and gathered strided
# columns) stay in L1.
CPU_CHUNK = 2048
# Tasks per thread: consecutive point ranges, handed out dynamically.
CPU_TASKS_PER_THREAD = 8
# Records fetched this many points ahead of the scatter.
CPU_PREFETCH = 48
# Upper bound for the private count_cat planes of all threads together.
CPU_CAT_BUDGET = 256 << 20
# A dirty flag per this many count cells (log2): the merge reads only the
# carry blocks that some overflow touched.
DIRTY_SHIFT = 12
# Largest K (categories) the kernels take.
MAX_CATEGORIES = 1 << 16

# Threads per CUDA block, most blocks per launch (grid-stride beyond).
CUDA_BLOCK = 256
CUDA_MAX_BLOCKS = 4096
# Shared-memory count cells per block (uint32): 32 KiB.
CUDA_SHARED_CELLS = 8192
# Host columns travel to the device in chunks of this many points.
CUDA_CHUNK = 1 << 24


class Column(NamedTuple):
    """One input column as the kernels read it, in place.

    Point ``i`` is ``buffer[offset + i * stride]`` (decoded per ``decode``).
    """

    buffer: Any          # flat host ndarray, or a CUDA array-interface object
    offset: int
    stride: int
    decode: int = DECODE_NATIVE


def column(buffer, offset: int = 0, stride: int = 1, decode: int = DECODE_NATIVE) -> Column:
    """A :class:`Column` with the integer fields normalised."""
    return Column(buffer, int(offset), int(stride), int(decode))


# --------------------------------------------------------------------------
# Per-point helpers, compiled for the CPU here and for CUDA by the factories
# --------------------------------------------------------------------------

def pixel_index(x, y, x0, x1, y0, y1, w, h):
    """Flat pixel ``py * w + px`` of point (x, y); ``w*h`` if finite but outside,
    ``w*h + 1`` if a coordinate is NaN or infinite.  Branch-free (vectorises).
    """
    inside = (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)
    # the contract's formula, in this order, in float64
    fx = ((x - x0) * w) / (x1 - x0)
    fy = ((y - y0) * h) / (y1 - y0)
    # keep the integer conversion defined: 0 for points that are not inside,
    # and at most the last pixel (which min() below picks anyway) for a
    # quotient that overflowed to inf or NaN, which would convert to INT64_MIN
    # and index outside the planes
    fx = (fx if fx < w - 1.0 else w - 1.0) if inside else 0.0
    fy = (fy if fy < h - 1.0 else h - 1.0) if inside else 0.0
    px = min(np.int64(fx), w - 1)
    py = min(np.int64(fy), h - 1)
    finite = (x - x == 0.0) & (y - y == 0.0)
    other = w * h if finite else w * h + 1
    return py * w + px if inside else other


def category_code(c, k, k0, kg):
    """(code - k0, ok, bad) for a category value ``c``; ``k`` categories in all.

    ``bad``: not an integer code in [0, k) (NaN, inf, negative, fractional,
    too large); ``ok``: a good code inside the group [k0, k0 + kg).
    Comparing in float64 is exact for every code below ``MAX_CATEGORIES``.
    """
    cf = np.float64(c)
    good = (cf >= 0.0) & (cf < k)
    ci = np.int64(cf if good else 0.0)
    good = good & (np.float64(ci) == cf)
    rel = ci - k0
    ok = good & (rel >= 0) & (rel < kg)
    return rel, ok, not good


_pixel_index = numba.njit(inline="always", cache=True)(pixel_index)
_category_code = numba.njit(inline="always", cache=True)(category_code)


# --------------------------------------------------------------------------
# CPU
# --------------------------------------------------------------------------

def _make_prefetch():
    """``prefetch(array, index)``: a read-for-write hint for ``&array[index]``."""
    from llvmlite import binding, ir
    from numba import types
    from numba.core import cgutils
    from numba.extending import intrinsic

    name = "llvm.prefetch.p0" if binding.llvm_version_info[0] >= 15 else "llvm.prefetch.p0i8"

    @intrinsic
    def prefetch(typingctx, arr, idx):
        def codegen(context, builder, signature, args):
            aryty = signature.args[0]
            ary = context.make_array(aryty)(context, builder, args[0])
            ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1]],
                                           wraparound=False)
            i8p = ir.IntType(8).as_pointer()
            i32 = ir.IntType(32)
            fn = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]), name)
            # rw = 1 (write), locality = 3 (keep in all levels), data cache
            builder.call(fn, [builder.bitcast(ptr, i8p), ir.Constant(i32, 1),
                              ir.Constant(i32, 3), ir.Constant(i32, 1)])
            return context.get_dummy_value()
        return types.void(arr, idx), codegen

    return prefetch


_prefetch = _make_prefetch()


@numba.njit(inline="always", cache=True)
def _native(x):
    return np.float64(x)


@numba.njit(inline="always", cache=True)
def _native_f32(x):
    return np.float32(x)


_DEC64 = {DECODE_NATIVE: _native, DECODE_BF16: decode_bf16, DECODE_F16: decode_f16}
# value lanes for min/max: float32 where that is exact
_DEC32 = {DECODE_NATIVE: _native_f32, DECODE_BF16: decode_bf16_f32, DECODE_F16: decode_f16_f32}


def _lane(vdtype: np.dtype, vdec: int) -> np.dtype:
    """The min/max lane type: float32 for float32 / bf16 / fp16 values, else float64."""
    if vdec != DECODE_NATIVE or np.dtype(vdtype) == np.float32:
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def _record(lane: np.dtype, minmax: bool = True) -> np.dtype:
    # sum first, so a 16-byte record (float32 lanes) never straddles a cache line
    if not minmax:
        return np.dtype([("s", np.float64)])
    return np.dtype([("s", np.float64), ("lo", lane), ("hi", lane)], align=True)


@functools.lru_cache(maxsize=None)
def _cpu_kernel(xdec: int, ydec: int, vdec: int, has_value: bool, has_cat: bool,
                unit: bool, lane32: bool, minmax: bool):
    """Memoised: one compiled scatter kernel per (decodings, columns, layout) combination."""
    decx = _DEC64[xdec]
    decy = _DEC64[ydec]
    decv = _DEC32[vdec] if lane32 else _DEC64[vdec]
    VALUE = has_value
    MINMAX = minmax
    CAT = has_cat
    UNIT = unit
    CH = CPU_CHUNK
    PD = CPU_PREFETCH
    TPT = CPU_TASKS_PER_THREAD
    DS = DIRTY_SHIFT

    @numba.njit(inline="always")
    def _chunk(buf, off, st, c0, c1, tmp):
        # unit stride: a slice of the buffer itself; else gather into `tmp`
        if UNIT:
            return buf[off + c0: off + c1]
        m = c1 - c0
        base = off + c0 * st
        for i in range(m):
            tmp[i] = buf[base + i * st]
        return tmp[:m]

    @numba.njit
    def _indices(xs, ys, x0, x1, y0, y1, w, h, idx):
        for i in range(xs.size):
            idx[i] = _pixel_index(decx(xs[i]), decy(ys[i]), x0, x1, y0, y1, w, h)

    @numba.njit
    def _cat_indices(idx, cs, k, k0, kg, cidx, npix, first):
        # pixel * kg + (code - k0) for good codes of this group; points outside
        # or with a NaN/inf coordinate go to their bins (first pass only, so
        # that group passes do not count them twice) whatever their code; the
        # rest to the skip bin.  Returns how many codes are bad (any pixel).
        base = npix * kg
        skip = base + 2
        nbad = 0
        for i in range(cs.size):
            rel, ok, bad = _category_code(cs[i], k, k0, kg)
            p = idx[i]
            inpix = p < npix
            trash = base + (p - npix) if first else skip
            other = skip if inpix else trash
            cidx[i] = p * kg + rel if (inpix & ok) else other
            nbad += 1 if bad else 0
        return nbad

    @numba.njit
    def _count(cnt, carry, dirty, idx, m):
        for i in range(m):
            k = idx[i]
            c = np.uint8((cnt[k] + 1) & 255)  # numba widens uint8 + 1
            cnt[k] = c
            if c == 0:
                carry[k] += np.uint32(1)
                dirty[k >> DS] = True

    @numba.njit
    def _values(cnt, carry, dirty, rec, nanc, idx, vs, m):
        for i in range(m):
            k = idx[i]
            _prefetch(rec, idx[i + PD])
            v = decv(vs[i])
            if v - v == 0:
                c = np.uint8((cnt[k] + 1) & 255)  # numba widens uint8 + 1
                cnt[k] = c
                if c == 0:
                    carry[k] += np.uint32(1)
                    dirty[k >> DS] = True
                e = rec[k]
                e.s += np.float64(v)
                if MINMAX:
                    lo = e.lo
                    hi = e.hi
                    e.lo = v if v < lo else lo
                    e.hi = v if v > hi else hi
            else:
                nanc[k] += 1

    @numba.njit(parallel=True)
    def kernel(xb, xo, xst, yb, yo, yst, vb, vo, vst, cb, co, cst, n,
               x0, x1, y0, y1, w, h, k, k0, kg, first,
               cnt, carry, dirty, rec, nanc, ccnt, ccarry, cdirty, nbad, nthreads):
        # cnt/carry/dirty/rec/nanc: per-thread value/count planes (T, npix + 2)
        # ccnt/ccarry/cdirty: per-thread category planes (T, npix * kg + 3)
        # nbad: (T,) bad category codes seen by each thread
        # nthreads: numba.get_num_threads() of the caller (T); called in here it
        # would compile to a ctypes address, which Numba cannot cache on disk
        ntasks = max(1, min(nthreads * TPT, (n + CH - 1) // CH))
        step = (n + ntasks - 1) // ntasks
        npix = w * h
        # (the caller sets the parallel chunk size to 1: tasks go out one at a time)
        for task in prange(ntasks):
            tid = numba.get_thread_id()
            idx = np.zeros(CH + PD, np.int64)
            cidx = np.zeros(CH + PD if CAT else 0, np.int64)
            tx = np.empty(0 if UNIT else CH, xb.dtype)
            ty = np.empty(0 if UNIT else CH, yb.dtype)
            tv = np.empty(0 if (UNIT or not VALUE) else CH, vb.dtype)
            tc = np.empty(0 if (UNIT or not CAT) else CH, cb.dtype)
            lo = min(task * step, n)
            hi = min(lo + step, n)
            for c0 in range(lo, hi, CH):
                c1 = min(c0 + CH, hi)
                m = c1 - c0
                xs = _chunk(xb, xo, xst, c0, c1, tx)
                ys = _chunk(yb, yo, yst, c0, c1, ty)
                # (idx past m holds earlier, valid indices: harmless prefetches)
                _indices(xs, ys, x0, x1, y0, y1, w, h, idx)
                if VALUE:
                    vs = _chunk(vb, vo, vst, c0, c1, tv)
                    _values(cnt[tid], carry[tid], dirty[tid], rec[tid], nanc[tid], idx, vs, m)
                elif not CAT:
                    _count(cnt[tid], carry[tid], dirty[tid], idx, m)
                if CAT:
                    cs = _chunk(cb, co, cst, c0, c1, tc)
                    nbad[tid] += _cat_indices(idx, cs, k, k0, kg, cidx, npix, first)
                    _count(ccnt[tid], ccarry[tid], cdirty[tid], cidx, m)

    return serialised(cached_factory_kernel(kernel, xdec, ydec, vdec, has_value, has_cat, unit,
                                            lane32, minmax))


@numba.njit(inline="always", cache=True)
def _total(cnt, carry, dirty, t, j):
    c = np.int64(cnt[t, j])
    if dirty[t, j >> DIRTY_SHIFT]:
        c += np.int64(carry[t, j]) << 8
    return c


@parallel_jit(cache=True)
def _merge_counts(cnt, carry, dirty, npix, out):
    """out[j] = sum over threads of the count in cell j, for j < npix; returns the two bins."""
    nthreads = cnt.shape[0]
    nblocks = (npix + 4095) // 4096
    for b in prange(nblocks):
        for j in range(b * 4096, min(npix, (b + 1) * 4096)):
            s = 0
            for t in range(nthreads):
                s += _total(cnt, carry, dirty, t, j)
            out[j] = s
    bins = np.zeros(2, np.int64)
    for t in range(nthreads):
        bins[0] += _total(cnt, carry, dirty, t, npix)
        bins[1] += _total(cnt, carry, dirty, t, npix + 1)
    return bins


@parallel_jit(cache=True)
def _merge_values(cnt, carry, dirty, rec, nanc, npix, count, nan_count, sums, mins, maxs):
    """Per-pixel totals of the value planes; returns the bins (finite + non-finite values)."""
    nthreads = cnt.shape[0]
    nblocks = (npix + 4095) // 4096
    for b in prange(nblocks):
        for j in range(b * 4096, min(npix, (b + 1) * 4096)):
            c = 0
            q = 0
            s = 0.0
            lo = np.inf
            hi = -np.inf
            for t in range(nthreads):
                c += _total(cnt, carry, dirty, t, j)
                q += nanc[t, j]
                e = rec[t, j]
                s += e.s
                lo = min(lo, np.float64(e.lo))
                hi = max(hi, np.float64(e.hi))
            count[j] = c
            nan_count[j] = q
            sums[j] = s
            mins[j] = lo if c > 0 else np.nan
            maxs[j] = hi if c > 0 else np.nan
    bins = np.zeros(2, np.int64)
    for t in range(nthreads):
        for r in range(2):
            bins[r] += _total(cnt, carry, dirty, t, npix + r) + nanc[t, npix + r]
    return bins


@parallel_jit(cache=True)
def _merge_sums(cnt, carry, dirty, rec, nanc, npix, count, nan_count, sums):
    """:func:`_merge_values` for records without min / max."""
    nthreads = cnt.shape[0]
    nblocks = (npix + 4095) // 4096
    for b in prange(nblocks):
        for j in range(b * 4096, min(npix, (b + 1) * 4096)):
            c = 0
            q = 0
            s = 0.0
            for t in range(nthreads):
                c += _total(cnt, carry, dirty, t, j)
                q += nanc[t, j]
                s += rec[t, j].s
            count[j] = c
            nan_count[j] = q
            sums[j] = s
    bins = np.zeros(2, np.int64)
    for t in range(nthreads):
        for r in range(2):
            bins[r] += _total(cnt, carry, dirty, t, npix + r) + nanc[t, npix + r]
    return bins


@parallel_jit(cache=True)
def _merge_cats(cnt, carry, dirty, npix, kg, k0, out):
    """out[j, k0:k0+kg] = per-category totals; returns the (outside, non-finite) bins."""
    nthreads = cnt.shape[0]
    nblocks = (npix + 1023) // 1024
    for b in prange(nblocks):
        for j in range(b * 1024, min(npix, (b + 1) * 1024)):
            for k in range(kg):
                s = 0
                for t in range(nthreads):
                    s += _total(cnt, carry, dirty, t, j * kg + k)
                out[j, k0 + k] = s
    bins = np.zeros(2, np.int64)
    for t in range(nthreads):
        for r in range(2):
            bins[r] += _total(cnt, carry, dirty, t, npix * kg + r)
    return bins


@parallel_jit(cache=True)
def _init_records(rec):
    flat = rec.reshape(-1)
    nblocks = (flat.size + 65535) // 65536
    for b in prange(nblocks):
        for j in range(b * 65536, min(flat.size, (b + 1) * 65536)):
            e = flat[j]
            e.s = 0.0
            e.lo = np.inf
            e.hi = -np.inf


@parallel_jit(cache=True)
def _init_sums(rec):
    flat = rec.reshape(-1)
    nblocks = (flat.size + 65535) // 65536
    for b in prange(nblocks):
        for j in range(b * 65536, min(flat.size, (b + 1) * 65536)):
            flat[j].s = 0.0


@parallel_jit(cache=True)
def _sum_last_axis(cat, out):
    for j in prange(cat.shape[0]):
        s = 0
        for k in range(cat.shape[1]):
            s += cat[j, k]
        out[j] = s


@numba.njit(cache=True)
def _exact_sums(xb, xo, xst, xdec, yb, yo, yst, ydec, vb, vo, vst, vdec, n,
                x0, x1, y0, y1, w, h, flagged, sums):
    """Recompute the sums of the ``flagged`` pixels without overflowing on the way (rare path).

    A pixel's running sum overflows to +-inf (or NaN, +inf meeting -inf)
    when its values pass about 1e308 on the way, even if their total is
    finite.  Two more passes over the points, for the flagged pixels only:
    the largest binary exponent of each pixel's values, then the values
    scaled by it (a power of two: exact) summed, and scaled back.  The sum
    is then +-inf only when the true total is beyond float64.
    """
    npix = w * h
    expo = np.full(npix, -2000, np.int64)
    for i in range(n):
        p = _pixel_index(decode_value(xb[xo + i * xst], xdec),
                         decode_value(yb[yo + i * yst], ydec), x0, x1, y0, y1, w, h)
        if p < npix and flagged[p]:
            v = decode_value(vb[vo + i * vst], vdec)
            if v - v == 0.0 and v != 0.0:
                expo[p] = max(expo[p], math.frexp(abs(v))[1])
    acc = np.zeros(npix)
    for i in range(n):
        p = _pixel_index(decode_value(xb[xo + i * xst], xdec),
                         decode_value(yb[yo + i * yst], ydec), x0, x1, y0, y1, w, h)
        if p < npix and flagged[p]:
            v = decode_value(vb[vo + i * vst], vdec)
            if v - v == 0.0:
                acc[p] += math.ldexp(v, -expo[p])
    for p in range(npix):
        if flagged[p]:
            sums[p] = math.ldexp(acc[p], expo[p])


def _check_args(x, y, value, category, n, x_range, y_range, width, height, n_categories):
    x0, x1 = float(x_range[0]), float(x_range[1])
    y0, y1 = float(y_range[0]), float(y_range[1])
    w, h = int(width), int(height)
    if w < 1 or h < 1:
        raise ValueError(f"width, height: expected positive integers; got {w} x {h}")
    for name, lo, hi, npix in (("x_range", x0, x1, w), ("y_range", y0, y1, h)):
        problem = window_problem(lo, hi, npix)
        if problem:
            raise ValueError(f"{name}: {problem}")
    k = int(n_categories or 0)
    if category is not None and not 0 <= k <= MAX_CATEGORIES:
        raise ValueError(f"n_categories: expected 0..{MAX_CATEGORIES}; got {k}")
    return x0, x1, y0, y1, w, h, k


def _unit(*cols) -> bool:
    return all(c is None or c.stride == 1 for c in cols)


def _dummy(dtype=np.float64):
    return np.empty(1, dtype)


def _cpu_cat_group(nthreads: int, npix: int, k: int) -> int:
    """Categories per pass so that nthreads private uint8 planes fit CPU_CAT_BUDGET."""
    per = max(1, CPU_CAT_BUDGET // max(1, nthreads * npix))
    return max(1, min(k, per))


def points_stats_cpu(x: Column, y: Column, value: Column | None, category: Column | None,
                     n: int, x_range, y_range, width: int, height: int,
                     n_categories: int = 0, want_minmax: bool = True) -> tuple[dict, dict]:
    """Per-pixel statistics of a point cloud, on the CPU.

    Parameters
    ----------
    x, y : Column
        Coordinates of the ``n`` points (host buffers; raw uint16 bits for
        bf16 / fp16 with ``decode`` set).
    value : Column or None
        A value per point: sum / min / max / nan_count planes.
    category : Column or None
        An integer code 0..n_categories-1 per point (any integer or float
        dtype): the count_cat plane.
    n : int
        Number of points (0 is allowed).
    x_range, y_range : (float, float)
        Visible window, low < high.
    width, height : int
        Canvas size in pixels.
    n_categories : int
        K, the length of count_cat's last axis (codes >= K are bad).
    want_minmax : bool
        With a value column: compute the min and max planes too (sum and
        count alone touch half the memory per point).

    Returns
    -------
    planes : dict of ndarrays
        ``count``, ``nan_count`` (H, W) int64; with value ``sum`` and (as
        asked) ``min``, ``max`` (H, W) float64; with category ``count_cat``
        (H, W, K) int64.
    counters : dict of int
        ``outside``, ``nonfinite_xy``, ``bad_category``.
    """
    x0, x1, y0, y1, w, h, k = _check_args(x, y, value, category, n, x_range, y_range,
                                          width, height, n_categories)
    n = int(n)
    npix = w * h
    cells = npix + 2            # + the "outside" and "non-finite" bins
    has_value = value is not None
    minmax = has_value and bool(want_minmax)
    has_cat = category is not None
    counters = {"outside": 0, "nonfinite_xy": 0, "bad_category": 0}
    if n == 0:
        return _empty_planes(np, h, w, has_value, minmax, has_cat, k), counters
    # every output cell is written by a merge (or _sum_last_axis): no clearing
    count = np.empty(npix, np.int64)
    nan_count = np.empty(npix, np.int64) if has_value else np.zeros(npix, np.int64)
    planes = {"count": count.reshape(h, w), "nan_count": nan_count.reshape(h, w)}
    if has_value:
        sums = np.empty(npix)
        planes["sum"] = sums.reshape(h, w)
        if minmax:
            mins = np.empty(npix)
            maxs = np.empty(npix)
            planes.update(min=mins.reshape(h, w), max=maxs.reshape(h, w))
    if has_cat:
        cat = np.empty((npix, k), np.int64)
        planes["count_cat"] = cat.reshape(h, w, k)
    if has_cat and k == 0:
        # no code can be in range: every point's code is bad
        counters["bad_category"] = n
        has_cat = False
        category = None

    T = numba.get_num_threads()
    unit = _unit(x, y, value, category)
    lane32 = minmax and _lane(value.buffer.dtype, value.decode) == np.float32
    head = (x.buffer, np.int64(x.offset), np.int64(x.stride),
            y.buffer, np.int64(y.offset), np.int64(y.stride))
    no_col = (_dummy(), np.int64(0), np.int64(0))
    vcol = ((value.buffer, np.int64(value.offset), np.int64(value.stride)) if has_value
            else no_col)
    ccol = ((category.buffer, np.int64(category.offset), np.int64(category.stride))
            if has_cat else no_col)
    window = (np.int64(n), x0, x1, y0, y1, np.int64(w), np.int64(h))
    no_rec = np.empty((T, 0), _record(np.dtype(np.float64), False))
    no_nan = np.zeros((T, 0), np.int64)
    no_counts = (np.zeros((T, 0), np.uint8), np.zeros((T, 0), np.uint32),
                 np.zeros((T, 0), np.bool_))

    def count_planes(size):
        # carries are zero pages until an overflow touches them; the dirty
        # flags let the merge skip the rest
        return (np.zeros((T, size), np.uint8), np.zeros((T, size), np.uint32),
                np.zeros((T, (size >> DIRTY_SHIFT) + 1), np.bool_))

    # category groups [k0, k0 + kg): one pass over the points each
    kg = _cpu_cat_group(T, npix, k) if has_cat else 0
    groups = [(k0, min(kg, k - k0)) for k0 in range(0, k, kg)] if has_cat else []
    primary = has_value or not has_cat          # a pass that fills count (and values)
    for p in range(max(1, len(groups))):
        main = primary and p == 0
        grp = groups[p] if groups else None
        main_planes, rec, nanc = no_counts, no_rec, no_nan
        if main:
            main_planes = count_planes(cells)
            if has_value:
                rec = np.empty((T, cells), _record(np.dtype(np.float32 if lane32
                                                           else np.float64), minmax))
                (_init_records if minmax else _init_sums)(rec)
                nanc = np.zeros((T, cells), np.int64)
        k0, kgi = grp if grp is not None else (0, 1)
        cat_planes = count_planes(npix * kgi + 3) if grp is not None else no_counts
        nbad = np.zeros(T, np.int64)
        kern = _cpu_kernel(x.decode, y.decode, value.decode if (main and has_value) else 0,
                           main and has_value, grp is not None, unit,
                           bool(main and lane32), bool(main and minmax))
        # tasks handed out one at a time: a thread slowed by other work on the
        # machine does not hold up the others.  Set here, not in the kernel:
        # there it compiles to the threading library's address, a constant
        # that Numba cannot cache on disk.
        before = numba.set_parallel_chunksize(1)
        try:
            kern(*head, *(vcol if main else no_col), *ccol, *window,
                 np.int64(k), np.int64(k0), np.int64(kgi), p == 0, *main_planes, rec, nanc,
                 *cat_planes, nbad, np.int64(T))
        finally:
            numba.set_parallel_chunksize(before)
        if main:
            if minmax:
                bins = _merge_values(*main_planes, rec, nanc, npix, count, nan_count,
                                     sums, mins, maxs)
            elif has_value:
                bins = _merge_sums(*main_planes, rec, nanc, npix, count, nan_count, sums)
            else:
                bins = _merge_counts(*main_planes, npix, count)
            counters["outside"] = int(bins[0])
            counters["nonfinite_xy"] = int(bins[1])
            if has_value and not np.isfinite(sums).all():
                flagged = (count > 0) & ~np.isfinite(sums)
                if flagged.any():      # values near float64's limits overflowed on the way
                    _exact_sums(*head[:3], np.int64(x.decode), *head[3:], np.int64(y.decode),
                                *vcol, np.int64(value.decode), *window, flagged, sums)
        if grp is not None:
            bins = _merge_cats(*cat_planes, npix, kgi, k0, cat)
            if not primary:
                counters["outside"] += int(bins[0])
                counters["nonfinite_xy"] += int(bins[1])
            if p == 0:
                counters["bad_category"] = int(nbad.sum())
        del main_planes, cat_planes, rec, nanc
    if has_cat and not primary:
        _sum_last_axis(cat, count)
    return planes, counters


def _empty_planes(xp, h, w, has_value, minmax, has_cat, k):
    """The planes of a raster that holds no point (``xp``: numpy or a device allocator)."""
    planes = {"count": xp.zeros((h, w), np.int64), "nan_count": xp.zeros((h, w), np.int64)}
    if has_value:
        planes["sum"] = xp.zeros((h, w), np.float64)
        if minmax:
            planes["min"] = xp.full((h, w), np.nan)
            planes["max"] = xp.full((h, w), np.nan)
    if has_cat:
        planes["count_cat"] = xp.zeros((h, w, k), np.int64)
    return planes


# --------------------------------------------------------------------------
# Bounds: the default window and the number of categories, in one pass
# --------------------------------------------------------------------------

def _bounds_result(xy, cat, want_xy, has_cat) -> dict:
    out: dict = {}
    if want_xy:
        out.update(x_min=float(xy[0]), x_max=float(xy[1]), y_min=float(xy[2]),
                   y_max=float(xy[3]))
    if has_cat:
        out.update(c_min=float(cat[0]), c_max=float(cat[1]), c_bad=int(cat[2]))
    return out


# float64 bits -> order-preserving int64 key: k = b ^ ((b >> 63) & _LOW63)
_EXP = np.int64(0x7FF0000000000000)
_LOW63 = np.int64(0x7FFFFFFFFFFFFFFF)
_KEY_PINF = np.int64(0x7FF0000000000000)            # key of +inf
_KEY_NINF = np.int64(-0x7FF0000000000001)           # key of -inf


@functools.lru_cache(maxsize=None)
def _cpu_bounds_kernel(xdec: int, ydec: int, unit: bool):
    """Memoised bounds kernel; which columns it reads are run-time flags (one compile)."""
    decx = _DEC64[xdec]
    decy = _DEC64[ydec]
    UNIT = unit
    CH = CPU_CHUNK

    @numba.njit(inline="always")
    def _chunk(buf, off, st, c0, c1, tmp):
        if UNIT:
            return buf[off + c0: off + c1]
        m = c1 - c0
        base = off + c0 * st
        for i in range(m):
            tmp[i] = buf[base + i * st]
        return tmp[:m]

    # min / max run on order-preserving int64 keys of the float64 values:
    # integer min/max reductions vectorise, float ones with NaN rules do not
    @numba.njit
    def _xy(xs, ys, acc):
        xlo, xhi, ylo, yhi = acc[0], acc[1], acc[2], acc[3]
        for i in range(xs.size):
            xb = np.float64(decx(xs[i])).view(np.int64)
            yb = np.float64(decy(ys[i])).view(np.int64)
            ok = ((xb & _EXP) != _EXP) & ((yb & _EXP) != _EXP)
            kx = xb ^ ((xb >> 63) & _LOW63)
            ky = yb ^ ((yb >> 63) & _LOW63)
            xlo = min(xlo, kx if ok else _KEY_PINF)
            xhi = max(xhi, kx if ok else _KEY_NINF)
            ylo = min(ylo, ky if ok else _KEY_PINF)
            yhi = max(yhi, ky if ok else _KEY_NINF)
        acc[0], acc[1], acc[2], acc[3] = xlo, xhi, ylo, yhi

    @numba.njit
    def _codes(cs, acc):
        lo, hi, bad = acc[4], acc[5], acc[6]
        for i in range(cs.size):
            cf = np.float64(cs[i])
            ok = (cf - cf == 0.0) & (np.floor(cf) == cf)
            b = cf.view(np.int64)
            kc = b ^ ((b >> 63) & _LOW63)
            lo = min(lo, kc if ok else _KEY_PINF)
            hi = max(hi, kc if ok else _KEY_NINF)
            bad += 0 if ok else 1
        acc[4], acc[5], acc[6] = lo, hi, bad

    @numba.njit(parallel=True)
    def kernel(xb, xo, xst, yb, yo, yst, cb, co, cst, n, want_xy, want_cat, parts):
        # parts: (tasks, 7) int64 = keys of x_min, x_max, y_min, y_max, c_min,
        # c_max, and c_bad; initialised by the caller
        ntasks = parts.shape[0]
        step = (n + ntasks - 1) // ntasks
        for task in prange(ntasks):
            acc = parts[task]
            tx = np.empty(0 if UNIT else CH, xb.dtype)
            ty = np.empty(0 if UNIT else CH, yb.dtype)
            tc = np.empty(0 if UNIT else CH, cb.dtype)
            lo = min(task * step, n)
            hi = min(lo + step, n)
            for c0 in range(lo, hi, CH):
                c1 = min(c0 + CH, hi)
                if want_xy:
                    _xy(_chunk(xb, xo, xst, c0, c1, tx), _chunk(yb, yo, yst, c0, c1, ty), acc)
                if want_cat:
                    _codes(_chunk(cb, co, cst, c0, c1, tc), acc)

    return serialised(cached_factory_kernel(kernel, xdec, ydec, unit))


def points_bounds_cpu(x: Column | None, y: Column | None, category: Column | None,
                      n: int) -> dict:
    """Data bounds in one pass over the columns given, on the CPU.

    Parameters
    ----------
    x, y : Column or None
        Coordinates (both or neither): ``x_min``, ``x_max``, ``y_min``,
        ``y_max`` over the points whose x and y are both finite (+inf / -inf
        when there is none).
    category : Column or None
        Codes: ``c_min``, ``c_max`` over the finite integral codes and
        ``c_bad``, how many are NaN, infinite or fractional.
    n : int
        Number of points.

    Returns
    -------
    dict of float (and ``c_bad`` int)
    """
    want_xy = x is not None
    has_cat = category is not None
    n = int(n)
    ntasks = max(1, min(numba.get_num_threads() * CPU_TASKS_PER_THREAD,
                        -(-n // CPU_CHUNK)))
    parts = np.empty((ntasks, 7), np.int64)
    parts[:, 0:6:2] = _KEY_PINF
    parts[:, 1:6:2] = _KEY_NINF
    parts[:, 6] = 0
    if n > 0 and (want_xy or has_cat):
        no_col = (_dummy(), np.int64(0), np.int64(0))
        xc = (x.buffer, np.int64(x.offset), np.int64(x.stride)) if want_xy else no_col
        yc = (y.buffer, np.int64(y.offset), np.int64(y.stride)) if want_xy else no_col
        cc = ((category.buffer, np.int64(category.offset), np.int64(category.stride))
              if has_cat else no_col)
        kern = _cpu_bounds_kernel(x.decode if want_xy else 0, y.decode if want_xy else 0,
                                  _unit(x, y, category))
        kern(*xc, *yc, *cc, np.int64(n), want_xy, has_cat, parts)
    keys = np.array([parts[:, 0].min(), parts[:, 1].max(), parts[:, 2].min(),
                     parts[:, 3].max(), parts[:, 4].min(), parts[:, 5].max()])
    vals = (keys ^ ((keys >> 63) & _LOW63)).view(np.float64)   # the key map is an involution
    return _bounds_result(vals[:4], [vals[4], vals[5], parts[:, 6].sum()], want_xy, has_cat)


# --------------------------------------------------------------------------
# CUDA
# --------------------------------------------------------------------------

def _cuda_decoders():
    """(decoder factory) -> device function turning a stored element into float64."""
    from ._common import bf16_pattern, cuda_device, f16_pattern

    if numba.config.ENABLE_CUDASIM:
        def _bits_f32(bits):
            return np.uint32(bits).view(np.float32)
    else:
        from numba.cuda import libdevice

        def _bits_f32(bits):
            return libdevice.int_as_float(np.int32(bits))
    bits_f32 = cuda_device(_bits_f32)
    bf16p = cuda_device(bf16_pattern)
    f16p = cuda_device(f16_pattern)

    def make(decode):
        if decode == DECODE_BF16:
            def _dec(x):
                return np.float64(bits_f32(bf16p(x)))
        elif decode == DECODE_F16:
            def _dec(x):
                bits, special = f16p(x)
                f = np.float64(bits_f32(bits))
                return f if special else f * 5.192296858534828e33
        else:
            def _dec(x):
                return np.float64(x)
        return cuda_device(_dec)
    return make


@functools.lru_cache(maxsize=None)
def cuda_kernel(xdec: int, ydec: int, vdec: int, has_value: bool, has_cat: bool,
                 minmax: bool, shared: bool):
    """Memoised CUDA scatter kernel for one (decodings, columns, privatisation) combination."""
    _import_cuda()
    from ._common import cuda_device

    make = _cuda_decoders()
    decx, decy, decv = make(xdec), make(ydec), make(vdec)
    pix = cuda_device(pixel_index)
    code = cuda_device(category_code)
    VALUE = has_value
    MINMAX = minmax
    CAT = has_cat
    SHARED = shared
    SH = CUDA_SHARED_CELLS if shared else 1
    u32 = numba.uint32
    i64 = numba.int64

    @cuda.jit
    def kernel(xb, xo, xst, yb, yo, yst, vb, vo, vst, cb, co, cst, n,
               x0, x1, y0, y1, w, h, k, count, nanc, sums, mins, maxs, cat, extra):
        t = cuda.threadIdx.x
        nt = cuda.blockDim.x
        npix = w * h
        sh = cuda.shared.array(SH, u32)
        ctr = cuda.shared.array(3, i64)
        cells = npix * k if CAT else npix
        if SHARED:
            for j in range(t, cells, nt):
                sh[j] = 0
        if t < 3:
            ctr[t] = 0
        cuda.syncthreads()
        outside = 0
        nonfinite = 0
        bad = 0
        for i in range(cuda.grid(1), n, cuda.gridsize(1)):
            p = pix(decx(xb[xo + i * xst]), decy(yb[yo + i * yst]), x0, x1, y0, y1, w, h)
            rel = 0
            ok = False
            if CAT:
                rel, ok, isbad = code(cb[co + i * cst], k, 0, k)
                if isbad:
                    bad += 1
            if p >= npix:
                if p == npix:
                    outside += 1
                else:
                    nonfinite += 1
                continue
            if VALUE:
                v = decv(vb[vo + i * vst])
                if math.isfinite(v):
                    cuda.atomic.add(count, p, 1)
                    cuda.atomic.add(sums, p, v)
                    if MINMAX:
                        # the plain read may be stale, but only ever too high
                        # (too low for max): skipping on it is exact
                        if v < mins[p]:
                            cuda.atomic.min(mins, p, v)
                        if v > maxs[p]:
                            cuda.atomic.max(maxs, p, v)
                else:
                    cuda.atomic.add(nanc, p, 1)
            if CAT:
                if ok:
                    if SHARED:
                        cuda.atomic.add(sh, p * k + rel, u32(1))
                    else:
                        cuda.atomic.add(cat, p * k + rel, 1)
            elif not VALUE:
                if SHARED:
                    cuda.atomic.add(sh, p, u32(1))
                else:
                    cuda.atomic.add(count, p, 1)
        if outside:
            cuda.atomic.add(ctr, 0, outside)
        if nonfinite:
            cuda.atomic.add(ctr, 1, nonfinite)
        if bad:
            cuda.atomic.add(ctr, 2, bad)
        cuda.syncthreads()
        if SHARED:
            for j in range(t, cells, nt):
                c = sh[j]
                if c:
                    if CAT:
                        cuda.atomic.add(cat, j, i64(c))
                    else:
                        cuda.atomic.add(count, j, i64(c))
        if t < 3:
            c = ctr[t]
            if c:
                cuda.atomic.add(extra, t, c)

    return kernel


@functools.lru_cache(maxsize=None)
def _cuda_exact_kernel(xdec: int, ydec: int, vdec: int):
    """The rare exact pass of the value sums on the GPU (see :func:`_exact_sums`)."""
    _import_cuda()
    from ._common import cuda_device

    make = _cuda_decoders()
    decx, decy, decv = make(xdec), make(ydec), make(vdec)
    pix = cuda_device(pixel_index)

    @cuda.jit
    def kernel(xb, xo, xst, yb, yo, yst, vb, vo, vst, n, x0, x1, y0, y1, w, h, phase,
               expo, acc):
        # expo[p] > UNFLAGGED marks a flagged pixel; phase 0 raises it to the
        # largest exponent of the pixel's values, phase 1 adds them scaled by it
        npix = w * h
        for i in range(cuda.grid(1), n, cuda.gridsize(1)):
            p = pix(decx(xb[xo + i * xst]), decy(yb[yo + i * yst]), x0, x1, y0, y1, w, h)
            if p < npix and expo[p] > _UNFLAGGED:
                v = decv(vb[vo + i * vst])
                if math.isfinite(v):
                    if phase == 0:
                        if v != 0.0:
                            cuda.atomic.max(expo, p, np.int64(math.frexp(abs(v))[1]))
                    else:
                        cuda.atomic.add(acc, p, math.ldexp(v, -int(expo[p])))

    return kernel


# exponent sentinels of the exact pass: not flagged / flagged, no value seen yet
_UNFLAGGED = -100000
_FLAGGED = -2000


@functools.lru_cache(maxsize=None)
def _cuda_helpers():
    """Fill, finalize and category-sum kernels (compiled on first use)."""
    _import_cuda()

    @cuda.jit
    def fill(arr, value):
        for i in range(cuda.grid(1), arr.size, cuda.gridsize(1)):
            arr[i] = value

    @cuda.jit
    def finalize(count, mins, maxs):
        # min / max of a pixel with no finite value: NaN
        for i in range(cuda.grid(1), count.size, cuda.gridsize(1)):
            if count[i] == 0:
                mins[i] = math.nan
                maxs[i] = math.nan

    @cuda.jit
    def flag_sums(count, sums, expo, extra):
        # pixels whose sum overflowed on the way (values near float64's limits)
        for i in range(cuda.grid(1), count.size, cuda.gridsize(1)):
            if count[i] > 0 and not math.isfinite(sums[i]):
                expo[i] = _FLAGGED
                cuda.atomic.add(extra, 3, 1)
            else:
                expo[i] = _UNFLAGGED

    @cuda.jit
    def fix_sums(expo, acc, sums):
        for i in range(cuda.grid(1), sums.size, cuda.gridsize(1)):
            e = expo[i]
            if e > _UNFLAGGED:
                # times 2**e in two exact steps: inf on overflow (math.ldexp
                # would raise under the simulator)
                h = int(e) // 2
                sums[i] = (acc[i] * math.ldexp(1.0, h)) * math.ldexp(1.0, int(e) - h)

    @cuda.jit
    def sum_cats(cat, k, count):
        for i in range(cuda.grid(1), count.size, cuda.gridsize(1)):
            s = 0
            for r in range(k):
                s += cat[i * k + r]
            count[i] = s

    return fill, finalize, sum_cats, flag_sums, fix_sums


def _launch(size: int, cap: int = CUDA_MAX_BLOCKS) -> tuple[int, int]:
    """(blocks, threads) for a grid-stride loop over ``size`` items."""
    return max(1, min(cap, -(-int(size) // CUDA_BLOCK))), CUDA_BLOCK


def _sm_count() -> int:
    try:
        return int(cuda.get_current_device().MULTIPROCESSOR_COUNT)
    except Exception:  # the simulator's fake device, or no attribute
        return 16


def _is_host(col: Column | None) -> bool:
    return col is not None and isinstance(col.buffer, np.ndarray)


def _device_chunks(cols: list, n: int):
    """Yield (m, [(buffer, offset, stride)...]) per chunk of points, host columns copied.

    Device columns are addressed in place (offset moved to the chunk);
    host columns travel as contiguous copies of the chunk's elements.
    """
    host = any(_is_host(c) for c in cols)
    step = CUDA_CHUNK if host else max(n, 1)
    for lo in range(0, n, step):
        hi = min(n, lo + step)
        out = []
        for c in cols:
            if c is None:
                out.append((cuda.to_device(np.zeros(1)), np.int64(0), np.int64(0)))
            elif _is_host(c):
                # the chunk's elements as a strided view (any sign, or 0), then
                # one contiguous copy of just those elements
                start = c.offset + lo * c.stride
                part = np.lib.stride_tricks.as_strided(
                    c.buffer[start:], shape=(hi - lo,), strides=(c.stride * c.buffer.itemsize,),
                    writeable=False)
                out.append((cuda.to_device(np.ascontiguousarray(part)), np.int64(0),
                            np.int64(1)))
            else:
                out.append((c.buffer, np.int64(c.offset + lo * c.stride), np.int64(c.stride)))
        yield hi - lo, out


def points_stats_cuda(x: Column, y: Column, value: Column | None, category: Column | None,
                      n: int, x_range, y_range, width: int, height: int,
                      n_categories: int = 0, want_minmax: bool = True) -> tuple[dict, dict]:
    """Per-pixel statistics of a point cloud, on the GPU.

    Same parameters and result as :func:`points_stats_cpu`, except that the
    column buffers may be device arrays (anything with
    ``__cuda_array_interface__``) or host ndarrays (streamed to the device in
    chunks of ``CUDA_CHUNK`` points), and the planes are numba device arrays
    (the counters are host ints).
    """
    _import_cuda()
    x0, x1, y0, y1, w, h, k = _check_args(x, y, value, category, n, x_range, y_range,
                                          width, height, n_categories)
    n = int(n)
    npix = w * h
    has_value = value is not None
    minmax = has_value and bool(want_minmax)
    has_cat = category is not None
    fill, finalize, sum_cats, flag_sums, fix_sums = _cuda_helpers()
    counters = {"outside": 0, "nonfinite_xy": 0, "bad_category": 0}

    def zeros(size, dtype, value=0):
        arr = cuda.device_array(max(size, 1), dtype)
        fill[_launch(arr.size)](arr, dtype(value))
        return arr

    count = zeros(npix, np.int64)
    nanc = zeros(npix if has_value else 1, np.int64)
    sums = zeros(npix if has_value else 1, np.float64)
    mins = zeros(npix if minmax else 1, np.float64, np.inf)
    maxs = zeros(npix if minmax else 1, np.float64, -np.inf)
    cat = zeros(npix * k if has_cat else 1, np.int64)
    extra = zeros(4, np.int64)      # outside, non-finite x/y, bad codes, overflowed sums
    if has_cat and k == 0:
        counters["bad_category"] = n
        has_cat = False
    if n > 0:
        cells = npix * k if has_cat else npix
        shared = (not has_value) and cells <= CUDA_SHARED_CELLS
        kern = cuda_kernel(x.decode, y.decode, value.decode if has_value else 0,
                            has_value, has_cat, minmax, shared)
        cap = 8 * _sm_count() if shared else CUDA_MAX_BLOCKS
        cols = [x, y, value if has_value else None, category if has_cat else None]
        for m, ((xb, xo, xs), (yb, yo, ys), (vb, vo, vs), (cb, co, cs)) in \
                _device_chunks(cols, n):
            kern[_launch(m, cap)](xb, xo, xs, yb, yo, ys, vb, vo, vs, cb, co, cs, np.int64(m),
                                  x0, x1, y0, y1, np.int64(w), np.int64(h), np.int64(k),
                                  count, nanc, sums, mins, maxs, cat, extra)
        if minmax:
            finalize[_launch(npix)](count, mins, maxs)
        if has_cat and not has_value:
            sum_cats[_launch(npix)](cat, np.int64(k), count)
        if has_value:
            expo = cuda.device_array(npix, np.int64)
            flag_sums[_launch(npix)](count, sums, expo, extra)
        ex = extra.copy_to_host()
        if has_value and ex[3]:
            # the rare exact pass: two more passes over the points, flagged pixels only
            acc = zeros(npix, np.float64)
            exact = _cuda_exact_kernel(x.decode, y.decode, value.decode)
            for phase in (0, 1):
                for m, ((xb, xo, xs), (yb, yo, ys), (vb, vo, vs)) in \
                        _device_chunks([x, y, value], n):
                    exact[_launch(m)](xb, xo, xs, yb, yo, ys, vb, vo, vs, np.int64(m), x0, x1,
                                      y0, y1, np.int64(w), np.int64(h), np.int64(phase), expo,
                                      acc)
            fix_sums[_launch(npix)](expo, acc, sums)
        counters["outside"] = int(ex[0])
        counters["nonfinite_xy"] = int(ex[1])
        if has_cat:
            counters["bad_category"] = int(ex[2])
    elif minmax:
        fill[_launch(npix)](mins, np.float64(np.nan))
        fill[_launch(npix)](maxs, np.float64(np.nan))
    planes = {"count": count[:npix].reshape(h, w),
              "nan_count": (nanc[:npix] if has_value else zeros(npix, np.int64)).reshape(h, w)}
    if has_value:
        planes["sum"] = sums[:npix].reshape(h, w)
        if minmax:
            planes["min"] = mins[:npix].reshape(h, w)
            planes["max"] = maxs[:npix].reshape(h, w)
    if category is not None:
        planes["count_cat"] = (cat[:npix * k].reshape(h, w, k) if k
                               else cuda.device_array((h, w, 0), np.int64))
    return planes, counters


@functools.lru_cache(maxsize=None)
def _cuda_bounds_kernel(xdec: int, ydec: int, want_xy: bool, has_cat: bool):
    _import_cuda()
    make = _cuda_decoders()
    decx, decy = make(xdec), make(ydec)
    XY = want_xy
    CAT = has_cat
    BLOCK = CUDA_BLOCK
    f64 = numba.float64

    @cuda.jit
    def kernel(xb, xo, xst, yb, yo, yst, cb, co, cst, n, out, bad_out):
        # out: x_min, x_max, y_min, y_max, c_min, c_max
        sh = cuda.shared.array((6, BLOCK), f64)
        t = cuda.threadIdx.x
        a0 = math.inf
        a1 = -math.inf
        a2 = math.inf
        a3 = -math.inf
        a4 = math.inf
        a5 = -math.inf
        bad = 0
        for i in range(cuda.grid(1), n, cuda.gridsize(1)):
            if XY:
                xv = decx(xb[xo + i * xst])
                yv = decy(yb[yo + i * yst])
                if math.isfinite(xv) and math.isfinite(yv):
                    a0 = min(a0, xv)
                    a1 = max(a1, xv)
                    a2 = min(a2, yv)
                    a3 = max(a3, yv)
            if CAT:
                cf = np.float64(cb[co + i * cst])
                # fmod is exact; math.floor would go through int64 (overflow)
                if math.isfinite(cf) and math.fmod(cf, 1.0) == 0.0:
                    a4 = min(a4, cf)
                    a5 = max(a5, cf)
                else:
                    bad += 1
        sh[0, t] = a0
        sh[1, t] = a1
        sh[2, t] = a2
        sh[3, t] = a3
        sh[4, t] = a4
        sh[5, t] = a5
        cuda.syncthreads()
        s = BLOCK // 2
        while s > 0:
            if t < s:
                for r in range(0, 6, 2):
                    sh[r, t] = min(sh[r, t], sh[r, t + s])
                    sh[r + 1, t] = max(sh[r + 1, t], sh[r + 1, t + s])
            cuda.syncthreads()
            s //= 2
        if t == 0:
            for r in range(0, 6, 2):
                cuda.atomic.min(out, r, sh[r, 0])
                cuda.atomic.max(out, r + 1, sh[r + 1, 0])
        if bad:
            cuda.atomic.add(bad_out, 0, bad)

    return kernel


def points_bounds_cuda(x: Column | None, y: Column | None, category: Column | None,
                       n: int) -> dict:
    """:func:`points_bounds_cpu` on the GPU (device or host column buffers)."""
    _import_cuda()
    want_xy = x is not None
    has_cat = category is not None
    out = np.array([np.inf, -np.inf, np.inf, -np.inf, np.inf, -np.inf])
    bad = np.zeros(1, np.int64)
    n = int(n)
    if n > 0 and (want_xy or has_cat):
        d_out = cuda.to_device(out)
        d_bad = cuda.to_device(bad)
        kern = _cuda_bounds_kernel(x.decode if want_xy else 0, y.decode if want_xy else 0,
                                   want_xy, has_cat)
        cols = [x if want_xy else None, y if want_xy else None, category]
        for m, ((xb, xo, xs), (yb, yo, ys), (cb, co, cs)) in _device_chunks(cols, n):
            kern[_launch(m, CUDA_MAX_BLOCKS)](xb, xo, xs, yb, yo, ys, cb, co, cs,
                                              np.int64(m), d_out, d_bad)
        out = d_out.copy_to_host()
        bad = d_bad.copy_to_host()
    return _bounds_result(out[:4], np.array([out[4], out[5], bad[0]]), want_xy, has_cat)


#: the families (docs/architecture.md, "The kernel contract")
POINTS_STATS = Family("points_stats", points_stats_cpu, points_stats_cuda,
                      _reference.points_stats,
                      "per-pixel counts, value statistics and categories of a point cloud")
POINTS_BOUNDS = Family("points_bounds", points_bounds_cpu, points_bounds_cuda,
                       _reference.bounds,
                       "exact data bounds of a point cloud's coordinates and codes")
