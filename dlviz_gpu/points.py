"""``rasterize_points``: a scatter of up to billions of points -> per-pixel statistics.

validate -> pick a backend -> (one bounds pass if needed) -> kernel -> Raster.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import backend as _backend
from .backend import Backend
from .checks import check_range, check_size
from .kernels import DECODE_BF16, DECODE_F16
from .kernels import points as _kpoints
from .optional import is_torch_tensor
from .raster import Canvas, Raster
from .tensors import as_matrix

# statistics a points raster can offer, in the order Raster.stats lists them
POINT_STATS = ("count", "nan_count", "sum", "mean", "min", "max", "count_cat")
_VALUE_STATS = ("sum", "mean", "min", "max")
# count_cat cells (H x W x K) at most: 2 GiB of int64
MAX_CAT_CELLS = 1 << 28

_ACCEPTED = ("a 1-D numpy array or memmap, torch tensor (CPU or CUDA), cupy array, pandas "
             "Series or list of numbers")


@dataclass
class _Col:
    """One input column after intake."""

    name: str
    n: int
    dtype: str
    device: str                  # "cpu" or "cuda"
    matrix: Any = None           # the 1 x n Matrix (None when n == 0)
    n_categories: int | None = None   # from a pandas Categorical

    def column(self, where: str) -> _kpoints.Column:
        """The kernel's view of this column for backend ``where``."""
        if self.matrix is None:
            return _kpoints.column(np.zeros(1), 0, 0)
        m = self.matrix
        return _kpoints.column(_backend.buffer_for(m, where), m.offset, m.cols.t1, m.decode)


_TORCH_OK = ("float64", "float32", "float16", "bfloat16", "int8", "uint8", "int16", "int32",
             "int64", "bool")


def _categorical(obj):
    """(codes, number of categories) of a pandas Categorical or categorical Series, else None."""
    dtype = getattr(obj, "dtype", None)
    if getattr(dtype, "name", None) != "category":
        return None
    cat = getattr(obj, "cat", None)
    if cat is not None:  # Series
        return np.asarray(cat.codes), len(cat.categories)
    return np.asarray(obj.codes), len(obj.categories)


def _shape_dtype(obj, name: str):
    """(shape, dtype name, is numeric) without copying the data."""
    if is_torch_tensor(obj):
        dname = str(obj.dtype).replace("torch.", "")
        return tuple(obj.shape), dname, dname in _TORCH_OK
    if hasattr(obj, "shape") and hasattr(obj, "dtype"):
        try:
            dt = np.dtype(getattr(obj.dtype, "numpy_dtype", obj.dtype))
        except TypeError:
            return tuple(obj.shape), str(obj.dtype), False
        return tuple(obj.shape), dt.name, dt.kind in "biuf" and dt.itemsize <= 8
    return None


def _intake(obj, name: str) -> _Col:
    """Check one column (1-D, numeric) and view it in place."""
    n_cat = None
    if name == "category":
        cat = _categorical(obj)
        if cat is not None:
            obj, n_cat = cat
    if isinstance(obj, (list, tuple)) or (not hasattr(obj, "shape") and hasattr(obj, "__array__")):
        try:
            obj = np.asarray(obj)
        except (ValueError, TypeError) as exc:
            raise TypeError(f"{name}: expected {_ACCEPTED}; got {type(obj).__name__} that "
                            f"NumPy cannot read as an array ({exc})") from None
    if isinstance(obj, (int, float, np.number, bool)) or obj is None:
        raise ValueError(f"{name}: expected {_ACCEPTED}; got the scalar {obj!r}")
    info = _shape_dtype(obj, name)
    if info is None:
        raise TypeError(f"{name}: expected {_ACCEPTED}; got {type(obj).__module__}."
                        f"{type(obj).__qualname__}")
    shape, dname, numeric = info
    if not numeric:
        raise TypeError(f"{name}: expected a real numeric dtype (float64, float32, float16, "
                        f"bfloat16, int8..int64, uint8..uint64 or bool); got dtype {dname!r}")
    if len(shape) != 1:
        raise ValueError(f"{name}: expected a 1-D array (one entry per point); got shape "
                         f"{tuple(int(s) for s in shape)}")
    n = int(shape[0])
    if n == 0:
        dev = "cuda" if (is_torch_tensor(obj) and obj.device.type == "cuda") or \
            _backend.is_device_array(obj) else "cpu"
        return _Col(name, 0, dname, dev, None, n_cat)
    m = as_matrix(obj, name=name)
    return _Col(name, n, m.dtype, m.device, m, n_cat)


