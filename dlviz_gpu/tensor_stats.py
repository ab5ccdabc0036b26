"""Summary statistics of a whole tensor, read in place: the dashboard's stats table.

>>> s = describe(weights)                 # any tensor dv.rasterize accepts
>>> s.mean, s.std, s.max_abs, s.zero_fraction, s.nan, s.fro_norm
>>> s.top_rows                            # [(row, norm), ...] largest first
>>> s.rows()                              # [("mean", "0.0012"), ...] for a table

Everything is read where the tensor lies (bfloat16 and float16 decoded on the
fly, any strides, nothing copied or upcast), so the extra memory is
O(rows + cols) plus a bounded chunk.  Three passes:

1. ``dv.rasterize`` on a canvas of one pixel per line of the axis with fewer
   lines (rows, unless the matrix is taller than wide) gives each line's
   finite count, sum, sum of squared deviations (``m2``), min and max.  The
   whole tensor's mean and std are the exact (Chan) merge of the lines, never
   E[x^2] - E[x]^2; a line's sum of squares is ``m2 + count * mean**2`` (two
   non-negative terms, no cancellation).
2. The norms of the other axis's lines: the same engine pass when its lines
   are long; when they hold at most :data:`SHORT_LINE` elements (a 1-D
   strip, an N x 3 matrix) a one-pixel-per-line canvas would cost about a
   microsecond per line, so the ``LINE_SUMSQ`` family
   (:mod:`dlviz_gpu.kernels.describe`, CPU or CUDA) sums their squares, one
   line per thread.
3. ``dv.histogram`` with the edges ``[0, 5e-324, 1e-323]`` (5e-324 is the
   smallest float64 above 0): its first bin ``0 <= v < 5e-324`` holds exactly
   the zeros (+0 and -0) of any dtype, and the same pass counts NaN, +inf and
   -inf apart (the matrix raster lumps them together as ``nan_count``).

Long axes go to the engine in chunks of :data:`CHUNK` lines (its largest
canvas side), so at most a chunk's worth of per-pixel planes is held at once.
CUDA tensors run every pass on the device with the engine's CUDA kernels;
only the per-line results (rows + cols numbers) come back to the host.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import backend as _backend
from .aggregate import rasterize
from .backend import Backend
from .checks import MAX_SIDE
from .histograms import histogram
from .kernels import LINE_SUMSQ
from .tensors import LAYOUTS, Layout, as_matrix

#: Matrix rows (or columns) per engine call of the per-line passes: the
#: largest canvas side the engine takes; it also bounds the per-pixel planes
#: held at once (about 40 bytes per line) for very long axes.
CHUNK = MAX_SIDE

#: Lines of at most this many elements (the short axis of a skinny matrix, a
#: 1-D strip's single row) get their norms from the ``LINE_SUMSQ`` family
#: (:mod:`dlviz_gpu.kernels.describe`) instead of from a canvas of one pixel per line.
SHORT_LINE = 64

# Histogram edges whose first bin [0, 5e-324) holds exactly the values equal to
# zero: 5e-324 is the smallest positive float64, so 0 <= v < 5e-324 iff v == 0.
_ZERO_EDGES = np.array([0.0, 5e-324, 1e-323])


@dataclass(frozen=True, eq=False)
class TensorStats:
    """Whole-tensor statistics, from :func:`describe`.

    Attributes
    ----------
    shape : tuple of int
        The source tensor's shape.
    matrix_shape : (int, int)
        (rows, cols) of the matrix the tensor is drawn as (see ``layout``).
    layout : str
        The resolved layout: ``"matrix"``, ``"strip"`` (1-D), ``"mosaic"``,
        ``"flatten"`` or ``"stack"``.
    dtype : str
        The source dtype name (``"bfloat16"``, ``"float32"``, ``"int8"``, ...).
    size : int
        All elements, ``finite + nan + posinf + neginf``.
    finite, nan, posinf, neginf : int
        Counts of finite, NaN, +inf and -inf elements.
    mean, std : float
        Mean and population standard deviation of the finite elements (NaN
        when there is none).  Where the float64 sum of the finite elements,
        or of their squared deviations, overflows, ``std`` is inf and ``mean``
        +-inf, as in NumPy (``mean`` NaN in the one case of matrix lines whose
        own sums overflow both ways).
    min, max, max_abs : float
        Smallest, largest and largest-magnitude finite values (NaN when there
        is none).
    zeros : int
        Elements exactly equal to zero (+0 and -0).
    zero_fraction : float
        ``zeros / size``.
    fro_norm : float
        Frobenius norm: sqrt of the sum of squares of the finite elements
        (0.0 when there is none).
    row_norms : (rows,) float64 ndarray
        L2 norm of the finite elements of each matrix row (read-only).
    col_norms : (cols,) float64 ndarray
        L2 norm of the finite elements of each matrix column (read-only).
    top_rows, top_cols : list of (int, float)
        ``(index, norm)`` of the ``top`` largest row / column norms, largest
        first, ties broken by the lower index.
    """

    shape: tuple
    matrix_shape: tuple
    layout: str
    dtype: str
    size: int
    finite: int
    nan: int
    posinf: int
    neginf: int
    mean: float
    std: float
    min: float
    max: float
    max_abs: float
    zeros: int
    zero_fraction: float
    fro_norm: float
    row_norms: np.ndarray
    col_norms: np.ndarray
    top_rows: list
    top_cols: list

    def __repr__(self) -> str:
        return (f"TensorStats(shape={self.shape}, dtype={self.dtype!r}, mean={self.mean:.6g}, "
                f"std={self.std:.6g}, min={self.min:.6g}, max={self.max:.6g}, "
                f"zeros={self.zeros}, nan={self.nan}, posinf={self.posinf}, "
                f"neginf={self.neginf}, fro_norm={self.fro_norm:.6g})")

    def to_dict(self) -> dict:
        """Every statistic as plain Python values (JSON-friendly; no arrays).

        Undefined statistics (mean, std, min, max, max_abs of a tensor with no
        finite element) are ``float("nan")``.  ``top_rows`` / ``top_cols`` are
        lists of ``[index, norm]`` pairs; ``row_norms`` / ``col_norms`` are
        left out (use the attributes).
        """
        out = {"shape": [int(n) for n in self.shape],
               "matrix_shape": [int(n) for n in self.matrix_shape],
               "layout": self.layout, "dtype": self.dtype}
        for name in ("size", "finite", "nan", "posinf", "neginf", "zeros"):
            out[name] = int(getattr(self, name))
        for name in ("mean", "std", "min", "max", "max_abs", "zero_fraction", "fro_norm"):
            out[name] = float(getattr(self, name))
        out["top_rows"] = [[int(i), float(v)] for i, v in self.top_rows]
        out["top_cols"] = [[int(i), float(v)] for i, v in self.top_cols]
        return out

    def rows(self) -> list[tuple[str, str]]:
        """The statistics as ``(label, text)`` pairs for a two-column table.

        Labels, in order: shape, dtype, elements, mean, std, min, max,
        ``max |v|``, exact zeros (count and percentage), NaN, +inf, -inf,
        Frobenius norm, largest row norms, largest column norms (the last two
        only when ``top`` was above 0; ``index: norm`` pairs).
        """
        shape = " x ".join(str(n) for n in self.shape)
        if tuple(self.shape) != tuple(self.matrix_shape):
            r, c = self.matrix_shape
            shape += f" (drawn as {r} x {c}, {self.layout})"
        out = [("shape", shape), ("dtype", self.dtype), ("elements", _count(self.size))]
        for label, name in (("mean", "mean"), ("std", "std"), ("min", "min"), ("max", "max"),
                            ("max |v|", "max_abs")):
            out.append((label, format_value(getattr(self, name))))
        out.append(("exact zeros", f"{_count(self.zeros)} ({_percent(self.zero_fraction)})"))
        out += [("NaN", _count(self.nan)), ("+inf", _count(self.posinf)),
                ("-inf", _count(self.neginf)), ("Frobenius norm", format_value(self.fro_norm))]
        for label, top in (("largest row norms", self.top_rows),
                           ("largest column norms", self.top_cols)):
            if top:
                out.append((label, ", ".join(f"{i}: {format_value(v)}" for i, v in top)))
        return out


# --------------------------------------------------------------------------
# Formatting
# --------------------------------------------------------------------------

def format_value(v: float) -> str:
    """A short, exact-enough label for a statistic in titles and tables.

    The one number format of the project: the views' titles and hovers use it
    too (:mod:`dlviz_gpu.views.style` re-exports it).
    """
    if v is None or not math.isfinite(v):
        return str(v)
    a = abs(v)
    if a != 0 and (a >= 1e5 or a < 1e-3):
        return f"{v:.4g}"
    return f"{v:.6g}"


def _count(n: int) -> str:
    return f"{int(n):,}"


def _percent(f: float) -> str:
    if not math.isfinite(f):
        return str(f)
    if f == 0:
        return "0 %"
    p = 100.0 * f
    if p < 0.01:
        return f"{p:.2g} %"
    return f"{p:.4g} %"


# --------------------------------------------------------------------------
# The verb
# --------------------------------------------------------------------------

def _check_top(top) -> int:
    if isinstance(top, (bool, np.bool_)) or not isinstance(top, (int, np.integer)):
        raise TypeError(f"top: expected a non-negative integer; got {top!r}")
    if int(top) < 0:
        raise ValueError(f"top: expected a non-negative integer; got {int(top)}")
    return int(top)


def _line_stats(matrix, axis: int, n: int, backend: str, want_minmax: bool) -> dict:
    """Per-row (axis 0) or per-column (axis 1) count, sum, m2 (and min, max), float64.

    One engine pass per chunk of :data:`CHUNK` lines, on a canvas of one
    pixel per line: pixel ``p`` of a canvas of ``k`` pixels over the window
    ``(a, a + k)`` holds exactly line ``a + p``.
    """
    stats = ("sum", "std") + (("min", "max") if want_minmax else ())
    names = ("count", "sum", "m2") + (("min", "max") if want_minmax else ())
    out = {name: np.empty(n, np.int64 if name == "count" else np.float64) for name in names}
    for a in range(0, n, CHUNK):
        b = min(n, a + CHUNK)
        if axis == 0:
            r = rasterize(matrix, width=1, height=b - a, y_range=(a, b), backend=backend,
                          stats=stats)
        else:
            r = rasterize(matrix, width=b - a, height=1, x_range=(a, b), backend=backend,
                          stats=stats)
        planes = r.to_host().planes
        for name in names:
            out[name][a:b] = np.asarray(planes[name]).reshape(-1)
    return out


def _sum_squares(count, total, m2):
    """Sum of squares per line: ``m2 + count * mean**2`` (0 for empty lines)."""
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        mean = np.where(count > 0, total / np.maximum(count, 1), 0.0)
        return m2 + count * mean * mean


def _total(values: np.ndarray) -> float:
    """Sum of per-line sums, without overflowing on the way to a finite total.

    A plain sum first; if it is not finite while every term is, the terms are
    scaled by a power of two (exact) so that partial sums cannot overflow, and
    the total scaled back: it is +-inf only when the true total is beyond
    float64.  Infinite terms (lines whose own sum overflowed) give +-inf, or
    NaN when they have both signs.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        plain = float(values.sum())
        if math.isfinite(plain) or not np.isfinite(values).all():
            return plain
        e = math.frexp(float(np.abs(values).max()))[1]
        return float(np.ldexp(np.ldexp(values, -e).sum(), e))


