"""Our own reader of the safetensors format: validated header, memory-mapped data.

A safetensors file is an 8-byte little-endian header length ``N``, ``N``
bytes of UTF-8 JSON (``{name: {"dtype", "shape", "data_offsets": [begin,
end]}, "__metadata__": {str: str}}``; offsets relative to the byte buffer),
then the byte buffer.  :func:`read_header` reads and checks the header only;
:class:`SafetensorsFile` maps the file read-only on first access and returns
each tensor as a NumPy view of the map, so only the pages of the tensor being
drawn are ever read.  bfloat16 stays 16-bit: a torch ``bfloat16`` tensor over
the same pages when torch is installed, else a
:class:`~dlviz_gpu.checkpoints.bf16.BFloat16Array` over the raw bits.

Sharded sets (``*.safetensors.index.json``, ``{"weight_map": {name:
file}}``) are read by :func:`read_index`; the catalog opens each shard's map
only when one of its tensors is used.  A shard must lie inside the index's
folder (see :func:`dlviz_gpu.checkpoints.files.resolve_inside`).

**What is accepted.**  Exactly the files the reference parser (the Rust
crate behind the ``safetensors`` package, ``SafeTensors::read_metadata``)
accepts, read as the same bytes, with one exception: a header that names a
tensor twice is refused (the reference keeps the last entry silently; two
readers of such a file may disagree about what it holds).  In particular:

* the header is UTF-8 JSON as serde_json reads it: no ``NaN``/``Infinity``,
  no number beyond a 64-bit float's range, no lone UTF-16 surrogate escape,
  at most :data:`MAX_DEPTH` nested arrays/objects, whitespace around it only
  (the writer pads with spaces);
* each entry is ``{"dtype", "shape", "data_offsets"}`` (or the 3-array
  ``[dtype, shape, data_offsets]``; unknown extra fields are ignored), with
  64-bit unsigned integers; ``shape``'s product, and that times the dtype's
  bits, must not overflow 64 bits, and must fill whole bytes;
* the data buffer is covered exactly: sorted by offsets, each tensor starts
  where the previous one ends, the first at 0, the last at the end of the
  file -- no gaps, no overlaps, no trailing bytes;
* ``__metadata__`` is absent, ``null`` or an object of strings (a key named
  twice keeps its last value, as in the reference).

Every other input -- too short, header length past the end or over
:data:`MAX_HEADER_BYTES`, not a regular file, non-UTF-8 or invalid JSON,
unknown dtype, bad shape, offsets out of range, reversed, overlapping or
leaving gaps, byte counts that disagree with the shape, truncated data --
raises :class:`CheckpointError` naming the file and the problem in one line,
before anything is mapped or allocated.  Integers are bounded before they are
converted or multiplied, so a 5000-digit number costs nothing.

**Alignment.**  The format does not require a tensor's bytes to start at a
multiple of its element size (the reference writer pads the header so they
do; hand-made files need not).  :class:`SafetensorsFile` hands out views of
the map whatever their alignment (:meth:`SafetensorsFile.is_aligned` tells):
Numba types arrays without regard to alignment, so drawing one compiles no
new kernel, and the values read are the stored ones.
"""

from __future__ import annotations

import gc
import json
import math
import mmap
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .bf16 import BFloat16Array
from .errors import CheckpointError, CheckpointNotFound
from .files import check_regular, open_regular, resolve_inside

#: Largest header accepted, as in the reference implementation (100 MB).
MAX_HEADER_BYTES = 100_000_000

#: Deepest nesting of JSON arrays and objects accepted in a header: the
#: reference parser's JSON reader (serde_json) stops at 128 levels.
MAX_DEPTH = 127

