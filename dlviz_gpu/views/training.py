"""Training views: what a recorded run (``dv.watch``) says about gradients, weights and loss.

Every view takes a :class:`~dlviz_gpu.watch.store.Run` (or the path of a run:
its directory or its ``.sqlite`` file), reads only the columns it draws
(``since=`` reads only the steps from there on), and returns a HoloViews
object that composes with ``+`` / ``*`` and that :func:`dlviz_gpu.save` writes
to HTML or PNG:

- :func:`gradient_flow`: parameters (model order, top to bottom) x recorded
  steps, coloured by the gradient norm on a log scale; NaN/inf cells bright
  green, exact zeros grey, absent cells (frozen parameters, steps not
  recorded) empty.
- :func:`distributions`: a parameter's weight or gradient histograms over
  steps (exact counts on each step's own edges) through
  :func:`dlviz_gpu.distribution`.
- :func:`update_ratios`: ||w_t - w_(t-1)|| / ||w_t|| per parameter over
  steps, log y, with the 1e-3 rule of thumb drawn.
- :func:`training_curves`: loss and learning rate (any scalars) through
  :func:`dlviz_gpu.curve` (exact M4, smoothing), stacked on a shared step axis.
- :func:`alerts` / :func:`alerts_table`: the run's NaN/inf (and other) alerts.
- :func:`weight_evolution` / :func:`snapshot_diff`: the stored weight
  snapshots as a step slider, and the difference of two of them.
"""

from __future__ import annotations

import contextlib
import math
import os

import numpy as np

from ..names import display
from ..checks import check_size
from . import style

#: The update ratio drawn as a reference line (the usual rule of thumb: an
#: update of about a thousandth of the weight's norm per step).
REFERENCE_RATIO = 1e-3
#: Colour of gradient-flow cells that hold an exact zero (no place on a log scale).
ZERO_COLOR = "#9e9e9e"
#: Colour of the update-ratio lines beyond the top ``top``.
FAINT_COLOR = "#9e9e9e"
#: Scalars :func:`training_curves` draws by default (those the run recorded).
DEFAULT_CURVES = ("loss", "lr")
#: Scalars drawn unsmoothed by :func:`training_curves` (a schedule is exact).
UNSMOOTHED = ("lr",)
#: Statistics a weight snapshot holds.
SNAPSHOT_STATS = ("mean", "extremum")
#: Colour normalisations of :func:`gradient_flow`.
FLOW_NORMS = ("log", "linear")
# gradient flow: screen pixels per parameter row when ``height=None``, and the bounds
_ROW_PIXELS = 18
_FLOW_HEIGHT = (150, 900)
# at most this many parameter names as y ticks (every k-th beyond)
_MAX_TICKS = 60

# the hover's parameter name from the cursor's y (row p spans [p, p + 1))
_NAME_JS = """
const i = Math.floor(value);
return (i >= 0 && i < names.length) ? names[i] : "";
"""


# --------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------

@contextlib.contextmanager
def _reading(run):
    """The Run to read: ``run`` itself, or one opened from a path (closed after)."""
    from ..watch.store import Run, open_run

    if isinstance(run, Run):
        yield run
        return
    if isinstance(run, (str, os.PathLike)):
        r = open_run(run)
        try:
            yield r
        finally:
            r.close()
        return
    raise TypeError(f"run: expected a Run (dlviz_gpu.watch.open_run) or the path of a run "
                    f"(its directory or .sqlite file); got {type(run).__name__}")


def _param(r, param) -> tuple[int, object]:
    """(index, ParamInfo) of ``param`` (a name or an id); ValueError naming ``param``."""
    if isinstance(param, bool) or not isinstance(param, (str, int, np.integer)):
        raise TypeError(f"param: expected a parameter name or id; got {param!r}")
    try:
        i = r.param_index(param)
    except KeyError as err:
        msg = str(err.args[0]) if err.args else repr(param)
        if msg.startswith("param: "):
            msg = msg[len("param: "):]
        raise ValueError(f"param: {msg}") from None
    return i, r.params[i]


def _check_kind(kind, choices=("weight", "grad")) -> str:
    return style.check_choice(kind, "kind", choices)


def _check_since(since):
    if since is None:
        return None
    if isinstance(since, bool) or not isinstance(since, (int, np.integer)):
        raise TypeError(f"since: expected a step number (int) or None; got {since!r}")
    return int(since)


def alerts(run, since: int | None = None) -> list[dict]:
    """The run's alerts (NaN/inf gradients or weights, non-finite losses, dead units, ...).

    Parameters
    ----------
    run : Run or str or os.PathLike
        A run opened with :func:`dlviz_gpu.watch.open_run`, or its path.
    since : int, optional
        Only alerts from this step on.

    Returns
    -------
    list of dict
        One dict per alert, in the order raised: ``step`` (int), ``param``
        (the parameter's name, or None when the alert is not about a
        parameter, e.g. the loss), ``kind`` (str) and ``message`` (str).
    """
    since = _check_since(since)
    with _reading(run) as r:
        return list(r.alerts(since=since))


# --------------------------------------------------------------------------
# gradient flow
# --------------------------------------------------------------------------

