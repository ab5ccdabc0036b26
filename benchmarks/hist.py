"""CPU histograms: one process, one array, every comparison.

A 2**28-element float32 array (1 GiB) into 1000 bins.  The rows:

1. bandwidth probe: a numba-parallel sum over the same array (the ceiling)
2. ``dv.histogram`` with 1000 linear bins over a given range: time / probe time
3. ``numpy.histogram`` (same bins and range) on a 2**25 slice, scaled x8 to
   the whole array (NumPy is slow; the table says so): its time / ours
4. NumPy with the edges array instead of ``bins=1000, range=`` (information)
5. log and symlog bins (1000 each): time / probe time
6. ``range=None``: the exact min/max pass included
7. a whole "model": 50 tensors of mixed sizes, layouts and dtypes in one call
8. extra resident memory during the linear and the range=None calls

Every timed call returns the finished ``Histogram``.  Times are best-of-N
after a warm-up call (which absorbs JIT compilation; the kernels are cached
on disk after the first run).  Nothing here asserts a timing.
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

SIZE = 1 << 28
BINS = 1000
RANGE = (-4.0, 4.0)
NUMPY_SLICE = 1 << 25
MODEL_TENSORS = 50

GOALS = {
    "over_probe": ("<=", 2.0),
    "numpy_speedup": (">=", 20.0),
    "extra_memory_mib": ("<", 64.0),
}



def _settings(quick: bool, size: int | None, repeats: int | None) -> dict:
    note = ""
    if size is None:
        size = SIZE
        avail = available_bytes()
        # the 1 GiB array, the model's copies and room to spare
        if avail is not None and avail < 4 * 2 ** 30:
            size = 1 << 26
            note = (f"2**26 elements (256 MiB) instead of 2**28: only "
                    f"{avail / 2 ** 30:.1f} GiB of memory available")
    elif size != SIZE:
        note = f"{size} elements instead of 2**28 (--size)"
    size = max(int(size), 1 << 16)
    reps = repeats or (5 if quick else 9)
    return {"size": size, "bins": BINS, "range": list(RANGE), "repeats": reps,
            "probe_repeats": max(reps, 5) if quick else 10,
            "baseline_repeats": 2 if quick else 3,
            "numpy_slice": min(NUMPY_SLICE, size), "quick": quick, "size_note": note}



def _model(a: np.ndarray, rng) -> tuple[dict, int]:
    """50 tensors of mixed sizes as views of ``a`` (no copies), plus a few small
    bfloat16 / float16 / int8 copies, as a name -> tensor dict; and their bytes."""
    n = a.size
    budget = n // 4                         # a quarter of the array in all
    sizes = np.exp(rng.uniform(np.log(64), np.log(budget / 8), MODEL_TENSORS))
    sizes = (sizes * budget / sizes.sum()).astype(np.int64)
    tensors: dict = {}
    nbytes = 0
    start = 0
    torch = None
    try:
        import torch
    except Exception:
        pass
    for i, s in enumerate(sizes):
        s = int(max(s, 16))
        cols = int(2 ** rng.integers(3, 11))
        rows = max(1, s // cols)
        v = a[start: start + rows * cols].reshape(rows, cols)
        start += rows * cols
        kind = i % 10
        if kind == 7:
            v = v.T                          # transposed view
        elif kind == 8 and rows > 2:
            v = v[::2]                       # strided view
        if kind == 9 and rows * cols <= 1 << 20:
            if torch is not None and i % 20 == 9:
                v = torch.from_numpy(np.ascontiguousarray(v)).to(torch.bfloat16)
            else:
                v = v.astype(np.float16)
        elif kind == 6 and rows * cols <= 1 << 18:
            v = (v * 30).astype(np.int8)
        tensors[f"layer{i:02d}"] = v
        nbytes += (v.numel() * v.element_size()) if hasattr(v, "numel") else v.nbytes
    return tensors, nbytes


def run(quick: bool = False, out_dir: str = DEFAULT_OUT, size: int | None = None,
        repeats: int | None = None) -> dict:
    """Run every row, print the table, write the JSON; returns the JSON payload."""
    wall0 = time.perf_counter()
    load0 = loadavg()
    stamp = timestamp()
    cfg = _settings(quick, size, repeats)
    n = cfg["size"]
    R = cfg["repeats"]

    found = ensure_dlviz()
    import dlviz_gpu as dv

    rows: list[Row] = []
    ctx: dict = {}
    print(f"hist benchmark: {n} float32 ({n * 4 / 2 ** 30:.2f} GiB) -> {BINS} bins, best of "
          f"{R} after a warm-up" + (" [quick]" if quick else ""), file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    side = 1 << 12
    a = random_matrix(max(1, n // side), side, np.float32, seed=3).reshape(-1)
    if a.size < n:
        a = np.concatenate([a, random_matrix(1, n - a.size, np.float32, seed=4).reshape(-1)])
    ctx["generate_s"] = time.perf_counter() - t0
    nbytes = a.nbytes

    def ours(x, **kw):
        def fn():
            return dv.histogram(x, **kw)
        return fn

    def ratio_row(name, fn, nb, note="", goal=None, extra=None, key=None):
        t = best_of(fn, R)
        if key:
            ctx[key] = t.best
        probe = ctx.get("t_probe")
        scale = nb / nbytes        # probe time scaled to the bytes this row reads
        value = t.best / (probe * scale) if probe else None
        return Row(name, t.best, nb / t.best / 1e9, value, "x probe", goal, note=note,
                   extra={"timing": t.as_dict(), **(extra or {})})

    # ---- the rows ------------------------------------------------------------
    def probe():
        t, gbps = bandwidth_probe(a, cfg["probe_repeats"])
        ctx["probe_gbps"] = gbps
        ctx["t_probe"] = t.best
        return Row("bandwidth probe (parallel sum)", t.best, gbps,
                   note="numba prange sum over the same array: the read ceiling",
                   extra={"timing": t.as_dict(), "tasks": 64})

    def linear():
        fn = ours(a, bins=BINS, range=RANGE)
        h = fn()
        ctx["linear_counts"] = h.counts
        return ratio_row(f"ours linear {BINS} bins, range given", fn, nbytes,
                         goal=GOALS["over_probe"], key="t_linear",
                         note="value = our time / probe time (2 = half the streaming rate)",
                         extra={"total": int(h.total)})

    def numpy_row(edges_array: bool):
        def go():
            m = cfg["numpy_slice"]
            sub = a[:m]
            edges = np.linspace(RANGE[0], RANGE[1], BINS + 1)

            def fn():
                if edges_array:
                    return np.histogram(sub, bins=edges)
                return np.histogram(sub, bins=BINS, range=RANGE)
            t = best_of(fn, cfg["baseline_repeats"], warmup=1)
            scale = n / m
            scaled = t.best * scale
            ours_t = ctx.get("t_linear")
            mine = dv.histogram(sub, bins=BINS, range=RANGE).counts
            theirs = fn()[0]
            diff = int(np.abs(mine - theirs).sum())
            form = "bins=edges array" if edges_array else f"bins={BINS}, range={RANGE}"
            why = ""
            if diff and not edges_array:
                # NumPy 2 computes bins+range edges in the data's dtype (float32 here)
                why = (" (NumPy's bins+range path rounds its edges to float32, the data's "
                       "dtype; ours and the edges-array call use the float64 edges)")
            return Row(f"numpy.histogram ({'edges array' if edges_array else 'bins+range'})",
                       scaled, nbytes / scaled / 1e9,
                       scaled / ours_t if ours_t else None, "x ours",
                       None if edges_array else GOALS["numpy_speedup"],
                       note=f"np.histogram(a[:{m}], {form}) timed on the 2**{m.bit_length() - 1} "
                            f"slice ({t.best * 1e3:.0f} ms) and scaled x{scale:g} to the whole "
                            f"array; counts vs ours on the slice differ by {diff}{why}",
                       extra={"timing": t.as_dict(), "slice": m, "scale": scale,
                              "count_difference_vs_ours": diff})
        return go

    def scaled_row(scale_name):
        def go():
            if scale_name == "log":
                kw = {"bins": BINS, "range": (1e-4, 4.0), "scale": "log"}
                note = "range (1e-4, 4): the negative half is underflow"
            else:
                kw = {"bins": BINS, "range": RANGE, "scale": "symlog", "linthresh": 1e-2}
                note = "range (-4, 4), linthresh 0.01"
            return ratio_row(f"ours {scale_name} {BINS} bins", ours(a, **kw), nbytes, note=note)
        return go

    def range_none():
        t_mm = best_of(ours(a[:1 << 16], bins=BINS), 1)   # warm the min/max pass
        del t_mm
        return ratio_row(f"ours linear {BINS} bins, range=None", ours(a, bins=BINS), nbytes,
                         key="t_auto",
                         note="one exact min/max pass, then the histogram over (-m, m)")

    def model_row():
        rng = np.random.default_rng(5)
        tensors, nb = _model(a, rng)
        fn = ours(tensors, bins=256)
        h = fn()
        t = best_of(fn, R)
        sizes = [int(np.prod(getattr(v, "shape"))) for v in tensors.values()]
        probe = ctx.get("t_probe")
        value = t.best / (probe * nb / nbytes) if probe else None
        kinds = sorted({str(getattr(v, "dtype")).replace("torch.", "") for v in tensors.values()})
        return Row(f"ours whole model: {len(tensors)} tensors, one call", t.best, nb / t.best / 1e9,
                   value, "x probe", None,
                   note=f"{len(tensors)} tensors of {min(sizes)}..{max(sizes)} elements "
                        f"({nb / 2 ** 20:.0f} MiB; {', '.join(kinds)}; some transposed or "
                        f"strided), 256 bins, range=None shared: min/max pass included",
                   extra={"timing": t.as_dict(), "tensors": len(tensors), "bytes": nb,
                          "counts_shape": list(h.counts.shape)})

    def memory_row(label, **kw):
        def go():
            fn = ours(a, **kw)
            fn()
            free_memory()
            with PeakMemory() as pm:
                t0 = time.perf_counter()
                out = fn()
                dt = time.perf_counter() - t0
            del out
            return Row(f"extra memory, {label}", dt, nbytes / dt / 1e9, pm.extra_mib, "MiB",
                       GOALS["extra_memory_mib"],
                       note=f"peak RSS - RSS before ({pm.samples} samples every 2 ms, and "
                            f"VmHWM); time is one call under the sampler",
                       extra={"memory": pm.as_dict()})
        return go

    steps = [("probe", probe), ("linear", linear), ("numpy", numpy_row(False)),
             ("numpy edges", numpy_row(True)), ("log", scaled_row("log")),
             ("symlog", scaled_row("symlog")), ("range=None", range_none),
             ("model", model_row),
             ("memory linear", memory_row("linear, range given", bins=BINS, range=RANGE)),
             ("memory auto", memory_row("range=None", bins=BINS))]
    rows.extend(run_steps(steps, "hist"))
    del a
    free_memory()

    wall = time.perf_counter() - wall0
    title = (f"dlviz_gpu hist benchmark: {n} float32 -> {BINS} bins, best of {R}"
             + (" [quick]" if quick else ""))
    table, _ = print_summary(rows, title, cfg, ctx, wall)
    import numba

    payload = suite_payload(
        "hist", stamp=stamp, cfg=cfg, found=found, load0=load0, ctx=ctx, rows=rows,
        wall=wall, table=table, modules=("numpy", "numba", "torch"),
        numba_threads=numba.get_num_threads(),
        definitions={
            "time": "best of N wall-clock calls after one warm-up call; each call returns "
                    "the finished Histogram",
            "GB/s": "input bytes read / time (1e9 bytes)",
            "x probe": "our time / (probe time scaled to the bytes this row reads); "
                       "1 = the streaming rate, the goal is <= 2",
            "x ours": "NumPy time (measured on a slice, scaled to the whole array) / our time",
            "MiB": "peak RSS during the call minus RSS before it",
        })
    path = write_json(out_dir, "hist", payload, stamp)
    print(f"wrote {path}")
    return payload
