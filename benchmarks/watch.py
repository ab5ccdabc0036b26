"""``python -m benchmarks watch``: what ``dv.watch`` costs a training loop.

A ~10.5M-parameter MLP (1024 -> 2048 -> 2048 -> 2048 -> 10, ReLU, Adam,
cross-entropy on fixed random batches) trains on this machine's CPU; each
timed step is ``zero_grad``, forward, backward, ``optimizer.step()`` and, with
a watch, ``run.log(step, loss=loss)``.  Configurations:

- **baseline**: no watch;
- **every 10**: ``dv.watch(..., every=10)`` with its defaults (histograms,
  update ratios, dead units, snapshots every 100 steps);
- **every step**: ``every=1`` with histograms (the issue's worst case).

The configurations take turns in rounds (baseline, every 10, every step,
baseline, ...), each round a fresh run store, so slow drifts of the machine
fall on all of them alike; the median step time of each configuration over
all rounds is compared with the baseline's.  The store's bytes per recorded
step (the SQLite file after ``close()``, WAL checkpointed) are reported too.

The issue's goals: at most 5% slower recording every 10 steps, at most 20%
slower recording every step with histograms.
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time

from ._common import Row, format_table, high_load_note, loadavg, machine_info, write_json

GOALS = {"every 10": 0.05, "every step": 0.20}
WIDTHS = (1024, 2048, 2048, 2048, 10)


def _model(seed: int = 0):
    import torch

    g = torch.Generator().manual_seed(seed)
    layers = []
    for a, b in zip(WIDTHS[:-1], WIDTHS[1:]):
        lin = torch.nn.Linear(a, b)
        with torch.no_grad():
            lin.weight.normal_(0, (2.0 / a) ** 0.5, generator=g)
            lin.bias.zero_()
        layers += [lin, torch.nn.ReLU()]
    return torch.nn.Sequential(*layers[:-1])


def _steps(model, opt, batches, n: int, run=None, start: int = 0, sync=None) -> list:
    """Seconds of each of ``n`` training steps (``sync()`` ends each, e.g. on a GPU)."""
    import torch.nn.functional as F

    times = []
    for k in range(n):
        x, y = batches[k % len(batches)]
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=False)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        if run is not None:
            run.log(start + k, loss=loss)
        if sync is not None:
            sync()
        times.append(time.perf_counter() - t0)
    return times


def _store_bytes(path, recorded: int) -> dict:
    """The run file's bytes per recorded step, weight snapshots apart."""
    import sqlite3

    size = os.path.getsize(path)
    con = sqlite3.connect(path)
    try:
        snap, nsnap = con.execute("SELECT coalesce(sum(length(data)), 0), "
                                  "count(DISTINCT step) FROM snapshots").fetchone()
    finally:
        con.close()
    return {"file": size, "per_recorded_step": (size - snap) / max(recorded, 1),
            "per_snapshot_step": snap / nsnap if nsnap else 0.0}


def run(out_dir: str, quick: bool = False, batch: int = 512, rounds: int | None = None,
        steps: int | None = None) -> int:
    import torch

    import dlviz_gpu as dv

    rounds = rounds or (2 if quick else 4)
    steps = steps or (20 if quick else 40)
    torch.manual_seed(0)
    load0 = loadavg()
    model = _model()
    nparams = sum(p.numel() for p in model.parameters())
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(1)
    batches = [(torch.randn(batch, WIDTHS[0], generator=g),
                torch.randint(0, WIDTHS[-1], (batch,), generator=g)) for _ in range(4)]
    configs = {"baseline": None, "every 10": dict(every=10), "every step": dict(every=1)}
    times = {name: [] for name in configs}
    store_bytes = {name: [] for name in configs if configs[name] is not None}
    tmp = tempfile.mkdtemp(prefix="dlviz-watch-bench-")
    step0 = 0
    try:
        _steps(model, opt, batches, 5)                   # warm torch
        # warm the kernels (compiled or loaded from Numba's cache) outside the timing
        with dv.watch(model, opt, store=os.path.join(tmp, "warm"), every=1) as w:
            _steps(model, opt, batches, 2, w)
        for r in range(rounds):
            for name, kw in configs.items():
                if kw is None:
                    times[name] += _steps(model, opt, batches, steps)[2:]
                    continue
                path = os.path.join(tmp, f"{name.replace(' ', '-')}-{r}")
                w = dv.watch(model, opt, store=path, **kw)
                times[name] += _steps(model, opt, batches, steps, w, step0)[2:]
                step0 += steps
                w.close()
                store_bytes[name].append(_store_bytes(w.path, w.recorded))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    load1 = loadavg()
    base = statistics.median(times["baseline"])
    rows = [Row("baseline step (no watch)", time_s=base,
                note=f"{nparams:,} parameters, batch {batch}, Adam; median of "
                     f"{len(times['baseline'])} steps")]
    for name in ("every 10", "every step"):
        med = statistics.median(times[name])
        over = med / base - 1
        per = statistics.median(b["per_recorded_step"] for b in store_bytes[name])
        snap = statistics.median(b["per_snapshot_step"] for b in store_bytes[name])
        rows.append(Row(f"watch {name}: overhead", time_s=med, value=over, metric="x slower",
                        goal=("<=", GOALS[name]),
                        note=f"median step {med * 1e3:.1f} ms vs {base * 1e3:.1f} ms; "
                             f"store {per / 1024:.1f} KiB per recorded step, "
                             f"{snap / 1024:.0f} KiB per weight snapshot step",
                        extra={"store_bytes_per_recorded_step": per,
                               "store_bytes_per_snapshot_step": snap,
                               "median_step_s": med, "steps": len(times[name])}))
    title = (f"dv.watch overhead on a {nparams / 1e6:.1f}M-parameter MLP (CPU)"
             + high_load_note(load0, load1))
    print(format_table(rows, title))
    path = write_json(out_dir, "watch", {
        "machine": machine_info(("numpy", "numba", "torch")), "batch": batch,
        "parameters": nparams, "rounds": rounds, "steps_per_round": steps,
        "threads": torch.get_num_threads(), "load": [load0, load1],
        "rows": [r.as_dict() for r in rows]})
    print(f"results: {path}")
    return 0
