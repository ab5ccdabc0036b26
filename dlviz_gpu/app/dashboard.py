"""The checkpoint dashboard: every tensor of a model, exactly, at any zoom.

>>> import dlviz_gpu as dv
>>> board = dv.dashboard("model.safetensors")       # or a module, a state dict, a Catalog
>>> url = board.serve(port=0)                       # a Bokeh server in a background thread
>>> url.stop()

One :class:`Dashboard` per model holds what every browser session shares
(the catalog, the model summary, the per-layer norms); each session gets its
own page (:class:`DashboardSession`):

- a searchable tree of tensors by module with parameter counts (a click
  chooses a tensor; the filter takes a substring or a glob),
- the chosen tensor as a zoomable heatmap (each zoom re-aggregates the visible
  window) with its ``agg`` and colour scale, its exact histogram, and a table
  of exact statistics (:func:`dlviz_gpu.describe`), including the rows and
  columns with the largest norms, where outlier units show,
- parameters and Frobenius norms per layer as bars,
- the model summary: module tree, parameter counts and, for a torch module
  given an input shape, output shapes from a meta-device forward pass.

With a :class:`~dlviz_gpu.app.demo.Trainer` attached (``dlviz demo``) the
page also shows the training status and loss curve, and follows the
training: the pictures re-aggregate the live weights every few seconds
without losing the zoom.

Names are data: the tree, the tensor select, the titles and the plots show
every name through :func:`dlviz_gpu.names.display` (control characters as
escapes), and what the browser sends back is mapped to the exact name, so a
tensor called ``"a\\nb"`` is listed as ``a\\nb`` and drawn when chosen.
"""

from __future__ import annotations

import html
import threading

import numpy as np

from .. import models
from ..names import display, displayed
from ..optional import is_torch_module
from .board import Board, name_select

#: heatmap frame in screen pixels (1-D tensors get a low strip)
HEAT_SIZE = (760, 460)
STRIP_HEIGHT = 140
#: bins of the histogram beside the heatmap
BINS = 256
#: checkpoints up to this many bytes get their per-layer norms at once;
#: bigger ones when asked (it reads every tensor)
NORMS_AT_ONCE = 512 * 2**20
#: seconds between refreshes of a page that follows training
FOLLOW_SECONDS = 3.0


def _fmt_int(n: int) -> str:
    return f"{n:,}"


