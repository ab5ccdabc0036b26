"""The one-pass moments kernel against float64 NumPy."""

import numpy as np
import pytest
import torch

from dlviz_gpu.kernels.moments import DECODE_BF16, DECODE_F16, FIELDS, moments_cpu


def reference(x: np.ndarray, prev=None) -> dict:
    v = x.astype(np.float64)
    f = v[np.isfinite(v)]
    out = {"numel": v.size, "count": f.size, "mean": f.mean() if f.size else np.nan,
           "m2": ((f - f.mean()) ** 2).sum() if f.size else 0.0, "sumsq": (f ** 2).sum(),
           "min": f.min() if f.size else np.inf, "max": f.max() if f.size else -np.inf,
           "zeros": (v == 0).sum(), "nan": np.isnan(v).sum(), "posinf": np.isposinf(v).sum(),
           "neginf": np.isneginf(v).sum(), "diffsq": 0.0}
    if prev is not None:
        p = prev.astype(np.float64)
        ok = np.isfinite(v) & np.isfinite(p)
        out["diffsq"] = ((v[ok] - p[ok]) ** 2).sum()
    return out


def check(got, want):
    got = dict(zip(FIELDS, got))
    for k in FIELDS:
        if k in ("mean", "m2", "sumsq", "diffsq"):
            np.testing.assert_allclose(got[k], want[k], rtol=1e-10, atol=1e-300, err_msg=k)
        else:
            assert got[k] == want[k], (k, got[k], want[k])


@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (257, 1000), (1, 70000), (70000, 1)])
def test_matches_numpy_with_specials(shape):
    rng = np.random.default_rng(sum(shape))
    x = (rng.standard_normal(shape) * 2 + 1).astype(np.float32)
    p = (x + rng.standard_normal(shape).astype(np.float32) * 0.1).astype(np.float32)
    flat = x.reshape(-1)
    if flat.size > 10:
        flat[[1, 4]] = 0.0
        flat[5] = np.nan
        flat[7] = np.inf
        flat[9] = -np.inf
        p.reshape(-1)[3] = np.nan
    check(moments_cpu(x, p), reference(x, p))
    check(moments_cpu(x), reference(x))


def test_stable_variance_far_from_zero():
    rng = np.random.default_rng(1)
    x = (1e6 + rng.standard_normal((500, 400))).astype(np.float64)
    got = dict(zip(FIELDS, moments_cpu(x)))
    f = x.reshape(-1)
    np.testing.assert_allclose(got["m2"], ((f - f.mean()) ** 2).sum(), rtol=1e-9)


def test_rows_give_max_abs_and_flag_nan():
    x = np.array([[0, 0, 0], [1, -5, 2], [np.nan, 1, 0], [np.inf, 0, 0]], np.float32)
    _, rm = moments_cpu(x, rows=True)
    assert rm[0] == 0 and rm[1] == 5 and np.isnan(rm[2]) and rm[3] == np.inf


def test_all_nonfinite_and_empty():
    x = np.full((4, 4), np.nan, np.float32)
    got = dict(zip(FIELDS, moments_cpu(x)))
    assert got["count"] == 0 and got["nan"] == 16 and np.isnan(got["mean"])
    assert got["min"] == np.inf and got["max"] == -np.inf
    got = dict(zip(FIELDS, moments_cpu(np.zeros((0, 3), np.float32))))
    assert got["numel"] == 0 and got["count"] == 0


@pytest.mark.parametrize("dtype,decode", [(torch.bfloat16, DECODE_BF16), (torch.float16, DECODE_F16)])
def test_half_precision_bits_read_in_place(dtype, decode):
    t = torch.randn(300, 200, generator=torch.Generator().manual_seed(3)).to(dtype)
    t[0, 0] = float("nan")
    raw = t.view(torch.int16).numpy().view(np.uint16)
    check(moments_cpu(raw, decode=decode), reference(t.double().numpy()))


def test_bad_arguments():
    with pytest.raises(ValueError, match="x: expected a C-contiguous 2-D array"):
        moments_cpu(np.zeros((4, 4), np.float32).T[:, :3])
    with pytest.raises(ValueError, match="prev: expected"):
        moments_cpu(np.zeros((4, 4), np.float32), np.zeros((4, 3), np.float32))
