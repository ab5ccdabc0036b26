"""dv.curve: the HoloViews/Bokeh model it produces and how it re-decimates on zoom."""

import io

import numpy as np
import pytest

hv = pytest.importorskip("holoviews")
pytest.importorskip("holoviews.plotting.bokeh")  # registers the bokeh backend
from bokeh.document import Document  # noqa: E402
from bokeh.models import LogScale  # noqa: E402

import dlviz_gpu as dv  # noqa: E402

W, H = 200, 150


def render(obj):
    return hv.renderer("bokeh").instance(mode="server").get_plot(obj, doc=Document())


def range_stream(dmap):
    return next(s for s in dmap.streams if isinstance(s, hv.streams.RangeX))


def layers(plot, kind="Curve"):
    """The subplots of one element type, in overlay order."""
    return [sp for key, sp in plot.subplots.items() if key[0] == kind]


def drawn(sub):
    data = sub.handles["source"].data
    return np.asarray(data["step"], dtype=np.float64), np.asarray(data["y"], dtype=np.float64)


def m4_reference(y, pos, x_range, width):
    """Indices of the first / min / max / last finite sample of each pixel column (NumPy)."""
    x0, x1 = x_range
    keep = []
    cols = {}
    for i, (p, v) in enumerate(zip(pos, y)):
        if not np.isfinite(v) or not (x0 <= p <= x1):
            continue
        c = width - 1 if p == x1 else int(np.floor((p - x0) * width / (x1 - x0)))
        cols.setdefault(c, []).append(i)
    for idx in cols.values():
        idx = np.asarray(idx)
        vals = y[idx]
        keep += [idx[0], idx[-1], idx[np.argmin(vals)], idx[np.argmax(vals)]]
    return np.unique(np.asarray(keep, dtype=np.int64))


def ema(y, w):
    """TensorBoard's debiased exponential moving average (NaN/inf samples stay)."""
    out = np.empty(len(y))
    last, k = 0.0, 0
    for i, v in enumerate(y):
        if np.isfinite(v):
            last = w * last + (1 - w) * v
            k += 1
            out[i] = last / (1 - w ** k)
        else:
            out[i] = v
    return out


@pytest.fixture
def walk(rng):
    return np.cumsum(rng.standard_normal(3000))


def test_model_ranges_hover_title(walk):
    dmap = dv.curve(walk, width=W, height=H, label="loss")
    plot = render(dmap)
    fig = plot.state
    assert (fig.x_range.start, fig.x_range.end) == (0, 3000)
    assert fig.y_range.start <= walk.min() and fig.y_range.end >= walk.max()
    (line,) = layers(plot)
    assert [t[0] for t in line.handles["hover"].tooltips] == ["step", "value"]
    assert line.handles["hover"].mode == "vline"
    assert "loss [3,000 samples]" in fig.title.text
    assert fig.yaxis[0].axis_label == "loss"
    xs, ys = drawn(line)
    idx = m4_reference(walk, np.arange(3000.0), (0, 3000), W)
    np.testing.assert_array_equal(xs, idx)
    np.testing.assert_array_equal(ys, walk[idx])
    assert dmap.view.last["canvas"] == (W, H)
    assert dmap.view.last["vertices"] == len(idx)


def test_zoom_redecimates_exactly(walk):
    dmap = dv.curve(walk, width=W, height=H)
    plot = render(dmap)
    before = dmap.view.updates
    window = (700.25, 2100.5)
    range_stream(dmap).event(x_range=window)
    assert dmap.view.updates == before + 1
    assert dmap.view.last["window"] == window
    fig = plot.state
    assert (fig.x_range.start, fig.x_range.end) == window     # x stays where it was put
    (line,) = layers(plot)
    xs, ys = drawn(line)
    idx = m4_reference(walk, np.arange(3000.0), window, W)
    np.testing.assert_array_equal(xs, idx)
    np.testing.assert_array_equal(ys, walk[idx])
    # the y axis follows the visible samples
    seen = walk[701:2101]
    assert fig.y_range.start <= seen.min() and fig.y_range.end >= seen.max()
    assert fig.y_range.end - fig.y_range.start < 1.2 * (walk.max() - walk.min())
    # deep zoom: fewer samples than pixels, every sample drawn
    range_stream(dmap).event(x_range=(1000.0, 1050.0))
    xs, ys = drawn(layers(plot)[0])
    np.testing.assert_array_equal(xs, np.arange(1000, 1051))
    np.testing.assert_array_equal(ys, walk[1000:1051])


