"""``dv.graph``: the structure of a network, zoomable, drawn with Bokeh.

>>> view = dv.graph(model, (1, 128))              # HoloViews Overlay; view.view is a GraphView
>>> dv.save(view, "structure.html")
>>> view.view.graph.method, view.view.graph.note  # fx / hooks / tree, and why
>>> view.view.selection                           # hv.streams.Selection1D of the node boxes

Nodes are rectangles in data units (they grow as one zooms in), edges straight
segments from the bottom of a node to the top of the next, labels (the type,
``"Block x 24"`` for a collapsed run) appear once a node is wide enough on
screen to hold its text: a small JavaScript callback on the x range switches
them on and off, in a served page and in a static HTML file alike.  Hover
shows the module path, type, output shape, parameter count and repeat count.

Choosing a node (the dashboard's "show its weights"): the node boxes carry the
``tap`` tool and :attr:`GraphView.selection` is a ``Selection1D`` stream on
them; :meth:`GraphView.on_select` calls back with the chosen
:class:`~dlviz_gpu.introspect.graph.GraphNode`, whose ``tensors`` are the
``state_dict`` names (the catalog's names) of the weights under it::

    gv = dv.graph(model, (1, 64)).view
    gv.on_select(lambda node: node and show(node.tensors[0]))
    pn.Row(pn.pane.HoloViews(gv.element), ...)

The stream only fires on a Bokeh server (``dv.serve``, Panel); a static page
highlights the tapped node and nothing more.
"""

from __future__ import annotations

import numpy as np

from ..introspect.graph import (NODE_HEIGHT, NODE_WIDTH, X_GAP, Y_GAP, GraphNode, ModelGraph,
                            structure)
from ..introspect.summary import format_shape
from ..names import display
from . import style

#: Fill colour of a node by its ``kind``.
KIND_COLOURS = {
    "input": "#8fd694",
    "output": "#8fd694",
    "module": "#9ecae1",
    "repeat": "#fdae6b",
    "op": "#e3e3e3",
    "param": "#fff2a8",
}
EDGE_COLOUR = "#7a7a7a"
LINE_COLOUR = "#4a4a4a"
#: Labels are cut to this many characters (the hover has the full text).
LABEL_CHARS = 28
#: Approximate width of one label character in screen pixels (10 px font).
CHAR_PX = 6.2
LABEL_FONT = "10px"