class Dashboard(Board):
    """A model or checkpoint, ready to be served as a dashboard.

    Parameters
    ----------
    source : path, list of paths, torch ``nn.Module``, state dict, or Catalog
        Anything :func:`dlviz_gpu.models.open` takes.  Files are memory-mapped
        and only the tensors drawn are read.
    input_shape : tuple of int or list of tuples, optional
        For a torch module: the input shape (batch included) of the forward
        pass that gives the summary its output shapes (run on the meta
        device: no memory, no compute).
    input_dtype : torch dtype, optional
        The inputs' dtype for that pass (see :func:`dlviz_gpu.models.summary`).
    title : str, optional
        The page title (default: the file names, or the module's class).
    trainer : dlviz_gpu.app.demo.Trainer, optional
        A training loop updating the model's weights: the page shows its
        status and loss, and follows the weights.  Start it after building
        the dashboard (the summary's meta-device pass runs here, and must not
        overlap a forward pass in another thread).
    initial : str, optional
        The tensor shown first (default: the largest drawable one).
    run : path or dlviz_gpu.watch.Run, optional
        A recorded training run (:func:`dlviz_gpu.watch`) of this model: its
        tabs (curves, gradient flow, update ratio, distributions, weights
        over time, alerts; :mod:`dlviz_gpu.app.runs`) join the page and
        follow the run while it is written.  Default: the trainer's run,
        when it has one.

    Raises
    ------
    ValueError
        The source has no tensor the engine can draw, or ``initial`` names
        no drawable tensor.
    """

    def __init__(self, source, *, input_shape=None, input_dtype=None, title=None, trainer=None,
                 initial=None, run=None):
        from ..checkpoints.catalog import plan
        from ..watch.store import Run, open_run

        self.module = source if is_torch_module(source) else None
        self.catalog = models.open(source)
        self.input_shape = input_shape
        self.input_dtype = input_dtype
        self.trainer = trainer
        if run is None and trainer is not None and getattr(trainer, "watch", None) is not None:
            run = trainer.watch.path
        self.run = run if run is None or isinstance(run, Run) else open_run(run)
        self.title = title or self._default_title(source)
        self.layouts = {info.name: layout for info, layout, _ in plan(self.catalog.infos)
                        if layout is not None}
        self.notes = {info.name: note for info, layout, note in plan(self.catalog.infos)
                      if layout is None}
        if not self.layouts:
            why = "; ".join(f"{display(n, limit=80)}: {note}"
                            for n, note in list(self.notes.items())[:3])
            more = ", ..." if len(self.notes) > 3 else ""
            raise ValueError(f"source: no tensor the engine can draw among the catalog's "
                             f"{len(self.catalog)} ({why}{more})")
        if initial is None:
            initial = max(self.layouts, key=lambda n: (len(self.catalog.info(n).shape) == 2,
                                                        self.catalog.info(n).params))
        elif initial not in self.layouts:
            raise ValueError(f"initial: expected the name of a drawable tensor; got {initial!r}"
                             + (f" ({self.notes[initial]})" if initial in self.notes else ""))
        self.initial = initial
        self._by_shown: dict | None = None
        self._summary = None
        self._summary_lock = threading.Lock()
        self._norms: dict | None = None
        self._norms_done = 0
        self._norms_thread: threading.Thread | None = None
        self._norms_error: str | None = None
        self._norms_lock = threading.Lock()
        if self.module is not None:
            # the summary's meta-device forward, now: torch's device context is
            # not safe to enter while another thread (a trainer) runs the model,
            # so start training after building the dashboard
            self.summary()
        # the structure graph, now for the same reason (torch.fx patches every
        # module's __call__ while it traces)
        self.graph = None
        self.graph_note = None
        try:
            from ..introspect.graph import structure

            self.graph = structure(self.module if self.module is not None else self.catalog,
                                   input_shape, input_dtype)
        except Exception as err:  # noqa: BLE001 - the page says why, the rest still works
            self.graph_note = f"no structure graph: {type(err).__name__}: {err}"
        if self.catalog.total_bytes <= NORMS_AT_ONCE and trainer is None:
            self.compute_norms(background=False)

    @staticmethod
    def _default_title(source) -> str:
        import os

        if is_torch_module(source):
            return type(source).__name__
        if isinstance(source, (str, os.PathLike)):
            return os.path.basename(os.path.normpath(source))
        if isinstance(source, (list, tuple)):
            return ", ".join(os.path.basename(os.path.normpath(p)) for p in source)
        return "model"

    # -- what every session shares ---------------------------------------------
    def headline(self) -> str:
        """``"42 tensors, 6,771,200 parameters, 25.8 MiB"``."""
        cat = self.catalog
        return (f"{len(cat):,} tensors, {cat.total_params:,} parameters, "
                f"{models.format_bytes(cat.total_bytes)}")

    def tree_rows(self, pattern: str | None = None) -> list[dict]:
        """Rows of the tensor tree: modules (with summed parameters) and their tensors.

        Parameters
        ----------
        pattern : str, optional
            Keep only tensors whose name matches (a glob with ``*?[``, else a
            case-insensitive substring), listed by full name.

        Returns
        -------
        list of dict
            ``label`` (indented), ``params``, ``shape``, ``dtype`` and
            ``name`` (``""`` for module rows).
        """
        cat = self.catalog

        # labels are shown forms (controls escaped); ``name`` stays the exact name
        def row(info, label):
            tied = f" (= {display(info.tied_to)})" if info.tied_to else ""
            return {"label": label + tied, "params": _fmt_int(info.params),
                    "shape": " x ".join(map(str, info.shape)) or "scalar",
                    "dtype": display(info.dtype, exact=False), "name": info.name}

        if pattern:
            return [row(cat.info(n), display(n)) for n in cat.select(pattern)]
        rows = []
        for depth, node in cat.tree().walk():
            if node.path:
                rows.append({"label": "\u2003" * (depth - 1) + "\u25be " + display(node.name),
                             "params": _fmt_int(node.params), "shape": "",
                             "dtype": f"{node.n_tensors} tensor{'' if node.n_tensors == 1 else 's'}",
                             "name": ""})
            for info in node.tensors:
                leaf = info.name[len(node.path):].lstrip("./") if node.path else info.name
                rows.append(row(info, "\u2003" * depth + display(leaf)))
        return rows

    def name_of(self, shown: str) -> str | None:
        """The exact tensor name a widget showed as ``shown`` (None when there is none).

        Widgets show names through :func:`dlviz_gpu.names.display`, which never
        shows two names the same, and the browser sends the shown form back.
        """
        if self._by_shown is None:
            self._by_shown = displayed(self.catalog.names)
        return self._by_shown.get(shown)

    def summary(self):
        """The model summary (computed once; see :func:`dlviz_gpu.models.summary`)."""
        with self._summary_lock:
            if self._summary is None:
                from ..introspect.summary import summary

                if self.module is not None:
                    self._summary = summary(self.module, self.input_shape,
                                            input_dtype=self.input_dtype)
                else:
                    self._summary = summary(self.catalog)
            return self._summary

    def matrix(self, name: str):
        """The tensor ``name`` as a :class:`~dlviz_gpu.tensors.Matrix`, read in place."""
        if name not in self.layouts:
            reason = self.notes.get(name, "not in the catalog")
            raise ValueError(f"tensor: {name!r} cannot be drawn: {reason}")
        return self.catalog.matrix(name, self.layouts[name])

    def warm(self) -> None:
        """Compile the kernels a page uses and read the first tensor, so pages open quickly.

        Numba keeps what it compiles in its disk cache, so this is slow (tens
        of seconds on two cores) only the first time on a machine.
        """
        import dlviz_gpu as dv
        from ..tensor_stats import describe

        m = self.matrix(self.initial)
        dv.rasterize(m, 16, 16)
        dv.histogram(m, bins=BINS)
        describe(m)
        strips = [n for n in self.layouts if len(self.catalog.info(n).shape) == 1]
        if strips:  # biases and norms: the 1-D statistics path
            describe(self.matrix(strips[0]))
        if self.trainer is not None:  # the loss curve
            dv.decimate(np.zeros(4), x=np.arange(4.0), width=4)
        if self.run is not None:      # the training views' kernels
            from .runs import warm_views

            warm_views(self.run)
        self.summary()

    # -- per-layer norms ------------------------------------------------------------
    def compute_norms(self, background: bool = True) -> None:
        """Frobenius norm of every drawable tensor and per layer (reads every tensor).

        ``background=True`` runs in a thread; :meth:`norms_state` follows it.
        """
        with self._norms_lock:
            if self._norms_thread is not None and self._norms_thread.is_alive():
                return
            self._norms_done = 0
            self._norms_error = None
            if background:
                self._norms_thread = threading.Thread(target=self._norms_run,
                                                      name="dlviz-norms", daemon=True)
                self._norms_thread.start()
                return
        self._norms_run()

    def _norms_run(self) -> None:
        from ..aggregate import rasterize
        from ..checkpoints.catalog import layer_of

        per_tensor, per_layer = {}, {}
        try:
            for name in self.layouts:
                info = self.catalog.info(name)
                if info.tied_to is not None:
                    continue
                r = rasterize(self.matrix(name), 1, 1)  # all stats: the heatmap's kernel
                n = float(r["count"][0, 0])
                sq = n * (float(r["std"][0, 0]) ** 2 + float(r["mean"][0, 0]) ** 2) if n else 0.0
                per_tensor[name] = float(np.sqrt(sq))
                key = layer_of(info.module)
                per_layer[key] = per_layer.get(key, 0.0) + sq
                self._norms_done += 1
        except Exception as err:  # shown on the page, not lost in a thread
            self._norms_error = f"{type(err).__name__}: {err}"
            return
        self._norms = {"tensors": per_tensor,
                       "layers": {k: float(np.sqrt(v)) for k, v in per_layer.items()}}

    def norms_state(self) -> tuple:
        """``(norms or None, tensors done, tensors in all, error or None)``."""
        return self._norms, self._norms_done, len(self.layouts), self._norms_error

    # -- serving --------------------------------------------------------------------
    def page(self):
        """A fresh page for one browser session (a Panel layout)."""
        return DashboardSession(self).layout


