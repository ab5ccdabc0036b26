"""Getting views out: ``dv.save`` (standalone HTML, PNG) and ``dv.serve`` (Bokeh server).

A static HTML page has no Python behind it, so a zoomable view is saved as its
first frame: a fixed raster at the full canvas (zooming the page magnifies
those pixels; it does not re-aggregate).  A PNG is drawn without a browser by
HoloViews' matplotlib backend, with the same palettes, limits and
normalisation as the interactive view.  ``serve`` runs a real Bokeh server
(through Panel) in a background thread, where every zoom re-aggregates.

A served page never shows a traceback: when building a session's page or
handling one of its events fails, the browser gets one short line with a
reference, and the server's log (the ``dlviz_gpu.serve`` logger) gets the
traceback under the same reference.  Panel's default puts the traceback,
with the server's paths, on the page; Bokeh's sends it over the websocket.
"""

from __future__ import annotations

import logging
import queue
import re
import secrets
import socket
import sys
import threading
import weakref
from pathlib import Path

from ..names import display

#: The logger that gets the details of a page or event that failed.
log = logging.getLogger("dlviz_gpu.serve")
#: What the browser shows when its page cannot be built ({ref}: the log's reference).
PAGE_FAILED = ("This page could not be built. The server's log has the details "
               "(reference {ref}).")
#: What the browser shows when one of its events (a click, a choice) fails.
EVENT_FAILED = ("That action failed; the page may be out of date. The server's log has the "
                "details (reference {ref}).")
#: The text of a websocket error reply (Bokeh's own has the traceback).
MESSAGE_FAILED = "the server could not handle a message (reference {ref})"

# options that mean the same in HoloViews' bokeh and matplotlib backends
_PORTABLE = ("cmap", "clim", "cnorm", "colorbar", "invert_yaxis", "invert_xaxis",
             "logx", "logy", "title", "xlabel", "ylabel", "color", "alpha",
             "line_width", "line_dash", "show_legend", "xlim", "ylim", "ylim",
             "xticks", "yticks", "fill_alpha", "clipping_colors", "invert_axes",
             "xrotation", "yrotation", "legend_position", "line_alpha", "fill_color")
_RENAME = {"line_width": "linewidth", "line_dash": "linestyle", "fill_alpha": "alpha",
           "fill_color": "facecolor"}
_DASH = {"dashed": "--", "dotted": ":", "solid": "-", "dashdot": "-."}


def _static(obj):
    """The object with every DynamicMap replaced by its current frame."""
    import holoviews as hv

    if isinstance(obj, hv.DynamicMap):
        return _static(obj[()])
    if isinstance(obj, (hv.Layout, hv.NdLayout, hv.GridSpace, hv.HoloMap, hv.Overlay,
                        hv.NdOverlay)):
        return obj.clone({k: _static(v) for k, v in obj.data.items()})
    return obj


def _mpl_options(el) -> dict:
    """The element's bokeh options that matplotlib understands, renamed."""
    import holoviews as hv

    out = {}
    for group in ("plot", "style"):
        try:
            opts = hv.Store.lookup_options("bokeh", el, group).kwargs
        except Exception:  # an element type without bokeh options
            continue
        for key, value in opts.items():
            if key not in _PORTABLE or value is None:
                continue
            if key == "cmap" and isinstance(value, (list, tuple)):
                from matplotlib.colors import ListedColormap

                value = ListedColormap(list(value))
            if key == "line_dash":
                value = _DASH.get(value, value)
            out[_RENAME.get(key, key)] = value
    plot_kw = hv.Store.lookup_options("bokeh", el, "plot").kwargs
    fw = plot_kw.get("frame_width") or plot_kw.get("width")
    fh = plot_kw.get("frame_height") or plot_kw.get("height")
    if fw and fh:
        out["aspect"] = fw / fh
        out["fig_inches"] = (fw / 100 + 2, fh / 100 + 1)
    out["fontsize"] = {"title": 9}
    return out


def _frame_inches(obj) -> tuple[float, float]:
    """Width and height in inches one panel needs (its frame plus axes)."""
    import holoviews as hv

    el = next(iter(obj.traverse(lambda e: e, [hv.Element])), None)
    if el is None:
        return (7.0, 5.0)
    kw = hv.Store.lookup_options("bokeh", el, "plot").kwargs
    fw = kw.get("frame_width") or kw.get("width") or 600
    fh = kw.get("frame_height") or kw.get("height") or 400
    return (fw / 100 + 2.2, fh / 100 + 1.3)


