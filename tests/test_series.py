"""dv.decimate and dv.series.Decimator: inputs, the Dataset, smoothing, windows, errors."""

from __future__ import annotations

import numpy as np
import pytest

import dlviz_gpu as dv
from dlviz_gpu import series as dseries
from dlviz_gpu.backend import cuda_status
from dlviz_gpu.kernels.reference import series as ref_series

from .conftest import cuda_usable

VALUES = ("first", "last", "min", "max")
INDICES = ("first_index", "last_index", "min_index", "max_index")


def assert_matches(d, values, width, x=None, x_range=None, smoothing=0.0):
    """The Dataset ``d`` against the reference M4 of ``values`` (smoothed first)."""
    truth = np.asarray(values, np.float64)
    series = ref_series.ema(truth, smoothing) if smoothing else truth
    ref = ref_series.m4(series, x, x_range, width)
    assert d.sizes == {"x": width}
    for name in ("count", "nan_count", "first_index", "last_index"):
        np.testing.assert_array_equal(d[name].values, ref[name], err_msg=name)
    if smoothing:
        scale = np.nanmax(np.abs(truth[np.isfinite(truth)])) if np.isfinite(truth).any() else 0
        for name in VALUES:
            np.testing.assert_allclose(d[name].values, ref[name], rtol=1e-12,
                                       atol=1e-12 * scale, err_msg=name)
    else:
        for name in VALUES + INDICES:
            np.testing.assert_array_equal(d[name].values, ref[name], err_msg=name)
    assert d.attrs["outside"] == ref["outside"]
    assert d.attrs["n"] == truth.size
    return ref


def test_dataset_layout_and_attrs(rng):
    y = rng.normal(size=1000).astype(np.float32)
    y[17] = np.nan
    d = dv.decimate(y, width=7)
    assert set(d.data_vars) == set(VALUES + INDICES + ("count", "nan_count"))
    for name in VALUES:
        assert d[name].dtype == np.float64 and d[name].dims == ("x",)
    for name in INDICES + ("count", "nan_count"):
        assert d[name].dtype == np.int64
    # coordinate: pixel centres in x units
    np.testing.assert_allclose(d.x.values, (np.arange(7) + 0.5) * 1000 / 7)
    assert d.attrs["x_range"] == (0.0, 1000.0)
    assert d.attrs["smoothing"] == 0.0 and d.attrs["outside"] == 0 and d.attrs["n"] == 1000
    assert d.attrs["backend"] == "cpu" and d.attrs["dtype"] == "float32"
    assert int(d["nan_count"].sum()) == 1 and int(d["count"].sum()) == 999
    assert_matches(d, y, 7)


@pytest.mark.parametrize("kind", ["list", "memmap", "pandas", "int64", "bool", "reversed",
                                  "strided"])
def test_inputs(rng, tmp_path, kind):
    base = np.round(rng.normal(size=600) * 5, 1)
    if kind == "list":
        y, truth = base.tolist(), base
    elif kind == "memmap":
        mm = np.memmap(tmp_path / "y.f32", dtype=np.float32, mode="w+", shape=(600,))
        mm[:] = base
        mm.flush()
        y = np.memmap(tmp_path / "y.f32", dtype=np.float32, mode="r", shape=(600,))
        truth = np.asarray(y, np.float64)
    elif kind == "pandas":
        pd = pytest.importorskip("pandas")
        y, truth = pd.Series(base), base
    elif kind == "int64":
        y = (base * 10).astype(np.int64)
        truth = y.astype(np.float64)
    elif kind == "bool":
        y = base > 0
        truth = y.astype(np.float64)
    elif kind == "reversed":
        y = base[::-1]
        truth = y.copy()
    else:
        y = base[2::5]
        truth = y.copy()
    d = dv.decimate(y, width=9)
    assert_matches(d, truth, 9)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_torch_half_precision(rng, dtype):
    torch = pytest.importorskip("torch")
    t = torch.from_numpy(rng.normal(size=3000).astype(np.float32)).to(getattr(torch, dtype))
    t[5] = float("nan")
    d = dv.decimate(t, width=11, x_range=(100, 2900.5))
    assert d.attrs["dtype"] == dtype
    assert_matches(d, t.double().numpy(), 11, x_range=(100, 2900.5))
    ds = dv.decimate(t[::2], width=5, smoothing=0.9)
    assert_matches(ds, t[::2].double().numpy(), 5, smoothing=0.9)


