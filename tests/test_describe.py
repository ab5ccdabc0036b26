"""dlviz_gpu.tensor_stats.describe against float64 NumPy on the same (decoded) values."""

import gc
import importlib
import json
import math
import re

import numpy as np
import pytest
import torch

import dlviz_gpu as dv
from dlviz_gpu import models
from dlviz_gpu.tensor_stats import TensorStats, describe
from dlviz_gpu.tensors import Matrix

from .conftest import cuda_usable

describe_mod = importlib.import_module("dlviz_gpu.tensor_stats")

RTOL = 1e-9


# --------------------------------------------------------------------------
# The independent reference
# --------------------------------------------------------------------------

def reference(m: np.ndarray) -> dict:
    """Every statistic of a (R, C) float64 matrix (the values as drawn)."""
    m = np.asarray(m, np.float64)
    fin = np.isfinite(m)
    v = m[fin]
    sq = np.where(fin, m, 0.0) ** 2
    out = dict(size=m.size, finite=v.size, nan=int(np.isnan(m).sum()),
               posinf=int((m == np.inf).sum()), neginf=int((m == -np.inf).sum()),
               zeros=int((m == 0).sum()), fro_norm=math.sqrt(sq.sum()),
               row_norms=np.sqrt(sq.sum(axis=1)), col_norms=np.sqrt(sq.sum(axis=0)))
    if v.size:
        out.update(mean=v.mean(), std=v.std(), min=v.min(), max=v.max(),
                   max_abs=np.abs(v).max())
    else:
        out.update(mean=np.nan, std=np.nan, min=np.nan, max=np.nan, max_abs=np.nan)
    return out


def ref_top(norms: np.ndarray, k: int) -> list:
    order = np.lexsort((np.arange(norms.size), -norms))[:k]
    return [int(i) for i in order]


def check_top(top, norms, k):
    """Robust to float near-ties: the listed norms are the k largest, each at its index."""
    k = min(k, norms.size)
    assert len(top) == k
    idx = [i for i, _ in top]
    got = np.array([v for _, v in top])
    assert len(set(idx)) == k
    np.testing.assert_allclose(got, norms[idx], rtol=RTOL, atol=1e-300)
    np.testing.assert_allclose(got, np.sort(norms)[::-1][:k], rtol=RTOL, atol=1e-300)
    assert np.all(np.diff(got) <= 0)


def check(s: TensorStats, m: np.ndarray, top: int = 5, exact_top: bool = True):
    ref = reference(m)
    assert s.matrix_shape == m.shape
    for name in ("size", "finite", "nan", "posinf", "neginf", "zeros"):
        assert getattr(s, name) == ref[name], name
        assert isinstance(getattr(s, name), int), name
    assert s.finite + s.nan + s.posinf + s.neginf == s.size
    assert s.zero_fraction == ref["zeros"] / ref["size"]
    for name in ("min", "max", "max_abs"):          # exact: values that exist
        np.testing.assert_equal(getattr(s, name), ref[name], err_msg=name)
    scale = ref["max_abs"] if ref["finite"] else 1.0
    np.testing.assert_allclose(s.mean, ref["mean"], rtol=RTOL, atol=1e-12 * scale)
    np.testing.assert_allclose(s.std, ref["std"], rtol=RTOL)
    np.testing.assert_allclose(s.fro_norm, ref["fro_norm"], rtol=RTOL)
    for name in ("row_norms", "col_norms"):
        got = getattr(s, name)
        assert got.dtype == np.float64 and got.shape == ref[name].shape, name
        np.testing.assert_allclose(got, ref[name], rtol=RTOL, atol=0, err_msg=name)
    check_top(s.top_rows, ref["row_norms"], top)
    check_top(s.top_cols, ref["col_norms"], top)
    if exact_top:
        assert [i for i, _ in s.top_rows] == ref_top(ref["row_norms"], top)
        assert [i for i, _ in s.top_cols] == ref_top(ref["col_norms"], top)
    return ref


