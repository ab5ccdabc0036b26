"""points_stats_cuda / points_bounds_cuda against the float64 reference.

Runs on a real GPU, or under Numba's simulator when ``NUMBA_ENABLE_CUDASIM=1``
is set before Python starts.  The simulator runs every thread in Python (256
per block), so inputs stay tiny: at most a few hundred points, canvases of at
most 6 x 5 pixels.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.cuda import cuda_or_skip

cuda = cuda_or_skip()

from dlviz_gpu.kernels import DECODE_BF16  # noqa: E402
from dlviz_gpu.kernels import points as kp  # noqa: E402
from dlviz_gpu.kernels.reference import points as ref_points  # noqa: E402

# the simulator runs the kernels as Python: inf - inf in the finiteness test warns
pytestmark = [pytest.mark.cuda,
              pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")]


def col(kt, view, decode=0, device=False):
    flat, offset, st = kt.flat_of(view)
    if device:
        flat = cuda.to_device(np.ascontiguousarray(flat))
    return kp.column(flat, offset, st[0], decode)


def host(planes):
    return {k: a.copy_to_host() for k, a in planes.items()}


def run(kt, x, y, value=None, category=None, xr=(-1.0, 1.0), yr=(-1.0, 1.0), w=5, h=4, k=0,
        device=False, minmax=True, decodes=(0, 0, 0)):
    planes, counters = kp.points_stats_cuda(
        col(kt, x, decodes[0], device), col(kt, y, decodes[1], device),
        None if value is None else col(kt, value, decodes[2], device),
        None if category is None else col(kt, category, 0, device),
        np.asarray(x).shape[0], xr, yr, w, h, k, want_minmax=minmax)
    return host(planes), counters


def check(got, truth, xr, yr, w, h, k=None, minmax=True, sum_rtol=1e-12):
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


@pytest.mark.parametrize("with_value, with_cat", [(False, False), (True, False), (False, True),
                                                  (True, True)],
                         ids=["count", "value", "cat", "value+cat"])
def test_random_with_edges(kt, with_value, with_cat):
    rng = np.random.default_rng(5 + 2 * with_value + with_cat)
    x, y, v = cloud(rng, 150)
    c = rng.integers(0, 3, 150) if with_cat else None
    got = run(kt, x, y, v if with_value else None, c, k=3 if with_cat else 0)
    check(got, (x, y, v if with_value else None, c), (-1.0, 1.0), (-1.0, 1.0), 5, 4,
          3 if with_cat else None)


def test_global_atomics_path(kt, monkeypatch):
    """Canvases too big for the shared-memory counts use global atomics: same result."""
    monkeypatch.setattr(kp, "CUDA_SHARED_CELLS", 4)
    rng = np.random.default_rng(11)
    x, y, _ = cloud(rng, 120)
    c = rng.integers(0, 2, 120)
    for cat in (None, c):
        got = run(kt, x, y, None, cat, w=3, h=2, k=2 if cat is not None else 0)
        check(got, (x, y, None, cat), (-1.0, 1.0), (-1.0, 1.0), 3, 2,
              2 if cat is not None else None)


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
    got = run(kt, x, y, v, c, device=device, minmax=False, k=3)
    check(got, (x.copy(), y.copy(), v.copy(), c.copy()), (-1.0, 1.0), (-1.0, 1.0), 5, 4, 3,
          minmax=False)


def test_bf16_bits_and_bad_categories(kt):
    rng = np.random.default_rng(4)
    x, y, v = cloud(rng, 100, specials=0.05)
    bx, tx = kt.half_bits(x, "bf16")
    by, ty = kt.half_bits(y, "bf16")
    c = rng.integers(0, 3, 100).astype(np.float64)
    c[[5, 9]] = [-1.0, 2.5]
    planes, counters = run(kt, bx, by, None, c, k=3, decodes=(DECODE_BF16, DECODE_BF16, 0))
    assert counters["bad_category"] == 2
    ref, ref_counters = ref_points.points_stats(tx, ty, None, c, (-1.0, 1.0), (-1.0, 1.0),
                                                5, 4, 3)
    np.testing.assert_array_equal(planes["count_cat"], ref["count_cat"])
    assert counters == ref_counters


def test_empty_and_one_point(kt):
    e = np.empty(0)
    planes, counters = kp.points_stats_cuda(kp.column(e), kp.column(e), kp.column(e), None,
                                            0, (0, 1), (0, 1), 3, 2)
    planes = host(planes)
    assert counters == {"outside": 0, "nonfinite_xy": 0, "bad_category": 0}
    assert not planes["count"].any() and np.isnan(planes["min"]).all()
    one = run(kt, np.array([0.5]), np.array([0.5]), np.array([3.0]), np.array([1]),
              (0, 1), (0, 1), 3, 2, 2)
    check(one, (np.array([0.5]), np.array([0.5]), np.array([3.0]), np.array([1])),
          (0, 1), (0, 1), 3, 2, 2)


def test_bounds(kt):
    rng = np.random.default_rng(8)
    x, y, _ = cloud(rng, 200)
    c = rng.integers(0, 7, 200).astype(np.float64)
    c[3] = np.nan
    got = kp.points_bounds_cuda(col(kt, x), col(kt, y), col(kt, c), 200)
    ok = np.isfinite(x) & np.isfinite(y)
    assert (got["x_min"], got["x_max"], got["y_min"], got["y_max"]) == \
        (x[ok].min(), x[ok].max(), y[ok].min(), y[ok].max())
    good = np.delete(c, 3)
    assert (got["c_min"], got["c_max"], got["c_bad"]) == (good.min(), good.max(), 1)
    assert got == {**kp.points_bounds_cpu(col(kt, x), col(kt, y), col(kt, c), 200)}


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
