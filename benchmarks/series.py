"""M4 decimation of a long series: one process, one array, every comparison.

A 10^8-sample float32 series (400 MB) goes to 1200 pixel columns.  The rows:

1. bandwidth probe: a numba-parallel sum over the same array (the ceiling)
2. ``dv.decimate``: GB/s and fraction of the probe (goal >= 0.6)
3. NumPy on a divisible slice: ``reshape(1200, -1)`` min / max / argmin /
   argmax (+ first / last): its time / ours on the same slice
4. Datashader ``Canvas.line`` on a 10^7-sample prefix (Datashader on all 10^8
   takes too long for a quick run; the table says so): its time / ours on the
   same prefix, and the number of pixels in which Datashader's drawing of our
   M4 vertices differs from its drawing of every sample (the M4 promise: 0)
5. smoothing (fused debiased EMA, w = 0.9): time / raw
6. a zoomed window holding 1 % of the samples: time / full view
7. with x (int64 steps; the monotonic check reads all of x): time / without
8. bfloat16 (torch tensor): elements/s relative to float32
9. extra resident memory during a call

Every timed call returns the finished xarray.Dataset.  Times are best-of-N
after a warm-up call (which absorbs JIT compilation).  Nothing here asserts a
timing.
"""

from __future__ import annotations

import math
import os
import sys
import time

import numpy as np

from ._common import (bandwidth_probe, best_of, ensure_dlviz, free_memory, loadavg, PeakMemory,
                       print_summary, random_matrix, Row, run_steps, suite_payload, timestamp,
                       write_json)

DEFAULT_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")

SIZE = 10 ** 8
WIDTH = 1200
HEIGHT = 600            # Datashader's canvas height (its lines need one)
DS_SIZE = 10 ** 7       # Datashader runs on this prefix
ZOOM_FRACTION = 0.01
SMOOTHING = 0.9

GOALS = {
    "fraction_of_probe": (">=", 0.60),
    "m4_pixels_differ": ("<=", 0),
    "extra_memory_mib": ("<", 64.0),
}


def _settings(quick: bool, size: int | None, repeats: int | None) -> dict:
    note = ""
    if size is None:
        size = SIZE
    elif size != SIZE:
        note = f"{size:.3g} samples instead of {SIZE:.0e} (--size)"
    reps = repeats or (5 if quick else 9)
    return {"size": int(size), "width": WIDTH, "repeats": reps,
            "probe_repeats": max(reps, 5) if quick else 10,
            "baseline_repeats": max(1, reps - 2) if quick else 5,
            "ds_size": _coprime_at_most(min(DS_SIZE + 1, size), WIDTH), "quick": quick,
            "size_note": note}


def _coprime_at_most(limit: int, width: int) -> int:
    # With gcd(m, width) == 1 no sample index lies exactly on a column edge
    # (k * m / width is never an integer): Datashader's line rasteriser puts
    # a segment that starts exactly on a pixel edge partly into the column to
    # its left, which would make the pixel comparison test Datashader's edge
    # convention instead of M4.
    m = int(limit)
    while m > 1 and math.gcd(m, width) != 1:
        m -= 1
    return m



