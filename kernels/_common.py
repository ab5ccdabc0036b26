"""Helpers shared by the CPU loops and the CUDA kernels.

Each helper is written once as a plain Python function and compiled twice:
``numba.njit`` here for the CPU, ``numba.cuda.jit(device=True)`` by the CUDA
factories (see :func:`cuda_device`).  Nothing here imports numba.cuda at module
level, so the CPU path works on machines without CUDA.
"""

from __future__ import annotations

import functools
import math

import numba
import numpy as np

# How a stored element becomes a number.  bfloat16 and float16 arrive as their
# raw 16-bit patterns (uint16): NumPy has no bfloat16 and Numba's CPU target no
# float16, and decoding in the kernel keeps the input in place (no upcast copy).
DECODE_NATIVE = 0
DECODE_BF16 = 1
DECODE_F16 = 2

_F16_DENORM_SCALE = 5.192296858534828e33  # 2**112: rebias float16 exponent to float32


def bf16_pattern(h):
    """float32 bit pattern of the bfloat16 whose bits are ``h``."""
    return np.uint32(h) << np.uint32(16)


def f16_pattern(h):
    """float32 bit pattern for float16 bits ``h``, before the exponent rebias.

    Returns ``(bits, special)``: for finite values ``bits`` reinterpreted as
    float32 and multiplied by 2**112 is the exact value (normal and subnormal
    alike); for inf/NaN (``special``) ``bits`` is already the float32 pattern.
    """
    h = np.uint32(h)
    sign = (h & np.uint32(0x8000)) << np.uint32(16)
    if (h & np.uint32(0x7C00)) == np.uint32(0x7C00):
        return sign | np.uint32(0x7F800000) | ((h & np.uint32(0x3FF)) << np.uint32(13)), True
    return sign | ((h & np.uint32(0x7FFF)) << np.uint32(13)), False


@numba.njit(inline="always", cache=True)
def _f32_from_bits(bits):
    return np.uint32(bits).view(np.float32)


_bf16_pattern = numba.njit(inline="always", cache=True)(bf16_pattern)
_f16_pattern = numba.njit(inline="always", cache=True)(f16_pattern)


@numba.njit(inline="always", cache=True)
def decode_bf16_f32(h):
    """bfloat16 bits -> float32 (exact)."""
    return _f32_from_bits(_bf16_pattern(h))


@numba.njit(inline="always", cache=True)
def decode_f16_f32(h):
    """float16 bits -> float32 (exact, subnormals, inf and NaN included)."""
    bits, special = _f16_pattern(h)
    f = _f32_from_bits(bits)
    if special:
        return f
    return f * np.float32(_F16_DENORM_SCALE)


@numba.njit(inline="always", cache=True)
def decode_bf16(h):
    """bfloat16 bits -> float64 (exact)."""
    return np.float64(_f32_from_bits(_bf16_pattern(h)))


@numba.njit(inline="always", cache=True)
def decode_f16(h):
    """float16 bits -> float64 (exact, subnormals, inf and NaN included)."""
    bits, special = _f16_pattern(h)
    f = np.float64(_f32_from_bits(bits))
    if special:
        return f
    return f * _F16_DENORM_SCALE


@numba.njit(inline="always", cache=True)
def decode_value(raw, decode):
    """One element as float64 by its decoding (DECODE_NATIVE / _BF16 / _F16).

    Every branch types for every buffer dtype; only the one for the buffer's
    decoding ever runs.
    """
    if decode == DECODE_BF16:
        return decode_bf16(raw)
    if decode == DECODE_F16:
        return decode_f16(raw)
    return np.float64(raw)


def window_problem(lo: float, hi: float, npix: int | None = None) -> str | None:
    """What is wrong with the window ``(lo, hi)`` over ``npix`` pixels, or None.

    Every pixel formula of the kernels, ``floor((x - lo) * npix / (hi - lo))``,
    is exact only for a window whose bounds are finite with ``lo < hi``, whose
    width ``hi - lo`` is finite (``(-1e308, 1e308)`` is not) and -- given
    ``npix`` -- whose ``(hi - lo) * npix`` is finite, so that no value inside
    the window overflows on its way to a pixel.  The text completes
    ``"<name>: "`` in an error message.
    """
    lo, hi = float(lo), float(hi)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return f"expected finite bounds; got ({lo!r}, {hi!r})"
    if not lo < hi:
        return f"expected low < high; got ({lo!r}, {hi!r})"
    width = hi - lo
    if not math.isfinite(width):
        return (f"expected a span a float64 can hold, a finite width hi - lo; got "
                f"({lo!r}, {hi!r}), whose width overflows float64")
    if npix is not None and not math.isfinite(width * int(npix)):
        return (f"expected a span a float64 can hold at {int(npix)} pixels, a width hi - lo "
                f"at most {_FLOAT64_MAX / int(npix):.6g} (so that (x - lo) * pixels stays "
                f"finite); got ({lo!r}, {hi!r})")
    return None


