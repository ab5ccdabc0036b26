"""The CPU kernels built by memoised factories load from Numba's disk cache in a new process.

Every check runs fresh Python processes that share one temporary
``NUMBA_CACHE_DIR``: the first compiles and saves, the next must load (the
dispatcher's ``stats.cache_hits``) and compute the same numbers.  A different
factory argument, a changed module constant or a changed source file the
kernel calls must not load the old machine code.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import numba
import numpy as np
import pytest

from dlviz_gpu.kernels import _cache, _common

STATS = ("count", "nan_count", "sum", "mean", "min", "max", "extremum", "std")


def _run(script, cache_dir, *args, cwd=None, env_extra=None) -> dict:
    """Run ``script`` in a fresh interpreter; its last stdout line is JSON."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir), **(env_extra or {}))
    env.pop("NUMBA_DISABLE_JIT", None)
    done = subprocess.run([sys.executable, str(script), *map(str, args)], capture_output=True,
                          text=True, timeout=600, env=env, cwd=cwd)
    assert done.returncode == 0, done.stderr[-4000:]
    # a kernel that cannot be cached makes Numba warn; none may
    assert "Cannot cache" not in done.stderr, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


RASTER_SCRIPT = """
import json, sys
import numpy as np
import torch
import dlviz_gpu as dv
from dlviz_gpu.kernels import matrix

out_path, mode = sys.argv[1], sys.argv[2]
made = []
factory = matrix._cpu_kernel


def spy(*args):
    kernel = factory(*args)
    if all(k is not kernel for _, k in made):
        made.append((args, kernel))
    return kernel


matrix._cpu_kernel = spy
rng = np.random.default_rng(7)
a = rng.standard_normal((64, 96)).astype(np.float32)
a[3, 5] = np.nan
a[40, 90] = -np.inf
b = torch.from_numpy(rng.standard_normal((64, 96)).astype(np.float32)).to(torch.bfloat16)
planes = {}
for name, t in (("f32", a), ("bf16", b)):
    r = dv.rasterize(t, 20, 10)
    for s in %(stats)r:
        planes[name + "_" + s] = np.asarray(r[s])
if mode == "other":
    # a kernel of another factory argument (no min/max, no m2), same signature
    planes["f32_only_mean"] = np.asarray(dv.rasterize(a, 20, 10, stats=("mean",))["mean"])
np.savez(out_path, **planes)
print(json.dumps([[list(args), sum(k.stats.cache_hits.values()),
                   sum(k.stats.cache_misses.values())] for args, k in made]))
""" % {"stats": STATS}


def _block_mean(a, width, height):
    """Independent per-pixel mean of the finite elements (the pixel rule of docs/architecture.md)."""
    rows, cols = a.shape
    py = np.floor((np.arange(rows) + 0.5) * height / rows).astype(int)
    px = np.floor((np.arange(cols) + 0.5) * width / cols).astype(int)
    a = a.astype(np.float64)
    ok = np.isfinite(a)
    s = np.zeros((height, width))
    n = np.zeros((height, width))
    np.add.at(s, (py[:, None], px[None, :]), np.where(ok, a, 0.0))
    np.add.at(n, (py[:, None], px[None, :]), ok)
    return s / n


@pytest.mark.slow  # compiles three matrix kernels (seconds each) in fresh processes
def test_matrix_kernels_load_from_the_cache_in_a_new_process(tmp_path):
    pytest.importorskip("torch")
    script = tmp_path / "raster.py"
    script.write_text(RASTER_SCRIPT)
    cache = tmp_path / "numba_cache"
    first = _run(script, cache, tmp_path / "first.npz", "first")
    second = _run(script, cache, tmp_path / "second.npz", "other")

    # float32 and bf16, all statistics: compiled by the first process ...
    assert len(first) == 2
    assert {args[0] for args, _, _ in first} == {_common.DECODE_NATIVE, _common.DECODE_BF16}
    assert all(hits == 0 and misses >= 1 for _, hits, misses in first)
    # ... loaded by the second; the mean-only kernel is new to the cache
    by_args = {tuple(args): (hits, misses) for args, hits, misses in second}
    for args, _, _ in first:
        hits, misses = by_args.pop(tuple(args))
        assert hits >= 1 and misses == 0, (args, hits, misses)
    assert len(by_args) == 1
    (other_args, (hits, misses)), = by_args.items()
    assert other_args[3:] == (False, False)
    assert hits == 0 and misses >= 1

    p1 = np.load(tmp_path / "first.npz")
    p2 = np.load(tmp_path / "second.npz")
    for name in p1.files:
        assert np.array_equal(p1[name], p2[name], equal_nan=True), name
    rng = np.random.default_rng(7)
    a = rng.standard_normal((64, 96)).astype(np.float32)
    a[3, 5] = np.nan
    a[40, 90] = -np.inf
    want = _block_mean(a, 20, 10)
    np.testing.assert_allclose(p2["f32_mean"], want, rtol=1e-6)
    # compiled fresh beside a cached kernel of the same name and signature
    np.testing.assert_allclose(p2["f32_only_mean"], want, rtol=1e-6)


