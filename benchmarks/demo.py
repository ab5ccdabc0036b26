"""``python -m benchmarks demo``: how long ``dlviz demo`` takes to show its first page.

Each scenario runs the real command, ``dlviz demo --port 0 --no-browser``, in
a fresh process and measures from the spawn:

- **ready**: until the command prints that the dashboard is served (the
  server is up and the first tensor's kernels are compiled and run),
- **first page**: ready, then one HTTP GET of the page, which makes the
  server build a session's whole document (tree, heatmap, histogram, stats,
  summary); what a browser waits for before BokehJS draws it.

Scenarios, by the state of Numba's disk cache (``NUMBA_CACHE_DIR``, a fresh
folder each):

- **cold**: empty, as on a machine that skipped setup: every kernel compiles;
- **prepared**: after ``dlviz demo --prepare`` (what ``scripts/demo.sh``
  runs once at setup); the preparation's own time is reported too.

The goal of the checkpoint issue: the first page within 20 s of the command.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

from ._common import Row, format_table, high_load_note, loadavg, machine_info, write_json

GOAL_S = 20.0
_READY = re.compile(r"is at (http://\S+) \(ready in ([\d.]+) s")


def _dlviz(*args) -> list:
    return [sys.executable, "-m", "dlviz_gpu.cli", *args]


def first_page(cache_dir: str, timeout_s: float = 600) -> dict:
    """Run ``dlviz demo`` with ``cache_dir``; seconds to ready and to the first page."""
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir, PYTHONUNBUFFERED="1")
    env.pop("DISPLAY", None)
    t0 = time.perf_counter()
    # the run it records goes to the scenario's temporary folder, not the current one
    proc = subprocess.Popen(_dlviz("demo", "--port", "0", "--no-browser", "--store",
                                   os.path.join(cache_dir, "run")), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = []
    try:
        deadline = t0 + timeout_s
        while True:
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError(f"dlviz demo exited ({proc.wait()}): {''.join(out)[-2000:]}")
            out.append(line)
            m = _READY.search(line)
            if m:
                break
            if time.perf_counter() > deadline:
                raise RuntimeError(f"no page in {timeout_s:.0f} s")
        ready = time.perf_counter() - t0
        with urllib.request.urlopen(m.group(1), timeout=timeout_s) as resp:
            body = resp.read()
        page = time.perf_counter() - t0
        if resp.status != 200 or b"TinyGPT" not in body:
            raise RuntimeError(f"the page answered {resp.status} without the model's name")
        return {"ready_s": ready, "first_page_s": page, "reported_ready_s": float(m.group(2))}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def prepare(cache_dir: str) -> float:
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    t0 = time.perf_counter()
    subprocess.run(_dlviz("demo", "--prepare"), env=env, check=True, capture_output=True,
                   text=True, timeout=900)
    return time.perf_counter() - t0


def run(out_dir: str, quick: bool = False) -> int:
    load0 = loadavg()
    rows = []
    scenarios = ["prepared"] if quick else ["cold", "prepared"]
    for name in scenarios:
        cache = tempfile.mkdtemp(prefix="dlviz-numba-cache-")
        try:
            extra = {}
            if name == "prepared":
                extra["prepare_s"] = prepare(cache)
            res = first_page(cache)
            extra.update(res)
            note = (f"ready {res['ready_s']:.1f} s + page {res['first_page_s'] - res['ready_s']:.1f} s"
                    + (f"; setup's --prepare took {extra['prepare_s']:.1f} s" if "prepare_s" in extra
                       else "; every kernel compiles"))
            rows.append(Row(f"dlviz demo first page, {name} cache", time_s=res["first_page_s"],
                            value=res["first_page_s"], metric="s", goal=("<=", GOAL_S),
                            note=note, extra=extra))
        except Exception as err:  # reported, never hidden
            rows.append(Row(f"dlviz demo first page, {name} cache", error=str(err)))
        finally:
            shutil.rmtree(cache, ignore_errors=True)
    load1 = loadavg()
    title = "dlviz demo: seconds from the command to the first page" + high_load_note(load0, load1)
    print(format_table(rows, title))
    path = write_json(out_dir, "demo", {"machine": machine_info(("numpy", "numba", "torch", "panel")),
                                        "goal_s": GOAL_S, "load": [load0, load1],
                                        "rows": [r.as_dict() for r in rows]})
    print(f"results: {path}")
    return 0