def test_zoom_with_positions(rng, walk):
    steps = np.cumsum(rng.integers(1, 20, walk.size)).astype(np.float64)
    dmap = dv.curve(walk, x=steps, width=W, height=H)
    plot = render(dmap)
    assert (plot.state.x_range.start, plot.state.x_range.end) == (steps[0], steps[-1])
    (line,) = layers(plot)
    assert [t[0] for t in line.handles["hover"].tooltips] == ["step", "value", "sample"]
    window = (float(steps[400]) + 0.5, float(steps[2500]))
    range_stream(dmap).event(x_range=window)
    xs, ys = drawn(layers(plot)[0])
    idx = m4_reference(walk, steps, window, W)
    np.testing.assert_array_equal(xs, steps[idx])
    np.testing.assert_array_equal(ys, walk[idx])
    np.testing.assert_array_equal(layers(plot)[0].handles["source"].data["index"], idx)


def test_smoothing_draws_raw_faint_and_smoothed(walk):
    dmap = dv.curve(walk, smoothing=0.9, width=W, height=H, label="loss")
    plot = render(dmap)
    raw, smooth = layers(plot)
    assert raw.handles["glyph"].line_alpha == pytest.approx(0.3)
    assert smooth.handles["glyph"].line_alpha == pytest.approx(1.0)
    assert [t[0] for t in smooth.handles["hover"].tooltips] == ["step", "smoothed"]
    assert [i.label.value for i in plot.state.legend[0].items] == [
        "loss", "loss (smoothed 0.9)"]
    window = (500.0, 2500.0)
    range_stream(dmap).event(x_range=window)
    raw, smooth = layers(plot)
    s = ema(walk, 0.9)
    xs, ys = drawn(smooth)
    idx = m4_reference(s, np.arange(3000.0), window, W)
    np.testing.assert_array_equal(xs, idx)
    np.testing.assert_allclose(ys, s[idx], rtol=1e-9, atol=1e-12)
    xs, ys = drawn(raw)
    np.testing.assert_array_equal(xs, m4_reference(walk, np.arange(3000.0), window, W))
    assert "smoothing 0.9" in plot.state.title.text


def test_nan_and_inf_are_skipped_marked_and_counted(walk):
    y = walk.copy()
    y[1000:1003] = np.nan
    y[2000] = np.inf
    dmap = dv.curve(y, width=W, height=H)
    plot = render(dmap)
    assert "4 NaN/inf" in plot.state.title.text
    xs, ys = drawn(layers(plot)[0])
    assert np.isfinite(ys).all()
    np.testing.assert_array_equal(xs, m4_reference(y, np.arange(3000.0), (0, 3000), W))
    (marks,) = layers(plot, "VLines")
    pos = np.sort(np.asarray(marks.handles["source"].data["step"], dtype=np.float64))
    width = 3000 / W                                     # one mark per column holding any
    np.testing.assert_allclose(pos, [(np.floor(1000 / width) + 0.5) * width,
                                     (np.floor(2000 / width) + 0.5) * width])
    assert dmap.view.last["nan_columns"] == 2
    range_stream(dmap).event(x_range=(0.0, 500.0))       # none in view: no mark
    (marks,) = layers(plot, "VLines")
    assert len(marks.handles["source"].data["step"]) == 0


