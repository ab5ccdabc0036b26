"""The tensor catalog: every tensor of a model or checkpoint, listed without reading it.

>>> import dlviz_gpu.models as models
>>> cat = models.open("model.safetensors")        # or a sharded index, a folder,
...                                                # .npz, .pt/.bin, nn.Module, state dict
>>> len(cat), cat.total_params, cat.total_bytes
>>> cat.info("lm_head.weight")                      # TensorInfo: shape, dtype, params, ...
>>> w = cat["lm_head.weight"]                        # read in place, lazily
>>> dv.rasterize(w, 800, 600)
>>> cat.tree()                                       # modules with summed parameter counts
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from .errors import CheckpointError
from .safetensors import BF16_MODES
from .sources import (MemorySource, Source, TensorInfo, _SEP, flatten, module_source,
                      open_path)


@dataclass
class ModuleNode:
    """A module in :meth:`Catalog.tree`, with totals over everything below it.

    Attributes
    ----------
    name : str
        Last component of the path (``""`` for the root).
    path : str
        Full module path (``""`` for the root).
    params : int
        Elements of the unique, non-buffer tensors in this subtree.
    nbytes : int
        Bytes of the unique tensors in this subtree.
    n_tensors : int
        Tensors in this subtree (tied names included).
    tensors : list of TensorInfo
        Tensors directly in this module.
    children : dict of str to ModuleNode
        Sub-modules, in the catalog's order.
    """

    name: str
    path: str
    params: int = 0
    nbytes: int = 0
    n_tensors: int = 0
    tensors: list = field(default_factory=list)
    children: dict = field(default_factory=dict)

    def walk(self, depth: int = 0):
        """Yield ``(depth, node)`` depth-first, this node first."""
        yield depth, self
        for child in self.children.values():
            yield from child.walk(depth + 1)

    def find(self, path: str) -> "ModuleNode":
        """The node at module ``path`` (``KeyError`` if none)."""
        node = self
        for part in [p for p in _SEP.split(path) if p] if path else []:
            if part not in node.children:
                raise KeyError(f"no module {path!r}")
            node = node.children[part]
        return node

    def to_rows(self) -> list:
        """One dict per module: path, depth, params, bytes, tensors."""
        return [{"path": n.path, "depth": d, "params": n.params, "bytes": n.nbytes,
                 "tensors": n.n_tensors} for d, n in self.walk()]

    def __repr__(self) -> str:
        return (f"ModuleNode({self.path!r}, params={self.params}, tensors={self.n_tensors}, "
                f"children={len(self.children)})")


def _counts(info: TensorInfo) -> bool:
    """Whether a tensor counts towards parameter totals (unique, not a buffer)."""
    return info.tied_to is None and info.kind != "buffer"


class Catalog(Mapping):
    """Every tensor of a model or checkpoint: a read-only mapping name -> tensor.

    Build one with :func:`open`.  Listing reads headers only; ``catalog[name]``
    reads the tensor in place (a view of the memory-mapped file for
    safetensors and uncompressed npz, the tensor itself for torch sources).

    Attributes
    ----------
    infos : list of TensorInfo
        In catalog order.
    sources : list of str
        The files read (``"<memory>"`` for in-memory sources).
    skipped : dict of str to str
        Non-tensor entries of loaded objects (step counters, ...) -> type name.
    """

    def __init__(self, sources: list, bf16: str = "auto"):
        if bf16 not in BF16_MODES:
            raise ValueError(f"bf16: expected one of {', '.join(map(repr, BF16_MODES))}; got "
                             f"{bf16!r}")
        self.bf16 = bf16
        self._sources = list(sources)
        self._index: dict[str, tuple[Source, TensorInfo]] = {}
        self.skipped = {}
        for src in self._sources:
            for info in src.infos:
                if info.name in self._index:
                    other = self._index[info.name][1].source
                    raise CheckpointError(src.path, f"tensor {info.name!r} is also in {other}; "
                                                    f"open the checkpoints separately")
                self._index[info.name] = (src, info)
            for k, v in getattr(src, "skipped", {}).items():
                self.skipped[k] = v
        self.infos = [info for _, info in self._index.values()]

    # -- Mapping -----------------------------------------------------------
    def __getitem__(self, name: str):
        """The tensor ``name``, read in place (bfloat16 per ``bf16``, see :func:`open`)."""
        src, _ = self._lookup(name)
        return src.get(name, self.bf16)

    def __iter__(self):
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, name) -> bool:
        return name in self._index

    def _lookup(self, name):
        try:
            return self._index[name]
        except (KeyError, TypeError):
            close = [n for n in self._index if str(name).lower() in n.lower()][:3]
            hint = f"; similar: {', '.join(close)}" if close else ""
            raise KeyError(f"no tensor named {name!r} in the catalog{hint}") from None

    # -- descriptions -------------------------------------------------------
    @property
    def names(self) -> list:
        return list(self._index)

    @property
    def sources(self) -> list:
        return list(dict.fromkeys(s.path for s in self._sources))

    def info(self, name: str) -> TensorInfo:
        """The :class:`TensorInfo` of ``name`` (no data read)."""
        return self._lookup(name)[1]

    @property
    def total_params(self) -> int:
        """Elements of all unique tensors that are not buffers (tied weights once)."""
        return sum(i.params for i in self.infos if _counts(i))

    @property
    def total_bytes(self) -> int:
        """Bytes of all unique tensors (tied weights once)."""
        return sum(i.nbytes for i in self.infos if i.tied_to is None)

    def metadata(self) -> dict:
        """safetensors ``__metadata__`` per file (files without any are left out)."""
        out = {}
        for s in self._sources:
            md = getattr(getattr(s, "file", None), "metadata", None)
            if md:
                out[s.path] = md
        return out

    def tree(self) -> ModuleNode:
        """Tensors grouped by module, with parameter counts and bytes summed per subtree."""
        root = ModuleNode("", "")
        for info in self.infos:
            parts = [p for p in _SEP.split(info.module) if p] if info.module else []
            chain = [root]
            node = root
            for k, part in enumerate(parts):
                if part not in node.children:
                    path = info.module[:_prefix_len(info.module, k + 1)]
                    node.children[part] = ModuleNode(part, path)
                node = node.children[part]
                chain.append(node)
            node.tensors.append(info)
            for n in chain:
                n.n_tensors += 1
                if _counts(info):
                    n.params += info.params
                if info.tied_to is None:
                    n.nbytes += info.nbytes
        return root

    def select(self, pattern: str) -> list:
        """Names matching ``pattern``: a glob if it has ``*?[``, else a case-insensitive substring."""
        if not isinstance(pattern, str):
            raise TypeError(f"pattern: expected a str; got {type(pattern).__name__}")
        if any(c in pattern for c in "*?["):
            return [n for n in self._index if fnmatch.fnmatchcase(n, pattern)]
        low = pattern.lower()
        return [n for n in self._index if low in n.lower()]

    def to_rows(self) -> list:
        """One dict per tensor: name, module, shape, dtype, params, bytes, source, kind, tied_to."""
        return [i.as_row() for i in self.infos]

    def table(self, max_rows: int | None = None) -> str:
        """The catalog as aligned text columns, with a total line."""
        rows = self.infos if max_rows is None else self.infos[:max_rows]
        head = ("name", "shape", "dtype", "params", "bytes")
        body = [(i.name + (f" (= {i.tied_to})" if i.tied_to else ""),
                 "x".join(map(str, i.shape)) or "scalar", i.dtype, f"{i.params:,}",
                 format_bytes(i.nbytes)) for i in rows]
        widths = [max([len(head[c])] + [len(r[c]) for r in body]) for c in range(5)]
        right = (False, True, False, True, True)

        def fmt(r):
            return "  ".join(v.rjust(w) if rj else v.ljust(w)
                             for v, w, rj in zip(r, widths, right)).rstrip()

        lines = [fmt(head)] + [fmt(r) for r in body]
        if max_rows is not None and len(self.infos) > max_rows:
            lines.append(f"... {len(self.infos) - max_rows} more")
        lines.append(f"{len(self)} tensor{'' if len(self) == 1 else 's'}, {self.total_params:,} parameters, "
                     f"{format_bytes(self.total_bytes)}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        src = self.sources
        where = src[0] if len(src) == 1 else f"{len(src)} sources"
        return (f"Catalog({where}: {len(self)} tensors, {self.total_params:,} parameters, "
                f"{format_bytes(self.total_bytes)})")

    # -- data ----------------------------------------------------------------
    def matrix(self, name: str, layout: str = "auto"):
        """The tensor as a :class:`dlviz_gpu.tensors.Matrix`, read in place.

        Works for host bfloat16 without torch; ``dv.rasterize``,
        ``dv.histogram`` and the views accept the result as it is.
        """
        src, _ = self._lookup(name)
        return src.matrix(name, layout, self.bf16)

    def raw(self, name: str):
        """The stored bytes of a safetensors tensor as a ``uint8`` view (any dtype)."""
        src, _ = self._lookup(name)
        if not hasattr(src, "raw"):
            raise TypeError(f"raw: only safetensors sources expose raw bytes; {name!r} comes "
                            f"from {src.path}")
        return src.raw(name)

    def close(self) -> None:
        """Drop the file maps (tensors already handed out stay valid)."""
        for s in self._sources:
            s.close()

    def __enter__(self) -> "Catalog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


#: dtypes the kernels decode; other tensors (float8, complex, ...) are listed, not drawn
DRAWABLE = frozenset({"float64", "float32", "float16", "bfloat16", "int8", "int16", "int32",
                      "int64", "uint8", "uint16", "uint32", "uint64", "bool"})
OTHER_RANKS = ("flatten", "stack", "skip")


def plan(infos, other_ranks: str = "flatten") -> list[tuple]:
    """``(info, layout or None, note)`` per tensor: how it is drawn, or why not.

    The layout goes to :func:`dlviz_gpu.tensors.as_matrix`; ``None`` with a
    note for tied names, scalars, empty tensors, dtypes the engine does not
    decode, and (with ``other_ranks="skip"``) 3-D and 5-D+ tensors.
    """
    out = []
    for info in infos:
        nd = len(info.shape)
        if info.tied_to is not None:
            out.append((info, None, f"same storage as {info.tied_to} (drawn there)"))
        elif nd == 0:
            out.append((info, None, "a scalar"))
        elif info.params == 0:
            out.append((info, None, f"empty (shape {'x'.join(map(str, info.shape))})"))
        elif info.dtype not in DRAWABLE:
            out.append((info, None, f"dtype {info.dtype} is not decoded by the engine"))
        elif nd in (1, 2, 4):
            out.append((info, "auto", ""))
        elif other_ranks == "skip":
            out.append((info, None, f"{nd}-D; --other-ranks flatten or stack draws it"))
        else:
            out.append((info, other_ranks, ""))
    return out


def layer_of(module: str) -> str:
    """The layer a module belongs to, for per-layer bar charts.

    The path up to its first numeric component (a block of a stack:
    ``model.layers.3.mlp.up_proj`` -> ``model.layers.3``), else the module
    itself (``lm_head``); ``"(top level)"`` for tensors outside any module.
    """
    parts = _SEP.split(module) if module else []
    for k, part in enumerate(parts):
        if part.isdigit():
            return module[:_prefix_len(module, k + 1)]
    return module or "(top level)"


def params_per_layer(infos) -> dict:
    """Parameters per layer (see :func:`layer_of`) of ``infos``, in catalog order.

    Tied names and buffers are left out, as in :attr:`Catalog.total_params`.
    """
    per: dict[str, int] = {}
    for info in infos:
        if _counts(info):
            key = layer_of(info.module)
            per[key] = per.get(key, 0) + info.params
    return per


def _prefix_len(module: str, parts: int) -> int:
    """Length of the prefix of ``module`` holding its first ``parts`` components."""
    seen = 0
    for k, ch in enumerate(module):
        if ch in "./":
            seen += 1
            if seen == parts:
                return k
    return len(module)


def format_bytes(n: int) -> str:
    """``1536`` -> ``"1.5 KiB"``."""
    v = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if v < 1024 or unit == "TiB":
            return f"{int(v)} B" if unit == "B" else f"{v:.1f} {unit}"
        v /= 1024
    raise AssertionError


def _is_module(obj) -> bool:
    import sys

    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.nn.Module)


def open(source, *, bf16: str = "auto", progress: bool | None = None) -> Catalog:  # noqa: A001
    """Open a model or checkpoint as a :class:`Catalog` (no tensor data is read).

    Parameters
    ----------
    source : path, list of paths, torch ``nn.Module``, state dict, or Catalog
        A ``.safetensors`` file, a sharded ``*.index.json``, a directory of
        checkpoint files, ``.npz`` / ``.npy``, a torch ``.pt`` / ``.pth`` /
        ``.bin`` / ``.ckpt`` (loaded with ``weights_only=True`` only), a list
        of those, a module, or a (nested) mapping of names to torch tensors
        or NumPy arrays.
    bf16 : {"auto", "torch", "array", "bits"}
        How bfloat16 tensors of safetensors files come back from
        ``catalog[name]``: ``"auto"`` a torch ``bfloat16`` tensor over the
        file map when torch is installed, else a
        :class:`~dlviz_gpu.models.BFloat16Array`; ``"torch"``, ``"array"``
        or ``"bits"`` (raw ``uint16``) to choose.  Never a copy.
    progress : bool, optional
        Show a tqdm bar while opening files; default: when there are 8 or
        more and stderr is a terminal.

    Raises
    ------
    CheckpointError (a ValueError)
        Missing paths (:class:`CheckpointNotFound`, also a
        ``FileNotFoundError``), directories without checkpoints, malformed
        or truncated files, torch files that need arbitrary unpickling.
    TypeError
        ``source`` of an unsupported type.
    """
    if bf16 not in BF16_MODES:
        raise ValueError(f"bf16: expected one of {', '.join(map(repr, BF16_MODES))}; got "
                         f"{bf16!r}")
    if isinstance(source, Catalog):
        return source
    if _is_module(source):
        return Catalog([module_source(source)], bf16=bf16)
    if isinstance(source, Mapping):
        tensors, skipped = flatten(source)
        return Catalog([MemorySource(tensors, skipped=skipped)], bf16=bf16)
    if isinstance(source, (str, os.PathLike)):
        return Catalog(open_path(source, progress), bf16=bf16)
    if isinstance(source, (list, tuple)) and source and all(
            isinstance(p, (str, os.PathLike)) for p in source):
        sources = []
        for p in source:
            sources.extend(open_path(p, progress))
        return Catalog(sources, bf16=bf16)
    raise TypeError(f"source: expected a checkpoint path, a list of paths, a torch nn.Module "
                    f"or a state dict (mapping of names to tensors); got "
                    f"{type(source).__module__}.{type(source).__qualname__}")
