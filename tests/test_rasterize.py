"""dv.rasterize end to end against the float64 reference, and Raster behaviour."""

import numpy as np
import pytest

import dlviz_gpu as dv
from dlviz_gpu.kernels import reference


def _check(r, values, x_range, y_range, w, h, rtol=1e-6):
    ref = reference.matrix_stats(values, x_range, y_range, w, h)
    for stat in r.stats:
        got = r[stat]
        assert got.shape == (h, w)
        if stat in ("count", "nan_count", "min", "max", "extremum"):
            np.testing.assert_array_equal(got, ref[stat], err_msg=stat)
        else:
            np.testing.assert_allclose(got, ref[stat], rtol=rtol, atol=1e-12, equal_nan=True,
                                       err_msg=stat)


def test_whole_tensor_default_window(rng):
    a = rng.standard_normal((123, 77)).astype(np.float32)
    r = dv.rasterize(a, 31, 17)
    assert r.canvas.x_range == (0.0, 77.0) and r.canvas.y_range == (0.0, 123.0)
    assert r.stats == dv.STATS and r.device == "cpu"
    _check(r, a, (0, 77), (0, 123), 31, 17)


def test_nan_and_inf_are_counted_and_never_poison(rng):
    a = rng.standard_normal((40, 40))
    a[rng.random(a.shape) < 0.1] = np.nan
    a[0, :] = np.inf
    a[5, 5] = -np.inf
    r = dv.rasterize(a, 8, 8)
    _check(r, a, (0, 40), (0, 40), 8, 8, rtol=1e-9)
    assert r["nan_count"].sum() == (~np.isfinite(a)).sum()
    for stat in ("sum", "mean", "min", "max", "std"):
        assert np.isfinite(r[stat][r["count"] > 0]).all(), stat


def test_stats_subset_computes_only_what_was_asked(rng):
    a = rng.standard_normal((30, 50))
    r = dv.rasterize(a, 10, 6, stats=["max"])
    assert r.stats == ("count", "nan_count", "max")
    assert set(r.planes) == {"count", "nan_count", "sum", "min", "max"}  # no m2 pass
    assert list(r.to_xarray().data_vars) == ["count", "nan_count", "max"]
    with pytest.raises(KeyError, match="'std' was not computed"):
        r["std"]
    _check(r, a, (0, 50), (0, 30), 10, 6)


def test_to_xarray_has_pixel_centre_coordinates(rng):
    a = rng.standard_normal((20, 40))
    ds = dv.rasterize(a, 4, 2, x_range=(10, 30), y_range=(0, 20)).to_xarray()
    assert ds["mean"].dims == ("y", "x")
    np.testing.assert_allclose(ds.x.values, [12.5, 17.5, 22.5, 27.5])
    np.testing.assert_allclose(ds.y.values, [5.0, 15.0])
    np.testing.assert_allclose(ds["mean"].values[0, 0], a[0:10, 10:15].mean())


def test_zoomed_window_reads_only_the_window(rng):
    a = rng.standard_normal((100, 200))
    r = dv.rasterize(a, 7, 5, x_range=(33.3, 71.9), y_range=(12.5, 48))
    _check(r, a, (33.3, 71.9), (12.5, 48), 7, 5, rtol=1e-9)


def test_deep_zoom_each_pixel_at_most_one_element(rng):
    a = rng.standard_normal((6, 6))
    r = dv.rasterize(a, 40, 30, x_range=(1, 5), y_range=(2, 4))
    assert r["count"].max() == 1
    assert r["count"].sum() == 4 * 2
    _check(r, a, (1, 5), (2, 4), 40, 30, rtol=1e-12)


def test_merge_of_row_chunks_equals_whole(rng):
    a = rng.standard_normal((90, 60)) * 5 + 3
    whole = dv.rasterize(a, 13, 11)
    top = dv.rasterize(a[:37], 13, 11, x_range=(0, 60), y_range=(0, 90))
    bottom = dv.rasterize(a[37:], 13, 11, x_range=(0, 60), y_range=(0, 90), origin=(37, 0))
    merged = top.merge(bottom)
    for stat in dv.STATS:
        np.testing.assert_allclose(merged[stat], whole[stat], rtol=1e-12, atol=1e-12,
                                   equal_nan=True, err_msg=stat)


def test_merge_of_column_chunks_equals_reference(rng):
    a = rng.standard_normal((50, 80)).astype(np.float32)
    kw = dict(x_range=(0, 80), y_range=(0, 50))
    merged = dv.rasterize(a[:, :29], 9, 7, **kw).merge(
        dv.rasterize(a[:, 29:], 9, 7, origin=(0, 29), **kw))
    _check(merged, a, (0, 80), (0, 50), 9, 7)


def test_merge_rejects_other_canvas_and_stats(rng):
    a = rng.standard_normal((10, 10))
    r = dv.rasterize(a, 5, 5)
    with pytest.raises(ValueError, match="other: expected a raster of the same canvas"):
        r.merge(dv.rasterize(a, 4, 5))
    with pytest.raises(ValueError, match="other: expected the same statistics"):
        r.merge(dv.rasterize(a, 5, 5, stats="mean"))
    with pytest.raises(TypeError, match="other: expected a Raster; got ndarray"):
        r.merge(a)


def test_extremum_keeps_sign_and_prefers_positive_on_tie():
    a = np.array([[-3.0, 1.0, 2.0, -2.0, -1.0, -5.0]])
    r = dv.rasterize(a, 3, 1)
    np.testing.assert_array_equal(r["extremum"], [[-3.0, 2.0, -5.0]])
    tie = dv.rasterize(np.array([[-4.0, 4.0]]), 1, 1)
    assert tie["extremum"][0, 0] == 4.0


