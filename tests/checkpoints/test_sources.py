"""npy, npz and torch files that lie: refused in one line, or read exactly.

Every hostile file comes from ``tests/fuzz/hostile_sources.py`` (the fuzz
harness runs the same generators under time and memory limits); the tests
here check what each one must give, then the pieces one at a time: the
``.npy`` header reader, the zip member reader, the pickle guard and scan, the
container walk, the stored-size check of torch tensors, the torch version
gate, and the command line on the files.
"""

from __future__ import annotations

import io
import os
import pickle
import re
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from dlviz_gpu import models
from dlviz_gpu.models import CheckpointError, TensorInfo
from dlviz_gpu.checkpoints import sources
from dlviz_gpu.checkpoints.sources import flatten, natural_key
from tests.fuzz import hostile_sources as hostile
from tests.checkpoints.helpers import where


def _has_torch() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def _read_all(cat):
    """Read every tensor and its matrix, as ``dlviz render`` does."""
    for name in cat.names:
        cat[name]
        try:
            cat.matrix(name)
        except CheckpointError:
            raise
        except (TypeError, ValueError):   # a dtype or rank the engine does not draw
            pass


# --------------------------------------------------------------------------
# every generated case
# --------------------------------------------------------------------------

@pytest.mark.timeout(120)
@pytest.mark.parametrize("generator", hostile.ALL, ids=lambda g: g.__name__)
def test_hostile_case(generator, tmp_path):
    if hostile.needs_torch(generator) and not _has_torch():
        pytest.skip("needs torch")
    if generator is hostile.npy_fifo and not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    case = generator(tmp_path)
    assert case.name == generator.__name__ and case.path.parent == tmp_path
    assert case.expect in ("accept", "refuse") and case.stage in ("open", "read")
    if case.expect == "accept":
        with models.open(case.path) as cat:
            assert len(cat) >= 1
            _read_all(cat)
        return
    stage = "open"
    with pytest.raises(CheckpointError) as err:
        cat = models.open(case.path)
        stage = "read"
        _read_all(cat)
    assert stage == case.stage
    message = str(err.value)
    assert re.match(where(case.path, case.match), message), message
    assert "\n" not in message and err.value.path == os.fspath(case.path)


def test_every_case_is_listed_once_and_names_its_file(tmp_path):
    names = [g.__name__ for g in hostile.ALL]
    assert len(names) == len(set(names)) == len(hostile.NPY + hostile.NPZ + hostile.TORCH)
    for g in hostile.NPY + hostile.NPZ:
        if g is not hostile.npy_fifo:
            case = g(tmp_path)
            assert case.path.exists() and case.path.stat().st_size < 200_000, case.name
            assert (case.match is None) == (case.expect == "accept")


# --------------------------------------------------------------------------
# .npy headers
# --------------------------------------------------------------------------

def _header(text: bytes, version=(1, 0)):
    fmt = "<H" if version == (1, 0) else "<I"
    stream = io.BytesIO(b"\x93NUMPY" + bytes(version) + struct.pack(fmt, len(text)) + text)
    return sources._npy_header(stream.read, "f.npy")


def test_npy_header_reader_agrees_with_numpy_on_what_numpy_writes(rng):
    for arr in (np.zeros((3, 4), np.float32), np.asfortranarray(rng.standard_normal((5, 2))),
                np.zeros((0, 7), np.int16), np.array(3.5), np.zeros(2, "<M8[ns]"),
                np.zeros(3, [("a", "<f4"), ("b", "<i2", (2,))])):
        buf = io.BytesIO()
        np.lib.format.write_array(buf, arr)
        shape, fortran, dtype, start = sources._npy_header(io.BytesIO(buf.getvalue()).read,
                                                           "f.npy")
        buf.seek(0)
        version = np.lib.format.read_magic(buf)
        read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                else np.lib.format.read_array_header_2_0)
        want = read(buf)
        assert (shape, fortran, dtype) == want and start == buf.tell()


