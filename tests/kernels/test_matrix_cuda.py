"""matrix_stats_cuda against the float64 reference.

Runs on a real GPU, or under Numba's simulator when ``NUMBA_ENABLE_CUDASIM=1``
is set before Python starts.  The simulator runs every thread in Python (256
per block), so inputs stay tiny: at most about 12 x 15, canvases at most 6 x 5
(one wide strip excepted).
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.cuda import cuda_or_skip

cuda = cuda_or_skip()

from dlviz_gpu.kernels import DECODE_NATIVE, axis_from_dims, matrix_stats_cuda  # noqa: E402

pytestmark = [pytest.mark.cuda]


def host(planes):
    return {name: arr.copy_to_host() for name, arr in planes.items()}


def run_cuda(kt, flat, offset, rows, cols, decode, truth, views, device_buffer=False, **flags):
    buf = cuda.to_device(np.ascontiguousarray(flat)) if device_buffer else flat
    for xr, yr, w, h in views:
        got = host(matrix_stats_cuda(buf, offset, rows, cols, xr, yr, w, h,
                                     decode=decode, **flags))
        try:
            kt.check_planes(got, truth, xr, yr, w, h, **flags)
        except AssertionError as exc:
            raise AssertionError(f"window x={xr} y={yr} canvas {w}x{h}: {exc}") from exc


CASES = [
    ("f32", "C", (12, 15)),
    ("f32", "T", (9, 13)),
    ("f32", "Tneg", (7, 11)),
    ("f32", "negslice", (10, 8)),
    ("f64", "C", (11, 14)),
    ("f64", "negrow", (6, 9)),
    ("f64", "slice", (8, 12)),
    ("bf16", "C", (12, 15)),
    ("bf16", "negcol", (5, 10)),
    ("f16", "pad", (9, 12)),
    ("f16", "Tslice", (6, 7)),
    ("i8", "C", (10, 13)),
    ("i8", "negslice_row", (7, 9)),
]


@pytest.mark.parametrize("kind, layout, shape", CASES,
                         ids=[f"{k}-{lay}-{s[0]}x{s[1]}" for k, lay, s in CASES])
def test_random_cases(kt, kind, layout, shape):
    """Random values (NaN/inf in the float kinds), the whole matrix and a random window."""
    rng = np.random.default_rng([ord(ch) for ch in kind + layout])
    specials = 0.08 if kind in ("f32", "f64", "bf16", "f16") else 0.0
    flat, offset, rows, cols, decode, truth = kt.make_input(rng, kind, layout, *shape, specials)
    views = [((0, shape[1]), (0, shape[0]), int(rng.integers(1, 7)), int(rng.integers(1, 4)))]
    views += kt.random_views(rng, *shape, 2, max_w=6, max_h=3)[1:]
    run_cuda(kt, flat, offset, rows, cols, decode, truth, views)


def test_nan_inf_block(kt):
    """Specials count in nan_count and never reach the other planes."""
    v = np.arange(12 * 10, dtype=np.float32).reshape(12, 10) * 0.5 - 20
    v[:, 3] = np.nan
    v[4, :] = np.inf
    v[0, 0] = -np.inf          # first element of the first pixel
    v[8:12, 6:10] = np.nan     # an all-NaN pixel
    flat, offset, rows, cols = kt.strided_flat(v)
    run_cuda(kt, flat, offset, rows, cols, DECODE_NATIVE, v,
             [((0, 10), (0, 12), 5, 3), ((0, 10), (0, 12), 1, 1)])


def test_device_buffer_and_window_edges(kt):
    """A device-resident buffer; windows partly/entirely outside; x1 on a cell centre."""
    rng = np.random.default_rng(4)
    flat, offset, rows, cols, decode, truth = kt.make_input(rng, "f32", "C", 8, 10, 0.05)
    views = [((1.5, 7.5), (-2.0, 9.5), 4, 3),    # x0, x1 on cell centres
             ((-3.0, 14.0), (2.25, 5.75), 6, 2),
             ((11.0, 13.0), (0, 8), 2, 2),        # entirely right of the matrix
             ((0, 10), (8.5, 12.0), 3, 2)]        # entirely below
    run_cuda(kt, flat, offset, rows, cols, decode, truth, views, device_buffer=True)
    run_cuda(kt, flat, offset, rows, cols, decode, truth, views[2:])


def test_upsampling_and_tiny(kt):
    """Canvas larger than the window (at most one element a pixel); 1 x 1 matrix."""
    rng = np.random.default_rng(8)
    flat, offset, rows, cols, decode, truth = kt.make_input(rng, "f64", "C", 3, 4, 0.0)
    xr, yr, w, h = (0.5, 2.5), (0.0, 2.0), 6, 5
    got = host(matrix_stats_cuda(flat, offset, rows, cols, xr, yr, w, h))
    kt.check_planes(got, truth, xr, yr, w, h)
    assert got["count"].max() == 1 and (got["count"] == 0).sum() > w * h // 2
    one = np.array([[3.25]])
    flat, offset, rows, cols = kt.strided_flat(one)
    run_cuda(kt, flat, offset, rows, cols, DECODE_NATIVE, one,
             [((0, 1), (0, 1), 1, 1), ((-1, 2), (-1, 2), 3, 3)])


def test_mosaic(kt):
    """Conv weight (O, I, kh, kw) as an (O*kh) x (I*kw) mosaic, contiguous and channels-last."""
    rng = np.random.default_rng(12)
    w = rng.normal(size=(4, 5, 3, 3)).astype(np.float32)
    w[1, 2, 0, 1] = np.nan
    cl = np.ascontiguousarray(w.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    for wv in (w, cl, w[:, :, ::-1, :]):
        flat, offset, rows, cols = kt.mosaic_flat(wv)
        truth = np.asarray(wv, np.float64).transpose(0, 2, 1, 3).reshape(12, 15)
        run_cuda(kt, flat, offset, rows, cols, DECODE_NATIVE, truth,
                 [((0, 15), (0, 12), 5, 4), ((1.2, 13.5), (-0.5, 10.5), 6, 2)])


def test_three_run_rows(kt):
    """Rows from three dims that cannot merge (a 4-D view shown as stacked rows)."""
    rng = np.random.default_rng(13)
    t = rng.normal(size=(4, 4, 4, 5))[::2, ::2, ::2, :]   # (2, 2, 2, 5)
    flat, offset, st4 = kt.flat_of(t)
    rows = axis_from_dims(t.shape[:3], st4[:3])
    assert rows.k2 > 1 and rows.k3 > 1
    cols = axis_from_dims([5], [st4[3]])
    truth = t.reshape(8, 5)
    run_cuda(kt, flat, offset, rows, cols, DECODE_NATIVE, truth,
             [((0, 5), (0, 8), 5, 3), ((0, 5), (0, 8), 2, 1)])
    run_cuda(kt, flat, offset, cols, rows, DECODE_NATIVE, truth.T, [((0, 8), (0, 5), 3, 2)])


@pytest.mark.parametrize("want_minmax, want_m2", [(False, False), (True, False), (False, True)],
                         ids=["sum-only", "minmax", "m2"])
def test_stat_flags(kt, want_minmax, want_m2):
    """Absent planes are absent from the result; present ones match."""
    rng = np.random.default_rng([int(want_minmax), int(want_m2), 5])
    flat, offset, rows, cols, decode, truth = kt.make_input(rng, "f32", "T", 9, 11, 0.05)
    run_cuda(kt, flat, offset, rows, cols, decode, truth,
             [((0, 11), (0, 9), 4, 3), ((2.5, 9.5), (1.0, 8.0), 5, 2)],
             want_minmax=want_minmax, want_m2=want_m2)


def test_std_stable_with_large_offset(kt):
    """1e4 + small noise in float64: std still within 1e-6 of the reference."""
    rng = np.random.default_rng(99)
    v = 1e4 + 1e-3 * rng.normal(size=(10, 12))
    flat, offset, rows, cols = kt.strided_flat(v)
    for xr, yr, w, h in [((0, 12), (0, 10), 3, 2), ((0, 12), (0, 10), 1, 1)]:
        got = host(matrix_stats_cuda(flat, offset, rows, cols, xr, yr, w, h))
        kt.check_planes(got, v, xr, yr, w, h, std_rtol=1e-6, std_atol_rel=0.0)


def test_wide_strip_many_bands(kt):
    """More pixel columns than threads a block (several bands), and pixels wider than a block."""
    rng = np.random.default_rng(31)
    v = rng.normal(size=(2, 600))
    v[1, 300] = np.nan
    flat, offset, rows, cols = kt.strided_flat(v)
    run_cuda(kt, flat, offset, rows, cols, DECODE_NATIVE, v,
             [((0, 600), (0, 2), 300, 1), ((0, 600), (0, 2), 2, 1),
              # 100 cells on 300 pixels: bands fill up by pixel count, not cells
              ((0, 100), (0, 2), 300, 1)])