def test_all_nan_and_empty_series_render_and_say_so():
    plot = render(dv.curve(np.full(50, np.nan), width=W, height=H))
    assert "all values NaN/inf" in plot.state.title.text
    assert len(drawn(layers(plot)[0])[0]) == 0
    plot = render(dv.curve(np.zeros(0), width=W, height=H))
    assert "empty series" in plot.state.title.text


def test_lists_torch_logy_and_colour(walk):
    plot = render(dv.curve([3.0, 1.0, 2.0, 0.5], width=W, height=H, color="#ff0000"))
    xs, ys = drawn(layers(plot)[0])
    np.testing.assert_array_equal(ys, [3.0, 1.0, 2.0, 0.5])
    assert layers(plot)[0].handles["glyph"].line_color == "#ff0000"
    torch = pytest.importorskip("torch")
    t = torch.from_numpy(np.exp(walk / 50)).to(torch.float32)
    plot = render(dv.curve(t, logy=True, width=W, height=H))
    assert isinstance(plot.state.y_scale, LogScale)
    xs, ys = drawn(layers(plot)[0])
    idx = m4_reference(t.numpy(), np.arange(3000.0), (0, 3000), W)
    np.testing.assert_array_equal(ys, t.numpy()[idx].astype(np.float64))


def test_static_frame_and_save(tmp_path, walk):
    from PIL import Image

    over = dv.curve(walk, smoothing=0.6, width=W, height=H, dynamic=False)
    assert isinstance(over, hv.Overlay)
    assert [type(el).__name__ for el in over] == ["Curve", "Curve"]
    y = walk.copy()
    y[10] = np.nan
    for name, obj in (("smooth", dv.curve(walk, smoothing=0.6, width=W, height=H)),
                      ("nan", dv.curve(y, x=np.arange(3000) * 10, width=W, height=H))):
        html = dv.save(obj, tmp_path / f"{name}.html")
        assert "Bokeh" in html.read_text()
        raw = dv.save(obj, tmp_path / f"{name}.png").read_bytes()
        assert raw[:8] == b"\x89PNG\r\n\x1a\n"
        pixels = np.asarray(Image.open(io.BytesIO(raw)).convert("RGB"))
        assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 10


@pytest.mark.parametrize("args, kwargs, exc, match", [
    ((np.zeros(10),), dict(smoothing=1.0), ValueError,
     r"smoothing: expected a weight in \[0, 1\) \(0 = no smoothing\); got 1\.0"),
    ((np.zeros(10),), dict(smoothing=-0.1), ValueError, r"smoothing: expected a weight"),
    ((np.zeros(10),), dict(smoothing="x"), TypeError, r"smoothing: expected a number"),
    ((np.zeros((3, 4)),), {}, ValueError, r"y: expected a 1-D series; got shape \(3, 4\)"),
    ((np.zeros(10),), dict(x=np.arange(9)), ValueError,
     r"x: expected 10 positions \(one per sample of y\); got 9"),
    ((np.zeros(3),), dict(x=[0, 2, 1]), ValueError,
     r"x: expected finite, non-decreasing positions .* x\[2\] = 1\.0 is below x\[1\] = 2\.0"),
    ((np.zeros(3),), dict(color=3), ValueError, r"color: expected a colour string"),
    ((np.zeros(3),), dict(logy="yes"), TypeError, r"logy: expected True or False"),
    ((np.zeros(3),), dict(width=0), ValueError, r"width: expected a positive integer"),
])
def test_bad_input(args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        dv.curve(*args, **kwargs)


def test_resize_decimates_at_the_new_width(walk):
    dmap = dv.curve(walk, width=W, height=H)
    plot = render(dmap)
    size = next(s for s in dmap.streams if isinstance(s, hv.streams.PlotSize))
    size.event(width=50, height=H)
    assert dmap.view.last["canvas"] == (50, H)
    xs, _ = drawn(layers(plot)[0])
    np.testing.assert_array_equal(xs, m4_reference(walk, np.arange(3000.0), (0, 3000), 50))
