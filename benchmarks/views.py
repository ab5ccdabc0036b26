"""Server-side latency and bytes of a zoom: ``dv.heatmap`` and ``dv.scatter``.

What the Bokeh server does between a range change arriving from the browser
and the new image being ready to send, measured in-process without a browser:

* each view is rendered the way a Bokeh server renders it
  (``hv.renderer("bokeh").instance(mode="server").get_plot(dmap, doc=Document())``,
  the plot's figure a root of the document);
* a zoom is ``RangeXY.event(x_range=..., y_range=...)``: it runs the
  DynamicMap callback (window, kernels, statistic planes), HoloViews' element
  processing and the Bokeh model update, synchronously, which is everything
  the server does before it serialises the patch;
* two different windows of the same size alternate, so nothing can come from
  a cache (the view's update counter is checked after every event), after
  warm-up events that absorb numba compilation; the **median** of N events
  is reported, split into the view's own aggregation time
  (``dmap.view.last["seconds"]``: window, kernel, statistic planes) and the
  rest (HoloViews + Bokeh);
* bytes per update: the sum of ``nbytes`` of the arrays in the plot's
  ``ColumnDataSource`` after the update, and the size of the ``PATCH-DOC``
  message Bokeh would send (header, metadata and content JSON plus binary
  buffers, built from the document's change events with
  ``bokeh.protocol.Protocol``), both compared with the visible canvas as an
  RGBA image (frame width x height x 4 bytes);
* a few extra events run under cProfile, and their time is attributed to
  modules (builtins to their caller), so a missed goal says where the time
  went.

The scatter part needs ``dv.scatter`` (``dlviz_gpu/views/points.py``); where
it cannot be imported its rows carry the error instead of numbers.
Nothing here asserts a timing.  Other processes on the machine inflate the
numbers: the load average is recorded before and after every scenario and the
title says when it was high.
"""

from __future__ import annotations

import cProfile
import gc
import os
import pstats
import statistics
import sys
import time
import traceback

import numpy as np

from ._common import (Row, ensure_dlviz, format_table, high_load_note, loadavg, machine_info,
                      peak_rss_mib, progress, random_matrix, rss_mib, timestamp, write_json)

DEFAULT_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")

WIDTH, HEIGHT = 800, 600          # plot frame in screen pixels (pixel_ratio 1)
SIZE = 16384                      # matrix side: 16384 x 16384 float32 = 1 GiB
POINTS = 10 ** 8                  # scatter points: x, y float32 = 800 MB
DEEP = (40, 30)                   # deep zoom: visible cells (columns, rows)
PROFILE_EVENTS = 5

GOALS = {
    "full": ("<=", 150.0),        # ms, median update of the full view
    "zoom": ("<=", 30.0),         # ms, median update of a 1% (area) window
    "bytes": ("<=", 1.0),         # bytes per update / visible canvas as RGBA
}


def _available_bytes():
    try:
        import psutil

        return psutil.virtual_memory().available
    except Exception:
        return None


def _settings(quick: bool, size: int | None, points: int | None, repeats: int | None) -> dict:
    notes = []
    avail = _available_bytes()
    if size is None:
        size = SIZE
        if avail is not None and avail < 4 * 2 ** 30:
            size = 8192
            notes.append(f"matrix {size} x {size}: only {avail / 2 ** 30:.1f} GiB of memory "
                         f"available")
    elif size != SIZE:
        notes.append(f"matrix {size} x {size} instead of {SIZE} x {SIZE} (--size)")
    if points is None:
        points = POINTS
        if avail is not None and avail < 4 * 2 ** 30:
            points = 3 * 10 ** 7
            notes.append(f"{points:.0e} scatter points: only {avail / 2 ** 30:.1f} GiB of "
                         f"memory available")
    elif points != POINTS:
        notes.append(f"{points:.3g} scatter points instead of {POINTS:.0e} (--points)")
    return {"size": int(size), "points": int(points), "width": WIDTH, "height": HEIGHT,
            "repeats": int(repeats or (6 if quick else 15)), "warmup": 2,
            "profile_events": PROFILE_EVENTS, "deep_cells": list(DEEP), "quick": quick,
            "size_note": "; ".join(notes)}


