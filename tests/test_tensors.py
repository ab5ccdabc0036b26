"""Tensor intake: everything tensor-like becomes a Matrix over its own memory."""

import numpy as np
import pytest
import torch

import dlviz_gpu as dv
from dlviz_gpu.kernels import DECODE_BF16, DECODE_F16, DECODE_NATIVE, reference
from dlviz_gpu.tensors import as_matrix


def _logical(m):
    """Read a Matrix element by element through its address maps (test-side decoder)."""
    rows, cols = m.shape
    idx = m.offset + m.rows.offsets(np.arange(rows))[:, None] + m.cols.offsets(np.arange(cols))[None, :]
    raw = np.asarray(m.buffer)[idx]
    if m.decode == DECODE_BF16:
        return (raw.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    if m.decode == DECODE_F16:
        return raw.view(np.float16).astype(np.float64)
    return raw.astype(np.float64)


VIEWS = {
    "c": lambda a: a,
    "fortran": np.asfortranarray,
    "transposed": lambda a: a.T,
    "sliced": lambda a: a[1::2, ::3],
    "neg_rows": lambda a: a[::-1],
    "neg_cols": lambda a: a[:, ::-2],
}


@pytest.mark.parametrize("view", list(VIEWS), ids=list(VIEWS))
def test_numpy_views_are_read_in_place(rng, view):
    base = rng.standard_normal((9, 14)).astype(np.float32)
    a = VIEWS[view](base)
    m = as_matrix(a)
    assert m.shape == a.shape and m.device == "cpu" and m.dtype == "float32"
    assert np.shares_memory(m.buffer, a)
    np.testing.assert_array_equal(_logical(m), a.astype(np.float64))


def test_memmap_is_read_in_place(tmp_path, rng):
    path = tmp_path / "w.bin"
    data = rng.standard_normal((20, 30)).astype(np.float32)
    data.tofile(path)
    mm = np.memmap(path, dtype=np.float32, mode="r", shape=(20, 30))
    m = as_matrix(mm[5:, ::2])
    assert np.shares_memory(m.buffer, mm)
    np.testing.assert_array_equal(_logical(m), data[5:, ::2])


@pytest.mark.parametrize("dtype,decode", [(torch.bfloat16, DECODE_BF16), (torch.float16, DECODE_F16),
                                          (torch.float32, DECODE_NATIVE), (torch.int8, DECODE_NATIVE),
                                          (torch.bool, DECODE_NATIVE)],
                         ids=["bf16", "fp16", "fp32", "int8", "bool"])
def test_torch_cpu_tensors_keep_their_storage_and_width(dtype, decode):
    src = torch.randn(12, 10) * 3
    t = (src > 0) if dtype == torch.bool else src.to(dtype)
    view = t.T[::2]  # non-contiguous
    m = as_matrix(view)
    assert m.decode == decode and m.dtype == str(dtype).replace("torch.", "")
    assert m.buffer.itemsize == t.element_size()  # no upcast
    lo = m.buffer.__array_interface__["data"][0]
    assert lo <= t.data_ptr() < lo + m.buffer.nbytes  # the tensor's own memory
    np.testing.assert_array_equal(_logical(m), view.to(torch.float64).numpy())


def test_torch_parameter_with_grad_is_accepted():
    p = torch.nn.Parameter(torch.randn(4, 5))
    r = dv.rasterize(p, 5, 4)
    np.testing.assert_allclose(r["mean"], p.detach().numpy(), rtol=1e-7)


def test_one_d_is_a_strip():
    m = as_matrix(np.arange(7.0))
    assert m.shape == (1, 7) and m.layout == "strip"


def test_conv_weight_defaults_to_mosaic_of_kernels(rng):
    w = rng.standard_normal((3, 2, 4, 5))
    m = as_matrix(w)
    assert m.layout == "mosaic" and m.shape == (3 * 4, 2 * 5)
    mosaic = w.transpose(0, 2, 1, 3).reshape(12, 10)
    np.testing.assert_array_equal(_logical(m), mosaic)
    # kernel (o, i) is the tile rows o*kh.., cols i*kw..
    np.testing.assert_array_equal(mosaic[4:8, 5:10], w[1, 1])


def test_conv_weight_flatten_and_stack(rng):
    w = rng.standard_normal((3, 2, 4, 5))
    np.testing.assert_array_equal(_logical(as_matrix(w, layout="flatten")), w.reshape(3, 40))
    np.testing.assert_array_equal(_logical(as_matrix(w, layout="stack")), w.reshape(24, 5))


def test_three_d_needs_a_layout_and_honours_it(rng):
    x = rng.standard_normal((4, 6, 5))
    with pytest.raises(ValueError, match=r"layout: a 3-D tensor of shape \(4, 6, 5\) needs an explicit layout"):
        as_matrix(x)
    np.testing.assert_array_equal(_logical(as_matrix(x, layout="stack")), x.reshape(24, 5))
    np.testing.assert_array_equal(_logical(as_matrix(x.transpose(1, 0, 2), layout="flatten")),
                                  x.transpose(1, 0, 2).reshape(6, 20))


class _ArrayLike:
    def __init__(self, a):
        self._a = a

    def __array__(self, dtype=None, copy=None):
        return self._a


class _DLPackOnly:
    def __init__(self, a):
        self._a = a

    def __dlpack__(self, **kwargs):
        return self._a.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self._a.__dlpack_device__()


def test_array_protocol_and_dlpack_objects(rng):
    a = rng.standard_normal((5, 6))
    for obj in (_ArrayLike(a), _DLPackOnly(a), a.tolist()):
        r = dv.rasterize(obj, 6, 5)
        np.testing.assert_allclose(r["mean"], a)


def test_rasterize_torch_bf16_matches_reference(rng):
    t = torch.from_numpy(rng.standard_normal((40, 70)).astype(np.float32)).to(torch.bfloat16)
    r = dv.rasterize(t, 9, 7)
    ref = reference.matrix_stats(t.to(torch.float64).numpy(), (0, 70), (0, 40), 9, 7)
    for stat in dv.STATS:
        np.testing.assert_allclose(r[stat], ref[stat], rtol=1e-6, equal_nan=True, err_msg=stat)


@pytest.mark.parametrize("make, exc, problem", [
    (lambda: np.array([1 + 2j, 3j]), TypeError, "expected a real numeric dtype"),
    (lambda: np.zeros((0, 3), np.float32), ValueError, "expected a non-empty tensor"),
    (lambda: np.float32(1.0).reshape(()), ValueError, "expected at least 1 dimension"),
    (lambda: np.arange(4, dtype=">f4"), TypeError, "expected native byte order"),
    (lambda: torch.zeros(3, dtype=torch.complex64), TypeError, "torch dtype torch.complex64"),
    (lambda: object(), TypeError, "expected a numpy array"),
])
def test_errors_start_with_the_name_the_caller_passes(make, exc, problem):
    with pytest.raises(exc, match=f"^tensor: {problem}"):
        as_matrix(make())
    with pytest.raises(exc, match=f"^weights\\[3\\]: {problem}"):
        as_matrix(make(), name="weights[3]")


def test_an_object_with_the_matrix_hook_gets_the_callers_name():
    from dlviz_gpu.models import BFloat16Array

    ok = as_matrix(BFloat16Array(np.zeros((2, 3), np.uint16)), name="y")
    assert ok.shape == (2, 3) and ok.decode == DECODE_BF16
    with pytest.raises(ValueError, match="^y: expected a non-empty tensor"):
        as_matrix(BFloat16Array(np.zeros((0, 3), np.uint16)), name="y")


def test_the_verbs_name_their_own_arguments():
    bad = np.array([1j, 2j])
    with pytest.raises(TypeError, match="^y: expected a real numeric dtype"):
        dv.decimate(bad, width=10)
    with pytest.raises(TypeError, match="^x: expected a real numeric dtype"):
        dv.rasterize_points(bad, np.zeros(2), 10, 10, x_range=(0, 1), y_range=(0, 1))
    with pytest.raises(TypeError, match=r"^tensors\[1\]: expected a real numeric dtype"):
        dv.histogram([np.zeros(3), bad], bins=4, range=(0, 1))
