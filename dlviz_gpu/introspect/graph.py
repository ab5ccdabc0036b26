"""The structure of a network as a graph: modules and ops, data flow, laid out top to bottom.

>>> from dlviz_gpu.introspect.graph import structure
>>> g = structure(model, (1, 128))          # torch.fx where it traces, else hooks on meta
>>> g.method, g.note                        # "fx" / "hooks" / "tree", and why not fx
>>> [(n.label, n.output_shape, n.params) for n in g.nodes]
>>> g.edges                                 # (E, 2) int array: data flows from [:, 0] to [:, 1]
>>> g.x, g.y                                # the layout (top to bottom: y decreases)

How the graph is found, in order:

1. ``torch.fx`` symbolic tracing (a custom tracer, see :func:`is_atomic`): nodes
   are the calls of atomic modules (no submodules, or a built-in ``torch.nn``
   layer such as ``MultiheadAttention``), the functions and methods called
   between them (``add``, ``view``, ...), parameters read directly
   (``get_attr``), the inputs and the output.  With ``input_shape`` the traced
   graph is run once by an ``fx.Interpreter`` on the ``meta`` device for the
   output shapes (every module called through ``torch.func.functional_call``
   with meta stand-ins of its weights: nothing is read, copied or moved).
2. When fx cannot trace (data-dependent control flow such as ``if x.shape[1] >
   4``, ``for`` over a tensor's size, ``torch.nn.TransformerEncoder``'s own
   checks) and ``input_shape`` is given: one forward pass on the ``meta``
   device with module hooks (the machinery of
   :func:`dlviz_gpu.introspect.summary.trace_calls`), plus a
   ``TorchFunctionMode`` that follows every tensor from the op or module that
   made it to the ones that use it, so the edges are real data flow there too.
3. Otherwise (no input shape, or the meta forward failed as well): the module
   tree (edges parent -> child, no shapes), laid out as a tree.  A checkpoint
   :class:`~dlviz_gpu.models.Catalog` always gives this tree.

``ModelGraph.method`` says which one was used and ``ModelGraph.note`` why the
earlier ones were not (the exception in one line).

Folding and collapsing:

- ``depth``: every module deeper than ``depth`` (the model is depth 0, its
  children 1) is merged, with the ops inside it, into its ancestor at
  ``depth``; a module at ``depth`` is one node.
- ``collapse``: a run of consecutive list-indexed sibling modules (the
  children ``0, 1, 2, ...`` of a ``ModuleList`` or ``Sequential``) of the same type and the same structure (submodule names and types, parameter
  and buffer names, shapes and dtypes), where each member's output feeds the
  next (checked on the traced data flow), becomes one node with a ``count``:
  the 24 blocks of a transformer become ``Block x 24``.  In a module tree
  (no data flow) identical consecutive siblings collapse without that check.

Layout (:func:`dlviz_gpu.layouts.layered_layout`): longest-path layering in the nodes' execution
order, sources that are not inputs pulled down next to their first consumer,
a few vectorised barycentre sweeps to order each layer, then x positions
pulled towards the neighbours' and separated by a cumulative maximum; all in
NumPy (a 10,000-node graph in a few tens of milliseconds).

Thread safety: ``torch.fx`` tracing patches ``torch.nn.Module.__call__`` for
the duration of the trace, process-wide.  Build the graph before starting a
training thread on the same process, or while it is paused.

This module imports no plotting library; torch only inside the functions.
"""

from __future__ import annotations

import bisect
import os
from dataclasses import dataclass, field

import numpy as np

from ..layouts import check_edges, layered_layout, tree_layout
from ..optional import is_torch_module
from ..checkpoints.catalog import Catalog
from .summary import (check_depth, check_input_dtype, check_input_shape, is_checkpoint_like,
                      meta_state, error_line, shape_of, tensor_leaves, to_meta, type_name,
                      call_hooks, meta_args)

__all__ = ["structure", "ModelGraph", "GraphNode", "is_atomic", "METHODS", "KINDS"]

#: Values of ``ModelGraph.method`` (``"edges"``: made by :meth:`ModelGraph.from_edges`).
METHODS = ("fx", "hooks", "tree", "edges")
#: Values of ``GraphNode.kind``.
KINDS = ("input", "output", "module", "op", "param", "repeat")

#: Horizontal distance between neighbouring slots of a layer, and between layers,
#: in data units (a node is ``NODE_WIDTH`` x ``NODE_HEIGHT``).
X_GAP = 4.0
Y_GAP = 2.0
NODE_WIDTH = 3.4
NODE_HEIGHT = 1.0
#: Barycentre sweeps of the layout (each a down and an up pass).

_CONTAINERS = ("Sequential", "ModuleList", "ModuleDict", "ParameterList", "ParameterDict")


# --------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------

