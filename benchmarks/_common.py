"""Shared benchmark machinery: timing, bandwidth probe, memory sampler, table, JSON.

Everything heavy (numba, psutil, tqdm) is imported inside the functions that
need it: the GPU check imports this module on machines that have only numpy,
numba, numba-cuda, cupy and torch.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import re
import socket
import statistics
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np

# --------------------------------------------------------------------------
# Finding the package
# --------------------------------------------------------------------------

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def ensure_dlviz() -> str:
    """Make ``import dlviz_gpu.kernels`` work; returns how the package was found.

    Run from the repository root (``python -m benchmarks``), ``dlviz_gpu``
    resolves to the checkout's ``dlviz_gpu/`` folder, which has no
    ``kernels`` subfolder: the top-level ``kernels/`` is mapped onto
    ``dlviz_gpu.kernels`` only by the installed package.  With an editable
    install the mapping still applies; with a regular ``pip install .`` (or
    none at all) the checkout's package shadows the installed one and
    ``dlviz_gpu.kernels`` is missing.  Then this registers ``kernels/`` under
    that name for this process (nothing is installed).
    """
    import importlib
    import importlib.util

    try:
        importlib.import_module("dlviz_gpu.kernels")
        mod = sys.modules["dlviz_gpu.kernels"]
        return f"dlviz_gpu.kernels from {os.path.dirname(mod.__file__)}"
    except ModuleNotFoundError as exc:
        missing = exc.name
    if missing not in ("dlviz_gpu", "dlviz_gpu.kernels"):
        raise ModuleNotFoundError(f"No module named {missing!r}", name=missing)
    if missing == "dlviz_gpu":
        sys.path.insert(0, _REPO)
    dlviz_gpu = importlib.import_module("dlviz_gpu")
    kdir = os.path.join(_REPO, "kernels")
    spec = importlib.util.spec_from_file_location(
        "dlviz_gpu.kernels", os.path.join(kdir, "__init__.py"), submodule_search_locations=[kdir])
    if spec is None or not os.path.isdir(kdir):
        raise ModuleNotFoundError("dlviz_gpu.kernels: not installed and no kernels/ folder at "
                                  f"{_REPO}; run pip install --no-deps -e .",
                                  name="dlviz_gpu.kernels")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["dlviz_gpu.kernels"] = mod
    try:
        spec.loader.exec_module(mod)
    except BaseException:
        del sys.modules["dlviz_gpu.kernels"]
        raise
    dlviz_gpu.kernels = mod
    return f"checkout: {kdir} registered as dlviz_gpu.kernels (package not installed editable)"


# --------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------


@dataclass
class Timing:
    """Wall-clock times of one operation (seconds)."""

    best: float
    median: float
    times: list
    first: float          # the warm-up call (includes any JIT compilation)
    repeats: int

    def as_dict(self) -> dict:
        return {"best_s": self.best, "median_s": self.median, "times_s": list(self.times),
                "first_call_s": self.first, "repeats": self.repeats}


def best_of(fn: Callable[[], Any], repeats: int, warmup: int = 1,
            sync: Callable[[], Any] | None = None) -> Timing:
    """Best of ``repeats`` timed calls of ``fn`` after ``warmup`` untimed ones.

    ``sync`` (e.g. ``torch.cuda.synchronize``) runs before the clock starts and
    before it stops, so asynchronous device work is inside the measurement.
    The result of each call is dropped before the next one starts.
    """
    sync = sync or (lambda: None)
    first = math.nan
    for k in range(max(warmup, 0)):
        sync()
        t0 = time.perf_counter()
        out = fn()
        sync()
        if k == 0:
            first = time.perf_counter() - t0
        del out
    times = []
    for _ in range(max(repeats, 1)):
        sync()
        t0 = time.perf_counter()
        out = fn()
        sync()
        times.append(time.perf_counter() - t0)
        del out
    return Timing(best=min(times), median=statistics.median(times), times=times,
                  first=first, repeats=len(times))


# --------------------------------------------------------------------------
# CPU kernels of the harness itself (compiled on first use)
# --------------------------------------------------------------------------

_JIT: dict = {}


def _jit():
    """Compile the probe and the data generator once per process."""
    if _JIT:
        return _JIT
    import numba
    from numba import prange

    @numba.njit(parallel=True, fastmath=True)
    def parallel_sum(f, ntasks):
        # The inner loop runs over a slice (g = f[lo:hi]; g[i]): that form
        # vectorises in numba, `for i in range(lo, hi): f[i]` does not.
        n = f.size
        step = (n + ntasks - 1) // ntasks
        parts = np.zeros(ntasks)
        for t in prange(ntasks):
            lo = min(t * step, n)
            hi = min(lo + step, n)
            g = f[lo:hi]
            acc = 0.0
            for i in range(g.size):
                acc += g[i]
            parts[t] = acc
        return parts.sum()

    @numba.njit(parallel=True)
    def fill_normalish(f, seed, ntasks):
        # splitmix64 of the element index; its four 16-bit quarters summed
        # (Irwin-Hall, n=4) give a cheap bell-shaped value with mean 0, std 1.
        n = f.size
        step = (n + ntasks - 1) // ntasks
        for t in prange(ntasks):
            lo = min(t * step, n)
            hi = min(lo + step, n)
            for i in range(lo, hi):
                z = np.uint64(i) + np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15)
                z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
                z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
                z = z ^ (z >> np.uint64(31))
                mask = np.uint64(0xFFFF)
                s = (np.float64(z & mask) + np.float64((z >> np.uint64(16)) & mask)
                     + np.float64((z >> np.uint64(32)) & mask)
                     + np.float64(z >> np.uint64(48)))
                # sum of 4 U(0, 65536): mean 131070, std 65536 * sqrt(4/12)
                f[i] = (s - 131070.0) / 37837.22

    _JIT["sum"] = parallel_sum
    _JIT["fill"] = fill_normalish
    return _JIT


def random_matrix(rows: int, cols: int, dtype=np.float32, seed: int = 0) -> np.ndarray:
    """A C-contiguous (rows, cols) matrix of bell-shaped pseudo-random values (parallel fill)."""
    a = np.empty((rows, cols), dtype)
    _jit()["fill"](a.reshape(-1), np.int64(seed), np.int64(256))
    return a


PROBE_TASKS = 64


def bandwidth_probe(arr: np.ndarray, repeats: int) -> tuple[Timing, float]:
    """Streaming read bandwidth of this machine on ``arr`` itself (GB/s, 1e9 bytes).

    A numba-parallel sum over the flat array in ``PROBE_TASKS`` prange chunks,
    fastmath on so the inner loop vectorises: no kernel of ours can read
    ``arr`` faster than this, so it is the ceiling the other rows are measured
    against.
    """
    flat = arr.reshape(-1)
    if not flat.flags.c_contiguous:
        raise ValueError("bandwidth_probe needs a contiguous array")
    fn = _jit()["sum"]
    t = best_of(lambda: fn(flat, PROBE_TASKS), repeats)
    return t, arr.nbytes / t.best / 1e9


# --------------------------------------------------------------------------
# Peak extra memory during a call
# --------------------------------------------------------------------------

def _rss_now() -> int:
    try:
        import psutil

        return int(psutil.Process().memory_info().rss)
    except ImportError:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _reset_hwm() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) of this process; False if not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _read_hwm() -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


class PeakMemory:
    """Peak extra resident memory while the ``with`` body runs.

    A background thread samples the process RSS (psutil) every ``interval``
    seconds; numba's parallel regions release the GIL, so it keeps sampling
    while a kernel runs.  Where Linux allows it, the kernel's own high-water
    mark (VmHWM, reset through /proc/self/clear_refs) is read as well, which
    catches spikes shorter than the sampling interval; the larger of the two
    is reported.  ``extra_mib`` = peak RSS - RSS before the body, in MiB.
    """

    def __init__(self, interval: float = 0.002):
        self.interval = interval
        self.samples = 0
        self.before = 0
        self.peak_sampled = 0
        self.peak_hwm: int | None = None
        self._stop = threading.Event()

    def _run(self):
        while not self._stop.is_set():
            rss = _rss_now()
            if rss > self.peak_sampled:
                self.peak_sampled = rss
            self.samples += 1
            self._stop.wait(self.interval)

    def __enter__(self):
        import gc

        gc.collect()
        self.before = _rss_now()
        self.peak_sampled = self.before
        self._hwm_ok = _reset_hwm()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        after = _rss_now()
        self.peak_sampled = max(self.peak_sampled, after)
        self.peak_hwm = _read_hwm() if self._hwm_ok else None
        return False

    @property
    def peak(self) -> int:
        return max(self.peak_sampled, self.peak_hwm or 0)

    @property
    def extra_mib(self) -> float:
        return (self.peak - self.before) / 2 ** 20

    def as_dict(self) -> dict:
        return {"extra_mib": self.extra_mib, "rss_before_mib": self.before / 2 ** 20,
                "peak_sampled_mib": self.peak_sampled / 2 ** 20,
                "peak_vmhwm_mib": None if self.peak_hwm is None else self.peak_hwm / 2 ** 20,
                "samples": self.samples, "interval_s": self.interval}


def loadavg():
    """The 1/5/15-minute load averages, or None where the system has none."""
    try:
        return list(os.getloadavg())
    except OSError:
        return None


#: 1-minute load per core above which a suite's title warns that times are pessimistic.
HIGH_LOAD = 0.5


def high_load_note(load0, load1, advice: str = "") -> str:
    """A title line when other processes competed for the CPU during a run, else ''.

    ``load0`` / ``load1`` are :func:`loadavg` at the start and the end.
    """
    cores = os.cpu_count() or 1
    peak = max((l[0] for l in (load0, load1) if l), default=None)
    if peak is None or peak <= HIGH_LOAD * cores:
        return ""
    return (f"\n  NOTE: HIGH LOAD: 1-minute load average {load0[0]:.2f} at start, "
            f"{load1[0]:.2f} at end on {cores} cores: other processes competed for the "
            f"CPU, so these times are pessimistic{advice}")


def rss_mib() -> float:
    """Resident memory of this process now, MiB."""
    return _rss_now() / 2 ** 20


def peak_rss_mib() -> float:
    """This process's lifetime peak RSS (ru_maxrss), MiB."""
    try:
        import resource

        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return kb / 1024 if sys.platform != "darwin" else kb / 2 ** 20
    except Exception:
        return math.nan