def test_npy_header_refusals_name_the_problem():
    ok = b"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"
    assert _header(ok)[:3] == ((2, 3), False, np.dtype("<f4"))
    cases = {
        b"{'descr': '<f4', 'fortran_order': False, 'shape': (2, -1), }":
            r"shape \(2, -1\) has a negative dimension",
        b"{'descr': '<f4', 'fortran_order': 1, 'shape': (2,), }": "fortran_order is not True",
        b"{'descr': '<f4', 'shape': (2,), }": r"keys \['descr', 'shape'\]",
        b"{'descr': '<f4', 'fortran_order': False, 'shape': [2], }": "not a tuple of integers",
        b"{'descr': '<f4', 'fortran_order': False, 'shape': (2.5,), }": "not a tuple of int",
        b"{'descr': '<f4', 'fortran_order': False, 'shape': (12345678901234567890,), }":
            "a 20-digit number",
        b"{'descr': 7, 'fortran_order': False, 'shape': (2,), }": "descr is not a dtype",
        b"{'descr': '<f4', 'fortran_order': False, 'shape': (2,)": "not a Python dict literal",
        b"__import__('os').system('true')": "not a Python dict literal",
        b"\xff\xfe": "not a Python dict literal",
    }
    for text, problem in cases.items():
        with pytest.raises(CheckpointError, match="f.npy: not a valid .npy array: .*" + problem):
            _header(text)
    with pytest.raises(CheckpointError, match="its header is not utf8 text"):
        _header(b"\xff\xfe", version=(3, 0))
    # 19 digits is a dimension (the file is then too short, not the header)
    assert _header(b"{'descr': '|u1', 'fortran_order': False, 'shape': (1000000000000000000,)}"
                   )[0] == (10**18,)


def test_npy_too_short_for_its_data_and_changed_after_opening(tmp_path):
    path = tmp_path / "w.npy"
    np.save(path, np.arange(10.0))
    cat = models.open(path)
    path.write_bytes(path.read_bytes()[:100])          # cut after the catalog listed it
    with pytest.raises(CheckpointError, match=where(path, "is 100 bytes now, 208 when it was "
                                                          "opened: it changed since")):
        cat["w"]


# --------------------------------------------------------------------------
# .npz members
# --------------------------------------------------------------------------

def test_deflated_member_is_inflated_into_one_array_of_its_size(tmp_path, rng):
    a = rng.standard_normal((300, 200)).astype(np.float32)
    f = np.asfortranarray(rng.integers(-5, 5, (7, 9)).astype(np.int16))
    path = tmp_path / "c.npz"
    np.savez_compressed(path, a=a, f=f, e=np.zeros((0, 4)))
    with models.open(path) as cat, np.load(path) as ref:
        for name in ("a", "f", "e"):
            got = cat[name]
            np.testing.assert_array_equal(got, ref[name])
            assert got.dtype == ref[name].dtype and got.shape == ref[name].shape
        got = cat["a"]
        # the one buffer the member was inflated into, no bigger than the array
        assert got.base is not None and got.base.nbytes == a.nbytes
        assert cat["f"].flags.f_contiguous


def test_listing_a_deflated_member_inflates_its_header_only(tmp_path):
    # the header and 4000 bytes of data, then a stream that cannot inflate
    head = hostile.npy_bytes({"descr": "<f4", "fortran_order": False, "shape": (1000, 1000)})
    c = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    stream = c.compress(head + bytes(4000)) + c.flush(zlib.Z_FULL_FLUSH) + b"\x07" + bytes(4000)
    member = hostile.Member("w.npy", stream, zipfile.ZIP_DEFLATED,
                            file_size=len(head) + 4 * 10**6, crc=0)
    path = tmp_path / "w.npz"
    path.write_bytes(hostile.zip_bytes([member]))
    cat = models.open(path)
    assert cat.info("w").shape == (1000, 1000) and cat.info("w").nbytes == 4 * 10**6
    with pytest.raises(CheckpointError, match=where(path, "member 'w.npy': corrupted deflate "
                                                          r"stream \(.*invalid block type")):
        cat["w"]


def test_member_reader_caps_what_it_produces_at_the_declared_size():
    data = bytes(range(256)) * 100
    raw = io.BytesIO(hostile.deflate(data) + b"trailing bytes of the next member")
    zi = zipfile.ZipInfo("w.npy")
    zi.compress_type, zi.compress_size = zipfile.ZIP_DEFLATED, len(hostile.deflate(data))
    zi.file_size, zi.CRC = 1000, zlib.crc32(data[:1000])
    reader = sources._MemberReader(raw, zi, 0, "f.npz")
    assert reader.read(10**9) == data[:1000] and reader.read(1) == b""
    with pytest.raises(CheckpointError, match="f.npz: member 'w.npy': inflates beyond the 1000 "
                                              "bytes it declares"):
        reader.finish()
    zi.file_size, zi.CRC = len(data), zlib.crc32(data)
    reader = sources._MemberReader(raw, zi, 0, "f.npz")
    buf = bytearray(len(data))
    assert reader.readinto(memoryview(buf)) == len(data) and bytes(buf) == data
    reader.finish()                      # declared size and CRC-32 both right