def _apply_mpl(o, opts: dict):
    """``o.opts(backend="matplotlib", **opts)``, dropping what its type rejects."""
    import holoviews as hv

    try:
        return o.opts(backend="matplotlib", clone=True, **opts)
    except Exception:
        allowed = hv.Store.options(backend="matplotlib")
        keys = set()
        if type(o).__name__ in allowed:
            node = allowed[type(o).__name__]
            for group in ("plot", "style"):
                keys |= set(node.groups.get(group, hv.Options()).allowed_keywords or ())
        return o.opts(backend="matplotlib", clone=True,
                      **{k: v for k, v in opts.items() if k in keys})


def _to_matplotlib(obj):
    """A static object with the portable options copied to the matplotlib backend."""
    import holoviews as hv

    if isinstance(obj, (hv.Layout, hv.NdLayout)):
        out = obj.clone({k: _to_matplotlib(v) for k, v in obj.data.items()})
        n = len(out)
        cols = min(n, getattr(out, "_max_cols", 4) or 4)
        rows = -(-n // cols)
        w, h = _frame_inches(out)
        return out.opts(backend="matplotlib", sublabel_format="", fig_inches=(w * cols, h * rows))
    if isinstance(obj, (hv.Overlay, hv.NdOverlay)):
        out = obj.clone({k: _to_matplotlib(v) for k, v in obj.data.items()})
        opts = _mpl_options(obj)
        if "fig_inches" not in opts:
            opts["fig_inches"] = _frame_inches(obj)
        return _apply_mpl(out, opts)
    if isinstance(obj, hv.Element):
        return _apply_mpl(obj, _mpl_options(obj))
    return obj


def save(obj, path, *, title: str | None = None, dpi: int = 100) -> Path:
    """Write a view to a standalone HTML page or a PNG image.

    Parameters
    ----------
    obj : HoloViews object (a view, or views composed with ``+`` / ``*``)
    path : str or Path
        ``*.html``: a self-contained page (Bokeh's JavaScript inline, no
        server): hover and pan work, but a zoomable view is saved as a fixed
        raster at its full canvas; a HoloMap (e.g. :func:`weight_evolution`)
        keeps every frame, with a slider.  ``*.png``: an image drawn without a
        browser (HoloViews' matplotlib backend, same colours and limits).
    title : str, optional
        Page title of the HTML file.
    dpi : int
        PNG resolution.

    Returns
    -------
    pathlib.Path
        The file written.
    """
    import holoviews as hv

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".html", ".png"):
        raise ValueError(f"path: expected a file name ending in .html or .png; got {str(path)!r}")
    if not isinstance(obj, hv.core.dimension.ViewableElement) and not isinstance(
            obj, (hv.DynamicMap, hv.Layout, hv.Overlay, hv.HoloMap, hv.NdLayout, hv.GridSpace)):
        raise TypeError(f"obj: expected a HoloViews object (a dlviz view); got {type(obj).__name__}")
    if not path.parent.exists():
        raise FileNotFoundError(f"path: the folder {str(path.parent)!r} does not exist")
    if suffix == ".html":
        _ensure_extension("bokeh")
        from bokeh.embed import file_html
        from bokeh.resources import INLINE

        if _has_frames(obj):
            return _save_frames(_static(obj), path, display(title or path.stem, exact=False))
        plot = hv.renderer("bokeh").get_plot(_static(obj))
        # HoloViews attaches the plot to bokeh's global curdoc(), which would
        # keep it (and its planes) alive after the file is written
        plot.document = None
        html = file_html(plot.state, INLINE, display(title or path.stem, exact=False))
        html = standalone(html)
        path.write_text(html, encoding="utf-8")
        return path
    _ensure_extension("bokeh")
    static = _static(obj)  # evaluated while the views' own (bokeh) options are current
    _ensure_extension("matplotlib")
    import matplotlib

    matplotlib.use("Agg", force=False)
    renderer = hv.renderer("matplotlib").instance(dpi=dpi, fig="png")
    data, _info = renderer(_to_matplotlib(static), fmt="png")
    path.write_bytes(data)
    _forget_colorbars()
    return path


