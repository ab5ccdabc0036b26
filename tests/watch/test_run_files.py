"""Run files that are damaged, not runs, or not files: one-line refusals, never a hang; reading
changes nothing on disk; the store's lock works without fcntl."""

import errno
import os
import pathlib
import shutil
import sqlite3
import struct
import subprocess
import sys
import threading
import time
import types

import numpy as np
import pytest

from dlviz_gpu.watch.store import schema as store_mod
from dlviz_gpu.watch.store import (NSTATS, STAT_NAMES, ParamInfo, RunFileError, RunLockedError,
                                   RunNotFound, RunWriter, SchemaVersionError, StepRecord,
                                   open_run, run_file)

REPO = pathlib.Path(__file__).resolve().parents[2]
PAGE = 4096


# --------------------------------------------------------------------------
# a real run, and ways to damage it
# --------------------------------------------------------------------------

PARAMS = [ParamInfo("w", (40, 30), "float32", 1200, "l", False, 40, 30),
          ParamInfo("b", (40,), "float32", 40, "l", False)]


def record(s):
    rng = np.random.default_rng(s)
    return StepRecord(
        step=s, time=1.0 * s, recorded=True, scalars={"loss": 1 / (s + 1), "lr": 0.1},
        stats=rng.normal(size=(2, 3, NSTATS)), updates=rng.random((2, 3)),
        hist_counts=rng.integers(0, 100, (2, 2, 64)),
        hist_range=np.sort(rng.normal(size=(2, 2, 2))),
        snapshots=[(0, "mean", rng.random((40, 30)).astype(np.float32))] if s % 10 == 0 else [],
        alerts=[(1, "nonfinite_grad", f"b at {s}")] if s % 7 == 0 else [])


def write_run(path, steps=40):
    """A closed run of a few dozen pages: every table holds rows."""
    with RunWriter(path, config={"bins": 64}) as w:
        w.define_params([ParamInfo(**{k: v for k, v in vars(p).items() if k != "id"})
                         for p in PARAMS])
        for s in range(steps):
            w.write([record(s)])
    return run_file(path)


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    f = write_run(tmp_path_factory.mktemp("good") / "good.sqlite")
    assert f.stat().st_size > 40 * PAGE and not os.path.exists(f"{f}-wal")
    return f


def root_page(good, table):
    con = sqlite3.connect(f"file:{good}?mode=ro&immutable=1", uri=True)
    n = con.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0]
    con.close()
    return n


def noise(n, seed):
    return np.random.default_rng(seed).integers(0, 256, n, np.uint8).tobytes()


def patched(*edits):
    """A copy of the run with ``edits(data, good) -> [(offset, bytes), ...]`` written over it."""
    def make(good, out):
        data = bytearray(good.read_bytes())
        for off, val in edits[0](data, good):
            data[off:off + len(val)] = val
        out.write_bytes(bytes(data))
    return make


def cut(n):
    def make(good, out):
        data = good.read_bytes()
        out.write_bytes(data[:n(len(data))] if callable(n) else data[:n])
    return make


def sql(*statements):
    """A copy of the run changed through SQLite itself (a valid file, a wrong run)."""
    def make(good, out):
        shutil.copyfile(good, out)
        con = sqlite3.connect(out, isolation_level=None)
        for s in statements:
            con.execute(s)
        con.execute("PRAGMA journal_mode=DELETE")
        con.close()
    return make


def new_db(*statements):
    def make(good, out):
        con = sqlite3.connect(out, isolation_level=None)
        for s in statements:
            con.execute(s)
        con.close()
    return make


