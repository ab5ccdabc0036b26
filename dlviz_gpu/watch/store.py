"""The run store of the training watch: one SQLite file per run, written by :class:`RunWriter`, read by :class:`Run`.

>>> with RunWriter("runs/exp1", config={"every": 1, "bins": 64}) as w:
...     w.define_params([ParamInfo("fc.weight", (10, 5), "float32", 50, "fc", False, 10, 5)])
...     w.write([StepRecord(step=0, time=time.time(), scalars={"loss": 2.3})])
>>> run = open_run("runs/exp1")                # while training writes, or afterwards
>>> steps, loss = run.scalar("loss")
>>> steps, gnorm = run.stat("norm", kind="grad")   # (P, T): parameters x recorded steps

Only the standard library (``sqlite3``; ``fcntl`` or ``msvcrt`` when a lock is taken) and
NumPy are imported.

Files and locking
-----------------
``store`` is a run *directory* (the file is ``<store>/run.sqlite``; the writer
creates the directory, the reader never does) or, when its name ends in
``.sqlite`` or ``.db``, the file itself.  The writer holds an exclusive lock
on the side file ``<file>.lock`` for its whole life (``flock`` on POSIX,
``msvcrt.locking`` of its first byte on Windows, looked up when first
needed, so that importing this module works everywhere; a platform with
neither records without the cross-process check); the operating system
releases it when the process ends, by SIGKILL too, so a killed run can be
appended to at once.  The side file is left in place (removing it would race
with a writer that is taking it).  A second writer, in another process or in
this one, gets :class:`RunLockedError`.  Readers take no lock;
:attr:`Run.live` says whether a writer holds it.

The writer uses ``journal_mode=WAL``, ``synchronous=NORMAL`` and a 5000 ms
``busy_timeout``: readers never block the writer nor see a half written
batch; each :meth:`RunWriter.write` is one transaction, and a committed
transaction survives the writing process being killed (only an
operating-system crash or power loss may lose the last ones).  The reader
opens the file read-only and every query reads the file's current state, so
a live run's new steps appear on the next call.  Reading changes nothing on
disk: a run with a WAL (being written, or killed) is read through SQLite's
read-only mode, sharing the -wal and -shm that are there; a run without one
(closed) is opened ``immutable``, which creates no -wal/-shm file and takes
no lock (so a closed run is read also from a read-only folder or file
system), and is reopened as soon as a writer comes back or the file changes.

When a write fails
------------------
A transaction that cannot be written (SQLite's "database or disk is full",
ENOSPC, EDQUOT, EFBIG under ``RLIMIT_FSIZE``, an I/O error, a file that
became read-only) is rolled back as a whole and raised as
:class:`RunWriteError` (an ``OSError``, ``"PATH: cannot write: what SQLite
said (its code); N bytes free on its file system"``): the file keeps every
transaction committed before, stays readable, and the writer can go on when
room is made.  :meth:`RunWriter.close` releases the lock and the connection
whatever happens; when the ``'closed'`` mark itself cannot be written it
raises :class:`RunWriteError` afterwards and the run reads as a killed one
(``status`` ``'running'``, no writer).  The training watch never lets these
reach a training loop: it stops recording, stores an alert and warns once
(:mod:`dlviz_gpu.watch.recorder`).

Damaged and foreign files
-------------------------
:func:`open_run` refuses, with one :class:`RunFileError` (a ``ValueError``;
``"PATH: problem"`` on one line), every file it cannot read as a run: not
SQLite (truncated, random bytes, a damaged header), damaged pages (SQLite's
``PRAGMA quick_check`` runs on files up to :data:`QUICK_CHECK_MAX_BYTES`, and
on the small tables of larger ones), an SQLite file that is not a run or
lacks a table or column, a missing, unreadable or too new ``schema_version``
(:class:`SchemaVersionError`, a kind of it), an empty file, and anything that
is not a regular file (a FIFO, a directory, a device: looked at with
``stat``, never opened, so nothing blocks); no run at the path is
:class:`RunNotFound` (also a ``FileNotFoundError``).  Later calls of a
:class:`Run` raise the same error when the file goes bad, disappears or is
replaced by something that is not a run while it is read (the dashboard
polls it); a file replaced by another run is read afresh.  Values of a
damaged file that are not what the schema says (a text step, a blob of the
wrong length) are refused the same way; a changed value inside a record
cannot be told (SQLite keeps no checksums) and is read as it is.

Schema, version 1
-----------------
Units: times are Unix seconds (UTC); counts are element counts; every REAL
column may hold SQLite's +Inf / -Inf; NaN is stored as NULL and read back as
NaN.  ``param`` columns are ``params.id``; ``kind`` columns are 0 weight, 1
gradient, 2 update (``w_t - w_(t-1)``), see :data:`KINDS`.  Rows are keyed
so that writing the same key again replaces the row (a step written twice
keeps the union of its keys, the later values winning).  The key orders
follow the reads: ``stats`` and ``updates`` by step (every parameter over a
range of steps), ``histograms`` and ``snapshots`` by parameter (one
parameter's blobs over all steps, without reading the others'), ``scalars``
by name.

``meta(key TEXT PRIMARY KEY, value TEXT)``
    ``schema_version`` (decimal integer), ``created`` and ``closed`` (ISO
    8601 UTC), ``dlviz_version``, ``status`` (``'running'`` or
    ``'closed'``; a killed run stays ``'running'`` with no writer holding
    the lock) are plain text.  Every other key holds JSON text: ``config``
    (an object: ``every``, ``bins``, ``snapshot_every``, ``dead_after``,
    model and optimizer class, anything the recorder passes) and whatever
    :meth:`RunWriter.set_meta` stores.
``params(id INTEGER PRIMARY KEY, name TEXT UNIQUE, shape TEXT, dtype TEXT, numel INTEGER, layer TEXT, frozen INTEGER, rows INTEGER, cols INTEGER)``
    One row per parameter; ``id`` 0..P-1 in the order the recorder gave
    them (the row index of every per-parameter array).  ``shape`` is a JSON
    list, ``dtype`` the tensor's dtype name (``'float32'``, ``'bfloat16'``),
    ``layer`` the layer it belongs to, ``frozen`` 1 for a parameter without
    ``requires_grad``; ``rows``, ``cols`` the 2-D view drawn for snapshots
    (``dv.as_matrix``), NULL for a parameter that is not drawn as a matrix.
``steps(step INTEGER PRIMARY KEY, time REAL, recorded INTEGER)``
    One row per logged step: its wall-clock ``time`` and ``recorded`` 1 when
    tensors were recorded at it (stats, updates, histograms), else 0.
``scalars(name TEXT, step INTEGER, value REAL, PRIMARY KEY(name, step)) WITHOUT ROWID``
    Logged scalars (loss, learning rate, ...); ``value`` NULL = NaN.
``stats(step INTEGER, param INTEGER, kind INTEGER, numel INTEGER, mean REAL, std REAL, norm REAL, min REAL, max REAL, maxabs REAL, zeros INTEGER, nan INTEGER, posinf INTEGER, neginf INTEGER, PRIMARY KEY(step, param, kind)) WITHOUT ROWID``
    Per recorded step, parameter and kind, the columns of
    :data:`STAT_NAMES`: ``numel`` all elements; ``mean``, ``std``
    (population), ``norm`` (Frobenius, sqrt of the sum of squares), ``min``,
    ``max``, ``maxabs`` (max |v|) over the *finite* elements (NULL when there
    is none); ``zeros`` elements exactly 0 (a count, not a fraction);
    ``nan``, ``posinf``, ``neginf`` non-finite element counts.  No row: not
    recorded (no gradient at that step, a frozen parameter's gradient).
``updates(step INTEGER, param INTEGER, norm REAL, ratio REAL, dead INTEGER, PRIMARY KEY(step, param)) WITHOUT ROWID``
    ``norm`` = ``||w_t - w_prev||`` (w_prev: the weight before this step's
    optimizer update), ``ratio`` = ``norm / ||w_t||``, ``dead`` = units
    (rows of the weight matrix) whose gradient was all zeros on each of the
    last ``dead_after`` recorded steps.  Any may be NULL (not measured).
``histograms(param INTEGER, kind INTEGER, step INTEGER, lo REAL, hi REAL, counts BLOB, PRIMARY KEY(param, kind, step)) WITHOUT ROWID``
    Exact histogram of the weight (kind 0) or gradient (kind 1): ``counts``
    holds B int64 little-endian values, the counts of B equal-width bins
    over ``[lo, hi]`` (edge k = ``lo + k * (hi - lo) / B``; bin k holds
    ``e_k <= v < e_(k+1)``, the last bin includes ``hi``).  The recorder
    takes ``[lo, hi]`` = [finite min, finite max] of the tensor at that step,
    widened to ``[v - 0.5, v + 0.5]`` when only one distinct value is
    present (a reader meeting ``lo == hi`` widens it the same way), so every
    finite element is in a bin; its NaN/inf counts are in ``stats``.  ``lo``
    and ``hi`` NULL: no finite element (all counts 0).
``snapshots(param INTEGER, stat TEXT, step INTEGER, height INTEGER, width INTEGER, data BLOB, PRIMARY KEY(param, stat, step)) WITHOUT ROWID``
    A fixed-size raster of a weight matrix (``'mean'`` or ``'extremum'``
    per pixel, from ``dv.rasterize``): ``data`` is height x width float32
    little-endian, row-major, row 0 = the matrix's row 0.
``alerts(id INTEGER PRIMARY KEY, step INTEGER, param INTEGER, kind TEXT, message TEXT)``
    Things a person should see (non-finite loss, NaN/inf in a tensor):
    ``param`` NULL when the alert is not about a parameter; ``kind`` a short
    tag (``'nonfinite_scalar'``, ``'nonfinite_grad'``, ...), ``message``
    the sentence to show.

Versioning
    :data:`SCHEMA_VERSION` is bumped whenever a table or column is removed
    or renamed or a column's meaning or encoding changes; readers and writers
    refuse a file whose ``schema_version`` is newer than theirs
    (:class:`SchemaVersionError`), and read older versions they know.
    Adding a table, a column or a meta key that older readers can ignore
    keeps the version.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import difflib
import errno
import json
import math
import numbers
import os
import pathlib
import re
import sqlite3
import stat as _stat
import threading
import time
import urllib.parse
import weakref

import numpy as np

__all__ = ["SCHEMA_VERSION", "STAT_NAMES", "NSTATS", "KINDS", "UPDATE_COLUMNS", "SNAPSHOT_STATS",
           "MODES", "ParamInfo", "StepRecord", "RunWriter", "Run", "open_run", "run_file",
           "RunLockedError", "RunFileError", "RunNotFound", "SchemaVersionError",
           "RunWriteError"]

#: The schema this module writes and the newest one it reads.
SCHEMA_VERSION = 1
#: The columns of ``stats`` (the last axis of :attr:`StepRecord.stats`).
STAT_NAMES = ("numel", "mean", "std", "norm", "min", "max", "maxabs", "zeros", "nan", "posinf",
              "neginf")
NSTATS = len(STAT_NAMES)
#: ``kind`` 0, 1, 2.
KINDS = ("weight", "grad", "update")
#: The value columns of ``updates`` (the last axis of :attr:`StepRecord.updates`).
UPDATE_COLUMNS = ("norm", "ratio", "dead")
#: The snapshot rasters the recorder stores.
SNAPSHOT_STATS = ("mean", "extremum")
#: :class:`RunWriter` modes.
MODES = ("new", "append", "overwrite")

BUSY_TIMEOUT_MS = 5000
# how long a new writer retries a lock that a reader's `live` probe holds for a moment
_LOCK_RETRY_S = 0.5
_PLAIN_META = ("schema_version", "created", "closed", "dlviz_version", "status")
_INT_STATS = frozenset(("numel", "zeros", "nan", "posinf", "neginf"))
_FILE_SUFFIXES = (".sqlite", ".db")

_DDL = f"""
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS params(id INTEGER PRIMARY KEY, name TEXT UNIQUE, shape TEXT,
    dtype TEXT, numel INTEGER, layer TEXT, frozen INTEGER, rows INTEGER, cols INTEGER);