def _check_stats(stats, has_value: bool, has_cat: bool) -> tuple[str, ...]:
    offered = ("count", "nan_count") + (_VALUE_STATS if has_value else ()) + \
        (("count_cat",) if has_cat else ())
    if stats is None:
        return offered
    if isinstance(stats, str):
        stats = (stats,)
    if not isinstance(stats, Iterable):
        raise TypeError(f"stats: expected a statistic name or a list of them; got {stats!r}")
    chosen = tuple(dict.fromkeys(stats))
    unknown = [s for s in chosen if s not in POINT_STATS]
    if unknown or not chosen:
        raise ValueError(f"stats: expected names from {', '.join(POINT_STATS)}; got "
                         f"{', '.join(map(repr, unknown)) if unknown else 'nothing'}")
    if not has_value and any(s in _VALUE_STATS for s in chosen):
        need = [s for s in chosen if s in _VALUE_STATS]
        raise ValueError(f"stats: {', '.join(map(repr, need))} need a value column; got "
                         f"value=None")
    if not has_cat and "count_cat" in chosen:
        raise ValueError("stats: 'count_cat' needs a category column; got category=None")
    # count and nan_count come free, and so does count_cat with a category column
    return tuple(s for s in offered
                 if s in chosen or s in ("count", "nan_count", "count_cat"))


def _check_n_categories(value) -> int | None:
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"n_categories: expected a positive integer or None; got {value!r} "
                        f"({type(value).__name__})")
    if not 1 <= int(value) <= _kpoints.MAX_CATEGORIES:
        raise ValueError(f"n_categories: expected 1..{_kpoints.MAX_CATEGORIES}; got "
                         f"{int(value)}")
    return int(value)


