"""Hostile tensor names and failing pages in headless Chromium: shown safely, no traceback.

``dlviz serve`` (the real command) serves a safetensors checkpoint whose
tensor names hold ESC sequences, CR/LF, NUL, a right-to-left override and
HTML; in the page a hostile-named tensor is chosen in the tree and in the
select, and its heatmap is drawn.  Before, each of these pages was a Python
traceback with the server's paths.  Then ``dv.serve`` pages that fail to
build, or whose events fail, show one line; nothing the browser receives
holds a traceback.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from . import bokehjs as bj

pytestmark = pytest.mark.browser

NAMES = {
    "esc": "blk.\x1b[2J\x1b[31mred.weight",
    "crlf": "blk.a\r\nb.weight",
    "nul": "blk.nul\x00x.weight",
    "bidi": "blk.\u202eevil.weight",
    "html": "blk.<b>x</b></script><img src=x onerror=alert(1)>.weight",
}
SECRET = "/srv/private/model-store"
RAW = "\x00\x1b\r\u202e"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from safetensors.numpy import save_file

    rng = np.random.default_rng(3)
    tensors = {name: (rng.standard_normal((12 + 2 * i, 20)) + 10 * i).astype(np.float32)
               for i, name in enumerate(NAMES.values())}
    tensors["embed.weight"] = rng.standard_normal((60, 40)).astype(np.float32)
    path = tmp_path_factory.mktemp("hostile-browser") / "hostile.safetensors"
    save_file(tensors, str(path))
    return path, tensors


def heat(page, title_start: str):
    """The heatmap whose title starts with ``title_start + " ["``: (plot, image glyph)."""
    v = bj.views(page)
    plots = [p for p in v["plots"] if (p["title"] or "").startswith(title_start + " [")]
    if not plots:
        return None
    images = [g for g in v["glyphs"] if g["type"] == "Image" and g["plot"] == plots[0]["id"]]
    return (plots[0], images[0]) if images else None


# every text node of the page, shadow roots included (Panel draws its panes in them)
_TEXT_JS = """() => {
  const out = [];
  const walk = (node) => {
    if (node.shadowRoot) walk(node.shadowRoot);
    for (const c of node.childNodes) {
      if (c.nodeType === Node.TEXT_NODE) out.push(c.textContent);
      else if (c.nodeType === Node.ELEMENT_NODE && !["STYLE", "SCRIPT"].includes(c.tagName))
        walk(c);
      else if (c.nodeType === Node.DOCUMENT_FRAGMENT_NODE) walk(c);
    }
  };
  walk(document.body);
  return out.join("\\n");
}"""


def page_text(page) -> str:
    """What the page shows: every text node, shadow roots included."""
    return page.evaluate(_TEXT_JS)


def assert_no_traceback(page, tab):
    text = page_text(page)
    assert "Traceback" not in text and "File \"" not in text and ".py\"" not in text, text
    assert not set(text) & set(RAW), sorted(set(text) & set(RAW))


def test_dlviz_serve_draws_a_hostile_named_tensor(tab, command, checkpoint):
    from dlviz_gpu.names import display
    from dlviz_gpu.views.style import label

    path, tensors = checkpoint
    app = command("serve", path)
    url = app.wait_ready()
    page = tab.page
    bj.load(page, url)
    bj.wait_until(lambda: heat(page, "embed.weight"), page, "the first heatmap")
    assert_no_traceback(page, tab)

    # the tree: filter by a piece of the name, click the row it shows (escaped)
    name = NAMES["esc"]
    page.get_by_placeholder("substring or glob").fill("red")
    # a filtered tree lists tensors by their whole (shown) name
    rows = page.locator(".tabulator-row")
    row = rows.filter(has=page.locator(".tabulator-cell",
                                       has_text=re.compile(re.escape(display(name)) + "$")))
    bj.wait_until(lambda: rows.count() == 1 and row.count() == 1, page,
                  "the tree filtered to the ESC name")
    row.first.click()
    plot, image = bj.wait_until(lambda: heat(page, label(name)), page,
                                "the heatmap of the ESC-named tensor")
    assert image["shape"] == list(tensors[name].shape)     # fewer cells than pixels
    assert page.locator("h3.dlviz-title code").first.inner_text() == display(name)

    # the select: the CR/LF name, as the select shows it
    name = NAMES["crlf"]
    select = page.locator("select").filter(
        has=page.locator("option", has_text=display(name)))
    select.first.select_option(display(name))
    plot, image = bj.wait_until(lambda: heat(page, label(name)), page,
                                "the heatmap of the CR/LF-named tensor")
    assert image["shape"] == list(tensors[name].shape)
    assert page.locator("h3.dlviz-title code").first.inner_text() == display(name)

    # every hostile name is listed, shown escaped; none is obeyed
    page.get_by_placeholder("substring or glob").fill("")
    options = page.locator("select option").all_inner_texts()
    for n in NAMES.values():
        assert display(n) in options
    assert page.locator("img[src=x]").count() == 0          # the HTML name stayed text
    assert_no_traceback(page, tab)
    tab.assert_clean()
    app.assert_clean()


def test_a_page_that_fails_to_build_shows_one_line(tab, serve_view, server_log):
    from dlviz_gpu.views.output import PAGE_FAILED

    frames = []
    tab.page.on("websocket", lambda ws: ws.on("framereceived", lambda f: frames.append(f)))

    def build():
        raise OSError(f"cannot read {SECRET}/model.safetensors")

    url = serve_view(build)
    page = tab.page
    page.goto(url)
    alert = page.get_by_text(PAGE_FAILED.split(".")[0])
    bj.wait_until(lambda: alert.count() == 1, page, "the failure line")
    text = page_text(page)
    assert SECRET not in text and "OSError" not in text and "Traceback" not in text
    ref = re.search(r"reference ([0-9a-f]{8})", text).group(1)
    received = "".join(f if isinstance(f, str) else f.decode("utf-8", "replace")
                       for f in frames)
    assert SECRET not in received and "Traceback" not in received
    logged = [r for r in server_log.records if ref in r.getMessage()]
    assert len(logged) == 1 and SECRET in str(logged[0].exc_info[1])
    tab.assert_clean()


def test_failing_events_reach_the_page_as_one_line(tab, serve_view, server_log):
    """A Panel widget's callback (the session's exception handler) and a Bokeh model's own
    callback (the websocket error reply) that raise: the browser gets no traceback."""
    import panel as pn
    from bokeh.models import Button as BokehButton

    from dlviz_gpu.views.output import EVENT_FAILED, MESSAGE_FAILED

    frames = []
    tab.page.on("websocket", lambda ws: ws.on("framereceived", lambda f: frames.append(f)))

    def fail(*_args):
        raise KeyError(f"{SECRET}/missing")

    def build():
        widget = pn.widgets.Button(label="panel button")
        widget.on_click(fail)
        raw = BokehButton(label="bokeh button")
        raw.on_click(fail)
        return pn.Column(widget, pn.pane.Bokeh(raw))

    url = serve_view(build)
    page = tab.page
    page.goto(url)
    button = page.get_by_role("button", name="panel button")
    bj.wait_until(lambda: button.count() == 1, page, "the Panel button")
    button.click()
    alert = page.get_by_text(EVENT_FAILED.split(";")[0])
    bj.wait_until(lambda: alert.count() == 1, page, "the event failure line")

    page.get_by_role("button", name="bokeh button").click()

    def error_reply():
        # a Bokeh message is three frames: header (its msgtype), metadata, content
        heads = [k for k, f in enumerate(frames)
                 if isinstance(f, str) and '"msgtype":"ERROR"' in f.replace(" ", "")]
        return heads and len(frames) >= heads[0] + 3 and frames[heads[0] + 2]
    content = bj.wait_until(error_reply, page, "the error reply to the Bokeh button's event")
    assert MESSAGE_FAILED.split(" (")[0] in content
    received = "".join(f if isinstance(f, str) else f.decode("utf-8", "replace")
                       for f in frames)
    assert SECRET not in received and "Traceback" not in received
    text = page_text(page)
    assert SECRET not in text and "Traceback" not in text
    for kind, message, _ in tab.console:
        assert SECRET not in message and "Traceback" not in message, message
    assert sum(SECRET in str(r.exc_info[1]) for r in server_log.records
               if r.name == "dlviz_gpu.serve" and r.exc_info) == 2
