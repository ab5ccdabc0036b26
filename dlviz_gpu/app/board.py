"""What every dashboard shares: serving its page, and the note a pane shows instead of a view.

A board (:class:`~dlviz_gpu.app.dashboard.Dashboard`,
:class:`~dlviz_gpu.app.runs.RunBoard`,
:class:`~dlviz_gpu.app.estimators.EstimatorBoard`) holds what browser
sessions share and builds one fresh page per session with ``page()``.

A served page's views are released when its browser session ends
(:meth:`Board.session_page`): HoloViews keeps every view's options in a
process-wide registry (``Store._custom_options``) that is emptied only when
the view is garbage collected, and an option that refers back to its view (a
plot hook that is a bound method of the view's state) makes the pair
uncollectable.  Each such page would keep its views, their planes and the
session's widgets for the life of the server.
"""

from __future__ import annotations

import functools
import gc
import html
import sys
import threading
import weakref

__all__ = ["Board", "note", "release_views", "name_select"]

#: seconds between a session's end and the collection that returns its memory
#: (several sessions closing together share one collection)
COLLECT_DELAY_S = 2.0
#: while a board is served, every CHECK_EVERY_S its process's own (anonymous)
#: memory is read, and when it grew by GARBAGE_BYTES since the last collection
#: the garbage collector runs and the heap is trimmed (see :class:`_Reclaimer`)
CHECK_EVERY_S = 2.0
GARBAGE_BYTES = 256 * 2**20


class Board:
    """Base of the dashboards: subclasses set ``title`` and define ``page()``.

    ``page()`` builds every view of a page anew for each session (nothing a
    page shows is shared with another session), so :meth:`session_page` can
    release a page's views when its session ends.
    """

    title: str

    def page(self):  # pragma: no cover - every board defines it
        raise NotImplementedError

    def session_page(self):
        """``page()`` for one served session, its views released when the session ends.

        Outside a served session (a notebook, a test) this is ``page()``.
        Within one, the HoloViews option trees of the page's views (those made
        while building it, and those it shows when the session ends) are
        dropped from HoloViews' registry when Bokeh destroys the session
        (15-32 s after its browser tab closed, Bokeh's default), unless a
        still open session shows the same view; then the garbage collector
        runs and freed heap memory is given back to the system.
        """
        import panel as pn

        before = _custom_ids()
        page = self.page()
        made = _custom_ids() - before
        doc = pn.state.curdoc
        if doc is None or getattr(doc, "session_context", None) is None:
            return page
        live = self.__dict__.setdefault("_live_pages", weakref.WeakValueDictionary())
        key = id(doc)
        holder = _Page(page, made)
        live[key] = holder

        doc_ref = weakref.ref(doc)

        def destroyed(_session_context, holder=holder, key=key, live=live):
            live.pop(key, None)
            _forget_session_config(doc_ref())
            shown_elsewhere = set()
            for other in list(live.values()):
                shown_elsewhere |= view_ids(other.page)
            release_views((holder.made | view_ids(holder.page)) - shown_elsewhere)
            holder.page = None
            _collect_soon()

        doc.on_session_destroyed(destroyed)  # the document holds the page's holder
        return page

    def serve(self, port: int = 0, address: str = "127.0.0.1", show: bool = False, *,
              allow_websocket_origin=None, warm: bool = True):
        """Serve the dashboard (see :func:`dlviz_gpu.serve`); returns the URL with ``.stop()``.

        ``warm=True`` (default) requests the page once before returning
        (:meth:`warm_page`), so that the server's one-time work for a page
        is done before anyone opens it.
        """
        from ..views.output import serve

        url = serve(self.session_page, port=port, address=address, show=False,
                    allow_websocket_origin=allow_websocket_origin, title=f"dlviz: {self.title}")
        _trim_while_serving(url)
        if warm:
            self.warm_page(url)
        if show:
            import webbrowser

            webbrowser.open(url)
        return url

    def warm_page(self, url: str, timeout_s: float = 300.0) -> float | None:
        """Request the served page once, as a browser's first request would.

        The server builds and renders a whole page, so what only the first
        page of a process needs (the modules its widgets and plots import,
        the kernels it compiles, the tensor pages it reads) is done now and
        not while a person waits; the session this makes has no browser and
        ends like any unused one.  Proxies are bypassed (the server is local).

        Returns
        -------
        float or None
            Seconds the request took, or None when it failed (nothing else
            happens: the first visitor then waits for that work).
        """
        import time
        import urllib.request

        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        t0 = time.perf_counter()
        try:
            with opener.open(str(url), timeout=timeout_s) as resp:
                resp.read()
        except Exception:  # noqa: BLE001 - a warm-up, never a reason to fail serving
            return None
        return time.perf_counter() - t0

