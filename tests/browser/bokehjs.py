"""Reading a live Bokeh page from Python: plot frames, glyph data, tooltips, screenshots.

Bokeh 3 draws into ``<canvas>`` elements inside shadow roots; Playwright's CSS
locators pierce open shadow roots, and the view tree is reachable from
JavaScript as ``Bokeh.index``.  Positions are CSS pixels in the viewport.
"""

from __future__ import annotations

import io
import re
import time

import numpy as np

TIMEOUT_MS = 300_000

# Every plot's frame (the data area) in viewport pixels with its current ranges,
# and every glyph's type and plot (the plot's id) with the geometry of its data
# (image x/y/dw/dh and array shape, or a line's point count).
_VIEWS_JS = """() => {
  const plots = [], glyphs = [];
  for (const v of Bokeh.index.all_views()) {
    if (v.frame !== undefined && v.canvas_view !== undefined) {
      const r = v.canvas_view.el.getBoundingClientRect(), b = v.frame.bbox;
      plots.push({id: v.model.id, title: v.model.title ? v.model.title.text : null,
                  x: r.left + b.x, y: r.top + b.y, width: b.width, height: b.height,
                  x_range: [v.frame.x_range.start, v.frame.x_range.end],
                  y_range: [v.frame.y_range.start, v.frame.y_range.end]});
    }
    const m = v.model;
    if (m.glyph !== undefined && m.data_source !== undefined && m.data_source.data !== undefined) {
      const d = m.data_source.data, first = (k) => d[k] !== undefined ? Number(d[k][0]) : null;
      const g = {type: m.glyph.type, visible: m.visible, columns: Object.keys(d).sort(),
                 plot: v.parent && v.parent.model ? v.parent.model.id : null,
                 x: first("x"), y: first("y"), dw: first("dw"), dh: first("dh"),
                 shape: null, length: null};
      if (d.image !== undefined && d.image[0] !== undefined && d.image[0].shape)
        g.shape = Array.from(d.image[0].shape);
      const col = d.xs !== undefined ? d.xs : d.x;
      if (col !== undefined) g.length = col.length;
      glyphs.push(g);
    }
  }
  return {plots, glyphs};
}"""

_READY_JS = """() => window.Bokeh !== undefined && Bokeh.documents.length > 0
  && Bokeh.documents.every(d => d.is_idle)
  && [...Bokeh.index.all_views()].some(v => v.frame !== undefined && v.frame.bbox.width > 0)"""


_LINES_JS = """(names) => {
  const out = [];
  for (const v of Bokeh.index.all_views()) {
    const m = v.model;
    if (m.glyph !== undefined && m.data_source !== undefined && m.glyph.type === "Line") {
      const d = m.data_source.data, line = {};
      for (const k of names) line[k] = d[k] !== undefined ? Array.from(d[k], Number) : null;
      out.push(line);
    }
  }
  return out;
}"""


def lines(page, columns=("x", "y")) -> list[dict]:
    """The data of every ``Line`` glyph on the page: ``{column: list of float}``."""
    return page.evaluate(_LINES_JS, list(columns))


def load(page, url: str, n_plots: int = 1) -> None:
    """Open a Bokeh server page and wait until its document is idle and plots are laid out."""
    page.goto(url, timeout=TIMEOUT_MS)
    page.wait_for_function(_READY_JS, timeout=TIMEOUT_MS)
    wait_until(lambda: len(views(page)["plots"]) >= n_plots, page,
               f"{n_plots} Bokeh plot(s) on the page")


def views(page) -> dict:
    """``{"plots": [...], "glyphs": [...]}`` as described in ``_VIEWS_JS``."""
    return page.evaluate(_VIEWS_JS)


def frame(page, index: int = 0) -> dict:
    """Geometry (x, y, width, height) and ranges of the ``index``-th plot's frame."""
    return views(page)["plots"][index]


def wait_until(predicate, page, what: str, timeout_s: float = TIMEOUT_MS / 1000):
    """Poll ``predicate()`` until it is truthy, letting the page run meanwhile.

    Returns the truthy value.  Raises ``AssertionError`` naming ``what`` after
    ``timeout_s`` (generous: the point is correctness, never speed).
    """
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        page.wait_for_timeout(100)  # pumps Playwright's events (console, etc.)


def mouse_away(page) -> None:
    """Move the mouse off every plot and wait until no tooltip shows."""
    page.mouse.move(1, 1)
    content = page.locator(".bk-Tooltip .bk-tooltip-content")
    wait_until(lambda: not any(t.strip() for t in content.all_inner_texts()) or
               not any(content.nth(k).is_visible() for k in range(content.count())),
               page, "the hover tooltip to close")


def screenshot(page, box: dict) -> np.ndarray:
    """The viewport region ``box`` (x, y, width, height) as an (h, w, 3) uint8 RGB array.

    The mouse is moved away first, so no tooltip covers the picture.
    """
    from PIL import Image

    mouse_away(page)
    clip = {k: float(box[k]) for k in ("x", "y", "width", "height")}
    png = page.screenshot(clip=clip, animations="disabled")
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def distinct_colours(img: np.ndarray) -> int:
    return len(np.unique(img.reshape(-1, img.shape[-1]), axis=0))


def wheel(page, x: float, y: float, steps: int, delta: float = -300) -> None:
    """Turn the mouse wheel ``steps`` notches over (x, y); negative ``delta`` zooms in."""
    page.mouse.move(x, y)
    for _ in range(steps):
        page.mouse.wheel(0, delta)
        page.wait_for_timeout(150)


def hover_text(page, x: float, y: float) -> str:
    """Move the mouse to (x, y) and return the text of the Bokeh tooltip shown there."""
    # leave and come back, so a tooltip already shown for another spot is redrawn
    page.mouse.move(1, 1)
    page.mouse.move(x, y)
    content = page.locator(".bk-Tooltip .bk-tooltip-content")

    def text():
        texts = [t for t in content.all_inner_texts() if t.strip()]
        return texts[0] if texts else None

    return wait_until(text, page, f"a hover tooltip at ({x}, {y})")


def parse_tooltip(text: str) -> dict[str, str]:
    """``"rows:\\t3\\nmean:\\t0.5"`` -> ``{"rows": "3", "mean": "0.5"}``."""
    out = {}
    for line in text.splitlines():
        if ":" in line:
            key, _, value = line.partition(":")
            out[key.strip()] = value.strip()
    return out


def parse_span(text: str) -> tuple[int, int]:
    """``"1000–1004"`` (en dash) or ``"7"`` -> inclusive ``(first, last)``."""
    m = re.fullmatch(r"(-?\d+)(?:\s*[\u2013-]\s*(-?\d+))?", text.strip())
    if m is None:
        raise AssertionError(f"not an element range: {text!r}")
    a = int(m.group(1))
    return a, int(m.group(2)) if m.group(2) else a


def parse_number(text: str) -> float:
    """A number as Bokeh's tooltip prints it (``-0.448``, ``1.234e-5``, ``NaN``)."""
    return float(text.replace(",", ""))


def tooltip_close(shown: str, expected: float) -> bool:
    """Bokeh prints 3 decimals (``%0.3f``) or 3 in scientific notation (``%0.3e``)."""
    value = parse_number(shown)
    return abs(value - expected) <= 0.00051 * max(1.0, abs(expected))
