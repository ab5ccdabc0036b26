"""Distribution views: ``dv.histplot``, ``dv.distribution`` and ``dv.bars``.

All three draw exact numbers: a histogram's bars stand on the
:class:`~dlviz_gpu.Histogram`'s own edges with its exact counts, a
distribution's percentile bands come from those counts (within one bin of
the true percentile), and values that fall outside the bins -- below or above
the range, NaN, +inf, -inf -- are never dropped silently: they are counted in
the title (and per step in the distribution's hover).

- :func:`histplot`: one histogram (or several overlaid, with a legend) of
  tensors or of ready :class:`~dlviz_gpu.Histogram` objects.
- :func:`distribution`: many histograms over training steps (or layers) as a
  steps x bins heat strip plus TensorBoard-like percentile bands.
- :func:`bars`: one number per layer (parameter counts, norms, ...).

Each returns a HoloViews object that composes with ``+`` and ``*``.

Axes follow the bins: log-spaced edges get a log axis; symlog-spaced edges
are drawn in the histogram's own symlog coordinate (so every bin has the same
on-screen width) with tick labels at real values -- powers of ten and 0 --
and real edge values in the hover.
"""

from __future__ import annotations

import builtins
import math
from collections.abc import Mapping

import numpy as np

from ..checks import check_choice, check_flag, check_size
from ..histograms import SCALES, SPECIALS, Histogram, histogram
from . import style

#: Percentiles drawn by :func:`distribution` by default (TensorBoard's).
PERCENTILES = (0, 7, 16, 31, 50, 69, 84, 93, 100)
#: What colours a distribution's cells.
VALUES = ("count", "fraction")
#: :func:`bars` draws horizontal bars (names on the y axis, one readable line
#: each) when there are more than this many names.
HORIZONTAL_ABOVE = 40
#: Screen pixels per bar for horizontal bars (the plot grows to fit them all).
BAR_PIXELS = 14

# how the five special counters read in a title
_SPECIAL_WORDS = {"underflow": "below range", "overflow": "above range", "nan": "NaN",
                  "posinf": "+inf", "neginf": "-inf"}
# band and median colours: a neutral grey band that darkens toward the
# middle, and a haloed median line readable on any palette colour
_BAND_FILL = "#7f7f7f"
_BAND_LINE = "#303030"
_MEDIAN_HALO = "#000000"
_MEDIAN_LINE = "#ffffff"


# --------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------

def _specials_text(row: dict) -> str:
    """'3 below range, 2 NaN' for the non-zero counters of one histogram row."""
    parts = [f"{int(row[s]):,} {_SPECIAL_WORDS[s]}" for s in SPECIALS if int(row[s])]
    return ", ".join(parts)


def _row_specials(h: Histogram, t: int | None = None) -> dict:
    if t is None:
        return {s: int(getattr(h, s)) for s in SPECIALS}
    return {s: int(getattr(h, s)[t]) for s in SPECIALS}


def _edge_strings(edges: np.ndarray) -> list[str]:
    """Edge labels with just enough digits that neighbouring edges differ."""
    edges = np.asarray(edges, np.float64)
    for digits in range(6, 18):
        s = [f"{v:.{digits}g}" for v in edges]
        if len(set(s)) == len(s):
            return s
    return [repr(float(v)) for v in edges]


def _bin_labels(edges: np.ndarray) -> np.ndarray:
    """'[lo, hi)' for every bin, the last one closed: '[lo, hi]'."""
    s = _edge_strings(edges)
    n = len(s) - 1
    return np.array([f"[{s[k]}, {s[k + 1]}{']' if k == n - 1 else ')'}" for k in range(n)],
                    dtype=object)


def _symlog_ticks(lo: float, hi: float, linthresh: float):
    """Ticks ``[(position, label)]`` for a symlog axis: 0 and powers of ten, at real values."""
    from ..kernels.histogram import symlog_forward

    m = max(abs(lo), abs(hi))
    values = [0.0] if lo <= 0.0 <= hi else []
    if m > 0:
        k0 = math.ceil(math.log10(linthresh))
        k1 = math.floor(math.log10(m))
        ks = list(range(k0, k1 + 1))
        stride = max(1, math.ceil(len(ks) / 5))
        for k in ks[::-1][::stride]:
            for v in (10.0 ** k, -(10.0 ** k)):
                if lo <= v <= hi:
                    values.append(v)
    if len(values) < 2:
        values = sorted({lo, hi} | set(values))
    values = sorted(values)
    pos = symlog_forward(np.array(values), linthresh)
    return [(float(p), style.format_value(v)) for p, v in zip(pos, values)]


