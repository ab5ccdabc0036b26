"""Derived statistics from raw planes, one pass each, no temporaries.

Every raster kernel family returns raw, mergeable planes (count, sum, min,
max, m2); these turn them into what a person reads.  Written as parallel
Numba loops because a screenful of pixels is millions of them and NumPy's
``where``/``divide`` chains would allocate several temporaries per statistic.
Below ``SERIAL_BELOW`` pixels (an ordinary plot) the same loops run on one
thread: starting a parallel region costs a scheduler tick (about 4 ms) when
the machine is busy, far more than the work.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

from ._parallel import parallel_jit

SERIAL_BELOW = 1 << 21


def mean_plane(a, b):
    """See :func:`_mean_plane`; one thread below ``SERIAL_BELOW`` pixels."""
    kernel = _mean_plane_serial if a.size < SERIAL_BELOW else _mean_plane
    return kernel(a, b)


def _mean_plane(sums, count):
    """(H, W) mean: ``sum / count``, NaN where ``count == 0``."""
    out = np.empty(sums.shape)
    for i in prange(sums.shape[0]):
        for j in range(sums.shape[1]):
            n = count[i, j]
            out[i, j] = sums[i, j] / n if n > 0 else np.nan
    return out


def std_plane(a, b):
    """See :func:`_std_plane`; one thread below ``SERIAL_BELOW`` pixels."""
    kernel = _std_plane_serial if a.size < SERIAL_BELOW else _std_plane
    return kernel(a, b)


def _std_plane(m2, count):
    """(H, W) population standard deviation ``sqrt(m2 / count)``, NaN where empty."""
    out = np.empty(m2.shape)
    for i in prange(m2.shape[0]):
        for j in range(m2.shape[1]):
            n = count[i, j]
            out[i, j] = np.sqrt(m2[i, j] / n) if n > 0 else np.nan
    return out


def extremum_plane(a, b):
    """See :func:`_extremum_plane`; one thread below ``SERIAL_BELOW`` pixels."""
    kernel = _extremum_plane_serial if a.size < SERIAL_BELOW else _extremum_plane
    return kernel(a, b)


@numba.njit(cache=True)
def _larger(a, b):
    """The one of ``a`` (min) and ``b`` (max) of larger magnitude; ``b`` on a tie."""
    return b if abs(b) >= abs(a) else a


def _extremum_plane(lo, hi):
    """(H, W) value of largest magnitude, sign kept; the positive one on a tie."""
    out = np.empty(lo.shape)
    for i in prange(lo.shape[0]):
        for j in range(lo.shape[1]):
            out[i, j] = _larger(lo[i, j], hi[i, j])
    return out


# small planes: the same loops on one thread (distinct functions, so each has
# its own on-disk cache entry)
@numba.njit(cache=True)
def _mean_plane_serial(sums, count):
    out = np.empty(sums.shape)
    for i in range(sums.shape[0]):
        for j in range(sums.shape[1]):
            n = count[i, j]
            out[i, j] = sums[i, j] / n if n > 0 else np.nan
    return out


@numba.njit(cache=True)
def _std_plane_serial(m2, count):
    out = np.empty(m2.shape)
    for i in range(m2.shape[0]):
        for j in range(m2.shape[1]):
            n = count[i, j]
            out[i, j] = np.sqrt(m2[i, j] / n) if n > 0 else np.nan
    return out


@numba.njit(cache=True)
def _extremum_plane_serial(lo, hi):
    out = np.empty(lo.shape)
    for i in range(lo.shape[0]):
        for j in range(lo.shape[1]):
            out[i, j] = _larger(lo[i, j], hi[i, j])
    return out


_mean_plane = parallel_jit(cache=True)(_mean_plane)
_std_plane = parallel_jit(cache=True)(_std_plane)
_extremum_plane = parallel_jit(cache=True)(_extremum_plane)
