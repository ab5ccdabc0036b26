"""The run file's format: schema v1, its records, errors, file checks and locking.

What the writer (:mod:`.writer`) and the reader (:mod:`.reader`) share: the
version (:data:`SCHEMA_VERSION`), the statistics stored per parameter
(:data:`STAT_NAMES`), the tables (``DDL``) and the statements that fill them,
the records a step is written as (:class:`ParamInfo`, :class:`StepRecord`),
the errors (:class:`RunFileError` and its kinds, :class:`RunLockedError`,
:class:`RunWriteError`), where a run's file lives (:func:`run_file`), the
checks that a file is a run file of a version this code reads
(:func:`validate`), and the portable lock on its side file (``flock`` on
POSIX, ``msvcrt.locking`` on Windows, looked up when first taken).

The format, the files and the locking rules are described in
:mod:`dlviz_gpu.watch.store`.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import numbers
import os
import pathlib
import re
import sqlite3
import stat as _stat

import numpy as np


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
LOCK_RETRY_S = 0.5
PLAIN_META = ("schema_version", "created", "closed", "dlviz_version", "status")
_INT_STATS = frozenset(("numel", "zeros", "nan", "posinf", "neginf"))
_FILE_SUFFIXES = (".sqlite", ".db")

DDL = f"""
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

SQL_STEPS = ("INSERT INTO steps(step, time, recorded) VALUES (?, ?, ?) ON CONFLICT(step) DO "
              "UPDATE SET time = excluded.time, recorded = max(recorded, excluded.recorded)")
SQL_SCALARS = "INSERT OR REPLACE INTO scalars(name, step, value) VALUES (?, ?, ?)"
SQL_STATS = (f"INSERT OR REPLACE INTO stats(param, kind, step, {', '.join(STAT_NAMES)}) "
              f"VALUES ({', '.join('?' * (3 + NSTATS))})")
SQL_UPDATES = ("INSERT OR REPLACE INTO updates(param, step, norm, ratio, dead) "
                "VALUES (?, ?, ?, ?, ?)")
SQL_HIST = ("INSERT OR REPLACE INTO histograms(param, kind, step, lo, hi, counts) "
             "VALUES (?, ?, ?, ?, ?, ?)")
SQL_SNAP = ("INSERT OR REPLACE INTO snapshots(param, stat, step, height, width, data) "
             "VALUES (?, ?, ?, ?, ?, ?)")
SQL_ALERT = "INSERT INTO alerts(step, param, kind, message) VALUES (?, ?, ?, ?)"

INT64_MIN = -(1 << 63)


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


def lock_path(path: pathlib.Path) -> pathlib.Path:
    return path.with_name(path.name + ".lock")


def side_file(path: pathlib.Path, suffix: str) -> pathlib.Path:
    return path.with_name(path.name + suffix)


# Open flags that exist only on some platforms (Windows has neither).
O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)


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


def try_lock(fd: int, shared: bool = False):
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
    retries for :data:`LOCK_RETRY_S`); Windows too drops it with the process.
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


def unlock(fd: int) -> None:
    api = _lock_api()
    if api is None:
        return
    if hasattr(api, "flock"):
        api.flock(fd, api.LOCK_UN)
    else:
        os.lseek(fd, 0, os.SEEK_SET)
        api.locking(fd, api.LK_UNLCK, 1)


def now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def dlviz_version() -> str:
    try:
        from ... import __version__
        return str(__version__)
    except Exception:  # pragma: no cover - a partial install
        return "unknown"


def pragmas(con: sqlite3.Connection, wal: bool) -> None:
    con.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    if wal:
        con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")


def is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _schema_columns() -> dict:
    """{table: (column, ...)} of schema :data:`SCHEMA_VERSION`, read from :data:`DDL` itself."""
    con = sqlite3.connect(":memory:")
    try:
        con.executescript(DDL)
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
    return read_version_value(row[0], path)


