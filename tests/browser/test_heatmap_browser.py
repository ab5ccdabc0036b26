"""dv.heatmap in a real headless Chromium against a real Bokeh server.

The matrix is 2000 x 3000 float32: a smooth signed pattern plus a +-0.25
checkerboard of single elements.  In the full view (5 x 5 elements per pixel)
the checkerboard averages out to +-0.01; zoomed in to one element per canvas
pixel it is the strongest feature, so "finer detail" is checked on the
picture itself, not just on the server's bookkeeping.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from . import bokehjs as bj

pytestmark = pytest.mark.browser

R, C = 2000, 3000
W, H = 600, 400           # plot frame in screen pixels: 5 x 5 elements per pixel
CLIM = (-1.3, 1.3)        # the whole value range: no colour clipping to reason about


@pytest.fixture(scope="module")
def matrix() -> np.ndarray:
    i = np.arange(R)[:, None]
    j = np.arange(C)[None, :]
    smooth = np.sin(i / 37.0) * np.cos(j / 53.0)
    checker = 0.25 * (1 - 2 * ((i + j) % 2))
    return (smooth + checker).astype(np.float32)


@pytest.fixture
def shown(tab, serve_view, matrix):
    """A served heatmap loaded in the page, its first frame drawn."""
    dmap = dv_heatmap(matrix)
    url = serve_view(dmap)
    bj.load(tab.page, url)
    synced(tab.page, dmap)
    return dmap, tab


def dv_heatmap(matrix):
    import dlviz_gpu as dv

    return dv.heatmap(matrix, cmap="coolwarm", clim=CLIM, width=W, height=H, label="layer")


def palette() -> np.ndarray:
    import colorcet as cc

    return np.array([[int(h[k:k + 2], 16) for k in (1, 3, 5)] for h in cc.palette["coolwarm"]])


def reference_mean(m: np.ndarray, window, canvas) -> np.ndarray:
    """(h, w) mean per pixel by the pixel rule of docs/architecture.md, in float64 (independent of the kernels)."""
    (x0, x1), (y0, y1) = window
    w, h = canvas
    sub = m[y0:y1, x0:x1].astype(np.float64)
    px = np.floor((np.arange(x0, x1) + 0.5 - x0) * w / (x1 - x0)).astype(int)
    py = np.floor((np.arange(y0, y1) + 0.5 - y0) * h / (y1 - y0)).astype(int)
    idx = (py[:, None] * w + px[None, :]).ravel()
    s = np.bincount(idx, sub.ravel(), minlength=w * h)
    n = np.bincount(idx, minlength=w * h)
    with np.errstate(invalid="ignore"):
        return (s / n).reshape(h, w)


def synced(page, dmap) -> dict:
    """Wait until the server aggregated the window the browser shows and the browser drew it.

    Returns the page's views (plots, glyphs) at that moment.
    """
    def check():
        last = dmap.view.last
        if not last or last["window"] is None:
            return None
        v = bj.views(page)
        plot = v["plots"][0]
        (x0, x1), (y0, y1) = last["window"]
        w, h = last["canvas"]
        xr, yr = sorted(plot["x_range"]), sorted(plot["y_range"])
        want = ((max(0, math.floor(xr[0])), min(C, math.ceil(xr[1]))),
                (max(0, math.floor(yr[0])), min(R, math.ceil(yr[1]))))
        if last["window"] != want:
            return None
        images = [g for g in v["glyphs"] if g["type"] == "Image"]
        if not images:
            return None
        img = images[0]
        if ((img["x"], img["dw"], img["y"], img["dh"]) != (x0, x1 - x0, y0, y1 - y0)
                or img["shape"] != [h, w]):
            return None
        return v

    v = bj.wait_until(check, page, "the server's window and the browser's image to agree")
    # two animation frames: the canvas is repainted with the new image
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    return v


def palette_index(img: np.ndarray) -> np.ndarray:
    """(h, w) index of the nearest coolwarm palette entry of every pixel of an RGB image."""
    pal = palette()
    flat = img.reshape(-1, 3).astype(np.int32)
    index = np.empty(len(flat), dtype=np.int64)
    for k in range(0, len(flat), 20000):
        d = ((flat[k:k + 20000, None, :] - pal[None, :, :]) ** 2).sum(-1)
        index[k:k + 20000] = d.argmin(1)
    return index.reshape(img.shape[:2])


def expected_index(plot: dict, dmap, m: np.ndarray, shape) -> np.ndarray:
    """(h, w) palette index the reference raster gives each screen pixel of the frame."""
    h_s, w_s = shape
    (x0, x1), (y0, y1) = dmap.view.last["window"]
    w, h = dmap.view.last["canvas"]
    ref = reference_mean(m, dmap.view.last["window"], dmap.view.last["canvas"])
    xs, xe = plot["x_range"]
    ys, ye = plot["y_range"]           # start at the bottom, end at the top of the frame
    x = xs + (np.arange(w_s) + 0.5) / w_s * (xe - xs)
    y = ye + (np.arange(h_s) + 0.5) / h_s * (ys - ye)
    px = np.clip(np.floor((x - x0) * w / (x1 - x0)).astype(int), 0, w - 1)
    py = np.clip(np.floor((y - y0) * h / (y1 - y0)).astype(int), 0, h - 1)
    v = ref[py[:, None], px[None, :]]
    n = len(palette())
    return np.clip(np.floor((v - CLIM[0]) / (CLIM[1] - CLIM[0]) * n), 0, n - 1)


def agreement(index: np.ndarray, want: np.ndarray) -> float:
    """Fraction of screen pixels showing the colour of the reference value (one palette
    step of rounding) at themselves or a neighbouring pixel.

    The neighbour allowance absorbs Bokeh's sub-pixel placement of the image
    (here it lands about one screen pixel right of and below the frame's
    corner); the frame's outermost pixels (axis lines, border) are left out.
    """
    h, w = want.shape
    padded = np.pad(want, 1, mode="edge")
    ok = np.zeros((h, w), dtype=bool)
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            ok |= np.abs(index - padded[dy:dy + h, dx:dx + w]) <= 1
    return float(ok[1:-1, 1:-1].mean())


def check_picture(page, plot: dict, dmap, m: np.ndarray) -> None:
    """The frame shows the reference raster of the server's window, and not its mirror image."""
    img = bj.screenshot(page, plot)
    index = palette_index(img)
    want = expected_index(plot, dmap, m, index.shape)
    good, flipped = agreement(index, want), agreement(index, want[::-1])
    print(f"picture agreement {good:.4f} (upside down: {flipped:.4f})")
    assert good > 0.97
    # the comparison can fail: the picture upside down does not pass it
    assert flipped < 0.8


