"""dv.heatmap: the HoloViews/Bokeh model it produces and how it re-aggregates on zoom."""

import numpy as np
import pytest

hv = pytest.importorskip("holoviews")
import holoviews.plotting.bokeh  # noqa: E402,F401 - registers the bokeh backend
from bokeh.document import Document  # noqa: E402
from bokeh.models import (ColorBar, CustomJSTickFormatter, EqHistColorMapper,  # noqa: E402
                          LinearColorMapper, LogColorMapper)

import dlviz_gpu as dv  # noqa: E402
from dlviz_gpu.views import style  # noqa: E402


def render(obj):
    return hv.renderer("bokeh").instance(mode="server").get_plot(obj, doc=Document())


def range_stream(dmap):
    return next(s for s in dmap.streams if isinstance(s, hv.streams.RangeXY))


def image_of(plot, name="image"):
    """The plotted 2-D plane ``name``: Bokeh's image row 0 is at y = y0, the
    smallest row index, which the inverted y axis puts at the top."""
    return np.asarray(plot.handles["source"].data[name][0])


def colour_plane(plot):
    data = plot.handles["source"].data
    return image_of(plot, "image" if "image" in data else "colour")


@pytest.fixture
def weights(rng):
    return rng.standard_normal((400, 600)).astype(np.float32)


def test_model_ranges_colour_hover(weights):
    dmap = dv.heatmap(weights, width=300, height=200)
    plot = render(dmap)
    fig = plot.state
    assert (fig.x_range.start, fig.x_range.end) == (0, 600)
    # row 0 at the top: the y axis runs from the last row (bottom) to 0 (top)
    assert (fig.y_range.start, fig.y_range.end) == (400, 0)
    mapper = plot.handles["color_mapper"]
    assert isinstance(mapper, LinearColorMapper)
    assert mapper.low == pytest.approx(-mapper.high)          # signed: symmetric
    expected = np.percentile(np.abs(dv.rasterize(weights, 512, 400)["mean"]), 99.5)
    assert mapper.high == pytest.approx(expected, rel=1e-6)
    import colorcet as cc
    assert list(mapper.palette) == list(cc.palette["coolwarm"])
    assert mapper.nan_color.lower() == style.NAN_COLOR
    assert any(isinstance(r, ColorBar) for r in fig.right)
    labels = [t[0] for t in plot.handles["hover"].tooltips]
    assert labels == ["rows", "cols", "elements", "mean", "min", "max", "std"]
    assert "400x600" in fig.title.text and "float32" in fig.title.text


def test_full_view_image_is_the_raster(weights):
    dmap = dv.heatmap(weights, width=300, height=200)
    plot = render(dmap)
    r = dv.rasterize(weights, 300, 200)
    np.testing.assert_allclose(colour_plane(plot), r["mean"], rtol=1e-6)
    np.testing.assert_array_equal(image_of(plot, "count"), r["count"])
    np.testing.assert_array_equal(image_of(plot, "max"), r["max"].astype(np.float32))
    assert dmap.view.last["canvas"] == (300, 200)
    assert dmap.view.last["window"] == ((0, 600), (0, 400))


def test_zoom_reaggregates_only_the_window(weights):
    dmap = dv.heatmap(weights, width=300, height=200)
    plot = render(dmap)
    before = dmap.view.updates
    range_stream(dmap).event(x_range=(100.2, 399.7), y_range=(250.0, 50.0))  # inverted y
    assert dmap.view.updates == before + 1
    # snapped to whole cells; 300 columns on 300 pixels, 200 rows on 200 pixels
    assert dmap.view.last["window"] == ((100, 400), (50, 250))
    assert dmap.view.last["canvas"] == (300, 200)
    np.testing.assert_allclose(colour_plane(plot), weights[50:250, 100:400], rtol=1e-6)
    src = plot.handles["source"].data
    assert (src["x"][0], src["y"][0], src["dw"][0], src["dh"][0]) == (100, 50, 300, 200)