# safetensors dtype code -> (bits per element, numpy dtype of the view or None, logical name)
# None: no NumPy dtype the engine reads (the tensor is listed; ``raw`` gives its bytes).
DTYPES: dict[str, tuple[int, object, str]] = {
    "BOOL": (8, np.dtype(np.bool_), "bool"),
    "U8": (8, np.dtype(np.uint8), "uint8"),
    "I8": (8, np.dtype(np.int8), "int8"),
    "U16": (16, np.dtype("<u2"), "uint16"),
    "I16": (16, np.dtype("<i2"), "int16"),
    "F16": (16, np.dtype("<f2"), "float16"),
    "BF16": (16, np.dtype("<u2"), "bfloat16"),
    "U32": (32, np.dtype("<u4"), "uint32"),
    "I32": (32, np.dtype("<i4"), "int32"),
    "F32": (32, np.dtype("<f4"), "float32"),
    "U64": (64, np.dtype("<u8"), "uint64"),
    "I64": (64, np.dtype("<i8"), "int64"),
    "F64": (64, np.dtype("<f8"), "float64"),
    "C64": (64, np.dtype("<c8"), "complex64"),
    "F8_E4M3": (8, None, "float8_e4m3fn"),
    "F8_E5M2": (8, None, "float8_e5m2"),
    "F8_E8M0": (8, None, "float8_e8m0fnu"),
    "F8_E4M3FNUZ": (8, None, "float8_e4m3fnuz"),
    "F8_E5M2FNUZ": (8, None, "float8_e5m2fnuz"),
    "F6_E2M3": (6, None, "float6_e2m3fn"),
    "F6_E3M2": (6, None, "float6_e3m2fn"),
    "F4": (4, None, "float4_e2m1fn"),
}

BF16_MODES = ("auto", "torch", "array", "bits")

_U64 = 2 ** 64 - 1            # shapes and offsets are 64-bit unsigned in the format
_NUMPY_MAX_DIM = 2 ** 63 - 1  # NumPy's dimensions are signed 64-bit
_NUMPY_MAX_DIMS = 64
_BITS = {code: bits for code, (bits, _, _) in DTYPES.items()}


class TensorSpec(NamedTuple):
    """One header entry, checked.

    A named tuple: a header of 500,000 tensors makes 500,000 of them, and a
    tuple is the cheapest immutable record to build.

    Attributes
    ----------
    name : str
    dtype : str
        The safetensors code (``"F32"``, ``"BF16"``, ...).
    shape : tuple of int
    begin, end : int
        Byte offsets in the data buffer (``end - begin`` bytes).
    """

    name: str
    dtype: str
    shape: tuple
    begin: int
    end: int

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.end - self.begin

    @property
    def dtype_name(self) -> str:
        """Logical dtype name: ``"float32"``, ``"bfloat16"``, ``"float8_e4m3fn"``, ..."""
        return DTYPES[self.dtype][2]

    @property
    def readable(self) -> bool:
        """Whether the tensor has a NumPy view (float8/6/4 have none)."""
        return DTYPES[self.dtype][1] is not None


@dataclass(frozen=True)
class Header:
    """A checked safetensors header.

    Attributes
    ----------
    path : str
    tensors : dict of str to TensorSpec
        In the order of the header.
    metadata : dict of str to str
    data_start : int
        File offset of the byte buffer (``8 + N``).
    data_size : int
        Bytes in the file after the header.
    """

    path: str
    tensors: dict
    metadata: dict
    data_start: int
    data_size: int


def _check_path(path) -> str:
    try:
        path = os.fspath(path)
    except TypeError:
        raise TypeError(f"path: expected a str or os.PathLike; got {type(path).__name__}") from None
    if not os.path.exists(path):
        raise CheckpointNotFound(path, "no such file")
    if os.path.isdir(path):
        raise CheckpointError(path, "is a directory, expected a .safetensors file")
    return path


