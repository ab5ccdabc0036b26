"""The example apps, each started with its real CLI (``bokeh serve`` / ``panel serve``).

Each test starts the server as a subprocess on a free port, loads the page in
headless Chromium, checks it renders and re-aggregates on a wheel zoom with no
console errors and nothing alarming in the server's own log, then shuts the
server down.
"""

from __future__ import annotations

import contextlib
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from . import bokehjs as bj
from .conftest import ServerProcess, free_port

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
class App(ServerProcess):
    """A ``bokeh serve`` / ``panel serve`` subprocess and its log."""

    def __init__(self, tool: str, script: Path, log: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/{script.stem}"
        super().__init__([sys.executable, "-m", tool, "serve", script, "--port", self.port,
                          "--address", "127.0.0.1", "--allow-websocket-origin",
                          f"127.0.0.1:{self.port}"], log)

    def wait_up(self, timeout_s: float = 300) -> None:
        """Wait until the app's page answers 200 (generous: the machine may be busy)."""
        deadline = time.monotonic() + timeout_s
        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"the server exited with {self.proc.returncode}:\n{self.text()}")
            try:
                with urllib.request.urlopen(self.url, timeout=60) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"{self.url} did not answer in {timeout_s:.0f} s:\n{self.text()}")
            time.sleep(0.25)


@contextlib.contextmanager
def serving(tool: str, script: str, tmp_path: Path):
    app = App(tool, EXAMPLES / script, tmp_path / f"{tool}-serve.log")
    try:
        app.wait_up()
        yield app
    except BaseException:
        # shown with the failure: what the server said
        print(f"--- {tool} serve log ---\n{app.text()}")
        raise
    finally:
        app.stop()


def heatmap_plot(page) -> tuple[dict, dict]:
    """The heatmap's plot frame (its title names the tensor's shape) and its image glyph."""
    v = bj.views(page)
    plot = next(p for p in v["plots"] if "[1024x4096, float32]" in (p["title"] or ""))
    image = next(g for g in v["glyphs"] if g["type"] == "Image" and g["plot"] == plot["id"])
    return plot, image


def titles(page) -> list[str]:
    return [p["title"] or "" for p in bj.views(page)["plots"]]


def check_heatmap_zooms(page) -> None:
    """The heatmap is drawn, and a wheel zoom brings a re-aggregated, smaller window."""
    plot, image = heatmap_plot(page)
    assert (image["x"], image["dw"], image["y"], image["dh"]) == (0, 4096, 0, 1024)
    assert image["shape"] == [plot["height"], plot["width"]]
    img = bj.screenshot(page, plot)
    assert bj.distinct_colours(img) > 50 and img.std(axis=(0, 1)).max() > 10
    bj.wheel(page, plot["x"] + plot["width"] / 2, plot["y"] + plot["height"] / 2, steps=3)
    # the server answers with an image of just the visible window
    image = bj.wait_until(lambda: (lambda g: g if g["dw"] < 4096 / 4 else None)(
        heatmap_plot(page)[1]), page, "a re-aggregated image after the wheel zoom")
    assert image["dh"] < 1024 / 4
    assert 0 < image["x"] and image["x"] + image["dw"] < 4096


def test_bokeh_serve_example(tab, tmp_path):
    with serving("bokeh", "bokeh_app.py", tmp_path) as app:
        bj.load(tab.page, app.url, n_plots=4)
        shown = titles(tab.page)
        for part in ("[1024x4096, float32] extremum",    # the heatmap
                     "4,194,304 values",                  # the histogram
                     "rows of the layer (PCA) [1,024 points]",
                     "loss [1,000,000 samples], smoothing 0.9"):
            assert any(part in t for t in shown), (part, shown)
        check_heatmap_zooms(tab.page)
        tab.assert_clean()
        app.assert_clean()


def test_panel_serve_example(tab, tmp_path):
    with serving("panel", "panel_app.py", tmp_path) as app:
        page = tab.page
        bj.load(page, app.url, n_plots=3)
        plot, _ = heatmap_plot(page)
        assert plot["title"].endswith("mean")
        assert any("loss [1,000,000 samples], smoothing 0.9" in t for t in titles(page))
        # the widget rebuilds the heatmap with another statistic
        select = page.locator(".bk-input-group", has_text="statistic per pixel").locator("select")
        select.select_option("max")
        bj.wait_until(lambda: heatmap_plot(page)[0]["title"].endswith("max"), page,
                      "the heatmap rebuilt with agg='max'")
        bj.wait_until(lambda: page.evaluate("() => Bokeh.documents.every(d => d.is_idle)"), page,
                      "the document to settle")
        check_heatmap_zooms(page)
        tab.assert_clean()
        app.assert_clean()
