"""dv.scatter: the HoloViews/Bokeh model it produces and how it re-aggregates on zoom."""

import io

import numpy as np
import pytest

hv = pytest.importorskip("holoviews")
pytest.importorskip("holoviews.plotting.bokeh")  # registers the bokeh backend
from bokeh.document import Document  # noqa: E402
from bokeh.models import (ColorBar, EqHistColorMapper, LinearColorMapper,  # noqa: E402
                          LogColorMapper)

import dlviz_gpu as dv  # noqa: E402
from dlviz_gpu.views import points as vpoints  # noqa: E402

W, H = 120, 80


def render(obj):
    return hv.renderer("bokeh").instance(mode="server").get_plot(obj, doc=Document())


def range_stream(dmap):
    return next(s for s in dmap.streams if isinstance(s, hv.streams.RangeXY))


def plane(plot, name):
    """A plotted (h, w) plane; Bokeh's image row 0 is the y0 side."""
    return np.asarray(plot.handles["source"].data[name][0])


def assert_fields_exist(plot):
    """Every @field of the hover is a column of the plotted source (else Bokeh shows ???)."""
    import re

    keys = set(plot.handles["source"].data)
    for _, spec in plot.handles["hover"].tooltips:
        for field in re.findall(r"@\{(\w+)\}|@(\w+)", spec):
            assert (field[0] or field[1]) in keys, (spec, keys)


def expected_counts(x, y, x_range, y_range, w, h):
    """Per-pixel point counts by the points rule of docs/architecture.md, in float64 NumPy (row 0 = y0)."""
    (x0, x1), (y0, y1) = x_range, y_range
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    inside = (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)
    px = np.minimum(np.floor((x[inside] - x0) * w / (x1 - x0)).astype(np.int64), w - 1)
    py = np.minimum(np.floor((y[inside] - y0) * h / (y1 - y0)).astype(np.int64), h - 1)
    out = np.zeros((h, w), dtype=np.int64)
    np.add.at(out, (py, px), 1)
    return out


