"""``dv.scatter``: a zoomable, exact picture of a point cloud (10^8 points and more).

Every zoom asks :func:`dlviz_gpu.rasterize_points` again for just the visible
window at the plot's pixel size, so the browser receives one screenful of
per-pixel statistics, never the points.  Numbers (``count`` or the
``mean`` / ``min`` / ``max`` / ``sum`` of a value per point) go to the browser
as an ``hv.Image`` coloured there (colour bar with real values, hover with the
pixel's count and value statistics); categories are mixed on the server into
an ``hv.RGB`` (each pixel the average of its categories' colours weighted by
their counts, opacity from the total count: Datashader's ``shade`` of a
``count_cat``), with an invisible ``hv.Image`` on top for the hover and a
legend naming the categories.

Spreading (Datashader's ``dynspread`` rule) widens isolated points so they stay
visible; it changes only the colour plane, never the numbers the hover shows.
"""

from __future__ import annotations

import math
import time
import warnings

import numpy as np

from ..points import rasterize_points
from ..checks import check_size
from . import style
from .matrix import ZOOM_LOD, prompt_ranges
from .zoom import ZoomView

#: Values of ``agg``.
AGGS = ("count", "sum", "mean", "min", "max")
#: ``agg`` values that need ``value``.
VALUE_AGGS = ("sum", "mean", "min", "max")
#: Norms that make sense for the opacity of category mixes.
CATEGORY_NORMS = ("linear", "log", "eq_hist")
#: Default palette of the categories (glasbey, its first ten the category10 colours).
CATEGORY_CMAP = "glasbey_category10"
#: ``spread="auto"``: Datashader's dynspread rule with these parameters.
SPREAD_THRESHOLD = 0.5
SPREAD_MAX_PX = 3
#: Lowest opacity of a pixel holding one point in a category mix.
MIN_ALPHA = 40
#: Per-category counts appear in the hover up to this many categories.
HOVER_CATEGORIES = 12
# overview canvas (construction): limits of value colours, number of categories
_OVERVIEW = 256
#: The default window widens the points' exact bounds by this fraction a side.
PAD = 0.02
_OVERVIEW_CAT = 64
#: Colour of pixels with no point: transparent (8-digit hex reads the same in
#: Bokeh and matplotlib, unlike ``style.EMPTY_COLOR``'s CSS rgba()).
EMPTY = "#00000000"


def _shape(obj):
    shape = getattr(obj, "shape", None)
    return None if shape is None else tuple(int(s) for s in shape)


def _split_xy(x, y):
    """(xs, ys) 1-D columns from ``x`` (N, 2) or from ``x`` and ``y``, as views."""
    if isinstance(x, (list, tuple)):
        x = np.asarray(x)
    if isinstance(y, (list, tuple)):
        y = np.asarray(y)
    shape = _shape(x)
    if y is None:
        if shape is None:
            raise TypeError(f"x: expected an (N, 2) array of coordinates (numpy, torch, cupy, "
                            f"dv.project output) or x and y as 1-D arrays; got "
                            f"{type(x).__module__}.{type(x).__qualname__}")
        if len(shape) == 2 and shape[1] == 2:
            return x[:, 0], x[:, 1]
        if len(shape) == 1:
            raise ValueError(f"y: expected the y coordinates (x is 1-D, shape {shape}); got "
                             "None (or pass x as one (N, 2) array)")
        raise ValueError(f"x: expected an (N, 2) array of coordinates (or x and y as 1-D "
                         f"arrays); got shape {shape}")
    if shape is not None and len(shape) != 1:
        raise ValueError(f"x: expected a 1-D array of x coordinates when y is given; got "
                         f"shape {shape}")
    return x, y


def _categorical(obj):
    """(codes, category names) of a pandas Categorical / categorical Series, else None."""
    dtype = getattr(obj, "dtype", None)
    if getattr(dtype, "name", None) != "category":
        return None
    cat = getattr(obj, "cat", obj)
    return np.asarray(cat.codes), [str(c) for c in cat.categories]


