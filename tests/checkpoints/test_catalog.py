"""The catalog over every kind of source: modules, state dicts, npz/npy, torch files, folders."""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np
import pytest

import dlviz_gpu.models as models
from dlviz_gpu.checkpoints import catalog
from dlviz_gpu.models import Catalog, CheckpointError, TensorInfo

from .helpers import where, write_arrays


class _Custom:
    """A class torch's weights-only unpickler does not know."""

    def __init__(self):
        self.x = 1


def _mapped_file(address: int):
    """The file whose memory map holds ``address`` (Linux /proc/self/maps)."""
    if not os.path.exists("/proc/self/maps"):
        pytest.skip("needs /proc/self/maps")
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split(maxsplit=5)
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            if lo <= address < hi:
                return parts[5].strip() if len(parts) == 6 else None
    return None


@pytest.fixture
def arrays(rng):
    return {
        "encoder.layers.0.attn.q.weight": rng.standard_normal((6, 4)).astype(np.float32),
        "encoder.layers.0.attn.q.bias": rng.standard_normal(6).astype(np.float32),
        "encoder.layers.1.mlp.weight": rng.standard_normal((3, 4)).astype(np.float16),
        "encoder.layers.10.mlp.weight": rng.integers(-5, 5, (2, 4)).astype(np.int8),
        "head.weight": rng.standard_normal((5, 4)),
        "step_scale": np.array(0.5, np.float32),
    }


# --------------------------------------------------------------------------
# Listing, tree, rows
# --------------------------------------------------------------------------

def test_catalog_lists_every_tensor(tmp_path, arrays):
    path = write_arrays(tmp_path / "m.safetensors", arrays)
    cat = models.open(path)
    assert isinstance(cat, Catalog) and len(cat) == len(arrays)
    # natural order: layers.1 before layers.10
    assert cat.names == ["encoder.layers.0.attn.q.bias", "encoder.layers.0.attn.q.weight",
                         "encoder.layers.1.mlp.weight", "encoder.layers.10.mlp.weight",
                         "head.weight", "step_scale"]
    assert list(cat) == cat.names and "head.weight" in cat and "nope" not in cat
    info = cat.info("encoder.layers.0.attn.q.weight")
    assert info == TensorInfo(name="encoder.layers.0.attn.q.weight", module="encoder.layers.0.attn.q",
                              shape=(6, 4), dtype="float32", params=24, nbytes=96, source=path)
    assert cat.info("step_scale").module == "" and cat.info("step_scale").params == 1
    assert cat.total_params == sum(a.size for a in arrays.values())
    assert cat.total_bytes == sum(a.nbytes for a in arrays.values())
    for name, a in arrays.items():
        np.testing.assert_array_equal(cat[name], a)
    rows = cat.to_rows()
    assert rows[1] == {"name": "encoder.layers.0.attn.q.weight", "module": "encoder.layers.0.attn.q",
                       "shape": (6, 4), "dtype": "float32", "params": 24, "bytes": 96,
                       "source": path, "kind": "tensor", "tied_to": None}
    assert [r["params"] for r in rows] == [i.params for i in cat.infos]
    text = cat.table()
    assert "encoder.layers.10.mlp.weight" in text and "2x4" in text and "int8" in text
    assert text.splitlines()[-1] == f"6 tensors, {cat.total_params:,} parameters, 316 B"
    assert cat.table(max_rows=2).splitlines()[-2] == "... 4 more"
    assert repr(cat) == f"Catalog({path}: 6 tensors, {cat.total_params} parameters, 316 B)"


def test_tree_sums_parameters_per_module(tmp_path, arrays):
    cat = models.open(write_arrays(tmp_path / "m.safetensors", arrays))
    root = cat.tree()
    assert root.params == cat.total_params and root.n_tensors == 6
    assert list(root.children) == ["encoder", "head"]
    enc = root.children["encoder"]
    assert enc.path == "encoder" and list(enc.children["layers"].children) == ["0", "1", "10"]
    q = root.find("encoder.layers.0.attn.q")
    assert q.path == "encoder.layers.0.attn.q" and q.params == 30 and q.nbytes == 120
    assert [t.name for t in q.tensors] == ["encoder.layers.0.attn.q.bias",
                                           "encoder.layers.0.attn.q.weight"]
    assert root.find("encoder.layers").params == 24 + 6 + 12 + 8
    assert root.find("encoder.layers").nbytes == 96 + 24 + 24 + 8
    assert [t.name for t in root.tensors] == ["step_scale"]
    walked = [(d, n.path) for d, n in root.walk()]
    assert walked[:3] == [(0, ""), (1, "encoder"), (2, "encoder.layers")]
    assert (5, "encoder.layers.0.attn.q") in walked
    rows = root.to_rows()
    assert rows[0] == {"path": "", "depth": 0, "params": cat.total_params,
                       "bytes": cat.total_bytes, "tensors": 6}
    with pytest.raises(KeyError, match="no module 'encoder.nope'"):
        root.find("encoder.nope")


