"""The run store: every table round-trips, modes, locking, schema versions, a real SIGKILL."""

import json
import os
import pathlib
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from dlviz_gpu.watch.store import (KINDS, NSTATS, SCHEMA_VERSION, STAT_NAMES, ParamInfo, Run,
                                   RunLockedError, RunWriter, SchemaVersionError, StepRecord,
                                   open_run, run_file)

REPO = pathlib.Path(__file__).resolve().parents[2]

# Deterministic records, exec'd here and in the subprocesses (which must not import the tests).
_RECORDS_SRC = r'''
import numpy as np
from dlviz_gpu.watch.store import NSTATS, ParamInfo, StepRecord

PARAMS = [ParamInfo("enc.weight", (4, 3), "float32", 12, "enc", False, 4, 3),
          ParamInfo("enc.bias", (4,), "float32", 4, "enc", False),
          ParamInfo("emb.weight", (5, 2), "bfloat16", 10, "emb", True, 5, 2)]
B = 8


def make_record(step):
    """Record of `step`: values derived from the step alone, with NaN, +-inf and absent rows."""
    rng = np.random.default_rng(step)
    P = len(PARAMS)
    stats = rng.normal(size=(P, 3, NSTATS)) * 10.0 ** rng.integers(-8, 8, size=(P, 3, NSTATS))
    stats[..., [0, 7, 8, 9, 10]] = rng.integers(0, 1000, size=(P, 3, 5))
    stats[:, 2] = np.nan                    # no update stats
    stats[2, 1] = np.nan                    # the frozen parameter has no gradient
    if step % 3 == 0:
        stats[0, 1, 1] = np.nan             # one NULL in a present row
        stats[1, 0, 2] = np.inf
        stats[1, 1, 4] = -np.inf
    updates = rng.random((P, 3))
    updates[:, 2] = rng.integers(0, 4, size=P)
    updates[2] = np.nan
    if step % 2:
        updates[0, 1] = np.inf
    counts = rng.integers(0, 2 ** 40, size=(P, 2, B))
    rng_ = np.sort(rng.normal(size=(P, 2, 2)), axis=-1)
    counts[2, 1] = 0
    rng_[2, 1] = np.nan                     # frozen: no gradient histogram
    return StepRecord(step=step, time=1.7e9 + step * 0.25, recorded=True,
                      scalars={"loss": float(1.0 / (step + 1)), "lr": 1e-3 * 0.5 ** step},
                      stats=stats, updates=updates, hist_counts=counts, hist_range=rng_)
'''
_ns: dict = {}
exec(_RECORDS_SRC, _ns)
PARAMS, B, make_record = _ns["PARAMS"], _ns["B"], _ns["make_record"]


def fresh_params():
    return [ParamInfo(**{k: v for k, v in vars(p).items() if k != "id"}) for p in PARAMS]


def _child(code: str, *args, **kw):
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen([sys.executable, "-c", _RECORDS_SRC + code, *map(str, args)],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kw)


def expected_matrix(records, getter):
    """(P, T) over the records, from make_record's arrays (independent of the reader)."""
    return np.stack([getter(r) for r in records], axis=1)


# --------------------------------------------------------------------------
# round trip
# --------------------------------------------------------------------------