def run(quick: bool = False, out_dir: str = DEFAULT_OUT, size: int | None = None,
        repeats: int | None = None) -> dict:
    """Run every row, print the table, write the JSON; returns the JSON payload."""
    wall0 = time.perf_counter()
    load0 = loadavg()
    stamp = timestamp()
    cfg = _settings(quick, size, repeats)
    n = cfg["size"]
    W = cfg["width"]
    R = cfg["repeats"]

    found = ensure_dlviz()
    import dlviz_gpu as dv
    from dlviz_gpu.kernels import series as ks

    rows: list[Row] = []
    ctx: dict = {}
    print(f"series benchmark: {n:.3g} float32 samples ({n * 4 / 1e6:.0f} MB) -> {W} columns, "
          f"best of {R} after a warm-up" + (" [quick]" if quick else ""),
          file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    a = random_matrix(1, n, np.float32, seed=3).reshape(-1)
    ctx["generate_s"] = time.perf_counter() - t0
    nbytes = a.nbytes

    def ours(y, **kw):
        def fn():
            return dv.decimate(y, width=W, **kw)
        return fn

    def frac(gbps):
        return gbps / ctx["probe_gbps"] if ctx.get("probe_gbps") else None

    # ---- the rows ------------------------------------------------------------
    def probe():
        t, gbps = bandwidth_probe(a, cfg["probe_repeats"])
        ctx["probe_gbps"] = gbps
        row = Row("bandwidth probe (parallel sum)", t.best, gbps,
                  note="numba prange sum over the same array: the read ceiling (best of "
                       "this row and the probe calls interleaved with ours)",
                  extra={"timing": t.as_dict(), "tasks": 64})
        ctx["probe_row"] = row
        return row

    def ours_row():
        # Interleaved with the probe (probe, ours, probe, ours, ...): on a shared
        # machine the load drifts between rows; the fraction uses the faster of
        # this probe and the probe row (the conservative choice).
        from ._common import _jit

        psum = _jit()["sum"]
        fn = ours(a)
        fn()
        tp, to = [], []
        for _ in range(R):
            t0 = time.perf_counter()
            psum(a, 64)
            tp.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            fn()
            to.append(time.perf_counter() - t0)
        best = min(to)
        ctx["t_raw"] = best
        if nbytes / min(tp) / 1e9 > ctx.get("probe_gbps", 0.0):
            ctx["probe_gbps"] = nbytes / min(tp) / 1e9
            if "probe_row" in ctx:
                ctx["probe_row"].time_s = min(tp)
                ctx["probe_row"].gbps = ctx["probe_gbps"]
        if "probe_row" in ctx:
            ctx["probe_row"].extra["interleaved_times_s"] = tp
        gbps = nbytes / best / 1e9
        # the kernel alone, without validation and the Dataset
        s, e, _ = ks.column_runs(n, (0, n), W)
        tk = best_of(lambda: ks.m4_cpu(a, 0, 1, 0, s, e), R)
        return Row(f"ours M4 float32 -> {W} cols", best, gbps, frac(gbps), "of probe",
                   GOALS["fraction_of_probe"],
                   note=f"dv.decimate(a, width={W}) returning the Dataset, timed interleaved "
                        f"with the probe (best probe {ctx['probe_gbps']:.1f} GB/s); the kernel "
                        f"alone: {tk.best * 1e3:.1f} ms ({nbytes / tk.best / 1e9:.1f} GB/s)",
                   extra={"times_s": to, "interleaved_probe_times_s": tp,
                          "probe_gbps_used": ctx["probe_gbps"], "kernel_timing": tk.as_dict()})

    def numpy_row():
        m = (n // W) * W
        sub = a[:m]
        r2 = sub.reshape(W, -1)

        def fn():
            return (r2[:, 0], r2[:, -1], r2.min(axis=1), r2.max(axis=1),
                    r2.argmin(axis=1), r2.argmax(axis=1))
        t = best_of(fn, cfg["baseline_repeats"])
        to = best_of(ours(sub), R)
        d = ours(sub)()
        first, last, mn, mx, amin, amax = fn()
        base = np.arange(W) * (m // W)
        agrees = bool(np.array_equal(d["min"].values, mn) and np.array_equal(d["max"].values, mx)
                      and np.array_equal(d["min_index"].values, base + amin)
                      and np.array_equal(d["max_index"].values, base + amax)
                      and np.array_equal(d["first"].values, first)
                      and np.array_equal(d["last"].values, last))
        return Row(f"numpy reshape({W}, -1) min/max/argmin/argmax", t.best,
                   sub.nbytes / t.best / 1e9, t.best / to.best, "x ours", None,
                   note=f"a[:{m}].reshape({W}, -1): min, max, argmin, argmax, first, last "
                        f"(no NaN handling, divisible lengths only); value = numpy time / ours "
                        f"on the same slice ({to.best * 1e3:.1f} ms); results "
                        f"{'identical' if agrees else 'DIFFER'}",
                   extra={"timing": t.as_dict(), "ours_timing": to.as_dict(),
                          "identical": agrees})

    def datashader_rows():
        import datashader as ds
        import pandas as pd

        m = cfg["ds_size"]
        y = a[:m]
        lo, hi = float(y.min()), float(y.max())
        pad = (hi - lo) * 1e-3 or 1.0
        yr = (lo - pad, hi + pad)
        # x = sample index, the canvas spans the samples exactly like ours
        df = pd.DataFrame({"x": np.arange(m, dtype=np.float64), "y": y})
        cvs = ds.Canvas(plot_width=W, plot_height=HEIGHT, x_range=(0, m), y_range=yr)

        def fn():
            return cvs.line(df, "x", "y", agg=ds.any()).values
        t0 = time.perf_counter()
        full = fn()                      # warm-up (compiles)
        first = time.perf_counter() - t0
        t = best_of(fn, 1 if quick else 3, warmup=0)
        to = best_of(ours(y), R)
        d = ours(y)()
        from dlviz_gpu.series import polyline

        idx, xs, vals = polyline(d)
        small = pd.DataFrame({"x": xs, "y": vals.astype(np.float32)})
        m4img = cvs.line(small, "x", "y", agg=ds.any()).values
        differ = int(np.count_nonzero(full != m4img))
        del df, small
        line = Row(f"datashader Canvas.line {m:.3g} prefix", t.best, y.nbytes / t.best / 1e9,
                   t.best / to.best, "x ours", None,
                   note=f"Canvas({W} x {HEIGHT}).line(DataFrame(x=index, y), agg=any) on the "
                        f"first {m} samples only (all {n:.0e} would take ~{n / m:.0f}x "
                        f"longer); value = its time / ours on the same prefix "
                        f"({to.best * 1e3:.1f} ms); its first call (JIT) {first:.1f} s",
                   extra={"timing": t.as_dict(), "first_call_s": first,
                          "ours_timing": to.as_dict(), "samples": m})
        check = Row("M4 vertices drawn == every sample drawn", None, None, float(differ),
                    "pixels differ", GOALS["m4_pixels_differ"],
                    note=f"Datashader Canvas.line(agg=any) of our {idx.size} M4 vertices vs of "
                         f"all {m} samples, same {W} x {HEIGHT} canvas ({m} is coprime to "
                         f"{W}: no sample sits exactly on a column edge, where Datashader "
                         f"draws a segment's first pixel into the left column)",
                    extra={"vertices": int(idx.size), "pixels_on": int(full.sum())})
        return [line, check]

    def smooth_row():
        t = best_of(ours(a, smoothing=SMOOTHING), max(1, R - 2))
        base = ctx.get("t_raw")
        return Row(f"smoothing {SMOOTHING} (fused EMA)", t.best, nbytes / t.best / 1e9,
                   t.best / base if base else None, "x raw", None,
                   note="TensorBoard's debiased EMA fused into M4: two passes (segment "
                        "summaries, then smoothed values); value = time / raw M4",
                   extra={"timing": t.as_dict()})

    def zoom_row():
        lo = round(0.4 * n)
        hi = lo + ZOOM_FRACTION * n
        t = best_of(ours(a, x_range=(lo, hi)), max(R, 5))
        base = ctx.get("t_raw")
        return Row("zoom 1% window", t.best, ZOOM_FRACTION * nbytes / t.best / 1e9,
                   t.best / base if base else None, "of full", None,
                   note=f"x_range = ({lo:g}, {hi:g}): binary search, only the window is read",
                   extra={"timing": t.as_dict(), "window": [lo, hi]})

    def x_row():
        x = np.arange(n, dtype=np.int64) * 10
        try:
            t = best_of(ours(a, x=x), max(1, R - 2))
        finally:
            del x
            free_memory()
        base = ctx.get("t_raw")
        return Row("with x (int64 steps)", t.best, nbytes / t.best / 1e9,
                   t.best / base if base else None, "x raw", None,
                   note="x = 10 * index: one parallel pass checks x is finite and "
                        "non-decreasing (8 bytes/sample), then binary search; "
                        "Decimator does that check once per view",
                   extra={"timing": t.as_dict()})

    def bf16_row():
        import torch

        x = torch.from_numpy(a).to(torch.bfloat16)
        try:
            t = best_of(ours(x), R)
        finally:
            del x
            free_memory()
        base = ctx.get("t_raw")
        return Row("bf16 (torch tensor)", t.best, (nbytes // 2) / t.best / 1e9,
                   base / t.best if base else None, "x f32 el/s", None,
                   note="read in place as 16-bit patterns; value = samples/s relative to "
                        "float32", extra={"timing": t.as_dict()})

    def memory_row():
        fn = ours(a)
        fn()
        free_memory()
        with PeakMemory() as pm:
            t0 = time.perf_counter()
            out = fn()
            dt = time.perf_counter() - t0
        del out
        return Row("extra memory", dt, nbytes / dt / 1e9, pm.extra_mib, "MiB",
                   GOALS["extra_memory_mib"],
                   note=f"peak RSS - RSS before, sampled every 2 ms ({pm.samples} samples) "
                        f"and the kernel's VmHWM; time is one call under the sampler",
                   extra={"memory": pm.as_dict()})

    steps = [("probe", probe), ("ours", ours_row), ("numpy", numpy_row),
             ("datashader", datashader_rows), ("smoothing", smooth_row), ("zoom", zoom_row),
             ("with x", x_row), ("bf16", bf16_row), ("memory", memory_row)]
    rows.extend(run_steps(steps, "series"))
    del a
    free_memory()

    wall = time.perf_counter() - wall0
    title = (f"dlviz_gpu series benchmark: {n:.3g} float32 samples -> {W} columns (M4), "
             f"best of {R}" + (" [quick]" if quick else ""))
    table, _ = print_summary(rows, title, cfg, ctx, wall)
    payload = suite_payload(
        "series", stamp=stamp, cfg=cfg, found=found, load0=load0, ctx=ctx, rows=rows,
        wall=wall, table=table, modules=("numpy", "numba", "datashader", "xarray", "pandas", "torch"),
        definitions={
            "time": "best of N wall-clock calls after one warm-up call; each call returns "
                    "the finished xarray.Dataset",
            "GB/s": "input bytes read / time (1e9 bytes)",
            "of probe": "our GB/s / probe GB/s (probe = numba parallel sum over the same array)",
            "x ours": "baseline time / our time on the same data (speed-up of ours)",
            "x raw": "time / time of the raw float32 M4 row",
            "of full": "zoomed-window time / full-view time",
            "x f32 el/s": "samples per second relative to the float32 row",
            "pixels differ": "pixels where two Datashader drawings differ",
            "MiB": "peak RSS during the call minus RSS before it",
        })
    path = write_json(out_dir, "series", payload, stamp)
    print(f"wrote {path}")
    return payload
