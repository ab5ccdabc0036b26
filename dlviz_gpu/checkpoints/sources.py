"""Where tensors come from: files and in-memory objects, each opened lazily.

Every source lists its tensors as :class:`TensorInfo` records without reading
tensor data, and returns one tensor on request, read in place wherever the
format allows:

=====================================  =========================================
safetensors (single or sharded)        memory-mapped; views of the map
``.npy`` / uncompressed ``.npz``       memory-mapped; views of the map
compressed ``.npz`` member             inflated on access, into one array
torch ``.pt`` / ``.pth`` / ``.bin``    ``torch.load(weights_only=True, mmap=True)``
``nn.Module`` / state dict             the tensors themselves
=====================================  =========================================

**Files are untrusted.**  Every file is opened with
:func:`~dlviz_gpu.checkpoints.files.open_regular` (a FIFO or device is refused,
never waited on), and every size a file declares is checked against what the
file can hold before anything is allocated, inflated or walked, so a refusal
costs time and memory bounded by the file's own size, whatever it claims.  A
refusal is a :class:`~dlviz_gpu.checkpoints.errors.CheckpointError`: one line,
``PATH: problem``.  In particular:

* ``.npy`` headers (alone or in an ``.npz``) are read by our own reader:
  numpy's :data:`MAX_NPY_HEADER` byte limit is applied *before* the header is
  read, a number longer than 19 digits (no dimension is) is refused before
  anything converts it, and the shape must be at most 64 non-negative
  dimensions whose byte count NumPy can address.  ``object`` arrays are
  refused (they would need unpickling).
* ``.npz`` members: at most :data:`MAX_NPZ_MEMBERS`; stored or deflated only,
  never encrypted; a deflated member may not declare more than deflate's
  largest possible expansion (:data:`DEFLATE_MAX_RATIO` times its compressed
  size).  Listing inflates a member's header only.  Reading a deflated member
  inflates it streamed, straight into one array of the size the header
  declares (the memory the tensor needs, plus one chunk); a member that
  inflates to more or fewer bytes than it declares, fails its CRC, or holds a
  corrupted deflate stream is refused.
* torch files need torch >= 2.6 (:data:`MIN_TORCH`: earlier
  ``weights_only=True`` loading can be bypassed to run code,
  CVE-2025-32434).  Before any unpickler runs, the pickle's opcodes are read
  (nothing built): nesting deeper than :data:`MAX_NESTING` (a tuple nested
  10^5 deep as a dict key crashes any unpickler: hashing it overflows the C
  stack) and more than :data:`MAX_COLLIDING_KEYS` number keys of one dict
  with one hash value (quadratic to insert) are refused.  Then the pickle is
  scanned by Python's C unpickler with every global replaced by an inert
  stand-in (nothing is imported or called): containers nested too deeply or
  containing themselves are refused, and every storage must claim exactly
  the bytes its record in the zip archive holds (``mmap=True`` loading would
  otherwise read past it); duplicate or compressed records are refused.  A
  file the scan cannot follow is loaded without ``mmap``, where torch checks
  the record sizes itself.  The loaded containers are walked iteratively
  (:func:`flatten`): a container reached a second time is listed once (the
  later path appears in ``skipped``).
* **Expanded and overlapping torch tensors** are *listed, and refused when
  read or drawn*: a tensor whose elements span fewer stored elements than it
  has (``torch.zeros(1).expand(10**7, 10**7)`` spans one element and claims
  10^14) would have the kernels walk elements that are not in the file.  Its
  :attr:`TensorInfo.problem` says why, with the stored and claimed sizes;
  ``catalog[name]`` and ``catalog.matrix(name)`` raise ``CheckpointError``
  with that text.  Listing stays as fast as for any other file.  Sparse and
  other non-strided tensors are listed the same way.
"""

from __future__ import annotations

import ast
import io
import math
import mmap
import os
import pickle
import pickletools
import re
import struct
import stat
import sys
import warnings
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ..optional import is_torch_tensor
from .errors import CheckpointError, CheckpointNotFound
from .files import file_type, open_regular
from .safetensors import SafetensorsFile, read_header

KINDS = ("parameter", "buffer", "tensor")

#: Containers (dicts, lists, tuples) nested deeper than this in a torch file
#: are refused; real checkpoints nest a handful of levels.
MAX_NESTING = 127

#: Non-tensor entries recorded by name in ``skipped``; the rest are counted.
MAX_SKIPPED = 1000

#: numpy's own limit on a ``.npy`` header (``numpy.lib.format``'s
#: ``max_header_size`` default); larger headers need ``allow_pickle``.
MAX_NPY_HEADER = 10_000

#: Most ``.npy`` members an ``.npz`` may hold (reading the zip directory costs
#: about 0.6 KB and 10-50 us per member).
MAX_NPZ_MEMBERS = 100_000

#: Deflate's largest possible expansion: 258 bytes from 2 bits.
DEFLATE_MAX_RATIO = 1032

#: The oldest torch whose ``weights_only=True`` loading is not known to be
#: bypassable (CVE-2025-32434 affects every earlier version).
MIN_TORCH = (2, 6)