# --------------------------------------------------------------------------
# Rendering a view as the Bokeh server does, and zooming it
# --------------------------------------------------------------------------

def _array_bytes(value) -> int:
    """Bytes of one ColumnDataSource column: arrays by nbytes, scalars as 8-byte numbers."""
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    if isinstance(value, (list, tuple)):
        return sum(_array_bytes(v) for v in value)
    return 8


def _patch_bytes(events) -> tuple[int, float]:
    """Size of the PATCH-DOC message for ``events`` (bytes) and the time to build it (s)."""
    if not events:
        return 0, 0.0
    from bokeh.protocol import Protocol

    t0 = time.perf_counter()
    msg = Protocol().create("PATCH-DOC", list(events))
    size = len(msg.header_json) + len(msg.metadata_json) + len(msg.content_json)
    for buf in msg.buffers:
        size += len(buf.to_bytes())
    return size, time.perf_counter() - t0


def _norm_window(w):
    try:
        return tuple(tuple(float(v) for v in r) for r in w)
    except TypeError:
        return None


class Served:
    """One view rendered into a Bokeh ``Document`` in server mode; ``zoom`` fires a range change."""

    def __init__(self, dmap):
        import holoviews as hv
        import holoviews.plotting.bokeh  # noqa: F401  (registers the backend)
        from bokeh.document import Document

        self.dmap = dmap
        self.view = dmap.view
        self.doc = Document()
        self.plot = hv.renderer("bokeh").instance(mode="server").get_plot(dmap, doc=self.doc)
        if self.plot.state not in self.doc.roots:
            self.doc.add_root(self.plot.state)
        self.events: list = []
        self.doc.on_change(self.events.append)
        ranges = [s for s in dmap.streams if isinstance(s, hv.streams.RangeXY)]
        if not ranges:
            raise RuntimeError("the DynamicMap has no RangeXY stream")
        self.stream = ranges[0]

    def current(self):
        """The RangeXY stream's current (x_range, y_range), as float tuples (or None)."""
        return _norm_window((self.stream.x_range, self.stream.y_range))

    def source_bytes(self) -> int:
        src = self.plot.handles.get("source")
        if src is None:
            return 0
        return sum(_array_bytes(v) for v in src.data.values())

    def zoom(self, x_range, y_range, profiler: cProfile.Profile | None = None) -> dict:
        """Fire one range change; returns its wall time, the view's own time and the bytes.

        ``profiler`` (optional) is enabled around the range change only, not
        around the bookkeeping and the patch serialisation that follow it.
        """
        self.events.clear()
        before = self.view.updates
        if profiler is not None:
            profiler.enable()
        t0 = time.perf_counter()
        try:
            self.stream.event(x_range=tuple(x_range), y_range=tuple(y_range))
        finally:
            wall = time.perf_counter() - t0
            if profiler is not None:
                profiler.disable()
        if self.view.updates != before + 1:
            raise RuntimeError(f"the range change re-aggregated {self.view.updates - before} "
                               "times instead of once (cached or repeated callback)")
        last = dict(self.view.last)
        patch, ser = _patch_bytes(self.events)
        self.events.clear()
        return {"wall_s": wall, "aggregate_s": float(last.get("seconds", float("nan"))),
                "source_bytes": self.source_bytes(), "patch_bytes": patch,
                "serialize_s": ser, "canvas": last.get("canvas"),
                "view_bytes": last.get("bytes"), "window": last.get("window")}

    def close(self):
        try:
            self.plot.cleanup()
        except Exception:
            pass
        self.doc.clear()


# --------------------------------------------------------------------------
# Where the time goes
# --------------------------------------------------------------------------