FACTORY = '''
import functools, json, os, sys
import numba
import numpy as np
from dlviz_gpu.kernels._cache import cached_factory_kernel
import helper

OFFSET = float(os.environ.get("OFFSET", "0"))


@functools.lru_cache(maxsize=None)
def make(k):
    K = float(k)

    @numba.njit
    def inner(x):
        return x + K + OFFSET

    @numba.njit
    def kern(x):
        return helper.scale(inner(x))

    return cached_factory_kernel(kern, k)


out = {}
for arg in sys.argv[1:]:
    k, x = arg.split(":")
    f = make(int(k))
    v = f(np.int64(x)) if "." not in x else f(float(x))
    out[arg] = [float(v), sum(f.stats.cache_hits.values()), sum(f.stats.cache_misses.values()),
                [c.fndesc.mangled_name for c in f.overloads.values()]]
print(json.dumps(out))
'''


def test_factory_kernels_are_keyed_by_arguments_constants_and_sources(tmp_path):
    (tmp_path / "fac.py").write_text(FACTORY)
    helper = tmp_path / "helper.py"
    helper.write_text("import numba\n\n\n@numba.njit\ndef scale(x):\n    return 2.0 * x\n")
    cache = tmp_path / "numba_cache"

    def run(*args, **env):
        return _run(tmp_path / "fac.py", cache, *args, cwd=tmp_path, env_extra=env)

    first = run("1:1.0", "1:3")           # two signatures of one kernel
    assert first["1:1.0"][:3] == [4.0, 0, 1]
    assert first["1:3"][:3] == [8.0, 0, 2]
    # another argument compiled first, then both signatures of k=1 from the cache
    second = run("2:1.0", "1:1.0", "1:3")
    assert second["2:1.0"][:3] == [6.0, 0, 1]
    assert second["1:1.0"][:3] == [4.0, 1, 0]
    assert second["1:3"][:3] == [8.0, 2, 0]
    # the two combinations never share a machine-code symbol name
    assert not set(second["2:1.0"][3]) & set(second["1:1.0"][3])
    # a module constant the closure reads is part of the key
    patched = run("1:1.0", OFFSET="10")
    assert patched["1:1.0"][:3] == [24.0, 0, 1]
    # so is the source of a function the kernel calls in another file (same size)
    helper.write_text(helper.read_text().replace("2.0 * x", "3.0 * x"))
    edited = run("1:1.0")
    assert edited["1:1.0"][:3] == [6.0, 0, 1]
    again = run("1:1.0")
    assert again["1:1.0"][:3] == [6.0, 1, 0]


def test_without_the_cache_hook_kernels_still_compile(monkeypatch, caplog):
    def missing():
        raise RuntimeError("no hook in this Numba")

    monkeypatch.setattr(_cache, "_factory_cache_class", missing)

    def factory(k):
        @numba.njit
        def kern(x):
            return x * k
        return _cache.cached_factory_kernel(kern, k)

    with caplog.at_level(logging.DEBUG, logger=_cache.__name__):
        kern = factory(3)
    assert kern(2.0) == 6.0
    assert kern.stats.cache_path is None   # Numba's null cache
    assert "without a disk cache" in caplog.text and "no hook in this Numba" in caplog.text
