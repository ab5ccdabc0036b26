"""m4_cpu / ema_cpu against the float64 reference (docs/architecture.md, "Series").

Every comparison is with ``dlviz_gpu.kernels.reference.series``, which
assigns each sample to its column straight from the formula and reduces each
column with argmin/argmax.  Raw results must be equal (values, indices,
counts); smoothed values within 1e-12 relative (the kernels chain the moving
average segment by segment, the reference one sample at a time).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dlviz_gpu.kernels import DECODE_BF16, DECODE_F16, DECODE_NATIVE
from dlviz_gpu.kernels import series as ks
from dlviz_gpu.kernels.reference import series as ref_series
from tests.cuda import cuda

VALUES = ("first", "last", "min", "max")
INDICES = ("first_index", "last_index", "min_index", "max_index")


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------

def address(kt, view):
    """(flat, offset, stride) of a 1-D view, independently of dlviz_gpu.tensors."""
    flat, offset, st_ = kt.flat_of(view)
    return flat, offset, (st_[0] if view.shape[0] > 1 else 0)


def runs(n, x_range, width, x=None):
    xa = None
    if x is not None:
        x = np.ascontiguousarray(x)
        xa = (x, 0, 1, DECODE_NATIVE)
    return ks.column_runs(n, x_range, width, xa)


def m4(kt, view, decode, truth, x_range, width, x=None, smoothing=0.0):
    """Run m4_cpu on ``view`` and check it against the reference of ``truth``."""
    flat, offset, stride = address(kt, view)
    n = view.shape[0]
    start, end, outside = runs(n, x_range, width, x)
    got = ks.m4_cpu(flat, offset, stride, decode, start, end, smoothing=smoothing)
    series = ref_series.ema(truth, smoothing) if smoothing else truth
    ref = ref_series.m4(series, x, x_range, width)
    assert outside == ref["outside"]
    check(got, ref, series, exact=not smoothing)
    # conservation: every sample is in one column or outside
    assert int(got["count"].sum() + got["nan_count"].sum()) + outside == n
    return got, ref


def check(got, ref, series, exact=True):
    assert set(got) == set(ks.STATS)
    for name in ks.STATS:
        assert got[name].shape == ref[name].shape, name
        assert got[name].dtype == (np.float64 if name in VALUES else np.int64), name
    for name in ("count", "nan_count", "first_index", "last_index"):
        np.testing.assert_array_equal(got[name], ref[name], err_msg=name)
    if exact:
        for name in VALUES + INDICES:
            np.testing.assert_array_equal(got[name], ref[name], err_msg=name)
        return
    # smoothed: values close (slack for cancellation near zero); an extreme's
    # index may differ only between samples whose smoothed values are equal
    # to that precision
    atol = 1e-12 * scale_of(series)
    for name in VALUES:
        np.testing.assert_allclose(got[name], ref[name], rtol=1e-12, atol=atol, err_msg=name)
    for name in ("min", "max"):
        idx = got[name + "_index"]
        np.testing.assert_array_equal(idx < 0, ref[name + "_index"] < 0)
        ok = idx >= 0
        np.testing.assert_allclose(series[idx[ok]], ref[name][ok], rtol=1e-12, atol=atol,
                                   err_msg=name)


def scale_of(values):
    v = np.abs(np.asarray(values, np.float64))
    v = v[np.isfinite(v)]
    return float(v.max()) if v.size else 0.0


def random_series(rng, n, kind, specials=0.05):
    """Values of ``kind`` as stored (float32/float64/ints/bool) with NaN/inf for floats."""
    if kind in ("f32", "f64", "bf16", "f16"):
        v = rng.normal(size=n) * rng.choice([1.0, 1e-3, 30.0]) + rng.choice([0.0, 4.0])
        if rng.random() < 0.3:   # coarse values: many ties
            v = np.round(v * 2) / 2
        pick = rng.random(n) < specials
        v[pick] = rng.choice([np.nan, np.inf, -np.inf], pick.sum())
        return v.astype(np.float64 if kind == "f64" else np.float32)
    if kind == "bool":
        return rng.random(n) < 0.3
    dt = {"i8": np.int8, "u8": np.uint8, "i32": np.int32, "i64": np.int64,
          "u64": np.uint64}[kind]
    info = np.iinfo(dt)
    if dt == np.uint64:
        return rng.integers(0, 2 ** 63, size=n, dtype=np.uint64) * np.uint64(2) + \
            rng.integers(0, 2, size=n, dtype=np.uint64)
    return rng.integers(max(info.min, -(2 ** 40)), min(info.max, 2 ** 40), size=n,
                        endpoint=True, dtype=dt)


def stored(kt, values, kind):
    """(array the kernel reads, decode flag, float64 truth) for ``values`` of ``kind``."""
    if kind in ("bf16", "f16"):
        bits, truth = kt.half_bits(values, kind)
        return bits, (DECODE_BF16 if kind == "bf16" else DECODE_F16), truth
    if kind == "bool":
        return values.view(np.uint8), DECODE_NATIVE, values.astype(np.float64)
    return values, DECODE_NATIVE, values.astype(np.float64)


def window(rng, n, kind):
    if kind == "full":
        return 0.0, float(max(n, 1))
    if kind == "inner":
        lo = rng.uniform(0, n / 2)
        return lo, rng.uniform(lo + 0.5, n + 0.5)
    if kind == "over":
        return -rng.uniform(0.1, n / 3 + 1), n + rng.uniform(0.1, n / 3 + 1)
    if kind == "integer":      # bounds on samples: x == x1 goes to the last column
        a = int(rng.integers(0, max(n - 1, 1)))
        return float(a), float(rng.integers(a + 1, n + 1))
    if kind == "outside":
        return n + 2.0, n + 9.5
    raise ValueError(kind)


WINDOWS = ("full", "inner", "over", "integer", "outside")
VIEWS = {
    "contiguous": (lambda n: n, lambda b: b),
    "step3": (lambda n: 3 * n, lambda b: b[1::3]),
    "reversed": (lambda n: n, lambda b: b[::-1]),
    "negstep2": (lambda n: 2 * n, lambda b: b[::-2]),
}


# --------------------------------------------------------------------------
# random inputs against the reference
# --------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["f64", "f32", "bf16", "f16", "i8", "bool", "u64"])
def test_random_series_dtypes_views_windows(kt, kind):
    """Random lengths, every view (contiguous, strided, reversed), random windows and widths."""
    rng = np.random.default_rng([ord(c) for c in kind])
    for view in VIEWS:
        for _ in range(3):
            n = int(rng.integers(1, 9000))
            size_of, view_of = VIEWS[view]
            values = random_series(rng, size_of(n), kind)
            arr, decode, truth = stored(kt, values, kind)
            v, t = view_of(arr), view_of(truth)
            for wk in ("full", WINDOWS[rng.integers(1, len(WINDOWS))]):
                xr = window(rng, v.shape[0], wk)
                # mostly many samples per column; sometimes more columns than samples
                hi = 40 if rng.random() < 0.7 else 3 * n + 5
                width = int(rng.integers(1, hi))
                try:
                    m4(kt, v, decode, t, xr, width)
                except AssertionError as exc:
                    raise AssertionError(f"{kind} {view} n={v.shape[0]} x_range={xr} "
                                         f"width={width}: {exc}") from exc


@pytest.mark.parametrize("xdtype", [np.float64, np.int64, np.float32])
def test_with_monotonic_x(kt, xdtype):
    """x with plateaus (repeated positions) and gaps: binary-searched runs."""
    rng = np.random.default_rng(11)
    for _ in range(6):
        n = int(rng.integers(1, 4000))
        steps = rng.choice([0, 1, 1, 2, 7], size=n)
        x = (np.cumsum(steps) * rng.choice([1, 3]) + rng.integers(-50, 50)).astype(xdtype)
        y = random_series(rng, n, "f64")
        lo, hi = float(x[0]), float(x[-1])
        for xr in [(lo, hi if hi > lo else lo + 1.0), (lo - 3.5, hi + 2.0),
                   (lo + (hi - lo) * 0.3, lo + (hi - lo) * 0.7 + 0.5)]:
            width = int(rng.integers(1, 60))
            m4(kt, y, DECODE_NATIVE, y, xr, width, x=x)


def test_long_columns_blocks_and_segments(kt, monkeypatch):
    """Columns spanning many 4096-sample blocks, NaN in some blocks, ties across blocks,
    and columns cut into several segments (merged in index order)."""
    rng = np.random.default_rng(5)
    n = 40000
    y = rng.normal(size=n)
    y[5000:5100] = np.nan          # a block with NaN
    y[9000] = np.inf
    y[100] = y[30000] = -7.0        # tie for the minimum across blocks and segments
    y[20000] = y[20001] = 9.0       # tie for the maximum inside one block
    y[12000] = -7.0
    for width in (1, 2, 3):
        m4(kt, y, DECODE_NATIVE, y, (0, n), width)
        m4(kt, y.astype(np.float32), DECODE_NATIVE, y.astype(np.float32), (0, n), width)
    monkeypatch.setattr(ks, "_cpu_segment_len", lambda total: 4097)
    for width in (1, 2, 7):
        got, ref = m4(kt, y, DECODE_NATIVE, y, (0, n), width)
    assert got["min_index"][0] == 100


def test_specials_never_poison():
    """NaN/inf are skipped and counted; an all-NaN column is empty; -0.0 ties +0.0."""
    y = np.array([np.nan, 1.0, np.inf, -np.inf, 3.0,         # column 0
                  np.nan, np.nan, np.nan, np.nan, np.nan,    # column 1: nothing finite
                  0.0, -0.0, 5.0, -0.0, 0.0])                # column 2: zeros tie
    for arr in (y, y.astype(np.float32)):
        s, e, out = runs(15, (0, 15), 3)
        got = ks.m4_cpu(arr, 0, 1, DECODE_NATIVE, s, e)
        assert out == 0
        assert got["count"].tolist() == [2, 0, 5]
        assert got["nan_count"].tolist() == [3, 5, 0]
        assert got["min"][0] == 1.0 and got["max"][0] == 3.0
        assert got["first_index"][0] == 1 and got["last_index"][0] == 4
        assert np.isnan(got["min"][1]) and np.isnan(got["first"][1])
        assert got["min_index"][1] == -1 and got["last_index"][1] == -1
        # min over {0, -0, 5, -0, 0} is the first zero (index 10), max is 5
        assert got["min_index"][2] == 10 and got["max_index"][2] == 12
        ref = ref_series.m4(arr.astype(np.float64), None, (0, 15), 3)
        check(got, ref, arr)


def test_empty_single_and_right_edge():
    """No columns, no samples, one sample, x == x1 goes to the last column."""
    empty = ks.m4_cpu(np.zeros(1), 0, 1, DECODE_NATIVE, np.zeros(0, np.int64),
                      np.zeros(0, np.int64))
    assert all(v.shape == (0,) for v in empty.values())
    s, e, out = runs(0, (0, 1), 4)
    got = ks.m4_cpu(np.zeros(1), 0, 1, DECODE_NATIVE, s, e)
    assert out == 0 and got["count"].sum() == 0 and (got["first_index"] == -1).all()
    # one sample: stride 0 (size-1 views have no meaningful stride)
    s, e, out = runs(1, (0, 1), 5)
    got = ks.m4_cpu(np.array([2.5]), 0, 0, DECODE_NATIVE, s, e)
    assert got["count"].tolist() == [1, 0, 0, 0, 0]
    assert got["first"][0] == got["min"][0] == got["max"][0] == got["last"][0] == 2.5
    # samples at x = 0..10, x_range (0, 10): sample 10 sits on x1 -> last column
    y = np.arange(11.0)
    s, e, out = runs(11, (0, 10), 5)
    got = ks.m4_cpu(y, 0, 1, DECODE_NATIVE, s, e)
    assert out == 0
    assert got["count"].tolist() == [2, 2, 2, 2, 3]
    assert got["last_index"][4] == 10
    # window (2.5, 4): samples 3 and 4 (x == x1) inside, the rest outside
    s, e, out = runs(11, (2.5, 4.0), 3)
    got = ks.m4_cpu(y, 0, 1, DECODE_NATIVE, s, e)
    assert out == 9 and got["count"].sum() == 2 and got["last_index"][2] == 4


def test_column_runs_match_reference_columns():
    """The binary-searched runs assign every sample exactly as the formula does."""
    rng = np.random.default_rng(3)
    for _ in range(30):
        n = int(rng.integers(0, 500))
        width = int(rng.integers(1, 50))
        x = None if rng.random() < 0.5 else np.cumsum(rng.integers(0, 4, n)).astype(float)
        xs = np.arange(n, dtype=float) if x is None else x
        lo = rng.uniform(-5, n / 2 + 1)
        xr = (lo, lo + rng.uniform(0.1, n + 5))
        if rng.random() < 0.3 and n > 2:
            xr = (float(xs[0]), float(xs[n // 2]) + (xs[n // 2] == xs[0]))
        s, e, out = runs(n, xr, width, x)
        cols = np.full(n, -1)
        for p in range(width):
            cols[s[p]:e[p]] = p
        np.testing.assert_array_equal(cols, ref_series.pixel_columns(xs, xr, width))
        assert out == int((cols < 0).sum())


def test_x_first_bad():
    x = np.array([0.0, 1.0, 1.0, 2.0, 1.5, np.nan])
    assert ks.x_first_bad(x, 0, 1, DECODE_NATIVE, 6) == 4
    assert ks.x_first_bad(x, 0, 1, DECODE_NATIVE, 4) == -1
    assert ks.x_first_bad(np.array([0.0, np.inf]), 0, 1, DECODE_NATIVE, 2) == 1
    big = np.arange(100000.0)
    big[77777] = -1.0
    assert ks.x_first_bad(big, 0, 1, DECODE_NATIVE, big.size) == 77777
    assert ks.x_first_bad(big, big.size - 1, -1, DECODE_NATIVE, big.size) == 1


# --------------------------------------------------------------------------
# smoothing
# --------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["f64", "bf16"])
def test_smoothed_m4_and_ema_values(kt, kind, monkeypatch):
    """Fused EMA + M4 against M4 of the reference EMA; windows read the prefix too."""
    rng = np.random.default_rng(21)
    # small segments: the EMA is chained across many of them (and across filler
    # segments before the window)
    monkeypatch.setattr(ks, "_cpu_segment_len", lambda total: 97)
    for w in (0.0, 0.3, 0.9, 0.999):
        n = int(rng.integers(50, 3000))
        values = random_series(rng, n, kind, specials=0.03)
        arr, decode, truth = stored(kt, values, kind)
        for xr in ((0.0, float(n)), (n * 0.4, n * 0.8)):
            width = int(rng.integers(1, 30))
            m4(kt, arr, decode, truth, xr, width, smoothing=w)
        lo, hi = sorted(int(v) for v in rng.integers(0, n, 2))
        got = ks.ema_cpu(arr, 0, 1, decode, lo, hi + 1, w)
        np.testing.assert_allclose(got, ref_series.ema(truth, w)[lo:hi + 1], rtol=1e-12,
                                   atol=1e-12 * scale_of(truth))


def test_smoothing_strided_and_ema_state(kt):
    """A reversed view; a known EMA state (checkpoint) gives the same answer as sample 0."""
    rng = np.random.default_rng(8)
    base = rng.normal(size=5000)
    base[rng.random(5000) < 0.02] = np.nan
    v = base[::-1]
    m4(kt, v, DECODE_NATIVE, v.copy(), (1000, 4200), 17, smoothing=0.95)
    flat, offset, stride = address(kt, v)
    pos, k, last = ks.ema_checkpoints_cpu(flat, offset, stride, DECODE_NATIVE, v.size, 0.95,
                                          every=700)
    assert pos.tolist() == list(range(0, 5000, 700))
    want = ref_series.ema_states(v, 0.95, 700)                 # the family's reference
    np.testing.assert_array_equal(pos, want[0])
    np.testing.assert_array_equal(k, want[1])
    np.testing.assert_allclose(last, want[2], rtol=1e-12)
    s, e, _ = runs(v.size, (3000, 4200), 11)
    whole = ks.m4_cpu(flat, offset, stride, DECODE_NATIVE, s, e, smoothing=0.95)
    j = 4  # checkpoint at 2800, before the window
    part = ks.m4_cpu(flat, offset, stride, DECODE_NATIVE, s, e, smoothing=0.95,
                     ema_state=(pos[j], k[j], last[j]))
    for name in ks.STATS:
        np.testing.assert_allclose(part[name], whole[name], rtol=1e-12, err_msg=name)
    with pytest.raises(ValueError, match="ascending, non-overlapping"):
        ks.m4_cpu(flat, offset, stride, DECODE_NATIVE, s, e, smoothing=0.95,
                  ema_state=(3500, 0, 0.0))


def test_ema_reference_is_tensorboard():
    """The reference itself: constant series stay constant, NaN passes through."""
    y = np.array([2.0, 2.0, np.nan, 2.0, 4.0])
    out = ref_series.ema(y, 0.5)
    assert out[0] == 2.0 and out[1] == 2.0 and np.isnan(out[2]) and out[3] == 2.0
    # after 4 finite samples (2, 2, 2, 4): last = 0.5*last + 0.5*4
    last = 0.0
    for v in (2.0, 2.0, 2.0, 4.0):
        last = 0.5 * last + 0.5 * v
    assert out[4] == pytest.approx(last / (1 - 0.5 ** 4))
    np.testing.assert_array_equal(ref_series.ema(y, 0.0), y)


# --------------------------------------------------------------------------
# the M4 property
# --------------------------------------------------------------------------

def vertices(got):
    idx = np.concatenate([got[n] for n in INDICES])
    return np.unique(idx[idx >= 0])


def redecimate_matches(y, x, x_range, width):
    """M4 of the M4 vertices (placed at their own x) reproduces the M4 of everything."""
    n = y.size
    xs = np.arange(n, dtype=np.float64) if x is None else np.asarray(x, np.float64)
    s, e, _ = runs(n, x_range, width, xs)
    full = ks.m4_cpu(y, 0, 1, DECODE_NATIVE, s, e)
    keep = vertices(full)
    y2, x2 = np.ascontiguousarray(y[keep]), np.ascontiguousarray(xs[keep])
    s2, e2, _ = runs(keep.size, x_range, width, x2)
    small = ks.m4_cpu(y2, 0, 1, DECODE_NATIVE, s2, e2)
    for name in VALUES:
        np.testing.assert_array_equal(small[name], full[name], err_msg=name)
    for name in INDICES:
        mapped = np.where(small[name] >= 0, keep[np.maximum(small[name], 0)], -1)
        np.testing.assert_array_equal(mapped, full[name], err_msg=name)
    # at most four vertices per column
    assert keep.size <= 4 * width


def test_m4_property_redecimation():
    rng = np.random.default_rng(13)
    for _ in range(20):
        n = int(rng.integers(1, 20000))
        y = np.cumsum(rng.normal(size=n))
        y[rng.random(n) < 0.01] = np.nan
        x = None if rng.random() < 0.5 else np.cumsum(rng.integers(0, 3, n)).astype(float)
        xs = np.arange(n) if x is None else x
        xr = (float(xs[0]) - rng.uniform(0, 3), float(xs[-1]) + rng.uniform(0.5, 3))
        redecimate_matches(y, x, xr, int(rng.integers(1, 300)))


# --------------------------------------------------------------------------
# hypothesis
# --------------------------------------------------------------------------

floats = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=32),
                   st.sampled_from([0.0, -0.0, 1.0, -1.0, np.nan]))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.lists(floats, min_size=0, max_size=300),
       width=st.integers(1, 40),
       lo=st.floats(-50, 250, allow_nan=False), span=st.floats(0.25, 400, allow_nan=False),
       f32=st.booleans())
def test_hypothesis_matches_reference(values, width, lo, span, f32):
    y = np.array(values, dtype=np.float32 if f32 else np.float64)
    n = y.size
    xr = (lo, lo + span)
    s, e, out = runs(n, xr, width)
    got = ks.m4_cpu(y if n else np.zeros(1), 0, 1, DECODE_NATIVE, s, e)
    ref = ref_series.m4(y.astype(np.float64), None, xr, width)
    assert out == ref["outside"]
    check(got, ref, y)
    assert int(got["count"].sum() + got["nan_count"].sum()) + out == n


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(st.integers(0, 3), min_size=1, max_size=400),
       seed=st.integers(0, 2 ** 32 - 1), width=st.integers(1, 60))
def test_hypothesis_m4_property_with_x(steps, seed, width):
    rng = np.random.default_rng(seed)
    x = np.cumsum(steps).astype(np.float64)
    y = np.round(rng.normal(size=x.size) * 3) / 3   # coarse: plenty of ties
    xr = (float(x[0]), float(x[-1]) + (x[-1] == x[0]))
    redecimate_matches(y, x, xr, width)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.lists(st.floats(-1e6, 1e6, allow_nan=False, width=32), min_size=1,
                       max_size=200),
       w=st.floats(0.0, 0.999), width=st.integers(1, 20))
def test_hypothesis_smoothing_matches_reference(values, w, width):
    y = np.array(values)
    n = y.size
    s, e, _ = runs(n, (0, n), width)
    got = ks.m4_cpu(y, 0, 1, DECODE_NATIVE, s, e, smoothing=w)
    sm = ref_series.ema(y, w)
    ref = ref_series.m4(sm, None, (0, n), width)
    for name in ("count", "nan_count", "first_index", "last_index"):
        np.testing.assert_array_equal(got[name], ref[name], err_msg=name)
    scale = np.abs(y).max() + 1e-300
    for name in VALUES:
        np.testing.assert_allclose(got[name], ref[name], rtol=1e-9, atol=1e-12 * scale)


# --------------------------------------------------------------------------
# The CUDA kernels (marked cuda: a GPU, or NUMBA_ENABLE_CUDASIM=1; skipped elsewhere)
# --------------------------------------------------------------------------

# m4_cuda / ema_cuda against the float64 reference.
#
# Runs on a real GPU, or under Numba's simulator when ``NUMBA_ENABLE_CUDASIM=1``
# is set before Python starts (the kernels then use 32-thread blocks; every
# thread is a Python thread, so inputs stay in the hundreds of samples).

VALUES_CUDA = ("first", "last", "min", "max")


def scale_of_cuda(values):
    v = np.abs(np.asarray(values, np.float64))
    v = v[np.isfinite(v)]
    return float(v.max()) if v.size else 0.0


def run(buffer, offset, stride, decode, truth, x_range, width, x=None, smoothing=0.0,
        ema_state=None):
    """m4_cuda on the buffer; checked against the reference M4 of ``truth`` (smoothed)."""
    n = truth.size
    xa = None if x is None else (np.ascontiguousarray(x, np.float64), 0, 1, DECODE_NATIVE)
    start, end, outside = ks.column_runs(n, x_range, width, xa)
    got = ks.m4_cuda(buffer, offset, stride, decode, start, end, smoothing=smoothing,
                     ema_state=ema_state)
    series = ref_series.ema(truth, smoothing) if smoothing else truth
    ref = ref_series.m4(series, x, x_range, width)
    assert outside == ref["outside"]
    assert all(isinstance(v, np.ndarray) for v in got.values())
    for name in ("count", "nan_count", "first_index", "last_index"):
        np.testing.assert_array_equal(got[name], ref[name], err_msg=name)
    if not smoothing:
        for name in VALUES_CUDA + ("min_index", "max_index"):
            np.testing.assert_array_equal(got[name], ref[name], err_msg=name)
    else:
        atol = 1e-12 * scale_of_cuda(series)
        for name in VALUES_CUDA:
            np.testing.assert_allclose(got[name], ref[name], rtol=1e-12, atol=atol,
                                       err_msg=name)
        for name in ("min", "max"):
            idx = got[name + "_index"]
            ok = idx >= 0
            np.testing.assert_array_equal(ok, ref[name + "_index"] >= 0)
            np.testing.assert_allclose(series[idx[ok]], ref[name][ok], rtol=1e-12, atol=atol)
    return got


def noisy(rng, n, dtype=np.float64, specials=0.05):
    v = np.round(rng.normal(size=n) * 4) / 4          # coarse: ties
    pick = rng.random(n) < specials
    v[pick] = rng.choice([np.nan, np.inf, -np.inf], pick.sum())
    return v.astype(dtype)


@pytest.mark.cuda
def test_host_buffers_dtypes_and_windows(kt):
    rng = np.random.default_rng(1)
    y = noisy(rng, 300)
    run(y, 0, 1, DECODE_NATIVE, y, (0, 300), 4)
    run(y, 0, 1, DECODE_NATIVE, y, (-20.5, 250.25), 3)
    run(y, 0, 1, DECODE_NATIVE, y, (100, 101), 2)            # x == x1 on a sample
    y32 = noisy(rng, 200, np.float32)
    run(y32, 0, 1, DECODE_NATIVE, y32.astype(np.float64), (0, 200), 3)
    i8 = rng.integers(-128, 128, 150).astype(np.int8)
    run(i8, 0, 1, DECODE_NATIVE, i8.astype(np.float64), (0, 150), 2)
    for kind, flag in (("bf16", DECODE_BF16), ("f16", DECODE_F16)):
        bits, truth = kt.half_bits(noisy(rng, 180, np.float32), kind)
        run(bits, 0, 1, flag, truth, (0, 180), 3)


@pytest.mark.cuda
def test_device_buffer_strided_and_reversed(kt):
    rng = np.random.default_rng(2)
    base = noisy(rng, 400)
    d = cuda.to_device(base)
    run(d, 0, 1, DECODE_NATIVE, base, (10, 390), 3)
    view = base[1::3]
    run(d, 1, 3, DECODE_NATIVE, view.copy(), (0, view.size), 2)
    rev = base[::-1]
    flat, offset, st_ = kt.flat_of(rev)
    run(flat, offset, st_[0], DECODE_NATIVE, rev.copy(), (0, rev.size), 3)


@pytest.mark.cuda
def test_with_x_segments_and_slabs(monkeypatch):
    """Columns cut into several blocks, host data streamed in several slabs."""
    rng = np.random.default_rng(3)
    monkeypatch.setattr(ks, "CUDA_SEGMENT", 45)
    monkeypatch.setattr(ks, "CUDA_STREAM_BYTES", 8 * 120)
    y = noisy(rng, 360)
    y[[7, 200]] = -9.0    # tie for the minimum in different segments
    x = np.cumsum(rng.integers(0, 3, 360)).astype(np.float64)
    got = run(y, 0, 1, DECODE_NATIVE, y, (x[0], x[-1]), 2, x=x)
    run(y, 0, 1, DECODE_NATIVE, y, (0, 360), 1)
    assert got["min_index"].min() == 7


@pytest.mark.cuda
def test_smoothed_with_fillers_and_state(monkeypatch):
    rng = np.random.default_rng(4)
    monkeypatch.setattr(ks, "CUDA_SEGMENT", 60)
    y = noisy(rng, 320, specials=0.03)
    run(y, 0, 1, DECODE_NATIVE, y, (0, 320), 3, smoothing=0.5)
    run(y, 0, 1, DECODE_NATIVE, y, (130.5, 300), 2, smoothing=0.95)   # fillers before
    # a known EMA state at sample 120 (from the reference) instead of sample 0
    w = 0.9
    sm = ref_series.ema(y, w)
    k = int(np.isfinite(y[:120]).sum())
    last_finite = np.flatnonzero(np.isfinite(y[:120]))[-1]
    last = sm[last_finite] * (1 - w ** k)
    run(y, 0, 1, DECODE_NATIVE, y, (150, 320), 2, smoothing=w, ema_state=(120, k, last))


@pytest.mark.cuda
def test_ema_values_and_checkpoints(monkeypatch):
    rng = np.random.default_rng(5)
    monkeypatch.setattr(ks, "CUDA_SEGMENT", 70)
    y = noisy(rng, 260, specials=0.05)
    w = 0.8
    ref = ref_series.ema(y, w)
    got = ks.ema_cuda(cuda.to_device(y), 0, 1, DECODE_NATIVE, 33, 250, w).copy_to_host()
    np.testing.assert_allclose(got, ref[33:250], rtol=1e-12, atol=1e-12 * scale_of_cuda(y))
    pos, k, last = ks.ema_checkpoints_cuda(y, 0, 1, DECODE_NATIVE, y.size, w, every=100)
    assert pos.tolist() == [0, 100, 200]
    for p, kk, ll in zip(pos, k, last):
        fin = np.flatnonzero(np.isfinite(y[:p]))
        assert kk == fin.size
        expect = 0.0 if fin.size == 0 else ref[fin[-1]] * (1 - w ** fin.size)
        assert ll == pytest.approx(expect, rel=1e-12, abs=1e-12)


@pytest.mark.cuda
def test_empty_runs_and_all_nan():
    got = ks.m4_cuda(np.zeros(4), 0, 1, DECODE_NATIVE, np.zeros(3, np.int64),
                     np.zeros(3, np.int64))
    assert got["count"].tolist() == [0, 0, 0] and np.isnan(got["min"]).all()
    y = np.full(70, np.nan)
    y[65] = 1.5
    got = run(y, 0, 1, DECODE_NATIVE, y, (0, 70), 2)
    assert got["count"].tolist() == [0, 1] and got["nan_count"].tolist() == [35, 34]