def test_select_and_key_errors(tmp_path, arrays):
    cat = models.open(write_arrays(tmp_path / "m.safetensors", arrays))
    assert cat.select("MLP") == ["encoder.layers.1.mlp.weight", "encoder.layers.10.mlp.weight"]
    assert cat.select("*.bias") == ["encoder.layers.0.attn.q.bias"]
    with pytest.raises(KeyError, match="no tensor named 'mlp' in the catalog; similar: "
                                       "encoder.layers.1.mlp.weight"):
        cat["mlp"]
    with pytest.raises(TypeError, match="pattern: expected a str"):
        cat.select(3)


def test_slash_separated_names_group_too():
    cat = models.open({"dense/kernel": np.ones((2, 2)), "dense/bias": np.ones(2)})
    assert cat.info("dense/kernel").module == "dense"
    assert cat.tree().find("dense").params == 6


# --------------------------------------------------------------------------
# In-memory sources
# --------------------------------------------------------------------------

def test_module_source_counts_like_torch_and_marks_ties():
    torch = pytest.importorskip("torch")
    nn = torch.nn

    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(11, 4)
            self.block = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 4))
            self.head = nn.Linear(4, 11, bias=False)
            self.head.weight = self.embed.weight          # tied

    torch.manual_seed(0)
    m = Tiny()
    cat = models.open(m)
    sd = m.state_dict()
    assert cat.names == list(sd)
    assert cat.total_params == sum(p.numel() for p in m.parameters())
    assert cat.info("head.weight").tied_to == "embed.weight"
    assert cat.info("embed.weight").tied_to is None
    assert cat.info("block.1.running_mean").kind == "buffer"
    assert cat.info("block.1.num_batches_tracked").dtype == "int64"
    assert cat.info("block.0.weight").kind == "parameter"
    assert cat.tree().find("block").params == 4 * 8 + 8 + 8 + 8 + 8 * 4 + 4
    assert cat["block.0.weight"].data_ptr() == m.block[0].weight.data_ptr()   # no copy
    assert cat.total_bytes == sum(t.numel() * t.element_size() for n, t in sd.items()
                                  if n != "head.weight")


def test_state_dicts_numpy_and_nested():
    a = np.arange(6.0).reshape(2, 3)
    cat = models.open({"model": {"w": a, "layers": [np.ones(2), np.zeros(3)]}, "epoch": 3,
                       "tied": a})
    assert cat.names == ["model.w", "model.layers.0", "model.layers.1", "tied"]
    assert cat.skipped == {"epoch": "int"}
    assert cat["model.w"] is a and cat.info("tied").tied_to == "model.w"
    assert cat.total_params == 6 + 2 + 3
    assert models.open(cat) is cat
    with pytest.raises(CheckpointError, match=r"<memory>: holds no tensors \(only step: int\)"):
        models.open({"step": 1})


def test_open_argument_errors(tmp_path):
    with pytest.raises(TypeError, match="source: expected a checkpoint path, a list of paths, a "
                                        "torch nn.Module or a state dict.*got builtins.int"):
        models.open(3)
    with pytest.raises(TypeError, match="source: expected"):
        models.open([])
    with pytest.raises(ValueError, match="bf16: expected one of 'auto', 'torch', 'array', "
                                         "'bits'; got 'f32'"):
        models.open({"a": np.ones(2)}, bf16="f32")
    (tmp_path / "model.onnx").write_bytes(b"\0" * 16)
    with pytest.raises(CheckpointError, match=where(tmp_path / "model.onnx",
                                                    "unknown checkpoint type")):
        models.open(tmp_path / "model.onnx")


# --------------------------------------------------------------------------
# NumPy files
# --------------------------------------------------------------------------

