"""The fuzz worker: a long-lived process that runs cases sent by :mod:`tests.fuzz.harness`.

Started as ``python -m tests.fuzz.worker`` from the repository root.  It
pays the imports and the kernels' compilation once (:func:`warm_up`), says
``ready``, then reads one case per line on stdin (JSON: ``id``, ``path``,
``folder``, ``reference``, ``budget``) and answers one line per case on its
real stdout, prefixed with :data:`PREFIX` (everything the code under test
prints goes to captured buffers instead).

For each case it runs what a user would run on the file:

* ``dlviz inspect PATH`` through :func:`dlviz_gpu.cli.main`, capturing its
  stdout, stderr and exit status;
* ``dlviz_gpu.models.open(PATH)``, then reading every tensor (``cat[name]``,
  or its stored bytes where no NumPy view exists) and rasterizing every
  drawable one on an 8 x 8 canvas through ``cat.matrix`` (the route of
  ``render`` and the dashboard);

measuring the CPU time and the peak growth of the resident set while they
run.  A monitor thread samples the resident set every few milliseconds and
ends the process (exit status :data:`MEMORY_EXIT`, after saying so) when the
growth passes the case's budget, so a memory bomb cannot take the machine.
With ``reference`` set, the file is also read by the ``safetensors``
package (after the measured part) and the readings compared
(:mod:`tests.fuzz.reference`).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import resource
import sys
import threading
import time
import traceback

PREFIX = "@@fuzz "
MEMORY_EXIT = 86
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _rss() -> int:
    """The resident set size of this process, in bytes."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except OSError:
        import psutil

        return psutil.Process().memory_info().rss


def _max_rss() -> int:
    """The process's high-water resident set, in bytes (Linux reports KiB)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _say(obj) -> None:
    os.write(_OUT, (PREFIX + json.dumps(obj) + "\n").encode())


class Monitor:
    """Samples the resident set while a case runs; ends the process past the budget."""

    def __init__(self, interval: float = 0.003):
        self.interval = interval
        self._armed = threading.Event()
        self._lock = threading.Lock()
        self.base = self.peak = 0
        self.budget = 0
        self.case = None
        threading.Thread(target=self._run, daemon=True, name="fuzz-rss").start()

    def arm(self, case_id, budget: int) -> None:
        with self._lock:
            self.case, self.budget = case_id, budget
            self.base = self.peak = _rss()
            self.maxrss = _max_rss()
        self._armed.set()

    def disarm(self) -> int:
        """Stop sampling; the case's peak growth in bytes."""
        self._armed.clear()
        with self._lock:
            peak = max(self.peak, _rss())
            after = _max_rss()
            if after > self.maxrss:        # a new high-water mark: it happened in this case
                peak = max(peak, after)
            return peak - self.base

    def _run(self) -> None:
        while True:
            self._armed.wait()
            with self._lock:
                if self._armed.is_set():
                    now = _rss()
                    if now > self.peak:
                        self.peak = now
                    if now - self.base > self.budget:
                        _say({"id": self.case, "memory": now - self.base})
                        os._exit(MEMORY_EXIT)
            time.sleep(self.interval)


# --------------------------------------------------------------------------
# What runs on a file
# --------------------------------------------------------------------------

def _inspect(path: str) -> dict:
    from dlviz_gpu.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(["inspect", path])
        except BaseException:          # noqa: BLE001 -- an escape is what we look for
            return {"rc": None, "stdout": out.getvalue()[-2000:],
                    "stderr": err.getvalue()[-4000:], "traceback": traceback.format_exc()}
    return {"rc": rc, "stdout": out.getvalue()[-2000:], "stderr": err.getvalue()[-4000:],
            "traceback": None}


def _as_bytes(t) -> bytes:
    """The stored bytes of a tensor ``cat[name]`` returned (NumPy, BFloat16Array or torch)."""
    import numpy as np

    from dlviz_gpu.models import BFloat16Array

    if isinstance(t, BFloat16Array):
        return np.ascontiguousarray(t.bits).tobytes()
    if isinstance(t, np.ndarray):
        return np.ascontiguousarray(t).tobytes()
    import torch

    t = t.detach().cpu().contiguous()
    if t.dtype == torch.bool:
        t = t.to(torch.uint8)
    return t.reshape(-1).view(torch.uint8).numpy().tobytes()


def _api(path: str, keep_values: bool, draw=None) -> dict:
    """Open, read every tensor, draw every drawable one (``keep_values``: their bytes too)."""
    import dlviz_gpu.models as models

    try:
        cat = models.open(path)
    except models.CheckpointError as e:
        return {"outcome": "refused", "message": str(e)}
    try:
        values, drawn = _read_and_draw(cat, keep_values, draw)
    except models.CheckpointError as e:     # listed, but a tensor is refused when read
        return {"outcome": "refused-read", "message": str(e)}
    finally:
        cat.close()
    return {"outcome": "accepted", "tensors": len(cat), "drawn": drawn,
            "_values": values if keep_values else None}


