"""Slow, obviously-correct float64 NumPy histogram, for tests.

Nothing here shares code with the kernels: every value is converted to
float64 and its bin found with ``np.searchsorted`` straight from the rule in
docs/architecture.md ("Histogram"): ``v`` is in bin ``k`` when ``e_k <= v < e_{k+1}``,
the last bin includes ``e_B``; underflow, overflow, NaN, +inf and -inf are
counted apart.
"""

from __future__ import annotations

import numpy as np

SPECIALS = ("underflow", "overflow", "nan", "posinf", "neginf")


def histogram(values, edges):
    """Counts of ``values`` in the bins of ``edges``, the slow way.

    Parameters
    ----------
    values : array_like, any shape
        Converted to float64 (decode bf16/fp16 before calling; int64 values
        beyond 2**53 round as in any float64 conversion).
    edges : (B + 1,) array_like
        Strictly increasing finite edges.

    Returns
    -------
    counts : (B,) int64 ndarray
    specials : dict of int
        ``underflow``, ``overflow``, ``nan``, ``posinf``, ``neginf``.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    e = np.asarray(edges, dtype=np.float64)
    nbins = e.size - 1
    nan = np.isnan(v)
    posinf = v == np.inf
    neginf = v == -np.inf
    finite = np.isfinite(v)
    under = finite & (v < e[0])
    over = finite & (v > e[-1])
    inside = finite & ~under & ~over
    # the last k with e[k] <= v; v == e[B] belongs to the last bin
    k = np.searchsorted(e, v[inside], side="right") - 1
    k = np.minimum(k, nbins - 1)
    counts = np.bincount(k, minlength=nbins).astype(np.int64)
    specials = {"underflow": int(under.sum()), "overflow": int(over.sum()),
                "nan": int(nan.sum()), "posinf": int(posinf.sum()),
                "neginf": int(neginf.sum())}
    return counts, specials


def histogram_many(tensors, edges):
    """One :func:`histogram` per tensor: ``(counts (T, B), specials (T, 5))``.

    ``edges`` is (B + 1,) shared or (T, B + 1) per tensor.
    """
    e = np.asarray(edges, dtype=np.float64)
    rows, specials = [], []
    for i, t in enumerate(tensors):
        c, s = histogram(t, e[i] if e.ndim == 2 else e)
        rows.append(c)
        specials.append([s[name] for name in SPECIALS])
    return np.array(rows, np.int64), np.array(specials, np.int64)


def minmax(values):
    """(finite min, finite max, smallest finite value > 0); (inf, -inf, inf) when none."""
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        return np.inf, -np.inf, np.inf
    pos = v[v > 0]
    return float(v.min()), float(v.max()), float(pos.min()) if pos.size else np.inf