_FLOAT64_MAX = float(np.finfo(np.float64).max)


@numba.njit(cache=True)
def _pixel_of(i, lo, hi, npix):
    # The contract from docs/architecture.md, evaluated in this exact order so that every
    # backend (and the reference) rounds identically.  The quotient is clamped
    # to [-1, npix] before the integer conversion: a cell far outside the
    # window (or a product that overflows to inf) stays outside on its own
    # side, where converting inf or NaN to int64 would give INT64_MIN.
    q = ((i + 0.5 - lo) * npix) / (hi - lo)
    if q >= npix:
        return np.int64(npix)
    if not q >= -1.0:       # below the canvas, or NaN (an infinite width)
        return np.int64(-1)
    return np.int64(math.floor(q))


@numba.njit(cache=True)
def _first_at_or_after(p, guess, n, lo, hi, npix, origin):
    """The first cell ``j`` in ``[0, n]`` whose pixel is ``>= p`` (``n`` if none).

    The pixel of a cell never decreases with its index, so the answer is
    found from ``guess`` by a galloping search: a step or two when the guess
    is good (the usual case: float error moves it by a cell at most), and
    O(log n) steps whatever the guess -- never a walk over the axis.
    """
    if guess < n and _pixel_of(guess + origin, lo, hi, npix) < p:
        # the answer lies above: a (< p) ... b (>= p, or n)
        a = guess
        step = np.int64(1)
        b = a + step
        while b < n and _pixel_of(b + origin, lo, hi, npix) < p:
            a = b
            step *= 2
            b = a + step
        b = min(b, n)
    else:
        # the answer is guess or below: a (< p, or -1) ... b (>= p, or n)
        b = guess
        step = np.int64(1)
        a = b - step
        while a >= 0 and _pixel_of(a + origin, lo, hi, npix) >= p:
            b = a
            step *= 2
            a = b - step
        a = max(a, np.int64(-1))
    while b - a > 1:
        m = (a + b) // 2
        if _pixel_of(m + origin, lo, hi, npix) >= p:
            b = m
        else:
            a = m
    return b


@numba.njit(cache=True)
def axis_ranges(n, lo, hi, npix, origin=0):
    """Which cells of one axis land in each pixel.

    Cell ``i`` (centre ``i + 0.5``) of an axis of ``n`` cells belongs to pixel
    ``floor((i + 0.5 - lo) * npix / (hi - lo))`` when that lies in
    ``[0, npix)``.  The map is monotone, so each pixel holds a contiguous run.

    Parameters
    ----------
    n : int
        Number of cells along the axis.
    lo, hi : float
        Visible data range, ``lo < hi``, with ``(hi - lo) * npix`` finite
        (callers refuse other windows; given one anyway, this still returns
        within O(npix log n) steps, with every cell of the axis on the side
        its clamped pixel puts it).
    npix : int
        Number of pixels along the axis.
    origin : int
        Global index of local cell 0 (a chunk of a larger tensor): the pixel
        of local cell ``i`` is computed for ``i + origin``, exactly as for the
        whole tensor, so rasters of chunks merge exactly.

    Returns
    -------
    start, end : (npix,) int64 arrays
        Pixel ``p`` holds cells ``start[p] <= i < end[p]`` (possibly none).
    """
    edges = np.empty(npix + 1, np.int64)
    n = np.int64(n)
    origin = np.int64(origin)
    width = hi - lo
    prev = np.int64(0)
    for p in range(npix + 1):
        # Estimate the first cell whose pixel is >= p, then settle it with the
        # exact rounding of _pixel_of.  A NaN estimate (infinite width) starts
        # at 0; the search is bounded either way.
        guess = p * width / npix + lo - 0.5 - origin
        if not guess > 0.0:
            j = np.int64(0)
        elif guess >= n:
            j = n
        else:
            j = np.int64(math.ceil(guess))
        e = _first_at_or_after(p, j, n, lo, hi, npix, origin)
        # edges never decrease (they would only for a NaN pixel map)
        e = max(e, prev)
        edges[p] = e
        prev = e
    return edges[:-1].copy(), edges[1:].copy()


