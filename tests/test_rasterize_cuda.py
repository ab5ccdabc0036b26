"""dv.rasterize on the CUDA backend: a real GPU, or Numba's simulator in CI.

Run under the simulator with ``NUMBA_ENABLE_CUDASIM=1`` set before Python
starts; inputs stay tiny because the simulator runs every thread in Python.
"""

import numpy as np
import pytest

import dlviz_gpu as dv
from dlviz_gpu.kernels import reference

from .conftest import cuda_usable

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not cuda_usable(), reason="needs a GPU or NUMBA_ENABLE_CUDASIM=1")]


def _check(r, values, w, h, x_range=None, y_range=None, device="cuda"):
    rows, cols = values.shape
    ref = reference.matrix_stats(values, x_range or (0, cols), y_range or (0, rows), w, h)
    assert r.device == device
    for stat in r.stats:
        np.testing.assert_allclose(r[stat], ref[stat], rtol=1e-9, atol=1e-12, equal_nan=True,
                                   err_msg=stat)


def test_host_data_streamed_to_the_device(rng):
    a = rng.standard_normal((9, 13)).astype(np.float32)
    a[2, 3] = np.nan
    a[4, 4] = -np.inf
    _check(dv.rasterize(a, 5, 4, backend="cuda"), a, 5, 4)


def test_strided_views_on_the_device(rng):
    a = rng.standard_normal((10, 12))
    for view in (a.T, a[::-1, ::2]):
        _check(dv.rasterize(view, 4, 3, backend="cuda"), view, 4, 3)


def test_window_and_stats_subset(rng):
    a = rng.standard_normal((8, 11))
    r = dv.rasterize(a, 4, 3, x_range=(1.5, 9.25), y_range=(-1, 6), backend="cuda",
                     stats=["max", "extremum"])
    assert "m2" not in r.planes
    _check(r, a, 4, 3, (1.5, 9.25), (-1, 6))


def test_bf16_and_fp16_on_the_device(rng):
    torch = pytest.importorskip("torch")
    a = rng.standard_normal((7, 9)).astype(np.float32)
    for t in (torch.from_numpy(a).to(torch.bfloat16), torch.from_numpy(a).to(torch.float16)):
        _check(dv.rasterize(t, 3, 3, backend="cuda"), t.to(torch.float64).numpy(), 3, 3)


def test_environment_variable_selects_cuda(monkeypatch, rng):
    monkeypatch.setenv("DLVIZ_BACKEND", "cuda")
    a = rng.standard_normal((4, 5))
    _check(dv.rasterize(a, 2, 2), a, 2, 2)


def test_device_planes_stay_on_device_until_asked_and_merge_exactly(rng):
    a = rng.standard_normal((8, 6)) * 4 + 2
    kw = dict(x_range=(0, 6), y_range=(0, 8), backend="cuda")
    top = dv.rasterize(a[:3], 3, 2, **kw)
    assert all(not isinstance(p, np.ndarray) for p in top.planes.values())
    merged = top.merge(dv.rasterize(a[3:], 3, 2, origin=(3, 0), **kw))
    # merging reads both rasters' planes; the merged planes live on the host
    _check(merged, a, 3, 2, device="cpu")


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
        _check(r, view, 3, 5, x_range, y_range)
    assert len(slabs) > 2