@contextmanager
def paused_gc():
    """Pause Python's cyclic garbage collector for the duration of a ``with`` block.

    Parsing a header of 500,000 tensors makes millions of containers, none
    of them in a cycle; each burst of allocations would otherwise start a
    collection that walks all of them again (more than half the time of
    ``json.loads`` on such a header, and of building a catalog's tree).
    Nothing is lost while it is paused: objects are still freed when their
    last reference goes, and cycles are collected once it resumes.  It
    resumes on leaving the block if it was running on entering it (two
    threads overlapping may resume it early: slower, never wrong).
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


# --------------------------------------------------------------------------
# JSON as the reference parser reads it
# --------------------------------------------------------------------------

class _Refused(Exception):
    """A header problem found while parsing; ``args[0]`` is the problem, without the path."""


class _Repeated(dict):
    """A JSON object that names a key more than once: the last value kept (as serde_json's
    maps do), the repeated keys in ``repeated``."""

    __slots__ = ("repeated",)


_CONTAINERS = frozenset({dict, list, _Repeated})


def _object_pairs(pairs):
    d = dict(pairs)
    if len(d) == len(pairs):
        return d
    out = _Repeated(d)
    seen = set()
    out.repeated = [k for k, _ in pairs if k in seen or seen.add(k)]
    return out


def _no_constant(name):
    raise _Refused(f"header is not valid JSON: {name} is not a JSON number")


# serde_json's table of powers of ten (1e0 .. 1e308, each the nearest double)
_POW10 = [float(f"1e{k}") for k in range(309)]
_I32_MAX = 2 ** 31 - 1


def _serde_in_range(literal: str) -> bool:
    """Whether serde_json reads the JSON number ``literal`` without "number out of range".

    serde_json (as the Rust parser builds it, without its exact
    ``float_roundtrip`` feature) reads at most 64 bits of significand and
    scales it by one table power of ten; a result that overflows, or an
    exponent past the table, is an error.  This follows its steps
    (``parse_integer``, ``parse_long_integer``, ``parse_decimal``,
    ``parse_exponent``, ``f64_from_parts``) on the literal's digits, so it
    costs a few dozen operations however long the literal is.
    """
    text = literal[1:] if literal.startswith("-") else literal
    cut = max(text.find("e"), text.find("E"))
    mantissa, exp_text = (text[:cut], text[cut + 1:]) if cut >= 0 else (text, "")
    whole, _, frac = mantissa.partition(".")
    sig, used = 0, 0
    for c in whole:                         # digits while they fit 64 bits...
        v = sig * 10 + ord(c) - 48
        if v > _U64:
            break
        sig, used = v, used + 1
    exponent = len(whole) - used            # ...the rest only scale it
    for c in frac:
        v = sig * 10 + ord(c) - 48
        if v > _U64:
            break                           # further digits are ignored
        sig, exponent = v, exponent - 1
    if exp_text:
        positive = not exp_text.startswith("-")
        digits = exp_text.lstrip("+-")
        e = 0
        for c in digits:
            e = e * 10 + ord(c) - 48
            if e > _I32_MAX:                # an exponent that overflows 32 bits
                return sig == 0 or not positive
        exponent = exponent + e if positive else exponent - e
        exponent = max(-2 ** 31, min(_I32_MAX, exponent))     # saturating, as i32
    f = float(sig)
    while True:
        if abs(exponent) <= 308:
            return exponent < 0 or not math.isinf(f * _POW10[exponent])
        if f == 0.0:
            return True
        if exponent >= 0:
            return False
        f /= 1e308
        exponent += 308


def _finite_float(text: str) -> float:
    if not _serde_in_range(text):
        raise _Refused(f"header holds the number {_clip(text)}, beyond the range of a 64-bit "
                       f"float")
    return float(text)


def _bounded_int(text: str):
    # serde_json reads an integer that does not fit 64 bits as a float, so one beyond a
    # float's range is an error there; that is decided on the digits, so a 5000-digit
    # literal is refused before Python converts it (int() refuses more than 4300 digits)
    digits = len(text) - (text[0] == "-")
    if digits > 19 and not _serde_in_range(text):
        raise _Refused(f"header holds a {digits}-digit integer, beyond the range of a 64-bit "
                       f"float")
    if text == "-0":
        return -0.0          # a float for serde_json, so never a valid size or offset
    return int(text)


def _clip(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else f"{text[:limit - 3]}..."


def _short(v, limit: int = 80) -> str:
    if isinstance(v, str):
        s = repr(v)
    else:
        try:
            s = json.dumps(v)
        except (ValueError, RecursionError):
            s = f"a JSON {type(v).__name__}"
    return _clip(s, limit)


def _parse(text: str, what: str):
    """``text`` as the reference parser's JSON reader reads it, or :class:`_Refused`.

    The fast path is the C JSON decoder with no per-value hooks.  It is taken
    only when the text cannot hold what that decoder reads differently from
    serde_json: a ``\\u`` escape (a key spelled with escapes could repeat
    another), ``-0`` (an integer for Python, a float for serde_json), or a
    repeated field (seen from the counts of the three field names); otherwise
    the slow path decodes with hooks that see every integer and every object.
    """
    counts = None
    if "\\u" not in text and "-0" not in text:
        counts = (text.count('"dtype"'), text.count('"shape"'), text.count('"data_offsets"'),
                  text.count('"__metadata__"'))
        try:
            obj = json.loads(text, parse_constant=_no_constant, parse_float=_finite_float)
        except json.JSONDecodeError:
            counts = None
        except ValueError:
            counts = None    # an integer beyond Python's digit limit: the slow path says so
        except RecursionError:
            raise _Refused(f"{what} is nested too deeply (more than {MAX_DEPTH} levels of "
                           f"arrays and objects)") from None
        else:
            if isinstance(obj, dict):
                n = len(obj) - ("__metadata__" in obj)
                if counts[3] <= 1 and counts[0] == counts[1] == counts[2] == n:
                    return obj
            else:
                return obj
    try:
        return json.loads(text, parse_constant=_no_constant, parse_float=_finite_float,
                          parse_int=_bounded_int, object_pairs_hook=_object_pairs)
    except json.JSONDecodeError as e:
        raise _Refused(f"{what} is not valid JSON: {e.msg} at line {e.lineno} column "
                       f"{e.colno}") from None
    except RecursionError:
        raise _Refused(f"{what} is nested too deeply (more than {MAX_DEPTH} levels of arrays "
                       f"and objects)") from None


def _check_surrogates(text: str, what: str) -> None:
    """Refuse a ``\\u`` escape of a lone UTF-16 surrogate (serde_json refuses it)."""
    if "\\ud" not in text and "\\uD" not in text:
        return
    for m in _SURROGATE.finditer(text):
        if m.group(3) is not None or m.group(2) is None:
            code = m.group(1) or m.group(3)
            raise _Refused(f"{what} is not valid JSON: \\u{code} is a lone UTF-16 surrogate")


# an escape of a UTF-16 surrogate: a high one (and the low one after it, if any) or a
# low one on its own; an even run of backslashes before it are escaped backslashes
_SURROGATE = re.compile(r"(?<!\\)(?:\\\\)*\\u([dD][89abAB][0-9a-fA-F]{2})"
                        r"(\\u[dD][c-fC-F][0-9a-fA-F]{2})?"
                        r"|(?<!\\)(?:\\\\)*\\u([dD][c-fC-F][0-9a-fA-F]{2})")


_CONTAINERS = frozenset({dict, list, _Repeated})


def _check_value(value, depth: int, where: str) -> None:
    """Check a JSON value the reference reads and ignores (an unknown field of an entry).

    It must still be one serde_json reads: nested at most :data:`MAX_DEPTH`
    deep in all (``depth`` is the nesting of the object holding it) and
    every integer within a 64-bit float's range.  Walked a level at a time
    with list comprehensions, so five million empty lists take a fraction of
    a second and no more memory than one list of them.
    """
    level = [value]                     # the values held by containers at ``depth``
    while level:
        for x in [x for x in level if type(x) is int and (x > _U64 or x < -_U64)]:
            if not _serde_in_range(str(x)):
                raise _Refused(f"{where} holds an integer beyond the range of a 64-bit float")
        containers = [x for x in level if type(x) in _CONTAINERS]
        if not containers:
            return
        depth += 1
        if depth > MAX_DEPTH:
            raise _Refused(f"{where} is nested too deeply (more than {MAX_DEPTH} levels of "
                           f"arrays and objects)")
        level = []
        for c in containers:
            if c:
                level += c.values() if isinstance(c, dict) else c


# --------------------------------------------------------------------------
# The header
# --------------------------------------------------------------------------

def read_header(path) -> Header:
    """Read and check the header of a safetensors file (no tensor data is read).

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    Header

    Raises
    ------
    CheckpointError
        The file is missing, not a regular file, too short, or its header is
        malformed or lies about the data (see the module docstring).
    """
    path = _check_path(path)
    with open_regular(path) as f:
        size = os.fstat(f.fileno()).st_size
        if size < 8:
            raise CheckpointError(path, f"file is {size} bytes, shorter than the 8-byte header "
                                        f"length that starts a safetensors file")
        n = int.from_bytes(f.read(8), "little")
        if n == 0:
            raise CheckpointError(path, "header length is 0; a safetensors header is a JSON "
                                        "object of at least 2 bytes")
        if n > size - 8:
            raise CheckpointError(path, f"header length {n} runs past the end of the file "
                                        f"({size} bytes): truncated file or not a safetensors "
                                        f"file")
        if n > MAX_HEADER_BYTES:
            raise CheckpointError(path, f"header length {n} exceeds the {MAX_HEADER_BYTES} "
                                        f"byte limit")
        raw = f.read(n)
    if len(raw) != n:
        raise CheckpointError(path, f"file shrank while reading its {n}-byte header")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CheckpointError(path, f"header is not valid UTF-8 (byte 0x{raw[e.start]:02x} at "
                                    f"position {e.start})") from None
    del raw
    data_size = size - 8 - n
    try:
        with paused_gc():
            tensors, metadata = _check_header(text, data_size)
    except _Refused as e:
        raise CheckpointError(path, e.args[0]) from None
    return Header(path=path, tensors=tensors, metadata=metadata, data_start=8 + n,
                  data_size=data_size)


def _check_header(text: str, data_size: int) -> tuple[dict, dict]:
    """(tensors, metadata) of a header's text, or :class:`_Refused`."""
    _check_surrogates(text, "header")
    obj = _parse(text, "header")
    if not isinstance(obj, dict):
        raise _Refused(f"header is a JSON {type(obj).__name__}, expected an object of tensors")
    if isinstance(obj, _Repeated):
        # one rule for every repeated name; the reference also refuses a repeated
        # __metadata__, and keeps the last of a repeated tensor
        raise _Refused(f"header names {obj.repeated[0]!r} twice")
    metadata = obj.pop("__metadata__", None)
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict) or not all(type(v) is str for v in metadata.values()):
        raise _Refused(f"__metadata__ must be an object of strings; got {_short(metadata)}")
    tensors = {}
    spans = []
    append = spans.append
    bits_of = _BITS
    new = tuple.__new__
    for name, entry in obj.items():
        # the common case inline (an object of exactly the three fields, sizes that fit);
        # anything else goes through _check_entry, which says what is wrong
        if type(entry) is dict and len(entry) == 3:
            dtype = entry.get("dtype")
            shape = entry.get("shape")
            offsets = entry.get("data_offsets")
            bits = bits_of.get(dtype) if type(dtype) is str else None
            if (bits is not None and type(shape) is list and type(offsets) is list
                    and len(offsets) == 2):
                begin, end = offsets
                if (type(begin) is int and type(end) is int and 0 <= begin <= end <= data_size):
                    numel = 1
                    for d in shape:
                        if type(d) is not int or d < 0 or d > _U64:
                            break
                        numel *= d
                        if numel > _U64:
                            break
                    else:
                        nbits = numel * bits
                        if nbits <= _U64 and nbits == (end - begin) * 8:
                            tensors[name] = new(TensorSpec, (name, dtype, tuple(shape), begin,
                                                             end))
                            append((begin, end, name))
                            continue
        spec = _check_entry(name, entry, data_size)
        tensors[name] = spec
        spans.append((spec.begin, spec.end, name))
    _check_coverage(spans, data_size)
    return tensors, dict(metadata)