def _value_axis(h: Histogram, axis: str) -> tuple:
    """(forward transform for coordinates, plot options, dimension label) of the value axis.

    The label is what HoloViews links axes by in a layout, so it names the
    coordinate: a linear axis never shares its range with a log or symlog one.
    """
    if h.scale == "log":
        return (lambda v: np.asarray(v, np.float64)), {f"log{axis}": True}, "value [log]"
    if h.scale == "symlog":
        from ..kernels.histogram import symlog_forward

        c = h.linthresh

        def fwd(v):
            return symlog_forward(np.asarray(v, np.float64), c)
        ticks = _symlog_ticks(float(h.edges.min()), float(h.edges.max()), c)
        return fwd, {f"{axis}ticks": ticks}, f"value [symlog {c:.6g}]"
    return (lambda v: np.asarray(v, np.float64)), {}, "value"


def _default_colours(n: int) -> list[str]:
    import colorcet as cc

    return list(cc.palette["glasbey_category10"][:n]) if n > 1 else ["#30a2da"]


def _is_tensor_like(obj) -> bool:
    return (isinstance(obj, np.ndarray) or hasattr(obj, "__array__")
            or hasattr(obj, "__cuda_array_interface__") or hasattr(obj, "__dlpack__"))


# --------------------------------------------------------------------------
# histplot
# --------------------------------------------------------------------------

def _histplot_rows(data, bins, range_, scale):
    """[(Histogram (B,), name)] and whether several rows were asked for."""
    if isinstance(data, Histogram):
        if data.stacked:
            raise ValueError(
                f"tensor_or_histogram: expected a single-tensor Histogram; got a stacked one "
                f"({len(data)} tensors x {data.bins} bins). Use dv.distribution(h) to draw "
                f"them all, or index one: dv.histplot(h[0])"
                + (f" or dv.histplot(h[{data.names[0]!r}])" if data.names else ""))
        _no_binning_args(data, bins, range_, scale)
        return [(data, None)], False
    if isinstance(data, (list, tuple)) and data and all(isinstance(d, Histogram) for d in data):
        rows = []
        for i, d in enumerate(data):
            if d.stacked:
                raise ValueError(f"tensor_or_histogram[{i}]: expected a single-tensor "
                                 f"Histogram; got a stacked one ({len(d)} tensors); index "
                                 f"one step, or use dv.distribution")
            _no_binning_args(d, bins, range_, scale)
            rows.append((d, None))
        if len({d.scale for d, _ in rows}) > 1:
            raise ValueError("tensor_or_histogram: expected Histograms of one scale to overlay; "
                             f"got scales {sorted({d.scale for d, _ in rows})}")
        return rows, True
    if isinstance(data, (list, tuple)) and any(isinstance(d, Histogram) for d in data):
        raise TypeError("tensor_or_histogram: expected tensors or Histograms, not a mix of both")
    if isinstance(data, (list, tuple, Mapping)) and len(data) == 0:
        raise ValueError(f"tensor_or_histogram: expected at least one tensor; got an empty "
                         f"{type(data).__name__}")
    h = histogram(data, bins=bins, range=range_, scale=scale)
    if not h.stacked:
        return [(h, None)], False
    names = h.names
    return [(h[t], names[t] if names else None) for t in range(len(h))], True


def _no_binning_args(h: Histogram, bins, range_, scale) -> None:
    """bins / range / scale bin tensors; a Histogram is binned already."""
    if range_ is not None:
        raise ValueError(f"range: applies to tensors; a Histogram has its edges already "
                         f"(got range={range_!r})")
    if scale != "linear" and scale != h.scale:
        raise ValueError(f"scale: applies to tensors; this Histogram's scale is "
                         f"{h.scale!r} (got scale={scale!r})")
    if isinstance(bins, (int, np.integer)) and not isinstance(bins, bool):
        if int(bins) not in (256, h.bins):
            raise ValueError(f"bins: applies to tensors; this Histogram has {h.bins} bins "
                             f"(got bins={bins!r})")
    elif not (np.shape(bins) == h.edges.shape and np.array_equal(bins, h.edges)):
        raise ValueError("bins: applies to tensors; a Histogram has its edges already")


