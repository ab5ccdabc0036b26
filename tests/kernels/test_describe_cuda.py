"""line_sumsq_cuda against the float64 reference (a real GPU, or the simulator).

The simulator runs every thread in Python, so the inputs stay small.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.cuda import cuda_or_skip

cuda = cuda_or_skip()

from dlviz_gpu.kernels import line_sumsq_cpu, line_sumsq_cuda, reference  # noqa: E402

pytestmark = [pytest.mark.cuda]


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
