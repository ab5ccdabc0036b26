"""histogram_cuda / minmax_cuda against the float64 reference.

Runs on a real GPU, or under Numba's simulator when ``NUMBA_ENABLE_CUDASIM=1``
is set before Python starts.  The simulator runs every thread in Python, so
the inputs stay tiny (tens of elements).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.cuda import cuda_or_skip

cuda = cuda_or_skip()

from dlviz_gpu.kernels import DECODE_NATIVE, Axis, axis_from_dims  # noqa: E402
from dlviz_gpu.kernels import histogram as kh  # noqa: E402
from dlviz_gpu.kernels.reference import histogram as ref_histogram  # noqa: E402

pytestmark = [pytest.mark.cuda]


def check(flat, offset, rows, cols, decode, truth, edges, scale="linear", linthresh=None,
          device_buffer=False):
    buf = cuda.to_device(np.ascontiguousarray(flat)) if device_buffer else flat
    counts, specials = kh.histogram_cuda(buf, offset, rows, cols, edges, scale, linthresh,
                                         decode)
    want, want_s = ref_histogram.histogram(truth, edges)
    np.testing.assert_array_equal(counts, want)
    assert dict(zip(ref_histogram.SPECIALS, specials.tolist())) == want_s
    # the CPU kernel agrees too
    c2, s2 = kh.histogram_cpu(flat, offset, rows, cols, edges, scale, linthresh, decode)
    np.testing.assert_array_equal(c2, counts)
    np.testing.assert_array_equal(s2, specials)
    return counts, specials


CASES = [("f32", "C", (5, 7)), ("f32", "T", (4, 6)), ("f32", "negslice", (3, 5)),
         ("f64", "pad", (4, 5)), ("bf16", "C", (4, 6)), ("f16", "Tslice", (3, 4)),
         ("i8", "negrow", (4, 5)), ("bool", "C", (3, 5)), ("i64", "slice", (3, 4))]


@pytest.mark.parametrize("kind, layout, shape", CASES,
                         ids=[f"{k}-{lay}-{s[0]}x{s[1]}" for k, lay, s in CASES])
def test_random_cases(kt, kind, layout, shape):
    rng = np.random.default_rng([ord(ch) for ch in kind + layout])
    specials = 0.1 if kind in ("f32", "f64", "bf16", "f16") else 0.0
    flat, offset, rows, cols, decode, truth = kt.make_input(rng, kind, layout, *shape, specials)
    v = truth[np.isfinite(truth)]
    lo, hi = (v.min(), v.max()) if v.size else (0.0, 1.0)
    edges = np.linspace(lo + 0.1 * (hi - lo), hi - 0.1 * (hi - lo) + (hi == lo), 6)
    check(flat, offset, rows, cols, decode, truth, edges)
    assert kh.minmax_cuda(flat, offset, rows, cols, decode) == ref_histogram.minmax(truth)


def test_values_on_edges_and_specials(kt):
    edges = np.linspace(-0.3, 0.7, 6)
    v = np.concatenate([edges, np.nextafter(edges, np.inf), np.nextafter(edges, -np.inf),
                        [np.nan, np.inf, -np.inf, 5.0, -5.0]])
    flat, offset, rows, cols = kt.strided_flat(v)
    counts, specials = check(flat, offset, rows, cols, DECODE_NATIVE, v, edges,
                             device_buffer=True)
    assert counts[0] > 0 and counts[-1] > 0 and specials.tolist() == [2, 2, 1, 1, 1]


def test_log_symlog_and_arbitrary_edges(kt):
    rng = np.random.default_rng(3)
    v = np.concatenate([np.exp(rng.uniform(-6, 2, 20)), -np.exp(rng.uniform(-6, 2, 8)), [0.0]])
    log_edges = np.geomspace(1e-2, 5.0, 6)
    c = 0.05
    sym = kh.symlog_inverse(np.linspace(kh.symlog_forward(-5, c), kh.symlog_forward(5, c), 7), c)
    sym[3] = 0.0
    uneven = np.array([-3.0, -0.2, 0.0, 0.01, 1.5, 9.0])
    for scale, edges, lt in (("log", log_edges, None), ("symlog", sym, c),
                             ("linear", uneven, None)):
        x = np.concatenate([v, edges])
        flat, offset, rows, cols = kt.strided_flat(x)
        check(flat, offset, rows, cols, DECODE_NATIVE, x, edges, scale, lt)


def test_many_bins_use_global_atomics(kt):
    """More slots than shared memory holds: counts go straight to global memory."""
    edges = np.arange(kh.CUDA_SHARED_BINS + 1, dtype=np.float64)
    v = np.array([0.0, 5.5, 12287.0, 12288.0, 9000.25, -1.0, np.nan])
    flat, offset, rows, cols = kt.strided_flat(v)
    check(flat, offset, rows, cols, DECODE_NATIVE, v, edges)


def test_host_buffer_streamed_in_slabs(kt, monkeypatch):
    """A host tensor larger than the slab budget goes over in several pieces."""
    monkeypatch.setattr(kh, "CUDA_STREAM_BYTES", 48)   # 6 float64 elements per slab
    rng = np.random.default_rng(5)
    a = rng.normal(size=(5, 8))
    edges = np.linspace(-2, 2, 5)
    for view in (a, a[:, ::3], a[::-2, 1:], a.T):
        flat, offset, rows, cols = kt.strided_flat(view)
        check(flat, offset, rows, cols, DECODE_NATIVE, view, edges)
        assert kh.minmax_cuda(flat, offset, rows, cols) == ref_histogram.minmax(view)


def test_many_tensors_and_empty(kt):
    rng = np.random.default_rng(6)
    tensors, items = [], []
    for kind, layout, shape in [("f32", "C", (3, 4)), ("bf16", "T", (2, 3)),
                                ("i8", "negslice", (2, 2))]:
        flat, offset, rows, cols, decode, truth = kt.make_input(rng, kind, layout, *shape, 0.1)
        items.append((flat, offset, rows, cols, decode))
        tensors.append(truth)
    items.append((np.zeros(1), 0, Axis(n=1, t1=0), Axis(n=0, t1=1), DECODE_NATIVE))
    tensors.append(np.zeros(0))
    edges = np.linspace(-2, 2, 5)
    counts, specials = kh.histogram_many_cuda(items, edges)
    want, want_s = ref_histogram.histogram_many(tensors, edges)
    np.testing.assert_array_equal(counts, want)
    np.testing.assert_array_equal(specials, want_s)
    assert kh.minmax_cuda(np.zeros(1), 0, Axis(n=1, t1=0), Axis(n=0, t1=1)) == (
        math.inf, -math.inf, math.inf)


def test_three_run_axes(kt):
    rng = np.random.default_rng(7)
    t = rng.normal(size=(4, 4, 4, 3))[::2, ::2, ::-2, :]
    flat, offset, st4 = kt.flat_of(t)
    rows = axis_from_dims(t.shape[:3], st4[:3])
    cols = axis_from_dims([3], [st4[3]])
    check(flat, offset, rows, cols, DECODE_NATIVE, t, np.linspace(-1.5, 1.5, 4))
