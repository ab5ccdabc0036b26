"""Slow, obviously-correct float64 NumPy versions of the series kernels, for tests.

Nothing here shares code with the kernels: every sample's column comes
straight from the formula in docs/architecture.md, and each column is reduced on its own
with ``argmin`` / ``argmax`` (which return the first occurrence on a tie).
"""

from __future__ import annotations

import math

import numpy as np

STATS = ("first", "last", "min", "max", "first_index", "last_index", "min_index",
         "max_index", "count", "nan_count")


def pixel_columns(x, x_range, width):
    """Column of every sample, or -1 outside ``x_range``.

    ``px = floor((x - x0) * width / (x1 - x0))`` for ``x0 <= x <= x1``; values
    landing on ``width`` (``x == x1``) go to the last column.
    """
    x = np.asarray(x, dtype=np.float64)
    x0, x1 = float(x_range[0]), float(x_range[1])
    inside = (x >= x0) & (x <= x1)
    with np.errstate(invalid="ignore"):
        px = np.floor(((x - x0) * width) / (x1 - x0))
    px = np.minimum(px, width - 1)
    return np.where(inside, px, -1).astype(np.int64)


def m4(y, x=None, x_range=None, width=1200):
    """Per-column first / min / max / last finite sample, the slow way.

    Parameters
    ----------
    y : (N,) array_like
        Converted to float64 (decode bf16/fp16 before calling).
    x : (N,) array_like, optional
        Sample positions; default the index ``0 .. N-1``.
    x_range : (float, float), optional
        Default ``(0, N)`` without x, ``(x[0], x[-1])`` with it.
    width : int
        Number of pixel columns.

    Returns
    -------
    dict
        ``(width,)`` arrays named as in ``STATS`` (values NaN and indices -1 in
        columns without a finite sample), and ``outside`` (int).
    """
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    n = y.size
    xs = np.arange(n, dtype=np.float64) if x is None else np.asarray(x, np.float64).reshape(-1)
    if x_range is None:
        x_range = (0.0, float(n)) if x is None else (float(xs[0]), float(xs[-1]))
    col = pixel_columns(xs, x_range, width)
    out = {name: np.full(width, np.nan) for name in ("first", "last", "min", "max")}
    for name in ("first_index", "last_index", "min_index", "max_index"):
        out[name] = np.full(width, -1, np.int64)
    out["count"] = np.zeros(width, np.int64)
    out["nan_count"] = np.zeros(width, np.int64)
    finite = np.isfinite(y)
    for p in range(width):
        members = np.flatnonzero(col == p)
        good = members[finite[members]]
        out["count"][p] = good.size
        out["nan_count"][p] = members.size - good.size
        if good.size == 0:
            continue
        vals = y[good]
        picks = {"first": good[0], "last": good[-1],
                 "min": good[np.argmin(vals)], "max": good[np.argmax(vals)]}
        for name, i in picks.items():
            out[name][p] = y[i]
            out[name + "_index"][p] = i
    out["outside"] = int(np.count_nonzero(col < 0))
    return out


def ema(y, weight):
    """TensorBoard's debiased exponential moving average, one sample at a time.

    ``last = 0``; for every finite sample ``last = last * w + (1 - w) * v`` and
    ``k += 1``, and the smoothed value is ``last / (1 - w**k)``.  Non-finite
    samples stay as they are and leave ``last`` and ``k`` alone.
    """
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    w = float(weight)
    out = np.empty_like(y)
    last = 0.0
    k = 0
    for i, v in enumerate(y.tolist()):
        if not math.isfinite(v):
            out[i] = v
            continue
        last = last * w + (1.0 - w) * v
        k += 1
        out[i] = last / (1.0 - w ** k)
    return out


def ema_states(y, weight, every):
    """The EMA state ``(k, last)`` of :func:`ema` just before every ``every``-th sample.

    Returns
    -------
    positions, k, last : (ceil(n / every),) arrays
        ``positions = 0, every, 2 * every, ...``; ``k`` finite samples seen
        before ``positions[j]`` and ``last`` the undebiased average then.
    """
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    w = float(weight)
    positions = np.arange(0, y.size, int(every), dtype=np.int64)
    k = np.zeros(positions.size, np.int64)
    last = np.zeros(positions.size)
    state_k, state_last, j = 0, 0.0, 0
    for i, v in enumerate(y.tolist()):
        if j < positions.size and positions[j] == i:
            k[j], last[j] = state_k, state_last
            j += 1
        if math.isfinite(v):
            state_last = state_last * w + (1.0 - w) * v
            state_k += 1
    return positions, k, last
