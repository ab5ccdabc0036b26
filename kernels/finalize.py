"""Derived statistics from raw planes, one pass each, no temporaries.

Every raster kernel family returns raw, mergeable planes (count, sum, min,
max, m2); these turn them into what a person reads.  Written as parallel
Numba loops because a screenful of pixels is millions of them and NumPy's
``where``/``divide`` chains would allocate several temporaries per statistic.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange


@numba.njit(parallel=True, cache=True)
def mean_plane(sums, count):
    """(H, W) mean: ``sum / count``, NaN where ``count == 0``."""
    out = np.empty(sums.shape)
    for i in prange(sums.shape[0]):
        for j in range(sums.shape[1]):
            n = count[i, j]
            out[i, j] = sums[i, j] / n if n > 0 else np.nan
    return out


@numba.njit(parallel=True, cache=True)
def std_plane(m2, count):
    """(H, W) population standard deviation ``sqrt(m2 / count)``, NaN where empty."""
    out = np.empty(m2.shape)
    for i in prange(m2.shape[0]):
        for j in range(m2.shape[1]):
            n = count[i, j]
            out[i, j] = np.sqrt(m2[i, j] / n) if n > 0 else np.nan
    return out


@numba.njit(parallel=True, cache=True)
def extremum_plane(lo, hi):
    """(H, W) value of largest magnitude, sign kept; the positive one on a tie."""
    out = np.empty(lo.shape)
    for i in prange(lo.shape[0]):
        for j in range(lo.shape[1]):
            a = lo[i, j]
            b = hi[i, j]
            out[i, j] = b if abs(b) >= abs(a) else a
    return out