# -- spreading ------------------------------------------------------------------
def _box_sum(a: np.ndarray, r: int) -> np.ndarray:
    """Sum of ``a`` over the (2r+1) x (2r+1) square around each pixel (zero outside)."""
    h, w = a.shape
    c = np.zeros((h + 1, w + 1), dtype=np.int64)
    np.cumsum(np.cumsum(a, axis=0), axis=1, out=c[1:, 1:])
    y0 = np.clip(np.arange(h) - r, 0, h)
    y1 = np.clip(np.arange(h) + r + 1, 0, h)
    x0 = np.clip(np.arange(w) - r, 0, w)
    x1 = np.clip(np.arange(w) + r + 1, 0, w)
    return (c[y1][:, x1] - c[y0][:, x1] - c[y1][:, x0] + c[y0][:, x0])


def spread_px(mask: np.ndarray, spread="auto", threshold: float = SPREAD_THRESHOLD,
              max_px: int = SPREAD_MAX_PX) -> int:
    """How many pixels to spread an image whose non-empty pixels are ``mask``.

    ``spread`` an int: that many.  ``"auto"``: Datashader's ``dynspread``
    rule: try 1..max_px and stop one before the fraction of non-empty pixels
    with a non-empty neighbour within ``2 * px`` exceeds ``threshold``.
    """
    if spread != "auto":
        return int(spread)
    n = int(mask.sum())
    if n == 0:
        return 0
    m = mask.astype(np.int64)
    px_ = 0
    for px in range(1, max_px + 1):
        px_ = px
        density = int(((_box_sum(m, 2 * px) > 1) & mask).sum()) / n
        if density > threshold:
            px_ -= 1
            break
    return px_


def _offsets(px: int):
    """Pixel offsets of a disc of radius ``px`` (px = 1: the 3 x 3 square)."""
    return [(dy, dx) for dy in range(-px, px + 1) for dx in range(-px, px + 1)
            if dy * dy + dx * dx <= px * (px + 1)]


def _neighbourhood(plane: np.ndarray, px: int, fill, reduce):
    """``reduce`` of ``plane`` over the disc of radius ``px`` around each pixel."""
    h, w = plane.shape
    pad = np.full((h + 2 * px, w + 2 * px), fill, dtype=plane.dtype)
    pad[px:px + h, px:px + w] = plane
    out = None
    for dy, dx in _offsets(px):
        view = pad[px + dy:px + dy + h, px + dx:px + dx + w]
        out = view.copy() if out is None else reduce(out, view, out=out)
    return out


def spread_plane(colour: np.ndarray, filled: np.ndarray, px: int, how: str,
                 weights: np.ndarray | None = None) -> np.ndarray:
    """Fill the empty pixels near non-empty ones; non-empty pixels keep their value.

    ``how``: ``"max"`` / ``"min"`` of the neighbours' values, or ``"mean"``
    (``colour`` then holds per-pixel sums and ``weights`` the counts, and the
    result is the neighbourhood's sum / count).  Empty pixels stay NaN.
    """
    if px <= 0:
        return colour
    if how == "mean":
        s = _neighbourhood(np.where(filled, colour, 0.0), px, 0.0, np.add)
        n = _neighbourhood(np.where(filled, weights, 0).astype(np.float64), px, 0.0, np.add)
        with np.errstate(invalid="ignore", divide="ignore"):
            near = np.where(n > 0, s / n, np.nan)
    elif how == "max":
        near = _neighbourhood(np.where(filled, colour, -np.inf), px, -np.inf, np.maximum)
    else:
        near = _neighbourhood(np.where(filled, colour, np.inf), px, np.inf, np.minimum)
    near = np.where(np.isfinite(near), near, np.nan)
    return np.where(filled, colour, near).astype(colour.dtype, copy=False)


