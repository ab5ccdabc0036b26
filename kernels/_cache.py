"""A disk cache for the CPU kernels built by memoised factories, shared across processes.

Numba's own ``cache=True`` cannot keep a kernel that a factory builds as a
closure over other closures (its key would change in every process);
:func:`cached_factory_kernel` gives such a kernel a key that is the same in
every process.  The kernel families call it on what their factories return.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import logging
import os
import types

import numba
import numpy as np

__all__ = ["cached_factory_kernel"]

_log = logging.getLogger(__name__)


def cached_factory_kernel(kernel, *key):
    """Give a CPU kernel built by a memoised factory a disk cache that works across processes.

    A factory such as ``matrix._cpu_kernel(decode, lane_dtype, ...)`` returns
    a ``numba.njit`` closure over other closures.  Numba's own cache
    (``cache=True``) keys a closure by its pickled closure variables, and the
    pickle of a dispatcher carries a uuid drawn afresh in every process, so
    such a kernel would be compiled again in every process.  This attaches a
    cache whose key is the same in every process:

    - ``key``, the factory's arguments;
    - a fingerprint of everything the machine code depends on, found by
      walking from ``kernel`` through closure cells and referenced globals to
      every jitted function it can call: the bytes of their source files, their
      compile options and the constants they read (module constants
      included, so a patched ``CHUNK`` is a different kernel).

    Numba checks the index against the kernel's own source file and its version
    as usual; the target machine is part of every key (``codegen.magic_tuple()``).

    It also renames the functions the factory defined (``__qualname__``
    ``factory.<locals>.name`` -> ``factory.<locals>.name__<tag>``, with ``tag``
    a hash of ``key``), before anything is compiled.  Machine-code symbols are
    named after the qualname and a per-process counter, so without this a
    kernel loaded from the cache and another combination compiled in the same
    process could define the same symbol with different bodies and one would
    call the other's code (numba/numba#10486).  The renaming also gives every
    combination its own index file in the cache directory.

    Where the Numba in use lacks the hook (its cache internals are not a public
    API) the kernel compiles in every process as before, with a debug log line.

    Parameters
    ----------
    kernel : numba CPU dispatcher
        The factory's entry kernel, not compiled yet.
    *key : int, str, bool, float or None
        The factory's arguments.

    Returns
    -------
    numba CPU dispatcher
        ``kernel`` itself.
    """
    name = getattr(kernel, "__qualname__", repr(kernel))
    # np.True_ and True are the same key to the factory's lru_cache: here too
    key = tuple(k.item() if isinstance(k, np.generic) else k for k in key)
    try:
        walk = _Fingerprint()
        walk.dispatcher(kernel)
        fingerprint = walk.digest(key)
        tag = hashlib.sha256(repr(key).encode()).hexdigest()[:12]
        _tag_locals(kernel, walk.dispatchers, tag)
        kernel._cache = _factory_cache_class()(kernel.py_func, fingerprint)
    except Exception as exc:  # noqa: BLE001 - the cache is an optimisation only
        _log.debug("kernel %s%r compiles without a disk cache: %s: %s",
                   name, key, type(exc).__name__, exc)
    return kernel


@functools.lru_cache(maxsize=None)
def _factory_cache_class():
    """``numba.core.caching.FunctionCache`` with our index key (raises if the hook moved)."""
    from numba.core.caching import FunctionCache
    from numba.core.dispatcher import Dispatcher

    params = list(inspect.signature(FunctionCache._index_key).parameters)
    if params != ["self", "sig", "codegen"]:
        raise RuntimeError(f"FunctionCache._index_key takes {params}")
    for attr in ("_cache", "_cache_hits", "_cache_misses"):
        if attr not in Dispatcher.__init__.__code__.co_names:
            raise RuntimeError(f"numba dispatchers have no {attr}")

    class FactoryKernelCache(FunctionCache):
        def __init__(self, py_func, fingerprint):
            self._fingerprint = fingerprint
            super().__init__(py_func)

        def _index_key(self, sig, codegen):
            return (sig, codegen.magic_tuple(), ("dlviz_gpu factory kernel", self._fingerprint))

    return FactoryKernelCache


def _tag_locals(kernel, dispatchers, tag):
    """Append ``__tag`` to the qualnames of the functions ``kernel``'s factory defined."""
    prefix = kernel.py_func.__qualname__.rpartition("<locals>.")[0]
    if not prefix:
        return
    module = kernel.py_func.__module__
    for disp in dispatchers:
        fn = disp.py_func
        if fn.__module__ == module and fn.__qualname__.startswith(prefix + "<locals>."):
            if disp.overloads:
                raise RuntimeError(f"{fn.__qualname__} is compiled already")
            fn.__qualname__ = disp.__qualname__ = f"{fn.__qualname__}__{tag}"