# bytes inflated (or copied) per step when reading a compressed member
_CHUNK = 1 << 20
# NumPy's largest array, in bytes
_MAX_NBYTES = np.iinfo(np.intp).max


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of a catalog, described without reading it.

    Attributes
    ----------
    name : str
        Full name, e.g. ``"model.layers.0.mlp.up_proj.weight"``.
    module : str
        The name without its last component (``""`` at the top level).
    shape : tuple of int
    dtype : str
        ``"float32"``, ``"bfloat16"``, ``"int8"``, ... (``"float8_e4m3fn"``
        and other dtypes the engine cannot decode are listed too).
    params : int
        Number of elements.
    nbytes : int
        Bytes of storage (elements times their size, as the file declares).
    source : str
        The file it lives in, or ``"<memory>"``.
    kind : {"parameter", "buffer", "tensor"}
        ``"tensor"`` where the source does not say (files).
    tied_to : str or None
        The earlier name of the same storage (tied weights), else None.
    problem : str or None
        Why the tensor is listed but cannot be read or drawn (an expanded view
        of a torch file claiming more elements than it stores, a sparse
        tensor), else None.
    """

    name: str
    module: str
    shape: tuple
    dtype: str
    params: int
    nbytes: int
    source: str
    kind: str = "tensor"
    tied_to: str | None = None
    problem: str | None = None

    def as_row(self) -> dict:
        return {"name": self.name, "module": self.module, "shape": self.shape,
                "dtype": self.dtype, "params": self.params, "bytes": self.nbytes,
                "source": self.source, "kind": self.kind, "tied_to": self.tied_to}


NAME_SEP = re.compile(r"[./]")
_DIGIT_RUNS = re.compile(r"(\d+)")
# int() refuses longer decimal strings (sys.int_max_str_digits defaults to 4300)
_MAX_KEY_DIGITS = 4000


def module_of(name: str) -> str:
    """The module path of a tensor name: everything before its last ``.`` or ``/``."""
    cut = max(name.rfind("."), name.rfind("/"))
    return name[:cut] if cut > 0 else ""


def _run_value(run: str) -> int:
    # a name is data: a run of 5000 digits must not make int() raise
    return int(run) if len(run) <= _MAX_KEY_DIGITS else int(run[:_MAX_KEY_DIGITS])


def natural_key(name: str) -> list:
    """Sort key putting ``layers.2`` before ``layers.10``.

    The name split into text and digit runs, alternately (text first, maybe
    empty), with each digit run as its number: keys compare text with text
    and numbers with numbers.  A digit run longer than 4000 digits compares
    by its first 4000.
    """
    parts = _DIGIT_RUNS.split(name)
    if len(parts) > 1:
        # no run is longer than the name: int() itself where it cannot refuse
        parts[1::2] = map(int if len(name) <= _MAX_KEY_DIGITS else _run_value, parts[1::2])
    return parts


def _info(name, shape, dtype, nbytes, source, kind="tensor", tied_to=None,
          problem=None) -> TensorInfo:
    shape = tuple(map(int, shape))
    # TensorInfo is frozen: its generated __init__ sets each field through
    # object.__setattr__, a third of the cost of listing a 500k-tensor header;
    # filling the instance dict directly gives the same object
    info = object.__new__(TensorInfo)
    info.__dict__.update(name=name, module=module_of(name), shape=shape, dtype=dtype,
                         params=math.prod(shape), nbytes=int(nbytes), source=source,
                         kind=kind, tied_to=tied_to, problem=problem)
    return info


class Source:
    """Base class: ``infos`` lists the tensors, ``get`` returns one."""

    path: str = "<memory>"
    infos: list

    def get(self, name: str, bf16: str):
        raise NotImplementedError

    def matrix(self, name: str, layout: str, bf16: str):
        from ..tensors import as_matrix

        return as_matrix(self.get(name, "auto" if bf16 == "bits" else bf16), layout=layout)

    def close(self) -> None:
        pass


# --------------------------------------------------------------------------
# safetensors
# --------------------------------------------------------------------------

class SafetensorsSource(Source):
    """One safetensors file, or the tensors of a sharded set that live in it."""

    def __init__(self, path, names=None, header=None, index=None):
        self.file = SafetensorsFile(path, header=header)
        self.path = self.file.path
        tensors = self.file.header.tensors
        if names is None:
            names = sorted(tensors, key=natural_key)
        else:
            lacking = [n for n in names if n not in tensors]
            if lacking:
                raise CheckpointError(index or self.path,
                                      f"shard {os.path.basename(self.path)!r} lacks "
                                      f"{len(lacking)} tensor(s) the index assigns to it, "
                                      f"e.g. {lacking[0]!r}")
        path = self.path
        # one lookup per tensor: this loop runs once per entry of the header
        # (500,000 in the largest headers we list)
        self.infos = [_info(n, s.shape, s.dtype_name, s.nbytes, path)
                      for n, s in zip(names, map(tensors.__getitem__, names))]

    def get(self, name, bf16):
        return self.file.get(name, bf16=bf16)

    def matrix(self, name, layout, bf16):
        if self.file.spec(name).dtype == "BF16":
            from .bf16 import BFloat16Array

            return BFloat16Array(self.file.bits(name), owner=self.file).matrix(layout)
        return super().matrix(name, layout, bf16)

    def raw(self, name):
        return self.file.raw(name)

    def close(self):
        self.file.close()


# --------------------------------------------------------------------------
# NumPy files
# --------------------------------------------------------------------------

_NPY_MAGIC = b"\x93NUMPY"
# format version -> (struct format of the header length, header encoding)
_NPY_VERSIONS = {(1, 0): ("<H", "latin1"), (2, 0): ("<I", "latin1"), (3, 0): ("<I", "utf8")}
_NPY_KEYS = {"descr", "fortran_order", "shape"}
_NPY_MAX_DIMS = 64
# no dimension an array can have (< 2**63) is written with more than 19 digits
_LONG_NUMBER = re.compile(r"\d{20,}")
# Python 2 wrote long integers as 3L; numpy still reads such headers
_PY2_LONG = re.compile(r"\b(\d+)[lL]\b")


def _npy_header(read, path, member=None):
    """``(shape, fortran_order, dtype, header bytes)`` of a ``.npy`` stream at its start.

    ``read(n)`` returns at most ``n`` bytes.  The header is bounded before it
    is read and every number in it before it is converted; see the module
    docstring for what is refused.
    """
    where = f"member {member!r}: " if member is not None else ""

    def refused(problem):
        return CheckpointError(path, f"{where}not a valid .npy array: {problem}")

    head = read(8)
    if len(head) < 8 or head[:6] != _NPY_MAGIC:
        raise refused("it does not start with numpy's magic string")
    version = (head[6], head[7])
    if version not in _NPY_VERSIONS:
        raise refused(f"unknown format version {version[0]}.{version[1]}")
    fmt, encoding = _NPY_VERSIONS[version]
    field = read(struct.calcsize(fmt))
    if len(field) < struct.calcsize(fmt):
        raise refused("it ends inside its header: truncated")
    hlen = struct.unpack(fmt, field)[0]
    # numpy's limit is on characters; a UTF-8 character takes up to 4 bytes
    if hlen > MAX_NPY_HEADER * (4 if encoding == "utf8" else 1):
        raise refused(f"its header is {hlen} bytes, over numpy's limit of {MAX_NPY_HEADER}")
    raw = read(hlen)
    if len(raw) < hlen:
        raise refused(f"its header ends after {len(raw)} of {hlen} bytes: truncated")
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError:
        raise refused(f"its header is not {encoding} text") from None
    if len(text) > MAX_NPY_HEADER:
        raise refused(f"its header is {len(text)} characters, over numpy's limit of "
                      f"{MAX_NPY_HEADER}")
    long = _LONG_NUMBER.search(text)
    if long:
        raise refused(f"its header holds a {len(long.group())}-digit number; no dimension "
                      f"has more than 19")
    d = _literal(text)
    if d is None and version <= (2, 0):
        d = _literal(_PY2_LONG.sub(r"\1", text))
    if not isinstance(d, dict):
        raise refused("its header is not a Python dict literal")
    if set(d) != _NPY_KEYS:
        raise refused(f"its header has keys {sorted(map(str, d))}; expected 'descr', "
                      f"'fortran_order' and 'shape'")
    shape, fortran = d["shape"], d["fortran_order"]
    if not isinstance(shape, tuple) or not all(isinstance(n, int) for n in shape):
        raise refused("its shape is not a tuple of integers")
    if len(shape) > _NPY_MAX_DIMS:
        raise refused(f"its shape has {len(shape)} dimensions; numpy allows at most "
                      f"{_NPY_MAX_DIMS}")
    shape = tuple(int(n) for n in shape)
    if any(n < 0 for n in shape):
        raise refused(f"its shape {shape} has a negative dimension")
    if not isinstance(fortran, bool):
        raise refused("its fortran_order is not True or False")
    try:
        dtype = np.lib.format.descr_to_dtype(d["descr"])
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, RecursionError,
            MemoryError, OverflowError) as e:
        text = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise refused(f"its descr is not a dtype numpy reads ({text})") from None
    if dtype.hasobject:
        raise CheckpointError(path, f"{where}holds Python objects (dtype {dtype}), which would "
                                    f"need unpickling; refused (allow_pickle=False)")
    # every dimension but zeros, so (0, 10**18) is refused like (1, 10**18)
    if math.prod(n for n in shape if n) * max(dtype.itemsize, 1) > _MAX_NBYTES:
        raise refused(f"its shape {shape} of {dtype} is larger than numpy can address")
    return shape, fortran, dtype, 8 + len(field) + hlen


def _literal(text: str):
    """``ast.literal_eval(text)``, or None where it is not a Python literal."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None