def _columns(steps: np.ndarray, width: int):
    """Pixel columns over the recorded steps.

    Steps lie on a grid of spacing ``d`` (the gcd of their differences); with
    at most ``width`` grid slots each slot is a column (one step per column,
    exactly), otherwise ``width`` equal columns each holding several steps.

    Returns ``(column of each step (T,), column count, (x0, x1))``.
    """
    s = steps.astype(np.int64)
    if s.size == 1:
        return np.zeros(1, np.int64), 1, (float(s[0]) - 0.5, float(s[0]) + 0.5)
    d = int(np.gcd.reduce(np.diff(s)))
    slots = int((s[-1] - s[0]) // d) + 1
    x0, x1 = s[0] - d / 2.0, s[-1] + d / 2.0
    if slots <= width:
        return (s - s[0]) // d, slots, (x0, x1)
    col = np.floor((s - x0) * (width / (x1 - x0))).astype(np.int64)
    return np.clip(col, 0, width - 1), width, (x0, x1)


def _reduce_columns(values: np.ndarray, col: np.ndarray, ncol: int, ufunc) -> np.ndarray:
    """(P, ncol): ``ufunc.reduceat`` of each column's steps (NaN in empty columns)."""
    P = values.shape[0]
    out = np.full((P, ncol), np.nan)
    if values.shape[1] == 0:
        return out
    starts = np.flatnonzero(np.r_[True, col[1:] != col[:-1]])
    out[:, col[starts]] = ufunc.reduceat(values, starts, axis=1)
    return out


def gradient_flow(run, stat: str = "norm", kind: str = "grad", width: int = 900,
                  height: int | None = None, *, since: int | None = None,
                  norm: str | None = None, cmap=None):
    """Parameters x recorded steps, coloured by a per-step statistic (the gradient norm).

    The picture of vanishing and exploding gradients: each row is a parameter
    (model order, the first at the top), each column a recorded step, and the
    colour the parameter's gradient norm at that step on a log scale, so a
    layer whose norm falls by decades, or a step where every norm jumps, is
    plain to see.  Steps with NaN/inf are bright green; exact zeros are grey.

    Parameters
    ----------
    run : Run or str or os.PathLike
        A run opened with :func:`dlviz_gpu.watch.open_run`, or its path.
    stat : str
        The per-step statistic: one of the store's ``STAT_NAMES`` (``norm``,
        ``maxabs``, ``std``, ``mean``, ``zeros``, ...).
    kind : {"grad", "weight", "update"}
        Statistics of the gradients, the weights, or the weight updates.
    width : int
        Plot frame width in screen pixels.  When the run has more recorded
        steps than ``width``, each column holds several steps: it is
        coloured by their largest value (the signed value of largest
        magnitude for a signed ``stat``), and the hover gives the column's
        step range, smallest and largest value and its NaN/inf steps.
    height : int, optional
        Plot frame height (default: 18 pixels per parameter, within 150-900).
    since : int, optional
        Only the steps from this one on (a live run's recent window; reads
        only those rows).
    norm : {"log", "linear"}, optional
        Colour normalisation.  Default: log for a non-negative ``stat``,
        linear with a diverging palette centred at 0 for a signed one.
    cmap : str or list of str, optional
        A colorcet palette name or colours (default ``bmy`` / ``coolwarm``).

    Returns
    -------
    holoviews.Overlay
        An ``hv.Image`` over x = step, y = parameter row (bounds
        ``(x0, 0, x1, P)``; vdims ``value`` (the colour), ``min``, ``max``,
        ``steps``, ``nonfinite``, ``first``, ``last``) whose hover shows the
        parameter's name, the step (range) and the values, and a second
        ``hv.Image`` marking the NaN/inf cells in :data:`style.NAN_COLOR`.
        The title counts the recorded steps, the NaN/inf cells and the
        parameters without this statistic (frozen, or no gradient).

    Raises
    ------
    ValueError
        Unknown ``stat``, ``kind`` or ``norm``; ``norm="log"`` for a
        statistic with negative values.
    TypeError
        ``run`` neither a Run nor a path; ``since`` not an int.
    """
    from ..watch.store import STAT_NAMES

    hv = style.ensure_bokeh()
    style.check_choice(stat, "stat", STAT_NAMES)
    _check_kind(kind, ("grad", "weight", "update"))
    if norm is not None:
        style.check_choice(norm, "norm", FLOW_NORMS)
    width = check_size(width, "width")
    if height is not None:
        height = check_size(height, "height")
    since = _check_since(since)

    with _reading(run) as r:
        # names are data (what a model calls its parameters): shown with controls escaped
        names = style.labels(p.name for p in r.params)
        steps, values = r.stat(stat, kind=kind, since=since)
        bad = None
        for special in ("nan", "posinf", "neginf"):
            _, v = r.stat(special, kind=kind, since=since)
            bad = v if bad is None else bad + v
        run_name = style.label(r.name)
    steps = np.asarray(steps, np.int64)
    values = np.asarray(values, np.float64).reshape(len(names), steps.size)
    bad = np.asarray(bad, np.float64).reshape(values.shape)
    P, T = values.shape
    present = np.isfinite(bad)                  # a stats row exists for (param, step)
    nonfinite = present & ((bad > 0) | ~np.isfinite(values))
    finite = present & np.isfinite(values)
    fv = values[finite]
    signed = bool(fv.size) and bool(fv.min() < 0)
    if norm is None:
        norm = "linear" if signed else "log"
    if norm == "log" and signed:
        raise ValueError(f"norm: a log colour scale needs non-negative values; {kind} {stat} "
                         f"has negative ones (min {style.format_value(float(fv.min()))}); "
                         f"use norm='linear'")

    # ---- columns -----------------------------------------------------------------
    if T:
        col, ncol, (x0, x1) = _columns(steps, width)
    else:
        col, ncol, (x0, x1) = np.zeros(0, np.int64), 1, (0.0, 1.0)
    v = np.where(finite, values, np.nan)
    vmin = _reduce_columns(v, col, ncol, np.fmin)
    vmax = _reduce_columns(v, col, ncol, np.fmax)
    count = np.nan_to_num(_reduce_columns(present.astype(np.float64), col, ncol, np.add))
    nbad = np.nan_to_num(_reduce_columns(nonfinite.astype(np.float64), col, ncol, np.add))
    sf = steps.astype(np.float64)[None, :].repeat(P, 0)
    first = _reduce_columns(np.where(present, sf, np.nan), col, ncol, np.fmin)
    last = _reduce_columns(np.where(present, sf, np.nan), col, ncol, np.fmax)
    if signed:
        colour = np.where(np.abs(vmin) > np.abs(vmax), vmin, vmax)   # the extremum
    else:
        colour = vmax.copy()

    # ---- colour policy -----------------------------------------------------------
    palette = style.check_cmap(cmap, signed)
    if norm == "log":
        limits = style.robust_limits(colour, "log", percentile=100.0)
        zeros = colour == 0
        # exact zeros sit below the low limit: the mapper's low colour (grey)
        colour[zeros] = limits[0] / 10.0
        copts = style.colour_opts(palette, "log", limits, nan_color=style.EMPTY_COLOR)
        copts["clipping_colors"] = {"NaN": style.EMPTY_COLOR, "min": ZERO_COLOR}
        n_zero = int(np.count_nonzero(zeros))
    else:
        limits = style.robust_limits(colour, "linear", signed=signed, percentile=100.0)
        copts = style.colour_opts(palette, "linear", limits, nan_color=style.EMPTY_COLOR)
        n_zero = 0

    # ---- elements ------------------------------------------------------------------
    bounds = (x0, 0.0, x1, float(max(P, 1)))
    planes = {"value": colour, "min": vmin, "max": vmax, "steps": count, "nonfinite": nbad,
              "first": first, "last": last}
    order = list(planes)
    if P:
        data = np.dstack([planes[k][::-1] for k in order])   # top row = largest y
    else:
        data = np.full((1, ncol, len(order)), np.nan)
    label = f"{kind} {stat}"
    vdims = [hv.Dimension("value", label=label)] + order[1:]
    img = hv.Image(data, bounds=bounds, kdims=[hv.Dimension("x", label="step"),
                                                hv.Dimension("y", label="parameter")],
                   vdims=vdims)
    marks_data = np.where(nbad > 0, 1.0, np.nan)
    # its range given: HoloViews would take it from the data, all NaN without NaN/inf cells
    # (numpy's "All-NaN slice" warning at every draw)
    marks = hv.Image(marks_data[::-1] if P else np.full((1, ncol), np.nan), bounds=bounds,
                     kdims=img.kdims, vdims=[hv.Dimension("nan_mark", label="NaN/inf",
                                                          range=(0.0, 2.0))])

    from bokeh.models import CustomJSHover

    one_per_column = T == 0 or bool(np.all(count <= 1))
    tips = [("param", "$y{custom}")]
    if one_per_column:
        tips += [("step", "@{first}"), (label, "@{max}{%.4g}")]
    else:
        tips += [("steps", "@{first} to @{last} (@{steps} recorded)"),
                 ("min", "@{min}{%.4g}"), ("max", "@{max}{%.4g}")]
    tips.append(("NaN/inf steps", "@{nonfinite}"))
    fmt = {"$y": CustomJSHover(args={"names": names}, code=_NAME_JS),
           "@{max}": "printf", "@{min}": "printf"}
    h = height or int(min(max(_ROW_PIXELS * P, _FLOW_HEIGHT[0]), _FLOW_HEIGHT[1]))
    stride = max(1, math.ceil(P / _MAX_TICKS))
    yticks = [(p + 0.5, names[p]) for p in range(0, P, stride)]

    title = f"{run_name}: {label} per parameter, {T:,} recorded step{'s' if T != 1 else ''}"
    if T:
        title += f" ({int(steps[0])}-{int(steps[-1])})"
    if norm == "log":
        title += ", log colour"
    notes = []
    n_bad = int(np.count_nonzero(nonfinite))
    if n_bad:
        who = [names[p] for p in np.flatnonzero(nonfinite.any(1))]
        notes.append(f"{n_bad:,} NaN/inf (green) in " + ", ".join(who[:3])
                     + (", ..." if len(who) > 3 else ""))
    if n_zero:
        notes.append(f"{n_zero:,} exactly 0 (grey)")
    absent = [names[p] for p in range(P) if T and not present[p].any()]
    if absent:
        notes.append(f"no {kind}: " + ", ".join(absent[:3]) + (", ..." if len(absent) > 3 else ""))
    if T == 0:
        notes.append("no recorded steps yet")
    if notes:
        title += " - " + "; ".join(notes)

    frame = dict(frame_width=width, frame_height=h, invert_yaxis=True, yticks=yticks,
                 xlabel="step", ylabel="", title=title)
    img = img.opts(backend="bokeh", tools=["hover"], hover_tooltips=tips,
                   hover_formatters=fmt, **copts, **frame)
    marks = marks.opts(backend="bokeh", cmap=[style.NAN_COLOR, style.NAN_COLOR],
                       clim=(0.0, 2.0), colorbar=False,
                       clipping_colors={"NaN": style.EMPTY_COLOR}, **frame)
    overlay = hv.Overlay([img, marks]).opts(backend="bokeh", title=title)
    return overlay


# --------------------------------------------------------------------------
# distributions over time
# --------------------------------------------------------------------------

def distributions(run, param, kind: str = "grad", *, since: int | None = None,
                  width: int = 900, height: int = 350, cmap=None, norm: str = "log",
                  percentiles=None):
    """A parameter's weight or gradient histograms over the recorded steps.

    Drawn by :func:`dlviz_gpu.distribution`: each recorded step is a column of
    exact counts on that step's own bin edges (the recorder bins each tensor
    over its finite range), with percentile bands; NaN/inf counts are in the
    title and the hover.

    Parameters
    ----------
    run : Run or str or os.PathLike
        A run opened with :func:`dlviz_gpu.watch.open_run`, or its path.
    param : str or int
        The parameter's name (or id).
    kind : {"grad", "weight"}
        Gradient or weight histograms.
    since : int, optional
        Only the steps from this one on.
    width, height : int
        Plot frame size in screen pixels.
    cmap, norm, percentiles
        As :func:`dlviz_gpu.distribution` (default percentiles: TensorBoard's).

    Returns
    -------
    holoviews.Overlay
        :func:`dlviz_gpu.distribution`'s overlay (x = step).

    Raises
    ------
    ValueError
        Unknown ``param`` or ``kind``; no histograms of it in the run
        (recorded with ``histograms=False``, or a frozen parameter's gradient).
    """
    from .distributions import PERCENTILES, distribution

    kind = _check_kind(kind)
    since = _check_since(since)
    with _reading(run) as r:
        i, info = _param(r, param)
        steps, h = r.histograms(i, kind=kind, since=since)
    steps = np.asarray(steps)
    if steps.size == 0:
        raise ValueError(f"param: the run holds no {kind} histograms of {info.name!r}"
                         + (f" from step {since} on" if since is not None else "")
                         + " (recorded with histograms=False, not recorded yet, or a "
                         "parameter without gradients)")
    return distribution(h, steps=steps, width=width, height=height, cmap=cmap, norm=norm,
                        label=f"{info.name} {kind}",
                        percentiles=PERCENTILES if percentiles is None else percentiles)


# --------------------------------------------------------------------------
# update ratios
# --------------------------------------------------------------------------

def _line(steps: np.ndarray, values: np.ndarray, width: int):
    """(x, y) of one line: every sample, or the exact M4 vertices when there are many."""
    if steps.size <= 4 * width:
        return steps.astype(np.float64), values
    from ..series import decimate, polyline

    _, x, y = polyline(decimate(values, x=steps.astype(np.float64), width=width), x=steps)
    return x, y


def update_ratios(run, top: int = 10, *, since: int | None = None, width: int = 900,
                  height: int = 350, reference: float = REFERENCE_RATIO):
    """Update ratio ||w_t - w_(t-1)|| / ||w_t|| per parameter over the recorded steps.

    A learning rate that is right moves each weight matrix by roughly a
    thousandth of its norm per step; far below that a layer is not learning,
    far above it training is unstable.  One line per parameter on a log y
    axis with the ``reference`` drawn as a dashed line.

    Parameters
    ----------
    run : Run or str or os.PathLike
        A run opened with :func:`dlviz_gpu.watch.open_run`, or its path.
    top : int
        With more parameters than this, the ``top`` ones furthest from the
        reference (largest ``max |log10(ratio / reference)|`` over the steps)
        are drawn in colour with a legend and hover, the rest as faint grey
        lines.
    since : int, optional
        Only the steps from this one on.
    width, height : int
        Plot frame size in screen pixels (a line holds at most 4 x ``width``
        vertices: the exact M4 of its steps).
    reference : float
        The ratio drawn as a dashed reference line (default 1e-3).

    Returns
    -------
    holoviews.Overlay
        ``hv.Curve`` per highlighted parameter (kdims ``step``, vdims
        ``ratio``, ``param``; label = the parameter's name), an ``hv.Path`` of
        the faint rest (if any), the ``hv.HLine`` at ``reference`` and its
        ``hv.Text`` label.  Ratios <= 0 or NaN are gaps (a log axis has no
        place for them; the title counts the zeros).

    Raises
    ------
    ValueError
        ``top`` < 1, ``reference`` not a positive finite number.
    """
    hv = style.ensure_bokeh()
    if isinstance(top, bool) or not isinstance(top, (int, np.integer)) or top < 1:
        raise ValueError(f"top: expected a positive integer; got {top!r}")
    if isinstance(reference, bool) or not isinstance(reference, (int, float, np.floating)) \
            or not (math.isfinite(reference) and reference > 0):
        raise ValueError(f"reference: expected a positive finite ratio; got {reference!r}")
    width = check_size(width, "width")
    height = check_size(height, "height")
    since = _check_since(since)
    with _reading(run) as r:
        names = style.labels(p.name for p in r.params)
        steps, ratio = r.update("ratio", since=since)
        run_name = style.label(r.name)
    steps = np.asarray(steps, np.int64)
    ratio = np.asarray(ratio, np.float64).reshape(len(names), steps.size)
    n_zero = int(np.count_nonzero(ratio == 0))
    drawable = np.where(np.isfinite(ratio) & (ratio > 0), ratio, np.nan)
    has = np.isfinite(drawable).any(axis=1)
    with np.errstate(all="ignore"):
        dev = np.nanmax(np.abs(np.log10(drawable[has] / reference)), axis=1) if has.any() \
            else np.zeros(0)
    rows = np.flatnonzero(has)
    ranked = rows[np.argsort(-dev, kind="stable")]
    chosen = set(ranked[:top].tolist())
    highlighted = [p for p in rows if p in chosen]          # model order in the legend
    rest = [p for p in rows if p not in chosen]

    import colorcet as cc

    colours = list(cc.palette["glasbey_category10"])
    sdim = hv.Dimension("step")
    rdim = hv.Dimension("ratio", label="update ratio")
    layers = []
    if rest:
        paths = []
        for p in rest:
            x, y = _line(steps, drawable[p], width)
            paths.append(np.column_stack([x, y]))
        layers.append(hv.Path(paths, kdims=[sdim, rdim]).opts(
            backend="bokeh", color=FAINT_COLOR, alpha=0.35, line_width=1))
    tips = [("param", "@{param}"), ("step", "@{step}"), ("ratio", "@{ratio}{%.4g}")]
    for k, p in enumerate(highlighted):
        x, y = _line(steps, drawable[p], width)
        data = {"step": x, "ratio": y, "param": np.full(x.size, names[p], dtype=object)}
        label = names[p] if names[p] not in ("step", "ratio", "param") else names[p] + " (param)"
        c = hv.Curve(data, kdims=[sdim], vdims=[rdim, "param"], label=label)
        layers.append(c.opts(backend="bokeh", color=colours[k % len(colours)], line_width=1.6,
                             tools=["hover"], hover_tooltips=tips,
                             hover_formatters={"@{ratio}": "printf"}))
    x_left = float(steps[0]) if steps.size else 0.0
    layers.append(hv.HLine(reference).opts(backend="bokeh", color="#000000", line_dash="dashed",
                                           line_width=1))
    layers.append(hv.Text(x_left, reference, f" {reference:g} (rule of thumb)",
                          halign="left", valign="bottom", fontsize=9))

    title = (f"{run_name}: update ratio ||dW|| / ||W||, {len(rows)} parameter"
             f"{'s' if len(rows) != 1 else ''}, {steps.size:,} recorded steps")
    if rest:
        title += f" (top {len(highlighted)} furthest from {reference:g} in colour)"
    notes = []
    if n_zero:
        notes.append(f"{n_zero:,} zero ratios not drawn")
    missing = [names[p] for p in range(len(names)) if not has[p]]
    if missing and steps.size:
        notes.append("no update: " + ", ".join(missing[:3]) + (", ..." if len(missing) > 3
                                                                else ""))
    if not steps.size:
        notes.append("no recorded steps yet")
    if notes:
        title += " - " + "; ".join(notes)
    finite = drawable[np.isfinite(drawable)]
    lo = min(float(finite.min()), reference) if finite.size else reference
    hi = max(float(finite.max()), reference) if finite.size else reference
    frame = dict(frame_width=width, frame_height=height, logy=True, xlabel="step",
                 ylabel="update ratio", ylim=(lo / 2.0, hi * 2.0))
    layers = [el.opts(backend="bokeh", **frame) for el in layers]
    return hv.Overlay(layers).opts(backend="bokeh", title=title,
                                   show_legend=bool(highlighted),
                                   legend_position="right")


# --------------------------------------------------------------------------
# loss and learning rate
# --------------------------------------------------------------------------

def training_curves(run, names=DEFAULT_CURVES, smoothing=0.6, *, since: int | None = None,
                    width: int = 900, height: int = 250, logy=(), dynamic: bool = True):
    """Loss, learning rate (any recorded scalars) as exact curves on a shared step axis.

    Each scalar is a :func:`dlviz_gpu.curve` (exact M4 decimation that
    re-decimates on zoom; NaN/inf losses marked in red and counted in the
    title), stacked in one column whose step axes pan and zoom together.

    Parameters
    ----------
    run : Run or str or os.PathLike
        A run opened with :func:`dlviz_gpu.watch.open_run`, or its path.
    names : str or sequence of str
        The scalars to draw, top to bottom.  Default ``("loss", "lr")``:
        those of the two the run recorded (an error if neither); names given
        explicitly must all have been recorded.
    smoothing : float or mapping of str -> float
        TensorBoard's smoothing weight in [0, 1) (raw line faint, smoothed on
        top), or one per name.  A single number is not applied to the
        learning rate (``lr``: a schedule is exact, smoothing would blur it).
    since : int, optional
        Only the steps from this one on.
    width, height : int
        Size of each plot's frame in screen pixels.
    logy : bool or sequence of str
        Log y axes: for every curve, or for the names listed.
    dynamic : bool
        As :func:`dlviz_gpu.curve`: ``True`` re-decimates on zoom; ``False``
        gives static frames.

    Returns
    -------
    holoviews.Layout
        One column of :func:`dlviz_gpu.curve` objects (x = step; the y
        dimension labelled ``"<name> value"``, so the y axes stay
        independent while the step axes are linked).

    Raises
    ------
    ValueError
        A name the run did not record (the message lists those it did),
        an empty ``names``, ``smoothing`` outside [0, 1).
    """
    from .series import curve

    hv = style.ensure_bokeh()
    width = check_size(width, "width")
    height = check_size(height, "height")
    since = _check_since(since)
    default = names is DEFAULT_CURVES
    if isinstance(names, str):
        names = (names,)
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        raise TypeError(f"names: expected a scalar name or a sequence of names; got {names!r}")
    if not names:
        raise ValueError("names: expected at least one scalar name; got none")
    with _reading(run) as r:
        known = list(r.scalar_names())
        if default:
            names = [n for n in names if n in known]
            if not names:
                raise ValueError(f"names: the run recorded neither loss nor lr; it recorded "
                                 f"{', '.join(known) if known else 'no scalars yet'}")
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ValueError(f"names: {', '.join(map(repr, unknown))} not recorded in this run; "
                             f"known scalars: {', '.join(known) if known else 'none yet'}")
        series = {n: r.scalar(n, since=since) for n in names}
    if isinstance(smoothing, dict):
        extra = [k for k in smoothing if k not in names]
        if extra:
            raise ValueError(f"smoothing: names {extra} are not among the curves {list(names)}")
        weights = {n: smoothing.get(n, 0.0) for n in names}
    else:
        weights = {n: (0.0 if n in UNSMOOTHED else smoothing) for n in names}
    if isinstance(logy, (bool, np.bool_)):
        logs = set(names) if logy else set()
    elif isinstance(logy, (list, tuple, set)) and all(isinstance(n, str) for n in logy):
        logs = set(logy)
        extra = sorted(logs - set(names))
        if extra:
            raise ValueError(f"logy: names {extra} are not among the curves {list(names)}")
    else:
        raise TypeError(f"logy: expected True/False or a sequence of scalar names; got {logy!r}")
    plots = []
    for n in names:
        x, y = series[n]
        c = curve(np.asarray(y, np.float64), x=np.asarray(x, np.float64),
                  smoothing=weights[n], width=width, height=height, label=n,
                  dynamic=dynamic, logy=n in logs)
        view = getattr(c, "view", None)
        # the curve's value dimension is "y" in every curve: label it by the
        # scalar, or the layout would link the loss's y axis to the lr's (not
        # the scalar's name itself: that is the element's label, and
        # matplotlib's legend would read a dimension of the same label)
        c = c.redim.label(y=f"{style.label(n)} value")
        if view is not None:
            c.view = view
        plots.append(c)
    return hv.Layout(plots).cols(1)


# --------------------------------------------------------------------------
# alerts
# --------------------------------------------------------------------------

def alerts_table(run, *, since: int | None = None, width: int = 900, height: int = 250):
    """The run's alerts (NaN/inf, dead units, ...) as a table.

    Parameters
    ----------
    run : Run or str or os.PathLike
        A run opened with :func:`dlviz_gpu.watch.open_run`, or its path.
    since : int, optional
        Only alerts from this step on.
    width, height : int
        Table size in screen pixels.

    Returns
    -------
    holoviews.Table
        Columns ``step``, ``parameter`` (empty when the alert is not about a
        parameter, e.g. a non-finite loss), ``kind``, ``message``; one row per
        alert in the order raised.  The title counts them.
    """
    hv = style.ensure_bokeh()
    width = check_size(width, "width")
    height = check_size(height, "height")
    rows = alerts(run, since=since)
    # parameter names and messages are data: shown with controls escaped
    data = {"step": np.array([a["step"] for a in rows], dtype=np.int64),
            "parameter": np.array([display(a["param"] or "", limit=style.LABEL_LIMIT)
                                   for a in rows], dtype=object),
            "kind": np.array([display(a["kind"], exact=False) for a in rows], dtype=object),
            "message": np.array([display(a["message"], exact=False) for a in rows],
                                dtype=object)}
    title = f"{len(rows)} alert{'s' if len(rows) != 1 else ''}" if rows else "no alerts"
    table = hv.Table(data, kdims=["step"], vdims=["parameter", "kind", "message"],
                     label=title)
    return table.opts(backend="bokeh", width=width, height=height, title=title)


# --------------------------------------------------------------------------
# weight snapshots
# --------------------------------------------------------------------------

def _snapshot_geometry(info, snap: np.ndarray):
    """(bounds, rows, cols) of a snapshot: the matrix's own row / column coordinates."""
    h, w = snap.shape
    rows = int(info.rows) if getattr(info, "rows", None) else h
    cols = int(info.cols) if getattr(info, "cols", None) else w
    return (0.0, 0.0, float(cols), float(rows)), rows, cols


def _snapshot_opts(bounds, shape, width, height, palette, limits, title):
    from bokeh.models import CustomJSHover

    from .matrix import RANGE_JS

    x0, y0, x1, y1 = bounds
    h, w = shape
    fmt = {"$x": CustomJSHover(args={"lo": x0, "hi": x1, "n": int(w)}, code=RANGE_JS),
           "$y": CustomJSHover(args={"lo": y0, "hi": y1, "n": int(h)}, code=RANGE_JS)}
    opts = style.colour_opts(palette, "linear", limits)
    opts.update(frame_width=width, frame_height=height, invert_yaxis=True, tools=["hover"],
                hover_formatters=fmt, xlabel="column", ylabel="row", title=title)
    return opts


def _frame_height(width: int, rows: int, cols: int, height) -> int:
    if height is not None:
        return check_size(height, "height")
    return int(min(max(round(width * rows / max(cols, 1)), 120), 800))


def _check_snapshot_stat(stat) -> str:
    return style.check_choice(stat, "stat", SNAPSHOT_STATS)


def _snapshot_steps(r, i, info, stat) -> np.ndarray:
    s = np.asarray(r.snapshot_steps(i, stat=stat), np.int64)
    if s.size == 0:
        raise ValueError(f"param: the run holds no {stat!r} weight snapshots of "
                         f"{info.name!r} (snapshots are taken every snapshot_every steps, of weight "
                         f"matrices only)")
    return s


def weight_evolution(run, param, stat: str = "mean", *, steps=None, max_frames: int = 60,
                     width: int = 500, height: int | None = None, cmap=None, clim=None,
                     dynamic: bool = False):
    """A weight matrix's stored snapshots over training, one frame per snapshot step.

    Parameters
    ----------
    run : Run or str or os.PathLike
        A run opened with :func:`dlviz_gpu.watch.open_run`, or its path.
    param : str or int
        The parameter's name (or id).
    stat : {"mean", "extremum"}
        Which snapshot plane: the per-pixel mean, or the per-pixel element of
        largest magnitude (outliers).
    steps : sequence of int, optional
        The snapshot steps to show (each must be stored).  Default: all of
        them, or ``max_frames`` spread evenly (first and last included) when
        there are more.
    max_frames : int
        Most frames read by default (each is an (h, w) float32 image that a
        saved HTML page embeds).
    width, height : int
        Plot frame size (default height: the matrix's aspect, within 120-800).
    cmap : str or list of str, optional
        Palette (default ``coolwarm`` centred at 0 for signed weights,
        ``bmy`` otherwise).
    clim : (float, float), optional
        Colour limits; default robust limits over every frame shown (with
        ``dynamic``: over the first and the last), the same for all frames
        so a colour means one value throughout.
    dynamic : bool
        ``False``: a HoloMap holding the frames (notebooks, static HTML).
        ``True``: a DynamicMap over every stored snapshot step (``steps`` or
        all; ``max_frames`` does not apply) that reads one snapshot per
        frame shown, for servers (the dashboard's step player).

    Returns
    -------
    holoviews.HoloMap or holoviews.DynamicMap
        Keyed by ``step`` (a slider in notebooks, in a served page and in
        HTML written by ``hv.save``), each value an ``hv.Image`` of the
        snapshot (x = column, y = row in the matrix's own coordinates, row 0
        at the top; vdim ``value``) with a hover of the pixel's row and
        column range and its value.  NaN pixels take the NaN colour.

    Raises
    ------
    ValueError
        Unknown ``param`` or ``stat``, no snapshots of the parameter, a
        ``steps`` entry that is not a snapshot step.
    """
    hv = style.ensure_bokeh()
    stat = _check_snapshot_stat(stat)
    width = check_size(width, "width")
    if isinstance(max_frames, bool) or not isinstance(max_frames, (int, np.integer)) \
            or max_frames < 1:
        raise ValueError(f"max_frames: expected a positive integer; got {max_frames!r}")
    clim = style.check_clim(clim)
    with _reading(run) as r:
        i, info = _param(r, param)
        stored = _snapshot_steps(r, i, info, stat)
        if steps is None:
            if stored.size > max_frames:
                pick = np.unique(np.round(np.linspace(0, stored.size - 1, max_frames))
                                 .astype(np.int64))
                chosen = stored[pick]
            else:
                chosen = stored
        else:
            chosen = _check_steps(steps, stored, "steps")
        if dynamic:          # the colour limits from the first and the last snapshot
            chosen = stored if steps is None else chosen
            sample = [chosen[0], chosen[-1]]
        else:
            sample = chosen
        frames = {int(s): np.asarray(r.snapshot(i, int(s), stat=stat), np.float32)
                  for s in sample}
    first = next(iter(frames.values()))
    bounds, rows, cols = _snapshot_geometry(info, first)
    all_values = np.concatenate([f.ravel() for f in frames.values()])
    signed = style.is_signed(all_values)
    palette = style.check_cmap(cmap, signed)
    limits = clim or style.robust_limits(all_values, "linear", signed=signed)
    h = _frame_height(width, rows, cols, height)
    vdim = hv.Dimension("value", label=f"weight {stat}")
    shown = len(chosen) if dynamic else len(frames)
    name = style.label(info.name)
    title = (f"{name} [{rows}x{cols}] {stat}, {shown} of {stored.size} snapshot"
             f"{'s' if stored.size != 1 else ''}")
    tips = [("rows", "$y{custom}"), ("cols", "$x{custom}"), (stat, "@{value}{%.6g}")]

    def frame(s, snap):
        img = hv.Image(snap[::-1], bounds=bounds, kdims=["col", "row"], vdims=[vdim],
                       label=name)
        opts = _snapshot_opts(bounds, snap.shape, width, h, palette, limits,
                              f"{title} - step {s}")
        opts["hover_tooltips"] = tips
        opts["hover_formatters"] = {**opts["hover_formatters"], "@{value}": "printf"}
        return img.opts(backend="bokeh", **opts)

    if dynamic:
        def load(step):
            with _reading(run) as rr:
                return frame(int(step), np.asarray(rr.snapshot(i, int(step), stat=stat),
                                                   np.float32))
        return hv.DynamicMap(load, kdims=[hv.Dimension("step",
                                                       values=[int(s) for s in chosen])])
    return hv.HoloMap({s: frame(s, snap) for s, snap in frames.items()},
                      kdims=[hv.Dimension("step")])


def _check_steps(steps, stored: np.ndarray, name: str) -> np.ndarray:
    try:
        s = np.asarray(steps)
    except (TypeError, ValueError):
        s = np.asarray([], dtype=object)
    if s.ndim != 1 or s.size == 0 or s.dtype.kind not in "iu":
        raise ValueError(f"{name}: expected a non-empty sequence of snapshot steps (ints); "
                         f"got {steps!r}")
    missing = [int(v) for v in s if v not in stored]
    if missing:
        raise ValueError(f"{name}: {missing} are not snapshot steps; stored: "
                         f"{_steps_text(stored)}")
    return s.astype(np.int64)


def _steps_text(stored: np.ndarray) -> str:
    v = [str(int(x)) for x in stored]
    return ", ".join(v) if len(v) <= 12 else ", ".join(v[:6] + ["..."] + v[-5:])


def _check_step(step, stored: np.ndarray, name: str) -> int:
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)):
        raise TypeError(f"{name}: expected a snapshot step (int); got {step!r}")
    if int(step) not in stored:
        raise ValueError(f"{name}: step {int(step)} has no snapshot; stored: "
                         f"{_steps_text(stored)}")
    return int(step)


