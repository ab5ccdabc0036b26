"""dv.watch on real training loops: what it records, against torch and NumPy."""

import math
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import dlviz_gpu as dv
from dlviz_gpu.watch import STAT_NAMES, open_run, run_file
from dlviz_gpu.watch.probes import CpuProbe, TorchProbe

COL = {n: i for i, n in enumerate(STAT_NAMES)}


def mlp(seed=0, frozen_bias=False):
    torch.manual_seed(seed)
    m = torch.nn.Sequential(torch.nn.Linear(12, 32), torch.nn.ReLU(), torch.nn.Linear(32, 3))
    if frozen_bias:
        m[2].bias.requires_grad_(False)
    return m


def batches(n, seed=1):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(12, 3, generator=g)
    for _ in range(n):
        x = torch.randn(64, 12, generator=g)
        yield x, (x @ w).argmax(1)


def np_stats(t: torch.Tensor) -> dict:
    v = t.detach().double().numpy().ravel()
    f = v[np.isfinite(v)]
    return {"numel": v.size, "mean": f.mean(), "std": f.std(), "norm": np.sqrt((f ** 2).sum()),
            "min": f.min(), "max": f.max(), "maxabs": np.abs(f).max(), "zeros": (v == 0).sum(),
            "nan": np.isnan(v).sum(), "posinf": np.isposinf(v).sum(),
            "neginf": np.isneginf(v).sum()}


def train(model, store, steps=12, every=1, check=None, **kw):
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with dv.watch(model, opt, store=store, every=every, **kw) as run:
        for step, (x, y) in enumerate(batches(steps)):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            before = {n: p.detach().clone() for n, p in model.named_parameters()}
            opt.step()
            run.log(step, loss=loss)
            if check is not None:
                check(step, model, before, loss)
    return run


def test_records_exact_numbers_of_a_real_training_loop(tmp_path):
    model = mlp()
    seen = {}

    def check(step, model, before, loss):
        if step in (0, 5, 11):
            seen[step] = {n: (p.detach().clone(), p.grad.detach().clone(), before[n])
                          for n, p in model.named_parameters()}
            seen[step]["loss"] = float(loss.detach())

    run = train(model, tmp_path / "exp", steps=12, check=check, snapshot_every=5)
    r = open_run(tmp_path / "exp")
    names = [p.name for p in r.params]
    assert names == [n for n, _ in model.named_parameters()]
    assert list(r.steps()) == list(range(12)) and list(r.steps(recorded=True)) == list(range(12))
    steps, loss = r.scalar("loss")
    assert loss[5] == pytest.approx(seen[5]["loss"], rel=1e-7)
    steps, lr = r.scalar("lr")
    assert np.all(lr == 0.1)
    for kind, k in (("weight", 0), ("grad", 1)):
        s_steps, values = {}, {}
        for stat in ("mean", "std", "norm", "min", "max", "maxabs", "zeros", "numel"):
            s_steps, values[stat] = r.stat(stat, kind=kind)
        for step in (0, 5, 11):
            col = list(s_steps).index(step)
            for i, n in enumerate(names):
                want = np_stats(seen[step][n][k])
                for stat, arr in values.items():
                    np.testing.assert_allclose(arr[i, col], want[stat], rtol=1e-9, atol=1e-12,
                                               err_msg=f"{kind} {stat} {n} step {step}")
    # the update ratio: ||w_t - w_(t-1)|| / ||w_t||
    u_steps, ratio = r.update("ratio")
    _, unorm = r.update("norm")
    for step in (0, 5, 11):
        col = list(u_steps).index(step)
        for i, n in enumerate(names):
            w, _, prev = seen[step][n]
            d = (w.double() - prev.double()).norm().item()
            assert unorm[i, col] == pytest.approx(d, rel=1e-9)
            assert ratio[i, col] == pytest.approx(d / w.double().norm().item(), rel=1e-9)
    # exact histograms: counts against numpy on the stored range
    h_steps, h = r.histograms(names[0], kind="grad")
    col = list(h_steps).index(5)
    g = seen[5][names[0]][1].double().numpy().ravel()
    want, _ = np.histogram(g, bins=64, range=(g.min(), g.max()))
    np.testing.assert_array_equal(h.counts[col], want)
    assert h.counts[col].sum() == g.size
    # snapshots every 5 logged steps: 0, 5, 10; the mean raster of the first weight
    assert list(r.snapshot_steps(names[0])) == [0, 5, 10]
    snap = r.snapshot(names[0], 5, "mean")
    np.testing.assert_allclose(snap, seen[5][names[0]][0].numpy(), rtol=1e-6)
    assert run.closed and not r.live
    r.close()


