"""A model summary like torchinfo / Keras ``summary()``: module tree, parameters, output shapes.

>>> from dlviz_gpu.introspect.summary import summary
>>> s = summary(model, (1, 128))          # one forward pass on the meta device
>>> print(s.table(depth=2))               # indented tree, type, output shape, params
>>> s.total_params, s.trainable_params, s.rows[3]["output_shape"]
>>> summary("model.safetensors")          # a checkpoint: tree and counts, no shapes

Output shapes come from one forward pass in which every parameter, buffer and
input is a ``meta`` tensor (shape and dtype, no storage): no weight is read,
copied or moved, so a summary of a 70B model costs no memory.  The user's
model is never modified: its parameters are swapped for meta stand-ins only
for the duration of the call (``torch.func.functional_call``), and every hook
is removed afterwards, even when the forward fails.

:func:`trace_calls` (the forward-hook tracing) is the reusable part: it
returns one :class:`ModuleCall` per module invocation, with its parent call,
input and output shapes, in execution order.

Importing this module does not import torch.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..optional import is_torch_module
from ..checkpoints.catalog import Catalog, format_bytes

__all__ = ["summary", "ModelSummary", "trace_calls", "ModuleCall", "meta_inputs", "meta_args",
           "call_hooks", "format_shape"]

_SHAPE_HELP = ("a tuple of positive ints including the batch dimension, e.g. (1, 128), or a "
               "list of such tuples for a model with several inputs")


# --------------------------------------------------------------------------
# tracing (reused by the structure graph)
# --------------------------------------------------------------------------

@dataclass
class ModuleCall:
    """One invocation of a module during a traced forward pass.

    Attributes
    ----------
    index : int
        Position in execution order (the order the calls started).
    path : str
        Module path as in ``model.named_modules()`` (``""`` for the model).
    type : str
        Class name of the module.
    parent : int or None
        ``index`` of the call that was running when this one started (its
        caller in the module tree), None for the outermost call.
    depth : int
        Nesting depth of the call (0 for the outermost call).
    input_shapes : list of tuple of int
        Shapes of the tensors among the positional and keyword arguments,
        in order (nested tuples, lists and dicts flattened).
    output_shape : tuple of int, list of tuple of int, or None
        The output's shape; a list of shapes when the output is a tuple,
        list or dict of tensors (non-tensor entries such as ``None`` left
        out); None when the output holds no tensor.
    output_dtype : str or None
        dtype of the (first) output tensor, e.g. ``"float32"``.
    """

    index: int
    path: str
    type: str
    parent: int | None
    depth: int
    input_shapes: list = field(default_factory=list)
    output_shape: object = None
    output_dtype: str | None = None


def tensor_leaves(obj, out: list, _level: int = 0) -> list:
    """Tensors in ``obj`` (a tensor, or nested tuples / lists / dicts), in order."""
    import torch

    if isinstance(obj, torch.Tensor):
        out.append(obj)
    elif _level < 8:  # deep enough for any real output; guards against cycles
        if isinstance(obj, Mapping):
            for v in obj.values():
                tensor_leaves(v, out, _level + 1)
        elif isinstance(obj, (tuple, list)):
            for v in obj:
                tensor_leaves(v, out, _level + 1)
    return out


def shape_of(obj):
    """A tensor's shape as a tuple; a list of shapes for containers; None without tensors."""
    import torch

    if isinstance(obj, torch.Tensor):
        return tuple(int(d) for d in obj.shape)
    leaves = tensor_leaves(obj, [])
    if not leaves:
        return None
    return [tuple(int(d) for d in t.shape) for t in leaves]


def to_meta(obj):
    """``obj`` with every tensor replaced by an empty meta tensor of its shape and dtype."""
    import torch

    if isinstance(obj, torch.Tensor):
        return torch.empty_like(obj, device="meta")
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):  # namedtuple
        return type(obj)(*[to_meta(v) for v in obj])
    if isinstance(obj, (tuple, list)):
        return type(obj)(to_meta(v) for v in obj)
    if isinstance(obj, dict):
        return {k: to_meta(v) for k, v in obj.items()}
    return obj