class PointsView(ZoomView):
    """The state behind one scatter: the columns, the colour policy, the last window.

    Build one with :func:`scatter`; :meth:`element` renders any window and is
    what the DynamicMap calls on every zoom.

    Attributes
    ----------
    updates : int
        How many windows have been aggregated (each zoom adds one).
    last : dict
        Facts about the last window: ``window`` ((x0, x1), (y0, y1)),
        ``canvas`` (width, height), ``points`` (points in the window),
        ``spread`` (pixels), ``bytes`` (sum of the arrays handed to the plot),
        ``seconds``.
    bounds : ((float, float), (float, float))
        The exact extent of the finite points.
    extent : ((float, float), (float, float))
        The default window: ``bounds`` widened by ``PAD`` (2 %) on each side.
    """

    def __init__(self, x, y=None, value=None, category=None, agg=None, cmap=None,
                 norm=None, clim=None, spread="auto", labels=None, backend="auto",
                 label: str | None = None):
        self.x, self.y = _split_xy(x, y)
        self.value = value
        self.has_value = value is not None
        names = None
        if category is not None:
            cat = _categorical(category)
            if cat is not None:
                category, names = cat
        self.category = category
        self.has_category = category is not None
        if agg is None:
            agg = "mean" if self.has_value and not self.has_category else "count"
        self.agg = style.check_choice(agg, "agg", AGGS)
        if self.agg in VALUE_AGGS and not self.has_value:
            raise ValueError(f"value: agg={self.agg!r} needs a value per point; got value=None "
                             f"(pass value=..., or agg='count')")
        if self.has_category and self.agg != "count":
            raise ValueError(f"agg: with category, the colour mixes the categories' colours "
                             f"by count, so agg must be 'count'; got {self.agg!r} (the value "
                             "statistics appear in the hover)")
        if norm is None:
            norm = "eq_hist" if self.agg == "count" else "linear"
        self.norm = style.check_norm(norm)
        if self.has_category:
            style.check_choice(self.norm, "norm", CATEGORY_NORMS)
        self._clim_given = style.check_clim(clim)
        self.spread = self._check_spread(spread)
        self.labels = self._check_labels(labels, names)
        self.backend = backend
        self.label = style.label(label or ("points" if not self.has_value else "value"))
        super().__init__((700, 500))
        self._cmap_arg = cmap
        self._overview()

    @staticmethod
    def _check_spread(spread):
        if spread == "auto":
            return spread
        if spread is None or spread is False:
            return 0
        if isinstance(spread, (bool, np.bool_)) or not isinstance(spread, (int, np.integer)) \
                or not 0 <= int(spread) <= 16:
            raise ValueError(f"spread: expected 'auto' or a number of pixels in 0..16; got "
                             f"{spread!r}")
        return int(spread)

    def _check_labels(self, labels, names):
        if labels is None:
            return names
        if not self.has_category:
            raise ValueError("labels: names the categories of category=...; got labels "
                             "without a category column")
        if isinstance(labels, dict):
            if not labels:
                raise ValueError("labels: expected names for the category codes; got an empty "
                                 "dict")
            k = max(int(c) for c in labels) + 1
            return [str(labels.get(i, labels.get(str(i), i))) for i in range(k)]
        if isinstance(labels, str) or not hasattr(labels, "__len__") or len(labels) == 0:
            raise ValueError(f"labels: expected a list of category names (one per code 0..K-1) "
                             f"or a dict code -> name; got {labels!r}")
        return [str(s) for s in labels]

    # -- the whole cloud, once -------------------------------------------------------
    def _overview(self) -> None:
        """One pass (plus the bounds pass) over the cloud: extent, totals, colour facts."""
        side = _OVERVIEW_CAT if self.has_category else _OVERVIEW
        k = len(self.labels) if self.labels is not None else None
        try:
            r = rasterize_points(self.x, self.y, self.value, self.category, width=side,
                                 height=side, backend=self.backend, n_categories=k)
        except ValueError as err:
            if self.labels is not None and str(err).startswith("category:"):
                raise ValueError(f"{err} (labels names {k} categories)") from None
            raise
        self.bounds = (r.canvas.x_range, r.canvas.y_range)
        # the default window pads the exact bounds by PAD a side, so the
        # outermost points are not drawn under the axis lines
        self.extent = tuple((lo - PAD * (hi - lo), hi + PAD * (hi - lo))
                            for lo, hi in self.bounds)
        self.total = int(r.attrs["points"])
        self.nonfinite_xy = int(r.attrs["nonfinite_xy"])
        count, nan_count = r["count"], r["nan_count"]
        self.finite = int(count.sum() + nan_count.sum())
        self.nan_values = int(nan_count.sum()) if self.has_value else 0
        if self.finite == 0:
            warnings.warn(f"{self.label}: no point has finite x and y; the scatter is empty",
                          RuntimeWarning, stacklevel=4)
        if self.has_category:
            # K: len(labels) when named (codes beyond it raised above), else max code + 1
            self.n_categories = int(r["count_cat"].shape[2])
            if self.labels is None:
                self.labels = [str(i) for i in range(self.n_categories)]
            pal = style.check_cmap(self._cmap_arg if self._cmap_arg is not None
                                   else CATEGORY_CMAP, signed=False)
            self.colors = [pal[i % len(pal)] for i in range(self.n_categories)]
            self.signed = False
            self.palette = None
            self.clim = None
            return
        self.n_categories = 0
        self.value_range = (math.nan, math.nan)
        if self.has_value and count.any():
            self.value_range = (float(np.nanmin(r["min"])), float(np.nanmax(r["max"])))
        if self.agg == "count":
            self.signed = False
            self.clim = self._clim_given       # None: per frame (1, max count)
        else:
            lo, hi = self.value_range
            self.signed = bool(lo < 0 < hi)
            if self._clim_given is not None:
                self.clim = self._clim_given
            else:
                # empty pixels hold sum 0: they must not pull the limits
                agg_plane = np.where(count > 0, r[self.agg], np.nan)
                self.clim = style.robust_limits(agg_plane, "log" if self.norm == "log"
                                                else "linear", signed=self.signed)
        self.palette = style.check_cmap(self._cmap_arg, self.signed)
        self.linthresh = None
        if self.norm == "symlog":
            # counts: linear up to one point, logarithmic beyond
            self.linthresh = style.symlog_linthresh(self.clim) if self.agg != "count" else 1.0

    # -- windows ----------------------------------------------------------------------
    def window(self, x_range=None, y_range=None, width=None, height=None):
        """The canvas of a view: ((x0, x1), (y0, y1), width, height).

        ``None`` ranges take the extent of the finite points; a degenerate
        range is widened to a tiny positive span.
        """
        width = check_size(width or 700, "width")
        height = check_size(height or 500, "height")
        return (style.window_range(x_range, self.extent[0]),
                style.window_range(y_range, self.extent[1]), width, height)

    def _stats(self) -> tuple[str, ...]:
        if not self.has_value:
            return ("count",)
        return ("count", "nan_count", "sum", "mean", "min", "max")

    def planes(self, x_range=None, y_range=None, width=None, height=None) -> dict:
        """Aggregate one window.

        Returns a dict with ``window`` (as :meth:`window`), ``planes`` (name ->
        (h, w) host array, row 0 = the ``y0`` side: ``count`` (points in the
        pixel, whatever their value), with a value column ``mean``, ``min``,
        ``max`` (finite values only), ``nan_count`` when any value is NaN/inf,
        ``sum`` for ``agg="sum"``, per-category counts ``cat_<k>`` for few
        categories) and ``colour`` (the spread, normalised colour plane;
        ``rgba`` (h, w, 4) uint8 for categories), and ``spread`` (pixels).
        """
        t0 = time.perf_counter()
        win = self.window(x_range, y_range, width, height)
        (x0, x1), (y0, y1), w, h = win
        r = rasterize_points(self.x, self.y, self.value, self.category, width=w, height=h,
                             x_range=(x0, x1), y_range=(y0, y1), backend=self.backend,
                             n_categories=self.n_categories or None, stats=self._stats())
        count = r["count"]
        total = count + r["nan_count"] if self.has_value else count
        # float32 holds counts exactly up to 2^24 per pixel; beyond, use float64
        big = total.size and int(total.max()) >= (1 << 24)
        ftype = np.float64 if big else np.float32
        planes = {"count": total.astype(ftype)}
        if self.has_value:
            vtype = np.float64 if str(r.dtype) in ("float64", "int64", "uint64", "int32",
                                                   "uint32") else np.float32
            vtype = np.float64 if big else vtype
            for name in ("mean", "min", "max"):
                planes[name] = r[name].astype(vtype)
            if self.agg == "sum":
                planes["sum"] = np.where(count > 0, r["sum"], np.nan).astype(vtype)
            if self.nan_values:
                planes["nan_count"] = r["nan_count"].astype(ftype)
        filled = total > 0
        px = spread_px(filled, self.spread) if self.finite else 0
        if self.has_category:
            cc = r["count_cat"]
            if self.n_categories <= HOVER_CATEGORIES:
                for k in range(self.n_categories):
                    planes[f"cat_{k}"] = cc[..., k].astype(ftype)
            rgba = self._shade(cc, px)
            out = {"window": win, "planes": planes, "rgba": rgba, "spread": px}
        else:
            colour = self._colour(r, total, filled, px)
            out = {"window": win, "planes": {"colour": colour, **planes}, "spread": px}
        nbytes = sum(p.nbytes for p in out["planes"].values()) + (
            out["rgba"].nbytes if "rgba" in out else 0)
        self.record({"window": win[:2], "canvas": win[2:], "points": int(total.sum()),
                     "spread": px, "bytes": nbytes, "seconds": time.perf_counter() - t0})
        return out

    def zoom(self, x_range, y_range, width, height, scale=1.0):
        """The picture of one zoom or resize (the DynamicMap's callback)."""
        return self.element(x_range, y_range, width or self.frame[0], height or self.frame[1])

    def _colour(self, r, total, filled, px) -> np.ndarray:
        """The colour plane: the agg statistic, spread, NaN where nothing is drawn."""
        if self.agg == "count":
            colour = np.where(filled, total, np.nan).astype(np.float64)
            colour = spread_plane(colour, filled, px, "max")
        else:
            has = r["count"] > 0
            if self.agg == "mean":
                colour = np.where(has, r["sum"], np.nan)
                colour = spread_plane(colour, has, px, "mean", weights=r["count"])
                colour = np.where(has, r["mean"], colour)
            else:
                colour = np.where(has, r[self.agg], np.nan)
                colour = spread_plane(colour, has, px, "min" if self.agg == "min" else "max")
        if self.norm == "symlog":
            colour = style.symlog(colour, self.linthresh)
        return colour.astype(np.float64 if self.agg != "count" and r.dtype == "float64"
                             else np.float32)

    def _shade(self, count_cat: np.ndarray, px: int) -> np.ndarray:
        """Datashader's categorical shading of ``count_cat`` (h, w, K), spread by ``px``."""
        import datashader.transfer_functions as tf
        import xarray as xr

        h, w, k = count_cat.shape
        if k == 0 or not count_cat.any():
            return np.zeros((h, w, 4), dtype=np.uint8)
        # unsigned counts: datashader treats a zero total as empty (transparent)
        agg = xr.DataArray(count_cat.astype(np.uint64), dims=("y", "x", "category"),
                           coords={"category": np.arange(k)})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            img = tf.shade(agg, color_key=self.colors[:k], how=self.norm, min_alpha=MIN_ALPHA,
                           color_baseline=0, rescale_discrete_levels=True)
            if px > 0:
                img = tf.spread(img, px=px, shape="circle")
        return np.ascontiguousarray(img.data).view(np.uint8).reshape(h, w, 4)

    # -- HoloViews ----------------------------------------------------------------------
    def hover_fields(self) -> list[tuple[str, str]]:
        fields = [("count", "points")]
        if self.has_category and self.n_categories <= HOVER_CATEGORIES:
            shown = style.labels(self.labels)
            fields += [(f"cat_{k}", shown[k]) for k in range(self.n_categories)]
        if self.has_value:
            if self.agg == "sum":
                fields.append(("sum", "sum"))
            fields += [("mean", "mean"), ("min", "min"), ("max", "max")]
            if self.nan_values:
                fields.append(("nan_count", "NaN/inf values"))
        return fields

    def _tooltips(self, first: str | None = None):
        """Hover tooltips and formatters.  ``first``: the statistic that is the
        Image's first value dimension, which Bokeh's source calls ``image``."""
        tips = [("x", "$x{%.6g}"), ("y", "$y{%.6g}")]
        formatters = {"$x": "printf", "$y": "printf"}
        for name, text in self.hover_fields():
            field = "@{image}" if name == first else f"@{{{name}}}"
            if name in ("count", "nan_count") or name.startswith("cat_"):
                tips.append((text, field + "{0,0}"))
            else:
                tips.append((text, field + "{%.6g}"))
                formatters[field] = "printf"
        return tips, formatters

    def element(self, x_range=None, y_range=None, width=None, height=None):
        """The HoloViews object of one window (what each zoom shows).

        An ``hv.Image`` (colour plane first, then the hover statistics), or
        for categories an ``hv.Overlay`` of the ``hv.RGB`` picture, an
        invisible ``hv.Image`` carrying the hover statistics and one empty
        ``hv.Points`` per category for the legend.
        """
        hv = style.ensure_bokeh()
        res = self.planes(x_range, y_range, width, height)
        (x0, x1), (y0, y1), w, h = res["window"]
        bounds = (x0, y0, x1, y1)
        kdims = ["x", "y"]
        fields = self.hover_fields()
        tips, formatters = self._tooltips(first=None if not self.has_category else "count")
        planes = res["planes"]
        frame = dict(frame_width=self.frame[0], frame_height=self.frame[1])
        if not self.has_category:
            limits = self._limits(planes["count"])
            # a range on the colour dimension also spares HoloViews a NaN-range pass
            # (and its All-NaN warning on an empty window)
            vdims = [hv.Dimension("colour", label=self._colour_label(), range=limits)]
            vdims += [hv.Dimension(n, label=t) for n, t in fields]
            names = ["colour"] + [n for n, _ in fields]
            dtype = np.float64 if any(planes[n].dtype == np.float64 for n in names) \
                else np.float32
            # ImageInterface wants the top (largest y) row first; row 0 is y0
            data = np.dstack([planes[n][::-1].astype(dtype, copy=False) for n in names])
            img = hv.Image(data, bounds=bounds, kdims=kdims, vdims=vdims, label=self.label)
            opts = style.colour_opts(self.palette, self.norm, limits, nan_color=EMPTY)
            if self.norm == "symlog":
                opts["colorbar_opts"] = {"formatter": style.symlog_tick_formatter(
                    self.linthresh)}
            return img.opts(backend="bokeh", **opts, **frame, tools=["hover"],
                            hover_tooltips=tips, hover_formatters=formatters,
                            title=self.title(), active_tools=["wheel_zoom"], xlabel="x",
                            ylabel="y", lod=dict(ZOOM_LOD), hooks=[prompt_ranges])
        # unlabelled: the legend lists the categories only
        # the frame, title and axis options sit on the first layer, from where
        # HoloViews propagates them to the overlay (in every backend)
        rgb = hv.RGB(res["rgba"][::-1], bounds=bounds, kdims=kdims).opts(
            backend="bokeh", **frame, title=self.title(), xlabel="x", ylabel="y",
            active_tools=["wheel_zoom"], legend_position="right", lod=dict(ZOOM_LOD))
        vdims = [hv.Dimension(n, label=t) for n, t in fields]
        data = np.dstack([planes[n][::-1] for n, _ in fields])
        hover = hv.Image(data, bounds=bounds, kdims=kdims, vdims=vdims, group="Hover")
        hover = hover.opts(backend="bokeh", alpha=0, colorbar=False,
                           cmap=["#000000", "#000000"], tools=["hover"],
                           hover_tooltips=tips, hover_formatters=formatters)
        # names are data: HoloViews fails on some characters in a label (style.label)
        legend = [hv.Points(style.LEGEND_POINT, kdims=kdims, label=lab).opts(backend="bokeh", color=col, size=8)
                  for lab, col in zip(style.labels(self.labels), self.colors)]
        over = hv.Overlay([rgb, hover, *legend])
        return over.opts(backend="bokeh", show_legend=True, legend_limit=len(legend) + 3,
                         hooks=[prompt_ranges])

    def _colour_label(self) -> str:
        # distinct from every hover dimension's label (HoloViews finds dimensions by
        # label too)
        t = "points per pixel" if self.agg == "count" else f"{self.agg} of value"
        return t + (" (symlog)" if self.norm == "symlog" else "")

    def _limits(self, count: np.ndarray) -> tuple[float, float]:
        """Colour limits of a frame (in the coloured space): fixed for values and a
        given ``clim``; for counts 1 .. the frame's largest count (spreading never
        raises it: it copies neighbours' counts)."""
        if self.clim is not None:
            lim = self.clim
        else:
            hi = float(count.max()) if count.size else 1.0
            # counts start at 1: an empty pixel is transparent, not the lowest colour
            lim = (1.0, max(hi, 2.0))
        if self.norm == "symlog":
            return tuple(float(t) for t in style.symlog(np.array(lim), self.linthresh))
        return lim

    def title(self) -> str:
        t = f"{self.label} [{self.total:,} points]"
        if self.has_category:
            t += f" {self.n_categories} categories"
        else:
            t += f" {self.agg}"
        if self.norm != "linear":
            t += f", {self.norm}"
        if self.finite == 0:
            t += " - no finite points"
        elif self.nonfinite_xy:
            t += f" - {self.nonfinite_xy:,} with NaN/inf x or y not drawn"
        if self.finite and self.nan_values:
            t += f" - {self.nan_values:,} NaN/inf values"
        return t