def test_round_trip_every_table(tmp_path):
    store = tmp_path / "exp1"
    records = [make_record(s) for s in range(0, 12)]
    unrecorded = StepRecord(step=100, time=1.8e9, scalars={"loss": float("nan"),
                                                             "lr": float("inf"),
                                                             "gnorm": float("-inf")})
    snap_mean = np.arange(12, dtype=np.float32).reshape(4, 3) / 7
    snap_ext = snap_mean.copy()
    snap_ext[0, 0], snap_ext[1, 1], snap_ext[2, 2] = np.nan, np.inf, -np.inf
    records[4].snapshots = [(0, "mean", snap_mean), (0, "extremum", snap_ext)]
    records[4].alerts = [(1, "nonfinite_weight", "enc.bias has 1 +inf"), (None, "x", "loss?")]
    unrecorded.alerts = [(None, "nonfinite_scalar", "loss is nan at step 100")]
    with RunWriter(store, config={"bins": B, "every": 1, "model": "Net"}) as w:
        assert w.path == store / "run.sqlite"
        w.define_params(fresh_params())
        w.write(records[:5])
        w.write(records[5:] + [unrecorded])

    with open_run(store) as run:
        assert run.name == "exp1" and run.schema_version == SCHEMA_VERSION
        meta = run.meta
        assert meta["config"] == {"bins": B, "every": 1, "model": "Net"}
        assert meta["status"] == "closed" and meta["schema_version"] == 1
        assert meta["created"].endswith("+00:00") and "closed" in meta

        got = run.params
        assert [p.id for p in got] == [0, 1, 2]
        for p, q in zip(got, PARAMS):
            assert (p.name, p.shape, p.dtype, p.numel, p.layer, p.frozen, p.rows, p.cols) == \
                (q.name, q.shape, q.dtype, q.numel, q.layer, q.frozen, q.rows, q.cols)
        assert run.param_index("enc.bias") == 1 and run.param_index(2) == 2

        assert run.steps().tolist() == list(range(12)) + [100]
        assert run.steps(recorded=True).tolist() == list(range(12))
        assert run.steps(recorded=False).tolist() == [100]
        assert run.last_step == 100
        assert run.scalar_names() == ["gnorm", "loss", "lr"]
        s, v = run.scalar("lr")
        assert s.tolist() == list(range(12)) + [100]
        np.testing.assert_array_equal(v, [r.scalars["lr"] for r in records] + [np.inf])
        s, v = run.scalar("loss", since=10)
        assert s.tolist() == [10, 11, 100] and np.isnan(v[-1]) and v[0] == 1 / 11
        assert run.scalar("gnorm")[1].tolist() == [-np.inf]

        for k, kind in enumerate(KINDS):
            for j, name in enumerate(STAT_NAMES):
                steps, vals = run.stat(name, kind=kind)
                assert steps.tolist() == list(range(12))
                want = expected_matrix(records, lambda r: r.stats[:, k, j])
                np.testing.assert_array_equal(vals, want, err_msg=f"{kind} {name}")
        steps, vals = run.stat("mean", kind="weight", since=7)
        assert steps.tolist() == list(range(7, 12))
        np.testing.assert_array_equal(vals, expected_matrix(records[7:],
                                                            lambda r: r.stats[:, 0, 1]))
        for j, col in enumerate(("norm", "ratio", "dead")):
            steps, vals = run.update(col)
            np.testing.assert_array_equal(vals, expected_matrix(records,
                                                                lambda r: r.updates[:, j]))

        for i in range(3):
            for k, kind in enumerate(("weight", "grad")):
                steps, h = run.histograms(PARAMS[i].name, kind=kind)
                if i == 2 and kind == "grad":
                    assert steps.size == 0 and h.counts.shape == (0, B)
                    continue
                assert steps.tolist() == list(range(12))
                np.testing.assert_array_equal(h.counts,
                                              np.stack([r.hist_counts[i, k] for r in records]))
                lo = np.array([r.hist_range[i, k, 0] for r in records])
                hi = np.array([r.hist_range[i, k, 1] for r in records])
                np.testing.assert_array_equal(h.edges[:, 0], lo)
                np.testing.assert_array_equal(h.edges[:, -1], hi)
                np.testing.assert_allclose(np.diff(h.edges, axis=1),
                                           np.repeat(((hi - lo) / B)[:, None], B, 1),
                                           rtol=1e-9)
                for field, col in (("nan", 8), ("posinf", 9), ("neginf", 10)):
                    np.testing.assert_array_equal(getattr(h, field),
                                                  [r.stats[i, k, col] for r in records])

        assert run.snapshot_steps("enc.weight").tolist() == [4]
        assert run.snapshot_steps(1).size == 0
        m = run.snapshot("enc.weight", 4)
        assert m.dtype == np.float32 and m.shape == (4, 3)
        np.testing.assert_array_equal(m, snap_mean)
        np.testing.assert_array_equal(run.snapshot(0, 4, stat="extremum"), snap_ext)
        with pytest.raises(KeyError, match="no 'mean' snapshot of enc.weight at step 5.*4"):
            run.snapshot(0, 5)

        assert run.alerts() == [
            {"step": 4, "param": "enc.bias", "kind": "nonfinite_weight",
             "message": "enc.bias has 1 +inf"},
            {"step": 4, "param": None, "kind": "x", "message": "loss?"},
            {"step": 100, "param": None, "kind": "nonfinite_scalar",
             "message": "loss is nan at step 100"}]
        assert [a["step"] for a in run.alerts(since=5)] == [100]

    # NaN is stored as NULL, +-inf as SQLite's Inf; absent (all-NaN) rows are not written
    con = sqlite3.connect(run_file(store))
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert con.execute("SELECT count(*) FROM stats WHERE kind = 2").fetchone()[0] == 0
    assert con.execute("SELECT count(*) FROM stats WHERE param = 2 AND kind = 1"
                       ).fetchone()[0] == 0
    assert con.execute("SELECT count(*) FROM stats WHERE mean IS NULL").fetchone()[0] == 4
    assert con.execute("SELECT std FROM stats WHERE param = 1 AND kind = 0 AND step = 3"
                       ).fetchone()[0] == float("inf")
    assert con.execute("SELECT value FROM scalars WHERE step = 100 AND name = 'loss'"
                       ).fetchone()[0] is None
    assert con.execute("SELECT count(*) FROM updates WHERE param = 2").fetchone()[0] == 0
    assert con.execute("SELECT shape FROM params WHERE id = 0").fetchone()[0] == "[4, 3]"
    con.close()


