"""``dv.heatmap``: a zoomable, exact picture of a matrix (or conv / 1-D tensor).

Every zoom asks the kernels again for just the visible window, at the plot's
pixel size or at the visible cell count when fewer cells than pixels are in
view, so deep zoom shows single elements as blocks and nothing beyond a
screenful of per-pixel statistics ever leaves the server.

A tensor that cannot change under the view (a read-only memory map of a
checkpoint file) has its overview and its whole-extent picture shared by
every view of it in the process (:class:`SharedWindows`): a served
dashboard's sessions then read the whole tensor once for its colour limits
and its first picture, not once each.
"""

from __future__ import annotations

import math
import mmap
import threading
import time
import warnings
import weakref
from collections import OrderedDict

import numpy as np

from ..aggregate import rasterize
from ..checks import check_size
from ..tensors import as_matrix
from . import style
from .zoom import ZoomView

#: Values of ``agg``.
AGGS = ("mean", "min", "max", "extremum", "std", "count", "nan_count")
#: Statistics the hover shows by default, besides the row / column range.
HOVER = ("count", "mean", "min", "max", "std")
NAN_MODES = ("mark", "ignore")

#: BokehJS sends a wheel zoom's new range to the server only when the zoom's
#: "interactive" period ends: ``timeout`` ms after the last wheel notch
#: (Bokeh's default is 500 ms, a wait that every zoomed picture paid).  At
#: 150 ms the notches of one quick spin still make one request, and the
#: server, which computes only a session's latest range, answers each
#: deliberate notch.  ``interval`` and ``threshold`` concern the decimation
#: of glyphs with many points, which these views do not have.
ZOOM_LOD = {"timeout": 150}

#: Bytes of planes :class:`SharedWindows` keeps across views (least recently
#: used first out): the whole-extent pictures of about 4 tensors at the
#: dashboard's default size.
SHARED_BYTES = 32 * 2**20

# JavaScript that turns the cursor's data coordinate into the element range of
# the pixel under it, from the canvas geometry of the current frame (args
# lo, hi, n: window and pixel count along the axis).  It mirrors the kernels'
# rule: element k lands in pixel floor((k + 0.5 - lo) * n / (hi - lo)).
RANGE_JS = """
const s = (hi - lo) / n;
const p = Math.min(n - 1, Math.max(0, Math.floor((value - lo) / s)));
const a = Math.ceil(lo + p * s - 0.5);
const b = Math.ceil(lo + (p + 1) * s - 0.5) - 1;
return a >= b ? String(a) : a + "\u2013" + b;
"""


def immutable_root(matrix):
    """The object owning ``matrix``'s memory when that memory cannot change, else None.

    That is a read-only memory map (how checkpoint files are opened) or a
    read-only ``memoryview`` of one, reached through the buffer's chain of
    ``.base`` objects.  Anything else (numpy arrays, torch tensors, device
    memory) may be written while a view shows it, and gets nothing shared.
    """
    buf = matrix.buffer
    if getattr(matrix, "device", "cpu") != "cpu" or not isinstance(buf, np.ndarray) \
            or buf.flags.writeable:
        return None
    root, seen = buf, 0
    while seen < 64:
        nxt = getattr(root, "base", None)
        if nxt is None and isinstance(root, memoryview):
            nxt = root.obj
        if nxt is None:
            break
        root, seen = nxt, seen + 1
    if isinstance(root, mmap.mmap):
        try:
            with memoryview(root) as mv:
                return root if mv.readonly else None
        except (TypeError, ValueError):  # closed
            return None
    return None


def _matrix_key(matrix) -> tuple:
    """What locates the matrix's elements inside its root's memory."""
    ptr = matrix.buffer.__array_interface__["data"][0]
    return (ptr, matrix.buffer.nbytes, str(matrix.buffer.dtype), matrix.offset, matrix.rows,
            matrix.cols, matrix.decode, matrix.dtype)