def meta_state(model) -> dict:
    """Meta stand-ins for every parameter and buffer of ``model`` (no data read or copied).

    Tied tensors appear once (``named_parameters`` drops duplicates);
    ``functional_call(tie_weights=True)`` ties the other names to them.
    """
    state = {}
    for name, p in model.named_parameters():
        m = _empty_meta(p)
        if p.requires_grad and (p.is_floating_point() or p.is_complex()):
            # keep requires_grad so modules that branch on it behave as in a real pass
            m.requires_grad_(True)
        state[name] = m
    for name, b in model.named_buffers():
        state[name] = _empty_meta(b)
    return state


def _empty_meta(t):
    """An empty ``meta`` tensor with the shape, dtype and strides of ``t`` (reads no data)."""
    import torch

    return torch.empty_like(t, device="meta")


def call_hooks(model, pre_hook, post_hook) -> list:
    """Register ``pre_hook(path, module, args, kwargs)`` and ``post_hook(path, module, args,
    kwargs, output)`` on every module of ``model``; returns the handles to remove."""
    handles = []
    for path, module in model.named_modules():
        handles.append(module.register_forward_pre_hook(
            lambda m, a, kw, p=path: pre_hook(p, m, a, kw), with_kwargs=True))
        handles.append(module.register_forward_hook(
            lambda m, a, kw, o, p=path: post_hook(p, m, a, kw, o), with_kwargs=True))
    return handles


def trace_calls(model, args=(), kwargs=None) -> list:
    """Run ``model`` once on the meta device and record every module invocation.

    Parameters
    ----------
    model : torch.nn.Module
        Not modified: its parameters and buffers are replaced by meta tensors
        only for the duration of the call (``torch.func.functional_call``),
        and the hooks put on its modules are removed before returning, also
        when the forward raises.
    args : tuple
        Positional inputs.  Tensors (on any device) are replaced by empty meta
        tensors of the same shape and dtype; anything else is passed as is.
        See :func:`meta_inputs` to build them from shapes.
    kwargs : dict, optional
        Keyword inputs, treated like ``args``.

    Returns
    -------
    list of ModuleCall
        In execution order; a module run several times has one entry per
        run.  Modules that never ran (unused heads, layers whose weights a
        functional call reads directly, e.g. ``MultiheadAttention.out_proj``)
        have none.

    Raises
    ------
    Exception
        Whatever the forward pass raised on the meta device: data-dependent
        control flow (``.item()``, ``bool(tensor)``), ops without meta
        kernels, inputs of the wrong shape or dtype.

    Notes
    -----
    Factory functions called inside ``forward`` without a device
    (``torch.zeros(n)``) run under ``torch.device("meta")`` so they produce
    meta tensors too.  The caller's grad mode and the model's train/eval
    mode are left as they are.
    """
    import torch
    from torch.func import functional_call

    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model: expected a torch nn.Module; got {type_name(model)}")
    if not isinstance(args, tuple):
        args = (args,)
    args = to_meta(args)
    kwargs = to_meta(dict(kwargs or {}))
    calls: list[ModuleCall] = []
    stack: list[int] = []
    handles = []

    def pre_hook(path, module, a, kw):
        ins = tensor_leaves((a, kw), [])
        call = ModuleCall(index=len(calls), path=path, type=type(module).__name__,
                          parent=stack[-1] if stack else None, depth=len(stack),
                          input_shapes=[tuple(int(d) for d in t.shape) for t in ins])
        calls.append(call)
        stack.append(call.index)

    def post_hook(path, module, a, kw, out):
        # pop to this module's own open call (a call that raised inside a
        # caught exception never reached its post-hook)
        while stack:
            call = calls[stack.pop()]
            if call.path == path:
                call.output_shape = shape_of(out)
                leaves = tensor_leaves(out, [])
                if leaves:
                    call.output_dtype = str(leaves[0].dtype).removeprefix("torch.")
                break

    try:
        handles.extend(call_hooks(model, pre_hook, post_hook))
        state = meta_state(model)
        with torch.device("meta"):
            functional_call(model, state, args, kwargs, tie_weights=True, strict=False)
    finally:
        for h in handles:
            h.remove()
    return calls


def meta_inputs(input_shape, input_dtype=None) -> tuple:
    """Empty meta tensors for ``input_shape`` (see :func:`summary`), as a tuple of args.

    Parameters
    ----------
    input_shape : tuple of int, or list of tuple of int
        One shape, or one per input.
    input_dtype : torch.dtype or sequence of torch.dtype, optional
        One dtype for all inputs or one per input; default ``torch.float32``.
    """
    import torch

    shapes = check_input_shape(input_shape)
    dtypes = check_input_dtype(input_dtype, len(shapes)) or [torch.float32] * len(shapes)
    return tuple(torch.empty(s, dtype=d, device="meta") for s, d in zip(shapes, dtypes))


