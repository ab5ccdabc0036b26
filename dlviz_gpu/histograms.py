"""Exact histograms of tensors, one or a whole model's worth per call.

>>> h = dv.histogram(weights, bins=256)                  # one tensor -> (256,) counts
>>> h = dv.histogram(dict(model.named_parameters()))     # T tensors -> (T, 256) counts
>>> h.percentile([1, 50, 99]), h.to_xarray()

Semantics (docs/architecture.md, "Histogram"): edges ``e_0 < ... < e_B``; a value is in
bin ``k`` when ``e_k <= v < e_{k+1}``, the last bin includes ``e_B``; values
below ``e_0`` (``underflow``), above ``e_B`` (``overflow``), NaN, +inf and
-inf are counted separately, so ``counts.sum() + underflow + overflow + nan +
posinf + neginf == total`` always.  Values are compared with the float64
edges exactly (float32, bfloat16, float16 and integers up to 2**53 convert to
float64 without rounding).

Many tensors, one result
    A list, tuple, generator or mapping of tensors is one call and gives ONE
    :class:`Histogram` whose ``counts`` are (T, B), one row per tensor, and
    whose special counters are (T,) arrays: stacked rows are what a plot of
    distributions over layers or training steps wants.  With
    ``shared_range=True`` (the default) every tensor uses the same edges, so
    the rows are comparable; ``shared_range=False`` gives each tensor its own
    range and ``edges`` becomes (T, B + 1).
"""

from __future__ import annotations

import builtins
import math
from collections.abc import Iterable, Mapping
from typing import Literal, get_args

import numpy as np

from . import backend as _backend
from .backend import Backend
from .checks import check_choice, check_flag
from .tensors import Matrix, as_matrix

#: how bins are spaced
Scale = Literal["linear", "log", "symlog"]
SCALES = get_args(Scale)
SPECIALS = ("underflow", "overflow", "nan", "posinf", "neginf")
# linthresh = LINTHRESH_FRACTION * max(|low|, |high|) unless given
LINTHRESH_FRACTION = 1e-3


# --------------------------------------------------------------------------
# The result
# --------------------------------------------------------------------------

