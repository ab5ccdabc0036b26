"""Kernel calls from many threads at once, under every threading layer installed here.

Numba's ``workqueue`` layer (what it falls back to without TBB or GNU OpenMP)
aborts the process when two threads launch parallel kernels at the same time;
``dlviz demo`` does exactly that (its training thread records steps while the
server redraws).  ``dlviz_gpu.kernels._parallel`` serialises parallel kernel
calls behind one lock under ``workqueue`` and leaves them concurrent under
TBB and OpenMP.  Each layer runs in its own interpreter (the layer is chosen
once per process): 8 threads call the matrix raster, its derived planes, the
points raster, M4 decimation, histograms (range=None included), the moments
kernel and ``describe`` over and over, and every result must equal the one
computed first on a single thread.  A subprocess timeout guards against a
hang; a crash shows as the child's exit status and stderr.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

WORKER = r'''
import json, sys, threading
import numpy as np

import dlviz_gpu as dv
from dlviz_gpu.kernels import _parallel
from dlviz_gpu.kernels.moments import moments_cpu

THREADS, ROUNDS = 8, int(sys.argv[1])
rng = np.random.default_rng(5)
# small integers in float32: every sum is exact whatever order threads add in
m = rng.integers(-50, 50, size=(700, 900)).astype(np.float32)
m[3, 5] = np.nan
series = rng.integers(-9, 9, size=300_000).astype(np.float32)        # the parallel M4 path
px = rng.integers(0, 1000, size=200_000).astype(np.float64)
py = rng.integers(0, 1000, size=200_000).astype(np.float64)
pv = rng.integers(-5, 5, size=200_000).astype(np.float32)
skinny = rng.integers(-3, 3, size=(50_000, 3)).astype(np.float64)    # describe's line loop


def families():
    r = dv.rasterize(m, 400, 300)
    big = dv.rasterize(m, 2048, 1100, stats=("mean", "std", "extremum"))  # parallel finalize
    pts = dv.rasterize_points(px, py, value=pv, width=300, height=200, x_range=(0, 1000),
                              y_range=(0, 1000))
    d = dv.decimate(series, width=700)
    h = dv.histogram([m, series], bins=64)
    mo = moments_cpu(m, m * 0.5)
    s = dv.describe(skinny)
    return {
        "raster": [r[k] for k in ("count", "nan_count", "sum", "min", "max", "mean", "std")],
        "finalize": [big["mean"], big["std"], big["extremum"]],
        "points": [pts[k] for k in ("count", "nan_count", "sum", "min", "max")],
        "series": [np.asarray(d[k]) for k in ("min", "max", "min_index", "max_index", "count")],
        "hist": [h.counts, h.edges, h.nan],
        "moments": [mo],
        "describe": [np.array([s.mean, s.std, s.min, s.max, s.fro_norm]), s.row_norms],
    }


def same(a, b):
    return all(np.array_equal(x, y, equal_nan=True) for x, y in zip(a, b))


want = families()              # one thread: the answers
errors, calls = [], [0]
lock = threading.Lock()


def work(k):
    try:
        for i in range(ROUNDS):
            got = families()
            for name in want:
                if not same(got[name], want[name]):
                    with lock:
                        errors.append(f"thread {k} round {i}: {name} differs")
            with lock:
                calls[0] += len(want)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        with lock:
            errors.append(f"thread {k}: {type(exc).__name__}: {exc}")


threads = [threading.Thread(target=work, args=(k,)) for k in range(THREADS)]
for t in threads:
    t.start()
for t in threads:
    t.join()
import numba
print(json.dumps({"layer": numba.threading_layer(), "serialising": _parallel.serialising(),
                  "calls": calls[0], "errors": errors[:10]}))
'''


def _layer_available(layer: str) -> bool:
    """Whether Numba can load ``layer`` here (asked in a fresh interpreter)."""
    code = ("import numba, numpy as np\n"
            "@numba.njit(parallel=True)\n"
            "def f(a):\n"
            "    s = 0.0\n"
            "    for i in numba.prange(a.size):\n"
            "        s += a[i]\n"
            "    return s\n"
            "f(np.ones(10))\n"
            "print(numba.threading_layer())\n")
    env = dict(os.environ, NUMBA_THREADING_LAYER=layer)
    try:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=300, env=env)
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0 and done.stdout.strip().endswith(layer)


@pytest.mark.slow
@pytest.mark.parametrize("layer", ["workqueue", "omp", "tbb"])
def test_eight_threads_calling_kernels_get_the_single_thread_results(layer, tmp_path):
    if layer != "workqueue" and not _layer_available(layer):
        pytest.skip(f"Numba's {layer!r} threading layer cannot be loaded here")
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = dict(os.environ, NUMBA_THREADING_LAYER=layer)
    env.pop("NUMBA_NUM_THREADS", None)
    try:
        done = subprocess.run([sys.executable, str(script), "4"], capture_output=True,
                              text=True, timeout=900, env=env)
    except subprocess.TimeoutExpired as exc:    # the hang guard
        pytest.fail(f"{layer}: 8 threads calling kernels did not finish in {exc.timeout} s "
                    f"(a deadlock?)")
    assert done.returncode == 0, (f"{layer}: the process died (exit {done.returncode}):\n"
                                  f"{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["layer"] == layer
    # serialised exactly where the layer is not thread-safe
    assert result["serialising"] == (layer == "workqueue")
    assert result["errors"] == []
    assert result["calls"] == 8 * 4 * 7


def test_every_parallel_kernel_goes_through_the_lock():
    """No parallel dispatcher of the kernels is reachable unwrapped (so none can skip the lock)."""
    import importlib
    import pkgutil

    import numpy as np
    from numba.core.registry import CPUDispatcher

    import dlviz_gpu.kernels as kernels
    from dlviz_gpu.kernels import _parallel, histogram, matrix, points

    def parallel(obj):
        return isinstance(obj, CPUDispatcher) and obj.targetoptions.get("parallel")

    mods = [importlib.import_module(f"dlviz_gpu.kernels.{m.name}")
            for m in pkgutil.iter_modules(kernels.__path__) if m.name != "reference"]
    wrapped = 0
    for mod in mods:
        for name, obj in vars(mod).items():
            assert not parallel(obj), f"{mod.__name__}.{name} is a parallel kernel without the lock"
            wrapped += isinstance(obj, _parallel.ParallelKernel)
    assert wrapped >= 15
    # the kernels built by factories
    made = [matrix._cpu_kernel(0, "<f4", True, True, True),
            points._cpu_kernel(0, 0, 0, True, False, True, True, True),
            points._cpu_bounds_kernel(0, 0, True),
            histogram._drivers(0, True, True)]
    for k in made:
        assert isinstance(k, _parallel.ParallelKernel) and parallel(k.dispatcher)
    # the wrapper passes calls and attributes through
    from dlviz_gpu.kernels import finalize

    assert finalize.std_plane(np.full((2, 2), 8.0), np.full((2, 2), 2)).tolist() == [[2.0] * 2] * 2
    assert made[0].py_func.__name__ == "kernel"