# --------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------

def type_name(obj) -> str:
    t = type(obj)
    return t.__qualname__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def check_input_shape(input_shape) -> list:
    """``input_shape`` as a list of shapes (tuples of positive ints); ValueError otherwise."""
    def bad():
        return ValueError(f"input_shape: expected {_SHAPE_HELP}; got {input_shape!r}")

    if not isinstance(input_shape, (tuple, list)) or len(input_shape) == 0:
        raise bad()
    if all(_is_int(v) for v in input_shape):
        shapes = [input_shape]
    elif all(isinstance(s, (tuple, list)) for s in input_shape):
        shapes = list(input_shape)
    else:
        raise bad()
    out = []
    for s in shapes:
        if len(s) == 0 or not all(_is_int(v) and v > 0 for v in s):
            raise bad()
        out.append(tuple(int(v) for v in s))
    return out


def check_input_dtype(input_dtype, n: int):
    """A list of ``n`` torch dtypes, or None for the default."""
    import torch

    if input_dtype is None:
        return None
    if isinstance(input_dtype, torch.dtype):
        return [input_dtype] * n
    if isinstance(input_dtype, (tuple, list)) and all(isinstance(d, torch.dtype)
                                                      for d in input_dtype):
        if len(input_dtype) != n:
            raise ValueError(f"input_dtype: expected one dtype, or one per input ({n}); got "
                             f"{len(input_dtype)}: {input_dtype!r}")
        return list(input_dtype)
    raise TypeError(f"input_dtype: expected a torch.dtype (e.g. torch.long for token ids) or "
                    f"one per input; got {input_dtype!r}")


def check_depth(depth, name: str = "depth"):
    if depth is None:
        return None
    if not _is_int(depth) or depth < 1:
        raise ValueError(f"{name}: expected a positive int (1 = the model's direct children) "
                         f"or None for every level; got {depth!r}")
    return int(depth)


def is_checkpoint_like(obj) -> bool:
    if isinstance(obj, (Catalog, Mapping, str, os.PathLike)):
        return True
    return (isinstance(obj, (list, tuple)) and len(obj) > 0
            and all(isinstance(p, (str, os.PathLike)) for p in obj))


# --------------------------------------------------------------------------
# the summary
# --------------------------------------------------------------------------