def _bucket(filename: str) -> str | None:
    """A module label for a profiled function's file; None for builtins."""
    if not filename or filename.startswith("~") or filename.startswith("<"):
        return None
    f = filename.replace("\\", "/")
    if "/site-packages/" in f:
        return f.split("/site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    for top in ("/kernels/", "/dlviz_gpu/"):
        if top in f:
            return top.strip("/") + "/" + f.split(top, 1)[1]
    if "/lib/python" in f:
        return "stdlib"
    return os.path.basename(f)


def profile_split(fn, n: int) -> dict:
    """Own time per module of ``fn(k, profiler)`` for k < n; builtins go to their callers.

    ``fn`` returns the wall time of the profiled part and enables / disables
    the profiler around just that part.
    """
    prof = cProfile.Profile()
    wall = sum(fn(k, prof) for k in range(n))
    st = pstats.Stats(prof).stats
    buckets: dict = {}
    funcs = []
    for (fname, line, name), (cc, nc, tt, ct, callers) in st.items():
        b = _bucket(fname)
        funcs.append((tt, f"{b or 'builtin'}:{line}({name})" if b else name))
        if b is not None:
            buckets[b] = buckets.get(b, 0.0) + tt
            continue
        # a builtin (numpy ufunc, dict method, ...): split its own time over its callers
        share = sum(v[2] for v in callers.values()) or 0.0
        for (cf, _cl, _cn), v in callers.items():
            cb = _bucket(cf) or "builtin"
            part = tt * (v[2] / share) if share else tt / max(len(callers), 1)
            buckets[cb] = buckets.get(cb, 0.0) + part
        if not callers:
            buckets["builtin"] = buckets.get("builtin", 0.0) + tt
    total = sum(buckets.values()) or 1.0
    per_event = {k: v / n for k, v in sorted(buckets.items(), key=lambda kv: -kv[1])}
    funcs.sort(reverse=True)
    return {"events": n, "wall_s_per_event": wall / n,
            "own_s_per_event_by_module": per_event,
            "share_by_module": {k: v * n / total for k, v in per_event.items()},
            "top_functions_own_s_per_event": [(name, tt / n) for tt, name in funcs[:12]]}


def _summary(prof: dict, top: int = 5) -> str:
    parts = [f"{k} {v * 1e3:.1f}" for k, v in list(prof["own_s_per_event_by_module"].items())[:top]]
    return ", ".join(parts) + " ms"


# --------------------------------------------------------------------------
# One scenario: alternate two windows of the same size
# --------------------------------------------------------------------------

def _load_text(a, b) -> str:
    if not a or not b:
        return "load n/a"
    return f"load {a[0]:.2f}->{b[0]:.2f}"


def scenario(served: Served, label: str, windows, cfg: dict, goal, canvas_bytes: int,
             profile: bool, ctx: dict, key: str) -> list[Row]:
    """Latency rows (update, its split) and bytes rows for one kind of zoom."""
    R, warm = cfg["repeats"], cfg["warmup"]
    # HoloViews memoizes the last call of a DynamicMap callback: a range change
    # equal to the stream's current value would not re-aggregate.  Start the
    # alternation on the window that differs from the current one.
    off = 1 if served.current() == _norm_window(windows[0]) else 0

    def fire(k, profiler=None):
        return served.zoom(*windows[(k + off) % 2], profiler=profiler)

    gc.collect()
    load0 = loadavg()
    for k in range(warm):
        fire(k)
    recs = [fire(warm + k) for k in range(R)]
    load1 = loadavg()
    prof = None
    if profile:
        prof = profile_split(lambda k, p: fire(warm + R + k, p)["wall_s"],
                             cfg["profile_events"])
    walls = [r["wall_s"] for r in recs]
    aggs = [r["aggregate_s"] for r in recs]
    rests = [r["wall_s"] - r["aggregate_s"] for r in recs]
    med, med_agg, med_rest = (statistics.median(walls), statistics.median(aggs),
                              statistics.median(rests))
    ser = statistics.median(r["serialize_s"] for r in recs)
    src = max(r["source_bytes"] for r in recs)
    patch = max(r["patch_bytes"] for r in recs)
    canvas = recs[-1]["canvas"]
    ctx[key] = {"median_s": med, "source_bytes": src, "patch_bytes": patch}
    timing = {"median_s": med, "best_s": min(walls), "max_s": max(walls), "times_s": walls,
              "aggregate_times_s": aggs, "repeats": R, "warmup_events": warm,
              "windows": [list(map(list, w)) for w in windows], "canvas": canvas,
              "serialize_median_s": ser, "loadavg_start": load0, "loadavg_end": load1}
    note = (f"median of {R} range changes alternating {_fmt_window(windows[0])} and "
            f"{_fmt_window(windows[1])}; image {canvas[0]} x {canvas[1]} px" if canvas else
            f"median of {R} range changes")
    note += f"; PATCH-DOC serialisation {ser * 1e3:.1f} ms more (not in the time); " \
            f"{_load_text(load0, load1)}"
    if prof:
        note += f"; profile: {_summary(prof)}"
    rows = [
        Row(f"{label}: update", med, None, med * 1e3, "ms median", goal, note=note,
            extra={"timing": timing, "profile": prof}),
        Row(f"{label}:   view aggregation", med_agg, None, med_agg / med if med else None,
            "of update",
            note="dmap.view.last['seconds']: window, kernel, statistic planes, dtype casts",
            extra={"median_s": med_agg}),
        Row(f"{label}:   HoloViews + Bokeh", med_rest, None, med_rest / med if med else None,
            "of update", note="update minus view aggregation: element, ranges, CDS update",
            extra={"median_s": med_rest}),
        Row(f"{label}: bytes (CDS arrays)", None, None, src / canvas_bytes, "x canvas",
            GOALS["bytes"],
            note=f"{src:,} B in the ColumnDataSource vs {canvas_bytes:,} B of a "
                 f"{cfg['width']} x {cfg['height']} RGBA canvas",
            extra={"bytes": src, "canvas_bytes": canvas_bytes}),
        Row(f"{label}: bytes (PATCH-DOC)", None, None, patch / canvas_bytes, "x canvas",
            GOALS["bytes"], note=f"{patch:,} B: the websocket message Bokeh builds for the "
                                 "update (JSON + binary buffers)",
            extra={"bytes": patch, "canvas_bytes": canvas_bytes}),
    ]
    return rows


def _fmt_window(w) -> str:
    (a, b), (c, d) = w
    return f"x {a:g}..{b:g} y {c:g}..{d:g}"


def _error_rows(label: str, names, exc: BaseException) -> list[Row]:
    tb = traceback.format_exc()
    return [Row(f"{label}: {n}", error=f"{type(exc).__name__}: {exc}",
                extra={"traceback": tb}) for n in names]


SCENARIO_ROWS = ("update", "  view aggregation", "  HoloViews + Bokeh", "bytes (CDS arrays)",
                 "bytes (PATCH-DOC)")


# --------------------------------------------------------------------------
# The suite
# --------------------------------------------------------------------------

def _matrix_part(dv, cfg, rows, ctx, bar):
    n = cfg["size"]
    W, H = cfg["width"], cfg["height"]
    canvas_bytes = W * H * 4
    t0 = time.perf_counter()
    a = random_matrix(n, n, np.float32, seed=1)
    ctx["matrix_generate_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    dmap = dv.heatmap(a, width=W, height=H)
    build = time.perf_counter() - t0
    t0 = time.perf_counter()
    served = Served(dmap)
    first = time.perf_counter() - t0
    rows.append(Row(f"heatmap {n}^2: build + first frame", build + first, None, None, "",
                    note=f"dv.heatmap {build * 1e3:.0f} ms (overview pass over the whole "
                         f"matrix, incl. first-call JIT) + get_plot {first * 1e3:.0f} ms",
                    extra={"build_s": build, "get_plot_s": first}))
    bar.update(1)
    side = n / 10.0
    cw, ch = DEEP
    plans = [
        ("full", f"heatmap {n}^2 full view", GOALS["full"],
         (((0.0, float(n)), (0.0, float(n))),
          ((-0.02 * n, 1.02 * n), (-0.02 * n, 1.02 * n)))),
        ("zoom", f"heatmap 1% window ({side:.0f}^2 cells)", GOALS["zoom"],
         (((0.5 * n, 0.5 * n + side), (0.5 * n, 0.5 * n + side)),
          ((0.2 * n, 0.2 * n + side), (0.3 * n, 0.3 * n + side)))),
        ("deep", f"heatmap deep zoom ({cw} x {ch} cells)", None,
         (((n // 2, n // 2 + cw), (n // 2, n // 2 + ch)),
          ((n // 4, n // 4 + cw), (n // 3, n // 3 + ch)))),
    ]
    try:
        for key, label, goal, windows in plans:
            bar.set_postfix_str(label)
            try:
                rows.extend(scenario(served, label, windows, cfg, goal, canvas_bytes,
                                     profile=goal is not None, ctx=ctx, key="matrix_" + key))
            except Exception as exc:
                rows.extend(_error_rows(label, SCENARIO_ROWS, exc))
            bar.update(1)
        # the same full view of a matrix 64x smaller: the bytes must not change
        m = n // 8 if n // 8 >= 1024 else max(n // 2, 1)
        label = f"heatmap bytes, {n}^2 vs {m}^2 full view"
        bar.set_postfix_str(label)
        try:
            small = Served(dv.heatmap(np.ascontiguousarray(a[:m, :m]), width=W, height=H))
            rec = small.zoom((0.0, float(m)), (0.0, float(m)))
            small.close()
            big = ctx["matrix_full"]["source_bytes"]
            comparable = m * m >= W * H and m >= H
            rows.append(Row(label, None, None, big / rec["source_bytes"],
                            f"x {m}^2", ("<=", 1.0) if comparable else None,
                            note=f"CDS bytes {big:,} for {n}^2 vs {rec['source_bytes']:,} for "
                                 f"{m}^2 ({rec['canvas'][0]} x {rec['canvas'][1]} px): "
                                 f"independent of the matrix size once it has at least as "
                                 f"many cells as the canvas has pixels"
                                 + ("" if comparable else " (not so here: no goal)")
                                 + f"; the full view sends {big / a.nbytes:.2%} of the "
                                   f"matrix's {a.nbytes:,} B",
                            extra={"bytes_big": big, "bytes_small": rec["source_bytes"],
                                   "small_side": m, "patch_bytes_small": rec["patch_bytes"],
                                   "fraction_of_matrix_bytes": big / a.nbytes}))
        except Exception as exc:
            rows.extend(_error_rows(label, ("",), exc))
        bar.update(1)
    finally:
        served.close()
        del served, dmap, a
        gc.collect()


def _scatter_part(dv, cfg, rows, ctx, bar):
    N = cfg["points"]
    W, H = cfg["width"], cfg["height"]
    canvas_bytes = W * H * 4
    label0 = f"scatter {N:.3g} points"
    try:
        scatter = dv.scatter
    except Exception as exc:  # the views module is not there yet: a reported gap
        for lab in (f"{label0} full view", f"{label0} 1% window", f"{label0} deep zoom"):
            rows.extend(_error_rows(lab, SCENARIO_ROWS[:1], exc))
        bar.update(5)
        return
    t0 = time.perf_counter()
    x = random_matrix(1, N, np.float32, seed=11).reshape(-1)
    y = random_matrix(1, N, np.float32, seed=12).reshape(-1)
    ctx["points_generate_s"] = time.perf_counter() - t0
    x0, x1 = float(x.min()), float(x.max())
    y0, y1 = float(y.min()), float(y.max())
    t0 = time.perf_counter()
    try:
        dmap = scatter(x, y, width=W, height=H)
    except TypeError:  # no width/height keywords
        dmap = scatter(x, y)
    build = time.perf_counter() - t0
    t0 = time.perf_counter()
    served = Served(dmap)
    first = time.perf_counter() - t0
    rows.append(Row(f"{label0}: build + first frame", build + first, None, None, "",
                    note=f"dv.scatter {build * 1e3:.0f} ms (overview, incl. first-call JIT) "
                         f"+ get_plot {first * 1e3:.0f} ms",
                    extra={"build_s": build, "get_plot_s": first,
                           "data_bounds": [[x0, x1], [y0, y1]]}))
    bar.update(1)
    dx, dy = x1 - x0, y1 - y0
    pad = 0.02

    def box(fx, fy, sx, sy):
        return ((x0 + fx * dx, x0 + (fx + sx) * dx), (y0 + fy * dy, y0 + (fy + sy) * dy))

    plans = [
        ("full", f"{label0} full view", GOALS["full"],
         (((x0, x1), (y0, y1)), box(-pad, -pad, 1 + 2 * pad, 1 + 2 * pad))),
        # bell-shaped data centred on 0: windows near the centre hold many points
        ("zoom", f"{label0} 1% window", GOALS["zoom"],
         (box(0.45, 0.45, 0.1, 0.1), box(0.40, 0.48, 0.1, 0.1))),
        ("deep", f"{label0} deep zoom (1e-6 of the area)", None,
         (box(0.5, 0.5, 1e-3, 1e-3), box(0.49, 0.51, 1e-3, 1e-3))),
    ]
    try:
        for key, label, goal, windows in plans:
            bar.set_postfix_str(label)
            try:
                rows.extend(scenario(served, label, windows, cfg, goal, canvas_bytes,
                                     profile=goal is not None, ctx=ctx, key="points_" + key))
            except Exception as exc:
                rows.extend(_error_rows(label, SCENARIO_ROWS, exc))
            bar.update(1)
        m = max(N // 10, 1)
        label = f"scatter bytes, {N:.3g} vs {m:.3g} points full view"
        bar.set_postfix_str(label)
        try:
            try:
                sd = scatter(x[:m], y[:m], width=W, height=H)
            except TypeError:
                sd = scatter(x[:m], y[:m])
            small = Served(sd)
            rec = small.zoom((x0, x1), (y0, y1))
            small.close()
            big = ctx["points_full"]["source_bytes"]
            rows.append(Row(label, None, None, big / rec["source_bytes"],
                            f"x {m:.3g} pts", ("<=", 1.0),
                            note=f"CDS bytes {big:,} for {N:.3g} points vs "
                                 f"{rec['source_bytes']:,} for {m:.3g} over the same window; "
                                 f"the full view sends {big / (x.nbytes + y.nbytes):.2%} of "
                                 f"the {x.nbytes + y.nbytes:,} B of x and y",
                            extra={"bytes_big": big, "bytes_small": rec["source_bytes"],
                                   "small_points": m, "patch_bytes_small": rec["patch_bytes"],
                                   "fraction_of_xy_bytes": big / (x.nbytes + y.nbytes)}))
        except Exception as exc:
            rows.extend(_error_rows(label, ("",), exc))
        bar.update(1)
    finally:
        served.close()
        del served, dmap, x, y
        gc.collect()


def run(quick: bool = False, out_dir: str = DEFAULT_OUT, size: int | None = None,
        repeats: int | None = None, points: int | None = None, scatter: bool = True) -> dict:
    """Run both parts, print the table, write the JSON; returns the JSON payload."""
    wall0 = time.perf_counter()
    load0 = loadavg()
    stamp = timestamp()
    cfg = _settings(quick, size, points, repeats)
    cfg["scatter"] = bool(scatter)
    found = ensure_dlviz()
    import dlviz_gpu as dv
    import holoviews as hv
    import holoviews.plotting.bokeh  # noqa: F401

    hv.renderer("bokeh")
    n, N, R = cfg["size"], cfg["points"], cfg["repeats"]
    print(f"views benchmark: heatmap {n} x {n} float32, scatter {N:.3g} points, "
          f"{cfg['width']} x {cfg['height']} frame, median of {R} range changes"
          + (" [quick]" if quick else ""), file=sys.stderr, flush=True)
    rows: list[Row] = []
    ctx: dict = {}
    bar = progress(5 + (5 if scatter else 0), "views")
    try:
        _matrix_part(dv, cfg, rows, ctx, bar)
    except Exception as exc:  # the heatmap could not even be built
        rows.extend(_error_rows(f"heatmap {n}^2", ("build",), exc))
    if scatter:
        try:
            _scatter_part(dv, cfg, rows, ctx, bar)
        except Exception as exc:
            rows.extend(_error_rows(f"scatter {N:.3g} points", ("build",), exc))
    bar.close()
    for r in rows:
        r.extra.setdefault("rss_after_mib", rss_mib())
    load1 = loadavg()

    wall = time.perf_counter() - wall0
    title = (f"dlviz_gpu views benchmark: server-side time from a range change to the new "
             f"image (median of {R}), {cfg['width']} x {cfg['height']} frame"
             + (" [quick]" if quick else ""))
    if cfg["size_note"]:
        title += f"\n  NOTE: {cfg['size_note']}"
    cores = os.cpu_count() or 1
    title += high_load_note(load0, load1, "; re-run on a quiet machine")
    if not scatter:
        title += "\n  NOTE: scatter part skipped (--no-scatter)"
    table = format_table(rows, title)
    footer = (f"load average {_load_text(load0, load1)} ({cores} cores); total {wall:.1f} s; "
              f"peak RSS {peak_rss_mib():.0f} MiB")
    print(table)
    print(footer)

    payload = {
        "suite": "views",
        "started": stamp,
        "config": cfg,
        "machine": machine_info(("numpy", "numba", "holoviews", "bokeh", "panel",
                                 "datashader")),
        "package": found,
        "loadavg_start": load0,
        "loadavg_end": load1,
        "context": ctx,
        "rows": [r.as_dict() for r in rows],
        "ratios": {r.name: {"value": r.value, "metric": r.metric, "passed": r.passed}
                   for r in rows if r.value is not None},
        "definitions": {
            "update": "wall time of RangeXY.event(x_range, y_range) on a plot rendered with "
                      "hv.renderer('bokeh').instance(mode='server').get_plot(dmap, "
                      "doc=Document()): DynamicMap callback (window, kernels, planes), "
                      "HoloViews element processing and the Bokeh model update; median of N "
                      "events alternating two windows of the same size, after warm-up events",
            "view aggregation": "dmap.view.last['seconds'] of each event (inside the update)",
            "HoloViews + Bokeh": "update - view aggregation, per event, median",
            "bytes (CDS arrays)": "sum of nbytes of the arrays in the plot's ColumnDataSource "
                                  "after the update (scalars 8 B)",
            "bytes (PATCH-DOC)": "size of the PATCH-DOC message bokeh.protocol builds from "
                                 "the document's change events of the update: header, "
                                 "metadata and content JSON plus binary buffers",
            "x canvas": "bytes / (frame width x frame height x 4), the visible canvas as RGBA",
            "profile": "extra events under cProfile; own time per module, builtins "
                       "(numpy ufuncs, ...) attributed to their callers' modules",
        },
        "data": "matrix and points: bell-shaped pseudo-random float32 (sum of four "
                "uniforms, mean 0, std 1)",
        "wall_s": wall,
        "peak_rss_mib": peak_rss_mib(),
        "table": table,
        "footer": footer,
    }
    path = write_json(out_dir, "views", payload, stamp)
    print(f"wrote {path}")
    return payload