def _np_dtype_name(dtype: np.dtype) -> str:
    return "bool" if dtype.kind == "b" else dtype.name


class _Mapped:
    """A lazily created read-only map of a whole file, which must hold ``need`` bytes."""

    def __init__(self, path, need: int):
        self.path = path
        self.need = need
        self._map = None

    def get(self):
        if self._map is None:
            with open_regular(self.path) as f:
                size = os.fstat(f.fileno()).st_size
                if size < self.need:
                    raise CheckpointError(self.path, f"is {size} bytes now, {self.need} when it "
                                                     f"was opened: it changed since")
                self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        return self._map

    def close(self):
        self._map = None


def _view(shape, fortran, dtype, buffer, offset=0):
    if math.prod(shape) == 0:
        return np.empty(shape, dtype)
    return np.ndarray(shape, dtype, buffer=buffer, offset=offset, order="F" if fortran else "C")


class NpySource(Source):
    """A single ``.npy`` file, memory-mapped; its tensor is named after the file."""

    def __init__(self, path):
        self.path = path
        with open_regular(path) as f:
            size = os.fstat(f.fileno()).st_size
            shape, fortran, dtype, start = _npy_header(f.read, path)
        nbytes = math.prod(shape) * dtype.itemsize
        if start + nbytes > size:
            raise CheckpointError(path, f"array of shape {shape} and dtype {dtype} needs "
                                        f"{nbytes} bytes after its header, the file holds "
                                        f"{size - start}: truncated")
        self._layout = (shape, fortran, dtype, start)
        self._map = _Mapped(path, start + nbytes)
        name = os.path.basename(path)[:-4]
        self.infos = [_info(name, shape, _np_dtype_name(dtype), nbytes, path)]

    def get(self, name, bf16):
        shape, fortran, dtype, start = self._layout
        if math.prod(shape) == 0:
            return np.empty(shape, dtype)
        return _view(shape, fortran, dtype, self._map.get(), start)

    def close(self):
        self._map.close()


class _MemberReader:
    """The bytes of one stored or deflated zip member, inflated as they are read.

    Never produces more than the member declares (``file_size``); reads
    only its compressed bytes; keeps the CRC-32 of what it produced.
    """

    def __init__(self, raw, zi: zipfile.ZipInfo, start: int, path: str):
        self.raw, self.zi, self.path = raw, zi, path
        self.pos, self.end = start, start + zi.compress_size
        self.left = zi.file_size
        self.crc = 0
        self.inflater = (zlib.decompressobj(-zlib.MAX_WBITS)
                         if zi.compress_type == zipfile.ZIP_DEFLATED else None)

    def refused(self, problem: str) -> CheckpointError:
        return CheckpointError(self.path, f"member {self.zi.filename!r}: {problem}")

    def _input(self, n: int) -> bytes:
        n = min(n, self.end - self.pos)
        if n <= 0:
            return b""
        self.raw.seek(self.pos)
        data = self.raw.read(n)
        if len(data) < n:
            raise self.refused("runs past the end of the file: truncated")
        self.pos += n
        return data

    def _more(self, n: int) -> bytes:
        """Up to ``n`` more bytes (``n`` > 0); ``b""`` where the data ends."""
        if self.inflater is None:
            return self._input(n)
        d = self.inflater
        try:
            while not d.eof:
                data = d.unconsumed_tail or self._input(_CHUNK)
                if not data:
                    return d.flush(n) if n else b""   # input used up before the stream's end
                out = d.decompress(data, n)
                if out:
                    return out
        except zlib.error as e:
            raise self.refused(f"corrupted deflate stream ({e})") from None
        return b""

    def read(self, n: int) -> bytes:
        """At most ``n`` bytes, fewer only where the member ends."""
        out = []
        n = min(n, self.left)
        while n > 0:
            b = self._more(min(n, _CHUNK))
            if not b:
                break
            out.append(b)
            n -= len(b)
        data = b"".join(out)
        self.left -= len(data)
        self.crc = zlib.crc32(data, self.crc)
        return data

    def readinto(self, buf: memoryview) -> int:
        """Fill ``buf`` (bytes) as far as the member goes; the count filled."""
        pos, n = 0, min(len(buf), self.left)
        while pos < n:
            b = self._more(min(n - pos, _CHUNK))
            if not b:
                break
            buf[pos:pos + len(b)] = b
            self.crc = zlib.crc32(b, self.crc)
            pos += len(b)
        self.left -= pos
        return pos

    def finish(self) -> None:
        """Read the rest of the member; refuse one that is not what it declares."""
        while self.left > 0:
            if not self.read(_CHUNK):
                raise self.refused(f"inflates to {self.zi.file_size - self.left} bytes, it "
                                   f"declares {self.zi.file_size}: truncated or corrupted")
        if self.inflater is not None and self._more(1):
            raise self.refused(f"inflates beyond the {self.zi.file_size} bytes it declares")
        if self.crc != self.zi.CRC:
            raise self.refused(f"CRC-32 {self.crc:08x}, it declares {self.zi.CRC:08x}: "
                               f"corrupted")