@dataclass
class ModelSummary:
    """The result of :func:`summary`.

    Attributes
    ----------
    rows : list of dict
        One per module, depth first in registration order (the model itself
        first, ``depth`` 0), down to the ``depth`` :func:`summary` was given.
        Keys: ``path`` (``""`` for the model), ``name`` (last path component),
        ``depth``, ``type`` (class name; None for checkpoints),
        ``output_shape`` (tuple, list of tuples for tuple/list/dict outputs,
        or None: no input shape, failed trace, module not run, checkpoint),
        ``params`` (parameters in the subtree, each shared/tied tensor once),
        ``own_params`` (parameters registered directly in this module; a tied
        tensor counts only in the first module that holds it, so the column
        sums to ``total_params``), ``trainable`` (``requires_grad``
        parameters in the subtree; None for checkpoints), ``calls`` (times
        the module ran in the traced forward; 0 = never ran; None without a
        trace), ``folded`` (number of deeper modules summed into this row).
    model_name : str
        Class name of the model, or the checkpoint's file name.
    total_params, trainable_params, non_trainable_params : int
        Tied tensors once.  ``trainable_params`` and
        ``non_trainable_params`` are None for checkpoints (files do not say).
    param_bytes, buffer_bytes : int
        Storage of the unique parameters and buffers.
    input_shape : list of tuple of int or None
        The shapes traced (one per input), as given.
    input_dtype : list of str or None
        dtype of each input in the trace that produced the shapes.
    shapes_note : str or None
        Why there are no output shapes (no input shape, a checkpoint, or the
        meta forward's error in one line); None when shapes were recorded.
    """

    rows: list
    model_name: str
    total_params: int
    trainable_params: int | None
    non_trainable_params: int | None
    param_bytes: int
    buffer_bytes: int
    input_shape: list | None = None
    input_dtype: list | None = None
    shapes_note: str | None = None
    calls: list | None = field(default=None, repr=False)

    @property
    def has_shapes(self) -> bool:
        """Whether the rows carry output shapes (the meta forward ran)."""
        return self.calls is not None

    def to_rows(self, depth: int | None = None) -> list:
        """The rows (copies), folded to ``depth`` (see :func:`summary`)."""
        return [dict(r) for r in _fold(self.rows, check_depth(depth))]

    def table(self, depth: int | None = None) -> str:
        """Aligned text like torchinfo: indented module tree, type, output shape, params.

        Parameters
        ----------
        depth : int, optional
            Fold deeper modules into their ancestor's row (whose params then
            cover its whole subtree); default: the rows as they are.

        Notes
        -----
        The ``Params`` column shows a row's subtree total where its children
        are not listed (leaves and folded rows) and its own parameters
        (``--`` for none) where they are, so the column adds up to the total
        except where a tied tensor is listed twice.  A ``Calls`` column
        appears when some module ran more than once.  ``--`` as an output
        shape: the module never ran as a module (containers such as
        ``ModuleList``, layers whose weights are used functionally).
        """
        rows = _fold(self.rows, check_depth(depth))
        has_type = any(r["type"] is not None for r in rows)
        show_calls = self.has_shapes and any((r["calls"] or 0) > 1 for r in rows)
        head = ["Module (type)" if has_type else "Module"]
        if self.has_shapes:
            head.append("Output shape")
        if show_calls:
            head.append("Calls")
        head.append("Params")
        right = [False] + [False] * self.has_shapes + [True] * show_calls + [True]
        listed = {r["path"] for r in rows}
        body = []
        for r in rows:
            label = r["name"] if r["depth"] else self.model_name
            if has_type and r["type"] is not None and (r["depth"] or label != r["type"]):
                label = f"{label} ({r['type']})"
            line = ["  " * r["depth"] + label]
            if self.has_shapes:
                line.append(format_shape(r["output_shape"]))
            if show_calls:
                line.append(str(r["calls"]))
            expanded = any(_is_child(p, r["path"]) for p in listed)
            n = r["own_params"] if expanded else r["params"]
            line.append(f"{n:,}" if (n or not expanded) else "--")
            body.append(line)
        widths = [max(len(head[c]), *(len(b[c]) for b in body)) for c in range(len(head))]

        def fmt(cells):
            return "  ".join(v.rjust(w) if rj else v.ljust(w)
                             for v, w, rj in zip(cells, widths, right)).rstrip()

        rule = "=" * max(len(fmt(head)), 40)
        lines = [rule, fmt(head), rule] + [fmt(b) for b in body] + [rule]
        lines.append(f"Total params: {self.total_params:,}")
        if self.trainable_params is not None:
            lines.append(f"Trainable params: {self.trainable_params:,}")
            lines.append(f"Non-trainable params: {self.non_trainable_params:,}")
        lines.append(f"Params size: {format_bytes(self.param_bytes)}")
        lines.append(f"Buffers size: {format_bytes(self.buffer_bytes)}")
        if self.input_shape is not None:
            ins = ", ".join(f"{format_shape(s)}" + (f" {d}" if d else "")
                            for s, d in zip(self.input_shape,
                                            self.input_dtype or [None] * len(self.input_shape)))
            lines.append(f"Input: {ins}")
        if self.shapes_note:
            lines.append(f"Note: {self.shapes_note}")
        lines.append(rule)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def __repr__(self) -> str:
        shapes = "with output shapes" if self.has_shapes else "no output shapes"
        return (f"ModelSummary({self.model_name}: {len(self.rows)} modules, "
                f"{self.total_params:,} parameters, {shapes})")


def _is_child(path: str, parent: str) -> bool:
    if parent == "":
        return path != "" and "." not in path
    return path.startswith(parent + ".") and "." not in path[len(parent) + 1:]


def _fold(rows: list, depth: int | None) -> list:
    """Rows at depth <= ``depth``; each kept row's ``folded`` counts the rows hidden below it.

    ``rows`` are depth first, so a row deeper than ``depth`` always follows
    its ancestor at ``depth`` and that ancestor's hidden descendants.
    """
    if depth is None:
        return rows
    out = []
    for r in rows:
        if r["depth"] <= depth:
            out.append(dict(r))
        else:
            out[-1]["folded"] += 1 + r["folded"]
    return out