def test_every_records_tensors_on_every_nth_call_and_scalars_always(tmp_path):
    train(mlp(), tmp_path / "e", steps=10, every=4, histograms=False, snapshot_every=None)
    with open_run(tmp_path / "e") as r:
        assert list(r.steps()) == list(range(10))
        assert list(r.steps(recorded=True)) == [0, 4, 8]
        assert len(r.scalar("loss")[1]) == 10


def test_frozen_parameter_has_weights_but_no_gradient(tmp_path):
    train(mlp(frozen_bias=True), tmp_path / "f", steps=3)
    with open_run(tmp_path / "f") as r:
        i = r.param_index("2.bias")
        assert r.params[i].frozen
        _, w = r.stat("norm", kind="weight")
        _, g = r.stat("norm", kind="grad")
        assert np.isfinite(w[i]).all() and np.isnan(g[i]).all()
        assert np.isfinite(g[r.param_index("0.weight")]).all()


def test_dead_units_counted_after_zero_gradient_rows(tmp_path):
    model = mlp()
    with torch.no_grad():           # three hidden units never activate: their rows get no gradient
        model[0].weight[:3] = 0
        model[0].bias[:3] = -1.0
    train(model, tmp_path / "d", steps=6, dead_after=4, histograms=False)
    with open_run(tmp_path / "d") as r:
        steps, dead = r.update("dead")
        i = r.param_index("0.weight")
        assert list(dead[i]) == [0, 0, 0, 3, 3, 3]
        (alert,) = [a for a in r.alerts() if a["kind"] == "dead_units"]
        assert alert["step"] == 3 and alert["param"] == "0.weight"
        assert alert["message"].startswith("3 of 32 units of 0.weight")


def test_nonfinite_loss_and_gradients_are_flagged_not_raised(tmp_path):
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with dv.watch(model, opt, store=tmp_path / "n") as run:
        for step, (x, y) in enumerate(batches(3)):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            if step == 1:
                model[0].weight.grad[0, 0] = float("nan")
                model[0].weight.grad[0, 1] = float("inf")
                loss = loss * float("nan")
            run.log(step, loss=loss)
    with open_run(tmp_path / "n") as r:
        kinds = {(a["step"], a["kind"], a["param"]) for a in r.alerts()}
        assert (1, "nonfinite_scalar", None) in kinds
        assert (1, "nonfinite_grad", "0.weight") in kinds
        _, nan = r.stat("nan", kind="grad")
        _, pinf = r.stat("posinf", kind="grad")
        i = r.param_index("0.weight")
        assert nan[i, 1] == 1 and pinf[i, 1] == 1 and nan[i, 0] == 0
        assert math.isnan(r.scalar("loss")[1][1])