def test_npz_stored_members_are_memory_mapped(tmp_path, rng):
    a = rng.standard_normal((40, 30)).astype(np.float32)
    f = np.asfortranarray(rng.standard_normal((5, 7)))
    path = tmp_path / "w.npz"
    np.savez(path, **{"layer.weight": a, "layer.fortran": f, "mask": a > 0,
                      "empty": np.zeros((0, 3))})
    cat = models.open(path)
    assert cat.names == ["layer.weight", "layer.fortran", "mask", "empty"]
    assert cat.info("layer.weight").module == "layer"
    got = cat["layer.weight"]
    np.testing.assert_array_equal(got, a)
    assert not got.flags.writeable and not got.flags.owndata       # a view of the file map
    assert isinstance(got.base, __import__("mmap").mmap)
    np.testing.assert_array_equal(cat["layer.fortran"], f)
    np.testing.assert_array_equal(cat["mask"], a > 0)
    assert cat["empty"].shape == (0, 3)


def test_npz_compressed_members_and_npy(tmp_path, rng):
    a = rng.standard_normal((9, 4))
    path = tmp_path / "c.npz"
    np.savez_compressed(path, w=a, i=np.arange(5, dtype=np.int16))
    cat = models.open(path)
    assert cat.info("w").shape == (9, 4) and cat.info("i").dtype == "int16"
    np.testing.assert_array_equal(cat["w"], a)
    npy = tmp_path / "single.npy"
    np.save(npy, a.T)
    cat = models.open(npy)
    assert cat.names == ["single"]
    np.testing.assert_array_equal(cat["single"], a.T)
    assert not cat["single"].flags.owndata


def test_npz_and_npy_refusals(tmp_path):
    obj = tmp_path / "obj.npz"
    np.savez(obj, ok=np.ones(2), bad=np.array([{"a": 1}], dtype=object))
    with pytest.raises(CheckpointError, match=where(obj, "member 'bad.npy': holds Python objects "
                                                         r"\(dtype object\).*allow_pickle=False")):
        models.open(obj)
    notzip = tmp_path / "fake.npz"
    notzip.write_bytes(b"this is not a zip file at all")
    with pytest.raises(CheckpointError, match=where(notzip, r"not a readable .npz \(zip\) "
                                                            "archive")):
        models.open(notzip)
    good = tmp_path / "good.npz"
    np.savez(good, w=np.ones(1000))
    cut = tmp_path / "cut.npz"
    cut.write_bytes(good.read_bytes()[:2000])
    with pytest.raises(CheckpointError, match=where(cut, "npz")):
        models.open(cut)
    npy = tmp_path / "t.npy"
    np.save(npy, np.ones(100))
    npy.write_bytes(npy.read_bytes()[:300])
    with pytest.raises(CheckpointError, match=where(npy, "needs 800 bytes .*truncated")):
        models.open(npy)
    bad = tmp_path / "bad.npy"
    bad.write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(CheckpointError, match=where(bad, "not a valid .npy array")):
        models.open(bad)
    objnpy = tmp_path / "o.npy"
    np.save(objnpy, np.array([None, 1], dtype=object), allow_pickle=True)
    with pytest.raises(CheckpointError, match=where(objnpy, "holds Python objects")):
        models.open(objnpy)


# --------------------------------------------------------------------------
# torch files
# --------------------------------------------------------------------------

def test_torch_file_is_loaded_weights_only_and_mapped(tmp_path):
    torch = pytest.importorskip("torch")
    g = torch.Generator().manual_seed(3)
    sd = {"w": torch.randn(8, 6, generator=g).to(torch.bfloat16),
          "b": torch.randn(6, generator=g), "q": torch.randint(-9, 9, (4, 4), dtype=torch.int8,
                                                             generator=g)}
    path = tmp_path / "model.pt"
    torch.save(sd, path)
    cat = models.open(path)
    assert cat.names == ["w", "b", "q"] and cat.info("w").dtype == "bfloat16"
    for k, t in sd.items():
        assert torch.equal(cat[k], t)
    # mmap=True: the tensors live in a map of the file, not a private copy
    assert _mapped_file(cat["w"].data_ptr()) == os.fspath(path)

    ckpt = tmp_path / "ckpt.bin"
    torch.save({"model": {"layer.weight": torch.ones(2, 3)}, "step": 7, "lr": 0.1}, ckpt)
    cat = models.open(ckpt)
    assert cat.names == ["model.layer.weight"] and cat.skipped == {"step": "int", "lr": "float"}
    assert cat.info("model.layer.weight").module == "model.layer"

    lone = tmp_path / "lone.pth"
    torch.save(torch.arange(5.0), lone)
    assert models.open(lone).names == ["lone"]

    legacy = tmp_path / "legacy.pt"                      # pre-zip format: no mmap, still read
    torch.save({"a": torch.ones(3)}, legacy, _use_new_zipfile_serialization=False)
    assert torch.equal(models.open(legacy)["a"], torch.ones(3))


