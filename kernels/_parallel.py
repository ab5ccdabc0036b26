"""Parallel CPU kernels that any number of Python threads may call at once.

Numba runs ``parallel=True`` functions on one of three threading layers: TBB,
GNU OpenMP or its own ``workqueue``.  The first two are thread-safe.
``workqueue`` is not: two Python threads launching parallel kernels at the same
time (a training thread recording steps while a Bokeh server redraws a view)
make Numba abort the whole process ("Terminating: Nested parallel kernel
launch detected" / "Concurrent access has been detected").  ``workqueue`` is
what Numba falls back to wherever neither TBB nor GNU OpenMP can be loaded.

Every parallel CPU kernel of :mod:`dlviz_gpu.kernels` is therefore made by
:func:`parallel_jit` (or wrapped by :func:`serialised`), and every call to it
goes through :meth:`ParallelKernel.__call__`: under ``workqueue`` the calls of
all threads take turns behind one lock; under TBB and OpenMP they run
concurrently, untouched.  Callers (views, the training watch, the CLI) need
not know: the lock lives with the kernels.  Serial kernels need none.

The layer is the one Numba picks for the first parallel launch of the
process (``NUMBA_THREADING_LAYER`` and the libraries installed decide); it is
read once, on the first call, by asking Numba to pick it then.
"""

from __future__ import annotations

import threading

import numba

__all__ = ["ParallelKernel", "parallel_jit", "serialised", "threading_layer", "serialising",
           "LOCK"]

#: The lock every parallel kernel call takes where the threading layer is not
#: thread-safe.  Re-entrant: a thread holding it may call another kernel.
LOCK = threading.RLock()

# Threading layers Numba documents as safe for concurrent launches.
_THREAD_SAFE = ("tbb", "omp")

_layer: str | None = None
_serialise: bool | None = None


def threading_layer() -> str:
    """The threading layer Numba uses in this process (``"tbb"``, ``"omp"`` or ``"workqueue"``).

    Picks it now if no parallel kernel has run yet, exactly as the first
    launch would (same environment variables, same search order).
    """
    global _layer
    if _layer is None:
        try:
            _layer = numba.threading_layer()
        except ValueError:        # not picked yet: no parallel kernel has run
            from numba.np.ufunc import parallel as _numba_parallel

            _numba_parallel._launch_threads()
            _layer = numba.threading_layer()
    return _layer


def serialising() -> bool:
    """True when parallel kernel calls take turns behind :data:`LOCK`.

    That is, when the threading layer is not thread-safe (``workqueue``, or
    one this module does not know).
    """
    global _serialise
    if _serialise is None:
        try:
            layer = threading_layer()
        except Exception:  # noqa: BLE001 - unknown layer: take the safe side
            layer = "unknown"
        _serialise = layer not in _THREAD_SAFE
    return _serialise


class ParallelKernel:
    """A ``parallel=True`` Numba dispatcher, callable from any thread.

    Calls are forwarded to the dispatcher; where :func:`serialising` is true
    they hold :data:`LOCK` while the kernel runs.  Every other attribute
    (``signatures``, ``stats``, ``py_func``, ...) is the dispatcher's.

    Parameters
    ----------
    dispatcher : numba CPU dispatcher
        A jitted function compiled with ``parallel=True``.
    """

    __slots__ = ("dispatcher",)

    def __init__(self, dispatcher):
        object.__setattr__(self, "dispatcher", dispatcher)

    def __call__(self, *args, **kwargs):
        if serialising():
            with LOCK:
                return self.dispatcher(*args, **kwargs)
        return self.dispatcher(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(object.__getattribute__(self, "dispatcher"), name)

    def __repr__(self) -> str:
        return f"ParallelKernel({self.dispatcher!r})"


def serialised(dispatcher) -> ParallelKernel:
    """A parallel dispatcher (e.g. one a memoised factory built) as a :class:`ParallelKernel`."""
    if isinstance(dispatcher, ParallelKernel):
        return dispatcher
    return ParallelKernel(dispatcher)


def parallel_jit(fn=None, **options):
    """``numba.njit(parallel=True, **options)`` whose calls are safe from any thread.

    Usable as ``@parallel_jit`` or ``@parallel_jit(cache=True, ...)``; the
    result is a :class:`ParallelKernel`.  Call it from Python only (a jitted
    caller would nest parallel regions, which no layer allows under
    ``workqueue``).
    """
    def wrap(f):
        return ParallelKernel(numba.njit(parallel=True, **options)(f))

    return wrap if fn is None else wrap(fn)