def _check_entry(name: str, entry, data_size: int) -> TensorSpec:
    """One entry checked field by field (the slow path, with the problem named)."""
    where = f"tensor {name!r}"
    if type(entry) is list and len(entry) == 3:
        # serde reads a struct from an array of its fields in order
        entry = dict(zip(("dtype", "shape", "data_offsets"), entry))
    elif not isinstance(entry, dict):
        raise _Refused(f"{where}: expected an object with dtype, shape and data_offsets; got "
                       f"{_short(entry)}")
    if isinstance(entry, _Repeated):
        twice = [k for k in entry.repeated if k in ("dtype", "shape", "data_offsets")]
        if twice:
            raise _Refused(f"{where}: names {twice[0]!r} twice")
    missing = [k for k in ("dtype", "shape", "data_offsets") if k not in entry]
    if missing:
        raise _Refused(f"{where}: missing {', '.join(missing)}")
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if (type(dtype) is dict and len(dtype) == 1 and next(iter(dtype.values())) is None
            and not isinstance(dtype, _Repeated)):
        dtype = next(iter(dtype))      # serde's other spelling of a unit enum: {"F32": null}
    if type(dtype) is not str or dtype not in DTYPES:
        raise _Refused(f"{where}: unknown dtype {_short(dtype)}; expected one of "
                       f"{', '.join(DTYPES)}")
    if type(shape) is not list or not all(type(d) is int and 0 <= d <= _U64 for d in shape):
        raise _Refused(f"{where}: shape must be a list of non-negative integers; got "
                       f"{_short(shape)}")
    if (type(offsets) is not list or len(offsets) != 2
            or not all(type(o) is int and 0 <= o <= _U64 for o in offsets)):
        raise _Refused(f"{where}: data_offsets must be two non-negative integers [begin, end]; "
                       f"got {_short(offsets)}")
    for key, value in entry.items():
        if key not in ("dtype", "shape", "data_offsets"):
            _check_value(value, 2, f"{where}: field {_short(key, 40)}")
    begin, end = offsets
    if begin > end:
        raise _Refused(f"{where}: data_offsets [{begin}, {end}] begin after they end")
    if end > data_size:
        raise _Refused(f"{where}: data_offsets [{begin}, {end}] run past the end of the data "
                       f"buffer ({data_size} bytes after the header): the file is truncated "
                       f"or the offsets are wrong")
    numel = 1
    for d in shape:                    # bounded at every step, as the reference does
        numel *= d
        if numel > _U64:
            raise _Refused(f"{where}: shape {_short(shape)} has more than 2^64 elements")
    bits = DTYPES[dtype][0]
    nbits = numel * bits
    if nbits > _U64:
        raise _Refused(f"{where}: shape {_short(shape)} of dtype {dtype} needs 2^64 bits or "
                       f"more")
    if nbits % 8 or nbits // 8 != end - begin:
        need = f"{nbits / 8:g}"
        raise _Refused(f"{where}: shape {list(shape)} of dtype {dtype} needs {need} bytes but "
                       f"data_offsets [{begin}, {end}] hold {end - begin}")
    return TensorSpec(name=name, dtype=dtype, shape=tuple(shape), begin=begin, end=end)