def _forget_session_config(doc) -> None:
    """Drop Panel's per-session settings of ``doc`` (``pn.config`` set inside the session).

    Panel keeps them in a ``WeakKeyDictionary`` keyed by the document; a value
    that refers to the page (an ``exception_handler`` that is a method of a
    page object) keeps them, and the page, as long as anything else holds the
    destroyed document, e.g. the context of a task Panel started inside that
    session.
    """
    if doc is None:
        return
    import panel as pn

    configs = getattr(type(pn.config), "_session_config", None)
    if configs is not None:
        try:
            configs.pop(doc, None)
        except TypeError:  # not weakly referenceable: never stored
            pass


class _Page:
    """A served page and the option ids made while building it (held weakly by the board)."""

    __slots__ = ("page", "made", "__weakref__")

    def __init__(self, page, made):
        self.page = page
        self.made = made


def _custom_ids() -> set:
    """The ids of every custom option tree HoloViews holds now (all backends)."""
    store = sys.modules.get("holoviews.core.options")
    if store is None:
        return set()
    return {i for tree in store.Store._custom_options.values() for i in tree}


def view_ids(page) -> set:
    """The option ids of the HoloViews objects a Panel page shows (containers, frames, elements)."""
    if page is None:
        return set()
    import holoviews as hv
    import panel as pn

    ids: set = set()
    stack = [pane.object for pane in page.select(pn.pane.HoloViews)]
    while stack:
        obj = stack.pop()
        if not isinstance(obj, hv.core.dimension.LabelledData):
            continue
        if obj.id is not None:
            ids.add(obj.id)
        data = getattr(obj, "data", None)
        if isinstance(data, dict):  # HoloMap, DynamicMap (its cached frames), Overlay, Layout
            stack.extend(data.values())
    return ids


def release_views(ids) -> int:
    """Drop the HoloViews option trees ``ids`` (every backend); returns how many were dropped.

    The objects using them then get the default options; call this only for
    views nothing will draw again.
    """
    store = sys.modules.get("holoviews.core.options")
    if store is None or not ids:
        return 0
    Store = store.Store
    dropped = 0
    for tree in Store._custom_options.values():
        for i in ids:
            if tree.pop(i, None) is not None:
                dropped += 1
    for i in ids:
        Store._weakrefs.pop(i, None)
    # HoloViews' option lookup cache holds resolved options (the views' hooks
    # among them) until the next option change; it is only a cache
    for backend in list(Store._lookup_cache):
        Store._lookup_cache[backend] = {}
    return dropped


_collect_lock = threading.Lock()
_collect_pending = False


def _collect_soon() -> None:
    """One garbage collection and heap trim :data:`COLLECT_DELAY_S` from now, on this loop."""
    global _collect_pending
    with _collect_lock:
        if _collect_pending:
            return
        _collect_pending = True
    try:
        from tornado.ioloop import IOLoop

        IOLoop.current().call_later(COLLECT_DELAY_S, _collect)
    except Exception:  # no loop: collect now
        _collect()


def _collect() -> None:
    global _collect_pending
    with _collect_lock:
        _collect_pending = False
    gc.collect()
    trim_heap()


