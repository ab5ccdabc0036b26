"""A store that cannot be written never stops training: SQLite's page limit, a file-size limit
(EFBIG), a real 2 MB tmpfs, a connection made read-only; the run keeps every step before."""

import json
import os
import pathlib
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import torch

import dlviz_gpu as dv
from dlviz_gpu.watch import (KINDS, STAT_NAMES, UPDATE_COLUMNS, RecordingStoppedWarning,
                             RunWriteError, open_run, run_file)
from dlviz_gpu.watch.store import ParamInfo, RunWriter, StepRecord

REPO = pathlib.Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------

def assert_same_prefix(run, ref, upto: int) -> None:
    """Every table of ``run`` holds exactly what ``ref`` holds for the steps < upto."""
    assert run.steps().tolist() == [s for s in ref.steps().tolist() if s < upto]
    assert [p.name for p in run.params] == [p.name for p in ref.params]
    for name in ref.scalar_names():
        s, v = run.scalar(name)
        rs, rv = ref.scalar(name)
        keep = rs < upto
        np.testing.assert_array_equal(s, rs[keep])
        np.testing.assert_array_equal(v, rv[keep])

    def cut(steps_values):
        steps, values = steps_values
        keep = steps < upto
        return steps[keep], values[..., keep]

    for kind in KINDS:
        for stat in STAT_NAMES:
            s, v = run.stat(stat, kind=kind)
            rs, rv = cut(ref.stat(stat, kind=kind))
            np.testing.assert_array_equal(s, rs)
            np.testing.assert_array_equal(v, rv, err_msg=f"{stat} of {kind}")
    for col in UPDATE_COLUMNS:
        s, v = run.update(col)
        rs, rv = cut(ref.update(col))
        np.testing.assert_array_equal(s, rs)
        np.testing.assert_array_equal(v, rv, err_msg=col)
    for p in ref.params:
        for kind in ("weight", "grad"):
            s, h = run.histograms(p.name, kind)
            rs, rh = ref.histograms(p.name, kind)
            keep = rs < upto
            np.testing.assert_array_equal(s, rs[keep])
            np.testing.assert_array_equal(h.counts, rh.counts[keep])
            np.testing.assert_array_equal(h.edges, rh.edges[keep])
        if p.rows is not None:
            steps = run.snapshot_steps(p.name).tolist()
            assert steps == [s for s in ref.snapshot_steps(p.name).tolist() if s < upto]
            for s in steps:
                for stat in ("mean", "extremum"):
                    np.testing.assert_array_equal(run.snapshot(p.name, s, stat),
                                                  ref.snapshot(p.name, s, stat))
    assert [a for a in run.alerts() if a["kind"] != "recording_stopped"] == \
        [a for a in ref.alerts() if a["step"] < upto]


def stop_warnings(caught) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, RecordingStoppedWarning)]


def mlp(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(16, 48), torch.nn.ReLU(), torch.nn.Linear(48, 4))


def train(store, steps, at_step=None, seed=0, **kw):
    """A real training loop with dv.watch; ``at_step(step, run)`` runs after each log."""
    model = mlp(seed)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(64, 16, generator=g)
    y = torch.randint(0, 4, (64,), generator=g)
    losses = []
    run = dv.watch(model, opt, store=store, snapshot_every=5, **kw)
    for step in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        run.log(step, loss=loss)
        losses.append(float(loss.detach()))
        if at_step is not None:
            at_step(step, run)
    run.close()
    return run, losses


def limit_pages(run, extra: int) -> int:
    """Let the run's SQLite connection grow the database by ``extra`` pages at most."""
    w = run._writer
    with w._lock:
        n = w._con.execute("PRAGMA page_count").fetchone()[0]
        w._con.execute(f"PRAGMA max_page_count={n + extra}")
    return n + extra


# --------------------------------------------------------------------------
# the store: a transaction that does not fit is rolled back whole
# --------------------------------------------------------------------------

PARAMS = [ParamInfo("w", (30, 40), "float32", 1200, "l", False, 30, 40)]


