"""The structure graph: data flow against real CPU forwards, collapsing, folding, fallbacks."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from dlviz_gpu.models import open as open_catalog  # noqa: E402
from dlviz_gpu.introspect.graph import ModelGraph, is_atomic, structure  # noqa: E402
from dlviz_gpu.layouts import layered_layout, tree_layout  # noqa: E402


# -- models --------------------------------------------------------------------

class TinyTransformer(nn.Module):
    """Token embedding + a learned position table + torch's TransformerEncoder (6 layers)."""

    def __init__(self, vocab=50, d=16, layers=6, seq=12):
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.pos = nn.Parameter(torch.randn(seq, d) * 0.02)
        layer = nn.TransformerEncoderLayer(d, 2, 32, batch_first=True, dropout=0.0)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(d, vocab)

    def forward(self, ids):
        return self.head(self.encoder(self.emb(ids) + self.pos[: ids.shape[1]]))


class Block(nn.Module):
    """A residual conv block (torchvision's BasicBlock, small)."""

    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                   nn.BatchNorm2d(cout)) if stride != 1 or cin != cout else None)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        skip = x if self.down is None else self.down(x)
        return self.relu(out + skip)


class ResNetTiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1), nn.BatchNorm2d(8), nn.ReLU())
        self.layer1 = nn.Sequential(Block(8, 8), Block(8, 8), Block(8, 8))
        self.layer2 = nn.Sequential(Block(8, 16, 2), Block(16, 16))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = self.layer2(self.layer1(self.stem(x)))
        return self.fc(torch.flatten(self.pool(x), 1))


def mlp():
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(),
                         nn.Linear(16, 3))


class Branches(nn.Module):
    """x -> a, x -> b, cat(a, b) -> c: two paths that meet."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 5)
        self.b = nn.Linear(4, 6)
        self.c = nn.Linear(11, 2)

    def forward(self, x):
        return self.c(torch.cat([self.a(x), self.b(x)], dim=1))


class ShapeBranches(Branches):
    """The same data flow behind a branch on the input's shape: fx cannot trace it."""

    def forward(self, x):
        if x.shape[0] > 1:
            x = x * 2
        return super().forward(x)


class ValueBranches(Branches):
    """A branch on the input's values: neither fx nor the meta device can run it."""

    def forward(self, x):
        if x.sum() > 0:
            x = x * 2
        return super().forward(x)


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())  # unique tensors


def real_output_shapes(model, x) -> dict:
    """Module path -> output shape of its first call in a real CPU forward."""
    shapes, handles = {}, []

    def record(path, out):
        if isinstance(out, torch.Tensor):
            shapes.setdefault(path, tuple(out.shape))

    for path, m in model.named_modules():
        handles.append(m.register_forward_hook(lambda m, a, o, p=path: record(p, o)))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return shapes


def edge_names(g: ModelGraph) -> set:
    return {(g.nodes[u].name, g.nodes[v].name) for u, v in g.edges}


def check_layout(g: ModelGraph) -> None:
    """Data flows downwards; boxes of a layer do not overlap."""
    y = g.y
    if g.method != "tree":
        for u, v in g.edges:
            assert y[v] < y[u], (g.nodes[u].name, g.nodes[v].name)
    layer = np.array([n.layer for n in g.nodes])
    x = g.x
    for L in np.unique(layer):
        xs = np.sort(x[layer == L])
        assert np.all(np.diff(xs) >= 4.0 - 1e-9)  # X_GAP


# -- torch.nn.TransformerEncoder: fx fails, hooks on meta, 6 layers collapse ----------

