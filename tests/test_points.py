"""dv.rasterize_points end to end against the float64 reference; errors; merge; xarray."""

import numpy as np
import pytest

import dlviz_gpu as dv
from dlviz_gpu.backend import cuda_status
from dlviz_gpu.kernels.reference import points as ref_points


def _check(r, x, y, value=None, category=None, k=None, rtol=1e-12):
    """Every statistic of raster ``r`` equals the reference on its own canvas."""
    ref, counters = ref_points.points_stats(x, y, value, category, r.canvas.x_range,
                                            r.canvas.y_range, r.canvas.width,
                                            r.canvas.height, k)
    assert r.attrs["outside"] == counters["outside"]
    assert r.attrs["nonfinite_xy"] == counters["nonfinite_xy"]
    assert r.attrs["points"] == len(x)
    for stat in r.stats:
        got = r[stat]
        if stat in ("sum", "mean"):
            np.testing.assert_allclose(got, ref[stat], rtol=rtol, atol=1e-12, equal_nan=True,
                                       err_msg=stat)
        else:
            np.testing.assert_array_equal(got, ref[stat], err_msg=stat)
    # nothing dropped silently
    assert int(r["count"].sum() + r["nan_count"].sum()) + r.attrs["outside"] + \
        r.attrs["nonfinite_xy"] == len(x)


def _cloud(rng, n=3000):
    x = rng.normal(size=n).astype(np.float32)
    y = rng.normal(size=n) * 3
    v = rng.normal(size=n) + 10
    x[::50] = np.nan
    y[::77] = -np.inf
    v[::13] = np.nan
    return x, y, v


def test_default_window_is_the_exact_finite_bounds(rng):
    x, y, v = _cloud(rng)
    c = rng.integers(0, 5, x.size)
    r = dv.rasterize_points(x, y, v, c, width=40, height=30)
    assert r.canvas.x_range == ref_points.auto_range(x, y)
    assert r.canvas.y_range == ref_points.auto_range(y, x)
    assert r.stats == ("count", "nan_count", "sum", "mean", "min", "max", "count_cat")
    assert r.device == "cpu" and r.dtype == "float64"
    assert r.attrs["outside"] == 0          # the window holds every finite point
    assert r["count_cat"].shape == (30, 40, 5)
    _check(r, x.astype(np.float64), y, v, c)
    # the extreme points land in the last column / row (x == x1, y == y1)
    assert r["count"][:, -1].sum() >= 1 and r["count"][-1, :].sum() >= 1


def test_count_only_window_and_outside_points(rng):
    x, y, _ = _cloud(rng)
    r = dv.rasterize_points(x, y, width=17, height=9, x_range=(-1, 1.5), y_range=(0, 4))
    assert r.stats == ("count", "nan_count") and set(r.planes) == {"count", "nan_count"}
    assert r.attrs["outside"] > 0
    assert r["count"].dtype == np.int64 and not r["nan_count"].any()
    _check(r, x.astype(np.float64), y)


def test_stats_subset_skips_min_max(rng):
    x, y, v = _cloud(rng)
    r = dv.rasterize_points(x, y, v, width=8, height=6, stats="mean")
    assert r.stats == ("count", "nan_count", "mean")
    assert set(r.planes) == {"count", "nan_count", "sum"}    # no min / max in the pass
    with pytest.raises(KeyError, match="'max' was not computed"):
        r["max"]
    _check(r, x.astype(np.float64), y, v)


def test_inputs_pandas_list_memmap_torch(rng, tmp_path):
    pd = pytest.importorskip("pandas")
    x, y, v = _cloud(rng, 500)
    ref = dv.rasterize_points(x, y, v, width=9, height=7)
    mm = np.memmap(tmp_path / "y.bin", dtype=np.float64, mode="w+", shape=y.shape)
    mm[:] = y
    for xs, ys, vs in ((pd.Series(x), pd.Series(y), pd.Series(v)),
                       (x, list(y), list(v)),              # lists (same dtypes: no compile)
                       (x, mm, v)):
        r = dv.rasterize_points(xs, ys, vs, width=9, height=7)
        assert r.canvas == ref.canvas
        for stat in ref.stats:
            np.testing.assert_array_equal(r[stat], ref[stat], err_msg=stat)
    torch = pytest.importorskip("torch")
    tx = torch.from_numpy(x).to(torch.bfloat16)
    ty = torch.from_numpy(np.ascontiguousarray(np.repeat(y, 2))).to(torch.float16)[::2]
    r = dv.rasterize_points(tx, ty, torch.from_numpy(v), width=9, height=7)
    assert r.device == "cpu"
    _check(r, tx.double().numpy(), ty.double().numpy(), v)