def _member_start(raw, zi: zipfile.ZipInfo, size: int, path: str) -> int:
    """Where a member's data starts, checking what it declares against the file."""
    name = zi.filename
    if zi.flag_bits & 0x1:
        raise CheckpointError(path, f"member {name!r} is encrypted")
    if zi.compress_type == zipfile.ZIP_STORED:
        if zi.file_size != zi.compress_size:
            raise CheckpointError(path, f"member {name!r} is stored (not compressed) but "
                                        f"declares {zi.file_size} bytes in "
                                        f"{zi.compress_size}")
    elif zi.compress_type == zipfile.ZIP_DEFLATED:
        if zi.file_size > DEFLATE_MAX_RATIO * zi.compress_size:
            raise CheckpointError(path, f"member {name!r} declares {zi.file_size} bytes "
                                        f"inflated from {zi.compress_size}; deflate expands "
                                        f"at most {DEFLATE_MAX_RATIO}-fold")
    else:
        raise CheckpointError(path, f"member {name!r} is compressed with zip method "
                                    f"{zi.compress_type}; numpy writes stored or deflated "
                                    f"members only")
    raw.seek(zi.header_offset)
    local = raw.read(30)
    if len(local) < 30 or local[:4] != b"PK\x03\x04":
        raise CheckpointError(path, f"member {name!r}: its local header is missing or "
                                    f"damaged")
    n, m = struct.unpack("<HH", local[26:30])
    start = zi.header_offset + 30 + n + m
    if start + zi.compress_size > size:
        raise CheckpointError(path, f"member {name!r} runs past the end of the file: "
                                    f"truncated")
    return start


def _zip_entries(raw) -> int | None:
    """How many entries a zip file's end record declares (None if it has none)."""
    try:
        end = zipfile._EndRecData(raw)
    except (AttributeError, OSError, ValueError, struct.error):
        return None
    return None if end is None else end[getattr(zipfile, "_ECD_ENTRIES_TOTAL", 4)]


class NpzSource(Source):
    """An ``.npz`` archive: stored members memory-mapped, deflated ones inflated on access."""

    def __init__(self, path):
        self.path = path
        self._members = {}
        self.infos = []
        try:
            with open_regular(path) as raw:
                st = os.fstat(raw.fileno())
                self._stamp = (st.st_size, st.st_mtime_ns)
                entries = _zip_entries(raw)
                if entries is not None and entries > MAX_NPZ_MEMBERS:
                    raise CheckpointError(path, f"its zip directory declares {entries} "
                                                f"members; at most {MAX_NPZ_MEMBERS} are read")
                with zipfile.ZipFile(raw) as zf:
                    for zi in zf.infolist():
                        if zi.is_dir() or not zi.filename.endswith(".npy"):
                            continue
                        self._add(raw, zi, st.st_size)
        except CheckpointError:
            raise
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError,
                NotImplementedError, RuntimeError, struct.error, OverflowError,
                MemoryError) as e:
            text = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise CheckpointError(path, f"not a readable .npz (zip) archive: {text}") from None
        if not self.infos:
            raise CheckpointError(path, "holds no tensors (no .npy members in the archive)")
        self._map = _Mapped(path, st.st_size)

    def _add(self, raw, zi, size):
        path, member = self.path, zi.filename
        name = member[:-4]
        if name in self._members:
            raise CheckpointError(path, f"member {member!r} appears twice in the archive")
        start = _member_start(raw, zi, size, path)
        shape, fortran, dtype, hlen = _npy_header(
            _MemberReader(raw, zi, start, path).read, path, member)
        nbytes = math.prod(shape) * dtype.itemsize
        if hlen + nbytes > zi.file_size:
            raise CheckpointError(path, f"member {member!r}: array of shape {shape} and "
                                        f"dtype {dtype} needs {nbytes} bytes, the member "
                                        f"holds {zi.file_size - hlen}: truncated")
        stored = zi.compress_type == zipfile.ZIP_STORED
        self._members[name] = (zi, shape, fortran, dtype, start, hlen,
                               start + hlen if stored else None)
        self.infos.append(_info(name, shape, _np_dtype_name(dtype), nbytes, path))

    def get(self, name, bf16):
        zi, shape, fortran, dtype, start, hlen, offset = self._members[name]
        if math.prod(shape) == 0:
            return np.empty(shape, dtype)
        if offset is not None:
            return _view(shape, fortran, dtype, self._map.get(), offset)
        return self._inflate(zi, shape, fortran, dtype, start)

    def _inflate(self, zi, shape, fortran, dtype, start):
        """A deflated member read into one array of exactly its size."""
        path, member = self.path, zi.filename
        nbytes = math.prod(shape) * dtype.itemsize
        try:
            with open_regular(path) as raw:
                st = os.fstat(raw.fileno())
                if (st.st_size, st.st_mtime_ns) != self._stamp:
                    raise CheckpointError(path, "changed since it was opened; open it again")
                reader = _MemberReader(raw, zi, start, path)
                _npy_header(reader.read, path, member)
                try:
                    buf = np.empty(nbytes, np.uint8)
                except MemoryError:
                    raise CheckpointError(path, f"member {member!r}: cannot allocate the "
                                                f"{nbytes} bytes it inflates to") from None
                got = reader.readinto(memoryview(buf))
                if got < nbytes:
                    raise reader.refused(f"inflates to {got} bytes of array data, its header "
                                         f"declares {nbytes}: truncated or corrupted")
                reader.finish()
        except OSError as e:
            raise CheckpointError(path, f"member {member!r} cannot be read: "
                                        f"{e.strerror or e}") from None
        return _view(shape, fortran, dtype, buf)

    def close(self):
        self._map.close()


# --------------------------------------------------------------------------
# torch and in-memory
# --------------------------------------------------------------------------

def _is_tensor(obj) -> bool:
    return isinstance(obj, np.ndarray) or is_torch_tensor(obj)


def _short(name: str, limit: int = 60) -> str:
    """A name for a message, cut in the middle when long (deep paths are long)."""
    return name if len(name) <= limit else f"{name[:limit // 2]}...{name[-(limit // 2):]}"


