"""Slow, obviously-correct float64 NumPy versions of the kernels, for tests.

Nothing here shares code with the kernels: the pixel of every element is
computed straight from the formula in docs/architecture.md, element by element.
"""

from __future__ import annotations

import numpy as np

STATS = ("count", "nan_count", "sum", "mean", "min", "max", "extremum", "std")


def matrix_stats(values, x_range, y_range, width, height):
    """Per-pixel statistics of a 2-D array, the slow way.

    Parameters
    ----------
    values : (R, C) array_like
        Converted to float64 (decode bf16/fp16 before calling).
    x_range, y_range : (float, float)
        Visible window in data space.
    width, height : int
        Canvas size.

    Returns
    -------
    dict of (height, width) float64 arrays
        One per name in ``STATS``; value statistics are NaN in empty pixels.
    """
    v = np.asarray(values, dtype=np.float64)
    rows, cols = v.shape
    x0, x1 = map(float, x_range)
    y0, y1 = map(float, y_range)
    ii, jj = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    px = np.floor(((jj + 0.5 - x0) * width) / (x1 - x0))
    py = np.floor(((ii + 0.5 - y0) * height) / (y1 - y0))
    inside = (px >= 0) & (px < width) & (py >= 0) & (py < height)
    flat_pix = (py[inside] * width + px[inside]).astype(np.int64)
    vals = v[inside]
    finite = np.isfinite(vals)
    npix = width * height

    nan_count = np.bincount(flat_pix[~finite], minlength=npix).astype(np.float64)
    fp, fv = flat_pix[finite], vals[finite]
    count = np.bincount(fp, minlength=npix).astype(np.float64)
    total = np.bincount(fp, weights=fv, minlength=npix)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / count, np.nan)
    mn = np.full(npix, np.inf)
    mx = np.full(npix, -np.inf)
    np.minimum.at(mn, fp, fv)
    np.maximum.at(mx, fp, fv)
    with np.errstate(over="ignore", invalid="ignore"):   # inf beyond float64, as NumPy's std
        dev = np.bincount(fp, weights=(fv - mean[fp]) ** 2, minlength=npix)
    with np.errstate(invalid="ignore", divide="ignore"):
        std = np.where(count > 0, np.sqrt(dev / count), np.nan)
    empty = count == 0
    mn[empty] = np.nan
    mx[empty] = np.nan
    extremum = np.where(np.abs(mx) >= np.abs(mn), mx, mn)
    out = {"count": count, "nan_count": nan_count, "sum": total, "mean": mean,
           "min": mn, "max": mx, "extremum": extremum, "std": std}
    return {k: a.reshape(height, width) for k, a in out.items()}