# --------------------------------------------------------------------------
# Machine description
# --------------------------------------------------------------------------

def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(name: str) -> str | None:
    mod = sys.modules.get(name)
    if mod is None:
        try:
            from importlib import metadata

            return metadata.version(name)
        except Exception:
            return None
    return getattr(mod, "__version__", None)


def machine_info(modules=("numpy", "numba", "datashader")) -> dict:
    """Host, CPU, memory, numba threads and library versions."""
    info = {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_model": cpu_model(),
        "logical_cores": os.cpu_count(),
    }
    try:
        info["usable_cores"] = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        info["usable_cores"] = os.cpu_count()
    try:
        import numba

        info["numba_threads"] = numba.get_num_threads()
        info["numba_threading_layer"] = _threading_layer()
    except Exception as exc:  # pragma: no cover - numba always there
        info["numba_threads"] = f"unavailable: {exc}"
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        info["memory_gib"] = round(pages * size / 2 ** 30, 2)
    except (ValueError, OSError, AttributeError):
        pass
    info["versions"] = {m: _version(m) for m in modules}
    try:
        import dlviz_gpu

        info["versions"]["dlviz_gpu"] = dlviz_gpu.__version__
    except Exception:
        pass
    return info


def _threading_layer() -> str | None:
    import numba

    try:
        return numba.threading_layer()
    except ValueError:  # no parallel region has run yet
        return None