class SharedWindows:
    """Results of passes over immutable tensors, shared by every view in the process.

    Entries are keyed by the owner of the tensor's memory (held weakly: an
    entry goes with its memory map), where the tensor sits in it, and the
    question asked (an overview, or a window's planes with the settings that
    shape them).  Planes are kept read-only, least recently used first out
    beyond ``max_bytes``.
    """

    def __init__(self, max_bytes: int = SHARED_BYTES):
        self.max_bytes = max_bytes
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()
        self._entries: OrderedDict = OrderedDict()  # key -> (value, nbytes)
        self._bytes = 0
        self._roots: dict = {}  # id(root) -> weakref(root)

    def key(self, matrix, *question):
        """A key for ``question`` about ``matrix``, or None when its memory may change."""
        root = immutable_root(matrix)
        if root is None:
            return None
        rid = id(root)
        with self._lock:
            ref = self._roots.get(rid)
            if ref is None or ref() is not root:
                self._forget(rid)
                self._roots[rid] = weakref.ref(root, lambda _r, rid=rid: self.forget(rid))
        return (rid, _matrix_key(matrix), *question)

    def get(self, key):
        if key is None:
            return None
        with self._lock:
            hit = self._entries.get(key)
            if hit is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return hit[0]

    def put(self, key, value, nbytes: int = 0) -> None:
        if key is None or nbytes > self.max_bytes:
            return
        with self._lock:
            if key[0] not in self._roots:  # its memory went meanwhile
                return
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            self._entries[key] = (value, nbytes)
            self._bytes += nbytes
            while self._bytes > self.max_bytes and self._entries:
                _, (_, n) = self._entries.popitem(last=False)
                self._bytes -= n

    def forget(self, rid=None) -> None:
        """Drop the entries of one memory owner (``id``), or all."""
        with self._lock:
            self._forget(rid)

    def _forget(self, rid) -> None:
        for k in [k for k in self._entries if rid is None or k[0] == rid]:
            self._bytes -= self._entries.pop(k)[1]
        if rid is None:
            self._roots.clear()
        else:
            self._roots.pop(rid, None)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def nbytes(self) -> int:
        return self._bytes


#: The process's one :class:`SharedWindows`.
SHARED = SharedWindows()