def _trim_while_serving(url) -> None:
    """Start a :class:`_Reclaimer` on the server's loop (Linux with glibc)."""
    server = getattr(url, "server", None)
    if server is None or _malloc_trim() is None or _anonymous_bytes() is None:
        return
    server.io_loop.add_callback(_Reclaimer().start)


class _Reclaimer:
    """Collect cyclic garbage and trim the heap once a served process has grown by
    :data:`GARBAGE_BYTES`.

    Every zoom builds a new HoloViews element holding its frame (megabytes);
    elements are param objects, which live in reference cycles, so the old
    ones wait for a full garbage collection.  Python runs one only when the
    long-lived objects grew by a quarter, so under a few busy sessions the
    frames piled up by about their size per update (hundreds of MB a
    minute) until the sessions ended: three sessions zooming an 8192^2
    matrix for 20 s took the process from 340 to 640 MB with no collection
    by Python's own rule.  A full collection of a served dashboard's process
    takes 0.1-0.4 s (it scans every Python object); this runs one about
    every 35 zooms of the dashboard's heatmap (with it, those three sessions
    stayed within 290-390 MB).
    """

    def __init__(self):
        self.base = _anonymous_bytes() or 0

    def start(self) -> None:
        from tornado.ioloop import PeriodicCallback

        self.callback = PeriodicCallback(self.check, CHECK_EVERY_S * 1000)
        self.callback.start()

    def check(self) -> None:
        now = _anonymous_bytes()
        if now is None:
            return
        if now - self.base >= GARBAGE_BYTES:
            gc.collect()
            trim_heap()
            self.base = _anonymous_bytes() or now  # what lives now: grow from there
        elif now < self.base:
            self.base = now  # sessions ended: measure from the new low


def _anonymous_bytes() -> int | None:
    """This process's resident anonymous memory (RssAnon), or None where unknown."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def trim_heap() -> bool:
    """Give freed heap memory back to the system (glibc's ``malloc_trim``).

    What a session frees (planes, frames, their serialisation, Python
    objects) stays in glibc's heap, resident, until it is trimmed.

    Returns
    -------
    bool
        Whether the C library has ``malloc_trim`` (glibc), not whether
        anything was given back.
    """
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


@functools.lru_cache(maxsize=1)
def _malloc_trim():
    """glibc's ``malloc_trim``, or None (another platform or C library)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        trim = getattr(ctypes.CDLL(None), "malloc_trim", None)
    except OSError:
        return None
    if trim is not None:
        trim.argtypes = [ctypes.c_size_t]
        trim.restype = ctypes.c_int
    return trim


def note(pn, text: str):
    """An italic Markdown line (why a view is not drawn), HTML-escaped."""
    return pn.pane.Markdown(f"*{html.escape(text)}*", sizing_mode="stretch_width")


_NAME_SELECT = None


def name_select(**params):
    """A ``panel.widgets.Select`` of names: ``options`` maps shown forms to exact names.

    Panel's Select sends ``str(value)`` of each option to the browser as the
    option's value, which would put the exact names (ESC, NUL, a lone
    surrogate) into the page, and maps what comes back by those strings
    first, so a name whose text is another name's shown form (``x\\x1b``
    beside ``x`` + ESC) would choose the wrong one.  This Select sends only
    the labels (the shown forms) and maps back by label alone.
    """
    global _NAME_SELECT
    if _NAME_SELECT is None:
        import panel as pn
        from panel.widgets.select import SingleSelectBase

        class NameSelect(pn.widgets.Select):
            _allows_values = False       # the browser gets labels as the options' values

            def _process_property_change(self, props):
                params = super(SingleSelectBase, self)._process_property_change(props)
                if "value" in params:
                    shown = params["value"]
                    items = self._items
                    params["value"] = items[shown] if shown in items else self.value
                params.pop("options", None)
                return params

        _NAME_SELECT = NameSelect
    return _NAME_SELECT(**params)