def test_deep_zoom_shows_single_elements_as_blocks(weights):
    dmap = dv.heatmap(weights, width=300, height=200)
    plot = render(dmap)
    range_stream(dmap).event(x_range=(10, 20), y_range=(3, 11))
    # fewer cells than pixels: the canvas is the visible cell count, not the plot size
    assert dmap.view.last["canvas"] == (10, 8)
    np.testing.assert_array_equal(colour_plane(plot), weights[3:11, 10:20])
    np.testing.assert_array_equal(image_of(plot, "count"), np.ones((8, 10)))
    # the hover's row / column formatters follow the frame's geometry
    fmts = plot.handles["hover"].formatters
    assert dict(fmts["$x"].args) == {"lo": 10.0, "hi": 20.0, "n": 10}
    assert dict(fmts["$y"].args) == {"lo": 3.0, "hi": 11.0, "n": 8}


def test_bytes_per_update_are_a_canvas_not_the_tensor(rng):
    small = rng.standard_normal((300, 500)).astype(np.float32)
    big = rng.standard_normal((3000, 5000)).astype(np.float32)
    sizes = []
    for m in (small, big):
        dmap = dv.heatmap(m, width=250, height=150)
        render(dmap)
        range_stream(dmap).event(x_range=(0, 500), y_range=(0, 300))
        sizes.append(dmap.view.last["bytes"])
    # five float32 planes of the 250 x 150 canvas, whatever the tensor's size
    assert sizes == [250 * 150 * 4 * 5] * 2


def test_pixel_ratio_scales_the_canvas(weights):
    dmap = dv.heatmap(weights, width=150, height=100, pixel_ratio=2)
    render(dmap)
    assert dmap.view.last["canvas"] == (300, 200)


def test_unsigned_and_count_get_a_sequential_palette(rng):
    import colorcet as cc

    pos = rng.random((100, 200)).astype(np.float32) + 1.0
    plot = render(dv.heatmap(pos, width=100, height=50))
    mapper = plot.handles["color_mapper"]
    assert list(mapper.palette) == list(cc.palette["bmy"])
    assert 1.0 <= mapper.low < mapper.high <= 2.0
    signed = rng.standard_normal((100, 200))
    plot = render(dv.heatmap(signed, agg="count", width=100, height=50))
    assert list(plot.handles["color_mapper"].palette) == list(cc.palette["bmy"])


@pytest.mark.parametrize("norm, mapper_type", [("log", LogColorMapper),
                                                ("eq_hist", EqHistColorMapper),
                                                ("linear", LinearColorMapper)])
def test_norms_pick_the_bokeh_mapper(rng, norm, mapper_type):
    m = rng.random((50, 80)) + 0.01
    plot = render(dv.heatmap(m, norm=norm, width=80, height=50))
    assert type(plot.handles["color_mapper"]) is mapper_type


def test_symlog_colours_transformed_values_and_labels_real_ones(rng):
    m = (rng.standard_normal((60, 90)) * 10.0 ** rng.integers(-3, 3, (60, 90))).astype(np.float32)
    dmap = dv.heatmap(m, norm="symlog", width=90, height=60)
    plot = render(dmap)
    lt = dmap.view.linthresh
    np.testing.assert_allclose(colour_plane(plot), style.symlog(m, lt), rtol=1e-5, atol=1e-7)
    # the hover still reads the real values
    np.testing.assert_allclose(image_of(plot, "mean"), m, rtol=1e-6)
    bar = next(r for r in plot.state.right if isinstance(r, ColorBar))
    assert isinstance(bar.formatter, CustomJSTickFormatter)


def test_explicit_clim_and_cmap(weights):
    plot = render(dv.heatmap(weights, clim=(-0.5, 2.0), cmap="fire", width=60, height=40))
    mapper = plot.handles["color_mapper"]
    assert (mapper.low, mapper.high) == (-0.5, 2.0)
    import colorcet as cc
    assert list(mapper.palette) == list(cc.palette["fire"])


def test_nan_pixels_are_marked_and_counted(weights):
    m = weights.copy()
    m[5, 7] = np.nan
    m[300, 500] = np.inf
    dmap = dv.heatmap(m, width=60, height=40)
    plot = render(dmap)
    colour = colour_plane(plot)
    # pixel of (5, 7): column floor(7.5 / 10), row floor(5.5 / 10)
    assert np.isnan(colour[0, 0]) and np.isnan(colour[30, 50])
    assert np.isfinite(np.delete(colour.ravel(), [0, 30 * 60 + 50])).all()
    # the hover keeps the finite mean and says how many were NaN / inf
    assert np.isfinite(image_of(plot, "mean")[0, 0])
    assert image_of(plot, "nan_count")[0, 0] == 1
    assert "NaN/inf" in [t[0] for t in plot.handles["hover"].tooltips]
    assert "2 NaN/inf" in plot.state.title.text
    ignore = render(dv.heatmap(m, nan="ignore", width=60, height=40))
    assert np.isfinite(colour_plane(ignore)[0, 0])