def test_transformer_layers_collapse_to_one_node():
    torch.manual_seed(0)
    model = TinyTransformer()
    g = structure(model, (2, 12))
    assert g.method == "hooks"
    assert "torch.fx could not trace" in g.note
    reps = [n for n in g.nodes if n.kind == "repeat"]
    assert len(reps) == 1
    rep = reps[0]
    assert rep.count == 6 and rep.type == "TransformerEncoderLayer"
    assert rep.label == "TransformerEncoderLayer x 6"
    assert rep.modules == tuple(f"encoder.layers.{i}" for i in range(6))
    assert rep.params == n_params(model.encoder.layers)
    assert rep.output_shape == (2, 12, 16)
    assert rep.tensors == tuple(k for k in model.state_dict() if k.startswith("encoder.layers."))
    # data flow: embedding + position table -> add -> the six layers -> head -> output
    names = edge_names(g)
    add = next(n for n in g.nodes if n.kind == "op" and n.type == "add")
    assert ("emb", add.name) in names
    assert (add.name, rep.name) in names
    assert (rep.name, "encoder.norm") not in names  # there is no final norm in this encoder
    assert (rep.name, "head") in names and ("head", "output") in names
    pos = next(n for n in g.nodes if n.kind == "param")
    assert pos.name == "pos" and pos.params == 12 * 16
    assert sum(n.params for n in g.nodes) == n_params(model)
    real = real_output_shapes(model, torch.randint(0, 50, (2, 12)))
    assert g.find("head").output_shape == real["head"]
    assert g.find("emb").output_shape == real["emb"]
    check_layout(g)


def test_without_collapse_each_layer_feeds_the_next():
    model = TinyTransformer()
    g = structure(model, (2, 12), collapse=False)
    assert not any(n.kind == "repeat" for n in g.nodes)
    names = edge_names(g)
    # torch's Transformer* layers are looked into: attention, feed-forward, norms
    # (post-norm: a layer's output is its norm2, read by the next layer's attention)
    for i in range(5):
        assert (f"encoder.layers.{i}.norm2", f"encoder.layers.{i + 1}.self_attn") in names
    assert ("encoder.layers.5.norm2", "head") in names
    assert ("encoder.layers.0.linear1", "encoder.layers.0.activation") not in names  # F.relu
    assert sum(n.params for n in g.nodes) == n_params(model)
    # MultiheadAttention is one node (its out_proj is used inside it, functionally)
    assert not any(n.name.startswith("encoder.layers.0.self_attn.") for n in g.nodes)
    assert g.find("encoder.layers.0.self_attn").params == n_params(model.encoder.layers[0]
                                                                   .self_attn)
    names_list = [n.name for n in g.nodes]
    assert len(names_list) == len(set(names_list))  # ops numbered like torch.fx: add, add_1


def test_the_model_is_left_as_it_was():
    model = TinyTransformer().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    structure(model, (2, 12))
    structure(ResNetTiny(), (1, 3, 16, 16))
    assert model.training
    for k, v in model.state_dict().items():
        assert v.device.type == "cpu" and torch.equal(v, before[k]), k
    for m in model.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks


# -- a CNN through torch.fx ----------------------------------------------------------

def test_cnn_traces_with_fx_and_real_shapes():
    torch.manual_seed(0)
    model = ResNetTiny().eval()
    x = torch.randn(2, 3, 16, 16)
    g = structure(model, tuple(x.shape))
    assert g.method == "fx" and g.note is None
    real = real_output_shapes(model, x)
    # three identical chained blocks collapse; layer2's two blocks differ (stride, downsample)
    rep = next(n for n in g.nodes if n.kind == "repeat")
    assert rep.name == "layer1.0-2" and rep.count == 3 and rep.type == "Block"
    assert rep.output_shape == real["layer1.2"]
    assert rep.params == n_params(model.layer1)
    # the unfolded modules carry the shapes of a real forward
    for n in g.nodes:
        if n.kind == "module":
            assert n.output_shape == real[n.name], n.name
    # layer2.0's residual: the add reads both the second batch norm and the downsample
    add = next(n for n in g.nodes if n.kind == "op" and n.type == "add"
               and any(g.nodes[p].name == "layer2.0.bn2" for p in g.predecessors(n.index)))
    preds = {g.nodes[p].name for p in g.predecessors(add.index)}
    assert preds == {"layer2.0.bn2", "layer2.0.down.1"}
    assert sum(n.params for n in g.nodes) == n_params(model)
    assert g.find("fc").output_shape == (2, 10)
    check_layout(g)


