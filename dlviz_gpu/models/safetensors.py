"""Our own reader of the safetensors format: validated header, memory-mapped data.

A safetensors file is an 8-byte little-endian header length ``N``, ``N``
bytes of UTF-8 JSON (``{name: {"dtype", "shape", "data_offsets": [begin,
end]}, "__metadata__": {str: str}}``; offsets relative to the byte buffer),
then the byte buffer.  :func:`read_header` reads and checks the header only;
:class:`SafetensorsFile` maps the file read-only on first access and returns
each tensor as a NumPy view of the map, so only the pages of the tensor being
drawn are ever read.  bfloat16 stays 16-bit: a torch ``bfloat16`` tensor over
the same pages when torch is installed, else a
:class:`~dlviz_gpu.models.bf16.BFloat16Array` over the raw bits.

Sharded sets (``*.safetensors.index.json``, ``{"weight_map": {name:
file}}``) are read by :func:`read_index`; the catalog opens each shard's map
only when one of its tensors is used.

Every malformed input -- too short, header length past the end or over
:data:`MAX_HEADER_BYTES`, non-UTF-8 or invalid JSON, unknown dtype, bad shape,
offsets out of range, reversed or overlapping, byte counts that disagree with
the shape, truncated data -- raises :class:`CheckpointError` naming the file
and the problem, before anything is mapped or allocated.
"""

from __future__ import annotations

import json
import math
import mmap
import os
from dataclasses import dataclass

import numpy as np

from .bf16 import BFloat16Array
from .errors import CheckpointError, CheckpointNotFound

#: Largest header accepted, as in the reference implementation (100 MB).
MAX_HEADER_BYTES = 100_000_000

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
    "F6_E2M3": (6, None, "float6_e2m3fn"),
    "F6_E3M2": (6, None, "float6_e3m2fn"),
    "F4": (4, None, "float4_e2m1fn"),
}

BF16_MODES = ("auto", "torch", "array", "bits")


@dataclass(frozen=True)
class TensorSpec:
    """One header entry, checked.

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


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _no_duplicates(pairs):
    out = {}
    for k, v in pairs:
        if k in out:
            raise _Duplicate(k)
        out[k] = v
    return out


class _Duplicate(Exception):
    pass


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
        The file is missing, too short, or its header is malformed or lies
        about the data (see the module docstring).
    """
    path = _check_path(path)
    with open(path, "rb") as f:
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
    try:
        obj = json.loads(text, object_pairs_hook=_no_duplicates)
    except _Duplicate as e:
        raise CheckpointError(path, f"header names {e.args[0]!r} twice") from None
    except json.JSONDecodeError as e:
        raise CheckpointError(path, f"header is not valid JSON: {e.msg} at line {e.lineno} "
                                    f"column {e.colno}") from None
    except RecursionError:
        raise CheckpointError(path, "header is not a usable JSON object: nested too "
                                    "deeply") from None
    if not isinstance(obj, dict):
        raise CheckpointError(path, f"header is a JSON {type(obj).__name__}, expected an "
                                    f"object of tensors")
    data_size = size - 8 - n
    metadata = obj.pop("__metadata__", None)
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise CheckpointError(path, f"__metadata__ must be an object of strings; got "
                                    f"{_short(metadata)}")
    tensors = {}
    for name, entry in obj.items():
        tensors[name] = _check_entry(path, name, entry, data_size)
    _check_overlaps(path, tensors.values())
    return Header(path=path, tensors=tensors, metadata=dict(metadata), data_start=8 + n,
                  data_size=data_size)


def _short(v, limit: int = 80) -> str:
    s = json.dumps(v) if not isinstance(v, str) else repr(v)
    return s if len(s) <= limit else s[:limit - 3] + "..."


