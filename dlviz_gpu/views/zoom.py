"""What every zoomable view shares: its zoom state and its DynamicMap.

A zoomable view (:class:`~.matrix.MatrixView`, :class:`~.points.PointsView`,
:class:`~.series.CurveView`, :class:`~.surface.SurfaceView`,
:class:`~.trees.TreeView`) is a :class:`ZoomView`: it keeps

``updates``
    how many windows it has answered (tests and benchmarks read it);
``last``
    what the last answer covered (window, canvas, bytes, seconds, ...),
    replaced as a whole under a lock by :meth:`ZoomView.record`, since a
    Bokeh server may call a view from several threads;
``frame``
    the plot frame in screen pixels, the canvas when the browser has not
    said its size yet;

and each one says only what differs: :meth:`ZoomView.zoom`, the picture for
one event of its streams (``STREAMS``: ``RangeXY`` and ``PlotSize`` unless
the view needs less).  :meth:`ZoomView.dynamic` wires the DynamicMap the same
way for all of them: one frame kept (HoloViews' default of 500 would keep
every zoom's planes for the session's life, and a zoomed range is never asked
twice), the view's options applied, and the view reachable as ``dmap.view``.
"""

from __future__ import annotations

import threading

from . import style

__all__ = ["ZoomView"]


class ZoomView:
    """Base of the zoomable views; see the module docstring.

    Parameters
    ----------
    frame : (int, int)
        The plot frame (width, height) in screen pixels.
    """

    #: the HoloViews streams a zoom event comes from (names in ``holoviews.streams``)
    STREAMS: tuple[str, ...] = ("RangeXY", "PlotSize")

    def __init__(self, frame: tuple[int, int]):
        self.updates = 0
        self.last: dict = {}
        self._lock = threading.Lock()
        self.frame = (int(frame[0]), int(frame[1]))

    def record(self, last: dict) -> None:
        """Count one answered window and keep what it covered (thread-safe)."""
        with self._lock:
            self.updates += 1
            self.last = last

    def zoom(self, **stream_values):
        """The HoloViews element for one event of :attr:`STREAMS` (the DynamicMap's callback)."""
        raise NotImplementedError

    def dynamic(self, opts: dict | None = None):
        """A DynamicMap that answers every zoom (and resize) with :meth:`zoom`.

        Parameters
        ----------
        opts : dict, optional
            Bokeh options for the DynamicMap (frame size, tools, title, ...).

        Returns
        -------
        holoviews.DynamicMap
            With ``.view`` set to this view.
        """
        hv = style.ensure_bokeh()
        streams = [getattr(hv.streams, name)() for name in self.STREAMS]
        dmap = hv.DynamicMap(self.zoom, streams=streams, cache_size=1)
        if opts:
            dmap = dmap.opts(backend="bokeh", **opts)
        dmap.view = self
        return dmap