_FILE_HASHES: dict = {}


def _file_hash(path: str) -> str:
    st = os.stat(path)
    stamp = (st.st_mtime_ns, st.st_size)
    hit = _FILE_HASHES.get(path)
    if hit is None or hit[0] != stamp:
        with open(path, "rb") as f:
            hit = (stamp, hashlib.sha256(f.read()).hexdigest())
        _FILE_HASHES[path] = hit
    return hit[1]


class _Fingerprint:
    """Walks jitted functions through closure cells and globals; see cached_factory_kernel."""

    _SIMPLE = (bool, int, float, complex, str, bytes, type(None), np.generic, np.dtype)

    def __init__(self):
        from numba.core.dispatcher import Dispatcher

        self._dispatcher_type = Dispatcher
        self._tokens: list[str] = []
        self._files: set[str] = set()
        self._seen: set[int] = set()
        self.dispatchers: list = []

    def digest(self, key) -> str:
        h = hashlib.sha256(repr(key).encode())
        for token in self._tokens:
            h.update(token.encode())
            h.update(b"\0")
        for path in sorted(self._files):
            h.update(f"{os.path.basename(path)}:{_file_hash(path)}".encode())
        return h.hexdigest()

    def dispatcher(self, disp):
        if id(disp) in self._seen:
            return
        self._seen.add(id(disp))
        self.dispatchers.append(disp)
        fn = disp.py_func
        self._tokens.append(f"jit {fn.__module__}.{fn.__qualname__} "
                            f"{self.value(disp.targetoptions)}")
        self.function(fn)

    def function(self, fn):
        code = fn.__code__
        self._files.add(code.co_filename)
        for name, cell in zip(code.co_freevars, fn.__closure__ or ()):
            try:
                v = cell.cell_contents
            except ValueError:
                v = "<empty cell>"
            self._tokens.append(f"cell {name}={self.value(v)}")
        glob = fn.__globals__
        names = self._names(code)
        for name in names:
            if name in glob:
                v = glob[name]
                self._tokens.append(f"global {name}={self.value(v)}")
                if isinstance(v, types.ModuleType):
                    # `module.function(...)`: jitted functions of a module it reads
                    # (vars(), not getattr: no lazy imports)
                    attrs = vars(v)
                    for attr in names:
                        if isinstance(attrs.get(attr), self._dispatcher_type):
                            self._tokens.append(f"attr {name}.{attr}="
                                                f"{self.value(attrs[attr])}")

    def _names(self, code):
        names = list(code.co_names)
        for c in code.co_consts:
            if isinstance(c, types.CodeType):
                names += self._names(c)
        return names

    def value(self, v) -> str:
        if isinstance(v, self._SIMPLE):
            return f"{type(v).__name__}({v!r})"
        if isinstance(v, (tuple, list)):
            return f"{type(v).__name__}[{', '.join(self.value(x) for x in v)}]"
        if isinstance(v, (set, frozenset)):  # string hashes vary per process: sort
            return f"set[{', '.join(sorted(self.value(x) for x in v))}]"
        if isinstance(v, dict):
            return "dict[" + ", ".join(sorted(f"{self.value(k)}: {self.value(x)}"
                                              for k, x in v.items())) + "]"
        if isinstance(v, np.ndarray):
            return (f"ndarray({v.dtype.str}, {v.shape}, "
                    f"{hashlib.sha256(np.ascontiguousarray(v).tobytes()).hexdigest()})")
        if isinstance(v, types.ModuleType):
            return f"module({v.__name__})"
        if isinstance(v, self._dispatcher_type):
            self.dispatcher(v)
            return f"jit({v.py_func.__module__}.{v.py_func.__qualname__})"
        if isinstance(v, numba.core.types.Type):
            return f"numba_type({v})"
        t = type(v)
        label = getattr(v, "__qualname__", None) or getattr(v, "__name__", "")
        if isinstance(v, (types.FunctionType, types.BuiltinFunctionType, type)):
            return f"{t.__name__}({getattr(v, '__module__', '')}.{label})"
        # anything else (numba intrinsics, enum-like objects): its type and name;
        # their code lives in the source files hashed above
        return f"object({t.__module__}.{t.__qualname__} {label})"