CREATE TABLE IF NOT EXISTS steps(step INTEGER PRIMARY KEY, time REAL, recorded INTEGER);
CREATE TABLE IF NOT EXISTS scalars(name TEXT, step INTEGER, value REAL,
    PRIMARY KEY(name, step)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS stats(step INTEGER, param INTEGER, kind INTEGER,
    {", ".join(f"{n} {'INTEGER' if n in _INT_STATS else 'REAL'}" for n in STAT_NAMES)},
    PRIMARY KEY(step, param, kind)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS updates(step INTEGER, param INTEGER, norm REAL, ratio REAL,
    dead INTEGER, PRIMARY KEY(step, param)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS histograms(param INTEGER, kind INTEGER, step INTEGER, lo REAL,
    hi REAL, counts BLOB, PRIMARY KEY(param, kind, step)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS snapshots(param INTEGER, stat TEXT, step INTEGER, height INTEGER,
    width INTEGER, data BLOB, PRIMARY KEY(param, stat, step)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS alerts(id INTEGER PRIMARY KEY, step INTEGER, param INTEGER,
    kind TEXT, message TEXT);
"""

_SQL_STEPS = ("INSERT INTO steps(step, time, recorded) VALUES (?, ?, ?) ON CONFLICT(step) DO "
              "UPDATE SET time = excluded.time, recorded = max(recorded, excluded.recorded)")
_SQL_SCALARS = "INSERT OR REPLACE INTO scalars(name, step, value) VALUES (?, ?, ?)"
_SQL_STATS = (f"INSERT OR REPLACE INTO stats(param, kind, step, {', '.join(STAT_NAMES)}) "
              f"VALUES ({', '.join('?' * (3 + NSTATS))})")
_SQL_UPDATES = ("INSERT OR REPLACE INTO updates(param, step, norm, ratio, dead) "
                "VALUES (?, ?, ?, ?, ?)")
_SQL_HIST = ("INSERT OR REPLACE INTO histograms(param, kind, step, lo, hi, counts) "
             "VALUES (?, ?, ?, ?, ?, ?)")
_SQL_SNAP = ("INSERT OR REPLACE INTO snapshots(param, stat, step, height, width, data) "
             "VALUES (?, ?, ?, ?, ?, ?)")
_SQL_ALERT = "INSERT INTO alerts(step, param, kind, message) VALUES (?, ?, ?, ?)"

_INT64_MIN = -(1 << 63)

# (resolved path of the run file) -> the open RunWriter of this process holding its lock
_WRITERS: "weakref.WeakValueDictionary[str, RunWriter]" = weakref.WeakValueDictionary()
_WRITERS_LOCK = threading.Lock()
# connections inherited by a forked child: kept, never used nor closed there
_FORKED: list = []


def _after_fork_in_child() -> None:
    """A forked child (a DataLoader worker) must not keep the parent's run locked.

    The flock belongs to the open file description the child shares with the
    parent; closing the child's descriptor drops only its reference, so the
    lock goes when the parent closes or dies, not when the last worker does.
    """
    for w in list(_WRITERS.values()):
        if w._lock_fd is not None:
            try:
                os.close(w._lock_fd)
            except OSError:
                pass
            w._lock_fd = None
        if w._con is not None:
            _FORKED.append(w._con)
            w._con = None
        w._closed = True
    _WRITERS.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class RunLockedError(RuntimeError):
    """Another writer (another process, or another :class:`RunWriter` here) holds the run."""


class RunFileError(ValueError):
    """A run file that cannot be read: not SQLite, damaged, not a run, gone; one line.

    The message is ``"PATH: problem"``, on one line, whatever the damage.

    Attributes
    ----------
    path : str
        The file at fault.
    problem : str
        What is wrong with it, without the path.
    """

    def __init__(self, path, problem: str):
        self.path = os.fspath(path)
        self.problem = " ".join(str(problem).split())        # one line, whatever SQLite said
        super().__init__(f"{self.path}: {self.problem}")

    def __reduce__(self):
        return type(self), (self.path, self.problem)


class RunNotFound(RunFileError, FileNotFoundError):
    """No run at the path (also a ``FileNotFoundError``)."""


class SchemaVersionError(RunFileError):
    """The run file was written with a newer schema than this dlviz_gpu knows."""


class RunWriteError(OSError):
    """A write to the run file failed (the disk is full, an I/O error); nothing of it is kept.

    The transaction that failed is rolled back as a whole: the file holds
    what was committed before it, and stays readable.

    Attributes
    ----------
    path : str
        The run file.
    problem : str
        What SQLite or the operating system said, with the free space where known.
    """

    def __init__(self, path, problem: str):
        self.path = os.fspath(path)
        self.problem = " ".join(str(problem).split())
        super().__init__(f"{self.path}: cannot write: {self.problem}")

    def __reduce__(self):
        return type(self), (self.path, self.problem)


# --------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------

@dataclasses.dataclass
class ParamInfo:
    """One recorded parameter (a row of ``params``).

    Parameters
    ----------
    name : str
        The parameter's qualified name (``"encoder.0.weight"``); unique.
    shape : tuple of int
    dtype : str
        Its dtype name (``"float32"``).
    numel : int
    layer : str
        The layer it belongs to (for grouping in the views).
    frozen : bool
        True for a parameter without ``requires_grad``.
    rows, cols : int or None
        The 2-D view drawn for snapshots; None for a non-matrix.
    id : int or None
        Its row index in every per-parameter array, filled in by the store.
    """

    name: str
    shape: tuple
    dtype: str
    numel: int
    layer: str
    frozen: bool
    rows: int | None = None
    cols: int | None = None
    id: int | None = None


@dataclasses.dataclass
class StepRecord:
    """What one logged step stores; P = the number of defined parameters.

    Parameters
    ----------
    step : int
    time : float
        Unix seconds.
    scalars : dict of str to float
        Logged scalars (NaN and +-inf allowed).
    recorded : bool
        True when tensors were recorded at this step.
    stats : (P, 3, NSTATS) float64 ndarray or None
        :data:`STAT_NAMES` per parameter and kind (weight, grad, update); an
        all-NaN (parameter, kind) row is absent and writes no row.
    updates : (P, 3) float64 ndarray or None
        Update norm, ratio and dead units (:data:`UPDATE_COLUMNS`); an all-NaN
        row writes no row.
    hist_counts : (P, 2, B) int64 ndarray or None
        Weight and gradient histogram counts.
    hist_range : (P, 2, 2) float64 ndarray or None
        Their ``lo, hi`` (NaN: no finite value).  A (parameter, kind) gets a
        row when its range is finite, or its counts are not all 0, or its
        ``stats`` row is present (a tensor without finite values: lo NULL).
    snapshots : list of (int, str, (h, w) ndarray)
        ``(param_index, stat, raster)``; stat ``"mean"`` or ``"extremum"``.
    alerts : list of (int or None, str, str)
        ``(param_index or None, kind, message)``.
    """

    step: int
    time: float
    scalars: dict = dataclasses.field(default_factory=dict)
    recorded: bool = False
    stats: np.ndarray | None = None
    updates: np.ndarray | None = None
    hist_counts: np.ndarray | None = None
    hist_range: np.ndarray | None = None
    snapshots: list = dataclasses.field(default_factory=list)
    alerts: list = dataclasses.field(default_factory=list)


# --------------------------------------------------------------------------
# Paths, connections, helpers
# --------------------------------------------------------------------------

def run_file(store) -> pathlib.Path:
    """The SQLite file of a run: ``store`` itself if it ends in .sqlite/.db, else ``store/run.sqlite``.

    Parameters
    ----------
    store : str or os.PathLike

    Returns
    -------
    pathlib.Path
    """
    if not isinstance(store, (str, os.PathLike)):
        raise TypeError(f"store: expected a path (str or os.PathLike); got "
                        f"{type(store).__name__}")
    p = pathlib.Path(store).expanduser()
    if str(p) in ("", "."):
        raise ValueError(f"store: expected a run directory or a .sqlite/.db file; got {store!r}")
    if p.suffix.lower() in _FILE_SUFFIXES:
        return p
    return p / "run.sqlite"


def _lock_path(path: pathlib.Path) -> pathlib.Path:
    return path.with_name(path.name + ".lock")


def _side(path: pathlib.Path, suffix: str) -> pathlib.Path:
    return path.with_name(path.name + suffix)


# Open flags that exist only on some platforms (Windows has neither).
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)


def _lock_api():
    """This platform's file-lock module: ``fcntl`` (POSIX), ``msvcrt`` (Windows) or None.

    Looked up at each use, not at import: importing the store must work on a
    platform without ``fcntl``.
    """
    try:
        import fcntl
        return fcntl
    except ImportError:
        pass
    try:
        import msvcrt
        return msvcrt
    except ImportError:
        return None


def _try_lock(fd: int, shared: bool = False):
    """Take the run's lock on ``fd`` without waiting.

    Returns
    -------
    True (taken), False (another holder has it) or None (this platform cannot lock files).

    Notes
    -----
    POSIX: ``flock``, exclusive for the writer, shared for a reader's probe;
    the operating system drops it when the process ends, by SIGKILL too.
    Windows: ``msvcrt.locking`` of the file's first byte, which has no shared
    form, so a reader's probe holds it exclusively for a moment (the writer
    retries for :data:`_LOCK_RETRY_S`); Windows too drops it with the process.
    """
    api = _lock_api()
    if api is None:
        return None
    if hasattr(api, "flock"):
        try:
            api.flock(fd, (api.LOCK_SH if shared else api.LOCK_EX) | api.LOCK_NB)
        except BlockingIOError:
            return False
        return True
    os.lseek(fd, 0, os.SEEK_SET)
    try:
        api.locking(fd, api.LK_NBLCK, 1)
    except OSError:                  # EACCES / EDEADLOCK: the byte is locked elsewhere
        return False
    return True


def _unlock(fd: int) -> None:
    api = _lock_api()
    if api is None:
        return
    if hasattr(api, "flock"):
        api.flock(fd, api.LOCK_UN)
    else:
        os.lseek(fd, 0, os.SEEK_SET)
        api.locking(fd, api.LK_UNLCK, 1)


def _now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _dlviz_version() -> str:
    try:
        from .. import __version__
        return str(__version__)
    except Exception:  # pragma: no cover - a partial install
        return "unknown"


def _pragmas(con: sqlite3.Connection, wal: bool) -> None:
    con.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    if wal:
        con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _schema_columns() -> dict:
    """{table: (column, ...)} of schema :data:`SCHEMA_VERSION`, read from :data:`_DDL` itself."""
    con = sqlite3.connect(":memory:")
    try:
        con.executescript(_DDL)
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                            "ORDER BY rowid")]
        return {t: tuple(r[1] for r in con.execute(f"PRAGMA table_info({t})")) for t in tables}
    finally:
        con.close()


#: The tables and columns a run file must hold (what a reader queries).
_COLUMNS = _schema_columns()


def _read_version(con: sqlite3.Connection, path) -> int:
    """schema_version of an open file; RunFileError if it is not a run."""
    try:
        row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    except sqlite3.DatabaseError as e:
        raise RunFileError(path, f"not a dlviz_gpu run file ({e})") from None
    if row is None:
        raise RunFileError(path, "not a dlviz_gpu run file (no schema_version in meta)")
    return _read_version_value(row[0], path)


def _read_version_value(v, path) -> int:
    """The stored ``schema_version`` text as an int >= 1; RunFileError if it is not one."""
    if isinstance(v, str) and re.fullmatch(r"\s*[0-9]{1,9}\s*", v):
        version = int(v)
    elif _is_int(v) and 0 <= v < 10 ** 9:
        version = int(v)
    else:
        raise RunFileError(path, f"not a dlviz_gpu run file (schema_version {v!r:.40})")
    if version < 1:
        raise RunFileError(path, f"not a dlviz_gpu run file (schema_version {version}; versions "
                                 f"start at 1)")
    return version


def _check_version(version: int, path) -> None:
    if version > SCHEMA_VERSION:
        raise SchemaVersionError(
            path, f"run file written by a newer dlviz_gpu (schema {version} > "
                  f"{SCHEMA_VERSION}); upgrade dlviz_gpu to read or write it")


def _check_tables(con: sqlite3.Connection, path) -> None:
    """Every table and column of the schema is there (a run, not another SQLite file)."""
    try:
        for table, columns in _COLUMNS.items():
            have = {r[1] for r in con.execute(f"PRAGMA table_info({table})")}
            if not have:
                raise RunFileError(path, f"not a dlviz_gpu run file (no table {table!r})")
            missing = [c for c in columns if c not in have]
            if missing:
                raise RunFileError(path, f"not a dlviz_gpu run file (table {table!r} has no "
                                         f"column {', '.join(map(repr, missing))})")
    except sqlite3.DatabaseError as e:
        raise RunFileError(path, f"not a dlviz_gpu run file ({e})") from None


#: Files up to this size (the file and its -wal together) are checked with SQLite's
#: ``PRAGMA quick_check`` when opened: it reads every page (0.08-0.11 s for a 186 MB run
#: from the page cache on the 2-core dev VM; a cold disk is slower).  Larger runs get the
#: check of their small tables only, and any damage elsewhere is refused by the query that
#: meets it.
QUICK_CHECK_MAX_BYTES = 64 << 20
# the tables checked in a large file (a few pages each, read by every view)
_SMALL_TABLES = ("meta", "params", "steps", "alerts")


def _quick_check(con: sqlite3.Connection, path, nbytes: int) -> None:
    """SQLite's structural check of the file (all of it when small); RunFileError if damaged."""
    try:
        if nbytes <= QUICK_CHECK_MAX_BYTES:
            rows = con.execute("PRAGMA quick_check").fetchall()
        elif sqlite3.sqlite_version_info >= (3, 33, 0):      # quick_check(TABLE)
            rows = []
            for t in _SMALL_TABLES:
                rows += [r for r in con.execute(f"PRAGMA quick_check({t})").fetchall()
                         if r[0] != "ok"]
            rows = rows or [("ok",)]
        else:                                                # pragma: no cover - old SQLite
            return
    except sqlite3.DatabaseError as e:
        raise RunFileError(path, f"damaged SQLite file ({e})") from None
    if rows != [("ok",)]:
        first = str(rows[0][0])
        more = f" (and {len(rows) - 1} more problems)" if len(rows) > 1 else ""
        raise RunFileError(path, f"damaged SQLite file (quick_check: {first:.200}{more})")


def _validate(con: sqlite3.Connection, path, nbytes: int) -> int:
    """Check an open file is a run this module can read; its schema version."""
    version = _read_version(con, path)
    _check_version(version, path)
    _check_tables(con, path)
    _quick_check(con, path, nbytes)
    return version


def _file_bytes(path: pathlib.Path) -> int:
    """The run file's size with its -wal (what a full check reads)."""
    n = 0
    for p in (path, _side(path, "-wal")):
        try:
            n += os.stat(p).st_size
        except OSError:
            pass
    return n


def _write_problem(e: BaseException, path: pathlib.Path) -> str:
    """What a failed write said, with what is known of the space left (for the message)."""
    name = getattr(e, "sqlite_errorname", None)
    text = f"{e} ({name})" if name else (getattr(e, "strerror", None) or str(e))
    facts = []
    try:
        vfs = os.statvfs(path.parent)
        facts.append(f"{vfs.f_bavail * vfs.f_frsize:,} bytes free on its file system")
    except (AttributeError, OSError):     # statvfs is POSIX-only
        pass
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        if soft != resource.RLIM_INFINITY:
            facts.append(f"this process may write files of at most {soft:,} bytes "
                         f"(RLIMIT_FSIZE)")
    except (ImportError, AttributeError, OSError, ValueError):
        pass
    return text + (f"; {'; '.join(facts)}" if facts else "")


def _is_io_error(e: BaseException) -> bool:
    """A failure of the file (full, I/O, read-only, locked), not of the data written."""
    if isinstance(e, OSError):
        return True
    if not isinstance(e, sqlite3.DatabaseError):
        return False
    # constraint, binding and API errors are bugs in what was written, not of the file
    return not isinstance(e, (sqlite3.IntegrityError, sqlite3.ProgrammingError,
                              sqlite3.InterfaceError, sqlite3.DataError,
                              sqlite3.NotSupportedError))


def _as_object_rows(values: np.ndarray) -> np.ndarray:
    """float array -> object array of Python floats with NaN as None (SQLite NULL)."""
    obj = values.astype(object)
    obj[np.isnan(values)] = None
    return obj


def _ints_object(values) -> np.ndarray:
    return np.asarray(values, np.int64).astype(object)


def _check_side_files(path: pathlib.Path) -> None:
    """The -wal and -shm next to a run file are regular files or absent.

    SQLite would open a FIFO or a device there and block on it, or map it.
    """
    for suffix in ("-wal", "-shm"):
        side = _side(path, suffix)
        try:
            st = os.stat(side)
        except FileNotFoundError:
            continue
        except OSError as e:
            raise RunFileError(side, f"cannot read: {e.strerror or e}") from None
        if not _stat.S_ISREG(st.st_mode):
            raise RunFileError(side, f"not a regular file ({_file_kind(st.st_mode)}); SQLite "
                                     f"keeps the run's {suffix[1:].upper()} here")


def _file_kind(mode: int) -> str:
    for test, name in ((_stat.S_ISDIR, "a directory"), (_stat.S_ISFIFO, "a FIFO"),
                       (_stat.S_ISSOCK, "a socket"), (_stat.S_ISCHR, "a character device"),
                       (_stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "not a regular file"


# --------------------------------------------------------------------------
# The writer
# --------------------------------------------------------------------------

class RunWriter:
    """Writes one run's SQLite file; holds its lock until :meth:`close`.

    Parameters
    ----------
    store : str or os.PathLike
        A run directory (created if needed; the file is ``run.sqlite`` in it)
        or a ``.sqlite``/``.db`` file.
    config : dict, optional
        JSON-able settings stored as ``meta['config']`` (kept from the file
        when None and appending).
    mode : {"new", "append", "overwrite"}
        ``"new"`` refuses a file that already holds steps; ``"append"`` keeps
        what is there (steps written again replace their rows);
        ``"overwrite"`` deletes the file (and its -wal/-shm) first.

    Attributes
    ----------
    path : pathlib.Path
        The run file.

    Raises
    ------
    ValueError
        The file cannot be written (a parent that is a file, no permission,
        no room for the schema), ``mode`` unknown, ``mode="new"`` and the file
        holds steps.
    RunFileError
        An existing file that is not a run or is damaged (``"new"``,
        ``"append"``; a ``ValueError`` too).
    SchemaVersionError
        The file was written with a newer schema (``"new"``, ``"append"``).
    RunLockedError
        Another writer holds the run.

    Notes
    -----
    Writes that fail (a full disk) raise :class:`RunWriteError` and leave the
    file as it was before them (see the module docstring).

    Notes
    -----
    Thread-safe: created on one thread, used from another (the recorder's
    background thread); every call takes an internal lock.
    """

    def __init__(self, store, *, config: dict | None = None, mode: str = "new"):
        if mode not in MODES:
            raise ValueError(f"mode: expected one of {', '.join(map(repr, MODES))}; got {mode!r}")
        if config is not None and not isinstance(config, dict):
            raise TypeError(f"config: expected a dict or None; got {type(config).__name__}")
        config_json = None if config is None else self._json("config", config)
        self.path = run_file(store)
        self._lock = threading.RLock()
        self._con: sqlite3.Connection | None = None
        self._lock_fd: int | None = None
        self._closed = True
        self._params: list[ParamInfo] | None = None
        self._bins: int | None = None
        self.mode = mode

        # 1. the directory can be created and the file's lock can be written
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not self.path.parent.is_dir():
                raise NotADirectoryError(errno.ENOTDIR, "not a directory", str(self.path.parent))
            fd = os.open(_lock_path(self.path), os.O_RDWR | os.O_CREAT | _O_CLOEXEC | _O_NONBLOCK,
                         0o644)
            if not _stat.S_ISREG(os.fstat(fd).st_mode):
                os.close(fd)
                raise OSError(errno.EINVAL, f"{_lock_path(self.path)} is not a regular file")
        except OSError as e:
            raise ValueError(f"store: cannot write run file {self.path}: "
                             f"{e.strerror or e}") from None
        # 2. one writer at a time
        try:
            self._take_lock(fd)
        except BaseException:
            os.close(fd)
            raise
        self._lock_fd = fd
        try:
            self._open(mode, config_json)
        except BaseException:
            self._release()
            raise
        self._closed = False

    # -- opening --------------------------------------------------------
    def _take_lock(self, fd: int) -> None:
        key = str(self.path.resolve())
        with _WRITERS_LOCK:
            other = _WRITERS.get(key)
            if other is not None and not other._closed:
                raise RunLockedError(
                    f"store: run file {self.path} is already being written by another RunWriter "
                    f"in this process; close it first or choose another store")
        deadline = time.monotonic() + _LOCK_RETRY_S
        while True:
            try:
                taken = _try_lock(fd)
            except OSError as e:            # a file system without locks (some network mounts)
                raise ValueError(f"store: cannot lock run file {self.path} "
                                 f"({_lock_path(self.path)}): {e.strerror or e}") from None
            if taken is not False:          # True, or None: this platform cannot lock files
                break
            # a reader's `live` probe holds the lock for microseconds: retry briefly
            if time.monotonic() >= deadline:
                raise RunLockedError(
                    f"store: run file {self.path} is being written by another process (its "
                    f"lock {_lock_path(self.path)} is held); stop that writer or choose "
                    f"another store")
            time.sleep(0.02)
        with _WRITERS_LOCK:
            _WRITERS[key] = self
        self._key = key

    def _open(self, mode: str, config_json: str | None) -> None:
        path = self.path
        exists = path.exists()
        if exists and mode != "overwrite":
            if not path.is_file():
                raise ValueError(f"store: cannot write run file {path}: not a regular file")
            _check_side_files(path)
            if path.stat().st_size == 0:
                # an empty file (a writer stopped between creating it and writing the schema)
                nsteps = 0
            else:
                con = self._connect_existing()
                try:
                    _validate(con, path, _file_bytes(path))
                    nsteps = con.execute("SELECT count(*) FROM steps").fetchone()[0]
                except sqlite3.DatabaseError as e:
                    raise RunFileError(path, f"not a dlviz_gpu run file ({e})") from None
                finally:
                    con.close()
            if mode == "new" and nsteps:
                raise ValueError(
                    f"store: {path} already holds a run ({nsteps} steps); pass mode='append' to "
                    f"add to it or mode='overwrite' to replace it (modes: "
                    f"{', '.join(MODES)}), or choose another store")
            if mode == "new":      # an empty run left by a writer that never wrote: start afresh
                mode = "overwrite"
        if mode == "overwrite":
            for p in (path, path.with_name(path.name + "-wal"),
                      path.with_name(path.name + "-shm")):
                try:
                    p.unlink()
                except FileNotFoundError:
                    pass
                except OSError as e:
                    raise ValueError(f"store: cannot write run file {path}: "
                                     f"{e.strerror or e}") from None
        try:
            con = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        except sqlite3.Error as e:
            raise ValueError(f"store: cannot write run file {path}: {e}") from None
        try:
            _pragmas(con, wal=True)
            con.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as e:
            con.close()
            raise ValueError(f"store: cannot write run file {path}: {e}") from None
        try:
            for stmt in _DDL.split(";"):
                if stmt.strip():
                    con.execute(stmt)
            meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
            # (schema 1 is the only one so far; a later version appending to an older file
            # must migrate it here before stamping its own version)
            new = {"schema_version": str(SCHEMA_VERSION), "dlviz_version": _dlviz_version(),
                   "status": "running"}
            if "created" not in meta:
                new["created"] = _now_iso()
            if config_json is not None or "config" not in meta:
                new["config"] = config_json if config_json is not None else "{}"
            con.executemany("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
                            list(new.items()))
            con.execute("DELETE FROM meta WHERE key = 'closed'")
            con.execute("COMMIT")
        except sqlite3.Error as e:
            try:
                con.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            con.close()
            raise ValueError(f"store: cannot write run file {path}: {e}") from None
        self._con = con
        rows = con.execute("SELECT id, name, shape, dtype, numel, layer, frozen, rows, cols "
                           "FROM params ORDER BY id").fetchall()
        if rows:
            self._params = [_param_from_row(r) for r in rows]
        row = con.execute("SELECT length(counts) FROM histograms LIMIT 1").fetchone()
        if row is not None and row[0]:
            self._bins = row[0] // 8

    def _connect_existing(self) -> sqlite3.Connection:
        try:
            con = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
            con.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        except sqlite3.Error as e:
            raise RunFileError(self.path, f"not a dlviz_gpu run file ({e})") from None
        return con

    # -- public ---------------------------------------------------------
    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._closed

    @property
    def params(self) -> list[ParamInfo] | None:
        """The defined parameters (with ids), or None before :meth:`define_params`."""
        return None if self._params is None else list(self._params)

    def define_params(self, params) -> None:
        """Store the recorded parameters; their ids are the list order 0..P-1.

        Parameters
        ----------
        params : sequence of ParamInfo
            Each one's ``id`` is set in place.  Appending to a run (or calling
            this again) requires the same names in the same order.

        Raises
        ------
        TypeError
            An item is not a ParamInfo.
        ValueError
            Duplicate or empty names; names that differ from the ones the run
            already holds.
        """
        params = list(params)
        for i, p in enumerate(params):
            if not isinstance(p, ParamInfo):
                raise TypeError(f"params[{i}]: expected a ParamInfo; got {type(p).__name__}")
            if not isinstance(p.name, str) or not p.name:
                raise ValueError(f"params[{i}].name: expected a non-empty str; got {p.name!r}")
        names = [p.name for p in params]
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"params: expected unique names; repeated: {', '.join(dup)}")
        with self._lock:
            self._check_open()
            if self._params is not None:
                old = [p.name for p in self._params]
                if old != names:
                    gone = [n for n in old if n not in names]
                    added = [n for n in names if n not in old]
                    detail = (f"missing {gone[:5]}" if gone else "") + \
                        (f" new {added[:5]}" if added else "") or "same names, another order"
                    raise ValueError(
                        f"params: the run {self.path} holds {len(old)} parameters and these "
                        f"{len(names)} differ ({detail.strip()}); record a different model "
                        f"into another store or use mode='overwrite'")
            rows = []
            for i, p in enumerate(params):
                p.id = i
                rows.append((i, p.name, json.dumps([int(s) for s in p.shape]), str(p.dtype),
                             int(p.numel), str(p.layer), int(bool(p.frozen)),
                             None if p.rows is None else int(p.rows),
                             None if p.cols is None else int(p.cols)))
            self._transaction(lambda con: con.executemany(
                "INSERT OR REPLACE INTO params(id, name, shape, dtype, numel, layer, frozen, "
                "rows, cols) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows))
            self._params = [dataclasses.replace(p) for p in params]

    def write(self, records) -> None:
        """Write a batch of steps as one transaction, committed when this returns.

        Parameters
        ----------
        records : sequence of StepRecord

        Raises
        ------
        TypeError, ValueError
            A record of the wrong type or with arrays of the wrong shape
            (nothing of the batch is written).
        RunWriteError
            The file could not take the transaction (a full disk, an I/O
            error): nothing of the batch is written, the file is as before.
        """
        if isinstance(records, StepRecord):
            records = [records]
        records = list(records)
        P = 0 if self._params is None else len(self._params)
        batch = _Batch()
        bins = self._bins
        for i, rec in enumerate(records):
            batch.add(rec, i, P, self._params is not None)
            if rec.hist_counts is not None:
                B = np.shape(rec.hist_counts)[-1]
                if bins is not None and B != bins:
                    raise ValueError(f"records[{i}].hist_counts: this run's histograms have "
                                     f"{bins} bins; got {B}")
                bins = B
        if not records:
            return
        with self._lock:
            self._check_open()
            self._transaction(batch.execute)
            self._bins = bins

    def set_meta(self, **values) -> None:
        """Store extra run metadata (JSON-able values; ``meta[key] = json.dumps(value)``).

        ``schema_version``, ``created``, ``closed``, ``dlviz_version`` and
        ``status`` are the store's own and cannot be set.
        """
        bad = [k for k in values if k in _PLAIN_META]
        if bad:
            raise ValueError(f"set_meta: {', '.join(bad)} belong to the store and cannot be set")
        rows = [(k, self._json(k, v)) for k, v in values.items()]
        if not rows:
            return
        with self._lock:
            self._check_open()
            self._transaction(lambda con: con.executemany(
                "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", rows))

    def write_alert(self, step: int, kind: str, message: str, param: int | None = None) -> None:
        """Store one alert (a row of ``alerts``) and nothing else, as one transaction.

        The watch uses it to say, in the run itself, that recording stopped
        (no ``steps`` row is added for ``step``).

        Raises
        ------
        RunWriteError
            It could not be written (the file is as before).
        """
        if not _is_int(step):
            raise TypeError(f"step: expected an int; got {step!r}")
        P = 0 if self._params is None else len(self._params)
        if param is not None and (not _is_int(param) or not 0 <= param < P):
            raise ValueError(f"param: expected None or an index in [0, {P}); got {param!r}")
        row = (int(step), None if param is None else int(param), str(kind), str(message))
        with self._lock:
            self._check_open()
            self._transaction(lambda con: con.execute(_SQL_ALERT, row))

    def checkpoint(self) -> bool:
        """Fold the committed transactions of the WAL into the file, where no reader prevents it.

        After a write failed for lack of space this can free room: the WAL
        starts again from its beginning once folded (a file-size limit, a
        quota that counts the WAL).  True when the whole WAL was folded.
        Never raises for a failure of the file (the WAL keeps every commit).
        """
        with self._lock:
            if self._closed:
                return False
            try:
                busy, _, _ = self._con.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            except sqlite3.Error:
                return False
            return not busy

    def close(self) -> None:
        """Mark the run closed, fold the WAL into the file and release the lock (idempotent).

        The lock and the connection are released whatever happens; a run whose
        closing could not be written (a full disk) stays ``'running'`` with
        every step committed before, like a killed run.

        Raises
        ------
        RunWriteError
            Marking the run closed failed (after releasing it).
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            def mark(con):
                con.executemany("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
                                [("status", "closed"), ("closed", _now_iso())])

            try:
                try:
                    self._transaction(mark)
                except RunWriteError:
                    # folding the WAL in lets it start again from its beginning: room for
                    # the mark under a file-size limit (on a full disk the fold finds none)
                    try:
                        busy, _, _ = self._con.execute(
                            "PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    except sqlite3.Error:
                        busy = 1
                    if busy:
                        raise
                    self._transaction(mark)
                try:
                    self._con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                except sqlite3.Error:      # a reader in the middle of a read, a full disk: fine
                    pass
            finally:
                self._release()

    def __enter__(self) -> "RunWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self.close()
        except RunWriteError:
            if exc_type is None:
                raise
            # the block's own exception is the one to see; this one would replace it

    def __repr__(self) -> str:
        return f"RunWriter({str(self.path)!r}, {'closed' if self._closed else 'open'})"

    # -- internals ------------------------------------------------------
    def _release(self) -> None:
        if self._con is not None:
            try:
                self._con.close()
            except sqlite3.Error:
                pass
            self._con = None
        if self._lock_fd is not None:
            with _WRITERS_LOCK:
                if _WRITERS.get(getattr(self, "_key", None)) is self:
                    del _WRITERS[self._key]
            try:
                _unlock(self._lock_fd)
            except OSError:
                pass
            finally:
                os.close(self._lock_fd)
                self._lock_fd = None

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"RunWriter for {self.path} is closed")

    def _transaction(self, fn) -> None:
        """``fn(con)`` as one transaction: all of it committed, or none of it.

        A failure of the file (SQLITE_FULL, an I/O error, ...) becomes
        :class:`RunWriteError`; SQLite may already have rolled the
        transaction back itself (it does on SQLITE_FULL), so the rollback here
        is only for one still open.
        """
        con = self._con
        try:
            con.execute("BEGIN IMMEDIATE")
            try:
                fn(con)
                con.execute("COMMIT")
            except BaseException:
                if con.in_transaction:
                    try:
                        con.execute("ROLLBACK")
                    except sqlite3.Error:     # the connection is gone: SQLite rolls back
                        pass
                raise
        except (sqlite3.Error, OSError) as e:
            if not _is_io_error(e):
                raise
            raise RunWriteError(self.path, _write_problem(e, self.path)) from e

    @staticmethod
    def _json(key: str, value) -> str:
        try:
            return json.dumps(value, default=_json_default)
        except (TypeError, ValueError) as e:
            raise TypeError(f"{key}: expected JSON-able values; {e}") from None

    def __del__(self):
        # a writer dropped without close(): release the lock, keep status 'running'
        try:
            if not self._closed:
                self._closed = True
                self._release()
        except Exception:
            pass


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (tuple, set, frozenset)):
        return list(o)
    return str(o)


class _Batch:
    """Rows of a batch of StepRecords, validated and laid out for executemany."""

    def __init__(self):
        self.steps = []
        self.scalars = []
        self.stats = []          # object arrays (n, 3 + NSTATS)
        self.updates = []        # object arrays (n, 5)
        self.hists = []
        self.snaps = []
        self.alerts = []

    def add(self, rec, i: int, P: int, defined: bool) -> None:
        where = f"records[{i}]"
        if not isinstance(rec, StepRecord):
            raise TypeError(f"{where}: expected a StepRecord; got {type(rec).__name__}")
        if not _is_int(rec.step) or not _INT64_MIN <= int(rec.step) < (1 << 63):
            raise TypeError(f"{where}.step: expected an int; got {rec.step!r}")
        step = int(rec.step)
        try:
            t = float(rec.time)
        except (TypeError, ValueError):
            raise TypeError(f"{where}.time: expected Unix seconds (float); got "
                            f"{rec.time!r}") from None
        self.steps.append((step, None if math.isnan(t) else t, int(bool(rec.recorded))))
        if not isinstance(rec.scalars, dict):
            raise TypeError(f"{where}.scalars: expected a dict of name -> float; got "
                            f"{type(rec.scalars).__name__}")
        for name, v in rec.scalars.items():
            if not isinstance(name, str) or not name:
                raise TypeError(f"{where}.scalars: expected non-empty str names; got {name!r}")
            try:
                v = float(v)
            except (TypeError, ValueError):
                raise TypeError(f"{where}.scalars[{name!r}]: expected a float; got "
                                f"{v!r}") from None
            self.scalars.append((name, step, None if math.isnan(v) else v))
        arrays = [("stats", (3, NSTATS)), ("updates", (len(UPDATE_COLUMNS),)),
                  ("hist_counts", None), ("hist_range", (2, 2))]
        if not defined and any(getattr(rec, a) is not None for a, _ in arrays):
            raise ValueError(f"{where}: per-parameter arrays before define_params()")
        if rec.stats is not None:
            s = self._array(rec.stats, f"{where}.stats", (P, 3, NSTATS), np.float64)
            present = ~np.isnan(s).all(axis=-1)                       # (P, 3)
            p, k = np.nonzero(present)
            rows = np.empty((len(p), 3 + NSTATS), object)
            rows[:, 0] = _ints_object(p)
            rows[:, 1] = _ints_object(k)
            rows[:, 2] = step
            rows[:, 3:] = _as_object_rows(s[p, k])
            self.stats.append(rows)
        if rec.updates is not None:
            u = self._array(rec.updates, f"{where}.updates", (P, len(UPDATE_COLUMNS)),
                            np.float64)
            (p,) = np.nonzero(~np.isnan(u).all(axis=-1))
            rows = np.empty((len(p), 2 + len(UPDATE_COLUMNS)), object)
            rows[:, 0] = _ints_object(p)
            rows[:, 1] = step
            rows[:, 2:] = _as_object_rows(u[p])
            self.updates.append(rows)
        if (rec.hist_counts is None) != (rec.hist_range is None):
            raise ValueError(f"{where}: hist_counts and hist_range go together; got only "
                             f"{'hist_counts' if rec.hist_range is None else 'hist_range'}")
        if rec.hist_counts is not None:
            c = np.asarray(rec.hist_counts)
            if c.ndim != 3 or c.shape[:2] != (P, 2) or c.shape[2] < 1:
                raise ValueError(f"{where}.hist_counts: expected shape ({P}, 2, B); got "
                                 f"{c.shape}")
            if c.dtype.kind not in "iu":
                raise TypeError(f"{where}.hist_counts: expected integer counts; got dtype "
                                f"{c.dtype}")
            c = np.ascontiguousarray(c, "<i8")
            r = self._array(rec.hist_range, f"{where}.hist_range", (P, 2, 2), np.float64)
            keep = ~np.isnan(r).all(axis=-1) | (c != 0).any(axis=-1)
            if rec.stats is not None:
                keep |= present[:, :2]
            p, k = np.nonzero(keep)
            lo = _as_object_rows(r[p, k, 0])
            hi = _as_object_rows(r[p, k, 1])
            for j in range(len(p)):
                self.hists.append((int(p[j]), int(k[j]), step, lo[j], hi[j],
                                   c[p[j], k[j]].tobytes()))
        for j, item in enumerate(rec.snapshots or ()):
            try:
                pi, stat, arr = item
            except (TypeError, ValueError):
                raise TypeError(f"{where}.snapshots[{j}]: expected (param_index, stat, "
                                f"array); got {item!r:.80}") from None
            if not _is_int(pi) or not 0 <= pi < P:
                raise ValueError(f"{where}.snapshots[{j}]: param index must be in [0, {P}); "
                                 f"got {pi!r}")
            if not isinstance(stat, str) or not stat:
                raise TypeError(f"{where}.snapshots[{j}]: stat must be a str; got {stat!r}")
            a = np.asarray(arr)
            if a.ndim != 2 or a.dtype.kind not in "fiub":
                raise ValueError(f"{where}.snapshots[{j}]: expected a 2-D numeric array; got "
                                 f"{a.dtype} {a.shape}")
            a = np.ascontiguousarray(a, "<f4")
            self.snaps.append((int(pi), stat, step, a.shape[0], a.shape[1], a.tobytes()))
        for j, item in enumerate(rec.alerts or ()):
            try:
                pi, kind, message = item
            except (TypeError, ValueError):
                raise TypeError(f"{where}.alerts[{j}]: expected (param_index or None, kind, "
                                f"message); got {item!r:.80}") from None
            if pi is not None and (not _is_int(pi) or not 0 <= pi < P):
                raise ValueError(f"{where}.alerts[{j}]: param index must be None or in "
                                 f"[0, {P}); got {pi!r}")
            self.alerts.append((step, None if pi is None else int(pi), str(kind), str(message)))

    @staticmethod
    def _array(a, name, shape, dtype) -> np.ndarray:
        a = np.asarray(a)
        if a.shape != shape:
            raise ValueError(f"{name}: expected shape {shape}; got {a.shape}")
        if a.dtype.kind not in "fiub":
            raise TypeError(f"{name}: expected a numeric array; got dtype {a.dtype}")
        return a.astype(dtype, copy=False)

    def execute(self, con: sqlite3.Connection) -> None:
        con.executemany(_SQL_STEPS, self.steps)
        if self.scalars:
            con.executemany(_SQL_SCALARS, self.scalars)
        if self.stats:
            con.executemany(_SQL_STATS, np.concatenate(self.stats).tolist())
        if self.updates:
            con.executemany(_SQL_UPDATES, np.concatenate(self.updates).tolist())
        if self.hists:
            con.executemany(_SQL_HIST, self.hists)
        if self.snaps:
            con.executemany(_SQL_SNAP, self.snaps)
        if self.alerts:
            con.executemany(_SQL_ALERT, self.alerts)


def _param_from_row(r, strict: bool = False) -> ParamInfo:
    """A ParamInfo from a ``params`` row; ``strict`` checks every value's type (a reader of
    a file that may be damaged): TypeError / ValueError when one is wrong."""
    if strict:
        shape = json.loads(r[2]) if isinstance(r[2], str) else None
        if not isinstance(shape, list) or not all(_is_int(d) for d in shape):
            raise ValueError(f"shape {r[2]!r:.40} is not a JSON list of ints")
        for name, v, none_ok in (("id", r[0], False), ("numel", r[4], False),
                                 ("frozen", r[6], False), ("rows", r[7], True),
                                 ("cols", r[8], True)):
            if not (_is_int(v) or (none_ok and v is None)):
                raise TypeError(f"{name} {v!r:.40} is not an int")
        for name, v in (("name", r[1]), ("dtype", r[3]), ("layer", r[5])):
            if not isinstance(v, str):
                raise TypeError(f"{name} {v!r:.40} is not text")
    return ParamInfo(name=r[1], shape=tuple(json.loads(r[2])), dtype=r[3], numel=int(r[4]),
                     layer=r[5], frozen=bool(r[6]), rows=r[7], cols=r[8], id=int(r[0]))


# --------------------------------------------------------------------------
# The reader
# --------------------------------------------------------------------------

def _exists(p: pathlib.Path) -> bool:
    """Whether anything is at p (stat only; a FIFO is not opened)."""
    try:
        os.stat(p)
    except (OSError, ValueError):
        return False
    return True


def _wal_state(f: pathlib.Path):
    """(size, mtime) of the run's -wal, None when there is none (a writer makes one)."""
    try:
        st = os.stat(_side(f, "-wal"))
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def _file_state(f: pathlib.Path) -> tuple:
    """(device, inode, size, mtime) of a run file that is a regular file; RunFileError if not."""
    try:
        st = os.stat(f)
    except FileNotFoundError:
        raise RunNotFound(f, "the run file is gone (deleted or moved)") from None
    except OSError as e:
        raise RunFileError(f, f"cannot read: {e.strerror or e}") from None
    if not _stat.S_ISREG(st.st_mode):
        raise RunFileError(f, f"not a regular file ({_file_kind(st.st_mode)}), not a run")
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def _float_column(values) -> np.ndarray:
    """A list of REAL-or-None -> float64 array with None as NaN (vectorised)."""
    if not values:
        return np.empty(0)
    a = np.array(values, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError("a value that is not a number")
    return a


def _int_column(values) -> np.ndarray:
    """A list of INTEGER -> int64 array; TypeError for anything else (a damaged file's text,
    blob, real or NULL step)."""
    if not len(values):
        return np.empty(0, np.int64)
    a = np.array(values)                   # Python ints -> int64; anything else -> not "i"
    if a.ndim != 1 or a.dtype.kind != "i":
        bad = next((v for v in values if type(v) is not int), values[0])
        raise TypeError(f"{bad!r:.40} where an integer step belongs")
    return a.astype(np.int64, copy=False)


class Run:
    """A recorded run, read while it is written or afterwards.

    Parameters
    ----------
    path : str or os.PathLike
        The run directory or its SQLite file.

    Attributes
    ----------
    path : pathlib.Path
        The SQLite file.
    name : str
        The run directory's name (the file's stem for a bare file).
    schema_version : int

    Raises
    ------
    RunNotFound
        No run there (a ``FileNotFoundError``).
    RunFileError
        A file that is not a run, a damaged one, or not a regular file (a
        ``ValueError``; one line, ``"PATH: problem"``); later calls raise it
        when the file goes bad or disappears while it is read.
    SchemaVersionError
        A run written by a newer dlviz_gpu (a kind of RunFileError).

    Notes
    -----
    Every query reads the file's current state in one read transaction
    (consistent even while a batch is being committed) and returns NumPy
    arrays.  ``since`` arguments keep steps ``>= since``.  A Run may be used
    from several threads.
    """

    def __init__(self, path):
        if isinstance(path, Run):
            path = path.path
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path: expected a run directory or file (str or os.PathLike); got "
                            f"{type(path).__name__}")
        p = pathlib.Path(path).expanduser()
        # lstat-free checks that never open the path: a FIFO must not block us
        f = p / "run.sqlite" if p.is_dir() else (p if _exists(p) else run_file(p))
        if not _exists(f):
            raise RunNotFound(path, f"no run at {path} (looked for {f})")
        self.path = f
        self.name = f.parent.name if f.name == "run.sqlite" else f.stem
        self._lock = threading.RLock()
        self._con = None
        self._params: list[ParamInfo] | None = None
        self._names: dict[str, int] = {}
        self.schema_version = self._connect()

    def _connect(self) -> int:
        """Open (or reopen) the file read-only and check it is a run; its schema version.

        A run with a WAL (being written, or killed) is read through SQLite's
        read-only mode, which shares the writer's -shm and sees each commit.
        A run without one (closed, or never written in WAL mode) is opened
        ``immutable``: SQLite then creates no -wal/-shm file next to it and
        takes no lock, so reading changes nothing on disk, also in a folder or
        on a file system that cannot be written.  :meth:`_refresh` reopens it
        when a writer comes back (a WAL appears) or the file changes.
        """
        f = self.path
        state = _file_state(f)
        if state[2] == 0:
            raise RunFileError(f, "not a dlviz_gpu run file (an empty file)")
        _check_side_files(f)
        wal_path = _side(f, "-wal")
        wal = os.path.exists(wal_path)
        try:
            con = self._open_sqlite(immutable=not wal)
        except sqlite3.OperationalError as e:
            name = getattr(e, "sqlite_errorname", "") or ""
            if not (wal and name.startswith(("SQLITE_CANTOPEN", "SQLITE_READONLY"))):
                raise RunFileError(f, f"cannot open ({e})") from None
            # SQLite reads a WAL through a -shm file next to the run; where none can be made
            # (a read-only folder) an empty WAL holds nothing, and one with steps cannot be read
            if os.path.getsize(wal_path) != 0:
                raise RunFileError(f, f"cannot read the steps in its WAL here: SQLite needs a "
                                      f"-shm file next to the run and cannot create one ({e}); "
                                      f"copy the run folder somewhere writable") from None
            wal = False
            try:
                con = self._open_sqlite(immutable=True)
            except sqlite3.DatabaseError as e2:
                raise RunFileError(f, f"not a dlviz_gpu run file ({e2})") from None
        except sqlite3.DatabaseError as e:
            raise RunFileError(f, f"not a dlviz_gpu run file ({e})") from None
        try:
            version = _validate(con, f, _file_bytes(f))
        except sqlite3.DatabaseError as e:
            con.close()
            raise RunFileError(f, f"not a dlviz_gpu run file ({e})") from None
        except BaseException:
            con.close()
            raise
        old, self._con = self._con, con
        if old is not None:
            old.close()
        self._state = state
        self._wal_state = _wal_state(f)
        self._immutable = not wal
        return version

    def _open_sqlite(self, immutable: bool) -> sqlite3.Connection:
        """A read-only connection that has read the schema (so SQLite's own errors show here)."""
        uri = "file:" + urllib.parse.quote(str(self.path.resolve())) + \
            ("?mode=ro&immutable=1" if immutable else "?mode=ro")
        con = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        try:
            con.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            con.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except BaseException:
            con.close()
            raise
        return con

    def _refresh(self) -> None:
        """Before a read: the file is still there, still the one opened; reopen it if not.

        Raises RunFileError when it is gone or no longer a run.  A file
        replaced by another run (``mode='overwrite'``) is reopened, and so is
        an ``immutable`` connection whose file gained a WAL or changed.
        """
        state = _file_state(self.path)
        if self._immutable:
            stale = state != self._state or _wal_state(self.path) != self._wal_state
        else:
            stale = state[:2] != self._state[:2]
        if stale:
            self.schema_version = self._connect()
            self._params, self._names = None, {}     # another file, or the same one rewritten

    # -- plumbing -------------------------------------------------------
    def _read(self, fn):
        """Run fn(con) inside one read transaction (a consistent snapshot).

        Any failure of the file (damaged, gone, replaced by something that is
        not a run, locked past the busy timeout) is a :class:`RunFileError`.
        """
        with self._lock:
            if self._con is None:
                raise ValueError(f"Run {self.path} is closed")
            try:
                self._refresh()
                con = self._con
                con.execute("BEGIN")
                try:
                    return fn(con)
                finally:
                    if con.in_transaction:
                        con.execute("COMMIT")
            except sqlite3.Error as e:
                raise RunFileError(self.path, f"cannot read the run ({e})") from None

    def _query(self, sql, args=()):
        return self._read(lambda con: con.execute(sql, args).fetchall())

    @contextlib.contextmanager
    def _decoding(self, what: str):
        """Values of the file that are not what the schema says become a RunFileError.

        Only around the turning of rows into arrays, never around argument
        checks (their errors are the caller's).
        """
        try:
            yield
        except RunFileError:
            raise
        except (TypeError, ValueError, OverflowError, IndexError, AttributeError) as e:
            raise RunFileError(self.path, f"damaged run: {what} holds values of the wrong type "
                                          f"({type(e).__name__}: {e})") from None

    @staticmethod
    def _since(since) -> int:
        if since is None:
            return _INT64_MIN
        if not _is_int(since):
            raise TypeError(f"since: expected an int step or None; got {since!r}")
        return int(since)

    # -- run-level ------------------------------------------------------
    @property
    def meta(self) -> dict:
        """The run's metadata, read now: plain strings for the store's keys (schema_version an
        int), parsed JSON for the others (``meta['config']`` is a dict)."""
        out = {}
        for k, v in self._query("SELECT key, value FROM meta"):
            if k == "schema_version":
                out[k] = _read_version_value(v, self.path)
            elif k in _PLAIN_META:
                out[k] = v
            else:
                try:
                    out[k] = json.loads(v)
                except (TypeError, ValueError, RecursionError):
                    out[k] = v
        return out

    @property
    def config(self) -> dict:
        """``meta['config']``."""
        cfg = self.meta.get("config")
        return cfg if isinstance(cfg, dict) else {}

    @property
    def live(self) -> bool:
        """True while a writer holds the run's lock (a process recording it now).

        On a platform without file locks, True while the run is marked
        ``'running'``.
        """
        try:
            fd = os.open(_lock_path(self.path), os.O_RDONLY | _O_CLOEXEC | _O_NONBLOCK)
        except OSError:
            return False
        try:
            if not _stat.S_ISREG(os.fstat(fd).st_mode):
                return False                 # a FIFO or device named like the lock: no writer
            taken = _try_lock(fd, shared=True)
            if taken is None:
                return self.meta.get("status") == "running"
            if taken:
                _unlock(fd)
            return not taken
        except OSError:
            return False
        finally:
            os.close(fd)

    @property
    def params(self) -> list[ParamInfo]:
        """The recorded parameters, in id order (empty before the writer defines them)."""
        self._load_params()
        return list(self._params or [])

    def _load_params(self) -> None:
        if self._params:
            return
        rows = self._query("SELECT id, name, shape, dtype, numel, layer, frozen, rows, cols "
                           "FROM params ORDER BY id")
        with self._decoding("params"):
            params = [_param_from_row(r, strict=True) for r in rows]
        if [p.id for p in params] != list(range(len(params))):
            raise RunFileError(self.path, "damaged run: the parameter ids are not 0..P-1")
        names = {p.name: p.id for p in params}
        if len(names) != len(params):
            raise RunFileError(self.path, "damaged run: two parameters have the same name")
        self._params, self._names = params, names

    def param_index(self, name_or_id) -> int:
        """The id of a parameter given by name or id.

        Raises
        ------
        KeyError
            No such parameter (the message lists close names).
        TypeError
            Neither a str nor an int.
        """
        self._load_params()
        P = len(self._params or [])
        if _is_int(name_or_id):
            i = int(name_or_id)
            if 0 <= i < P:
                return i
            raise KeyError(f"param: no parameter with id {i}; ids are 0..{P - 1}" if P else
                           f"param: no parameter with id {i}; the run has no parameters yet")
        if not isinstance(name_or_id, str):
            raise TypeError(f"param: expected a parameter name (str) or id (int); got "
                            f"{type(name_or_id).__name__}")
        i = self._names.get(name_or_id)
        if i is not None:
            return i
        close = difflib.get_close_matches(name_or_id, list(self._names), n=5, cutoff=0.5)
        hint = f"; close names: {', '.join(close)}" if close else \
            (f"; names: {', '.join(list(self._names)[:8])}{', ...' if P > 8 else ''}" if P
             else "; the run has no parameters yet")
        raise KeyError(f"param: no parameter named {name_or_id!r}{hint}")

    def steps(self, recorded: bool | None = None) -> np.ndarray:
        """(N,) int64 logged steps, ascending; ``recorded=True`` only those with tensors,
        ``False`` only those without."""
        if recorded is None:
            rows = self._query("SELECT step FROM steps ORDER BY step")
        else:
            rows = self._query("SELECT step FROM steps WHERE recorded = ? ORDER BY step",
                               (int(bool(recorded)),))
        with self._decoding("steps"):
            return _int_column([r[0] for r in rows])

    @property
    def last_step(self) -> int | None:
        """The highest logged step, None before the first."""
        v = self._query("SELECT max(step) FROM steps")[0][0]
        if v is not None and not _is_int(v):
            raise RunFileError(self.path, f"damaged run: steps holds a step {v!r:.40}")
        return v

    def __len__(self) -> int:
        """The number of logged steps."""
        return self._query("SELECT count(*) FROM steps")[0][0]

    # -- scalars --------------------------------------------------------
    def scalar_names(self) -> list[str]:
        """Names of the logged scalars, sorted."""
        def fn(con):
            names, cur = [], con.execute("SELECT min(name) FROM scalars").fetchone()[0]
            while cur is not None:            # skip-scan of the (name, step) key
                names.append(cur)
                cur = con.execute("SELECT min(name) FROM scalars WHERE name > ?",
                                  (cur,)).fetchone()[0]
            return names
        names = self._read(fn)
        if not all(isinstance(n, str) for n in names):
            raise RunFileError(self.path, "damaged run: scalars holds a name that is not text")
        return names

    def scalar(self, name: str, since: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(steps (N,) int64, values (N,) float64) of one scalar; NaN where NaN was logged.

        Raises
        ------
        KeyError
            A scalar never logged (the message names the known ones).
        """
        if not isinstance(name, str):
            raise TypeError(f"name: expected a scalar name (str); got {type(name).__name__}")
        lo = self._since(since)

        def fn(con):
            rows = con.execute("SELECT step, value FROM scalars WHERE name = ? AND step >= ? "
                               "ORDER BY step", (name, lo)).fetchall()
            known = bool(rows) or con.execute("SELECT 1 FROM scalars WHERE name = ? LIMIT 1",
                                              (name,)).fetchone() is not None
            return rows, known
        rows, known = self._read(fn)
        if not known:
            names = self.scalar_names()
            raise KeyError(f"name: no scalar {name!r} in run {self.name}; known scalars: "
                           f"{', '.join(names) if names else 'none yet'}")
        if not rows:
            return np.empty(0, np.int64), np.empty(0)
        steps, values = zip(*rows)
        with self._decoding(f"scalar {name!r}"):
            return _int_column(steps), _float_column(values)

    # -- per-parameter series ------------------------------------------
    def _matrix(self, sql_rows, table_cond, args, column: str, since):
        """(steps (T,), (P, T)) from `SELECT param, step, column` rows over the recorded steps."""
        lo = self._since(since)
        self._load_params()
        P = len(self._params or [])

        def fn(con):
            steps = con.execute("SELECT step FROM steps WHERE recorded = 1 AND step >= ? "
                                "ORDER BY step", (lo,)).fetchall()
            if not P:
                return steps, []
            rows = con.execute(f"SELECT param, step, {column} FROM {sql_rows} WHERE step >= ? "
                               f"{table_cond}", (lo, *args)).fetchall()
            return steps, rows
        steps, rows = self._read(fn)
        with self._decoding(sql_rows):
            steps = _int_column([s[0] for s in steps])
            if not rows:
                return steps, np.full((P, len(steps)), np.nan)
            a = np.array(rows, dtype=np.float64)              # NULL (None) -> NaN
            if a.ndim != 2 or not np.isfinite(a[:, :2]).all():
                raise ValueError("a parameter id or step that is not a number")
            p = a[:, 0].astype(np.int64)
            s = a[:, 1].astype(np.int64)
            v = a[:, 2]
            if np.abs(a[:, 1]).max() >= 2.0 ** 53:           # steps beyond float64's integers
                s = _int_column([r[1] for r in rows])
        ok = (p >= 0) & (p < P)
        p, s, v = p[ok], s[ok], v[ok]
        steps = np.union1d(steps, s)        # a row at a step not flagged recorded still shows
        out = np.full((P, len(steps)), np.nan)
        out[p, np.searchsorted(steps, s)] = v
        return steps, out

    def stat(self, name: str, kind: str = "grad", since: int | None = None):
        """One statistic of every parameter over the recorded steps.

        Parameters
        ----------
        name : str
            One of :data:`STAT_NAMES`.
        kind : {"weight", "grad", "update"}
        since : int, optional
            Only steps >= since.

        Returns
        -------
        steps : (T,) int64 ndarray
            The recorded steps (ascending).
        values : (P, T) float64 ndarray
            ``values[param_id, t]``; NaN where absent (no gradient, not
            recorded, no finite element).
        """
        if name not in STAT_NAMES:
            raise ValueError(f"name: expected one of {', '.join(STAT_NAMES)}; got {name!r}")
        k = self._kind(kind, KINDS)
        return self._matrix("stats", "AND kind = ?", (k,), name, since)

    def update(self, column: str = "ratio", since: int | None = None):
        """The update norm, ratio or dead units of every parameter over the recorded steps.

        Parameters
        ----------
        column : {"norm", "ratio", "dead"}
        since : int, optional

        Returns
        -------
        steps : (T,) int64 ndarray
        values : (P, T) float64 ndarray
            NaN where not measured.
        """
        if column not in UPDATE_COLUMNS:
            raise ValueError(f"column: expected one of {', '.join(UPDATE_COLUMNS)}; got "
                             f"{column!r}")
        return self._matrix("updates", "", (), column, since)

    @staticmethod
    def _kind(kind, allowed) -> int:
        if kind not in allowed:
            raise ValueError(f"kind: expected one of {', '.join(map(repr, allowed))}; got "
                             f"{kind!r}")
        return allowed.index(kind)

    def histograms(self, param, kind: str = "grad", since: int | None = None):
        """One parameter's stored histograms over the steps, stacked.

        Parameters
        ----------
        param : str or int
            Name or id.
        kind : {"weight", "grad"}
        since : int, optional

        Returns
        -------
        steps : (T,) int64 ndarray
        hist : dlviz_gpu.Histogram
            ``counts`` (T, B), ``edges`` (T, B + 1) (each step's own range),
            ``nan``/``posinf``/``neginf`` (T,) from ``stats`` (0 where
            absent).  A step without a finite element has all-zero counts
            over [-0.5, 0.5].  ``names`` are ``"step N"``.
        """
        from ..histograms import Histogram

        i = self.param_index(param)
        p = self._params[i]              # (the read below may reopen a changed file)
        k = self._kind(kind, KINDS[:2])
        lo_step = self._since(since)

        def fn(con):
            # one range of the (param, kind, step) key, and a key lookup into stats per step
            return con.execute(
                "SELECT h.step, h.lo, h.hi, h.counts, s.nan, s.posinf, s.neginf "
                "FROM histograms AS h LEFT JOIN stats AS s "
                "ON s.step = h.step AND s.param = h.param AND s.kind = h.kind "
                "WHERE h.param = ? AND h.kind = ? AND h.step >= ? ORDER BY h.step",
                (i, k, lo_step)).fetchall()
        rows = self._read(fn)
        T = len(rows)
        with self._decoding(f"histograms of {p.name}"):
            if T:
                steps = _int_column([r[0] for r in rows])
                lo = _float_column([r[1] for r in rows])
                hi = _float_column([r[2] for r in rows])
                if not all(isinstance(r[3], bytes) for r in rows):
                    raise TypeError("counts that are not a blob")
                B = len(rows[0][3]) // 8
                if B < 1 or any(len(r[3]) != 8 * B for r in rows):
                    raise RunFileError(self.path, f"damaged run: histograms of {p.name} have "
                                                  f"different or no bin counts over the steps")
                blob = b"".join(r[3] for r in rows)
                counts = np.frombuffer(blob, "<i8").reshape(T, B).astype(np.int64)
            else:
                steps = np.empty(0, np.int64)
                B = self.config.get("bins", 1)
                B = int(B) if _is_int(B) and 0 < B < 1 << 20 else 1
                lo = hi = np.empty(0)
                counts = np.zeros((0, B), np.int64)
            edges = _edges(lo, hi, B)
            # NULL (no stats row) -> 0
            special = np.nan_to_num(np.array([r[4:] for r in rows], np.float64).reshape(T, 3),
                                    nan=0.0, posinf=0.0, neginf=0.0)
            # (a damaged file's count beyond int64 is cut, not cast into garbage)
            nan, posinf, neginf = np.clip(special, -2.0 ** 62, 2.0 ** 62).astype(np.int64).T
            return steps, Histogram(counts, edges, nan=nan, posinf=posinf, neginf=neginf,
                                    names=[f"step {s}" for s in steps], dtypes=p.dtype)

    # -- snapshots and alerts ------------------------------------------
    def snapshot_steps(self, param, stat: str | None = None) -> np.ndarray:
        """(N,) int64 steps with a stored snapshot of ``param`` (of ``stat``, or any)."""
        i = self.param_index(param)
        if stat is None:
            rows = self._query("SELECT DISTINCT step FROM snapshots WHERE param = ? "
                               "ORDER BY step", (i,))
        else:
            rows = self._query("SELECT step FROM snapshots WHERE param = ? AND stat = ? "
                               "ORDER BY step", (i, stat))
        with self._decoding("snapshots"):
            return _int_column([r[0] for r in rows])

    def snapshot(self, param, step: int, stat: str = "mean") -> np.ndarray:
        """(h, w) float32 raster of ``param`` stored at ``step`` (row 0 = matrix row 0).

        Raises
        ------
        KeyError
            No such snapshot (the message names the nearest stored steps).
        """
        i = self.param_index(param)
        pname = self._params[i].name
        if not _is_int(step):
            raise TypeError(f"step: expected an int; got {step!r}")
        rows = self._query("SELECT height, width, data FROM snapshots WHERE param = ? AND "
                           "stat = ? AND step = ?", (i, stat, int(step)))
        if not rows:
            have = self.snapshot_steps(i, stat)
            near = have[np.argsort(np.abs(have - int(step)))[:3]] if len(have) else have
            raise KeyError(f"no {stat!r} snapshot of {pname} at step {step}; "
                           + (f"nearest stored steps: {', '.join(map(str, sorted(near)))}"
                              if len(have) else f"no {stat!r} snapshots of it stored"))
        h, w, data = rows[0]
        if not (_is_int(h) and _is_int(w) and isinstance(data, bytes) and h >= 0 and w >= 0
                and len(data) == 4 * h * w):
            raise RunFileError(self.path, f"damaged run: the {stat!r} snapshot of "
                                          f"{pname} at step {step} is not "
                                          f"{h!r:.20} x {w!r:.20} float32 values")
        return np.frombuffer(data, "<f4").reshape(h, w).astype(np.float32)

    def alerts(self, since: int | None = None) -> list[dict]:
        """Alerts in step order: dicts with ``step``, ``param`` (name or None), ``kind``,
        ``message``."""
        lo = self._since(since)
        rows = self._query("SELECT step, param, kind, message FROM alerts WHERE step >= ? "
                           "ORDER BY step, id", (lo,))
        self._load_params()
        names = [p.name for p in self._params or []]
        out = []
        for step, param, kind, message in rows:
            if not (_is_int(step) and (param is None or _is_int(param))):
                raise RunFileError(self.path, f"damaged run: alerts holds a step or parameter "
                                              f"{(step, param)!r:.60}")
            if param is not None and not 0 <= param < len(names):
                self._params = None               # parameters defined after we looked
                self._load_params()
                names = [p.name for p in self._params or []]
            out.append({"step": step,
                        "param": None if param is None or param >= len(names) else names[param],
                        "kind": kind, "message": message})
        return out

    # -- lifetime -------------------------------------------------------
    def close(self) -> None:
        """Close the connection (idempotent)."""
        with self._lock:
            if self._con is not None:
                self._con.close()
                self._con = None

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"


def _edges(lo: np.ndarray, hi: np.ndarray, B: int) -> np.ndarray:
    """(T, B + 1) equal-width edges over [lo, hi]; lo == hi -> [lo - 0.5, lo + 0.5]; NaN ->
    [-0.5, 0.5]."""
    lo = lo.copy()
    hi = hi.copy()
    none = ~(np.isfinite(lo) & np.isfinite(hi))
    lo[none], hi[none] = -0.5, 0.5
    same = lo >= hi
    lo[same], hi[same] = lo[same] - 0.5, lo[same] + 0.5
    frac = np.arange(B + 1) / B
    e = lo[:, None] + (hi - lo)[:, None] * frac
    e[:, -1] = hi
    # a range too narrow for B distinct float64 edges (display only): widen it
    bad = ~(np.diff(e, axis=1) > 0).all(axis=1) if len(e) else np.zeros(0, bool)
    if bad.any():
        c = 0.5 * (lo[bad] + hi[bad])
        e[bad] = (c - 0.5)[:, None] + frac
    return e


def open_run(path) -> Run:
    """Open a recorded run for reading (see :class:`Run`).

    Parameters
    ----------
    path : str or os.PathLike
        A run directory (``<path>/run.sqlite``) or its SQLite file.

    Returns
    -------
    Run

    Raises
    ------
    RunNotFound
        No run there (a ``FileNotFoundError``).
    RunFileError
        Anything else that is not a readable run, in one line
        ``"PATH: problem"`` (a ``ValueError``; :class:`SchemaVersionError` for
        a newer schema).
    """
    return Run(path)
