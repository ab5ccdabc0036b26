"""The GPU check's training-watch section (``python -m benchmarks gpu``).

1. **correct**: the device probe (:class:`dlviz_gpu.watch.probes.TorchProbe`,
   torch reductions queued on the GPU) against the CPU probe (the Numba
   kernels) on host copies of the same tensors -- float32 and bfloat16
   weights and gradients with NaN/inf, exact zeros and zero rows: the
   statistics within 1e-9 relative, histogram counts, ranges and per-row
   max |g| equal.
2. **timing**: the ``python -m benchmarks watch`` MLP (10.5M parameters,
   batch 512, Adam) trained on the GPU; median step time (each step ends with
   ``torch.cuda.synchronize()``, with and without the watch) for the watch
   every 10 steps and every step with histograms.  The issue's goals are the
   CPU's: at most 5% and 20% slower.

Imports only numpy, numba and torch through ``dlviz_gpu.watch`` (the store is
the standard library's sqlite3).  Skipped under ``--sim-smoke`` and without a
torch CUDA device.
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile

import numpy as np

from ._common import Row, correctness_row

GOALS = {"every 10": 0.05, "every step": 0.20}


def probe_inputs(device: str, seed: int = 0):
    """Weights, gradients, previous weights and row flags with every edge case."""
    import torch

    g = torch.Generator().manual_seed(seed)
    ws = [torch.randn(512, 300, generator=g), torch.randn(777, generator=g),
          torch.randn(64, 16, 3, 3, generator=g).to(torch.bfloat16),
          torch.randn(1000, 40, generator=g) * 1e4 + 3e5]
    gs = [torch.randn(w.shape, generator=g).to(w.dtype) * 1e-3 for w in ws]
    gs[0][7] = 0.0                                   # a dead row
    gs[0][9, 3] = float("nan")
    gs[2][0, 0, 0, 0] = float("inf")
    ws[1][5] = float("-inf")
    ws[3][2, 2] = 0.0
    prevs = [w + 0.01 for w in ws]
    rows = [True, False, True, True]
    move = (lambda t: t.to(device)) if device != "cpu" else (lambda t: t)
    return ([move(w) for w in ws], [move(x) for x in gs], [move(p) for p in prevs], rows)


def compare_probes(device: str, bins: int = 64) -> list[str]:
    """Problems found comparing the torch probe on ``device`` with the CPU probe."""
    from dlviz_gpu.watch.probes import CpuProbe, TorchProbe

    ws, gs, ps, rows = probe_inputs(device)
    got = TorchProbe(bins).measure(ws, gs, ps, rows, True)
    host = [[t.cpu() for t in group] for group in (ws, gs, ps)]
    want = CpuProbe(bins).measure(*host, rows, True)
    problems = []

    def arr(x):
        return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)

    a, b = arr(got["stats"]), want["stats"]
    bad = ~np.isclose(a, b, rtol=1e-9, atol=0, equal_nan=True)
    if bad.any():
        problems.append(f"stats differ at {np.argwhere(bad)[:5].tolist()}: "
                        f"{a[bad][:5]} vs {b[bad][:5]}")
    if not np.allclose(arr(got["diffsq"]), want["diffsq"], rtol=1e-9, equal_nan=True):
        problems.append(f"update norms differ: {arr(got['diffsq'])} vs {want['diffsq']}")
    for key in ("hist_counts", "hist_range"):
        if not np.array_equal(arr(got[key]), want[key], equal_nan=True):
            problems.append(f"{key} differ")
    for k, (x, y) in enumerate(zip(got["rowmax"], want["rowmax"])):
        if (x is None) != (y is None) or (y is not None and not np.array_equal(
                arr(x), y, equal_nan=True)):
            problems.append(f"rowmax of tensor {k} differ")
    return problems


def time_watch(device: str, quick: bool, batch: int = 512) -> dict:
    """Median step times of the watch benchmark's MLP on ``device``."""
    import torch

    import dlviz_gpu.watch as watch
    from .watch import WIDTHS, _model, _steps

    sync = torch.cuda.synchronize if device.startswith("cuda") else None
    model = _model().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(1)
    batches = [(torch.randn(batch, WIDTHS[0], generator=g).to(device),
                torch.randint(0, WIDTHS[-1], (batch,), generator=g).to(device))
               for _ in range(4)]
    rounds, steps = (2, 30) if quick else (3, 60)
    configs = {"baseline": None, "every 10": dict(every=10), "every step": dict(every=1)}
    times = {k: [] for k in configs}
    tmp = tempfile.mkdtemp(prefix="dlviz-gpu-watch-")
    start = 0
    try:
        _steps(model, opt, batches, 10, sync=sync)
        with watch(model, opt, store=os.path.join(tmp, "warm")) as w:
            _steps(model, opt, batches, 3, w, sync=sync)
        for r in range(rounds):
            for name, kw in configs.items():
                if kw is None:
                    times[name] += _steps(model, opt, batches, steps, sync=sync)[3:]
                    continue
                with watch(model, opt, store=os.path.join(tmp, f"{r}-{name}"), **kw) as w:
                    times[name] += _steps(model, opt, batches, steps, w, start, sync)[3:]
                start += steps
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {k: statistics.median(v) for k, v in times.items()}


def check_watch(res: dict, sim_smoke: bool = False, quick: bool = False) -> list:
    """The section's rows; details in ``res["watch"]``."""
    out: dict = {}
    res["watch"] = out
    if sim_smoke:
        out["skipped"] = "sim-smoke: the device probe runs torch on a real GPU"
        return []
    import torch

    if not torch.cuda.is_available():
        out["skipped"] = "no torch CUDA device"
        return []
    rows = [correctness_row(res, "watch", "device probe == CPU probe", compare_probes("cuda"))]
    med = time_watch("cuda", quick)
    out["median_step_s"] = med
    base = med["baseline"]
    rows.append(Row("watch on the GPU: baseline step", time_s=base,
                    note="10.5M-parameter MLP, batch 512, Adam"))
    for name, goal in GOALS.items():
        rows.append(Row(f"watch on the GPU {name}: overhead", time_s=med[name],
                        value=med[name] / base - 1, metric="x slower", goal=("<=", goal)))
    return rows
