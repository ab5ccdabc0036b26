"""The one-pass moments kernels (CPU and CUDA) against float64 NumPy."""

import numpy as np
import pytest
import torch

from dlviz_gpu.kernels.moments import (DECODE_BF16, DECODE_F16, FIELDS, MOMENTS, finalize, merge,
                                       moments_cpu)
from dlviz_gpu.kernels.reference.moments import moments as reference, row_max_abs


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


# ---------------------------------------------------------------------------
# One body, both backends (``where``: cpu, then cuda on a GPU or the simulator)
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["f64", "f32", "bf16", "f16", "i64", "u8", "bool"])
def test_each_backend_matches_the_reference(where, kt, kind):
    rng = np.random.default_rng(len(kind))
    base = kt.base_values(rng, kind, (5, 37), specials=0.1 if kind[0] in "fb" else 0.0)
    prev = kt.base_values(rng, kind, (5, 37))
    if kind in ("bf16", "f16"):
        (x, truth), (p, ptruth) = kt.half_bits(base, kind), kt.half_bits(prev, kind)
        decode = DECODE_BF16 if kind == "bf16" else DECODE_F16
    else:
        x, truth, p, ptruth, decode = base, base.astype(np.float64), prev, prev.astype(np.float64), 0
    got, rowmax = MOMENTS[where](x, p, decode=decode, rows=True)
    check(got, reference(truth, ptruth))
    np.testing.assert_array_equal(rowmax, row_max_abs(truth))


@pytest.mark.parametrize("shape", [(1, 1), (3, 300), (40, 2), (0, 3), (3, 0)])
def test_each_backend_on_thin_and_empty_shapes(where, shape):
    x = np.arange(np.prod(shape), dtype=np.float32).reshape(shape) - 7
    check(MOMENTS[where](x), reference(x))


def test_each_backend_when_nothing_is_finite(where):
    x = np.array([[np.nan, np.inf], [-np.inf, np.nan]], np.float32)
    got = dict(zip(FIELDS, MOMENTS[where](x)))
    assert got["count"] == 0 and got["nan"] == 2 and got["posinf"] == 1 and got["neginf"] == 1
    assert np.isnan(got["mean"]) and got["min"] == np.inf and got["max"] == -np.inf


def test_each_backend_near_the_float64_limit_gives_the_cpu_kernels_exact_answer(where):
    x = np.full((3, 4), 1e300)
    x[1, 1] = -1e300
    y = np.array([[1e300, 1e300], [-1e300, 3.0]])       # sums overflow both ways
    for v in (x, y):
        np.testing.assert_array_equal(MOMENTS[where](v), moments_cpu(v))
    got = dict(zip(FIELDS, MOMENTS[where](x)))
    assert got["mean"] == pytest.approx(1e300 * 10 / 12) and got["m2"] == np.inf


def test_the_stable_variance_far_from_zero_on_each_backend(where):
    rng = np.random.default_rng(4)
    x = 1e8 + rng.standard_normal((6, 50))
    got = dict(zip(FIELDS, MOMENTS[where](x)))
    np.testing.assert_allclose(got["m2"], ((x - x.mean()) ** 2).sum(), rtol=1e-9)


@pytest.mark.cuda
def test_the_cuda_kernel_reads_device_arrays_in_place():
    from tests.cuda import cuda_or_skip

    cuda = cuda_or_skip()
    x = np.linspace(-3, 5, 6 * 20).reshape(6, 20)
    p = x[::-1].copy()
    got, rowmax = MOMENTS["cuda"](cuda.to_device(x), cuda.to_device(p), rows=True)
    check(got, reference(x, p))
    np.testing.assert_array_equal(rowmax, row_max_abs(x))
    with pytest.raises(ValueError, match=r"prev: expected a C-contiguous array of shape \(6, 20\)"):
        MOMENTS["cuda"](cuda.to_device(x), cuda.to_device(p[:, :3].copy()))


# ---------------------------------------------------------------------------
# partial / merge / finalize
# ---------------------------------------------------------------------------

def _partial(v, p):
    r = reference(v, p)
    return [r["count"], r["mean"] if r["count"] else 0.0, r["m2"], r["min"], r["max"], r["zeros"],
            r["nan"], r["posinf"], r["neginf"], r["diffsq"]]


@pytest.mark.parametrize("pieces", [1, 2, 3, 7, 64])
def test_partials_of_pieces_merge_to_the_whole(pieces):
    rng = np.random.default_rng(pieces)
    x = 1e6 + rng.standard_normal(640)
    x[rng.integers(0, 640, 20)] = np.nan
    x[:70] = np.nan                                    # some pieces hold no finite value
    p = x + rng.standard_normal(640)
    parts = np.array([_partial(a, b) for a, b in zip(np.array_split(x, pieces),
                                                     np.array_split(p, pieces))])
    rng.shuffle(parts)                                 # the order of merging is free
    check(finalize(merge(parts), x.size), reference(x, p))
    check(finalize(parts, x.size), reference(x, p))


def test_merge_of_nothing_is_the_empty_partial():
    got = dict(zip(FIELDS, finalize(merge(np.zeros((0, 10))), 0)))
    assert got["count"] == 0 and np.isnan(got["mean"]) and got["min"] == np.inf
