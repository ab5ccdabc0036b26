"""Slow, obviously-correct float64 NumPy version of the points kernels, for tests.

Nothing here shares code with the kernels: each point's pixel comes straight
from the formula in docs/architecture.md, and the planes from ``np.add.at`` /
``np.minimum.at`` / ``np.maximum.at``.
"""

from __future__ import annotations

import numpy as np


def pixel_of(x, y, x_range, y_range, width, height):
    """Pixel column and row of each point, and which points are inside / finite.

    ``px = floor(((x - x0) * W) / (x1 - x0))`` in float64, in that order, for
    ``x0 <= x <= x1``; ``x == x1`` (and a quotient that rounds up to W) goes
    to the last column.  The same for y.

    Returns
    -------
    px, py : (n,) int64 arrays (meaningful where ``inside``)
    inside : (n,) bool, finite and within the window on both axes
    finite : (n,) bool, both coordinates finite
    """
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    x0, x1 = map(float, x_range)
    y0, y1 = map(float, y_range)
    finite = np.isfinite(x) & np.isfinite(y)
    with np.errstate(invalid="ignore", over="ignore"):
        inside = finite & (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)
        fx = np.floor(((x - x0) * width) / (x1 - x0))
        fy = np.floor(((y - y0) * height) / (y1 - y0))
    px = np.where(inside, fx, 0).astype(np.int64)
    py = np.where(inside, fy, 0).astype(np.int64)
    px[inside & (x == x1)] = width - 1
    py[inside & (y == y1)] = height - 1
    # a point just below x1 whose quotient rounded up to W is still inside
    px = np.minimum(px, width - 1)
    py = np.minimum(py, height - 1)
    return px, py, inside, finite


def points_stats(x, y, value, category, x_range, y_range, width, height,
                 n_categories=None):
    """Per-pixel statistics of a point cloud, the slow way.

    Parameters
    ----------
    x, y : (n,) array_like
        Coordinates (converted to float64; decode bf16 / fp16 first).
    value : (n,) array_like or None
        Values (float64); NaN / inf count in ``nan_count`` only.
    category : (n,) array_like or None
        Integer codes 0..K-1 (any numeric dtype holding integers).
    x_range, y_range : (float, float)
    width, height : int
    n_categories : int, optional
        K; default ``max(category) + 1``.

    Returns
    -------
    planes : dict
        ``count``, ``nan_count`` (H, W) int64; with value ``sum``, ``mean``,
        ``min``, ``max`` (H, W) float64 (NaN where no finite value); with
        category ``count_cat`` (H, W, K) int64.
    counters : dict
        ``outside`` (finite points outside the window), ``nonfinite_xy``,
        ``bad_category`` (codes that are not integers in [0, K)).
    """
    px, py, inside, finite = pixel_of(x, y, x_range, y_range, width, height)
    n = px.size
    npix = width * height
    flat = py * width + px
    planes = {}
    if value is not None:
        v = np.asarray(value, np.float64)
        assert v.shape == (n,)
        ok = inside & np.isfinite(v)
        bad = inside & ~np.isfinite(v)
        count = np.zeros(npix, np.int64)
        np.add.at(count, flat[ok], 1)
        nan_count = np.zeros(npix, np.int64)
        np.add.at(nan_count, flat[bad], 1)
        total = np.zeros(npix)
        with np.errstate(over="ignore", invalid="ignore"):   # float64 sums may overflow
            np.add.at(total, flat[ok], v[ok])
        lo = np.full(npix, np.inf)
        hi = np.full(npix, -np.inf)
        np.minimum.at(lo, flat[ok], v[ok])
        np.maximum.at(hi, flat[ok], v[ok])
        empty = count == 0
        lo[empty] = np.nan
        hi[empty] = np.nan
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(empty, np.nan, total / np.maximum(count, 1))
        planes.update(count=count, nan_count=nan_count, sum=total, mean=mean, min=lo, max=hi)
    else:
        count = np.zeros(npix, np.int64)
        np.add.at(count, flat[inside], 1)
        planes.update(count=count, nan_count=np.zeros(npix, np.int64))
    bad_category = 0
    if category is not None:
        c = np.asarray(category, np.float64)
        assert c.shape == (n,)
        with np.errstate(invalid="ignore"):
            integral = np.isfinite(c) & (c == np.round(c))
        k = (int(c[integral].max()) + 1 if integral.any() else 0) \
            if n_categories is None else int(n_categories)
        good = integral & (c >= 0) & (c < k)
        bad_category = int((~good).sum())
        cat = np.zeros((npix, k), np.int64)
        sel = inside & good
        np.add.at(cat, (flat[sel], c[sel].astype(np.int64)), 1)
        planes["count_cat"] = cat
    out = {}
    for name, plane in planes.items():
        out[name] = plane.reshape((height, width) + plane.shape[1:])
    counters = {"outside": int((finite & ~inside).sum()), "nonfinite_xy": int((~finite).sum()),
                "bad_category": bad_category}
    return out, counters


def auto_range(values, other):
    """The default x_range from x (``values``) and y (``other``): exact min / max of the
    coordinates of points whose x and y are both finite; equal ends widened by 0.5 each
    side; (-0.5, 0.5) when no point is finite."""
    a = np.asarray(values, np.float64)
    b = np.asarray(other, np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    if not ok.any():
        return (-0.5, 0.5)
    lo, hi = float(a[ok].min()), float(a[ok].max())
    if lo == hi:
        return (lo - 0.5, hi + 0.5)
    return (lo, hi)


def bounds(x=None, y=None, category=None) -> dict:
    """Data bounds of a point cloud (the points-bounds kernel's result).

    With ``x`` and ``y``: ``x_min``, ``x_max``, ``y_min``, ``y_max`` over the
    points whose x and y are both finite (+inf / -inf when none is).  With
    ``category``: ``c_min``, ``c_max`` over the finite integral codes
    (+inf / -inf when none is) and ``c_bad``, how many are NaN, infinite or
    fractional.
    """
    out = {}
    if x is not None:
        a = np.asarray(x, np.float64)
        b = np.asarray(y, np.float64)
        ok = np.isfinite(a) & np.isfinite(b)
        for name, v in (("x", a[ok]), ("y", b[ok])):
            out[name + "_min"] = float(v.min()) if v.size else np.inf
            out[name + "_max"] = float(v.max()) if v.size else -np.inf
    if category is not None:
        c = np.asarray(category, np.float64)
        good = np.isfinite(c)
        good[good] = c[good] == np.floor(c[good])
        out["c_min"] = float(c[good].min()) if good.any() else np.inf
        out["c_max"] = float(c[good].max()) if good.any() else -np.inf
        out["c_bad"] = int((~good).sum())
    return out
