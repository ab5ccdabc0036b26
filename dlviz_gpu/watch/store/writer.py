"""The writer of a run file: :class:`RunWriter` (one per run, holding its lock).

Each :meth:`RunWriter.write` is one SQLite transaction in WAL mode; a full
disk stops the writer with :class:`~.schema.RunWriteError` and keeps every
step committed before.  A forked child (a DataLoader worker) drops the
parent's lock and connection without using them.  The format and the rules
are in :mod:`dlviz_gpu.watch.store`.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import math
import os
import sqlite3
import stat as _stat
import threading
import time
import weakref

import numpy as np

from .schema import (as_object_rows, BUSY_TIMEOUT_MS, check_side_files, DDL, dlviz_version,
                      file_bytes, INT64_MIN, ints_object, is_int, is_io_error, lock_path,
                      LOCK_RETRY_S, MODES, now_iso, NSTATS, O_CLOEXEC, O_NONBLOCK, param_from_row,
                      ParamInfo, PLAIN_META, pragmas, run_file, RunFileError, RunLockedError,
                      RunWriteError, SCHEMA_VERSION, SQL_ALERT, SQL_HIST, SQL_SCALARS, SQL_SNAP,
                      SQL_STATS, SQL_STEPS, SQL_UPDATES, StepRecord, try_lock, unlock,
                      UPDATE_COLUMNS, validate, write_problem)


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
            fd = os.open(lock_path(self.path), os.O_RDWR | os.O_CREAT | O_CLOEXEC | O_NONBLOCK,
                         0o644)
            if not _stat.S_ISREG(os.fstat(fd).st_mode):
                os.close(fd)
                raise OSError(errno.EINVAL, f"{lock_path(self.path)} is not a regular file")
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
        deadline = time.monotonic() + LOCK_RETRY_S
        while True:
            try:
                taken = try_lock(fd)
            except OSError as e:            # a file system without locks (some network mounts)
                raise ValueError(f"store: cannot lock run file {self.path} "
                                 f"({lock_path(self.path)}): {e.strerror or e}") from None
            if taken is not False:          # True, or None: this platform cannot lock files
                break
            # a reader's `live` probe holds the lock for microseconds: retry briefly
            if time.monotonic() >= deadline:
                raise RunLockedError(
                    f"store: run file {self.path} is being written by another process (its "
                    f"lock {lock_path(self.path)} is held); stop that writer or choose "
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
            check_side_files(path)
            if path.stat().st_size == 0:
                # an empty file (a writer stopped between creating it and writing the schema)
                nsteps = 0
            else:
                con = self._connect_existing()
                try:
                    validate(con, path, file_bytes(path))
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
            pragmas(con, wal=True)
            con.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as e:
            con.close()
            raise ValueError(f"store: cannot write run file {path}: {e}") from None
        try:
            for stmt in DDL.split(";"):
                if stmt.strip():
                    con.execute(stmt)
            meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
            # (schema 1 is the only one so far; a later version appending to an older file
            # must migrate it here before stamping its own version)
            new = {"schema_version": str(SCHEMA_VERSION), "dlviz_version": dlviz_version(),
                   "status": "running"}
            if "created" not in meta:
                new["created"] = now_iso()
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
            self._params = [param_from_row(r) for r in rows]
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
        bad = [k for k in values if k in PLAIN_META]
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
        if not is_int(step):
            raise TypeError(f"step: expected an int; got {step!r}")
        P = 0 if self._params is None else len(self._params)
        if param is not None and (not is_int(param) or not 0 <= param < P):
            raise ValueError(f"param: expected None or an index in [0, {P}); got {param!r}")
        row = (int(step), None if param is None else int(param), str(kind), str(message))
        with self._lock:
            self._check_open()
            self._transaction(lambda con: con.execute(SQL_ALERT, row))

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
                                [("status", "closed"), ("closed", now_iso())])

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
                unlock(self._lock_fd)
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
            if not is_io_error(e):
                raise
            raise RunWriteError(self.path, write_problem(e, self.path)) from e

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
        if not is_int(rec.step) or not INT64_MIN <= int(rec.step) < (1 << 63):
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
            rows[:, 0] = ints_object(p)
            rows[:, 1] = ints_object(k)
            rows[:, 2] = step
            rows[:, 3:] = as_object_rows(s[p, k])
            self.stats.append(rows)
        if rec.updates is not None:
            u = self._array(rec.updates, f"{where}.updates", (P, len(UPDATE_COLUMNS)),
                            np.float64)
            (p,) = np.nonzero(~np.isnan(u).all(axis=-1))
            rows = np.empty((len(p), 2 + len(UPDATE_COLUMNS)), object)
            rows[:, 0] = ints_object(p)
            rows[:, 1] = step
            rows[:, 2:] = as_object_rows(u[p])
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
            lo = as_object_rows(r[p, k, 0])
            hi = as_object_rows(r[p, k, 1])
            for j in range(len(p)):
                self.hists.append((int(p[j]), int(k[j]), step, lo[j], hi[j],
                                   c[p[j], k[j]].tobytes()))
        for j, item in enumerate(rec.snapshots or ()):
            try:
                pi, stat, arr = item
            except (TypeError, ValueError):
                raise TypeError(f"{where}.snapshots[{j}]: expected (param_index, stat, "
                                f"array); got {item!r:.80}") from None
            if not is_int(pi) or not 0 <= pi < P:
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
            if pi is not None and (not is_int(pi) or not 0 <= pi < P):
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
        con.executemany(SQL_STEPS, self.steps)
        if self.scalars:
            con.executemany(SQL_SCALARS, self.scalars)
        if self.stats:
            con.executemany(SQL_STATS, np.concatenate(self.stats).tolist())
        if self.updates:
            con.executemany(SQL_UPDATES, np.concatenate(self.updates).tolist())
        if self.hists:
            con.executemany(SQL_HIST, self.hists)
        if self.snaps:
            con.executemany(SQL_SNAP, self.snaps)
        if self.alerts:
            con.executemany(SQL_ALERT, self.alerts)
