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

The package itself is callable: ``dv.watch(model, ...)`` is
:func:`dlviz_gpu.watch.recorder.watch` (the package and the verb share the
name, so that ``dv.watch(...)`` and ``dv.watch.open_run(...)`` both read
naturally, whichever was imported first).

Importing this package imports neither torch nor any plotting library.
"""

import sys
import types

from .store import (KINDS, NSTATS, SCHEMA_VERSION, STAT_NAMES, UPDATE_COLUMNS, ParamInfo, Run,
                    RunLockedError, RunWriter, SchemaVersionError, StepRecord, open_run,
                    run_file)

__all__ = ["Watch", "open_run", "Run", "RunWriter", "ParamInfo", "StepRecord",
           "RunLockedError", "SchemaVersionError", "SCHEMA_VERSION", "STAT_NAMES", "KINDS",
           "NSTATS", "UPDATE_COLUMNS", "run_file"]


class _CallablePackage(types.ModuleType):
    def __call__(self, model, optimizer=None, store="runs/run", **kwargs):
        from .recorder import watch

        return watch(model, optimizer, store, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage


def __getattr__(name: str):
    if name == "Watch":
        from .recorder import Watch

        return Watch
    raise AttributeError(f"module 'dlviz_gpu.watch' has no attribute {name!r}")
