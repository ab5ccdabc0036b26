"""The histogram part of the GPU check: ``check_histogram(report, sim_smoke=False)``.

Meant to be called by the GPU check (``benchmarks/gpu.py``), e.g. as one more
entry of its family list::

    from .gpu_hist import check_histogram
    rows.extend(check_histogram(res, sim_smoke=sim_smoke, quick=quick))

It also runs on its own: ``python -m benchmarks.gpu_hist [--sim-smoke] [--quick]``.

1. correct   every CUDA histogram kernel compiled for real (native, bfloat16
             and float16 decoding; shared-memory counters and, past
             ``CUDA_SHARED_BINS``, global ones; the min/max kernel) and compared
             with the CPU kernel -- counts and the five special counters must be
             identical -- on fresh random data with the edge cases: values
             exactly on every edge and one float step either side, NaN/+inf/
             -inf, linear / log / symlog / arbitrary edges, transposed, strided
             and negative-stride views, 4-D tensors, many tensors in one call,
             host arrays streamed in several slabs, torch CUDA tensors (float32,
             bfloat16, float16) and cupy arrays when present.
2. timing    a 2**28-element float32 torch CUDA tensor (1 GiB) into 1000
             linear bins over a given range, against ``torch.histc`` (same bins;
             it has only linear bins) and a device-to-device copy (the
             ceiling); log, symlog, ``range=None`` (min/max pass included) and
             a bfloat16 tensor; and the big result checked against the CPU.

Needs only numpy, numba, numba-cuda (torch and cupy optional).  Everything
goes into ``report["histogram"]``; the returned rows are for the check's table.
"""

from __future__ import annotations

import os
import sys
import time
import traceback

import numpy as np

from ._common import Row, best_of, ensure_dlviz, format_table

SIZE = 1 << 28
BINS = 1000
RANGE = (-4.0, 4.0)


# --------------------------------------------------------------------------
# correctness
# --------------------------------------------------------------------------

def _cases(rng, sim: bool, use_torch: bool, use_cupy: bool) -> list:
    """(name, gpu Matrix-like, cpu Matrix, list of (edges, scale, linthresh)) cases."""
    from dlviz_gpu.kernels import histogram as kh
    from dlviz_gpu.tensors import as_matrix

    n = 40 if sim else 300_007
    side = (5, 8) if sim else (517, 301)
    cases: list = []

    def edge_sets(v):
        f = np.asarray(v, np.float64)
        f = f[np.isfinite(f)]
        m = float(np.abs(f).max()) if f.size else 1.0
        lin = np.linspace(-0.8 * m, 0.8 * m, 8 if sim else BINS + 1)
        pos = f[f > 0]
        lo = float(pos.min()) if pos.size else 1e-3
        logs = np.geomspace(max(lo, 1e-30), max(m, 2 * lo), 6 if sim else 257)
        c = 0.01 * m
        t = np.linspace(kh.symlog_forward(-m, c), kh.symlog_forward(m, c), 7 if sim else 257)
        sym = kh.symlog_inverse(t, c)
        sym[0], sym[-1] = -m, m
        arb = np.unique(np.sort(rng.choice(f, 9 if sim else 300, replace=False))) \
            if f.size > 12 else np.array([-1.0, 0.0, 2.0])
        sets = [(lin, "linear", None), (logs, "log", None), (sym, "symlog", c),
                (arb, "linear", None)]
        if not sim:
            sets.append((np.linspace(-m, m, kh.CUDA_SHARED_BINS + 200), "linear", None))
        return sets

    def values(size, dtype=np.float32):
        v = rng.standard_normal(size) * float(rng.choice([1.0, 1e-2, 30.0]))
        pick = rng.random(size) < 0.03
        v[pick] = rng.choice([np.nan, np.inf, -np.inf, 0.0], int(pick.sum()))
        return v.astype(dtype)

    def with_edges(v, sets):
        # put every edge value (and its neighbours) into the data
        e = np.concatenate([s[0] for s in sets])
        extra = np.concatenate([e, np.nextafter(e, np.inf), np.nextafter(e, -np.inf)])
        return np.concatenate([v.ravel(), extra.astype(v.dtype)])

    def add(name, gpu, cpu, truth):
        cases.append((name, gpu, cpu, edge_sets(truth)))

    base = values(n)
    sets = edge_sets(base)
    v = with_edges(base, sets)
    m = as_matrix(v)
    cases.append(("f32 1-D, values on every edge", m, m, sets))
    a = values(side[0] * side[1]).reshape(side)
    for name, view in (("f32 transposed", a.T), ("f32 [::-1, ::2]", a[::-1, ::2]),
                       ("f32 4-D permuted", a[:side[0] - side[0] % 4].reshape(4, -1, side[1])
                        [None].transpose(1, 0, 3, 2))):
        mv = as_matrix(view, layout="flatten") if view.ndim > 2 else as_matrix(view)
        add(name, mv, mv, view)
    d = values(n, np.float64)
    md = as_matrix(d[::-3])
    add("f64 [::-3]", md, md, d[::-3])
    for kind in ("i8", "bool"):
        x = (rng.integers(-128, 128, n).astype(np.int8) if kind == "i8"
             else rng.random(n) < 0.3)
        mx = as_matrix(x)
        add(kind, mx, mx, x.astype(np.float64))
    bits = (base.view(np.uint32) >> np.uint32(16)).astype(np.uint16)
    mb = as_matrix(bits)
    from dataclasses import replace

    from dlviz_gpu.kernels import DECODE_BF16

    mb = replace(mb, decode=DECODE_BF16, dtype="bfloat16")
    truth = (bits.astype(np.uint32) << np.uint32(16)).view(np.float32)
    add("bf16 bits (host)", mb, mb, truth)
    h = base.astype(np.float16)
    mh = as_matrix(h)
    add("float16 (host)", mh, mh, h.astype(np.float64))
    if sim or not (use_torch or use_cupy):
        return cases
    if use_torch:
        import torch

        t = torch.from_numpy(a).cuda()
        for name, tv in (("torch cuda f32", t), ("torch cuda f32 .T", t.T),
                         ("torch cuda f32 [::2, 1::3]", t[::2, 1::3]),
                         ("torch cuda bf16", t.to(torch.bfloat16)),
                         ("torch cuda f16 .T", t.to(torch.float16).T)):
            add(name, as_matrix(tv), as_matrix(tv.cpu()), tv.double().cpu().numpy())
    if use_cupy:
        import cupy

        c = cupy.asarray(a)[::-1, ::-2]
        add("cupy f32 [::-1, ::-2]", as_matrix(c), as_matrix(a[::-1, ::-2]), a[::-1, ::-2])
    return cases


