"""The checkpoint dashboard, driven from Python: tree, choice, pictures, stats, layers, summary.

The browser drives the same page in tests/browser/test_dashboard_browser.py.
"""

from __future__ import annotations

import json
import re
import urllib.request

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")
pytest.importorskip("panel")

from safetensors.torch import save_file  # noqa: E402

import dlviz_gpu as dv  # noqa: E402
from dlviz_gpu.app.dashboard import Dashboard, DashboardSession  # noqa: E402

SHAPES = {
    "embed.weight": ((96, 32), torch.float32),
    "layers.0.attn.qkv.weight": ((96, 32), torch.bfloat16),
    "layers.0.attn.qkv.bias": ((96,), torch.bfloat16),
    "layers.0.mlp.fc.weight": ((128, 32), torch.float16),
    "layers.1.attn.qkv.weight": ((96, 32), torch.bfloat16),
    "layers.1.mlp.fc.weight": ((128, 32), torch.float32),
    "layers.1.mlp.quant": ((16, 16), torch.int8),
    "head.weight": ((200, 32), torch.float32),
    "head.f8": ((4, 4), torch.float8_e4m3fn),
}


def _tensor(gen, shape, dtype):
    if dtype == torch.int8:
        return torch.randint(-100, 100, shape, generator=gen, dtype=torch.int8)
    return torch.randn(shape, generator=gen).to(dtype)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    gen = torch.Generator().manual_seed(11)
    tensors = {n: _tensor(gen, s, d) for n, (s, d) in SHAPES.items()}
    tensors["head.weight"][17] *= 40  # an outlier unit
    path = tmp_path_factory.mktemp("dash") / "model.safetensors"
    save_file(tensors, str(path))
    return path, tensors


@pytest.fixture(scope="module")
def board(ckpt):
    return Dashboard(str(ckpt[0]))


@pytest.fixture()
def session(board):
    return DashboardSession(board)


def _f64(t):
    return t.to(torch.float64).numpy()


def test_tree_lists_every_tensor_under_its_module(board, ckpt):
    rows = board.tree_rows()
    tensor_rows = {r["name"]: r for r in rows if r["name"]}
    assert set(tensor_rows) == set(SHAPES)
    for name, (shape, _) in SHAPES.items():
        assert tensor_rows[name]["params"] == f"{int(np.prod(shape)):,}"
        assert tensor_rows[name]["shape"] == " x ".join(map(str, shape))
    modules = {r["label"].strip("\u2003\u25be "): r for r in rows if not r["name"]}
    # module rows sum their subtree: layers.1 = qkv + fc + quant
    want = 96 * 32 + 128 * 32 + 16 * 16
    assert modules["1"]["params"] == f"{want:,}"
    # tensors come right after their module, indented one level deeper
    labels = [r["label"] for r in rows]
    k = labels.index(next(lab for lab in labels if lab.endswith("\u25be fc")))
    assert rows[k + 1]["name"] == "layers.0.mlp.fc.weight"
    assert rows[k + 1]["label"].count("\u2003") == rows[k]["label"].count("\u2003") + 1


def test_tree_filter_takes_substrings_and_globs(board):
    assert {r["name"] for r in board.tree_rows("QKV")} == {
        "layers.0.attn.qkv.weight", "layers.0.attn.qkv.bias", "layers.1.attn.qkv.weight"}
    assert {r["name"] for r in board.tree_rows("layers.*.mlp.*")} == {
        "layers.0.mlp.fc.weight", "layers.1.mlp.fc.weight", "layers.1.mlp.quant"}
    # listed by full name, each a row that chooses its tensor
    assert all(r["label"] == r["name"] for r in board.tree_rows("layers.*.mlp.*"))
    assert board.tree_rows("no-such-tensor") == []


def test_first_tensor_is_the_largest_matrix_and_undrawable_ones_are_not_offered(session):
    assert session.tensor.value == "head.weight"
    assert "head.f8" not in session.tensor.options
    assert set(session.tensor.options) == set(SHAPES) - {"head.f8"}
    # the tree highlights it
    sel = session.tree.selection
    assert len(sel) == 1 and session.tree.value["name"].iloc[sel[0]] == "head.weight"