class MatrixView(ZoomView):
    """The state behind one heatmap: the tensor, its colour policy, the last window.

    Build one with :func:`heatmap`; :meth:`element` renders any window as a
    HoloViews ``Image`` and is what the DynamicMap calls on every zoom.

    Attributes
    ----------
    updates : int
        How many windows have been aggregated (each zoom adds one).
    last : dict
        Facts about the last window: ``canvas`` (width, height), ``window``
        ((col0, col1), (row0, row1)), ``cells`` (visible elements), ``bytes``
        (sum of the planes handed to the plot), ``seconds``.
    """

    def __init__(self, tensor, agg="mean", cmap=None, norm="linear", clim=None,
                 layout="auto", backend="auto", nan="mark", hover=HOVER,
                 pixel_ratio: float = 1.0, label: str | None = None):
        self.agg = style.check_choice(agg, "agg", AGGS)
        self.norm = style.check_norm(norm)
        self.nan = style.check_choice(nan, "nan", NAN_MODES)
        self.hover = self._check_hover(hover)
        if not (isinstance(pixel_ratio, (int, float)) and 0 < pixel_ratio <= 4):
            raise ValueError(f"pixel_ratio: expected a number in (0, 4]; got {pixel_ratio!r}")
        self.pixel_ratio = float(pixel_ratio)
        self._clim_given = style.check_clim(clim)
        self.matrix = as_matrix(tensor, layout=layout)
        self.tensor = tensor
        self.layout = layout
        self.backend = backend
        self.rows, self.cols = self.matrix.shape
        self.label = style.label(label or "tensor")   # names are data (style.label)
        super().__init__((700, 500))
        self._cmap_arg = cmap
        self._overview()

    @staticmethod
    def _check_hover(hover) -> tuple[str, ...]:
        if hover is None or hover is False:
            return ()
        hover = (hover,) if isinstance(hover, str) else tuple(hover)
        for h in hover:
            style.check_choice(h, "hover", AGGS)
        return hover

    # -- the colour policy, decided once from the whole tensor --------------------
    def _overview(self) -> None:
        """One pass over the whole tensor at a modest canvas: sign, limits, NaN facts.

        The facts are shared (:data:`SHARED`) by every view of an immutable tensor.
        """
        key = SHARED.key(self.matrix, "overview", self.agg, self.norm)
        facts = SHARED.get(key)
        if facts is None:
            facts = self._overview_facts()
            SHARED.put(key, facts)
        self.total_count, self.total_nonfinite, lo, hi, robust = facts
        self.all_nonfinite = self.total_count == 0
        if self.all_nonfinite:
            warnings.warn(f"{self.label}: every element is NaN or infinite; the heatmap shows "
                          "only the NaN colour", RuntimeWarning, stacklevel=3)
        self.value_range = (lo, hi)
        if self.agg in ("count", "nan_count", "std"):
            self.signed = False
        else:
            self.signed = bool(lo < 0 < hi)
        self.palette = style.check_cmap(self._cmap_arg, self.signed)
        limits = self._clim_given if self._clim_given is not None else robust
        self.clim = limits
        self.linthresh = style.symlog_linthresh(limits) if self.norm == "symlog" else None
        # the colour plane is a separate column only when it differs from a hover column
        self._colour_separate = (self.norm == "symlog" or self.agg not in self.hover
                                 or (self.nan == "mark" and self.total_nonfinite > 0))
        self.hover_fields = self.hover + (("nan_count",) if self.total_nonfinite and
                                          "nan_count" not in self.hover else ())

    def _overview_facts(self) -> tuple:
        """(elements counted, NaN/inf elements, min, max, robust colour limits of ``agg``)."""
        w = max(1, min(self.cols, 512))
        h = max(1, min(self.rows, 512))
        r = self._rasterize(w, h, (0.0, float(self.cols)), (0.0, float(self.rows)))
        total = int(r["count"].sum())
        lo = float(np.nanmin(r["min"])) if total else 0.0
        hi = float(np.nanmax(r["max"])) if total else 0.0
        signed = False if self.agg in ("count", "nan_count", "std") else bool(lo < 0 < hi)
        robust = style.robust_limits(self._plane_of(r, self.agg),
                                     "log" if self.norm == "log" else "linear", signed=signed)
        return total, int(r["nan_count"].sum()), lo, hi, robust

    def _stats_needed(self) -> tuple[str, ...]:
        need = {"count", "nan_count", self.agg, *self.hover}
        order = ("count", "nan_count", "sum", "mean", "min", "max", "extremum", "std")
        return tuple(s for s in order if s in need)

    def _rasterize(self, w, h, xr, yr, stats=None):
        return rasterize(self.matrix, w, h, xr, yr, backend=self.backend, stats=stats)

    @staticmethod
    def _plane_of(r, stat: str) -> np.ndarray:
        return r[stat]

    # -- windows ----------------------------------------------------------------
    def window(self, x_range=None, y_range=None, width=None, height=None):
        """The canvas for a view: the window clipped to the tensor and snapped to
        whole cells, and its pixel size.

        Returns ``None`` when the window misses the tensor.
        """
        width = check_size(width or 700, "width")
        height = check_size(height or 500, "height")
        x0, x1 = (0.0, float(self.cols)) if x_range is None else sorted(map(float, x_range))
        y0, y1 = (0.0, float(self.rows)) if y_range is None else sorted(map(float, y_range))
        x0, x1 = max(0, math.floor(x0)), min(self.cols, math.ceil(x1))
        y0, y1 = max(0, math.floor(y0)), min(self.rows, math.ceil(y1))
        if x1 <= x0 or y1 <= y0:
            return None
        w = min(x1 - x0, max(1, round(width * self.pixel_ratio)))
        h = min(y1 - y0, max(1, round(height * self.pixel_ratio)))
        return (x0, x1), (y0, y1), w, h

    def planes(self, x_range=None, y_range=None, width=None, height=None) -> dict:
        """Aggregate one window: the planes a frame shows, host float arrays.

        Returns a dict with ``window`` (as :meth:`window`) and ``planes``
        (name -> (h, w) array, row 0 = the smallest row index), or ``planes``
        empty when the window misses the tensor.  The planes of an immutable
        tensor's whole extent are shared with other views (:data:`SHARED`)
        and are then read-only.
        """
        t0 = time.perf_counter()
        win = self.window(x_range, y_range, width, height)
        out: dict = {"window": win, "planes": {}}
        shared = False
        if win is not None:
            # the whole tensor is what every page, and every choice of this
            # tensor, shows first; a zoomed window is one session's own
            whole = win[0] == (0, self.cols) and win[1] == (0, self.rows)
            key = None if not whole else SHARED.key(
                self.matrix, "planes", win, self.agg, self.norm, self.nan, self.hover_fields,
                self._colour_separate, self.linthresh)
            planes = SHARED.get(key)
            if planes is None:
                planes = self._planes(win)
                if key is not None:  # shared from now on: nobody may write it
                    for p in planes.values():
                        p.flags.writeable = False
                    SHARED.put(key, planes, sum(p.nbytes for p in planes.values()))
            else:
                shared = True
            out["planes"] = dict(planes)
        self.record({"window": None if win is None else win[:2],
                     "canvas": None if win is None else win[2:],
                     "cells": 0 if win is None else
                     (win[0][1] - win[0][0]) * (win[1][1] - win[1][0]),
                     "bytes": sum(p.nbytes for p in out["planes"].values()),
                     "seconds": time.perf_counter() - t0,
                     "shared": shared})
        return out

    def _planes(self, win) -> dict:
        """The planes of window ``win`` (from :meth:`window`), aggregated now."""
        (x0, x1), (y0, y1), w, h = win
        r = self._rasterize(w, h, (float(x0), float(x1)), (float(y0), float(y1)),
                            stats=self._stats_needed())
        wide = self.matrix.dtype in ("float64", "int64", "uint64", "int32", "uint32")
        ftype = np.float64 if wide else np.float32
        planes = {}
        for name in self.hover_fields:
            planes[name] = r[name].astype(np.float32 if name in ("count", "nan_count")
                                          else ftype, copy=False)
        colour = planes.get(self.agg)
        if colour is None or self._colour_separate:
            colour = r[self.agg].astype(ftype, copy=True)
            if self.nan == "mark" and self.agg not in ("count", "nan_count"):
                colour[r["nan_count"] > 0] = np.nan
            if self.norm == "symlog":
                colour = style.symlog(colour, self.linthresh).astype(ftype)
            return {"colour": colour, **planes}
        return {self.agg: colour, **{k: v for k, v in planes.items() if k != self.agg}}

    def vdims(self) -> list[str]:
        import holoviews as hv

        names = list(self.hover_fields)
        if self._colour_separate or self.agg not in names:
            # a label that names no other column: HoloViews matches dimensions
            # by label too, and "mean" would alias the hover's mean column
            label = f"{self.agg} ({self.norm})"
            return [hv.Dimension("colour", label=label), *names]
        return [self.agg, *[n for n in names if n != self.agg]]

    # -- HoloViews ----------------------------------------------------------------
    def element(self, x_range=None, y_range=None, width=None, height=None):
        """The HoloViews ``Image`` of one window (what each zoom shows)."""
        import holoviews as hv

        res = self.planes(x_range, y_range, width, height)
        vdims = self.vdims()
        names = [getattr(v, "name", v) for v in vdims]
        kdims = ["col", "row"]
        if not res["planes"]:
            # the window misses the tensor: an empty (all-NaN) 1 x 1 image over it
            xr = sorted(x_range) if x_range is not None else (0, 1)
            yr = sorted(y_range) if y_range is not None else (0, 1)
            data = np.full((1, 1, len(vdims)), np.nan, dtype=np.float32)
            if "count" in vdims:
                data[..., names.index("count")] = 0
            bounds = (xr[0], yr[0], xr[1], yr[1])
            self._geometry = (bounds, 1, 1)
            return hv.Image(data, bounds=bounds, kdims=kdims, vdims=vdims, label=self.label)
        (x0, x1), (y0, y1), w, h = res["window"]
        planes = res["planes"]
        # ImageInterface wants the top (largest y) row first; the raster's row 0
        # is the smallest row index.  The plot's y axis is inverted, so row 0
        # ends up at the top of the screen.
        if len(vdims) == 1:
            data = planes[names[0]][::-1].copy()  # a shared plane stays the cache's
        else:
            data = np.dstack([planes[v][::-1] for v in names])
        bounds = (x0, y0, x1, y1)
        self._geometry = (bounds, w, h)
        return hv.Image(data, bounds=bounds, kdims=kdims, vdims=vdims, label=self.label)

    def zoom(self, x_range, y_range, width, height, scale=1.0):
        """The picture of one zoom or resize (the DynamicMap's callback)."""
        return self.element(x_range, y_range, width or self.frame[0], height or self.frame[1])

    def _hook(self, plot, element) -> None:
        """Give the hover's row / column formatters this frame's canvas geometry."""
        prompt_ranges(plot)
        hover = plot.handles.get("hover")
        if hover is None or not getattr(self, "_geometry", None):
            return
        (x0, y0, x1, y1), w, h = self._geometry
        for key, args in (("$x", {"lo": float(x0), "hi": float(x1), "n": int(w)}),
                          ("$y", {"lo": float(y0), "hi": float(y1), "n": int(h)})):
            fmt = hover.formatters.get(key) if isinstance(hover.formatters, dict) else None
            if fmt is not None and dict(fmt.args) != args:
                fmt.args = args

    def opts(self, frame_width: int, frame_height: int) -> dict:
        from bokeh.models import CustomJSHover

        opts = style.colour_opts(self.palette, self.norm,
                                 style.symlog(np.array(self.clim), self.linthresh).tolist()
                                 if self.norm == "symlog" else self.clim)
        if getattr(self, "_geometry", None) is None:
            (x0, x1), (y0, y1), w, h = self.window(width=frame_width, height=frame_height)
        else:
            (x0, y0, x1, y1), w, h = self._geometry
        tips = [("rows", "$y{custom}"), ("cols", "$x{custom}")]
        for name in self.hover_fields:
            label = {"count": "elements", "nan_count": "NaN/inf"}.get(name, name)
            tips.append((label, f"@{{{name}}}"))
        formatters = {"$x": CustomJSHover(args={"lo": float(x0), "hi": float(x1), "n": int(w)},
                                          code=RANGE_JS),
                      "$y": CustomJSHover(args={"lo": float(y0), "hi": float(y1), "n": int(h)},
                                          code=RANGE_JS)}
        opts.update(dict(frame_width=frame_width, frame_height=frame_height,
                         invert_yaxis=True, tools=["hover"], hover_tooltips=tips,
                         hover_formatters=formatters, hooks=[weak_hook(self._hook)],
                         xlabel="column", ylabel="row", title=self.title(),
                         active_tools=["wheel_zoom"], lod=dict(ZOOM_LOD)))
        if self.norm == "symlog":
            opts["colorbar_opts"] = {"formatter": style.symlog_tick_formatter(self.linthresh)}
        return opts

    def title(self) -> str:
        shape = "x".join(str(s) for s in getattr(self.tensor, "shape", (self.rows, self.cols)))
        t = f"{self.label} [{shape}, {self.matrix.dtype}] {self.agg}"
        if self.norm != "linear":
            t += f", {self.norm}"
        if self.all_nonfinite:
            t += " - all values NaN/inf"
        elif self.total_nonfinite:
            t += f" - {self.total_nonfinite:,} NaN/inf"
        return t


