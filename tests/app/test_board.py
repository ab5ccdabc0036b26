"""What a served board does per session: its page's views are released when the session ends.

HoloViews keeps every view's options in a process-wide registry; an option
that refers back to its view (the structure graph's label hook, for one) made
each closed session's whole page live as long as the server.  The session's
end is simulated here (a document with a session context, its destroy
callbacks called), as Bokeh does 15-32 s after a browser tab closes.
"""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("panel")
pytest.importorskip("safetensors")

from safetensors.torch import save_file  # noqa: E402

from dlviz_gpu.app import board as B  # noqa: E402
from dlviz_gpu.app.dashboard import Dashboard  # noqa: E402


class _Request:
    arguments: dict = {}
    cookies: dict = {}
    headers: dict = {}


class _Context:
    """Stands for Bokeh's session context (the document holds it weakly)."""

    request = _Request()
    id = "test-session"
    server_context = None


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory):
    gen = torch.Generator().manual_seed(3)
    tensors = {"embed.weight": torch.randn(64, 16, generator=gen),
               "layers.0.fc.weight": torch.randn(48, 16, generator=gen),
               "layers.0.fc.bias": torch.randn(48, generator=gen)}
    path = tmp_path_factory.mktemp("board") / "model.safetensors"
    save_file(tensors, str(path))
    return Dashboard(str(path))


def _session_document():
    from bokeh.document import Document

    doc = Document()
    ctx = _Context()
    doc._session_context = weakref.ref(ctx)
    return doc, ctx


def _views(page):
    import panel as pn

    return [p.object for p in page.select(pn.pane.HoloViews)]


def test_outside_a_session_it_is_the_page(dashboard):
    page = dashboard.session_page()
    assert type(page) is type(dashboard.page())
    assert not dashboard.__dict__.get("_live_pages")


def test_a_destroyed_session_releases_its_page(dashboard):
    import holoviews as hv
    from panel.io.state import set_curdoc

    doc, ctx = _session_document()
    with set_curdoc(doc):
        page = dashboard.session_page()
    ids = B.view_ids(page)
    assert ids and ids <= B._custom_ids()          # the page's views have option trees
    heat = next(v for v in _views(page) if hasattr(v, "view"))
    view = weakref.ref(heat.view)
    assert len(doc.session_destroyed_callbacks) == 1
    other_doc, other_ctx = _session_document()     # a second session, still open
    with set_curdoc(other_doc):
        other = dashboard.session_page()
    for cb in list(doc.session_destroyed_callbacks):
        cb(ctx)
    assert not (ids & B._custom_ids())             # released
    assert B.view_ids(other) <= B._custom_ids()    # the open session keeps its views
    del page, heat, cb
    gc.collect()
    assert view() is None, "the closed session's heatmap state is still alive"
    assert isinstance(_views(other)[0], (hv.DynamicMap, hv.Element, hv.Overlay))


def test_views_shown_by_another_open_session_are_kept(dashboard):
    import holoviews as hv
    import panel as pn

    from panel.io.state import set_curdoc

    shared = hv.Curve(np.arange(5.0)).opts(backend="bokeh", color="red")

    class Shared(B.Board):
        title = "shared"

        def page(self):
            return pn.Column(pn.pane.HoloViews(shared))

    board = Shared()
    docs = [_session_document() for _ in range(2)]
    pages = []
    for doc, _ in docs:
        with set_curdoc(doc):
            pages.append(board.session_page())
    (doc, ctx) = docs[0]
    for cb in list(doc.session_destroyed_callbacks):
        cb(ctx)
    assert shared.id in B._custom_ids()            # still on the other session's page
    (doc, ctx) = docs[1]
    for cb in list(doc.session_destroyed_callbacks):
        cb(ctx)
    assert shared.id not in B._custom_ids()


def test_release_views_and_trim():
    import holoviews as hv

    curve = hv.Curve(np.arange(4.0)).opts(backend="bokeh", color="blue")
    assert curve.id in B._custom_ids()
    assert B.release_views({curve.id}) >= 1
    assert curve.id not in B._custom_ids()
    assert B.release_views(set()) == 0
    assert B.trim_heap() in (True, False)


def test_warm_page_requests_the_page(dashboard, monkeypatch):
    seen = []

    class Resp:
        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

        def read(self):
            seen.append("read")
            return b"<html>"

    class Opener:
        def open(self, url, timeout):
            seen.append(url)
            return Resp()

    import urllib.request

    monkeypatch.setattr(urllib.request, "build_opener", lambda *h: Opener())
    assert dashboard.warm_page("http://127.0.0.1:1/") is not None
    assert seen == ["http://127.0.0.1:1/", "read"]

    class Failing:
        def open(self, url, timeout):
            raise OSError("refused")

    monkeypatch.setattr(urllib.request, "build_opener", lambda *h: Failing())
    assert dashboard.warm_page("http://127.0.0.1:1/") is None


def test_the_reclaimer_collects_once_the_process_grew(monkeypatch):
    """Frames of past zooms wait in reference cycles for a full collection."""
    sizes = iter([1000, 1000 + B.GARBAGE_BYTES - 1, 1000 + B.GARBAGE_BYTES, 2000, 500,
                  500 + B.GARBAGE_BYTES // 2])
    monkeypatch.setattr(B, "_anonymous_bytes", lambda: next(sizes))
    collected = []
    monkeypatch.setattr(B.gc, "collect", lambda *a: collected.append("gc"))
    monkeypatch.setattr(B, "trim_heap", lambda: collected.append("trim") or True)
    r = B._Reclaimer()                     # base 1000
    r.check()                              # grew by less than GARBAGE_BYTES: nothing
    assert collected == [] and r.base == 1000
    r.check()                              # grew by GARBAGE_BYTES: collect, trim
    assert collected == ["gc", "trim"] and r.base == 2000  # what lived after it
    r.check()                              # the process shrank: measure from there
    assert r.base == 500 and collected == ["gc", "trim"]
    r.check()
    assert collected == ["gc", "trim"]