def test_with_x_and_windows(rng):
    steps = np.cumsum(rng.integers(1, 4, size=5000)) * 10
    y = np.cumsum(rng.normal(size=5000))
    d = dv.decimate(y, x=steps, width=50)
    assert d.attrs["x_range"] == (float(steps[0]), float(steps[-1]))
    assert d.attrs["x"] == "given"
    ref = assert_matches(d, y, 50, x=steps)
    assert ref["last_index"][-1] == 4999        # x == x1: the last step is in the last column
    win = (float(steps[1000]) + 5, float(steps[3000]))
    d = dv.decimate(y, x=steps, width=40, x_range=win)
    assert_matches(d, y, 40, x=steps, x_range=win)
    assert d.attrs["outside"] == 1001 + 1999
    # index space window
    d = dv.decimate(y, width=13, x_range=(-100, 2500.5))
    assert_matches(d, y, 13, x_range=(-100, 2500.5))
    # x as a float32 torch tensor
    torch = pytest.importorskip("torch")
    d = dv.decimate(y, x=torch.from_numpy(steps.astype(np.float32)), width=21)
    assert_matches(d, y, 21, x=steps.astype(np.float32))


def test_smoothing_matches_reference_ema(rng):
    y = rng.normal(size=4000) + np.linspace(3, 0, 4000)
    y[rng.random(4000) < 0.01] = np.inf
    for w in (0.6, 0.99):
        d = dv.decimate(y, width=25, smoothing=w)
        assert d.attrs["smoothing"] == w
        assert_matches(d, y, 25, smoothing=w)
        # a window: the average still starts at sample 0
        d = dv.decimate(y, width=10, smoothing=w, x_range=(2500, 3900))
        assert_matches(d, y, 10, x_range=(2500, 3900), smoothing=w)
    # smoothing=0 is the raw series
    assert_matches(dv.decimate(y, width=25, smoothing=0), y, 25)


def test_decimator_checkpoints_and_polyline(rng, monkeypatch):
    monkeypatch.setattr(dseries, "CHECKPOINT_EVERY", 500)
    y = np.cumsum(rng.normal(size=20000))
    dec = dseries.Decimator(y, smoothing=0.97)
    assert dec.x_extent == (0.0, 20000.0)
    for win in [(15000.0, 19000.0), (1200.0, 1900.0), (0.0, 20000.0)]:
        d = dec.decimate(30, x_range=win)
        assert_matches(d, y, 30, x_range=win, smoothing=0.97)
    assert dec._checkpoints is not None
    idx, xs, ys = dec.polyline(d)
    assert np.all(np.diff(idx) > 0) and idx.size <= 4 * 30
    np.testing.assert_array_equal(xs, idx.astype(float))
    np.testing.assert_allclose(ys, ref_series.ema(y, 0.97)[idx], rtol=1e-12)
    # with x: positions of the vertices
    x = np.arange(20000) * 3 + 7
    d = dv.decimate(y, x=x, width=8)
    idx, xs, ys = dseries.polyline(d, x=x)
    np.testing.assert_array_equal(xs, x[idx])
    np.testing.assert_array_equal(ys, y[idx])


def test_empty_and_single_sample():
    d = dv.decimate(np.zeros(0, np.float32), width=4)
    assert d.attrs["n"] == 0 and int(d["count"].sum()) == 0
    assert (d["first_index"].values == -1).all() and np.isnan(d["min"].values).all()
    d = dv.decimate([3.0], width=4)
    assert d["count"].values.tolist() == [1, 0, 0, 0]
    d = dv.decimate([3.0, 4.0], x=[7, 7], width=3)       # one position: a unit-wide range
    assert d.attrs["x_range"] == (6.5, 7.5)
    assert d["count"].values.tolist() == [0, 2, 0]


