"""dv.save (standalone HTML, PNG without a browser) and dv.serve (a real Bokeh server)."""

import io
import urllib.error
import urllib.request

import numpy as np
import pytest

hv = pytest.importorskip("holoviews")

import dlviz_gpu as dv  # noqa: E402


@pytest.fixture
def view(rng):
    m = rng.standard_normal((300, 400)).astype(np.float32)
    m[:, :200] += 3.0  # left half clearly different from the right
    return dv.heatmap(m, width=200, height=150, label="layer")


def test_save_html_is_standalone(tmp_path, view):
    path = dv.save(view, tmp_path / "page.html", title="my layer")
    text = path.read_text(encoding="utf-8")
    assert text.lstrip().lower().startswith("<!doctype html>")
    assert "<title>my layer</title>" in text
    # Bokeh's JavaScript inline: no network needed to open it
    assert "cdn.bokeh.org" not in text and "Bokeh" in text
    assert 'src="static/' not in text   # nothing relative a standalone file cannot load
    # the frame's planes travel with the page: the hover fields are in it
    for field in ("count", "mean", "min", "max", "std"):
        assert f'"{field}"' in text


def test_save_html_of_frames_keeps_every_frame_behind_a_slider(tmp_path):
    """A HoloMap (e.g. weight snapshots over steps) is saved with all frames, offline."""
    frames = {step: hv.Image(np.full((4, 5), 1000.0 + step)) for step in (0, 10, 20)}
    text = dv.save(hv.HoloMap(frames, kdims=["step"]), tmp_path / "frames.html").read_text(
        encoding="utf-8")
    # the slider's frames are embedded as document patches, one per step
    assert '"name":"panel.models.state.State"' in text
    for step in (10, 20):
        assert f"step: {step}" in text
    # Panel's widget style sheets are written in, never imported from its CDN
    assert "cdn.holoviz.org" not in text
    assert 'rel="stylesheet"' not in text and 'rel="icon"' not in text


def test_save_png_draws_the_picture(tmp_path, view):
    from PIL import Image

    path = dv.save(view, tmp_path / "pic.png")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    img = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    assert img.shape[0] > 150 and img.shape[1] > 200
    colours = np.unique(img.reshape(-1, 3), axis=0)
    assert len(colours) > 50          # a colour-mapped picture, not a blank canvas
    # the diverging palette's red end shows (the +3 half) and its blue end does not dominate
    reds = (img[..., 0] > 150) & (img[..., 2] < 100)
    assert reds.mean() > 0.05


def test_save_png_of_a_layout(tmp_path, view, rng):
    other = dv.heatmap(rng.random((50, 60)), width=120, height=100)
    path = dv.save(view + other, tmp_path / "two.png")
    assert path.stat().st_size > 5000


@pytest.mark.parametrize("name, exc, match", [
    ("page.svg", ValueError, r"path: expected a file name ending in \.html or \.png; got"),
    ("missing/page.html", FileNotFoundError, r"path: the folder .*missing.* does not exist"),
])
def test_save_refuses_bad_paths(tmp_path, view, name, exc, match):
    with pytest.raises(exc, match=match):
        dv.save(view, tmp_path / name)


def test_save_refuses_non_views(tmp_path):
    with pytest.raises(TypeError, match="obj: expected a HoloViews object .*got ndarray"):
        dv.save(np.zeros((3, 3)), tmp_path / "x.html")


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=60) as resp:
        assert resp.status == 200
        return resp.read().decode()


def test_serve_runs_a_bokeh_server_and_stops(view):
    url = dv.serve(view)
    try:
        assert url.startswith("http://127.0.0.1:")
        page = _get(url)
        assert "bokeh" in page.lower() and "<script" in page
    finally:
        url.stop()
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
        urllib.request.urlopen(url, timeout=5)


def test_serve_a_dict_of_routes(view, rng):
    url = dv.serve({"weights": view, "other": dv.heatmap(rng.random((20, 30)))})
    try:
        assert url.endswith("/weights")
        assert "<script" in _get(url)
        assert "<script" in _get(url.rsplit("/", 1)[0] + "/other")
    finally:
        url.stop()


@pytest.mark.parametrize("kwargs, match", [
    ({"port": -1}, r"port: expected an integer in 0\.\.65535"),
    ({"port": "80"}, r"port: expected an integer"),
    ({"address": "0.0.0.0"}, r"allow_websocket_origin: serving on '0\.0\.0\.0' exposes"),
    ({"address": ""}, r"address: expected an interface address"),
])
def test_serve_refuses_bad_arguments(view, kwargs, match):
    with pytest.raises(ValueError, match=match):
        dv.serve(view, **kwargs)


def test_serve_refuses_an_empty_dict():
    with pytest.raises(ValueError, match="obj: expected at least one route"):
        dv.serve({})


# --------------------------------------------------------------------------
# a traceback never reaches a page
# --------------------------------------------------------------------------

SECRET = "/srv/private/model-store"


def _served(build):
    """The Bokeh document one session of ``dv.serve(build)`` gets, and its Page (or None)."""
    from bokeh.document import Document
    from panel.io.state import set_curdoc

    from dlviz_gpu.views.output import safe_page

    doc = Document()
    with set_curdoc(doc):
        page = safe_page(build)()
        page.server_doc(doc)
    return doc, page


def _doc_text(doc) -> str:
    from bokeh.core.json_encoder import serialize_json

    return serialize_json(doc.to_json())


def _reference(text: str) -> str:
    import re

    m = re.search(r"reference ([0-9a-f]{8})", text)
    assert m, text
    return m.group(1)


def _logged(caplog, ref):
    records = [r for r in caplog.records if r.name == "dlviz_gpu.serve" and ref in r.getMessage()]
    assert len(records) == 1, [r.getMessage() for r in caplog.records]
    return records[0]


