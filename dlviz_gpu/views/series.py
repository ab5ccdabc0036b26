"""``dv.curve``: a zoomable, exact line of a long series (a training curve of 10^8 steps).

Every zoom (RangeX) and resize (PlotSize) asks :class:`dlviz_gpu.series.Decimator`
for the M4 of the visible window at the plot's pixel width: the first, lowest,
highest and last sample of every pixel column, which drawn in index order is
pixel-identical to drawing every sample.  So the browser receives at most
4 x width vertices per line, whatever the series' length, and deep zoom ends at
the samples themselves.

With ``smoothing`` the view draws, like TensorBoard, the raw series faint and its
debiased exponential moving average on top (both decimated exactly; the
smoothed series is never materialised).  NaN / inf samples are skipped by the
lines, marked by a red vertical line on every pixel column holding any, and
counted in the title.
"""

from __future__ import annotations

import time

import numpy as np

from ..checks import check_flag, check_size, check_smoothing
from ..series import Decimator
from . import style
from .zoom import ZoomView

#: Line colour when ``color=None``.
DEFAULT_COLOR = "#1f77b4"
#: Colour of the marks on pixel columns that hold NaN / inf samples.
NAN_MARK_COLOR = "#d62728"
#: Opacity of the raw line under a smoothed one.
RAW_ALPHA = 0.3


def _check_color(color) -> str:
    if color is None:
        return DEFAULT_COLOR
    if not isinstance(color, str) or not color:
        raise ValueError(f"color: expected a colour string (a name or '#rrggbb'); got "
                         f"{color!r}")
    return color


class CurveView(ZoomView):
    """The state behind one curve: the decimators, the totals, the last window.

    Build one with :func:`curve`; :meth:`element` renders any window and is what
    the DynamicMap calls on every zoom.

    Attributes
    ----------
    updates : int
        How many windows have been decimated (each zoom adds one).
    last : dict
        Facts about the last window: ``window`` (x0, x1), ``canvas``
        (width, height), ``vertices`` (points drawn, all lines), ``nan_columns``
        (pixel columns holding NaN/inf samples), ``bytes`` (the arrays handed to
        the plot), ``seconds``.
    raw, smooth : Decimator
        The raw series, and its moving average (None without smoothing).
    """

    #: a series zooms along its steps only
    STREAMS = ("RangeX", "PlotSize")

    def __init__(self, y, x=None, smoothing: float = 0.0, logy: bool = False, color=None,
                 backend: str = "auto", label: str | None = None):
        self.smoothing = check_smoothing(smoothing)
        check_flag(logy, "logy")
        self.logy = bool(logy)
        self.color = _check_color(color)
        # a name is data: shown with controls escaped, never raw as a HoloViews label
        self.label = style.label(label) if label else "value"
        self.has_x = x is not None
        self.raw = Decimator(y, x=x, smoothing=0.0, backend=backend)
        self.smooth = (Decimator(y, x=x, smoothing=self.smoothing, backend=backend)
                       if self.smoothing else None)
        self.n = self.raw.n
        self.extent = self.raw.x_extent
        super().__init__((900, 300))
        # one pass over the whole series: how many samples are NaN / inf
        d = self.raw.decimate(1, self.extent)
        self.finite = int(d["count"].sum())
        self.nonfinite = int(d["nan_count"].sum())

    # -- windows --------------------------------------------------------------------
    def window(self, x_range=None, width=None):
        """((x0, x1), width): the visible window (default the whole series) and pixels."""
        width = check_size(width or 900, "width")
        if x_range is None:
            return self.extent, width
        lo, hi = sorted(float(v) for v in x_range)
        if not (np.isfinite(lo) and np.isfinite(hi)):
            return self.extent, width
        if not hi > lo:
            pad = max(abs(lo), 1.0) * 1e-9
            lo, hi = lo - pad, hi + pad
        return (lo, hi), width

    def lines(self, x_range=None, width=None) -> dict:
        """Decimate one window.

        Returns a dict with ``window`` ((x0, x1), width), ``raw`` and, with
        smoothing, ``smoothed`` (each ``(index, x, y)`` of the M4 vertices, as
        :meth:`Decimator.polyline`), and ``nan`` ((positions of the pixel-column
        centres holding NaN/inf samples, their counts)).
        """
        t0 = time.perf_counter()
        (x0, x1), w = self.window(x_range, width)
        d = self.raw.decimate(w, (x0, x1))
        out = {"window": ((x0, x1), w), "raw": self.raw.polyline(d)}
        if self.smooth is not None:
            out["smoothed"] = self.smooth.polyline(self.smooth.decimate(w, (x0, x1)))
        nan = np.asarray(d["nan_count"])
        cols = np.flatnonzero(nan)
        out["nan"] = (np.asarray(d["x"])[cols], nan[cols])
        vertices = sum(out[k][0].size for k in ("raw", "smoothed") if k in out)
        self.record({"window": (x0, x1), "canvas": (w, self.frame[1]),
                     "vertices": int(vertices), "nan_columns": int(cols.size),
                     "bytes": int(vertices * (24 if self.has_x else 16) + cols.size * 16),
                     "seconds": time.perf_counter() - t0})
        return out

    # -- HoloViews ------------------------------------------------------------------
    # the element label must not name a dimension: HoloViews' matplotlib backend
    # would read the legend label as that dimension's values (dv.save to PNG)
    _DIMS = ("step", "y", "index", "sample")

    def _legend(self, text: str) -> str:
        return text + " (series)" if text in self._DIMS else text

    def _curve(self, hv, line, name: str, label: str, **style):
        idx, xs, ys = line
        vdims = [hv.Dimension("y")]
        data = {"step": xs, "y": ys}
        tips = [("step", "@{step}{%.10g}"), (name, "@{y}{%.6g}")]
        if self.has_x:
            # with positions given, the sample index is worth a line of the hover
            vdims.append(hv.Dimension("index", label="sample"))
            data["index"] = idx
            tips.append(("sample", "@{index}"))
        c = hv.Curve(data, kdims=[hv.Dimension("step")], vdims=vdims,
                     label=self._legend(label))
        return c.opts(backend="bokeh", tools=["hover"], hover_tooltips=tips,
                      hover_formatters={"@{step}": "printf", "@{y}": "printf"},
                      hover_mode="vline", **style)

    def zoom(self, x_range, width, height, scale=1.0):
        """The picture of one zoom or resize (the DynamicMap's callback)."""
        return self.element(x_range, width or self.frame[0])

    def element(self, x_range=None, width=None):
        """The ``hv.Overlay`` of one window: raw line, smoothed line, NaN marks."""
        hv = style.ensure_bokeh()
        res = self.lines(x_range, width)
        (x0, x1), _ = res["window"]
        smoothed = "smoothed" in res
        layers = [self._curve(hv, res["raw"], "value", self.label, color=self.color,
                              alpha=RAW_ALPHA if smoothed else 1.0,
                              line_width=1 if smoothed else 1.5)]
        # the window is the step axis' range (framewise: the y axis follows the
        # visible data, and x stays exactly where the user put it)
        layers[0] = layers[0].redim.range(step=(x0, x1))
        layers[0] = layers[0].opts(backend="bokeh", frame_width=self.frame[0],
                                   frame_height=self.frame[1], title=self.title(),
                                   logy=self.logy, xlabel="step", ylabel=self.label,
                                   # a series zooms along steps only; y follows the data
                                   default_tools=["save", "reset", "xpan", "xwheel_zoom",
                                                  "xbox_zoom"],
                                   active_tools=["xwheel_zoom"], framewise=True)
        if smoothed:
            layers.append(self._curve(hv, res["smoothed"], "smoothed",
                                      f"{self.label} (smoothed {self.smoothing:g})",
                                      color=self.color, line_width=2, framewise=True))
        pos, counts = res["nan"]
        if self.nonfinite:
            marks = hv.VLines(pos, kdims=["step"], label=self._legend("NaN/inf"))
            layers.append(marks.opts(backend="bokeh", color=NAN_MARK_COLOR, alpha=0.5,
                                     line_width=1))
        over = hv.Overlay(layers)
        return over.opts(backend="bokeh", show_legend=len(layers) > 1,
                         legend_position="top_right")

    def title(self) -> str:
        t = f"{self.label} [{self.n:,} samples]"
        if self.smoothing:
            t += f", smoothing {self.smoothing:g}"
        if self.n == 0:
            t += " - empty series"
        elif self.finite == 0:
            t += " - all values NaN/inf"
        elif self.nonfinite:
            t += f" - {self.nonfinite:,} NaN/inf (red marks)"
        return t