def _check_coverage(spans: list, data_size: int) -> None:
    """The tensors must tile the data buffer exactly: from 0, no gaps, no overlaps, to the end.

    ``spans`` is ``(begin, end, name)`` per tensor in header order.  The
    reference sorts by ``(begin, end)`` and walks; the header's own order is
    tried first, since writers put tensors in offset order (when it walks,
    it is one of the sorted orders).
    """
    pos = 0
    for begin, end, _ in spans:
        if begin != pos:
            break
        pos = end
    else:
        if pos != data_size:
            raise _Refused(f"the tensors cover {pos} bytes of the data buffer but it holds "
                           f"{data_size}: the header length or the offsets are wrong")
        return
    spans = sorted(spans, key=lambda s: (s[0], s[1]))
    prev, pos = None, 0
    for begin, end, name in spans:
        if begin < pos:
            raise _Refused(f"tensors {prev[2]!r} [{prev[0]}, {prev[1]}] and {name!r} [{begin}, "
                           f"{end}] overlap in the data buffer")
        if begin > pos:
            after = (f"after tensor {prev[2]!r} [{prev[0]}, {prev[1]}]" if prev is not None
                     else "at the start")
            raise _Refused(f"the data buffer has {begin - pos} unused bytes {after}: tensor "
                           f"{name!r} starts at {begin}; the offsets must cover it without "
                           f"gaps")
        prev, pos = (begin, end, name), end
    if pos != data_size:
        raise _Refused(f"the tensors cover {pos} bytes of the data buffer but it holds "
                       f"{data_size}: the header length or the offsets are wrong")