def _key_text(k) -> str:
    # keys are data: str() of a deeply nested tuple key would recurse
    if isinstance(k, (str, int, float, bool)) or k is None:
        return str(k)
    return f"<{type(k).__name__}>"


_LEAF, _SHARED = "leaf", "shared"


def _walk(obj, prefix: str, path, is_leaf=_is_tensor):
    """``(kind, name, value)`` for every leaf of nested dicts / lists / tuples.

    Walked with an explicit stack in depth-first order (a dict's items in
    their order).  A container nested more than :data:`MAX_NESTING` deep or
    containing itself raises ``CheckpointError(path, ...)``; one reached again
    by another path yields ``(_SHARED, name, first name)`` and is not walked
    twice, so a pickle of shared references cannot make the walk
    exponential.  ``is_leaf(obj)`` objects are leaves even if they are
    containers.
    """
    first = {}                        # id -> name, of every container entered
    inside = set()                    # ids of the containers being walked now
    stack = [(obj, prefix, 0)]
    while stack:
        item, name, depth = stack.pop()
        if depth < 0:                 # leaving the container with this id
            inside.discard(item)
            continue
        if is_leaf(item):
            yield _LEAF, name, item
            continue
        if isinstance(item, Mapping):
            children = [(_key_text(k), v) for k, v in item.items()]
        elif isinstance(item, (list, tuple)):
            children = [(str(i), v) for i, v in enumerate(item)]
        else:
            yield _LEAF, name, item
            continue
        if not children:
            continue
        key = id(item)
        if key in inside:
            raise CheckpointError(path, f"contains itself: {_short(name or '<root>')!r} is "
                                        f"{_short(first[key] or '<root>')!r}")
        if key in first:
            yield _SHARED, name, first[key]
            continue
        if depth >= MAX_NESTING:
            raise CheckpointError(path, f"containers are nested deeper than {MAX_NESTING} "
                                        f"levels (at {_short(name)!r})")
        first[key] = name
        inside.add(key)
        stack.append((key, name, -1))
        for k, v in reversed(children):
            stack.append((v, f"{name}.{k}" if name else k, depth + 1))


def flatten(obj, prefix: str = "", out=None, skipped=None, *, path=None):
    """Tensors in nested dicts / lists / tuples, named by their dotted paths.

    Parameters
    ----------
    obj : object
    prefix : str
        Name of ``obj`` itself (``""``: its entries are named from the top).
    out, skipped : dict, optional
        Filled and returned (new dicts by default).
    path : str, optional
        The file ``obj`` was loaded from, for errors (``"<memory>"``).

    Returns
    -------
    tensors : dict of str to tensor
    skipped : dict of str to str
        Non-tensor leaves (step counters, hyper-parameters, ...) -> type name;
        a container reached a second time -> ``"same object as NAME"``.  At
        most :data:`MAX_SKIPPED` entries, then one ``"..."`` entry counting
        the rest.

    Raises
    ------
    CheckpointError
        Containers nested deeper than :data:`MAX_NESTING`, or containing
        themselves.  The walk is iterative: no ``RecursionError``, and time
        linear in the number of distinct containers and entries.
    """
    out = {} if out is None else out
    skipped = {} if skipped is None else skipped
    more = 0
    for kind, name, value in _walk(obj, prefix, path):
        if kind == _LEAF and _is_tensor(value):
            out[name or "tensor"] = value
            continue
        if len(skipped) >= MAX_SKIPPED:
            more += 1
            continue
        skipped[name or "<root>"] = (type(value).__name__ if kind == _LEAF
                                     else f"same object as {_short(value or '<root>')}")
    if more:
        skipped["..."] = f"{more} more"
    return out, skipped


def _dtype_name(t) -> str:
    if isinstance(t, np.ndarray):
        return _np_dtype_name(t.dtype)
    return str(t.dtype).replace("torch.", "")


def _storage_key(t):
    """Identity of a tensor's memory, for spotting tied weights."""
    if isinstance(t, np.ndarray):
        if t.size == 0:
            return None
        return ("np", t.__array_interface__["data"][0], t.shape, t.strides, t.dtype.str)
    if t.layout != sys.modules["torch"].strided or t.numel() == 0 or t.device.type == "meta":
        return None
    return ("torch", t.device.type, t.data_ptr(), tuple(t.shape), tuple(t.stride()),
            str(t.dtype))


class MemorySource(Source):
    """Tensors held in memory: a state dict, a module's tensors, a loaded torch file.

    ``problems`` (name -> why) lists tensors that are listed but refused
    when read: :meth:`get` and :meth:`matrix` raise ``CheckpointError``.
    """

    def __init__(self, tensors: dict, path: str = "<memory>", kinds=None, skipped=None,
                 problems=None):
        if not tensors:
            raise CheckpointError(path, "holds no tensors" + (
                f" (only {', '.join(f'{k}: {v}' for k, v in list(skipped.items())[:5])})"
                if skipped else ""))
        self.path = path
        self.tensors = tensors
        self.skipped = dict(skipped or {})
        self.problems = dict(problems or {})
        kinds = kinds or {}
        seen = {}
        self.infos = []
        for name, t in tensors.items():
            problem = self.problems.get(name)
            key = _storage_key(t) if problem is None else None
            tied = seen.get(key) if key is not None else None
            if key is not None and tied is None:
                seen[key] = name
            nbytes = t.nbytes if isinstance(t, np.ndarray) else t.numel() * t.element_size()
            self.infos.append(_info(name, t.shape, _dtype_name(t), nbytes, path,
                                    kinds.get(name, "tensor"), tied, problem))

    def get(self, name, bf16):
        problem = self.problems.get(name)
        if problem is not None:
            raise CheckpointError(self.path, f"tensor {name!r} is refused: {problem}")
        return self.tensors[name]


def module_source(module) -> MemorySource:
    """The parameters and persistent buffers of a torch ``nn.Module``."""
    params = {n for n, _ in module.named_parameters(remove_duplicate=False)}
    sd = module.state_dict(keep_vars=False)
    kinds = {n: ("parameter" if n in params else "buffer") for n in sd}
    return MemorySource(dict(sd), "<memory>", kinds=kinds)


_TRUST = ("dlviz_gpu loads torch files with weights_only=True only, because arbitrary "
          "unpickling can run any code in the file; if you trust it, load it yourself with "
          "torch.load(..., weights_only=False) and pass the model or state dict to "
          "dlviz_gpu.models.open")