def test_depth_folds_the_module_tree():
    model = ResNetTiny()
    x = torch.randn(1, 3, 16, 16)
    real = real_output_shapes(model, x)
    g1 = structure(model, tuple(x.shape), depth=1)
    mods = [n.name for n in g1.nodes if n.kind == "module"]
    assert mods == ["stem", "layer1", "layer2", "pool", "fc"]
    for n in g1.nodes:
        if n.kind == "module":
            assert n.output_shape == real[n.name]
            assert n.params == n_params(model.get_submodule(n.name))
    ops = [n.type for n in g1.nodes if n.kind == "op"]
    assert ops == ["flatten"]  # the only op in ResNetTiny.forward itself
    assert [(g1.nodes[u].name, g1.nodes[v].name) for u, v in g1.edges][:4] == [
        ("x", "stem"), ("stem", "layer1"), ("layer1", "layer2"), ("layer2", "pool")]
    # depth 2: blocks are single nodes, and layer1's three blocks collapse
    g2 = structure(model, tuple(x.shape), depth=2)
    names = [n.name for n in g2.nodes if n.kind in ("module", "repeat")]
    assert names == ["stem.0", "stem.1", "stem.2", "layer1.0-2", "layer2.0", "layer2.1",
                     "pool", "fc"]
    assert g2.find("layer2.0").type == "Block"
    for g in (g1, g2):
        assert sum(n.params for n in g.nodes) == n_params(model)
        check_layout(g)
    assert len(g2.nodes) < len(structure(model, tuple(x.shape)).nodes)


# -- an MLP -------------------------------------------------------------------------

def test_mlp_is_a_chain_in_order():
    model = mlp()
    x = torch.randn(5, 8)
    g = structure(model, (5, 8))
    assert g.method == "fx"
    assert [n.kind for n in g.nodes] == ["input"] + ["module"] * 5 + ["output"]
    assert [n.name for n in g.nodes[1:-1]] == ["0", "1", "2", "3", "4"]
    assert [n.label for n in g.nodes[1:-1]] == ["Linear", "ReLU", "Linear", "ReLU", "Linear"]
    assert g.edges.tolist() == [[i, i + 1] for i in range(6)]
    real = real_output_shapes(model, x)
    assert [n.output_shape for n in g.nodes[1:-1]] == [real[str(i)] for i in range(5)]
    assert [n.params for n in g.nodes] == [0, 8 * 16 + 16, 0, 16 * 16 + 16, 0, 16 * 3 + 3, 0]
    assert [n.layer for n in g.nodes] == list(range(7))
    assert g.input_dtype == ["float32"]
    check_layout(g)


def test_optional_forward_arguments_take_their_defaults():
    class Masked(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 3)

        def forward(self, x, mask=None, scale: float = 2.0):
            y = self.lin(x)
            if mask is not None:
                y = y * mask
            return y * scale

    g = structure(Masked(), (2, 4))
    assert g.method == "fx"  # traced with mask=None, scale=2.0 as the meta forward runs it
    assert [n.name for n in g.nodes] == ["x", "lin", "mul", "output"]
    assert g.find("mul").output_shape == (2, 3)


def test_without_input_shape_fx_still_gives_the_graph():
    g = structure(mlp())
    assert g.method == "fx" and not g.has_shapes and g.note is None
    assert len(g.nodes) == 7


# -- data flow with fx and with hooks --------------------------------------------------

@pytest.mark.parametrize("cls, method", [(Branches, "fx"), (ShapeBranches, "hooks")])
def test_edges_follow_the_data(cls, method):
    g = structure(cls(), (3, 4))
    assert g.method == method
    names = edge_names(g)
    cat = next(n for n in g.nodes if n.type == "cat")
    assert ("a", cat.name) in names and ("b", cat.name) in names
    assert (cat.name, "c") in names and ("c", "output") in names
    assert g.find("cat").output_shape == (3, 11)
    assert g.find("c").output_shape == (3, 2)
    # a and b read the same tensor (the input, or x * 2 behind the branch)
    src_a = set(g.predecessors(g.find("a").index))
    assert src_a == set(g.predecessors(g.find("b").index)) and len(src_a) == 1
    assert not ({"a", "b"} & {g.nodes[v].name for v in g.successors(g.find("c").index)})
    assert sum(n.params for n in g.nodes) == n_params(cls())
    check_layout(g)