def prompt_ranges(plot, element=None) -> None:
    """Pace a served plot's zooms: each as soon as its range arrives, one picture in flight.

    - HoloViews waits until no range event came for 100 ms before it calls
      the view (``RangeXYCallback.debounce``); BokehJS already sends a
      zoom's range only once the wheel rests (:data:`ZOOM_LOD`), so that
      wait only delayed every picture: it is dropped.
    - The next zoom of a session is computed only once its browser has
      taken the previous picture off the server's socket (at most
      :data:`PACE_MAX_S`): a browser slower than the server (a busy
      machine, a slow link, many open pages) otherwise got every picture
      the server could make, queued them, and fell further behind with each
      wheel turn.  The range events that arrive meanwhile are merged by
      HoloViews, so only the latest range is computed, and the last one
      always is.

    A plot hook (``plot``, ``element``); it changes nothing outside a Bokeh
    server session.
    """
    for cb in getattr(plot, "callbacks", None) or ():
        if type(cb).__name__ != "RangeXYCallback":
            continue
        if getattr(cb, "debounce", None) is not None:
            cb.debounce = None
        if not getattr(cb, "_dlviz_paced", False) and hasattr(cb, "process_on_event"):
            cb._dlviz_paced = True
            cb.process_on_event = _paced(cb, cb.process_on_event)