def step_record(step):
    rng = np.random.default_rng(step)
    return StepRecord(step=step, time=float(step), recorded=True, scalars={"loss": 1 / (1 + step)},
                      snapshots=[(0, "mean", rng.random((30, 40)).astype(np.float32))])


def test_writer_rolls_back_a_batch_that_does_not_fit_and_stays_usable(tmp_path):
    store = tmp_path / "full"
    w = RunWriter(store)
    w.define_params([ParamInfo(**{k: v for k, v in vars(p).items() if k != "id"})
                     for p in PARAMS])
    w.write([step_record(s) for s in range(3)])
    with w._lock:
        pages = w._con.execute("PRAGMA page_count").fetchone()[0]
        w._con.execute(f"PRAGMA max_page_count={pages + 1}")
    # ten snapshots of 4.8 kB: more than one page more
    with pytest.raises(RunWriteError, match=r"full/run\.sqlite: cannot write: database or disk "
                                            r"is full \(SQLITE_FULL\); [\d,]+ bytes free"):
        w.write([step_record(s) for s in range(3, 13)])
    with open_run(store) as r:                    # nothing of the failed batch
        assert r.steps().tolist() == [0, 1, 2]
        assert r.snapshot_steps("w").tolist() == [0, 1, 2]
        np.testing.assert_array_equal(r.snapshot("w", 2), step_record(2).snapshots[0][2])
    con = sqlite3.connect(f"file:{run_file(store)}?mode=ro", uri=True)
    assert con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    con.close()
    with w._lock:
        w._con.execute("PRAGMA max_page_count=1000000")
    w.write([step_record(3)])                     # room again: the writer goes on
    w.close()
    with open_run(store) as r:
        assert r.steps().tolist() == [0, 1, 2, 3] and r.meta["status"] == "closed"


def test_writer_close_releases_the_run_when_the_closed_mark_cannot_be_written(tmp_path):
    """A connection that may not write (SQLite's query_only) fails every write for real."""
    store = tmp_path / "ro"
    w = RunWriter(store)
    w.write([StepRecord(step=0, time=0.0, scalars={"loss": 2.0})])
    w._con.execute("PRAGMA query_only=ON")
    with pytest.raises(RunWriteError, match=r"cannot write: attempt to write a readonly "
                                            r"database \(SQLITE_READONLY\)"):
        w.write([StepRecord(step=1, time=1.0)])
    with pytest.raises(RunWriteError, match="cannot write: attempt to write a readonly"):
        w.write_alert(1, "x", "y")
    with pytest.raises(RunWriteError, match="cannot write: attempt to write a readonly"):
        w.close()
    assert w.closed
    with RunWriter(store, mode="append") as w2:        # the lock went with the failed close
        assert open_run(store).meta["status"] == "running"
        w2.write([StepRecord(step=1, time=1.0, scalars={"loss": 1.0})])
    with open_run(store) as r:
        assert r.scalar("loss")[1].tolist() == [2.0, 1.0] and r.meta["status"] == "closed"
    # inside a with block that raises, the block's exception is the one seen
    with pytest.raises(KeyError, match="the block's own"):
        with RunWriter(store, mode="append") as w3:
            w3._con.execute("PRAGMA query_only=ON")
            raise KeyError("the block's own")


# --------------------------------------------------------------------------
# the watch: SQLITE_FULL in the middle of a real training loop
# --------------------------------------------------------------------------

