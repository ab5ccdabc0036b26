"""CPU point rasterisation: one process, one point cloud, every comparison.

10^8 points (float32 x, y and value, int8 category codes 0..9; 1.3 GB) go to
an 800 x 600 canvas.  The rows:

1. bandwidth probe: a numba-parallel sum over the x column (the ceiling)
2. ``dv.rasterize_points`` count, mean of a value, all value statistics and
   count_cat with 10 categories: GB/s read and fraction of the probe
3. Datashader ``Canvas.points`` on a pandas DataFrame over the same arrays
   (count, ``ds.mean``, ``ds.count_cat`` of a categorical column): its time /
   ours (speed-up)
4. ``numpy.histogram2d`` on the first 10^7 points, time scaled x10 to the
   whole cloud: its time / our count
5. our count with the default window (one extra bounds pass over x and y)
6. extra resident memory during our calls

Both sides get the same explicit window (the exact data bounds), so neither
pays for a bounds pass in the timed rows.  Every timed call returns finished
host arrays: ``raster[stat]`` for ours, a computed DataArray for Datashader.
Times are best-of-N after a warm-up call (which absorbs JIT compilation).
Nothing here asserts a timing.
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
SIZE = 10 ** 8
QUICK_SMALL = 3 * 10 ** 7
CATEGORIES = 10
HIST_SAMPLE = 10 ** 7

GOALS = {
    "datashader_count": (">=", 2.0),
    "datashader_mean": (">=", 3.0),
    "datashader_count_cat": (">=", 2.0),
    "histogram2d": (">=", 50.0),
}



def _settings(quick: bool, size: int | None, repeats: int | None) -> dict:
    note = ""
    if size is None:
        size = SIZE
        avail = available_bytes()
        # 13 bytes a point, plus Datashader's and our planes, with room to spare
        if quick and avail is not None and avail < 4 * 2 ** 30:
            size = QUICK_SMALL
            note = (f"quick mode on {size:.0e} points: only {avail / 2 ** 30:.1f} GiB of "
                    f"memory available")
    elif size != SIZE:
        note = f"{size} points instead of {SIZE:.0e} (--size)"
    reps = repeats or (4 if quick else 9)
    return {"size": int(size), "width": WIDTH, "height": HEIGHT, "categories": CATEGORIES,
            "repeats": reps, "probe_repeats": 5 if quick else 10,
            "baseline_repeats": max(1, reps - 1) if quick else 5,
            "hist_sample": int(min(HIST_SAMPLE, size)), "quick": quick, "size_note": note}



def _codes(n: int, seed: int) -> np.ndarray:
    """Category codes 0..9 (int8), about uniform, from the harness's parallel generator."""
    out = np.empty(n, np.int8)
    step = 1 << 24
    for lo in range(0, n, step):
        hi = min(n, lo + step)
        z = random_matrix(1, hi - lo, np.float32, seed=seed * 1000 + lo // step).reshape(-1)
        out[lo:hi] = (np.abs(z * 997.0).astype(np.int32) % CATEGORIES).astype(np.int8)
    return out


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
    K = cfg["categories"]

    found = ensure_dlviz()
    import dlviz_gpu as dv

    rows: list[Row] = []
    ctx: dict = {}
    print(f"points benchmark: {n:.3g} float32 points -> {W} x {H}, best of {R} after a "
          f"warm-up" + (" [quick]" if quick else ""), file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    x = random_matrix(1, n, np.float32, seed=11).reshape(-1)
    y = random_matrix(1, n, np.float32, seed=12).reshape(-1)
    v = random_matrix(1, n, np.float32, seed=13).reshape(-1)
    c = _codes(n, 14)
    ctx["generate_s"] = time.perf_counter() - t0
    xr = (float(x.min()), float(x.max()))
    yr = (float(y.min()), float(y.max()))
    xy_bytes = x.nbytes + y.nbytes
    xyv_bytes = xy_bytes + v.nbytes
    xyc_bytes = xy_bytes + c.nbytes

    def ours(stat, value=None, category=None, window=True, stats=None):
        kw = {"x_range": xr, "y_range": yr} if window else {}

        def fn():
            r = dv.rasterize_points(x, y, value=value, category=category, width=W, height=H,
                                    n_categories=K if category is not None else None,
                                    stats=stats, **kw)
            return [r[s] for s in ((stat,) if isinstance(stat, str) else stat)]
        return fn

    def frac(gbps):
        p = ctx.get("probe_gbps")
        return gbps / p if p else None

    def ours_row(key, label, fn, nbytes, note=""):
        def go():
            t = best_of(fn, R)
            ctx[key] = t.best
            gbps = nbytes / t.best / 1e9
            return Row(label, t.best, gbps, frac(gbps), "of probe", note=note,
                       extra={"timing": t.as_dict(), "bytes_read": nbytes})
        return go

    # ---- the rows ------------------------------------------------------------
    def probe():
        t, gbps = bandwidth_probe(x, cfg["probe_repeats"])
        ctx["probe_gbps"] = gbps
        return Row("bandwidth probe (parallel sum of x)", t.best, gbps,
                   note="numba prange sum over the x column: the read ceiling",
                   extra={"timing": t.as_dict(), "tasks": 64})

    state: dict = {}

    def frame():
        if "df" not in state:
            import pandas as pd

            cats = pd.Categorical.from_codes(c, categories=list(range(K)))
            df = pd.DataFrame({"x": x, "y": y, "v": v, "c": cats}, copy=False)
            state["df"] = df
            state["shares_memory"] = bool(np.shares_memory(df["x"].to_numpy(), x))
        return state["df"]

    def ds_row(key, label, agg_fn, ours_key, ours_plane, goal, nbytes):
        def go():
            import datashader

            df = frame()
            cvs = datashader.Canvas(plot_width=W, plot_height=H, x_range=xr, y_range=yr)

            def fn():
                return cvs.points(df, "x", "y", agg=agg_fn(datashader))
            t = best_of(fn, cfg["baseline_repeats"])
            agg = fn()
            theirs = np.asarray(agg.values)
            mine = ours_plane()
            same = (theirs.shape == mine.shape)
            if same:
                with np.errstate(invalid="ignore"):
                    if theirs.dtype.kind == "f":
                        diff = float(np.nanmax(np.abs(theirs.astype(np.float64) - mine)))
                    else:
                        diff = float(np.abs(theirs.astype(np.int64) - mine).max())
            else:
                diff = None
            del agg, theirs, mine
            base = ctx.get(ours_key)
            return Row(label, t.best, nbytes / t.best / 1e9, t.best / base if base else None,
                       "x ours", goal,
                       note=f"value = datashader time / ours ({ours_key[2:]})",
                       extra={"timing": t.as_dict(), "max_abs_diff_vs_ours": diff,
                              "dataframe_shares_memory": state.get("shares_memory")})
        return go

    def hist_row():
        m = cfg["hist_sample"]
        xs, ys = x[:m], y[:m]

        def fn():
            return np.histogram2d(ys, xs, bins=(H, W), range=(yr, xr))[0]
        t = best_of(fn, 1 if quick else 2, warmup=0)
        scale = n / m
        est = t.best * scale
        base = ctx.get("t_count")
        # exactness on the sample: same pixels?
        sub = dv.rasterize_points(xs, ys, width=W, height=H, x_range=xr, y_range=yr)
        differ = int((fn() != sub["count"]).sum())
        return Row(f"numpy histogram2d ({m:.0e} points, x{scale:g})", est,
                   xy_bytes / est / 1e9, est / base if base else None, "x ours",
                   GOALS["histogram2d"],
                   note=f"histogram2d on the first {m:.0e} points, time x{scale:g} to {n:.0e}; "
                        f"value = that / our count; {differ} of {W * H} pixels differ from "
                        f"ours on the sample (bin edges from linspace vs the formula)",
                   extra={"timing": t.as_dict(), "sample": m, "scale": scale,
                          "pixels_differing_on_sample": differ})

    def auto_row():
        t = best_of(ours("count", window=False), R)
        base = ctx.get("t_count")
        return Row("ours count, default window", t.best, xy_bytes / t.best / 1e9,
                   t.best / base if base else None, "x count",
                   note="x_range / y_range = None: one extra bounds pass over x and y",
                   extra={"timing": t.as_dict()})

    def memory_row(label, fn):
        def go():
            fn()
            free_memory()
            with PeakMemory() as pm:
                t0 = time.perf_counter()
                out = fn()
                dt = time.perf_counter() - t0
            del out
            return Row(label, dt, None, pm.extra_mib, "MiB",
                       note=f"peak RSS - RSS before ({pm.samples} samples every 2 ms + VmHWM)",
                       extra={"memory": pm.as_dict()})
        return go

    planes_of = {
        "count": lambda: ours("count")()[0],
        "mean": lambda: ours("mean", value=v, stats="mean")()[0],
        "count_cat": lambda: ours("count_cat", category=c)()[0],
    }
    steps = [
        ("probe", probe),
        ("ours count", ours_row("t_count", "ours count", ours("count"), xy_bytes)),
        ("ours mean", ours_row("t_mean", "ours mean", ours("mean", value=v, stats="mean"),
                               xyv_bytes, note="stats='mean': count + sum, one pass")),
        ("ours all value stats", ours_row(
            "t_all", "ours count/sum/mean/min/max", ours(("count", "mean", "min", "max"),
                                                         value=v), xyv_bytes,
            note="every value statistic in one pass (the default without stats=)")),
        ("ours count_cat", ours_row("t_count_cat", f"ours count_cat {K} categories",
                                    ours("count_cat", category=c), xyc_bytes)),
        ("datashader count", ds_row("ds_count", "datashader points count",
                                    lambda ds: ds.count(), "t_count", planes_of["count"],
                                    GOALS["datashader_count"], xy_bytes)),
        ("datashader mean", ds_row("ds_mean", "datashader points mean",
                                   lambda ds: ds.mean("v"), "t_mean", planes_of["mean"],
                                   GOALS["datashader_mean"], xyv_bytes)),
        ("datashader count_cat", ds_row("ds_count_cat", f"datashader count_cat {K}",
                                        lambda ds: ds.count_cat("c"), "t_count_cat",
                                        planes_of["count_cat"], GOALS["datashader_count_cat"],
                                        xyc_bytes)),
        ("histogram2d", hist_row),
        ("auto window", auto_row),
        ("memory all", memory_row("extra memory, all value stats",
                                  ours(("count", "mean", "min", "max"), value=v))),
        ("memory cat", memory_row(f"extra memory, count_cat {K}",
                                  ours("count_cat", category=c))),
    ]
    rows.extend(run_steps(steps, "points"))
    # ours all stats vs datashader mean, for the record
    if ctx.get("t_all") and any(r.name == "datashader points mean" and r.time_s for r in rows):
        ds_mean = next(r.time_s for r in rows if r.name == "datashader points mean")
        ctx["datashader_mean_over_ours_all"] = ds_mean / ctx["t_all"]
    state.clear()
    del x, y, v, c
    free_memory()

    wall = time.perf_counter() - wall0
    title = (f"dlviz_gpu points benchmark: {n:.3g} float32 points (+ value, + int8 codes) -> "
             f"{W} x {H}, best of {R}" + (" [quick]" if quick else ""))
    first = ""
    if "datashader_mean_over_ours_all" in ctx:
        first = (f"datashader mean / ours with every value statistic: "
                 f"{ctx['datashader_mean_over_ours_all']:.2f}x; ")
    table, footer = print_summary(rows, title, cfg, ctx, wall, first=first)
    payload = suite_payload(
        "points", stamp=stamp, cfg=cfg, found=found, load0=load0, ctx=ctx, rows=rows,
        wall=wall, table=table, modules=("numpy", "numba", "datashader", "pandas", "xarray"),
        datashader_mean_over_ours_all=ctx.get("datashader_mean_over_ours_all"),
        data="x, y, value: bell-shaped pseudo-random float32 (sum of four uniforms, "
             "mean 0, std 1); category: int8 codes 0..9, about uniform",
        footer=footer,
        definitions={
            "time": "best of N wall-clock calls after one warm-up call; each call returns "
                    "finished host arrays",
            "GB/s": "input bytes read / time (1e9 bytes): x and y, plus the value or the "
                    "category column where the row uses one",
            "of probe": "our GB/s / probe GB/s (probe = numba parallel sum over x)",
            "x ours": "baseline time / our time on the same data (speed-up of ours)",
            "x count": "time / time of our count with an explicit window",
            "MiB": "peak RSS during the call minus RSS before it",
        })
    path = write_json(out_dir, "points", payload, stamp)
    print(f"wrote {path}")
    return payload