def _check_entry(path: str, name: str, entry, data_size: int) -> TensorSpec:
    where = f"tensor {name!r}"
    if not isinstance(entry, dict):
        raise CheckpointError(path, f"{where}: expected an object with dtype, shape and "
                                    f"data_offsets; got {_short(entry)}")
    missing = [k for k in ("dtype", "shape", "data_offsets") if k not in entry]
    if missing:
        raise CheckpointError(path, f"{where}: missing {', '.join(missing)}")
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if not isinstance(dtype, str) or dtype not in DTYPES:
        raise CheckpointError(path, f"{where}: unknown dtype {_short(dtype)}; expected one of "
                                    f"{', '.join(DTYPES)}")
    if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
        raise CheckpointError(path, f"{where}: shape must be a list of non-negative integers; "
                                    f"got {_short(shape)}")
    if (not isinstance(offsets, list) or len(offsets) != 2
            or not all(_is_int(o) and o >= 0 for o in offsets)):
        raise CheckpointError(path, f"{where}: data_offsets must be two non-negative integers "
                                    f"[begin, end]; got {_short(offsets)}")
    begin, end = offsets
    if begin > end:
        raise CheckpointError(path, f"{where}: data_offsets [{begin}, {end}] begin after they "
                                    f"end")
    if end > data_size:
        raise CheckpointError(path, f"{where}: data_offsets [{begin}, {end}] run past the end "
                                    f"of the data buffer ({data_size} bytes after the header): "
                                    f"the file is truncated or the offsets are wrong")
    bits = DTYPES[dtype][0]
    numel_bits = math.prod(shape) * bits
    if numel_bits % 8 or numel_bits // 8 != end - begin:
        need = f"{numel_bits / 8:g}"
        raise CheckpointError(path, f"{where}: shape {shape} of dtype {dtype} needs {need} bytes "
                                    f"but data_offsets [{begin}, {end}] hold {end - begin}")
    return TensorSpec(name=name, dtype=dtype, shape=tuple(shape), begin=begin, end=end)


def _check_overlaps(path: str, specs) -> None:
    prev = None
    for s in sorted((s for s in specs if s.end > s.begin), key=lambda s: (s.begin, s.end)):
        if prev is not None and s.begin < prev.end:
            raise CheckpointError(path, f"tensors {prev.name!r} [{prev.begin}, {prev.end}] and "
                                        f"{s.name!r} [{s.begin}, {s.end}] overlap in the data "
                                        f"buffer")
        prev = s


# --------------------------------------------------------------------------
# Reading tensors
# --------------------------------------------------------------------------

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

    # -- data --------------------------------------------------------------
    def _mapped(self) -> mmap.mmap:
        if self._map is None:
            need = self.header.data_start + self.header.data_size
            with open(self.path, "rb") as f:
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
        """
        s = self.spec(name)
        np_dtype = DTYPES[s.dtype][1]
        if np_dtype is None:
            raise TypeError(f"{self.path}: tensor {name!r} has dtype {s.dtype} "
                            f"({s.dtype_name}), which dlviz_gpu cannot decode yet; "
                            f".raw(name) gives its bytes")
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
    """Read a sharded-checkpoint index (``*.index.json``) and check its shards exist.

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
        Missing or malformed index, or a shard file that does not exist.
    """
    path = _check_path(path)
    size = os.path.getsize(path)
    if size > MAX_HEADER_BYTES:
        raise CheckpointError(path, f"index is {size} bytes, over the {MAX_HEADER_BYTES} byte "
                                    f"limit")
    with open(path, "rb") as f:
        raw = f.read()
    try:
        obj = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise CheckpointError(path, f"index is not valid UTF-8 (position {e.start})") from None
    except json.JSONDecodeError as e:
        raise CheckpointError(path, f"index is not valid JSON: {e.msg} at line {e.lineno} "
                                    f"column {e.colno}") from None
    except RecursionError:
        raise CheckpointError(path, "index JSON is nested too deeply") from None
    wm = obj.get("weight_map") if isinstance(obj, dict) else None
    if not isinstance(wm, dict) or not all(isinstance(v, str) and v for v in wm.values()):
        raise CheckpointError(path, "index must be a JSON object whose \"weight_map\" maps "
                                    "tensor names to shard file names")
    if not wm:
        raise CheckpointError(path, "index \"weight_map\" lists no tensors")
    folder = os.path.dirname(os.path.abspath(path))
    shards = {}
    for name, file in wm.items():
        if file not in shards:
            full = os.path.normpath(os.path.join(folder, file))
            if not os.path.isfile(full):
                raise CheckpointError(path, f"shard {file!r} (holding {name!r}) does not exist "
                                            f"in {folder}")
            shards[file] = full
    return {name: shards[file] for name, file in wm.items()}