def test_clicking_a_tree_row_draws_that_tensor_exactly(session, ckpt):
    tensors = ckpt[1]
    frame = session.tree.value
    row = int(np.flatnonzero(frame["name"].to_numpy() == "layers.0.attn.qkv.weight")[0])
    session.tree.selection = [row]
    assert session.tensor.value == "layers.0.attn.qkv.weight"
    assert "layers.0.attn.qkv.weight" in session.title_pane.object
    view = session.heatmap.view
    planes = view.planes(width=32, height=96)["planes"]  # one pixel per element
    np.testing.assert_array_equal(planes["mean"], _f64(tensors["layers.0.attn.qkv.weight"]))
    # a module row chooses nothing
    mod = int(np.flatnonzero(frame["name"].to_numpy() == "")[0])
    session.tree.selection = [mod]
    assert session.tensor.value == "layers.0.attn.qkv.weight"


def test_agg_and_norm_rebuild_the_heatmap(session, ckpt):
    session.tensor.value = "layers.1.mlp.fc.weight"
    session.agg.value = "max"
    session.norm.value = "symlog"
    view = session.heatmap.view
    assert view.agg == "max" and view.norm == "symlog"
    t = _f64(ckpt[1]["layers.1.mlp.fc.weight"])
    got = view.planes(width=16, height=64)["planes"]["max"]
    np.testing.assert_array_equal(got, t.reshape(64, 2, 16, 2).max(axis=(1, 3)))


def test_stats_table_matches_numpy(session, ckpt):
    session.tensor.value = "head.weight"
    text = session.stats_pane.object
    t = _f64(ckpt[1]["head.weight"])
    cells = dict(re.findall(r"<tr><th>(.*?)</th><td>(.*?)</td></tr>", text))
    assert float(cells["max"]) == pytest.approx(t.max(), rel=1e-5)
    assert float(cells["min"]) == pytest.approx(t.min(), rel=1e-5)
    fro = float(re.sub(r"[^0-9.e+-]", "", cells["Frobenius norm"]))
    assert fro == pytest.approx(np.sqrt((t ** 2).sum()), rel=1e-4)
    # the planted outlier unit heads the largest row norms
    assert re.match(r"\D*17\b", cells["largest row norms"])


def test_histogram_counts_every_element(session, ckpt):
    session.tensor.value = "layers.1.mlp.quant"
    hist = session.hist_pane.object
    counts = np.asarray(hist.dimension_values(1))
    assert np.nansum(counts) == 16 * 16  # logy: empty bins are left out (NaN)


def test_layers_tab_bars_parameters_and_norms_per_layer(board, session, ckpt):
    tensors = ckpt[1]
    norms, done, total, error = board.norms_state()
    assert error is None and done == total == len(SHAPES) - 1
    want = {}
    for name, t in tensors.items():
        if name == "head.f8":
            continue
        layer = re.match(r"layers\.\d+|[a-z]+", name).group(0)
        want[layer] = want.get(layer, 0.0) + float((_f64(t) ** 2).sum())
    got = norms["layers"]
    assert set(got) == set(want)
    for k in want:
        assert got[k] == pytest.approx(np.sqrt(want[k]), rel=1e-6)
    bars = session.params_pane.object
    names = [str(v) for v in bars.dimension_values(0)]
    values = dict(zip(names, bars.dimension_values(1)))
    assert values["layers.1"] == 96 * 32 + 128 * 32 + 16 * 16


def test_summary_of_a_checkpoint_is_its_module_tree(board):
    text = board.summary().table()
    assert "layers" in text and "attn" in text
    assert f"{board.catalog.total_params:,}" in text


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(50, 16)
        self.fc = torch.nn.Linear(16, 24)
        self.head = torch.nn.Linear(24, 50)

    def forward(self, tokens):
        return self.head(torch.relu(self.fc(self.embed(tokens))))