def histplot(tensor_or_histogram, bins=256, range=None, scale: str = "linear",  # noqa: A002
             logy: bool = False, width: int = 700, height: int = 300, label=None, color=None):
    """Exact histogram of a tensor (or several, overlaid) drawn on its real bin edges.

    Parameters
    ----------
    tensor_or_histogram : array_like, list or mapping of array_like, Histogram, list of Histogram
        A tensor (any rank, any library, read in place) is histogrammed exactly
        with :func:`dlviz_gpu.histogram`.  A list or mapping of tensors is
        histogrammed in one call on shared edges and drawn as overlaid
        histograms with a legend (the mapping's keys name them).  A
        single-tensor :class:`~dlviz_gpu.Histogram` (or a list of them) is
        drawn as it is; a stacked one is refused (index a step, or use
        :func:`distribution`).
    bins : int or (B + 1,) array_like
        Bins for tensors (a count, or the edges).
    range : (float, float), optional
        Outer edges for tensors; values outside are counted, not drawn.
    scale : {"linear", "log", "symlog"}
        Bin spacing for tensors.  Log bins get a log x axis; symlog bins are
        drawn in symlog coordinates (equal widths) with real-valued ticks.
    logy : bool
        Log count axis.  Empty bins are left out (not drawn at 0, which a log
        axis cannot show); a count of 1 still shows as a bar.
    width, height : int
        Plot frame size in screen pixels.
    label : str or sequence of str, optional
        The name in the title (one tensor), or one legend entry per tensor.
    color : str or sequence of str, optional
        Bar colour, or one per tensor (default: a categorical palette).

    Returns
    -------
    holoviews.Histogram or holoviews.Overlay
        Bars on the exact edges; hover shows the bin ``[lo, hi)`` (the last
        bin ``[lo, hi]``), its count and its fraction of *all* elements
        (specials included).  The title counts any values below or above the
        range, NaN, +inf and -inf.

    Raises
    ------
    ValueError
        A stacked Histogram, unknown ``scale``, bad ``bins``/``range``,
        empty input, or ``label`` / ``color`` lists of the wrong length.
    """
    hv = style.ensure_bokeh()
    width = check_size(width, "width")
    height = check_size(height, "height")
    scale = check_choice(scale, "scale", SCALES)
    check_flag(logy, "logy")
    rows, many = _histplot_rows(tensor_or_histogram, bins, range, scale)
    n = len(rows)

    # names and colours
    if label is None or isinstance(label, str):
        names = [nm if nm is not None else (f"tensor {i}" if many else (label or "values"))
                 for i, (_, nm) in enumerate(rows)]
        title_name = style.label(label) if label else label
    else:
        names = [str(v) for v in label]
        if len(names) != n:
            raise ValueError(f"label: expected {n} names (one per tensor); got {len(names)}")
        title_name = None
    # names are data: shown with controls escaped, and never raw as HoloViews labels
    names = style.labels(names)
    if color is None:
        colours = _default_colours(n)
    elif isinstance(color, str):
        colours = [color] * n
    else:
        colours = [str(c) for c in color]
        if len(colours) != n:
            raise ValueError(f"color: expected {n} colours (one per tensor); got {len(colours)}")

    fwd, axis_opts, key = _value_axis(rows[0][0], "x")
    kdim = hv.Dimension("x", label=key)
    # a log count axis must not share its range with a linear one in a layout
    cdim = hv.Dimension("count", label="count [log]" if logy else "count")
    elements, notes, top = [], [], 1
    for (h, _), name, colour in zip(rows, names, colours):
        counts = h.counts
        top = max(top, int(counts.max()) if counts.size else 1)
        heights = counts.astype(np.float64)
        if logy:
            heights[counts == 0] = np.nan      # a log axis has no 0; leave empty bins out
        x = fwd(h.edges)
        data = (x, heights, h.fraction(), h.edges[:-1], h.edges[1:], _bin_labels(h.edges))
        el = hv.Histogram(data, kdims=[kdim], vdims=[cdim, "fraction", "lo", "hi", "bin"],
                          label=name if many else "")
        fill = 0.45 if many else 0.85
        el = el.opts(backend="bokeh", color=colour, line_color=colour, fill_alpha=fill,
                     line_alpha=0.9, line_width=0.5)
        elements.append(el)
        text = _specials_text(_row_specials(h))
        if text:
            notes.append(f"{name}: {text}" if many else text)

    total = sum(h.total for h, _ in rows)
    head = title_name or (names[0] if not many else f"{n} tensors")
    title = f"{head}: {total:,} values" if not many else f"{head}, {total:,} values"
    if notes:
        title += " - not in the bins: " + "; ".join(notes)
    tips = [("bin", "@{bin}"), ("count", "@{count}"), ("fraction", "@{fraction}{0.000%}")]
    if many:
        tips.insert(0, ("tensor", "$name"))
    common = dict(frame_width=width, frame_height=height, tools=["hover"],
                  hover_tooltips=tips, xlabel=title_name if (title_name and many) else
                  ("value" if many else names[0]), ylabel="count", logy=bool(logy),
                  **axis_opts)
    if logy:
        common["ylim"] = (0.5, top * 2.0)
    elements = [el.opts(backend="bokeh", **common) for el in elements]
    if not many:
        return elements[0].opts(backend="bokeh", title=title)
    overlay = hv.Overlay(elements).opts(backend="bokeh", title=title,
                                        legend_position="top_right",
                                        show_legend=True)
    return overlay


