"""The GPU check for the points kernels: ``check_points(report)``.

Meant to be called by ``benchmarks/gpu.py`` (one more section) and runnable
alone: ``python -m benchmarks.gpu_points --out DIR`` (``--sim-smoke`` under
``NUMBA_ENABLE_CUDASIM=1``).

1. correct   every CUDA points kernel compiled for real -- count with
             shared-memory and with global atomics, value statistics with and
             without min/max, categories (shared and global), value +
             category, bf16 / fp16 coordinates, strided and negative-stride
             device columns, host columns streamed, the bounds kernel -- and
             compared with the CPU kernel on fresh random data with the edge
             cases: x == x1 and y == y1, points exactly on pixel edges, points
             just outside, NaN / inf coordinates and values, bad category
             codes.  count / nan_count / count_cat / min / max and the
             counters must be equal, sums within rtol 1e-9 (plus a float64
             cancellation slack).
2. timing    10^8 float32 points on the device to 800 x 600: our count against
             a torch implementation (pixel index in torch ops, then
             ``torch.bincount(py * W + px, minlength=W * H)``) and against the
             copy bound (bytes of x and y / the device-to-device copy
             bandwidth); also mean of a value and count_cat of 10 categories;
             then the 10^8 count against the CPU kernel.

Needs only numpy, numba(-cuda) and torch (cupy optional, for a negative-stride
device column).  ``sim_smoke=True``: section 1 on tiny host / device inputs,
no torch, no timing.
"""

from __future__ import annotations

import os
import sys
import time
import traceback

import numpy as np

from ._common import Row, best_of, ensure_dlviz, format_table, timestamp, write_json

SUM_RTOL = 1e-9
SLACK = 1e-12


def _host(planes: dict) -> dict:
    out = {}
    for k, v in planes.items():
        if isinstance(v, np.ndarray):
            out[k] = v
        elif hasattr(v, "copy_to_host"):
            out[k] = v.copy_to_host()
        else:
            out[k] = np.asarray(v)
    return out


def compare(gpu: tuple, cpu: tuple, scale: float, nmax: int) -> list[str]:
    """Problems found comparing (planes, counters) of the two backends (empty: equal)."""
    gp, gc = gpu
    cp, cc = cpu
    problems = []
    if gc != cc:
        problems.append(f"counters {gc} != CPU {cc}")
    if set(gp) != set(cp):
        problems.append(f"planes {sorted(gp)} != CPU {sorted(cp)}")
    for name in set(gp) & set(cp):
        g, c = gp[name], cp[name]
        if g.shape != c.shape or g.dtype != c.dtype:
            problems.append(f"{name}: {g.dtype}{g.shape} != CPU {c.dtype}{c.shape}")
            continue
        if name == "sum":
            tol = SUM_RTOL * np.abs(c) + SLACK * max(nmax, 1) * scale
            with np.errstate(invalid="ignore"):
                bad = ~(np.abs(g - c) <= tol)
        elif name in ("min", "max"):
            bad = ~((g == c) | (np.isnan(g) & np.isnan(c)))
        else:
            bad = g != c
        if bad.any():
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            problems.append(f"{name}: {int(bad.sum())} of {bad.size} cells differ; first at "
                            f"{idx}: gpu {g[idx].item()!r} cpu {c[idx].item()!r}")
    return problems


def _cloud(rng, n: int, xr, yr, w: int, h: int, specials: float = 0.03):
    """Random points over a bit more than the window, with the edge cases planted."""
    (x0, x1), (y0, y1) = xr, yr
    dx, dy = x1 - x0, y1 - y0
    x = rng.uniform(x0 - 0.1 * dx, x1 + 0.1 * dx, n)
    y = rng.normal((y0 + y1) / 2, dy / 3, n)
    v = rng.normal(size=n) * 10
    for a in (x, y, v):
        pick = rng.random(n) < specials
        a[pick] = rng.choice([np.nan, np.inf, -np.inf], int(pick.sum()))
    m = min(n, 64)
    e = np.arange(m)
    # x == x1, y == y1, x == x0, exact inner pixel edges, just outside
    x[:m] = np.where(e % 4 == 0, x1, np.where(e % 4 == 1, x0, x0 + (e % w) * (dx / w)))
    y[:m] = np.where(e % 3 == 0, y1, np.where(e % 3 == 1, y0, y0 + (e % h) * (dy / h)))
    if n > m + 2:
        x[m] = np.nextafter(x1, np.inf)
        y[m + 1] = np.nextafter(y0, -np.inf)
    return x, y, v


