"""Shared helpers for the kernel tests.

The helpers are plain functions exposed as session-scoped fixtures (so the test
modules need no package import of this file, and hypothesis tests may use them).
They deliberately re-implement, independently of ``dlviz_gpu.tensors``, how a
NumPy view becomes the (flat buffer, offset, row axis, column axis) that the
kernels take.
"""

from __future__ import annotations

import numpy as np
import pytest

from dlviz_gpu.kernels import axis_from_dims

try:  # torch gives an independent bfloat16 rounding; fall back to bit twiddling
    import torch
except Exception:  # pragma: no cover - torch is optional
    torch = None


def flat_of(view):
    """Flat buffer, offset of logical element 0 and element strides of any view.

    The buffer starts at the lowest-addressed element of ``view`` and spans to
    the highest; no byte is copied.
    """
    view = np.asarray(view)
    itemsize = view.itemsize
    st = [s // itemsize for s in view.strides]
    lo_idx = [n - 1 if s < 0 else 0 for n, s in zip(view.shape, st)]
    start = view[tuple(slice(i, i + 1) for i in lo_idx)]
    span = sum((n - 1) * abs(s) for n, s in zip(view.shape, st)) + 1
    flat = np.lib.stride_tricks.as_strided(start, shape=(span,), strides=(itemsize,))
    offset = sum((n - 1) * abs(s) for n, s in zip(view.shape, st) if s < 0)
    return flat, int(offset), st


def strided_flat(view):
    """``(flat, offset, rows, cols)`` for a 1-D (a 1 x N strip) or 2-D view."""
    view = np.asarray(view)
    flat, offset, st = flat_of(view)
    if view.ndim == 1:
        rows = axis_from_dims([1], [0])
        cols = axis_from_dims([view.shape[0]], [st[0]])
    elif view.ndim == 2:
        rows = axis_from_dims([view.shape[0]], [st[0]])
        cols = axis_from_dims([view.shape[1]], [st[1]])
    else:
        raise ValueError("strided_flat takes 1-D or 2-D views")
    return flat, offset, rows, cols


def mosaic_flat(w):
    """``(flat, offset, rows, cols)`` showing a conv weight (O, I, kh, kw) as (O*kh) x (I*kw)."""
    w = np.asarray(w)
    flat, offset, (s_o, s_i, s_y, s_x) = flat_of(w)
    o, i, kh, kw = w.shape
    rows = axis_from_dims([o, kh], [s_o, s_y])
    cols = axis_from_dims([i, kw], [s_i, s_x])
    return flat, offset, rows, cols


def _bf16_numpy(x):
    # Round-to-nearest-even of float32 to bfloat16, NaN kept quiet.
    bits = np.ascontiguousarray(x, np.float32).view(np.uint32)
    rounded = ((bits + (np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1))))
               >> np.uint32(16)).astype(np.uint16)
    nan = np.isnan(x)
    rounded[nan] = ((bits[nan] >> np.uint32(16)) | np.uint32(0x40)).astype(np.uint16)
    return rounded