def _auto_range(lo: float, hi: float, name: str) -> tuple[float, float]:
    """The default window from the finite data bounds (see :func:`rasterize_points`)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return (-0.5, 0.5)            # no point with finite coordinates
    if lo == hi:
        return (lo - 0.5, hi + 0.5)
    if not math.isfinite(hi - lo):
        raise ValueError(f"{name}_range: the finite {name} coordinates span ({lo!r}, {hi!r}), "
                         f"wider than a float64 can hold; pass {name}_range explicitly")
    return (lo, hi)


def _host_values(col: _Col) -> np.ndarray:
    """The column as float64 on the host (only for error messages)."""
    m = col.matrix
    buf = _backend.to_host(m.buffer) if m.device == "cuda" else m.buffer
    raw = buf[m.offset + np.arange(col.n, dtype=np.int64) * m.cols.t1]
    if m.decode == DECODE_BF16:
        return (raw.astype(np.uint32) << np.uint32(16)).view(np.float32).astype(np.float64)
    if m.decode == DECODE_F16:
        return raw.view(np.float16).astype(np.float64)
    return raw.astype(np.float64)


def _bad_category(col: _Col, k: int | None) -> ValueError:
    """The error for the first category entry that is not a code in 0..k-1."""
    c = _host_values(col)
    with np.errstate(invalid="ignore"):
        good = np.isfinite(c) & (np.floor(c) == c) & (c >= 0)
        if k is not None:
            good &= c < k
    i = int(np.argmin(good))
    v = c[i]
    shown = int(v) if np.isfinite(v) and v == np.floor(v) else float(v)
    expect = (f"integer codes 0..{k - 1} (n_categories={k})" if k is not None
              else "non-negative integer codes")
    return ValueError(f"category: expected {expect}; got {shown!r} at index {i} "
                      f"({int((~good).sum())} bad entries in all)")


def rasterize_points(x, y, value=None, category=None, width: int = 800, height: int = 600,
                     x_range=None, y_range=None, backend: Backend = "auto",
                     n_categories: int | None = None, stats=None) -> Raster:
    """Reduce a point cloud to exact per-pixel statistics on a ``width`` x ``height`` canvas.

    Parameters
    ----------
    x, y : (n,) array_like
        Point coordinates: numpy arrays or memmaps, torch tensors (CPU or
        CUDA; any float dtype including bfloat16 and float16), cupy arrays,
        pandas Series, lists.  Read in place, any stride.  NaN / infinite
        coordinates drop the point and are counted in
        ``attrs["nonfinite_xy"]``.
    value : (n,) array_like, optional
        A value per point: sum, mean, min and max per pixel.  A NaN / inf
        value counts in the pixel's ``nan_count`` and never reaches the other
        statistics.
    category : (n,) array_like, optional
        Integer codes 0..K-1 per point (any integer dtype, or floats holding
        integers; a pandas Categorical uses its codes and its number of
        categories): a ``count_cat`` plane of shape (height, width, K).
    width, height : int
        Canvas size in pixels.
    x_range, y_range : (float, float), optional
        Visible window.  Default: the exact min / max of the coordinates of the
        points whose x and y are both finite (one pass over the data); equal
        ends are widened by 0.5 on each side, and with no finite point the
        range is (-0.5, 0.5).
    backend : {"auto", "cpu", "cuda"}
        ``"auto"`` follows the data (and ``DLVIZ_BACKEND``).
    n_categories : int, optional
        K.  Default: the number of categories of a pandas Categorical, else
        ``max(category) + 1``.  Codes that are negative, >= K or not integers
        raise a ValueError naming the first bad entry.
    stats : str or list of str, optional
        Which of ``count, nan_count, sum, mean, min, max, count_cat`` to offer
        (default: all the columns given allow).  Asking for no ``min`` /
        ``max`` skips them in the pass (about half the memory traffic per
        point with a value column).

    Returns
    -------
    Raster
        Planes of shape (height, width), row 0 on the ``y_range[0]`` side:
        ``count`` (int64; with a value column, points whose value is finite),
        ``nan_count`` (int64; zeros without a value column), with a value
        column ``sum``, ``min``, ``max`` (float64, NaN where empty) and
        ``mean`` on request; with a category column ``count_cat`` (int64,
        (height, width, K)).  ``attrs`` holds ``points`` (n), ``outside``
        (finite points outside the window) and ``nonfinite_xy``, so that
        ``count.sum() + nan_count.sum() + outside + nonfinite_xy == n``.

    Notes
    -----
    Pixel of a point: ``px = floor(((x - x0) * W) / (x1 - x0))`` in float64
    for ``x0 <= x <= x1``, with ``x == x1`` in the last column (NumPy's
    ``histogram2d`` convention); the same for y.
    """
    cx = _intake(x, "x")
    cols = {"x": cx, "y": _intake(y, "y")}
    if value is not None:
        cols["value"] = _intake(value, "value")
    if category is not None:
        cols["category"] = _intake(category, "category")
    n = cx.n
    for name, col in cols.items():
        if col.n != n:
            raise ValueError(f"{name}: expected {n} entries (the length of x); got {col.n}")
    w = check_size(width, "width")
    h = check_size(height, "height")
    xr = None if x_range is None else check_range(x_range, "x_range", w)
    yr = None if y_range is None else check_range(y_range, "y_range", h)
    k = _check_n_categories(n_categories)
    has_value = "value" in cols
    ccol = cols.get("category")
    if k is None and ccol is not None:
        k = ccol.n_categories
    chosen = _check_stats(stats, has_value, ccol is not None)
    device = "cuda" if any(c.device == "cuda" for c in cols.values()) else "cpu"
    where = _backend.resolve(backend, device)

    kc = {name: col.column(where) for name, col in cols.items()}
    want_xy = xr is None or yr is None
    want_k = ccol is not None and k is None
    if (want_xy or want_k) and n > 0:
        bounds = _backend.kernel_for(_kpoints.POINTS_BOUNDS, where)(
            kc["x"] if want_xy else None, kc["y"] if want_xy else None,
            kc["category"] if want_k else None, n)
        if want_xy:
            xr = xr or _auto_range(bounds["x_min"], bounds["x_max"], "x")
            yr = yr or _auto_range(bounds["y_min"], bounds["y_max"], "y")
        if want_k:
            if bounds["c_bad"] or bounds["c_min"] < 0:
                raise _bad_category(ccol, None)
            k = int(bounds["c_max"]) + 1
            if k > _kpoints.MAX_CATEGORIES:
                raise ValueError(f"category: expected codes below "
                                 f"{_kpoints.MAX_CATEGORIES}; got {int(bounds['c_max'])} "
                                 f"(pass n_categories to bound it)")
    xr = xr or (-0.5, 0.5)
    yr = yr or (-0.5, 0.5)
    if ccol is not None and k is None:
        k = 0                          # empty input: no category seen
    if ccol is not None and w * h * k > MAX_CAT_CELLS:
        raise ValueError(f"n_categories: a {w} x {h} canvas with {k} categories needs "
                         f"{w * h * k} count_cat cells; expected at most {MAX_CAT_CELLS} "
                         f"(use a smaller canvas or fewer categories)")
    canvas = Canvas(w, h, xr, yr)
    for name, rng in (("x_range", canvas.x_range), ("y_range", canvas.y_range)):
        if not math.isfinite(rng[1] - rng[0]):
            raise ValueError(f"{name}: expected a span a float64 can hold; got {rng}")

    kernel = _backend.kernel_for(_kpoints.POINTS_STATS, where)
    want_minmax = any(s in chosen for s in ("min", "max"))
    planes, counters = kernel(kc["x"], kc["y"], kc.get("value"), kc.get("category"), n,
                              canvas.x_range, canvas.y_range, w, h,
                              n_categories=k or 0, want_minmax=want_minmax)
    if counters["bad_category"]:
        raise _bad_category(ccol, k)
    dtype = cols["value"].dtype if has_value else cx.dtype
    attrs = {"points": n, "outside": counters["outside"],
             "nonfinite_xy": counters["nonfinite_xy"]}
    return Raster(canvas, planes, chosen, device=where, dtype=dtype, attrs=attrs)