def test_histogram_degenerate_ranges(tmp_path):
    P = fresh_params()
    rec = StepRecord(step=0, time=0.0, recorded=True,
                     stats=np.full((3, 3, NSTATS), np.nan),
                     hist_counts=np.zeros((3, 2, 4), np.int64),
                     hist_range=np.full((3, 2, 2), np.nan))
    rec.stats[0, 0, 0], rec.stats[0, 0, 8] = 12, 12       # all NaN: a row with lo NULL
    rec.hist_counts[1, 0] = [0, 0, 4, 0]
    rec.hist_range[1, 0] = [2.0, 2.0]                     # one distinct value
    with RunWriter(tmp_path / "r.db") as w:
        w.define_params(P)
        w.write([rec])
    run = Run(tmp_path / "r.db")
    assert run.name == "r"
    _, h = run.histograms(0, "weight")
    assert h.counts.tolist() == [[0, 0, 0, 0]] and h.nan.tolist() == [12]
    np.testing.assert_array_equal(h.edges, [[-0.5, -0.25, 0, 0.25, 0.5]])
    _, h = run.histograms(1, "weight")
    np.testing.assert_array_equal(h.edges, [[1.5, 1.75, 2, 2.25, 2.5]])
    assert h.counts.tolist() == [[0, 0, 4, 0]]
    assert run.histograms(2, "weight")[0].size == 0         # nothing recorded: no row
    with pytest.raises(ValueError, match="kind: expected one of 'weight', 'grad'"):
        run.histograms(0, "update")
    run.close()


# --------------------------------------------------------------------------
# modes, paths, bad input
# --------------------------------------------------------------------------