# --------------------------------------------------------------------------
# Reading tensors
# --------------------------------------------------------------------------

def _numpy_holds(shape: tuple, itemsize: int) -> bool:
    """Whether NumPy can make an array of ``shape``: it counts the bytes the non-zero
    dimensions would span, even when another dimension is 0."""
    if len(shape) > _NUMPY_MAX_DIMS:
        return False
    span = itemsize
    for d in shape:
        if d:
            span *= d
            if span > _NUMPY_MAX_DIM:
                return False
    return True


def _torch_available() -> bool:
    import importlib.util
    import sys

    return "torch" in sys.modules or importlib.util.find_spec("torch") is not None


class SafetensorsFile:
    """A safetensors file: checked header now, memory map on first access.

    Parameters
    ----------
    path : str or os.PathLike
    header : Header, optional
        An already checked header of ``path`` (skips reading it again).
    bf16 : {"auto", "torch", "array", "bits"}
        How bfloat16 tensors are returned: ``"torch"`` a torch ``bfloat16``
        tensor over the map; ``"array"`` a :class:`BFloat16Array`; ``"bits"``
        the raw ``uint16`` view; ``"auto"`` torch when it is installed, else
        a :class:`BFloat16Array`.  None of them copies.

    Examples
    --------
    >>> f = SafetensorsFile("model.safetensors")
    >>> f.names, f.spec("lm_head.weight").shape
    >>> w = f["lm_head.weight"]          # a view of the map; no data read yet
    """

    def __init__(self, path, header: Header | None = None, bf16: str = "auto"):
        if bf16 not in BF16_MODES:
            raise ValueError(f"bf16: expected one of {', '.join(map(repr, BF16_MODES))}; got "
                             f"{bf16!r}")
        self.header = header if header is not None else read_header(path)
        self.path = self.header.path
        self.bf16 = bf16
        self._map = None

    # -- header ------------------------------------------------------------
    @property
    def names(self) -> list:
        return list(self.header.tensors)

    @property
    def metadata(self) -> dict:
        return self.header.metadata

    def spec(self, name: str) -> TensorSpec:
        try:
            return self.header.tensors[name]
        except KeyError:
            raise KeyError(f"{self.path}: no tensor named {name!r}") from None

    def __contains__(self, name) -> bool:
        return name in self.header.tensors

    def __len__(self) -> int:
        return len(self.header.tensors)

    def __iter__(self):
        return iter(self.header.tensors)

    def __repr__(self) -> str:
        return f"SafetensorsFile({self.path!r}, {len(self)} tensors)"

    def is_aligned(self, name: str) -> bool:
        """Whether the tensor's bytes start at a multiple of its element size in the file.

        The map starts on a page boundary, so this is whether its view is an
        aligned array.  Files written by the reference writer are aligned (it
        pads the header to 8 bytes); the format allows others, whose views
        NumPy marks unaligned and which read and draw the same values.
        """
        s = self.spec(name)
        np_dtype = DTYPES[s.dtype][1]
        size = 1 if np_dtype is None else np_dtype.itemsize
        return (self.header.data_start + s.begin) % size == 0

    # -- data --------------------------------------------------------------
    def _mapped(self) -> mmap.mmap:
        if self._map is None:
            need = self.header.data_start + self.header.data_size
            with open_regular(self.path) as f:
                size = os.fstat(f.fileno()).st_size
                if size != need:
                    raise CheckpointError(self.path, f"file changed since its header was read "
                                                     f"({need} bytes then, {size} now)")
                # a read-only map of the whole file: pages are read when touched
                self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        return self._map

    def raw(self, name: str) -> np.ndarray:
        """The tensor's bytes as a read-only ``uint8`` view of the map."""
        s = self.spec(name)
        return np.frombuffer(self._mapped(), dtype=np.uint8, count=s.nbytes,
                             offset=self.header.data_start + s.begin)

    def bits(self, name: str) -> np.ndarray:
        """The tensor as a read-only NumPy view of the map, in its storage dtype.

        bfloat16 comes back as ``uint16`` bit patterns.

        Raises
        ------
        TypeError
            For dtypes with no NumPy view (float8, float6, float4); use :meth:`raw`.
        CheckpointError
            For a shape NumPy cannot hold: more than 64 dimensions, or one of
            2^63 or more (the format allows both for a tensor with no
            elements, and :meth:`raw` gives its bytes).
        """
        s = self.spec(name)
        np_dtype = DTYPES[s.dtype][1]
        if np_dtype is None:
            raise TypeError(f"{self.path}: tensor {name!r} has dtype {s.dtype} "
                            f"({s.dtype_name}), which dlviz_gpu cannot decode yet; "
                            f".raw(name) gives its bytes")
        if not _numpy_holds(s.shape, np_dtype.itemsize):
            raise CheckpointError(self.path, f"tensor {name!r}: shape {_short(list(s.shape))} "
                                             f"is more than NumPy can hold (at most "
                                             f"{_NUMPY_MAX_DIMS} dimensions, whose non-zero "
                                             f"ones span less than 2^63 bytes)")
        mm = self._mapped()
        arr = np.frombuffer(mm, dtype=np_dtype, count=s.numel,
                            offset=self.header.data_start + s.begin)
        return arr.reshape(s.shape)

    def get(self, name: str, bf16: str | None = None):
        """The tensor, read in place (see ``bf16`` in the class docstring)."""
        mode = self.bf16 if bf16 is None else bf16
        if mode not in BF16_MODES:
            raise ValueError(f"bf16: expected one of {', '.join(map(repr, BF16_MODES))}; got "
                             f"{mode!r}")
        arr = self.bits(name)
        if self.header.tensors[name].dtype != "BF16" or mode == "bits":
            return arr
        if mode == "array" or (mode == "auto" and not _torch_available()):
            return BFloat16Array(arr, owner=self)
        return BFloat16Array(arr, owner=self).to_torch()

    __getitem__ = get

    def close(self) -> None:
        """Drop this object's reference to the map (views already handed out keep it)."""
        self._map = None