class GraphView:
    """A drawn :class:`~dlviz_gpu.introspect.graph.ModelGraph` and the way to pick its nodes.

    Build one with :func:`graph` (it is ``.view`` of the returned overlay).

    Attributes
    ----------
    graph : ModelGraph
    element : holoviews.Overlay
        Edges (``hv.Segments`` and an ``hv.Path``) * nodes (``hv.Rectangles``) *
        labels (``hv.Labels``).
    nodes : holoviews.Rectangles
        One box per node, in ``graph.nodes`` order (row ``i`` is node ``i``),
        with the hover fields as value dimensions: ``label``, ``name``,
        ``type``, ``kind``, ``shape``, ``params``, ``params_text``, ``count``,
        ``colour``.
    edges : holoviews.Segments
        Edges between neighbouring layers.
    long_edges : holoviews.Path
        Edges that skip layers, routed beside the node columns (NaN-separated).
    labels : holoviews.Labels
    selection : holoviews.streams.Selection1D
        ``selection.index`` is the list of chosen node indices (the tap tool
        on the node boxes); updates on a Bokeh server.  Made on first use:
        touch it (or call :meth:`on_select`) before the view is rendered.
    label_scale : float
        Screen pixels per data unit from which the labels show.
    """

    def __init__(self, g: ModelGraph, width: int = 900, height: int = 700,
                 title: str | None = None):
        hv = style.ensure_bokeh()
        self.graph = g
        self.width, self.height = int(width), int(height)
        n = len(g.nodes)
        x, y = g.x, g.y
        hw, hh = NODE_WIDTH / 2.0, NODE_HEIGHT / 2.0
        nodes = g.nodes
        # module names and types are data (a checkpoint's names): shown with controls escaped
        labels = [_cut(display(nd.label)) for nd in nodes]
        cols = {
            "x0": x - hw, "y0": y - hh, "x1": x + hw, "y1": y + hh,
            "label": labels,
            "name": [display(nd.name, limit=style.LABEL_LIMIT) for nd in nodes],
            "type": [display(nd.type, limit=style.LABEL_LIMIT) if nd.type else "-"
                     for nd in nodes],
            "kind": [nd.kind for nd in nodes],
            "shape": [_shape_text(nd.output_shape) for nd in nodes],
            "params": np.fromiter((nd.params for nd in nodes), np.int64, n),
            "params_text": [f"{nd.params:,}" for nd in nodes],
            "count": np.fromiter((nd.count for nd in nodes), np.int64, n),
            "colour": [KIND_COLOURS.get(nd.kind, "#cccccc") for nd in nodes],
        }
        vdims = ["label", "name", "type", "kind", "shape", "params", "params_text", "count",
                 "colour"]
        tips = [("name", "@{name}"), ("type", "@{type}"), ("output shape", "@{shape}"),
                ("parameters", "@{params_text}"), ("repeat", "x @{count}")]
        self.nodes = hv.Rectangles(cols, kdims=["x0", "y0", "x1", "y1"], vdims=vdims).opts(
            backend="bokeh", color="colour", line_color=LINE_COLOUR, line_width=0.8,
            tools=["hover", "tap"], hover_tooltips=tips, nonselection_alpha=0.35,
            selection_line_width=2.5, selection_line_color="#d62728")
        self.edges, self.long_edges = _edge_elements(hv, g, x, y)
        # labels show once the node box is as wide on screen as the text of nine
        # labels in ten (the longest few overflow their box a little)
        typical = float(np.percentile([len(t) for t in labels], 90)) if labels else 4.0
        self.label_scale = max(typical, 4.0) * CHAR_PX / NODE_WIDTH
        self.labels = hv.Labels({"x": x, "y": y, "label": labels}, kdims=["x", "y"],
                                vdims=["label"]).opts(
            backend="bokeh", text_font_size=LABEL_FONT, text_color="#111111", tools=[],
            hooks=[self._label_hook])
        mpl = _matplotlib_options()
        if mpl:
            # the PNG (dv.save through matplotlib) shows the labels only where the
            # first view would, and never thousands of text artists
            self.labels = self.labels.opts(backend="matplotlib", color="#111111", size=7,
                                           visible=self.initial_scale() >= self.label_scale)
        xlim, ylim = self._limits(x, y)
        head = style.label(title if title is not None else _title(g), limit=300)
        self.element = hv.Overlay([self.edges, self.long_edges, self.nodes,
                                   self.labels]).opts(
            backend="bokeh", frame_width=self.width, frame_height=self.height, xlim=xlim,
            ylim=ylim, xaxis=None, yaxis=None, title=head, show_grid=False,
            active_tools=["wheel_zoom"], default_tools=["pan", "wheel_zoom", "reset", "save"],
            toolbar="above")
        if mpl:
            self.element = self.element.opts(backend="matplotlib", xaxis=None, yaxis=None,
                                             show_frame=False)
        self._selection = None

    # -- geometry -------------------------------------------------------------------
    def _limits(self, x, y) -> tuple:
        """x and y ranges that hold every node with the frame's aspect (one data unit
        is as many pixels across as up, so zooming never squashes the boxes)."""
        if len(x) == 0:
            x = y = np.zeros(1)
        pad = 1.0
        x0, x1 = float(x.min()) - NODE_WIDTH / 2 - pad, float(x.max()) + NODE_WIDTH / 2 + pad
        y0, y1 = float(y.min()) - NODE_HEIGHT / 2 - pad, float(y.max()) + NODE_HEIGHT / 2 + pad
        sx = (x1 - x0) / self.width
        sy = (y1 - y0) / self.height
        s = max(sx, sy)  # data units per pixel
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        return ((cx - s * self.width / 2, cx + s * self.width / 2),
                (cy - s * self.height / 2, cy + s * self.height / 2))

    def initial_scale(self) -> float:
        """Screen pixels per data unit of the first view."""
        xlim, _ = self._limits(self.graph.x, self.graph.y)
        return self.width / (xlim[1] - xlim[0])

    def _label_hook(self, plot, element) -> None:
        from bokeh.models import CustomJS

        renderer = plot.handles.get("glyph_renderer")
        xr = plot.handles.get("x_range")
        if renderer is None or xr is None:
            return
        renderer.visible = self.initial_scale() >= self.label_scale
        cb = CustomJS(args={"r": renderer, "xr": xr, "k": float(self.label_scale),
                            "w": float(self.width)}, code="""
            const span = xr.end - xr.start;
            const show = span > 0 && (w / span) >= k;
            if (r.visible !== show) { r.visible = show; }
        """)
        xr.js_on_change("start", cb)
        xr.js_on_change("end", cb)

    # -- choosing nodes ---------------------------------------------------------------
    @property
    def selection(self):
        """``hv.streams.Selection1D`` on the node boxes (made on first use, before the
        view is rendered; a stream makes Bokeh warn that a static page cannot call
        Python, so views that are only saved do without one)."""
        if self._selection is None:
            import holoviews as hv

            self._selection = hv.streams.Selection1D(source=self.nodes)
        return self._selection

    def node_at(self, index: int) -> GraphNode:
        """The node drawn at row ``index`` of :attr:`nodes`."""
        n = len(self.graph.nodes)
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)) \
                or not 0 <= index < n:
            raise ValueError(f"index: expected a node index in [0, {n}); got {index!r}")
        return self.graph.nodes[int(index)]

    def module_at(self, index: int) -> str | None:
        """Module path of node ``index`` (a run: its first member); None for ops, inputs,
        outputs and parameters read directly."""
        nd = self.node_at(index)
        return nd.modules[0] if nd.modules else None

    def tensors_at(self, index: int) -> tuple:
        """``state_dict`` names of the weights under node ``index`` (see ``GraphNode.tensors``)."""
        return self.node_at(index).tensors

    def selected(self) -> GraphNode | None:
        """The node chosen last (the first of the selection), or None."""
        idx = list(self.selection.index or [])
        return self.graph.nodes[idx[0]] if idx and 0 <= idx[0] < len(self.graph.nodes) \
            else None

    def on_select(self, callback) -> None:
        """Call ``callback(node)`` (a GraphNode, or None when cleared) on every tap."""
        if not callable(callback):
            raise TypeError(f"callback: expected a callable taking a GraphNode or None; got "
                            f"{type(callback).__name__}")
        self.selection.add_subscriber(lambda index: callback(self.selected()))

    def __repr__(self) -> str:
        return f"GraphView({self.graph!r})"