def _read_and_draw(cat, keep_values: bool, draw=None):
    import numpy as np

    import dlviz_gpu as dv
    from dlviz_gpu.checkpoints.catalog import plan

    values = {}
    for info in cat.infos:
        try:
            t = cat[info.name]
        except TypeError as e:         # a dtype with no NumPy view: its bytes, as stored
            if "cannot decode" not in str(e):
                raise
            if keep_values:
                values[info.name] = bytes(cat.raw(info.name))
            continue
        if keep_values:
            values[info.name] = _as_bytes(t)
        del t
    drawn = 0
    for info, layout, _note in plan(cat.infos):
        if layout is None:
            continue
        if draw is not None and drawn >= draw:
            break
        m = cat.matrix(info.name, layout)
        r = dv.rasterize(m, 8, 8)
        # every element lands in a pixel: finite ones in count, NaN and inf in nan_count
        count = int(np.asarray(r["count"]).sum()) + int(np.asarray(r["nan_count"]).sum())
        if count != m.shape[0] * m.shape[1]:
            raise AssertionError(f"tensor {info.name!r}: the raster counts {count} elements "
                                 f"of {m.shape[0] * m.shape[1]}")
        drawn += 1
        del m, r
    return values, drawn


def _debug(debug) -> None:
    """Misbehave on purpose, so the harness's own tests can see it notice."""
    if not debug:
        return
    if "sleep" in debug:
        time.sleep(debug["sleep"])
    if "alloc" in debug:
        hog = bytearray(debug["alloc"])          # zero pages: touch them
        for k in range(0, len(hog), _PAGE):
            hog[k] = 1
        time.sleep(0.05)                         # let the monitor look
    if "spin" in debug:
        end = time.process_time() + debug["spin"]
        while time.process_time() < end:
            pass
    if "exit" in debug:
        os._exit(debug["exit"])


def run_case(case: dict, monitor: Monitor) -> dict:
    path = case["path"]
    out = {"id": case["id"]}
    monitor.arm(case["id"], case["budget"])
    cpu0, t0 = _cpu(), time.perf_counter()
    try:
        _debug(case.get("debug"))
        out["inspect"] = _inspect(path)
        try:
            api = _api(path, bool(case.get("reference")), case.get("draw"))
        except BaseException:          # noqa: BLE001
            api = {"outcome": "error", "traceback": traceback.format_exc()}
    finally:
        out["cpu"] = _cpu() - cpu0
        out["wall"] = time.perf_counter() - t0
        out["peak"] = monitor.disarm()
    values = api.pop("_values", None)
    out["api"] = api
    if case.get("reference"):
        out["reference"] = _differential(path, values)
    return out


def _differential(path: str, values) -> dict:
    """The reference's reading against ours, and against what the catalog handed out."""
    from tests.fuzz.reference import differential, reference

    try:
        mismatch, divergence = differential(path)
        if mismatch is None and divergence is None and values is not None:
            ref = reference(path)
            if ref.accepted:
                for name, (_dtype, _shape, data) in ref.tensors.items():
                    if values.get(name) != data:
                        mismatch = f"tensor {name!r}: the catalog hands out other bytes"
                        break
        return {"mismatch": mismatch, "divergence": divergence}
    except BaseException:              # noqa: BLE001
        return {"mismatch": "the differential check itself failed: "
                            + traceback.format_exc(limit=3)[-1500:], "divergence": None}


# --------------------------------------------------------------------------
# Warm-up
# --------------------------------------------------------------------------

def warm_up(folder: str) -> None:
    """Import everything and compile every kernel variant the cases will use.

    A safetensors file with a tensor of every drawable dtype (1-D and 2-D,
    bfloat16 included) is opened and drawn through the catalog, as the cases
    are; the same arrays are drawn writable too (torch files and copies give
    writable arrays).  Numba's disk cache makes this fast after the first run.
    """
    import numpy as np

    import dlviz_gpu as dv
    import dlviz_gpu.cli  # noqa: F401
    import dlviz_gpu.models as models
    from safetensors.numpy import save_file

    arrays = {}
    for dt in ("float64", "float32", "float16", "int64", "int32", "int16", "int8", "uint64",
               "uint32", "uint16", "uint8", "bool"):
        a = (np.arange(12) % 3).astype(dt).reshape(3, 4)
        arrays[f"m.{dt}"] = a
        arrays[f"v.{dt}"] = a.reshape(-1)
    path = os.path.join(folder, "warm.safetensors")
    save_file(arrays, path)
    cat = models.open(path)
    for name in cat:
        dv.rasterize(cat.matrix(name), 8, 8)
        dv.rasterize(np.array(cat[name]), 8, 8)
    try:
        import torch
        from safetensors.torch import save_file as save_torch

        bf = os.path.join(folder, "warm-bf16.safetensors")
        save_torch({"b": torch.ones(3, 4, dtype=torch.bfloat16)}, bf)
        for mode in ("auto", "array"):
            cat = models.open(bf, bf16=mode)
            dv.rasterize(cat.matrix("b"), 8, 8)
            dv.rasterize(cat["b"], 8, 8)
        dv.rasterize(torch.ones(3, 4, dtype=torch.bfloat16), 8, 8)
    except ImportError:
        pass
    _inspect(path)


def main() -> int:
    global _OUT
    # answers go to the real stdout; whatever else writes to fd 1 goes to stderr
    _OUT = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    folder = sys.argv[1] if len(sys.argv) > 1 else "."
    t0 = time.perf_counter()
    warm_up(folder)
    monitor = Monitor()
    _say({"ready": True, "warm_up_s": round(time.perf_counter() - t0, 2)})
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        case = json.loads(line)
        _say(run_case(case, monitor))
    return 0


_OUT = 1

if __name__ == "__main__":
    sys.exit(main())