def run_correctness(sim: bool, use_torch: bool, use_cupy: bool, seed: int = 20261126) -> dict:
    from dlviz_gpu.kernels import histogram as kh

    rng = np.random.default_rng(seed)
    cases = _cases(rng, sim, use_torch, use_cupy)
    results = []
    calls = failed = 0

    def compare(name, what, gpu, cpu):
        nonlocal calls, failed
        calls += 1
        problems = []
        for label, g, c in zip(("counts", "specials"), gpu, cpu):
            g, c = np.asarray(g), np.asarray(c)
            if g.shape != c.shape or not np.array_equal(g, c):
                bad = np.argwhere(g != c)[:5].tolist() if g.shape == c.shape else "shape"
                problems.append(f"{label} differ at {bad}")
        failed += bool(problems)
        results.append({"case": name, "what": what, "ok": not problems, "problems": problems})

    for name, gm, cm, sets in cases:
        for edges, scale, c in sets:
            what = f"{scale} {edges.size - 1} bins"
            try:
                gpu = kh.histogram_cuda(gm.buffer, gm.offset, gm.rows, gm.cols, edges, scale, c,
                                        gm.decode)
                cpu = kh.histogram_cpu(cm.buffer, cm.offset, cm.rows, cm.cols, edges, scale, c,
                                       cm.decode)
                compare(name, what, gpu, cpu)
            except Exception as exc:
                calls += 1
                failed += 1
                results.append({"case": name, "what": what, "ok": False,
                                "problems": [f"{type(exc).__name__}: {exc}",
                                             traceback.format_exc(limit=4)]})
        try:
            g = kh.minmax_cuda(gm.buffer, gm.offset, gm.rows, gm.cols, gm.decode)
            c = kh.minmax_cpu(cm.buffer, cm.offset, cm.rows, cm.cols, cm.decode)
            compare(name, "minmax", ([g], [0]), ([c], [0]))
        except Exception as exc:
            calls += 1
            failed += 1
            results.append({"case": name, "what": "minmax", "ok": False,
                            "problems": [f"{type(exc).__name__}: {exc}"]})
    # many tensors in one call, and host data streamed in several slabs
    extra = [(cases[i][0], cases[i][1], cases[i][2]) for i in range(min(4, len(cases)))]
    edges = cases[0][3][0][0]
    try:
        gpu = kh.histogram_many_cuda([(g.buffer, g.offset, g.rows, g.cols, g.decode)
                                      for _, g, _ in extra], edges)
        cpu = kh.histogram_many_cpu([(c.buffer, c.offset, c.rows, c.cols, c.decode)
                                     for _, _, c in extra], edges)
        compare("many tensors in one call", f"{len(extra)} tensors", gpu, cpu)
    except Exception as exc:
        calls += 1
        failed += 1
        results.append({"case": "many tensors", "ok": False,
                        "problems": [f"{type(exc).__name__}: {exc}"]})
    saved = kh.CUDA_STREAM_BYTES
    try:
        name, gm, cm, sets = cases[1]
        kh.CUDA_STREAM_BYTES = 64 * 4 if sim else 1 << 16
        gpu = kh.histogram_cuda(cm.buffer, cm.offset, cm.rows, cm.cols, sets[0][0])
        cpu = kh.histogram_cpu(cm.buffer, cm.offset, cm.rows, cm.cols, sets[0][0])
        compare(f"{name}, host data in slabs", "linear", gpu, cpu)
    except Exception as exc:
        calls += 1
        failed += 1
        results.append({"case": "host slabs", "ok": False,
                        "problems": [f"{type(exc).__name__}: {exc}"]})
    finally:
        kh.CUDA_STREAM_BYTES = saved
    return {"calls": calls, "failed": failed, "cases": [c[0] for c in cases],
            "results": results, "kernels": _compiled()}


