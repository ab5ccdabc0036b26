"""m4_cuda / ema_cuda against the float64 reference.

Runs on a real GPU, or under Numba's simulator when ``NUMBA_ENABLE_CUDASIM=1``
is set before Python starts (the kernels then use 32-thread blocks; every
thread is a Python thread, so inputs stay in the hundreds of samples).
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.cuda import cuda_or_skip

cuda = cuda_or_skip()

from dlviz_gpu.kernels import DECODE_BF16, DECODE_F16, DECODE_NATIVE  # noqa: E402
from dlviz_gpu.kernels import series as ks  # noqa: E402
from dlviz_gpu.kernels.reference import series as ref_series  # noqa: E402

pytestmark = [pytest.mark.cuda]

VALUES = ("first", "last", "min", "max")


def scale_of(values):
    v = np.abs(np.asarray(values, np.float64))
    v = v[np.isfinite(v)]
    return float(v.max()) if v.size else 0.0


def run(buffer, offset, stride, decode, truth, x_range, width, x=None, smoothing=0.0,
        ema_state=None):
    """m4_cuda on the buffer; checked against the reference M4 of ``truth`` (smoothed)."""
    n = truth.size
    xa = None if x is None else (np.ascontiguousarray(x, np.float64), 0, 1, DECODE_NATIVE)
    start, end, outside = ks.column_runs(n, x_range, width, xa)
    got = ks.m4_cuda(buffer, offset, stride, decode, start, end, smoothing=smoothing,
                     ema_state=ema_state)
    series = ref_series.ema(truth, smoothing) if smoothing else truth
    ref = ref_series.m4(series, x, x_range, width)
    assert outside == ref["outside"]
    assert all(isinstance(v, np.ndarray) for v in got.values())
    for name in ("count", "nan_count", "first_index", "last_index"):
        np.testing.assert_array_equal(got[name], ref[name], err_msg=name)
    if not smoothing:
        for name in VALUES + ("min_index", "max_index"):
            np.testing.assert_array_equal(got[name], ref[name], err_msg=name)
    else:
        atol = 1e-12 * scale_of(series)
        for name in VALUES:
            np.testing.assert_allclose(got[name], ref[name], rtol=1e-12, atol=atol,
                                       err_msg=name)
        for name in ("min", "max"):
            idx = got[name + "_index"]
            ok = idx >= 0
            np.testing.assert_array_equal(ok, ref[name + "_index"] >= 0)
            np.testing.assert_allclose(series[idx[ok]], ref[name][ok], rtol=1e-12, atol=atol)
    return got


def noisy(rng, n, dtype=np.float64, specials=0.05):
    v = np.round(rng.normal(size=n) * 4) / 4          # coarse: ties
    pick = rng.random(n) < specials
    v[pick] = rng.choice([np.nan, np.inf, -np.inf], pick.sum())
    return v.astype(dtype)


def test_host_buffers_dtypes_and_windows(kt):
    rng = np.random.default_rng(1)
    y = noisy(rng, 300)
    run(y, 0, 1, DECODE_NATIVE, y, (0, 300), 4)
    run(y, 0, 1, DECODE_NATIVE, y, (-20.5, 250.25), 3)
    run(y, 0, 1, DECODE_NATIVE, y, (100, 101), 2)            # x == x1 on a sample
    y32 = noisy(rng, 200, np.float32)
    run(y32, 0, 1, DECODE_NATIVE, y32.astype(np.float64), (0, 200), 3)
    i8 = rng.integers(-128, 128, 150).astype(np.int8)
    run(i8, 0, 1, DECODE_NATIVE, i8.astype(np.float64), (0, 150), 2)
    for kind, flag in (("bf16", DECODE_BF16), ("f16", DECODE_F16)):
        bits, truth = kt.half_bits(noisy(rng, 180, np.float32), kind)
        run(bits, 0, 1, flag, truth, (0, 180), 3)


def test_device_buffer_strided_and_reversed(kt):
    rng = np.random.default_rng(2)
    base = noisy(rng, 400)
    d = cuda.to_device(base)
    run(d, 0, 1, DECODE_NATIVE, base, (10, 390), 3)
    view = base[1::3]
    run(d, 1, 3, DECODE_NATIVE, view.copy(), (0, view.size), 2)
    rev = base[::-1]
    flat, offset, st_ = kt.flat_of(rev)
    run(flat, offset, st_[0], DECODE_NATIVE, rev.copy(), (0, rev.size), 3)


def test_with_x_segments_and_slabs(monkeypatch):
    """Columns cut into several blocks, host data streamed in several slabs."""
    rng = np.random.default_rng(3)
    monkeypatch.setattr(ks, "CUDA_SEGMENT", 45)
    monkeypatch.setattr(ks, "CUDA_STREAM_BYTES", 8 * 120)
    y = noisy(rng, 360)
    y[[7, 200]] = -9.0    # tie for the minimum in different segments
    x = np.cumsum(rng.integers(0, 3, 360)).astype(np.float64)
    got = run(y, 0, 1, DECODE_NATIVE, y, (x[0], x[-1]), 2, x=x)
    run(y, 0, 1, DECODE_NATIVE, y, (0, 360), 1)
    assert got["min_index"].min() == 7


def test_smoothed_with_fillers_and_state(monkeypatch):
    rng = np.random.default_rng(4)
    monkeypatch.setattr(ks, "CUDA_SEGMENT", 60)
    y = noisy(rng, 320, specials=0.03)
    run(y, 0, 1, DECODE_NATIVE, y, (0, 320), 3, smoothing=0.5)
    run(y, 0, 1, DECODE_NATIVE, y, (130.5, 300), 2, smoothing=0.95)   # fillers before
    # a known EMA state at sample 120 (from the reference) instead of sample 0
    w = 0.9
    sm = ref_series.ema(y, w)
    k = int(np.isfinite(y[:120]).sum())
    last_finite = np.flatnonzero(np.isfinite(y[:120]))[-1]
    last = sm[last_finite] * (1 - w ** k)
    run(y, 0, 1, DECODE_NATIVE, y, (150, 320), 2, smoothing=w, ema_state=(120, k, last))


def test_ema_values_and_checkpoints(monkeypatch):
    rng = np.random.default_rng(5)
    monkeypatch.setattr(ks, "CUDA_SEGMENT", 70)
    y = noisy(rng, 260, specials=0.05)
    w = 0.8
    ref = ref_series.ema(y, w)
    got = ks.ema_cuda(cuda.to_device(y), 0, 1, DECODE_NATIVE, 33, 250, w).copy_to_host()
    np.testing.assert_allclose(got, ref[33:250], rtol=1e-12, atol=1e-12 * scale_of(y))
    pos, k, last = ks.ema_checkpoints_cuda(y, 0, 1, DECODE_NATIVE, y.size, w, every=100)
    assert pos.tolist() == [0, 100, 200]
    for p, kk, ll in zip(pos, k, last):
        fin = np.flatnonzero(np.isfinite(y[:p]))
        assert kk == fin.size
        expect = 0.0 if fin.size == 0 else ref[fin[-1]] * (1 - w ** fin.size)
        assert ll == pytest.approx(expect, rel=1e-12, abs=1e-12)


def test_empty_runs_and_all_nan():
    got = ks.m4_cuda(np.zeros(4), 0, 1, DECODE_NATIVE, np.zeros(3, np.int64),
                     np.zeros(3, np.int64))
    assert got["count"].tolist() == [0, 0, 0] and np.isnan(got["min"]).all()
    y = np.full(70, np.nan)
    y[65] = 1.5
    got = run(y, 0, 1, DECODE_NATIVE, y, (0, 70), 2)
    assert got["count"].tolist() == [0, 1] and got["nan_count"].tolist() == [35, 34]
