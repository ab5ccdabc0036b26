"""Derived statistics from raw planes, one pass each, no temporaries.

Every raster kernel family returns raw, mergeable planes (count, sum, min,
max, m2); these turn them into what a person reads.  Written as parallel
Numba loops because a screenful of pixels is millions of them and NumPy's
``where``/``divide`` chains would allocate several temporaries per statistic.
Below ``SERIAL_BELOW`` pixels (an ordinary plot) the same loops run on one
thread: starting a parallel region costs a scheduler tick (about 4 ms) when
the machine is busy, far more than the work; NumPy does those.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

SERIAL_BELOW = 1 << 21


def mean_plane(a, b):
    """See :func:`_mean_plane`; NumPy below ``SERIAL_BELOW`` pixels."""
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
    """See :func:`_std_plane`; NumPy below ``SERIAL_BELOW`` pixels."""
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
    """See :func:`_extremum_plane`; NumPy below ``SERIAL_BELOW`` pixels."""
    kernel = _extremum_plane_serial if a.size < SERIAL_BELOW else _extremum_plane
    return kernel(a, b)


def _extremum_plane(lo, hi):
    """(H, W) value of largest magnitude, sign kept; the positive one on a tie."""
    out = np.empty(lo.shape)
    for i in prange(lo.shape[0]):
        for j in range(lo.shape[1]):
            a = lo[i, j]
            b = hi[i, j]
            out[i, j] = b if abs(b) >= abs(a) else a
    return out



# small planes: NumPy, no thread start-up and nothing to compile
def _mean_plane_serial(sums, count):
    out = np.full(sums.shape, np.nan)
    np.divide(sums, count, out=out, where=count > 0)
    return out


def _std_plane_serial(m2, count):
    out = np.full(m2.shape, np.nan)
    np.divide(m2, count, out=out, where=count > 0)
    return np.sqrt(out, out=out)


def _extremum_plane_serial(lo, hi):
    return np.where(np.abs(hi) >= np.abs(lo), hi, lo).astype(np.float64, copy=False)


_mean_plane = numba.njit(parallel=True, cache=True)(_mean_plane)
_std_plane = numba.njit(parallel=True, cache=True)(_std_plane)
_extremum_plane = numba.njit(parallel=True, cache=True)(_extremum_plane)