def read_version_value(v, path) -> int:
    """The stored ``schema_version`` text as an int >= 1; RunFileError if it is not one."""
    if isinstance(v, str) and re.fullmatch(r"\s*[0-9]{1,9}\s*", v):
        version = int(v)
    elif is_int(v) and 0 <= v < 10 ** 9:
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


def validate(con: sqlite3.Connection, path, nbytes: int) -> int:
    """Check an open file is a run this module can read; its schema version."""
    version = _read_version(con, path)
    _check_version(version, path)
    _check_tables(con, path)
    _quick_check(con, path, nbytes)
    return version


def file_bytes(path: pathlib.Path) -> int:
    """The run file's size with its -wal (what a full check reads)."""
    n = 0
    for p in (path, side_file(path, "-wal")):
        try:
            n += os.stat(p).st_size
        except OSError:
            pass
    return n


def write_problem(e: BaseException, path: pathlib.Path) -> str:
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


def is_io_error(e: BaseException) -> bool:
    """A failure of the file (full, I/O, read-only, locked), not of the data written."""
    if isinstance(e, OSError):
        return True
    if not isinstance(e, sqlite3.DatabaseError):
        return False
    # constraint, binding and API errors are bugs in what was written, not of the file
    return not isinstance(e, (sqlite3.IntegrityError, sqlite3.ProgrammingError,
                              sqlite3.InterfaceError, sqlite3.DataError,
                              sqlite3.NotSupportedError))


def as_object_rows(values: np.ndarray) -> np.ndarray:
    """float array -> object array of Python floats with NaN as None (SQLite NULL)."""
    obj = values.astype(object)
    obj[np.isnan(values)] = None
    return obj


def ints_object(values) -> np.ndarray:
    return np.asarray(values, np.int64).astype(object)


def check_side_files(path: pathlib.Path) -> None:
    """The -wal and -shm next to a run file are regular files or absent.

    SQLite would open a FIFO or a device there and block on it, or map it.
    """
    for suffix in ("-wal", "-shm"):
        side = side_file(path, suffix)
        try:
            st = os.stat(side)
        except FileNotFoundError:
            continue
        except OSError as e:
            raise RunFileError(side, f"cannot read: {e.strerror or e}") from None
        if not _stat.S_ISREG(st.st_mode):
            raise RunFileError(side, f"not a regular file ({file_kind(st.st_mode)}); SQLite "
                                     f"keeps the run's {suffix[1:].upper()} here")


def file_kind(mode: int) -> str:
    for test, name in ((_stat.S_ISDIR, "a directory"), (_stat.S_ISFIFO, "a FIFO"),
                       (_stat.S_ISSOCK, "a socket"), (_stat.S_ISCHR, "a character device"),
                       (_stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "not a regular file"


def param_from_row(r, strict: bool = False) -> ParamInfo:
    """A ParamInfo from a ``params`` row; ``strict`` checks every value's type (a reader of
    a file that may be damaged): TypeError / ValueError when one is wrong."""
    if strict:
        shape = json.loads(r[2]) if isinstance(r[2], str) else None
        if not isinstance(shape, list) or not all(is_int(d) for d in shape):
            raise ValueError(f"shape {r[2]!r:.40} is not a JSON list of ints")
        for name, v, none_ok in (("id", r[0], False), ("numel", r[4], False),
                                 ("frozen", r[6], False), ("rows", r[7], True),
                                 ("cols", r[8], True)):
            if not (is_int(v) or (none_ok and v is None)):
                raise TypeError(f"{name} {v!r:.40} is not an int")
        for name, v in (("name", r[1]), ("dtype", r[3]), ("layer", r[5])):
            if not isinstance(v, str):
                raise TypeError(f"{name} {v!r:.40} is not text")
    return ParamInfo(name=r[1], shape=tuple(json.loads(r[2])), dtype=r[3], numel=int(r[4]),
                     layer=r[5], frozen=bool(r[6]), rows=r[7], cols=r[8], id=int(r[0]))
