"""Where tensors come from: files and in-memory objects, each opened lazily.

Every source lists its tensors as :class:`TensorInfo` records without reading
tensor data, and returns one tensor on request, read in place wherever the
format allows:

=====================================  =========================================
safetensors (single or sharded)        memory-mapped; views of the map
``.npy`` / uncompressed ``.npz``       memory-mapped; views of the map
compressed ``.npz`` member             decompressed on access (``allow_pickle=False``)
torch ``.pt`` / ``.pth`` / ``.bin``    ``torch.load(weights_only=True, mmap=True)``
``nn.Module`` / state dict             the tensors themselves
=====================================  =========================================
"""

from __future__ import annotations

import math
import mmap
import os
import pickle
import re
import sys
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .errors import CheckpointError, CheckpointNotFound
from .safetensors import SafetensorsFile, read_header

KINDS = ("parameter", "buffer", "tensor")


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
        Bytes of storage.
    source : str
        The file it lives in, or ``"<memory>"``.
    kind : {"parameter", "buffer", "tensor"}
        ``"tensor"`` where the source does not say (files).
    tied_to : str or None
        The earlier name of the same storage (tied weights), else None.
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

    def as_row(self) -> dict:
        return {"name": self.name, "module": self.module, "shape": self.shape,
                "dtype": self.dtype, "params": self.params, "bytes": self.nbytes,
                "source": self.source, "kind": self.kind, "tied_to": self.tied_to}


_SEP = re.compile(r"[./]")


def module_of(name: str) -> str:
    """The module path of a tensor name: everything before its last ``.`` or ``/``."""
    cut = max(name.rfind("."), name.rfind("/"))
    return name[:cut] if cut > 0 else ""


def natural_key(name: str):
    """Sort key putting ``layers.2`` before ``layers.10``."""
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", name)]


def _info(name, shape, dtype, nbytes, source, kind="tensor", tied_to=None) -> TensorInfo:
    shape = tuple(int(d) for d in shape)
    return TensorInfo(name=name, module=module_of(name), shape=shape, dtype=dtype,
                      params=math.prod(shape), nbytes=int(nbytes), source=source, kind=kind,
                      tied_to=tied_to)


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
        self.infos = [_info(n, tensors[n].shape, tensors[n].dtype_name, tensors[n].nbytes,
                            self.path) for n in names]

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

def _npy_header(f, path, member=None):
    """(shape, fortran_order, dtype, header bytes) of a .npy stream at its start."""
    where = f"member {member!r}: " if member else ""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(f)
        reader = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        shape, fortran, dtype = reader(f)
    except (ValueError, OSError, EOFError, SyntaxError, TypeError) as e:
        raise CheckpointError(path, f"{where}not a valid .npy array: {e}") from None
    if dtype.hasobject:
        raise CheckpointError(path, f"{where}holds Python objects (dtype {dtype}), which would "
                                    f"need unpickling; refused (allow_pickle=False)")
    return tuple(shape), bool(fortran), dtype, f.tell()


def _np_dtype_name(dtype: np.dtype) -> str:
    return "bool" if dtype.kind == "b" else dtype.name


class _Mapped:
    """A lazily created read-only map of a whole file."""

    def __init__(self, path):
        self.path = path
        self._map = None

    def get(self):
        if self._map is None:
            with open(self.path, "rb") as f:
                self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        return self._map

    def close(self):
        self._map = None


class NpySource(Source):
    """A single ``.npy`` file, memory-mapped; its tensor is named after the file."""

    def __init__(self, path):
        self.path = path
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            shape, fortran, dtype, start = _npy_header(f, path)
        nbytes = math.prod(shape) * dtype.itemsize
        if start + nbytes > size:
            raise CheckpointError(path, f"array of shape {shape} and dtype {dtype} needs "
                                        f"{nbytes} bytes after its header, the file holds "
                                        f"{size - start}: truncated")
        self._layout = (shape, fortran, dtype, start)
        self._map = _Mapped(path)
        name = os.path.basename(path)[:-4]
        self.infos = [_info(name, shape, _np_dtype_name(dtype), nbytes, path)]

    def get(self, name, bf16):
        shape, fortran, dtype, start = self._layout
        if math.prod(shape) == 0:
            return np.empty(shape, dtype)
        return np.ndarray(shape, dtype, buffer=self._map.get(), offset=start,
                          order="F" if fortran else "C")

    def close(self):
        self._map.close()


