"""dv.curve in a real headless Chromium against a real Bokeh server: it renders, a wheel
zoom makes the server re-decimate the visible window (down to the samples
themselves), no console errors."""

from __future__ import annotations

import numpy as np
import pytest

from . import bokehjs as bj

pytestmark = pytest.mark.browser

N = 200_000
W, H = 600, 250
LINE = (0x1F, 0x77, 0xB4)   # the default line colour, #1f77b4


@pytest.fixture(scope="module")
def series() -> np.ndarray:
    """A decaying "loss" with a wiggle (period ~44 steps) and step-level jitter."""
    t = np.arange(N)
    y = 2.0 * np.exp(-t / 40_000) + 0.05 * np.sin(t / 7.0) + 0.01 * ((t * 7919) % 101) / 101
    return y.astype(np.float32)


def line_pixels(img: np.ndarray) -> int:
    """Pixels of about the line's colour (anti-aliased edges excluded)."""
    return int((np.abs(img.astype(int) - LINE).max(-1) < 40).sum())


def synced(page, dmap) -> list:
    """Wait until the browser's line spans the server's last window; returns its data."""
    def check():
        last = dmap.view.last
        if not last:
            return None
        x0, x1 = last["window"]
        plot = bj.frame(page)
        data = bj.lines(page, ("step", "y"))
        if not data or not data[0]["step"]:
            return None
        steps = data[0]["step"]
        span = (x1 - x0) / last["canvas"][0]
        inside = sorted(plot["x_range"]) == [x0, x1] or np.allclose(sorted(plot["x_range"]),
                                                                     [x0, x1])
        # the M4 vertices lie in the window, give or take the edge columns
        if inside and x0 - span <= steps[0] and steps[-1] <= x1 + span and \
                len(steps) == last["vertices"]:
            return data
        return None

    return bj.wait_until(check, page, "the browser to show the server's last window")


@pytest.fixture
def shown(tab, serve_view, series):
    import dlviz_gpu as dv

    dmap = dv.curve(series, width=W, height=H, label="loss")
    bj.load(tab.page, serve_view(dmap))
    synced(tab.page, dmap)
    return dmap, tab


def zoom_in(page, dmap, steps: int) -> tuple[float, dict]:
    """Wheel-zoom around the middle of the frame; returns the step first under the
    cursor and the server's facts about the window before."""
    plot = bj.frame(page)
    xs, xe = plot["x_range"]
    under = xs + 0.5 * (xe - xs)
    updates0, last0 = dmap.view.updates, dict(dmap.view.last)
    bj.wheel(page, plot["x"] + W / 2, plot["y"] + H / 2, steps=steps)
    bj.wait_until(lambda: dmap.view.updates > updates0 and
                  dmap.view.last["window"] != last0["window"], page,
                  "the server to re-decimate after the wheel zoom")
    return under, last0


def test_curve_renders_and_zoom_reaches_the_samples(shown, series, server_log):
    dmap, tab = shown
    page = tab.page
    plot = bj.frame(page)
    assert (plot["width"], plot["height"]) == (W, H)
    last0 = dmap.view.last
    assert last0["window"] == (0.0, float(N - 1)) or last0["window"][1] >= N - 1
    line = bj.lines(page, ("step", "y"))[0]
    # M4: at most 4 vertices per pixel column reach the browser, not 200,000 samples
    assert W <= len(line["step"]) <= 4 * W
    before = bj.screenshot(page, plot)
    assert line_pixels(before) > W            # a line across the whole frame
    # 9 notches of the wheel (x 1/512): fewer samples in view than pixel columns
    _, last0 = zoom_in(page, dmap, steps=9)
    line = synced(page, dmap)[0]
    x0, x1 = dmap.view.last["window"]
    # (not checked: that the window holds the step first under the cursor: the
    # frame moves sideways while zooming, as the y tick labels change width)
    assert x1 - x0 < W and last0["window"][0] <= x0 < x1 <= last0["window"][1]
    # the server re-decimated the window: the browser now holds the samples themselves
    steps = np.array(line["step"])
    assert np.array_equal(steps, np.arange(steps[0], steps[-1] + 1))
    assert steps[0] <= np.ceil(x0) and steps[-1] >= np.floor(x1)
    np.testing.assert_array_equal(np.array(line["y"]), series[steps.astype(int)])
    tab.assert_clean()
    server_log.assert_clean()


def test_curve_stays_in_view_after_a_wheel_zoom(shown, series):
    dmap, tab = shown
    page = tab.page
    zoom_in(page, dmap, steps=9)
    line = synced(page, dmap)[0]
    plot = bj.frame(page)
    lo, hi = sorted(plot["y_range"])
    ys = np.array(line["y"])
    # the visible samples lie inside the y range shown, and the line is drawn
    assert lo <= ys.min() and ys.max() <= hi
    assert line_pixels(bj.screenshot(page, plot)) > W / 2