def test_heatmap_renders_the_matrix(shown, matrix, server_log):
    dmap, tab = shown
    plot = bj.frame(tab.page)
    assert (plot["width"], plot["height"]) == (W, H)
    assert dmap.view.last["window"] == ((0, C), (0, R))
    assert dmap.view.last["canvas"] == (W, H)
    img = bj.screenshot(tab.page, plot)
    assert img.shape == (H, W, 3)
    # a colour-mapped picture, not a blank or uniform canvas
    assert bj.distinct_colours(img) > 100
    assert img.std(axis=(0, 1)).max() > 20
    # and the right picture: each screen pixel has the palette colour of its
    # pixel's mean, row 0 at the top
    check_picture(tab.page, plot, dmap, matrix)
    tab.assert_clean()
    server_log.assert_clean()


def test_wheel_zoom_reaggregates_finer_detail(shown, matrix, server_log):
    dmap, tab = shown
    page = tab.page
    plot = bj.frame(page)
    before = bj.screenshot(page, plot)
    updates0, last0 = dmap.view.updates, dict(dmap.view.last)
    # zoom in around the data point (750, 500): 150 px right of, 100 px below the frame's corner
    cx, cy = plot["x"] + 150, plot["y"] + 100
    bj.wheel(page, cx, cy, steps=4)
    bj.wait_until(lambda: dmap.view.updates > updates0 and dmap.view.last["cells"] < last0["cells"],
                  page, "the server to re-aggregate after the wheel zoom")
    synced(page, dmap)
    plot = bj.frame(page)
    last = dmap.view.last
    (x0, x1), (y0, y1) = last["window"]
    # a smaller window, around the point under the cursor (wheel zoom keeps it fixed)
    assert x1 - x0 < C / 4 and y1 - y0 < R / 4
    assert x0 <= 750 < x1 and y0 <= 500 < y1
    # finer detail: one element per canvas pixel now (the canvas is the visible
    # cell count), against 25 before
    assert last0["cells"] / (last0["canvas"][0] * last0["canvas"][1]) == 25
    assert last["canvas"] == (x1 - x0, y1 - y0)
    assert last["cells"] == (x1 - x0) * (y1 - y0) < last0["cells"] / 10
    # what the browser got is a screenful, not the matrix
    assert last["bytes"] < last0["bytes"]
    after = bj.screenshot(page, plot)
    assert np.abs(after.astype(int) - before.astype(int)).mean() > 10
    # the checkerboard, invisible in the full view, is now drawn element by element
    check_picture(page, plot, dmap, matrix)
    tab.assert_clean()
    server_log.assert_clean()