@dataclass
class GraphNode:
    """One node of a :class:`ModelGraph`.

    Attributes
    ----------
    index : int
        Position in ``ModelGraph.nodes`` (and in ``x``, ``y``, ``edges``).
    label : str
        Short text drawn on the node: the module's type (``"Linear"``), the
        op (``"add"``), ``"Block x 24"`` for a collapsed run, the attribute
        name of a parameter, ``"input"`` / ``"output"``.
    name : str
        Module path as in ``model.named_modules()`` (``"layers.0-5"`` for a
        run), the op's node name, or the input's argument name.
    type : str
        Class name of the module (``""`` in a checkpoint tree), the op's
        function name, ``"Parameter"`` / ``"buffer"``, ``"input"``, ``"output"``.
    kind : str
        One of :data:`KINDS`: ``"module"`` (a module call, or a module folded
        with everything inside it), ``"repeat"`` (a collapsed run),
        ``"op"``, ``"param"`` (a tensor read directly), ``"input"``, ``"output"``.
    output_shape : tuple of int, list of tuple of int, or None
        Shape of what the node produced (a list for several tensors); None
        without a meta forward.
    params : int
        Parameters of the node (whole subtree of a module; all members of a
        run).  A tensor shared by several nodes counts at the first, so the
        sum over nodes is the model's total when every module ran.
    count : int
        Members of a collapsed run (1 otherwise).
    modules : tuple of str
        Module paths this node stands for (a run: every member), so a
        dashboard can show their weights; empty for ops and inputs.
    tensors : tuple of str
        Parameter and buffer names (``state_dict`` keys, as in the
        :class:`~dlviz_gpu.models.Catalog` of the module) under ``modules``,
        or the one tensor a ``param`` node reads.
    layer : int
        Layer of the layout (0 at the top).
    x, y : float
        Centre of the node in data units (y decreases downwards).
    """

    index: int
    label: str
    name: str
    type: str
    kind: str
    output_shape: object = None
    params: int = 0
    count: int = 1
    modules: tuple = ()
    tensors: tuple = ()
    layer: int = 0
    x: float = 0.0
    y: float = 0.0


@dataclass
class ModelGraph:
    """The result of :func:`structure`.

    Attributes
    ----------
    nodes : list of GraphNode
        In execution order (inputs first); in a tree, depth first.
    edges : (E, 2) int64 array
        Data flows from node ``edges[k, 0]`` to node ``edges[k, 1]``; in a
        tree, parent -> child.  No duplicates, no self loops.
    method : str
        ``"fx"``, ``"hooks"`` or ``"tree"`` (see the module docstring);
        ``"edges"`` for :meth:`from_edges`.
    note : str or None
        Why an earlier method was not used, or why there are no output
        shapes; None when fx traced and the shapes (if asked for) came out.
    model_name : str
        Class name of the model, or the checkpoint's file name.
    total_params : int
        The model's parameters (tied tensors once).
    input_shape : list of tuple of int or None
    input_dtype : list of str or None
        dtype of each input in the meta forward that produced the shapes.
    depth : int or None
    collapse : bool
    """

    nodes: list
    edges: np.ndarray
    method: str
    note: str | None = None
    model_name: str = ""
    total_params: int = 0
    input_shape: list | None = None
    input_dtype: list | None = None
    depth: int | None = None
    collapse: bool = True

    @property
    def x(self) -> np.ndarray:
        """(N,) float64 array: node centres, data units."""
        return np.fromiter((n.x for n in self.nodes), np.float64, len(self.nodes))

    @property
    def y(self) -> np.ndarray:
        """(N,) float64 array: node centres, data units (0 at the top, downwards negative)."""
        return np.fromiter((n.y for n in self.nodes), np.float64, len(self.nodes))

    @property
    def has_shapes(self) -> bool:
        """Whether a meta forward gave output shapes."""
        return any(n.output_shape is not None for n in self.nodes if n.kind != "input")

    def find(self, name: str) -> GraphNode:
        """The first node whose ``name`` is ``name`` or whose ``modules`` contain it.

        Raises
        ------
        KeyError
            No such node.
        """
        for n in self.nodes:
            if n.name == name:
                return n
        for n in self.nodes:
            if name in n.modules:
                return n
        raise KeyError(f"no node {name!r}")

    def successors(self, index: int) -> list:
        """Indices of the nodes ``index`` feeds."""
        return [int(v) for v in self.edges[self.edges[:, 0] == index, 1]]

    def predecessors(self, index: int) -> list:
        """Indices of the nodes that feed ``index``."""
        return [int(u) for u in self.edges[self.edges[:, 1] == index, 0]]

    def to_rows(self) -> list:
        """One dict per node (its fields)."""
        return [dict(n.__dict__) for n in self.nodes]

    def __len__(self) -> int:
        return len(self.nodes)

    def __repr__(self) -> str:
        shapes = "with output shapes" if self.has_shapes else "no output shapes"
        return (f"ModelGraph({self.model_name}: {len(self.nodes)} nodes, {len(self.edges)} "
                f"edges, method={self.method!r}, {shapes})")

    @classmethod
    def from_edges(cls, n: int, edges, *, labels=None, types=None, params=None,
                   tree: bool = False, model_name: str = "graph") -> "ModelGraph":
        """A laid-out graph of ``n`` nodes from an edge list (synthetic graphs, other tools).

        Parameters
        ----------
        n : int
            Number of nodes.
        edges : (E, 2) array of int
            ``(source, target)`` node indices.  For a layered layout, the
            node order should be a topological order (an edge from a later
            to an earlier node is laid out as if reversed).
        labels, types : sequence of str, optional
            Per node; default ``"n<i>"`` / ``"node"``.
        params : sequence of int, optional
        tree : bool
            ``edges`` are parent -> child of a tree: use :func:`dlviz_gpu.layouts.tree_layout`.
        """
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"n: expected a non-negative int; got {n!r}")
        e = check_edges(edges, int(n))
        labels = [f"n{i}" for i in range(n)] if labels is None else list(labels)
        types = ["node"] * n if types is None else list(types)
        params = [0] * n if params is None else [int(p) for p in params]
        for name, seq in (("labels", labels), ("types", types), ("params", params)):
            if len(seq) != n:
                raise ValueError(f"{name}: expected {n} entries (one per node); got {len(seq)}")
        nodes = [GraphNode(i, str(labels[i]), str(labels[i]), str(types[i]), "module",
                           params=params[i]) for i in range(n)]
        g = cls(nodes=nodes, edges=e, method="tree" if tree else "edges", model_name=model_name,
                total_params=int(sum(params)))
        _place(g, tree=tree)
        return g