def machine_tag() -> str:
    """A file-name-safe tag for this machine: $DLVIZ_BENCH_TAG or the hostname."""
    tag = os.environ.get("DLVIZ_BENCH_TAG") or socket.gethostname() or platform.node() or "host"
    return re.sub(r"[^A-Za-z0-9._-]+", "_", tag)[:64] or "host"


# --------------------------------------------------------------------------
# Rows, table, JSON
# --------------------------------------------------------------------------

_OPS = {">=": lambda v, g: v >= g, "<=": lambda v, g: v <= g,
        "<": lambda v, g: v < g, ">": lambda v, g: v > g}


@dataclass
class Row:
    """One line of a report table.

    ``value`` is the quantity the goal is about (a ratio, a fraction or MiB,
    named by ``metric``); ``goal`` is ``(op, threshold)`` or None.
    """

    name: str
    time_s: float | None = None
    gbps: float | None = None
    value: float | None = None
    metric: str = ""
    goal: tuple | None = None
    note: str = ""
    error: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool | None:
        if self.goal is None or self.value is None or not _finite(self.value):
            return None
        op, thr = self.goal
        return bool(_OPS[op](self.value, thr))

    def as_dict(self) -> dict:
        d = asdict(self)
        d["goal"] = None if self.goal is None else {"op": self.goal[0], "value": self.goal[1]}
        d["passed"] = self.passed
        return d