def test_pandas_categorical_and_float_codes(rng):
    pd = pytest.importorskip("pandas")
    x, y, _ = _cloud(rng, 400)
    codes = rng.integers(0, 3, 400)
    cat = pd.Series(pd.Categorical.from_codes(codes, categories=["a", "b", "c", "d"]))
    r = dv.rasterize_points(x, y, category=cat, width=6, height=5)
    assert r["count_cat"].shape == (5, 6, 4)          # K from the categories, not the codes
    _check(r, x.astype(np.float64), y, category=codes, k=4)
    r2 = dv.rasterize_points(x, y, category=codes.astype(np.float32), width=6, height=5,
                             n_categories=4)
    np.testing.assert_array_equal(r2["count_cat"], r["count_cat"])
    np.testing.assert_array_equal(r2["count"], r["count_cat"].sum(axis=2))


def test_to_xarray_variables_and_dims(rng):
    x, y, v = _cloud(rng, 300)
    c = rng.integers(0, 3, 300)
    ds = dv.rasterize_points(x, y, v, c, width=5, height=4, x_range=(-2, 2),
                             y_range=(-6, 6)).to_xarray()
    assert list(ds.data_vars) == ["count", "nan_count", "sum", "mean", "min", "max",
                                  "count_cat"]
    assert ds["mean"].dims == ("y", "x") and ds["count_cat"].dims == ("y", "x", "category")
    np.testing.assert_allclose(ds.x.values, [-1.6, -0.8, 0.0, 0.8, 1.6])
    np.testing.assert_allclose(ds.y.values, [-4.5, -1.5, 1.5, 4.5])
    np.testing.assert_array_equal(ds.category.values, [0, 1, 2])
    assert ds.attrs["outside"] + ds.attrs["nonfinite_xy"] + int(ds["count"].sum()) + \
        int(ds["nan_count"].sum()) == 300


def test_merge_of_two_halves_equals_the_whole(rng):
    x, y, v = _cloud(rng, 2000)
    c = rng.integers(0, 4, 2000)
    kw = dict(width=11, height=8, x_range=(-2, 2.5), y_range=(-7, 5), n_categories=4)
    whole = dv.rasterize_points(x, y, v, c, **kw)
    a = dv.rasterize_points(x[:900], y[:900], v[:900], c[:900], **kw)
    b = dv.rasterize_points(x[900:], y[900:], v[900:], c[900:], **kw)
    merged = a.merge(b)
    assert merged.attrs == whole.attrs
    for stat in whole.stats:
        if stat in ("sum", "mean"):
            np.testing.assert_allclose(merged[stat], whole[stat], rtol=1e-12, equal_nan=True)
        else:
            np.testing.assert_array_equal(merged[stat], whole[stat], err_msg=stat)


def test_empty_input_and_degenerate_windows():
    r = dv.rasterize_points([], [], value=[], width=4, height=3)
    assert r.canvas.x_range == (-0.5, 0.5) and r.attrs == {"points": 0, "outside": 0,
                                                           "nonfinite_xy": 0}
    assert not r["count"].any() and np.isnan(r["mean"]).all()
    # every point at one spot: widened by 0.5 each side
    r = dv.rasterize_points(np.full(5, 2.0), np.full(5, -1.0), width=3, height=3)
    assert r.canvas.x_range == (1.5, 2.5) and r.canvas.y_range == (-1.5, -0.5)
    assert r["count"][1, 1] == 5
    # no finite point at all
    r = dv.rasterize_points([np.nan, 1.0], [2.0, np.inf], width=2, height=2)
    assert r.canvas.x_range == (-0.5, 0.5) and r.attrs["nonfinite_xy"] == 2


