"""dv.graph: the element's data, hover, labels, node choice, HTML and PNG, 10,000 nodes."""

from __future__ import annotations

import io

import numpy as np
import pytest

hv = pytest.importorskip("holoviews")
torch = pytest.importorskip("torch")
nn = torch.nn

from dlviz_gpu.introspect.graph import ModelGraph, structure  # noqa: E402
from dlviz_gpu.views.network import KIND_COLOURS, GraphView, graph  # noqa: E402
from dlviz_gpu.views.output import save  # noqa: E402


class Encoder(nn.Module):
    def __init__(self, layers=6):
        super().__init__()
        self.emb = nn.Embedding(40, 16)
        layer = nn.TransformerEncoderLayer(16, 2, 32, batch_first=True, dropout=0.0)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(16, 40)

    def forward(self, ids):
        return self.head(self.encoder(self.emb(ids)))


@pytest.fixture(scope="module")
def view():
    return graph(Encoder(), (2, 10), width=400, height=500)


def bokeh_plot(obj):
    from bokeh.document import Document

    return hv.renderer("bokeh").get_plot(obj, doc=Document())


def renderers(plot, glyph: str):
    return [r for r in plot.state.renderers if type(r.glyph).__name__ == glyph]


def test_element_holds_one_box_per_node(view):
    gv = view.view
    assert isinstance(gv, GraphView)
    g = gv.graph
    assert [type(e).__name__ for e in view] == ["Segments", "Path", "Rectangles", "Labels"]
    rects = gv.nodes
    assert len(rects) == len(g.nodes)
    x0, x1 = rects.dimension_values("x0"), rects.dimension_values("x1")
    y0, y1 = rects.dimension_values("y0"), rects.dimension_values("y1")
    np.testing.assert_allclose((x0 + x1) / 2, g.x)
    np.testing.assert_allclose((y0 + y1) / 2, g.y)
    assert list(rects.dimension_values("name")) == [n.name for n in g.nodes]
    assert list(rects.dimension_values("params")) == [n.params for n in g.nodes]
    assert list(rects.dimension_values("colour")) == [KIND_COLOURS[n.kind] for n in g.nodes]
    rep = g.find("encoder.layers.0-5")
    row = rep.index
    assert rects.dimension_values("label")[row] == "TransformerEncoderLayer x 6"
    assert rects.dimension_values("count")[row] == 6
    assert rects.dimension_values("shape")[row] == "[2, 10, 16]"
    # every edge is drawn once: straight between neighbouring layers, routed otherwise
    n_short = len(gv.edges)
    n_long = int(np.isnan(gv.long_edges.array()[:, 0]).sum()) + (len(gv.long_edges.array()) > 0)
    assert n_short + n_long == len(g.edges)


def test_hover_tap_and_zoom_tools(view):
    from bokeh.models import HoverTool, TapTool, WheelZoomTool

    plot = bokeh_plot(view)
    fig = plot.state
    hovers = [t for t in fig.tools if isinstance(t, HoverTool)]
    assert len(hovers) == 1
    tips = dict(hovers[0].tooltips)
    assert set(tips) == {"name", "type", "output shape", "parameters", "repeat"}
    assert tips["parameters"] == "@{params_text}" and tips["repeat"] == "x @{count}"
    (quads,) = renderers(plot, "Quad")
    assert hovers[0].renderers == [quads]  # the boxes, not the edges or labels
    assert any(isinstance(t, TapTool) for t in fig.tools)
    assert isinstance(fig.toolbar.active_scroll, WheelZoomTool)
    src = quads.data_source.data
    g = view.view.graph
    row = g.find("head").index
    assert src["params_text"][row] == f"{g.find('head').params:,}" == "680"
    # one data unit spans as many pixels across as up
    xr, yr = fig.x_range, fig.y_range
    assert (xr.end - xr.start) / 400 == pytest.approx((yr.end - yr.start) / 500)


def test_labels_switch_on_when_zoomed_in():
    from bokeh.models import CustomJS

    small = graph(structure(nn.Sequential(nn.Linear(3, 4), nn.ReLU()), (1, 3)))
    big = graph(ModelGraph.from_edges(3000, [(i, i + 1) for i in range(2999)]))
    for el, shown in ((small, True), (big, False)):
        plot = bokeh_plot(el)
        (text,) = renderers(plot, "Text")
        assert text.visible is shown
        callbacks = plot.state.x_range.js_property_callbacks
        assert {"change:start", "change:end"} <= set(callbacks)
        cb = callbacks["change:end"][0]
        assert isinstance(cb, CustomJS) and cb.args["r"] is text
        # the same rule on both sides: pixels per data unit against the label scale
        assert (el.view.initial_scale() >= el.view.label_scale) is shown


