"""Helpers shared by the CPU loops and the CUDA kernels.

Each helper is written once as a plain Python function and compiled twice:
``numba.njit`` here for the CPU, ``numba.cuda.jit(device=True)`` by the CUDA
factories (see :func:`cuda_device`).  Nothing here imports numba.cuda at module
level, so the CPU path works on machines without CUDA.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import logging
import math
import os
import types

import numba
import numpy as np

_log = logging.getLogger(__name__)

# How a stored element becomes a number.  bfloat16 and float16 arrive as their
# raw 16-bit patterns (uint16): NumPy has no bfloat16 and Numba's CPU target no
# float16, and decoding in the kernel keeps the input in place (no upcast copy).
DECODE_NATIVE = 0
DECODE_BF16 = 1
DECODE_F16 = 2

_F16_DENORM_SCALE = 5.192296858534828e33  # 2**112: rebias float16 exponent to float32


def bf16_pattern(h):
    """float32 bit pattern of the bfloat16 whose bits are ``h``."""
    return np.uint32(h) << np.uint32(16)


def f16_pattern(h):
    """float32 bit pattern for float16 bits ``h``, before the exponent rebias.

    Returns ``(bits, special)``: for finite values ``bits`` reinterpreted as
    float32 and multiplied by 2**112 is the exact value (normal and subnormal
    alike); for inf/NaN (``special``) ``bits`` is already the float32 pattern.
    """
    h = np.uint32(h)
    sign = (h & np.uint32(0x8000)) << np.uint32(16)
    if (h & np.uint32(0x7C00)) == np.uint32(0x7C00):
        return sign | np.uint32(0x7F800000) | ((h & np.uint32(0x3FF)) << np.uint32(13)), True
    return sign | ((h & np.uint32(0x7FFF)) << np.uint32(13)), False


@numba.njit(inline="always", cache=True)
def _f32_from_bits(bits):
    return np.uint32(bits).view(np.float32)


_bf16_pattern = numba.njit(inline="always", cache=True)(bf16_pattern)
_f16_pattern = numba.njit(inline="always", cache=True)(f16_pattern)


@numba.njit(inline="always", cache=True)
def decode_bf16_f32(h):
    """bfloat16 bits -> float32 (exact)."""
    return _f32_from_bits(_bf16_pattern(h))


@numba.njit(inline="always", cache=True)
def decode_f16_f32(h):
    """float16 bits -> float32 (exact, subnormals, inf and NaN included)."""
    bits, special = _f16_pattern(h)
    f = _f32_from_bits(bits)
    if special:
        return f
    return f * np.float32(_F16_DENORM_SCALE)


@numba.njit(inline="always", cache=True)
def decode_bf16(h):
    """bfloat16 bits -> float64 (exact)."""
    return np.float64(_f32_from_bits(_bf16_pattern(h)))


@numba.njit(inline="always", cache=True)
def decode_f16(h):
    """float16 bits -> float64 (exact, subnormals, inf and NaN included)."""
    bits, special = _f16_pattern(h)
    f = np.float64(_f32_from_bits(bits))
    if special:
        return f
    return f * _F16_DENORM_SCALE


@numba.njit(inline="always", cache=True)
def decode_value(raw, decode):
    """One element as float64 by its decoding (DECODE_NATIVE / _BF16 / _F16).

    Every branch types for every buffer dtype; only the one for the buffer's
    decoding ever runs.
    """
    if decode == DECODE_BF16:
        return decode_bf16(raw)
    if decode == DECODE_F16:
        return decode_f16(raw)
    return np.float64(raw)


def window_problem(lo: float, hi: float, npix: int | None = None) -> str | None:
    """What is wrong with the window ``(lo, hi)`` over ``npix`` pixels, or None.

    Every pixel formula of the kernels, ``floor((x - lo) * npix / (hi - lo))``,
    is exact only for a window whose bounds are finite with ``lo < hi``, whose
    width ``hi - lo`` is finite (``(-1e308, 1e308)`` is not) and -- given
    ``npix`` -- whose ``(hi - lo) * npix`` is finite, so that no value inside
    the window overflows on its way to a pixel.  The text completes
    ``"<name>: "`` in an error message.
    """
    lo, hi = float(lo), float(hi)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return f"expected finite bounds; got ({lo!r}, {hi!r})"
    if not lo < hi:
        return f"expected low < high; got ({lo!r}, {hi!r})"
    width = hi - lo
    if not math.isfinite(width):
        return (f"expected a span a float64 can hold, a finite width hi - lo; got "
                f"({lo!r}, {hi!r}), whose width overflows float64")
    if npix is not None and not math.isfinite(width * int(npix)):
        return (f"expected a span a float64 can hold at {int(npix)} pixels, a width hi - lo "
                f"at most {_FLOAT64_MAX / int(npix):.6g} (so that (x - lo) * pixels stays "
                f"finite); got ({lo!r}, {hi!r})")
    return None


_FLOAT64_MAX = float(np.finfo(np.float64).max)


@numba.njit(cache=True)
def _pixel_of(i, lo, hi, npix):
    # The contract from docs/architecture.md, evaluated in this exact order so that every
    # backend (and the reference) rounds identically.  The quotient is clamped
    # to [-1, npix] before the integer conversion: a cell far outside the
    # window (or a product that overflows to inf) stays outside on its own
    # side, where converting inf or NaN to int64 would give INT64_MIN.
    q = ((i + 0.5 - lo) * npix) / (hi - lo)
    if q >= npix:
        return np.int64(npix)
    if not q >= -1.0:       # below the canvas, or NaN (an infinite width)
        return np.int64(-1)
    return np.int64(math.floor(q))


@numba.njit(cache=True)
def _first_at_or_after(p, guess, n, lo, hi, npix, origin):
    """The first cell ``j`` in ``[0, n]`` whose pixel is ``>= p`` (``n`` if none).

    The pixel of a cell never decreases with its index, so the answer is
    found from ``guess`` by a galloping search: a step or two when the guess
    is good (the usual case: float error moves it by a cell at most), and
    O(log n) steps whatever the guess -- never a walk over the axis.
    """
    if guess < n and _pixel_of(guess + origin, lo, hi, npix) < p:
        # the answer lies above: a (< p) ... b (>= p, or n)
        a = guess
        step = np.int64(1)
        b = a + step
        while b < n and _pixel_of(b + origin, lo, hi, npix) < p:
            a = b
            step *= 2
            b = a + step
        b = min(b, n)
    else:
        # the answer is guess or below: a (< p, or -1) ... b (>= p, or n)
        b = guess
        step = np.int64(1)
        a = b - step
        while a >= 0 and _pixel_of(a + origin, lo, hi, npix) >= p:
            b = a
            step *= 2
            a = b - step
        a = max(a, np.int64(-1))
    while b - a > 1:
        m = (a + b) // 2
        if _pixel_of(m + origin, lo, hi, npix) >= p:
            b = m
        else:
            a = m
    return b


@numba.njit(cache=True)
def axis_ranges(n, lo, hi, npix, origin=0):
    """Which cells of one axis land in each pixel.

    Cell ``i`` (centre ``i + 0.5``) of an axis of ``n`` cells belongs to pixel
    ``floor((i + 0.5 - lo) * npix / (hi - lo))`` when that lies in
    ``[0, npix)``.  The map is monotone, so each pixel holds a contiguous run.

    Parameters
    ----------
    n : int
        Number of cells along the axis.
    lo, hi : float
        Visible data range, ``lo < hi``, with ``(hi - lo) * npix`` finite
        (callers refuse other windows; given one anyway, this still returns
        within O(npix log n) steps, with every cell of the axis on the side
        its clamped pixel puts it).
    npix : int
        Number of pixels along the axis.
    origin : int
        Global index of local cell 0 (a chunk of a larger tensor): the pixel
        of local cell ``i`` is computed for ``i + origin``, exactly as for the
        whole tensor, so rasters of chunks merge exactly.

    Returns
    -------
    start, end : (npix,) int64 arrays
        Pixel ``p`` holds cells ``start[p] <= i < end[p]`` (possibly none).
    """
    edges = np.empty(npix + 1, np.int64)
    n = np.int64(n)
    origin = np.int64(origin)
    width = hi - lo
    prev = np.int64(0)
    for p in range(npix + 1):
        # Estimate the first cell whose pixel is >= p, then settle it with the
        # exact rounding of _pixel_of.  A NaN estimate (infinite width) starts
        # at 0; the search is bounded either way.
        guess = p * width / npix + lo - 0.5 - origin
        if not guess > 0.0:
            j = np.int64(0)
        elif guess >= n:
            j = n
        else:
            j = np.int64(math.ceil(guess))
        e = _first_at_or_after(p, j, n, lo, hi, npix, origin)
        # edges never decrease (they would only for a NaN pixel map)
        e = max(e, prev)
        edges[p] = e
        prev = e
    return edges[:-1].copy(), edges[1:].copy()


def make_exact_moments(element):
    """Count, sum and m2 of a block of elements, free of intermediate overflow.

    The kernels' fast paths keep shifted sums and sums of squares in float64,
    which overflow once values pass about 1e154 (a square beyond 1.8e308);
    ``inf - inf`` then turns a finite answer into NaN.  This is their rare
    path for a pixel (or row) whose result came out NaN or infinite: the
    finite elements are read again, scaled by a power of two ``2**-e`` (exact)
    so that the largest is below 1, summed, and their squared deviations from
    the mean summed (two passes, so no cancellation), and the results scaled
    back.  The sum is then exact up to float64 rounding unless the true sum
    overflows (``+-inf``); ``m2`` is ``inf`` when the true sum of squared
    deviations, or the sum (NumPy's mean is then infinite, and so its
    ``std``), exceeds float64.  Never NaN.

    Parameters
    ----------
    element : function ``(src, ctx, r, c) -> float64``
        Element ``(r, c)`` of the block, decoded (a jitted CPU or CUDA device
        function).

    Returns
    -------
    function ``(src, ctx, r0, r1, c0, c1) -> (n, total, m2)``
        Plain Python, to be compiled with ``numba.njit(inline="always")`` or
        :func:`cuda_device`, over rows ``r0 <= r < r1`` and columns
        ``c0 <= c < c1``; ``n`` counts the finite elements.
    """
    def exact_moments(src, ctx, r0, r1, c0, c1):
        n = 0
        big = 0.0
        for r in range(r0, r1):
            for c in range(c0, c1):
                v = element(src, ctx, r, c)
                if math.isfinite(v):
                    n += 1
                    a = abs(v)
                    big = a if a > big else big
        if n == 0:
            return 0, 0.0, 0.0
        e = math.frexp(big)[1] if big > 0.0 else 0
        s = 0.0
        for r in range(r0, r1):
            for c in range(c0, c1):
                v = element(src, ctx, r, c)
                if math.isfinite(v):
                    s += math.ldexp(v, -e)
        mean = s / n
        q = 0.0
        for r in range(r0, r1):
            for c in range(c0, c1):
                v = element(src, ctx, r, c)
                if math.isfinite(v):
                    d = math.ldexp(v, -e) - mean
                    q += d * d
        # scale back by 2**e in two exact steps: a product that overflows is
        # inf, where math.ldexp would raise (plain Python: the CUDA simulator)
        h = e // 2
        up1 = math.ldexp(1.0, h)
        up2 = math.ldexp(1.0, e - h)
        total = (s * up1) * up2
        m2 = (((q * up1) * up2) * up1) * up2 if math.isfinite(total) else math.inf
        return n, total, m2

    return exact_moments


def cuda_device(pyfunc):
    """Compile a helper of this module for the CUDA target (inside GPU paths only)."""
    from numba import cuda

    return cuda.jit(device=True, inline="always")(pyfunc)


@functools.lru_cache(maxsize=None)
def cuda_decoder(decode: int):
    """Device function: one stored element -> float64, for one decoding (memoised).

    On a GPU the 32-bit pattern becomes a float through libdevice; under the
    simulator (plain Python) through a NumPy view.
    """
    import numba

    if numba.config.ENABLE_CUDASIM:
        def _bits_f32(bits):
            return np.uint32(bits).view(np.float32)
    else:
        from numba.cuda import libdevice

        def _bits_f32(bits):
            return libdevice.int_as_float(np.int32(bits))
    bits_f32 = cuda_device(_bits_f32)
    bf16p = cuda_device(bf16_pattern)
    f16p = cuda_device(f16_pattern)

    if decode == DECODE_BF16:
        def _dec(x):
            return np.float64(bits_f32(bf16p(x)))
    elif decode == DECODE_F16:
        def _dec(x):
            bits, special = f16p(x)
            f = np.float64(bits_f32(bits))
            return f if special else f * _F16_DENORM_SCALE
    else:
        def _dec(x):
            return np.float64(x)
    return cuda_device(_dec)


# --------------------------------------------------------------------------
# Disk cache for the kernels built by memoised factories
# --------------------------------------------------------------------------

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