def test_npz_memory_error_is_one_line(tmp_path, monkeypatch):
    path = tmp_path / "c.npz"
    np.savez_compressed(path, w=np.ones((50, 40)))
    cat = models.open(path)

    def no_memory(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(sources.np, "empty", no_memory)
    with pytest.raises(CheckpointError, match=where(path, "member 'w.npy': cannot allocate the "
                                                          "16000 bytes it inflates to")):
        cat["w"]


def test_npz_changed_after_opening(tmp_path):
    path = tmp_path / "c.npz"
    np.savez_compressed(path, w=np.ones(10))
    cat = models.open(path)
    np.savez_compressed(path, w=np.ones(10), v=np.zeros(3))
    with pytest.raises(CheckpointError, match=where(path, "changed since it was opened")):
        cat["w"]


# --------------------------------------------------------------------------
# the container walk
# --------------------------------------------------------------------------

def test_flatten_refuses_deep_and_self_containing_containers_without_recursion():
    deep = leaf = {}
    for _ in range(5000):
        leaf["x"] = {}
        leaf = leaf["x"]
    leaf["w"] = np.ones(2)
    with pytest.raises(CheckpointError, match=r"^<memory>: containers are nested deeper than "
                                              r"127 levels \(at 'x\.x\.x.*\.\.\..*x\.x'\)$"):
        flatten(deep)
    with pytest.raises(CheckpointError, match=r"^<memory>: containers are nested deeper"):
        models.open(deep)
    ok = {"a": {"b": [{"c": np.ones(1)}]}}
    assert list(flatten(ok)[0]) == ["a.b.0.c"]

    looped = {"w": np.ones(2), "inner": [1]}
    looped["inner"].append(looped)
    with pytest.raises(CheckpointError, match=r"^f.pt: contains itself: 'inner.1' is '<root>'$"):
        flatten(looped, path="f.pt")


def test_flatten_lists_a_shared_container_once_and_caps_skipped_entries():
    shared = {"w": np.ones(2)}
    tensors, skipped = flatten({"model": shared, "ema": shared, "step": 3})
    assert list(tensors) == ["model.w"]
    assert skipped == {"ema": "same object as model", "step": "int"}
    # 2^60 paths, 61 containers
    level = [np.zeros(1)]
    for _ in range(60):
        level = [level, level]
    tensors, skipped = flatten(level)
    assert list(tensors) == [".".join(["0"] * 61)] and len(skipped) == 60
    tensors, skipped = flatten({"t": np.ones(1), "many": list(range(5000))})
    assert len(skipped) == sources.MAX_SKIPPED + 1
    assert skipped["many.0"] == "int" and skipped["..."] == f"{5000 - sources.MAX_SKIPPED} more"


# --------------------------------------------------------------------------
# the pickle guard and scan
# --------------------------------------------------------------------------

def _guard(data: bytes) -> bool:
    return sources._guard_pickle(io.BytesIO(data), "f.pt")


def test_guard_passes_real_pickles_and_refuses_what_unpicklers_cannot_survive():
    real = {"w": [1, 2.5, (3, (4, "x"))], "s": {1, 2}, "f": frozenset({(1, 2)}), "b": b"by"}
    for protocol in range(0, pickle.HIGHEST_PROTOCOL + 1):
        assert _guard(pickle.dumps(real, protocol))
    deep_key = b"\x80\x02}" + b")" + b"\x85" * 200 + b"K\x01s."
    with pytest.raises(CheckpointError, match="f.pt: its pickle nests containers deeper than "
                                              "127 levels"):
        _guard(deep_key)
    # the dict and 126 tuples: 127 levels
    assert _guard(b"\x80\x02}" + b")" + b"\x85" * 125 + b"K\x01s.")
    deep_frozenset = b"\x80\x04" + b"(" * 200 + b"\x91" * 200 + b"."
    with pytest.raises(CheckpointError, match="deeper than 127"):
        _guard(deep_frozenset)
    m = 2**61 - 1
    colliding = b"\x80\x02}(" + b"".join(hostile.p_int(i * m) + b"N" for i in range(1001)) + b"u."
    with pytest.raises(CheckpointError, match="more than 1000 number keys with the same hash"):
        _guard(colliding)
    # the same keys spread over many dicts are no attack
    spread = b"\x80\x02](" + b"".join(b"}" + hostile.p_int(i * m) + b"Ns"
                                      for i in range(3000)) + b"e."
    assert _guard(spread)
    assert not _guard(b"\x80\x02}(Xtruncated")       # left to the unpickler


def test_scan_reads_storages_and_never_imports(tmp_path, monkeypatch):
    evil = (b"\x80\x02cos\nsystem\nX\x04\x00\x00\x00trueq\x00\x85R}(X\x01\x00\x00\x00w"
            + hostile.p_tensor("0", 6, (2, 3), (3, 1)) + b"u.")
    monkeypatch.setattr(os, "system", lambda *a: pytest.fail("the scan called os.system"))
    scanner = sources._Scanner(evil)
    scanner.load()
    assert scanner.storages == [("0", "torch", "FloatStorage", 6)]


@pytest.mark.skipif(not _has_torch(), reason="needs torch")
def test_torch_state_dicts_are_scanned_and_mapped(tmp_path):
    import torch

    m = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    opt = torch.optim.Adam(m.parameters())
    m(torch.ones(4, 3)).sum().backward()
    opt.step()
    ckpt = {"model": m.state_dict(), "optimizer": opt.state_dict(), "epoch": 3,
            "extra": {"bf16": torch.ones(2, dtype=torch.bfloat16),
                      "f8": torch.zeros(2, dtype=torch.float8_e4m3fn),
                      "view": torch.arange(10.0)[2:8:2]}}
    path = tmp_path / "ckpt.pt"
    torch.save(ckpt, path)
    from dlviz_gpu.checkpoints.files import open_regular

    with open_regular(path) as f:
        assert sources._scan_torch_zip(torch, f, path.stat().st_size, str(path)) is True
    cat = models.open(path)
    assert cat.info("model.0.weight").problem is None
    assert torch.equal(cat["extra.view"], torch.arange(10.0)[2:8:2])
    assert torch.equal(cat["optimizer.state.0.exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    assert cat.skipped["epoch"] == "int"


# --------------------------------------------------------------------------
# torch tensors claiming more than they store
# --------------------------------------------------------------------------

@pytest.mark.skipif(not _has_torch(), reason="needs torch")
def test_expanded_tensor_is_listed_and_refused_when_read(tmp_path):
    import torch

    path = tmp_path / "exp.pt"
    pos = torch.arange(6).expand(1, 6)      # stride 0 on a size-1 dimension: fine
    torch.save({"big": torch.zeros(1).expand(10**7, 10**7), "w": torch.ones(2, 3),
                "pos": pos, "tied": torch.ones(2, 3)}, path)
    cat = models.open(path)
    info = cat.info("big")
    assert info.shape == (10**7, 10**7) and info.params == 10**14
    assert info.problem == ("an expanded or overlapping view (strides (0, 0)): it claims "
                            "100000000000000 elements (400000000000000 bytes) but reaches 1 "
                            "stored (4 bytes)")
    assert cat.info("w").problem is None and cat.info("pos").problem is None
    for read in (lambda: cat["big"], lambda: cat.matrix("big")):
        with pytest.raises(CheckpointError, match=where(path, "tensor 'big' is refused: an "
                                                              "expanded or overlapping view")):
            read()
    assert torch.equal(cat["pos"], pos) and cat.matrix("w").shape == (2, 3)


@pytest.mark.skipif(not _has_torch(), reason="needs torch")
def test_stored_problem_rule():
    import torch

    base = torch.arange(30.0)
    assert sources._stored_problem(base.view(5, 6)) is None
    assert sources._stored_problem(base.view(5, 6).t()) is None
    assert sources._stored_problem(base[3:].view(3, 9)[:, ::4]) is None
    assert sources._stored_problem(base.as_strided((2, 3), (3, 2))) is None  # interleaved
    assert sources._stored_problem(base[:0]) is None
    assert "expanded" in sources._stored_problem(base[:5].expand(4, 5))
    assert "claims 16 elements" in sources._stored_problem(base.as_strided((4, 4), (2, 1)))


@pytest.mark.skipif(not _has_torch(), reason="needs torch")
def test_old_torch_is_refused_before_loading(tmp_path, monkeypatch):
    import torch

    path = tmp_path / "w.pt"
    torch.save({"w": torch.ones(2)}, path)
    monkeypatch.setattr(torch, "__version__", "2.5.1+cu121")
    with pytest.raises(CheckpointError, match=where(path, r"torch 2\.5\.1\+cu121 cannot load "
                                                          r"checkpoints safely: before 2\.6, "
                                                          r"weights_only=True loading can be "
                                                          r"bypassed to run code "
                                                          r"\(CVE-2025-32434\); upgrade it with "
                                                          r"pip install 'torch>=2\.6'$")):
        models.open(path)
    monkeypatch.setattr(torch, "__version__", "2.6.0")
    assert models.open(path).names == ["w"]


def test_pyproject_requires_a_safe_torch():
    text = (Path(__file__).parents[2] / "pyproject.toml").read_text()
    assert re.search(r'^torch = \["torch>=2\.6"\]$', text, re.M)
    assert sources.MIN_TORCH == (2, 6)


# --------------------------------------------------------------------------
# names, infos, folders
# --------------------------------------------------------------------------

def test_natural_key_orders_numbers_and_survives_any_name():
    names = ["layers.10.w", "layers.2.w", "layers.2.b", "a", "layers.1", "b0", "b00"]
    assert sorted(names, key=natural_key) == ["a", "b0", "b00", "layers.1", "layers.2.b",
                                              "layers.2.w", "layers.10.w"]
    odd = ["x²", "²", "x" + "9" * 5000, "x" + "9" * 4999, "٣", "12", "x", ""]
    assert sorted(odd, key=natural_key)[:3] == ["", "٣", "12"]      # Arabic-Indic 3 < 12
    # runs over 4000 digits compare by their first 4000: the two long ones tie
    ordered = sorted(odd, key=natural_key)
    assert ordered[3] == "x" and ordered[6:] == ["x²", "²"]
    assert set(ordered[4:6]) == {"x" + "9" * 5000, "x" + "9" * 4999}


def test_info_is_the_dataclass_it_claims_to_be():
    made = sources._info("a.b", [2, np.int64(3)], "float32", 24, "f")
    assert made == TensorInfo("a.b", "a", (2, 3), "float32", 6, 24, "f")
    assert hash(made) == hash(TensorInfo("a.b", "a", (2, 3), "float32", 6, 24, "f"))
    assert type(made.shape[1]) is int and made.problem is None
    with pytest.raises(AttributeError):
        made.name = "c"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_folder_with_a_fifo_named_like_a_checkpoint(tmp_path):
    np.save(tmp_path / "a.npy", np.ones(2))
    (tmp_path / "sub.npy").mkdir()                 # a folder with a checkpoint's name
    assert models.open(tmp_path).names == ["a"]
    os.mkfifo(tmp_path / "b.npy")
    with pytest.raises(CheckpointError, match=where(tmp_path / "b.npy",
                                                    r"is not a regular file \(a FIFO\)")):
        models.open(tmp_path)


# --------------------------------------------------------------------------
# the command line, end to end
# --------------------------------------------------------------------------

CLI_CASES = [hostile.npy_negative_shape, hostile.npy_5000_digit_shape,
             hostile.npz_declares_2gb, hostile.npz_corrupt_stream, hostile.npz_inflates_beyond,
             hostile.pt_expanded_1e14, hostile.pt_deep_list_5000, hostile.pt_self_list,
             hostile.pt_deep_tuple_key]


@pytest.mark.timeout(300)
@pytest.mark.skipif(not _has_torch(), reason="needs torch")
def test_console_script_refuses_hostile_files_in_one_line(tmp_path):
    exe = Path(sys.executable).with_name("dlviz")
    for generator in CLI_CASES:
        case = generator(tmp_path)
        inspect = subprocess.run([str(exe), "inspect", str(case.path)], capture_output=True,
                                 text=True, timeout=120)
        render = subprocess.run([str(exe), "render", str(case.path), "--png", "--quiet",
                                 "--out", str(tmp_path / f"out-{case.name}")],
                                capture_output=True, text=True, timeout=120)
        want = "dlviz: error: " + where(case.path, case.match)
        for run, refuses in ((inspect, case.stage == "open"), (render, True)):
            if refuses:
                assert run.returncode == 1, (case.name, run.stderr)
                assert re.fullmatch(want + "[^\n]*\n", run.stderr), (case.name, run.stderr)
            else:
                assert run.returncode == 0, (case.name, run.stderr)
                assert "Traceback" not in run.stderr