def test_a_page_that_fails_to_build_shows_one_line_and_logs_the_traceback(caplog):
    from dlviz_gpu.views.output import PAGE_FAILED

    def build():
        raise OSError(f"cannot read {SECRET}/model.safetensors")

    doc, _ = _served(build)
    text = _doc_text(doc)
    assert PAGE_FAILED.split(".")[0] in text
    assert "Traceback" not in text and SECRET not in text and "OSError" not in text
    record = _logged(caplog, _reference(text))
    assert record.levelname == "ERROR" and record.exc_info[0] is OSError
    assert SECRET in str(record.exc_info[1])


def test_a_page_that_fails_to_draw_shows_one_line(caplog):
    """Drawing happens after the page function returned (Panel's server_doc): the HoloViews
    label of a raw ESC used to put its traceback on the page."""
    from dlviz_gpu.views.output import PAGE_FAILED

    broken = hv.DynamicMap(lambda: hv.Image(np.zeros((3, 3)), label=f"{SECRET}\x1b"))
    doc, _ = _served(lambda: broken)
    text = _doc_text(doc)
    assert PAGE_FAILED.split(".")[0] in text
    assert "Traceback" not in text and SECRET not in text and "no such name" not in text
    assert _logged(caplog, _reference(text)).exc_info[0] is ValueError


def test_a_page_that_draws_is_served_as_built(view):
    """No layout around the page (Panel lays out a wrapped page differently), no failure line."""
    import panel as pn

    from dlviz_gpu.views.output import PAGE_FAILED

    layout = pn.Column(view)
    doc, page = _served(lambda: layout)
    assert page is layout
    assert PAGE_FAILED.split(".")[0] not in _doc_text(doc)


def test_an_event_that_fails_shows_one_line_and_the_page_keeps_working(caplog):
    import panel as pn

    from dlviz_gpu.views.output import EVENT_FAILED

    button = pn.widgets.Button(label="go")
    clicks = []

    def on_click(_event):
        clicks.append(1)
        if len(clicks) <= 2:
            raise KeyError(f"{SECRET}/missing")

    def click(n):
        # what a click in the browser does: Bokeh's change, then Panel's coroutine, which
        # hands a failure to the session's exception handler
        button._events = {"clicks": n}
        step = button._change_coroutine(doc)     # awaits nothing: one step runs it whole
        with pytest.raises(StopIteration):      # (asyncio.run refuses to run inside a loop,
            step.send(None)                      # e.g. after Playwright's tests)

    button.on_click(on_click)
    doc, page = _served(lambda: pn.Column(button))
    roots = len(doc.roots)
    click(1)
    assert len(clicks) == 1
    prefix = EVENT_FAILED.split(";")[0]
    text = _doc_text(doc)
    assert prefix in text and SECRET not in text and "Traceback" not in text
    assert len(doc.roots) == roots + 1          # the line: its own root, pinned over the page
    first = _reference(text)
    assert _logged(caplog, first).exc_info[0] is KeyError
    click(2)                                    # a second failure: the same line, new reference
    text = _doc_text(doc)
    assert len(doc.roots) == roots + 1 and text.count(prefix) == 1
    assert _reference(text) != first
    click(3)                                    # the page still answers
    assert len(clicks) == 3
    # the handler is this session's: another session's (and Panel's process-wide) has none
    from bokeh.document import Document
    from panel.io.state import set_curdoc

    with set_curdoc(doc):
        assert pn.config.exception_handler is not None
    with set_curdoc(Document()):
        assert pn.config.exception_handler is None


def test_a_websocket_message_that_fails_is_answered_without_the_traceback(view, caplog):
    from dlviz_gpu.views.output import MESSAGE_FAILED, _error_reply

    url = dv.serve(view)
    try:
        tornado = url.server._tornado
        assert tornado.new_connection.__name__ == "new_connection"   # this server's own
        assert tornado.new_connection.__module__ == "dlviz_gpu.views.output"
    finally:
        url.stop()
    message = type("Message", (), {"header": {"msgid": "m1"}})()
    try:
        raise ValueError(f"{SECRET}/x")
    except ValueError as err:
        reply = _error_reply(message, repr(err))   # Bokeh calls it inside its except block
    assert reply.header["reqid"] == "m1"
    assert reply.content["traceback"] is None
    assert reply.content["text"].startswith(MESSAGE_FAILED.split(" (")[0])
    assert SECRET not in reply.content_json
    assert _logged(caplog, _reference(reply.content["text"])).exc_info[0] is ValueError


def _ws_handshake(url: str, origin: str) -> int:
    """The HTTP status of a websocket upgrade to the page's ``/ws`` sent from ``origin``."""
    import base64
    import os
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    path = parts.path.rstrip("/") + "/ws"
    key = base64.b64encode(os.urandom(16)).decode()
    request = (f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
               f"Sec-WebSocket-Version: 13\r\nOrigin: {origin}\r\n\r\n")
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(request.encode())
        status = sock.recv(4096).split(b"\r\n", 1)[0]
    return int(status.split()[1])


def test_a_websocket_from_a_foreign_origin_is_refused(view):
    """Bokeh's origin check: a page on another site cannot drive a served view."""
    url = dv.serve(view)
    try:
        _get(url)                                       # the page itself is served
        host = url.split("/")[2]
        assert _ws_handshake(url, "http://evil.example") == 403
        assert _ws_handshake(url, f"http://{host}.evil.example") == 403
        # this machine's own origin is not refused by the origin check (Bokeh then asks
        # for the session token that only the served page carries)
        assert _ws_handshake(url, f"http://{host}") != 403
    finally:
        url.stop()