class Histogram:
    """Counts of a tensor's values (or of several tensors') in fixed bins.

    Parameters
    ----------
    counts : (B,) or (T, B) int array
        Per-bin counts; one row per tensor for a stacked histogram.
    edges : (B + 1,) or (T, B + 1) float array
        Strictly increasing bin edges, shared or one row per tensor.
    underflow, overflow, nan, posinf, neginf : int or (T,) int array
        Values below ``edges[0]``, above ``edges[-1]``, NaN, +inf, -inf.
    scale : {"linear", "log", "symlog"}
        How the edges are spaced (used by :meth:`percentile` to interpolate).
    linthresh : float, optional
        The linear threshold of symlog edges.
    names : sequence of str, optional
        One name per tensor of a stacked histogram.
    dtypes : str or sequence of str, optional
        The source tensors' dtype names.
    backend : str
        Where the counts were computed ("cpu", "cuda" or "cpu+cuda").

    Attributes
    ----------
    counts, edges, underflow, overflow, nan, posinf, neginf
        As above; the special counters are Python ints for one tensor and
        (T,) int64 arrays for a stacked histogram.
    total : int or (T,) int64 array
        Every element, counted once: ``counts.sum(-1)`` plus the specials.
    """

    def __init__(self, counts, edges, underflow=0, overflow=0, nan=0, posinf=0, neginf=0,
                 scale: str = "linear", linthresh: float | None = None, names=None,
                 dtypes=None, backend: str = "cpu"):
        counts = np.asarray(counts)
        if counts.ndim not in (1, 2) or counts.shape[-1] < 1:
            raise ValueError(f"counts: expected a (B,) or (T, B) array; got shape {counts.shape}")
        if counts.dtype.kind not in "iu":
            raise TypeError(f"counts: expected integers; got dtype {counts.dtype}")
        counts = counts.astype(np.int64, copy=False)
        edges = np.asarray(edges, dtype=np.float64)
        nb = counts.shape[-1]
        stacked = counts.ndim == 2
        ok = edges.shape == (nb + 1,) or (stacked and edges.shape == (counts.shape[0], nb + 1))
        if not ok:
            raise ValueError(f"edges: expected shape ({nb + 1},)"
                             + (f" or ({counts.shape[0]}, {nb + 1})" if stacked else "")
                             + f" for counts of shape {counts.shape}; got {edges.shape}")
        if not np.isfinite(edges).all() or not (np.diff(edges, axis=-1) > 0).all():
            raise ValueError("edges: expected finite, strictly increasing values")
        scale = check_choice(scale, "scale", SCALES)
        self.counts = counts
        self.edges = edges
        specials = {}
        for name, value in zip(SPECIALS, (underflow, overflow, nan, posinf, neginf)):
            arr = np.asarray(value)
            if arr.dtype.kind not in "iu" and not (arr.dtype.kind == "f"
                                                   and np.all(arr == np.round(arr))):
                raise TypeError(f"{name}: expected an integer count; got {value!r}")
            if stacked:
                arr = np.broadcast_to(arr.astype(np.int64), (counts.shape[0],)).copy()
            elif arr.ndim != 0:
                raise ValueError(f"{name}: expected one count for a (B,) histogram; got shape "
                                 f"{arr.shape}")
            specials[name] = arr if stacked else int(arr)
        self.underflow = specials["underflow"]
        self.overflow = specials["overflow"]
        self.nan = specials["nan"]
        self.posinf = specials["posinf"]
        self.neginf = specials["neginf"]
        self.scale = scale
        self.linthresh = None if linthresh is None else float(linthresh)
        if names is not None:
            names = tuple(str(n) for n in names)
            if not stacked or len(names) != counts.shape[0]:
                raise ValueError(f"names: expected {counts.shape[0] if stacked else 'no'} names; "
                                 f"got {len(names)}")
        self.names = names
        self.dtypes = dtypes if dtypes is None or isinstance(dtypes, str) else tuple(dtypes)
        self.backend = backend

    # -- shape and derived arrays ------------------------------------------
    @property
    def stacked(self) -> bool:
        """True for one row per tensor (counts of shape (T, B))."""
        return self.counts.ndim == 2

    @property
    def bins(self) -> int:
        """B, the number of bins."""
        return self.counts.shape[-1]

    def __len__(self) -> int:
        """T, the number of tensors of a stacked histogram (1 otherwise)."""
        return self.counts.shape[0] if self.stacked else 1

    @property
    def total(self):
        """Every element counted once: bins + underflow + overflow + NaN + inf."""
        t = self.counts.sum(axis=-1) + self.underflow + self.overflow + self.nan \
            + self.posinf + self.neginf
        return t if self.stacked else int(t)

    @property
    def centers(self) -> np.ndarray:
        """(B,) or (T, B) bin centres in the scale's own sense (geometric for log bins)."""
        lo, hi = self.edges[..., :-1], self.edges[..., 1:]
        if self.scale == "log":
            return np.sqrt(lo * hi)
        return 0.5 * (lo + hi)

    @property
    def widths(self) -> np.ndarray:
        """(B,) or (T, B) bin widths ``edges[k + 1] - edges[k]``."""
        return np.diff(self.edges, axis=-1)

    def fraction(self) -> np.ndarray:
        """(B,) or (T, B) share of *all* elements in each bin (specials included in the total).

        ``fraction().sum(-1) + (underflow + overflow + nan + posinf + neginf) /
        total == 1``; zeros for an empty tensor.
        """
        total = np.asarray(self.total, np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            out = self.counts / (total[..., None] if self.stacked else total)
        return np.nan_to_num(out, nan=0.0)

    def density(self) -> np.ndarray:
        """(B,) or (T, B) probability density over the binned values.

        ``counts / (counts.sum() * widths)``: integrates to 1 over
        ``[edges[0], edges[-1]]``, like ``numpy.histogram(..., density=True)``;
        values outside the bins and NaN/inf are left out.  NaN for a tensor
        with no binned value.
        """
        n = self.counts.sum(axis=-1, keepdims=True).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.counts / (n * self.widths)

    def percentile(self, q):
        """Approximate percentiles of the binned values, from the counts alone.

        Parameters
        ----------
        q : float or (Q,) array_like
            Percentiles in [0, 100].

        Returns
        -------
        float, (Q,), (T,) or (T, Q) ndarray
            Shape ``q``'s shape, with a leading T axis for a stacked histogram.

        Notes
        -----
        The rank ``q / 100 * n`` (n = binned values; underflow, overflow and
        NaN/inf are left out) is found in the cumulative counts and placed
        inside its bin by linear interpolation -- in log space for log bins,
        in symlog space for symlog bins.  The true percentile of the binned
        values lies in the same bin, so the error is at most one bin width.
        ``q = 0`` / ``100`` give the outer edges of the first / last
        non-empty bin; NaN when no value is binned.
        """
        qa = np.asarray(q, dtype=np.float64)
        if qa.size and (not np.isfinite(qa).all() or qa.min() < 0 or qa.max() > 100):
            raise ValueError(f"q: expected percentiles in [0, 100]; got {q!r}")
        if not self.stacked:
            return self._percentile_row(self.counts, self.edges, qa)
        rows = [self._percentile_row(self.counts[t], self._edges_of(t), qa)
                for t in builtins.range(len(self))]
        return np.array(rows)

    def _edges_of(self, t: int) -> np.ndarray:
        return self.edges[t] if self.edges.ndim == 2 else self.edges

    def _percentile_row(self, counts, edges, qa):
        n = int(counts.sum())
        flat = qa.ravel()
        out = np.full(flat.shape, np.nan)
        if n > 0:
            cum = np.concatenate([[0], np.cumsum(counts)])
            tedges = self._to_space(edges)
            nonempty = np.flatnonzero(counts)
            for i, qv in enumerate(flat):
                target = qv / 100.0 * n
                if target <= 0:
                    k, frac = int(nonempty[0]), 0.0
                else:
                    # first bin whose cumulative count reaches the rank: non-empty
                    k = int(np.searchsorted(cum[1:], target, side="left"))
                    k = min(k, counts.size - 1)
                    frac = (target - cum[k]) / counts[k]
                t = tedges[k] + frac * (tedges[k + 1] - tedges[k])
                out[i] = float(self._from_space(np.array([t]))[0])
        out = out.reshape(qa.shape)
        return float(out) if out.ndim == 0 else out

    def _to_space(self, v):
        if self.scale == "log":
            return np.log(v)
        if self.scale == "symlog":
            from .kernels.histogram import symlog_forward

            return symlog_forward(v, self.linthresh)
        return np.asarray(v, np.float64)

    def _from_space(self, t):
        if self.scale == "log":
            return np.exp(t)
        if self.scale == "symlog":
            from .kernels.histogram import symlog_inverse

            return symlog_inverse(t, self.linthresh)
        return t

    # -- selection, combination, export ------------------------------------
    def __getitem__(self, key) -> "Histogram":
        """One tensor of a stacked histogram, by position or name, as a (B,) Histogram."""
        if not self.stacked:
            raise TypeError("key: only a stacked (T, B) histogram can be indexed; this one "
                            "holds a single tensor")
        if isinstance(key, str):
            if self.names is None or key not in self.names:
                raise KeyError(f"key: no tensor named {key!r}")
            t = self.names.index(key)
        elif isinstance(key, (int, np.integer)) and not isinstance(key, bool):
            t = int(key)
            if not -len(self) <= t < len(self):
                raise IndexError(f"key: expected an index in [{-len(self)}, {len(self)}); "
                                 f"got {t}")
            t %= len(self)
        else:
            raise TypeError(f"key: expected an int or a tensor name; got {key!r}")
        return Histogram(self.counts[t], self._edges_of(t), *(int(getattr(self, s)[t])
                                                              for s in SPECIALS),
                         scale=self.scale, linthresh=self.linthresh,
                         dtypes=self.dtypes[t] if isinstance(self.dtypes, tuple) else self.dtypes,
                         backend=self.backend)

    def merge(self, other: "Histogram") -> "Histogram":
        """Add the counts of a histogram with the same edges (e.g. another shard or step).

        Exact: every counter adds.  Raises ValueError unless ``other`` has the
        same edges, scale and shape.
        """
        if not isinstance(other, Histogram):
            raise TypeError(f"other: expected a Histogram; got {type(other).__name__}")
        if other.counts.shape != self.counts.shape:
            raise ValueError(f"other: expected counts of shape {self.counts.shape}; got "
                             f"{other.counts.shape}")
        if other.edges.shape != self.edges.shape or not np.array_equal(other.edges, self.edges):
            raise ValueError("other: expected the same edges; got different edges (histogram "
                             "both with the same bins= edges array or range= to merge them)")
        if other.scale != self.scale or other.linthresh != self.linthresh:
            raise ValueError(f"other: expected scale {self.scale!r} (linthresh "
                             f"{self.linthresh}); got {other.scale!r} ({other.linthresh})")
        backend = self.backend if other.backend == self.backend else "+".join(
            sorted(set(self.backend.split("+")) | set(other.backend.split("+"))))
        return Histogram(self.counts + other.counts, self.edges,
                         *(getattr(self, s) + getattr(other, s) for s in SPECIALS),
                         scale=self.scale, linthresh=self.linthresh, names=self.names,
                         dtypes=self.dtypes, backend=backend)

    def to_xarray(self):
        """The counts as an ``xarray.DataArray``.

        Dims ``("bin",)`` or ``("tensor", "bin")``.  Coordinates: ``left``,
        ``right`` and ``center`` of every bin (along ``bin``, or
        ``(tensor, bin)`` for per-tensor edges), ``bin`` = the centres when the
        edges are shared, ``tensor`` = the names when there are names, and
        the special counters along ``tensor``; for one tensor they are attrs.
        """
        import xarray as xr

        lo, hi, mid = self.edges[..., :-1], self.edges[..., 1:], self.centers
        attrs = {"scale": self.scale, "backend": self.backend}
        if self.linthresh is not None:
            attrs["linthresh"] = self.linthresh
        if self.dtypes is not None:
            attrs["source_dtype"] = (self.dtypes if isinstance(self.dtypes, str)
                                     else ", ".join(self.dtypes))
        if not self.stacked:
            attrs.update({s: getattr(self, s) for s in SPECIALS})
            attrs["total"] = self.total
            return xr.DataArray(self.counts, dims=("bin",), name="count", attrs=attrs,
                                coords={"bin": mid, "left": ("bin", lo), "right": ("bin", hi)})
        coords = {s: ("tensor", getattr(self, s)) for s in SPECIALS}
        coords["total"] = ("tensor", self.total)
        coords["tensor"] = list(self.names) if self.names is not None else np.arange(len(self))
        if self.edges.ndim == 1:
            coords.update({"bin": mid, "left": ("bin", lo), "right": ("bin", hi)})
        else:
            coords.update({"bin": np.arange(self.bins), "left": (("tensor", "bin"), lo),
                           "right": (("tensor", "bin"), hi), "center": (("tensor", "bin"), mid)})
        return xr.DataArray(self.counts, dims=("tensor", "bin"), name="count", coords=coords,
                            attrs=attrs)

    def __repr__(self) -> str:
        e = self.edges
        span = f"[{e[..., 0].min():.6g}, {e[..., -1].max():.6g}]"
        what = (f"{len(self)} tensors x {self.bins} bins" if self.stacked
                else f"{self.bins} bins")
        extra = "" if self.scale != "symlog" else f" linthresh={self.linthresh:.3g}"

        def tot(v):
            return int(np.sum(v))
        specials = ", ".join(f"{s}={tot(getattr(self, s))}" for s in SPECIALS)
        return (f"<Histogram {what}, {self.scale}{extra} {span}"
                + (" (per-tensor edges)" if e.ndim == 2 else "")
                + f", total={tot(self.total)}, {specials}, on {self.backend}>")


# --------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------

def _check_bins(bins):
    """An int count or an edges array (validated)."""
    from .kernels.histogram import MAX_BINS

    if isinstance(bins, (bool, np.bool_)):
        raise TypeError(f"bins: expected a positive integer or an array of edges; got {bins!r}")
    if isinstance(bins, (int, np.integer)):
        if not 1 <= int(bins) <= MAX_BINS:
            raise ValueError(f"bins: expected a positive integer no larger than {MAX_BINS}; "
                             f"got {int(bins)}")
        return int(bins)
    if isinstance(bins, (float, np.floating, str)) or bins is None:
        raise TypeError(f"bins: expected a positive integer or an array of edges; got {bins!r}")
    try:
        e = np.asarray(bins, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"bins: expected a positive integer or an array of edges; got "
                        f"{bins!r}") from None
    if e.ndim != 1 or e.size < 2:
        raise ValueError(f"bins: expected at least 2 edges in a 1-D array; got shape {e.shape}")
    if e.size - 1 > MAX_BINS:
        raise ValueError(f"bins: expected at most {MAX_BINS} bins; got {e.size - 1} edges")
    if not np.isfinite(e).all():
        raise ValueError(f"bins: expected finite edges; got {_short(e)}")
    if not (np.diff(e) > 0).all():
        raise ValueError(f"bins: expected strictly increasing edges; got {_short(e)}")
    return np.ascontiguousarray(e)


def _short(a: np.ndarray) -> str:
    s = np.array2string(a, threshold=8, precision=6)
    return s if len(s) < 120 else s[:117] + "..."


def _check_range(value):
    if value is None:
        return None
    from .kernels import window_problem

    try:
        lo, hi = value
        lo, hi = float(lo), float(hi)
    except OverflowError:      # an int beyond float64 (its text may be huge: not shown)
        raise ValueError("range: expected finite bounds; got a number beyond the float64 "
                         "range") from None
    except (TypeError, ValueError):
        raise TypeError(f"range: expected a (low, high) pair of numbers or None; got "
                        f"{value!r}") from None
    # finite bounds, low < high, and a finite width hi - lo, as every window
    problem = window_problem(lo, hi)
    if problem:
        raise ValueError(f"range: {problem}")
    return lo, hi


def _check_linthresh(value):
    if value is None:
        return None
    try:
        c = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"linthresh: expected a positive number; got {value!r}") from None
    if not (math.isfinite(c) and c > 0):
        raise ValueError(f"linthresh: expected a positive finite number; got {value!r}")
    return c


