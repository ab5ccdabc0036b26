"""The reader of a run file: :func:`open_run` and :class:`Run`.

Readers take no lock and never block the writer; a run that is being written
is re-read as it grows (``since=``).  Every value comes back as NumPy arrays.
A file that is not a readable run raises :class:`~.schema.RunFileError`, one
line naming the file.  The format and the rules are in
:mod:`dlviz_gpu.watch.store`.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import os
import pathlib
import sqlite3
import stat as _stat
import threading
import urllib.parse

import numpy as np

from .schema import (BUSY_TIMEOUT_MS, check_side_files, file_bytes, file_kind, INT64_MIN, is_int,
                      KINDS, lock_path, O_CLOEXEC, O_NONBLOCK, param_from_row, ParamInfo,
                      PLAIN_META, read_version_value, run_file, RunFileError, RunNotFound,
                      side_file, STAT_NAMES, try_lock, unlock, UPDATE_COLUMNS, validate)


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
        st = os.stat(side_file(f, "-wal"))
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
        raise RunFileError(f, f"not a regular file ({file_kind(st.st_mode)}), not a run")
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
        check_side_files(f)
        wal_path = side_file(f, "-wal")
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
            version = validate(con, f, file_bytes(f))
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
            return INT64_MIN
        if not is_int(since):
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
                out[k] = read_version_value(v, self.path)
            elif k in PLAIN_META:
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
            fd = os.open(lock_path(self.path), os.O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        except OSError:
            return False
        try:
            if not _stat.S_ISREG(os.fstat(fd).st_mode):
                return False                 # a FIFO or device named like the lock: no writer
            taken = try_lock(fd, shared=True)
            if taken is None:
                return self.meta.get("status") == "running"
            if taken:
                unlock(fd)
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
            params = [param_from_row(r, strict=True) for r in rows]
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
        if is_int(name_or_id):
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
        if v is not None and not is_int(v):
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
        from ...histograms import Histogram

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
                B = int(B) if is_int(B) and 0 < B < 1 << 20 else 1
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
        if not is_int(step):
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
        if not (is_int(h) and is_int(w) and isinstance(data, bytes) and h >= 0 and w >= 0
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
            if not (is_int(step) and (param is None or is_int(param))):
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
