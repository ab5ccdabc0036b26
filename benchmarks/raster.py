"""CPU matrix rasterisation: one process, one array, every comparison.

A 16384 x 16384 float32 matrix (1 GiB) goes to an 800 x 600 canvas.  The rows:

1. bandwidth probe: a numba-parallel sum over the same array (the ceiling)
2. ``dv.rasterize`` with stats mean / max / extremum: fraction of the probe
3. Datashader ``Canvas.raster(..., agg="mean")``: its time / ours (speed-up)
4. NumPy reshape-mean on a divisible slice: its time / ours on that slice
5. all statistics in one pass / mean alone
6. a zoomed window holding 1 % of the elements / the full view
7. bfloat16 (torch tensor) and float16: elements/s relative to float32
8. extra resident memory during a full-view all-statistics call

Every timed call returns the finished statistic arrays (``raster[stat]``), the
same deliverable Datashader's DataArray is.  Times are best-of-N after a
warm-up call (which absorbs JIT compilation).  Nothing here asserts a timing.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

from ._common import (available_bytes, bandwidth_probe, best_of, ensure_dlviz, free_memory,
                       loadavg, PeakMemory, print_summary, random_matrix, Row, run_steps,
                       suite_payload, timestamp, write_json)

DEFAULT_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")

WIDTH, HEIGHT = 800, 600
SIZE = 16384
# 1 % of the elements: each side of the window is 10 % of the matrix side
ZOOM_FRACTION = 0.1

GOALS = {
    "fraction_of_probe": (">=", 0.60),
    "datashader_speedup": (">=", 4.0),
    "all_over_mean": ("<=", 1.5),
    "zoom_over_full": ("<=", 0.03),
    "half_over_f32": (">=", 1.0),
    "extra_memory_mib": ("<", 64.0),
}


def _settings(quick: bool, size: int | None, repeats: int | None) -> dict:
    note = ""
    if size is None:
        size = SIZE
        if quick:
            avail = available_bytes()
            # the 1 GiB matrix plus two 0.5 GiB half-precision copies, with room to spare
            if avail is not None and avail < 4 * 2 ** 30:
                size = 8192
                note = (f"quick mode on 8192 x 8192 (256 MiB): only "
                        f"{avail / 2 ** 30:.1f} GiB of memory available")
    elif size != SIZE:
        note = f"matrix {size} x {size} instead of {SIZE} x {SIZE} (--size)"
    reps = repeats or (5 if quick else 9)
    return {"size": int(size), "width": WIDTH, "height": HEIGHT, "repeats": reps,
            "probe_repeats": max(reps, 5) if quick else 10,
            "baseline_repeats": max(1, reps - 1) if quick else 5,
            "quick": quick, "size_note": note}




def run(quick: bool = False, out_dir: str = DEFAULT_OUT, size: int | None = None,
        repeats: int | None = None) -> dict:
    """Run every row, print the table, write the JSON; returns the JSON payload."""
    wall0 = time.perf_counter()
    load0 = loadavg()
    stamp = timestamp()
    cfg = _settings(quick, size, repeats)
    n = cfg["size"]
    W, H = cfg["width"], cfg["height"]
    R = cfg["repeats"]

    found = ensure_dlviz()
    import dlviz_gpu as dv

    rows: list[Row] = []
    ctx: dict = {}
    print(f"raster benchmark: {n} x {n} float32 ({n * n * 4 / 2 ** 30:.2f} GiB) -> "
          f"{W} x {H}, best of {R} after a warm-up" + (" [quick]" if quick else ""),
          file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    a = random_matrix(n, n, np.float32, seed=1)
    ctx["generate_s"] = time.perf_counter() - t0
    nbytes = a.nbytes

    def ours(x, stats, **kw):
        names = dv.STATS if stats is None else ((stats,) if isinstance(stats, str) else stats)

        def fn():
            r = dv.rasterize(x, W, H, stats=stats, **kw)
            return [r[s] for s in names]
        return fn

    # ---- the rows ------------------------------------------------------------
    def probe():
        t, gbps = bandwidth_probe(a, cfg["probe_repeats"])
        ctx["probe_gbps"] = gbps
        return Row("bandwidth probe (parallel sum)", t.best, gbps,
                   note="numba prange sum over the same array: the read ceiling",
                   extra={"timing": t.as_dict(), "tasks": 64})

    def stat_row(stat):
        def go():
            t = best_of(ours(a, stat), R)
            gbps = nbytes / t.best / 1e9
            ctx[f"t_{stat}"] = t.best
            frac = gbps / ctx["probe_gbps"] if ctx.get("probe_gbps") else None
            return Row(f"ours {stat}", t.best, gbps, frac, "of probe",
                       GOALS["fraction_of_probe"], extra={"timing": t.as_dict()})
        return go

    def datashader_row():
        import datashader
        import xarray as xr

        da = xr.DataArray(a, dims=("y", "x"),
                          coords={"x": np.arange(n) + 0.5, "y": np.arange(n) + 0.5})
        cvs = datashader.Canvas(plot_width=W, plot_height=H, x_range=(0, n), y_range=(0, n))

        def fn():
            return cvs.raster(da, agg="mean").values
        t = best_of(fn, cfg["baseline_repeats"])
        with PeakMemory() as pm:
            ds_mean = fn()
        ours_mean = ours(a, "mean")()[0]
        diff = float(np.nanmax(np.abs(ds_mean.astype(np.float64) - ours_mean)))
        del ds_mean, ours_mean, da, cvs
        base = ctx.get("t_mean")
        return Row("datashader raster mean", t.best, nbytes / t.best / 1e9,
                   t.best / base if base else None, "x ours", GOALS["datashader_speedup"],
                   note="value = datashader time / ours (mean)",
                   extra={"timing": t.as_dict(), "memory": pm.as_dict(),
                          "max_abs_diff_vs_ours": diff,
                          "call": "Canvas(plot_width, plot_height, x_range=(0,n), "
                                  "y_range=(0,n)).raster(DataArray(a, dims=('y','x'), "
                                  "coords=cell centres), agg='mean')"})

    def numpy_row():
        ry, rx = n // H, n // W
        sub = a[:H * ry, :W * rx]

        def fn():
            return sub.reshape(H, ry, W, rx).mean(axis=(1, 3))
        t = best_of(fn, cfg["baseline_repeats"])
        to = best_of(ours(sub, "mean"), R)
        diff = float(np.max(np.abs(fn().astype(np.float64) - ours(sub, "mean")()[0])))
        return Row(f"numpy reshape mean {H * ry}x{W * rx}", t.best, sub.nbytes / t.best / 1e9,
                   t.best / to.best, "x ours", None,
                   note=f"a[:{H * ry}, :{W * rx}].reshape({H}, {ry}, {W}, {rx}).mean(axis=(1, 3));"
                        f" value = numpy time / ours on the same slice ({to.best * 1e3:.1f} ms)",
                   extra={"timing": t.as_dict(), "ours_timing": to.as_dict(),
                          "max_abs_diff_vs_ours": diff})

    def all_row():
        t = best_of(ours(a, None), R)
        ctx["t_all"] = t.best
        base = ctx.get("t_mean")
        return Row("ours all stats (one pass)", t.best, nbytes / t.best / 1e9,
                   t.best / base if base else None, "x mean", GOALS["all_over_mean"],
                   note="value = all 8 statistics / mean alone",
                   extra={"timing": t.as_dict()})

    def zoom_row():
        lo = round(0.48828125 * n, 1)              # 8000 for n = 16384
        hi = lo + ZOOM_FRACTION * n                # 9638.4
        fn = ours(a, "mean", x_range=(lo, hi), y_range=(lo, hi))
        t = best_of(fn, max(R, 5))
        cells = int(np.floor(hi - 0.5) - np.ceil(lo - 0.5) + 1)
        base = ctx.get("t_mean")
        return Row("zoom 1% window, mean", t.best, cells * cells * 4 / t.best / 1e9,
                   t.best / base if base else None, "of full", GOALS["zoom_over_full"],
                   note=f"x_range = y_range = ({lo:g}, {hi:g}): {cells} x {cells} cells "
                        f"({cells * cells / n / n:.2%} of the elements) on {W} x {H}",
                   extra={"timing": t.as_dict(), "window": [lo, hi], "cells_per_side": cells})

    def half_row(kind):
        def go():
            if kind == "bf16":
                import torch

                x = torch.from_numpy(a).to(torch.bfloat16)
                name = "bf16 (torch tensor) mean"
            else:
                x = a.astype(np.float16)
                name = "float16 mean"
            try:
                t = best_of(ours(x, "mean"), R)
            finally:
                del x
                free_memory()
            base = ctx.get("t_mean")
            return Row(name, t.best, (nbytes // 2) / t.best / 1e9,
                       base / t.best if base else None, "x f32 el/s", GOALS["half_over_f32"],
                       note="value = elements/s relative to float32 mean",
                       extra={"timing": t.as_dict()})
        return go

    def memory_row():
        fn = ours(a, None)
        fn()  # compiled already by the all-stats row; make sure
        free_memory()
        with PeakMemory() as pm:
            t0 = time.perf_counter()
            out = fn()
            dt = time.perf_counter() - t0
        del out
        return Row("extra memory, all stats", dt, nbytes / dt / 1e9, pm.extra_mib, "MiB",
                   GOALS["extra_memory_mib"],
                   note=f"peak RSS - RSS before, sampled every 2 ms ({pm.samples} samples) "
                        f"and the kernel's VmHWM; time is one call under the sampler",
                   extra={"memory": pm.as_dict()})

    steps = [("probe", probe), ("mean", stat_row("mean")), ("max", stat_row("max")),
             ("extremum", stat_row("extremum")), ("datashader", datashader_row),
             ("numpy", numpy_row), ("all stats", all_row), ("zoom", zoom_row),
             ("bf16", half_row("bf16")), ("float16", half_row("f16")),
             ("memory", memory_row)]
    rows.extend(run_steps(steps, "raster"))
    del a
    free_memory()

    wall = time.perf_counter() - wall0
    title = (f"dlviz_gpu raster benchmark: {n} x {n} float32 -> {W} x {H}, best of {R}"
             + (" [quick]" if quick else ""))
    table, _ = print_summary(rows, title, cfg, ctx, wall)
    payload = suite_payload(
        "raster", stamp=stamp, cfg=cfg, found=found, load0=load0, ctx=ctx, rows=rows,
        wall=wall, table=table, modules=("numpy", "numba", "datashader", "xarray", "torch"),
        definitions={
            "time": "best of N wall-clock calls after one warm-up call; each call returns "
                    "the finished statistic arrays",
            "GB/s": "input bytes read / time (1e9 bytes)",
            "of probe": "our GB/s / probe GB/s (probe = numba parallel sum over the same array)",
            "x ours": "baseline time / our time on the same data (speed-up of ours)",
            "x mean": "time for all statistics / time for mean alone",
            "of full": "zoomed-window time / full-view mean time",
            "x f32 el/s": "elements per second relative to the float32 mean row",
            "MiB": "peak RSS during the call minus RSS before it",
        })
    path = write_json(out_dir, "raster", payload, stamp)
    print(f"wrote {path}")
    return payload