def format_shape(shape, empty: str = "--") -> str:
    """``[1, 64, 256]``; a list of shapes joined by commas; ``empty`` for none."""
    if shape is None:
        return empty
    if isinstance(shape, list):
        return ", ".join(format_shape(s, empty) for s in shape) or empty
    return "[" + ", ".join(map(str, shape)) + "]"


def _module_rows(model) -> tuple:
    """Rows (without shapes) and totals of an ``nn.Module``, without touching its data."""
    owner: dict[int, str] = {}  # id(tensor) -> first module path holding it
    for path, module in model.named_modules():
        for p in module.parameters(recurse=False):
            owner.setdefault(id(p), path)
    rows = []
    for path, module in model.named_modules():
        uniq = {id(p): p for p in module.parameters()}
        own = sum(p.numel() for p in module.parameters(recurse=False) if owner[id(p)] == path)
        rows.append({
            "path": path, "name": path.rsplit(".", 1)[-1] if path else "",
            "depth": path.count(".") + 1 if path else 0, "type": type(module).__name__,
            "output_shape": None,
            "params": sum(p.numel() for p in uniq.values()),
            "own_params": own,
            "trainable": sum(p.numel() for p in uniq.values() if p.requires_grad),
            "calls": None, "folded": 0})
    params = list(model.parameters())  # unique
    total = sum(p.numel() for p in params)
    trainable = sum(p.numel() for p in params if p.requires_grad)
    pbytes = sum(p.numel() * p.element_size() for p in params)
    bbytes = sum(b.numel() * b.element_size() for b in model.buffers())
    return rows, total, trainable, pbytes, bbytes


def _catalog_summary(model, depth, shapes, dtypes) -> ModelSummary:
    from ..checkpoints.catalog import counts_in_totals
    from ..checkpoints.catalog import open as open_catalog

    cat = open_catalog(model)
    rows = []
    for d, node in cat.tree().walk():
        rows.append({"path": node.path, "name": node.name, "depth": d, "type": None,
                     "output_shape": None, "params": node.params,
                     "own_params": sum(i.params for i in node.tensors if counts_in_totals(i)),
                     "trainable": None, "calls": None, "folded": 0})
    srcs = cat.sources
    name = (os.path.basename(srcs[0]) if len(srcs) == 1 and srcs[0] != "<memory>"
            else "checkpoint" if srcs != ["<memory>"] else "state dict")
    note = ("a checkpoint has no layer types, no forward pass and no output shapes; pass the "
            "torch nn.Module (with input_shape) for those")
    return ModelSummary(
        rows=_fold(rows, depth), model_name=name, total_params=cat.total_params,
        trainable_params=None, non_trainable_params=None,
        param_bytes=sum(i.nbytes for i in cat.infos if counts_in_totals(i)),
        buffer_bytes=sum(i.nbytes for i in cat.infos
                         if i.tied_to is None and i.kind == "buffer"),
        input_shape=shapes, input_dtype=None if dtypes is None else
        [str(d).removeprefix("torch.") for d in dtypes], shapes_note=note)


def _guess_dtype(model):
    """``torch.long`` when the first leaf module is an embedding (token ids), else float32."""
    import torch

    for module in model.modules():
        if not any(True for _ in module.children()):
            if isinstance(module, (torch.nn.Embedding, torch.nn.EmbeddingBag)):
                return torch.long
            return torch.float32
    return torch.float32


def error_line(e: BaseException) -> str:
    msg = " ".join(str(e).split())
    if len(msg) > 300:
        msg = msg[:297] + "..."
    return f"{type(e).__name__}: {msg}" if msg else type(e).__name__