def test_modes(tmp_path):
    store = tmp_path / "run"
    with RunWriter(store, config={"a": 1}) as w:
        w.define_params(fresh_params())
        w.write([make_record(0), make_record(1)])
    with pytest.raises(ValueError, match=r"already holds a run \(2 steps\).*mode='append'.*"
                                         r"new, append, overwrite"):
        RunWriter(store)
    with RunWriter(store, mode="append") as w:
        w.define_params(fresh_params())
        w.write([make_record(2)])
        bad = fresh_params()[::-1]
        with pytest.raises(ValueError, match="params: the run .* holds 3 parameters"):
            w.define_params(bad)
    with open_run(store) as run:
        assert run.steps().tolist() == [0, 1, 2]
        assert run.meta["config"] == {"a": 1}                # kept when config=None
        assert run.meta["status"] == "closed"
    with RunWriter(store, mode="overwrite", config={"b": 2}) as w:
        w.write([StepRecord(step=5, time=1.0, scalars={"x": 1.0})])
    with open_run(store) as run:
        assert run.steps().tolist() == [5] and run.params == []
        assert run.meta["config"] == {"b": 2}
    # "new" on a file that holds no steps yet starts afresh
    empty = tmp_path / "empty"
    RunWriter(empty).close()
    with RunWriter(empty, config={"c": 3}) as w:
        w.write([StepRecord(step=0, time=0.0)])
    assert open_run(empty).meta["config"] == {"c": 3}


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="mode: expected one of 'new', 'append', 'overwrite'"):
        RunWriter(tmp_path / "x", mode="replace")
    with pytest.raises(TypeError, match="store: expected a path"):
        RunWriter(3)
    with pytest.raises(TypeError, match="config: expected a dict"):
        RunWriter(tmp_path / "x", config=[1])
    with RunWriter(tmp_path / "x") as w:
        with pytest.raises(ValueError, match="per-parameter arrays before define_params"):
            w.write([make_record(0)])
        w.define_params(fresh_params())
        rec = make_record(0)
        rec.stats = rec.stats[:2]
        with pytest.raises(ValueError, match=r"records\[1\]\.stats: expected shape \(3, 3, 11\)"):
            w.write([make_record(1), rec])
        with pytest.raises(TypeError, match=r"records\[0\]\.step: expected an int"):
            w.write([StepRecord(step=1.5, time=0.0)])
        with pytest.raises(ValueError, match="cannot be set"):
            w.set_meta(status="x")
        w.set_meta(notes={"lr": [1, 2]})
        # nothing of a refused batch was written
        with open_run(tmp_path / "x") as run:
            assert run.steps().size == 0 and run.meta["notes"] == {"lr": [1, 2]}
    with pytest.raises(ValueError, match="is closed"):
        w.write([StepRecord(step=0, time=0.0)])
    w.close()                                               # idempotent
    run = open_run(tmp_path / "x")
    with pytest.raises(KeyError, match="close names: enc.weight"):
        run.param_index("enc.weigth")
    with pytest.raises(KeyError, match="no scalar 'loss'.*none yet"):
        run.scalar("loss")
    with pytest.raises(ValueError, match="name: expected one of numel, mean"):
        run.stat("median")
    with pytest.raises(ValueError, match="column: expected one of norm, ratio, dead"):
        run.update("size")


def test_unwritable_store(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("not a directory")
    with pytest.raises(ValueError, match=r"store: cannot write run file .*afile/run/run\.sqlite"):
        RunWriter(afile / "run")
    with pytest.raises(ValueError, match=r"store: cannot write run file .*afile/r\.db"):
        RunWriter(afile / "r.db")


def test_reader_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no run at"):
        open_run(tmp_path / "missing")
    (tmp_path / "d").mkdir()
    with pytest.raises(FileNotFoundError, match=r"looked for .*d/run\.sqlite"):
        open_run(tmp_path / "d")
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not SQLite" * 100)
    with pytest.raises(ValueError, match="not a dlviz_gpu run file"):
        open_run(junk)
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t(x)").connection.close()
    with pytest.raises(ValueError, match="not a dlviz_gpu run file"):
        open_run(other)
    with pytest.raises(ValueError, match="not a dlviz_gpu run file"):
        RunWriter(other, mode="append")


def test_newer_schema_refused(tmp_path):
    store = tmp_path / "future"
    with RunWriter(store) as w:
        w.write([StepRecord(step=0, time=0.0)])
    con = sqlite3.connect(run_file(store))
    con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'",
                (str(SCHEMA_VERSION + 1),))
    con.commit()
    con.close()
    msg = rf"newer dlviz_gpu \(schema {SCHEMA_VERSION + 1} > {SCHEMA_VERSION}\); upgrade"
    with pytest.raises(SchemaVersionError, match=msg):
        open_run(store)
    for mode in ("new", "append"):
        with pytest.raises(SchemaVersionError, match=msg):
            RunWriter(store, mode=mode)
    # refused without taking the lock for good
    with RunWriter(store, mode="overwrite"):
        pass
    assert open_run(store).schema_version == SCHEMA_VERSION


