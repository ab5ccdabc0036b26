"""dv.histplot, dv.distribution, dv.bars: the Bokeh models they produce, checked
against counts and percentiles computed independently with NumPy."""

import numpy as np
import pytest

hv = pytest.importorskip("holoviews")
import holoviews.plotting.bokeh  # noqa: E402,F401 - registers the bokeh backend
from bokeh.models import (EqHistColorMapper, LinearColorMapper, LogColorMapper,  # noqa: E402
                          LogScale)

import dlviz_gpu as dv  # noqa: E402
from dlviz_gpu.kernels.histogram import symlog_forward  # noqa: E402
from dlviz_gpu.views.distributions import HORIZONTAL_ABOVE  # noqa: E402


def render(obj):
    return hv.renderer("bokeh").get_plot(obj)


def subplot(plot, kind, column=None):
    """Subplots of an overlay plot drawing element type ``kind`` (with ``column``)."""
    out = [sp for sp in plot.subplots.values()
           if type(sp.hmap.last).__name__ == kind
           and (column is None or column in sp.handles["source"].data)]
    return out


def mapper_of(plot):
    return next(v for k, v in plot.handles.items() if k.endswith("color_mapper"))


def data_of(plot):
    return {k: np.asarray(v) for k, v in plot.handles["source"].data.items()}


@pytest.fixture
def values(rng):
    return rng.standard_normal(20_000).astype(np.float32)


# --------------------------------------------------------------------------
# histplot
# --------------------------------------------------------------------------

def test_histplot_edges_and_counts_are_exact(values):
    obj = dv.histplot(values, bins=64)
    h = dv.histogram(values, bins=64)
    d = data_of(render(obj))
    np.testing.assert_array_equal(d["left"], h.edges[:-1])
    np.testing.assert_array_equal(d["right"], h.edges[1:])
    expect, _ = np.histogram(values.astype(np.float64), bins=h.edges)
    np.testing.assert_array_equal(d["top"], expect)
    assert d["top"].sum() == values.size
    np.testing.assert_allclose(d["fraction"], expect / values.size)


def test_histplot_hover_shows_bin_count_fraction(values):
    plot = render(dv.histplot(values, bins=16))
    tips = dict(plot.handles["hover"].tooltips)
    assert set(tips) >= {"bin", "count", "fraction"}
    assert "@{bin}" in tips["bin"] and "@{count}" in tips["count"]
    labels = list(plot.handles["source"].data["bin"])
    assert labels[0].startswith("[") and labels[0].endswith(")")
    assert labels[-1].endswith("]")           # the last bin is closed
    assert len(set(labels)) == 16


def test_histplot_from_histogram_and_specials_in_title():
    x = np.array([-5.0, -4.0, 0.1, 0.2, 0.5, 0.9, 7.0, np.nan, np.nan, np.inf, -np.inf, -np.inf])
    h = dv.histogram(x, bins=4, range=(0.0, 1.0))
    plot = render(dv.histplot(h))
    title = plot.state.title.text
    for part in ("2 below range", "1 above range", "2 NaN", "1 +inf", "2 -inf"):
        assert part in title
    assert "12 values" in title
    d = data_of(plot)
    np.testing.assert_array_equal(d["left"], h.edges[:-1])
    np.testing.assert_array_equal(d["top"], np.histogram(x[(x >= 0) & (x <= 1)],
                                                         bins=h.edges)[0])
    clean = render(dv.histplot(np.array([0.1, 0.2]))).state.title.text
    assert "not in the bins" not in clean and "NaN" not in clean


def test_histplot_logy_leaves_empty_bins_out():
    x = np.concatenate([np.zeros(1000), np.full(3, 10.0)])   # empty bins between
    plot = render(dv.histplot(x, bins=10, logy=True))
    assert isinstance(plot.state.y_scale, LogScale)
    d = data_of(plot)
    expect = np.histogram(x, bins=10, range=(0.0, 10.0))[0]
    assert expect[1:-1].sum() == 0
    np.testing.assert_array_equal(np.isnan(d["top"]), expect == 0)
    np.testing.assert_array_equal(d["top"][expect > 0], expect[expect > 0])
    assert 0 < plot.state.y_range.start < 1 <= expect[expect > 0].min()
    linear = render(dv.histplot(x, bins=10))
    assert not isinstance(linear.state.y_scale, LogScale)