def _finite(x) -> bool:
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def _fmt(x, spec: str) -> str:
    return format(x, spec) if _finite(x) else "-"


def format_table(rows: list[Row], title: str = "") -> str:
    """A fixed-width text table: name, time, GB/s, ratio (metric), goal, mark."""
    head = ("row", "time ms", "GB/s", "ratio", "goal", "")
    lines = []
    for r in rows:
        if r.error:
            lines.append((r.name, "-", "-", "-", _goal_text(r.goal), "ERROR"))
            continue
        if r.value is None:
            ratio = "-"
        elif abs(r.value) >= 100:
            ratio = _fmt(r.value, ".0f")
        elif abs(r.value) >= 1 or r.value == 0:
            ratio = _fmt(r.value, ".2f")
        else:
            ratio = _fmt(r.value, ".3f")
        mark = {True: "pass", False: "FAIL", None: ""}[r.passed]
        lines.append((r.name, _fmt(None if r.time_s is None else r.time_s * 1e3, ".2f"),
                      _fmt(r.gbps, ".2f"), (ratio + " " + r.metric).strip(),
                      _goal_text(r.goal), mark))
    widths = [max(len(head[i]), *(len(l[i]) for l in lines)) if lines else len(head[i])
              for i in range(len(head))]
    out = []
    if title:
        out.append(title)
    fmt = "  ".join("{:<%d}" % widths[0] if i == 0 else "{:>%d}" % widths[i]
                    for i in range(len(head)))
    out.append(fmt.format(*head).rstrip())
    out.append("  ".join("-" * w for w in widths).rstrip())
    for l in lines:
        out.append(fmt.format(*l).rstrip())
    notes = [f"  {r.name}: {r.error}" for r in rows if r.error]
    notes += [f"  {r.name}: {r.note}" for r in rows if r.note and not r.error]
    if notes:
        out.append("notes:")
        out.extend(notes)
    return "\n".join(out)


def _goal_text(goal) -> str:
    if goal is None:
        return ""
    op, thr = goal
    return f"{op} {thr:g}"