class NpzSource(Source):
    """An ``.npz`` archive: stored members memory-mapped, compressed ones read on access."""

    def __init__(self, path):
        self.path = path
        self._members = {}
        self.infos = []
        self._map = _Mapped(path)
        size = os.path.getsize(path)
        try:
            with open(path, "rb") as raw, zipfile.ZipFile(raw) as zf:
                for zi in zf.infolist():
                    if not zi.filename.endswith(".npy") or zi.is_dir():
                        continue
                    name = zi.filename[:-4]
                    with zf.open(zi) as f:
                        shape, fortran, dtype, hlen = _npy_header(f, path, zi.filename)
                    nbytes = math.prod(shape) * dtype.itemsize
                    if hlen + nbytes > zi.file_size:
                        raise CheckpointError(path, f"member {zi.filename!r}: array of shape "
                                                    f"{shape} and dtype {dtype} needs {nbytes} "
                                                    f"bytes, the member holds "
                                                    f"{zi.file_size - hlen}: truncated")
                    offset = None
                    if zi.compress_type == zipfile.ZIP_STORED and zi.flag_bits & 0x1 == 0:
                        raw.seek(zi.header_offset)
                        local = raw.read(30)
                        if len(local) == 30 and local[:4] == b"PK\x03\x04":
                            n, m = int.from_bytes(local[26:28], "little"), int.from_bytes(
                                local[28:30], "little")
                            offset = zi.header_offset + 30 + n + m + hlen
                            if offset + nbytes > size:
                                raise CheckpointError(path, f"member {zi.filename!r} runs past "
                                                            f"the end of the file: truncated")
                    self._members[name] = (zi, shape, fortran, dtype, offset)
                    self.infos.append(_info(name, shape, _np_dtype_name(dtype), nbytes, path))
        except CheckpointError:
            raise
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError,
                NotImplementedError, RuntimeError) as e:
            raise CheckpointError(path, f"not a readable .npz (zip) archive: {e}") from None
        if not self.infos:
            raise CheckpointError(path, "holds no tensors (no .npy members in the archive)")

    def get(self, name, bf16):
        zi, shape, fortran, dtype, offset = self._members[name]
        if math.prod(shape) == 0:
            return np.empty(shape, dtype)
        if offset is not None:
            return np.ndarray(shape, dtype, buffer=self._map.get(), offset=offset,
                              order="F" if fortran else "C")
        try:
            with zipfile.ZipFile(self.path) as zf, zf.open(zi) as f:
                return np.lib.format.read_array(f, allow_pickle=False)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
            raise CheckpointError(self.path, f"member {zi.filename!r} cannot be read: "
                                             f"{e}") from None

    def close(self):
        self._map.close()


# --------------------------------------------------------------------------
# torch and in-memory
# --------------------------------------------------------------------------

def _is_torch_tensor(obj) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.Tensor)


def _is_tensor(obj) -> bool:
    return isinstance(obj, np.ndarray) or _is_torch_tensor(obj)


def flatten(obj, prefix: str = "", out=None, skipped=None):
    """Tensors in nested dicts / lists / tuples, named by their dotted paths.

    Returns
    -------
    tensors : dict of str to tensor
    skipped : dict of str to str
        Non-tensor leaves (step counters, hyper-parameters, ...) -> type name.
    """
    out = {} if out is None else out
    skipped = {} if skipped is None else skipped
    if _is_tensor(obj):
        out[prefix or "tensor"] = obj
    elif isinstance(obj, Mapping):
        for k, v in obj.items():
            flatten(v, f"{prefix}.{k}" if prefix else str(k), out, skipped)
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            flatten(v, f"{prefix}.{i}" if prefix else str(i), out, skipped)
    else:
        skipped[prefix or "<root>"] = type(obj).__name__
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
    if t.numel() == 0 or t.device.type == "meta":
        return None
    return ("torch", t.device.type, t.data_ptr(), tuple(t.shape), tuple(t.stride()),
            str(t.dtype))


class MemorySource(Source):
    """Tensors held in memory: a state dict, a module's tensors, a loaded torch file."""

    def __init__(self, tensors: dict, path: str = "<memory>", kinds=None, skipped=None):
        if not tensors:
            raise CheckpointError(path, "holds no tensors" + (
                f" (only {', '.join(f'{k}: {v}' for k, v in list(skipped.items())[:5])})"
                if skipped else ""))
        self.path = path
        self.tensors = tensors
        self.skipped = dict(skipped or {})
        kinds = kinds or {}
        seen = {}
        self.infos = []
        for name, t in tensors.items():
            key = _storage_key(t)
            tied = seen.get(key) if key is not None else None
            if key is not None and tied is None:
                seen[key] = name
            nbytes = t.nbytes if isinstance(t, np.ndarray) else t.numel() * t.element_size()
            self.infos.append(_info(name, t.shape, _dtype_name(t), nbytes, path,
                                    kinds.get(name, "tensor"), tied))

    def get(self, name, bf16):
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


def torch_source(path) -> MemorySource:
    """A torch checkpoint loaded with ``weights_only=True`` (memory-mapped when possible).

    Raises
    ------
    CheckpointError
        torch is missing, the file is not a torch checkpoint, or it needs
        arbitrary unpickling (refused: unpickling can run any code).
    """
    try:
        import torch
    except ImportError:
        raise CheckpointError(path, "reading torch checkpoints needs torch; install it with "
                                    "pip install 'dlviz_gpu[torch]'") from None
    if os.path.getsize(path) == 0:
        raise CheckpointError(path, "file is empty, not a torch checkpoint")
    try:
        with warnings.catch_warnings():
            # torch's note on pickle protocols says nothing the error below does not
            warnings.filterwarnings("ignore", message=".*pickle protocol", category=UserWarning)
            try:
                obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError as e:
                if "mmap can only be used" not in str(e):
                    raise
                # legacy (pre-zip) format: cannot be mapped, so it is read whole
                obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(path, _refusal(str(e))) from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, AttributeError,
            IndexError, TypeError, zipfile.BadZipFile) as e:
        text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(path, f"not a readable torch checkpoint: {text}") from None
    tensors, skipped = flatten(obj)
    if set(tensors) == {"tensor"}:
        tensors = {os.path.splitext(os.path.basename(path))[0]: tensors["tensor"]}
    return MemorySource(tensors, path, skipped=skipped)


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
    """The checkpoint files of a directory, most specific format first."""
    names = sorted(os.listdir(path))
    full = [os.path.join(path, n) for n in names if os.path.isfile(os.path.join(path, n))]
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