def _refusal(msg: str) -> str:
    """Why torch's weights-only unpickler refused a file, in one sentence."""
    m = re.search(r"Unsupported global: GLOBAL ([\w.]+)", msg)
    if m:
        return (f"refused: it pickles {m.group(1).rstrip('.')}, an object only arbitrary "
                f"unpickling can load. {_TRUST}")
    m = re.search(r"Unsupported operand \S+", msg)
    reason = m.group(0) if m else (msg.strip().splitlines() or ["unknown reason"])[0]
    return (f"cannot be loaded with weights_only=True ({reason}): it is not a torch "
            f"checkpoint, or one that needs arbitrary unpickling. {_TRUST}")


def _version_tuple(text: str) -> tuple:
    m = re.match(r"\s*(\d+)\.(\d+)", str(text))
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def _check_torch_version(torch, path) -> None:
    version = getattr(torch, "__version__", "unknown")
    if _version_tuple(version) < MIN_TORCH:
        need = ".".join(map(str, MIN_TORCH))
        raise CheckpointError(path, f"torch {version} cannot load checkpoints safely: before "
                                    f"{need}, weights_only=True loading can be bypassed to run "
                                    f"code (CVE-2025-32434); upgrade it with pip install "
                                    f"'torch>={need}'")


# -- the opcode guard: run before any unpickler builds an object ------------

# opcodes that pop everything above the topmost MARK
_MARK_OPS = frozenset({"APPENDS", "SETITEMS", "ADDITEMS", "LIST", "DICT", "TUPLE",
                       "FROZENSET", "INST", "OBJ", "POP_MARK"})
# opcodes that add what they pop to the container below it, which stays
_IN_PLACE = frozenset({"APPEND", "APPENDS", "SETITEM", "SETITEMS", "ADDITEMS", "BUILD"})
_EMPTY = frozenset({"EMPTY_LIST", "EMPTY_TUPLE", "EMPTY_DICT", "EMPTY_SET"})
_NUMBERS = frozenset({"INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4",
                      "FLOAT", "BINFLOAT"})
_KEYED = frozenset({"SETITEM", "SETITEMS", "ADDITEMS", "FROZENSET"})

#: Dict keys or set members of one container that may share a hash value (only
#: numbers' hashes can be chosen by a file; 20k colliding keys cost seconds).
MAX_COLLIDING_KEYS = 1000


def _guard_pickle(stream, path) -> bool:
    """Refuse a pickle whose objects would nest too deeply or collide in a dict.

    Reads the opcodes (``pickletools.genops``: nothing is built) and follows
    the unpickler's stack with one depth per object: a container is one deeper
    than what it holds.  Two things no unpickler survives are refused before
    one runs: nesting deeper than :data:`MAX_NESTING` (hashing a tuple nested
    10^5 deep, as a dict key, overflows the C stack: a crash, not an error)
    and more than :data:`MAX_COLLIDING_KEYS` numbers with one hash value as
    keys of one dict or set (each insertion compares with all of them:
    quadratic time).  Depth is counted when a container is filled, so a list
    filled after it was put inside another can nest deeper unseen; only
    tuples and frozensets can be hashed, and those are filled when built.
    A stream ``genops`` cannot read is left to the unpickler.

    Returns True at the pickle's STOP, False where ``genops`` could not read
    on (the unpickler will fail there too, having built less than was read).
    """
    # depth per object; the stack and memo hold object numbers; num: the hash of
    # each number still on the stack or in the memo; keys: (container, hash) -> count
    dep, stack, marks, memo, num, keys, kept = [], [], [], {}, {}, {}, set()

    def too_deep():
        return CheckpointError(path, f"its pickle nests containers deeper than "
                                     f"{MAX_NESTING} levels")

    try:
        for op, arg, _ in pickletools.genops(stream):
            name = op.name
            if name == "MARK":
                marks.append(len(stack))
                continue
            if name == "STOP":
                return True
            if name in ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"):
                memo[len(memo) if name == "MEMOIZE" else arg] = stack[-1]
                kept.add(stack[-1])
                continue
            if name in ("GET", "BINGET", "LONG_BINGET"):
                stack.append(memo[arg])
                continue
            if name == "DUP":
                stack.append(stack[-1])
                continue
            if name == "POP":
                if marks and marks[-1] == len(stack):
                    marks.pop()
                else:
                    stack.pop()
                continue
            if name in _MARK_OPS:
                top = marks.pop()
            else:
                top = len(stack) - (len(op.stack_before) - (name in _IN_PLACE))
                if top < 0:
                    return False
            popped = stack[top:]
            del stack[top:]
            if name == "POP_MARK":
                continue
            if popped:
                d = 1 + max(dep[i] for i in popped)
                if d > MAX_NESTING:
                    raise too_deep()
            else:
                d = 1 if name in _EMPTY else 0
            if num and popped:
                if name in _KEYED:
                    owner = stack[-1] if name != "FROZENSET" else len(dep)
                    step = 2 if name in ("SETITEM", "SETITEMS") else 1
                    for i in popped[::step]:
                        h = num.get(i)
                        if h is not None:
                            n = keys[owner, h] = keys.get((owner, h), 0) + 1
                            if n > MAX_COLLIDING_KEYS:
                                raise CheckpointError(
                                    path, f"its pickle gives one dict or set more than "
                                          f"{MAX_COLLIDING_KEYS} number keys with the same "
                                          f"hash value (quadratic to insert)")
                for i in popped:
                    if i in num and i not in kept:
                        del num[i]
            if name in _IN_PLACE:
                if d > dep[stack[-1]]:
                    dep[stack[-1]] = d
            elif op.stack_after:
                stack.append(len(dep))
                dep.append(d)
                if name in _NUMBERS:
                    num[len(dep) - 1] = hash(arg)
    except CheckpointError:
        raise
    except Exception:  # noqa: BLE001 - malformed: the unpickler reports it
        return False
    return False


class _ScanFailed(Exception):
    """The pickle uses something the scan does not follow (torch.load decides)."""


class _StandIn:
    """What a scanned pickle's globals become: inert, accepting any state."""

    module = qualname = ""

    def __new__(cls, *args, **kwargs):
        return object.__new__(cls)

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        pass

    def __setitem__(self, key, value):
        pass

    def append(self, value):
        pass

    def extend(self, values):
        pass


class _Dict(dict):
    """A scanned ``OrderedDict``: a mapping, whose pickled attributes are dropped."""

    def __setstate__(self, state):
        pass


