"""Per-line sums of squares of a matrix whose lines are short (CPU, Numba).

:func:`dlviz_gpu.tensor_stats.describe` gets its per-row and per-column
statistics from the matrix kernel on a canvas of one pixel per line.  That is
fast while each line holds many elements, but a skinny matrix -- a 1 x N
strip (any 1-D tensor), an N x 3 matrix -- puts one or a few elements in each
of N pixels, and the matrix kernel's per-pixel work then dominates (about a
microsecond per pixel: 9 s for a strip of 10**7).  :func:`line_sumsq_cpu` does
that case directly: one parallel loop over the lines, each summing the squares
of its finite elements, read in place through the same address maps
(:mod:`._layout`) and decodings (:mod:`._common`) as every kernel.

CPU only; CUDA data keeps the matrix kernel path.  Compiled once per buffer
dtype and cached on disk (``cache=True``).
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import prange

from ._common import decode_value
from ._layout import Axis
from ._parallel import parallel_jit


@numba.njit(inline="always", cache=True)
def _offset(t1, k2, t2, k3, t3, i):
    return (i // (k2 * k3)) * t1 + ((i // k3) % k2) * t2 + (i % k3) * t3


_value = decode_value    # one element as float64


@parallel_jit(cache=True)
def _line_sumsq(flat, offset, lt1, lk2, lt2, lk3, lt3, nlines,
                ot1, ok2, ot2, ok3, ot3, nother, decode, out):
    # plain strided axes (everything but mosaics and stacked layouts) skip the
    # mixed-radix divisions, which would cost more than the rest of the loop
    simple = lk2 == 1 and lk3 == 1 and ok2 == 1 and ok3 == 1
    for j in prange(nlines):
        acc = 0.0
        if simple:
            base = offset + j * lt1
            for i in range(nother):
                x = _value(flat[base + i * ot1], decode)
                if math.isfinite(x):
                    acc += x * x
        else:
            base = offset + _offset(lt1, lk2, lt2, lk3, lt3, j)
            for i in range(nother):
                x = _value(flat[base + _offset(ot1, ok2, ot2, ok3, ot3, i)], decode)
                if math.isfinite(x):
                    acc += x * x
        out[j] = acc


def line_sumsq_cpu(flat: np.ndarray, offset: int, lines: Axis, other: Axis,
                   decode: int) -> np.ndarray:
    """Sum of squares of the finite elements of each line of a matrix.

    Parameters
    ----------
    flat : (L,) host ndarray
        The matrix's flat buffer (``Matrix.buffer``).
    offset : int
        Element offset of the matrix's element (0, 0).
    lines : Axis
        Address map of the axis whose cells are the lines (the rows for row
        sums, the columns for column sums).
    other : Axis
        Address map of the axis summed along (best kept short: it is walked
        once per line).
    decode : int
        ``DECODE_NATIVE``, ``DECODE_BF16`` or ``DECODE_F16``.

    Returns
    -------
    (lines.n,) float64 ndarray
        NaN and +-inf are left out; 0.0 for a line with no finite element.
    """
    out = np.empty(lines.n, np.float64)
    _line_sumsq(flat, np.int64(offset),
                np.int64(lines.t1), np.int64(lines.k2), np.int64(lines.t2),
                np.int64(lines.k3), np.int64(lines.t3), np.int64(lines.n),
                np.int64(other.t1), np.int64(other.k2), np.int64(other.t2),
                np.int64(other.k3), np.int64(other.t3), np.int64(other.n),
                np.int64(decode), out)
    return out