def _has_frames(obj) -> bool:
    """Whether ``obj`` holds a HoloMap with key dimensions (frames behind a slider)."""
    import holoviews as hv

    if isinstance(obj, hv.DynamicMap):
        return False
    if isinstance(obj, hv.HoloMap) and obj.kdims and len(obj) > 1:
        return True
    if isinstance(obj, (hv.Layout, hv.NdLayout, hv.GridSpace, hv.Overlay, hv.NdOverlay)):
        return any(_has_frames(v) for v in obj.data.values())
    return False


def _save_frames(obj, path: Path, title: str) -> Path:
    """A page with every frame embedded and a slider per key dimension (no server)."""
    import panel as pn
    from bokeh.resources import INLINE

    pane = pn.pane.HoloViews(obj, widget_location="bottom")
    pane.save(str(path), embed=True, resources=INLINE, title=title, progress=False)
    html = _inline_panel_css(path.read_text(encoding="utf-8"))
    path.write_text(standalone(html), encoding="utf-8")
    return path


_PANEL_SHEET = re.compile(
    r'\{"type":"object","name":"ImportedStyleSheet","id":"([^"]+)","attributes":\{"url":'
    r'"https://cdn\.holoviz\.org/panel/[^/"]+/dist/([^"?]+)(?:\?[^"]*)?"\}\}')


def _inline_panel_css(html: str) -> str:
    """Panel's style sheets, which its pages import from its CDN, written into the page."""
    import json

    import panel

    dist = Path(panel.__file__).parent / "dist"

    def inline(m):
        f = dist / m.group(2)
        css = f.read_text(encoding="utf-8") if f.is_file() else ""
        text = json.dumps(css).replace("</", "<\\/")      # never close the script early
        return ('{"type":"object","name":"InlineStyleSheet","id":"%s","attributes":{"css":%s}}'
                % (m.group(1), text))
    return _PANEL_SHEET.sub(inline, html)


def standalone(html: str) -> str:
    """``html`` without the script and style sheet files it links.

    With INLINE resources everything a plot needs is in the page itself; the
    linked files are what Panel registers once imported (a relative static/
    script of ES module shims, CDN style sheets of widgets such as Tabulator
    after a dashboard was built), which an offline page cannot load.
    """
    html = re.sub(r'<script[^>]*\ssrc="[^"]*"[^>]*>\s*</script>\s*', "", html)
    html = re.sub(r'<link[^>]*\srel="(?:icon|apple-touch-icon)"[^>]*>\s*', "", html)
    return re.sub(r'<link[^>]*\srel="stylesheet"[^>]*>\s*', "", html)


def _forget_colorbars() -> None:
    """Drop HoloViews' class-level registry of matplotlib colour bars.

    ``ColorbarPlot._colorbars`` maps axes to their colour bars so a layout can
    share them and is never emptied: each PNG would keep its figure alive.
    """
    mpl = sys.modules.get("holoviews.plotting.mpl.element")
    bars = getattr(getattr(mpl, "ColorbarPlot", None), "_colorbars", None)
    if isinstance(bars, dict):
        bars.clear()


def _ensure_extension(backend: str) -> None:
    import holoviews as hv

    if backend == "bokeh":
        import holoviews.plotting.bokeh  # noqa: F401 - registers the backend
    else:
        try:
            import holoviews.plotting.mpl  # noqa: F401
        except ImportError as err:  # pragma: no cover - matplotlib is a dependency
            raise RuntimeError("PNG output needs matplotlib: pip install matplotlib") from err
    if hv.Store.current_backend not in hv.Store.renderers:
        hv.Store.set_current_backend(backend)


class ServerURL(str):
    """The URL of a running server (a ``str``), with :meth:`stop`."""

    server = None
    thread = None

    def stop(self) -> None:
        """Stop the server and its thread."""
        if self.server is not None:
            loop = self.server.io_loop
            loop.add_callback(self.server.stop)
            loop.add_callback(loop.stop)
            if self.thread is not None:
                self.thread.join(timeout=10)


def _check_port(port) -> int:
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"port: expected an integer in 0..65535 (0 picks a free one); got "
                         f"{port!r}")
    return port