class _Scanner(pickle.Unpickler):
    """Python's C unpickler with every global an inert stand-in: imports and calls nothing.

    Containers come out as they will from ``torch.load`` (an ``OrderedDict``
    as a dict), tensors as stand-ins, and each storage the pickle names is
    recorded as ``(key, storage type's module, its name, numel)``.
    """

    MAX_GLOBALS = 1000

    def __init__(self, data: bytes):
        super().__init__(io.BytesIO(data), encoding="utf-8")
        self.storages = []
        self._classes = {}

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return _Dict
        cls = self._classes.get((module, name))
        if cls is None:
            if len(self._classes) >= self.MAX_GLOBALS:
                raise _ScanFailed("too many globals")
            cls = type("Global", (_StandIn,), {"module": str(module), "qualname": str(name)})
            self._classes[(module, name)] = cls
        return cls

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"
                and isinstance(pid[1], type) and issubclass(pid[1], _StandIn)
                and isinstance(pid[2], str) and type(pid[4]) is int):
            raise _ScanFailed("unexpected persistent id")
        self.storages.append((pid[2], pid[1].module, pid[1].qualname, pid[4]))
        return _StandIn()


def _storage_itemsize(torch, module: str, name: str) -> int | None:
    """Bytes per element of a pickled storage type, as ``torch.load`` counts them."""
    if name == "UntypedStorage":
        return 1
    if module != "torch" or not name.endswith("Storage"):
        return None
    try:
        return torch.serialization.StorageType(name).dtype.itemsize
    except Exception:  # noqa: BLE001 - unknown to this torch: torch.load decides
        return None


def _scan_torch_zip(torch, f, size: int, path: str) -> bool:
    """Check a zip-format torch file before ``torch.load``; whether it may be mapped.

    Refuses (``CheckpointError``) duplicate or compressed records, containers
    nested too deeply or containing themselves, and storages claiming other
    byte counts than their records hold.  Returns False where the scan cannot
    follow the file (``torch.load`` without ``mmap`` then checks the records
    itself).
    """
    try:
        zf = zipfile.ZipFile(f)
        infos = zf.infolist()
    except Exception as e:  # noqa: BLE001 - a zip we cannot read is not unpickled
        text = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(path, f"not a readable torch checkpoint: {text}") from None
    if not infos:
        raise CheckpointError(path, "not a readable torch checkpoint: its archive is empty")
    records = {}
    for zi in infos:
        # torch's reader (miniz) finds records by name ignoring case
        low = zi.filename.lower()
        if low in records:
            raise CheckpointError(path, f"its archive holds two records named "
                                        f"{zi.filename!r}")
        records[low] = zi
        if zi.compress_type != zipfile.ZIP_STORED:
            raise CheckpointError(path, f"record {zi.filename!r} is compressed; torch writes "
                                        f"records stored, and loading it mapped would misread "
                                        f"it")
        if zi.header_offset + zi.compress_size > size:
            raise CheckpointError(path, f"record {zi.filename!r} runs past the end of the "
                                        f"file: truncated")
    # torch's archive folder is the first record's folder
    prefix = infos[0].filename.split("/", 1)[0] + "/"
    pkl = records.get(f"{prefix}data.pkl".lower())
    if pkl is None:
        raise CheckpointError(path, f"not a readable torch checkpoint: no record "
                                    f"{prefix}data.pkl")
    try:
        data = zf.read(pkl)
    except Exception as e:  # noqa: BLE001 - a record we cannot read is not unpickled
        text = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(path, f"not a readable torch checkpoint: {text}") from None
    _guard_pickle(io.BytesIO(data), path)
    scanner = _Scanner(data)
    try:
        root = scanner.load()
    except Exception:  # noqa: BLE001 - anything the scan cannot follow
        return False
    del data
    for _ in _walk(root, "", path, is_leaf=lambda o: isinstance(o, _StandIn)):
        pass
    del root
    for key, module, name, numel in scanner.storages:
        itemsize = _storage_itemsize(torch, module, name)
        record = records.get(f"{prefix}data/{key}".lower())
        if itemsize is None or record is None:
            return False
        if numel < 0 or numel * itemsize != record.file_size:
            raise CheckpointError(path, f"storage {key!r} claims {numel} x {itemsize} bytes, "
                                        f"its record holds {record.file_size}")
    return True


def _stored_problem(t) -> str | None:
    """Why a loaded tensor cannot be drawn from what the file stores, or None.

    A strided tensor's elements ``t[i, j, ...]`` sit at ``storage_offset +
    i * stride[0] + j * stride[1] + ...``: they span ``1 + sum(stride * (size -
    1))`` stored elements.  A tensor with more elements than that repeats
    stored ones (a stride 0 from ``expand``, overlapping strides from
    ``as_strided``): drawing it would walk elements the file does not hold, up
    to 10^14 for a 1.6 KB file, so it is refused.  One with fewer or as many
    reads each stored element at most once per element it has.
    """
    torch = sys.modules["torch"]
    if t.layout != torch.strided:
        return (f"a {str(t.layout).replace('torch.', '')} tensor: only dense (strided) "
                f"tensors are read")
    shape, strides = tuple(t.shape), tuple(t.stride())
    numel = math.prod(shape)
    if numel == 0 or t.device.type == "meta":
        return None
    itemsize = t.element_size()
    span = 1 + sum(st * (n - 1) for n, st in zip(shape, strides))
    stored = t.untyped_storage().nbytes() // itemsize - t.storage_offset()
    if any(st < 0 for st in strides) or span > stored:
        return (f"its strides {strides} reach {span} elements, its storage holds {stored} "
                f"from offset {t.storage_offset()}")
    if numel > span:
        return (f"an expanded or overlapping view (strides {strides}): it claims {numel} "
                f"elements ({numel * itemsize} bytes) but reaches {span} stored "
                f"({span * itemsize} bytes)")
    return None