# --------------------------------------------------------------------------
# layout (the algorithms are in dlviz_gpu.layouts)
# --------------------------------------------------------------------------

def _place(g: ModelGraph, tree: bool = False) -> None:
    n = len(g.nodes)
    if tree:
        layer, x = tree_layout(n, g.edges)
    else:
        inputs = np.fromiter((nd.kind == "input" for nd in g.nodes), bool, n)
        layer, x = layered_layout(n, g.edges, inputs=inputs if inputs.any() else None)
    xs = (x * X_GAP).tolist()
    ys = (-layer * Y_GAP).astype(np.float64).tolist()
    ls = layer.tolist()
    for nd, xv, yv, lv in zip(g.nodes, xs, ys, ls):
        nd.x, nd.y, nd.layer = xv, yv, lv


# --------------------------------------------------------------------------
# the fine graph (before folding)
# --------------------------------------------------------------------------

@dataclass
class _Fine:
    """Nodes as traced: module calls, ops, parameters, inputs, output."""

    kind: list = field(default_factory=list)     # module / op / param / input / output
    name: list = field(default_factory=list)
    type: list = field(default_factory=list)
    owner: list = field(default_factory=list)    # module path for folding (None: never folded)
    shape: list = field(default_factory=list)
    tensor: list = field(default_factory=list)   # param nodes: the tensor's name
    edges: list = field(default_factory=list)
    fx_nodes: list = field(default_factory=list)  # fx: the torch.fx node of each

    def add(self, kind, name, type_, owner, shape=None, tensor=None) -> int:
        self.kind.append(kind)
        self.name.append(name)
        self.type.append(type_)
        self.owner.append(owner)
        self.shape.append(shape)
        self.tensor.append(tensor)
        return len(self.kind) - 1


def is_atomic(module, root: bool = False) -> bool:
    """Whether ``module`` is drawn as one node (never looked into).

    A module without submodules, or a built-in layer of ``torch.nn`` /
    ``torch.ao`` that has submodules but is one operation to its users
    (``MultiheadAttention``), except the containers (``Sequential``,
    ``ModuleList``, ``ModuleDict``) and the ``Transformer*`` classes, which
    are looked into.  The model itself (``root=True``) is looked into
    whenever it has submodules.
    """
    if not any(True for _ in module.children()):
        return True
    if root:
        return False
    cls = type(module)
    mod = cls.__module__ or ""
    builtin = mod.startswith("torch.nn.") or mod.startswith("torch.ao.")
    return builtin and cls.__name__ not in _CONTAINERS and not cls.__name__.startswith(
        "Transformer")


def _path_depth(path: str) -> int:
    return path.count(".") + 1 if path else 0


def _truncate(path: str, depth: int) -> str:
    return ".".join(path.split(".")[:depth])


def _concrete_args(model, n_inputs: int) -> dict:
    """Defaults of the forward's parameters after the first ``n_inputs`` (e.g.
    ``attention_mask=None``), so fx specialises on them as the meta forward does
    instead of tracing ``if mask is not None`` with a proxy."""
    import inspect

    try:
        sig = inspect.signature(model.forward)
    except (TypeError, ValueError):
        return {}
    out = {}
    for k, p in enumerate(sig.parameters.values()):
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if k >= n_inputs and p.default is not p.empty:
            out[p.name] = p.default
    return out


def _fx_graph(model, depth, n_inputs: int = 1):
    """torch.fx graph of ``model`` with :func:`is_atomic` leaves (and modules at ``depth``)."""
    import torch.fx as fx

    root = model

    class _Tracer(fx.Tracer):
        def is_leaf_module(self, m, qualname):
            if m is root:
                return False
            if depth is not None and _path_depth(qualname) >= depth:
                return True
            return is_atomic(m)

    return _Tracer().trace(model, concrete_args=_concrete_args(model, n_inputs) or None)


def _op_name(target) -> str:
    if isinstance(target, str):
        name = target
    else:
        name = getattr(target, "__name__", None) or type(target).__name__
        if name == "__get__":  # a property of Tensor, e.g. .T
            name = getattr(getattr(target, "__self__", None), "__name__", name)
    if name.startswith("__") and name.endswith("__") and len(name) > 4:
        name = name[2:-2]
        if name.startswith("i") and name[1:] in ("add", "sub", "mul", "truediv", "matmul"):
            name = name[1:] + "_"
    return name