# --------------------------------------------------------------------------
# live runs, locking, threads
# --------------------------------------------------------------------------

def test_live_reader_and_second_writer(tmp_path):
    store = tmp_path / "live"
    w = RunWriter(store)
    run = open_run(store)                                  # opened before any parameter or step
    assert run.live and run.meta["status"] == "running"
    assert run.last_step is None and run.params == [] and run.stat("norm")[1].shape == (0, 0)
    with pytest.raises(RunLockedError, match=r"live/run\.sqlite is already being written by "
                                             r"another RunWriter in this process"):
        RunWriter(store, mode="append")
    w.define_params(fresh_params())
    w.write([make_record(0)])
    assert run.steps().tolist() == [0] and len(run.params) == 3
    # written from another thread (as the recorder does)
    t = threading.Thread(target=lambda: w.write([make_record(1), make_record(2)]))
    t.start()
    t.join()
    steps, v = run.stat("norm", kind="weight", since=1)
    assert steps.tolist() == [1, 2]
    np.testing.assert_array_equal(v[:, 1], make_record(2).stats[:, 0, 3])
    assert run.scalar("loss", since=2)[1].tolist() == [1 / 3]
    w.close()
    assert not run.live and run.meta["status"] == "closed"
    assert run.steps().tolist() == [0, 1, 2]
    run.close()
    # another process is refused while this one writes
    with RunWriter(store, mode="append") as w:
        p = _child(
            "\nimport sys\nfrom dlviz_gpu.watch.store import RunWriter, RunLockedError\n"
            "try:\n    RunWriter(sys.argv[1], mode='append')\n    print('opened')\n"
            "except RunLockedError as e:\n    print('locked:', e)\n", store)
        out, err = p.communicate(timeout=60)
        assert out.startswith("locked:") and "being written by another process" in out, err
        assert str(run_file(store)) in out


def test_kill_keeps_committed_steps(tmp_path):
    """SIGKILL a writer mid-loop: every committed step survives, the file is sound, the lock free."""
    store = tmp_path / "killed"
    K = 4
    code = (
        "\nimport sys\nfrom dlviz_gpu.watch.store import RunWriter\n"
        "w = RunWriter(sys.argv[1], config={'bins': B})\n"
        "w.define_params(PARAMS)\n"
        "s = 0\n"
        f"for k in range({K}):\n"
        "    w.write([make_record(s), make_record(s + 1)])\n"
        "    s += 2\n"
        "    print(s, flush=True)\n"
        "while True:\n"
        "    w.write([make_record(s)])\n"
        "    s += 1\n")
    p = _child(code, store)
    try:
        lines = [p.stdout.readline() for _ in range(K)]
        assert all(lines), p.stderr.read() if p.poll() is not None else lines
        committed = int(lines[-1])
        run = open_run(store)
        assert run.live
        with pytest.raises(RunLockedError, match="being written by another process"):
            RunWriter(store, mode="append")
    finally:
        os.kill(p.pid, signal.SIGKILL)
        p.wait(timeout=30)
        p.stdout.close()
        p.stderr.close()
    assert p.returncode == -signal.SIGKILL
    assert committed == 2 * K

    con = sqlite3.connect(f"file:{run_file(store)}?mode=ro", uri=True)
    assert con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    con.close()
    assert not run.live
    assert run.meta["status"] == "running"                 # killed, never closed
    steps = run.steps()
    assert len(steps) >= committed and steps.tolist() == list(range(len(steps)))
    records = [make_record(s) for s in range(committed)]
    s, v = run.stat("max", kind="grad")
    np.testing.assert_array_equal(v[:, :committed], expected_matrix(records,
                                                                     lambda r: r.stats[:, 1, 5]))
    s, v = run.update("ratio")
    np.testing.assert_array_equal(v[:, :committed], expected_matrix(records,
                                                                     lambda r: r.updates[:, 1]))
    s, h = run.histograms("enc.weight", "weight")
    np.testing.assert_array_equal(h.counts[:committed],
                                  np.stack([r.hist_counts[0, 0] for r in records]))
    np.testing.assert_array_equal(run.scalar("lr")[1][:committed],
                                  [r.scalars["lr"] for r in records])
    with RunWriter(store, mode="append") as w:             # the lock is free again
        w.define_params(fresh_params())
        w.write([StepRecord(step=10 ** 6, time=time.time(), scalars={"loss": 0.0})])
    assert run.last_step == 10 ** 6 and run.meta["status"] == "closed"
    assert json.loads(json.dumps(run.meta["config"])) == {"bins": B}
    run.close()