def torch_source(path) -> MemorySource:
    """A torch checkpoint loaded with ``weights_only=True`` (memory-mapped when possible).

    Raises
    ------
    CheckpointError
        torch is missing or older than 2.6, the file is not a torch
        checkpoint, it needs arbitrary unpickling (refused: unpickling can run
        any code), its containers nest too deeply or contain themselves, or
        its storages claim other sizes than the file holds.
    """
    try:
        import torch
    except ImportError:
        raise CheckpointError(path, "reading torch checkpoints needs torch; install it with "
                                    "pip install 'dlviz_gpu[torch]'") from None
    _check_torch_version(torch, path)
    with open_regular(path) as f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            raise CheckpointError(path, "file is empty, not a torch checkpoint")
        if f.read(4) == b"PK\x03\x04":
            mapped = _scan_torch_zip(torch, f, size, path)
        else:
            # the legacy format: five pickles (magic number, protocol, system
            # info, the object, storage keys), then the storages; not mapped
            mapped = False
            f.seek(0)
            for _ in range(5):
                if not _guard_pickle(f, path):
                    break
        # torch.load opens the file again: the same file, through its descriptor,
        # so a path swapped for a FIFO meanwhile cannot make it wait
        fd_path = f"/proc/self/fd/{f.fileno()}"
        target = fd_path if os.path.exists(fd_path) else path
        try:
            with warnings.catch_warnings():
                # torch's note on pickle protocols says nothing the error below does not
                warnings.filterwarnings("ignore", message=".*pickle protocol",
                                        category=UserWarning)
                obj = torch.load(target, map_location="cpu", weights_only=True, mmap=mapped)
        except pickle.UnpicklingError as e:
            raise CheckpointError(path, _refusal(str(e))) from None
        except Exception as e:  # noqa: BLE001 - any error loading untrusted bytes is a refusal
            text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise CheckpointError(path, f"not a readable torch checkpoint: {text}") from None
    tensors, skipped = flatten(obj, path=path)
    if set(tensors) == {"tensor"}:
        tensors = {os.path.splitext(os.path.basename(path))[0]: tensors["tensor"]}
    problems = {}
    for name, t in tensors.items():
        if is_torch_tensor(t):
            try:
                problem = _stored_problem(t)
            except Exception as e:  # noqa: BLE001 - a tensor torch cannot describe
                problem = f"its storage cannot be checked ({type(e).__name__}: {e})"
            if problem is not None:
                problems[name] = problem.splitlines()[0]
    return MemorySource(tensors, path, skipped=skipped, problems=problems)


# --------------------------------------------------------------------------
# Paths
# --------------------------------------------------------------------------

SUFFIXES = {
    ".safetensors": "safetensors",
    ".npz": "npz",
    ".npy": "npy",
    ".pt": "torch", ".pth": "torch", ".bin": "torch", ".ckpt": "torch",
}


def kind_of(path: str) -> str | None:
    """``"index"``, ``"safetensors"``, ``"npz"``, ``"npy"``, ``"torch"`` or None."""
    low = path.lower()
    if low.endswith(".index.json"):
        return "index"
    return SUFFIXES.get(os.path.splitext(low)[1])


def open_file(path: str) -> list:
    """Sources for one checkpoint file (several for a sharded index)."""
    kind = kind_of(path)
    if kind is None:
        raise CheckpointError(path, f"unknown checkpoint type; expected one of "
                                    f"{', '.join(sorted(SUFFIXES))} or *.index.json")
    if kind == "safetensors":
        return [SafetensorsSource(path)]
    if kind == "npz":
        return [NpzSource(path)]
    if kind == "npy":
        return [NpySource(path)]
    if kind == "torch":
        return [torch_source(path)]
    raise AssertionError(kind)


def shard_sources(index_path: str, progress=None) -> list:
    """One source per shard of a sharded set, each listing the tensors the index gives it."""
    from .safetensors import read_index

    weight_map = read_index(index_path)
    by_shard = {}
    for name, shard in weight_map.items():
        by_shard.setdefault(shard, []).append(name)
    out = []
    for shard in _progress(list(by_shard), progress, "opening shards", "shard"):
        names = by_shard[shard]
        kind = kind_of(shard)
        if kind == "safetensors":
            out.append(SafetensorsSource(shard, sorted(names, key=natural_key),
                                         header=read_header(shard), index=index_path))
            continue
        if kind not in ("torch", "npz", "npy"):
            raise CheckpointError(index_path, f"shard {os.path.basename(shard)!r} has an "
                                              f"unknown checkpoint type")
        (src,) = open_file(shard)
        have = {i.name for i in src.infos}
        lacking = [n for n in names if n not in have]
        if lacking:
            raise CheckpointError(index_path, f"shard {os.path.basename(shard)!r} lacks "
                                              f"{len(lacking)} tensor(s) the index assigns "
                                              f"to it, e.g. {lacking[0]!r}")
        keep = set(names)
        src.infos = [i for i in src.infos if i.name in keep]
        out.append(src)
    return out


def _progress(items, progress, desc, unit):
    show = bool(items) and (progress if progress is not None else
                            (len(items) >= 8 and sys.stderr.isatty()))
    if not show:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, unit=unit, leave=False)


def _find_in_dir(path: str) -> list:
    """The checkpoint files of a directory, most specific format first.

    Folders and dangling links are passed over; a FIFO, socket or device with
    a checkpoint's name is refused (it is never opened, so never waited on).
    """
    try:
        names = sorted(os.listdir(path))
    except OSError as e:
        raise CheckpointError(path, f"cannot be listed: {e.strerror or e}") from None
    full = []
    for n in names:
        p = os.path.join(path, n)
        if kind_of(p) is None:
            continue
        try:
            mode = os.stat(p).st_mode
        except OSError:
            continue
        if stat.S_ISREG(mode):
            full.append(p)
        elif not stat.S_ISDIR(mode):
            raise CheckpointError(p, f"is not a regular file ({file_type(mode)})")
    for want in ("safetensors-index", "safetensors", "torch-index", "torch", "npz", "npy"):
        if want == "safetensors-index":
            hit = [p for p in full if p.lower().endswith(".safetensors.index.json")]
        elif want == "torch-index":
            hit = [p for p in full if p.lower().endswith(".index.json")]
        else:
            hit = [p for p in full if kind_of(p) == want]
        if hit:
            return hit
    raise CheckpointError(path, "directory holds no checkpoint files (looked for "
                                "*.safetensors.index.json, *.safetensors, *.index.json, "
                                "*.pt/.pth/.bin/.ckpt, *.npz, *.npy)")


def open_path(path, progress=None) -> list:
    """Sources for a file or a directory of checkpoint files."""
    try:
        path = os.fspath(path)
    except TypeError:
        raise TypeError(f"path: expected a str or os.PathLike; got "
                        f"{type(path).__name__}") from None
    if not os.path.exists(path):
        raise CheckpointNotFound(path, "no such file or directory")
    files = _find_in_dir(path) if os.path.isdir(path) else [path]
    out = []
    many = [f for f in files if kind_of(f) != "index"]
    for f in files:
        if kind_of(f) == "index":
            out.extend(shard_sources(f, progress))
    for f in _progress(many, progress, "opening files", "file"):
        out.extend(open_file(f))
    return out
