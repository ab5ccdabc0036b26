"""The points kernels (CPU and CUDA) against the float64 reference
(docs/architecture.md, "Points").

Numba compiles one CPU kernel per (decodings, value / category columns,
unit-stride or not, min/max lanes) and per buffer dtype; each takes a few
seconds, so the tests below share a handful of combinations and run many
inputs and windows through each.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dlviz_gpu.kernels import DECODE_BF16, DECODE_F16
from dlviz_gpu.kernels import points as kp
from dlviz_gpu.kernels.reference import points as ref_points
from tests.cuda import cuda


def col(kt, view, decode=0):
    """A kernel Column over a 1-D numpy view, in place (strides worked out independently)."""
    flat, offset, st = kt.flat_of(view)
    return kp.column(flat, offset, st[0], decode)


def run(kt, x, y, value=None, category=None, x_range=(-1.0, 1.0), y_range=(-1.0, 1.0),
        w=7, h=5, k=0, minmax=True, decodes=(0, 0, 0)):
    n = np.asarray(x).shape[0]
    return kp.points_stats_cpu(col(kt, x, decodes[0]), col(kt, y, decodes[1]),
                               None if value is None else col(kt, value, decodes[2]),
                               None if category is None else col(kt, category),
                               n, x_range, y_range, w, h, k, want_minmax=minmax)


def check(got, truth, x_range, y_range, w, h, k=None, minmax=True, sum_rtol=1e-12):
    """``got`` = (planes, counters) from a kernel; ``truth`` = float64 inputs (x, y, value, cat)."""
    planes, counters = got
    x, y, v, c = truth
    ref, ref_counters = ref_points.points_stats(x, y, v, c, x_range, y_range, w, h, k)
    assert counters == ref_counters
    expected = {"count", "nan_count"}
    if v is not None:
        expected |= {"sum"} | ({"min", "max"} if minmax else set())
    if c is not None:
        expected.add("count_cat")
    assert set(planes) == expected
    for name, plane in planes.items():
        assert plane.shape == ref[name].shape, name
        if name == "sum":
            assert plane.dtype == np.float64
            with np.errstate(invalid="ignore"):
                absref, _ = ref_points.points_stats(x, y, np.abs(v), None, x_range, y_range, w, h)
            tol = sum_rtol * absref["sum"] + 1e-300
            bad = np.abs(plane - ref["sum"]) > tol
            assert not bad.any(), (np.argwhere(bad)[:3], plane[bad][:3], ref["sum"][bad][:3])
        else:
            if name in ("count", "nan_count", "count_cat"):
                assert plane.dtype == np.int64, name
            np.testing.assert_array_equal(plane, ref[name], err_msg=name)
    # nothing dropped silently
    n = len(x)
    assert int(planes["count"].sum() + planes["nan_count"].sum()) + counters["outside"] + \
        counters["nonfinite_xy"] == n or (c is not None and v is None and counters["bad_category"])
    return ref


def random_points(rng, n, specials=0.05, dtype=np.float64):
    x = rng.normal(size=n) * 2 + 0.5
    y = rng.uniform(-3, 3, size=n)
    v = rng.normal(size=n) * rng.choice([1.0, 1e3]) + 5
    if specials:
        for a in (x, y, v):
            pick = rng.random(n) < specials
            a[pick] = rng.choice([np.nan, np.inf, -np.inf], pick.sum())
    return x.astype(dtype), y.astype(dtype), v.astype(dtype)


WINDOWS = [((-1.0, 1.0), (-2.0, 2.5), 7, 5), ((-4.0, 5.0), (-3.0, 3.0), 31, 17),
           ((0.25, 0.75), (0.0, 0.1), 1, 1), ((10.0, 20.0), (-1.0, 1.0), 4, 3),
           ((-2.0, 3.0), (-3.0, 3.0), 64, 48)]


@pytest.mark.parametrize("with_value, with_cat", [(False, False), (True, False), (False, True),
                                                  (True, True)],
                         ids=["count", "value", "cat", "value+cat"])
def test_random_float64(kt, rng, with_value, with_cat):
    """Random points with NaN/inf in coordinates and values, several windows and canvases."""
    for n in (1, 17, 3000, 20000):
        x, y, v = random_points(rng, n)
        c = rng.integers(0, 6, n) if with_cat else None
        for xr, yr, w, h in WINDOWS:
            got = run(kt, x, y, v if with_value else None, c, xr, yr, w, h, 6 if with_cat else 0)
            check(got, (x, y, v if with_value else None, c), xr, yr, w, h, 6 if with_cat else None)


def test_float32_values_and_coordinates_min_max_lanes(kt, rng):
    """float32 values: min/max in float32 lanes (exact), sums in float64 within 1e-6."""
    x, y, v = random_points(rng, 5000, dtype=np.float32)
    c = rng.integers(0, 3, 5000).astype(np.int8)
    for xr, yr, w, h in WINDOWS[:3]:
        got = run(kt, x, y, v, c, xr, yr, w, h, 3)
        check(got, (x.astype(float), y.astype(float), v.astype(float), c), xr, yr, w, h, 3,
              sum_rtol=1e-6)


def test_without_min_max(kt, rng):
    x, y, v = random_points(rng, 4000)
    planes, counters = run(kt, x, y, v, None, (-2, 3), (-3, 3), 9, 8, minmax=False)
    check((planes, counters), (x, y, v, None), (-2, 3), (-3, 3), 9, 8, minmax=False)


def test_x_equal_x1_and_pixel_edges(kt):
    """x == x1 goes to the last column; points exactly on inner edges open the next pixel."""
    # window (0, 8) on 8 columns: every integer x is an edge
    x = np.arange(0.0, 9.0)                      # 0..8, 8 == x1
    y = np.full(9, 2.0)
    planes, counters = run(kt, x, y, None, None, (0.0, 8.0), (0.0, 4.0), 8, 4)
    assert counters == {"outside": 0, "nonfinite_xy": 0, "bad_category": 0}
    np.testing.assert_array_equal(planes["count"][2], [1, 1, 1, 1, 1, 1, 1, 2])
    # y == y1 to the last row, y == y0 to row 0, just outside both ends is outside
    xs = np.array([1.0, 1.0, 1.0, np.nextafter(0.0, -1.0), np.nextafter(8.0, 9.0)])
    ys = np.array([4.0, 0.0, np.nextafter(4.0, 5.0), 1.0, 1.0])
    planes, counters = run(kt, xs, ys, None, None, (0.0, 8.0), (0.0, 4.0), 8, 4)
    assert planes["count"][3, 1] == 1 and planes["count"][0, 1] == 1
    assert counters["outside"] == 3
    check((planes, counters), (xs, ys, None, None), (0.0, 8.0), (0.0, 4.0), 8, 4)


def test_quotient_rounding_up_to_w_stays_in_the_last_column(kt):
    """x < x1 whose float64 quotient rounds to exactly W: inside, last column."""
    x = np.array([np.nextafter(1.0, 0.0), 1.0, -3.0])
    fx = ((x[0] - (-3.0)) * 5) / (1.0 - (-3.0))
    assert fx == 5.0  # the case this test is about
    planes, counters = run(kt, x, np.zeros(3), None, None, (-3.0, 1.0), (-1.0, 1.0), 5, 1)
    np.testing.assert_array_equal(planes["count"], [[1, 0, 0, 0, 2]])
    assert counters["outside"] == 0
    check((planes, counters), (x, np.zeros(3), None, None), (-3.0, 1.0), (-1.0, 1.0), 5, 1)


def test_nonfinite_coordinates_and_values_are_counted_never_poison(kt):
    x = np.array([0.1, np.nan, 0.2, np.inf, -np.inf, 0.3, 0.3, 5.0, 0.3])
    y = np.array([0.1, 0.1, np.nan, 0.1, 0.1, -np.inf, 0.2, 0.2, 0.2])
    v = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, np.nan, 8.0, -np.inf])
    planes, counters = run(kt, x, y, v, None, (0.0, 1.0), (0.0, 1.0), 2, 2)
    assert counters == {"outside": 1, "nonfinite_xy": 5, "bad_category": 0}
    assert planes["count"][0, 0] == 1 and planes["nan_count"][0, 0] == 2
    assert planes["sum"][0, 0] == 1.0 and planes["min"][0, 0] == 1.0 == planes["max"][0, 0]
    assert np.isnan(planes["min"][1, 1]) and planes["sum"][1, 1] == 0.0
    check((planes, counters), (x, y, v, None), (0.0, 1.0), (0.0, 1.0), 2, 2)
    # a pixel holding only NaN values: count 0, min/max NaN, nan_count 2
    planes, _ = run(kt, np.array([0.2, 0.2]), np.array([0.2, 0.2]), np.array([np.nan, np.inf]),
                    None, (0.0, 1.0), (0.0, 1.0), 2, 2)
    assert planes["count"][0, 0] == 0 and planes["nan_count"][0, 0] == 2
    assert np.isnan(planes["max"][0, 0])


def test_empty_and_one_point(kt):
    e = np.empty(0)
    planes, counters = kp.points_stats_cpu(kp.column(e), kp.column(e), kp.column(e),
                                           kp.column(np.empty(0, np.int64)), 0, (0, 1), (0, 1),
                                           3, 2, 4)
    assert counters == {"outside": 0, "nonfinite_xy": 0, "bad_category": 0}
    assert planes["count"].shape == (2, 3) and not planes["count"].any()
    assert planes["count_cat"].shape == (2, 3, 4) and np.isnan(planes["min"]).all()
    one = run(kt, np.array([0.5]), np.array([0.5]), np.array([7.0]), np.array([2]),
              (0, 1), (0, 1), 3, 2, 4)
    assert one[0]["count"][1, 1] == 1 and one[0]["count_cat"][1, 1, 2] == 1
    check(one, (np.array([0.5]), np.array([0.5]), np.array([7.0]), np.array([2])),
          (0, 1), (0, 1), 3, 2, 4)


def test_strided_negative_and_broadcast_columns(kt, rng):
    """Sliced, reversed and zero-stride (broadcast) columns, read in place."""
    base = rng.normal(size=(3, 4000))
    y = base[1, 1::3]                      # positive stride > 1
    x = base[0, ::-3][: y.size]            # negative stride
    v = np.broadcast_to(np.float64(2.5), x.shape)   # stride 0
    c = (np.arange(3 * x.size) % 5)[::-3]    # negative stride ints
    assert x.strides[0] < 0 and v.strides[0] == 0
    xr, yr = (-2.0, 2.0), (-1.5, 2.5)
    got = run(kt, x, y, v, c, xr, yr, 13, 11, 5)
    check(got, (x.copy(), y.copy(), np.array(v), c.copy()), xr, yr, 13, 11, 5)


@pytest.mark.parametrize("kind", ["bf16", "f16"])
def test_half_precision_bits(kt, rng, kind):
    """bf16 / fp16 coordinates and values decoded in the kernel (no upcast copy)."""
    x, y, v = random_points(rng, 3000, specials=0.03, dtype=np.float32)
    bx, tx = kt.half_bits(x, kind)
    by, ty = kt.half_bits(y, kind)
    bv, tv = kt.half_bits(v / 100, kind)
    dec = DECODE_BF16 if kind == "bf16" else DECODE_F16
    for xr, yr, w, h in WINDOWS[:2]:
        got = run(kt, bx, by, bv, None, xr, yr, w, h, decodes=(dec, dec, dec))
        check(got, (tx, ty, tv, None), xr, yr, w, h, sum_rtol=1e-6)


def test_torch_half_tensors_through_as_matrix(rng):
    """torch bf16 / fp16 tensors as as_matrix sees them (1 x N strips, read in place)."""
    torch = pytest.importorskip("torch")
    from dlviz_gpu.tensors import as_matrix

    x = torch.from_numpy(rng.normal(size=2000)).to(torch.bfloat16)
    y = torch.from_numpy(rng.normal(size=4000)).to(torch.float16)[::2]
    v = torch.from_numpy(rng.normal(size=2000)).to(torch.bfloat16).flip(0)

    def column(t):
        m = as_matrix(t)
        return kp.column(m.buffer, m.offset, m.cols.t1, m.decode)

    planes, counters = kp.points_stats_cpu(column(x), column(y), column(v), None, 2000,
                                           (-2, 2), (-2, 2), 9, 7)
    truth = tuple(t.double().numpy() for t in (x, y, v))
    check((planes, counters), truth + (None,), (-2, 2), (-2, 2), 9, 7, sum_rtol=1e-6)


def test_categories_codes_dtypes_and_bad_codes(kt, rng):
    x, y, _ = random_points(rng, 2000, specials=0.0)
    good = rng.integers(0, 4, 2000)
    for codes in (good.astype(np.int8), good.astype(np.float64)):
        got = run(kt, x, y, None, codes, (-4, 5), (-3, 3), 6, 5, 4)
        check(got, (x, y, None, good), (-4, 5), (-3, 3), 6, 5, 4)
    bad = good.astype(np.float64)
    bad[[3, 10, 50, 70, 99]] = [-1, 4, 1.5, np.nan, 1e300]
    x = x.copy()
    x[3] = 100.0               # a bad code on a point outside the window still counts
    for value in (None, x):
        planes, counters = run(kt, x, y, value, bad, (-4, 5), (-3, 3), 6, 5, 4)
        assert counters["bad_category"] == 5 and counters["outside"] >= 1
        ref, ref_counters = ref_points.points_stats(x, y, None, bad, (-4, 5), (-3, 3), 6, 5, 4)
        assert counters == ref_counters
        np.testing.assert_array_equal(planes["count_cat"], ref["count_cat"])


def test_category_groups_when_private_planes_exceed_the_budget(kt, rng, monkeypatch):
    """Many categories: processed in groups (several passes), same result as one pass."""
    x, y, v = random_points(rng, 6000, specials=0.02)
    c = rng.integers(0, 40, 6000)
    xr, yr, w, h = (-4.0, 5.0), (-3.0, 3.0), 10, 6
    one = run(kt, x, y, v, c, xr, yr, w, h, 40)
    monkeypatch.setattr(kp, "CPU_CAT_BUDGET", 3 * (w * h + 2) * 2)   # ~3 categories a pass
    assert kp._cpu_cat_group(2, w * h, 40) < 40
    for value in (v, None):
        got = run(kt, x, y, value, c, xr, yr, w, h, 40)
        check(got, (x, y, value, c), xr, yr, w, h, 40)
    np.testing.assert_array_equal(got[0]["count_cat"], one[0]["count_cat"])


def test_counts_beyond_uint8_carry(kt):
    """Thousands of points in one pixel: the uint8 private counts carry exactly."""
    n = 70000
    x = np.full(n, 0.5)
    y = np.full(n, 0.5)
    x[::7] = 5.0               # outside: the outside bin carries too
    v = np.ones(n)
    c = np.zeros(n, np.int64)
    planes, counters = run(kt, x, y, v, c, (0, 1), (0, 1), 1, 1, 1)
    inside = n - len(x[::7])
    assert planes["count"][0, 0] == inside and planes["count_cat"][0, 0, 0] == inside
    assert planes["sum"][0, 0] == inside and counters["outside"] == len(x[::7])
    planes, counters = run(kt, x, y, None, None, (0, 1), (0, 1), 1, 1)
    assert planes["count"][0, 0] == inside and counters["outside"] == len(x[::7])


def test_bounds(kt, rng):
    x, y, _ = random_points(rng, 5000)
    c = rng.integers(0, 9, 5000).astype(np.float64)
    c[[4, 8]] = [np.nan, 2.5]
    got = kp.points_bounds_cpu(col(kt, x), col(kt, y), col(kt, c), 5000)
    ok = np.isfinite(x) & np.isfinite(y)
    assert (got["x_min"], got["x_max"]) == (x[ok].min(), x[ok].max())
    assert (got["y_min"], got["y_max"]) == (y[ok].min(), y[ok].max())
    assert ref_points.auto_range(x, y) == (x[ok].min(), x[ok].max())
    good = np.delete(c, [4, 8])
    assert (got["c_min"], got["c_max"], got["c_bad"]) == (good.min(), good.max(), 2)
    assert got == ref_points.bounds(x, y, c)                   # the family's reference
    # strided, x only needs both finite
    xs = x[::-2]
    ys = y[1::2][: xs.size]
    got = kp.points_bounds_cpu(col(kt, xs), col(kt, ys), None, xs.size)
    ok = np.isfinite(xs) & np.isfinite(ys)
    assert got == {"x_min": xs[ok].min(), "x_max": xs[ok].max(), "y_min": ys[ok].min(),
                   "y_max": ys[ok].max()}
    nothing = kp.points_bounds_cpu(col(kt, np.array([np.nan])), col(kt, np.array([1.0])),
                                   None, 1)
    assert nothing["x_min"] == np.inf and nothing["x_max"] == -np.inf


# --------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------

coords = st.one_of(st.floats(-3, 3), st.sampled_from([np.nan, np.inf, -np.inf, -1.0, 1.0, 0.5]))


@st.composite
def clouds(draw):
    n = draw(st.integers(0, 60))
    xs = draw(st.lists(coords, min_size=n, max_size=n))
    ys = draw(st.lists(coords, min_size=n, max_size=n))
    # small integers: sums are exact in any order
    vs = draw(st.lists(st.one_of(st.integers(-20, 20).map(float), st.just(np.nan)),
                       min_size=n, max_size=n))
    cs = draw(st.lists(st.integers(0, 3), min_size=n, max_size=n))
    w = draw(st.integers(1, 6))
    h = draw(st.integers(1, 6))
    return (np.array(xs, float), np.array(ys, float), np.array(vs, float),
            np.array(cs, np.int64), w, h)


@settings(max_examples=40, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(cloud=clouds(), perm_seed=st.integers(0, 2 ** 32 - 1))
def test_conservation_and_order_independence(kt, cloud, perm_seed):
    x, y, v, c, w, h = cloud
    n = x.size
    xr, yr = (-1.0, 1.0), (-1.0, 1.0)
    planes, counters = run(kt, x, y, v, c, xr, yr, w, h, 4)
    assert int(planes["count"].sum() + planes["nan_count"].sum()) + counters["outside"] + \
        counters["nonfinite_xy"] == n
    assert int(planes["count_cat"].sum()) + counters["outside"] + counters["nonfinite_xy"] == n
    check((planes, counters), (x, y, v, c), xr, yr, w, h, 4)
    p = np.random.default_rng(perm_seed).permutation(n)
    again, counters2 = run(kt, x[p], y[p], v[p], c[p], xr, yr, w, h, 4)
    assert counters2 == counters
    for name in planes:
        np.testing.assert_array_equal(again[name], planes[name], err_msg=name)


# --------------------------------------------------------------------------
# The CUDA kernels (marked cuda: a GPU, or NUMBA_ENABLE_CUDASIM=1; skipped elsewhere)
# --------------------------------------------------------------------------

# points_stats_cuda / points_bounds_cuda against the float64 reference.
#
# Runs on a real GPU, or under Numba's simulator when ``NUMBA_ENABLE_CUDASIM=1``
# is set before Python starts.  The simulator runs every thread in Python (256
# per block), so inputs stay tiny: at most a few hundred points, canvases of at
# most 6 x 5 pixels.

def col_cuda(kt, view, decode=0, device=False):
    flat, offset, st = kt.flat_of(view)
    if device:
        flat = cuda.to_device(np.ascontiguousarray(flat))
    return kp.column(flat, offset, st[0], decode)


def host(planes):
    return {k: a.copy_to_host() for k, a in planes.items()}


def run_cuda(kt, x, y, value=None, category=None, xr=(-1.0, 1.0), yr=(-1.0, 1.0), w=5, h=4, k=0,
        device=False, minmax=True, decodes=(0, 0, 0)):
    planes, counters = kp.points_stats_cuda(
        col_cuda(kt, x, decodes[0], device), col_cuda(kt, y, decodes[1], device),
        None if value is None else col_cuda(kt, value, decodes[2], device),
        None if category is None else col_cuda(kt, category, 0, device),
        np.asarray(x).shape[0], xr, yr, w, h, k, want_minmax=minmax)
    return host(planes), counters


def check_cuda(got, truth, xr, yr, w, h, k=None, minmax=True, sum_rtol=1e-12):
    planes, counters = got
    x, y, v, c = truth
    ref, ref_counters = ref_points.points_stats(x, y, v, c, xr, yr, w, h, k)
    assert counters == ref_counters
    expected = {"count", "nan_count"} | ({"sum"} if v is not None else set()) | \
        ({"min", "max"} if v is not None and minmax else set()) | \
        ({"count_cat"} if c is not None else set())
    assert set(planes) == expected
    for name, plane in planes.items():
        assert plane.shape == ref[name].shape, name
        if name == "sum":
            np.testing.assert_allclose(plane, ref["sum"], rtol=sum_rtol, atol=1e-12)
        else:
            np.testing.assert_array_equal(plane, ref[name], err_msg=name)


def cloud(rng, n, specials=0.1):
    x = rng.uniform(-1.3, 1.3, n)
    y = rng.uniform(-1.3, 1.3, n)
    v = rng.normal(size=n)
    for a in (x, y, v):
        pick = rng.random(n) < specials
        a[pick] = rng.choice([np.nan, np.inf, -np.inf], pick.sum())
    x[:3] = [1.0, -1.0, 0.2]       # x == x1, x == x0
    y[:3] = [0.5, 1.0, -1.0]       # y == y1, y == y0
    return x, y, v


@pytest.mark.cuda
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("with_value, with_cat", [(False, False), (True, False), (False, True),
                                                  (True, True)],
                         ids=["count", "value", "cat", "value+cat"])
def test_random_with_edges(kt, with_value, with_cat):
    rng = np.random.default_rng(5 + 2 * with_value + with_cat)
    x, y, v = cloud(rng, 150)
    c = rng.integers(0, 3, 150) if with_cat else None
    got = run_cuda(kt, x, y, v if with_value else None, c, k=3 if with_cat else 0)
    check_cuda(got, (x, y, v if with_value else None, c), (-1.0, 1.0), (-1.0, 1.0), 5, 4,
          3 if with_cat else None)


@pytest.mark.cuda
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_global_atomics_path(kt, monkeypatch):
    """Canvases too big for the shared-memory counts use global atomics: same result."""
    monkeypatch.setattr(kp, "CUDA_SHARED_CELLS", 4)
    rng = np.random.default_rng(11)
    x, y, _ = cloud(rng, 120)
    c = rng.integers(0, 2, 120)
    for cat in (None, c):
        got = run_cuda(kt, x, y, None, cat, w=3, h=2, k=2 if cat is not None else 0)
        check_cuda(got, (x, y, None, cat), (-1.0, 1.0), (-1.0, 1.0), 3, 2,
              2 if cat is not None else None)


@pytest.mark.cuda
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("device", [True, False], ids=["device", "host-streamed"])
def test_strided_columns_and_no_minmax(kt, device, monkeypatch):
    """Negative / >1 strides read in place on the device, or streamed from the host in
    chunks (a small CUDA_CHUNK forces several)."""
    monkeypatch.setattr(kp, "CUDA_CHUNK", 37)
    rng = np.random.default_rng(3)
    base = rng.uniform(-1.2, 1.2, (3, 300))
    x = base[0, ::-3]
    y = base[1, 1::3]
    v = base[2, ::3] * 10
    c = (np.arange(300) % 3)[::-3]
    got = run_cuda(kt, x, y, v, c, device=device, minmax=False, k=3)
    check_cuda(got, (x.copy(), y.copy(), v.copy(), c.copy()), (-1.0, 1.0), (-1.0, 1.0), 5, 4, 3,
          minmax=False)


@pytest.mark.cuda
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_bf16_bits_and_bad_categories(kt):
    rng = np.random.default_rng(4)
    x, y, v = cloud(rng, 100, specials=0.05)
    bx, tx = kt.half_bits(x, "bf16")
    by, ty = kt.half_bits(y, "bf16")
    c = rng.integers(0, 3, 100).astype(np.float64)
    c[[5, 9]] = [-1.0, 2.5]
    planes, counters = run_cuda(kt, bx, by, None, c, k=3, decodes=(DECODE_BF16, DECODE_BF16, 0))
    assert counters["bad_category"] == 2
    ref, ref_counters = ref_points.points_stats(tx, ty, None, c, (-1.0, 1.0), (-1.0, 1.0),
                                                5, 4, 3)
    np.testing.assert_array_equal(planes["count_cat"], ref["count_cat"])
    assert counters == ref_counters


@pytest.mark.cuda
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_empty_and_one_point_on_cuda(kt):
    e = np.empty(0)
    planes, counters = kp.points_stats_cuda(kp.column(e), kp.column(e), kp.column(e), None,
                                            0, (0, 1), (0, 1), 3, 2)
    planes = host(planes)
    assert counters == {"outside": 0, "nonfinite_xy": 0, "bad_category": 0}
    assert not planes["count"].any() and np.isnan(planes["min"]).all()
    one = run_cuda(kt, np.array([0.5]), np.array([0.5]), np.array([3.0]), np.array([1]),
              (0, 1), (0, 1), 3, 2, 2)
    check_cuda(one, (np.array([0.5]), np.array([0.5]), np.array([3.0]), np.array([1])),
          (0, 1), (0, 1), 3, 2, 2)


@pytest.mark.cuda
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_bounds_on_cuda(kt):
    rng = np.random.default_rng(8)
    x, y, _ = cloud(rng, 200)
    c = rng.integers(0, 7, 200).astype(np.float64)
    c[3] = np.nan
    got = kp.points_bounds_cuda(col_cuda(kt, x), col_cuda(kt, y), col_cuda(kt, c), 200)
    ok = np.isfinite(x) & np.isfinite(y)
    assert (got["x_min"], got["x_max"], got["y_min"], got["y_max"]) == \
        (x[ok].min(), x[ok].max(), y[ok].min(), y[ok].max())
    good = np.delete(c, 3)
    assert (got["c_min"], got["c_max"], got["c_bad"]) == (good.min(), good.max(), 1)
    assert got == {**kp.points_bounds_cpu(col_cuda(kt, x), col_cuda(kt, y), col_cuda(kt, c), 200)}


@pytest.mark.cuda
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_public_api_on_the_cuda_backend(rng):
    """dv.rasterize_points(backend="cuda") on host data: streamed, same as the CPU."""
    import dlviz_gpu as dv

    x = rng.normal(size=120)
    y = rng.normal(size=120)
    v = rng.normal(size=120)
    c = rng.integers(0, 2, 120)
    gpu = dv.rasterize_points(x, y, v, c, width=4, height=3, backend="cuda")
    cpu = dv.rasterize_points(x, y, v, c, width=4, height=3, backend="cpu")
    assert gpu.device == "cuda" and gpu.stats == cpu.stats and gpu.attrs == cpu.attrs
    assert gpu.canvas == cpu.canvas
    for stat in cpu.stats:
        if stat in ("sum", "mean"):
            np.testing.assert_allclose(gpu[stat], cpu[stat], rtol=1e-12, equal_nan=True)
        else:
            np.testing.assert_array_equal(gpu[stat], cpu[stat], err_msg=stat)