def test_fx_untraceable_model_falls_back_to_hooks():
    g = structure(ShapeBranches(), (3, 4))
    assert g.method == "hooks"
    assert "torch.fx could not trace the model" in g.note
    assert "TraceError" in g.note
    mul = next(n for n in g.nodes if n.type == "mul")
    assert [g.nodes[p].name for p in g.predecessors(mul.index)] == ["input"]
    assert {g.nodes[s].name for s in g.successors(mul.index)} == {"a", "b"}


def test_model_that_neither_traces_nor_runs_on_meta_gives_the_module_tree():
    model = ValueBranches()
    g = structure(model, (3, 4))
    assert g.method == "tree"
    assert "torch.fx could not trace" in g.note
    assert "the forward pass on the meta device failed" in g.note
    assert "showing the module tree" in g.note
    assert not g.has_shapes
    assert [n.name for n in g.nodes] == ["ValueBranches", "a", "b", "c"]
    assert edge_names(g) == {("ValueBranches", c) for c in "abc"}
    assert sum(n.params for n in g.nodes) == n_params(model)
    assert g.find("b").tensors == ("b.weight", "b.bias")
    check_layout(g)


def test_untraceable_model_without_input_shape_says_what_is_missing():
    g = structure(ShapeBranches())
    assert g.method == "tree" and "needs input_shape" in g.note


def test_tied_weights_count_once():
    from dlviz_gpu.app.demo import build_model

    model = build_model(n_layers=2, d_model=32, n_heads=2, vocab=64, seq_len=16)
    g = structure(model, (2, 16))
    assert sum(n.params for n in g.nodes) == n_params(model)
    rep = next(n for n in g.nodes if n.kind == "repeat")
    assert rep.count == 2 and rep.label.endswith("x 2")


def test_unused_module_is_named_in_the_note():
    class WithSpare(nn.Module):
        def __init__(self):
            super().__init__()
            self.used = nn.Linear(4, 4)
            self.spare = nn.Linear(4, 7)

        def forward(self, x):
            return self.used(x)

    g = structure(WithSpare(), (1, 4))
    assert "1 module(s) with 35 parameters never ran" in g.note and "spare" in g.note
    assert sum(n.params for n in g.nodes) == 20


# -- checkpoints: the module tree ----------------------------------------------------

def test_catalog_gives_a_collapsed_module_tree(tmp_path):
    model = TinyTransformer()
    cat = open_catalog(model.state_dict())
    g = structure(cat)
    assert g.method == "tree" and "no data flow" in g.note
    assert g.total_params == cat.total_params
    assert sum(n.params for n in g.nodes) == cat.total_params
    rep = next(n for n in g.nodes if n.kind == "repeat")
    assert rep.count == 6 and rep.modules == tuple(f"encoder.layers.{i}" for i in range(6))
    assert rep.params == n_params(model.encoder.layers)
    parents = {g.nodes[v].name: g.nodes[u].name for u, v in g.edges}
    assert parents[rep.name] == "encoder.layers"
    assert parents["encoder.layers"] == "encoder" and parents["head"] == ""
    # depth 1: only the top level
    g1 = structure(cat, depth=1)
    assert sorted(n.name for n in g1.nodes) == ["", "emb", "encoder", "head"]
    assert sum(n.params for n in g1.nodes) == cat.total_params
    check_layout(g1)


# -- layout -------------------------------------------------------------------------

def longest_path_reference(n, edges):
    layer = [0] * n
    for v in range(n):
        for u, w in edges:
            if w == v:
                layer[v] = max(layer[v], layer[u] + 1)
    return layer


def test_layered_layout_is_longest_path_and_separated(rng):
    n = 300
    dst = rng.integers(1, n, 500)
    src = (dst - 1 - rng.integers(0, 10, 500)).clip(0)
    edges = np.unique(np.stack([src, dst], 1), axis=0)
    layer, x = layered_layout(n, edges, inputs=[0])
    has_in = np.zeros(n, bool)
    has_in[edges[:, 1]] = True
    ref = np.array(longest_path_reference(n, edges.tolist()))
    assert np.array_equal(layer[has_in | (np.arange(n) == 0)], ref[has_in | (np.arange(n) == 0)])
    assert np.all(layer[edges[:, 1]] > layer[edges[:, 0]])
    for L in np.unique(layer):
        xs = np.sort(x[layer == L])
        assert np.all(np.diff(xs) >= 1 - 1e-9)