# --------------------------------------------------------------------------
# distribution
# --------------------------------------------------------------------------

def _stack(hists: list) -> Histogram:
    """One stacked Histogram from single-tensor Histograms of one scale and bin count."""
    for i, h in enumerate(hists):
        if h.stacked:
            raise ValueError(f"histograms_over_steps[{i}]: expected a single-tensor Histogram; "
                             f"got a stacked one ({len(h)} tensors)")
    first = hists[0]
    for i, h in enumerate(hists[1:], 1):
        if h.bins != first.bins:
            raise ValueError(f"histograms_over_steps[{i}]: expected {first.bins} bins like "
                             f"the first; got {h.bins} (histogram every step with the same "
                             f"bins= to compare them)")
        if h.scale != first.scale or h.linthresh != first.linthresh:
            raise ValueError(f"histograms_over_steps[{i}]: expected scale {first.scale!r} "
                             f"like the first; got {h.scale!r}")
    shared = all(np.array_equal(h.edges, first.edges) for h in hists)
    edges = first.edges if shared else np.stack([h.edges for h in hists])
    return Histogram(np.stack([h.counts for h in hists]), edges,
                     *(np.array([getattr(h, s) for h in hists]) for s in SPECIALS),
                     scale=first.scale, linthresh=first.linthresh,
                     backend="+".join(sorted({h.backend for h in hists})))


def _distribution_hist(data, bins, range_, scale) -> Histogram:
    if isinstance(data, Histogram):
        return data if data.stacked else _stack([data])
    if isinstance(data, (list, tuple)) and data and all(isinstance(d, Histogram) for d in data):
        return _stack(list(data))
    if isinstance(data, (list, tuple)) and any(isinstance(d, Histogram) for d in data):
        raise TypeError("histograms_over_steps: expected Histograms or tensors, not a mix")
    if isinstance(data, (list, tuple, Mapping)) and len(data) == 0:
        raise ValueError(f"histograms_over_steps: expected at least one step; got an empty "
                         f"{type(data).__name__}")
    if _is_tensor_like(data):
        raise ValueError("histograms_over_steps: expected a stacked Histogram or a list of "
                         "Histograms or tensors (one per step); got one tensor. Pass "
                         "list(t) for one histogram per row of t, or use dv.histplot(t)")
    h = histogram(data, bins=bins, range=range_, scale=scale)
    return h if h.stacked else _stack([h])