def _compiled() -> list:
    try:
        import numba

        from dlviz_gpu.kernels import histogram as kh

        if numba.config.ENABLE_CUDASIM:
            return [{"note": "simulator: kernels are interpreted, nothing is compiled"}]
        out = []
        for dec, name in ((0, "native"), (1, "bf16"), (2, "f16")):
            for shared in (True, False):
                k = kh.cuda_hist_kernel(dec, shared)
                out.append({"kernel": "histogram", "decode": name, "shared": shared,
                            "specialisations": len(getattr(k, "overloads", {}))})
            k = kh.cuda_minmax_kernel(dec)
            out.append({"kernel": "minmax", "decode": name,
                        "specialisations": len(getattr(k, "overloads", {}))})
        return out
    except Exception as exc:
        return [{"error": f"{type(exc).__name__}: {exc}"}]


# --------------------------------------------------------------------------
# timing
# --------------------------------------------------------------------------

def run_timing(rows: list, res: dict, quick: bool, size: int) -> None:
    import torch

    import dlviz_gpu as dv

    sync = torch.cuda.synchronize
    reps = 5 if quick else 10
    torch.manual_seed(0)
    t = torch.randn(size, device="cuda", dtype=torch.float32)
    nbytes = t.numel() * 4
    tm: dict = {}
    res["timings"] = tm
    res["tensor"] = {"elements": size, "dtype": "float32", "bytes": nbytes}
    got: dict = {}

    def timed(key, fn, r=reps):
        w = best_of(fn, r, warmup=2, sync=sync)
        tm[key] = w.as_dict()
        got[key] = w.best
        return w.best

    def attempt(label, fn):
        try:
            fn()
        except Exception as exc:
            res["errors"][f"timing/{label}"] = {"error": f"{type(exc).__name__}: {exc}",
                                                "traceback": traceback.format_exc()}
            rows.append(Row(f"hist {label}", error=f"{type(exc).__name__}: {exc}"))

    def of_copy(key, nb=nbytes):
        # our read rate against the copy's read + write traffic rate (conservative)
        if "copy" not in got:
            return None
        return (nb / got[key]) / (2 * nbytes / got["copy"])

    def copy():
        dst = torch.empty_like(t)
        try:
            timed("copy", lambda: dst.copy_(t))
        finally:
            del dst
            torch.cuda.empty_cache()
        rows.append(Row(f"hist: d2d copy {nbytes / 2 ** 30:g} GiB (ceiling)", got["copy"],
                        2 * nbytes / got["copy"] / 1e9, note="GB/s counts bytes read + written"))

    def ours(label, key, **kw):
        def go():
            timed(key, lambda: dv.histogram(t, **kw))
            rows.append(Row(f"hist ours {label}", got[key], nbytes / got[key] / 1e9,
                            of_copy(key), "of copy"))
        return go

    def histc():
        timed("histc", lambda: torch.histc(t, bins=BINS, min=RANGE[0], max=RANGE[1]))
        ratio = got["histc"] / got["linear"] if "linear" in got else None
        rows.append(Row("hist torch.histc (same bins)", got["histc"], nbytes / got["histc"] / 1e9,
                        ratio, "x ours", note="torch.histc(t, bins=1000, min=-4, max=4): "
                        "linear bins only; value = its time / ours"))

    def bf16():
        tb = t.to(torch.bfloat16)
        try:
            timed("bf16", lambda: dv.histogram(tb, bins=BINS, range=RANGE))
        finally:
            del tb
            torch.cuda.empty_cache()
        rows.append(Row("hist ours bf16 tensor, linear", got["bf16"],
                        nbytes / 2 / got["bf16"] / 1e9,
                        got["linear"] / got["bf16"] if "linear" in got else None, "x f32 el/s"))

    def big_check():
        from dlviz_gpu.kernels import Axis
        from dlviz_gpu.kernels import histogram as kh

        g = dv.histogram(t, bins=BINS, range=RANGE)
        host = t.cpu().numpy()
        c = kh.histogram_cpu(host, 0, Axis(n=1, t1=0), Axis(n=size, t1=1), g.edges)
        bad = int(np.abs(c[0] - g.counts).sum() + np.abs(c[1] - np.array(
            [g.underflow, g.overflow, g.nan, g.posinf, g.neginf])).sum())
        res["big_check"] = {"count_difference": bad}
        rows.append(Row(f"hist {nbytes / 2 ** 30:g} GiB result == CPU kernel", None, None,
                        float(bad), "counts off", ("<=", 0)))

    attempt("copy", copy)
    attempt("linear", ours(f"linear {BINS} bins, range given", "linear", bins=BINS, range=RANGE))
    attempt("histc", histc)
    attempt("log", ours(f"log {BINS} bins", "log", bins=BINS, range=(1e-4, 4.0), scale="log"))
    attempt("symlog", ours(f"symlog {BINS} bins", "symlog", bins=BINS, range=RANGE,
                           scale="symlog", linthresh=1e-2))
    attempt("auto", ours(f"linear {BINS} bins, range=None", "auto", bins=BINS))

    def overhead():
        small = torch.randn(1000, device="cuda")
        timed("small", lambda: dv.histogram(small, bins=BINS, range=RANGE))
        rows.append(Row("hist ours, 1000 elements (overhead)", got["small"],
                        note="the fixed cost of one call: planning, copies, launch"))
    attempt("overhead", overhead)
    attempt("bf16", bf16)
    if not quick:
        attempt("big check", big_check)
    del t
    torch.cuda.empty_cache()


