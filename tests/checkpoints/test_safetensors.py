"""Our safetensors reader: the reference reader's values exactly, in place, and every lie refused."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest

import dlviz_gpu as dv
import dlviz_gpu.models as models
from dlviz_gpu.models import CheckpointError, CheckpointNotFound, SafetensorsFile, read_header

from .helpers import where, write_arrays, write_raw


# --------------------------------------------------------------------------
# Against the reference implementation
# --------------------------------------------------------------------------

def _reference_state(rng):
    torch = pytest.importorskip("torch")
    g = torch.Generator().manual_seed(7)
    w = torch.randn(33, 17, generator=g)
    w[3, 4] = float("nan")
    w[5, 6] = float("inf")
    return {
        "model.embed_tokens.weight": torch.randn(50, 8, generator=g).to(torch.bfloat16),
        "model.layers.0.self_attn.q_proj.weight": w.to(torch.bfloat16),
        "model.layers.0.mlp.up_proj.weight": torch.randn(24, 8, generator=g).half(),
        "model.layers.0.mlp.down_proj.weight": torch.randn(8, 24, generator=g),
        "model.layers.1.mlp.up_proj.weight": torch.randint(-128, 128, (24, 8), generator=g,
                                                           dtype=torch.int8),
        "model.layers.1.mlp.up_proj.scale": torch.rand(24, generator=g, dtype=torch.float64),
        "model.layers.10.norm.weight": torch.ones(8),
        "model.mask": torch.rand(4, 4, generator=g) > 0.5,
        "model.empty": torch.zeros(0, 5),
        "lm_head.weight": torch.randn(50, 8, generator=g).to(torch.bfloat16),
    }


def _assert_same_as_reference(ours, ref_path, name):
    import torch
    from safetensors import safe_open

    with safe_open(ref_path, framework="pt") as ref:
        expected = ref.get_tensor(name)
    got = ours[name]
    assert isinstance(got, torch.Tensor) == (expected.dtype == torch.bfloat16)
    got = got if isinstance(got, torch.Tensor) else torch.from_numpy(np.array(got))
    assert got.dtype == expected.dtype and tuple(got.shape) == tuple(expected.shape)
    # bit-exact, NaN and inf included
    if got.element_size() == 2:
        assert torch.equal(got.view(torch.int16), expected.view(torch.int16))
    elif got.dtype == torch.bool:
        assert torch.equal(got, expected)
    else:
        assert torch.equal(got.reshape(-1).view(torch.uint8), expected.reshape(-1).view(torch.uint8))


def test_single_file_matches_reference_reader(tmp_path, rng):
    st = pytest.importorskip("safetensors.torch")
    from safetensors import safe_open

    state = _reference_state(rng)
    path = str(tmp_path / "model.safetensors")
    st.save_file(state, path, metadata={"format": "pt", "note": "é"})
    f = SafetensorsFile(path)
    with safe_open(path, framework="pt") as ref:
        assert set(f.names) == set(ref.keys())
        assert f.metadata == ref.metadata() == {"format": "pt", "note": "é"}
    for name in state:
        _assert_same_as_reference(f, path, name)
    cat = models.open(path)
    assert set(cat) == set(state)
    for name, t in state.items():
        info = cat.info(name)
        assert info.shape == tuple(t.shape)
        assert info.dtype == str(t.dtype).replace("torch.", "")
        assert info.params == t.numel() and info.nbytes == t.numel() * t.element_size()
    assert cat.metadata() == {path: {"format": "pt", "note": "é"}}


def test_sharded_set_matches_reference_reader(tmp_path, rng):
    st = pytest.importorskip("safetensors.torch")
    state = _reference_state(rng)
    names = list(state)
    shards = {"model-00001-of-00003.safetensors": names[:4],
              "model-00002-of-00003.safetensors": names[4:7],
              "model-00003-of-00003.safetensors": names[7:]}
    weight_map = {}
    for file, part in shards.items():
        st.save_file({n: state[n] for n in part}, str(tmp_path / file))
        weight_map.update({n: file for n in part})
    index = tmp_path / "model.safetensors.index.json"
    index.write_text(json.dumps({"metadata": {"total_size": 0}, "weight_map": weight_map}))
    for opened in (models.open(index), models.open(tmp_path)):   # the index, or its folder
        assert set(opened) == set(state)
        for name in state:
            src = weight_map[name]
            assert opened.info(name).source == os.path.normpath(str(tmp_path / src))
            _assert_same_as_reference(opened, str(tmp_path / src), name)
    assert sorted(models.open(index).sources) == sorted(
        os.path.normpath(str(tmp_path / f)) for f in shards)


def test_hand_written_file_is_read_in_place_for_every_numpy_dtype(tmp_path, rng):
    arrays = {
        "f64": rng.standard_normal((3, 4)),
        "f32": rng.standard_normal((5, 2)).astype(np.float32),
        "f16": rng.standard_normal(7).astype(np.float16),
        "i64": rng.integers(-9, 9, (2, 2)),
        "i32": rng.integers(-9, 9, 3).astype(np.int32),
        "i16": rng.integers(-9, 9, 3).astype(np.int16),
        "i8": rng.integers(-9, 9, (4, 4)).astype(np.int8),
        "u8": rng.integers(0, 255, 6).astype(np.uint8),
        "b": rng.random(5) > 0.5,
        "scalar": np.array(2.5, np.float32),
    }
    # contiguous, as the format requires; several tensors start at unaligned offsets
    path = write_arrays(tmp_path / "x.safetensors", arrays)
    f = SafetensorsFile(path)
    assert not all(f.is_aligned(name) for name in arrays)
    for name, a in arrays.items():
        got = f[name]
        assert got.dtype == a.dtype and got.shape == a.shape
        np.testing.assert_array_equal(got, a)
        # a read-only view of the file map, not a copy
        assert not got.flags.writeable and not got.flags.owndata
    with open(path, "rb") as fh:
        whole = fh.read()
    start = f.header.data_start + f.spec("f32").begin
    assert whole[start:start + 40] == arrays["f32"].tobytes()
    assert bytes(f.raw("f32")) == arrays["f32"].tobytes()


def test_bf16_is_read_in_place_and_rasterizes_like_its_float32_upcast(tmp_path, rng):
    torch = pytest.importorskip("torch")
    values = rng.standard_normal((37, 53)).astype(np.float32) * 3
    values[2, 3], values[4, 5], values[6, 7] = np.nan, np.inf, -np.inf
    bits = models.float32_to_bf16(values)
    upcast = models.bf16_to_float32(bits)
    assert np.allclose(upcast, values, rtol=1e-2, equal_nan=True)
    path = write_arrays(tmp_path / "bf.safetensors", {"w": ("BF16", bits),
                                                      "h": values.astype(np.float16)})
    expected = dv.rasterize(upcast, 20, 15, x_range=(3, 47), y_range=(1, 30))

    cat = models.open(path)                  # torch installed: a torch bf16 tensor over the map
    t = cat["w"]
    assert t.dtype == torch.bfloat16 and tuple(t.shape) == (37, 53)
    view = cat.raw("w")
    assert t.data_ptr() == view.__array_interface__["data"][0]       # no copy
    cat_np = models.open(path, bf16="array")                     # no torch needed
    as_array = cat_np["w"]
    assert isinstance(as_array, models.BFloat16Array)
    assert as_array.bits.__array_interface__["data"][0] == \
        cat_np.raw("w").__array_interface__["data"][0]
    assert models.open(path, bf16="bits")["w"].dtype == np.uint16

    for tensor in (t, cat.matrix("w"), as_array.matrix(), as_array):
        r = dv.rasterize(tensor, 20, 15, x_range=(3, 47), y_range=(1, 30))
        for stat in ("count", "nan_count", "sum", "mean", "min", "max", "extremum", "std"):
            np.testing.assert_array_equal(r[stat], expected[stat], err_msg=stat)
    assert cat.matrix("w").dtype == "bfloat16"
    # float16 stays float16 (the engine decodes it in place)
    assert cat["h"].dtype == np.float16 and not cat["h"].flags.owndata
    h = dv.histogram(cat.matrix("w"), bins=16, range=(-4, 4))
    h_ref = dv.histogram(upcast, bins=16, range=(-4, 4))
    np.testing.assert_array_equal(h.counts, h_ref.counts)
    assert (h.nan, h.posinf, h.neginf) == (1, 1, 1)


def test_bf16_conversions_round_trip():
    v = np.array([0.0, -0.0, 1.0, -2.5, 3.0e38, 1e-40, np.inf, -np.inf, np.nan, 1.00390625],
                 np.float32)
    bits = models.float32_to_bf16(v)
    back = models.bf16_to_float32(bits)
    exact = [0, 1, 2, 3, 6, 7]           # representable in bfloat16: unchanged
    np.testing.assert_array_equal(back[exact], v[exact])
    assert abs(back[4] - v[4]) <= 2.0 ** -8 * v[4]
    assert back[0] == 0 and np.signbit(back[1]) and back[2] == 1 and back[3] == -2.5
    assert np.isposinf(back[6]) and np.isneginf(back[7]) and np.isnan(back[8])
    assert back[9] == 1.0  # 1 + 2^-8 rounds to even (1.0)
    torch = pytest.importorskip("torch")
    ref = torch.from_numpy(v).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    np.testing.assert_array_equal(bits[~np.isnan(v)], ref[~np.isnan(v)])
    with pytest.raises(TypeError, match="bits: expected a uint16"):
        models.bf16_to_float32(np.zeros(3, np.float32))


def test_bfloat16array_behaves_like_a_small_array():
    bits = models.float32_to_bf16(np.arange(12, dtype=np.float32).reshape(3, 4))
    a = models.BFloat16Array(bits)
    assert a.shape == (3, 4) and a.ndim == 2 and a.size == 12 and a.nbytes == 24 and len(a) == 3
    np.testing.assert_array_equal(np.asarray(a[1:, ::2]), [[4, 6], [8, 10]])
    np.testing.assert_array_equal(np.asarray(a.T)[0], [0, 4, 8])
    assert a.astype(np.float64).dtype == np.float64
    with pytest.raises(ValueError, match="without a copy"):
        a.__array__(copy=False)
    with pytest.raises(ValueError, match="layout: expected one of"):
        a.matrix("diagonal")
    with pytest.raises(TypeError, match="bits: expected a uint16 ndarray"):
        models.BFloat16Array(np.zeros(3, np.int32))


def test_float8_is_listed_but_not_decoded(tmp_path):
    path = write_raw(tmp_path / "f8.safetensors",
                     {"q": {"dtype": "F8_E4M3", "shape": [2, 3], "data_offsets": [0, 6]},
                      "f4": {"dtype": "F4", "shape": [4], "data_offsets": [6, 8]}},
                     bytes(range(8)))
    cat = models.open(path)
    assert cat.info("q").dtype == "float8_e4m3fn" and cat.info("q").nbytes == 6
    assert cat.info("f4").nbytes == 2
    assert bytes(cat.raw("q")) == bytes(range(6))
    with pytest.raises(TypeError, match="F8_E4M3 .*cannot decode"):
        cat["q"]


# --------------------------------------------------------------------------
# Lazy: opening reads no tensor data
# --------------------------------------------------------------------------

def test_open_reads_no_tensor_data_of_a_1gib_file(tmp_path):
    psutil = pytest.importorskip("psutil")
    rows, cols = 16384, 16384                       # float32: 1 GiB
    header = json.dumps({"big": {"dtype": "F32", "shape": [rows, cols],
                                 "data_offsets": [0, rows * cols * 4]},
                         "small": {"dtype": "F32", "shape": [2],
                                   "data_offsets": [rows * cols * 4, rows * cols * 4 + 8]}})
    path = tmp_path / "big.safetensors"
    write_raw(path, header)
    with open(path, "r+b") as f:                     # sparse: no disk, no page cache
        f.truncate(8 + len(header) + rows * cols * 4 + 8)
    # compile the read-only float32 kernel first, so compilation is not counted
    warm = np.frombuffer(np.ones(64, np.float32).tobytes(), np.float32).reshape(8, 8)
    dv.rasterize(warm, 4, 4)
    proc = psutil.Process()
    before = proc.memory_info().rss
    cat = models.open(path)
    big = cat["big"]
    assert big.shape == (rows, cols) and cat.total_bytes == rows * cols * 4 + 8
    grown = proc.memory_info().rss - before
    assert grown < 64 * 2**20, f"opening grew RSS by {grown / 2**20:.0f} MiB"
    # a window of 64 rows reads those rows' pages only (4 MiB of the 1 GiB)
    r = dv.rasterize(big, 64, 16, y_range=(100, 164))
    assert r["count"].sum() == 64 * cols and np.all(r["max"] == 0)
    grown = proc.memory_info().rss - before
    assert grown < 160 * 2**20, f"a 64-row window grew RSS by {grown / 2**20:.0f} MiB"


# --------------------------------------------------------------------------
# Bad input: each refused with the file and the problem
# --------------------------------------------------------------------------

def _entry(dtype="F32", shape=(2,), offsets=(0, 8)):
    return {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets)}


BAD_HEADERS = {
    "not_an_object": ([1, 2], b"", "header is a JSON list, expected an object"),
    "entry_not_object": ({"w": 3}, b"", "tensor 'w': expected an object"),
    "missing_key": ({"w": {"dtype": "F32", "shape": [2]}}, b"", "tensor 'w': missing data_offsets"),
    "unknown_dtype": ({"w": _entry(dtype="F13")}, b"\0" * 8, "tensor 'w': unknown dtype 'F13'"),
    "dtype_not_str": ({"w": _entry(dtype=4)}, b"\0" * 8, "unknown dtype 4"),
    "shape_negative": ({"w": _entry(shape=(-2,))}, b"\0" * 8,
                       r"shape must be a list of non-negative integers; got \[-2\]"),
    "shape_float": ({"w": _entry(shape=(2.0,))}, b"\0" * 8, "shape must be a list"),
    "shape_bool": ({"w": _entry(shape=(True, 2))}, b"\0" * 8, "shape must be a list"),
    "shape_not_list": ({"w": {"dtype": "F32", "shape": 2, "data_offsets": [0, 8]}}, b"\0" * 8,
                       "shape must be a list"),
    "offsets_three": ({"w": _entry(offsets=(0, 4, 8))}, b"\0" * 8,
                      "data_offsets must be two non-negative integers"),
    "offsets_strings": ({"w": _entry(offsets=("0", "8"))}, b"\0" * 8,
                        "data_offsets must be two non-negative integers"),
    "offsets_negative": ({"w": _entry(offsets=(-8, 0))}, b"\0" * 8,
                         "data_offsets must be two non-negative integers"),
    "offsets_reversed": ({"w": _entry(shape=(0,), offsets=(8, 0))}, b"\0" * 8,
                         r"data_offsets \[8, 0\] begin after they end"),
    "offsets_out_of_buffer": ({"w": _entry(offsets=(1000, 1008))}, b"\0" * 8,
                              r"data_offsets \[1000, 1008\] run past the end of the data "
                              r"buffer \(8 bytes"),
    "overlap": ({"a": _entry(offsets=(0, 8)), "b": _entry(shape=(1,), offsets=(4, 8))},
                b"\0" * 8, r"tensors 'a' \[0, 8\] and 'b' \[4, 8\] overlap"),
    "bytes_vs_shape": ({"w": _entry(shape=(2, 3), offsets=(0, 8))}, b"\0" * 24,
                       r"shape \[2, 3\] of dtype F32 needs 24 bytes but data_offsets \[0, 8\] "
                       r"hold 8"),
    "subbyte_bytes": ({"w": _entry(dtype="F4", shape=(3,), offsets=(0, 2))}, b"\0" * 2,
                      "needs 1.5 bytes"),
    "metadata_not_strings": ({"__metadata__": {"step": 3}}, b"",
                             "__metadata__ must be an object of strings"),
}


@pytest.mark.parametrize("case", sorted(BAD_HEADERS))
def test_lying_headers_are_refused(tmp_path, case):
    header, data, problem = BAD_HEADERS[case]
    path = write_raw(tmp_path / f"{case}.safetensors", header, data)
    with pytest.raises(CheckpointError, match=where(path, problem)):
        models.open(path)
    # the reference reader refuses them too, so the files really are bad
    safetensors = pytest.importorskip("safetensors")
    with pytest.raises(Exception):
        with safetensors.safe_open(path, framework="np") as ref:
            for k in ref.keys():
                ref.get_tensor(k)


def test_missing_file_and_empty_directory(tmp_path):
    missing = tmp_path / "nope.safetensors"
    with pytest.raises(CheckpointNotFound, match=where(missing, "no such file")):
        models.open(missing)
    with pytest.raises(FileNotFoundError):       # also a FileNotFoundError
        SafetensorsFile(missing)
    (tmp_path / "notes.txt").write_text("no checkpoints here")
    with pytest.raises(CheckpointError, match=where(tmp_path, "holds no checkpoint files")):
        models.open(tmp_path)
    with pytest.raises(CheckpointError, match="is a directory"):
        read_header(tmp_path)


@pytest.mark.parametrize("size", [0, 5])
def test_file_shorter_than_the_length_prefix(tmp_path, size):
    path = tmp_path / "short.safetensors"
    path.write_bytes(b"\x01" * size)
    with pytest.raises(CheckpointError, match=where(path, f"file is {size} bytes, shorter than "
                                                          f"the 8-byte header length")):
        models.open(path)


def test_header_length_past_the_end_of_the_file(tmp_path):
    path = write_raw(tmp_path / "past.safetensors", b"{}", length=10**15)
    with pytest.raises(CheckpointError, match=where(path, r"header length 1000000000000000 runs "
                                                          r"past the end of the file \(10 bytes\)")):
        models.open(path)


def test_huge_header_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "huge.safetensors"
    n = models.MAX_HEADER_BYTES + 1
    write_raw(path, b"{", length=n)
    with open(path, "r+b") as f:
        f.truncate(8 + n + 16)          # sparse: the file is long enough, the header too big
    with pytest.raises(CheckpointError, match=where(path, f"header length {n} exceeds the "
                                                          f"100000000 byte limit")):
        models.open(path)


def test_zero_length_non_utf8_invalid_and_deep_json(tmp_path):
    cases = {
        "zero": (b"", "header length is 0"),
        "latin1": ('{"wé": 1}'.encode("latin-1"), r"header is not valid UTF-8 \(byte 0xe9 at "
                                                  r"position 3\)"),
        "json": (b'{"w": {"dtype": "F32",', "header is not valid JSON: Expecting"),
        "deep": (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        "duplicate": (b'{"w": {}, "w": {}}', "header names 'w' twice"),
    }
    for label, (header, problem) in cases.items():
        path = write_raw(tmp_path / f"{label}.safetensors", header, b"\0" * 8)
        with pytest.raises(CheckpointError, match=where(path, problem)):
            models.open(path)


def test_truncated_file(tmp_path, rng):
    path = write_arrays(tmp_path / "t.safetensors",
                        {"a": rng.standard_normal(100).astype(np.float32),
                         "b": rng.standard_normal(100).astype(np.float32)})
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) - 10)
    with pytest.raises(CheckpointError, match=where(path, r"tensor 'b': data_offsets \[400, "
                                                          r"800\] run past the end of the data "
                                                          r"buffer \(790 bytes.*truncated")):
        models.open(path)


def test_file_changed_between_listing_and_reading(tmp_path, rng):
    path = write_arrays(tmp_path / "c.safetensors", {"a": np.ones(100, np.float32)})
    cat = models.open(path)
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) - 100)
    with pytest.raises(CheckpointError, match=where(path, "file changed since its header was "
                                                          "read")):
        cat["a"]


def test_sharded_index_errors(tmp_path, rng):
    write_arrays(tmp_path / "s1.safetensors", {"a": np.ones(3, np.float32)})
    index = tmp_path / "m.safetensors.index.json"

    index.write_text(json.dumps({"weight_map": {"a": "s1.safetensors", "b": "s2.safetensors"}}))
    with pytest.raises(CheckpointError, match=where(index, "shard 's2.safetensors' \\(holding "
                                                           "'b'\\) does not exist")):
        models.open(index)

    index.write_text(json.dumps({"weight_map": {"a": "s1.safetensors", "z": "s1.safetensors"}}))
    with pytest.raises(CheckpointError, match=where(index, "shard 's1.safetensors' lacks 1 "
                                                           "tensor.*'z'")):
        models.open(index)

    for text, problem in [("{", "index is not valid JSON"),
                          ('{"weights": {}}', "\"weight_map\" maps tensor names"),
                          ('{"weight_map": {"a": 3}}', "\"weight_map\" maps tensor names"),
                          ('{"weight_map": {}}', "lists no tensors")]:
        index.write_text(text)
        with pytest.raises(CheckpointError, match=where(index, problem)):
            models.open(index)

    # a lying shard is named as the shard
    write_raw(tmp_path / "s1.safetensors", {"a": _entry(offsets=(0, 80))}, b"\0" * 8)
    index.write_text(json.dumps({"weight_map": {"a": "s1.safetensors"}}))
    with pytest.raises(CheckpointError, match=where(tmp_path / "s1.safetensors", "run past")):
        models.open(index)


def test_reader_argument_errors(tmp_path):
    path = write_arrays(tmp_path / "a.safetensors", {"a": np.ones(2, np.float32)})
    with pytest.raises(ValueError, match="bf16: expected one of 'auto', 'torch'"):
        SafetensorsFile(path, bf16="float")
    with pytest.raises(KeyError, match="no tensor named 'b'"):
        SafetensorsFile(path)["b"]
    with pytest.raises(TypeError, match="path: expected a str or os.PathLike; got int"):
        read_header(3)


# --------------------------------------------------------------------------
# Shard paths stay inside the index's folder; one message whatever exists
# --------------------------------------------------------------------------

def _index_to(folder, shard: str):
    index = folder / "m.safetensors.index.json"
    index.write_text(json.dumps({"weight_map": {"a": shard}}))
    return index


def test_shards_outside_the_folder_are_refused_with_one_message(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    private = write_arrays(outside / "private.safetensors", {"a": np.ones(2, np.float32)})
    models_dir = tmp_path / "models"
    models_dir.mkdir()
    os.symlink(private, models_dir / "link.safetensors")
    os.symlink(outside / "nope.safetensors", models_dir / "dangling.safetensors")
    os.symlink(outside, models_dir / "dir")
    texts = {}
    for shard in ["../outside/private.safetensors", "../outside/nope.safetensors",
                  str(private), str(outside / "nope.safetensors"), "link.safetensors",
                  "dangling.safetensors", "dir/private.safetensors", "dir/nope.safetensors",
                  "sub/../link.safetensors", "..\\outside\\private.safetensors"]:
        index = _index_to(models_dir, shard)
        with pytest.raises(CheckpointError) as err:
            models.open(index)
        texts[shard] = str(err.value)
        assert str(err.value) == f"{index}: shard {shard!r} is outside the index's folder"
    # whether the target exists changes nothing but the name quoted
    assert len({t.replace(repr(s), "NAME") for s, t in texts.items()}) == 1


def test_shards_inside_the_folder_and_hub_cache_snapshots_are_read(tmp_path):
    write_arrays(tmp_path / "real.safetensors", {"a": np.arange(3, dtype=np.float32)})
    os.symlink("real.safetensors", tmp_path / "link.safetensors")
    (tmp_path / "sub").mkdir()
    write_arrays(tmp_path / "sub" / "s.safetensors", {"a": np.arange(3, dtype=np.float32)})
    for shard in ("link.safetensors", "./real.safetensors", "sub/s.safetensors"):
        np.testing.assert_array_equal(models.open(_index_to(tmp_path, shard))["a"], [0, 1, 2])
    # the hub cache: snapshots/REV/* are relative symlinks into the repo's blobs/
    repo = tmp_path / "hub" / "models--org--name"
    snap = repo / "snapshots" / "abc123"
    (repo / "blobs").mkdir(parents=True)
    snap.mkdir(parents=True)
    write_arrays(repo / "blobs" / "9f86d08", {"a": np.arange(4, dtype=np.float32)})
    (repo / "blobs" / "60303ae").write_text(json.dumps(
        {"weight_map": {"a": "model-00001-of-00001.safetensors"}}))
    os.symlink("../../blobs/9f86d08", snap / "model-00001-of-00001.safetensors")
    os.symlink("../../blobs/60303ae", snap / "model.safetensors.index.json")
    for opened in (models.open(snap / "model.safetensors.index.json"), models.open(snap)):
        np.testing.assert_array_equal(opened["a"], [0, 1, 2, 3])
    # but not out of the repo's folder, nor out of a folder that only looks like a snapshot
    os.symlink(tmp_path / "real.safetensors", snap / "escape.safetensors")
    index = _index_to(snap, "escape.safetensors")
    with pytest.raises(CheckpointError, match=where(index, "shard 'escape.safetensors' is "
                                                           "outside the index's folder")):
        models.open(index)
    fake = tmp_path / "models--x--y" / "snapshots" / "r"      # no blobs/ beside snapshots/
    fake.mkdir(parents=True)
    os.symlink(tmp_path / "real.safetensors", fake / "s.safetensors")
    index = _index_to(fake, "s.safetensors")
    with pytest.raises(CheckpointError, match="is outside the index's folder"):
        models.open(index)


@pytest.mark.timeout(60)          # a hang guard: opening a FIFO used to block forever
def test_fifos_are_refused_without_blocking(tmp_path):
    fifo = tmp_path / "model.safetensors"
    os.mkfifo(fifo)
    with pytest.raises(CheckpointError, match=where(fifo, r"is not a regular file \(a FIFO\)")):
        models.open(fifo)
    with pytest.raises(CheckpointError, match=r"is not a regular file \(a FIFO\)"):
        read_header(fifo)
    os.mkfifo(tmp_path / "shard.safetensors")
    index = _index_to(tmp_path, "shard.safetensors")
    with pytest.raises(CheckpointError, match=where(index, r"shard 'shard.safetensors' \(holding "
                                                           r"'a'\) is not a regular file \(a "
                                                           r"FIFO\)")):
        models.open(index)
    fifo_index = tmp_path / "f.safetensors.index.json"
    os.mkfifo(fifo_index)
    with pytest.raises(CheckpointError, match=where(fifo_index, "is not a regular file")):
        models.read_index(fifo_index)


def test_open_regular_and_check_regular(tmp_path):
    from dlviz_gpu.checkpoints.files import check_regular, open_regular

    path = tmp_path / "x.bin"
    path.write_bytes(b"abc")
    with open_regular(path) as f:
        assert f.read() == b"abc"
        import fcntl

        assert not fcntl.fcntl(f.fileno(), fcntl.F_GETFL) & os.O_NONBLOCK   # reads block again
    assert check_regular(path).st_size == 3
    for special, kind in [(tmp_path, "a directory"), ("/dev/null", "a character device")]:
        for fn in (open_regular, check_regular):
            with pytest.raises(CheckpointError, match=re.escape(f"is not a regular file "
                                                                f"({kind})")):
                fn(special)
    for fn in (open_regular, check_regular):
        with pytest.raises(CheckpointNotFound, match="no such file"):
            fn(tmp_path / "nope")
        with pytest.raises(TypeError, match="path: expected a str or os.PathLike; got int"):
            fn(3)


# --------------------------------------------------------------------------
# The Rust parser's rules
# --------------------------------------------------------------------------

def _real_file(tmp_path):
    """A file from the reference writer whose header ends in padding (the usual case)."""
    st = pytest.importorskip("safetensors.numpy")
    path = str(tmp_path / "real.safetensors")
    for pad in range(8):
        st.save_file({"a": np.arange(6, dtype=np.float32).reshape(2, 3),
                      "b": np.arange(5, dtype=np.int16)}, path, metadata={"k": "v" * pad})
        with open(path, "rb") as f:
            blob = f.read()
        n = int.from_bytes(blob[:8], "little")
        if blob[8 + n - 1:8 + n] == b" ":
            return blob, n
    raise AssertionError("the writer pads no header")


def test_header_length_one_byte_off_is_refused_not_misread(tmp_path):
    blob, n = _real_file(tmp_path)
    for k, problem in [(n - 1, r"the tensors cover 34 bytes of the data buffer but it holds 35"),
                       (n + 1, r"not valid JSON|cover")]:
        path = tmp_path / f"len{k}.safetensors"
        path.write_bytes(k.to_bytes(8, "little") + blob[8:])
        with pytest.raises(CheckpointError, match=where(path, problem)):
            models.open(path)


def test_data_buffer_must_be_covered_exactly(tmp_path):
    cases = {
        "gap": ({"a": _entry(offsets=(0, 8)), "b": _entry(offsets=(10, 18))}, 18,
                r"the data buffer has 2 unused bytes after tensor 'a' \[0, 8\]: tensor 'b' "
                r"starts at 10"),
        "start": ({"a": _entry(offsets=(4, 12))}, 12, "4 unused bytes at the start"),
        "trailing": ({"a": _entry(offsets=(0, 8))}, 9,
                     "the tensors cover 8 bytes of the data buffer but it holds 9"),
        "empty_inside": ({"a": _entry(offsets=(0, 8)), "z": _entry(shape=(0,), offsets=(4, 4))},
                         8, r"tensors 'a' \[0, 8\] and 'z' \[4, 4\] overlap"),
    }
    for label, (header, size, problem) in cases.items():
        path = write_raw(tmp_path / f"{label}.safetensors", header, b"\0" * size)
        with pytest.raises(CheckpointError, match=where(path, problem)):
            models.open(path)
    # any order in the header; empty tensors at the seams are fine
    path = write_raw(tmp_path / "ok.safetensors",
                     {"b": _entry(offsets=(8, 16)), "z": _entry(shape=(0, 3), offsets=(8, 8)),
                      "a": _entry(offsets=(0, 8)), "e": _entry(shape=(0,), offsets=(16, 16))},
                     np.arange(4, dtype=np.float32).tobytes())
    assert sorted(models.open(path)) == ["a", "b", "e", "z"]


@pytest.mark.timeout(60)
def test_huge_integers_are_refused_in_one_line_before_conversion(tmp_path):
    big = "9" * 5000
    for where_, header in [("shape", '{"a":{"dtype":"F32","shape":[%s],"data_offsets":[0,4]}}'),
                           ("offsets", '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,%s]}}'),
                           ("extra", '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],'
                                     '"x":%s}}')]:
        path = write_raw(tmp_path / f"{where_}.safetensors", header % big, b"\0" * 4)
        with pytest.raises(CheckpointError) as err:
            models.open(path)
        assert str(err.value) == (f"{path}: header holds a 5000-digit integer, beyond the range "
                                  f"of a 64-bit float")
    for shape, problem in [([2**64], "shape must be a list of non-negative integers"),
                           ([2**32, 2**32, 0], r"has more than 2\^64 elements"),
                           ([2**62], r"needs 2\^64 bits or more")]:
        path = write_raw(tmp_path / "dims.safetensors", {"a": _entry(shape=shape, offsets=(0, 0))})
        with pytest.raises(CheckpointError, match=where(path, problem)):
            models.open(path)


def test_what_the_rust_parser_accepts_we_read_the_same(tmp_path):
    safetensors = pytest.importorskip("safetensors")
    F = '"dtype":"F32","shape":[1],"data_offsets":[0,4]'
    accepted = {
        "array_entry": '{"a":["F32",[1],[0,4]]}',
        "dtype_map": '{"a":{"dtype":{"F32":null},"shape":[1],"data_offsets":[0,4]}}',
        "extra_field": '{"a":{%s,"x":[1,{"y":null}],"x":-5}}' % F,
        "whitespace": ' \n{"a":{%s}}\t\r\n ' % F,
        "deep_125": '{"a":{%s,"x":%s}}' % (F, "[" * 125 + "]" * 125),
        "big_but_finite": '{"a":{%s,"x":1%s}}' % (F, "0" * 308),
        "surrogate_pair": '{"\\ud83d\\ude00":{%s}}' % F,
        "metadata_repeat": '{"__metadata__":{"k":"1","k":"2"},"a":{%s}}' % F,
        "fnuz": '{"a":{"dtype":"F8_E4M3FNUZ","shape":[4],"data_offsets":[0,4]}}',
        "empty_huge_dim": '{"a":{"dtype":"F32","shape":[0,18446744073709551615],'
                          '"data_offsets":[0,0]},"b":{%s}}' % F,
    }
    refused = {
        "deep_126": ('{"a":{%s,"x":%s}}' % (F, "[" * 126 + "]" * 126), "nested too deeply"),
        "f64_max_int": ('{"a":{%s,"x":%d}}' % (F, int(1.7976931348623157e308)),
                        "beyond the range of a 64-bit float"),
        "nan": ('{"a":{%s,"x":NaN}}' % F, "NaN is not a JSON number"),
        "lone_surrogate": ('{"a\\udc00":{%s}}' % F, r"\\udc00 is a lone UTF-16 surrogate"),
        "minus_zero": ('{"a":{"dtype":"F32","shape":[-0],"data_offsets":[0,0]},"b":{%s}}' % F,
                       "shape must be a list"),
        "field_twice": ('{"a":{%s,"dtype":"F32"}}' % F, "tensor 'a': names 'dtype' twice"),
        "metadata_twice": ('{"__metadata__":{},"__metadata__":{},"a":{%s}}' % F,
                           "names '__metadata__' twice"),
        "escaped_twice": ('{"a":{"\\u0064type":"F32",%s}}' % F, "names 'dtype' twice"),
        "nul_after": ('{"a":{%s}}\x00' % F, "not valid JSON"),
    }
    for label, text in accepted.items():
        path = write_raw(tmp_path / f"{label}.safetensors", text, b"\0\0\x80\x3f")
        ref = {k: bytes(v["data"]) for k, v in safetensors.deserialize(open(path, "rb").read())}
        f = SafetensorsFile(path)
        assert {n: bytes(f.raw(n)) for n in f.names} == ref, label
    for label, (text, problem) in refused.items():
        path = write_raw(tmp_path / f"{label}.safetensors", text, b"\0\0\x80\x3f")
        with pytest.raises(Exception):
            safetensors.deserialize(open(path, "rb").read())
        with pytest.raises(CheckpointError, match=where(path, problem)):
            read_header(path)
    # the one refusal the reference does not make: a tensor named twice (it keeps the last)
    path = write_raw(tmp_path / "twice.safetensors",
                     '{"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"a":{%s}}' % F,
                     b"\0\0\x80\x3f")
    assert [k for k, _ in safetensors.deserialize(open(path, "rb").read())] == ["a"]
    with pytest.raises(CheckpointError, match=where(path, "header names 'a' twice")):
        read_header(path)


def test_shapes_numpy_cannot_hold_are_listed_and_refused_when_read(tmp_path):
    path = write_raw(tmp_path / "dims.safetensors",
                     {"a": _entry(shape=(0, 2**64 - 1), offsets=(0, 0)),
                      "b": _entry(shape=(1,) * 65, offsets=(0, 4)),
                      "c": _entry(shape=(2**62, 0, 4), offsets=(4, 4))}, b"\0" * 4)
    cat = models.open(path)
    assert cat.info("a").shape == (0, 2**64 - 1) and cat.info("b").params == 1
    for name in ("a", "b", "c"):
        assert bytes(cat.raw(name)) == (b"\0" * 4 if name == "b" else b"")
        with pytest.raises(CheckpointError, match=where(path, f"tensor '{name}': shape .* is "
                                                              f"more than NumPy can hold")):
            cat[name]


# --------------------------------------------------------------------------
# Unaligned tensors: read and drawn in place, the same values as aligned ones
# --------------------------------------------------------------------------

def test_unaligned_tensors_are_read_and_drawn_in_place(tmp_path, rng):
    arrays = {"f32": rng.standard_normal((7, 5)).astype(np.float32),
              "f64": rng.standard_normal((3, 9)),
              "i64": rng.integers(-2**62, 2**62, (4, 4)),
              "u32": ("U32", rng.integers(0, 2**32, (5, 3)).astype(np.uint32)),
              "f16": rng.standard_normal((6, 2)).astype(np.float16),
              "bf": ("BF16", models.float32_to_bf16(rng.standard_normal((3, 4))
                                                    .astype(np.float32)))}
    arrays["f32"][1, 2], arrays["f64"][0, 0] = np.nan, -np.inf
    odd = write_arrays(tmp_path / "odd.safetensors", {"u": np.ones(1, np.uint8), **arrays})
    f = SafetensorsFile(odd)
    assert not any(f.is_aligned(n) for n in arrays) and f.is_aligned("u")
    cat = models.open(odd, bf16="array")
    for name, want in arrays.items():
        want = want[1] if isinstance(want, tuple) else want
        view = cat[name]
        bits = view.bits if isinstance(view, models.BFloat16Array) else view
        assert not bits.flags.aligned and not bits.flags.owndata      # the file, in place
        assert bits.tobytes() == want.tobytes()
        m = cat.matrix(name)
        assert not m.buffer.flags.aligned
        aligned = models.BFloat16Array(want.copy()) if name == "bf" else want.copy()
        expected = dv.rasterize(aligned, 4, 3)
        got = dv.rasterize(m, 4, 3)
        for stat in ("count", "nan_count", "sum", "min", "max", "std"):
            np.testing.assert_array_equal(got[stat], expected[stat], err_msg=f"{name} {stat}")