def test_module_summary_has_output_shapes_and_weights_are_live(tmp_path):
    torch.manual_seed(0)
    model = Tiny()
    board = Dashboard(model, input_shape=(2, 7), input_dtype=torch.long, initial="fc.weight")
    table = board.summary().table()
    assert re.search(r"fc.*\[?2, 7, 24\]?", table), table
    s = DashboardSession(board)
    assert s.tensor.value == "fc.weight"
    before = s.heatmap.view.planes(width=16, height=24)["planes"]["mean"]
    np.testing.assert_array_equal(before, model.fc.weight.detach().double().numpy())
    with torch.no_grad():
        model.fc.weight.mul_(-3.0)  # what an optimizer step does: in place
    s.refresh(keep_zoom=False)
    after = s.heatmap.view.planes(width=16, height=24)["planes"]["mean"]
    np.testing.assert_allclose(after, -3.0 * before, rtol=1e-6)


def test_nothing_drawable_and_bad_initial_are_refused(tmp_path, board):
    path = tmp_path / "f8.safetensors"
    save_file({"a": torch.zeros(3, 3).to(torch.float8_e4m3fn)}, str(path))
    with pytest.raises(ValueError, match=r"source: no tensor the engine can draw"):
        Dashboard(str(path))
    with pytest.raises(ValueError, match=r"initial: expected the name of a drawable tensor.*"
                                         r"head.f8.*float8"):
        Dashboard(board.catalog, initial="head.f8")
    with pytest.raises(ValueError, match=r"initial: .*'nope'"):
        Dashboard(board.catalog, initial="nope")


def test_served_page_and_dv_dashboard(ckpt):
    board = dv.dashboard(str(ckpt[0]))
    url = board.serve(port=0)
    try:
        with urllib.request.urlopen(url, timeout=60) as resp:
            page = resp.read().decode("utf-8")
        assert resp.status == 200
        assert "dlviz: model.safetensors" in page
        assert re.search(r"bokeh", page)
    finally:
        url.stop()
    assert json.dumps(board.tree_rows()[:1])  # rows are plain data


def test_standalone_pages_made_after_a_dashboard_link_nothing(session, ckpt, tmp_path):
    # a dashboard makes Panel load widget models whose style sheets live on a
    # CDN; pages written afterwards in the same process must still open offline
    from dlviz_gpu.cli import main

    url = session.board.serve(port=0)  # a browser session loads the page's widgets
    try:
        with urllib.request.urlopen(url, timeout=60) as resp:
            assert resp.status == 200
    finally:
        url.stop()
    saved = dv.save(dv.heatmap(np.eye(8, dtype=np.float32)), tmp_path / "after.html")
    report = tmp_path / "report.html"
    assert main(["render", str(ckpt[0]), "-o", str(report), "-q"]) == 0
    for page in (saved.read_text(), report.read_text()):
        assert "<script" in page and "Bokeh" in page
        assert not re.search(r'<script[^>]*\ssrc=', page)
        assert not re.search(r'<link[^>]*stylesheet', page)
        assert "cdn.holoviz.org" not in page


def test_structure_tab_tap_on_a_node_shows_its_weights(tmp_path):
    torch.manual_seed(0)
    model = Tiny()
    board = Dashboard(model, input_shape=(2, 7), input_dtype=torch.long, initial="embed.weight")
    g = board.graph
    assert g is not None and g.method in ("fx", "hooks")
    assert sum(n.params for n in g.nodes) == sum(p.numel() for p in model.parameters())
    s = DashboardSession(board)
    assert [t.name for t in s.tabs][-1] == "Structure"
    s.tabs.active = len(s.tabs) - 1
    fc = next(i for i, n in enumerate(g.nodes) if "fc.weight" in n.tensors)
    s.graph_view.selection.event(index=[fc])          # what a tap on the node sends
    assert s.tensor.value == "fc.weight" and s.tabs.active == 0
    np.testing.assert_array_equal(s.heatmap.view.planes(width=16, height=24)["planes"]["mean"],
                                  model.fc.weight.detach().double().numpy())
    # a node without weights (the input) leaves the choice alone
    s.graph_view.selection.event(index=[next(i for i, n in enumerate(g.nodes)
                                              if n.kind == "input")])
    assert s.tensor.value == "fc.weight"


def test_structure_of_a_checkpoint_is_its_module_tree(board):
    assert board.graph is not None and board.graph.method == "tree"
    s = DashboardSession(board)
    assert s.graph_view is not None and len(board.graph.nodes) > 3