def half_bits(x, kind):
    """Round float values to ``kind`` ("bf16" or "f16").

    Returns
    -------
    bits : uint16 ndarray, same shape as ``x`` (C-contiguous)
    truth : float64 ndarray, the exact decoded values
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    if kind == "f16":
        h = x.astype(np.float16)
        return h.view(np.uint16).copy(), h.astype(np.float64)
    if kind != "bf16":
        raise ValueError(kind)
    if torch is not None:
        t = torch.from_numpy(x).to(torch.bfloat16)
        bits = t.view(torch.int16).numpy().view(np.uint16).copy()
        truth = t.to(torch.float64).numpy().copy()
        return bits, truth
    bits = _bf16_numpy(x)
    truth = (bits.astype(np.uint32) << np.uint32(16)).view(np.float32).astype(np.float64)
    return bits, truth


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
def where(request):
    """The backend a kernel test body runs on: every family's ``cpu`` member, then
    its ``cuda`` member (marked ``cuda``; it runs on a GPU or under the simulator,
    and skips elsewhere)."""
    if request.param == "cuda":
        from tests.cuda import cuda_or_skip

        cuda_or_skip()
    return request.param


@pytest.fixture(scope="session", name="strided_flat")
def strided_flat_fixture():
    return strided_flat


@pytest.fixture(scope="session", name="mosaic_flat")
def mosaic_flat_fixture():
    return mosaic_flat


@pytest.fixture(scope="session", name="half_bits")
def half_bits_fixture():
    return half_bits


# --------------------------------------------------------------------------
# Building test inputs
# --------------------------------------------------------------------------

# name -> (base shape from the logical (R, C), view of the base with shape (R, C)).
# "Contiguous" layouts (the kernel's unit-stride column path, possibly after
# transposing / flipping) and the others (column offsets looked up per column)
# are listed apart so a test can choose which compiled kernel it needs.
LAYOUTS_CONTIGUOUS = {
    "C": (lambda r, c: (r, c), lambda b, r, c: b),
    "pad": (lambda r, c: (r + 3, c + 5), lambda b, r, c: b[2:2 + r, 1:1 + c]),
    "T": (lambda r, c: (c, r), lambda b, r, c: b.T),
    "negrow": (lambda r, c: (r, c), lambda b, r, c: b[::-1]),
    "negcol": (lambda r, c: (r, c), lambda b, r, c: b[:, ::-1]),
    "Tneg": (lambda r, c: (c, r), lambda b, r, c: b.T[::-1, ::-1]),
}
LAYOUTS_STRIDED = {
    "slice": (lambda r, c: (2 * r, 3 * c), lambda b, r, c: b[::2, ::3]),
    "negslice": (lambda r, c: (2 * r, 3 * c), lambda b, r, c: b[::-2, ::-3]),
    "Tslice": (lambda r, c: (3 * c, 2 * r), lambda b, r, c: b.T[::2, ::3]),
    "negslice_row": (lambda r, c: (2 * r, 3 * c), lambda b, r, c: b[::-2, 1::3]),
}
LAYOUTS = {**LAYOUTS_CONTIGUOUS, **LAYOUTS_STRIDED}

FLOAT_KINDS = ("f64", "f32", "f16", "bf16")
INT_DTYPES = {"i8": np.int8, "u8": np.uint8, "i16": np.int16, "i32": np.int32, "i64": np.int64}


def base_values(rng, kind, shape, specials=0.0):
    """Random values of ``kind`` (f64/f32/f16/bf16/i8/u8/i16/i32/i64/bool) as float64/int.

    Returns float32/float64/int arrays as they will be stored (before any
    half-precision rounding); ``specials`` is the fraction of NaN/+inf/-inf.
    """
    size = int(np.prod(shape))
    if kind in FLOAT_KINDS:
        scale = rng.choice([1.0, 1e-2, 1e3])
        shift = rng.choice([0.0, 5.0, -3.0])
        if kind == "f16":
            scale = rng.choice([1.0, 10.0])
        v = rng.normal(size=size) * scale + shift
        if kind == "f16":
            # some subnormal float16 values (below 6.1e-5) exercise the decoder
            tiny = rng.random(size) < 0.05
            v[tiny] = rng.uniform(-6e-5, 6e-5, tiny.sum())
        if specials:
            pick = rng.random(size) < specials
            v[pick] = rng.choice([np.nan, np.inf, -np.inf], pick.sum())
        v = v.reshape(shape)
        return v.astype(np.float32) if kind != "f64" else v
    if kind == "bool":
        return (rng.random(size) < 0.4).reshape(shape)
    dt = np.dtype(INT_DTYPES[kind])
    lo, hi = np.iinfo(dt).min, np.iinfo(dt).max
    if dt == np.int64:
        lo, hi = -(2 ** 40), 2 ** 40
    return rng.integers(lo, hi, size=size, endpoint=True, dtype=dt).reshape(shape)


def make_input(rng, kind, layout, r, c, specials=0.0):
    """A (R, C) view in ``layout`` holding random ``kind`` values.

    Returns ``(flat, offset, rows, cols, decode, truth)``; ``truth`` is the
    logical (R, C) float64 matrix the kernel must see.
    """
    from dlviz_gpu.kernels import DECODE_BF16, DECODE_F16, DECODE_NATIVE

    base_shape, view_fn = LAYOUTS[layout]
    base = base_values(rng, kind, base_shape(r, c), specials)
    decode = DECODE_NATIVE
    if kind in ("bf16", "f16"):
        bits, truth_base = half_bits(base, kind)
        view = view_fn(bits, r, c)
        truth = view_fn(truth_base, r, c)
        decode = DECODE_BF16 if kind == "bf16" else DECODE_F16
    elif kind == "bool":
        view = view_fn(base.view(np.uint8), r, c)
        truth = view_fn(base, r, c).astype(np.float64)
    else:
        view = view_fn(base, r, c)
        truth = view.astype(np.float64)
    assert view.shape == (r, c)
    flat, offset, rows, cols = strided_flat(view)
    return flat, offset, rows, cols, decode, np.array(truth, dtype=np.float64)


def random_range(rng, n, kind):
    """A visible data range over an axis of ``n`` cells, of the given kind."""
    if kind == "full":
        return 0.0, float(n)
    if kind == "inner":
        lo = rng.uniform(0, n / 2)
        return lo, rng.uniform(lo + 0.3, n)
    if kind == "over":  # beyond both ends
        return -rng.uniform(0.1, n / 2 + 1), n + rng.uniform(0.1, n / 2 + 1)
    if kind == "shift":  # beyond one end
        lo = rng.uniform(-n / 2, n / 2)
        return lo, lo + rng.uniform(0.5, n)
    if kind == "centre":  # both ends exactly on cell centres
        a = int(rng.integers(0, max(n - 1, 1)))
        b = int(rng.integers(a + 1, n + 1))
        return a + 0.5, b + 0.5
    if kind == "zoom":  # a few cells, to be shown on a larger canvas
        lo = rng.uniform(-0.5, max(n - 2, 0.5))
        return lo, lo + rng.uniform(0.5, 3.0)
    if kind == "outside":
        return n + 1.5, n + 7.25
    raise ValueError(kind)


RANGE_KINDS = ("full", "inner", "over", "shift", "centre", "zoom", "outside")


def random_views(rng, r, c, count, max_w=None, max_h=None):
    """``count`` (x_range, y_range, width, height) windows; the first shows everything."""
    out = []
    for k in range(count):
        kx = "full" if k == 0 else RANGE_KINDS[rng.integers(len(RANGE_KINDS))]
        ky = "full" if k == 0 else RANGE_KINDS[rng.integers(len(RANGE_KINDS))]
        xr = random_range(rng, c, kx)
        yr = random_range(rng, r, ky)
        # canvases up to a few pixels wider than the matrix: some upsample
        w = int(rng.integers(4, 13)) if kx == "zoom" else int(rng.integers(1, c + 8))
        h = int(rng.integers(4, 13)) if ky == "zoom" else int(rng.integers(1, r + 8))
        if max_w is not None:
            w = min(w, max_w)
        if max_h is not None:
            h = min(h, max_h)
        out.append((xr, yr, w, h))
    return out


# --------------------------------------------------------------------------
# Checking results against the float64 reference
# --------------------------------------------------------------------------

def cells_in_window(n, lo, hi, npix):
    """Number of cells of an n-cell axis whose centre lands on one of npix pixels."""
    i = np.arange(n)
    p = np.floor(((i + 0.5 - lo) * npix) / (hi - lo))
    return int(((p >= 0) & (p < npix)).sum())


def check_planes(got, truth, x_range, y_range, width, height, want_minmax=True,
                 want_m2=True, sum_rtol=1e-6, std_rtol=1e-9, std_atol_rel=1e-12):
    """Assert that kernel planes ``got`` (host ndarrays) match the reference for ``truth``.

    ``std_atol_rel`` scales an absolute std slack by the largest magnitude in
    the pixel (room for the float64 rounding of the reference itself).
    """
    from dlviz_gpu.kernels import reference

    truth = np.asarray(truth, np.float64)
    ref = reference.matrix_stats(truth, x_range, y_range, width, height)
    with np.errstate(invalid="ignore"):
        ref_abs = reference.matrix_stats(np.abs(truth), x_range, y_range, width, height)["sum"]

    expected = {"count", "nan_count", "sum"}
    if want_minmax:
        expected |= {"min", "max"}
    if want_m2:
        expected.add("m2")
    assert set(got) == expected
    for name, plane in got.items():
        assert plane.shape == (height, width), name

    count = got["count"]
    assert count.dtype.kind in "iu" and got["nan_count"].dtype.kind in "iu"
    np.testing.assert_array_equal(count, ref["count"], err_msg="count")
    np.testing.assert_array_equal(got["nan_count"], ref["nan_count"], err_msg="nan_count")

    # conservation: every element whose centre is in the window is counted once
    r, c = truth.shape
    inside = (cells_in_window(r, *y_range, height) * cells_in_window(c, *x_range, width))
    assert int(count.sum() + got["nan_count"].sum()) == inside

    # sums (and means): within sum_rtol of the reference, with slack for cancellation
    s = got["sum"]
    assert np.all(np.isfinite(s)), "a NaN/inf leaked into sum"
    tol = sum_rtol * np.abs(ref["sum"]) + 1e-9 * ref_abs
    bad = np.abs(s - ref["sum"]) > tol
    assert not bad.any(), ("sum", np.argwhere(bad)[:5], s[bad][:5], ref["sum"][bad][:5])
    assert np.all(s[count == 0] == 0.0)
    nz = count > 0
    mean = s[nz] / count[nz]
    mtol = sum_rtol * np.abs(ref["mean"][nz]) + 1e-9 * ref_abs[nz] / count[nz]
    assert np.all(np.abs(mean - ref["mean"][nz]) <= mtol), "mean"

    if want_minmax:
        mn, mx = got["min"], got["max"]
        np.testing.assert_array_equal(mn, ref["min"], err_msg="min")
        np.testing.assert_array_equal(mx, ref["max"], err_msg="max")
        assert np.all(np.isnan(mn[~nz])) and np.all(np.isnan(mx[~nz]))
        extremum = np.where(np.abs(mx) >= np.abs(mn), mx, mn)
        np.testing.assert_array_equal(extremum, ref["extremum"], err_msg="extremum")

    if want_m2:
        m2 = got["m2"]
        assert np.all(m2[nz] >= 0.0) and np.all(np.isfinite(m2[nz])), "m2"
        std = np.sqrt(m2[nz] / count[nz])
        ref_std = ref["std"][nz]
        scale = np.maximum(np.abs(ref["min"][nz]), np.abs(ref["max"][nz]))
        stol = std_rtol * ref_std + std_atol_rel * scale
        bad = np.abs(std - ref_std) > stol
        assert not bad.any(), ("std", std[bad][:5], ref_std[bad][:5])
    return ref


class Toolkit:
    """The helpers above, handed to tests as the ``kt`` fixture."""

    strided_flat = staticmethod(strided_flat)
    mosaic_flat = staticmethod(mosaic_flat)
    flat_of = staticmethod(flat_of)
    half_bits = staticmethod(half_bits)
    base_values = staticmethod(base_values)
    make_input = staticmethod(make_input)
    random_range = staticmethod(random_range)
    random_views = staticmethod(random_views)
    cells_in_window = staticmethod(cells_in_window)
    check_planes = staticmethod(check_planes)
    LAYOUTS = LAYOUTS
    LAYOUTS_CONTIGUOUS = LAYOUTS_CONTIGUOUS
    LAYOUTS_STRIDED = LAYOUTS_STRIDED


@pytest.fixture(scope="session")
def kt():
    return Toolkit