def padded(x, y):
    """The scatter's default window: the finite points' bounds, PAD wider a side."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    out = {}
    for key, v in (("x_range", x[ok]), ("y_range", y[ok])):
        lo, hi = v.min(), v.max()
        out[key] = (lo - vpoints.PAD * (hi - lo), hi + vpoints.PAD * (hi - lo))
    return out


@pytest.fixture
def cloud(rng):
    return rng.standard_normal((3000, 2))


def test_model_ranges_mapper_colourbar_hover(cloud):
    dmap = dv.scatter(cloud, width=W, height=H)
    plot = render(dmap)
    fig = plot.state
    lo, hi = cloud.min(0), cloud.max(0)
    pad = vpoints.PAD * (hi - lo)   # the outermost points stay clear of the axes
    assert (fig.x_range.start, fig.x_range.end) == pytest.approx((lo[0] - pad[0], hi[0] + pad[0]))
    assert (fig.y_range.start, fig.y_range.end) == pytest.approx((lo[1] - pad[1], hi[1] + pad[1]))
    assert np.ravel(dmap.view.bounds) == pytest.approx([lo[0], hi[0], lo[1], hi[1]])
    mapper = plot.handles["color_mapper"]
    assert isinstance(mapper, EqHistColorMapper)            # counts: eq_hist, as Datashader
    counts = dv.rasterize_points(*cloud.T, **padded(*cloud.T), width=W, height=H)["count"]
    assert (mapper.low, mapper.high) == (1, counts.max())    # this frame's counts
    import colorcet as cc
    assert list(mapper.palette) == list(cc.palette["bmy"])
    assert mapper.nan_color == vpoints.EMPTY                 # empty pixels are transparent
    assert any(isinstance(r, ColorBar) for r in fig.right)
    labels = [t[0] for t in plot.handles["hover"].tooltips]
    assert labels == ["x", "y", "points"]
    assert_fields_exist(plot)
    assert "3,000 points" in fig.title.text and "count" in fig.title.text


def test_full_view_counts_are_the_raster_and_spreading_only_colours(cloud):
    dmap = dv.scatter(cloud, width=W, height=H)
    plot = render(dmap)
    r = dv.rasterize_points(*cloud.T, **padded(*cloud.T), width=W, height=H)
    count = plane(plot, "count")
    np.testing.assert_array_equal(count, r["count"])
    colour = plane(plot, "image")
    filled = count > 0
    np.testing.assert_array_equal(colour[filled], count[filled])
    view = dmap.view
    assert view.last["canvas"] == (W, H)
    assert view.last["points"] == len(cloud)
    if view.last["spread"]:
        # spreading fills empty neighbours in the colour plane only
        assert np.isfinite(colour[~filled]).any()
    assert view.last["bytes"] == sum(np.asarray(v[0]).nbytes for k, v in
                                     plot.handles["source"].data.items() if k in
                                     ("image", "count"))


def test_zoom_reaggregates_the_window_exactly(cloud):
    dmap = dv.scatter(cloud, width=W, height=H, spread=0)
    plot = render(dmap)
    full = plane(plot, "count")
    before = dmap.view.updates
    xr, yr = (-0.5, 0.75), (-0.25, 0.5)
    range_stream(dmap).event(x_range=xr, y_range=yr)
    assert dmap.view.updates == before + 1
    assert dmap.view.last["window"] == (xr, yr)
    data = plot.handles["source"].data
    assert (data["x"][0], data["y"][0]) == (xr[0], yr[0])
    assert (data["dw"][0], data["dh"][0]) == pytest.approx((xr[1] - xr[0], yr[1] - yr[0]))
    count = plane(plot, "count")
    assert count.shape == (H, W)
    expected = expected_counts(cloud[:, 0], cloud[:, 1], xr, yr, W, H)
    np.testing.assert_array_equal(count, expected)
    inside = ((cloud[:, 0] >= xr[0]) & (cloud[:, 0] <= xr[1]) & (cloud[:, 1] >= yr[0])
              & (cloud[:, 1] <= yr[1])).sum()
    assert count.sum() == inside == dmap.view.last["points"]
    # finer detail: the same points now spread over many more pixels
    (fx0, fx1), (fy0, fy1) = dmap.view.extent
    cols = slice(int((xr[0] - fx0) / (fx1 - fx0) * W),
                 int(np.ceil((xr[1] - fx0) / (fx1 - fx0) * W)))
    rows = slice(int((yr[0] - fy0) / (fy1 - fy0) * H),
                 int(np.ceil((yr[1] - fy0) / (fy1 - fy0) * H)))
    assert (count > 0).sum() > 1.5 * (full[rows, cols] > 0).sum()
    assert count.max() < full[rows, cols].max()
    assert plot.handles["color_mapper"].high == count.max()


def test_empty_window_renders_empty(cloud):
    dmap = dv.scatter(cloud, width=W, height=H)
    plot = render(dmap)
    range_stream(dmap).event(x_range=(100.0, 101.0), y_range=(100.0, 101.0))
    assert plane(plot, "count").sum() == 0
    assert np.isnan(plane(plot, "image")).all()
    assert dmap.view.last["points"] == 0


def test_no_finite_point_renders_and_says_so():
    x = np.full(10, np.nan)
    with pytest.warns(RuntimeWarning, match="no point has finite x and y"):
        dmap = dv.scatter(x, np.arange(10.0), width=W, height=H)
    plot = render(dmap)
    assert "no finite points" in plot.state.title.text
    assert plane(plot, "count").sum() == 0


def test_nonfinite_coordinates_are_counted_in_the_title(cloud):
    pts = cloud.copy()
    pts[:7, 0] = np.inf
    plot = render(dv.scatter(pts, width=W, height=H))
    assert "7 with NaN/inf x or y not drawn" in plot.state.title.text
    assert plane(plot, "count").sum() == len(pts) - 7


def test_isolated_point_is_spread_but_its_count_is_not():
    x = np.array([0.0, 10.0, 5.0])
    y = np.array([0.0, 10.0, 5.0])
    plot = render(dv.scatter(x, y, width=41, height=41))
    count, colour = plane(plot, "count"), plane(plot, "image")
    assert count.sum() == 3 and (count > 0).sum() == 3
    r, c = 20, 20                                   # the middle point's pixel
    assert count[r, c] == 1
    block = colour[r - 1:r + 2, c - 1:c + 2]
    assert np.isfinite(block).all() and (block == 1).all()
    plot0 = render(dv.scatter(x, y, width=41, height=41, spread=0))
    assert np.isfinite(plane(plot0, "image")).sum() == 3


def test_spread_px_follows_dynspread_rule():
    sparse = np.zeros((50, 50), bool)
    sparse[::10, ::10] = True
    assert vpoints.spread_px(sparse) == 3           # isolated: the most
    dense = np.ones((50, 50), bool)
    assert vpoints.spread_px(dense) == 0            # already touching: none
    assert vpoints.spread_px(dense, 2) == 2


def test_value_mean_signed_colours_and_hover(rng):
    x, y = rng.random(2000), rng.random(2000)
    value = x - 0.5
    value[:5] = np.nan
    dmap = dv.scatter(x, y, value=value, width=W, height=H, spread=0)
    plot = render(dmap)
    mapper = plot.handles["color_mapper"]
    assert isinstance(mapper, LinearColorMapper)
    assert mapper.low == pytest.approx(-mapper.high) and mapper.high > 0
    import colorcet as cc
    assert list(mapper.palette) == list(cc.palette["coolwarm"])
    labels = [t[0] for t in plot.handles["hover"].tooltips]
    assert labels == ["x", "y", "points", "mean", "min", "max", "NaN/inf values"]
    assert_fields_exist(plot)
    assert "5 NaN/inf values" in plot.state.title.text
    r = dv.rasterize_points(x, y, **padded(x, y), value=value, width=W, height=H)
    np.testing.assert_allclose(plane(plot, "mean"), r["mean"], rtol=1e-6)
    np.testing.assert_allclose(plane(plot, "image"), r["mean"], rtol=1e-6)
    # the hover's count holds every point in the pixel, NaN values included
    np.testing.assert_array_equal(plane(plot, "count"), r["count"] + r["nan_count"])
    assert plane(plot, "count").sum() == 2000


@pytest.mark.parametrize("agg", ["min", "max", "sum"])
def test_value_aggs(rng, agg):
    x, y, v = rng.random(500), rng.random(500), rng.random(500) + 1
    plot = render(dv.scatter(x, y, value=v, agg=agg, width=30, height=20, spread=0))
    r = dv.rasterize_points(x, y, **padded(x, y), value=v, width=30, height=20)
    expect = np.where(r["count"] > 0, r[agg], np.nan)
    np.testing.assert_allclose(plane(plot, "image"), expect, rtol=1e-6)
    assert plot.handles["color_mapper"].low > 0             # unsigned: robust limits


def test_log_norm_and_explicit_clim(cloud):
    plot = render(dv.scatter(cloud, norm="log", width=W, height=H))
    assert isinstance(plot.handles["color_mapper"], LogColorMapper)
    plot = render(dv.scatter(cloud, norm="linear", clim=(0, 5), cmap="fire", width=W, height=H))
    mapper = plot.handles["color_mapper"]
    assert (mapper.low, mapper.high) == (0, 5)
    import colorcet as cc
    assert list(mapper.palette) == list(cc.palette["fire"])


def test_categories_mix_colours_with_legend_and_hover(rng):
    n = 3000
    cat = rng.integers(0, 3, n)
    x = rng.standard_normal(n) + 4 * cat               # three separated clusters
    y = rng.standard_normal(n)
    dmap = dv.scatter(x, y, category=cat, labels=["cats", "dogs", "birds"], width=W,
                      height=H)
    plot = render(dmap)
    legend = plot.state.legend[0]
    assert [item.label.value for item in legend.items] == ["cats", "dogs", "birds"]
    rgb = next(sp for key, sp in plot.subplots.items() if key[0] == "RGB")
    hover = next(sp for key, sp in plot.subplots.items() if key[0] == "Hover")
    labels = [t[0] for t in hover.handles["hover"].tooltips]
    assert labels == ["x", "y", "points", "cats", "dogs", "birds"]
    assert_fields_exist(hover)
    # the hover image's first value dimension (the total count) is Bokeh's "image"
    total = np.asarray(hover.handles["source"].data["image"][0])
    per = [np.asarray(hover.handles["source"].data[f"cat_{k}"][0]) for k in range(3)]
    np.testing.assert_array_equal(sum(per), total)
    assert total.sum() == n
    # a pixel holding only category k shows exactly category k's colour
    import colorcet as cc
    colours = cc.palette["glasbey_category10"][:3]
    img = np.asarray(rgb.handles["source"].data["image"][0]).view(np.uint8)
    img = img.reshape(total.shape + (4,))
    for k in range(3):
        only = (per[k] > 0) & (total == per[k])
        assert only.any()
        r_, c_ = np.argwhere(only)[0]
        expect = tuple(int(colours[k][i:i + 2], 16) for i in (1, 3, 5))
        assert tuple(img[r_, c_, :3]) == expect
        assert img[r_, c_, 3] > 0
    assert (img[total == 0, 3] == 0).any()              # far from points: transparent
    assert "3 categories" in plot.state.title.text


def test_pandas_categorical_names_the_legend(rng):
    pd = pytest.importorskip("pandas")
    cat = pd.Categorical(rng.choice(["train", "val"], 200), categories=["train", "val"])
    plot = render(dv.scatter(rng.random(200), rng.random(200), category=cat, width=40,
                             height=30))
    assert [i.label.value for i in plot.state.legend[0].items] == ["train", "val"]


def test_zoom_with_categories_reaggregates(rng):
    cat = rng.integers(0, 2, 1000)
    pts = rng.random((1000, 2))
    dmap = dv.scatter(pts, category=cat, width=50, height=40)
    plot = render(dmap)
    before = dmap.view.updates
    range_stream(dmap).event(x_range=(0.25, 0.5), y_range=(0.5, 0.75))
    assert dmap.view.updates == before + 1
    hover = next(sp for key, sp in plot.subplots.items() if key[0] == "Hover")
    total = np.asarray(hover.handles["source"].data["image"][0])
    np.testing.assert_array_equal(
        total, expected_counts(pts[:, 0], pts[:, 1], (0.25, 0.5), (0.5, 0.75), 50, 40))


def test_inputs_without_copy_torch_project_and_lists(rng, cloud):
    torch = pytest.importorskip("torch")
    t = torch.from_numpy(cloud)
    plot = render(dv.scatter(t, width=W, height=H))
    np.testing.assert_array_equal(
        plane(plot, "count"),
        dv.rasterize_points(*cloud.T, **padded(*cloud.T), width=W, height=H)["count"])
    emb = rng.standard_normal((500, 8)).astype(np.float32)
    proj = dv.project(emb)
    plot = render(dv.scatter(proj, width=W, height=H))
    assert plane(plot, "count").sum() == 500
    plot = render(dv.scatter([[0, 0], [1, 1], [1, 0]], width=10, height=10))
    assert plane(plot, "count").sum() == 3


def test_static_frame_and_save(tmp_path, cloud, rng):
    from PIL import Image

    img = dv.scatter(cloud, width=W, height=H, dynamic=False)
    assert isinstance(img, hv.Image)
    over = dv.scatter(cloud, category=rng.integers(0, 2, len(cloud)), width=W, height=H,
                      dynamic=False)
    assert isinstance(over, hv.Overlay)
    for name, obj in (("num", dv.scatter(cloud, width=W, height=H)),
                      ("cat", dv.scatter(cloud, category=rng.integers(0, 2, len(cloud)),
                                         width=W, height=H))):
        html = dv.save(obj, tmp_path / f"{name}.html")
        assert "Bokeh" in html.read_text()
        png = dv.save(obj, tmp_path / f"{name}.png")
        raw = png.read_bytes()
        assert raw[:8] == b"\x89PNG\r\n\x1a\n"
        pixels = np.asarray(Image.open(io.BytesIO(raw)).convert("RGB"))
        assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 10


@pytest.mark.parametrize("kwargs, match", [
    (dict(agg="median"), r"agg: expected one of count, sum, mean, min, max; got 'median'"),
    (dict(cmap="nope"), r"cmap: expected a colorcet palette name"),
    (dict(norm="sqrt"), r"norm: expected one of linear, log, symlog, eq_hist; got 'sqrt'"),
    (dict(agg="mean"), r"value: agg='mean' needs a value per point; got value=None"),
    (dict(spread=-1), r"spread: expected 'auto' or a number of pixels in 0\.\.16"),
    (dict(clim=(2, 1)), r"clim: expected finite low < high"),
    (dict(labels=["a"]), r"labels: names the categories of category=\.\.\."),
])
def test_bad_options(cloud, kwargs, match):
    with pytest.raises(ValueError, match=match):
        dv.scatter(cloud, **kwargs)


def test_bad_shapes_and_lengths(cloud, rng):
    with pytest.raises(ValueError, match=r"x: expected an \(N, 2\) array .* got shape \(3000, 3\)"):
        dv.scatter(np.zeros((3000, 3)))
    with pytest.raises(ValueError, match=r"y: expected the y coordinates \(x is 1-D"):
        dv.scatter(cloud[:, 0])
    with pytest.raises(ValueError, match=r"x: expected a 1-D array of x coordinates when y "
                                         r"is given; got shape \(3000, 2\)"):
        dv.scatter(cloud, cloud[:, 1])
    with pytest.raises(ValueError, match=r"y: expected 3000 entries \(the length of x\); "
                                         r"got 10"):
        dv.scatter(cloud[:, 0], np.zeros(10))
    with pytest.raises(ValueError, match=r"value: expected 3000 entries .* got 5"):
        dv.scatter(cloud, value=np.zeros(5))
    with pytest.raises(ValueError, match=r"category: expected 3000 entries .* got 5"):
        dv.scatter(cloud, category=np.zeros(5, int))


def test_bad_category_options(cloud, rng):
    cat = rng.integers(0, 3, len(cloud))
    with pytest.raises(ValueError, match=r"agg: with category, .* must be 'count'; got 'mean'"):
        dv.scatter(cloud, value=cloud[:, 0], category=cat, agg="mean")
    with pytest.raises(ValueError, match=r"norm: expected one of linear, log, eq_hist; got "
                                         r"'symlog'"):
        dv.scatter(cloud, category=cat, norm="symlog")
    cat[0] = 2
    with pytest.raises(ValueError, match=r"category: expected integer codes 0\.\.1 .*labels "
                                         r"names 2 categories"):
        dv.scatter(cloud, category=cat, labels=["a", "b"])


def test_resize_aggregates_at_the_new_size(cloud):
    dmap = dv.scatter(cloud, width=W, height=H)
    plot = render(dmap)
    size = next(s for s in dmap.streams if isinstance(s, hv.streams.PlotSize))
    size.event(width=60, height=30)
    assert dmap.view.last["canvas"] == (60, 30)
    np.testing.assert_array_equal(
        plane(plot, "count"),
        dv.rasterize_points(*cloud.T, **padded(*cloud.T), width=60, height=30)["count"])