X = np.linspace(0, 1, 6)


@pytest.mark.parametrize("kw,exc,match", [
    ({"x": np.ones((3, 2))}, ValueError, r"x: expected a 1-D array \(one entry per point\); "
                                         r"got shape \(3, 2\)"),
    ({"y": np.ones(5)}, ValueError, "y: expected 6 entries \\(the length of x\\); got 5"),
    ({"value": np.ones(7)}, ValueError, "value: expected 6 entries .*; got 7"),
    ({"category": np.zeros(2, int)}, ValueError, "category: expected 6 entries .*; got 2"),
    ({"x": np.array(["a"] * 6)}, TypeError, "x: expected a real numeric dtype .*; got dtype"),
    ({"y": [object()] * 6}, TypeError, "y: expected a real numeric dtype .*; got dtype 'object'"),
    ({"value": np.ones(6, complex)}, TypeError, "value: expected a real numeric dtype .*"
                                                "got dtype 'complex128'"),
    ({"x": 3.0}, ValueError, "x: expected a 1-D numpy array .*; got the scalar 3.0"),
    ({"y": {"a": 1}}, TypeError, "y: expected a 1-D numpy array .*; got builtins.dict"),
    ({"category": [0, 1, 2, -3, 1, 0]}, ValueError,
     "category: expected non-negative integer codes; got -3 at index 3"),
    ({"category": [0, 1, 2, 0.5, 1, 0]}, ValueError,
     "category: expected non-negative integer codes; got 0.5 at index 3"),
    ({"category": [0, 1, 2, 5, 1, 0], "n_categories": 3}, ValueError,
     r"category: expected integer codes 0..2 \(n_categories=3\); got 5 at index 3"),
    ({"category": [0, 1, 2, np.nan, 1, 0], "n_categories": 3}, ValueError,
     "category: expected integer codes 0..2 .*; got nan at index 3"),
    ({"category": [0, 1, 2, 3, 1, 0], "n_categories": 2.0}, TypeError,
     r"n_categories: expected a positive integer or None; got 2.0 \(float\)"),
    ({"category": [0] * 6, "n_categories": 0}, ValueError,
     "n_categories: expected 1..65536; got 0"),
    ({"category": [0, 1, 2, 70000, 1, 0]}, ValueError,
     "category: expected codes below 65536; got 70000"),
    ({"width": 0}, ValueError, "width: expected a positive integer no larger than 32768; got 0"),
    ({"height": 2.5}, TypeError, r"height: expected a positive integer; got 2.5 \(float\)"),
    ({"x_range": (1, 0)}, ValueError, r"x_range: expected low < high; got \(1.0, 0.0\)"),
    ({"y_range": (0, np.inf)}, ValueError, "y_range: expected finite bounds"),
    ({"x_range": (-1e308, 1e308)}, ValueError, "x_range: expected a span a float64 can hold"),
    ({"backend": "tpu"}, ValueError, "backend: expected one of 'auto', 'cpu', 'cuda'; got 'tpu'"),
    ({"stats": "median"}, ValueError, "stats: expected names from count, .*; got 'median'"),
    ({"stats": "mean"}, ValueError, "stats: 'mean' need a value column; got value=None"),
    ({"stats": ["count_cat"]}, ValueError, "stats: 'count_cat' needs a category column"),
], ids=lambda v: ",".join(v) if isinstance(v, dict) else None)
def test_bad_input_names_the_parameter(kw, exc, match):
    args = {"x": X, "y": X, "width": 4, "height": 3, **kw}
    with pytest.raises(exc, match=match):
        dv.rasterize_points(**args)


def test_huge_auto_span_is_refused():
    with pytest.raises(ValueError, match="x_range: the finite x coordinates span"):
        dv.rasterize_points([-1e308, 1e308], [0.0, 1.0], width=2, height=2)


@pytest.mark.skipif(cuda_status()[0], reason="a CUDA device (or the simulator) is usable here")
def test_explicit_cuda_without_a_gpu_says_why():
    with pytest.raises(RuntimeError, match="backend='cuda' was requested but CUDA cannot be "
                                           "used here"):
        dv.rasterize_points(X, X, width=2, height=2, backend="cuda")