def test_std_is_stable_for_large_offsets(rng):
    a = 1e6 + rng.standard_normal((64, 64)).astype(np.float64) * 1e-3
    r = dv.rasterize(a, 4, 4, stats="std")
    ref = reference.matrix_stats(a, (0, 64), (0, 64), 4, 4)
    np.testing.assert_allclose(r["std"], ref["std"], rtol=1e-6)


def test_integer_and_bool_tensors(rng):
    for a in (rng.integers(-128, 127, (30, 40), dtype=np.int8),
              rng.integers(0, 2**40, (30, 40), dtype=np.int64), rng.random((30, 40)) > 0.5):
        r = dv.rasterize(a, 8, 6)
        _check(r, a.astype(np.float64), (0, 40), (0, 30), 8, 6, rtol=1e-12)


def test_environment_variable_picks_the_backend(monkeypatch, rng):
    a = rng.standard_normal((8, 8))
    monkeypatch.setenv("DLVIZ_BACKEND", "cpu")
    assert dv.rasterize(a, 2, 2).device == "cpu"
    monkeypatch.setenv("DLVIZ_BACKEND", "gpu")
    with pytest.raises(ValueError, match="environment variable DLVIZ_BACKEND: expected one of"):
        dv.rasterize(a, 2, 2)
    # an explicit argument wins over the environment
    assert dv.rasterize(a, 2, 2, backend="cpu").device == "cpu"


# --------------------------------------------------------------------------
# The CUDA kernels (marked cuda: a GPU, or NUMBA_ENABLE_CUDASIM=1; skipped elsewhere)
# --------------------------------------------------------------------------

# dv.rasterize on the CUDA backend: a real GPU, or Numba's simulator in CI.
#
# Run under the simulator with ``NUMBA_ENABLE_CUDASIM=1`` set before Python
# starts; inputs stay tiny because the simulator runs every thread in Python.

def _check_cuda(r, values, w, h, x_range=None, y_range=None, device="cuda"):
    rows, cols = values.shape
    ref = reference.matrix_stats(values, x_range or (0, cols), y_range or (0, rows), w, h)
    assert r.device == device
    for stat in r.stats:
        np.testing.assert_allclose(r[stat], ref[stat], rtol=1e-9, atol=1e-12, equal_nan=True,
                                   err_msg=stat)


@pytest.mark.cuda
def test_host_data_streamed_to_the_device(rng):
    a = rng.standard_normal((9, 13)).astype(np.float32)
    a[2, 3] = np.nan
    a[4, 4] = -np.inf
    _check_cuda(dv.rasterize(a, 5, 4, backend="cuda"), a, 5, 4)


@pytest.mark.cuda
def test_strided_views_on_the_device(rng):
    a = rng.standard_normal((10, 12))
    for view in (a.T, a[::-1, ::2]):
        _check_cuda(dv.rasterize(view, 4, 3, backend="cuda"), view, 4, 3)


@pytest.mark.cuda
def test_window_and_stats_subset(rng):
    a = rng.standard_normal((8, 11))
    r = dv.rasterize(a, 4, 3, x_range=(1.5, 9.25), y_range=(-1, 6), backend="cuda",
                     stats=["max", "extremum"])
    assert "m2" not in r.planes
    _check_cuda(r, a, 4, 3, (1.5, 9.25), (-1, 6))


@pytest.mark.cuda
def test_bf16_and_fp16_on_the_device(rng):
    torch = pytest.importorskip("torch")
    a = rng.standard_normal((7, 9)).astype(np.float32)
    for t in (torch.from_numpy(a).to(torch.bfloat16), torch.from_numpy(a).to(torch.float16)):
        _check_cuda(dv.rasterize(t, 3, 3, backend="cuda"), t.to(torch.float64).numpy(), 3, 3)


@pytest.mark.cuda
def test_environment_variable_selects_cuda(monkeypatch, rng):
    monkeypatch.setenv("DLVIZ_BACKEND", "cuda")
    a = rng.standard_normal((4, 5))
    _check_cuda(dv.rasterize(a, 2, 2), a, 2, 2)


@pytest.mark.cuda
def test_device_planes_stay_on_device_until_asked_and_merge_exactly(rng):
    a = rng.standard_normal((8, 6)) * 4 + 2
    kw = dict(x_range=(0, 6), y_range=(0, 8), backend="cuda")
    top = dv.rasterize(a[:3], 3, 2, **kw)
    assert all(not isinstance(p, np.ndarray) for p in top.planes.values())
    merged = top.merge(dv.rasterize(a[3:], 3, 2, origin=(3, 0), **kw))
    # merging reads both rasters' planes; the merged planes live on the host
    _check_cuda(merged, a, 3, 2, device="cpu")


@pytest.mark.cuda
def test_host_data_streamed_in_many_slabs(monkeypatch, rng):
    from dlviz_gpu.kernels import matrix

    monkeypatch.setattr(matrix, "CUDA_STREAM_BYTES", 64)  # a slab per pixel row or two
    slabs = []
    real = matrix._host_slabs

    def spy(*args):
        for slab in real(*args):
            slabs.append(slab[:2])
            yield slab

    monkeypatch.setattr(matrix, "_host_slabs", spy)
    a = rng.standard_normal((12, 10))
    for view, win in ((a, None), (a[::-1].T, ((2.5, 9), (1, 11)))):
        x_range, y_range = win or (None, None)
        r = dv.rasterize(view, 3, 5, x_range=x_range, y_range=y_range, backend="cuda")
        _check_cuda(r, view, 3, 5, x_range, y_range)
    assert len(slabs) > 2