@pytest.mark.parametrize("kw,exc,match", [
    ({"y": np.ones((3, 4))}, ValueError, r"y: expected a 1-D series; got shape \(3, 4\)"),
    ({"y": 3.0}, ValueError, "y: expected a 1-D series; got a scalar 3.0"),
    ({"y": ["a", "b"]}, TypeError, "y: expected a real numeric dtype .* got string dtype"),
    ({"y": np.ones(3, complex)}, TypeError, "y: expected a real numeric dtype .* complex"),
    ({"y": {"a": 1}}, TypeError, "y: expected a 1-D array .* got builtins.dict"),
    ({"x": [1.0, 2.0]}, ValueError, r"x: expected 4 positions \(one per sample of y\); got 2"),
    ({"x": [0, 1, 3, 2]}, ValueError,
     r"x: expected finite, non-decreasing positions .*; x\[3\] = 2.0 is below x\[2\] = 3.0"),
    ({"x": [0, np.nan, 2, 3]}, ValueError,
     r"x: expected finite, non-decreasing positions; x\[1\] is nan"),
    ({"x": np.ones((4, 1))}, ValueError, r"x: expected a 1-D series; got shape \(4, 1\)"),
    ({"smoothing": 1.0}, ValueError, r"smoothing: expected a weight in \[0, 1\) .*; got 1.0"),
    ({"smoothing": -0.1}, ValueError, r"smoothing: expected a weight in \[0, 1\) .*; got -0.1"),
    ({"smoothing": float("nan")}, ValueError, r"smoothing: expected a weight in \[0, 1\)"),
    ({"smoothing": "0.5"}, TypeError, r"smoothing: expected a number in \[0, 1\); got '0.5'"),
    ({"smoothing": True}, TypeError, r"smoothing: expected a number .*; got True \(bool\)"),
    ({"width": 0}, ValueError, "width: expected a positive integer no larger than 32768; got 0"),
    ({"width": 12.5}, TypeError, r"width: expected a positive integer; got 12.5 \(float\)"),
    ({"x_range": (5, 1)}, ValueError, r"x_range: expected low < high; got \(5.0, 1.0\)"),
    ({"x_range": 3}, TypeError, r"x_range: expected a \(low, high\) pair of numbers; got 3"),
    ({"backend": "tpu"}, ValueError, "backend: expected one of 'auto', 'cpu', 'cuda'; got 'tpu'"),
], ids=lambda v: str(v) if not isinstance(v, dict) else ",".join(v))
def test_errors(kw, exc, match):
    args = {"y": np.arange(4.0), "width": 8, **kw}
    with pytest.raises(exc, match=match):
        dv.decimate(**args)


@pytest.mark.skipif(cuda_status()[0], reason="a CUDA device (or the simulator) is usable here")
def test_explicit_cuda_without_a_gpu_says_why():
    with pytest.raises(RuntimeError, match="backend='cuda' was requested but CUDA cannot"):
        dv.decimate(np.arange(10.0), width=3, backend="cuda")


@pytest.mark.cuda
@pytest.mark.skipif(not cuda_usable(), reason="needs a GPU or NUMBA_ENABLE_CUDASIM=1")
def test_cuda_backend_matches_reference(rng):
    y = np.round(rng.normal(size=200) * 3) / 3
    y[[4, 90]] = np.nan
    d = dv.decimate(y, width=3, backend="cuda")
    assert d.attrs["backend"] == "cuda"
    assert_matches(d, y, 3)
    d = dv.decimate(y, x=np.arange(200) * 2.0, width=2, smoothing=0.8, backend="cuda",
                    x_range=(100, 398))
    assert_matches(d, y, 2, x=np.arange(200) * 2.0, x_range=(100, 398), smoothing=0.8)
