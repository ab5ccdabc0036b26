"""Slow, obviously-correct float64 version of the per-line sums of squares, for tests.

Shares no code with :mod:`dlviz_gpu.kernels.describe`: each line of the
float64 matrix is walked element by element.
"""

from __future__ import annotations

import math

import numpy as np


def line_sumsq(values, lines: str) -> np.ndarray:
    """Sum of the squares of the finite elements of each row or column.

    Parameters
    ----------
    values : (R, C) array_like
        Converted to float64 (decode bf16/fp16 before calling).
    lines : {"rows", "cols"}
        Which lines: one result per row, or one per column.

    Returns
    -------
    (R,) or (C,) float64 ndarray
        NaN and +-inf are left out; 0.0 for a line without a finite element.
    """
    a = np.asarray(values, dtype=np.float64)
    if lines == "cols":
        a = a.T
    elif lines != "rows":
        raise ValueError(f"lines: expected 'rows' or 'cols'; got {lines!r}")
    out = np.zeros(a.shape[0], np.float64)
    for j, line in enumerate(a):
        acc = 0.0
        for x in line:
            if math.isfinite(x):
                acc += float(x) * float(x)
        out[j] = acc
    return out
