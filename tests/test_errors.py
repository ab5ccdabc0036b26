"""Bad input gets an error naming the parameter, the expectation and what came."""

import numpy as np
import pytest

import dlviz_gpu as dv
from dlviz_gpu.backend import cuda_status
from dlviz_gpu.series import Decimator

A = np.ones((4, 6), np.float32)


@pytest.mark.parametrize("tensor,exc,match", [
    (np.float32(3.0), ValueError, "tensor: expected at least 1 dimension; got a 0-d scalar"),
    (np.ones((0, 5)), ValueError, r"tensor: expected a non-empty tensor; got shape \(0, 5\)"),
    (np.ones((3, 3), complex), TypeError, "tensor: expected a real numeric dtype .* got complex dtype 'complex128'"),
    (np.array([[object()]]), TypeError, "got object dtype"),
    (np.array([["a"]]), TypeError, "got string dtype"),
    (np.ones((2, 2, 2, 2, 2)), ValueError, r"layout: tensors with more than 4 dimensions need layout='flatten' or layout='stack'; got shape \(2, 2, 2, 2, 2\)"),
    (np.ones((3, 3), ">f4"), TypeError, "tensor: expected native byte order; got '>f4'"),
    ({"a": 1}, TypeError, "tensor: expected a numpy array or memmap, a torch tensor.*; got builtins.dict"),
], ids=["0d", "empty", "complex", "object", "string", "5d", "big-endian", "dict"])
def test_bad_tensors(tensor, exc, match):
    with pytest.raises(exc, match=match):
        dv.rasterize(tensor, 4, 4)


def test_torch_complex_is_refused():
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match="tensor: torch dtype torch.complex64 is not supported"):
        dv.rasterize(torch.ones(3, 3, dtype=torch.complex64), 2, 2)


@pytest.mark.parametrize("kw,exc,match", [
    ({"width": 0}, ValueError, "width: expected a positive integer no larger than 32768; got 0"),
    ({"height": -3}, ValueError, "height: expected a positive integer no larger than 32768; got -3"),
    ({"width": 800.5}, TypeError, r"width: expected a positive integer; got 800.5 \(float\)"),
    ({"width": True}, TypeError, r"width: expected a positive integer; got True \(bool\)"),
    ({"height": 10**6}, ValueError, "height: expected a positive integer no larger than 32768; got 1000000"),
    ({"width": 30000, "height": 30000}, ValueError, "width x height: expected at most 33554432 pixels; got 30000 x 30000"),
    ({"x_range": (5, 2)}, ValueError, r"x_range: expected low < high; got \(5.0, 2.0\)"),
    ({"y_range": (0, float("nan"))}, ValueError, r"y_range: expected finite bounds; got \(0.0, nan\)"),
    ({"x_range": (0, float("inf"))}, ValueError, "x_range: expected finite bounds"),
    ({"x_range": 5}, TypeError, r"x_range: expected a \(low, high\) pair of numbers; got 5"),
    ({"y_range": (1, 1)}, ValueError, r"y_range: expected low < high; got \(1.0, 1.0\)"),
    ({"backend": "gpu"}, ValueError, "backend: expected one of 'auto', 'cpu', 'cuda'; got 'gpu'"),
    ({"backend": 3}, ValueError, "backend: expected one of 'auto', 'cpu', 'cuda'; got 3"),
    ({"stats": ["mean", "median"]}, ValueError, "stats: expected names from count, .*; got 'median'"),
    ({"stats": []}, ValueError, "stats: expected names from .*; got nothing"),
    ({"layout": "grid"}, ValueError, "layout: expected one of 'auto', 'mosaic', 'flatten', 'stack'; got 'grid'"),
    ({"layout": "mosaic"}, ValueError, r"layout: 'mosaic' needs a 4-D \(out, in, kh, kw\) tensor; got shape \(4, 6\)"),
    ({"origin": (1.5, 0)}, TypeError, r"origin: expected a \(row, column\) pair of integers; got \(1.5, 0\)"),
], ids=lambda v: str(v) if not isinstance(v, dict) else ",".join(v))
def test_bad_arguments(kw, exc, match):
    args = {"width": 4, "height": 4, **kw}
    with pytest.raises(exc, match=match):
        dv.rasterize(A, **args)