def test_training_goes_on_when_sqlite_is_full_and_the_run_keeps_every_step_before(tmp_path):
    steps = 60
    ref, ref_losses = train(tmp_path / "ref", steps)
    seen = {}

    def at_step(step, run):
        if step == 9:
            run.flush()
            seen["limit"] = limit_pages(run, 12)
        if step == 40:
            run.flush()          # every step so far met the store: the stop is known by now
        if step >= 9:
            seen.setdefault("recorded", {})[step] = (run.recorded, run.stopped_at is not None)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run, losses = train(tmp_path / "full", steps, at_step)
    assert losses == ref_losses                          # training was not disturbed
    assert run.closed and run.logged == steps
    stopped = run.stopped_at
    assert stopped is not None and 10 <= stopped < steps, stopped
    assert "database or disk is full (SQLITE_FULL)" in run.stop_reason
    msgs = stop_warnings(caught)
    assert len(msgs) == 1, msgs                          # once
    assert msgs[0].startswith(f"dv.watch: recording to {run.path} stopped at step {stopped}: "
                              f"database or disk is full (SQLITE_FULL)")
    assert "Training continues unrecorded" in msgs[0]
    # once the training thread knows of the stop (the writer thread finds it, a step or
    # more after it happened), log() measures nothing more
    known = [s for s, (_, k) in seen["recorded"].items() if k]
    assert known and stopped <= known[0] <= 40, (stopped, known[:1])
    after = [n for s, (n, _) in seen["recorded"].items() if s >= known[0]]
    assert len(after) >= 20 and len(set(after)) == 1, after

    with open_run(tmp_path / "full") as r, open_run(tmp_path / "ref") as rr:
        assert r.steps().tolist() == list(range(stopped))
        assert_same_prefix(r, rr, stopped)
        np.testing.assert_array_equal(r.scalar("loss")[1], np.array(losses[:stopped]))
        stop = [a for a in r.alerts() if a["kind"] == "recording_stopped"]
        # the page limit leaves room in the alerts page: the alert is always written here
        assert len(stop) == 1 and stop[0]["step"] == stopped
        assert stop[0]["message"].startswith(f"recording stopped at step {stopped}: database "
                                             f"or disk is full (SQLITE_FULL)")
        assert r.meta["status"] == "closed"
    con = sqlite3.connect(f"file:{run_file(tmp_path / 'full')}?mode=ro", uri=True)
    assert con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    assert con.execute("PRAGMA page_count").fetchone()[0] <= seen["limit"]
    con.close()


def test_any_write_error_stops_recording_without_raising(tmp_path, monkeypatch):
    """Not only a full disk: a store that refuses writes, and a step that cannot be turned into
    a record, stop the recording the same way."""
    def read_only(step, run):
        if step == 4:
            run.flush()
            with run._writer._lock:
                run._writer._con.execute("PRAGMA query_only=ON")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run, _ = train(tmp_path / "ro", 12, read_only)
    assert run.stopped_at == 5
    assert "attempt to write a readonly database (SQLITE_READONLY)" in run.stop_reason
    msgs = stop_warnings(caught)
    assert len(msgs) == 1 and "stopped at step 5" in msgs[0]     # the failed close says no more
    with open_run(tmp_path / "ro") as r:
        assert r.steps().tolist() == [0, 1, 2, 3, 4]
        assert r.meta["status"] == "running"                      # could not be marked closed
        assert not [a for a in r.alerts() if a["kind"] == "recording_stopped"]
        assert not r.live

    # every step written, then the 'closed' mark refused: one warning that says just that
    def refuse_at_the_end(step, run):
        if step == 11:
            run.flush()
            with run._writer._lock:
                run._writer._con.execute("PRAGMA query_only=ON")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run, _ = train(tmp_path / "end", 12, refuse_at_the_end)
    assert run.stopped_at is None and run.closed
    msgs = stop_warnings(caught)
    assert len(msgs) == 1 and msgs[0].startswith(
        f"dv.watch: every step logged to {run.path} was recorded, but the run could not be "
        f"marked closed: attempt to write a readonly database (SQLITE_READONLY); ")
    assert msgs[0].endswith(" It reads as a run that stopped without closing.")
    with open_run(tmp_path / "end") as r:
        assert r.steps().tolist() == list(range(12)) and r.meta["status"] == "running"

    # a failure while turning a queued step into a record (a device copy, a bug)
    from dlviz_gpu.watch.recorder import Watch

    real = Watch._record

    def record(self, item):
        if item["step"] == 7:
            raise RuntimeError("the device was lost\nwhile copying")
        return real(self, item)

    monkeypatch.setattr(Watch, "_record", record)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run, _ = train(tmp_path / "bug", 12)
    assert run.stopped_at == 7 and run.stop_reason == ("RuntimeError: the device was lost "
                                                       "while copying")
    assert len(stop_warnings(caught)) == 1
    with open_run(tmp_path / "bug") as r:
        assert r.steps().tolist() == list(range(7))
        assert [(a["step"], a["kind"]) for a in r.alerts()] == [(7, "recording_stopped")]
        assert r.meta["status"] == "closed"