def test_histplot_log_and_symlog_axes(rng):
    pos = np.exp(rng.standard_normal(5000))
    plot = render(dv.histplot(pos, bins=20, scale="log"))
    assert isinstance(plot.state.x_scale, LogScale)
    h = dv.histogram(pos, bins=20, scale="log")
    np.testing.assert_array_equal(data_of(plot)["left"], h.edges[:-1])

    signed = rng.standard_normal(5000) ** 3
    h = dv.histogram(signed, bins=20, scale="symlog")
    plot = render(dv.histplot(h))
    d = data_of(plot)
    # drawn in symlog coordinates: equal widths on screen, real edges in the hover
    np.testing.assert_allclose(d["left"], symlog_forward(h.edges[:-1], h.linthresh))
    np.testing.assert_allclose(np.diff(d["left"]), np.diff(d["left"])[0], rtol=1e-9)
    np.testing.assert_array_equal(d["lo"], h.edges[:-1])
    labels = plot.state.xaxis[0].major_label_overrides
    assert "0" in labels.values()
    for pos_, text in labels.items():
        np.testing.assert_allclose(pos_, symlog_forward(float(text), h.linthresh))


def test_histplot_several_tensors_legend(values):
    b = values * 3
    plot = render(dv.histplot({"weights": values, "grads": b}, bins=32))
    labels = [item.label["value"] for item in plot.state.legend[0].items]
    assert labels == ["weights", "grads"]
    # shared edges, exact counts per tensor
    bars_ = subplot(plot, "Histogram")
    assert len(bars_) == 2
    edges = dv.histogram([values, b], bins=32).edges
    for sp, t in zip(bars_, (values, b)):
        d = data_of(sp)
        np.testing.assert_array_equal(d["left"], edges[:-1])
        np.testing.assert_array_equal(d["top"], np.histogram(t, bins=edges)[0])
    plot = render(dv.histplot([values, b], bins=8, label=["a", "b"]))
    assert [i.label["value"] for i in plot.state.legend[0].items] == ["a", "b"]
    plot = render(dv.histplot([values, b], bins=8))
    assert [i.label["value"] for i in plot.state.legend[0].items] == ["tensor 0", "tensor 1"]


def test_histplot_specials_per_tensor_in_overlay_title(values):
    bad = values.copy()
    bad[:4] = np.nan
    title = render(dv.histplot({"ok": values, "bad": bad}, bins=8)).state.title.text
    assert "bad: 4 NaN" in title and "ok:" not in title


def test_histplot_composes(values):
    layout = dv.histplot(values, bins=8) + dv.bars({"a": 1.0, "b": 2.0})
    assert isinstance(layout, hv.Layout)
    overlay = dv.histplot(values, bins=8) * dv.histplot(values * 2, bins=8)
    assert isinstance(overlay, hv.Overlay)
    render(layout)
    render(overlay)


def figures(plot):
    from holoviews.plotting.bokeh.element import ElementPlot

    return [sp.handles["plot"] for sp in plot.traverse(lambda x: x, [ElementPlot])]


def test_layout_links_only_axes_in_the_same_coordinate(values, rng):
    # two linear histograms share their value and count axes (linked zoom) ...
    a, b = figures(render(dv.histplot(values, bins=8) + dv.histplot(values * 2, bins=8)))
    assert a.x_range is b.x_range and a.y_range is b.y_range
    # ... but a log count axis or symlog coordinates never share a linear range
    a, b = figures(render(dv.histplot(values, bins=8) + dv.histplot(values, bins=8, logy=True)))
    assert a.y_range is not b.y_range
    a, b = figures(render(dv.histplot(values, bins=8)
                          + dv.histplot(values, bins=8, scale="symlog")))
    assert a.x_range is not b.x_range