def _check_hover(fields: dict, m: np.ndarray, rows: tuple[int, int], cols: tuple[int, int]):
    assert bj.parse_span(fields["rows"]) == rows
    assert bj.parse_span(fields["cols"]) == cols
    block = m[rows[0]:rows[1] + 1, cols[0]:cols[1] + 1].astype(np.float64)
    assert int(bj.parse_number(fields["elements"])) == block.size
    for name, value in (("mean", block.mean()), ("min", block.min()), ("max", block.max()),
                        ("std", block.std())):
        assert bj.tooltip_close(fields[name], value), (name, fields[name], value)


def test_hover_shows_the_pixels_values(shown, matrix, server_log):
    dmap, tab = shown
    page = tab.page
    plot = bj.frame(page)
    # full view: screen pixel (317, 123) of the frame is canvas pixel (317, 123),
    # which holds columns 1585..1589 and rows 615..619 (5 x 5 per pixel)
    text = bj.hover_text(page, plot["x"] + 317, plot["y"] + 123)
    fields = bj.parse_tooltip(text)
    for key in ("rows", "cols", "mean"):
        assert key in fields, text
    _check_hover(fields, matrix, (615, 619), (1585, 1589))

    # deep zoom: one element is a block of several screen pixels; hover the
    # middle of one and read that very element back
    updates0 = dmap.view.updates
    bj.wheel(page, plot["x"] + 300, plot["y"] + 200, steps=5)
    bj.wait_until(lambda: dmap.view.updates > updates0, page, "a re-aggregation after the zoom")
    synced(page, dmap)
    plot = bj.frame(page)
    xs, xe = plot["x_range"]
    ys, ye = plot["y_range"]
    assert plot["width"] / abs(xe - xs) > 4 and plot["height"] / abs(ye - ys) > 4
    j = int((xs + xe) / 2) + 3
    i = int((ys + ye) / 2) - 2
    sx = plot["x"] + (j + 0.5 - xs) / (xe - xs) * plot["width"]
    sy = plot["y"] + (i + 0.5 - ye) / (ys - ye) * plot["height"]
    fields = bj.parse_tooltip(bj.hover_text(page, round(sx), round(sy)))
    _check_hover(fields, matrix, (i, i), (j, j))
    assert bj.tooltip_close(fields["mean"], float(matrix[i, j]))
    assert bj.tooltip_close(fields["std"], 0.0)
    tab.assert_clean()
    server_log.assert_clean()
