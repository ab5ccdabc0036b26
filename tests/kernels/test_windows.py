"""Windows at the edge of float64: exact pixel ranges, bounded loops, clean refusals.

``axis_ranges`` once started a loop at INT64_MIN for a window whose width
overflows (``hi - lo = inf``); the helpers now finish in O(pixels x log cells)
steps for any input, and the kernels refuse windows whose pixel arithmetic
``(x - lo) * pixels`` could overflow, with the message the public verbs give.
"""

from __future__ import annotations

import numpy as np
import pytest

from dlviz_gpu.kernels import _layout, axis_from_dims, matrix_stats_cpu
from dlviz_gpu.kernels import points as kp
from dlviz_gpu.kernels import series as ks
from dlviz_gpu.kernels._common import _pixel_of, axis_ranges, window_problem

BIG = np.finfo(np.float64).max
WIDE_X = "x_range: expected a span a float64 can hold, a finite width"
PIXELS_Y = "y_range: expected a span a float64 can hold at 800 pixels"


def brute_ranges(n, lo, hi, npix, origin=0):
    """start/end by evaluating every cell's pixel (the contract, in float64)."""
    i = np.arange(n, dtype=np.int64) + origin
    with np.errstate(over="ignore", invalid="ignore"):
        q = ((i + 0.5 - lo) * npix) / (hi - lo)
    p = np.where(q >= npix, npix, np.where(q >= -1.0, np.floor(np.nan_to_num(q, nan=-1.0)), -1))
    start = np.searchsorted(p, np.arange(npix), side="left")
    end = np.searchsorted(p, np.arange(npix), side="right")
    return start, end


@pytest.mark.parametrize("lo,hi,npix,n,origin", [
    (0.0, 10.0, 7, 10, 0),
    (-3.25, 12.5, 32, 9, 0),
    (1e15, 1e15 + 1000.0, 300, 2000, 10**15 - 100),   # lo far beyond 2**53 / 4
    (2.0**60, 2.0**60 + 2.0**20, 16, 1 << 21, 2**60 - 7),
    (-1e300, 1e300, 9, 40, 0),                         # every cell in the middle pixel
    (-5e303, 5e303, 32768, 100, 0),
    (1e-300, 2e-300, 5, 3, 0),                         # a tiny window between cells
    (0.5, 0.5 + 2.0**-40, 4, 3, 0),
    (1e300, 1.0000001e300, 6, 50, 0),                  # the axis far before the window
    (-1.0000001e300, -1e300, 6, 50, 0),                # far after it
], ids=lambda v: f"{v:g}" if isinstance(v, float) else str(v))
def test_axis_ranges_match_every_cells_pixel(lo, hi, npix, n, origin):
    start, end = axis_ranges(n, lo, hi, npix, origin)
    bs, be = brute_ranges(n, lo, hi, npix, origin)
    np.testing.assert_array_equal(start, bs)
    np.testing.assert_array_equal(end, be)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("lo,hi", [(-1e308, 1e308), (-BIG, BIG), (0.0, np.inf), (-np.inf, 0.0),
                                   (np.nan, 1.0), (-1e308, 1e308 * 0.5), (0.0, 1e-320)])
def test_axis_ranges_finish_for_any_window(lo, hi):
    """Even windows the callers refuse: bounded work, edges ascending within [0, n]."""
    for n in (0, 1, 10**6, 2**62):
        start, end = axis_ranges(n, lo, hi, 4096, 0)
        assert start.size == end.size == 4096
        assert (start <= end).all() and (np.diff(start) >= 0).all()
        assert start.min() >= 0 and end.max() <= n


def test_pixel_of_never_wraps_to_int64_min():
    for q_args in [(0, -BIG, BIG, 10), (10**18, 0.0, 1e-300, 8), (0, 1e-300, 2e-300, 8)]:
        assert -1 <= _pixel_of(*q_args) <= q_args[3]


@pytest.mark.parametrize("lo,hi,npix,match", [
    (-1e308, 1e308, 10, r"expected a span a float64 can hold, a finite width hi - lo; got "
                        r"\(-1e\+308, 1e\+308\), whose width overflows float64"),
    (0.0, 1e306, 800, r"expected a span a float64 can hold at 800 pixels, a width hi - lo at "
                      r"most 2.24712e\+305 \(so that \(x - lo\) \* pixels stays finite\); got "
                      r"\(0.0, 1e\+306\)"),
    (0.0, float("inf"), 10, r"expected finite bounds; got \(0.0, inf\)"),
    (3.0, 3.0, 10, r"expected low < high; got \(3.0, 3.0\)"),
])
def test_window_problem_says_what_is_wrong(lo, hi, npix, match):
    assert window_problem(0.0, 1.0, 10) is None
    problem = window_problem(lo, hi, npix)
    assert problem is not None
    with pytest.raises(ValueError, match=match):
        raise ValueError(problem)


@pytest.mark.timeout(120)
def test_kernels_refuse_windows_whose_arithmetic_overflows():
    flat = np.arange(12.0)
    rows, cols = axis_from_dims([3], [4]), axis_from_dims([4], [1])
    with pytest.raises(ValueError, match=WIDE_X):
        matrix_stats_cpu(flat, 0, rows, cols, (-1e308, 1e308), (0, 3), 10, 10)
    with pytest.raises(ValueError, match=PIXELS_Y):
        _layout.plan(0, rows, cols, (0, 4), (0, 1e306), 10, 800)
    col = kp.column(flat)
    with pytest.raises(ValueError, match=WIDE_X):
        kp.points_stats_cpu(col, col, None, None, 12, (-1e308, 1e308), (0, 1), 4, 4)
    with pytest.raises(ValueError, match=PIXELS_Y):
        kp.points_stats_cpu(col, col, col, None, 12, (0, 1), (0, 1e306), 4, 800)
    with pytest.raises(ValueError, match=WIDE_X):
        ks.column_runs(12, (-1e308, 1e308), 100)
    # a window just inside the limit is drawn, exactly
    ok = matrix_stats_cpu(flat, 0, rows, cols, (-1e305, 1e305), (0, 3), 800, 1)
    assert ok["count"].sum() == 12 and ok["count"][0, 400] == 12


def test_point_and_column_formulas_stay_inside_the_canvas():
    """The per-point helpers clamp a quotient that overflows instead of wrapping to INT64_MIN."""
    w, h = 800, 600
    # (x - x0) * w overflows to inf inside this (refused at the boundary) window
    idx = kp._pixel_index(1e308, 0.5, 0.0, 1.5e308, 0.0, 1.0, w, h)
    assert 0 <= idx < w * h and idx % w == w - 1
    assert ks._pixel_key(1e308, 0.0, 1.5e308, 1200) == 1199
    assert ks._pixel_key(0.75e308, 0.0, 1.5e308, 1200) == 1199   # inf quotient: last column
