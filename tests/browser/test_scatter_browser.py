"""dv.scatter in a real headless Chromium against a real Bokeh server: it renders, a
wheel zoom makes the server re-aggregate just the visible points, no console errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from . import bokehjs as bj

pytestmark = pytest.mark.browser

N = 300_000
W, H = 600, 400


@pytest.fixture(scope="module")
def cloud() -> np.ndarray:
    """(N, 2) float64: four Gaussian clusters, one of them at the origin."""
    rng = np.random.default_rng(20261126)
    centres = np.array([[-3.0, -2.0], [2.0, 3.0], [3.0, -3.0], [0.0, 0.0]])
    return centres[rng.integers(0, 4, N)] + rng.standard_normal((N, 2)) * 0.6


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def synced(page, dmap) -> dict:
    """Wait until the browser shows the image of the server's last window."""
    def check():
        last = dmap.view.last
        if not last:
            return None
        (x0, x1), (y0, y1) = last["window"]
        v = bj.views(page)
        plot = v["plots"][0]
        img = next((g for g in v["glyphs"] if g["type"] == "Image"), None)
        ok = (img is not None and img["shape"] == [last["canvas"][1], last["canvas"][0]]
              and close(img["x"], x0) and close(img["x"] + img["dw"], x1)
              and close(img["y"], y0) and close(img["y"] + img["dh"], y1)
              and all(close(a, b) for a, b in zip(sorted(plot["x_range"]) + sorted(plot["y_range"]),
                                                  (x0, x1, y0, y1))))
        return v if ok else None

    return bj.wait_until(check, page, "the browser to show the server's last window")


def points_in(cloud: np.ndarray, window) -> int:
    (x0, x1), (y0, y1) = window
    x, y = cloud[:, 0], cloud[:, 1]
    return int(((x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)).sum())


def test_scatter_renders_and_zoom_reaggregates(tab, serve_view, server_log, cloud):
    import dlviz_gpu as dv

    dmap = dv.scatter(cloud, width=W, height=H, label="cloud")
    url = serve_view(dmap)
    page = tab.page
    bj.load(page, url)
    synced(page, dmap)
    plot = bj.frame(page)
    assert (plot["width"], plot["height"]) == (W, H)
    last0 = dict(dmap.view.last)
    assert last0["canvas"] == (W, H) and last0["points"] == N
    before = bj.screenshot(page, plot)
    # a colour-mapped cloud on an empty background, not a blank or uniform frame
    assert bj.distinct_colours(before) > 10
    colours, counts = np.unique(before.reshape(-1, 3), axis=0, return_counts=True)
    background = colours[counts.argmax()]
    assert (background > 230).all()                    # the page shows through empty pixels
    assert 0.05 < counts.max() / counts.sum() < 0.95

    # zoom into the cluster at the origin: frame pixel (300, 200) is near (0, 0)
    updates0 = dmap.view.updates
    cx, cy = plot["x"] + W / 2, plot["y"] + H / 2
    xs, xe = plot["x_range"]
    ys, ye = plot["y_range"]
    under = (xs + (W / 2) / W * (xe - xs), ye + (H / 2) / H * (ys - ye))
    bj.wheel(page, cx, cy, steps=4)
    bj.wait_until(lambda: dmap.view.updates > updates0 and
                  dmap.view.last["points"] < last0["points"], page,
                  "the server to re-aggregate after the wheel zoom")
    synced(page, dmap)
    last = dmap.view.last
    (x0, x1), (y0, y1) = last["window"]
    (a0, a1), (b0, b1) = last0["window"]
    # a window 16 times narrower around the point under the cursor, at the same
    # canvas: each pixel now covers 1/256 of the area it covered before
    assert (x1 - x0) < (a1 - a0) / 8 and (y1 - y0) < (b1 - b0) / 8
    assert x0 < under[0] < x1 and y0 < under[1] < y1
    assert last["canvas"] == (W, H)
    # exactly the points inside the new window were aggregated
    assert last["points"] == points_in(cloud, last["window"]) < N
    after = bj.screenshot(page, bj.frame(page))
    assert np.abs(after.astype(int) - before.astype(int)).mean() > 5
    assert bj.distinct_colours(after) > 2
    tab.assert_clean()
    server_log.assert_clean()