def _fx_checks(graph, n_inputs: int) -> set:
    """Nodes fx adds for ``concrete_args``: the extra placeholders and their asserts."""
    import torch
    from torch.fx import _symbolic_trace

    asserts = {torch._assert, getattr(_symbolic_trace, "_assert_is_none", None)}
    dead: set = set()
    placeholders = [n for n in graph.nodes if n.op == "placeholder"]
    for node in reversed(list(graph.nodes)):
        if node.op == "call_function" and node.target in asserts:
            dead.add(node)
        elif node.op != "output" and node.users and all(u in dead for u in node.users):
            dead.add(node)
    for k, node in enumerate(placeholders):
        if k >= n_inputs and all(u in dead for u in node.users):
            dead.add(node)
        elif k < n_inputs:
            dead.discard(node)
    return dead


def _fx_fine(model, graph, n_inputs: int = 1) -> _Fine:
    """The fine graph of an fx graph; owners from ``nn_module_stack``."""
    f = _Fine()
    idx = {}
    params = {n for n, _ in model.named_parameters(remove_duplicate=False)}
    dead = _fx_checks(graph, n_inputs)
    for node in graph.nodes:
        if node in dead:
            continue
        stack = node.meta.get("nn_module_stack") or {}
        owner = ""
        if stack:
            last_key, last_val = list(stack.items())[-1]
            owner = last_val[0] if isinstance(last_val, tuple) and isinstance(last_val[0], str) \
                else str(last_key)
        if node.op == "placeholder":
            i = f.add("input", node.name, "input", None)
        elif node.op == "output":
            i = f.add("output", "output", "output", None)
        elif node.op == "call_module":
            m = model.get_submodule(node.target)
            i = f.add("module", node.target, type(m).__name__, node.target)
        elif node.op == "get_attr":
            target = str(node.target)
            own = target.rsplit(".", 1)[0] if "." in target else ""
            kind_t = "Parameter" if target in params else "buffer"
            i = f.add("param", target, kind_t, own, tensor=target)
        else:  # call_function, call_method
            i = f.add("op", node.name, _op_name(node.target), owner)
        idx[node] = i
        f.fx_nodes.append(node)
        for a in node.all_input_nodes:
            if a in idx:
                f.edges.append((idx[a], i))
    return f


def _fx_shapes(model, graph, args) -> dict:
    """Output shape of every fx node (``{node: shape}``), from an Interpreter run on meta."""
    import torch
    import torch.fx as fx
    from torch.func import functional_call

    shapes = {}

    class _Meta(fx.Interpreter):
        def run_node(self, n):
            out = super().run_node(n)
            shapes[n] = shape_of(out)
            return out

        def call_module(self, target, args, kwargs):
            sub = self.fetch_attr(target)
            return functional_call(sub, meta_state(sub), args, kwargs, tie_weights=True,
                                   strict=False)

        def get_attr(self, target, args, kwargs):
            return to_meta(self.fetch_attr(target))

    with torch.device("meta"):
        _Meta(model, graph=graph).run(*to_meta(args))
    return shapes


