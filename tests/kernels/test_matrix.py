"""matrix_stats_cpu against the float64 reference (docs/architecture.md, "Semantics").

Numba compiles one CPU kernel per (buffer dtype / decoding, unit-stride columns
or not, want_minmax, want_m2); each takes a few seconds, so the parametrisation
below picks, per dtype, layouts that all need the same compiled kernel, and
runs many shapes and windows through each.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dlviz_gpu.kernels import (DECODE_NATIVE, axis_from_dims, matrix_stats_cpu,
                               matrix_stats_cuda, reference)
from tests.cuda import cuda

CONTIG = ("C", "pad", "T", "negrow", "negcol", "Tneg")
STRIDED = ("slice", "negslice", "Tslice", "negslice_row")

# (value kind, layouts, fraction of NaN/inf). Each row needs one compiled kernel.
DTYPE_CASES = [
    ("f64", CONTIG, 0.05),
    ("f64", STRIDED, 0.05),
    ("f32", CONTIG, 0.05),
    ("f32", STRIDED, 0.05),
    ("bf16", CONTIG, 0.05),
    ("f16", STRIDED, 0.05),
    ("i8", CONTIG, 0.0),
    ("u8", STRIDED, 0.0),
    ("bool", STRIDED, 0.0),      # bool is read as its uint8 bytes
    ("i16", STRIDED, 0.0),
    ("i32", CONTIG, 0.0),
    ("i64", STRIDED, 0.0),
]


def run_cpu(kt, flat, offset, rows, cols, decode, truth, views, **flags):
    for xr, yr, w, h in views:
        got = matrix_stats_cpu(flat, offset, rows, cols, xr, yr, w, h, decode=decode, **flags)
        try:
            kt.check_planes(got, truth, xr, yr, w, h, **flags)
        except AssertionError as exc:
            raise AssertionError(f"window x={xr} y={yr} canvas {w}x{h}: {exc}") from exc


@pytest.mark.parametrize(
    "kind, layouts, specials",
    DTYPE_CASES,
    ids=[f"{k}-{'contig' if lay is CONTIG else 'strided'}" for k, lay, _ in DTYPE_CASES])
def test_random_dtypes_layouts_windows(kt, kind, layouts, specials):
    """Random shapes, every layout of the group, random windows and canvases."""
    rng = np.random.default_rng([ord(ch) for ch in kind + layouts[0]])
    for layout in layouts:
        for _ in range(2):
            r = int(rng.integers(2, 71))
            c = int(rng.integers(2, 91))
            flat, offset, rows, cols, decode, truth = kt.make_input(
                rng, kind, layout, r, c, specials)
            views = kt.random_views(rng, r, c, 6)
            try:
                run_cpu(kt, flat, offset, rows, cols, decode, truth, views)
            except AssertionError as exc:
                raise AssertionError(f"{kind} {layout} {r}x{c}: {exc}") from exc


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (9, 1), (3, 2)], ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("layout", ["C", "T", "slice"])
def test_tiny_shapes(kt, shape, layout):
    """1 x 1, single rows and columns (their size-1 axes have stride 0)."""
    rng = np.random.default_rng(list(shape) + [len(layout)])
    flat, offset, rows, cols, decode, truth = kt.make_input(rng, "f64", layout, *shape, 0.1)
    views = [((0, shape[1]), (0, shape[0]), 1, 1),
             ((0, shape[1]), (0, shape[0]), shape[1], shape[0]),
             ((-1.0, shape[1] + 2.0), (-0.5, shape[0] + 0.5), 5, 4)]
    run_cpu(kt, flat, offset, rows, cols, decode, truth, views)


@pytest.mark.parametrize("view", ["plain", "neg", "step"])
def test_one_dimensional_strip(kt, view):
    """A 1-D tensor is a 1 x N strip."""
    rng = np.random.default_rng(7)
    base = rng.normal(size=40)
    v = {"plain": base, "neg": base[::-1], "step": base[1::3]}[view]
    flat, offset, rows, cols = kt.strided_flat(v)
    truth = v[None, :].copy()
    n = v.size
    views = [((0, n), (0, 1), 5, 1), ((0, n), (0, 1), n, 1), ((2.5, 9.5), (-1, 2), 11, 3)]
    run_cpu(kt, flat, offset, rows, cols, DECODE_NATIVE, truth, views)


def test_empty_matrix_and_window_outside(kt):
    """Zero-size inputs and windows that miss the matrix give empty pixels."""
    for shape in [(0, 5), (4, 0)]:
        truth = np.zeros(shape)
        rows = axis_from_dims([shape[0]], [shape[1]])
        cols = axis_from_dims([shape[1]], [1])
        got = matrix_stats_cpu(np.zeros(1), 0, rows, cols, (0, 5), (0, 4), 3, 2)
        kt.check_planes(got, truth, (0, 5), (0, 4), 3, 2)
    rng = np.random.default_rng(3)
    flat, offset, rows, cols, decode, truth = kt.make_input(rng, "f64", "C", 6, 8)
    for xr, yr in [((-9.0, -1.0), (0, 6)), ((0, 8), (6.5, 10)), ((8.0, 9.0), (-3.0, -0.5))]:
        got = matrix_stats_cpu(flat, offset, rows, cols, xr, yr, 4, 3)
        kt.check_planes(got, truth, xr, yr, 4, 3)
        assert got["count"].sum() == 0 and got["nan_count"].sum() == 0
        assert np.isnan(got["min"]).all() and np.isnan(got["max"]).all()


def test_window_edge_on_cell_centre():
    """x1 exactly on a cell centre excludes that cell; x0 on a centre includes it."""
    v = np.arange(12.0).reshape(3, 4)
    flat = v.ravel()
    rows, cols = axis_from_dims([3], [4]), axis_from_dims([4], [1])
    # columns 1 and 2 have centres 1.5, 2.5: window [1.5, 2.5) on 1 pixel -> only column 1
    got = matrix_stats_cpu(flat, 0, rows, cols, (1.5, 2.5), (0, 3), 1, 1)
    assert got["count"].tolist() == [[3]]
    assert got["sum"].tolist() == [[1.0 + 5.0 + 9.0]]
    assert got["min"].tolist() == [[1.0]] and got["max"].tolist() == [[9.0]]
    ref = reference.matrix_stats(v, (1.5, 2.5), (0, 3), 1, 1)
    assert ref["count"].tolist() == [[3.0]]


def test_upsampling_one_element_per_pixel(kt):
    """A canvas larger than the window: each pixel holds at most one element."""
    rng = np.random.default_rng(11)
    flat, offset, rows, cols, decode, truth = kt.make_input(rng, "f32", "C", 5, 6)
    xr, yr, w, h = (0.75, 3.25), (1.0, 3.0), 23, 17
    got = matrix_stats_cpu(flat, offset, rows, cols, xr, yr, w, h)
    kt.check_planes(got, truth, xr, yr, w, h)
    assert got["count"].max() == 1
    assert (got["count"] == 0).sum() > w * h // 2
    one = got["count"] == 1
    np.testing.assert_array_equal(got["min"][one], got["sum"][one])
    np.testing.assert_array_equal(got["max"][one], got["sum"][one])
    assert np.all(got["m2"][one] == 0.0)
    assert np.isnan(got["min"][~one]).all()


def test_nan_inf_never_poison(kt):
    """NaN/+inf/-inf count in nan_count and never reach sum/min/max/m2."""
    rng = np.random.default_rng(5)
    for layout in ("C", "slice"):
        flat, offset, rows, cols, decode, truth = kt.make_input(rng, "f64", layout, 20, 24)
        # rewrite the logical values through the buffer: whole columns/rows of
        # specials, a lone +inf, -inf and NaN, and the first element of a column
        base_shape, view_fn = kt.LAYOUTS[layout]
        v = np.ascontiguousarray(truth)
        v[:, 3] = np.nan
        v[5, :] = np.inf
        v[0, 7] = -np.inf
        v[1, 9] = np.nan
        v[11, 0] = np.inf
        v[12:20, 20:24] = np.nan          # an all-special pixel block
        base = np.full(base_shape(20, 24), 12345.0)
        view_fn(base, 20, 24)[...] = v
        flat, offset, rows, cols = kt.strided_flat(view_fn(base, 20, 24))
        for xr, yr, w, h in [((0, 24), (0, 20), 6, 5), ((0, 24), (0, 20), 1, 1),
                             ((0, 24), (0, 20), 24, 20), ((2.2, 23.9), (0.3, 19.1), 4, 7)]:
            got = matrix_stats_cpu(flat, offset, rows, cols, xr, yr, w, h)
            kt.check_planes(got, v, xr, yr, w, h)
        got = matrix_stats_cpu(flat, offset, rows, cols, (0, 24), (0, 20), 1, 1)
        assert got["nan_count"][0, 0] == int((~np.isfinite(v)).sum())


@pytest.mark.parametrize("want_minmax, want_m2", [(False, False), (True, False), (False, True)],
                         ids=["sum-only", "minmax", "m2"])
def test_stat_flags(kt, want_minmax, want_m2):
    """Absent planes are absent; present ones still match (float32, NaN included)."""
    rng = np.random.default_rng([int(want_minmax), int(want_m2)])
    for layout in ("C", "negcol", "T"):
        r, c = int(rng.integers(3, 40)), int(rng.integers(3, 50))
        flat, offset, rows, cols, decode, truth = kt.make_input(rng, "f32", layout, r, c, 0.05)
        views = kt.random_views(rng, r, c, 5)
        run_cpu(kt, flat, offset, rows, cols, decode, truth, views,
                want_minmax=want_minmax, want_m2=want_m2)
        got = matrix_stats_cpu(flat, offset, rows, cols, (0, c), (0, r), 3, 2,
                               want_minmax=want_minmax, want_m2=want_m2)
        assert ("min" in got) == want_minmax and ("max" in got) == want_minmax
        assert ("m2" in got) == want_m2


@pytest.mark.parametrize("order", ["C", "slice"])
def test_mosaic_conv_weight(kt, order):
    """(O, I, kh, kw) as an (O*kh) x (I*kw) mosaic, in place."""
    rng = np.random.default_rng(21)
    cases = []
    o, i, kh, kw = 5, 4, 3, 3
    w = rng.normal(size=(o, i, kh, kw)).astype(np.float32)
    w[0, 1, 2, 0] = np.nan
    if order == "C":
        cases.append(w)                                    # contiguous OIHW
        cl = np.ascontiguousarray(w.transpose(0, 2, 3, 1))  # channels-last (O, kh, kw, I)
        cases.append(cl.transpose(0, 3, 1, 2))
    else:
        big = rng.normal(size=(o, 2 * i, kh, kw)).astype(np.float32)
        cases.append(big[:, ::2])                          # every other input channel
        cases.append(big[:, ::2, ::-1, :])                 # flipped kernel rows
        cases.append(rng.normal(size=(7, 6, 1, 1)).astype(np.float32))  # 1x1 convs
    for wv in cases:
        flat, offset, rows, cols = kt.mosaic_flat(wv)
        oo, ii, hh, ww = wv.shape
        truth = np.asarray(wv, np.float64).transpose(0, 2, 1, 3).reshape(oo * hh, ii * ww)
        views = [((0, ii * ww), (0, oo * hh), ii * ww, oo * hh),
                 ((0, ii * ww), (0, oo * hh), ii, oo),
                 ((0, ii * ww), (0, oo * hh), 5, 4),
                 ((1.3, 10.5), (-2.0, 12.75), 7, 9)] + kt.random_views(rng, oo * hh, ii * ww, 3)
        run_cpu(kt, flat, offset, rows, cols, DECODE_NATIVE, truth, views)


@pytest.mark.parametrize("side", ["rows", "cols"])
def test_three_run_axis(kt, side):
    """A 4-D view whose three leading dims cannot merge, shown as stacked rows (or columns)."""
    rng = np.random.default_rng(41)
    base = rng.normal(size=(6, 8, 10, 7))
    base[1, 2, 3, 4] = np.nan
    t = base[::2, ::2, ::2, :]                 # (3, 4, 5, 7): strides never merge
    flat, offset, st4 = kt.flat_of(t)
    stacked = axis_from_dims(t.shape[:3], st4[:3])
    assert stacked.k2 > 1 and stacked.k3 > 1  # really a three-run axis
    other = axis_from_dims([7], [st4[3]])
    truth = t.reshape(60, 7)
    if side == "rows":
        rows, cols = stacked, other
    else:
        rows, cols, truth = other, stacked, truth.T
    r, c = truth.shape
    views = [((0, c), (0, r), c, r), ((0, c), (0, r), 3, 4), ((0, c), (0, r), 1, 1),
             ((0.5, c - 0.5), (-2.0, r + 1.0), 5, 6)] + kt.random_views(rng, r, c, 3)
    run_cpu(kt, flat, offset, rows, cols, DECODE_NATIVE, truth, views)


@pytest.mark.parametrize("layout", ["C", "slice"])
@pytest.mark.parametrize("kind", ["f64", "f32"])
def test_std_stable_with_large_offset(kt, layout, kind):
    """1e4 + small noise: std still matches the reference (no E[x^2] - E[x]^2)."""
    rng = np.random.default_rng(99)
    base_shape, view_fn = kt.LAYOUTS[layout]
    noise = 1e-3 if kind == "f64" else 0.25
    base = 1e4 + noise * rng.normal(size=base_shape(40, 60))
    if kind == "f32":
        base = base.astype(np.float32)
    v = view_fn(base, 40, 60)
    flat, offset, rows, cols = kt.strided_flat(v)
    truth = v.astype(np.float64)
    for xr, yr, w, h in [((0, 60), (0, 40), 3, 2), ((0, 60), (0, 40), 1, 1),
                         ((0, 60), (0, 40), 20, 40), ((5.5, 50.5), (3.3, 37.7), 4, 3)]:
        got = matrix_stats_cpu(flat, offset, rows, cols, xr, yr, w, h)
        kt.check_planes(got, truth, xr, yr, w, h, std_rtol=1e-6, std_atol_rel=0.0)


def test_std_precision_float64(kt):
    """std within 1e-9 relative for ordinary float64 data, many elements per pixel."""
    rng = np.random.default_rng(2024)
    v = rng.normal(size=(64, 80)) * 3.0 + 1.0
    flat, offset, rows, cols = kt.strided_flat(v)
    for w, h in [(1, 1), (3, 5), (80, 1), (1, 64)]:
        got = matrix_stats_cpu(flat, offset, rows, cols, (0, 80), (0, 64), w, h)
        kt.check_planes(got, v, (0, 80), (0, 64), w, h, std_rtol=1e-9, std_atol_rel=0.0)


@pytest.mark.parametrize("layout", ["C", "slice"])
def test_wide_rows_cross_column_chunks(kt, layout):
    """Rows longer than the CPU column chunk: pixels straddle chunk boundaries."""
    from dlviz_gpu.kernels.matrix import CPU_CHUNK

    rng = np.random.default_rng(17)
    c = 2 * CPU_CHUNK + 809
    flat, offset, rows, cols, decode, truth = kt.make_input(rng, "f64", layout, 3, c, 0.01)
    views = [((0, c), (0, 3), 1, 1), ((0, c), (0, 3), 7, 3), ((0, c), (0, 3), 2, 1),
             ((100.5, c - 0.5), (-1, 4), 13, 2), ((0, c), (0, 3), 3001, 1)]
    run_cpu(kt, flat, offset, rows, cols, decode, truth, views)


# --------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------

PROP_LAYOUTS = ("C", "negrow", "T", "slice", "negslice")


@st.composite
def matrices(draw):
    r = draw(st.integers(1, 16))
    c = draw(st.integers(1, 16))
    layout = draw(st.sampled_from(PROP_LAYOUTS))
    elems = st.one_of(st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
                      st.sampled_from([np.nan, np.inf, -np.inf, 0.0, 1.0]))
    values = draw(st.lists(elems, min_size=r * c, max_size=r * c))
    return r, c, layout, np.array(values, np.float64).reshape(r, c)


def _place(kt, layout, values):
    r, c = values.shape
    base_shape, view_fn = kt.LAYOUTS[layout]
    base = np.full(base_shape(r, c), -7.0)
    view_fn(base, r, c)[...] = values
    return kt.strided_flat(view_fn(base, r, c))


@settings(max_examples=60, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(m=matrices(),
       x0=st.floats(-5, 10), xw=st.floats(0.25, 25),
       y0=st.integers(-4, 8), step=st.sampled_from([0.25, 0.5, 1.0, 1.5, 2.0, 3.0]),
       width=st.integers(1, 20), height=st.sampled_from([2, 4, 8]),
       split=st.integers(1, 7))
def test_property_conservation_and_row_split(kt, m, x0, xw, y0, step, width, height, split):
    """Counts are conserved, and two row windows split at a pixel-row edge add up to the whole."""
    r, c, layout, values = m
    flat, offset, rows, cols = _place(kt, layout, values)
    xr = (x0, x0 + xw)
    # dyadic ranges: the split point y0 + k*step is exact, so each element
    # lands in the same pixel row either way
    yr = (float(y0), y0 + height * step)
    whole = matrix_stats_cpu(flat, offset, rows, cols, xr, yr, width, height)
    ref = kt.check_planes(whole, values, xr, yr, width, height)
    inside = kt.cells_in_window(r, *yr, height) * kt.cells_in_window(c, *xr, width)
    assert whole["count"].sum() + whole["nan_count"].sum() == inside
    assert whole["count"].sum() == ref["count"].sum()

    k = min(split, height - 1)
    ym = y0 + k * step
    top = matrix_stats_cpu(flat, offset, rows, cols, xr, (float(y0), ym), width, k)
    bottom = matrix_stats_cpu(flat, offset, rows, cols, xr, (ym, yr[1]), width, height - k)
    for name in ("count", "nan_count"):
        np.testing.assert_array_equal(np.vstack([top[name], bottom[name]]), whole[name])
    np.testing.assert_allclose(np.vstack([top["sum"], bottom["sum"]]), whole["sum"],
                               rtol=1e-12, atol=0)
    for name in ("min", "max"):
        np.testing.assert_array_equal(np.vstack([top[name], bottom[name]]), whole[name])


# --------------------------------------------------------------------------
# The CUDA kernels (marked cuda: a GPU, or NUMBA_ENABLE_CUDASIM=1; skipped elsewhere)
# --------------------------------------------------------------------------

# matrix_stats_cuda against the float64 reference.
#
# Runs on a real GPU, or under Numba's simulator when ``NUMBA_ENABLE_CUDASIM=1``
# is set before Python starts.  The simulator runs every thread in Python (256
# per block), so inputs stay tiny: at most about 12 x 15, canvases at most 6 x 5
# (one wide strip excepted).

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


@pytest.mark.cuda
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


@pytest.mark.cuda
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


@pytest.mark.cuda
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


@pytest.mark.cuda
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


@pytest.mark.cuda
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


@pytest.mark.cuda
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


@pytest.mark.cuda
@pytest.mark.parametrize("want_minmax, want_m2", [(False, False), (True, False), (False, True)],
                         ids=["sum-only", "minmax", "m2"])
def test_stat_flags_on_cuda(kt, want_minmax, want_m2):
    """Absent planes are absent from the result; present ones match."""
    rng = np.random.default_rng([int(want_minmax), int(want_m2), 5])
    flat, offset, rows, cols, decode, truth = kt.make_input(rng, "f32", "T", 9, 11, 0.05)
    run_cuda(kt, flat, offset, rows, cols, decode, truth,
             [((0, 11), (0, 9), 4, 3), ((2.5, 9.5), (1.0, 8.0), 5, 2)],
             want_minmax=want_minmax, want_m2=want_m2)


@pytest.mark.cuda
def test_std_stable_with_large_offset_on_cuda(kt):
    """1e4 + small noise in float64: std still within 1e-6 of the reference."""
    rng = np.random.default_rng(99)
    v = 1e4 + 1e-3 * rng.normal(size=(10, 12))
    flat, offset, rows, cols = kt.strided_flat(v)
    for xr, yr, w, h in [((0, 12), (0, 10), 3, 2), ((0, 12), (0, 10), 1, 1)]:
        got = host(matrix_stats_cuda(flat, offset, rows, cols, xr, yr, w, h))
        kt.check_planes(got, v, xr, yr, w, h, std_rtol=1e-6, std_atol_rel=0.0)


@pytest.mark.cuda
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