def test_a_store_full_before_training_is_refused_at_once(tmp_path, monkeypatch):
    """No room for the parameters' rows: refused before any step, like a path that cannot be
    written (the training loop has not started)."""
    store = tmp_path / "tiny"
    w = RunWriter(store)                       # the schema, then a run file at its page limit
    w.close()
    real = RunWriter.define_params

    def define_params(self, params):
        with self._lock:
            n = self._con.execute("PRAGMA page_count").fetchone()[0]
            self._con.execute(f"PRAGMA max_page_count={n}")
        names = [ParamInfo(f"p{i}" * 200, (1,), "float32", 1, "l", False) for i in range(40)]
        return real(self, names)

    monkeypatch.setattr(RunWriter, "define_params", define_params)
    with pytest.raises(ValueError, match=r"store: cannot write run file .*tiny/run\.sqlite: "
                                         r"database or disk is full \(SQLITE_FULL\)"):
        dv.watch(mlp(), store=store, mode="append")
    monkeypatch.undo()
    with dv.watch(mlp(), store=store, mode="append") as run:     # the lock was released
        run.log(0, loss=1.0)


# --------------------------------------------------------------------------
# real small file systems, in a child process
# --------------------------------------------------------------------------

CHILD = textwrap.dedent(r"""
    import json, os, resource, shutil, signal, sys, tempfile, warnings
    import torch
    import dlviz_gpu as dv

    store, steps, fsize = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    torch.set_num_threads(1)

    def model():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(),
                                   torch.nn.Linear(64, 64), torch.nn.ReLU(),
                                   torch.nn.Linear(64, 10))

    # the kernels are compiled or loaded (Numba writes its cache) before any limit
    warm = tempfile.mkdtemp()
    with dv.watch(model(), store=os.path.join(warm, "w")) as w:
        w.log(0, loss=1.0)
    shutil.rmtree(warm)
    if fsize:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)      # writes past it fail with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    m = model()
    opt = torch.optim.SGD(m.parameters(), lr=0.05)
    g = torch.Generator().manual_seed(1)
    data = [(torch.randn(64, 32, generator=g), torch.randint(0, 10, (64,), generator=g))
            for _ in range(8)]
    losses = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = dv.watch(m, opt, store=store, every=1, snapshot_every=10, bins=64)
        for step in range(steps):
            x, y = data[step % len(data)]
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(m(x), y)
            loss.backward()
            opt.step()
            run.log(step, loss=loss)
            losses.append(float(loss.detach()))
        run.close()
    print(json.dumps({"done": len(losses), "losses": losses, "stopped_at": run.stopped_at,
                      "reason": run.stop_reason, "closed": run.closed,
                      "warnings": [f"{w.category.__name__}: {w.message}" for w in caught]}))
""")

STEPS = 300