def _edge_elements(hv, g: ModelGraph, x, y) -> tuple:
    """Edges between neighbouring layers as straight ``hv.Segments``; edges that skip
    layers (residual connections) as one NaN-separated ``hv.Path`` routed through
    the channel beside the node columns, so they do not run through the boxes.
    """
    hh = NODE_HEIGHT / 2.0
    e = g.edges
    if len(e) == 0:
        e = np.zeros((0, 2), np.int64)
    s, t = e[:, 0], e[:, 1]
    layer = np.fromiter((nd.layer for nd in g.nodes), np.int64, len(g.nodes))
    span = layer[t] - layer[s] if len(e) else np.zeros(0, np.int64)
    short = span == 1
    down = y[t] < y[s]
    ys = np.where(down, y[s] - hh, y[s])
    yt = np.where(down, y[t] + hh, y[t])
    seg = {"x0": x[s][short], "y0": ys[short], "x1": x[t][short], "y1": yt[short]}
    edges = hv.Segments(seg, kdims=["x0", "y0", "x1", "y1"]).opts(
        backend="bokeh", color=EDGE_COLOUR, line_width=1.0, line_alpha=0.8, tools=[])
    lk = ~short
    xs, xt, y0, y1 = x[s][lk], x[t][lk], ys[lk], yt[lk]
    side = np.where(xt >= xs, 1.0, -1.0) * (X_GAP / 2.0)
    half = (Y_GAP - NODE_HEIGHT) / 2.0
    pts = np.full((len(xs), 5, 2), np.nan)
    pts[:, 0] = np.stack([xs, y0], 1)
    pts[:, 1] = np.stack([xs + side, y0 - half], 1)
    pts[:, 2] = np.stack([xt + side, y1 + half], 1)
    pts[:, 3] = np.stack([xt, y1], 1)
    path = hv.Path([pts.reshape(-1, 2)[:-1] if len(xs) else np.zeros((0, 2))],
                   kdims=["x0", "y0"]).opts(
        backend="bokeh", color=EDGE_COLOUR, line_width=1.0, line_alpha=0.6, tools=[])
    return edges, path


