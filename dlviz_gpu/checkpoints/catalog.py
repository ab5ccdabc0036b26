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
from itertools import repeat

from ..optional import is_torch_module
from .errors import CheckpointError
from .safetensors import BF16_MODES, paused_gc
from .sources import (MemorySource, Source, TensorInfo, NAME_SEP, flatten, module_source,
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
        for part in [p for p in NAME_SEP.split(path) if p] if path else []:
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


def counts_in_totals(info: TensorInfo) -> bool:
    """Whether a tensor counts towards parameter totals (unique, not a buffer, not refused)."""
    return info.tied_to is None and info.kind != "buffer" and not info.problem


def stored_in_totals(info: TensorInfo) -> bool:
    """Whether a tensor's bytes count towards byte totals (unique, not refused).

    A refused tensor (an expanded view claiming 10^14 elements over one stored
    element, say) would make the totals whatever its header claims.
    """
    return info.tied_to is None and not info.problem


class Catalog(Mapping):
    """Every tensor of a model or checkpoint: a read-only mapping name -> tensor.

    Build one with :func:`open`.  Listing reads headers only; ``catalog[name]``
    reads the tensor in place (a view of the memory-mapped file for
    safetensors and uncompressed npz, the tensor itself for torch sources).
    Such a view may be unaligned: the formats allow a tensor to start at an
    offset that is not a multiple of its element size (``np.savez`` members
    usually do; safetensors' writer avoids it).  It is read in place all the
    same: Numba types arrays without regard to their alignment, so no kernel
    is compiled again for them, and the CPUs it targets read unaligned
    elements correctly (the tests compare such rasters with aligned ones).

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
        index = self._index
        for src in self._sources:
            infos = src.infos
            names = [info.name for info in infos]
            # one C-level update per source; the slow search for the clash only on error
            if not index.keys().isdisjoint(names) or len(set(names)) != len(names):
                self._clash(src, names)
            index.update(zip(names, zip(repeat(src), infos)))
            for k, v in getattr(src, "skipped", {}).items():
                self.skipped[k] = v
        self.infos = [info for _, info in index.values()]

    def _clash(self, src, names) -> None:
        """Raise for the first of ``names`` already listed (by an earlier source or ``src``)."""
        seen = {}
        for name in names:
            earlier = self._index.get(name, (None, None))[1]
            other = earlier.source if earlier is not None else seen.get(name)
            if other is not None:
                raise CheckpointError(src.path, f"tensor {name!r} is also in {other}; "
                                                f"open the checkpoints separately")
            seen[name] = src.path

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
        return sum(i.params for i in self.infos if counts_in_totals(i))

    @property
    def total_bytes(self) -> int:
        """Bytes of all unique tensors (tied weights once)."""
        return sum(i.nbytes for i in self.infos if stored_in_totals(i))

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
        with paused_gc():              # up to a node per tensor: see paused_gc
            return self._tree()

    def _tree(self) -> ModuleNode:
        root = ModuleNode("", "")
        # A module's node is found from its parent module's (the name up to its last
        # separator), so each distinct module string is split once; each tensor is
        # added to its own module only, and the subtree totals are summed once per
        # node at the end (reversed creation order visits children before parents).
        at: dict[str, ModuleNode] = {"": root}   # module string -> node
        depth = {id(root): 0}
        made = []                                 # (node, parent), in creation order
        for info in self.infos:
            node = at.get(info.module)
            if node is None:
                node = self._module_node(info.module, at, depth, made)
            node.tensors.append(info)
            node.n_tensors += 1
            if stored_in_totals(info):
                node.nbytes += info.nbytes
                if info.kind != "buffer":
                    node.params += info.params
        for node, parent in reversed(made):
            parent.n_tensors += node.n_tensors
            parent.params += node.params
            parent.nbytes += node.nbytes
        return root

    @staticmethod
    def _module_node(module: str, at: dict, depth: dict, made: list) -> ModuleNode:
        """The node of ``module``, made with its missing ancestors (parents first)."""
        chain = []
        m = module
        while m not in at:
            chain.append(m)
            cut = max(m.rfind("."), m.rfind("/"))
            m = m[:cut] if cut > 0 else ""
        node = at[m]
        for m in reversed(chain):
            last = m[max(m.rfind("."), m.rfind("/")) + 1:]
            if last:                  # "a." and "a" are the same module, as split() has it
                child = node.children.get(last)
                if child is None:
                    d = depth[id(node)] + 1
                    # the path is the module up to its d-th part; with no empty parts
                    # ("a..b", "/a"), that is the whole string
                    path = m if m.count(".") + m.count("/") == d - 1 else m[:_prefix_len(m, d)]
                    child = node.children[last] = ModuleNode(last, path)
                    depth[id(child)] = d
                    made.append((child, node))
                node = child
            at[m] = node
        return node

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
        with paused_gc():              # a few strings per tensor: see paused_gc
            return self._table(max_rows)

    def _table(self, max_rows: int | None) -> str:
        rows = self.infos if max_rows is None else self.infos[:max_rows]
        head = ("name", "shape", "dtype", "params", "bytes")
        # column by column, each text made once per distinct value: a checkpoint
        # repeats a few shapes and sizes over thousands of tensors
        shape_text: dict = {}
        size_text: dict = {}
        names = [i.name if i.tied_to is None else f"{i.name} (= {i.tied_to})" for i in rows]
        names = [n if not i.problem else f"{n} (refused)" for n, i in zip(names, rows)]
        shapes = [shape_text.get(i.shape) or shape_text.setdefault(
            i.shape, "x".join(map(str, i.shape)) or "scalar") for i in rows]
        dtypes = [i.dtype for i in rows]
        params = [f"{i.params:,}" for i in rows]
        sizes = [size_text.get(i.nbytes) or size_text.setdefault(
            i.nbytes, format_bytes(i.nbytes)) for i in rows]
        cols = (names, shapes, dtypes, params, sizes)
        w = [max(len(h), max(map(len, c), default=0)) for h, c in zip(head, cols)]
        fmt = f"{{:<{w[0]}}}  {{:>{w[1]}}}  {{:<{w[2]}}}  {{:>{w[3]}}}  {{:>{w[4]}}}".format
        lines = [fmt(*head).rstrip()]
        lines += [fmt(*r).rstrip() for r in zip(*cols)]
        if max_rows is not None and len(self.infos) > max_rows:
            lines.append(f"... {len(self.infos) - max_rows} more")
        lines.append(f"{len(self)} tensor{'' if len(self) == 1 else 's'}, {self.total_params:,} parameters, "
                     f"{format_bytes(self.total_bytes)}")
        refused = [i for i in self.infos if i.problem]
        if refused:
            lines.append(f"{len(refused)} listed but refused when read (left out of the totals): "
                         + "; ".join(f"{i.name}: {i.problem}" for i in refused[:3])
                         + ("; ..." if len(refused) > 3 else ""))
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
    note for tied names, tensors the file lists but refuses to hand out
    (``info.problem``: an expanded view, a shape NumPy cannot hold), scalars,
    empty tensors, dtypes the engine does not decode, and (with ``other_ranks="skip"``) 3-D and 5-D+ tensors.
    """
    out = []
    for info in infos:
        nd = len(info.shape)
        if info.tied_to is not None:
            out.append((info, None, f"same storage as {info.tied_to} (drawn there)"))
        elif getattr(info, "problem", None):
            out.append((info, None, info.problem))
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
    parts = NAME_SEP.split(module) if module else []
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
        if counts_in_totals(info):
            key = layer_of(info.module)
            per[key] = per.get(key, 0) + info.params
    return per


def _prefix_len(module: str, parts: int) -> int:
    """Length of the prefix of ``module`` holding its first ``parts`` components."""
    for seen, sep in enumerate(NAME_SEP.finditer(module), 1):
        if seen == parts:
            return sep.start()
    return len(module)


def totals(infos) -> dict:
    """``{"tensors", "params", "bytes"}`` of ``infos``: what the parameter and byte totals count."""
    return {"tensors": len(infos),
            "params": sum(i.params for i in infos if counts_in_totals(i)),
            "bytes": sum(i.nbytes for i in infos if stored_in_totals(i))}


def shape_text(shape) -> str:
    """``(3, 4)`` -> ``"3x4"``; ``()`` -> ``"scalar"``."""
    return "x".join(map(str, shape)) or "scalar"


def format_bytes(n: int) -> str:
    """``1536`` -> ``"1.5 KiB"``."""
    v = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if v < 1024 or unit == "TiB":
            return f"{int(v)} B" if unit == "B" else f"{v:.1f} {unit}"
        v /= 1024
    raise AssertionError


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
    if is_torch_module(source):
        return Catalog([module_source(source)], bf16=bf16)
    if isinstance(source, Mapping):
        tensors, skipped = flatten(source)
        return Catalog([MemorySource(tensors, skipped=skipped)], bf16=bf16)
    if isinstance(source, (str, os.PathLike)):
        with paused_gc():
            return Catalog(open_path(source, progress), bf16=bf16)
    if isinstance(source, (list, tuple)) and source and all(
            isinstance(p, (str, os.PathLike)) for p in source):
        sources = []
        with paused_gc():
            for p in source:
                sources.extend(open_path(p, progress))
            return Catalog(sources, bf16=bf16)
    raise TypeError(f"source: expected a checkpoint path, a list of paths, a torch nn.Module "
                    f"or a state dict (mapping of names to tensors); got "
                    f"{type(source).__module__}.{type(source).__qualname__}")