def test_torch_probe_counts_what_the_cpu_probe_counts():
    """The GPU code path (torch ops) run on the CPU gives the CPU kernels' numbers."""
    g = torch.Generator().manual_seed(4)
    ws = [torch.randn(40, 30, generator=g), torch.randn(17, generator=g),
          torch.randn(8, 3, 3, 3, generator=g).to(torch.bfloat16)]
    gs = [torch.randn_like(w, dtype=torch.float32).to(w.dtype) * 1e-3 for w in ws]
    gs[0][3] = 0
    gs[0][5, 2] = float("nan")
    ws[1][0] = float("-inf")
    prevs = [w + 0.01 for w in ws]
    rows = [True, False, True]
    a = CpuProbe(64).measure(ws, gs, prevs, rows, True)
    b = TorchProbe(64).measure(ws, gs, prevs, rows, True)
    b = {k: (v.numpy() if hasattr(v, "numpy") else v) for k, v in b.items()}
    np.testing.assert_allclose(b["stats"], a["stats"], rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(b["diffsq"], a["diffsq"], rtol=1e-10)
    np.testing.assert_array_equal(b["hist_counts"], a["hist_counts"])
    np.testing.assert_array_equal(b["hist_range"], a["hist_range"])
    for x, y in zip(a["rowmax"], b["rowmax"]):
        if x is None:
            assert y is None
        else:
            np.testing.assert_array_equal(np.asarray(y), x)


def test_bad_input_is_refused_before_training(tmp_path):
    m = mlp()
    with pytest.raises(TypeError, match="model: expected a torch.nn.Module"):
        dv.watch("model", store=tmp_path / "a")
    with pytest.raises(ValueError, match="model: Identity has no parameters"):
        dv.watch(torch.nn.Identity(), store=tmp_path / "a")
    for name, bad in (("every", 0), ("bins", -3), ("snapshot_every", 0), ("dead_after", 0)):
        with pytest.raises(ValueError, match=f"{name}: expected a positive int"):
            dv.watch(m, store=tmp_path / "a", **{name: bad})
    with pytest.raises(TypeError, match="every: expected a positive int"):
        dv.watch(m, store=tmp_path / "a", every=2.5)
    with pytest.raises(TypeError, match="optimizer: expected a torch.optim.Optimizer"):
        dv.watch(m, object(), store=tmp_path / "a")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match="store: cannot write"):
        dv.watch(m, store=blocker / "run")
    with dv.watch(m, store=tmp_path / "ok") as run:
        with pytest.raises(ValueError, match="step: expected steps to increase"):
            run.log(0, loss=1.0)
            run.log(0, loss=1.0)
        with pytest.raises(TypeError, match="loss: expected a number"):
            run.log(5, loss="low")
    with pytest.raises(ValueError, match="already holds"):
        dv.watch(m, store=tmp_path / "ok")


def test_second_writer_is_refused(tmp_path):
    m = mlp()
    with dv.watch(m, store=tmp_path / "x"):
        with pytest.raises(dv.watch.RunLockedError):
            dv.watch(m, store=tmp_path / "x", mode="append")


CHILD = textwrap.dedent("""
    import sys, torch
    import dlviz_gpu as dv
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2))
    opt = torch.optim.SGD(m.parameters(), lr=0.05)
    run = dv.watch(m, opt, store=sys.argv[1], every=1)
    x = torch.randn(32, 8); y = (x[:, 0] > 0).long()
    step = 0
    while True:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(m(x), y)
        loss.backward(); opt.step()
        run.log(step, loss=loss)
        if step % 5 == 4:
            run.flush()
            print("flushed", step, float(loss), flush=True)
        step += 1
""")


def test_training_killed_with_sigkill_keeps_every_flushed_step(tmp_path):
    store = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(store)], stdout=subprocess.PIPE,
                            text=True)
    last = None
    try:
        for line in proc.stdout:
            _, step, loss = line.split()
            last = (int(step), float(loss))
            if last[0] >= 14:
                break
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL and last is not None
    con = sqlite3.connect(run_file(store))
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()
    with open_run(store) as r:
        steps = r.steps()
        assert list(steps[:last[0] + 1]) == list(range(last[0] + 1))
        s, loss = r.scalar("loss")
        assert loss[list(s).index(last[0])] == pytest.approx(last[1], rel=1e-6)
        assert not r.live
    # the run can be taken up again by a new writer
    m = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2))
    with dv.watch(m, store=store, mode="append") as run:
        run.log(10_000, loss=0.5)
    with open_run(store) as r:
        assert r.last_step == 10_000
    assert os.path.exists(store)


def test_a_gradient_the_kernels_cannot_read_in_place_is_measured_all_the_same(tmp_path):
    """A non-contiguous gradient goes through the torch probe, with the same numbers."""
    model = torch.nn.Linear(6, 4)
    with dv.watch(model, store=tmp_path / "nc", histograms=True) as run:
        model.weight.grad = torch.randn(6, 4).t()          # (4, 6), not contiguous
        model.bias.grad = torch.randn(4)
        run.log(0, loss=1.0)
    with open_run(tmp_path / "nc") as r:
        i = r.param_index("weight")
        _, norm = r.stat("norm", kind="grad")
        assert norm[i, 0] == pytest.approx(model.weight.grad.double().norm().item(), rel=1e-12)
        _, h = r.histograms("weight", kind="grad")
        assert h.counts[0].sum() == 24