def _shown(text, exact: bool = False) -> str:
    """``text`` for HTML or Markdown: controls shown as escapes, then HTML-escaped."""
    return html.escape(display(text, exact=exact))


def _view_label(name: str) -> str:
    """A tensor name as the views' ``label`` (see :func:`dlviz_gpu.views.style.label`)."""
    from ..views.style import label

    return label(name)


def _table_html(rows, cls="dlviz-stats") -> str:
    body = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                   for k, v in rows)
    return f'<table class="{cls}">{body}</table>'


_CSS = """
table.dlviz-stats { border-collapse: collapse; font-size: 13px; }
table.dlviz-stats th { text-align: left; padding: 2px 12px 2px 0; color: #555; font-weight: 500; }
table.dlviz-stats td { text-align: right; padding: 2px 0; font-variant-numeric: tabular-nums;
                       font-family: ui-monospace, monospace; }
pre.dlviz-summary { font-size: 12px; line-height: 1.35; }
"""


class DashboardSession:
    """One browser session's page: its widgets, its chosen tensor, its pictures.

    Attributes
    ----------
    board : Dashboard
    layout : panel layout
        The page.
    tree : panel.widgets.Tabulator
        The tensor tree (a click on a tensor row chooses it).
    search : panel.widgets.TextInput
        Filters the tree as one types.
    tensor : panel.widgets.Select
        The chosen tensor (every drawable name; also set by the tree).
    agg, norm : panel.widgets.Select
        The heatmap's statistic and colour scale.
    heat_pane, hist_pane, stats_pane : panel panes
        The chosen tensor's heatmap, histogram and statistics.
    heatmap : holoviews.DynamicMap
        The current heatmap (``.view.updates`` counts its re-aggregations).
    """

    def __init__(self, board: Dashboard):
        import pandas as pd
        import panel as pn

        from ..views import AGGS
        from ..views.style import NORMS

        # no pn.extension(...) here: it changes Panel's process-wide config, and
        # every later standalone page (dv.save, dlviz render) would link the
        # Tabulator style sheet from a CDN; a served page loads what it uses
        self.board = board
        self._pd = pd
        self._syncing = False
        self.heatmap = None
        # shown form -> exact name: the browser lists the shown ones, Python gets the exact
        self.tensor = name_select(label="tensor", options=displayed(board.layouts),
                                  value=board.initial, width=360)
        self.agg = pn.widgets.Select(label="statistic per pixel", options=list(AGGS),
                                     value="mean", width=170)
        self.norm = pn.widgets.Select(label="colour scale", options=list(NORMS),
                                      value="linear", width=170)
        self.search = pn.widgets.TextInput(label="filter tensors",
                                           placeholder="substring or glob, e.g. *.attn.*",
                                           width=360)
        self.tree = pn.widgets.Tabulator(
            self._frame(None), show_index=False, disabled=True, selectable=1,
            hidden_columns=["name"], width=360, height=640, layout="fit_data_stretch",
            titles={"label": "module / tensor", "params": "params", "shape": "shape",
                    "dtype": "dtype"},
            configuration={"columnDefaults": {"headerSort": False}},
            sizing_mode="fixed")
        self.search.param.watch(self._on_search, "value_input")
        self.tree.param.watch(self._on_tree, "selection")
        # a click chooses the row's tensor even when the browser still shows the
        # row selected (the selection is only the highlight)
        self.tree.on_click(self._on_click)
        self.tensor.param.watch(self._on_tensor, "value")
        self.agg.param.watch(self._on_style, "value")
        self.norm.param.watch(self._on_style, "value")

        # HTML, not Markdown: a name holding a backtick would end a Markdown code span
        # and whatever followed would be read as markup
        self.title_pane = pn.pane.HTML(self._tensor_title(), sizing_mode="stretch_width")
        self.heat_pane = pn.pane.HoloViews(self._make_heatmap(), sizing_mode="fixed")
        self.hist_pane = pn.pane.HoloViews(self._make_hist(), sizing_mode="fixed")
        self.stats_pane = pn.pane.HTML(self._stats_html(), width=340, stylesheets=[_CSS])
        tensor_tab = pn.Column(
            pn.Row(self.agg, self.norm),
            self.title_pane,
            self.heat_pane,
            pn.Row(self.hist_pane, self.stats_pane),
            name="Tensor")
        tabs = [tensor_tab, self._layers_tab(pn), self._summary_tab(pn),
                self._structure_tab(pn)]
        where = ", ".join(p for p in board.catalog.sources if p != "<memory>") or "in memory"
        header = [pn.pane.Markdown(f"## {_shown(board.title)}\n{board.headline()}"
                                   f" &middot; {_shown(where)}",
                                   sizing_mode="stretch_width")]
        self.run_session = None
        if board.run is not None:
            from .runs import RunSession

            self.run_session = RunSession([board.run], periodic=False)
            tabs[1:1] = self.run_session.tabs
        if board.trainer is not None:
            self.status = pn.pane.Markdown(self._status_text(), sizing_mode="stretch_width")
            self.follow = pn.widgets.Checkbox(label="follow the training (re-aggregate the "
                                                   "live weights every few seconds)", value=True)
            header += [self.status, self.follow]
            if self.run_session is None:
                self.loss_pane = pn.pane.HoloViews(self._make_loss(), sizing_mode="fixed")
                tabs.insert(1, pn.Column(self.loss_pane, name="Training"))
        if board.trainer is not None or (board.run is not None and board.run.live):
            pn.state.add_periodic_callback(self._tick, period=int(FOLLOW_SECONDS * 1000))
        self.tabs = pn.Tabs(*tabs, dynamic=True)      # only the tab on screen is rendered
        if self.run_session is not None:      # it redraws only the tab on screen
            self.run_session.set_visible(tabs[0].name)
            self.tabs.param.watch(
                lambda event: self.run_session.set_visible(self.tabs[event.new].name), "active")
        self.layout = pn.Column(
            *header,
            pn.Row(pn.Column(self.search, self.tensor, self.tree, width=380), self.tabs),
            sizing_mode="stretch_width")
        self._select_in_tree(board.initial)

    # -- the tree ---------------------------------------------------------------------
    def _frame(self, pattern):
        rows = self.board.tree_rows(pattern)
        frame = self._pd.DataFrame(rows, columns=["label", "params", "shape", "dtype", "name"])
        # the hidden column travels to the browser too: it holds the shown form (a lone
        # surrogate or NUL never leaves the server), mapped back by Dashboard.name_of
        frame["name"] = [display(n) if n else "" for n in frame["name"]]
        return frame

    def _on_search(self, event) -> None:
        text = (event.new or "").strip()
        self._syncing = True
        try:
            self.tree.value = self._frame(text or None)
            self.tree.selection = []
        finally:
            self._syncing = False
        self._select_in_tree(self.tensor.value)

    def _on_tree(self, event) -> None:
        if self._syncing or not event.new:
            return
        name = self.board.name_of(self.tree.value["name"].iloc[event.new[0]])
        if name and name in self.board.layouts:
            self.tensor.value = name

    def _on_click(self, event) -> None:
        frame = self.tree.value
        if event.row is not None and 0 <= event.row < len(frame):
            name = self.board.name_of(frame["name"].iloc[event.row])
            if name and name in self.board.layouts:
                self.tensor.value = name

    def _select_in_tree(self, name: str) -> None:
        hits = np.flatnonzero(self.tree.value["name"].to_numpy() == display(name))
        self._syncing = True
        try:
            self.tree.selection = [int(hits[0])] if hits.size else []
        finally:
            self._syncing = False

    # -- the chosen tensor --------------------------------------------------------------
    def _on_tensor(self, event) -> None:
        self._select_in_tree(event.new)
        self.refresh(keep_zoom=False)

    def _on_style(self, event) -> None:
        self.heat_pane.object = self._make_heatmap()

    def refresh(self, keep_zoom: bool = True) -> None:
        """Redraw the chosen tensor from its current values.

        ``keep_zoom=True`` re-aggregates the heatmap's current window in place
        (the weights of a model in training change under it).
        """
        self.title_pane.object = self._tensor_title()
        if keep_zoom and self.heatmap is not None:
            self.heatmap.event()
        else:
            self.heat_pane.object = self._make_heatmap()
        self.hist_pane.object = self._make_hist()
        self.stats_pane.object = self._stats_html()

    def _tensor_title(self) -> str:
        name = self.tensor.value
        info = self.board.catalog.info(name)
        m_shape = self.board.matrix(name).shape
        drawn = "" if tuple(m_shape) == tuple(info.shape) else \
            f", drawn as {m_shape[0]} x {m_shape[1]}"
        return (f"<h3 class=\"dlviz-title\"><code>{_shown(name, exact=True)}</code></h3>"
                f"<p>{' x '.join(map(str, info.shape))} {_shown(info.dtype)}, "
                f"{info.params:,} parameters{drawn}</p>")

    def _make_heatmap(self):
        import dlviz_gpu as dv

        m = self.board.matrix(self.tensor.value)
        w, h = HEAT_SIZE
        if m.shape[0] == 1:
            h = STRIP_HEIGHT
        self.heatmap = dv.heatmap(m, agg=self.agg.value, norm=self.norm.value,
                                  label=_view_label(self.tensor.value), width=w, height=h)
        return self.heatmap

    def _make_hist(self):
        import dlviz_gpu as dv

        try:
            return dv.histplot(self.board.matrix(self.tensor.value), bins=BINS, logy=True,
                               label=_view_label(self.tensor.value), width=400, height=300)
        except (ValueError, TypeError) as err:  # e.g. no finite value to bin
            import holoviews as hv

            return hv.Div(f"<p>no histogram: {_shown(str(err))}</p>")

    def _stats_html(self) -> str:
        from ..tensor_stats import describe

        stats = describe(self.board.matrix(self.tensor.value))
        return "<b>statistics (exact)</b>" + _table_html(stats.rows())

    # -- layers and summary ---------------------------------------------------------------
    def _layers_tab(self, pn):
        import dlviz_gpu as dv
        from ..checkpoints.catalog import params_per_layer

        per = params_per_layer(self.board.catalog.infos)
        self.params_pane = pn.pane.HoloViews(
            dv.bars(per, label="parameters", width=760, height=300), sizing_mode="fixed")
        self.norms_pane = pn.Column(sizing_mode="stretch_width")
        self.norms_button = pn.widgets.Button(label="compute norms per layer (reads every "
                                                    "tensor)", color="primary")
        self.norms_button.on_click(lambda _e: self._start_norms())
        self._norms_shown = None
        self._show_norms()
        return pn.Column(self.params_pane, self.norms_pane, name="Layers")

    def _start_norms(self) -> None:
        import panel as pn

        self.board.compute_norms(background=True)
        self._show_norms()
        if not hasattr(self, "_norms_poll"):
            self._norms_poll = pn.state.add_periodic_callback(self._show_norms, period=500)

    def _show_norms(self) -> None:
        import dlviz_gpu as dv
        import panel as pn

        norms, done, total, error = self.board.norms_state()
        if error:
            self.norms_pane.objects = [pn.pane.Alert(f"norms failed: {_shown(error)}",
                                                     alert_type="danger"), self.norms_button]
        elif norms is not None:
            if norms is not self._norms_shown:
                self._norms_shown = norms
                self.norms_pane.objects = [
                    pn.pane.HoloViews(dv.bars(norms["layers"], label="Frobenius norm",
                                              width=760, height=300), sizing_mode="fixed"),
                    self.norms_button]
                self.norms_button.label = "recompute norms per layer"
            poll = getattr(self, "_norms_poll", None)
            if poll is not None and not self.board._norms_thread.is_alive():
                poll.stop()
                del self._norms_poll
        elif self.board._norms_thread is not None and self.board._norms_thread.is_alive():
            self.norms_pane.objects = [pn.indicators.Progress(value=done, max=total,
                                                              width=400),
                                       pn.pane.Markdown(f"norms: {done} of {total} tensors")]
        else:
            self.norms_pane.objects = [self.norms_button]

    def _summary_tab(self, pn):
        try:
            s = self.board.summary()
            text = s.table()
            note = getattr(s, "shapes_note", None)
        except Exception as err:  # the rest of the page still works
            text, note = "", f"no summary: {type(err).__name__}: {err}"
        # the table holds the checkpoint's names: each line shown with controls escaped
        text = "\n".join(display(line, exact=False) for line in text.split("\n"))
        items = [pn.pane.HTML(f'<pre class="dlviz-summary">{html.escape(text)}</pre>',
                              stylesheets=[_CSS],
                              sizing_mode="stretch_width")]
        if note:
            items.insert(0, pn.pane.Markdown(f"*{_shown(note)}*"))
        return pn.Column(*items, name="Summary")

    # -- structure ----------------------------------------------------------------------
    def _structure_tab(self, pn):
        board = self.board
        self.graph_view = None
        if board.graph is None:
            return pn.Column(pn.pane.Markdown(f"*{_shown(board.graph_note or '')}*"),
                             name="Structure")
        import dlviz_gpu as dv

        el = dv.graph(board.graph, width=820, height=640)
        self.graph_view = el.view
        self.graph_view.on_select(self._on_node)
        text = ("Click a node to show its weights in the Tensor tab; scroll to zoom, drag "
                "to pan.")
        if board.graph.note:
            text += f" *{_shown(board.graph.note)}*"
        return pn.Column(pn.pane.Markdown(text), pn.pane.HoloViews(el), name="Structure")

    def weights_of(self, node) -> str | None:
        """The drawable tensor a structure-graph node stands for (its largest), or None."""
        if node is None:
            return None
        names = [t for t in node.tensors if t in self.board.layouts]
        if not names:
            return None
        return max(names, key=lambda n: (len(self.board.catalog.info(n).shape) >= 2,
                                         self.board.catalog.info(n).params))

    def _on_node(self, node) -> None:
        name = self.weights_of(node)
        if name is not None:
            self.tensor.value = name
            self.tabs.active = 0

    # -- training -----------------------------------------------------------------------
    def _status_text(self) -> str:
        st = self.board.trainer.state()
        if st.get("error"):
            return f"**training stopped:** {_shown(str(st['error']))}"
        loss = st.get("loss")
        loss_txt = "-" if loss is None else f"{loss:.4f}"
        lr = st.get("lr")
        lr_txt = "-" if lr is None else f"{lr:.3g}"
        sps = st.get("steps_per_second") or 0.0
        what = "training" if st.get("running") else "training finished"
        return (f"**{what}:** step {st.get('step', 0):,}, loss {loss_txt}, "
                f"learning rate {lr_txt}, {sps:.1f} steps/s")

    def _make_loss(self):
        import dlviz_gpu as dv

        hist = list(self.board.trainer.history)
        loss = np.array([h[1] for h in hist], dtype=np.float64)
        steps = np.array([h[0] for h in hist], dtype=np.float64)
        if loss.size < 2:
            import holoviews as hv

            return hv.Div("<p>the loss curve appears after the first steps</p>")
        return dv.curve(loss, x=steps, smoothing=0.9, label="loss", width=760, height=320)

    def _tick(self) -> None:
        if self.board.trainer is not None:
            self.status.object = self._status_text()
            if self.follow.value:
                self.refresh(keep_zoom=True)
                if self.run_session is None:
                    self.loss_pane.object = self._make_loss()
        if self.run_session is not None:
            self.run_session.tick()


def dashboard(source, **kwargs) -> Dashboard:
    """A :class:`Dashboard` of ``source`` (see there); ``.serve()`` it or ``.page()`` it."""
    return Dashboard(source, **kwargs)


__all__ = ["Dashboard", "DashboardSession", "dashboard"]