def snapshot_diff(run, param, step_a: int, step_b: int, stat: str = "mean", *,
                  width: int = 500, height: int | None = None, cmap=None, clim=None):
    """How a weight matrix changed between two snapshots: ``snapshot(a) - snapshot(b)``.

    Parameters
    ----------
    run : Run or str or os.PathLike
        A run opened with :func:`dlviz_gpu.watch.open_run`, or its path.
    param : str or int
        The parameter's name (or id).
    step_a, step_b : int
        Two snapshot steps; the image is ``a - b`` (pass the later step as
        ``step_a`` to see what training added).
    stat : {"mean", "extremum"}
        Which snapshot plane.
    width, height : int
        Plot frame size (default height: the matrix's aspect, within 120-800).
    cmap : str or list of str, optional
        A diverging palette (default ``coolwarm``), centred at 0.
    clim : (float, float), optional
        Colour limits; default symmetric ``(-p, p)`` with ``p`` the 99.5th
        percentile of |a - b|.

    Returns
    -------
    holoviews.Image
        x = column, y = row (the matrix's coordinates, row 0 at the top);
        vdims ``diff`` (float64 ``a - b``), ``a``, ``b``; the hover shows the
        pixel's row / column range and the three values.  The title gives the
        largest |a - b|.

    Raises
    ------
    ValueError
        Unknown ``param`` or ``stat``; a step without a snapshot (the
        message lists the stored ones).
    """
    hv = style.ensure_bokeh()
    stat = _check_snapshot_stat(stat)
    width = check_size(width, "width")
    clim = style.check_clim(clim)
    with _reading(run) as r:
        i, info = _param(r, param)
        stored = _snapshot_steps(r, i, info, stat)
        a_step = _check_step(step_a, stored, "step_a")
        b_step = _check_step(step_b, stored, "step_b")
        a = np.asarray(r.snapshot(i, a_step, stat=stat), np.float64)
        b = np.asarray(r.snapshot(i, b_step, stat=stat), np.float64)
    if a.shape != b.shape:
        raise ValueError(f"step_b: the snapshot at step {b_step} is {b.shape[0]}x{b.shape[1]} "
                         f"pixels, the one at step {a_step} {a.shape[0]}x{a.shape[1]}; they "
                         "cannot be subtracted")
    diff = a - b
    bounds, rows, cols = _snapshot_geometry(info, a)
    palette = style.check_cmap(cmap if cmap is not None else style.DIVERGING, True)
    limits = clim or style.robust_limits(diff, "linear", signed=True)
    h = _frame_height(width, rows, cols, height)
    fin = diff[np.isfinite(diff)]
    big = style.format_value(float(np.abs(fin).max())) if fin.size else "n/a"
    name = style.label(info.name)
    title = (f"{name} {stat}: step {a_step} - step {b_step}, max |diff| {big}")
    data = np.dstack([diff[::-1], a[::-1], b[::-1]])
    img = hv.Image(data, bounds=bounds, kdims=["col", "row"],
                   vdims=[hv.Dimension("diff", label=f"diff {stat}"), "a", "b"],
                   label=name)
    opts = _snapshot_opts(bounds, a.shape, width, h, palette, limits, title)
    opts["hover_tooltips"] = [("rows", "$y{custom}"), ("cols", "$x{custom}"),
                              ("a - b", "@{diff}{%.6g}"), (f"step {a_step}", "@{a}{%.6g}"),
                              (f"step {b_step}", "@{b}{%.6g}")]
    opts["hover_formatters"] = {**opts["hover_formatters"], "@{diff}": "printf",
                                "@{a}": "printf", "@{b}": "printf"}
    return img.opts(backend="bokeh", **opts)


#: The name :mod:`dlviz_gpu` exports :func:`distributions` under (``dv.distribution``
#: is the general histograms-over-steps view it builds on).
param_distributions = distributions

__all__ = ["gradient_flow", "distributions", "param_distributions", "update_ratios", "training_curves",
           "alerts", "alerts_table", "weight_evolution", "snapshot_diff",
           "REFERENCE_RATIO", "DEFAULT_CURVES"]