def serve(obj, port: int = 0, address: str = "127.0.0.1", show: bool = False, *,
          allow_websocket_origin=None, title: str = "dlviz") -> ServerURL:
    """Serve views on a Bokeh server running in a background thread.

    Parameters
    ----------
    obj : HoloViews object, Panel object, or dict of route -> either
        What to serve.  A dict serves each value at its own path
        (``{"weights": heatmap, "loss": curve}`` -> ``/weights``, ``/loss``).
    port : int
        0 (default) picks a free port.
    address : str
        Interface to bind.  Default ``127.0.0.1`` (this machine only); any
        other address needs ``allow_websocket_origin``.
    show : bool
        Open the page in the default browser.
    allow_websocket_origin : list of str, optional
        ``host:port`` origins allowed to connect besides this machine.

    Returns
    -------
    ServerURL
        The page's URL (the first route for a dict); ``.stop()`` stops it.
    """
    import panel as pn
    from panel.io.server import get_server
    from tornado.ioloop import IOLoop

    port = _check_port(port)
    if not isinstance(address, str) or not address:
        raise ValueError(f"address: expected an interface address such as '127.0.0.1'; got "
                         f"{address!r}")
    local = address in ("127.0.0.1", "localhost", "::1")
    if not local and not allow_websocket_origin:
        raise ValueError(f"allow_websocket_origin: serving on {address!r} exposes the server "
                         "beyond this machine; name the origins browsers will use "
                         "(e.g. ['myhost:5006'])")
    if isinstance(obj, dict):
        if not obj:
            raise ValueError("obj: expected at least one route; got an empty dict")
        routes = {str(k).strip("/") or "index": _servable(v, pn) for k, v in obj.items()}
        first = next(iter(routes))
    else:
        routes = {"": _servable(obj, pn)}
        first = ""
    if port == 0:
        # a free port now, so the allowed websocket origins can name it
        with socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET) as s:
            s.bind((address, 0))
            port = s.getsockname()[1]
    origins = list(allow_websocket_origin or [])
    if local:
        origins += [f"127.0.0.1:{port}", f"localhost:{port}"]
    made: queue.Queue = queue.Queue()

    def run():
        loop = IOLoop()
        try:
            target = routes[""] if list(routes) == [""] else routes
            server = get_server(target, port=port, address=address, loop=loop, start=False,
                                show=False, title=display(title, limit=200, exact=False),
                                websocket_origin=origins)
            _quiet_replies(server)
            server.start()
        except BaseException as err:  # hand the failure to the caller's thread
            made.put(err)
            return
        made.put(server)
        loop.start()
        loop.close(all_fds=False)

    thread = threading.Thread(target=run, name="dlviz-server", daemon=True)
    thread.start()
    server = made.get(timeout=60)
    if isinstance(server, BaseException):
        raise RuntimeError(f"could not start the server on {address}:{port}: {server}") from server
    host = "127.0.0.1" if address in ("0.0.0.0", "::") else address
    url = ServerURL(f"http://{host}:{server.port}/{first}")
    url.server, url.thread = server, thread
    if show:
        import webbrowser

        webbrowser.open(url)
    return url


def _servable(obj, pn):
    """A function building one session's page, safely (see :func:`safe_page`)."""
    if callable(obj) and not hasattr(obj, "opts"):
        return safe_page(obj)  # a function building a fresh page per session
    return safe_page(lambda: obj)


def _reference() -> str:
    """A short random reference that ties what a browser shows to the log's details."""
    return secrets.token_hex(4)


def _failure(pn, text: str):
    """The one short line a browser shows instead of what failed."""
    return pn.pane.Alert(text, alert_type="danger", sizing_mode="stretch_width")


def safe_page(build):
    """Wrap a page-building function so that no failure reaches the browser as a traceback.

    Parameters
    ----------
    build : callable
        Called once per browser session, returns what to show (a Panel or
        HoloViews object).

    Returns
    -------
    callable
        The function to serve.  When ``build`` raises, or drawing what it
        returned raises, the page is one line (:data:`PAGE_FAILED`) and the
        traceback goes to the ``dlviz_gpu.serve`` logger; when an event of
        the session raises (a widget's callback, a periodic update), the
        page keeps working with a line (:data:`EVENT_FAILED`) pinned to the
        bottom of the window, and the traceback goes to the log.

    Notes
    -----
    The page is what ``build`` returned, not a layout around it: Panel lays
    out a page wrapped in one more Column differently (plots in hidden tabs
    of a run dashboard were never sized, and the document never became
    idle).  Drawing is guarded on the object itself (its ``server_doc``),
    and the event line is a second root of the session's document.
    """
    def page():
        import panel as pn

        try:
            obj = build()
            if not isinstance(obj, pn.viewable.Viewable):
                obj = pn.panel(obj)
        except Exception:  # noqa: BLE001 - the log gets it, the browser one line
            return _failure(pn, PAGE_FAILED.format(ref=_logged("building a page")))
        _guard_drawing(obj, pn)
        doc = pn.state.curdoc
        # a weak reference: Panel keeps the handler in a dict keyed weakly by
        # this document, which a strong one would keep alive after the session
        doc_ref = weakref.ref(doc) if doc is not None else (lambda: None)
        # set inside the session (Panel keeps config per document when one is
        # current): events of this page only, not of any other server or page
        pn.config.exception_handler = lambda err: _event_failed(pn, doc_ref(), err)
        return obj
    return page


