"""The GPU check: one short script for an NVIDIA machine.

1. device     what the machine is (numba-cuda, torch, cupy, driver).
2. imports    that the package's core pulls in no plotting library.
3. correct    every CUDA kernel compiled for real (each decoding x stats
              combination, every input dtype) and compared with the CPU kernel
              on fresh random data with the edge cases: NaN/inf, bf16/fp16
              (torch CUDA tensors), transposed and negative-stride views, a 4-D
              conv mosaic, windows partly outside, x == x1, chunk origins.
              count / nan_count / min / max must be equal; sum and m2 (float64)
              within rtol 1e-9 (plus a cancellation slack, see ``compare``).
4. timing     a 16384 x 16384 float32 torch CUDA tensor (1 GiB) to 800 x 600:
              mean, max and all statistics, against adaptive_avg_pool2d /
              adaptive_max_pool2d on the same tensor and a device-to-device
              copy ceiling, plus a check of that big raster against the CPU.

Needs only numpy, numba, numba-cuda, torch (and optionally cupy): Datashader,
xarray, HoloViews, Bokeh, psutil and tqdm are never imported.  Each section
runs in its own try/except and records its error in the JSON, so one failure
loses nothing else.  The JSON goes to ``--out``; the short table is printed
last.  Finishes in well under four minutes.

``--sim-smoke`` (with ``NUMBA_ENABLE_CUDASIM=1``): the correctness section on
tiny numpy inputs (at most 12 x 15) through ``matrix_stats_cuda`` with host
buffers, no torch, no timing -- what CI can run without a GPU.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
import traceback
import warnings

import numpy as np

from ._common import (Row, best_of, ensure_dlviz, format_table, machine_info, peak_rss_mib,
                      timestamp, write_json)

DEFAULT_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")

# Wall-clock budget: correctness stops adding cases after CORRECT_BUDGET_S so
# the timing section always runs, and optional timing rows are skipped past
# TOTAL_BUDGET_S.  The whole run must end before 240 s.
CORRECT_BUDGET_S = 140.0
TOTAL_BUDGET_S = 200.0

SUM_RTOL = 1e-9
# Cancellation slack: |gpu - cpu| <= SUM_RTOL * |cpu| + SLACK * n * s, where s
# is the largest finite magnitude in the input (s**2 for m2) and n the most
# elements in one pixel; both backends sum in float64, in different orders.
SLACK = 1e-12

FORBIDDEN = ("xarray", "datashader", "holoviews", "bokeh", "panel", "psutil", "tqdm", "pandas")

_T0 = time.perf_counter()


def _elapsed() -> float:
    return time.perf_counter() - _T0


# --------------------------------------------------------------------------
# Comparing planes
# --------------------------------------------------------------------------

def _host(planes: dict) -> dict:
    out = {}
    for k, v in planes.items():
        if isinstance(v, np.ndarray):
            out[k] = v
        elif hasattr(v, "copy_to_host"):
            out[k] = v.copy_to_host()
        elif hasattr(v, "get"):
            out[k] = v.get()
        else:
            out[k] = np.asarray(v)
    return out


def compare(gpu: dict, cpu: dict, scale: float, nmax: int) -> list[str]:
    """Problems found comparing GPU planes with CPU planes (empty list: equal)."""
    problems = []
    for name, g in gpu.items():
        if name not in cpu:
            problems.append(f"{name}: not in the CPU result")
            continue
        c = cpu[name]
        if g.shape != c.shape:
            problems.append(f"{name}: shape {g.shape} != CPU {c.shape}")
            continue
        if g.dtype != c.dtype:
            problems.append(f"{name}: dtype {g.dtype} != CPU {c.dtype}")
        if name in ("count", "nan_count"):
            bad = g != c
        elif name in ("min", "max"):
            bad = ~((g == c) | (np.isnan(g) & np.isnan(c)))
        else:
            s = scale * scale if name == "m2" else scale
            tol = SUM_RTOL * np.abs(c) + SLACK * max(nmax, 1) * s
            with np.errstate(invalid="ignore"):
                bad = ~(np.abs(g - c) <= tol)
        if bad.any():
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            problems.append(f"{name}: {int(bad.sum())} of {bad.size} pixels differ; first at "
                            f"{idx}: gpu {g[idx].item()!r} cpu {c[idx].item()!r}")
    return problems


# --------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------

def _values(rng, shape, kind: str, specials: float = 0.05) -> np.ndarray:
    """Random values of ``kind`` with a fraction of NaN/+inf/-inf and a NaN block."""
    size = int(np.prod(shape))
    if kind in ("f32", "f64", "f16", "bf16"):
        scale = float(rng.choice([1.0, 1e-2, 1e3])) if kind != "f16" else 10.0
        v = rng.standard_normal(size) * scale + float(rng.choice([0.0, 5.0, -3.0]))
        if kind == "f16":  # a few subnormal halves
            tiny = rng.random(size) < 0.05
            v[tiny] = rng.uniform(-6e-5, 6e-5, int(tiny.sum()))
        if specials:
            pick = rng.random(size) < specials
            v[pick] = rng.choice([np.nan, np.inf, -np.inf], int(pick.sum()))
        v = v.reshape(shape)
        if specials and len(shape) == 2 and shape[0] > 4:
            v[1:3, : max(1, shape[1] // 3)] = np.nan  # pixels with no finite element
        dt = {"f32": np.float32, "f64": np.float64, "f16": np.float16, "bf16": np.float32}[kind]
        return v.astype(dt)
    if kind == "bool":
        return (rng.random(size) < 0.4).reshape(shape)
    dt = np.dtype({"i8": np.int8, "u8": np.uint8, "i16": np.int16, "i32": np.int32,
                   "i64": np.int64}[kind])
    lo, hi = (np.iinfo(dt).min, np.iinfo(dt).max) if dt.itemsize < 8 else (-(2 ** 40), 2 ** 40)
    return rng.integers(lo, hi, size=size, endpoint=True, dtype=dt).reshape(shape)


def _bf16_bits(x: np.ndarray) -> np.ndarray:
    """bfloat16 bit patterns of float32 ``x`` (truncation: any pattern is a valid bf16)."""
    return (np.ascontiguousarray(x, np.float32).view(np.uint32) >> np.uint32(16)).astype(np.uint16)


def _magnitude(values: np.ndarray) -> float:
    v = np.asarray(values, np.float64)
    v = np.abs(v[np.isfinite(v)])
    return float(v.max()) if v.size else 1.0


def _bf16_value(bits: np.ndarray) -> np.ndarray:
    return (bits.astype(np.uint32) << np.uint32(16)).view(np.float32)


@dataclasses.dataclass
class Case:
    """One input on both backends and the windows to try it with."""

    name: str
    gpu: object           # Matrix for matrix_stats_cuda (host or device buffer)
    cpu: object           # Matrix for matrix_stats_cpu (host buffer)
    scale: float          # largest finite magnitude (for the sum tolerance)
    views: list           # (x_range, y_range, width, height, origin)
    flags: list           # (want_minmax, want_m2)


def _views(rng, r, c, count, max_h, max_w=48):
    """Full view first, then the edge cases, then random windows."""
    out = [((0.0, float(c)), (0.0, float(r)), min(max_w, max(1, c // 2)),
            min(max_h, max(1, r // 3)), (0, 0))]
    if count > 1:  # partly outside on both axes
        out.append(((-3.5, c * 0.6 + 0.25), (2.0, r * 1.7), min(max_w, 6), min(max_h, 3), (0, 0)))
    if count > 2:  # x == x1 and y == y1 land exactly on cell centres
        out.append(((0.5, c - 0.5), (0.5, r - 0.5), min(max_w, c - 1), min(max_h, 4), (0, 0)))
    if count > 3:  # deep zoom: fewer cells than pixels, so some pixels stay empty
        out.append(((2.25, 2.25 + min(c, 10)), (1.0, 1.0 + min(r, 3)), min(max_w, 20),
                    min(max_h, 4), (0, 0)))
    for _ in range(count - 4):
        lo = rng.uniform(-2, c * 0.7)
        hi = lo + rng.uniform(0.7, c)
        ylo = rng.uniform(-2, r * 0.7)
        yhi = ylo + rng.uniform(0.7, r)
        out.append(((lo, hi), (ylo, yhi), int(rng.integers(1, max_w + 1)),
                    int(rng.integers(1, max_h + 1)), (0, 0)))
    return out


def build_cases(sim: bool, quick: bool, use_torch: bool) -> tuple[list, dict]:
    """The correctness cases, and {builder: error} for builders that failed.

    Under the simulator: tiny numpy inputs only.
    """
    from dlviz_gpu.kernels import DECODE_BF16
    from dlviz_gpu.tensors import as_matrix

    rng = np.random.default_rng(20240611)
    cases: list = []
    errors: dict = {}
    all_flags = [(False, False), (True, False), (False, True), (True, True)]
    full = [(True, True)]

    def host(name, view, flags, views, decode_bf16=False, scale=None):
        m = as_matrix(view)
        if decode_bf16:
            m = dataclasses.replace(m, decode=DECODE_BF16, dtype="bfloat16")
            sc = _magnitude(_bf16_value(np.asarray(view)))
        else:
            sc = _magnitude(view) if scale is None else scale
        cases.append(Case(name, m, m, sc, views, flags))

    if sim:
        R, C, H = 12, 15, 4
    else:
        R, C, H = 301, 517, 48
    nviews = 2 if sim else (4 if quick else 7)

    # float32: every stats combination, the edge windows, random windows
    a = _values(rng, (R, C), "f32")
    edge_views = _views(rng, R, C, 4 if sim else nviews + 2, H)
    host("f32 C-order, every stats combination", a, all_flags, edge_views[:1 if sim else None])
    if sim:
        host("f32 C-order, edge windows", a, full, edge_views[1:])
    host("f32 transposed view", np.ascontiguousarray(a.T).T, full, _views(rng, R, C, nviews, H))
    b = _values(rng, (R, 2 * C), "f32")
    host("f32 negative strides [::-1, ::-2]", b[::-1, ::-2], full, _views(rng, R, C, nviews, H))
    w = _values(rng, (2, 3, 3, 3) if sim else (24, 16, 3, 3), "f32")
    host("f32 4-D conv mosaic", w, full, _views(rng, w.shape[0] * 3, w.shape[1] * 3, nviews, H))
    # a chunk of the matrix with its origin: pixels assigned as for the whole
    r0 = R // 2
    m = as_matrix(a[r0:])
    cases.append(Case("f32 chunk with origin", m, m, _magnitude(a),
                      [((0.0, float(C)), (0.0, float(R)), min(7, C), min(H, 4), (r0, 0))], full))
    # half precision: all four stats combinations each (every kernel compiled)
    hb = _values(rng, (R, C), "bf16")
    host("bf16 bits (host)", _bf16_bits(hb), full if sim else all_flags,
         _views(rng, R, C, nviews, H), decode_bf16=True)
    hf = _values(rng, (R, C), "f16")
    host("float16 (host)", hf, full if sim else all_flags, _views(rng, R, C, nviews, H))
    # the other dtypes read natively
    kinds = ["f64", "i32"] if sim else (["f64", "i32", "bool"] if quick else
                                        ["f64", "i8", "u8", "i16", "i32", "i64", "bool"])
    for kind in kinds:
        host(f"{kind} (host)", _values(rng, (R, C), kind), full,
             _views(rng, R, C, 1 if sim else 2, H))
    if sim:
        return cases, errors

    # rows and columns both strided
    b2 = _values(rng, (2 * R, 2 * C), "f32")
    host("f32 strided [::2, 1::2]", b2[::2, 1::2], full, _views(rng, R, C, nviews, H))

    if use_torch:
        for builder in (_torch_cases, _cupy_cases):
            try:
                cases.extend(builder(rng, R, C, H, nviews, all_flags, full))
            except Exception as exc:  # keep the host cases; report the device ones
                errors[builder.__name__.strip("_")] = f"{type(exc).__name__}: {exc}"

    # most valuable first, in case the time budget cuts the list short: every
    # (decoding x stats) kernel, then device-resident inputs, then the rest
    def priority(case):
        if case.name.startswith(("f32 C-order", "bf16 bits", "float16")):
            return 0
        if case.name.startswith(("torch cuda f32", "torch cuda bf16", "torch cuda f16")):
            return 1
        return 2
    cases.sort(key=priority)
    return cases, errors


def _torch_cases(rng, R, C, H, nviews, all_flags, full) -> list:
    """Inputs that live on the GPU: torch CUDA tensors read in place."""
    import torch

    from dlviz_gpu.tensors import as_matrix

    out = []

    def dev(name, t, flags, views):
        g = as_matrix(t)
        c = as_matrix(t.cpu())
        sc = _magnitude(t.detach().float().cpu().numpy())
        out.append(Case(name, g, c, sc, views, flags))

    x = torch.from_numpy(_values(rng, (R, C), "f32")).cuda()
    dev("torch cuda f32", x, all_flags, _views(rng, R, C, nviews, H))
    dev("torch cuda f32 .T", torch.from_numpy(_values(rng, (C, R), "f32")).cuda().T, full,
        _views(rng, R, C, nviews, H))
    y = torch.from_numpy(_values(rng, (2 * R, 3 * C), "f32")).cuda()
    dev("torch cuda f32 [::2, 1::3]", y[::2, 1::3], full, _views(rng, R, C, nviews, H))
    for dt, label in ((torch.bfloat16, "bf16"), (torch.float16, "f16")):
        v = torch.from_numpy(_values(rng, (R, C), "f32" if label == "bf16" else "f16")
                             .astype(np.float32)).to(dt).cuda()
        dev(f"torch cuda {label}", v, all_flags, _views(rng, R, C, nviews, H))
        dev(f"torch cuda {label} .T", v.T.contiguous().T, full, _views(rng, R, C, 2, H))
    wt = torch.from_numpy(_values(rng, (24, 16, 3, 3), "f32")).cuda()
    dev("torch cuda conv mosaic", wt, full, _views(rng, 72, 48, nviews, H))
    dev("torch cuda conv mosaic, permuted", wt.permute(1, 0, 2, 3), full,
        _views(rng, 48, 72, 2, H))
    wb = wt.to(torch.bfloat16)
    dev("torch cuda bf16 conv mosaic", wb, full, _views(rng, 72, 48, 2, H))
    return out


def _cupy_cases(rng, R, C, H, nviews, all_flags, full) -> list:
    """Negative strides on the device (torch has none): cupy, when installed."""
    try:
        import cupy
    except Exception:
        return []
    from dlviz_gpu.tensors import as_matrix

    host = _values(rng, (R, 2 * C), "f32")
    view = cupy.asarray(host)[::-1, ::-2]
    g = as_matrix(view)
    c = as_matrix(host[::-1, ::-2])
    return [Case("cupy f32 [::-1, ::-2]", g, c, _magnitude(host), _views(rng, R, C, nviews, H),
                 full)]


def _max_cells(m, view) -> int:
    from dlviz_gpu.kernels import axis_ranges

    (x0, x1), (y0, y1), w, h, (orow, ocol) = view
    cs, ce = axis_ranges(m.cols.n, float(x0), float(x1), int(w), int(ocol))
    rs, re = axis_ranges(m.rows.n, float(y0), float(y1), int(h), int(orow))
    return int(max((ce - cs).max(initial=0), 0) * max((re - rs).max(initial=0), 0))


def run_correctness(cases: list, budget_s: float | None) -> dict:
    from dlviz_gpu.kernels import matrix_stats_cpu, matrix_stats_cuda

    results = []
    calls = failed = 0
    skipped = []
    for case in cases:
        if budget_s is not None and _elapsed() > budget_s:
            skipped.append(case.name)
            continue
        for view in case.views:
            xr, yr, w, h, origin = view
            try:
                cpu = matrix_stats_cpu(case.cpu.buffer, case.cpu.offset, case.cpu.rows,
                                       case.cpu.cols, xr, yr, w, h, decode=case.cpu.decode,
                                       want_minmax=True, want_m2=True, origin=origin)
                nmax = _max_cells(case.cpu, view)
            except Exception as exc:
                results.append({"case": case.name, "window": view, "ok": False,
                                "problems": [f"CPU kernel raised {type(exc).__name__}: {exc}"]})
                failed += 1
                continue
            for mm, m2 in case.flags:
                t0 = time.perf_counter()
                try:
                    gpu = _host(matrix_stats_cuda(
                        case.gpu.buffer, case.gpu.offset, case.gpu.rows, case.gpu.cols,
                        xr, yr, w, h, decode=case.gpu.decode, want_minmax=mm, want_m2=m2,
                        origin=origin))
                    expected = {"count", "nan_count", "sum"} | ({"min", "max"} if mm else set()) \
                        | ({"m2"} if m2 else set())
                    problems = compare(gpu, cpu, case.scale, nmax)
                    if set(gpu) != expected:
                        problems.append(f"planes {sorted(gpu)} != expected {sorted(expected)}")
                except Exception as exc:
                    problems = [f"CUDA kernel raised {type(exc).__name__}: {exc}",
                                traceback.format_exc(limit=4)]
                calls += 1
                ok = not problems
                failed += not ok
                results.append({
                    "case": case.name, "dtype": case.gpu.dtype, "device": case.gpu.device,
                    "shape": list(case.gpu.shape), "x_range": list(xr), "y_range": list(yr),
                    "canvas": [w, h], "origin": list(origin), "want_minmax": mm, "want_m2": m2,
                    "ok": ok, "problems": problems, "seconds": time.perf_counter() - t0})
    return {"calls": calls, "failed": failed, "skipped_cases": skipped, "results": results,
            "kernels": _compiled_kernels()}


def _compiled_kernels() -> list:
    """Which CUDA kernels got compiled: (decoding, want_minmax, want_m2) and specialisations."""
    try:
        import numba

        from dlviz_gpu.kernels import matrix as km

        if numba.config.ENABLE_CUDASIM:
            return [{"note": "simulator: kernels are interpreted, nothing is compiled"}]
        names = {0: "native", 1: "bf16", 2: "f16"}
        out = []
        for dec in (0, 1, 2):
            for mm in (False, True):
                for m2 in (False, True):
                    k = km.cuda_kernel(dec, mm, m2)  # memoised: the dispatcher the runs used
                    sigs = [str(s) for s in getattr(k, "overloads", {}).keys()]
                    out.append({"decode": names[dec], "want_minmax": mm, "want_m2": m2,
                                "specialisations": len(sigs),
                                "signatures": [s[:300] for s in sigs]})
        return out
    except Exception as exc:
        return [{"error": f"{type(exc).__name__}: {exc}"}]


# --------------------------------------------------------------------------
# Device information and import hygiene
# --------------------------------------------------------------------------

def device_info(sim: bool) -> dict:
    info: dict = {}
    from numba import cuda

    try:
        import numba_cuda

        info["numba_cuda"] = getattr(numba_cuda, "__version__", None)
    except Exception:
        info["numba_cuda"] = None
    if sim:
        info["device"] = "numba CUDA simulator (NUMBA_ENABLE_CUDASIM=1)"
        return info
    try:
        dev = cuda.get_current_device()
        name = dev.name
        info["device"] = name.decode() if isinstance(name, bytes) else str(name)
        info["compute_capability"] = list(dev.compute_capability)
        info["multiprocessors"] = int(dev.MULTIPROCESSOR_COUNT)
        free, total = cuda.current_context().get_memory_info()
        info["memory_gib"] = round(total / 2 ** 30, 2)
        info["free_memory_gib"] = round(free / 2 ** 30, 2)
    except Exception as exc:
        info["numba_error"] = f"{type(exc).__name__}: {exc}"
    try:
        from numba.cuda.cudadrv import driver

        info["driver_cuda_version"] = list(driver.driver.get_version())
    except Exception:
        pass
    try:
        info["runtime_cuda_version"] = list(cuda.runtime.get_version())
    except Exception:
        pass
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_cuda"] = torch.version.cuda
        if torch.cuda.is_available():
            p = torch.cuda.get_device_properties(0)
            info["torch_device"] = p.name
            info["torch_memory_gib"] = round(p.total_memory / 2 ** 30, 2)
    except Exception as exc:
        info["torch"] = f"unavailable: {type(exc).__name__}: {exc}"
    try:
        import cupy

        info["cupy"] = cupy.__version__
    except Exception:
        info["cupy"] = None
    return info


def import_hygiene() -> dict:
    """Import the core modules and list any plotting/extra library they pulled in."""
    before = {m for m in FORBIDDEN if m in sys.modules}
    import dlviz_gpu.aggregate  # noqa: F401
    import dlviz_gpu.backend  # noqa: F401
    import dlviz_gpu.kernels  # noqa: F401
    import dlviz_gpu.raster  # noqa: F401
    import dlviz_gpu.tensors  # noqa: F401

    pulled = sorted(m for m in FORBIDDEN if m in sys.modules and m not in before)
    return {"pulled_in": pulled, "already_loaded": sorted(before), "ok": not pulled}


# --------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------

def _event_best(fn, repeats: int) -> float:
    """Best device time of ``fn`` by CUDA events on torch's current stream (seconds)."""
    import torch

    best = float("inf")
    for _ in range(repeats):
        torch.cuda.synchronize()
        e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        e0.record()
        out = fn()
        e1.record()
        torch.cuda.synchronize()
        best = min(best, e0.elapsed_time(e1) / 1e3)
        del out
    return best