def _cases(sim: bool, rng, use_torch: bool) -> list:
    """(name, gpu columns, cpu columns, n, window, k, want_minmax, scale, nmax)."""
    from dlviz_gpu.kernels import DECODE_BF16, DECODE_F16
    from dlviz_gpu.kernels import points as kp

    C = kp.column
    cases = []
    n = 150 if sim else 200_003
    big = (5, 4) if sim else (800, 600)
    small = (4, 3) if sim else (64, 48)            # shared-memory counts
    cat_small = (3, 2) if sim else (30, 20)        # x 10 categories: shared
    xr, yr = (-1.0, 2.0), (0.0, 1.5)

    def dev(a):
        from numba import cuda

        return cuda.to_device(np.ascontiguousarray(a))

    def add(name, x, y, v, c, wh, k=0, minmax=True, on_device=False, decodes=(0, 0, 0),
            strides=None):
        cols = []
        for a, d in zip((x, y, v, c), decodes + (0,)):
            if a is None:
                cols.append((None, None))
                continue
            cpu = C(a, 0, 1, d)
            gpu = C(dev(a), 0, 1, d) if on_device else cpu
            cols.append((gpu, cpu))
        scale = float(np.nanmax(np.abs(np.where(np.isfinite(v), v, 0)))) if v is not None \
            else 1.0
        nmax = len(x)
        cases.append((name, [g for g, _ in cols], [c_ for _, c_ in cols], len(x), xr, yr,
                      wh, k, minmax, scale, nmax))

    x, y, v = _cloud(rng, n, xr, yr, *big)
    codes = rng.integers(0, 10, n).astype(np.int32)
    add("count, global atomics", x, y, None, None, big)
    add("count, shared memory", x, y, None, None, small)
    add("value all stats, host columns streamed", x, y, v, None, big)
    add("value all stats, device columns", x, y, v, None, big, on_device=True)
    add("value sum only (no min/max)", x, y, v, None, big, minmax=False)
    add("count_cat 10, global", x, y, None, codes, big, k=10, on_device=True)
    add("count_cat 10, shared", x, y, None, codes, cat_small, k=10)
    add("value + count_cat", x, y, v, codes, small, k=10, on_device=True)
    bad = codes.astype(np.float64)
    bad[7:12] = [-1, 10, 2.5, np.nan, 1e300]
    add("bad category codes counted", x, y, None, bad, cat_small, k=10)
    x32, y32, v32 = (a.astype(np.float32) for a in (x, y, v))
    add("float32 columns", x32, y32, v32, None, big, on_device=True)
    bx = (x32.view(np.uint32) >> np.uint32(16)).astype(np.uint16)
    by = (y32.view(np.uint32) >> np.uint32(16)).astype(np.uint16)
    add("bf16 x, y bits", bx, by, v32, None, big, decodes=(DECODE_BF16, DECODE_BF16, 0))
    hx = x.astype(np.float16).view(np.uint16)
    hv = (v / 100).astype(np.float16).view(np.uint16)
    add("fp16 x and value bits", hx, y, hv, None, small, decodes=(DECODE_F16, 0, DECODE_F16))
    # strided device columns read in place from one flat device buffer holding
    # x, y, v one after the other: x reversed every other, y and v every other
    base = np.stack([x, y, v])
    flat = dev(base.reshape(-1))
    nn = n // 2
    views = (base[0, n - 1::-2][:nn], base[1, 1::2][:nn], base[2, ::2][:nn])
    gpu_cols = [C(flat, n - 1, -2), C(flat, n + 1, 2), C(flat, 2 * n, 2), None]
    host_cols = [C(np.ascontiguousarray(a)) for a in views] + [None]
    cases.append(("strided / negative-stride device columns", gpu_cols, host_cols, nn, xr, yr,
                  big, 0, True, float(np.nanmax(np.abs(np.where(np.isfinite(v), v, 0)))), nn))
    if use_torch:
        import torch

        t = torch.from_numpy(np.stack([x32, y32])).cuda()
        tb = t.to(torch.bfloat16)
        from dlviz_gpu.tensors import as_matrix

        def tcol(tt):
            m = as_matrix(tt)
            return C(m.buffer, m.offset, m.cols.t1, m.decode)

        def hcol(tt):
            m = as_matrix(tt.cpu())
            return C(m.buffer, m.offset, m.cols.t1, m.decode)
        for name, a, b in (("torch cuda f32 rows", t[0], t[1]),
                           ("torch cuda bf16 rows", tb[0], tb[1]),
                           ("torch cuda f32 flipped copy [::3], [::3]", t[0].flip(0)[::3],
                            t[1][::3])):
            cases.append((name, [tcol(a), tcol(b), None, None], [hcol(a), hcol(b), None, None],
                          a.shape[0], xr, yr, big, 0, True, 1.0, a.shape[0]))
    return cases