def scatter(x, y=None, value=None, category=None, agg: str | None = None, cmap=None,
            norm: str | None = None, clim=None, *, width: int = 700, height: int = 500,
            spread="auto", labels=None, dynamic: bool = True, backend: str = "auto",
            label: str | None = None):
    """A zoomable scatter of a point cloud that re-aggregates the visible window on zoom.

    Parameters
    ----------
    x : (N, 2) array_like, or (N,) array_like with ``y``
        Coordinates: one (N, 2) array (e.g. :func:`dlviz_gpu.project`
        output) or the x column.  numpy arrays or memmaps, torch tensors
        (CPU or CUDA, bfloat16 / float16 included), cupy arrays, lists.  Read
        in place (columns of an (N, 2) array are strided views).  Points with
        NaN / inf coordinates are not drawn (the title counts them).
    y : (N,) array_like, optional
        The y column when ``x`` is 1-D.
    value : (N,) array_like, optional
        A value per point: coloured by ``agg``; its mean / min / max per pixel
        appear in the hover.  NaN / inf values are counted, not coloured.
    category : (N,) array_like, optional
        Integer codes 0..K-1 (or a pandas Categorical): each pixel is the mix
        of its categories' colours weighted by their counts, opacity from the
        total count (``norm``), with a legend.
    agg : {"count", "sum", "mean", "min", "max"}, optional
        Statistic coloured.  Default: ``"mean"`` with a ``value`` and no
        ``category``, else ``"count"``.  ``"count"`` with a ``value`` colours
        by count and shows the value statistics in the hover.
    cmap : str or list of str, optional
        A colorcet palette name or a list of colours.  Default: ``bmy`` for
        counts and unsigned values, ``coolwarm`` (centred at 0) for signed
        values, ``glasbey_category10`` for categories.
    norm : {"linear", "log", "symlog", "eq_hist"}, optional
        Colour normalisation (for categories: of the opacity; linear, log or
        eq_hist).  Default ``"eq_hist"`` for counts (as Datashader),
        ``"linear"`` for values.
    clim : (float, float), optional
        Colour limits.  Default: counts from 1 to the frame's largest count
        (re-ranged on every zoom, as Datashader); values robust limits of the
        whole cloud, fixed across zooms.
    width, height : int
        Plot frame size in screen pixels (the canvas size).
    spread : "auto" or int
        Widen isolated points so they stay visible: ``"auto"`` follows
        Datashader's ``dynspread`` (up to 3 pixels, fewer where points are
        dense), an int spreads that many pixels, 0 turns it off.  Only the
        colour is spread; the hover reports each pixel's own numbers.
    labels : list of str or dict, optional
        Names of the category codes (legend and hover).  Default: a pandas
        Categorical's categories, else the codes.
    dynamic : bool
        ``True`` (default): a ``DynamicMap`` that re-aggregates on every zoom
        and resize.  ``False``: one frame of the whole extent.
    backend : {"auto", "cpu", "cuda"}
        Where the kernels run (default: where the data lives).
    label : str, optional
        Name shown in the title.

    Returns
    -------
    holoviews.DynamicMap, holoviews.Image or holoviews.Overlay
        ``.view`` (set on the DynamicMap) is the :class:`PointsView` with the
        update counter and the last window.

    Raises
    ------
    ValueError
        Unknown ``agg`` / ``cmap`` / ``norm`` (the message lists the valid
        names), a value ``agg`` without ``value``, ``x`` of the wrong shape,
        columns of different lengths, bad category codes or too few ``labels``.
    """
    style.ensure_bokeh()
    width = check_size(width, "width")
    height = check_size(height, "height")
    view = PointsView(x, y, value=value, category=category, agg=agg, cmap=cmap, norm=norm,
                      clim=clim, spread=spread, labels=labels, backend=backend, label=label)
    view.frame = (width, height)
    if not dynamic:
        return view.element(width=width, height=height)
    return view.dynamic()


__all__ = ["scatter", "PointsView", "AGGS", "spread_px", "spread_plane"]