def test_torch_file_needing_arbitrary_unpickling_is_refused(tmp_path):
    torch = pytest.importorskip("torch")
    path = tmp_path / "evil.pt"
    torch.save({"w": torch.ones(2), "extra": _Custom()}, path)
    with pytest.raises(CheckpointError, match=where(path, r"refused: it pickles "
                                                          r"tests.checkpoints.test_catalog._Custom.*"
                                                          r"weights_only=True only.*run any code")):
        models.open(path)
    module_file = tmp_path / "module.pt"
    torch.save(torch.nn.Linear(2, 2), module_file)       # a whole module, not a state dict
    with pytest.raises(CheckpointError, match=where(module_file, "refused: it pickles torch.nn")):
        models.open(module_file)


def test_broken_torch_files(tmp_path):
    pytest.importorskip("torch")
    import torch

    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match=where(empty, "file is empty")):
        models.open(empty)
    junk = tmp_path / "junk.bin"
    junk.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(CheckpointError, match=where(junk, "cannot be loaded with "
                                                          "weights_only=True")):
        models.open(junk)
    good = tmp_path / "good.pt"
    torch.save({"w": torch.ones(1000)}, good)
    cut = tmp_path / "cut.pt"
    cut.write_bytes(good.read_bytes()[:1500])
    with pytest.raises(CheckpointError, match=where(cut, "not a readable torch checkpoint")):
        models.open(cut)


def test_sharded_torch_index(tmp_path):
    torch = pytest.importorskip("torch")
    torch.save({"a.weight": torch.ones(2), "extra": torch.zeros(1)}, tmp_path / "p-1.bin")
    torch.save({"b.weight": torch.full((3,), 2.0)}, tmp_path / "p-2.bin")
    (tmp_path / "pytorch_model.bin.index.json").write_text(json.dumps(
        {"weight_map": {"a.weight": "p-1.bin", "b.weight": "p-2.bin"}}))
    cat = models.open(tmp_path)                # the folder: its index wins over the .bin files
    assert cat.names == ["a.weight", "b.weight"]
    assert torch.equal(cat["b.weight"], torch.full((3,), 2.0))


# --------------------------------------------------------------------------
# Paths, folders, lists, progress
# --------------------------------------------------------------------------

def test_folders_lists_and_duplicates(tmp_path, rng):
    d = tmp_path / "ckpt"
    d.mkdir()
    write_arrays(d / "a.safetensors", {"x.w": np.ones(2, np.float32)})
    write_arrays(d / "b.safetensors", {"y.w": np.ones(3, np.float32)})
    np.savez(d / "ignored.npz", z=np.ones(2))   # safetensors present: other formats left out
    cat = models.open(d)
    assert cat.names == ["x.w", "y.w"]
    assert cat.sources == [str(d / "a.safetensors"), str(d / "b.safetensors")]
    both = models.open([d / "a.safetensors", tmp_path / "ckpt" / "ignored.npz"])
    assert both.names == ["x.w", "z"]
    write_arrays(tmp_path / "again.safetensors", {"x.w": np.zeros(2, np.float32)})
    with pytest.raises(CheckpointError, match=where(tmp_path / "again.safetensors",
                                                    "tensor 'x.w' is also in .*a.safetensors; "
                                                    "open the checkpoints separately")):
        models.open([d, tmp_path / "again.safetensors"])


def test_progress_bar_while_opening_shards(tmp_path, capsys):
    weight_map = {}
    for k in range(3):
        write_arrays(tmp_path / f"s{k}.safetensors", {f"l{k}.w": np.ones(2, np.float32)})
        weight_map[f"l{k}.w"] = f"s{k}.safetensors"
    index = tmp_path / "m.safetensors.index.json"
    index.write_text(json.dumps({"weight_map": weight_map}))
    models.open(index)                               # few shards, not a terminal: quiet
    assert capsys.readouterr().err == ""
    cat = models.open(index, progress=True)
    err = capsys.readouterr().err
    assert "opening shards" in err and "/3 " in err
    assert len(cat) == 3


def test_matrix_raw_and_close(tmp_path, rng):
    pytest.importorskip("torch")
    a = rng.standard_normal((4, 6)).astype(np.float32)
    cat = models.open(write_arrays(tmp_path / "m.safetensors", {"w": a}))
    m = cat.matrix("w")
    assert m.shape == (4, 6) and m.dtype == "float32"
    assert cat.matrix("w", layout="flatten").shape == (4, 6)
    with cat:
        view = cat["w"]
    np.testing.assert_array_equal(view, a)         # handed-out views outlive close()
    np.testing.assert_array_equal(cat["w"], a)     # and the catalog maps again on demand
    mem = models.open({"w": a})
    with pytest.raises(TypeError, match="raw: only safetensors sources expose raw bytes"):
        mem.raw("w")
    assert models.format_bytes(1536) == "1.5 KiB" and models.format_bytes(10) == "10 B"


