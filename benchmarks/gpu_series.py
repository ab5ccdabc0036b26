"""The series (M4) part of the GPU check: ``check_series(report, sim_smoke=False)``.

Meant to be called by the GPU check (``benchmarks/gpu.py``) after its matrix
sections::

    from .gpu_series import check_series
    rows.extend(check_series(res, sim_smoke=sim_smoke, quick=quick))

It can also run on its own: ``python -m benchmarks.gpu_series [--sim-smoke]``.

1. correct   every CUDA series kernel compiled for real (raw M4, EMA summary,
             smoothed M4, EMA values; native float32 / float64 / int8 / bool,
             bfloat16 and float16 bits, torch CUDA tensors and cupy arrays when
             present) and compared with the CPU kernel on fresh random data with
             the edges: NaN/inf, ties, x == x1, windows partly or wholly
             outside, a monotonic x with plateaus, negative and non-unit strides,
             columns longer than one block's segment, host data streamed in
             several slabs.  Raw results must be identical; smoothed values
             within 1e-9 relative (both sum in float64, in different orders).
2. timing    10^8 float32 samples already on the device to 1200 columns,
             against a device-to-device copy of the same array (the ceiling);
             smoothing, a 1 % zoom, bfloat16 (torch), and host data streamed.

Needs only numpy, numba, numba-cuda (torch and cupy optional).  Everything
goes into ``report["series"]``; the returned rows are for the check's table.
"""

from __future__ import annotations

import os
import sys
import time
import traceback

import numpy as np

from ._common import Row, best_of, ensure_dlviz, format_table, random_matrix

SIZE = 10 ** 8
WIDTH = 1200
SMOOTH_RTOL = 1e-9


# --------------------------------------------------------------------------
# correctness
# --------------------------------------------------------------------------

def _compare(gpu: dict, cpu: dict, smoothed: bool, series=None) -> list[str]:
    """Problems between two result dicts (empty list: they agree)."""
    from dlviz_gpu.kernels.series import STATS

    problems = []
    if set(gpu) != set(STATS):
        return [f"keys {sorted(gpu)} != {sorted(STATS)}"]
    exact = ("count", "nan_count", "first_index", "last_index")
    if not smoothed:
        exact = STATS
    for name in exact:
        a, b = np.asarray(gpu[name]), np.asarray(cpu[name])
        if a.shape != b.shape or not np.array_equal(a, b, equal_nan=a.dtype.kind == "f"):
            bad = np.flatnonzero(~((a == b) | (np.isnan(a) & np.isnan(b))
                                   if a.dtype.kind == "f" else a == b))
            problems.append(f"{name} differs at columns {bad[:5].tolist()}: gpu "
                            f"{a[bad[:5]].tolist()} cpu {b[bad[:5]].tolist()}")
    if smoothed:
        fin = np.isfinite(series) if series is not None else None
        scale = float(np.abs(series[fin]).max()) if fin is not None and fin.any() else 1.0
        for name in ("first", "last", "min", "max"):
            a, b = np.asarray(gpu[name]), np.asarray(cpu[name])
            ok = np.isclose(a, b, rtol=SMOOTH_RTOL, atol=SMOOTH_RTOL * scale, equal_nan=True)
            if not ok.all():
                bad = np.flatnonzero(~ok)
                problems.append(f"{name} differs at columns {bad[:5].tolist()}")
        for name in ("min", "max"):
            gi, ci = np.asarray(gpu[name + "_index"]), np.asarray(cpu[name + "_index"])
            if not np.array_equal(gi < 0, ci < 0):
                problems.append(f"{name}_index: empty columns differ")
                continue
            # near-ties may pick different samples: the picked values must agree
            sel = (gi >= 0) & (gi != ci)
            if sel.any() and series is not None:
                if not np.allclose(series[gi[sel]], series[ci[sel]], rtol=SMOOTH_RTOL,
                                   atol=SMOOTH_RTOL * scale):
                    problems.append(f"{name}_index picks a different value")
    return problems