#: the longest a session's next zoom waits for its browser to take the last picture
PACE_MAX_S = 10.0
#: how often the wait looks at the socket
PACE_POLL_S = 0.02


def _paced(cb, process):
    """``process`` (HoloViews' ``process_on_event``) run once ``cb``'s browser took the last picture."""
    import asyncio

    async def process_on_event(*args, **kwargs):
        deadline = time.monotonic() + PACE_MAX_S
        while time.monotonic() < deadline and receiving(getattr(cb, "plot", None)):
            await asyncio.sleep(PACE_POLL_S)
        return await process(*args, **kwargs)

    return process_on_event


def receiving(plot) -> bool:
    """Whether the browser of a served plot's session has not yet taken all the server sent.

    That is whether the server still holds bytes of a message to it (Tornado
    writes as fast as the browser reads; Chromium reads a websocket only as
    fast as its page handles the messages).  False outside a server session.
    """
    doc = getattr(plot, "document", None)
    try:
        session = doc.session_context._session
        for conn in list(session._subscribed_connections):
            stream = conn._socket.ws_connection.stream
            if stream is not None and stream.writing():
                return True
    except AttributeError:  # no session, a closed connection, another server
        return False
    return False


def weak_hook(method):
    """A plot hook calling ``method`` while its object lives, without keeping it alive.

    HoloViews keeps options (hooks included) in process-wide registries and
    caches that outlive a view; a bound method there would keep the view,
    its tensor and that tensor's memory map for as long.
    """
    ref = weakref.WeakMethod(method)

    def hook(plot, element):
        bound = ref()
        if bound is not None:
            bound(plot, element)

    return hook