@pytest.mark.skipif(cuda_status()[0], reason="a CUDA device (or the simulator) is usable here")
def test_explicit_cuda_without_a_gpu_says_why_and_how_to_fix():
    with pytest.raises(RuntimeError, match=r"backend='cuda' was requested but CUDA cannot be used here: .+To fix: install the CUDA extra"):
        dv.rasterize(A, 4, 4, backend="cuda")


def test_auto_never_fails_for_host_data():
    assert dv.rasterize(A, 3, 2, backend="auto").device == "cpu"


def test_unknown_stat_lookup():
    r = dv.rasterize(A, 3, 2)
    with pytest.raises(KeyError, match="stat: expected one of count"):
        r["median"]


# Windows whose width overflows float64 once hung (a loop from INT64_MIN); every
# verb refuses them, and windows whose (hi - lo) * pixels overflows, up front.
_WIDE = (r"expected a span a float64 can hold, a finite width hi - lo; got \(-1e\+308, 1e\+308\), "
         r"whose width overflows float64")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("call,match", [
    (lambda: dv.rasterize(A, 10, 10, x_range=(-1e308, 1e308)), "x_range: " + _WIDE),
    (lambda: dv.rasterize(A, 10, 10, y_range=(-1e308, 1e308)), "y_range: " + _WIDE),
    (lambda: dv.rasterize(A, 800, 10, x_range=(0, 1e306)),
     r"x_range: expected a span a float64 can hold at 800 pixels, a width "
     r"hi - lo at most 2.24712e\+305"),
    (lambda: dv.rasterize(A, 10, 10, x_range=(0, 10**400)),
     "x_range: expected finite bounds; got a number beyond the float64 range"),
    (lambda: dv.rasterize_points([1.0, 2.0], [1.0, 2.0], x_range=(-1e308, 1e308)),
     "x_range: " + _WIDE),
    (lambda: dv.rasterize_points([1.0, 2.0], [1.0, 2.0], height=600, y_range=(0, 1e306)),
     r"y_range: expected a span a float64 can hold at 600 pixels, a width "
     r"hi - lo at most 2.99616e\+305"),
    (lambda: dv.decimate(np.arange(10.0), x_range=(-1e308, 1e308)), "x_range: " + _WIDE),
    (lambda: dv.decimate(np.arange(10.0), width=1200, x_range=(0, 1e306)),
     r"x_range: expected a span a float64 can hold at 1200 pixels, a width "
     r"hi - lo at most 1.49808e\+305"),
    (lambda: dv.decimate(np.arange(3.0), x=[-1e308, 0.0, 1e308]),
     r"x: the positions span \(-1e\+308, 1e\+308\), wider than a float64 window of 1200 "
     r"columns can hold; pass x_range explicitly"),
    (lambda: Decimator(np.arange(10.0)).decimate(1200, x_range=(-1e308, 1e308)),
     "x_range: " + _WIDE),
    (lambda: dv.histogram(A, range=(-1e308, 1e308)), "range: " + _WIDE),
    (lambda: dv.histogram(A, range=(0, 10**400)),
     "range: expected finite bounds; got a number beyond the float64 range"),
], ids=["rasterize-x", "rasterize-y", "rasterize-pixels", "rasterize-bigint", "points-x",
        "points-pixels", "decimate-x", "decimate-pixels", "decimate-positions",
        "decimator-x", "histogram", "histogram-bigint"])
def test_windows_whose_width_overflows_are_refused(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.timeout(60)
def test_data_spanning_all_of_float64_still_draws():
    """Default windows from such data: the histogram cuts the range; the others say what to pass."""
    big = np.finfo(np.float64).max
    v = np.array([-big, -1.0, 0.0, 2.0, big])
    h = dv.histogram(v, bins=8)
    assert (h.edges[0], h.edges[-1]) == (-big, big) and np.isfinite(h.edges).all()
    assert h.counts.sum() == 5 and h.counts[0] == 1 and h.counts[-1] == 1
    r = dv.rasterize(v, 5, 1)          # index space: the values do not matter to the window
    assert r["min"].ravel().tolist() == v.tolist()
    with pytest.raises(ValueError, match=r"x_range: the finite x coordinates span"):
        dv.rasterize_points(v, np.zeros(5))
