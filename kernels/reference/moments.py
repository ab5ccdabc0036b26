"""Slow, obviously-correct float64 version of the one-pass moments, for tests.

Shares no code with :mod:`dlviz_gpu.kernels.moments`: NumPy's own reductions
over the finite elements.
"""

from __future__ import annotations

import numpy as np

#: the entries of :func:`moments`, in the order of ``kernels.moments.FIELDS``
FIELDS = ("numel", "count", "mean", "m2", "sumsq", "min", "max", "zeros", "nan", "posinf",
          "neginf", "diffsq")


def moments(values, prev=None) -> dict:
    """Counts and moments of the finite elements of ``values`` (see ``kernels.moments``).

    Parameters
    ----------
    values : (R, C) array_like
        Converted to float64 (decode bf16/fp16 before calling).
    prev : (R, C) array_like, optional
        ``diffsq`` is the sum of ``(values - prev)**2`` over the pairs where
        both are finite; 0 without ``prev``.

    Returns
    -------
    dict
        One entry per name of :data:`FIELDS`; ``mean`` is NaN, ``min`` +inf
        and ``max`` -inf when no element is finite.
    """
    v = np.asarray(values, np.float64)
    f = v[np.isfinite(v)]
    out = {"numel": v.size, "count": f.size, "mean": f.mean() if f.size else np.nan,
           "m2": ((f - f.mean()) ** 2).sum() if f.size else 0.0, "sumsq": (f ** 2).sum(),
           "min": f.min() if f.size else np.inf, "max": f.max() if f.size else -np.inf,
           "zeros": int((v == 0).sum()), "nan": int(np.isnan(v).sum()),
           "posinf": int(np.isposinf(v).sum()), "neginf": int(np.isneginf(v).sum()),
           "diffsq": 0.0}
    if prev is not None:
        p = np.asarray(prev, np.float64)
        ok = np.isfinite(v) & np.isfinite(p)
        out["diffsq"] = ((v[ok] - p[ok]) ** 2).sum()
    return out


def row_max_abs(values) -> np.ndarray:
    """The largest ``|x|`` of each row: NaN for a row holding a NaN, +inf for one
    holding +-inf (and no NaN), 0 for an empty row."""
    v = np.asarray(values, np.float64)
    out = np.zeros(v.shape[0])
    for i, row in enumerate(v):
        if np.isnan(row).any():
            out[i] = np.nan
        elif row.size:
            out[i] = np.abs(row).max()
    return out
