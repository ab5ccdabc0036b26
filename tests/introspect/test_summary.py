"""The model summary: shapes from the meta forward against a real CPU forward, counts, safety."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from dlviz_gpu.models import open as open_catalog  # noqa: E402
from dlviz_gpu.introspect.summary import ModelSummary, summary, trace_calls  # noqa: E402


# -- models --------------------------------------------------------------------

class Split(nn.Module):
    """Returns a tuple: the input and its per-row mean."""

    def forward(self, x):
        return x, x.mean(dim=1)


class ConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6),
                                      nn.MaxPool2d(2), nn.Conv2d(6, 8, 3))
        self.act = nn.ReLU()  # run twice
        self.split = Split()
        self.head = nn.Linear(8 * 2 * 2, 5)
        self.unused = nn.Linear(3, 3)

    def forward(self, x):
        x = self.act(self.features(x))
        x, _ = self.split(x)
        return self.head(self.act(x.flatten(1)))


class TinyLM(nn.Module):
    """Embedding -> 2 transformer layers -> head tied to the embedding."""

    def __init__(self, vocab=40, d=16):
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.pos = nn.Parameter(torch.randn(8, d))
        layer = nn.TransformerEncoderLayer(d, 2, 32, dropout=0.0, batch_first=True)
        self.enc = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab, bias=False)
        self.head.weight = self.emb.weight

    def forward(self, ids):
        # a factory call without a device: runs on meta under the trace
        pos = self.pos[torch.arange(ids.shape[1])]
        return self.head(self.norm(self.enc(self.emb(ids) + pos)))


class TwoInputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 4)
        self.proj = nn.Linear(3, 4)

    def forward(self, ids, feats):
        return {"sum": self.emb(ids) + self.proj(feats), "ids": ids}


class ItemModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, x):
        y = self.lin(x)
        return y / y.abs().max().item()  # data-dependent: no meta kernel can answer


# -- an independent reference: hooks on a real CPU forward ----------------------

def _ref_shape(out):
    if isinstance(out, torch.Tensor):
        return tuple(out.shape)
    vals = out.values() if isinstance(out, dict) else out
    shapes = [tuple(t.shape) for t in vals if isinstance(t, torch.Tensor)]
    return shapes or None


def real_forward_shapes(model, *inputs):
    """path -> (first output shape, call count) from a real forward pass."""
    seen = {}

    def hook(m, a, o, path):
        shape, n = seen.get(path, (_ref_shape(o), 0))
        seen[path] = (shape, n + 1)

    handles = [m.register_forward_hook(lambda m, a, o, p=p: hook(m, a, o, p))
               for p, m in model.named_modules()]
    try:
        with torch.no_grad():
            model(*inputs)
    finally:
        for h in handles:
            h.remove()
    return seen


def subtree_params(model, path, trainable_only=False):
    """Unique parameter elements under ``path``, from names (tied tensors once, by storage)."""
    seen, total = set(), 0
    for name, p in model.named_parameters(remove_duplicate=False):
        if path and not name.startswith(path + "."):
            continue
        if trainable_only and not p.requires_grad:
            continue
        if p.data_ptr() not in seen:
            seen.add(p.data_ptr())
            total += p.numel()
    return total


def assert_shapes_match(s, model, *inputs):
    ref = real_forward_shapes(model, *inputs)
    assert s.shapes_note is None
    assert len(s.rows) == len(list(model.named_modules()))
    for r in s.rows:
        shape, calls = ref.get(r["path"], (None, 0))
        assert r["output_shape"] == shape, r["path"]
        assert r["calls"] == calls, r["path"]


# -- shapes ---------------------------------------------------------------------

def test_conv_net_shapes_equal_a_real_forward():
    torch.manual_seed(0)
    model = ConvNet()
    s = summary(model, (2, 3, 8, 8))
    assert_shapes_match(s, model, torch.randn(2, 3, 8, 8))
    rows = {r["path"]: r for r in s.rows}
    assert rows[""]["output_shape"] == (2, 5)
    assert rows["features.3"]["output_shape"] == (2, 8, 2, 2)
    assert rows["split"]["output_shape"] == [(2, 8, 2, 2), (2, 2, 2)]   # a tuple output
    assert rows["act"]["calls"] == 2 and rows["act"]["output_shape"] == (2, 8, 2, 2)
    assert rows["unused"]["calls"] == 0 and rows["unused"]["output_shape"] is None
    assert s.input_dtype == ["float32"] and s.input_shape == [(2, 3, 8, 8)]
    # the shared module is one row, its count shown in a Calls column
    text = s.table()
    assert sum(" act (ReLU)" in line for line in text.splitlines()) == 1
    assert "Calls" in text and "[2, 8, 2, 2], [2, 2, 2]" in text


def test_transformer_with_token_ids_and_tied_head():
    torch.manual_seed(0)
    model = TinyLM()
    s = summary(model, (3, 7))              # first leaf is an Embedding -> long ids
    assert s.input_dtype == ["int64"]
    ids = torch.randint(0, 40, (3, 7))
    assert_shapes_match(s, model, ids)
    rows = {r["path"]: r for r in s.rows}
    assert rows[""]["output_shape"] == (3, 7, 40)
    assert rows["enc.layers.1.linear1"]["output_shape"] == (3, 7, 32)
    assert rows["enc.layers.0.self_attn"]["output_shape"] == [(3, 7, 16)]  # (out, None)
    # tied weights once; the naive sum over names counts the embedding twice
    expected = sum(p.numel() for p in model.parameters())
    assert s.total_params == expected
    assert sum(p.numel() for _, p in model.named_parameters(remove_duplicate=False)) > expected
    for r in s.rows:
        assert r["params"] == subtree_params(model, r["path"]), r["path"]
    assert rows["head"]["params"] == 40 * 16 and rows["head"]["own_params"] == 0
    assert sum(r["own_params"] for r in s.rows) == s.total_params
    assert rows[""]["own_params"] == 8 * 16                     # pos
    assert s.param_bytes == 4 * expected and s.buffer_bytes == 0


def test_several_inputs_with_a_dtype_each_and_a_dict_output():
    model = TwoInputs()
    s = summary(model, [(2, 5), (2, 5, 3)], input_dtype=[torch.long, torch.float32])
    assert s.input_dtype == ["int64", "float32"]
    assert_shapes_match(s, model, torch.randint(0, 10, (2, 5)), torch.randn(2, 5, 3))
    assert s.rows[0]["output_shape"] == [(2, 5, 4), (2, 5)]


def test_default_dtype_retries_long_when_float_fails_and_says_why_otherwise():
    # the Embedding is not the first leaf here, so float32 is tried first, then long
    model = nn.Sequential(nn.Identity(), nn.Embedding(10, 4))
    s = summary(model, (2, 3))
    assert s.shapes_note is None and s.input_dtype == ["int64"]
    assert s.rows[0]["output_shape"] == (2, 3, 4)
    # an explicit dtype is not second-guessed
    s = summary(nn.Embedding(10, 4), (2, 3), input_dtype=torch.float32)
    assert s.calls is None and s.input_dtype == ["float32"]
    assert "meta device failed" in s.shapes_note and "RuntimeError" in s.shapes_note


# -- counts ---------------------------------------------------------------------

def test_trainable_and_frozen_parts():
    model = TinyLM()
    model.enc.layers[0].requires_grad_(False)
    model.norm.requires_grad_(False)
    s = summary(model)
    expected = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert s.trainable_params == expected
    assert s.non_trainable_params == sum(p.numel() for p in model.parameters()
                                         if not p.requires_grad) > 0
    assert s.trainable_params + s.non_trainable_params == s.total_params
    for r in s.rows:
        assert r["trainable"] == subtree_params(model, r["path"], trainable_only=True)
    rows = {r["path"]: r for r in s.rows}
    assert rows["enc.layers.0"]["trainable"] == 0 < rows["enc.layers.0"]["params"]
    assert "Non-trainable params: " + f"{s.non_trainable_params:,}" in s.table()


def test_buffers_and_a_model_without_parameters():
    s = summary(nn.BatchNorm1d(5), (4, 5))
    assert s.total_params == 10 and s.param_bytes == 40
    assert s.buffer_bytes == 5 * 4 + 5 * 4 + 8   # running mean, var, num_batches_tracked
    for shape in (None, (2, 3)):
        s = summary(nn.Sequential(nn.ReLU(), nn.Flatten()), shape)
        assert s.total_params == s.trainable_params == s.non_trainable_params == 0
        assert s.param_bytes == s.buffer_bytes == 0
        assert all(r["params"] == 0 for r in s.rows)
        assert "Total params: 0" in s.table()
    assert s.rows[0]["output_shape"] == (2, 3)


# -- the model is left alone ----------------------------------------------------

def _snapshot(model):
    return ({n: (id(p), p.detach().clone(), p.device, p.requires_grad)
             for n, p in model.named_parameters()},
            {n: (id(b), b.clone(), b.device) for n, b in model.named_buffers()},
            [m.training for m in model.modules()])


def _assert_untouched(model, snap):
    params, buffers, modes = snap
    assert set(params) == {n for n, _ in model.named_parameters()}
    for n, p in model.named_parameters():
        pid, value, device, rg = params[n]
        assert id(p) == pid and p.device == device and p.requires_grad == rg
        assert isinstance(p, nn.Parameter)
        assert torch.equal(p.detach(), value)
    for n, b in model.named_buffers():
        bid, value, device = buffers[n]
        assert id(b) == bid and b.device == device and torch.equal(b, value)
    assert [m.training for m in model.modules()] == modes
    for m in model.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks
        assert not m._forward_hooks_with_kwargs and not m._forward_pre_hooks_with_kwargs
    assert model.head.weight is model.emb.weight if isinstance(model, TinyLM) else True


@pytest.mark.parametrize("make, shape", [(ConvNet, (2, 3, 8, 8)), (TinyLM, (2, 5)),
                                         (ItemModel, (2, 4))])
def test_model_is_unchanged_and_no_hooks_remain(make, shape):
    torch.manual_seed(1)
    model = make()            # train mode: BatchNorm would update its running stats
    snap = _snapshot(model)
    summary(model, shape)
    _assert_untouched(model, snap)
    # and the model still runs for real afterwards
    x = torch.randint(0, 40, shape) if make is TinyLM else torch.randn(shape)
    assert torch.isfinite(model.eval()(x)).all()


def test_item_in_forward_gives_a_note_not_an_exception():
    model = ItemModel()
    s = summary(model, (2, 4))
    assert isinstance(s, ModelSummary) and s.calls is None
    assert s.shapes_note.startswith("output shapes unavailable")
    assert "RuntimeError" in s.shapes_note and "item()" in s.shapes_note
    assert "\n" not in s.shapes_note
    assert all(r["output_shape"] is None and r["calls"] is None for r in s.rows)
    assert s.total_params == 20
    assert "Note: output shapes unavailable" in s.table() and "Output shape" not in s.table()
    with pytest.raises(RuntimeError, match="item"):   # the reusable tracer does raise
        trace_calls(model, (torch.randn(2, 4),))
    assert not model._forward_hooks and not model.lin._forward_pre_hooks


# -- the tracer -----------------------------------------------------------------

def test_trace_calls_parents_follow_the_module_tree():
    model = TinyLM()
    calls = trace_calls(model, (torch.randint(0, 40, (2, 5)),))   # a real tensor: made meta
    assert calls[0].path == "" and calls[0].parent is None and calls[0].depth == 0
    assert calls[0].input_shapes == [(2, 5)] and calls[0].output_dtype == "float32"
    for c in calls[1:]:
        parent = calls[c.parent]
        assert parent.index < c.index and c.depth == parent.depth + 1
        assert c.path.startswith(parent.path + ".") or parent.path == ""
    linear1 = [c for c in calls if c.path.endswith("linear1")]
    assert [c.path for c in linear1] == ["enc.layers.0.linear1", "enc.layers.1.linear1"]
    assert calls[linear1[0].parent].path == "enc.layers.0"


# -- folding --------------------------------------------------------------------

def test_depth_folds_deeper_modules_into_their_ancestor():
    model = TinyLM()
    full = summary(model, (2, 5))
    s = summary(model, (2, 5), depth=2)
    assert max(r["depth"] for r in s.rows) == 2
    assert [r["path"] for r in s.rows] == [r["path"] for r in full.rows if r["depth"] <= 2]
    rows = {r["path"]: r for r in s.rows}
    n_below = sum(r["path"].startswith("enc.layers.") for r in full.rows)
    assert rows["enc.layers"]["folded"] == n_below
    assert rows["enc.layers"]["params"] == subtree_params(model, "enc.layers")
    assert rows["emb"]["folded"] == 0
    assert s.to_rows(1) == full.to_rows(1)
    assert {r["path"] for r in full.to_rows(1)} == {"", "emb", "enc", "norm", "head"}
    # the table shows subtree totals on folded rows and own params on expanded ones
    lines = full.table(depth=1).splitlines()
    enc = next(line for line in lines if "enc (TransformerEncoder)" in line)
    assert enc.split()[-1] == f"{subtree_params(model, 'enc'):,}"
    top = next(line for line in lines if line.startswith("TinyLM"))
    assert top.split()[-1] == f"{8 * 16:,}"
    assert not any("linear1" in line for line in lines)
    assert any("linear1" in line for line in full.table().splitlines())


# -- checkpoints ----------------------------------------------------------------

def test_catalog_from_a_safetensors_file(tmp_path):
    from safetensors.numpy import save_file

    rng = np.random.default_rng(0)
    arrays = {"model.embed.weight": rng.standard_normal((30, 8), dtype=np.float32),
              "model.layers.0.mlp.up.weight": rng.standard_normal((16, 8), dtype=np.float32),
              "model.layers.0.mlp.up.bias": np.zeros(16, np.float32),
              "model.layers.1.mlp.up.weight": np.ones((16, 8), np.float16),
              "lm_head.weight": rng.standard_normal((30, 8), dtype=np.float32)}
    path = tmp_path / "model.safetensors"
    save_file(arrays, str(path))
    total = sum(a.size for a in arrays.values())
    for source in (path, str(path), open_catalog(path)):
        s = summary(source, (1, 4))
        assert s.total_params == total
        assert s.param_bytes == sum(a.nbytes for a in arrays.values())
        assert s.trainable_params is None and s.non_trainable_params is None
        assert "no output shapes" in s.shapes_note
        assert all(r["type"] is None and r["output_shape"] is None for r in s.rows)
        rows = {r["path"]: r for r in s.rows}
        assert rows["model.layers.0"]["params"] == 16 * 8 + 16
        assert rows["model.layers"]["params"] == 2 * 16 * 8 + 16
        assert rows["model.layers.0.mlp.up"]["own_params"] == 16 * 8 + 16
        assert rows[""]["name"] == "" and s.model_name == "model.safetensors"
    text = summary(path, depth=2).table()
    assert "model.safetensors" in text and f"Total params: {total:,}" in text
    assert "mlp" not in text and "Trainable" not in text


def test_state_dict_and_module_catalog():
    model = TinyLM()
    s = summary(model.state_dict())
    assert s.model_name == "state dict"
    assert s.total_params == sum(p.numel() for p in model.parameters())
    s = summary(open_catalog(model))
    assert s.total_params == sum(p.numel() for p in model.parameters())


# -- bad input ------------------------------------------------------------------

@pytest.mark.parametrize("bad", [(1, -3), (1, 0), (2, 3.0), "1,128", (), [], [(1, 2), "x"],
                                 [(1, 2), ()], 5, (True, 2), [(1, 2), (1, None)]])
def test_bad_input_shape(bad):
    with pytest.raises(ValueError, match=r"input_shape: expected a tuple of positive ints.*got "):
        summary(nn.Linear(2, 2), bad)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_bad_depth(bad):
    with pytest.raises(ValueError, match=r"depth: expected a positive int.*got "):
        summary(nn.Linear(2, 2), depth=bad)
    with pytest.raises(ValueError, match=r"depth: expected a positive int"):
        summary(nn.Linear(2, 2)).table(depth=bad)


@pytest.mark.parametrize("bad", [42, object(), np.zeros(3), [1, 2]])
def test_bad_model(bad):
    with pytest.raises(TypeError, match=r"model: expected a torch nn.Module.*got "):
        summary(bad)


def test_bad_input_dtype():
    with pytest.raises(TypeError, match=r"input_dtype: expected a torch.dtype.*got 'float32'"):
        summary(nn.Linear(2, 2), (1, 2), input_dtype="float32")
    with pytest.raises(ValueError, match=r"input_dtype: expected one dtype, or one per input"):
        summary(nn.Linear(2, 2), [(1, 2), (1, 2)], input_dtype=[torch.float32])