# HoloViews' own range pass over the (all-NaN) bar heights warns; nothing of ours
@pytest.mark.filterwarnings("ignore:All-NaN slice encountered:RuntimeWarning")
def test_all_nan_inputs_render_and_say_so():
    nan = np.full(50, np.nan, np.float32)
    plot = render(dv.histplot(nan, logy=True))
    assert "50 NaN" in plot.state.title.text
    assert data_of(plot)["top"].size == 256 and np.isnan(data_of(plot)["top"]).all()
    plot = render(dv.distribution([nan, nan]))
    assert "no value in the bins" in plot.state.title.text
    assert "100 NaN" in plot.state.title.text
    assert data_of(subplot(plot, "Rectangles")[0])["count"].size == 0
    plot = render(dv.bars({"a": float("nan")}))
    assert "1 missing" in plot.state.title.text


def test_histplot_errors(values):
    stacked = dv.histogram([values, values], bins=8)
    with pytest.raises(ValueError, match="stacked.*dv.distribution.*h\\[0\\]"):
        dv.histplot(stacked)
    with pytest.raises(ValueError, match="scale: expected one of"):
        dv.histplot(values, scale="cubic")
    with pytest.raises(ValueError, match="range: applies to tensors"):
        dv.histplot(dv.histogram(values), range=(0, 1))
    with pytest.raises(ValueError, match="label: expected 2 names"):
        dv.histplot([values, values], label=["a"])
    with pytest.raises(ValueError, match="at least one tensor"):
        dv.histplot([])
    with pytest.raises(TypeError, match="logy"):
        dv.histplot(values, logy="yes")


# --------------------------------------------------------------------------
# distribution
# --------------------------------------------------------------------------

@pytest.fixture
def steps_data(rng):
    # a widening normal over 6 steps, plus a NaN and an inf at step 2
    data = [rng.standard_normal(4000) * (1 + 0.5 * t) for t in range(6)]
    data[2][:3] = [np.nan, np.nan, np.inf]
    return data


def test_distribution_cells_are_exact_counts(steps_data):
    obj = dv.distribution(steps_data, bins=40, norm="log")
    h = dv.histogram(steps_data, bins=40)
    plot = render(obj)
    rect = subplot(plot, "Rectangles")[0]
    d = data_of(rect)
    assert isinstance(mapper_of(rect), LogColorMapper)
    for t, x in enumerate(steps_data):
        expect = np.histogram(x[np.isfinite(x)], bins=h.edges)[0]
        sel = d["at_step"] == t
        k = np.searchsorted(h.edges, d["bottom"][sel])
        np.testing.assert_array_equal(d["bottom"][sel], h.edges[k])
        np.testing.assert_array_equal(d["top"][sel], h.edges[k + 1])
        np.testing.assert_array_equal(d["count"][sel], expect[k])
        assert d["count"][sel].sum() == expect.sum()   # every non-empty bin drawn once
        assert np.all(d["left"][sel] == t - 0.5) and np.all(d["right"][sel] == t + 0.5)
    tips = dict(rect.handles["hover"].tooltips)
    assert {"step", "bin", "count"} <= set(tips)
    title = plot.state.title.text
    assert "6 steps x 40 bins" in title and "2 NaN" in title and "1 +inf" in title


def test_distribution_percentiles_match_numpy(rng):
    data = [rng.uniform(-1 - t, 1 + t, 50_000) for t in range(4)]
    obj = dv.distribution(data, bins=100)
    h = dv.histogram(data, bins=100)
    width = float(np.max(h.widths))
    plot = render(obj)
    line = subplot(plot, "Curve", "p50")
    assert len(line) == 1
    d = data_of(line[0])
    for q in (0, 7, 16, 31, 50, 69, 84, 93, 100):
        expect = [np.percentile(x, q) for x in data]
        np.testing.assert_allclose(d[f"p{q}"], expect, atol=width)
    np.testing.assert_allclose(d["y"], [np.median(x) for x in data], atol=width)
    assert {"step", "50 %", "16 %"} <= set(dict(line[0].handles["hover"].tooltips))
    # the bands: one Area per symmetric pair, outermost first
    areas = [el for el in obj if isinstance(el, hv.Area)]
    assert len(areas) == 4
    lo, hi = areas[1].dimension_values(1), areas[1].dimension_values(2)
    np.testing.assert_allclose(lo, [np.percentile(x, 7) for x in data], atol=width)
    np.testing.assert_allclose(hi, [np.percentile(x, 93) for x in data], atol=width)
    assert len(subplot(plot, "Area")) == 4


