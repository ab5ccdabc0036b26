"""Opening and drawing a multi-gigabyte bf16 checkpoint without loading it.

``python -m benchmarks checkpoint [--quick] [--size-gib 4] [--shape 4096x11008]
[--out DIR] [--keep FILE]``

1. **The file.**  A synthetic safetensors file of bfloat16 tensors shaped like
   the decoder layers of a 7B transformer (hidden 4096, MLP 11008:
   ``q/k/v/o_proj`` 4096 x 4096, ``gate/up_proj`` 11008 x 4096,
   ``down_proj`` 4096 x 11008, RMS-norm vectors), with the embedding and LM
   head of a 32000-token vocabulary (32000 x 4096, the largest tensors, as in
   Llama-2-7B), as many layers as make at least ``--size-gib`` GiB (4.27 GiB:
   10 layers).  ``--shape`` scales every side (vocabulary 32000 x hidden / 4096).  The header is written by
   the few lines here (8-byte length, JSON, space padding to 8 bytes) and the
   data streamed in 32 MiB chunks, so writing never holds the file in memory;
   values are bell-shaped pseudo-random numbers (a numba-parallel splitmix64
   generator) times per-row and per-column scales, with a few outlier columns,
   rounded to bf16.  Free space is checked first (at least twice the file).
2. **Cold pages.**  Before each measurement the file is flushed and its pages
   are dropped from the page cache with ``posix_fadvise(DONTNEED)`` (our own
   file only: nothing global is dropped); how much of the file is still
   cached is measured with ``mincore`` and reported.
3. **A fresh process per scenario** (``python -c``; its RSS starts clean and
   its peak, ``ru_maxrss`` from ``wait4``, is the whole process's):

   * ``open catalog``: ``dlviz_gpu.models.open(path)``; the bytes the process
     read with ``read()`` (``/proc/self/io`` rchar) show that only the header
     was read; RSS growth.
   * ``first picture, rasterize``: ``dv.rasterize`` of the 4096 x 11008 tensor
     at 800 x 600, all statistics, the tensor's pages not yet read; then the
     same again with the pages cached (median of N).  Before it, ``compile
     kernels`` runs the same kernels on an 8 x 8 bf16 matrix of the same kind:
     numba compiles them in every new process (they are generated per
     statistic set and not cached on disk), so the first picture is split
     into compile + pages and compute.
   * ``first picture, dv.heatmap(dynamic=False)``: the whole HoloViews
     ``Image`` (overview pass for the colour limits plus the 800 x 600
     element) and the Bokeh model built from it (``get_plot``).
   * ``1% zoom window``: 10 % of each side, rasterized (canvas = visible cells
     up to 800 x 600, as the view asks) and as the view's element.
   * ``time to first picture``: open + compile + first call (the heatmap-first
     scenario compiles inside its first call), excluding interpreter start-up
     and imports, which are rows of their own.
   * ``peak RSS``: the subprocess's peak resident memory against the goal:
     below the largest single tensor of the file + 300 MiB; and, stricter, the
     peak minus the drawn tensor's bytes (the pages a picture maps in) against
     the same 300 MiB.

   Scenarios: the tensor as host bf16 (``catalog.matrix(name)``, no torch),
   the same with the heatmap drawn first (so it is the cold first picture),
   and (not with ``--quick``) as a torch ``bfloat16`` tensor over the map
   (``catalog[name]``, which imports torch).

Times are wall clock on a machine shared with other processes: read ratios
and orders of magnitude, not milliseconds.  Nothing here asserts a timing.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

import numpy as np

from ._common import (Row, ensure_dlviz, format_table, high_load_note, loadavg, machine_info,
                      timestamp, write_json)

DEFAULT_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SIZE_GIB = 4.0
HIDDEN, INTER = 4096, 11008       # the drawn tensor: down_proj, HIDDEN x INTER
VOCAB = 32000                     # embedding / LM head rows at HIDDEN (scaled with --shape)
WIDTH, HEIGHT = 800, 600
SLACK_MIB = 300                   # peak RSS goal: largest tensor + this
ZOOM_FRACTION = 0.10              # 1% window: 10 % of each side
CHUNK_ELEMENTS = 16 * 2 ** 20     # 32 MiB of bf16 per write
SEED = 20240607


# --------------------------------------------------------------------------
# The synthetic checkpoint
# --------------------------------------------------------------------------

def parse_shape(text: str) -> tuple[int, int]:
    """``"4096x11008"`` -> ``(4096, 11008)``: the drawn tensor, hidden x MLP width."""
    try:
        rows, cols = (int(p) for p in str(text).lower().replace("*", "x").split("x"))
    except ValueError:
        raise ValueError(f"shape: expected ROWSxCOLS such as 4096x11008; got {text!r}") from None
    if rows < 2 or cols < 2:
        raise ValueError(f"shape: both sides must be at least 2; got {text!r}")
    return rows, cols


def layer_plan(size_gib: float, shape=(HIDDEN, INTER)) -> list[dict]:
    """The tensors of the file, in file order, making at least ``size_gib`` GiB.

    Parameters
    ----------
    size_gib : float
        Smallest file size wanted (GiB, 2**30 bytes), > 0.
    shape : (int, int)
        ``(hidden, mlp)``: ``down_proj`` is hidden x mlp, ``gate/up_proj``
        mlp x hidden, attention projections hidden x hidden.

    Returns
    -------
    list of dict
        ``name``, ``shape``, ``kind`` ("weight", "norm") and ``scale``.
    """
    if not (isinstance(size_gib, (int, float)) and math.isfinite(size_gib) and size_gib > 0):
        raise ValueError(f"size_gib: expected a positive number of GiB; got {size_gib!r}")
    h, m = shape
    vocab = max(2, round(VOCAB * h / HIDDEN))
    want = size_gib * 2 ** 30

    def layer(i):
        p = f"model.layers.{i}."
        return [
            {"name": p + "input_layernorm.weight", "shape": (h,), "kind": "norm", "scale": 0.05},
            {"name": p + "self_attn.q_proj.weight", "shape": (h, h), "kind": "weight",
             "scale": 0.02},
            {"name": p + "self_attn.k_proj.weight", "shape": (h, h), "kind": "weight",
             "scale": 0.02},
            {"name": p + "self_attn.v_proj.weight", "shape": (h, h), "kind": "weight",
             "scale": 0.01},
            {"name": p + "self_attn.o_proj.weight", "shape": (h, h), "kind": "weight",
             "scale": 0.01},
            {"name": p + "post_attention_layernorm.weight", "shape": (h,), "kind": "norm",
             "scale": 0.05},
            {"name": p + "mlp.gate_proj.weight", "shape": (m, h), "kind": "weight",
             "scale": 0.02},
            {"name": p + "mlp.up_proj.weight", "shape": (m, h), "kind": "weight", "scale": 0.02},
            {"name": p + "mlp.down_proj.weight", "shape": (h, m), "kind": "weight",
             "scale": 0.015},
        ]

    ends = [{"name": "model.embed_tokens.weight", "shape": (vocab, h), "kind": "weight",
             "scale": 0.03},
            {"name": "model.norm.weight", "shape": (h,), "kind": "norm", "scale": 0.05},
            {"name": "lm_head.weight", "shape": (vocab, h), "kind": "weight", "scale": 0.02}]
    fixed = sum(2 * math.prod(t["shape"]) for t in ends)
    per_layer = sum(2 * math.prod(t["shape"]) for t in layer(0))
    n_layers = max(1, math.ceil((want - fixed) / per_layer))
    plan = [ends[0]]
    for i in range(n_layers):
        plan.extend(layer(i))
    plan.extend(ends[1:])
    return plan


DRAWN = "model.layers.0.mlp.down_proj.weight"


def header_bytes(plan: list[dict]) -> tuple[bytes, int]:
    """The safetensors prefix (8-byte length + JSON padded to 8) and the data size."""
    entries = {"__metadata__": {"format": "pt",
                                "generator": "dlviz_gpu benchmarks/checkpoint.py (synthetic)"}}
    off = 0
    for t in plan:
        n = 2 * math.prod(t["shape"])
        entries[t["name"]] = {"dtype": "BF16", "shape": list(t["shape"]),
                              "data_offsets": [off, off + n]}
        off += n
    text = json.dumps(entries, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text, off


_KERNELS: dict = {}


def _fill_kernel():
    """numba-parallel: bell-shaped values x row scale x column scale -> bf16 bits."""
    if _KERNELS:
        return _KERNELS["fill"]
    import numba
    from numba import prange

    @numba.njit(parallel=True, cache=False)
    def fill(bits, buf, ubuf, start, cols, seed, scale, offset, row_scale, col_scale, ntasks):
        n = bits.size
        step = (n + ntasks - 1) // ntasks
        for t in prange(ntasks):
            lo = min(t * step, n)
            hi = min(lo + step, n)
            for k in range(lo, hi):
                i = start + k
                z = np.uint64(i) + np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15)
                z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
                z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
                z = z ^ (z >> np.uint64(31))
                mask = np.uint64(0xFFFF)
                s = (np.float64(z & mask) + np.float64((z >> np.uint64(16)) & mask)
                     + np.float64((z >> np.uint64(32)) & mask) + np.float64(z >> np.uint64(48)))
                v = (s - 131070.0) / 37837.22          # mean 0, std 1
                buf[k] = np.float32(offset + v * scale * row_scale[i // cols]
                                    * col_scale[i % cols])
            # float32 -> bf16, round to nearest even (finite values only here);
            # ubuf is buf's uint32 view
            for k in range(lo, hi):
                x = ubuf[k]
                bits[k] = np.uint16((x + np.uint32(0x7FFF) + ((x >> np.uint32(16))
                                                                   & np.uint32(1)))
                                         >> np.uint32(16))

    _KERNELS["fill"] = fill
    return fill


def _scales(t: dict, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-row and per-column multipliers: log-normal spread, a few outlier columns."""
    rng = np.random.default_rng(seed)
    shape = t["shape"]
    rows, cols = (1, shape[0]) if len(shape) == 1 else shape
    if t["kind"] == "norm":
        return np.ones(rows), np.ones(cols)
    row = np.exp(0.2 * rng.standard_normal(rows))
    col = np.exp(0.3 * rng.standard_normal(cols))
    k = max(1, cols // 1500)
    col[rng.choice(cols, size=k, replace=False)] *= 8.0      # outlier units
    return row, col


def _byte_bar(total: int, desc: str):
    try:
        from tqdm import tqdm
    except ImportError:
        from ._common import progress

        return progress(max(1, total // 2 ** 20), desc + " (MiB)")
    return tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024,
                file=sys.stderr, leave=False, dynamic_ncols=True)


def write_checkpoint(path: str, plan: list[dict], seed: int = SEED) -> dict:
    """Stream the file of ``plan`` to ``path`` in chunks; returns size and timings.

    Never holds more than one chunk (32 MiB of bf16 plus its float32 scratch).
    """
    fill = _fill_kernel()
    prefix, data_size = header_bytes(plan)
    total = len(prefix) + data_size
    bits = np.empty(CHUNK_ELEMENTS, np.uint16)
    buf = np.empty(CHUNK_ELEMENTS, np.float32)
    ubuf = buf.view(np.uint32)
    bar = _byte_bar(total, "writing synthetic bf16 safetensors")
    uses_tqdm = hasattr(bar, "format_dict")
    t0 = time.perf_counter()
    gen = 0.0
    try:
        with open(path, "wb") as f:
            f.write(prefix)
            bar.update(len(prefix) if uses_tqdm else 0)
            for k, t in enumerate(plan):
                n = math.prod(t["shape"])
                cols = t["shape"][-1]
                row, col = _scales(t, seed + k)
                offset = 1.0 if t["kind"] == "norm" else 0.0
                for start in range(0, n, CHUNK_ELEMENTS):
                    m = min(CHUNK_ELEMENTS, n - start)
                    g0 = time.perf_counter()
                    fill(bits[:m], buf[:m], ubuf[:m], np.int64(start), np.int64(cols),
                         np.int64(seed + 7919 * k), float(t["scale"]), offset, row, col,
                         np.int64(64))
                    gen += time.perf_counter() - g0
                    f.write(memoryview(bits[:m]).cast("B"))
                    bar.update(2 * m if uses_tqdm else (2 * m) // 2 ** 20)
            f.flush()
            s0 = time.perf_counter()
            os.fsync(f.fileno())
            sync = time.perf_counter() - s0
    finally:
        bar.close()
    wall = time.perf_counter() - t0
    size = os.path.getsize(path)
    if size != total:
        raise RuntimeError(f"wrote {size} bytes to {path}, expected {total}")
    return {"bytes": size, "header_bytes": len(prefix), "seconds": wall,
            "generate_s": gen, "fsync_s": sync, "tensors": len(plan)}


def matches_plan(path: str, plan: list[dict]) -> bool:
    """Whether ``path`` is already this benchmark's file for ``plan`` (same prefix and size)."""
    prefix, data_size = header_bytes(plan)
    try:
        if os.path.getsize(path) != len(prefix) + data_size:
            return False
        with open(path, "rb") as f:
            return f.read(len(prefix)) == prefix
    except OSError:
        return False


# --------------------------------------------------------------------------
# Page cache: how much of a file is resident, and dropping our own file's pages
# --------------------------------------------------------------------------

def resident(path: str, offset: int = 0, length: int | None = None):
    """``(resident pages, pages)`` of a byte range of ``path`` in the page cache.

    ``mincore`` on a fresh shared read-only map of the range (nothing is
    touched, so the map itself reads nothing).  ``None`` where the call is
    not available.
    """
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        page = os.sysconf("SC_PAGE_SIZE")
        size = os.path.getsize(path)
        end = size if length is None else min(size, offset + length)
        start = offset // page * page
        n = end - start
        if n <= 0:
            return 0, 0
        libc.mmap.restype = ctypes.c_void_p
        libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                              ctypes.c_int, ctypes.c_long]
        libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
        fd = os.open(path, os.O_RDONLY)
        try:
            addr = libc.mmap(None, n, 1, 1, fd, start)          # PROT_READ, MAP_SHARED
            if addr is None or addr == ctypes.c_void_p(-1).value:
                return None
            try:
                pages = (n + page - 1) // page
                vec = (ctypes.c_ubyte * pages)()
                if libc.mincore(addr, n, vec) != 0:
                    return None
                return int((np.frombuffer(vec, np.uint8) & 1).sum()), pages
            finally:
                libc.munmap(addr, n)
        finally:
            os.close(fd)
    except (OSError, AttributeError, ValueError):
        return None


def drop_from_cache(path: str) -> bool:
    """Flush ``path`` and ask the kernel to drop its (clean, unmapped) cached pages."""
    if not hasattr(os, "posix_fadvise"):
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def _fraction(res) -> float | None:
    if not res:
        return None
    r, n = res
    return r / n if n else 0.0


# --------------------------------------------------------------------------
# The measuring subprocess
# --------------------------------------------------------------------------

def _proc_io() -> dict:
    out = {}
    try:
        with open("/proc/self/io") as fh:
            for line in fh:
                k, v = line.split(":")
                out[k.strip()] = int(v)
    except OSError:
        pass
    return out


def _status_kib() -> dict:
    out = {}
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem")):
                    k, v = line.split(":")
                    out[k] = int(v.split()[0])
    except OSError:
        pass
    return out


class _Sampler:
    """RSS every ``interval`` s in a thread: the whole run's peak and each step's peak.

    Never resets the kernel's high-water mark (that would reset ru_maxrss too).
    """

    def __init__(self, interval: float = 0.005):
        import threading

        self.interval = interval
        self.page = os.sysconf("SC_PAGE_SIZE")
        self.peak = self.step_peak = self.now()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def now(self) -> int:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * self.page

    def _run(self):
        while not self._stop.is_set():
            r = self.now()
            self.peak = max(self.peak, r)
            self.step_peak = max(self.step_peak, r)
            self._stop.wait(self.interval)

    def mark(self) -> int:
        """Start a step: returns RSS now and resets the step's peak."""
        r = self.now()
        self.step_peak = r
        return r

    def step_max(self) -> int:
        r = self.now()
        self.step_peak = max(self.step_peak, r)
        self.peak = max(self.peak, r)
        return self.step_peak

    def stop(self):
        self._stop.set()
        self._thread.join()


def _child_main(spec_path: str) -> int:
    """Run one scenario (spec in a JSON file) and write its measurements next to it."""
    t_start = time.perf_counter()
    with open(spec_path) as fh:
        spec = json.load(fh)
    sampler = _Sampler()
    res: dict = {"steps": {}, "errors": {}, "rss_start_mib": sampler.now() / 2 ** 20}
    W, H, R = spec["width"], spec["height"], spec["repeats"]
    path, name = spec["path"], spec["tensor"]

    def step(key, fn):
        r0 = sampler.mark()
        io0 = _proc_io()
        t0 = time.perf_counter()
        try:
            extra = fn() or {}
        except Exception as exc:
            res["errors"][key] = f"{type(exc).__name__}: {exc}"
            res["steps"][key] = {"traceback": traceback.format_exc()}
            return False
        dt = time.perf_counter() - t0
        io1 = _proc_io()
        rec = {"seconds": dt, "rss_before_mib": r0 / 2 ** 20,
               "rss_after_mib": sampler.now() / 2 ** 20,
               "rss_step_peak_mib": sampler.step_max() / 2 ** 20,
               "rchar": io1.get("rchar", 0) - io0.get("rchar", 0),
               "read_bytes": io1.get("read_bytes", 0) - io0.get("read_bytes", 0)}
        rec.update(extra)
        res["steps"][key] = rec
        return True

    def median_of(fn, n):
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return {"median_s": float(np.median(times)), "times_s": times}

    st: dict = {}

    def imports():
        ensure_dlviz()
        import dlviz_gpu as dv
        import dlviz_gpu.models as models
        import dlviz_gpu.kernels  # noqa: F401  (numba and the kernel modules)

        st["dv"], st["models"] = dv, models
        if spec["via"] == "torch":
            import importlib

            importlib.import_module("torch")

    def open_catalog():
        st["cat"] = cat = st["models"].open(path)
        info = cat.info(name)
        return {"tensors": len(cat), "params": cat.total_params, "bytes": cat.total_bytes,
                "largest_bytes": max(i.nbytes for i in cat.infos),
                "drawn_shape": list(info.shape), "drawn_bytes": info.nbytes}

    def tensor():
        cat = st["cat"]
        return cat.matrix(name) if spec["via"] == "matrix" else cat[name]

    def data_range():
        f = st["cat"]._lookup(name)[0].file          # noqa: SLF001  (header offsets only)
        s = f.spec(name)
        return f.header.data_start + s.begin, s.nbytes

    def residency():
        off, n = data_range()
        return {"tensor_resident_before": _fraction(resident(path, off, n))}

    def kernels():
        dv = st["dv"]
        if spec["via"] == "torch":
            import torch

            tiny = torch.zeros((8, 8), dtype=torch.bfloat16)
        else:
            from dlviz_gpu.models import BFloat16Array

            tiny = BFloat16Array(np.zeros((8, 8), np.uint16)).matrix("auto")
        dv.rasterize(tiny, 8, 8)
        dv.rasterize(tiny, 4, 4, (1.0, 5.0), (2.0, 6.0))

    def raster_first():
        before = residency()
        st["t"] = t = tensor()
        st["dv"].rasterize(t, W, H)
        return before

    def raster_again():
        return median_of(lambda: st["dv"].rasterize(st["t"], W, H), R)

    def import_hv():
        import holoviews as hv
        import holoviews.plotting.bokeh  # noqa: F401

        st["hv"] = hv
        hv.renderer("bokeh")

    def heatmap_first():
        before = residency()
        st["t"] = t = st["t"] if "t" in st else tensor()
        st["img"] = st["dv"].heatmap(t, dynamic=False, width=W, height=H)
        return before

    def heatmap_again():
        return median_of(lambda: st["dv"].heatmap(st["t"], dynamic=False, width=W, height=H),
                         R)

    def bokeh_model():
        plot = st["hv"].renderer("bokeh").get_plot(st["img"])
        return {"glyph_data_bytes": int(sum(getattr(v, "nbytes", 8) for v in
                                            plot.handles["source"].data.values()))}

    def zoom_window():
        rows_, cols_ = st["cat"].info(name).shape
        fx, fy = spec["zoom_at"]
        wx, wy = ZOOM_FRACTION * cols_, ZOOM_FRACTION * rows_
        return (fx * cols_, fx * cols_ + wx), (fy * rows_, fy * rows_ + wy)

    def zoom_raster():
        xr, yr = zoom_window()
        w = min(W, math.ceil(xr[1]) - math.floor(xr[0]))
        h = min(H, math.ceil(yr[1]) - math.floor(yr[0]))
        out = median_of(lambda: st["dv"].rasterize(st["t"], w, h, xr, yr), R)
        out.update({"window": [list(xr), list(yr)], "canvas": [w, h]})
        return out

    def zoom_view():
        xr, yr = zoom_window()
        st["dmap"] = dmap = st["dv"].heatmap(st["t"], width=W, height=H)
        view = dmap.view
        out = median_of(lambda: view.element(xr, yr, W, H), R)
        out.update({"window": [list(xr), list(yr)], "canvas": list(view.last["canvas"]),
                    "updates": view.updates})
        return out

    ok = step("imports", imports)
    if ok:
        res["file_resident_at_start"] = _fraction(resident(path))
        ok = step("open", open_catalog)
    if ok:
        off, n = data_range()
        res["steps"]["open"]["tensor_resident_after"] = _fraction(resident(path, off, n))
        data_start = st["cat"]._lookup(name)[0].file.header.data_start   # noqa: SLF001
        res["steps"]["open"]["header_bytes"] = data_start
        plan = {"rasterize": [("kernels", kernels), ("raster_first", raster_first), ("raster_again", raster_again),
                              ("import_hv", import_hv), ("heatmap_first", heatmap_first),
                              ("heatmap_again", heatmap_again), ("bokeh", bokeh_model),
                              ("zoom_raster", zoom_raster), ("zoom_view", zoom_view)],
                "heatmap": [("import_hv", import_hv), ("heatmap_first", heatmap_first),
                            ("heatmap_again", heatmap_again), ("bokeh", bokeh_model)]}
        for key, fn in plan[spec["first"]]:
            if not step(key, fn):
                break
    res["total_s"] = time.perf_counter() - t_start
    res["status_kib_end"] = _status_kib()
    sampler.step_max()
    sampler.stop()
    res["peak_sampled_mib"] = sampler.peak / 2 ** 20
    try:
        import resource

        res["ru_maxrss_self_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    except Exception:
        pass
    with open(spec["result"], "w") as fh:
        json.dump(res, fh, indent=1)
    return 0


def _run_child(spec: dict, workdir: str, label: str) -> dict:
    """Start a fresh interpreter for ``spec``; its results plus ru_maxrss from wait4."""
    spec = dict(spec)
    spec_path = os.path.join(workdir, f"spec-{label}.json")
    spec["result"] = os.path.join(workdir, f"result-{label}.json")
    with open(spec_path, "w") as fh:
        json.dump(spec, fh)
    code = ("import sys; sys.path.insert(0, sys.argv[2]); "
            "from benchmarks.checkpoint import _child_main; sys.exit(_child_main(sys.argv[1]))")
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code, spec_path, _REPO], cwd=_REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = proc.stdout.read()
    proc.stdout.close()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    if proc.returncode != 0 or not os.path.exists(spec["result"]):
        raise RuntimeError(f"measuring subprocess exited with {proc.returncode}: "
                           f"{out.decode(errors='replace')[-2000:]}")
    with open(spec["result"]) as fh:
        res = json.load(fh)
    res["ru_maxrss_wait4_mib"] = usage.ru_maxrss / 1024
    res["wall_s"] = wall
    res["output_tail"] = out.decode(errors="replace")[-2000:]
    return res


# --------------------------------------------------------------------------
# Rows
# --------------------------------------------------------------------------

def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _mib(b) -> str:
    return f"{b / 2 ** 20:.1f} MiB"


def scenario_rows(label: str, res: dict, cfg: dict, limit_mib: float) -> list[Row]:
    """Table rows of one subprocess's measurements."""
    steps, errs = res["steps"], res["errors"]
    rows: list[Row] = []
    nbytes = cfg["drawn_bytes"]

    def err_row(key, title):
        if key in errs:
            rows.append(Row(f"{label}: {title}", error=errs[key],
                            extra={"traceback": steps.get(key, {}).get("traceback")}))
            return True
        return key not in steps

    if not err_row("imports", "imports"):
        s = steps["imports"]
        rows.append(Row(f"{label}: import dlviz_gpu, models, kernels"
                        + (", torch" if cfg["via"] == "torch" else ""), s["seconds"], None,
                        s["rss_after_mib"], "MiB RSS",
                        note=f"fresh interpreter: {res['rss_start_mib']:.0f} MiB at start; "
                             f"file pages in the page cache at start: "
                             f"{_pct(res.get('file_resident_at_start'))}",
                        extra=s))
    if not err_row("open", "open catalog"):
        s = steps["open"]
        rows.append(Row(f"{label}: open catalog", s["seconds"], None,
                        s["rss_after_mib"] - s["rss_before_mib"], "MiB RSS growth",
                        note=f"{s['tensors']} tensors, {s['params']:,} parameters, "
                             f"{_mib(s['bytes'])}; read() calls read {s['rchar']:,} B "
                             f"(header {s['header_bytes']:,} B; /proc/self/io rchar), "
                             f"drawn tensor's pages cached after: "
                             f"{_pct(s.get('tensor_resident_after'))}",
                        extra=s))
    order = [k for k in ("kernels", "raster_first", "raster_again", "import_hv", "heatmap_first",
                         "heatmap_again", "bokeh", "zoom_raster", "zoom_view")
             if k in steps or k in errs]
    titles = {
        "kernels": "compile kernels (8 x 8 bf16 warm-up)",
        "raster_first": f"first picture: rasterize {cfg['width']}x{cfg['height']} all stats",
        "raster_again": "  rasterize again (pages cached)",
        "import_hv": "import holoviews + bokeh backend",
        "heatmap_first": "first picture: dv.heatmap(dynamic=False)",
        "heatmap_again": "  dv.heatmap again (pages cached)",
        "bokeh": "  Bokeh model of that Image (get_plot)",
        "zoom_raster": "1% zoom window: rasterize",
        "zoom_view": "1% zoom window: heatmap element",
    }
    for k in order:
        if err_row(k, titles[k]):
            continue
        s = steps[k]
        t = s.get("median_s", s["seconds"])
        name = f"{label}: {titles[k]}"
        if k in ("raster_first", "heatmap_first"):
            first = s.get("tensor_resident_before")
            cold = first is not None and first < 0.05
            what = ("one pass over the tensor" if k == "raster_first" else
                    "overview pass (512 x 512 canvas, colour limits) + the 800 x 600 element")
            if "kernels" not in steps:
                what += "; includes numba compiling the kernels (first call in the process)"
            rows.append(Row(name, t, nbytes / t / 1e9 if k == "raster_first" else None,
                            s["rss_after_mib"] - s["rss_before_mib"], "MiB RSS growth",
                            note=f"the tensor's pages cached before: {_pct(first)} "
                                 f"({'cold: read from disk' if cold else 'not cold'}); "
                                 f"read from disk {s['read_bytes']:,} B; {what}",
                            extra=s))
        elif k in ("raster_again", "heatmap_again", "zoom_raster", "zoom_view"):
            note = f"median of {len(s['times_s'])}"
            if "canvas" in s:
                (x0, x1), (y0, y1) = s["window"]
                note += (f"; window x {x0:g}..{x1:g}, y {y0:g}..{y1:g}, canvas "
                         f"{s['canvas'][0]} x {s['canvas'][1]}")
            gb = nbytes / t / 1e9 if k == "raster_again" else None
            rows.append(Row(name, t, gb, None, "", note=note, extra=s))
        else:
            rows.append(Row(name, s["seconds"], None, s["rss_after_mib"] - s["rss_before_mib"],
                            "MiB RSS growth", extra=s))
    first_key = next((k for k in ("raster_first", "heatmap_first") if k in steps), None)
    if first_key is not None and "open" in steps:
        parts = [("open", steps["open"]["seconds"])]
        if "kernels" in steps:
            parts.append(("compile", steps["kernels"]["seconds"]))
        parts.append((titles[first_key].split(": ", 1)[1], steps[first_key]["seconds"]))
        total = sum(v for _, v in parts)
        rows.append(Row(f"{label}: time to first picture", total, None, None, "",
                        note=" + ".join(f"{n} {v * 1e3:.0f} ms" for n, v in parts)
                             + "; cold pages; interpreter start-up and imports not included",
                        extra={"parts_s": dict(parts)}))
    peaks = {"ru_maxrss (wait4)": res.get("ru_maxrss_wait4_mib"),
             "ru_maxrss (self)": res.get("ru_maxrss_self_mib"),
             "VmHWM": (res.get("status_kib_end", {}).get("VmHWM") or 0) / 1024 or None,
             "sampled": res.get("peak_sampled_mib")}
    peak = max(v for v in peaks.values() if v is not None)
    end = res.get("status_kib_end", {})
    rows.append(Row(f"{label}: peak RSS of the subprocess", None, None, peak, "MiB",
                    ("<", limit_mib),
                    note=f"limit = largest tensor {_mib(cfg['largest_bytes'])} + {SLACK_MIB} "
                         f"MiB = {limit_mib:.0f} MiB; at the end RssAnon "
                         f"{end.get('RssAnon', 0) / 1024:.0f} MiB, RssFile "
                         f"{end.get('RssFile', 0) / 1024:.0f} MiB (mapped file pages and "
                         f"libraries); " + ", ".join(f"{k} {v:.0f}" for k, v in peaks.items()
                                                      if v is not None),
                    extra={"peaks_mib": peaks, "limit_mib": limit_mib,
                           "status_kib_end": end, "total_s": res.get("total_s")}))
    over = peak - nbytes / 2 ** 20
    rows.append(Row(f"{label}:   peak RSS - drawn tensor", None, None, over, "MiB",
                    ("<", float(SLACK_MIB)),
                    note=f"stricter: the overhead over the {_mib(nbytes)} of pages the picture "
                         f"maps in, against the same {SLACK_MIB} MiB (a file whose largest "
                         f"tensor is the drawn one)",
                    extra={"peak_mib": peak, "drawn_mib": nbytes / 2 ** 20}))
    return rows


# --------------------------------------------------------------------------
# The suite
# --------------------------------------------------------------------------

SCENARIOS = (
    # label, via, first, quick
    ("bf16 matrix", "matrix", "rasterize", True),
    ("bf16 matrix, heatmap first", "matrix", "heatmap", True),
    ("torch bf16", "torch", "rasterize", False),
)


def _free_bytes(folder: str) -> int:
    return shutil.disk_usage(folder).free


def run(quick: bool = False, out_dir: str = DEFAULT_OUT, size_gib: float | None = None,
        shape=None, keep: str | None = None, repeats: int | None = None) -> int:
    """Write the file, measure each scenario in a fresh process, print the table, write the JSON.

    Returns the exit status: 0 after a run (goals met or not), 2 when it
    refused to start (not enough disk space, ``keep`` names another file).
    """
    wall0 = time.perf_counter()
    load0 = loadavg()
    stamp = timestamp()
    size_gib = SIZE_GIB if size_gib is None else float(size_gib)
    shape = (HIDDEN, INTER) if shape is None else tuple(shape)
    plan = layer_plan(size_gib, shape)
    prefix, data_size = header_bytes(plan)
    file_bytes = len(prefix) + data_size
    largest = max(2 * math.prod(t["shape"]) for t in plan)
    drawn_bytes = 2 * math.prod(shape)
    limit_mib = largest / 2 ** 20 + SLACK_MIB
    R = int(repeats or (3 if quick else 7))
    notes = []
    if size_gib != SIZE_GIB:
        notes.append(f"file of >= {size_gib:g} GiB instead of {SIZE_GIB:g} (--size-gib)")
    if shape != (HIDDEN, INTER):
        notes.append(f"drawn tensor {shape[0]} x {shape[1]} instead of {HIDDEN} x {INTER} "
                     f"(--shape)")

    if keep:
        path = os.path.abspath(keep)
        folder = os.path.dirname(path)
        tmpdir = None
        if os.path.exists(path) and not matches_plan(path, plan):
            print(f"checkpoint benchmark: {path} exists and is not this benchmark's file for "
                  f"--size-gib {size_gib:g} --shape {shape[0]}x{shape[1]}; remove it or choose "
                  f"another --keep path", file=sys.stderr)
            return 2
        reuse = os.path.exists(path)
        if not os.path.isdir(folder):
            print(f"checkpoint benchmark: the folder of --keep {path} does not exist; create it "
                  f"first", file=sys.stderr)
            return 2
    else:
        folder = tempfile.gettempdir()
        path, tmpdir, reuse = None, None, False
    if not reuse:
        free = _free_bytes(folder)
        if free < 2 * file_bytes:
            print(f"checkpoint benchmark: not enough disk space in {folder}: the synthetic file "
                  f"is {file_bytes / 2 ** 30:.2f} GiB and the benchmark wants twice that free "
                  f"({2 * file_bytes / 2 ** 30:.2f} GiB); {free / 2 ** 30:.2f} GiB are free. "
                  f"Free some space, point TMPDIR elsewhere, or pass --keep PATH on a larger "
                  f"disk (or a smaller --size-gib).", file=sys.stderr)
            return 2
    found = ensure_dlviz()
    from dlviz_gpu.models import read_header

    cfg = {"size_gib": size_gib, "shape": list(shape), "drawn_tensor": DRAWN,
           "drawn_bytes": drawn_bytes, "file_bytes": file_bytes, "tensors": len(plan),
           "largest_bytes": largest, "limit_mib": limit_mib, "slack_mib": SLACK_MIB,
           "width": WIDTH, "height": HEIGHT, "repeats": R, "quick": quick,
           "zoom_fraction_per_side": ZOOM_FRACTION, "kept": bool(keep),
           "size_note": "; ".join(notes)}
    rows: list[Row] = []
    ctx: dict = {"scenarios": {}}
    print(f"checkpoint benchmark: {file_bytes / 2 ** 30:.2f} GiB bf16 safetensors "
          f"({len(plan)} tensors), drawn tensor {DRAWN} {shape[0]} x {shape[1]}"
          + (" [quick]" if quick else ""), file=sys.stderr, flush=True)
    try:
        if path is None:
            tmpdir = tempfile.mkdtemp(prefix="dlviz-checkpoint-bench-")
            path = os.path.join(tmpdir, "synthetic-bf16.safetensors")
        if reuse:
            ctx["write"] = {"reused": path}
            rows.append(Row("synthetic file (reused)", None, None, file_bytes / 2 ** 30, "GiB",
                            note=f"{path}: already this benchmark's file (--keep)"))
        else:
            w = write_checkpoint(path, plan)
            ctx["write"] = w
            rows.append(Row("write synthetic file", w["seconds"], file_bytes / w["seconds"] / 1e9,
                            file_bytes / 2 ** 30, "GiB",
                            note=f"{len(plan)} bf16 tensors, streamed in "
                                 f"{2 * CHUNK_ELEMENTS // 2 ** 20} MiB chunks; generating "
                                 f"{w['generate_s']:.1f} s, fsync {w['fsync_s']:.1f} s; "
                                 f"{'kept at ' + path if keep else 'temporary, removed at the end'}",
                            extra=w))
        hdr = read_header(path)
        if len(hdr.tensors) != len(plan) or hdr.data_start != len(prefix):
            raise RuntimeError(f"{path}: the reader sees {len(hdr.tensors)} tensors, "
                               f"expected {len(plan)}")
        with tempfile.TemporaryDirectory(prefix="dlviz-checkpoint-spec-") as work:
            for k, (label, via, first, in_quick) in enumerate(SCENARIOS):
                if quick and not in_quick:
                    continue
                print(f"  {label}: dropping the file's pages, measuring in a fresh process",
                      file=sys.stderr, flush=True)
                dropped = drop_from_cache(path)
                cached = _fraction(resident(path))
                spec = {"path": path, "tensor": DRAWN, "via": via, "first": first,
                        "width": WIDTH, "height": HEIGHT, "repeats": R,
                        "zoom_at": [0.45, 0.45]}
                sc = {"via": via, "first": first, "dropped": dropped,
                      "file_resident_before_start": cached, "loadavg_start": loadavg()}
                try:
                    res = _run_child(spec, work, str(k))
                    sc.update(res)
                    sc["loadavg_end"] = loadavg()
                    rows.extend(scenario_rows(label, res, {**cfg, "via": via}, limit_mib))
                except Exception as exc:
                    sc["error"] = f"{type(exc).__name__}: {exc}"
                    rows.append(Row(f"{label}: subprocess", error=sc["error"],
                                    extra={"traceback": traceback.format_exc()}))
                ctx["scenarios"][label] = sc
    finally:
        if not keep and path is not None:
            try:
                os.remove(path)
            except OSError:
                pass
        if tmpdir is not None:
            shutil.rmtree(tmpdir, ignore_errors=True)
    load1 = loadavg()
    wall = time.perf_counter() - wall0
    title = (f"dlviz_gpu checkpoint benchmark: {file_bytes / 2 ** 30:.2f} GiB synthetic bf16 "
             f"safetensors, {shape[0]} x {shape[1]} tensor to {WIDTH} x {HEIGHT}, each scenario "
             f"in a fresh process after dropping the file's cached pages"
             + (" [quick]" if quick else ""))
    if cfg["size_note"]:
        title += f"\n  NOTE: {cfg['size_note']}"
    cores = os.cpu_count() or 1
    title += high_load_note(load0, load1, "")
    table = format_table(rows, title)
    load_text = (f"{load0[0]:.2f}->{load1[0]:.2f}" if load0 and load1 else "n/a")
    footer = (f"load average {load_text} ({cores} cores); total {wall:.1f} s; "
              f"memory goal: peak RSS < largest tensor {largest / 2 ** 20:.1f} MiB + "
              f"{SLACK_MIB} MiB = {limit_mib:.0f} MiB")
    print(table)
    print(footer)
    payload = {
        "suite": "checkpoint",
        "started": stamp,
        "config": cfg,
        "machine": machine_info(("numpy", "numba", "holoviews", "bokeh", "torch")),
        "package": found,
        "loadavg_start": load0,
        "loadavg_end": load1,
        "context": ctx,
        "rows": [r.as_dict() for r in rows],
        "ratios": {r.name: {"value": r.value, "metric": r.metric, "passed": r.passed}
                   for r in rows if r.value is not None},
        "definitions": {
            "open catalog": "dlviz_gpu.models.open(path) in a fresh process: header read and "
                            "checked, no tensor data; rchar = bytes read by read() calls",
            "first picture": "the first call on the drawn tensor in that process, its pages "
                             "dropped from the page cache beforehand (posix_fadvise DONTNEED "
                             "on this file only); 'cached before' is mincore's count",
            "GB/s": "drawn tensor bytes (bf16) / time, 1e9 bytes",
            "peak RSS": "the subprocess's peak resident set (ru_maxrss from wait4, VmHWM and a "
                        "5 ms sampler; the largest), including mapped file pages",
        },
        "wall_s": wall,
        "table": table,
        "footer": footer,
    }
    out_path = write_json(out_dir, "checkpoint", payload, stamp)
    print(f"wrote {out_path}")
    return 0