def _check_percentiles(percentiles) -> tuple[float, ...]:
    if percentiles is None:
        return ()
    try:
        p = np.asarray(percentiles, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise TypeError(f"percentiles: expected a sequence of numbers in [0, 100]; got "
                        f"{percentiles!r}") from None
    if np.ndim(percentiles) > 1:
        raise ValueError(f"percentiles: expected a flat sequence; got {percentiles!r}")
    if p.size and (not np.isfinite(p).all() or p.min() < 0 or p.max() > 100):
        raise ValueError(f"percentiles: expected values in [0, 100]; got {list(p)}")
    if p.size > 1 and not (np.diff(p) > 0).all():
        raise ValueError(f"percentiles: expected strictly increasing (sorted) values; got "
                         f"{list(p)}")
    return tuple(float(v) for v in p)


def _check_steps(steps, n: int) -> np.ndarray:
    if steps is None:
        return np.arange(n, dtype=np.float64)
    try:
        s = np.asarray(steps, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"steps: expected {n} numbers; got {steps!r}") from None
    if s.shape != (n,):
        raise ValueError(f"steps: expected {n} numbers (one per histogram); got shape "
                         f"{s.shape}")
    if not np.isfinite(s).all() or (n > 1 and not (np.diff(s) > 0).all()):
        raise ValueError("steps: expected finite, strictly increasing numbers; got "
                         f"{np.array2string(s, threshold=8)}")
    return s


def _step_edges(s: np.ndarray) -> np.ndarray:
    """Column edges around each step: halfway to the neighbours, mirrored at the ends."""
    if s.size == 1:
        return np.array([s[0] - 0.5, s[0] + 0.5])
    mid = 0.5 * (s[:-1] + s[1:])
    return np.concatenate([[2 * s[0] - mid[0]], mid, [2 * s[-1] - mid[-1]]])


def _pname(q: float) -> str:
    return f"p{q:g}".replace(".", "_")


def distribution(histograms_over_steps, steps=None, percentiles=PERCENTILES, width: int = 900,
                 height: int = 350, cmap=None, norm: str = "log", label: str | None = None, *,
                 value: str = "count", bins=256, range=None,  # noqa: A002 - NumPy's name
                 scale: str = "linear"):
    """Histograms over training steps as a heat strip with exact percentile bands.

    Like TensorBoard's distributions, but exact: every (step, bin) cell shows
    the bin's real count, and the bands between symmetric percentile pairs
    come from the same counts (within one bin of the true percentile).

    Parameters
    ----------
    histograms_over_steps : Histogram, list of Histogram, or list / mapping of array_like
        A stacked :class:`~dlviz_gpu.Histogram` ((T, B) counts, shared or
        per-step edges), a list of T single-tensor Histograms with the same
        bin count, or T tensors (histogrammed in one call on shared edges
        with ``bins``, ``range``, ``scale``).  One tensor alone is refused
        (pass ``list(t)`` for one histogram per row).
    steps : (T,) array_like of float, optional
        Strictly increasing x positions (training steps).  Default ``0..T-1``.
    percentiles : sequence of float, optional
        Sorted percentiles in [0, 100].  Bands fill between the outermost
        pair, the next pair inwards, and so on (nested bands darken toward
        the middle); an odd middle one is drawn as a line.  ``None`` or
        ``()`` draws no bands.
    width, height : int
        Plot frame size in screen pixels.
    cmap : str or list of str, optional
        A colorcet palette name or colours (default ``bmy``).
    norm : {"linear", "log", "symlog", "eq_hist"}
        Colour normalisation of the cells (default log: counts span decades).
    label : str, optional
        Name in the title.
    value : {"count", "fraction"}
        What colours a cell: its count, or its share of the step's elements.
    bins, range, scale
        Binning of tensors (see :func:`dlviz_gpu.histogram`).

    Returns
    -------
    holoviews.Overlay
        ``Rectangles`` (one per non-empty cell: columns between neighbouring
        steps, rows on the exact bin edges; empty cells are left
        transparent), one ``Area`` per percentile pair and, for an odd count,
        the middle percentile as a ``Curve`` whose hover lists every
        percentile and the step's out-of-bin counts.  Cell hover: step, bin
        ``[lo, hi)``, count and fraction.  Log bins get a log y axis, symlog
        bins symlog coordinates with real-valued ticks.  The title counts
        values below/above the range, NaN and +/-inf over all steps.

    Raises
    ------
    ValueError
        Unknown ``cmap``, ``norm``, ``value`` or ``scale``; bad ``percentiles``
        (outside [0, 100] or not sorted) or ``steps``; empty input;
        histograms that do not line up.
    """
    hv = style.ensure_bokeh()
    width = check_size(width, "width")
    height = check_size(height, "height")
    norm = style.check_norm(norm)
    palette = style.check_cmap(cmap, signed=False)
    scale = check_choice(scale, "scale", SCALES)
    if not isinstance(value, str) or value not in VALUES:
        raise ValueError(f"value: expected one of {', '.join(VALUES)}; got {value!r}")
    qs = _check_percentiles(percentiles)
    h = _distribution_hist(histograms_over_steps, bins, range, scale)
    T, B = h.counts.shape
    s = _step_edges(x := _check_steps(steps, T))
    fwd, axis_opts, key = _value_axis(h, "y")
    step_dim = hv.Dimension("step")
    ydim = hv.Dimension("y", label=key)

    # ---- the heat strip: one rectangle per non-empty (step, bin) cell --------
    counts = h.counts
    fraction = h.fraction()
    edges = np.broadcast_to(h.edges, (T, B + 1)) if h.edges.ndim == 1 else h.edges
    t_idx, b_idx = np.nonzero(counts)
    y_all = fwd(edges)
    if h.edges.ndim == 1:
        labels_row = _bin_labels(h.edges)
        bin_text = labels_row[b_idx]
    else:
        # t_idx is sorted (np.nonzero walks rows in order): label each step's bins in turn
        per_step = [_bin_labels(edges[t])[b_idx[t_idx == t]] for t in builtins.range(T)]
        bin_text = np.concatenate(per_step) if t_idx.size else np.array([], dtype=object)
    cval = (counts if value == "count" else fraction)[t_idx, b_idx].astype(np.float64)
    cols = {
        "x0": s[t_idx], "y0": y_all[t_idx, b_idx], "x1": s[t_idx + 1],
        "y1": y_all[t_idx, b_idx + 1],
        "count": counts[t_idx, b_idx], "fraction": fraction[t_idx, b_idx],
        "at_step": x[t_idx], "lo": edges[t_idx, b_idx], "hi": edges[t_idx, b_idx + 1],
        "bin": bin_text,
    }
    vdims = ["count", "fraction", "at_step", "lo", "hi", "bin"]
    colour_by = value
    if h.names is not None:
        cols["tensor"] = np.array(style.labels(h.names), dtype=object)[t_idx]
        vdims.append("tensor")
    limits = style.robust_limits(cval, norm if norm != "symlog" else "linear", signed=False,
                                 percentile=100.0)
    if norm == "symlog":
        lt = style.symlog_linthresh(limits)
        cols["colour"] = style.symlog(cval, lt)
        vdims.append("colour")
        colour_by = "colour"
        limits = tuple(style.symlog(np.array(limits), lt).tolist())
    copts = style.colour_opts(palette, norm, limits)
    copts.pop("clipping_colors", None)
    if norm == "symlog":
        copts["colorbar_opts"] = {"formatter": style.symlog_tick_formatter(lt)}
    tips = [("step", "@{at_step}")]
    if h.names is not None:
        tips.append(("tensor", "@{tensor}"))
    tips += [("bin", "@{bin}"), ("count", "@{count}"), ("fraction", "@{fraction}{0.000%}")]
    # HoloViews links axes in a layout by the label of the first x and y dimension
    # (and looks columns up by label too, so no two dimensions share one)
    kd = [hv.Dimension("x0", label="step"), hv.Dimension("y0", label=key), "x1", "y1"]
    strip = hv.Rectangles(cols, kdims=kd, vdims=vdims).opts(
        backend="bokeh", color=colour_by, line_alpha=0, line_width=0, tools=["hover"],
        hover_tooltips=tips, **copts)
    layers = [strip]

    # ---- percentile bands (nested pairs) and the middle line ------------------
    if qs:
        P = np.asarray(h.percentile(list(qs)), dtype=np.float64).reshape(T, len(qs))
        Py = fwd(P)
        for i in builtins.range(len(qs) // 2):
            j = len(qs) - 1 - i
            band = hv.Area((x, Py[:, i], Py[:, j]), kdims=[step_dim],
                           vdims=[hv.Dimension(f"{_pname(qs[i])}_y", label=key),
                                  f"{_pname(qs[j])}_y"])
            layers.append(band.opts(backend="bokeh", color=_BAND_FILL, fill_alpha=0.16,
                                    line_color=_BAND_LINE, line_alpha=0.6, line_width=0.6))
        if len(qs) % 2:
            mid = len(qs) // 2
            extra = {_pname(q): P[:, k] for k, q in enumerate(qs)}
            specials = {s_: np.asarray(getattr(h, s_)) for s_ in SPECIALS}
            curve_cols = {"step": x, "y": Py[:, mid], **extra, **specials}
            vd = [ydim, *extra, *SPECIALS]
            halo = hv.Curve((x, Py[:, mid]), kdims=[step_dim], vdims=[ydim]).opts(
                backend="bokeh", color=_MEDIAN_HALO, line_width=3.2, line_alpha=0.8)
            ptips = [("step", "@{step}")] + [(f"{q:g} %", f"@{{{_pname(q)}}}{{%.6g}}")
                                             for q in qs[::-1]]
            ptips += [(_SPECIAL_WORDS[s_], f"@{{{s_}}}") for s_ in SPECIALS
                      if np.any(specials[s_])]
            line = hv.Curve(curve_cols, kdims=[step_dim], vdims=vd).opts(
                backend="bokeh", color=_MEDIAN_LINE, line_width=1.4, tools=["hover"],
                hover_tooltips=ptips,
                hover_formatters={f"@{{{_pname(q)}}}": "printf" for q in qs})
            layers += [halo, line]

    # ---- title, axes ----------------------------------------------------------
    label = style.label(label) if label else label
    title = f"{label or 'distribution'}: {T} step{'s' if T != 1 else ''} x {B} bins"
    if value == "fraction":
        title += ", colour = fraction"
    if norm != "linear":
        title += f", {norm} colour"
    totals = {s_: int(np.sum(getattr(h, s_))) for s_ in SPECIALS}
    note = _specials_text(totals)
    if not counts.any():
        title += " - no value in the bins"
    if note:
        title += f" - not in the bins: {note}"
    xt = {}
    if steps is None and h.names is not None and T <= 60:
        xt = {"xticks": [(float(i), n) for i, n in enumerate(style.labels(h.names))],
              "xrotation": 45}
    frame = dict(frame_width=width, frame_height=height, xlabel="step" if not xt else "tensor",
                 ylabel=label or "value", **axis_opts, **xt)
    layers = [el.opts(backend="bokeh", **frame) for el in layers]
    overlay = hv.Overlay(layers).opts(backend="bokeh", title=title, show_legend=False)
    return overlay


# --------------------------------------------------------------------------
# bars
# --------------------------------------------------------------------------

def _bars_items(mapping) -> list:
    if hasattr(mapping, "index") and hasattr(mapping, "to_numpy") and hasattr(mapping, "items"):
        items = list(mapping.items())                       # a pandas Series
    elif isinstance(mapping, Mapping):
        items = list(mapping.items())
    elif isinstance(mapping, (list, tuple)) and all(
            isinstance(p, (list, tuple)) and len(p) == 2 for p in mapping):
        items = [tuple(p) for p in mapping]
    else:
        raise TypeError(f"mapping: expected a mapping of name -> number, a pandas Series or a "
                        f"list of (name, number) pairs; got {type(mapping).__name__}")
    if not items:
        raise ValueError("mapping: expected at least one (name, value); got an empty "
                         f"{type(mapping).__name__}")
    out, seen = [], set()
    for key, v in items:
        name = str(key)
        if name in seen:
            raise ValueError(f"mapping: expected unique names; {name!r} appears twice")
        seen.add(name)
        try:
            f = float(v)
        except (TypeError, ValueError):
            raise TypeError(f"mapping[{name!r}]: expected a number; got {v!r}") from None
        out.append((name, f))
    return out


def bars(mapping, sort: bool = False, logy: bool = False, width: int = 700, height: int = 300,
         label: str | None = None, color=None, xrotation: float = 45):
    """One bar per name: per-layer figures such as parameter counts or gradient norms.

    Parameters
    ----------
    mapping : mapping of str -> float, pandas Series, or list of (str, float)
        Names (keys / index) and values; negative values are fine.  NaN and
        +/-inf values have no bar: their names stay on the axis (a gap) and
        the title lists them.
    sort : bool
        ``True``: largest value first (missing values last).  ``False``: the
        mapping's order.
    logy : bool
        Log value axis (every finite value must then be positive).
    width, height : int
        Plot frame size in screen pixels.  With more than
        :data:`HORIZONTAL_ABOVE` names the bars turn horizontal, first name at
        the top, and the frame grows to at least :data:`BAR_PIXELS` pixels per
        bar so every name stays readable (scroll the page for hundreds of
        layers); ``height`` is then the minimum height.
    label : str, optional
        What the values are (the value axis label and the title).
    color : str, optional
        Bar colour.
    xrotation : float
        Rotation of the names (degrees) on vertical bars.

    Returns
    -------
    holoviews.Bars
        Hover shows the name and the value.

    Raises
    ------
    ValueError
        Empty mapping, repeated names, ``logy`` with values <= 0.
    TypeError
        A value that is not a number.
    """
    hv = style.ensure_bokeh()
    width = check_size(width, "width")
    height = check_size(height, "height")
    check_flag(sort, "sort")
    check_flag(logy, "logy")
    if not isinstance(xrotation, (int, float)) or isinstance(xrotation, bool):
        raise TypeError(f"xrotation: expected a number of degrees; got {xrotation!r}")
    items = _bars_items(mapping)
    # names are data: the axis, hover and title show them with controls escaped
    names = style.labels(n for n, _ in items)
    values = np.array([v for _, v in items], dtype=np.float64)
    missing = ~np.isfinite(values)
    if logy and np.any(values[~missing] <= 0):
        bad = [n for n, v, m in zip(names, values, missing) if not m and v <= 0]
        raise ValueError(f"logy: a log axis needs positive values; got {len(bad)} value(s) "
                         f"<= 0 ({', '.join(map(repr, bad[:5]))}{', ...' if len(bad) > 5 else ''})"
                         "; use logy=False")
    values = np.where(missing, np.nan, values)
    if sort:
        order = sorted(range(len(names)), key=lambda i: (missing[i], -values[i]
                                                         if not missing[i] else 0.0))
        names = [names[i] for i in order]
        values = values[order]
        missing = missing[order]
    horizontal = len(names) > HORIZONTAL_ABOVE
    what = style.label(label) if label else "value"
    el = hv.Bars((names, values), kdims=["name"], vdims=[what])
    title = f"{label + ': ' if label else ''}{len(names)} names"
    if missing.any():
        miss = [n for n, m in zip(names, missing) if m]
        title += (f" - {len(miss)} missing (NaN/inf): " + ", ".join(miss[:5])
                  + (", ..." if len(miss) > 5 else ""))
    opts = dict(tools=["hover"], hover_tooltips=[("name", "@{name}"),
                                                 ("value", f"@{{{what}}}{{%.6g}}")],
                hover_formatters={f"@{{{what}}}": "printf"}, title=title, xlabel="",
                ylabel=what, color=color or "#30a2da", logy=bool(logy), frame_width=width,
                frame_height=height)
    if logy:
        # an explicit lower bound: HoloViews' default bar base (0) has no place on a log axis
        finite = values[~missing]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (1.0, 10.0)
        opts["ylim"] = (lo / 2.0, hi * 2.0)
    if horizontal:
        # categorical y axes list factors bottom-up: reverse so the first name is on top
        el = hv.Bars((names[::-1], values[::-1]), kdims=["name"], vdims=[what])
        opts.update(invert_axes=True, frame_height=max(height, BAR_PIXELS * len(names)),
                    logx=bool(logy), logy=False)
    else:
        opts.update(xrotation=xrotation)
    return el.opts(backend="bokeh", **opts)


__all__ = ["histplot", "distribution", "bars", "PERCENTILES", "VALUES", "HORIZONTAL_ABOVE"]