def summary(model, input_shape=None, *, input_dtype=None, depth: int | None = None
            ) -> ModelSummary:
    """Summarise a model like torchinfo / Keras ``summary()``.

    Parameters
    ----------
    model : torch.nn.Module, Catalog, or anything :func:`dlviz_gpu.models.open` accepts
        A module gives the full summary.  A checkpoint (path, list of paths,
        state dict, :class:`~dlviz_gpu.models.Catalog`) gives the module tree
        of its tensor names with parameter counts only: no layer types, no
        output shapes, no trainable split (``shapes_note`` says so).
    input_shape : tuple of int, or list of tuple of int, optional
        The input's shape including the batch dimension, e.g. ``(1, 128)``,
        or one shape per positional input.  When given (and ``model`` is a
        module), the model runs once on the meta device (see
        :func:`trace_calls`) and every module's output shape is recorded.
        The model is not modified, copied or moved.
    input_dtype : torch.dtype or list of torch.dtype, optional
        dtype of the inputs (one for all, or one per input).  Default: float32,
        except ``torch.long`` when the model's first leaf module (registration
        order) is an ``nn.Embedding`` / ``nn.EmbeddingBag``, i.e. a token
        model.  When the default was used, the trace failed and the model
        contains an embedding, the other of float32 / long is tried once.
    depth : int, optional
        Fold the tree: modules deeper than ``depth`` (the model is depth 0,
        its children 1) are left out and summed into their ancestor's row
        (whose ``params`` cover its whole subtree anyway).  Default: all.

    Returns
    -------
    ModelSummary
        ``rows``, totals, ``table()``.  If the meta forward fails
        (data-dependent control flow such as ``.item()``, ops without meta
        kernels, a wrong input shape), nothing is raised: the summary has no
        shapes and ``shapes_note`` gives the exception in one line.

    Raises
    ------
    ValueError
        ``input_shape`` not a tuple of positive ints or a list of them;
        ``depth`` not a positive int; ``input_dtype`` list of the wrong length.
    TypeError
        ``model`` neither a module nor a checkpoint source; ``input_dtype``
        not a torch dtype.
    CheckpointError
        A checkpoint path that cannot be opened (see :func:`~dlviz_gpu.models.open`).

    Examples
    --------
    >>> s = summary(nn.Sequential(nn.Embedding(100, 16), nn.Linear(16, 4)), (2, 7))
    >>> s.rows[2]["output_shape"], s.input_dtype
    ((2, 7, 4), ['int64'])
    """
    depth = check_depth(depth)
    shapes = None if input_shape is None else check_input_shape(input_shape)
    is_module = is_torch_module(model)
    if not is_module and is_checkpoint_like(model):
        dtypes = None if shapes is None else check_input_dtype(input_dtype, len(shapes))
        return _catalog_summary(model, depth, shapes, dtypes)
    if not is_module:
        raise TypeError(f"model: expected a torch nn.Module, a Catalog, a checkpoint path, a "
                        f"list of paths or a state dict; got {type_name(model)}")
    rows, total, trainable, pbytes, bbytes = _module_rows(model)
    out = ModelSummary(rows=rows, model_name=type(model).__name__, total_params=total,
                       trainable_params=trainable, non_trainable_params=total - trainable,
                       param_bytes=pbytes, buffer_bytes=bbytes, input_shape=shapes)
    if shapes is None:
        out.shapes_note = "no input_shape given: output shapes need one, e.g. (1, 128)"
    else:
        candidates = meta_args(model, shapes, input_dtype)
        first_error = None
        for args, names in candidates:
            try:
                calls = trace_calls(model, args)
            except Exception as e:  # noqa: BLE001 - any failure of the user's forward
                first_error = first_error or e
                continue
            _attach(out, calls)
            out.input_dtype = names
            break
        else:
            out.input_dtype = candidates[0][1]
            out.shapes_note = ("output shapes unavailable: the forward pass on the meta device "
                               f"failed ({error_line(first_error)})")
    out.rows = _fold(out.rows, depth)
    return out


def meta_args(model, shapes, input_dtype) -> list:
    """Meta-device inputs to try: ``[(args, dtype names), ...]``.

    The given dtypes; without them, the model's guessed dtype and, for a model
    with embeddings, the other of float32 / long as well.
    """
    import torch

    dtypes = check_input_dtype(input_dtype, len(shapes))
    tries = [dtypes] if dtypes is not None else [[_guess_dtype(model)] * len(shapes)]
    if dtypes is None and any(isinstance(m, (torch.nn.Embedding, torch.nn.EmbeddingBag))
                              for m in model.modules()):
        other = torch.float32 if tries[0][0] == torch.long else torch.long
        tries.append([other] * len(shapes))
    return [(tuple(torch.empty(s, dtype=d, device="meta") for s, d in zip(shapes, dts)),
             [str(d).removeprefix("torch.") for d in dts]) for dts in tries]


def _attach(out: ModelSummary, calls: list) -> None:
    """Put the first output shape and the call count of each module on its row."""
    by_path: dict[str, list] = {}
    for c in calls:
        by_path.setdefault(c.path, []).append(c)
    for r in out.rows:
        mine = by_path.get(r["path"], [])
        r["calls"] = len(mine)
        r["output_shape"] = mine[0].output_shape if mine else None
    out.calls = calls
