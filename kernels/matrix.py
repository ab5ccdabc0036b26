"""2-D tensor -> per-pixel statistics, on the CPU (Numba) and the GPU (Numba CUDA).

Both backends meet the matrix rule of docs/architecture.md ("Matrix") exactly
and have the same signature: :func:`matrix_stats_cpu` and
:func:`matrix_stats_cuda` take a flat buffer plus the address maps of
:mod:`._layout` and return planes of shape ``(height, width)`` with row 0 on
the ``y_range[0]`` side:

``count``      int64, finite elements in the pixel
``nan_count``  int64, NaN / +-inf elements in the pixel
``sum``        float64, sum of the finite elements
``min``/``max`` float64 (only when ``want_minmax``), NaN in empty pixels
``m2``         float64 (only when ``want_m2``), sum of squared deviations from
               the pixel mean, so ``std = sqrt(m2 / count)``; ``inf`` when it,
               or the sum, exceeds float64 (NumPy's ``std`` is inf then too)

min/max are the float64 of an element of the pixel (an int64 near 2**63: its
float64 rounding), compared in the element's own type.  Sums and ``m2`` are
never NaN for finite elements: a pixel whose fast-path sums overflow on the
way is recomputed without overflow (:func:`._common.make_exact_moments`).

CPU strategy
    Parallel over *tasks* = (pixel row, band of whole pixel columns), so each
    output pixel has exactly one owner and no atomics are needed.  Inside a
    task the input rows of the pixel row are folded column-wise into small
    accumulators (a unit-stride loop LLVM vectorises), then each pixel folds
    its columns.  ``std`` uses a per-column shift (the column's first value)
    and Chan's merge between columns, never E[x^2] - E[x]^2.  A column that
    holds NaN or inf is redone by a scalar loop that skips them (rare path);
    a pixel whose sum or ``m2`` still comes out NaN or inf (values beyond
    about 1e154) is read again by the exact path (rarer still).

GPU strategy
    One block per (pixel row, band of pixel columns); a thread per input
    column walks the pixel row's input rows, so a warp reads consecutive
    addresses; column partials meet in shared memory by atomics.
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
                      decode_bf16_f32, decode_f16, decode_f16_f32, make_exact_moments)
from ._family import Family
from ._parallel import serialised
from .reference import matrix as _reference

cuda = None     # numba.cuda once a GPU path runs (see _common.import_cuda)


def _import_cuda():
    return import_cuda(globals())


# Columns folded per pass of a CPU task: 5 float64 accumulators of this many
# cells stay in L1/L2, and extra memory stays O(threads x CPU_CHUNK).
CPU_CHUNK = 16384
# Threads per CUDA block; a band holds at most this many pixel columns.
CUDA_BLOCK = 256


@numba.njit(inline="always", cache=True)
def _native(x):
    return np.float64(x)


@numba.njit(inline="always", cache=True)
def _same(x):
    return x


_CPU_DECODERS = {DECODE_NATIVE: _native, DECODE_BF16: decode_bf16, DECODE_F16: decode_f16}
_CPU_LANES = {DECODE_NATIVE: _same, DECODE_BF16: decode_bf16_f32, DECODE_F16: decode_f16_f32}


def _axis_tuple(axis: _layout.Axis) -> tuple:
    return (np.int64(axis.t1), np.int64(axis.k2), np.int64(axis.t2),
            np.int64(axis.k3), np.int64(axis.t3))


@functools.lru_cache(maxsize=None)
def _cpu_kernel(decode: int, lane_dtype: str, contiguous: bool, want_minmax: bool, want_m2: bool):
    """Memoised: one compiled kernel per (element decoding, layout, stats) combination.

    Cached on disk across processes by :func:`._cache.cached_factory_kernel`.
    """
    dec = _CPU_DECODERS[decode]
    MINMAX = want_minmax
    M2 = want_m2
    # min/max run in the element's own type (float32 lanes are twice as wide)
    lane = _CPU_LANES[decode]
    LANE = np.dtype(lane_dtype)

    @numba.njit(inline="always")
    def _load(flat, base, cbase, coff, j):
        # Contiguous columns sit at base + cbase + j; otherwise coff[j] holds
        # each column's full offset.
        if contiguous:
            return dec(flat[base + cbase + j])
        return dec(flat[base + coff[j]])

    # The contiguous path folds four rows per pass, one statistic per loop:
    # loops that read several rows but write one accumulator are the ones
    # LLVM vectorises (a loop writing several arrays needs too many alias
    # checks and stays scalar), and four rows per pass cut accumulator traffic.
    @numba.njit
    def _init(a, q, k, mn, mx, s0):
        # k (the shift of each column's pixel) is set by the caller.
        for j in range(a.size):
            a[j] = 0.0
        if M2:
            for j in range(a.size):
                q[j] = 0.0
            _shift1(a, q, k, s0)
        else:
            _sum1(a, s0)
        if MINMAX:
            for j in range(mn.size):
                mn[j] = lane(s0[j])
            for j in range(mx.size):
                mx[j] = lane(s0[j])

    @numba.njit
    def _sum4(a, s0, s1, s2, s3):
        for j in range(a.size):
            a[j] += ((np.float64(lane(s0[j])) + np.float64(lane(s1[j])))
                     + (np.float64(lane(s2[j])) + np.float64(lane(s3[j]))))

    @numba.njit
    def _sum1(a, s0):
        for j in range(a.size):
            a[j] += np.float64(lane(s0[j]))

    @numba.njit
    def _shift1(a, q, k, s0):
        for j in range(a.size):
            d = np.float64(lane(s0[j])) - k[j]
            a[j] += d
            q[j] += d * d

    @numba.njit(fastmath={"contract"})
    def _moments4(a, q, k, s0, s1, s2, s3):
        for j in range(a.size):
            kj = k[j]
            d0 = np.float64(lane(s0[j])) - kj
            d1 = np.float64(lane(s1[j])) - kj
            d2 = np.float64(lane(s2[j])) - kj
            d3 = np.float64(lane(s3[j])) - kj
            a[j] += (d0 + d1) + (d2 + d3)
            q[j] += (d0 * d0 + d1 * d1) + (d2 * d2 + d3 * d3)

    @numba.njit
    def _minmax4(mn, mx, s0, s1, s2, s3):
        for j in range(mn.size):
            lo = min(min(lane(s0[j]), lane(s1[j])), min(lane(s2[j]), lane(s3[j])))
            hi = max(max(lane(s0[j]), lane(s1[j])), max(lane(s2[j]), lane(s3[j])))
            mn[j] = lo if lo < mn[j] else mn[j]
            mx[j] = hi if hi > mx[j] else mx[j]

    @numba.njit
    def _fold4(a, q, k, mn, mx, s0, s1, s2, s3):
        if M2:
            _moments4(a, q, k, s0, s1, s2, s3)
        else:
            _sum4(a, s0, s1, s2, s3)
        if MINMAX:
            _minmax4(mn, mx, s0, s1, s2, s3)

    @numba.njit
    def _fold_contiguous(flat, offset, rax, r0, r1, cbase, width, a, q, k, mn, mx):
        aw = a[:width]
        qw = q[:width] if M2 else q
        kw = k[:width] if M2 else k
        mnw = mn[:width] if MINMAX else mn
        mxw = mx[:width] if MINMAX else mx
        b = offset + _layout.axis_offset(rax, r0) + cbase
        _init(aw, qw, kw, mnw, mxw, flat[b: b + width])
        r = r0 + 1
        while r + 4 <= r1:
            b0 = offset + _layout.axis_offset(rax, r) + cbase
            b1 = offset + _layout.axis_offset(rax, r + 1) + cbase
            b2 = offset + _layout.axis_offset(rax, r + 2) + cbase
            b3 = offset + _layout.axis_offset(rax, r + 3) + cbase
            _fold4(aw, qw, kw, mnw, mxw, flat[b0: b0 + width], flat[b1: b1 + width],
                   flat[b2: b2 + width], flat[b3: b3 + width])
            r += 4
        while r < r1:
            b0 = offset + _layout.axis_offset(rax, r) + cbase
            s0 = flat[b0: b0 + width]
            # A lone row: min/max fold it four times (idempotent), the sums once.
            if M2:
                _shift1(aw, qw, kw, s0)
            else:
                _sum1(aw, s0)
            if MINMAX:
                _minmax4(mnw, mxw, s0, s0, s0, s0)
            r += 1

    @numba.njit
    def _fold_rows(flat, offset, rax, r0, r1, cbase, coff, width, a, q, k, mn, mx):
        # Column-wise fold of rows [r0, r1) over `width` columns.
        if contiguous:
            _fold_contiguous(flat, offset, rax, r0, r1, cbase, width, a, q, k, mn, mx)
            return
        for r in range(r0, r1):
            base = offset + _layout.axis_offset(rax, r)
            for j in range(width):
                raw = flat[base + coff[j]]
                v = dec(raw)
                # min/max in the lane type, as on the contiguous path: the
                # float64 of an int64 near 2**63 rounds to 2**63, which an
                # int64 lane cannot hold (it would wrap to -2**63)
                lv = lane(raw)
                if r == r0:
                    if M2:
                        d = v - k[j]
                        a[j] = d
                        q[j] = d * d
                    else:
                        a[j] = v
                    if MINMAX:
                        mn[j] = lv
                        mx[j] = lv
                else:
                    if M2:
                        d = v - k[j]
                        a[j] += d
                        q[j] += d * d
                    else:
                        a[j] += v
                    if MINMAX:
                        mn[j] = lv if lv < mn[j] else mn[j]
                        mx[j] = lv if lv > mx[j] else mx[j]

    @numba.njit
    def _slow_column(flat, offset, rax, r0, r1, coloff):
        # One column with NaN/inf in it: skip them; Welford for the moments.
        n = 0
        s = 0.0
        lo = np.inf
        hi = -np.inf
        mean = 0.0
        m2 = 0.0
        for r in range(r0, r1):
            v = dec(flat[offset + _layout.axis_offset(rax, r) + coloff])
            if v - v == 0.0:
                n += 1
                s += v
                lo = min(lo, v)
                hi = max(hi, v)
                delta = v - mean
                mean += delta / n
                m2 += delta * (v - mean)
        return n, s, lo, hi, mean, m2

    @numba.njit(fastmath={"reassoc"})
    def _pixel_sums(a, q, ja, jb):
        # Reassociation lets these short sums vectorise; NaN/inf still
        # propagate (no nnan flag), which is how the caller spots them.
        s = 0.0
        sq = 0.0
        run = a[ja:jb]
        for j in range(run.size):
            s += run[j]
        if M2:
            qrun = q[ja:jb]
            for j in range(qrun.size):
                sq += qrun[j]
        return s, sq

    @numba.njit(fastmath={"nnan", "nsz", "reassoc"})
    def _pixel_minmax(mn, mx, ja, jb):
        # Only called for pixels whose columns are all finite, so the nnan
        # promise holds and the reductions vectorise (slices, not range(ja,
        # jb): indices known non-negative).
        lo_run = mn[ja:jb]
        hi_run = mx[ja:jb]
        lo = lo_run[0]
        hi = hi_run[0]
        for j in range(lo_run.size):
            v = lo_run[j]
            lo = v if v < lo else lo
        for j in range(hi_run.size):
            v = hi_run[j]
            hi = v if v > hi else hi
        return lo, hi

    @numba.njit
    def _pixel_shift(flat, offset, rax, r0, c0, c1, contiguous_cols, cax):
        # The pixel's shift for the stable variance: its first finite value
        # in its first row (0.0 if that row has none).
        base = offset + _layout.axis_offset(rax, r0)
        for c in range(c0, c1):
            if contiguous_cols:
                v = dec(flat[base + c])
            else:
                v = dec(flat[base + _layout.axis_offset(cax, c)])
            if v - v == 0.0:
                return v
        return 0.0

    @numba.njit(inline="always")
    def _element(flat, ctx, r, c):
        offset, rax, cax = ctx
        return dec(flat[offset + _layout.axis_offset(rax, r) + _layout.axis_offset(cax, c)])

    # a pixel whose sum or m2 came out NaN/inf (values beyond ~1e154) is
    # recomputed from its elements without intermediate overflow; inlined,
    # so its machine code carries this combination's name
    _exact_moments = numba.njit(inline="always")(make_exact_moments(_element))

    @numba.njit
    def _task(flat, offset, rax, cax, r0, r1, p0, p1, cstart, cend,
              qy, flip_cols, transposed, wphys,
              count, nan_count, sums, mins, maxs, m2s):
        npx = p1 - p0
        pn = np.zeros(npx, np.int64)
        ps = np.zeros(npx)      # sum, or shifted sum sum(v - K) when M2
        pq = np.zeros(npx)      # shifted sum of squares sum((v - K)^2)
        pk = np.zeros(npx)      # per-pixel shift K
        plo = np.full(npx, np.inf)
        phi = np.full(npx, -np.inf)
        nrows = r1 - r0
        c0 = cstart[p0]
        c1 = cend[p1 - 1]
        chunk = min(CPU_CHUNK, max(c1 - c0, 1))
        a = np.empty(chunk)
        q = np.empty(chunk if M2 else 0)
        k = np.empty(chunk if M2 else 0)
        mn = np.empty(chunk if MINMAX else 0, LANE)
        mx = np.empty(chunk if MINMAX else 0, LANE)
        coff = np.empty(0 if contiguous else chunk, np.int64)
        if nrows > 0 and M2:
            for lp in range(npx):
                pk[lp] = _pixel_shift(flat, offset, rax, r0, cstart[p0 + lp],
                                      cend[p0 + lp], contiguous, cax)
        p = p0
        if nrows > 0:
            for cc0 in range(c0, c1, chunk):
                width = min(chunk, c1 - cc0)
                if not contiguous:
                    for j in range(width):
                        coff[j] = _layout.axis_offset(cax, cc0 + j)
                if M2:
                    pp = p
                    while pp < p1 and cstart[pp] < cc0 + width:
                        kv = pk[pp - p0]
                        for j in range(max(cstart[pp], cc0) - cc0,
                                       min(cend[pp], cc0 + width) - cc0):
                            k[j] = kv
                        pp += 1
                _fold_rows(flat, offset, rax, r0, r1, cc0, coff, width, a, q, k, mn, mx)
                # Each pixel folds its columns that fall in this chunk.
                while p < p1 and cstart[p] < cc0 + width:
                    lp = p - p0
                    ja = max(cstart[p], cc0) - cc0
                    jb = min(cend[p], cc0 + width) - cc0
                    s, sq = _pixel_sums(a, q, ja, jb)
                    if s - s == 0.0 and sq - sq == 0.0:
                        # every column finite: one branch-free fold
                        ps[lp] += s
                        pq[lp] += sq
                        pn[lp] += nrows * (jb - ja)
                        if MINMAX:
                            lo, hi = _pixel_minmax(mn, mx, ja, jb)
                            plo[lp] = min(plo[lp], lo)
                            phi[lp] = max(phi[lp], hi)
                    else:
                        # some column holds NaN/inf: redo those columns, skipping them
                        for j in range(ja, jb):
                            ok = a[j] - a[j] == 0.0
                            if M2:
                                ok = ok and (q[j] - q[j] == 0.0)
                            if ok:
                                ps[lp] += a[j]
                                if M2:
                                    pq[lp] += q[j]
                                pn[lp] += nrows
                                if MINMAX:
                                    plo[lp] = min(plo[lp], mn[j])
                                    phi[lp] = max(phi[lp], mx[j])
                                continue
                            coloff = (cc0 + j) if contiguous else coff[j]
                            nj, sj, loj, hij, mj, m2j = _slow_column(
                                flat, offset, rax, r0, r1, coloff)
                            if nj > 0:
                                if M2:
                                    kv = pk[lp]
                                    ps[lp] += sj - nj * kv
                                    pq[lp] += m2j + nj * (mj - kv) * (mj - kv)
                                else:
                                    ps[lp] += sj
                                pn[lp] += nj
                                if MINMAX:
                                    plo[lp] = min(plo[lp], loj)
                                    phi[lp] = max(phi[lp], hij)
                    if cend[p] <= cc0 + width:
                        p += 1
                    else:
                        break
        for lp in range(npx):
            pp = p0 + lp
            qx = wphys - 1 - pp if flip_cols else pp
            yy, xx = (qx, qy) if transposed else (qy, qx)
            n = pn[lp]
            count[yy, xx] = n
            nan_count[yy, xx] = nrows * (cend[pp] - cstart[pp]) - n
            m2 = 0.0
            if M2:
                total = ps[lp] + n * pk[lp]
                if n > 0:
                    m2 = pq[lp] - ps[lp] * ps[lp] / n
            else:
                total = ps[lp]
            if not (total - total == 0.0 and m2 - m2 == 0.0):
                # overflow somewhere (|values| beyond ~1e154): the rare exact path
                _, total, m2 = _exact_moments(flat, (offset, rax, cax), r0, r1,
                                              cstart[pp], cend[pp])
            sums[yy, xx] = total
            if M2:
                m2s[yy, xx] = m2 if m2 > 0.0 else 0.0
            if MINMAX:
                mins[yy, xx] = plo[lp] if n > 0 else np.nan
                maxs[yy, xx] = phi[lp] if n > 0 else np.nan

    @numba.njit(parallel=True)
    def kernel(flat, offset, rax, cax, rstart, rend, cstart, cend, bp0, bp1,
               flip_rows, flip_cols, transposed,
               count, nan_count, sums, mins, maxs, m2s):
        hphys = rstart.size
        wphys = cstart.size
        nb = bp0.size
        for t in prange(hphys * nb):
            py = t // nb
            b = t - py * nb
            qy = hphys - 1 - py if flip_rows else py
            _task(flat, offset, rax, cax, rstart[py], rend[py], bp0[b], bp1[b],
                  cstart, cend, qy, flip_cols, transposed, wphys,
                  count, nan_count, sums, mins, maxs, m2s)

    return serialised(cached_factory_kernel(kernel, decode, lane_dtype, contiguous, want_minmax,
                                            want_m2))


def _alloc(xp, height, width, want_minmax, want_m2):
    # Every pixel is written by exactly one task (CPU) or block (GPU), so the
    # planes need no clearing.
    none = xp.empty((0, 0))
    return {
        "count": xp.empty((height, width), np.int64),
        "nan_count": xp.empty((height, width), np.int64),
        "sum": xp.empty((height, width), np.float64),
        "min": xp.empty((height, width), np.float64) if want_minmax else none,
        "max": xp.empty((height, width), np.float64) if want_minmax else none,
        "m2": xp.empty((height, width), np.float64) if want_m2 else none,
    }


def _result(planes, want_minmax, want_m2):
    return {name: arr for name, arr in planes.items()
            if (name not in ("min", "max") or want_minmax) and (name != "m2" or want_m2)}


def matrix_stats_cpu(buffer, offset, rows, cols, x_range, y_range, width, height,
                     decode=DECODE_NATIVE, want_minmax=True, want_m2=True, origin=(0, 0)):
    """Per-pixel statistics of a strided matrix, on the CPU.

    Parameters
    ----------
    buffer : (L,) ndarray
        Flat host buffer holding every element (raw uint16 bits for bf16/fp16).
    offset : int
        Element index in ``buffer`` of logical element (0, 0).
    rows, cols : _layout.Axis
        Address maps of the logical row and column axes.
    x_range, y_range : (float, float)
        Visible window in data space (column and row coordinates).
    width, height : int
        Canvas size in pixels.
    decode : int
        ``DECODE_NATIVE``, ``DECODE_BF16`` or ``DECODE_F16``.
    want_minmax, want_m2 : bool
        Compute the min/max planes and the m2 plane (one pass either way).
    origin : (int, int)
        (row, column) of element (0, 0) in the canvas's data space, when the
        matrix is a chunk of a larger tensor; pixels are assigned exactly as
        for the whole tensor.

    Returns
    -------
    dict of (height, width) ndarrays
        ``count``, ``nan_count``, ``sum`` and, as asked, ``min``, ``max``, ``m2``.
    """
    pl = _layout.plan(offset, rows, cols, x_range, y_range, width, height, origin)
    bp0, bp1 = _layout.bands(pl.cstart, pl.cend, CPU_CHUNK)
    planes = _alloc(np, height, width, want_minmax, want_m2)
    if bp0.size and pl.rstart.size:
        lane_dtype = buffer.dtype.str if decode == DECODE_NATIVE else "<f4"
        kernel = _cpu_kernel(int(decode), lane_dtype, pl.contiguous,
                             bool(want_minmax), bool(want_m2))
        kernel(buffer, np.int64(pl.offset), _axis_tuple(pl.rows), _axis_tuple(pl.cols),
               pl.rstart, pl.rend, pl.cstart, pl.cend, bp0, bp1,
               pl.flip_rows, pl.flip_cols, pl.transposed,
               planes["count"], planes["nan_count"], planes["sum"],
               planes["min"], planes["max"], planes["m2"])
    return _result(planes, want_minmax, want_m2)


# --------------------------------------------------------------------------
# CUDA
# --------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def cuda_kernel(decode: int, want_minmax: bool, want_m2: bool):
    """Memoised CUDA kernel for one (element decoding, stats) combination."""
    _import_cuda()

    from ._common import cuda_decoder, cuda_device

    MINMAX = want_minmax
    M2 = want_m2
    BLOCK = CUDA_BLOCK
    f64 = numba.float64

    dec = cuda_decoder(decode)

    axis_off = cuda_device(_layout.cell_offset.py_func)

    def _element(flat, ctx, r, c):
        offset, rax, cax = ctx
        return dec(flat[offset + axis_off(rax[0], rax[1], rax[2], rax[3], rax[4], r)
                        + axis_off(cax[0], cax[1], cax[2], cax[3], cax[4], c)])
    # the rare exact path of a pixel whose sum or m2 overflowed (as on the CPU)
    exact_moments = cuda_device(make_exact_moments(cuda_device(_element)))

    @cuda.jit
    def kernel(flat, offset, rax, cax, rstart, rend, cstart, cend, bp0, bp1,
               py_base, hphys, flip_rows, flip_cols, transposed,
               count, nan_count, sums, mins, maxs, m2s):
        sh_n = cuda.shared.array(BLOCK, f64)
        sh_s = cuda.shared.array(BLOCK, f64)
        sh_lo = cuda.shared.array(BLOCK, f64)
        sh_hi = cuda.shared.array(BLOCK, f64)
        sh_sd = cuda.shared.array(BLOCK, f64)
        sh_sq = cuda.shared.array(BLOCK, f64)
        sh_k = cuda.shared.array(BLOCK, f64)
        b = cuda.blockIdx.x
        ly = cuda.blockIdx.y
        py = py_base + ly
        t = cuda.threadIdx.x
        p0 = bp0[b]
        p1 = bp1[b]
        r0 = rstart[ly]
        r1 = rend[ly]
        rt1, rk2, rt2, rk3, rt3 = rax
        ct1, ck2, ct2, ck3, ct3 = cax
        if t < p1 - p0:
            sh_n[t] = 0.0
            sh_s[t] = 0.0
            sh_lo[t] = math.inf
            sh_hi[t] = -math.inf
            sh_sd[t] = 0.0
            sh_sq[t] = 0.0
            # Shift for the stable variance: the pixel's first finite value
            # in its first row (as on the CPU), 0.0 if that row has none.
            kv = 0.0
            if M2 and r1 > r0:
                rbase = offset + axis_off(rt1, rk2, rt2, rk3, rt3, r0)
                for c in range(cstart[p0 + t], cend[p0 + t]):
                    v = dec(flat[rbase + axis_off(ct1, ck2, ct2, ck3, ct3, c)])
                    if math.isfinite(v):
                        kv = v
                        break
            sh_k[t] = kv
        cuda.syncthreads()
        lp = 0
        for c in range(cstart[p0] + t, cend[p1 - 1], BLOCK):
            while cend[p0 + lp] <= c:
                lp += 1
            coff = offset + axis_off(ct1, ck2, ct2, ck3, ct3, c)
            kv = sh_k[lp]
            n = 0.0
            s = 0.0
            lo = math.inf
            hi = -math.inf
            sd = 0.0
            sq = 0.0
            for r in range(r0, r1):
                v = dec(flat[coff + axis_off(rt1, rk2, rt2, rk3, rt3, r)])
                if math.isfinite(v):
                    n += 1.0
                    s += v
                    if MINMAX:
                        lo = min(lo, v)
                        hi = max(hi, v)
                    if M2:
                        d = v - kv
                        sd += d
                        sq += d * d
            if n > 0.0:
                cuda.atomic.add(sh_n, lp, n)
                cuda.atomic.add(sh_s, lp, s)
                if MINMAX:
                    cuda.atomic.min(sh_lo, lp, lo)
                    cuda.atomic.max(sh_hi, lp, hi)
                if M2:
                    cuda.atomic.add(sh_sd, lp, sd)
                    cuda.atomic.add(sh_sq, lp, sq)
        cuda.syncthreads()
        if t < p1 - p0:
            pp = p0 + t
            wphys = cstart.size
            qx = wphys - 1 - pp if flip_cols else pp
            qy = hphys - 1 - py if flip_rows else py
            yy = qx if transposed else qy
            xx = qy if transposed else qx
            n = sh_n[t]
            ni = np.int64(n)
            count[yy, xx] = ni
            nan_count[yy, xx] = (r1 - r0) * (cend[pp] - cstart[pp]) - ni
            total = sh_s[t]
            m2 = 0.0
            if M2 and n > 0.0:
                m2 = sh_sq[t] - sh_sd[t] * sh_sd[t] / n
            if not (math.isfinite(total) and math.isfinite(m2)):
                # overflow somewhere (|values| beyond ~1e154): the rare exact path
                _, total, m2 = exact_moments(flat, (offset, rax, cax), r0, r1, cstart[pp],
                                             cend[pp])
            sums[yy, xx] = total
            if MINMAX:
                mins[yy, xx] = sh_lo[t] if n > 0.0 else math.nan
                maxs[yy, xx] = sh_hi[t] if n > 0.0 else math.nan
            if M2:
                m2s[yy, xx] = m2 if m2 > 0.0 else 0.0

    return kernel


# Host data goes to the GPU in slabs of whole pixel rows of at most this size.
CUDA_STREAM_BYTES = 256 << 20


def matrix_stats_cuda(buffer, offset, rows, cols, x_range, y_range, width, height,
                      decode=DECODE_NATIVE, want_minmax=True, want_m2=True, origin=(0, 0)):
    """Per-pixel statistics of a strided matrix, on the GPU.

    Same parameters and result as :func:`matrix_stats_cpu`, except that
    ``buffer`` may be a device array (anything ``numba.cuda.as_cuda_array``
    takes) or a host ndarray, which is then streamed to the device in slabs of
    whole pixel rows, and the returned planes are numba device arrays.
    """
    _import_cuda()
    pl = _layout.plan(offset, rows, cols, x_range, y_range, width, height, origin)
    bp0, bp1 = _layout.bands(pl.cstart, pl.cend, CUDA_BLOCK, max_pixels=CUDA_BLOCK)
    planes = _alloc(_CudaAlloc, height, width, want_minmax, want_m2)
    hphys = pl.rstart.size
    if bp0.size == 0 or hphys == 0:
        return _result(planes, want_minmax, want_m2)
    kernel = cuda_kernel(int(decode), bool(want_minmax), bool(want_m2))
    rax, cax = _axis_tuple(pl.rows), _axis_tuple(pl.cols)
    # All index tables travel in one host-to-device copy.
    tables = (pl.cstart, pl.cend, bp0, bp1, pl.rstart, pl.rend)
    d_all = cuda.to_device(np.concatenate(tables))
    cuts = np.cumsum([0] + [t.size for t in tables])
    d_cstart, d_cend, d_bp0, d_bp1, d_rstart, d_rend = (
        d_all[cuts[i]:cuts[i + 1]] for i in range(len(tables)))
    args_out = (planes["count"], planes["nan_count"], planes["sum"],
                planes["min"], planes["max"], planes["m2"])
    on_device = not isinstance(buffer, np.ndarray)
    if on_device:
        slabs = [(0, hphys, buffer, pl.offset)]
    else:
        slabs = _host_slabs(buffer, pl, hphys)
    for y0, y1, dbuf, off in slabs:
        if not on_device:
            dbuf = cuda.to_device(np.ascontiguousarray(dbuf))
        kernel[(bp0.size, y1 - y0), CUDA_BLOCK](
            dbuf, np.int64(off), rax, cax, d_rstart[y0:y1], d_rend[y0:y1],
            d_cstart, d_cend, d_bp0, d_bp1, np.int64(y0), np.int64(hphys),
            pl.flip_rows, pl.flip_cols, pl.transposed, *args_out)
    return _result(planes, want_minmax, want_m2)


class _CudaAlloc:
    """Just enough of an array module to allocate device planes."""

    @staticmethod
    def empty(shape, dtype=np.float64):
        return _import_cuda().device_array(shape, dtype)


def _host_slabs(buffer, pl, hphys):
    """Split a host buffer into slabs of whole pixel rows that fit CUDA_STREAM_BYTES."""
    itemsize = buffer.dtype.itemsize
    # Only the window's columns travel.
    win = pl.cols.offsets(np.arange(pl.cstart[0], max(pl.cend[-1], pl.cstart[0] + 1)))
    col_lo, col_hi = int(win.min()), int(win.max())
    row_off = pl.rows.offsets
    y0 = 0
    while y0 < hphys:
        y1 = y0 + 1
        # Grow the slab while the memory it spans stays under the budget.
        while y1 < hphys:
            r_lo, r_hi = pl.rstart[y0], pl.rend[y1] - 1
            span = (abs(int(row_off(np.array([r_hi]))[0] - row_off(np.array([r_lo]))[0]))
                    + col_hi - col_lo + 1)
            if span * itemsize > CUDA_STREAM_BYTES:
                break
            y1 += 1
        rows_in = np.arange(pl.rstart[y0], max(pl.rend[y1 - 1], pl.rstart[y0] + 1))
        offs = row_off(rows_in) if rows_in.size else np.zeros(1, np.int64)
        lo = pl.offset + int(offs.min()) + col_lo
        hi = pl.offset + int(offs.max()) + col_hi + 1
        lo = max(lo, 0)
        hi = min(hi, buffer.shape[0])
        yield y0, y1, buffer[lo:hi], pl.offset - lo
        y0 = y1


#: the family (docs/architecture.md, "The kernel contract")
MATRIX_STATS = Family("matrix_stats", matrix_stats_cpu, matrix_stats_cuda,
                      _reference.matrix_stats,
                      "per-pixel count, sum, m2, min, max and NaN count of a strided matrix")