# --------------------------------------------------------------------------
# entry point
# --------------------------------------------------------------------------

def check_histogram(report: dict, sim_smoke: bool = False, quick: bool = False,
                    size: int | None = None) -> list:
    """Run the histogram part of the GPU check; details go to ``report["histogram"]``.

    Parameters
    ----------
    report : dict
        The check's JSON report (a ``"histogram"`` entry is added).
    sim_smoke : bool
        Tiny numpy inputs only, no timing (for ``NUMBA_ENABLE_CUDASIM=1``).
    quick : bool
        Fewer repeats, no big CPU cross-check.
    size : int, optional
        Elements of the timed float32 tensor (default 2**28 = 1 GiB).

    Returns
    -------
    list of Row
        Rows for the check's table.
    """
    ensure_dlviz()
    import numba

    res: dict = {"errors": {}}
    report["histogram"] = res
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
        rows.append(Row(f"histogram CUDA == CPU kernel ({corr['calls']} calls)", None, None,
                        float(corr["failed"] if corr["calls"] else 1), "mismatches", ("<=", 0),
                        note=note[:400]))
        for r in corr["results"]:
            if not r["ok"]:
                print(f"HISTOGRAM MISMATCH {r['case']} [{r.get('what')}]: {r['problems'][:2]}",
                      file=sys.stderr)
    except Exception as exc:
        res["errors"]["correctness"] = {"error": f"{type(exc).__name__}: {exc}",
                                        "traceback": traceback.format_exc()}
        rows.append(Row("histogram correctness", error=f"{type(exc).__name__}: {exc}"))
    if sim_smoke or not use_torch:
        res["timing"] = {"skipped": "sim-smoke" if sim_smoke else "no torch CUDA"}
        return rows
    try:
        run_timing(rows, res, quick, size or SIZE)
    except Exception as exc:
        res["errors"]["timing"] = {"error": f"{type(exc).__name__}: {exc}",
                                   "traceback": traceback.format_exc()}
        rows.append(Row("histogram timing", error=f"{type(exc).__name__}: {exc}"))
    res["seconds"] = time.perf_counter() - t0
    return rows


def main(argv=None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m benchmarks.gpu_hist")
    p.add_argument("--sim-smoke", action="store_true")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--size", type=int, default=None)
    args = p.parse_args(argv)
    if args.sim_smoke and "numba" not in sys.modules:
        os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")
    report: dict = {}
    rows = check_histogram(report, sim_smoke=args.sim_smoke, quick=args.quick, size=args.size)
    print(format_table(rows, "dlviz_gpu GPU check: histogram"))
    bad = any(r.error or r.passed is False for r in rows)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