# --------------------------------------------------------------------------
# Tensor intake
# --------------------------------------------------------------------------

def _is_tensor(obj) -> bool:
    return (isinstance(obj, (np.ndarray, np.generic, Matrix, int, float))
            or hasattr(obj, "__array__") or hasattr(obj, "__cuda_array_interface__")
            or hasattr(obj, "__dlpack__"))


def _split(tensors):
    """(list of tensors, names or None, stacked?) for whatever the caller passed."""
    if isinstance(tensors, Mapping):
        items = list(tensors.items())
        if not items:
            raise ValueError("tensors: expected at least one tensor; got an empty mapping")
        return [v for _, v in items], [str(k) for k, _ in items], True
    if _is_tensor(tensors):
        return [tensors], None, False
    if isinstance(tensors, (list, tuple)):
        if not tensors:
            raise ValueError(f"tensors: expected at least one tensor; got an empty "
                             f"{type(tensors).__name__}")
        if all(isinstance(v, (int, float, bool, np.number)) for v in tensors):
            return [np.asarray(tensors)], None, False   # a plain list of numbers
        return list(tensors), None, True
    if isinstance(tensors, (str, bytes)) or not isinstance(tensors, Iterable):
        raise TypeError(f"tensors: expected a tensor, or a list, tuple, mapping or iterable "
                        f"of tensors; got {type(tensors).__module__}."
                        f"{type(tensors).__qualname__}")
    items = list(tensors)    # a generator such as model.parameters()
    if not items:
        raise ValueError("tensors: expected at least one tensor; got an empty iterable")
    return items, None, True