def _matplotlib_options() -> bool:
    """Load HoloViews' matplotlib options (once per process, about half a second) so
    the view can carry its PNG look; False where matplotlib is missing.

    ``dv.save(..., "x.png")`` draws with matplotlib and copies only the options
    both backends share; the axes, the label colour and whether the labels show
    at all are set here, which needs that backend's option tree.
    """
    import importlib

    try:
        importlib.import_module("holoviews.plotting.mpl")  # registers the backend
    except ImportError:  # pragma: no cover - matplotlib is a dependency
        return False
    style.ensure_bokeh()
    return True


def _cut(text: str) -> str:
    """``text`` in at most ``LABEL_CHARS`` characters, keeping a run's `` x N``."""
    if len(text) <= LABEL_CHARS:
        return text
    head, sep, count = text.rpartition(" x ")
    tail = sep + count if sep and count.isdigit() else ""
    head = head if tail else text
    return head[:max(LABEL_CHARS - len(tail) - 1, 1)] + "\u2026" + tail


def _shape_text(shape) -> str:
    return format_shape(shape, empty="-")


def _title(g: ModelGraph) -> str:
    how = {"fx": "torch.fx", "hooks": "hooks on the meta device", "tree": "module tree",
           "edges": "edge list"}
    n_mod = sum(1 for nd in g.nodes if nd.kind in ("module", "repeat"))
    return (f"{g.model_name}: {len(g.nodes):,} nodes ({n_mod:,} modules), "
            f"{g.total_params:,} parameters ({how.get(g.method, g.method)})")


def _check_size(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 50:
        raise ValueError(f"{name}: expected an int of at least 50 pixels; got {value!r}")
    return int(value)


def graph(model, input_shape=None, depth: int | None = None, input_dtype=None,
          width: int = 900, height: int = 700, collapse: bool = True,
          title: str | None = None):
    """Draw the structure of a network: modules and ops, data flow top to bottom.

    Parameters
    ----------
    model : torch.nn.Module, Catalog, checkpoint path, or ModelGraph
        What :func:`dlviz_gpu.introspect.graph.structure` accepts, or a graph it
        (or :meth:`ModelGraph.from_edges`) made.
    input_shape : tuple of int, or list of tuple of int, optional
        Input shape with the batch dimension; gives output shapes and the
        meta-device fallback when torch.fx cannot trace.
    depth : int, optional
        Fold modules deeper than ``depth`` (1: the model's children only).
    input_dtype : torch.dtype or list of torch.dtype, optional
    width, height : int
        Plot frame in screen pixels.
    collapse : bool
        Collapse runs of identical blocks into one node ``"Block x N"``.
    title : str, optional
        Default: model name, node and parameter counts, and the method.

    Returns
    -------
    holoviews.Overlay
        Zoom with the wheel, pan by dragging, hover for details, tap to
        choose a node.  ``.view`` is the :class:`GraphView` (graph,
        selection stream, :meth:`~GraphView.module_at`).

    Raises
    ------
    TypeError
        ``model`` not a module, checkpoint or ModelGraph (and the errors of
        :func:`~dlviz_gpu.introspect.graph.structure`).
    ValueError
        ``depth``, ``input_shape``, ``width`` or ``height`` out of range;
        ``depth`` / ``input_shape`` given with a ModelGraph.
    """
    width = _check_size(width, "width")
    height = _check_size(height, "height")
    if isinstance(model, ModelGraph):
        for name, value in (("input_shape", input_shape), ("depth", depth),
                            ("input_dtype", input_dtype)):
            if value is not None:
                raise ValueError(f"{name}: a ModelGraph is already traced and folded; got "
                                 f"{name}={value!r} (pass the model instead)")
        g = model
    else:
        g = structure(model, input_shape, input_dtype=input_dtype, depth=depth,
                      collapse=collapse)
    view = GraphView(g, width=width, height=height, title=title)
    el = view.element
    el.view = view
    return el


__all__ = ["graph", "GraphView", "KIND_COLOURS"]