def test_all_nan_renders_and_says_so():
    m = np.full((30, 40), np.nan, dtype=np.float32)
    with pytest.warns(RuntimeWarning, match="every element is NaN or infinite"):
        dmap = dv.heatmap(m, width=40, height=30)
    plot = render(dmap)
    mapper = plot.handles["color_mapper"]
    assert np.isfinite([mapper.low, mapper.high]).all() and mapper.high > mapper.low
    assert np.isnan(colour_plane(plot)).all()
    assert "all values NaN/inf" in plot.state.title.text


def test_constant_tensor_has_valid_limits():
    for c in (0.0, 3.0, -2.0):
        plot = render(dv.heatmap(np.full((20, 30), c), width=30, height=20))
        mapper = plot.handles["color_mapper"]
        assert mapper.high > mapper.low
        assert mapper.low <= c <= mapper.high


def test_empty_window_renders_empty(weights):
    dmap = dv.heatmap(weights, width=60, height=40)
    plot = render(dmap)
    range_stream(dmap).event(x_range=(-300, -100), y_range=(-50, -10))
    assert dmap.view.last["canvas"] is None
    assert np.isnan(colour_plane(plot)).all()
    assert (image_of(plot, "count") == 0).all()


def test_conv_weight_is_a_mosaic_and_bf16_reads_in_place(rng):
    torch = pytest.importorskip("torch")
    w = torch.from_numpy(rng.standard_normal((8, 3, 5, 5)).astype(np.float32))
    dmap = dv.heatmap(w.to(torch.bfloat16), width=500, height=500)
    plot = render(dmap)
    assert dmap.view.last["window"] == ((0, 15), (0, 40))
    mosaic = w.to(torch.bfloat16).float().numpy().transpose(0, 2, 1, 3).reshape(40, 15)
    np.testing.assert_array_equal(colour_plane(plot), mosaic)
    assert "bfloat16" in plot.state.title.text


def test_static_image_and_composition(weights):
    img = dv.heatmap(weights, dynamic=False, width=120, height=80)
    assert isinstance(img, hv.Image)
    assert img.data.shape[:2] == (80, 120)
    layout = dv.heatmap(weights, width=120, height=80) + dv.heatmap(weights, agg="max",
                                                                     width=120, height=80)
    assert isinstance(layout, hv.Layout)
    plot = render(layout)
    assert len(plot.subplots) == 2
    overlay = dv.heatmap(weights, width=120, height=80) * hv.Points([(10, 10), (20, 30)])
    render(overlay)


@pytest.mark.parametrize("kwargs, match", [
    ({"agg": "median"}, r"agg: expected one of mean, min, max, extremum, std, count, nan_count"),
    ({"cmap": "nope"}, r"cmap: expected a colorcet palette name .*coolwarm.*got 'nope'"),
    ({"cmap": ["red"]}, r"cmap: expected .* at least two"),
    ({"norm": "cubic"}, r"norm: expected one of linear, log, symlog, eq_hist; got 'cubic'"),
    ({"clim": (1.0, 0.0)}, r"clim: expected finite low < high"),
    ({"clim": "auto"}, r"clim: expected \(low, high\)"),
    ({"nan": "drop"}, r"nan: expected one of mark, ignore"),
    ({"hover": ["mean", "median"]}, r"hover: expected one of"),
    ({"pixel_ratio": 0}, r"pixel_ratio: expected a number in \(0, 4\]"),
    ({"width": 0}, r"width"),
])
def test_bad_arguments_name_the_parameter(weights, kwargs, match):
    with pytest.raises(ValueError, match=match):
        dv.heatmap(weights, **kwargs)


def test_bad_tensor_is_refused():
    with pytest.raises((TypeError, ValueError), match="layout"):
        dv.heatmap(np.zeros((2, 3, 4)))