def test_lock_released_by_gc_and_not_held_by_forked_children(tmp_path):
    store = tmp_path / "fork"
    w = RunWriter(store)
    w.write([StepRecord(step=0, time=0.0)])
    del w                                                  # dropped without close()
    with RunWriter(store, mode="append") as w:             # the lock went with it
        w.write([StepRecord(step=1, time=1.0)])
    # a writer that forked a worker (a DataLoader) and is then killed: the worker, still
    # alive, must not keep the run locked
    # the worker says when it runs (its after-fork hooks have then run, as in any real
    # worker a moment after the fork); the writer is killed only after that
    code = ("\nimport os, sys, time\nfrom dlviz_gpu.watch.store import RunWriter\n"
            "w = RunWriter(sys.argv[1], mode='append')\n"
            "ready_r, ready_w = os.pipe()\n"
            "pid = os.fork()\n"
            "if pid == 0:\n    os.write(ready_w, b'x')\n    time.sleep(30)\n    os._exit(0)\n"
            "os.read(ready_r, 1)\n"
            "print(pid, flush=True)\n"
            "time.sleep(30)\n")
    p = _child(code, store)
    worker = None
    try:
        worker = int(p.stdout.readline())
        run = open_run(store)
        assert run.live
        os.kill(p.pid, signal.SIGKILL)
        p.wait(timeout=30)
        os.kill(worker, 0)                                 # the worker still runs
        assert not run.live
        with RunWriter(store, mode="append") as w:
            w.write([StepRecord(step=2, time=2.0)])
        assert run.steps().tolist() == [0, 1, 2]
        run.close()
    finally:
        p.kill()
        p.wait(timeout=30)
        p.stdout.close()
        p.stderr.close()
        if worker is not None:
            try:
                os.kill(worker, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_bins_fixed_per_run_and_odd_paths(tmp_path):
    store = tmp_path / "a dir #1?x"                        # quoted in the read-only URI
    with RunWriter(store) as w:
        w.define_params(fresh_params())
        w.write([make_record(0)])
    rec = make_record(1)
    rec.hist_counts = rec.hist_counts[..., :4]
    with RunWriter(store, mode="append") as w:             # B read back from the file
        with pytest.raises(ValueError, match=r"records\[0\]\.hist_counts: this run's "
                                             r"histograms have 8 bins; got 4"):
            w.write([rec])
    with open_run(store) as run:
        assert run.name == "a dir #1?x" and run.steps().tolist() == [0]
        assert run.histograms(0, "weight")[1].counts.shape == (1, B)


def test_the_run_records_the_version_of_dlviz_that_wrote_it(tmp_path):
    import dlviz_gpu

    with RunWriter(tmp_path / "v", config={"bins": B}) as w:
        w.define_params(fresh_params())
    assert open_run(tmp_path / "v").meta["dlviz_version"] == dlviz_gpu.__version__