def _clean(obj):
    """JSON-safe copy: numpy scalars -> Python, NaN/inf -> None, tuples -> lists."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _clean(obj.tolist())
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        return float(obj) if math.isfinite(obj) else None
    if obj is None or isinstance(obj, (int, str)):
        return obj
    return str(obj)


def timestamp() -> str:
    return _dt.datetime.now().strftime("%Y%m%d-%H%M%S")


def write_json(out_dir: str, kind: str, payload: dict, stamp: str | None = None) -> str:
    """Write ``payload`` to ``out_dir/<kind>-<machine tag>-<YYYYmmdd-HHMMSS>.json``."""
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, f"{kind}-{machine_tag()}-{stamp or timestamp()}.json")
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(_clean(payload), fh, indent=1, allow_nan=False)
        fh.write("\n")
    os.replace(tmp, path)
    return path


# --------------------------------------------------------------------------
# Progress
# --------------------------------------------------------------------------

class _NoBar:
    def __init__(self, total, desc):
        self.total, self.desc, self.n = total, desc, 0

    def update(self, k=1):
        self.n += k

    def set_postfix_str(self, s):
        print(f"[{self.desc} {self.n + 1}/{self.total}] {s}", file=sys.stderr, flush=True)

    def close(self):
        pass


def progress(total: int, desc: str):
    """A tqdm bar on stderr, or a plain stderr logger where tqdm is missing."""
    try:
        from tqdm import tqdm
    except ImportError:
        return _NoBar(total, desc)
    return tqdm(total=total, desc=desc, file=sys.stderr, leave=False, dynamic_ncols=True)


# --------------------------------------------------------------------------
# The harness every CPU suite runs its rows through
# --------------------------------------------------------------------------

def available_bytes() -> int | None:
    """Memory available to this process (psutil), or None where psutil is missing."""
    try:
        import psutil

        return psutil.virtual_memory().available
    except Exception:
        return None


def free_memory() -> None:
    """Collect garbage between rows, so one row's leftovers do not count in the next."""
    import gc

    gc.collect()


def run_steps(steps, desc: str) -> list[Row]:
    """Run ``(label, step)`` pairs in order under a progress bar.

    Memory is collected before each step; a step returns a :class:`Row` or a
    list of them, and one that raises becomes an error row with its traceback
    (one failed row must not lose the others).  Each row records the RSS after
    its step.
    """
    import traceback

    rows: list[Row] = []
    bar = progress(len(steps), desc)
    for label, step in steps:
        bar.set_postfix_str(label)
        free_memory()
        try:
            out = step()
        except Exception as exc:
            out = Row(label, error=f"{type(exc).__name__}: {exc}",
                      extra={"traceback": traceback.format_exc()})
        for row in (out if isinstance(out, list) else [out]):
            row.extra["rss_after_mib"] = rss_mib()
            rows.append(row)
        bar.update(1)
    bar.close()
    return rows


def print_summary(rows: list[Row], title: str, cfg: dict, ctx: dict, wall: float,
                  first: str = "") -> tuple[str, str]:
    """Print a suite's table (with ``cfg["size_note"]`` under the title) and its footer line.

    Returns
    -------
    table, footer : str
    """
    if cfg.get("size_note"):
        title += f"\n  NOTE: {cfg['size_note']}"
    table = format_table(rows, title)
    footer = (f"{first}probe {ctx.get('probe_gbps', float('nan')):.2f} GB/s; "
              f"total {wall:.1f} s; peak RSS {peak_rss_mib():.0f} MiB")
    print(table)
    print(footer)
    return table, footer


def suite_payload(suite: str, *, stamp: str, cfg: dict, found: str, load0, ctx: dict,
                  rows: list[Row], wall: float, table: str, modules, definitions: dict,
                  **extra) -> dict:
    """The JSON a CPU suite writes: its settings, the machine, every row and its ratios."""
    payload = {
        "suite": suite, "started": stamp, "config": cfg, "machine": machine_info(modules),
        "package": found, "loadavg_start": load0, "loadavg_end": loadavg(),
        "probe_gbps": ctx.get("probe_gbps"), "generate_s": ctx.get("generate_s"),
        "rows": [r.as_dict() for r in rows],
        "ratios": {r.name: {"value": r.value, "metric": r.metric, "passed": r.passed}
                   for r in rows if r.value is not None},
        "definitions": definitions,
    }
    payload.update(extra)
    payload.update({"wall_s": wall, "peak_rss_mib": peak_rss_mib(), "table": table})
    return payload


def correctness_row(res: dict, section: str, what: str, problems: list[str]) -> Row:
    """Record a GPU-check section's problems in ``res[section]`` and return its pass/fail row."""
    out = res.setdefault(section, {})
    out["problems"] = problems
    return Row(f"{section}: {what}", value=float(len(problems)), metric="mismatches",
               goal=("<=", 0), note="; ".join(problems)[:300])
