"""The run store of the training watch: one SQLite file per run, written by :class:`RunWriter`, read by :class:`Run`.

- :mod:`.schema`: the format (schema v1, its tables and records), the
  errors, the file checks and the portable lock;
- :mod:`.writer`: :class:`RunWriter`;
- :mod:`.reader`: :func:`open_run` and :class:`Run`.

>>> with RunWriter("runs/exp1", config={"every": 1, "bins": 64}) as w:
...     w.define_params([ParamInfo("fc.weight", (10, 5), "float32", 50, "fc", False, 10, 5)])
...     w.write([StepRecord(step=0, time=time.time(), scalars={"loss": 2.3})])
>>> run = open_run("runs/exp1")                # while training writes, or afterwards
>>> steps, loss = run.scalar("loss")
>>> steps, gnorm = run.stat("norm", kind="grad")   # (P, T): parameters x recorded steps

Only the standard library (``sqlite3``; ``fcntl`` or ``msvcrt`` when a lock is taken) and
NumPy are imported, and only when a name is first used (:mod:`dlviz_gpu.lazy`).

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


from ... import lazy

__getattr__, __dir__, __all__ = lazy.attach(__name__, {
    **dict.fromkeys(("SCHEMA_VERSION", "STAT_NAMES", "NSTATS", "KINDS", "UPDATE_COLUMNS",
                     "SNAPSHOT_STATS", "MODES", "ParamInfo", "StepRecord", "run_file",
                     "RunLockedError", "RunFileError", "RunNotFound", "SchemaVersionError",
                     "RunWriteError"), ".schema"),
    "RunWriter": ".writer",
    **dict.fromkeys(("Run", "open_run"), ".reader"),
})