def make_exact_moments(element):
    """Count, sum and m2 of a block of elements, free of intermediate overflow.

    The kernels' fast paths keep shifted sums and sums of squares in float64,
    which overflow once values pass about 1e154 (a square beyond 1.8e308);
    ``inf - inf`` then turns a finite answer into NaN.  This is their rare
    path for a pixel (or row) whose result came out NaN or infinite: the
    finite elements are read again, scaled by a power of two ``2**-e`` (exact)
    so that the largest is below 1, summed, and their squared deviations from
    the mean summed (two passes, so no cancellation), and the results scaled
    back.  The sum is then exact up to float64 rounding unless the true sum
    overflows (``+-inf``); ``m2`` is ``inf`` when the true sum of squared
    deviations, or the sum (NumPy's mean is then infinite, and so its
    ``std``), exceeds float64.  Never NaN.

    Parameters
    ----------
    element : function ``(src, ctx, r, c) -> float64``
        Element ``(r, c)`` of the block, decoded (a jitted CPU or CUDA device
        function).

    Returns
    -------
    function ``(src, ctx, r0, r1, c0, c1) -> (n, total, m2)``
        Plain Python, to be compiled with ``numba.njit(inline="always")`` or
        :func:`cuda_device`, over rows ``r0 <= r < r1`` and columns
        ``c0 <= c < c1``; ``n`` counts the finite elements.
    """
    def exact_moments(src, ctx, r0, r1, c0, c1):
        n = 0
        big = 0.0
        for r in range(r0, r1):
            for c in range(c0, c1):
                v = element(src, ctx, r, c)
                if math.isfinite(v):
                    n += 1
                    a = abs(v)
                    big = a if a > big else big
        if n == 0:
            return 0, 0.0, 0.0
        e = math.frexp(big)[1] if big > 0.0 else 0
        s = 0.0
        for r in range(r0, r1):
            for c in range(c0, c1):
                v = element(src, ctx, r, c)
                if math.isfinite(v):
                    s += math.ldexp(v, -e)
        mean = s / n
        q = 0.0
        for r in range(r0, r1):
            for c in range(c0, c1):
                v = element(src, ctx, r, c)
                if math.isfinite(v):
                    d = math.ldexp(v, -e) - mean
                    q += d * d
        # scale back by 2**e in two exact steps: a product that overflows is
        # inf, where math.ldexp would raise (plain Python: the CUDA simulator)
        h = e // 2
        up1 = math.ldexp(1.0, h)
        up2 = math.ldexp(1.0, e - h)
        total = (s * up1) * up2
        m2 = (((q * up1) * up2) * up1) * up2 if math.isfinite(total) else math.inf
        return n, total, m2

    return exact_moments


def import_cuda(namespace: dict):
    """``numba.cuda``, imported on the first GPU call and kept as ``namespace["cuda"]``.

    A kernel module calls it with its ``globals()``: the name ``cuda`` the
    CUDA kernels use must be a module global (not a closure variable), which
    the CUDA simulator swaps for its fake one, and importing ``numba.cuda``
    only on the first GPU call keeps the CPU path working where CUDA is not.
    """
    if namespace.get("cuda") is None:
        from numba import cuda as module

        namespace["cuda"] = module
    return namespace["cuda"]


def cuda_device(pyfunc):
    """Compile a helper of this module for the CUDA target (inside GPU paths only)."""
    from numba import cuda

    return cuda.jit(device=True, inline="always")(pyfunc)


@functools.lru_cache(maxsize=None)
def cuda_decoder(decode: int):
    """Device function: one stored element -> float64, for one decoding (memoised).

    On a GPU the 32-bit pattern becomes a float through libdevice; under the
    simulator (plain Python) through a NumPy view.
    """
    import numba

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

    if decode == DECODE_BF16:
        def _dec(x):
            return np.float64(bits_f32(bf16p(x)))
    elif decode == DECODE_F16:
        def _dec(x):
            bits, special = f16p(x)
            f = np.float64(bits_f32(bits))
            return f if special else f * _F16_DENORM_SCALE
    else:
        def _dec(x):
            return np.float64(x)
    return cuda_device(_dec)
