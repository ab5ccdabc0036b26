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


@numba.njit(cache=True)
def _pixel_of(i, lo, hi, npix):
    # The contract from DESIGN.md, evaluated in this exact order so that every
    # backend (and the reference) rounds identically.
    return math.floor(((i + 0.5 - lo) * npix) / (hi - lo))


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
        Visible data range, ``lo < hi``.
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
    width = hi - lo
    for p in range(npix + 1):
        # Estimate the first cell whose pixel is >= p, then settle it with the
        # exact rounding of _pixel_of (float error moves it by a cell at most).
        guess = p * width / npix + lo - 0.5 - origin
        if guess < 0.0:
            j = 0
        elif guess > n:
            j = n
        else:
            j = int(math.ceil(guess))
        while j > 0 and _pixel_of(j - 1 + origin, lo, hi, npix) >= p:
            j -= 1
        while j < n and _pixel_of(j + origin, lo, hi, npix) < p:
            j += 1
        edges[p] = j
    return edges[:-1].copy(), edges[1:].copy()


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
