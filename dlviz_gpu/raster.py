"""`Canvas` (what to draw) and `Raster` (the result: per-pixel statistics).

A Raster holds the raw planes the kernels produce -- ``count``,
``nan_count``, ``sum`` and, as asked, ``min``/``max`` and ``m2`` (sum of
squared deviations) -- on the device that computed them.  Derived statistics
(mean, extremum, std) are computed from them on request, on the host, and two
rasters of one canvas over disjoint parts of a tensor merge exactly
(Chan's parallel variance for ``m2``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import backend as _backend
from .checks import check_range, check_size

STATS = ("count", "nan_count", "sum", "mean", "min", "max", "extremum", "std")
# statistics only some sources provide: count_cat is (height, width, categories)
EXTRA_STATS = ("count_cat",)
# raw planes each statistic is derived from
_NEEDS = {"count": ("count",), "nan_count": ("nan_count",), "sum": ("sum",),
          "mean": ("sum", "count"), "min": ("min",), "max": ("max",),
          "extremum": ("min", "max"), "std": ("m2", "count")}

MAX_PIXELS = 1 << 25


@dataclass(frozen=True)
class Canvas:
    """A ``width`` x ``height`` pixel grid over ``x_range`` x ``y_range`` in data space.

    For a matrix, x is the column coordinate and y the row coordinate; element
    ``(i, j)`` is the unit cell centred on ``(j + 0.5, i + 0.5)``.
    """

    width: int
    height: int
    x_range: tuple[float, float]
    y_range: tuple[float, float]

    def __post_init__(self):
        w = check_size(self.width, "width")
        h = check_size(self.height, "height")
        if w * h > MAX_PIXELS:
            raise ValueError(f"width x height: expected at most {MAX_PIXELS} pixels; got "
                             f"{w} x {h} = {w * h} (a raster that large is no picture)")
        object.__setattr__(self, "width", w)
        object.__setattr__(self, "height", h)
        object.__setattr__(self, "x_range", check_range(self.x_range, "x_range", w))
        object.__setattr__(self, "y_range", check_range(self.y_range, "y_range", h))

    @property
    def x(self) -> np.ndarray:
        """(width,) pixel-centre x coordinates."""
        return _centres(self.x_range, self.width)

    @property
    def y(self) -> np.ndarray:
        """(height,) pixel-centre y coordinates."""
        return _centres(self.y_range, self.height)


def _centres(rng, n):
    lo, hi = rng
    return lo + (np.arange(n) + 0.5) * ((hi - lo) / n)


class Raster:
    """Per-pixel statistics of one tensor (or part of one) on one canvas.

    Parameters
    ----------
    canvas : Canvas
    planes : dict of (height, width) arrays
        Raw planes from the kernels: ``count``, ``nan_count``, ``sum`` and
        optionally ``min``, ``max``, ``m2``; host ndarrays or device arrays.
    stats : tuple of str
        The statistics this raster offers (a subset of ``STATS``).
    device : {"cpu", "cuda"}
        Where the planes live.
    dtype : str
        Dtype name of the source tensor.
    attrs : dict, optional
        Facts about the pass that are not per pixel (e.g. how many points fell
        outside the canvas); integer entries add up on :meth:`merge`.
    """

    def __init__(self, canvas: Canvas, planes: dict, stats, device: str = "cpu",
                 dtype: str = "float64", attrs: dict | None = None):
        self.canvas = canvas
        self._planes = dict(planes)
        self.stats = tuple(stats)
        self.device = device
        self.dtype = dtype
        self.attrs = dict(attrs or {})
        self._host: dict[str, np.ndarray] = {}

    # -- raw planes --------------------------------------------------------
    def _raw(self, name: str) -> np.ndarray:
        if name not in self._planes:
            raise KeyError(name)
        if name not in self._host:
            self._host[name] = _backend.to_host(self._planes[name])
        return self._host[name]

    @property
    def planes(self) -> dict:
        """The raw planes, on their device."""
        return dict(self._planes)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.canvas.height, self.canvas.width)

    def to_host(self) -> "Raster":
        """The same raster with its planes as host ndarrays."""
        return Raster(self.canvas, {k: self._raw(k) for k in self._planes}, self.stats,
                      "cpu", self.dtype, self.attrs)

    # -- statistics --------------------------------------------------------
    def __getitem__(self, stat: str) -> np.ndarray:
        """One statistic as a (height, width) host array (float64; counts int64).

        ``count_cat`` is (height, width, categories).
        """
        if stat not in STATS and stat not in EXTRA_STATS:
            raise KeyError(f"stat: expected one of {', '.join(STATS + EXTRA_STATS)}; "
                           f"got {stat!r}")
        if stat not in self.stats:
            raise KeyError(f"stat {stat!r} was not computed for this raster; it holds "
                           f"{', '.join(self.stats)} (ask for it with stats=...)")
        if stat in ("count", "nan_count", "sum", "min", "max", "count_cat"):
            return self._raw(stat)
        if stat not in self._host:
            from .kernels import finalize

            if stat == "mean":
                value = finalize.mean_plane(self._raw("sum"), self._raw("count"))
            elif stat == "std":
                value = finalize.std_plane(self._raw("m2"), self._raw("count"))
            else:
                value = finalize.extremum_plane(self._raw("min"), self._raw("max"))
            self._host[stat] = value
        return self._host[stat]

    def to_xarray(self):
        """The statistics as an ``xarray.Dataset`` with dims (y, x).

        Coordinates are pixel centres in data space: x is the column
        coordinate, y the row coordinate; row 0 is the ``y_range[0]`` side.
        """
        import xarray as xr

        coords = {"x": self.canvas.x, "y": self.canvas.y}
        data = {}
        for name in self.stats:
            plane = self[name]
            if plane.ndim == 3:
                data[name] = (("y", "x", "category"), plane)
                coords["category"] = np.arange(plane.shape[2])
            else:
                data[name] = (("y", "x"), plane)
        attrs = {"x_range": self.canvas.x_range, "y_range": self.canvas.y_range,
                 "source_dtype": self.dtype, "computed_on": self.device, **self.attrs}
        return xr.Dataset(data, coords=coords, attrs=attrs)

    # -- combination -------------------------------------------------------
    def merge(self, other: "Raster") -> "Raster":
        """Combine with a raster of the same canvas over a disjoint part of the tensor.

        Exact for counts, sums, min and max; ``std`` uses Chan's parallel
        update, so the result equals one pass over both parts (``inf`` where a
        merged sum overflows float64, as one pass gives; never NaN).
        """
        if not isinstance(other, Raster):
            raise TypeError(f"other: expected a Raster; got {type(other).__name__}")
        if other.canvas != self.canvas:
            raise ValueError(f"other: expected a raster of the same canvas {self.canvas}; "
                             f"got {other.canvas}")
        if set(other._planes) != set(self._planes):
            raise ValueError(f"other: expected the same statistics ({', '.join(self.stats)});"
                             f" got {', '.join(other.stats)}")
        a, b = self.to_host(), other.to_host()
        na, nb = a._raw("count"), b._raw("count")
        # planes that simply add: counts, sums, per-category counts
        with np.errstate(over="ignore", invalid="ignore"):   # sums near float64's limit
            out = {name: a._raw(name) + b._raw(name)
                   for name in ("count", "nan_count", "sum", "count_cat") if name in a._planes}
        if "min" in a._planes:
            out["min"] = np.fmin(a._raw("min"), b._raw("min"))
            out["max"] = np.fmax(a._raw("max"), b._raw("max"))
        if "m2" in a._planes:
            n = na + nb
            with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
                ma = a._raw("sum") / np.maximum(na, 1)
                mb = b._raw("sum") / np.maximum(nb, 1)
                delta = mb - ma
                extra = np.where((na > 0) & (nb > 0),
                                 delta * delta * (na * (nb / np.maximum(n, 1))), 0.0)
                m2 = a._raw("m2") + b._raw("m2") + extra
            # A sum that overflowed (values near the float64 limit) leaves an
            # infinite mean, as in NumPy, whose std is then inf: never NaN.
            # The kernels give m2 = inf for such a pixel too, so merging stays
            # one pass over both parts.
            overflow = (n > 0) & ~np.isfinite(out["sum"])
            m2[np.isnan(m2) | overflow] = np.inf
            out["m2"] = m2
        attrs = dict(self.attrs)
        for key, value in other.attrs.items():
            if isinstance(value, (int, np.integer)) and isinstance(attrs.get(key), (int, np.integer)):
                attrs[key] = attrs[key] + value
            else:
                attrs.setdefault(key, value)
        return Raster(self.canvas, out, self.stats, "cpu", self.dtype, attrs)

    def __repr__(self) -> str:
        c = self.canvas
        return (f"<Raster {c.width}x{c.height} of {self.dtype} over x={c.x_range} "
                f"y={c.y_range} on {self.device}: {', '.join(self.stats)}>")
