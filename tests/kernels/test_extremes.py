"""Every dtype at its limits, through every kernel family, against exact references.

int64 / uint64 near 2**63 / 2**64, the largest and smallest float16, bfloat16,
float32 and float64 values, subnormals, signed zeros and bool, arranged as a
column, a row, a C-contiguous block and a strided view, through the matrix
raster (every statistic), the points value column, the series M4 (values and
indices), histograms (range=None, a given range, values exactly on the edges),
the moments kernel and ``describe``.

The semantics checked (docs/architecture.md, "Semantics"): every element is the float64
it converts to; min / max / extremum are the float64 of an element that
exists (for an int64 near 2**63, its float64 rounding -- never a value of the
other sign); counts are exact; sums are within float64 rounding of the exact
(rational) sum of the finite elements, and never NaN when every element is
finite; ``std`` is the float64 population standard deviation: ``inf`` where
the sum of squared deviations (or, as in NumPy, the sum itself) exceeds
float64, finite otherwise, never NaN.  The float64 references of
``kernels/reference`` decide counts, min, max and M4; ``fractions.Fraction``
decides sums and spreads exactly.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch

import dlviz_gpu as dv
from dlviz_gpu.backend import cuda_status
from dlviz_gpu.kernels import DECODE_BF16, DECODE_F16, DECODE_NATIVE, reference
from dlviz_gpu.kernels.moments import FIELDS, moments_cpu

DTYPES = ("bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64",
          "float16", "bfloat16", "float32", "float64")
F64_MAX = Fraction(np.finfo(np.float64).max)

needs_cuda = pytest.mark.skipif(not cuda_status()[0],
                                reason="CUDA not available (set NUMBA_ENABLE_CUDASIM=1)")


def limit_values(name: str):
    """``(tensor, truth)``: a 1-D tensor of ``name`` at its limits, and its float64 values.

    An even number of elements, so that every arrangement below exists.
    """
    if name == "bool":
        t = np.array([True, False, True, True, False, True])
        return t, t.astype(np.float64)
    if name == "bfloat16":
        fi = torch.finfo(torch.bfloat16)
        t = torch.tensor([fi.max, -fi.max, fi.tiny, -fi.tiny, fi.tiny / 128, 0.0, -0.0,
                          fi.max / 2, 1.0, -3.0], dtype=torch.bfloat16)
        return t, t.double().numpy()
    dt = np.dtype(name)
    if dt.kind == "f":
        fi = np.finfo(dt)
        v = np.array([fi.max, -fi.max, fi.tiny, -fi.tiny, fi.smallest_subnormal, 0.0, -0.0,
                      fi.max / 3, -fi.max / 7, 1.0], dt)
        return v, v.astype(np.float64)
    ii = np.iinfo(dt)
    v = [ii.max, ii.min, ii.max - 1, ii.min + 1, 0, ii.max // 2, 1]
    if dt.itemsize == 8:
        # around the float64 roundings of 2**63 (2**64): ties, the largest
        # value below that rounds down, the smallest that rounds up
        v += [ii.max - 511, ii.max - 512, ii.max - 513, ii.max - 1024, ii.max - 1025]
        if dt.kind == "i":
            v += [ii.min + 511, ii.min + 513, -1]
    if len(v) % 2:
        v.append(ii.max - 2)
    v = np.array(v, dt)
    return v, v.astype(np.float64)


def arrangements(t, truth):
    """``{name: (tensor, (R, C) float64 truth)}``: column, row, C block, transposed, strided."""
    n = truth.size
    out = {"col": (t.reshape(n, 1), truth.reshape(n, 1)),
           "row": (t.reshape(1, n), truth.reshape(1, n)),
           "block": (t.reshape(2, n // 2), truth.reshape(2, n // 2))}
    if isinstance(t, torch.Tensor):
        out["T"] = (t.reshape(2, n // 2).t(), truth.reshape(2, n // 2).T)
        out["strided"] = (t.repeat_interleave(2)[::2].reshape(1, n), truth.reshape(1, n))
    else:
        out["T"] = (t.reshape(2, n // 2).T, truth.reshape(2, n // 2).T)
        out["strided"] = (np.repeat(t, 2)[::2].reshape(n, 1)[::-1],
                          truth.reshape(n, 1)[::-1])
    return out


# --------------------------------------------------------------------------
# Exact references for sums and spreads
# --------------------------------------------------------------------------

def exact_sum(values) -> Fraction:
    return sum((Fraction(float(v)) for v in values), Fraction(0))


def to_float(x: Fraction) -> float:
    if abs(x) > F64_MAX:
        return math.inf if x > 0 else -math.inf
    return float(x)


def check_sum(got: float, values, what: str):
    """``got`` is within float64 rounding of the exact sum of ``values`` (all finite)."""
    values = [float(v) for v in values]
    assert not math.isnan(got), f"{what}: NaN sum of finite values"
    exact = exact_sum(values)
    scale = sum((abs(Fraction(v)) for v in values), Fraction(0))
    if math.isinf(got):
        assert abs(exact) >= F64_MAX * (1 - Fraction(1, 10**12)) and (got > 0) == (exact > 0), \
            f"{what}: sum {got} but the exact sum is {to_float(exact)}"
        return
    assert abs(Fraction(got) - exact) <= scale * Fraction(1, 10**12), \
        f"{what}: sum {got!r}, exact {to_float(exact)!r}"


def check_mean(got: float, values, what: str):
    """``got`` is the mean of ``values`` (all finite): +-inf exactly when their sum overflows."""
    values = [float(v) for v in values]
    assert not math.isnan(got), f"{what}: NaN mean of finite values"
    exact = exact_sum(values)
    if abs(exact) > F64_MAX * (1 + Fraction(1, 10**12)):
        assert got == (math.inf if exact > 0 else -math.inf), f"{what}: mean {got!r}"
        return
    scale = sum((abs(Fraction(v)) for v in values), Fraction(0)) / len(values)
    assert math.isfinite(got) or abs(exact) >= F64_MAX * (1 - Fraction(1, 10**12)), what
    if math.isfinite(got):
        assert abs(Fraction(got) - exact / len(values)) <= scale * Fraction(1, 10**12), \
            f"{what}: mean {got!r}, exact {to_float(exact / len(values))!r}"


def check_std(got: float, values, what: str):
    """``got`` is the population std of ``values`` (all finite); inf where float64 overflows."""
    values = [float(v) for v in values]
    assert not math.isnan(got), f"{what}: NaN std of finite values"
    n = len(values)
    total = exact_sum(values)
    mean = total / n
    m2 = sum(((Fraction(v) - mean) ** 2 for v in values), Fraction(0))
    margin = Fraction(1, 10**9)
    if abs(total) > F64_MAX * (1 + margin) or m2 > F64_MAX * (1 + margin):
        assert got == math.inf, f"{what}: std {got!r} where float64 overflows (NumPy: inf)"
    elif abs(total) < F64_MAX * (1 - margin) and m2 < F64_MAX * (1 - margin):
        want = math.sqrt(float(m2 / n))
        assert math.isfinite(got) and abs(got - want) <= 1e-9 * want + 1e-300, \
            f"{what}: std {got!r}, exact {want!r}"


# --------------------------------------------------------------------------
# The families
# --------------------------------------------------------------------------

def check_raster(backend, name, arrangement, t, truth, canvases):
    R, C = truth.shape
    for w, h in canvases:
        r = dv.rasterize(t, w, h, backend=backend)
        ref = reference.matrix_stats(truth, (0, C), (0, R), w, h)
        what = f"{name} {arrangement} {w}x{h}"
        for stat in ("count", "nan_count", "min", "max", "extremum"):
            np.testing.assert_array_equal(np.asarray(r[stat], np.float64), ref[stat],
                                          err_msg=f"{what} {stat}")
        # the elements of every pixel, by the reference's own pixel formula
        ii, jj = np.meshgrid(np.arange(R), np.arange(C), indexing="ij")
        px = np.floor(((jj + 0.5) * w) / C).astype(int)
        py = np.floor(((ii + 0.5) * h) / R).astype(int)
        for y in range(h):
            for x in range(w):
                vals = truth[(py == y) & (px == x)]
                if vals.size:
                    check_sum(float(r["sum"][y, x]), vals, f"{what} pixel ({y}, {x})")
                    check_std(float(r["std"][y, x]), vals, f"{what} pixel ({y}, {x})")
                    assert r["mean"][y, x] == r["sum"][y, x] / vals.size


def check_points(backend, name, t, truth):
    n = truth.size
    xs = np.arange(n, dtype=np.float64)
    ys = np.zeros(n)
    for w in (1, 3, n):
        r = dv.rasterize_points(xs, ys, value=t, width=w, height=1, x_range=(0, n - 1),
                                y_range=(-1, 1), backend=backend)
        ref, _ = reference.points.points_stats(xs, ys, truth, None, (0, n - 1), (-1, 1), w, 1)
        for stat in ("count", "nan_count", "min", "max"):
            np.testing.assert_array_equal(np.asarray(r[stat], np.float64),
                                          ref[stat].astype(np.float64),
                                          err_msg=f"points {name} width {w} {stat}")
        px, _, inside, _ = reference.points.pixel_of(xs, ys, (0, n - 1), (-1, 1), w, 1)
        for x in range(w):
            vals = truth[inside & (px == x)]
            if vals.size:
                check_sum(float(r["sum"][0, x]), vals, f"points {name} width {w} pixel {x}")


def check_series(backend, name, t, truth):
    n = truth.size
    for w in (1, 3, n):
        d = dv.decimate(t, width=w, backend=backend)
        ref = reference.series.m4(truth, width=w)
        for stat in ("first", "last", "min", "max", "first_index", "last_index", "min_index",
                     "max_index", "count", "nan_count"):
            np.testing.assert_array_equal(np.asarray(d[stat]), ref[stat],
                                          err_msg=f"series {name} width {w} {stat}")


def check_histograms(backend, name, t, truth):
    fin = truth[np.isfinite(truth)]
    h = dv.histogram(t, bins=16, backend=backend)
    assert np.isfinite(h.edges).all() and (np.diff(h.edges) > 0).all()
    assert h.edges[0] <= fin.min() and h.edges[-1] >= fin.max()
    edge_sets = [h.edges]
    lo, hi = float(fin.min()), float(fin.max())
    if lo < hi and math.isfinite(hi - lo):
        edge_sets.append(dv.histogram(t, bins=7, range=(lo, hi), backend=backend).edges)
    # every distinct value exactly on an edge (the last one closes the last bin),
    # and a narrower range: the extremes fall outside
    uniq = np.unique(fin)
    if uniq.size >= 2:
        edge_sets.append(uniq)
    if uniq.size >= 4:
        edge_sets.append(uniq[1:-1])
    for edges in edge_sets:
        got = dv.histogram(t, bins=np.asarray(edges), backend=backend) \
            if edges is not h.edges else h
        counts, specials = reference.histogram.histogram(truth, edges)
        np.testing.assert_array_equal(got.counts, counts, err_msg=f"histogram {name} {edges}")
        for s in ("underflow", "overflow", "nan", "posinf", "neginf"):
            assert getattr(got, s) == specials[s], (name, s, edges)


def check_describe(backend, name, t, truth):
    s = dv.describe(t, backend=backend)
    fin = truth[np.isfinite(truth)]
    assert s.finite == fin.size and s.size == truth.size
    assert s.min == fin.min() and s.max == fin.max()
    assert s.max_abs == np.abs(fin).max()
    assert s.zeros == int((truth == 0).sum())
    check_std(s.std, fin, f"describe {name}")
    check_mean(s.mean, fin, f"describe {name}")


def moments_input(t, shape):
    """``(C-contiguous array, decode)`` for the moments kernel."""
    if isinstance(t, torch.Tensor):
        bits = t.reshape(shape).contiguous().view(torch.int16).numpy().view(np.uint16)
        return bits, DECODE_BF16 if t.dtype == torch.bfloat16 else DECODE_F16
    a = np.ascontiguousarray(t.reshape(shape))
    if a.dtype == np.float16:
        return a.view(np.uint16), DECODE_F16
    return a, DECODE_NATIVE


def check_moments(name, t, truth):
    n = truth.size
    for shape in ((1, n), (2, n // 2), (n, 1)):
        x, decode = moments_input(t, shape)
        got = dict(zip(FIELDS, moments_cpu(x, decode=decode)))
        fin = truth[np.isfinite(truth)]
        what = f"moments {name} {shape}"
        assert got["count"] == fin.size and got["numel"] == n, what
        assert got["min"] == fin.min() and got["max"] == fin.max(), what
        assert got["zeros"] == int((truth == 0).sum()), what
        check_mean(got["mean"], fin, what)
        check_std(math.sqrt(got["m2"] / got["count"]), fin, what)


# --------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------

@pytest.mark.parametrize("name", DTYPES)
def test_matrix_raster_at_the_limits(name):
    t, truth = limit_values(name)
    for arrangement, (tt, tr) in arrangements(t, truth).items():
        R, C = tr.shape
        check_raster("cpu", name, arrangement, tt, tr, [(1, 1), (C, R), (2, 1), (1, 2)])


@pytest.mark.parametrize("name", DTYPES)
def test_points_series_histograms_describe_at_the_limits(name):
    t, truth = limit_values(name)
    rng = np.random.default_rng(len(name))
    for trial in range(3):
        order = np.arange(truth.size) if trial == 0 else rng.permutation(truth.size)
        tt = t[torch.from_numpy(order)] if isinstance(t, torch.Tensor) else t[order]
        tr = truth[order]
        check_points("cpu", name, tt, tr)
        check_series("cpu", name, tt, tr)
        check_histograms("cpu", name, tt, tr)
        check_describe("cpu", name, tt, tr)
        check_moments(name, tt, tr)


def test_int64_near_the_limit_keeps_its_sign():
    """The case that was reported: min -9.2e18 and max 0 for [[2**63 - 1], [0]]."""
    a = np.array([[2**63 - 1], [0]])
    for tensor in (a, a.T, np.array([2**63 - 1, 0]), torch.from_numpy(a)):
        r = dv.rasterize(tensor, 1, 1)
        assert r["min"][0, 0] == 0.0 and r["max"][0, 0] == 2.0**63
        assert r["extremum"][0, 0] == 2.0**63
        s = dv.describe(tensor)
        assert (s.min, s.max, s.max_abs) == (0.0, 2.0**63, 2.0**63)
    u = np.array([[2**64 - 1], [0]], np.uint64)
    r = dv.rasterize(u, 1, 1)
    assert (r["min"][0, 0], r["max"][0, 0]) == (0.0, 2.0**64)


@pytest.mark.parametrize("values", [
    [1e200, -1e200],                      # squares overflow: NumPy says inf
    [1e154, -1e154, 3.0],                 # the threshold of the issue
    [1.2e154, -1.2e154],
    [1e300, 1e300, 1e300],                # spread 0 at a huge magnitude
    [1e300, -1e300, 5.0, 1e300],
    [8e307, -8e307],
    [1e-300, -1e-300, 0.0],
    [3.0, 1e170],
], ids=lambda v: ",".join(f"{x:g}" for x in v))
def test_std_of_huge_magnitudes_matches_numpy(values):
    """raster std, describe, moments and Raster.merge: inf where NumPy says inf, never NaN."""
    v = np.array(values)
    with np.errstate(over="ignore", invalid="ignore"):
        numpy_inf = bool(np.std(v) == math.inf)
    got = {}
    for tensor in (v[None, :], v[:, None]):
        got[f"raster {tensor.shape}"] = float(dv.rasterize(tensor, 1, 1)["std"][0, 0])
    got["describe"] = dv.describe(v).std
    m = dict(zip(FIELDS, moments_cpu(v[None, :])))
    got["moments"] = math.sqrt(m["m2"] / m["count"])
    # two halves merged equal one pass over both
    k = v.size // 2
    canvas = dict(width=1, height=1, x_range=(0, v.size), y_range=(0, 1))
    a = dv.rasterize(v[None, :k], origin=(0, 0), **canvas)
    b = dv.rasterize(v[None, k:], origin=(0, k), **canvas)
    got["merge"] = float(a.merge(b)["std"][0, 0])
    for what, std in got.items():
        assert (std == math.inf) == numpy_inf, (what, std)
        check_std(std, v, what)


def test_merge_of_overflowing_sums_gives_inf_not_nan():
    """Both halves' sums overflow: the merged mean is inf and the std inf (NumPy's answers)."""
    v = np.full(4, 1.5e308)
    canvas = dict(width=1, height=1, x_range=(0, 4), y_range=(0, 1))
    a = dv.rasterize(v[None, :2], origin=(0, 0), **canvas)
    b = dv.rasterize(v[None, 2:], origin=(0, 2), **canvas)
    m = a.merge(b)
    whole = dv.rasterize(v[None, :], **canvas)
    with np.errstate(over="ignore", invalid="ignore"):
        assert np.std(v) == math.inf and np.mean(v) == math.inf
    for r in (m, whole):
        assert r["std"][0, 0] == math.inf and r["mean"][0, 0] == math.inf


def test_sums_that_overflow_only_on_the_way_are_finite():
    """Partial sums beyond float64 whose total is not: the sum is the exact total, not NaN."""
    big = np.finfo(np.float64).max
    v = np.array([big, big, -big, -big, 1.0, big / 2, -big / 2, 2.0])
    for tensor in (v[None, :], v[:, None], v.reshape(2, 4), v.reshape(2, 4).T):
        r = dv.rasterize(tensor, 1, 1)
        check_sum(float(r["sum"][0, 0]), v, f"shape {tensor.shape}")
        assert r["std"][0, 0] == math.inf
    for order in (np.arange(8), np.array([0, 1, 5, 4, 2, 3, 6, 7])):
        pts = dv.rasterize_points(np.arange(8.0), np.zeros(8), value=v[order], width=2,
                                  height=1, x_range=(0, 7), y_range=(-1, 1))
        check_sum(float(pts["sum"][0, 0]), v[order][:4], f"points {order}")
        check_sum(float(pts["sum"][0, 1]), v[order][4:], f"points {order}")
    for shape in ((2, 4), (1, 8), (8, 1)):
        m = dict(zip(FIELDS, moments_cpu(v.reshape(shape))))
        check_mean(m["mean"], v, f"moments {shape}")
        assert m["m2"] == math.inf


# --------------------------------------------------------------------------
# The CUDA kernels (a GPU, or NUMBA_ENABLE_CUDASIM=1): the same references
# --------------------------------------------------------------------------

@needs_cuda
@pytest.mark.cuda
@pytest.mark.parametrize("name", DTYPES)
def test_cuda_families_at_the_limits(name):
    t, truth = limit_values(name)
    arr = arrangements(t, truth)
    for arrangement in ("block", "T"):
        tt, tr = arr[arrangement]
        R, C = tr.shape
        check_raster("cuda", name, arrangement, tt, tr, [(1, 1), (C, R)])
    check_points("cuda", name, t, truth)
    check_series("cuda", name, t, truth)
    check_histograms("cuda", name, t, truth)
    check_describe("cuda", name, t, truth)


@needs_cuda
@pytest.mark.cuda
def test_cuda_std_of_huge_magnitudes_matches_numpy():
    for values in ([1e200, -1e200], [1e300, 1e300, 1e300], [1.2e154, -1.2e154, 7.0]):
        v = np.array(values)
        with np.errstate(over="ignore", invalid="ignore"):
            want = float(np.std(v))
        got = float(dv.rasterize(v[None, :], 1, 1, backend="cuda")["std"][0, 0])
        assert (got == math.inf) == (want == math.inf), (values, got, want)
        if math.isfinite(want):
            assert got == pytest.approx(want, rel=1e-12)
    big = np.finfo(np.float64).max
    w = np.array([big, big, -big, -big, 1.0, 2.0])
    check_sum(float(dv.rasterize(w[None, :], 1, 1, backend="cuda")["sum"][0, 0]), w,
              "cuda raster, partial overflow")
    pts = dv.rasterize_points(np.arange(6.0), np.zeros(6), value=w, width=2, height=1,
                              x_range=(0, 5), y_range=(-1, 1), backend="cuda")
    assert pts.device == "cuda"
    check_sum(float(pts["sum"][0, 0]), w[:3], "cuda points, overflow")
    check_sum(float(pts["sum"][0, 1]), w[3:], "cuda points")