def _shape_of(t):
    if isinstance(t, Matrix):
        return t.shape
    shape = getattr(t, "shape", None)
    if shape is None and hasattr(t, "__cuda_array_interface__"):
        shape = t.__cuda_array_interface__.get("shape")
    if shape is None:
        return None
    try:
        return tuple(int(n) for n in shape)
    except TypeError:
        return None


class _Empty:
    """Stand-in for a tensor with no elements (counts zero)."""

    def __init__(self, dtype: str):
        self.dtype = dtype
        self.device = "cpu"


def _intake(t, name: str):
    """A Matrix over ``t`` (any rank, read in place), or _Empty for zero elements.

    ``name`` is the argument's name errors start with (``tensors[2]``, say).
    """
    if isinstance(t, Matrix):
        return t
    shape = _shape_of(t)
    if shape is None:
        t = np.asarray(t)
        shape = t.shape
    if len(shape) == 0:
        t = t.reshape(1)           # a 0-d tensor is one value (a view, never a copy)
        shape = (1,)
    if int(np.prod(shape)) == 0:
        dtype = getattr(t, "dtype", "float64")
        return _Empty(str(dtype).replace("torch.", ""))
    if len(shape) <= 2:
        return as_matrix(t, layout="auto", name=name)
    # the layout is irrelevant to a histogram; pick one that needs no copy
    try:
        return as_matrix(t, layout="flatten", name=name)
    except ValueError:
        return as_matrix(t, layout="stack", name=name)