def test_zip_entries_that_are_not_arrays_are_ignored(tmp_path):
    path = tmp_path / "mixed.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("README.txt", "hello")
    with pytest.raises(CheckpointError, match=where(path, "holds no tensors")):
        models.open(path)


# --------------------------------------------------------------------------
# tree() and table() against the plain per-tensor walk they replaced
# --------------------------------------------------------------------------

def _plain_tree(infos):
    """Each tensor walked from the root, every node on its way updated (the definition)."""
    from dlviz_gpu.checkpoints.catalog import ModuleNode, _prefix_len, counts_in_totals
    from dlviz_gpu.checkpoints.sources import NAME_SEP

    root = ModuleNode("", "")
    for info in infos:
        parts = [p for p in NAME_SEP.split(info.module) if p] if info.module else []
        chain, node = [root], root
        for k, part in enumerate(parts):
            if part not in node.children:
                node.children[part] = ModuleNode(part, info.module[:_prefix_len(info.module,
                                                                                 k + 1)])
            node = node.children[part]
            chain.append(node)
        node.tensors.append(info)
        for n in chain:
            n.n_tensors += 1
            n.params += info.params if counts_in_totals(info) else 0
            n.nbytes += info.nbytes if info.tied_to is None else 0
    return root


def _flat(node):
    return [(d, n.name, n.path, n.params, n.nbytes, n.n_tensors, [i.name for i in n.tensors],
             list(n.children)) for d, n in node.walk()]


def _plain_table(cat):
    from dlviz_gpu.models import format_bytes

    head = ("name", "shape", "dtype", "params", "bytes")
    body = [(i.name + (f" (= {i.tied_to})" if i.tied_to else ""),
             "x".join(map(str, i.shape)) or "scalar", i.dtype, f"{i.params:,}",
             format_bytes(i.nbytes)) for i in cat.infos]
    widths = [max([len(head[c])] + [len(r[c]) for r in body]) for c in range(5)]
    right = (False, True, False, True, True)

    def fmt(r):
        return "  ".join(v.rjust(w) if rj else v.ljust(w)
                         for v, w, rj in zip(r, widths, right)).rstrip()

    return [fmt(head)] + [fmt(r) for r in body]


def test_tree_and_table_match_the_plain_walk():
    hypothesis = pytest.importorskip("hypothesis")
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from dlviz_gpu.checkpoints.sources import _info

    part = st.sampled_from(["a", "b", "layers", "0", "1", "10", "", "mlp", "é"])
    name = st.lists(st.tuples(part, st.sampled_from(".//")), min_size=1, max_size=5).map(
        lambda ps: "".join(p + s for p, s in ps)[:-1] or "x")
    tensor = st.tuples(name, st.lists(st.integers(0, 4), max_size=3),
                       st.sampled_from(["parameter", "buffer", "tensor"]), st.booleans())

    @settings(max_examples=200, deadline=None, database=None, derandomize=True)
    @given(st.lists(tensor, max_size=25, unique_by=lambda t: t[0]))
    def check(tensors):
        infos, first = [], None
        for n, shape, kind, tied in tensors:
            infos.append(_info(n, shape, "float32", 4 * int(np.prod(shape)), "<memory>", kind,
                               first if tied and first else None))
            first = first or n

        class Listing:
            path, skipped = "<memory>", {}

            def __init__(self):
                self.infos = infos

        cat = Catalog([Listing()])
        assert _flat(cat.tree()) == _flat(_plain_tree(infos))
        assert cat.table().splitlines()[:-1] == _plain_table(cat)

    check()


def test_plan_lists_refused_tensors_with_their_reason_and_draws_the_rest(tmp_path):
    torch = pytest.importorskip("torch")
    path = tmp_path / "mix.pt"
    torch.save({"w": torch.zeros(1).expand(10**7, 10**7), "ok": torch.randn(8, 8)}, path)
    cat = models.open(path)
    plans = {info.name: (layout, note) for info, layout, note in catalog.plan(cat.infos)}
    assert plans["ok"] == ("auto", "")
    layout, note = plans["w"]
    assert layout is None
    assert "expanded or overlapping view" in note and "reaches 1 stored" in note
    with pytest.raises(CheckpointError, match="is refused: an expanded or overlapping view"):
        cat.matrix("w")
