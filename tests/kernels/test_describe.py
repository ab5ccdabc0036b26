"""line_sumsq_cpu (the LINE_SUMSQ family) against the float64 reference.

Every layout and dtype of the kernel test inputs, both line axes, mosaics,
NaN and +-inf; sums of squares of float64 values agree to float64 rounding.
"""

from __future__ import annotations

import numpy as np
import pytest

from dlviz_gpu.kernels import (DECODE_NATIVE, LINE_SUMSQ, axis_from_dims, line_sumsq_cpu,
                               line_sumsq_cuda, reference)
from tests.cuda import cuda


def _check(got, truth, lines):
    want = reference.describe.line_sumsq(truth, lines)
    assert got.dtype == np.float64 and got.shape == want.shape
    # the kernel and the reference add the same squares in the same order
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)


@pytest.mark.parametrize("layout", ["C", "pad", "T", "negrow", "Tneg", "slice", "negslice"])
@pytest.mark.parametrize("kind", ["f64", "f32", "bf16", "f16", "i16", "i64", "bool"])
def test_every_layout_and_dtype_both_ways(kt, rng, layout, kind):
    flat, offset, rows, cols, decode, truth = kt.make_input(rng, kind, layout, 37, 5,
                                                            specials=0.1)
    _check(line_sumsq_cpu(flat, offset, rows, cols, decode), truth, "rows")
    _check(line_sumsq_cpu(flat, offset, cols, rows, decode), truth, "cols")


def test_a_mosaic_reads_through_mixed_radix_axes(kt, rng):
    w = rng.standard_normal((3, 2, 4, 5)).astype(np.float32)[:, :, ::-1]
    flat, offset, rows, cols = kt.mosaic_flat(w)
    truth = w.transpose(0, 2, 1, 3).reshape(3 * 4, 2 * 5).astype(np.float64)
    _check(line_sumsq_cpu(flat, offset, rows, cols, DECODE_NATIVE), truth, "rows")
    _check(line_sumsq_cpu(flat, offset, cols, rows, DECODE_NATIVE), truth, "cols")


def test_lines_without_a_finite_element_sum_to_zero():
    a = np.array([[np.nan, np.inf], [-np.inf, np.nan], [3.0, np.nan]])
    flat = a.reshape(-1)
    got = line_sumsq_cpu(flat, 0, axis_from_dims([3], [2]), axis_from_dims([2], [1]),
                         DECODE_NATIVE)
    assert got.tolist() == [0.0, 0.0, 9.0]


def test_huge_values_overflow_to_inf_as_numpy_does():
    a = np.array([[1e200, 1e200]])
    got = line_sumsq_cpu(a.reshape(-1), 0, axis_from_dims([1], [2]), axis_from_dims([2], [1]),
                         DECODE_NATIVE)
    assert got.tolist() == [np.inf]


def test_the_family_maps_each_backend_to_its_kernel():
    from dlviz_gpu.kernels import line_sumsq_cuda

    assert LINE_SUMSQ["cpu"] is line_sumsq_cpu and LINE_SUMSQ["cuda"] is line_sumsq_cuda


def test_the_reference_names_its_argument():
    with pytest.raises(ValueError, match="^lines: expected 'rows' or 'cols'; got 'both'"):
        reference.describe.line_sumsq(np.ones((2, 2)), "both")


# --------------------------------------------------------------------------
# The CUDA kernels (marked cuda: a GPU, or NUMBA_ENABLE_CUDASIM=1; skipped elsewhere)
# --------------------------------------------------------------------------

# line_sumsq_cuda against the float64 reference (a real GPU, or the simulator).
#
# The simulator runs every thread in Python, so the inputs stay small.

@pytest.mark.cuda
@pytest.mark.parametrize("layout", ["C", "T", "negslice"])
@pytest.mark.parametrize("kind", ["f32", "bf16", "f16", "i64"])
@pytest.mark.parametrize("on_device", [False, True])
def test_matches_the_reference_and_the_cpu_kernel(kt, rng, layout, kind, on_device):
    flat, offset, rows, cols, decode, truth = kt.make_input(rng, kind, layout, 9, 3,
                                                            specials=0.15)
    buf = cuda.to_device(np.ascontiguousarray(flat)) if on_device else flat
    for lines, other, which in ((rows, cols, "rows"), (cols, rows, "cols")):
        got = line_sumsq_cuda(buf, offset, lines, other, decode)
        want = reference.describe.line_sumsq(truth, which)
        assert isinstance(got, np.ndarray) and got.dtype == np.float64
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)
        np.testing.assert_allclose(got, line_sumsq_cpu(flat, offset, lines, other, decode),
                                   rtol=1e-12, atol=0)