def _hooks_fine(model, args) -> tuple:
    """The fine graph from one meta forward: hooks for modules, a TorchFunctionMode for ops.

    Returns the fine graph and ``{module path: first output shape}`` of every
    module that ran (folded nodes take their module's shape from it).
    """
    import torch
    from torch.func import functional_call
    from torch.overrides import TorchFunctionMode

    args = to_meta(args if isinstance(args, tuple) else (args,))
    events: list = []        # ("pre", call, in_ids) / ("post", call, out) / ("op", name, call, ins, out)
    calls: list = []         # [path, type, parent, atomic, has_child]
    stack: list = []
    keep: list = []          # every tensor seen stays alive, so no id is reused
    handles = []
    root_mod = model

    def pre_hook(path, module, a, kw):
        ins = tensor_leaves((a, kw), [])
        keep.extend(ins)
        c = len(calls)
        parent = stack[-1] if stack else None
        if parent is not None:
            calls[parent][4] = True
        calls.append([path, type(module).__name__, parent,
                      is_atomic(module, root=module is root_mod), False])
        events.append(("pre", c, [id(t) for t in ins]))
        stack.append(c)

    def post_hook(path, module, a, kw, out):
        while stack:
            c = stack.pop()
            if calls[c][0] == path:
                leaves = tensor_leaves(out, [])
                keep.extend(leaves)
                events.append(("post", c, [id(t) for t in leaves], shape_of(out)))
                break

    class _Flow(TorchFunctionMode):
        def __torch_function__(self, func, types, fargs=(), kwargs=None):
            out = func(*fargs, **(kwargs or {}))
            if stack:
                outs = tensor_leaves(out, [])
                if outs:
                    ins = tensor_leaves((fargs, kwargs or {}), [])
                    keep.extend(ins)
                    keep.extend(outs)
                    events.append(("op", _op_name(func), stack[-1], [id(t) for t in ins],
                                   [id(t) for t in outs], shape_of(out)))
            return out

    state = meta_state(model)
    names = {id(t): n for n, t in state.items()}
    tensor_shape = {id(t): tuple(int(d) for d in t.shape) for t in state.values()}
    param_names = {n for n, _ in model.named_parameters(remove_duplicate=False)}
    keep.extend(state.values())
    keep.extend(tensor_leaves(args, []))
    try:
        handles.extend(call_hooks(model, pre_hook, post_hook))
        with torch.device("meta"), _Flow():
            out = functional_call(model, state, args, {}, tie_weights=True, strict=False)
    finally:
        for h in handles:
            h.remove()
    # which calls are nodes: a leaf (atomic, or it called no module) not inside another leaf
    n_calls = len(calls)
    inside = [False] * n_calls     # call is within a leaf call (not its own node)
    is_node = [False] * n_calls
    for c, (path, typ, parent, atomic, has_child) in enumerate(calls):
        in_leaf = parent is not None and (inside[parent] or is_node[parent])
        inside[c] = in_leaf
        is_node[c] = not in_leaf and (atomic or not has_child)
    f = _Fine()
    producer: dict = {}
    param_node: dict = {}
    module_shape: dict = {}

    def params_read(ids):
        """Nodes for the parameters / buffers among ``ids`` (made before their consumer)."""
        for t in ids:
            if t in names and t not in producer and t not in param_node:
                name = names[t]
                own = name.rsplit(".", 1)[0] if "." in name else ""
                kind_t = "Parameter" if name in param_names else "buffer"
                param_node[t] = f.add("param", name, kind_t, own, shape=tensor_shape[t],
                                      tensor=name)

    def link(ids, i):
        for t in ids:
            u = producer.get(t)
            if u is None:
                u = param_node.get(t)
            if u is not None and u != i:
                f.edges.append((u, i))

    for k, t in enumerate(tensor_leaves(args, [])):
        i = f.add("input", f"input_{k}" if len(args) > 1 else "input", "input", None,
                  shape=tuple(int(d) for d in t.shape))
        producer[id(t)] = i
    node_of_call: dict = {}
    op_count: dict = {}  # names ops like torch.fx does: add, add_1, ...
    for ev in events:
        if ev[0] == "pre":
            c = ev[1]
            if is_node[c]:
                path, typ = calls[c][0], calls[c][1]
                params_read(ev[2])
                i = f.add("module", path, typ, path)
                node_of_call[c] = i
                link(ev[2], i)
        elif ev[0] == "post":
            c = ev[1]
            module_shape.setdefault(calls[c][0], ev[3])
            i = node_of_call.get(c)
            if i is not None:
                f.shape[i] = ev[3]
                for t in ev[2]:
                    producer[t] = i
        else:
            _, name, c, ins, outs, shape = ev
            if inside[c] or is_node[c]:
                continue
            params_read(ins)
            k = op_count.get(name, 0)
            op_count[name] = k + 1
            i = f.add("op", f"{name}_{k}" if k else name, name, calls[c][0], shape=shape)
            link(ins, i)
            for t in outs:
                producer[t] = i
    o = f.add("output", "output", "output", None, shape=shape_of(out))
    link([id(t) for t in tensor_leaves(out, [])], o)
    return f, module_shape


# --------------------------------------------------------------------------
# module facts: signatures (for runs), params and tensor names per path
# --------------------------------------------------------------------------

class _Modules:
    """Per module path of an nn.Module: type, children, signature, unique parameters."""

    def __init__(self, model):
        self.model = model
        self.mods = dict(model.named_modules(remove_duplicate=False))
        self.children = {p: [f"{p}.{n}" if p else n for n, _ in m.named_children()]
                         for p, m in self.mods.items()}
        keys = list(model.state_dict(keep_vars=True).keys())
        self._sorted = sorted(keys)
        self._pos = {k: i for i, k in enumerate(keys)}
        self._sig: dict = {}

    def type(self, path: str) -> str:
        m = self.mods.get(path)
        return type(m).__name__ if m is not None else ""

    def signature(self, path: str):
        s = self._sig.get(path)
        if s is None:
            m = self.mods[path]
            s = (type(m).__name__,
                 tuple((n, type(c).__name__) for n, c in m.named_modules() if n),
                 tuple((n, tuple(t.shape), str(t.dtype))
                       for n, t in list(m.named_parameters(remove_duplicate=False))
                       + list(m.named_buffers(remove_duplicate=False))))
            self._sig[path] = s
        return s

    def tensors(self, path: str) -> list:
        """state_dict keys under ``path``, in the model's order."""
        if path == "":
            return sorted(self._pos, key=self._pos.get)
        pre = path + "."
        i = bisect.bisect_left(self._sorted, pre)
        out = []
        while i < len(self._sorted) and self._sorted[i].startswith(pre):
            out.append(self._sorted[i])
            i += 1
        return sorted(out, key=self._pos.get)

    def params(self, path: str) -> list:
        m = self.mods.get(path)
        return list(m.parameters()) if m is not None else []


def _indexed(path: str) -> bool:
    """Whether the last component of ``path`` is a list index (ModuleList, Sequential)."""
    return path.rsplit(".", 1)[-1].isdigit()


def _candidate_runs(children: dict, signature) -> list:
    """Runs (lists of >= 2 paths) of consecutive indexed siblings with equal signatures."""
    runs = []
    for parent, kids in children.items():
        k = 0
        while k < len(kids):
            j = k + 1
            if not _indexed(kids[k]):
                k = j
                continue
            sk = signature(kids[k])
            while j < len(kids) and _indexed(kids[j]) and signature(kids[j]) == sk:
                j += 1
            if j - k >= 2:
                runs.append(kids[k:j])
            k = j
    return runs