def _gib(nbytes: int) -> str:
    if nbytes >= 2 ** 30:
        return f"{nbytes / 2 ** 30:g} GiB"
    return f"{nbytes / 2 ** 20:g} MiB"


def run_timing(size: int, quick: bool, rows: list, res: dict) -> None:
    """Time ours vs torch vs the copy ceiling on one >= 1 GiB float32 CUDA tensor.

    Every measurement is attempted on its own: a failure becomes an error row
    (and an entry in ``res["errors"]``) and the next measurement still runs.
    """
    import torch
    import torch.nn.functional as F

    from dlviz_gpu.backend import run_matrix
    from dlviz_gpu.raster import Canvas
    from dlviz_gpu.tensors import as_matrix

    sync = torch.cuda.synchronize
    reps = 5 if quick else 10
    W, H = 800, 600
    n = size
    torch.manual_seed(0)
    t = torch.randn(n, n, device="cuda", dtype=torch.float32)
    nbytes = t.numel() * t.element_size()
    size_txt = _gib(nbytes)
    res["tensor"] = {"shape": [n, n], "dtype": "float32", "bytes": nbytes}
    canvas = Canvas(W, H, (0.0, float(n)), (0.0, float(n)))
    m = as_matrix(t)
    x4 = t[None, None]
    tm: dict = {}
    res["timings"] = tm
    got: dict = {}   # seconds per measurement that worked

    def timed(key, fn):
        w = best_of(fn, reps, warmup=2, sync=sync)
        ev = _event_best(fn, max(3, reps // 2))
        tm[key] = {"wall": w.as_dict(), "event_best_s": ev}
        got[key] = w.best
        return w.best

    def attempt(label, fn):
        try:
            fn()
        except Exception as exc:
            res["errors"][f"timing/{label}"] = {"error": f"{type(exc).__name__}: {exc}",
                                                "traceback": traceback.format_exc()}
            rows.append(Row(label, error=f"{type(exc).__name__}: {exc}"))
            print(traceback.format_exc(), file=sys.stderr)

    def gbps(sec, nb=nbytes):
        return nb / sec / 1e9

    def frac(key):
        # conservative: our read rate against the copy's read+write traffic rate
        if "copy" not in got or key not in got:
            return None
        return gbps(got[key]) / (2 * nbytes / got["copy"] / 1e9)

    def frac_read(key):
        if "copy" not in got or key not in got:
            return None
        return gbps(got[key]) / (nbytes / got["copy"] / 1e9)

    def ratio(num, den):
        return got[num] / got[den] if num in got and den in got else None

    def ours(mm, m2, mat=m):
        return lambda: run_matrix(mat, canvas, mm, m2, "cuda")

    res["definitions"] = {
        "GB/s": "input bytes / time (1e9 bytes); for the copy row: (read + written bytes) / time",
        "of copy": "(input bytes / our time) / (2 * bytes / copy time): our read rate against "
                   "the copy's total read+write traffic rate -- the conservative choice; it is "
                   "half of fraction_vs_copy_read_rate = (input bytes / our time) / (bytes / "
                   "copy time), which compares with the copy's read rate alone",
        "x ours": "torch time / our time on the same tensor (speed-up of ours)",
        "x mean": "all statistics / mean alone",
        "x f32 el/s": "elements per second relative to the float32 mean",
        "time": "best of N wall-clock calls between torch.cuda.synchronize(), after 2 warm-up "
                "calls; includes each call's host-side planning and launches (see the "
                "600x800 overhead row); timings[*].event_best_s is the CUDA-event time",
    }

    def copy():
        dst = torch.empty_like(t)
        try:
            timed("copy", lambda: dst.copy_(t))
        finally:
            del dst
            torch.cuda.empty_cache()
        res["copy"] = {"time_s": got["copy"], "total_gbps": 2 * gbps(got["copy"]),
                       "read_gbps": gbps(got["copy"])}
        rows.append(Row(f"d2d copy {size_txt} (ceiling)", got["copy"], 2 * gbps(got["copy"]),
                        note="GB/s counts bytes read + written"))
    attempt("d2d copy", copy)

    def tsum():
        timed("torch_sum", lambda: t.sum())
        rows.append(Row("torch.sum (read rate)", got["torch_sum"], gbps(got["torch_sum"])))
    attempt("torch.sum", tsum)

    def ours_row(key, label, mm, m2):
        def go():
            timed(key, ours(mm, m2))
            rows.append(Row(label, got[key], gbps(got[key]), frac(key), "of copy",
                            extra={"fraction_vs_copy_read_rate": frac_read(key)}))
        return go

    def torch_row(key, label, fn, ours_key):
        def go():
            timed(key, fn)
            rows.append(Row(label, got[key], gbps(got[key]), ratio(key, ours_key), "x ours"))
        return go

    attempt("ours mean", ours_row("ours_mean", "ours mean", False, False))
    attempt("torch adaptive_avg_pool2d", torch_row(
        "torch_avg", "torch adaptive_avg_pool2d", lambda: F.adaptive_avg_pool2d(x4, (H, W)),
        "ours_mean"))
    attempt("ours max", ours_row("ours_max", "ours max", True, False))
    attempt("torch adaptive_max_pool2d", torch_row(
        "torch_max", "torch adaptive_max_pool2d", lambda: F.adaptive_max_pool2d(x4, (H, W)),
        "ours_max"))

    def all_row():
        timed("ours_all", ours(True, True))
        rows.append(Row("ours all stats", got["ours_all"], gbps(got["ours_all"]),
                        ratio("ours_all", "ours_mean"), "x mean",
                        extra={"fraction_of_copy": frac("ours_all")}))
    attempt("ours all stats", all_row)

    def overhead():
        small = as_matrix(torch.randn(H, W, device="cuda"))
        timed("overhead_600x800", ours(True, True, small))
        res["overhead_s"] = got["overhead_600x800"]
        rows.append(Row("ours, 600x800 input (overhead)", got["overhead_600x800"],
                        note="the fixed cost of one call (planning, launches, allocation)"))
    attempt("overhead", overhead)

    def bf16():
        tb = t.to(torch.bfloat16)
        try:
            timed("ours_mean_bf16", ours(False, False, as_matrix(tb)))
        finally:
            del tb
            torch.cuda.empty_cache()
        rows.append(Row("ours mean, bf16 tensor", got["ours_mean_bf16"],
                        gbps(got["ours_mean_bf16"], nbytes // 2),
                        ratio("ours_mean", "ours_mean_bf16"), "x f32 el/s"))
    if _elapsed() < TOTAL_BUDGET_S:
        attempt("bf16", bf16)

    # the big raster against the CPU kernel, and the host-streamed path
    host_state: dict = {}

    def big_check():
        from dlviz_gpu.kernels import matrix_stats_cpu

        t0 = time.perf_counter()
        gpu = _host(run_matrix(m, canvas, True, True, "cuda"))
        host = t.cpu().numpy()
        mh = as_matrix(host)
        cpu = matrix_stats_cpu(mh.buffer, mh.offset, mh.rows, mh.cols, canvas.x_range,
                               canvas.y_range, W, H, decode=mh.decode)
        nmax = int(np.ceil(n / H) * np.ceil(n / W))
        scale = float(max(abs(float(t.min())), abs(float(t.max()))))
        problems = compare(gpu, cpu, scale, nmax)
        host_state.update(host=host, mh=mh, cpu=cpu, nmax=nmax, scale=scale)
        res["big_check"] = {"problems": problems, "seconds": time.perf_counter() - t0}
        rows.append(Row(f"{size_txt} raster == CPU kernel", None, None, float(len(problems)),
                        "problems", ("<=", 0), note="; ".join(problems)[:300]))
    if _elapsed() < TOTAL_BUDGET_S:
        attempt("big check", big_check)

    def streamed():
        from dlviz_gpu.kernels import matrix_stats_cuda

        mh = host_state["mh"]

        def fn():
            return matrix_stats_cuda(mh.buffer, mh.offset, mh.rows, mh.cols, canvas.x_range,
                                     canvas.y_range, W, H, want_minmax=True, want_m2=False)
        w = best_of(fn, 3, warmup=1, sync=sync)
        tm["ours_max_from_host"] = {"wall": w.as_dict()}
        out = _host(fn())
        sp = compare(out, host_state["cpu"], host_state["scale"], host_state["nmax"])
        rows.append(Row("ours max, host array streamed", w.best, gbps(w.best), float(len(sp)),
                        "problems", ("<=", 0),
                        note="host -> device in slabs; GB/s bounded by the bus. "
                             + "; ".join(sp)[:200]))
    if not quick and "mh" in host_state and _elapsed() < TOTAL_BUDGET_S:
        attempt("host streamed", streamed)
    host_state.clear()
    del m, t, x4
    torch.cuda.empty_cache()


# --------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------

# (section name, module, function(report, sim_smoke=, quick=) -> table rows)
FAMILY_CHECKS = (
    ("points", ".gpu_points", "check_points"),
    ("series", ".gpu_series", "check_series"),
    ("histogram", ".gpu_hist", "check_histogram"),
    ("watch", ".gpu_watch", "check_watch"),
    ("line_sumsq", ".gpu_describe", "check_describe"),
    ("moments", ".gpu_moments", "check_moments"),
)


def run(out_dir: str = DEFAULT_OUT, quick: bool = False, sim_smoke: bool = False,
        size: int | None = None) -> int:
    """Run the GPU check; returns the exit status (0: every check passed)."""
    stamp = timestamp()
    if sim_smoke and "numba" not in sys.modules:
        os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")
    res: dict = {"suite": "gpu", "started": stamp, "quick": quick, "sim_smoke": sim_smoke,
                 "sections": {}, "errors": {}}
    rows: list[Row] = []
    status = 0

    def section(name, fn):
        nonlocal status
        t0 = time.perf_counter()
        print(f"[gpu check] {name} ...", file=sys.stderr, flush=True)
        try:
            out = fn()
            res["sections"][name] = {"ok": True, "seconds": time.perf_counter() - t0}
            return out
        except Exception as exc:
            status = 1
            res["sections"][name] = {"ok": False, "seconds": time.perf_counter() - t0}
            res["errors"][name] = {"error": f"{type(exc).__name__}: {exc}",
                                   "traceback": traceback.format_exc()}
            rows.append(Row(f"section {name}", error=f"{type(exc).__name__}: {exc}"))
            print(traceback.format_exc(), file=sys.stderr)
            return None

    found = section("package", ensure_dlviz)
    res["package"] = found

    import numba

    sim = bool(getattr(numba.config, "ENABLE_CUDASIM", False))
    if sim_smoke and not sim:
        res["errors"]["sim"] = {"error": "--sim-smoke needs NUMBA_ENABLE_CUDASIM=1 set before "
                                         "numba is imported"}
        status = 1
    if sim and not sim_smoke:
        res["note"] = "CUDA simulator detected: running the tiny sim-smoke mode"
        sim_smoke = True
    res["machine"] = machine_info(("numpy", "numba", "numba-cuda", "torch", "cupy"))
    res["device"] = section("device", lambda: device_info(sim))
    hyg = section("imports", import_hygiene)
    res["imports"] = hyg
    if hyg is not None:
        rows.append(Row("core imports: no plotting libs", value=float(len(hyg["pulled_in"])),
                        metric="pulled in", goal=("<=", 0),
                        note=("pulled in " + ", ".join(hyg["pulled_in"])) if hyg["pulled_in"]
                        else ""))
    try:  # tiny test grids make numba-cuda warn about under-utilisation
        from numba.core.errors import NumbaPerformanceWarning

        warnings.filterwarnings("ignore", category=NumbaPerformanceWarning)
    except ImportError:
        pass
    if sim:
        # the simulator runs kernels as Python threads: NaN/inf arithmetic warns
        warnings.filterwarnings("ignore", "invalid value encountered", RuntimeWarning)
        warnings.filterwarnings("ignore", "overflow encountered", RuntimeWarning)

    use_torch = False
    if not sim_smoke:
        def torch_ok():
            import torch

            if not torch.cuda.is_available():
                raise RuntimeError("torch.cuda.is_available() is False")
            return True
        use_torch = bool(section("torch", torch_ok))

    built = section("cases", lambda: build_cases(sim_smoke, quick, use_torch))
    cases, case_errors = built if built is not None else ([], {})
    for name, err in case_errors.items():
        status = 1
        res["errors"][f"cases/{name}"] = {"error": err}
        rows.append(Row(f"building {name}", error=err))
    corr = section("correctness", lambda: run_correctness(
        cases, None if sim_smoke else CORRECT_BUDGET_S))
    if corr is not None:
        res["correctness"] = corr
        if corr["failed"] or not corr["calls"]:
            status = 1
        kern = [k for k in corr["kernels"] if "specialisations" in k]
        compiled = sum(1 for k in kern if k["specialisations"])
        if sim:
            note = "simulator: kernels interpreted, not compiled"
        else:
            note = (f"{compiled} of {len(kern)} (decoding x stats) kernels compiled, "
                    f"{sum(k['specialisations'] for k in kern)} specialisations")
            if kern and compiled < len(kern):
                status = 1
                note += " -- NOT ALL COMPILED"
        if corr["skipped_cases"]:
            note += f"; skipped for time: {', '.join(corr['skipped_cases'])}"
        if not corr["calls"]:
            note += "; NOTHING WAS COMPARED"
        rows.append(Row(f"CUDA == CPU kernel ({corr['calls']} calls, {len(cases)} inputs)",
                        None, None, float(corr["failed"] if corr["calls"] else 1),
                        "mismatches", ("<=", 0), note=note))
        for r in corr["results"]:
            if not r["ok"]:
                print(f"MISMATCH {r['case']} window x={r.get('x_range')} y={r.get('y_range')} "
                      f"canvas={r.get('canvas')} minmax={r.get('want_minmax')} "
                      f"m2={r.get('want_m2')}: {r['problems'][:3]}", file=sys.stderr)

    if sim_smoke or not use_torch:
        res["sections"]["timing"] = {"skipped": "sim-smoke" if sim_smoke else "no torch CUDA"}
    else:
        def timing():
            run_timing(size or 16384, quick, rows, res)
        section("timing", timing)

    # the other kernel families, each checked and timed by its own module
    for family, module, check in FAMILY_CHECKS:
        def run_family(module=module, check=check):
            import importlib

            mod = importlib.import_module(module, __package__)
            rows.extend(getattr(mod, check)(res, sim_smoke=sim_smoke, quick=quick) or [])
        section(family, run_family)

    for r in rows:
        if r.passed is False:
            status = 1
    res["rows"] = [r.as_dict() for r in rows]
    res["status"] = status
    res["wall_s"] = _elapsed()
    res["peak_rss_mib"] = peak_rss_mib()
    dev = res.get("device") or {}
    title = (f"dlviz_gpu GPU check on {dev.get('device') or dev.get('torch_device') or '?'}"
             + (" [sim-smoke]" if sim_smoke else " [quick]" if quick else "")
             + f": {res['wall_s']:.0f} s, status {status}")
    table = format_table(rows, title)
    res["table"] = table
    try:
        path = write_json(out_dir, "gpu", res, stamp)
        print(f"wrote {path}")
    except Exception as exc:
        status = 1
        print(f"could not write the JSON to {out_dir}: {exc}", file=sys.stderr)
    print(table, flush=True)
    return status