def heatmap(tensor, agg: str = "mean", cmap=None, norm: str = "linear", clim=None, *,
            layout: str = "auto", backend: str = "auto", width: int = 700, height: int = 500,
            nan: str = "mark", hover=HOVER, pixel_ratio: float = 1.0,
            label: str | None = None, dynamic: bool = True):
    """A zoomable heatmap of a matrix that re-aggregates the visible window on zoom.

    Parameters
    ----------
    tensor : (R, C) array_like, or 1-D / 4-D with ``layout``
        Anything :func:`dlviz_gpu.rasterize` takes, read in place.
    agg : {"mean", "min", "max", "extremum", "std", "count", "nan_count"}
        The per-pixel statistic coloured.  ``extremum`` is the element of
        largest magnitude, sign kept: the one to spot outlier weights.
    cmap : str or list of str, optional
        A colorcet palette name or a list of colours.  Default: ``coolwarm``
        (diverging, centred at 0) for signed data, ``bmy`` otherwise.
    norm : {"linear", "log", "symlog", "eq_hist"}
        Colour normalisation.  ``symlog`` is linear within 1/1000 of the
        limit and logarithmic beyond, with real values on the colour bar.
    clim : (float, float), optional
        Colour limits.  Default: robust limits from an overview of the whole
        tensor (symmetric about 0 for signed data: the 99.5th percentile of
        |v|), fixed across zooms so a colour means the same everywhere.
    layout : {"auto", "mosaic", "flatten", "stack"}
        How non-2-D tensors become a matrix (conv weights: a mosaic of kernels).
    backend : {"auto", "cpu", "cuda"}
        Where the kernels run (default: where the data lives).
    width, height : int
        Plot frame size in screen pixels (the initial canvas).
    nan : {"mark", "ignore"}
        ``"mark"``: a pixel holding any NaN / inf element takes the NaN colour
        (bright green), so a single bad value stays visible at any zoom;
        ``"ignore"``: only pixels with no finite element do.  The hover shows
        the finite statistics and the NaN/inf count either way.
    hover : sequence of str or None
        Statistics shown on hover, besides the pixel's row and column range.
    pixel_ratio : float
        Canvas pixels per screen pixel (2 for a sharp picture on a HiDPI
        screen, at 4x the work and bytes per zoom).
    label : str, optional
        Name shown in the title and legend.
    dynamic : bool
        ``True`` (default): a ``DynamicMap`` that re-aggregates on every zoom
        and resize.  ``False``: one ``Image`` of the whole tensor at the frame
        size (what :func:`dlviz_gpu.save` writes to a static HTML page).

    Returns
    -------
    holoviews.DynamicMap or holoviews.Image
        Composes with ``+`` and ``*``.  ``.view`` (set on the DynamicMap) is
        the :class:`MatrixView` with the update counter and the last window.
    """
    style.ensure_bokeh()
    width = check_size(width, "width")
    height = check_size(height, "height")
    view = MatrixView(tensor, agg=agg, cmap=cmap, norm=norm, clim=clim, layout=layout,
                      backend=backend, nan=nan, hover=hover, pixel_ratio=pixel_ratio,
                      label=label)
    view.frame = (width, height)
    if not dynamic:
        img = view.element(width=width, height=height)
        return img.opts(backend="bokeh", **view.opts(width, height))
    return view.dynamic(view.opts(width, height))