# --------------------------------------------------------------------------
# Sharded sets
# --------------------------------------------------------------------------

def read_index(path) -> dict:
    """Read a sharded-checkpoint index (``*.index.json``) and check its shards.

    Parameters
    ----------
    path : str or os.PathLike
        A JSON file ``{"metadata": {...}, "weight_map": {tensor: shard file}}``;
        shard files are relative to the index's folder.

    Returns
    -------
    dict of str to str
        Tensor name -> absolute shard path, in the index's order.

    Raises
    ------
    CheckpointError
        Missing or malformed index; a shard named by an absolute path, with a
        ``..`` component, or through a symlink leaving the index's folder
        (one message for all of them, given before anything is looked up
        there: "shard 'NAME' is outside the index's folder"; a Hugging Face
        hub cache snapshot may point into its repository's ``blobs``); a
        shard that does not exist or is not a regular file.
    """
    path = _check_path(path)
    with open_regular(path) as f:
        size = os.fstat(f.fileno()).st_size
        if size > MAX_HEADER_BYTES:
            raise CheckpointError(path, f"index is {size} bytes, over the {MAX_HEADER_BYTES} "
                                        f"byte limit")
        raw = f.read(MAX_HEADER_BYTES + 1)
    try:
        obj = json.loads(raw.decode("utf-8"), parse_constant=_no_constant,
                         parse_int=_bounded_int)
    except UnicodeDecodeError as e:
        raise CheckpointError(path, f"index is not valid UTF-8 (position {e.start})") from None
    except json.JSONDecodeError as e:
        raise CheckpointError(path, f"index is not valid JSON: {e.msg} at line {e.lineno} "
                                    f"column {e.colno}") from None
    except RecursionError:
        raise CheckpointError(path, "index JSON is nested too deeply") from None
    except _Refused as e:
        raise CheckpointError(path, e.args[0].replace("header", "index", 1)) from None
    wm = obj.get("weight_map") if isinstance(obj, dict) else None
    if not isinstance(wm, dict) or not all(isinstance(v, str) and v for v in wm.values()):
        raise CheckpointError(path, "index must be a JSON object whose \"weight_map\" maps "
                                    "tensor names to shard file names")
    if not wm:
        raise CheckpointError(path, "index \"weight_map\" lists no tensors")
    folder = os.path.dirname(os.path.abspath(path))
    shards = {}
    for name, file in wm.items():
        if file in shards:
            continue
        # where the name leads is checked before anything there is looked up, so the
        # error is the same whether or not a file exists outside the folder
        resolve_inside(path, file)
        full = os.path.normpath(os.path.join(folder, file))
        try:
            check_regular(full)
        except CheckpointNotFound:
            raise CheckpointError(path, f"shard {file!r} (holding {name!r}) does not exist "
                                        f"in {folder}") from None
        except CheckpointError as e:
            raise CheckpointError(path, f"shard {file!r} (holding {name!r}) "
                                        f"{e.problem}") from None
        shards[file] = full
    return {name: shards[file] for name, file in wm.items()}
