"""The histogram kernels (CPU and CUDA) against the float64 NumPy reference
(docs/architecture.md, "Histogram").

Numba compiles one parallel driver per kind of input (element decoding x
float32/float64 lanes x read in place or gathered) and the chunk code twice
(float32 and float64 lanes); everything is cached on disk, so only the first
run of a fresh checkout pays for compilation.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dlviz_gpu.kernels import DECODE_NATIVE, Axis, axis_from_dims
from dlviz_gpu.kernels import histogram as kh
from dlviz_gpu.kernels.reference import histogram as ref_histogram
from tests.cuda import cuda

SPECIALS = ref_histogram.SPECIALS


def check(flat, offset, rows, cols, decode, truth, edges, scale="linear", linthresh=None):
    counts, specials = kh.histogram_cpu(flat, offset, rows, cols, edges, scale, linthresh,
                                        decode)
    want, want_s = ref_histogram.histogram(truth, edges)
    assert counts.dtype == np.int64 and specials.dtype == np.int64
    assert counts.shape == (len(edges) - 1,) and specials.shape == (5,)
    bad = np.flatnonzero(counts != want)
    assert bad.size == 0, (f"bins {bad[:5]} got {counts[bad[:5]]} want {want[bad[:5]]}; "
                           f"edges there {np.asarray(edges)[bad[:5]]}")
    assert dict(zip(SPECIALS, specials.tolist())) == want_s
    assert counts.sum() + specials.sum() == np.asarray(truth).size
    return counts, specials


def edges_for(rng, truth, nbins):
    """Linear edges over part of the finite range, so under- and overflow both occur."""
    v = np.asarray(truth, np.float64)
    v = v[np.isfinite(v)]
    lo, hi = (float(v.min()), float(v.max())) if v.size else (0.0, 1.0)
    if lo == hi:
        lo, hi = lo - 1.0, hi + 1.0
    span = hi - lo
    return np.linspace(lo + rng.uniform(0, 0.2) * span, hi - rng.uniform(0, 0.2) * span,
                       nbins + 1)


KINDS = ["f32", "f64", "bf16", "f16", "i8", "u8", "bool", "i16", "i32", "i64"]
LAYOUTS = ["C", "T", "negrow", "negslice", "Tslice", "pad"]


@pytest.mark.parametrize("kind", KINDS)
def test_random_dtypes_and_layouts(kt, kind):
    """Every dtype, contiguous and strided/negative/transposed views, random bins."""
    rng = np.random.default_rng([ord(ch) for ch in kind])
    specials = 0.05 if kind in ("f32", "f64", "bf16", "f16") else 0.0
    for layout in LAYOUTS:
        r, c = int(rng.integers(1, 40)), int(rng.integers(1, 60))
        flat, offset, rows, cols, decode, truth = kt.make_input(rng, kind, layout, r, c,
                                                                specials)
        for nbins in (1, 7, int(rng.integers(20, 300))):
            edges = edges_for(rng, truth, nbins)
            try:
                check(flat, offset, rows, cols, decode, truth, edges)
            except AssertionError as exc:
                raise AssertionError(f"{kind} {layout} {r}x{c} {nbins} bins: {exc}") from exc


def _on_and_around(edges, dtype):
    """Every edge as the dtype holds it, and its neighbours on both sides."""
    e = np.asarray(edges, np.float64)
    if dtype == np.float32:
        up, down = kh._ceil32(e), kh._floor32(e)
        vals = [up, down, np.nextafter(up, np.float32(np.inf)),
                np.nextafter(down, np.float32(-np.inf))]
        return np.concatenate(vals).astype(np.float32)
    return np.concatenate([e, np.nextafter(e, np.inf), np.nextafter(e, -np.inf)])


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("edges", [
    np.linspace(-1.0, 1.0, 9),                 # exact in float32
    np.linspace(-0.3, 0.7, 11),                # edges between float32 values
    np.linspace(0.1, 0.1 + 1e-3, 1001),        # narrow bins far from 0
    np.linspace(-5.0, 5.0, 1024),              # many bins
    np.linspace(1000.0, 1000.0 + 2e-3, 17),    # two float32 steps per bin
    np.linspace(1000.0, 1000.0 + 1e-4, 11),    # less than a float32 step per bin
    np.linspace(0.1, 0.1 + 2e-8, 11),          # float32(0.1) is most of a bin off
], ids=["exact", "between", "narrow", "many", "f32-2-steps", "f32-sub-step", "f32-off"])
def test_values_exactly_on_edges(kt, dtype, edges):
    """Values on every edge (e_0 and e_B included) and one float step either side."""
    v = _on_and_around(edges, dtype)
    v = np.concatenate([v, v[::-1], [np.nan, np.inf, -np.inf]]).astype(dtype)
    flat, offset, rows, cols = kt.strided_flat(v)
    counts, specials = check(flat, offset, rows, cols, DECODE_NATIVE, v, edges)
    # e_B is in the last bin, e_0 in the first (where the dtype holds them)
    held = dtype(edges[[0, -1]]).astype(np.float64) == edges[[0, -1]]
    assert counts[0] > 0 or not held[0]
    assert counts[-1] > 0 or not held[1]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_zeros_on_a_zero_edge(kt, dtype):
    """Exact zeros (and -0.0) where 0 is an edge: the middle, e_0 or e_B; mostly-zero data."""
    rng = np.random.default_rng(2)
    v = rng.standard_normal(5000).astype(dtype)
    v[rng.random(v.size) < 0.7] = 0.0
    v[:50] = -0.0
    flat, offset, rows, cols = kt.strided_flat(v)
    for edges in (np.linspace(-3, 3, 257), np.linspace(0.0, 2.0, 9), np.linspace(-2.0, 0.0, 9),
                  np.array([-1.0, -0.5, 0.0, 0.001, 4.0])):
        assert 0.0 in edges
        counts, _ = check(flat, offset, rows, cols, DECODE_NATIVE, v, edges)
        k = min(int(np.flatnonzero(edges == 0.0)[0]), edges.size - 2)
        assert counts[k] >= (v == 0).sum()


@pytest.mark.parametrize("kind", ["bf16", "f16"])
def test_half_precision_on_edges(kt, kind):
    """bf16/fp16 values that sit on edges and their neighbours."""
    edges = np.linspace(-2.0, 2.0, 17)
    v = np.concatenate([edges, edges * (1 + 2 ** -7), edges * (1 - 2 ** -7), [np.nan, np.inf]])
    bits, truth = kt.half_bits(v, kind)
    flat, offset, rows, cols = kt.strided_flat(bits)
    from dlviz_gpu.kernels import DECODE_BF16, DECODE_F16

    check(flat, offset, rows, cols, DECODE_BF16 if kind == "bf16" else DECODE_F16, truth, edges)


def test_specials_one_value_and_empty(kt):
    v = np.array([np.nan, np.inf, -np.inf, np.nan, 5.0, -5.0, 0.5])
    flat, offset, rows, cols = kt.strided_flat(v)
    counts, specials = check(flat, offset, rows, cols, DECODE_NATIVE, v, [0.0, 1.0])
    assert counts.tolist() == [1]
    assert specials.tolist() == [1, 1, 2, 1, 1]
    one = np.array([[2.5]], np.float32)
    flat, offset, rows, cols = kt.strided_flat(one)
    check(flat, offset, rows, cols, DECODE_NATIVE, one, [2.5, 3.0])     # on e_0
    check(flat, offset, rows, cols, DECODE_NATIVE, one, [2.0, 2.5])     # on e_B
    counts, specials = kh.histogram_cpu(np.zeros(1), 0, Axis(n=1, t1=0), Axis(n=0, t1=1),
                                        np.linspace(0, 1, 5))
    assert counts.tolist() == [0] * 4 and specials.tolist() == [0] * 5
    assert kh.minmax_cpu(np.zeros(1), 0, Axis(n=1, t1=0), Axis(n=0, t1=1)) == (
        math.inf, -math.inf, math.inf)


def test_log_and_symlog_edges(kt):
    """Log- and symlog-spaced bins take the fast path and stay exact, on their edges too."""
    rng = np.random.default_rng(5)
    data = np.concatenate([np.exp(rng.uniform(-12, 3, 3000)), -np.exp(rng.uniform(-12, 3, 1000)),
                           [0.0, np.nan, np.inf, -np.inf]])
    log_edges = np.exp(np.linspace(math.log(1e-4), math.log(10.0), 301))
    log_edges[0], log_edges[-1] = 1e-4, 10.0
    c = 1e-3
    t = np.linspace(kh.symlog_forward(-20.0, c), kh.symlog_forward(20.0, c), 257)
    sym_edges = kh.symlog_inverse(t, c)
    sym_edges[128] = 0.0
    for dtype in (np.float64, np.float32):
        for scale, edges in (("log", log_edges), ("symlog", sym_edges)):
            v = np.concatenate([data, _on_and_around(edges, dtype)]).astype(dtype)
            flat, offset, rows, cols = kt.strided_flat(v)
            plan = kh.plan_bins(edges, scale, c, allow32=dtype == np.float32)
            assert plan.mode == (kh.MODE_LOG64 if scale == "log" else kh.MODE_SYM64), plan
            check(flat, offset, rows, cols, DECODE_NATIVE, v, edges, scale, c)


def test_plan_modes_and_fallbacks():
    lin = np.linspace(-3, 3, 101)
    assert kh.plan_bins(lin, allow32=True).mode == kh.MODE_LIN32
    assert kh.plan_bins(lin, allow32=False).mode == kh.MODE_LIN64
    assert kh.plan_bins(np.geomspace(1, 100, 11)).mode == kh.MODE_LOG64  # unlabelled log edges
    uneven = np.array([-3.0, -1.0, -0.5, 0.0, 0.1, 2.0, 7.0])
    plan = kh.plan_bins(uneven)
    assert plan.mode == kh.MODE_SEARCH and math.isnan(plan.eps)
    # float32(0.1) is 0.75 of a bin off 0.1: float32 lanes cannot be trusted
    narrow = np.linspace(0.1, 0.1 + 2e-8, 11)
    assert kh.plan_bins(narrow, allow32=True).mode == kh.MODE_LIN64
    for plan in (kh.plan_bins(lin, allow32=True), kh.plan_bins(lin)):
        assert 0 < plan.eps <= kh.MAX_EPS


def test_arbitrary_edges_binary_search(kt):
    rng = np.random.default_rng(9)
    v = np.concatenate([rng.standard_normal(5000) * 3, [np.nan, np.inf, -np.inf]])
    for edges in (np.sort(rng.standard_normal(200)) * 2, np.array([-1.0, 4.0]),
                  np.concatenate([np.geomspace(1e-6, 1, 50) - 2, [0.5, 9.0]]),
                  np.cumsum(rng.exponential(size=1500)) - 40):
        edges = np.unique(edges)
        v2 = np.concatenate([v, edges, np.nextafter(edges, -np.inf)])
        flat, offset, rows, cols = kt.strided_flat(v2)
        check(flat, offset, rows, cols, DECODE_NATIVE, v2, edges)


def test_large_inputs_cross_chunks_and_tasks(kt):
    """Enough elements for several tasks and many chunks, read in place and gathered."""
    rng = np.random.default_rng(10)
    a = rng.standard_normal((700, 300)).astype(np.float32)
    a[rng.random(a.shape) < 0.001] = np.nan
    edges = np.linspace(-3, 3, 1001)
    for view in (a, a[::-1, ::-1], a[:, 1::3], a.T[::2]):
        flat, offset, rows, cols = kt.strided_flat(view)
        check(flat, offset, rows, cols, DECODE_NATIVE, view, edges)
    big = rng.integers(-50, 50, size=300_001).astype(np.int16)[::-1]
    flat, offset, rows, cols = kt.strided_flat(big)
    check(flat, offset, rows, cols, DECODE_NATIVE, big, np.linspace(-50.5, 50.5, 102))
    check(flat, offset, rows, cols, DECODE_NATIVE, big, np.arange(-50.0, 51.0))  # ints on edges


def test_mosaic_and_many_runs(kt):
    """Non-simple axes: a conv mosaic, and six runs that do not merge (original maps kept)."""
    rng = np.random.default_rng(12)
    w = rng.normal(size=(6, 5, 3, 3)).astype(np.float32)
    w = np.ascontiguousarray(w.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)   # channels-last
    flat, offset, rows, cols = kt.mosaic_flat(w[:, :, ::-1, :])
    check(flat, offset, rows, cols, DECODE_NATIVE, w, np.linspace(-2, 2, 33))
    t = rng.normal(size=(4, 4, 4, 4, 4, 6))[::2, ::2, ::2, ::2, ::-2, ::2]
    flat, offset, st6 = kt.flat_of(t)
    rows = axis_from_dims(t.shape[:3], st6[:3])
    cols = axis_from_dims(t.shape[3:], st6[3:])
    off2, outer, inner = kh.normalise(offset, rows, cols)
    assert (outer, inner) == (rows, cols)          # 6 runs: kept as they are
    check(flat, offset, rows, cols, DECODE_NATIVE, t, np.linspace(-2, 2, 9))


def test_normalise_merges_contiguous_views():
    rows, cols = Axis(n=30, t1=40), Axis(n=40, t1=1)
    off, outer, inner = kh.normalise(0, rows, cols)
    assert (outer.n, inner.n, inner.t1) == (1, 1200, 1)
    # transposed and flipped: still one unit-stride run from the lowest address
    off, outer, inner = kh.normalise(1199, Axis(n=40, t1=-1), Axis(n=30, t1=-40))
    assert (off, outer.n, inner.n, inner.t1) == (0, 1, 1200, 1)


def test_many_tensors(kt):
    rng = np.random.default_rng(14)
    tensors, items = [], []
    for kind, layout, shape in [("f32", "C", (30, 40)), ("bf16", "T", (9, 7)),
                                ("i8", "negslice", (5, 6)), ("f64", "pad", (1, 1)),
                                ("bool", "C", (3, 4))]:
        flat, offset, rows, cols, decode, truth = kt.make_input(rng, kind, layout, *shape, 0.02)
        items.append((flat, offset, rows, cols, decode))
        tensors.append(truth)
    edges = np.linspace(-3, 3, 41)
    counts, specials = kh.histogram_many_cpu(items, edges)
    want, want_s = ref_histogram.histogram_many(tensors, edges)
    np.testing.assert_array_equal(counts, want)
    np.testing.assert_array_equal(specials, want_s)
    per = np.stack([np.linspace(-1 - i, 1 + i, 41) for i in range(len(items))])
    counts, specials = kh.histogram_many_cpu(items, per)
    want, want_s = ref_histogram.histogram_many(tensors, per)
    np.testing.assert_array_equal(counts, want)
    np.testing.assert_array_equal(specials, want_s)


@pytest.mark.parametrize("kind", KINDS)
def test_minmax(kt, kind):
    rng = np.random.default_rng([7] + [ord(ch) for ch in kind])
    specials = 0.1 if kind in ("f32", "f64", "bf16", "f16") else 0.0
    for layout in ("C", "negslice"):
        flat, offset, rows, cols, decode, truth = kt.make_input(rng, kind, layout, 13, 17,
                                                                specials)
        assert kh.minmax_cpu(flat, offset, rows, cols, decode) == ref_histogram.minmax(truth)


def test_minmax_edge_cases(kt):
    for v in (np.array([np.nan, np.inf, -np.inf]), np.array([-3.0, -0.0, 0.0]),
              np.array([-2.0, np.nan, 1e-300, 5e-324]), np.array([7.0]),
              np.array([np.nan, -1.5], np.float32), np.array([1e-45, -3e38], np.float32)):
        flat, offset, rows, cols = kt.strided_flat(v)
        got = kh.minmax_cpu(flat, offset, rows, cols)
        assert got == ref_histogram.minmax(v), (v, got)


def test_log_approximation_accuracy():
    """The vectorised ln behind log/symlog bins: error and monotonicity within LN_DELTA."""
    x = np.concatenate([np.exp(np.random.default_rng(1).uniform(-700, 700, 1500)),
                        np.geomspace(np.finfo(np.float64).tiny, 1e307, 1500)])
    approx = np.array([kh._ln(v) for v in x])
    np.testing.assert_allclose(approx, np.log(x), rtol=0, atol=kh.LN_DELTA / 10)
    # dense runs across the sqrt(2) seam and a power of two: never decreasing
    for centre in (math.sqrt(2.0), 2.0, 1.0, 1e-200 * math.sqrt(2.0)):
        grid = centre + np.arange(-2000, 2000) * np.spacing(centre)
        vals = np.array([kh._ln(v) for v in grid])
        assert (np.diff(vals) >= -kh.LN_DELTA / 10).all()


# -- properties ---------------------------------------------------------------

finite_or_not = st.floats(allow_nan=True, allow_infinity=True, width=32)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.lists(finite_or_not, min_size=1, max_size=300),
       lo=st.floats(-100, 100, width=32), width=st.floats(1e-3, 200), nbins=st.integers(1, 64),
       seed=st.integers(0, 2 ** 16))
def test_property_conservation_and_order_independence(kt, values, lo, width, nbins, seed):
    """Every element is counted exactly once, and the order of the elements does not matter."""
    v = np.array(values, np.float32)
    edges = np.linspace(lo, lo + width, nbins + 1)
    if not (np.diff(edges) > 0).all():
        return
    flat, offset, rows, cols = kt.strided_flat(v)
    counts, specials = check(flat, offset, rows, cols, DECODE_NATIVE, v, edges)
    assert counts.sum() + specials.sum() == v.size
    shuffled = np.random.default_rng(seed).permutation(v)
    flat2, offset2, rows2, cols2 = kt.strided_flat(shuffled[::-1])
    c2, s2 = kh.histogram_cpu(flat2, offset2, rows2, cols2, edges)
    np.testing.assert_array_equal(c2, counts)
    np.testing.assert_array_equal(s2, specials)


@settings(max_examples=40, deadline=None)
@given(a=st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=100),
       b=st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=100),
       edges=st.lists(st.floats(-1e6, 1e6), min_size=2, max_size=30, unique=True))
def test_property_merge_equals_whole(kt, a, b, edges):
    """Histograms of two parts add up to the histogram of the whole (arbitrary edges)."""
    e = np.sort(np.array(edges))
    x, y = np.array(a), np.array(b)
    whole = np.concatenate([x, y])
    parts = [kh.histogram_cpu(*kt.strided_flat(p), e) for p in (x, y)]
    c, s = kh.histogram_cpu(*kt.strided_flat(whole), e)
    np.testing.assert_array_equal(parts[0][0] + parts[1][0], c)
    np.testing.assert_array_equal(parts[0][1] + parts[1][1], s)
    want, want_s = ref_histogram.histogram(whole, e)
    np.testing.assert_array_equal(c, want)


# --------------------------------------------------------------------------
# The CUDA kernels (marked cuda: a GPU, or NUMBA_ENABLE_CUDASIM=1; skipped elsewhere)
# --------------------------------------------------------------------------

# histogram_cuda / minmax_cuda against the float64 reference.
#
# Runs on a real GPU, or under Numba's simulator when ``NUMBA_ENABLE_CUDASIM=1``
# is set before Python starts.  The simulator runs every thread in Python, so
# the inputs stay tiny (tens of elements).

def check_cuda(flat, offset, rows, cols, decode, truth, edges, scale="linear", linthresh=None,
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


@pytest.mark.cuda
@pytest.mark.parametrize("kind, layout, shape", CASES,
                         ids=[f"{k}-{lay}-{s[0]}x{s[1]}" for k, lay, s in CASES])
def test_random_cases(kt, kind, layout, shape):
    rng = np.random.default_rng([ord(ch) for ch in kind + layout])
    specials = 0.1 if kind in ("f32", "f64", "bf16", "f16") else 0.0
    flat, offset, rows, cols, decode, truth = kt.make_input(rng, kind, layout, *shape, specials)
    v = truth[np.isfinite(truth)]
    lo, hi = (v.min(), v.max()) if v.size else (0.0, 1.0)
    edges = np.linspace(lo + 0.1 * (hi - lo), hi - 0.1 * (hi - lo) + (hi == lo), 6)
    check_cuda(flat, offset, rows, cols, decode, truth, edges)
    assert kh.minmax_cuda(flat, offset, rows, cols, decode) == ref_histogram.minmax(truth)


@pytest.mark.cuda
def test_values_on_edges_and_specials(kt):
    edges = np.linspace(-0.3, 0.7, 6)
    v = np.concatenate([edges, np.nextafter(edges, np.inf), np.nextafter(edges, -np.inf),
                        [np.nan, np.inf, -np.inf, 5.0, -5.0]])
    flat, offset, rows, cols = kt.strided_flat(v)
    counts, specials = check_cuda(flat, offset, rows, cols, DECODE_NATIVE, v, edges,
                             device_buffer=True)
    assert counts[0] > 0 and counts[-1] > 0 and specials.tolist() == [2, 2, 1, 1, 1]


@pytest.mark.cuda
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
        check_cuda(flat, offset, rows, cols, DECODE_NATIVE, x, edges, scale, lt)


@pytest.mark.cuda
def test_many_bins_use_global_atomics(kt):
    """More slots than shared memory holds: counts go straight to global memory."""
    edges = np.arange(kh.CUDA_SHARED_BINS + 1, dtype=np.float64)
    v = np.array([0.0, 5.5, 12287.0, 12288.0, 9000.25, -1.0, np.nan])
    flat, offset, rows, cols = kt.strided_flat(v)
    check_cuda(flat, offset, rows, cols, DECODE_NATIVE, v, edges)


@pytest.mark.cuda
def test_host_buffer_streamed_in_slabs(kt, monkeypatch):
    """A host tensor larger than the slab budget goes over in several pieces."""
    monkeypatch.setattr(kh, "CUDA_STREAM_BYTES", 48)   # 6 float64 elements per slab
    rng = np.random.default_rng(5)
    a = rng.normal(size=(5, 8))
    edges = np.linspace(-2, 2, 5)
    for view in (a, a[:, ::3], a[::-2, 1:], a.T):
        flat, offset, rows, cols = kt.strided_flat(view)
        check_cuda(flat, offset, rows, cols, DECODE_NATIVE, view, edges)
        assert kh.minmax_cuda(flat, offset, rows, cols) == ref_histogram.minmax(view)


@pytest.mark.cuda
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


@pytest.mark.cuda
def test_three_run_axes(kt):
    rng = np.random.default_rng(7)
    t = rng.normal(size=(4, 4, 4, 3))[::2, ::2, ::-2, :]
    flat, offset, st4 = kt.flat_of(t)
    rows = axis_from_dims(t.shape[:3], st4[:3])
    cols = axis_from_dims([3], [st4[3]])
    check_cuda(flat, offset, rows, cols, DECODE_NATIVE, t, np.linspace(-1.5, 1.5, 4))