def _logged(what: str, exc_info=True) -> str:
    ref = _reference()
    log.error("dlviz: %s failed (reference %s)", what, ref, exc_info=exc_info)
    return ref


def _guard_drawing(obj, pn) -> None:
    """Make ``obj.server_doc`` (what Panel calls to draw a session's page) fail as one line.

    Panel's own handler would put the traceback on the page.  Only this
    object is changed (an instance attribute), once, however many sessions
    draw it.
    """
    if getattr(obj, "_dlviz_guarded", False):
        return
    draw = obj.server_doc

    def server_doc(doc=None, title=None, location=True):
        try:
            return draw(doc, title, location)
        except Exception:  # noqa: BLE001 - drawing the page failed (a view, a pane)
            ref = _logged("drawing a page")
            if doc is not None:
                for root in list(doc.roots):
                    doc.remove_root(root)
            return _failure(pn, PAGE_FAILED.format(ref=ref)).server_doc(doc, title, location)

    obj.server_doc = server_doc
    obj._dlviz_guarded = True


#: where the event line sits: pinned to the bottom of the window, over the page, letting
#: clicks through to what it covers (the page keeps working)
_PINNED = {"position": "fixed", "bottom": "8px", "left": "8px", "right": "8px",
           "z-index": "1000", "pointer-events": "none", "opacity": "0.95"}


def _event_failed(pn, doc, err: BaseException) -> None:
    """Log an event's failure and show its line (with the reference) on the session's page."""
    ref = _logged("an event of a page", exc_info=(type(err), err, err.__traceback__))
    text = EVENT_FAILED.format(ref=ref)
    if doc is None:  # the session has ended: the log has it
        return

    def show() -> None:
        alert = getattr(doc, "_dlviz_event_line", None)
        if alert is not None:
            alert.object = text
            return
        alert = pn.pane.Alert(text, alert_type="danger", styles=_PINNED)
        # the document holds its own line (no registry here that would outlive the session)
        doc._dlviz_event_line = alert
        alert.server_doc(doc, location=False)

    if doc.session_context is None:     # a document outside a server: change it now
        show()
    else:
        # Panel hands over failures of its event coroutines, which may run without the
        # document's lock (under load they do); a change of the document then raises in
        # Bokeh and the line never shows.  The next tick runs with the lock.
        doc.add_next_tick_callback(show)


def _quiet_replies(server) -> None:
    """Make ``server`` answer a message it failed to handle without the traceback.

    Bokeh replies to a websocket message whose handling raised with an
    ``ERROR`` message holding the exception and its traceback (paths of the
    server included), which BokehJS prints in the browser's console; here
    the reply holds a reference and the log the details.  Only this server
    is changed (its connection factory), no class of Bokeh's.
    """
    tornado = getattr(server, "_tornado", None)
    make = getattr(tornado, "new_connection", None)
    if make is None:  # pragma: no cover - a Bokeh without the hook: its own replies
        return

    def new_connection(*args, **kwargs):
        conn = make(*args, **kwargs)
        conn.error = lambda message, text: _error_reply(message, text)
        return conn

    tornado.new_connection = new_connection


def _error_reply(message, text: str):
    from bokeh.protocol.messages.error import error

    # Bokeh's handler has logged the exception's repr; the traceback comes here
    ref = _logged("handling a browser message")
    header = error.create_header(request_id=message.header["msgid"])
    return error(header, {}, {"text": MESSAGE_FAILED.format(ref=ref), "traceback": None})


__all__ = ["save", "serve", "safe_page", "ServerURL"]