def test_sources_move_down_to_their_consumer():
    # 0 -> 1 -> 2 -> 4, and 3 (a parameter read late) feeds 4
    layer, _ = layered_layout(5, [(0, 1), (1, 2), (2, 4), (3, 4)], inputs=[0])
    assert layer.tolist() == [0, 1, 2, 2, 3]
    # without inputs named, every source stays at the top
    layer, _ = layered_layout(5, [(0, 1), (1, 2), (2, 4), (3, 4)])
    assert layer.tolist() == [0, 1, 2, 0, 3]


def test_back_edges_are_laid_out_reversed():
    layer, _ = layered_layout(3, [(0, 1), (1, 2), (2, 0)])
    assert layer.tolist() == [0, 1, 2]


def test_ten_thousand_node_graph_lays_out():
    from benchmarks.graph_layout import synthetic_edges

    e = synthetic_edges(10_000)
    g = ModelGraph.from_edges(10_000, e)
    assert len(g.nodes) == 10_000 and g.method == "edges"
    layer = np.array([nd.layer for nd in g.nodes])
    assert np.all(layer[g.edges[:, 1]] > layer[g.edges[:, 0]])
    assert np.isfinite(g.x).all() and np.isfinite(g.y).all()


def test_tree_layout_centres_parents():
    layer, x = tree_layout(5, [(0, 1), (0, 2), (2, 3), (2, 4)])
    assert layer.tolist() == [0, 1, 1, 2, 2]
    assert x[2] == pytest.approx((x[3] + x[4]) / 2)
    assert x[0] == pytest.approx((x[1] + x[2]) / 2)
    assert x[1] < x[3] < x[4]


def test_is_atomic():
    assert is_atomic(nn.Linear(2, 2))
    assert is_atomic(nn.MultiheadAttention(4, 2))           # built-in with a child
    assert not is_atomic(nn.Sequential(nn.Linear(2, 2)))
    assert not is_atomic(nn.TransformerEncoder(
        nn.TransformerEncoderLayer(4, 2, 8), 2, enable_nested_tensor=False))
    assert not is_atomic(Block(2, 2))
    assert not is_atomic(nn.MultiheadAttention(4, 2), root=True)


# -- bad input ----------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, exc, match", [
    ({"model": 42}, TypeError, r"model: expected a torch nn\.Module, a Catalog.*got int"),
    ({"model": np.zeros(3)}, TypeError, r"model: expected .*numpy\.ndarray"),
    ({"depth": 0}, ValueError, r"depth: expected a positive int .*got 0"),
    ({"depth": 1.5}, ValueError, r"depth: expected a positive int .*got 1\.5"),
    ({"depth": True}, ValueError, r"depth: expected a positive int"),
    ({"collapse": "yes"}, TypeError, r"collapse: expected True or False; got 'yes'"),
    ({"input_shape": (2, -1)}, ValueError, r"input_shape: expected a tuple of positive ints"),
    ({"input_shape": (2, 8), "input_dtype": "long"}, TypeError, r"input_dtype: expected a "
                                                                r"torch\.dtype"),
])
def test_bad_input(kwargs, exc, match):
    kw = {"model": mlp(), **kwargs}
    with pytest.raises(exc, match=match):
        structure(**kw)


def test_from_edges_checks_its_input():
    with pytest.raises(ValueError, match=r"edges: node indices must lie in \[0, 3\); got 0\.\.5"):
        ModelGraph.from_edges(3, [(0, 5)])
    with pytest.raises(ValueError, match=r"edges: expected an \(E, 2\) array"):
        ModelGraph.from_edges(3, [0, 1, 2])
    with pytest.raises(ValueError, match=r"labels: expected 3 entries"):
        ModelGraph.from_edges(3, [(0, 1)], labels=["a"])