def _member_of(path: str, member: dict, depth) -> str | None:
    """The outermost run member that is ``path`` or contains it (within ``depth``)."""
    if not member or path is None or path == "":
        return None
    parts = path.split(".")
    for L in range(1, len(parts) + 1):
        if depth is not None and L > depth:
            return None
        p = ".".join(parts[:L])
        if p in member:
            return p
    return None


def _chained_runs(f: _Fine, runs: list, depth) -> dict:
    """Runs whose every member feeds the next directly; ``{member path: run index}``."""
    member = {p: r for r, run in enumerate(runs) for p in run}
    where = [_member_of(o, member, depth) if o is not None else None for o in f.owner]
    links = set()
    for u, v in f.edges:
        a, b = where[u], where[v]
        if a is not None and b is not None and a != b:
            links.add((a, b))
    ok = {}
    for r, run in enumerate(runs):
        if depth is not None and _path_depth(run[0]) > depth:
            continue
        if all((run[k], run[k + 1]) in links for k in range(len(run) - 1)):
            for p in run:
                ok[p] = r
    # a run nested in a member of an accepted outer run is hidden by it; keep the outer
    return ok


def _run_name(run: list) -> str:
    first, last = run[0], run[-1]
    parent = first.rsplit(".", 1)[0] + "." if "." in first else ""
    return f"{parent}{first.rsplit('.', 1)[-1]}-{last.rsplit('.', 1)[-1]}"


def _fold(f: _Fine, mods: _Modules, depth, collapse: bool, module_shape=None) -> tuple:
    """Group the fine nodes (depth folding, collapsed runs) -> (nodes, edges)."""
    runs = _candidate_runs(mods.children, mods.signature) if collapse else []
    member = _chained_runs(f, runs, depth) if runs else {}
    n = len(f.kind)
    keys = [None] * n
    for i in range(n):
        kind, owner = f.kind[i], f.owner[i]
        if owner is None:  # input / output
            keys[i] = ("n", i)
            continue
        m = _member_of(owner, member, depth)
        if m is not None:
            keys[i] = ("run", member[m])
        elif depth is not None and _path_depth(owner) >= depth:
            keys[i] = ("m", _truncate(owner, depth))
        else:
            keys[i] = ("n", i)
    group_of: dict = {}
    members: list = []
    for i, k in enumerate(keys):
        g = group_of.get(k)
        if g is None:
            g = group_of[k] = len(members)
            members.append([])
        members[g].append(i)
    gid = [group_of[k] for k in keys]
    edges = {(gid[u], gid[v]) for u, v in f.edges if gid[u] != gid[v]}
    # nodes
    claimed: set = set()
    nodes = []
    group_keys = list(group_of)
    module_shape = module_shape or {}
    out_edges: dict = {}
    for u, v in f.edges:
        if gid[u] != gid[v]:
            out_edges.setdefault(gid[u], []).append(u)
    for g, key in enumerate(group_keys):
        mem = members[g]
        first = mem[0]
        count = 1
        if key[0] == "n":
            kind = f.kind[first]
            name, type_ = f.name[first], f.type[first]
            shape = f.shape[first]
            paths = (f.owner[first],) if kind == "module" else ()
            tensors = (f.tensor[first],) if kind == "param" else ()
            label = {"module": type_, "op": type_, "param": name.rsplit(".", 1)[-1]}.get(
                kind, name)
        elif key[0] == "m":
            path = key[1]
            kind, name, type_ = "module", path, mods.type(path)
            paths = (path,)
            tensors = ()
            shape = module_shape.get(path, _group_shape(f, mem, out_edges.get(g)))
            label = type_
        else:
            run = [p for p, r in member.items() if r == key[1]]
            run.sort(key=lambda p: mods.children[p.rsplit(".", 1)[0] if "." in p else ""]
                     .index(p))
            kind, name, type_ = "repeat", _run_name(run), mods.type(run[0])
            paths = tuple(run)
            tensors = ()
            shape = module_shape.get(run[-1], _group_shape(f, mem, out_edges.get(g)))
            count = len(run)
            label = f"{type_} x {count}"
        if kind in ("module", "repeat"):
            tensors = tuple(t for p in paths for t in mods.tensors(p))
            ps = [p for path in paths for p in mods.params(path)]
        elif kind == "param":
            t = f.tensor[first]
            try:
                ps = [mods.model.get_parameter(t)]
            except (AttributeError, KeyError):
                ps = []
        else:
            ps = []
        params = 0
        for p in ps:
            if id(p) not in claimed:
                claimed.add(id(p))
                params += p.numel()
        nodes.append(GraphNode(g, label, name, type_, kind, shape, int(params), count,
                               tuple(paths), tuple(tensors)))
    e = np.array(sorted(edges), dtype=np.int64).reshape(-1, 2)
    return nodes, e


def _group_shape(f: _Fine, mem: list, leaving):
    """Output shape of a folded group: its last node with an edge leaving the group."""
    cands = leaving or mem
    for i in sorted(cands, reverse=True):
        if f.shape[i] is not None:
            return f.shape[i]
    return None


# --------------------------------------------------------------------------
# trees (checkpoints, and modules that neither trace nor run)
# --------------------------------------------------------------------------