def _top(norms: np.ndarray, k: int) -> list:
    """``(index, norm)`` of the ``k`` largest norms, largest first, ties by lower index."""
    n = norms.size
    k = min(k, n)
    if k == 0:
        return []
    # Everything at or above the k-th largest value is a candidate (ties at the
    # threshold included); a stable sort of the candidates then orders them.
    threshold = np.partition(norms, n - k)[n - k]
    cand = np.flatnonzero(norms >= threshold)
    order = cand[np.argsort(-norms[cand], kind="stable")][:k]
    return [(int(i), float(norms[i])) for i in order]


def describe(tensor, layout: Layout = "auto", top: int = 5, backend: Backend = "auto"
             ) -> TensorStats:
    """Whole-tensor statistics and the rows / columns of largest norm, read in place.

    Parameters
    ----------
    tensor : (R, C) array_like, or 1-D / 3-D / 4-D with ``layout``
        Anything :func:`dlviz_gpu.rasterize` accepts: numpy arrays and
        memmaps, torch tensors (CPU or CUDA; bfloat16 and float16 included),
        cupy arrays, a :class:`dlviz_gpu.tensors.Matrix`, a checkpoint
        catalog's bfloat16 arrays.  Never copied or upcast.
    layout : {"auto", "mosaic", "flatten", "stack"}
        How a non-2-D tensor becomes the matrix whose row and column norms
        are reported (see :mod:`dlviz_gpu.tensors`); 1-D is a 1 x N strip.
        The whole-tensor statistics do not depend on it.  A ``Matrix``
        passed in keeps its own layout.
    top : int
        How many of the largest row and column norms to list (0 for none).
    backend : {"auto", "cpu", "cuda"}
        Where the passes run; ``"auto"`` follows the data.

    Returns
    -------
    TensorStats

    Raises
    ------
    ValueError
        An empty or 0-d tensor, an unknown ``layout`` or ``backend``, a
        negative ``top``.
    TypeError
        Unsupported tensors or dtypes; a ``top`` that is not an integer.
    """
    top = _check_top(top)
    if not isinstance(layout, str) or layout not in LAYOUTS:
        raise ValueError(f"layout: expected one of {', '.join(map(repr, LAYOUTS))}; "
                         f"got {layout!r}")
    matrix = as_matrix(tensor, layout=layout)
    where = _backend.resolve(backend, matrix.device)   # a bad name fails before any pass
    rows, cols = matrix.shape
    size = rows * cols

    # The whole-tensor statistics come from the axis with fewer lines (long
    # lines: the matrix kernel at its best); the other axis only needs norms.
    first = 0 if rows <= cols else 1
    by_line = _line_stats(matrix, first, matrix.shape[first], backend, want_minmax=True)
    n_i, s_i, m2_i = by_line["count"], by_line["sum"], by_line["m2"]
    first_sq = _sum_squares(n_i, s_i, m2_i)
    if matrix.shape[first] <= SHORT_LINE:
        # skinny matrix, short lines: one element or a few per pixel would
        # make the matrix kernel slow, the dedicated family is not
        lines, other = (matrix.cols, matrix.rows) if first == 0 else (matrix.rows, matrix.cols)
        line_sumsq = _backend.kernel_for(LINE_SUMSQ, where)
        second_sq = line_sumsq(_backend.buffer_for(matrix, where), matrix.offset, lines, other,
                               matrix.decode)
    else:
        second = _line_stats(matrix, 1 - first, matrix.shape[1 - first], backend,
                             want_minmax=False)
        second_sq = _sum_squares(second["count"], second["sum"], second["m2"])
    row_sq, col_sq = (first_sq, second_sq) if first == 0 else (second_sq, first_sq)
    hist = histogram(matrix, bins=_ZERO_EDGES, backend=backend)

    finite = int(n_i.sum())
    row_norms = np.sqrt(row_sq)
    col_norms = np.sqrt(col_sq)
    row_norms.flags.writeable = False
    col_norms.flags.writeable = False

    if finite:
        has = n_i > 0
        n, s, m2 = n_i[has].astype(np.float64), s_i[has], m2_i[has]
        mean = _total(s) / finite
        if math.isfinite(mean):
            # Chan's merge of the lines: M2 = sum M2_i + sum n_i (mean_i - mean)^2;
            # every term is >= 0 or inf (a spread beyond float64, as in NumPy)
            with np.errstate(over="ignore", invalid="ignore"):
                d = s / n - mean
                total_m2 = float(m2.sum() + (n * d * d).sum())
            std = math.sqrt(max(total_m2, 0.0) / finite) if total_m2 == total_m2 else math.inf
        else:
            # the sum overflows float64: the mean is +-inf (NaN when lines
            # overflow both ways), and the std inf, as NumPy reports them
            std = math.inf
        vmin = float(by_line["min"][has].min())
        vmax = float(by_line["max"][has].max())
        max_abs = max(abs(vmin), abs(vmax))
    else:
        mean = std = vmin = vmax = max_abs = math.nan
    zeros = int(hist.counts[0])
    with np.errstate(over="ignore"):        # inf beyond float64, as NumPy's norm
        fro = float(math.sqrt(float(first_sq.sum())))

    return TensorStats(
        shape=tuple(int(k) for k in matrix.source_shape), matrix_shape=(rows, cols),
        layout=matrix.layout, dtype=matrix.dtype, size=size, finite=finite,
        nan=int(hist.nan), posinf=int(hist.posinf), neginf=int(hist.neginf),
        mean=mean, std=std, min=vmin, max=vmax, max_abs=max_abs,
        zeros=zeros, zero_fraction=zeros / size,
        fro_norm=fro,
        row_norms=row_norms, col_norms=col_norms,
        top_rows=_top(row_norms, top), top_cols=_top(col_norms, top))