# --------------------------------------------------------------------------
# Ranges and edges
# --------------------------------------------------------------------------

def _default_range(lo, hi, lp, scale):
    """The range=None choice from a tensor's (finite min, finite max, smallest positive)."""
    if scale == "log":
        if not math.isfinite(lp):
            return 1.0, 10.0          # nothing positive: everything is underflow/special
        top = hi if math.isfinite(hi) and hi > lp else lp
        if top <= lp:
            return lp / 2.0, lp * 2.0
        return lp, top
    if not lo <= hi:                  # no finite value at all
        return 0.0, 1.0
    if lo < 0.0 < hi:                 # signed: symmetric, so 0 is an edge (even bins)
        m = max(-lo, hi)
        return -m, m
    if lo == hi:
        return lo - 0.5, hi + 0.5     # NumPy's choice for one distinct value
    return lo, hi


def make_edges(bins: int, lo: float, hi: float, scale: str = "linear",
               linthresh: float | None = None) -> np.ndarray:
    """(bins + 1,) float64 edges spaced per ``scale`` from ``lo`` to ``hi`` (both exact).

    Linear: ``numpy.linspace``; log: uniform in ``log(v)``; symlog: uniform in
    the symlog transform (``v / c`` inside ``[-c, c]``, ``sign(v) (1 + ln(|v|
    / c))`` outside, ``c = linthresh``).  A range symmetric about 0 with an
    even bin count has 0 as an exact edge.
    """
    from .kernels.histogram import symlog_forward, symlog_inverse

    with np.errstate(over="ignore", invalid="ignore"):
        if scale == "log":
            e = np.exp(np.linspace(math.log(lo), math.log(hi), bins + 1))
        elif scale == "symlog":
            t0, t1 = symlog_forward([lo, hi], linthresh)
            e = symlog_inverse(np.linspace(t0, t1, bins + 1), linthresh)
        elif math.isfinite(hi - lo):
            e = np.linspace(lo, hi, bins + 1)
        else:
            # a default range over data near both float64 limits: its width
            # overflows, so cut the halved range (halving is exact there)
            e = 2.0 * np.linspace(lo / 2.0, hi / 2.0, bins + 1)
    e[0], e[-1] = lo, hi
    if lo == -hi and bins % 2 == 0:
        e[bins // 2] = 0.0
    if not (np.isfinite(e).all() and (np.diff(e) > 0).all()):
        raise ValueError(f"range: ({lo!r}, {hi!r}) cannot be cut into {bins} strictly "
                         f"increasing float64 {scale} bins (too narrow or too wide); "
                         f"use fewer bins or another range")
    return e


# --------------------------------------------------------------------------
# The verb
# --------------------------------------------------------------------------

def histogram(tensors, bins=256, range=None, scale: Scale = "linear",  # noqa: A002 - NumPy's name
              backend: Backend = "auto", *, linthresh: float | None = None,
              shared_range: bool = True) -> Histogram:
    """Exact histogram of a tensor, or of many tensors in one call.

    Parameters
    ----------
    tensors : array_like, or list / tuple / mapping / iterable of array_like
        numpy arrays or memmaps, torch tensors (CPU or CUDA, bfloat16 and
        float16 included), cupy arrays, anything with ``__array__``,
        ``__cuda_array_interface__`` or ``__dlpack__``; any rank and strides,
        read in place (no copy, no upcast).  Empty tensors give zero counts.
        A mapping (e.g. ``dict(model.named_parameters())``) names the rows;
        a plain list of numbers is one 1-D tensor.
    bins : int or (B + 1,) array_like
        Number of bins (spaced per ``scale``), or the edges themselves
        (finite, strictly increasing; then ``range`` must be None).
    range : (float, float), optional
        ``(low, high)``: the outer edges.  Default: one exact pass over the
        data first.  Linear and symlog: ``(-m, m)`` with ``m = max |v|``
        when the finite values have both signs (0 is then an edge for an
        even ``bins``), else ``(min, max)``; one distinct value v gives
        ``(v - 0.5, v + 0.5)``, no finite value ``(0, 1)``.  Log: ``(smallest
        positive value, max)``; ``(1, 10)`` when nothing is positive.
        For many tensors the range covers all of them (``shared_range=True``)
        or each its own.
    scale : {"linear", "log", "symlog"}
        Bins uniform in ``v``, in ``log v`` (needs ``range`` > 0), or in the
        symlog transform (linear within ``[-linthresh, linthresh]``,
        logarithmic outside).
    backend : {"auto", "cpu", "cuda"}
        ``"auto"`` follows the data (and ``DLVIZ_BACKEND``), per tensor.
    linthresh : float, optional
        Symlog linear threshold; default ``1e-3 * max(|low|, |high|)``.
    shared_range : bool
        With ``range=None`` and many tensors: one range for all (comparable
        rows) or one per tensor (``edges`` then has shape (T, B + 1)).

    Returns
    -------
    Histogram
        ``counts`` (B,) for one tensor, (T, B) for many; ``edges`` (B + 1,)
        (or (T, B + 1)); ``underflow``, ``overflow``, ``nan``, ``posinf``,
        ``neginf`` and ``total`` per tensor.

    Raises
    ------
    ValueError
        Bad ``bins``, ``range``, ``scale`` or ``linthresh``; log scale with a
        range or edges that are not positive; an empty list.
    TypeError
        Unsupported tensors or argument types.
    """
    from .kernels import histogram as kh

    scale = check_choice(scale, "scale", SCALES)
    nb_or_edges = _check_bins(bins)
    rng = _check_range(range)
    linthresh = _check_linthresh(linthresh)
    check_flag(shared_range, "shared_range")
    explicit = isinstance(nb_or_edges, np.ndarray)
    if explicit and rng is not None:
        raise ValueError(f"range: expected None when bins is an array of edges (the edges "
                         f"fix the range); got {range!r}")
    if scale == "log":
        low = nb_or_edges[0] if explicit else (rng[0] if rng is not None else None)
        if low is not None and not low > 0:
            what = "bins" if explicit else "range"
            raise ValueError(f"{what}: scale='log' needs a positive range; got a lower "
                             f"{'edge' if explicit else 'bound'} of {float(low)!r} (pass "
                             f"range=(low, high) with low > 0, or use scale='symlog')")

    _backend.resolve(backend, "cpu")      # a bad backend name fails before any work
    items, names, stacked = _split(tensors)
    labels = [("tensor" if not stacked else
               f"tensors[{names[i]!r}]" if names else f"tensors[{i}]")
              for i in builtins.range(len(items))]
    mats = [_intake(t, lab) for t, lab in zip(items, labels)]
    wheres = [None if isinstance(m, _Empty) else _backend.resolve(backend, m.device)
              for m in mats]

    # ---- edges -----------------------------------------------------------
    T = len(mats)
    if explicit:
        edges = nb_or_edges
        if scale == "symlog" and linthresh is None:
            linthresh = LINTHRESH_FRACTION * float(max(abs(edges[0]), abs(edges[-1])))
    else:
        nb = nb_or_edges
        if rng is not None:
            ranges = [rng]
        else:
            mm = [_minmax(m, w) for m, w in zip(mats, wheres)]
            if shared_range or T == 1:
                lo = min(r[0] for r in mm)
                hi = max(r[1] for r in mm)
                lp = min(r[2] for r in mm)
                ranges = [_default_range(lo, hi, lp, scale)]
            else:
                ranges = [_default_range(*r, scale) for r in mm]
        if scale == "symlog" and linthresh is None:
            linthresh = LINTHRESH_FRACTION * max(max(abs(a), abs(b)) for a, b in ranges)
        rows = [make_edges(nb, a, b, scale, linthresh) for a, b in ranges]
        edges = rows[0] if len(rows) == 1 else np.stack(rows)

    # ---- counts ----------------------------------------------------------
    nbins = edges.shape[-1] - 1
    counts = np.zeros((T, nbins), np.int64)
    specials = np.zeros((T, 5), np.int64)
    used = set()
    for where in ("cpu", "cuda"):
        idx = [i for i, w in enumerate(wheres) if w == where]
        if not idx:
            continue
        used.add(where)
        run = _backend.kernel_for(kh.HISTOGRAM_MANY, where)
        batch = [(_backend.buffer_for(mats[i], where), mats[i].offset, mats[i].rows,
                  mats[i].cols, mats[i].decode) for i in idx]
        e = edges if edges.ndim == 1 else edges[idx]
        c, s = run(batch, e, scale, linthresh)
        counts[idx] = c
        specials[idx] = s
    dtypes = [m.dtype for m in mats]
    label = "+".join(sorted(used)) or "cpu"
    if not stacked:
        return Histogram(counts[0], edges, *(int(v) for v in specials[0]), scale=scale,
                         linthresh=linthresh if scale == "symlog" else None,
                         dtypes=dtypes[0], backend=label)
    return Histogram(counts, edges, *specials.T, scale=scale,
                     linthresh=linthresh if scale == "symlog" else None, names=names,
                     dtypes=dtypes, backend=label)


def _minmax(m, where):
    """(finite min, finite max, smallest positive) of one intake result."""
    from .kernels import histogram as kh

    if isinstance(m, _Empty):
        return math.inf, -math.inf, math.inf
    run = _backend.kernel_for(kh.MINMAX, where)
    return run(_backend.buffer_for(m, where), m.offset, m.rows, m.cols, m.decode)