def _module_tree(mods: _Modules, depth, collapse: bool) -> tuple:
    """Module tree of an nn.Module: nodes depth first, edges parent -> child."""
    runs = _candidate_runs(mods.children, mods.signature) if collapse else []
    run_of = {}
    for run in runs:
        if depth is None or _path_depth(run[0]) <= depth:
            for p in run:
                run_of[p] = run
    nodes: list = []
    edges: list = []
    expanded: list = []

    def visit(path, parent):
        run = run_of.get(path)
        if run is not None and run[0] != path:
            return
        i = len(nodes)
        typ = mods.type(path)
        if run is not None:
            nodes.append(GraphNode(i, f"{typ} x {len(run)}", _run_name(run), typ, "repeat",
                                   count=len(run), modules=tuple(run)))
        else:
            nodes.append(GraphNode(i, typ, path or typ, typ, "module", modules=(path,)))
        if parent is not None:
            edges.append((parent, i))
        expand = run is None and bool(mods.children[path]) and (
            depth is None or _path_depth(path) < depth)
        expanded.append(expand)
        if expand:
            for c in mods.children[path]:
                visit(c, i)

    visit("", None)
    # expanded nodes hold their own tensors, leaves and folded nodes their subtree's
    claimed: set = set()
    for nd, expand in zip(nodes, expanded):
        path = nd.modules[0]
        if expand:
            ps = list(mods.mods[path].parameters(recurse=False))
            skip = len(path) + 1 if path else 0
            nd.tensors = tuple(t for t in mods.tensors(path) if "." not in t[skip:])
        else:
            ps = [p for q in nd.modules for p in mods.params(q)]
            nd.tensors = tuple(t for q in nd.modules for t in mods.tensors(q))
        for p in ps:
            if id(p) not in claimed:
                claimed.add(id(p))
                nd.params += p.numel()
    return nodes, np.array(edges, dtype=np.int64).reshape(-1, 2)


def _catalog_tree(cat: Catalog, depth, collapse: bool) -> tuple:
    """Module tree of a checkpoint catalog (no types), as nodes and parent -> child edges."""
    from ..checkpoints.catalog import counts_in_totals

    root = cat.tree()
    sig_cache: dict = {}

    def signature(node):
        s = sig_cache.get(id(node))
        if s is None:
            plen = len(node.path) + 1 if node.path else 0
            s = tuple(sorted((i.name[plen:], tuple(i.shape), str(i.dtype))
                             for _, nd in node.walk() for i in nd.tensors))
            sig_cache[id(node)] = s
        return s

    nodes: list = []
    edges: list = []

    def visit(node, d, parent):
        kids = list(node.children.values())
        i = len(nodes)
        own = sum(t.params for t in node.tensors if counts_in_totals(t))
        expand = bool(kids) and (depth is None or d < depth)
        params = own if expand else node.params
        tensors = tuple(t.name for t in node.tensors) if expand else tuple(
            t.name for _, nd in node.walk() for t in nd.tensors)
        name = node.path
        nodes.append(GraphNode(i, node.name or "model", name, "", "module", params=params,
                               modules=(name,), tensors=tensors))
        if parent is not None:
            edges.append((parent, i))
        if not expand:
            return
        k = 0
        while k < len(kids):
            j = k + 1
            if collapse:
                while (j < len(kids) and kids[k].name.isdigit() and kids[j].name.isdigit()
                       and kids[j].children.keys() == kids[k].children.keys()
                       and signature(kids[j]) == signature(kids[k]) and signature(kids[k])):
                    j += 1
            if j - k >= 2:
                run = kids[k:j]
                r = len(nodes)
                paths = tuple(c.path for c in run)
                nodes.append(GraphNode(
                    r, f"{node.name or 'model'}.{run[0].name}-{run[-1].name} x {len(run)}",
                    _run_name(list(paths)), "", "repeat", params=sum(c.params for c in run),
                    count=len(run), modules=paths,
                    tensors=tuple(t.name for c in run for _, nd in c.walk() for t in nd.tensors)))
                edges.append((i, r))
            else:
                visit(kids[k], d + 1, i)
            k = j

    visit(root, 0, None)
    return nodes, np.array(edges, dtype=np.int64).reshape(-1, 2)


# --------------------------------------------------------------------------
# structure()
# --------------------------------------------------------------------------