# name -> (make(good, out), the problem the refusal names)
FILE_CASES = {
    "zero-length file": (lambda g, o: o.write_bytes(b""), r"an empty file"),
    "truncated inside the header": (cut(50), "malformed"),
    "the 100-byte header alone": (cut(100), "malformed"),
    "the first page alone": (cut(PAGE), "malformed"),
    "truncated to half": (cut(lambda n: n // 2 // PAGE * PAGE), "malformed"),
    "last page missing": (cut(lambda n: n - PAGE), "malformed"),
    "random bytes": (lambda g, o: o.write_bytes(noise(65536, 0)), "file is not a database"),
    "a text file": (lambda g, o: o.write_bytes(b"step,loss\n0,1.0\n"), "file is not a database"),
    "magic string flipped": (patched(lambda d, g: [(0, b"s")]), "file is not a database"),
    "page size not a power of two": (patched(lambda d, g: [(16, b"\x03\x00")]),
                                     "file is not a database"),
    "page size 1024 instead of 4096": (patched(lambda d, g: [(16, b"\x04\x00")]),
                                       "malformed database schema"),
    "size in pages past the end": (
        patched(lambda d, g: [(28, struct.pack(">I", 10_000)), (92, bytes(d[24:28]))]),
        "malformed"),
    "freelist trunk page out of range": (
        patched(lambda d, g: [(32, struct.pack(">I", 999_999)), (36, struct.pack(">I", 5))]),
        r"quick_check: .*freelist"),
    "page 1 b-tree type byte": (patched(lambda d, g: [(100, b"\x07")]), "malformed"),
    "schema text damaged": (
        patched(lambda d, g: [(d.index(b"CREATE TABLE stats"), b"CREATE TABLX stxts")]),
        "malformed database schema"),
    "a table's root page zeroed": (
        patched(lambda d, g: [((root_page(g, "steps") - 1) * PAGE, bytes(PAGE))]), "malformed"),
    "a table's root page random": (
        patched(lambda d, g: [((root_page(g, "stats") - 1) * PAGE, noise(PAGE, 1))]),
        "malformed"),
    "cell pointers out of range": (
        patched(lambda d, g: [((root_page(g, "scalars") - 1) * PAGE + 8, b"\xff\xf0" * 4)]),
        r"quick_check: .*out of range"),
    "cell count huge": (
        patched(lambda d, g: [((root_page(g, "params") - 1) * PAGE + 3, b"\x7f\xff")]),
        "malformed"),
    "last page random": (patched(lambda d, g: [(len(d) - PAGE, noise(PAGE, 2))]), "malformed"),
    "an SQLite file that is not a run": (new_db("CREATE TABLE t(x)", "INSERT INTO t VALUES (1)"),
                                         r"not a dlviz_gpu run file \(no such table: meta\)"),
    "meta without the other tables": (
        new_db("CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT)",
               "INSERT INTO meta VALUES ('schema_version', '1')"),
        r"not a dlviz_gpu run file \(no table 'params'\)"),
    "a run without a table": (sql("DROP TABLE histograms"), r"no table 'histograms'"),
    "a run without a column": (sql("ALTER TABLE steps DROP COLUMN recorded"),
                               r"table 'steps' has no column 'recorded'"),
    "schema version from the future": (
        sql("UPDATE meta SET value = '2' WHERE key = 'schema_version'"),
        r"written by a newer dlviz_gpu \(schema 2 > 1\); upgrade dlviz_gpu"),
    "schema version not a number": (
        sql("UPDATE meta SET value = 'one' WHERE key = 'schema_version'"),
        r"schema_version 'one'"),
    "schema version 0": (sql("UPDATE meta SET value = '0' WHERE key = 'schema_version'"),
                         r"schema_version 0; versions start at 1"),
    "no schema version": (sql("DELETE FROM meta WHERE key = 'schema_version'"),
                          "no schema_version in meta"),
    "5000-digit schema version": (
        sql("UPDATE meta SET value = '" + "9" * 5000 + "' WHERE key = 'schema_version'"),
        r"schema_version '9{30}"),
}


def assert_one_line_refusal(err, path, problem):
    text = str(err)
    assert "\n" not in text and text == f"{err.path}: {err.problem}"
    assert os.path.realpath(err.path) == os.path.realpath(path)
    assert len(text) < 600


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", list(FILE_CASES))
def test_a_damaged_or_foreign_file_is_one_refusal(good, tmp_path, case):
    make, problem = FILE_CASES[case]
    folder = tmp_path / "run"
    folder.mkdir()
    f = folder / "run.sqlite"
    make(good, f)
    before = sorted(os.listdir(folder)), f.read_bytes()
    t = time.monotonic()
    with pytest.raises(RunFileError, match=problem) as info:
        open_run(folder)
    assert time.monotonic() - t < 10                              # hang guard, not a timing
    assert_one_line_refusal(info.value, f, problem)
    if case == "schema version from the future":
        assert isinstance(info.value, SchemaVersionError)
    assert (sorted(os.listdir(folder)), f.read_bytes()) == before  # looked at, not touched
    if case == "zero-length file":
        # a writer stopped between creating the file and writing its schema: nothing to
        # lose, so a writer starts the run there
        with RunWriter(folder, mode="append") as w:
            w.write([StepRecord(step=0, time=0.0)])
        assert open_run(folder).steps().tolist() == [0]
        return
    # the writer refuses it too (not appended to, not "repaired")
    with pytest.raises(RunFileError, match=problem):
        RunWriter(folder, mode="append")
    assert f.read_bytes() == before[1]


def nonblocking(fn, timeout=20):
    """fn() on a thread; fails if it has not returned within ``timeout`` (a hang guard)."""
    out = {}

    def target():
        try:
            out["value"] = fn()
        except BaseException as e:                              # noqa: BLE001 - inspected
            out["error"] = e
    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), f"{fn} blocked"
    if "error" in out:
        raise out["error"]
    return out.get("value")


@pytest.mark.timeout(120)
def test_fifos_directories_and_devices_named_like_runs_never_block(good, tmp_path):
    fifo_dir = tmp_path / "fifo"
    fifo_dir.mkdir()
    os.mkfifo(fifo_dir / "run.sqlite")
    os.mkfifo(tmp_path / "bare.sqlite")
    (tmp_path / "dir" / "run.sqlite").mkdir(parents=True)
    for path, kind in ((fifo_dir, "a FIFO"), (tmp_path / "bare.sqlite", "a FIFO"),
                       (tmp_path / "dir", "a directory"), ("/dev/null", "a character device")):
        with pytest.raises(RunFileError, match=rf": not a regular file \({kind}\), not a run$"):
            nonblocking(lambda: open_run(path))
    # a FIFO where SQLite keeps the WAL or the shared memory of a run
    for side in ("-wal", "-shm"):
        d = tmp_path / f"side{side}"
        d.mkdir()
        shutil.copyfile(good, d / "run.sqlite")
        os.mkfifo(d / f"run.sqlite{side}")
        with pytest.raises(RunFileError, match=rf"run\.sqlite{side}: not a regular file "
                                               rf"\(a FIFO\)"):
            nonblocking(lambda: open_run(d))
        with pytest.raises(RunFileError, match=rf"run\.sqlite{side}: not a regular file"):
            nonblocking(lambda: RunWriter(d, mode="append"))
    # a FIFO named like the lock: no writer is there, and no one blocks on it
    d = tmp_path / "lockfifo"
    d.mkdir()
    shutil.copyfile(good, d / "run.sqlite")
    os.mkfifo(d / "run.sqlite.lock")
    r = nonblocking(lambda: open_run(d))
    assert nonblocking(lambda: r.live) is False and len(r) == 40
    with pytest.raises(ValueError, match=r"store: cannot write run file .*run\.sqlite: .*lock "
                                         r"is not a regular file"):
        nonblocking(lambda: RunWriter(d, mode="append"))
    r.close()
    with pytest.raises(RunNotFound, match=r": no run at .*missing \(looked for "
                                          r".*missing/run\.sqlite\)") as info:
        open_run(tmp_path / "missing")
    assert isinstance(info.value, FileNotFoundError)


def read_everything(run):
    """Every reader call the dashboard makes, on whatever the run holds."""
    out = [run.meta, run.config, run.params, run.steps(), run.steps(recorded=True),
           run.last_step, len(run), run.live, run.alerts()]
    for name in run.scalar_names():
        out.append(run.scalar(name))
    for kind in ("weight", "grad", "update"):
        for stat in STAT_NAMES:
            out.append(run.stat(stat, kind=kind))
    for col in ("norm", "ratio", "dead"):
        out.append(run.update(col))
    for p in run.params:
        for kind in ("weight", "grad"):
            out.append(run.histograms(p.id, kind))
        for stat in ("mean", "extremum"):
            for s in run.snapshot_steps(p.id, stat):
                out.append(run.snapshot(p.id, int(s), stat))
    return out


@pytest.mark.timeout(300)
def test_byte_flips_anywhere_end_in_a_run_or_one_refusal(good, tmp_path):
    """400 seeded changes of 1-8 bytes over the whole file (header, b-tree pages, records):
    either open_run refuses in one line, or every reader call returns or refuses in one line.
    A changed value inside a record is not detectable (SQLite keeps no checksums): the run
    opens with that value."""
    data = good.read_bytes()
    rng = np.random.default_rng(20261204)
    f = tmp_path / "flip.sqlite"
    outcomes = {"refused at open": 0, "refused later": 0, "read": 0}
    for k in range(400):
        d = bytearray(data)
        # half on page headers and cell pointers (structure), half anywhere
        page = int(rng.integers(0, len(d) // PAGE))
        off = page * PAGE + (100 if page == 0 else 0) + int(rng.integers(0, 24)) if k % 2 \
            else int(rng.integers(0, len(d)))
        n = int(rng.integers(1, 9))
        d[off:off + n] = noise(n, k)[:len(d) - off]
        f.write_bytes(bytes(d))
        try:
            r = open_run(f)
        except RunFileError as e:
            assert "\n" not in str(e) and str(e).startswith(f"{f}: ")
            outcomes["refused at open"] += 1
            continue
        try:
            read_everything(r)
            outcomes["read"] += 1
        except RunFileError as e:
            assert "\n" not in str(e) and str(e).startswith(f"{f}: ")
            outcomes["refused later"] += 1
        finally:
            r.close()
    print(outcomes)
    assert outcomes["refused at open"] > 100 and outcomes["read"] > 50, outcomes


# --------------------------------------------------------------------------
# a run that goes bad while it is read (the dashboard polls every 2 s)
# --------------------------------------------------------------------------

def garbage(f):
    f.write_bytes(noise(f.stat().st_size, 3))


def zero_pages(f):
    with open(f, "r+b") as fh:
        fh.seek(5 * PAGE)
        fh.write(bytes(20 * PAGE))


def fifo(f):
    f.unlink()
    os.mkfifo(f)


LATER = {
    "truncated": (lambda f: os.truncate(f, 2 * PAGE), "malformed"),
    "overwritten with garbage": (garbage, "file is not a database"),
    "pages zeroed in place": (zero_pages, "malformed"),
    "deleted": (lambda f: f.unlink(), r"the run file is gone \(deleted or moved\)"),
    "replaced by a FIFO": (fifo, r"not a regular file \(a FIFO\)"),
    "replaced by a directory": (lambda f: (f.unlink(), f.mkdir()),
                                r"not a regular file \(a directory\)"),
    "replaced by a non-run": (lambda f: (f.unlink(), new_db("CREATE TABLE t(x)")(None, f)),
                              r"no such table: meta"),
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", list(LATER))
def test_a_run_that_goes_bad_while_open_refuses_each_later_call_in_one_line(good, tmp_path,
                                                                           case):
    damage, problem = LATER[case]
    f = tmp_path / "live.sqlite"
    shutil.copyfile(good, f)
    r = open_run(f)
    read_everything(r)
    damage(f)
    for _ in range(3):                        # each poll: the same one line, no other error
        for call in (lambda: r.last_step, lambda: r.steps(), lambda: r.stat("norm"),
                     lambda: r.scalar("loss"), lambda: r.alerts(), lambda: r.meta,
                     lambda: r.histograms(0)):
            with pytest.raises(RunFileError, match=problem) as info:
                nonblocking(call)
            assert "\n" not in str(info.value) and str(info.value).startswith(f"{f}: ")
        assert nonblocking(lambda: r.live) is False
    r.close()


def test_a_run_replaced_while_open_is_read_again_and_a_restored_one_recovers(good, tmp_path):
    f = tmp_path / "r.sqlite"
    shutil.copyfile(good, f)
    r = open_run(f)
    assert len(r.params) == 2 and r.last_step == 39
    f.unlink()
    with RunWriter(f) as w:                   # mode='overwrite' does this: a new run, new inode
        w.define_params([ParamInfo("x", (3,), "float32", 3, "", False)])
        w.write([StepRecord(step=5, time=0.0, scalars={"loss": 9.0})])
    assert r.last_step == 5 and [p.name for p in r.params] == ["x"]
    assert r.scalar("loss")[1].tolist() == [9.0]
    os.truncate(f, 100)
    with pytest.raises(RunFileError, match="malformed"):
        r.steps()
    shutil.copyfile(good, f)                  # put back: the next call reads it
    assert r.last_step == 39 and len(r.params) == 2
    r.close()


# --------------------------------------------------------------------------
# reading changes nothing on disk
# --------------------------------------------------------------------------

def snapshot_of(folder):
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(pathlib.Path(folder).iterdir())}


def test_reading_a_closed_run_creates_and_changes_nothing(tmp_path):
    write_run(tmp_path / "closed", steps=5)
    before = snapshot_of(tmp_path / "closed")
    assert sorted(before) == ["run.sqlite", "run.sqlite.lock"]
    with open_run(tmp_path / "closed") as r:
        con = r._con
        read_everything(r)
        assert snapshot_of(tmp_path / "closed") == before       # no -wal, no -shm
        assert r._con is con                                    # one connection throughout
    assert snapshot_of(tmp_path / "closed") == before


def test_a_reader_of_a_closed_run_follows_a_writer_that_comes_back(tmp_path):
    write_run(tmp_path / "again", steps=3)
    r = open_run(tmp_path / "again")
    assert r.steps().tolist() == [0, 1, 2] and not r.live
    assert r.histograms("w", "grad")[0].tolist() == [0, 1, 2]
    w = RunWriter(tmp_path / "again", mode="append")
    assert r.live
    for s in (3, 4):
        w.write([record(s)])
        # the first call after the writer came back reopens the file: a view's calls work
        assert r.histograms("w", "grad")[0].tolist() == list(range(s + 1))
        assert r.last_step == s                            # each commit, as it comes
    w.write([record(10)])
    assert r.snapshot("w", 10).shape == (40, 30)
    w.close()
    assert r.steps().tolist() == [0, 1, 2, 3, 4, 10] and r.meta["status"] == "closed"
    r.close()


@pytest.fixture
def ro_tmpfs(tmp_path):
    """A tmpfs mounted for the test, to be remounted read-only (root only); always unmounted."""
    mnt = tmp_path / "ro"
    mnt.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root and mount(8)")
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)],
                       capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {p.stderr.strip()}")
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", str(mnt)], capture_output=True, timeout=60).returncode:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=60)


KILLED = r"""
import os, sys
from dlviz_gpu.watch.store import RunWriter, StepRecord
w = RunWriter(sys.argv[1])
w.write([StepRecord(step=s, time=0.0, scalars={"loss": float(s)}) for s in range(7)])
os._exit(0)            # killed: the WAL holds the steps, the file never closed
"""


@pytest.mark.timeout(120)
def test_runs_on_a_read_only_file_system_are_read(ro_tmpfs):
    write_run(ro_tmpfs / "closed", steps=4)
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for name in ("killed", "no-shm"):
        subprocess.run([sys.executable, "-c", KILLED, str(ro_tmpfs / name)], env=env,
                       check=True, timeout=120)
    assert os.path.getsize(ro_tmpfs / "killed" / "run.sqlite-wal") > 0
    os.unlink(ro_tmpfs / "no-shm" / "run.sqlite-shm")
    # a closed run copied with the empty WAL a reader left next to it
    write_run(ro_tmpfs / "empty-wal", steps=2)
    (ro_tmpfs / "empty-wal" / "run.sqlite-wal").write_bytes(b"")
    p = subprocess.run(["mount", "-o", "remount,ro", str(ro_tmpfs)], capture_output=True,
                       text=True, timeout=60)
    if p.returncode != 0:
        pytest.skip(f"cannot remount read-only: {p.stderr.strip()}")
    with pytest.raises(OSError) as info:
        (ro_tmpfs / "probe").write_text("x")
    assert info.value.errno == errno.EROFS
    dirs = ("closed", "killed", "no-shm", "empty-wal")
    before = {d: snapshot_of(ro_tmpfs / d) for d in dirs}
    with open_run(ro_tmpfs / "closed") as r:
        assert r.steps().tolist() == [0, 1, 2, 3] and r.meta["status"] == "closed"
        read_everything(r)
    with open_run(ro_tmpfs / "killed") as r:                 # its WAL is read, not replayed
        assert r.scalar("loss")[1].tolist() == [float(s) for s in range(7)]
        assert r.meta["status"] == "running" and not r.live
    with open_run(ro_tmpfs / "empty-wal") as r:               # nothing in it to miss
        con = r._con
        assert r.steps().tolist() == [0, 1] and r.last_step == 1
        assert r._con is con                               # not reopened at every call
    # steps in a WAL that SQLite cannot read here: said, not silently left out
    with pytest.raises(RunFileError, match=r"no-shm/run\.sqlite: cannot read the steps in its "
                                           r"WAL here: SQLite needs a -shm file next to the run "
                                           r"and cannot create one"):
        open_run(ro_tmpfs / "no-shm")
    assert {d: snapshot_of(ro_tmpfs / d) for d in dirs} == before
    with pytest.raises(ValueError, match=r"store: cannot write run file .*Read-only file system"):
        RunWriter(ro_tmpfs / "closed", mode="append")


# --------------------------------------------------------------------------
# the lock without fcntl (Windows), and a Windows-like lock
# --------------------------------------------------------------------------

NO_FCNTL = r"""
import sys
sys.modules["fcntl"] = None            # import fcntl raises ImportError, as on Windows
sys.modules["msvcrt"] = None           # and no Windows locking either
from dlviz_gpu.watch.store import RunWriter, StepRecord, open_run
import dlviz_gpu.watch
w = RunWriter(sys.argv[1])
w.write([StepRecord(step=0, time=0.0, scalars={"loss": 1.5})])
r = open_run(sys.argv[1])
print(r.live, end=" ")
w.close()
print(r.live, r.scalar("loss")[1].tolist())
"""


def test_the_store_imports_and_works_without_fcntl(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    p = subprocess.run([sys.executable, "-c", NO_FCNTL, str(tmp_path / "nolock")], env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["True", "False", "[1.5]"]      # 'running', then 'closed'


class FakeMsvcrt(types.ModuleType):
    """Windows' msvcrt.locking over real files: a byte lock belongs to one descriptor, and
    another descriptor's LK_NBLCK on it fails with EACCES, as LockFile does."""

    LK_UNLCK, LK_LOCK, LK_NLCK, LK_RLCK, LK_NBLCK, LK_NBRLCK = range(6)

    def __init__(self):
        super().__init__("msvcrt")
        self.held = {}

    def locking(self, fd, mode, nbytes):
        st = os.fstat(fd)
        key = (st.st_dev, st.st_ino, os.lseek(fd, 0, os.SEEK_CUR), nbytes)
        if mode == self.LK_NBLCK:
            if key in self.held:
                raise OSError(errno.EACCES, "Permission denied")
            self.held[key] = fd
        elif mode == self.LK_UNLCK:
            if self.held.get(key) != fd:
                raise OSError(errno.EACCES, "Permission denied")
            del self.held[key]
        else:
            raise AssertionError(f"the store only uses LK_NBLCK and LK_UNLCK; got {mode}")


def test_the_lock_uses_msvcrt_where_fcntl_is_missing(tmp_path, monkeypatch):
    fake = FakeMsvcrt()
    monkeypatch.setitem(sys.modules, "fcntl", None)
    monkeypatch.setitem(sys.modules, "msvcrt", fake)
    assert store_mod._lock_api() is fake
    w = RunWriter(tmp_path / "win")
    assert len(fake.held) == 1
    r = open_run(tmp_path / "win")
    assert r.live and len(fake.held) == 1                   # the probe found it taken
    # another process's writer (here: another descriptor, the registry bypassed)
    fd = os.open(store_mod.lock_path(w.path), os.O_RDWR)
    try:
        assert store_mod.try_lock(fd) is False
    finally:
        os.close(fd)
    with pytest.raises(RunLockedError, match="already being written"):
        RunWriter(tmp_path / "win", mode="append")
    w.close()
    assert fake.held == {} and not r.live and fake.held == {}   # the probe let it go
    with RunWriter(tmp_path / "win", mode="append") as w2:
        w2.write([StepRecord(step=1, time=0.0)])
    assert fake.held == {} and r.steps().tolist() == [1]
    r.close()