def run_child(store, fsize=0):
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    p = subprocess.run([sys.executable, "-c", CHILD, str(store), str(STEPS), str(fsize)],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The same training on a disk with room: what every step should hold."""
    store = tmp_path_factory.mktemp("ref") / "run"
    report = run_child(store)
    assert report["stopped_at"] is None and report["warnings"] == []
    return store, report


def check_child_run(store, report, reference):
    ref_store, ref_report = reference
    assert report["done"] == STEPS and report["closed"]            # the loop ran to its end
    assert report["losses"] == ref_report["losses"]
    stopped = report["stopped_at"]
    assert stopped is not None and 0 < stopped < STEPS, report     # the disk filled mid-run
    stops = [w for w in report["warnings"] if w.startswith("RecordingStoppedWarning")]
    assert len(stops) == 1 and len(report["warnings"]) == 1, report["warnings"]
    assert f"recording to {run_file(store)} stopped at step {stopped}: " in stops[0]
    with open_run(store) as r, open_run(ref_store) as rr:
        assert r.steps().tolist() == list(range(stopped))
        assert_same_prefix(r, rr, stopped)
        np.testing.assert_array_equal(r.scalar("loss")[1], report["losses"][:stopped])
        alerts = [a for a in r.alerts() if a["kind"] == "recording_stopped"]
        return r.meta["status"], alerts


@pytest.mark.slow
def test_training_outlives_a_file_size_limit(tmp_path, reference):
    """RLIMIT_FSIZE with SIGXFSZ ignored: writes past 1.5 MB fail with EFBIG."""
    store = tmp_path / "fsize"
    report = run_child(store, fsize=1_500_000)
    assert "disk I/O error (SQLITE_IOERR_WRITE)" in report["reason"]
    assert "this process may write files of at most 1,500,000 bytes (RLIMIT_FSIZE)" in \
        report["reason"]
    status, alerts = check_child_run(store, report, reference)
    # folding the WAL into the file made room: the alert and the closed mark were written
    assert [a["step"] for a in alerts] == [report["stopped_at"]]
    assert "RLIMIT_FSIZE" in alerts[0]["message"]
    assert status == "closed"


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A 2 MB tmpfs mounted for the test (root only), always unmounted."""
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root and mount(8)")
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)],
                       capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {p.stderr.strip()}")
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", str(mnt)], capture_output=True, timeout=60).returncode:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=60)


@pytest.mark.slow
def test_training_outlives_a_full_2mb_file_system(tiny_tmpfs, reference):
    store = tiny_tmpfs / "run"
    report = run_child(store)
    assert report["reason"].startswith("database or disk is full (SQLITE_FULL); 0 bytes free")
    status, alerts = check_child_run(store, report, reference)
    vfs = os.statvfs(tiny_tmpfs)
    assert vfs.f_bavail * vfs.f_frsize < 64 << 10                # it is still full
    # where the alert fitted (the failed transaction's room in the WAL), it says why
    assert all(a["step"] == report["stopped_at"] and "SQLITE_FULL" in a["message"]
               for a in alerts)
    assert status in ("closed", "running")


CLOSE_CHILD = textwrap.dedent("""
    import json, resource, signal, sys
    from dlviz_gpu.watch.store import RunWriteError, RunWriter, StepRecord
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # EFBIG instead of a killed process
    store, limit = sys.argv[1], int(sys.argv[2])
    w = RunWriter(store)
    w.write([StepRecord(step=0, time=0.0, scalars={"loss": 1.0})])
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    step, error = 1, None
    while error is None:
        try:
            w.write([StepRecord(step=step, time=float(step), scalars={"loss": 1.0 / step})])
            step += 1
        except RunWriteError as e:
            error = str(e)
    w.close()                       # the WAL is what the limit stopped: folded, then the mark
    print(json.dumps({"steps": step, "error": error}))
""")


def test_writer_close_folds_the_wal_to_write_the_closed_mark_under_a_file_size_limit(tmp_path):
    # each step commits a few WAL frames: the WAL (not the run file) reaches the limit first,
    # and the closed mark fits once the WAL is folded into the file and starts again
    store = tmp_path / "fsize"
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    p = subprocess.run([sys.executable, "-c", CLOSE_CHILD, str(store), "400000"], cwd=REPO,
                       env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    report = json.loads(p.stdout.strip().splitlines()[-1])
    assert "RLIMIT_FSIZE" in report["error"]
    with open_run(store) as r:
        assert r.steps().tolist() == list(range(report["steps"]))
        assert r.meta["status"] == "closed"