def test_distribution_steps_and_norms(steps_data):
    steps = [0, 10, 30, 35, 60, 100]
    plot = render(dv.distribution(steps_data, steps=steps, bins=16, norm="linear"))
    rect = subplot(plot, "Rectangles")[0]
    d = data_of(rect)
    assert isinstance(mapper_of(rect), LinearColorMapper)
    sel = d["at_step"] == 10
    assert np.all(d["left"][sel] == 5) and np.all(d["right"][sel] == 20)
    assert d["left"].min() == -5 and d["right"].max() == 120
    plot = render(dv.distribution(steps_data, bins=16, norm="eq_hist"))
    assert isinstance(mapper_of(subplot(plot, "Rectangles")[0]), EqHistColorMapper)
    plot = render(dv.distribution(steps_data, bins=16, value="fraction", percentiles=None))
    rect = subplot(plot, "Rectangles")[0]
    assert rect.handles["glyph"].fill_color["field"] == "color"
    d = data_of(rect)
    np.testing.assert_allclose(d["color"], d["fraction"])
    assert not subplot(plot, "Area") and not subplot(plot, "Curve")


def test_distribution_from_histograms(steps_data):
    hs = [dv.histogram(x, bins=24, range=(-10, 10)) for x in steps_data]
    a = render(dv.distribution(hs))
    b = render(dv.distribution(dv.histogram(steps_data, bins=24, range=(-10, 10))))
    da, db = data_of(subplot(a, "Rectangles")[0]), data_of(subplot(b, "Rectangles")[0])
    for key in ("left", "right", "bottom", "top", "count"):
        np.testing.assert_array_equal(da[key], db[key])
    # per-step edges (shared_range=False) stay per step
    h = dv.histogram(steps_data, bins=12, shared_range=False)
    d = data_of(subplot(render(dv.distribution(h)), "Rectangles")[0])
    for t in range(len(steps_data)):
        sel = d["at_step"] == t
        assert set(d["bottom"][sel]) <= set(h.edges[t][:-1])
        assert d["bottom"][sel].min() == h.edges[t][np.flatnonzero(h.counts[t])[0]]


def test_distribution_log_scale_axis(rng):
    data = [np.exp(rng.standard_normal(2000) + t) for t in range(3)]
    plot = render(dv.distribution(data, bins=30, scale="log"))
    assert isinstance(plot.state.y_scale, LogScale)


def test_distribution_errors(steps_data):
    with pytest.raises(ValueError, match="cmap: expected a colorcet palette"):
        dv.distribution(steps_data, cmap="not-a-palette")
    with pytest.raises(ValueError, match="norm: expected one of linear, log"):
        dv.distribution(steps_data, norm="sqrt")
    with pytest.raises(ValueError, match=r"percentiles: expected values in \[0, 100\]"):
        dv.distribution(steps_data, percentiles=(-1, 50, 101))
    with pytest.raises(ValueError, match="percentiles: expected strictly increasing"):
        dv.distribution(steps_data, percentiles=(50, 16, 84))
    with pytest.raises(ValueError, match="steps: expected 6 numbers"):
        dv.distribution(steps_data, steps=[0, 1])
    with pytest.raises(ValueError, match="steps: expected finite, strictly increasing"):
        dv.distribution(steps_data, steps=[0, 1, 1, 2, 3, 4])
    with pytest.raises(ValueError, match="value: expected one of count, fraction"):
        dv.distribution(steps_data, value="density")
    with pytest.raises(ValueError, match="got one tensor"):
        dv.distribution(np.zeros((4, 5)))
    with pytest.raises(ValueError, match="at least one step"):
        dv.distribution([])
    with pytest.raises(ValueError, match=r"histograms_over_steps\[1\]: expected 8 bins"):
        dv.distribution([dv.histogram(steps_data[0], bins=8),
                         dv.histogram(steps_data[1], bins=9)])