def _correctness(sim: bool, use_torch: bool, res: dict) -> tuple[int, int]:
    from dlviz_gpu.kernels import points as kp

    rng = np.random.default_rng(20261126)
    results = []
    calls = failed = 0
    for case in _cases(sim, rng, use_torch):
        name, gcols, ccols, n, xr, yr, (w, h), k, minmax, scale, nmax = case
        t0 = time.perf_counter()
        try:
            cpu = kp.points_stats_cpu(*ccols, n, xr, yr, w, h, k, want_minmax=minmax)
            gp, gc = kp.points_stats_cuda(*gcols, n, xr, yr, w, h, k, want_minmax=minmax)
            problems = compare((_host(gp), gc), cpu, scale, nmax)
        except Exception as exc:
            problems = [f"raised {type(exc).__name__}: {exc}", traceback.format_exc(limit=6)]
        calls += 1
        failed += bool(problems)
        results.append({"case": name, "n": n, "canvas": [w, h], "k": k, "ok": not problems,
                        "problems": problems, "seconds": time.perf_counter() - t0})
    # bounds kernel: device vs host
    for name, with_cat in (("bounds x, y", False), ("bounds x, y, codes", True)):
        t0 = time.perf_counter()
        try:
            x, y, _ = _cloud(rng, 150 if sim else 100_001, (-1, 1), (-1, 1), 4, 4)
            c = rng.integers(0, 7, x.size).astype(np.float64)
            c[3] = 2.5
            cc = kp.column(c) if with_cat else None
            g = kp.points_bounds_cuda(kp.column(x), kp.column(y), cc, x.size)
            h_ = kp.points_bounds_cpu(kp.column(x), kp.column(y), cc, x.size)
            problems = [] if g == h_ else [f"gpu {g} != cpu {h_}"]
        except Exception as exc:
            problems = [f"raised {type(exc).__name__}: {exc}", traceback.format_exc(limit=6)]
        calls += 1
        failed += bool(problems)
        results.append({"case": name, "ok": not problems, "problems": problems,
                        "seconds": time.perf_counter() - t0})
    res["results"] = results
    res["calls"] = calls
    res["failed"] = failed
    return calls, failed


