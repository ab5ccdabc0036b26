"""The training watch: record a run while a model trains, read it back while it runs.

>>> run = dv.watch(model, optimizer, store="runs/exp1")   # dlviz_gpu.watch.recorder
>>> ... run.log(step, loss=loss) ...
>>> r = dv.watch.open_run("runs/exp1")                    # dlviz_gpu.watch.store
>>> steps, norms = r.stat("norm", kind="grad")            # (T,), (P, T)

- :mod:`.recorder`: :func:`~dlviz_gpu.watch.recorder.watch` / :class:`Watch`,
  the hook into a training loop.
- :mod:`.probes`: what a recorded step measures, on the CPU or on the device.
- :mod:`.store`: the run file (SQLite, WAL, versioned schema), its writer and
  reader.

Failures: a run file that cannot be read (damaged, not a run, gone) raises
:class:`RunFileError` (a ``ValueError``, one line ``"PATH: problem"``;
:class:`SchemaVersionError` and :class:`RunNotFound` are kinds of it); a
store that cannot be written while training (a full disk) stops the
recording with one :class:`RecordingStoppedWarning`, never an exception in
the training loop.

The package itself is callable: ``dv.watch(model, ...)`` is
:func:`dlviz_gpu.watch.recorder.watch` (the package and the verb share the
name, so that ``dv.watch(...)`` and ``dv.watch.open_run(...)`` both read
naturally, whichever was imported first).  Its names load on first use
(:mod:`dlviz_gpu.lazy`).

Importing this package imports neither torch, SQLite nor any plotting library.
"""

from .. import lazy

_STORE = ("KINDS", "NSTATS", "SCHEMA_VERSION", "STAT_NAMES", "UPDATE_COLUMNS", "ParamInfo", "Run",
          "RunFileError", "RunLockedError", "RunNotFound", "RunWriteError", "RunWriter",
          "SchemaVersionError", "StepRecord", "open_run", "run_file")

__getattr__, __dir__, __all__ = lazy.attach(
    __name__, {**{name: ".store" for name in _STORE},
               "Watch": ".recorder", "RecordingStoppedWarning": ".recorder"},
    call=(".recorder", "watch"))