def curve(y, x=None, smoothing: float = 0.0, *, width: int = 900, height: int = 300,
          label: str | None = None, dynamic: bool = True, logy: bool = False, color=None,
          backend: str = "auto"):
    """A zoomable line of a long series that re-decimates the visible window on zoom.

    Parameters
    ----------
    y : (N,) array_like
        The series: list, numpy array or memmap, torch tensor (CPU or CUDA;
        bfloat16 / float16 read in place), cupy array, pandas Series.  Never
        copied.  NaN / inf samples are skipped by the line, marked in red on
        their pixel columns and counted in the title.
    x : (N,) array_like, optional
        Sample positions (e.g. training steps), finite and non-decreasing.
        Default: the sample index.
    smoothing : float
        TensorBoard's smoothing weight in [0, 1): with ``w > 0`` the raw line
        is drawn faint and its debiased exponential moving average on top.
    width, height : int
        Plot frame size in screen pixels (``width`` is the number of pixel
        columns decimated).
    label : str, optional
        Name of the series (y axis, legend, title).
    dynamic : bool
        ``True`` (default): a ``DynamicMap`` (RangeX + PlotSize streams) that
        re-decimates on every zoom and resize; the y axis follows the visible
        data.  ``False``: one frame of the whole series.
    logy : bool
        Logarithmic y axis (non-positive values cannot be drawn on it).
    color : str, optional
        Line colour (default ``#1f77b4``).
    backend : {"auto", "cpu", "cuda"}
        Where the kernels run (default: where ``y`` lives).

    Returns
    -------
    holoviews.DynamicMap or holoviews.Overlay
        Frames are overlays of ``hv.Curve`` (raw; smoothed) and, when the series
        holds NaN/inf, ``hv.VLines``.  ``.view`` (set on the DynamicMap) is the
        :class:`CurveView` with the update counter and the last window.

    Raises
    ------
    ValueError
        ``smoothing`` outside [0, 1), ``y`` not 1-D, ``x`` of another length,
        not finite or decreasing.
    TypeError
        ``y`` / ``x`` not numeric, ``smoothing`` not a number.
    """
    style.ensure_bokeh()
    width = check_size(width, "width")
    height = check_size(height, "height")
    view = CurveView(y, x=x, smoothing=smoothing, logy=logy, color=color, backend=backend,
                     label=label)
    view.frame = (width, height)
    if not dynamic:
        return view.element(width=width)
    return view.dynamic()


__all__ = ["curve", "CurveView"]