def _timing(size: int, quick: bool, rows: list, res: dict) -> None:
    import torch

    from dlviz_gpu.kernels import points as kp
    from dlviz_gpu.tensors import as_matrix

    sync = torch.cuda.synchronize
    reps = 5 if quick else 10
    W, H, K = 800, 600, 10
    n = int(size)
    g = torch.Generator(device="cuda").manual_seed(0)
    xy = torch.randn(2, n, device="cuda", dtype=torch.float32, generator=g)
    x, y = xy[0], xy[1]
    v = torch.randn(n, device="cuda", dtype=torch.float32, generator=g)
    c = torch.randint(0, K, (n,), device="cuda", dtype=torch.int8, generator=g)
    xr = (float(x.min()), float(x.max()))
    yr = (float(y.min()), float(y.max()))
    nbytes = x.numel() * 4 * 2
    got: dict = {}
    tm: dict = {}
    res["timings"] = tm
    res["timed_points"] = n

    def col(t):
        m = as_matrix(t)
        return kp.column(m.buffer, m.offset, m.cols.t1, m.decode)
    cx, cy, cv, cc = col(x), col(y), col(v), col(c)

    def timed(key, fn):
        w = best_of(fn, reps, warmup=2, sync=sync)
        tm[key] = w.as_dict()
        got[key] = w.best
        return w.best

    def attempt(label, fn):
        try:
            fn()
        except Exception as exc:
            res.setdefault("errors", {})[label] = {"error": f"{type(exc).__name__}: {exc}",
                                                   "traceback": traceback.format_exc()}
            rows.append(Row(f"points {label}", error=f"{type(exc).__name__}: {exc}"))

    def copy():
        dst = torch.empty_like(xy)
        try:
            timed("copy", lambda: dst.copy_(xy))
        finally:
            del dst
            torch.cuda.empty_cache()
        rows.append(Row(f"points d2d copy of x, y ({nbytes / 2 ** 20:.0f} MiB)", got["copy"],
                        2 * nbytes / got["copy"] / 1e9,
                        note="GB/s counts bytes read + written; the count's bound is "
                             "bytes(x, y) / this rate"))
    attempt("copy", copy)

    def frac(key):
        if "copy" not in got:
            return None
        return (nbytes / got[key]) / (2 * nbytes / got["copy"])

    def ours(label, key, fn, nb=nbytes):
        def go():
            timed(key, fn)
            rows.append(Row(f"points ours {label}", got[key], nb / got[key] / 1e9,
                            frac(key), "of copy",
                            extra={"fraction_vs_copy_read_rate": (2 * frac(key)) if frac(key)
                                   else None}))
        return go

    def count():
        return kp.points_stats_cuda(cx, cy, None, None, n, xr, yr, W, H)
    attempt("count", ours(f"count {n:.0e}", "count", count))

    def torch_count():
        # the same pixel rule in torch ops (float32 arithmetic), then bincount
        inside = (x >= xr[0]) & (x <= xr[1]) & (y >= yr[0]) & (y <= yr[1])
        px = ((x - xr[0]) * (W / (xr[1] - xr[0]))).floor().long().clamp_(0, W - 1)
        py = ((y - yr[0]) * (H / (yr[1] - yr[0]))).floor().long().clamp_(0, H - 1)
        idx = (py * W + px)[inside]
        return torch.bincount(idx, minlength=W * H)

    def torch_row():
        timed("torch_bincount", torch_count)
        ratio = got["torch_bincount"] / got["count"] if "count" in got else None
        ours_c = _host(count()[0])["count"].reshape(-1)
        theirs = torch_count().cpu().numpy()
        differ = int((ours_c != theirs).sum())
        rows.append(Row("points torch index + bincount", got["torch_bincount"],
                        nbytes / got["torch_bincount"] / 1e9, ratio, "x ours",
                        note=f"{differ} of {W * H} pixels differ from ours (float32 index "
                             f"math in torch vs the float64 formula)",
                        extra={"pixels_differing": differ}))
    attempt("torch bincount", torch_row)
    attempt("mean", ours("mean (count + sum)", "mean",
                         lambda: kp.points_stats_cuda(cx, cy, cv, None, n, xr, yr, W, H,
                                                      want_minmax=False), nbytes * 3 // 2))
    attempt("all value stats", ours("count/sum/min/max", "all",
                                    lambda: kp.points_stats_cuda(cx, cy, cv, None, n, xr, yr,
                                                                 W, H), nbytes * 3 // 2))
    attempt("count_cat", ours(f"count_cat {K}", "count_cat",
                              lambda: kp.points_stats_cuda(cx, cy, None, cc, n, xr, yr, W, H,
                                                           K), nbytes * 9 // 8))

    def big_check():
        t0 = time.perf_counter()
        gpu = count()
        gp = (_host(gpu[0]), gpu[1])
        hx = x.cpu().numpy()
        hy = y.cpu().numpy()
        cpu = kp.points_stats_cpu(kp.column(hx), kp.column(hy), None, None, n, xr, yr, W, H)
        problems = compare(gp, cpu, 1.0, n)
        res["big_check"] = {"problems": problems, "seconds": time.perf_counter() - t0}
        rows.append(Row(f"points {n:.0e} count == CPU kernel", None, None,
                        float(len(problems)), "problems", ("<=", 0),
                        note="; ".join(problems)[:300]))
    attempt("big check", big_check)
    del xy, x, y, v, c
    torch.cuda.empty_cache()


def check_points(report: dict, sim_smoke: bool = False, quick: bool = False,
                 size: int | None = None) -> list:
    """Run the points part of the GPU check; details go to ``report["points"]``.

    Parameters
    ----------
    report : dict
        The GPU check's result dict (JSON-able); gets a ``"points"`` entry
        (correctness results, timings, errors, ``status``).
    sim_smoke : bool
        Tiny host / device inputs for ``NUMBA_ENABLE_CUDASIM=1``: correctness
        only, no torch, no timing.
    quick : bool
        Fewer timing repeats.
    size : int, optional
        Points in the timed cloud (default 10^8).

    Returns
    -------
    list of Row
        For the check's table; a failed part becomes an error row, a mismatch a
        row whose goal fails.
    """
    ensure_dlviz()
    import numba

    res = report.setdefault("points", {})
    res.setdefault("errors", {})
    res["sim_smoke"] = sim_smoke
    rows: list = []
    t0 = time.perf_counter()
    sim = bool(getattr(numba.config, "ENABLE_CUDASIM", False))
    if sim and not sim_smoke:
        res["note"] = "CUDA simulator detected: tiny sim-smoke inputs only"
    sim_smoke = sim_smoke or sim
    if sim:
        import warnings

        # the simulator runs kernels as Python: NaN/inf arithmetic warns
        warnings.filterwarnings("ignore", "invalid value encountered", RuntimeWarning)
        warnings.filterwarnings("ignore", "overflow encountered", RuntimeWarning)
    use_torch = False
    if not sim_smoke:
        try:
            import torch

            use_torch = bool(torch.cuda.is_available())
        except Exception as exc:
            res["errors"]["torch"] = {"error": f"{type(exc).__name__}: {exc}"}
    try:
        calls, failed = _correctness(sim_smoke, use_torch, res)
        rows.append(Row(f"points CUDA == CPU kernel ({calls} calls)", None, None,
                        float(failed if calls else 1), "mismatches", ("<=", 0),
                        note="simulator: kernels interpreted, not compiled" if sim else
                        f"{_compiled()} scatter-kernel variants compiled"))
        for r in res["results"]:
            if not r["ok"]:
                print(f"POINTS MISMATCH {r['case']}: {r['problems'][:2]}", file=sys.stderr)
    except Exception as exc:
        res["errors"]["correctness"] = {"error": f"{type(exc).__name__}: {exc}",
                                        "traceback": traceback.format_exc()}
        rows.append(Row("points correctness", error=f"{type(exc).__name__}: {exc}"))
    if sim_smoke or not use_torch:
        res["timing"] = {"skipped": "sim-smoke" if sim_smoke else "no torch CUDA"}
    else:
        try:
            _timing(size or 10 ** 8, quick, rows, res)
        except Exception as exc:
            res["errors"]["timing"] = {"error": f"{type(exc).__name__}: {exc}",
                                       "traceback": traceback.format_exc()}
            rows.append(Row("points timing", error=f"{type(exc).__name__}: {exc}"))
    res["status"] = int(any(r.error or r.passed is False for r in rows))
    res["seconds"] = time.perf_counter() - t0
    return rows


def _compiled() -> int:
    """How many CUDA points scatter-kernel variants this process built."""
    from dlviz_gpu.kernels import points as kp

    return kp.cuda_kernel.cache_info().currsize


def main(argv=None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m benchmarks.gpu_points")
    p.add_argument("--out", default=None, help="folder for a JSON report (default: none)")
    p.add_argument("--sim-smoke", action="store_true")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--size", type=int, default=None)
    args = p.parse_args(argv)
    if args.sim_smoke and "numba" not in sys.modules:
        os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")
    stamp = timestamp()
    report: dict = {"suite": "gpu_points", "started": stamp}
    rows = check_points(report, sim_smoke=args.sim_smoke, quick=args.quick, size=args.size)
    status = report["points"]["status"]
    table = format_table(rows, f"dlviz_gpu GPU check: points, status {status}")
    if args.out:
        report["rows"] = [r.as_dict() for r in rows]
        report["table"] = table
        print(f"wrote {write_json(args.out, 'gpu_points', report, stamp)}")
    print(table)
    return status


if __name__ == "__main__":
    sys.exit(main())