def structure(model, input_shape=None, input_dtype=None, depth: int | None = None, *,
              collapse: bool = True) -> ModelGraph:
    """The structure of a network as a laid-out graph of modules and ops.

    Parameters
    ----------
    model : torch.nn.Module or Catalog
        A module gives data flow (fx, or hooks during a meta forward); a
        checkpoint :class:`~dlviz_gpu.models.Catalog` (or a path, list of
        paths or state dict, opened with :func:`dlviz_gpu.models.open`) gives
        its module tree only.  The module is never modified, copied or moved.
    input_shape : tuple of int, or list of tuple of int, optional
        Shape of the input including the batch dimension (one per positional
        input).  Needed for output shapes, and for the hooks fallback when
        fx cannot trace.
    input_dtype : torch.dtype or list of torch.dtype, optional
        Default float32, or ``torch.long`` when the first leaf module is an
        embedding (as in :func:`dlviz_gpu.introspect.summary.summary`, whose
        retry with the other dtype this shares).
    depth : int, optional
        Fold modules deeper than ``depth`` into their ancestor (1: only the
        model's direct children); default: every atomic module.
    collapse : bool
        Collapse runs of identical chained sibling modules into one node with
        a ``count`` (see the module docstring).

    Returns
    -------
    ModelGraph
        Nodes with layout (``x``, ``y``), edges, ``method`` and ``note``.

    Raises
    ------
    TypeError
        ``model`` not a torch module or a checkpoint; ``input_dtype`` not a
        torch dtype; ``collapse`` not a bool.
    ValueError
        ``depth`` not a positive int; ``input_shape`` malformed.
    """
    depth = check_depth(depth)
    if not isinstance(collapse, bool):
        raise TypeError(f"collapse: expected True or False; got {collapse!r}")
    shapes = None if input_shape is None else check_input_shape(input_shape)
    is_module = is_torch_module(model)
    if not is_module:
        if is_checkpoint_like(model):
            from ..checkpoints.catalog import open as open_catalog

            cat = model if isinstance(model, Catalog) else open_catalog(model)
            nodes, edges = _catalog_tree(cat, depth, collapse)
            srcs = cat.sources
            name = (os.path.basename(srcs[0]) if len(srcs) == 1 and srcs[0] != "<memory>"
                    else "checkpoint" if srcs != ["<memory>"] else "state dict")
            g = ModelGraph(nodes, edges, "tree", note="a checkpoint has no data flow and no "
                           "layer types: the module tree of its tensor names; pass the torch "
                           "nn.Module for the graph", model_name=name,
                           total_params=cat.total_params, input_shape=shapes, depth=depth,
                           collapse=collapse)
            _place(g, tree=True)
            return g
        raise TypeError(f"model: expected a torch nn.Module, a Catalog, a checkpoint path, a "
                        f"list of paths or a state dict; got {type_name(model)}")
    if shapes is not None:
        check_input_dtype(input_dtype, len(shapes))  # errors before any tracing
    mods = _Modules(model)
    total = sum(p.numel() for p in model.parameters())
    notes = []
    g = None
    dtypes_used = None
    # 1. fx
    try:
        fxg = _fx_graph(model, depth, 1 if shapes is None else len(shapes))
        fx_error = None
    except Exception as e:  # noqa: BLE001 - anything the user's forward raises under fx
        fxg, fx_error = None, e
    if fxg is not None:
        fine = _fx_fine(model, fxg, 1 if shapes is None else len(shapes))
        if shapes is not None:
            err = None
            for args, dts in meta_args(model, shapes, input_dtype):
                try:
                    got = _fx_shapes(model, fxg, args)
                except Exception as e:  # noqa: BLE001
                    err = err or e
                    continue
                fine.shape = [got.get(nd) for nd in fine.fx_nodes]
                dtypes_used = dts
                break
            else:
                notes.append(f"no output shapes: the traced graph failed on the meta device "
                             f"({error_line(err)})")
        nodes, edges = _fold(fine, mods, depth, collapse)
        g = ModelGraph(nodes, edges, "fx")
    else:
        notes.append(f"torch.fx could not trace the model ({error_line(fx_error)})")
        if shapes is None:
            notes.append("the hooks fallback needs input_shape: showing the module tree")
        else:
            err = None
            for args, dts in meta_args(model, shapes, input_dtype):
                try:
                    fine, module_shape = _hooks_fine(model, args)
                except Exception as e:  # noqa: BLE001
                    err = err or e
                    continue
                nodes, edges = _fold(fine, mods, depth, collapse, module_shape)
                g = ModelGraph(nodes, edges, "hooks")
                dtypes_used = dts
                break
            else:
                notes.append(f"the forward pass on the meta device failed as well "
                             f"({error_line(err)}): showing the module tree without shapes")
    if g is None:
        nodes, edges = _module_tree(mods, depth, collapse)
        g = ModelGraph(nodes, edges, "tree")
    g.note = "; ".join(notes) or None
    g.model_name = type(model).__name__
    g.total_params = int(total)
    g.input_shape = shapes
    g.input_dtype = dtypes_used
    g.depth = depth
    g.collapse = collapse
    unused = [n for n in _never_ran(g, mods)]
    if unused and g.method != "tree":
        n_p = sum(p.numel() for path in unused for p in mods.params(path))
        more = f" ({', '.join(unused[:3])}{', ...' if len(unused) > 3 else ''})"
        g.note = "; ".join(filter(None, [g.note, f"{len(unused)} module(s) with {n_p:,} "
                                         f"parameters never ran in the forward{more}"]))
    _place(g, tree=g.method == "tree")
    return g


def _never_ran(g: ModelGraph, mods: _Modules) -> list:
    """Top-most modules with parameters that no node covers (unused heads and the like)."""
    covered = set()
    for nd in g.nodes:
        covered.update(nd.modules)
        if nd.kind == "param":
            covered.add(nd.tensors[0])
    claimed_params = {id(p) for nd in g.nodes for path in nd.modules for p in mods.params(path)}
    for nd in g.nodes:
        if nd.kind == "param":
            try:
                claimed_params.add(id(mods.model.get_parameter(nd.tensors[0])))
            except (AttributeError, KeyError):
                pass
    out = []
    for path, m in mods.mods.items():
        if path == "" or any(path == o or path.startswith(o + ".") for o in out):
            continue
        ps = list(m.parameters())
        if ps and not any(id(p) in claimed_params for p in ps):
            out.append(path)
    return out