# --------------------------------------------------------------------------
# bars
# --------------------------------------------------------------------------

def test_bars_values_hover_sort_and_missing():
    m = {"embed": 3.0e6, "layer1.weight": 1.2e6, "layer1.bias": -2.0, "head": float("nan")}
    plot = render(dv.bars(m))
    assert list(plot.state.x_range.factors) == list(m)
    d = data_of(plot)
    np.testing.assert_array_equal(d["value"][:3], [3.0e6, 1.2e6, -2.0])
    assert np.isnan(d["value"][3])
    tips = dict(plot.handles["hover"].tooltips)
    assert tips["name"] == "@{name}" and "@{value}" in tips["value"]
    assert "1 missing (NaN/inf): head" in plot.state.title.text
    plot = render(dv.bars(m, sort=True))
    assert list(plot.state.x_range.factors) == ["embed", "layer1.weight", "layer1.bias", "head"]
    assert plot.state.xaxis[0].major_label_orientation == pytest.approx(np.pi / 4)


def test_bars_series_logy_and_many_names():
    pd = pytest.importorskip("pandas")
    s = pd.Series([10.0, 1000.0, 1.0], index=["a", "b", "c"])
    plot = render(dv.bars(s, logy=True, label="params"))
    assert isinstance(plot.state.y_scale, LogScale)
    assert list(plot.state.x_range.factors) == ["a", "b", "c"]
    assert plot.state.yaxis[0].axis_label == "params"
    n = HORIZONTAL_ABOVE + 60
    many = {f"blocks.{i}.mlp.weight": float(i) for i in range(n)}
    plot = render(dv.bars(many, height=300))
    factors = list(plot.state.y_range.factors)      # horizontal: names on the y axis
    assert factors == list(many)[::-1]               # the first name at the top
    assert plot.state.frame_height >= 10 * n


def test_bars_errors():
    with pytest.raises(ValueError, match="mapping: expected at least one"):
        dv.bars({})
    with pytest.raises(TypeError, match=r"mapping\['a'\]: expected a number"):
        dv.bars({"a": "big"})
    with pytest.raises(ValueError, match="logy: a log axis needs positive values.*'b'"):
        dv.bars({"a": 1.0, "b": -1.0}, logy=True)
    with pytest.raises(TypeError, match="mapping: expected a mapping"):
        dv.bars(42)


# --------------------------------------------------------------------------
# output
# --------------------------------------------------------------------------

@pytest.mark.parametrize("which", ["histplot", "distribution", "bars"])
def test_save_html_and_png(tmp_path, which, steps_data):
    from PIL import Image

    obj = {"histplot": lambda: dv.histplot(steps_data[:2], bins=16),
           "distribution": lambda: dv.distribution(steps_data, bins=16),
           "bars": lambda: dv.bars({"a": 1.0, "b": -2.0, "c": float("nan")})}[which]()
    html = dv.save(obj, tmp_path / "x.html")
    text = html.read_text()
    assert "<html" in text.lower() and "Bokeh" in text
    png = dv.save(obj, tmp_path / "x.png")
    with Image.open(png) as im:
        pixels = np.asarray(im.convert("RGB"))
    assert pixels.shape[0] > 50 and pixels.shape[1] > 50
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 5
    # the PNG (matplotlib) save leaves the views Bokeh views
    again = render({"histplot": lambda: dv.histplot(steps_data[:2], bins=16),
                    "distribution": lambda: dv.distribution(steps_data, bins=16),
                    "bars": lambda: dv.bars({"a": 1.0})}[which]())
    from bokeh.models import HoverTool, Plot

    assert isinstance(again.state, Plot)
    assert again.state.select(type=HoverTool)