def planted(rng, shape, dtype=np.float32):
    """Random values with NaN, +-inf, +0/-0, an outlier row and an outlier column."""
    a = rng.standard_normal(shape).astype(dtype)
    r, c = shape
    a[r // 3, :] *= 40          # outlier row: must head top_rows
    a[:, (2 * c) // 3] *= 30    # outlier column: must head top_cols
    flat = a.reshape(-1)
    idx = rng.permutation(flat.size)
    flat[idx[:17]] = np.nan
    flat[idx[17:26]] = np.inf
    flat[idx[26:31]] = -np.inf
    flat[idx[31:131]] = 0.0
    flat[idx[131:171]] = -0.0
    return a


# --------------------------------------------------------------------------
# Dtypes
# --------------------------------------------------------------------------

def test_float32_with_specials_zeros_and_outliers(rng):
    a = planted(rng, (257, 389))
    # the smallest float32 subnormals are not zero
    a[0, 0], a[0, 1] = np.float32(1e-45), np.float32(-1e-45)
    s = describe(a, top=7)
    ref = check(s, a, top=7)
    assert s.top_rows[0][0] == 257 // 3 and s.top_cols[0][0] == (2 * 389) // 3
    assert (s.nan, s.posinf, s.neginf, s.zeros) == (17, 9, 5, 140)
    assert s.shape == (257, 389) and s.dtype == "float32" and s.layout == "matrix"
    assert ref["min"] < 0 < ref["max"]


def test_float64_subnormals_are_not_zeros(rng):
    a = rng.standard_normal((9, 11))
    a[1, 2], a[3, 4], a[5, 6], a[7, 8] = 5e-324, -5e-324, 1e-323, 0.0
    s = describe(a)
    check(s, a)
    assert s.zeros == 1


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_torch(rng, dtype):
    t = torch.from_numpy(planted(rng, (123, 77))).to(dtype)
    t[5, 5] = 1e-40 if dtype == torch.bfloat16 else 6e-8     # subnormal, not zero
    s = describe(t)
    check(s, t.to(torch.float64).numpy())
    assert s.dtype == str(dtype).replace("torch.", "")
    assert s.top_rows[0][0] == 123 // 3 and s.top_cols[0][0] == (2 * 77) // 3


def test_integer_and_bool_tensors(rng):
    a = rng.integers(-100, 100, size=(40, 60)).astype(np.int8)
    a[3, :] = 0
    s = describe(a, top=4)
    check(s, a, top=4, exact_top=False)      # integer norms can tie exactly
    assert s.nan == s.posinf == s.neginf == 0 and s.dtype == "int8"
    b = rng.random((13, 17)) < 0.3
    sb = describe(b)
    check(sb, b, exact_top=False)
    assert sb.dtype == "bool" and sb.zeros == int((~b).sum())
    ti = torch.from_numpy(rng.integers(-5, 5, size=(11, 6)).astype(np.int64))
    check(describe(ti), ti.numpy(), exact_top=False)


def test_all_nan_and_all_nonfinite():
    a = np.full((4, 6), np.nan, np.float32)
    s = describe(a, top=3)
    check(s, a, top=3)
    for name in ("mean", "std", "min", "max", "max_abs"):
        assert math.isnan(getattr(s, name)), name
    assert s.fro_norm == 0.0 and s.finite == 0 and s.nan == 24 and s.zeros == 0
    assert s.top_rows == [(0, 0.0), (1, 0.0), (2, 0.0)]      # ties: lower index first
    d = s.to_dict()
    assert math.isnan(d["mean"]) and d["nan"] == 24
    json.dumps(d)                    # NaN is written as JSON's NaN literal
    b = np.array([[np.nan, np.inf], [-np.inf, -np.inf]])
    sb = describe(b)
    check(sb, b)
    assert (sb.nan, sb.posinf, sb.neginf, sb.finite) == (1, 1, 2, 0)


def test_ties_break_by_lower_index():
    a = np.ones((6, 5), np.float32)
    a[4, :] = 2.0
    a[1, :] = 2.0
    a[:, 3] = 3.0
    s = describe(a, top=3)
    check(s, a, top=3)
    assert [i for i, _ in s.top_rows] == [1, 4, 0]
    assert [i for i, _ in s.top_cols] == [3, 0, 1]


# --------------------------------------------------------------------------
# Layouts and strides
# --------------------------------------------------------------------------

def test_transposed_and_strided_views(rng):
    a = planted(rng, (64, 90))
    for view in (a.T, a[::-1, ::3], a[5:50:2, ::-2]):
        check(describe(view), np.asarray(view, np.float64))
    t = torch.from_numpy(planted(rng, (50, 70))).to(torch.bfloat16)
    for view in (t.T, t[1::2, ::3], t.T[::4]):
        assert not view.is_contiguous()
        check(describe(view), view.to(torch.float64).numpy())


def test_one_d_is_a_strip(rng):
    v = rng.standard_normal(1000).astype(np.float32)
    v[[10, 20]] = np.nan
    v[777] = -50.0
    s = describe(v, top=3)
    check(s, v[None, :], top=3)
    assert s.shape == (1000,) and s.matrix_shape == (1, 1000) and s.layout == "strip"
    assert s.top_cols[0] == (777, 50.0)
    np.testing.assert_array_equal(s.col_norms, np.where(np.isnan(v), 0, np.abs(v)))


def test_four_d_mosaic_and_flatten(rng):
    w = rng.standard_normal((8, 3, 5, 4)).astype(np.float32)
    w[2, 1, 3, 0] = np.inf
    w[6] *= 20
    s = describe(w)
    mosaic = w.transpose(0, 2, 1, 3).reshape(8 * 5, 3 * 4)
    check(s, mosaic)
    assert s.layout == "mosaic" and s.shape == (8, 3, 5, 4) and s.matrix_shape == (40, 12)
    assert 6 * 5 <= s.top_rows[0][0] < 7 * 5
    f = describe(torch.from_numpy(w), layout="flatten")
    check(f, w.reshape(8, -1))
    assert f.top_rows[0][0] == 6
    for name in ("mean", "std", "fro_norm"):      # the whole does not depend on layout
        assert getattr(f, name) == pytest.approx(getattr(s, name), rel=1e-12)


def test_three_d_needs_a_layout(rng):
    a = rng.standard_normal((2, 3, 4))
    with pytest.raises(ValueError, match="layout"):
        describe(a)
    check(describe(a, layout="stack"), a.reshape(6, 4))


@pytest.mark.parametrize("short_line", [0, 64])
def test_skinny_matrices_either_way(rng, monkeypatch, short_line):
    # short_line=0: every norm from the engine's one-pixel-per-line canvases;
    # 64: the short lines from kernels.describe's loop
    monkeypatch.setattr(describe_mod, "SHORT_LINE", short_line)
    a = planted(rng, (300, 20))                       # taller than wide
    check(describe(a), a)
    check(describe(a[::-2, 1::3]), a[::-2, 1::3].astype(np.float64))
    b = planted(rng, (7, 500))
    check(describe(b.T), b.T.astype(np.float64))      # column-major, 500 x 7
    t = torch.from_numpy(planted(rng, (9, 400))).to(torch.float16)
    check(describe(t[:, 1::2]), t[:, 1::2].to(torch.float64).numpy())
    v = torch.from_numpy(rng.standard_normal(3000).astype(np.float32)).to(torch.bfloat16)
    v[17] = float("nan")
    check(describe(v[::3]), v[::3].to(torch.float64).numpy()[None, :])
    w = rng.standard_normal((6, 2, 3, 3))             # mosaic 18 x 6: mixed-radix rows
    check(describe(w), w.transpose(0, 2, 1, 3).reshape(18, 6))
    s = rng.standard_normal((4, 5, 3))                # stack: 20 x 3, rows of two dims
    check(describe(np.swapaxes(s, 0, 1), layout="stack"), np.swapaxes(s, 0, 1).reshape(20, 3))


def test_chunked_line_passes(rng, monkeypatch):
    monkeypatch.setattr(describe_mod, "CHUNK", 7)
    a = planted(rng, (30, 50))
    check(describe(a), a)
    v = rng.standard_normal(100)
    check(describe(v), v[None, :])


# --------------------------------------------------------------------------
# Checkpoints: read in place
# --------------------------------------------------------------------------

def test_safetensors_bf16_small(tmp_path, rng):
    from safetensors.torch import save_file

    t = torch.from_numpy(planted(rng, (96, 130))).to(torch.bfloat16)
    save_file({"layer.weight": t}, str(tmp_path / "m.safetensors"))
    ref = t.to(torch.float64).numpy()
    for mode in ("auto", "array"):
        cat = models.open(tmp_path / "m.safetensors", bf16=mode)
        x = cat["layer.weight"]
        assert isinstance(x, torch.Tensor) if mode == "auto" else hasattr(x, "__dlviz_matrix__")
        s = describe(x)
        check(s, ref)
        assert s.dtype == "bfloat16" and s.shape == (96, 130)
    check(describe(cat.matrix("layer.weight")), ref)


def _vm(field):
    return int(re.search(rf"^{field}:\s+(\d+) kB", open("/proc/self/status").read(),
                         re.M).group(1)) * 1024


def _reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")              # resets VmHWM (peak RSS) to the current RSS
    except OSError as exc:
        pytest.skip(f"cannot reset the peak RSS here ({exc})")


def test_safetensors_64mib_is_read_in_place(tmp_path, monkeypatch):
    """A 64 MiB bf16 tensor: correct, and the peak RSS grows far less than a copy would."""
    from safetensors.torch import save_file

    rows, cols = 4096, 8192
    g = torch.Generator().manual_seed(7)
    t = torch.randn(rows, cols, generator=g).to(torch.bfloat16)
    t[1234, :] *= 64
    t[:, 4321] *= 64
    t[7, 9], t[8, 10], t[9, 11] = float("nan"), float("inf"), 0.0
    path = tmp_path / "big.safetensors"
    save_file({"w": t}, str(path))
    # the reference, in float64 slabs of 512 rows
    row_sq = np.empty(rows)
    col_sq = np.zeros(cols)
    zeros = nan = 0
    for a in range(0, rows, 512):
        f = t[a:a + 512].to(torch.float64).numpy()
        nan += int(np.isnan(f).sum())
        zeros += int((f == 0).sum())
        sq = np.where(np.isfinite(f), f, 0.0) ** 2
        row_sq[a:a + 512] = sq.sum(1)
        col_sq += sq.sum(0)
        del f, sq
    nbytes = t.numel() * 2
    del t
    gc.collect()

    cat = models.open(path)
    x = cat["w"]
    seen = []
    real = describe_mod.rasterize

    def spy(tensor, *args, **kwargs):
        seen.append(tensor)
        return real(tensor, *args, **kwargs)

    monkeypatch.setattr(describe_mod, "rasterize", spy)
    describe(x)        # compiles what is not cached yet and maps the file's pages
    # the engine got a Matrix over the file map itself
    bits = x.view(torch.int16).numpy()
    assert seen and all(isinstance(m, Matrix) and m.decode and
                        np.shares_memory(m.buffer, bits) for m in seen)

    gc.collect()
    before = _vm("VmRSS")
    _reset_peak()
    s = describe(x)
    growth = _vm("VmHWM") - before
    print(f"describe of a {nbytes / 2**20:.0f} MiB bf16 tensor: peak RSS growth "
          f"{growth / 2**20:.1f} MiB")
    # a float32 copy would add 128 MiB, a float64 one 256 MiB, even a bf16 copy 64 MiB
    assert growth < nbytes / 8
    # the measurement sees a copy when there is one
    gc.collect()
    before = _vm("VmRSS")
    _reset_peak()
    copy = x.to(torch.float32)
    del copy
    assert _vm("VmHWM") - before > 1.5 * nbytes

    assert s.size == rows * cols and s.nan == nan == 1 and s.posinf == 1 and s.zeros == zeros
    np.testing.assert_allclose(s.row_norms, np.sqrt(row_sq), rtol=RTOL)
    np.testing.assert_allclose(s.col_norms, np.sqrt(col_sq), rtol=RTOL)
    np.testing.assert_allclose(s.fro_norm, math.sqrt(row_sq.sum()), rtol=RTOL)
    assert s.top_rows[0][0] == 1234 and s.top_cols[0][0] == 4321


# --------------------------------------------------------------------------
# Output forms and arguments
# --------------------------------------------------------------------------

def test_to_dict_and_rows(rng):
    a = planted(rng, (20, 30))
    a[np.isinf(a)] = 1.0
    s = describe(a, top=2)
    d = s.to_dict()
    json.loads(json.dumps(d, allow_nan=False))
    assert d["zeros"] == s.zeros and d["fro_norm"] == s.fro_norm
    assert d["top_rows"] == [[i, v] for i, v in s.top_rows]
    assert "row_norms" not in d and d["shape"] == [20, 30]
    assert all(type(d[k]) is int for k in ("size", "finite", "nan", "posinf", "neginf", "zeros"))
    rows = dict(s.rows())
    assert list(rows) == ["shape", "dtype", "elements", "mean", "std", "min", "max", "max |v|",
                          "exact zeros", "NaN", "+inf", "-inf", "Frobenius norm",
                          "largest row norms", "largest column norms"]
    assert rows["elements"] == "600" and rows["NaN"] == str(s.nan)
    assert rows["exact zeros"] == f"{s.zeros} ({100 * s.zeros / 600:.4g} %)"
    assert rows["largest row norms"].startswith(f"{s.top_rows[0][0]}: ")
    assert float(rows["max |v|"]) == pytest.approx(s.max_abs, rel=1e-5)
    with pytest.raises(Exception):
        s.mean = 0.0                 # frozen
    with pytest.raises(ValueError):
        s.row_norms[0] = 1.0         # read-only
    s0 = describe(np.zeros((3, 1, 2, 2)), top=0)
    assert s0.top_rows == [] and s0.top_cols == []
    r0 = dict(s0.rows())
    assert "largest row norms" not in r0 and r0["exact zeros"] == "12 (100 %)"
    assert r0["shape"] == "3 x 1 x 2 x 2 (drawn as 6 x 2, mosaic)"
    assert describe(np.arange(3.0), top=10).top_cols == [(2, 2.0), (1, 1.0), (0, 0.0)]


def test_bad_arguments():
    a = np.ones((3, 4))
    with pytest.raises(ValueError, match="top: expected a non-negative integer; got -1"):
        describe(a, top=-1)
    for bad in (2.5, True, "3", None):
        with pytest.raises(TypeError, match="top: expected a non-negative integer"):
            describe(a, top=bad)
    with pytest.raises(ValueError, match="layout: expected one of"):
        describe(a, layout="rows")
    with pytest.raises(ValueError, match="backend"):
        describe(a, backend="gpu")
    with pytest.raises(ValueError, match="non-empty"):
        describe(np.ones((0, 5), np.float32))
    with pytest.raises(ValueError, match="non-empty"):
        describe(torch.ones(4, 0, dtype=torch.bfloat16))
    with pytest.raises(ValueError, match="0-d"):
        describe(np.float32(1.0))
    with pytest.raises(TypeError, match="tensor"):
        describe(np.ones((2, 2), np.complex64))


@pytest.mark.cuda
@pytest.mark.skipif(not cuda_usable(), reason="needs a GPU or NUMBA_ENABLE_CUDASIM=1")
def test_cuda_backend(rng):
    a = planted(rng, (6, 7))
    check(describe(a, backend="cuda"), a)
    t = torch.from_numpy(a).to(torch.bfloat16).T
    check(describe(t, backend="cuda"), t.to(torch.float64).numpy())


def test_package_attribute_is_the_function_in_any_import_order():
    importlib.import_module("dlviz_gpu.tensor_stats")
    a = np.arange(6.0).reshape(2, 3)
    s = dv.describe(a, top=1)
    assert isinstance(s, TensorStats) and s.top_rows == [(1, math.sqrt(9 + 16 + 25))]