def _cases(rng, sim: bool, use_torch: bool, use_cupy: bool, n: int | None = None,
           widths=(WIDTH, 700, 97)):
    """(name, host address, device buffer or None, n, x or None, windows, smoothings)."""
    from dlviz_gpu.kernels import DECODE_BF16, DECODE_F16, DECODE_NATIVE

    n = n or (300 if sim else 1_000_003)
    cases = []

    def walk(size, dtype=np.float32, specials=0.01):
        v = np.cumsum(rng.normal(size=size))
        v = np.round(v * 4) / 4                           # coarse: plenty of ties
        pick = rng.random(size) < specials
        v[pick] = rng.choice([np.nan, np.inf, -np.inf], pick.sum())
        return v.astype(dtype)

    def windows(size):
        w_full, w_inner, w_edge = (4, 3, 2) if sim else widths
        out = [((0.0, float(size)), w_full),                      # everything
               ((size * 0.3 + 0.25, size * 0.55), w_inner),      # inner window
               ((float(size // 4), float(size // 2)), w_edge),   # x == x1 on a sample
               ((-size * 0.2, size * 1.3), 3),                    # long columns, partly outside
               ((size + 5.0, size + 50.0), 2)]                    # wholly outside
        return out[:3] if sim else out

    def add(name, arr, decode=DECODE_NATIVE, view=None, smooth=(), x=None, device=None):
        v = arr if view is None else view(arr)
        flat, offset, stride = _address(v)
        cases.append({"name": name, "host": (flat, offset, stride, decode), "n": v.shape[0],
                      "device": device, "x": x, "windows": windows(v.shape[0]),
                      "smooth": smooth})

    y32 = walk(n)
    add("float32", y32, smooth=(0.9,) if sim else (0.6, 0.99))
    add("float32 reversed [::-1]", y32, view=lambda a: a[::-1], smooth=() if sim else (0.9,))
    add("float64 strided [1::3]", walk(3 * n, np.float64), view=lambda a: a[1::3])
    bits = _bf16_bits(walk(n))
    add("bfloat16 bits", bits, decode=DECODE_BF16, smooth=(0.9,))
    add("float16 bits", walk(n, np.float16).view(np.uint16), decode=DECODE_F16)
    add("int8", rng.integers(-128, 128, n).astype(np.int8))
    if not sim:
        add("bool (uint8)", (rng.random(n) < 0.3).view(np.uint8))
        steps = np.cumsum(rng.choice([0, 1, 1, 3], size=n)).astype(np.int64) * 10
        add("float32 with x (int64 steps, plateaus)", y32, x=steps, smooth=(0.9,))
    if use_torch:
        import torch

        from dlviz_gpu.tensors import as_matrix

        for dt, name in ((torch.float32, "torch cuda float32"),
                         (torch.bfloat16, "torch cuda bfloat16"),
                         (torch.float16, "torch cuda float16")):
            t = torch.from_numpy(walk(n)).to(dt).cuda()
            m = as_matrix(t)
            hm = as_matrix(t.cpu())
            cases.append({"name": name, "host": (hm.buffer, hm.offset, hm.cols.t1, hm.decode),
                          "n": n, "device": (m.buffer, m.offset, m.cols.t1, m.decode),
                          "x": None, "windows": windows(n)[:2],
                          "smooth": (0.9,) if dt == torch.float32 else (), "keep": t})
        t = torch.from_numpy(walk(3 * n)).cuda()[1::3]     # torch has no negative strides
        m, hm = as_matrix(t), as_matrix(t.cpu())
        cases.append({"name": "torch cuda float32 [1::3]",
                      "host": (hm.buffer, hm.offset, hm.cols.t1, hm.decode), "n": t.shape[0],
                      "device": (m.buffer, m.offset, m.cols.t1, m.decode), "x": None,
                      "windows": windows(t.shape[0])[:2], "smooth": (), "keep": t})
    if use_cupy:
        import cupy

        from dlviz_gpu.tensors import as_matrix

        c = cupy.asarray(walk(n, np.float64))
        m = as_matrix(c)
        h = cupy.asnumpy(c)
        cases.append({"name": "cupy float64", "host": (h, 0, 1, 0), "n": n,
                      "device": (m.buffer, m.offset, m.cols.t1, m.decode), "x": None,
                      "windows": windows(n)[:2], "smooth": (), "keep": c})
    return cases


def _address(v: np.ndarray):
    itemsize = v.itemsize
    st = v.strides[0] // itemsize if v.shape[0] > 1 else 0
    if st >= 0:
        base = v[:1]
        offset = 0
    else:
        base = v[-1:]
        offset = (v.shape[0] - 1) * -st
    span = (v.shape[0] - 1) * abs(st) + 1
    flat = np.lib.stride_tricks.as_strided(base, shape=(span,), strides=(itemsize,))
    return flat, offset, st


def _bf16_bits(x: np.ndarray) -> np.ndarray:
    bits = np.ascontiguousarray(x, np.float32).view(np.uint32)
    out = ((bits + (np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1))))
           >> np.uint32(16)).astype(np.uint16)
    nan = np.isnan(x)
    out[nan] = ((bits[nan] >> np.uint32(16)) | np.uint32(0x40)).astype(np.uint16)
    return out


def run_correctness(sim: bool, use_torch: bool, use_cupy: bool, seed: int = 20261126,
                    **case_kw) -> dict:
    from dlviz_gpu.kernels import DECODE_NATIVE
    from dlviz_gpu.kernels import series as ks

    rng = np.random.default_rng(seed)
    cases = _cases(rng, sim, use_torch, use_cupy, **case_kw)
    results = []
    calls = failed = 0
    for case in cases:
        flat, off, stride, dec = case["host"]
        n = case["n"]
        xa = None
        if case["x"] is not None:
            xa = (np.ascontiguousarray(case["x"]), 0, 1, DECODE_NATIVE)
        targets = [("host buffer (streamed)", case["host"])]
        if case["device"] is not None:
            targets.append(("device buffer", case["device"]))
        elif not sim:
            from numba import cuda

            d = cuda.to_device(np.ascontiguousarray(flat))
            targets.append(("numba device array", (d, off, stride, dec)))
        smooth_series = {}
        for w in case["smooth"]:
            smooth_series[w] = ks.ema_cpu(flat, off, stride, dec, 0, n, w)
        for x_range, width in case["windows"]:
            if xa is not None:
                lo, hi = float(case["x"][0]), float(case["x"][-1])
                x_range = (lo + (hi - lo) * x_range[0] / n, lo + (hi - lo) * x_range[1] / n)
            start, end, _ = ks.column_runs(n, x_range, width, xa)
            for w in (0.0,) + tuple(case["smooth"]):
                cpu = ks.m4_cpu(flat, off, stride, dec, start, end, smoothing=w)
                for label, (buf, doff, dstride, ddec) in targets:
                    t0 = time.perf_counter()
                    try:
                        gpu = ks.m4_cuda(buf, doff, dstride, ddec, start, end, smoothing=w)
                        problems = _compare(gpu, cpu, bool(w), smooth_series.get(w))
                    except Exception as exc:
                        problems = [f"m4_cuda raised {type(exc).__name__}: {exc}",
                                    traceback.format_exc(limit=4)]
                    calls += 1
                    failed += bool(problems)
                    results.append({"case": case["name"], "buffer": label, "n": n,
                                    "x_range": list(x_range), "width": width, "smoothing": w,
                                    "ok": not problems, "problems": problems,
                                    "seconds": time.perf_counter() - t0})
        # the materialised EMA of a range
        for w in case["smooth"]:
            lo, hi = n // 3, n // 3 + min(n // 2, 50_000)
            label, (buf, doff, dstride, ddec) = targets[-1]
            try:
                got = ks.ema_cuda(buf, doff, dstride, ddec, lo, hi, w).copy_to_host()
                ref = smooth_series[w][lo:hi]
                scale = float(np.nanmax(np.abs(np.where(np.isfinite(ref), ref, np.nan)))) \
                    if np.isfinite(ref).any() else 1.0
                ok = np.isclose(got, ref, rtol=SMOOTH_RTOL, atol=SMOOTH_RTOL * scale,
                                equal_nan=True) | (got == ref)
                problems = [] if ok.all() else [f"ema_cuda differs at {np.flatnonzero(~ok)[:5]}"]
            except Exception as exc:
                problems = [f"ema_cuda raised {type(exc).__name__}: {exc}"]
            calls += 1
            failed += bool(problems)
            results.append({"case": case["name"] + " ema_cuda", "buffer": label, "ok": not problems,
                            "problems": problems, "smoothing": w})
    return {"calls": calls, "failed": failed, "results": results,
            "cases": [c["name"] for c in cases]}


# --------------------------------------------------------------------------
# timing
# --------------------------------------------------------------------------

def run_timing(rows: list, res: dict, quick: bool, size: int, use_torch: bool,
               width: int = WIDTH) -> None:
    from numba import cuda

    from dlviz_gpu.kernels import series as ks

    WIDTH = width  # noqa: N806 - the table says which width ran

    reps = 5 if quick else 10
    sync = cuda.synchronize
    host = random_matrix(1, size, np.float32, seed=7).reshape(-1)
    d = cuda.to_device(host)
    nbytes = host.nbytes
    got: dict = {}
    tm: dict = {}
    res["timings"] = tm

    def timed(key, fn, r=reps):
        t = best_of(fn, r, warmup=2, sync=sync)
        tm[key] = t.as_dict()
        got[key] = t.best
        return t.best

    def attempt(label, fn):
        try:
            fn()
        except Exception as exc:
            res.setdefault("errors", {})[f"timing/{label}"] = {
                "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
            rows.append(Row(f"series {label}", error=f"{type(exc).__name__}: {exc}"))

    def copy():
        dst = cuda.device_array_like(d)
        timed("copy", lambda: dst.copy_to_device(d))
        del dst
        rows.append(Row(f"series: d2d copy {nbytes / 1e6:.0f} MB (ceiling)", got["copy"],
                        2 * nbytes / got["copy"] / 1e9, note="GB/s counts bytes read + written"))
    attempt("d2d copy", copy)

    s, e, _ = ks.column_runs(size, (0, size), WIDTH)

    def of_copy(key):
        # conservative, as the matrix rows: our read rate / the copy's read+write rate
        if "copy" not in got:
            return None
        return (nbytes / got[key]) / (2 * nbytes / got["copy"])

    def raw():
        timed("m4", lambda: ks.m4_cuda(d, 0, 1, 0, s, e))
        rows.append(Row(f"series M4 {size:.0e} f32 on device -> {WIDTH}", got["m4"],
                        nbytes / got["m4"] / 1e9, of_copy("m4"), "of copy", None,
                        note="m4_cuda end to end: planning, launch, partials back, host merge"))
    attempt("M4", raw)

    def smooth():
        timed("smooth", lambda: ks.m4_cuda(d, 0, 1, 0, s, e, smoothing=0.9), max(3, reps // 2))
        rows.append(Row("series M4 smoothing 0.9", got["smooth"], nbytes / got["smooth"] / 1e9,
                        got["smooth"] / got["m4"] if "m4" in got else None, "x raw", None,
                        note="fused EMA scan: two passes (segment summaries, smoothed M4)"))
    attempt("smoothing", smooth)

    def zoom():
        lo = 0.4 * size
        zs, ze, _ = ks.column_runs(size, (lo, lo + 0.01 * size), WIDTH)
        timed("zoom", lambda: ks.m4_cuda(d, 0, 1, 0, zs, ze))
        rows.append(Row("series M4 1% zoom", got["zoom"], 0.01 * nbytes / got["zoom"] / 1e9,
                        got["zoom"] / got["m4"] if "m4" in got else None, "of full", None))
    attempt("zoom", zoom)

    def bf16():
        import torch

        from dlviz_gpu.tensors import as_matrix

        t = torch.from_numpy(host).to(torch.bfloat16).cuda()
        m = as_matrix(t)
        timed("bf16", lambda: ks.m4_cuda(m.buffer, m.offset, m.cols.t1, m.decode, s, e))
        rows.append(Row("series M4 bf16 (torch cuda)", got["bf16"],
                        (nbytes // 2) / got["bf16"] / 1e9,
                        got["m4"] / got["bf16"] if "m4" in got else None, "x f32 el/s", None))
        del t, m
    if use_torch:
        attempt("bf16", bf16)

    def streamed():
        timed("host", lambda: ks.m4_cuda(host, 0, 1, 0, s, e), max(2, reps // 3))
        rows.append(Row("series M4 host data streamed", got["host"],
                        nbytes / got["host"] / 1e9, None, "", None,
                        note=f"numpy array sent in slabs of {ks.CUDA_STREAM_BYTES >> 20} MiB"))
    attempt("host streamed", streamed)

    def check_big():
        a = ks.m4_cuda(d, 0, 1, 0, s, e)
        b = ks.m4_cpu(host, 0, 1, 0, s, e)
        problems = _compare(a, b, False)
        res["big_check"] = {"ok": not problems, "problems": problems}
        rows.append(Row(f"series {size:.0e} device M4 == CPU", None, None,
                        float(bool(problems)), "mismatch", ("<=", 0)))
    attempt("big check", check_big)
    del d


# --------------------------------------------------------------------------
# driver
# --------------------------------------------------------------------------

def check_series(report: dict, sim_smoke: bool = False, quick: bool = False,
                 size: int | None = None) -> list:
    """Run the series part of the GPU check; details go to ``report["series"]``.

    Parameters
    ----------
    report : dict
        The GPU check's result dict (JSON-able); gets a ``"series"`` entry.
    sim_smoke : bool
        Tiny host inputs for ``NUMBA_ENABLE_CUDASIM=1``: correctness only.
    quick : bool
        Fewer timing repeats.
    size : int, optional
        Samples in the timed series (default 10^8).

    Returns
    -------
    list of Row
        For the check's table; a failed section becomes an error row.
    """
    ensure_dlviz()
    import numba

    res = report.setdefault("series", {})
    res.setdefault("errors", {})
    rows: list = []
    sim = bool(getattr(numba.config, "ENABLE_CUDASIM", False))
    sim_smoke = sim_smoke or sim
    use_torch = use_cupy = False
    if not sim_smoke:
        try:
            import torch

            use_torch = bool(torch.cuda.is_available())
        except Exception:
            use_torch = False
        try:
            import cupy  # noqa: F401

            use_cupy = True
        except Exception:
            use_cupy = False
    t0 = time.perf_counter()
    try:
        corr = run_correctness(sim_smoke, use_torch, use_cupy)
        res["correctness"] = corr
        res["correctness_s"] = time.perf_counter() - t0
        note = f"{len(corr['cases'])} inputs: " + ", ".join(corr["cases"])
        if not corr["calls"]:
            note += "; NOTHING WAS COMPARED"
        rows.append(Row(f"series CUDA == CPU kernel ({corr['calls']} calls)", None, None,
                        float(corr["failed"] if corr["calls"] else 1), "mismatches", ("<=", 0),
                        note=note))
        for r in corr["results"]:
            if not r["ok"]:
                print(f"SERIES MISMATCH {r['case']} [{r.get('buffer')}] x_range="
                      f"{r.get('x_range')} width={r.get('width')} smoothing={r.get('smoothing')}: "
                      f"{r['problems'][:2]}", file=sys.stderr)
    except Exception as exc:
        res["errors"]["correctness"] = {"error": f"{type(exc).__name__}: {exc}",
                                        "traceback": traceback.format_exc()}
        rows.append(Row("series correctness", error=f"{type(exc).__name__}: {exc}"))
    if sim_smoke:
        res["timing"] = {"skipped": "sim-smoke"}
        return rows
    try:
        run_timing(rows, res, quick, size or SIZE, use_torch)
    except Exception as exc:
        res["errors"]["timing"] = {"error": f"{type(exc).__name__}: {exc}",
                                   "traceback": traceback.format_exc()}
        rows.append(Row("series timing", error=f"{type(exc).__name__}: {exc}"))
    res["seconds"] = time.perf_counter() - t0
    return rows


def main(argv=None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m benchmarks.gpu_series")
    p.add_argument("--sim-smoke", action="store_true")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--size", type=int, default=None)
    args = p.parse_args(argv)
    if args.sim_smoke and "numba" not in sys.modules:
        os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")
    report: dict = {}
    rows = check_series(report, sim_smoke=args.sim_smoke, quick=args.quick, size=args.size)
    print(format_table(rows, "dlviz_gpu GPU check: series"))
    bad = any(r.error or r.passed is False for r in rows)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