def test_choosing_a_node(view):
    gv = view.view
    g = gv.graph
    rep = g.find("encoder.layers.0-5")
    assert gv.module_at(rep.index) == "encoder.layers.0"
    assert gv.tensors_at(rep.index)[0] == "encoder.layers.0.self_attn.in_proj_weight"
    assert gv.module_at(0) is None  # the input
    chosen = []
    gv.on_select(chosen.append)
    gv.selection.event(index=[g.find("head").index])
    assert chosen[-1] is g.find("head")
    assert gv.selected().tensors == ("head.weight", "head.bias")
    gv.selection.event(index=[])
    assert chosen[-1] is None
    with pytest.raises(ValueError, match=r"index: expected a node index in \[0, \d+\); got 99"):
        gv.module_at(99)
    with pytest.raises(TypeError, match="callback: expected a callable"):
        gv.on_select("head")


def test_save_html(tmp_path, view):
    path = save(view, tmp_path / "g.html")
    text = path.read_text(encoding="utf-8")
    assert "TransformerEncoderLayer x 6" in text
    assert "encoder.layers.0-5" in text and "@{params_text}" in text
    assert "cdn.bokeh.org" not in text


def test_save_png(tmp_path, view):
    from PIL import Image

    path = save(view, tmp_path / "g.png")
    img = np.asarray(Image.open(io.BytesIO(path.read_bytes())).convert("RGB")).astype(int)
    assert img.shape[0] > 300 and img.shape[1] > 300

    def share(hex_colour):
        rgb = np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)])
        return (np.abs(img - rgb).sum(axis=2) < 12).mean()

    # the repeat box (orange), the module boxes (blue) and input/output (green) are drawn
    for kind in ("repeat", "module", "input"):
        assert share(KIND_COLOURS[kind]) > 0.001, kind


def test_ten_thousand_nodes_render(tmp_path, rng):
    n = 10_000
    dst = np.repeat(np.arange(1, n), 2)
    src = np.maximum(dst - 1 - rng.integers(0, 30, dst.size), 0)
    g = ModelGraph.from_edges(n, np.stack([src, dst], 1))
    el = graph(g)
    assert len(el.view.nodes) == n
    plot = bokeh_plot(el)
    (quads,) = renderers(plot, "Quad")
    assert len(quads.data_source.data["x0"]) == n
    path = save(el, tmp_path / "big.html")
    assert path.stat().st_size > 500_000


def test_checkpoint_tree_draws(tmp_path):
    from dlviz_gpu.models import open as open_catalog

    el = graph(open_catalog(Encoder(4).state_dict()), depth=3)
    g = el.view.graph
    assert g.method == "tree"
    assert "module tree" in el.opts.get("plot", backend="bokeh").kwargs["title"]
    assert any(n.count == 4 for n in g.nodes)
    save(el, tmp_path / "tree.html")


@pytest.mark.parametrize("args, kwargs, exc, match", [
    ((42,), {}, TypeError, r"model: expected a torch nn\.Module, a Catalog.*got int"),
    ((nn.Linear(2, 2),), {"depth": -1}, ValueError, r"depth: expected a positive int"),
    ((nn.Linear(2, 2),), {"width": 10}, ValueError, r"width: expected an int of at least 50"),
    ((nn.Linear(2, 2),), {"height": 2.5}, ValueError, r"height: expected an int"),
])
def test_bad_input(args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        graph(*args, **kwargs)


def test_model_graph_with_tracing_arguments_is_refused():
    g = ModelGraph.from_edges(2, [(0, 1)])
    with pytest.raises(ValueError, match=r"depth: a ModelGraph is already traced and folded"):
        graph(g, depth=2)


def test_long_labels_keep_their_count():
    from dlviz_gpu.views.network import LABEL_CHARS, _cut

    assert _cut("Linear") == "Linear"
    cut = _cut("AVeryLongCustomTransformerBlockName x 24")
    assert len(cut) == LABEL_CHARS and cut.endswith("\u2026 x 24")
    cut = _cut("scaled_dot_product_attention_with_a_long_tail")
    assert len(cut) == LABEL_CHARS and cut.endswith("\u2026")
