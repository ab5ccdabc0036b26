"""The dashboard of recorded training runs (``dv.watch``): live curves, gradients, updates, weights.

>>> board = RunBoard(["runs/exp1", "runs/exp2"])     # one run, or several to compare
>>> board.serve(port=5006)                           # or pn.serve({"/runs": board.page})

``dlviz serve runs/exp1 [runs/exp2 ...]`` serves it; ``dlviz demo`` shows its
tabs beside the model's tensors while the demo model trains.

Tabs (each a view of :mod:`dlviz_gpu.views.training`):

- **Curves**: loss and learning rate (every recorded scalar can be chosen)
  with a smoothing slider; several runs are overlaid, one colour each.
- **Gradient flow**: parameters x recorded steps, gradient norm, log colour.
- **Update ratio**: ||w_t - w_(t-1)|| / ||w_t|| per parameter, 1e-3 marked.
- **Distributions**: a parameter's weight or gradient histograms over steps.
- **Weights**: the stored snapshots of a weight matrix with a play/pause
  step player, and the difference between two snapshots.
- **Alerts**: NaN/inf in weights, gradients and the loss.

While a run is being written (``Run.live``), the page checks for new steps
every :data:`FOLLOW_SECONDS` and redraws what changed, without a reload.
Views of several runs (all but the curves) show the run chosen in ``run``.

Following starts once the browser has loaded the page, never before: Panel
(1.9.4) drops the changes a session makes between the browser's pull of the
document and its "document ready" message, as if the browser would pull them
later, and Bokeh then counts the models those changes created as sent.  A
redraw in that window would leave the browser without them, and every later
redraw that refers to one (a stylesheet Panel shares between panes) would be
refused by BokehJS (``reference ... isn't known``): the page would never
show new steps again.

A run file that goes bad while it is shown (deleted, truncated, replaced by
something that is not a run) is a :class:`~dlviz_gpu.watch.store.RunFileError`
on every read: the status line says the run cannot be read and why, the views
show the same note, and the page keeps answering; it recovers by itself when
the file is a run again.

Names are data: run, scalar and parameter names are shown through
:func:`dlviz_gpu.names.display` (control characters as escapes); the
widgets give back the exact names.
"""

from __future__ import annotations

import functools
import html
import operator
import os

from ..names import display, displayed
from ..watch.store import Run, RunFileError, open_run
from .board import Board, note

__all__ = ["RunBoard", "RunSession", "FOLLOW_SECONDS"]

#: Seconds between checks for new steps while a run is live.
FOLLOW_SECONDS = 2.0
#: One colour per compared run (Bokeh's Category10).
RUN_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")


def _open(runs) -> list:
    if isinstance(runs, (str, Run)) or hasattr(runs, "__fspath__"):
        runs = [runs]
    out = [r if isinstance(r, Run) else open_run(r) for r in runs]
    if not out:
        raise ValueError("runs: expected at least one run (a run directory or .sqlite file)")
    return out


class RunBoard(Board):
    """What the sessions of a run dashboard share: the open runs and the title.

    Parameters
    ----------
    runs : path, Run, or list of them
        Run directories or ``.sqlite`` files (:func:`dlviz_gpu.watch.open_run`).
    title : str, optional
        Default: the run names, joined by " vs ".
    """

    def __init__(self, runs, title: str | None = None):
        self.runs = _open(runs)
        self.title = title or " vs ".join(r.name for r in self.runs)

    def page(self):
        """A fresh page for one browser session (a Panel layout)."""
        return RunSession(self.runs, title=self.title).layout

    def warm(self) -> None:
        """Compile what the first page needs (the curve kernels), so pages open quickly."""
        for r in self.runs:
            warm_views(r)



class RunSession:
    """One browser session's run views.

    Parameters
    ----------
    runs : list of Run
    title : str, optional
        Shown as the page header (``None``: no header; the demo's dashboard
        has its own).
    periodic : bool
        Check for new steps every :data:`FOLLOW_SECONDS` (a Panel periodic
        callback of this session, started once the browser has loaded the
        page).  The demo's dashboard calls :meth:`tick` from its own callback
        instead.

    Attributes
    ----------
    tabs : list of panel.Column
        The tabs, named; :attr:`layout` holds them with the header.
    status : panel.pane.Markdown
        One line per run: live or finished, last step, recorded steps, last
        loss, alerts.
    last_steps : tuple
        Each run's last step when the views were last drawn.
    """

    def __init__(self, runs, title: str | None = None, periodic: bool = True):
        import panel as pn

        from .board import name_select

        self.runs = _open(runs)
        self.pn = pn
        # a run file that went bad since the board opened it: the page still opens
        params = _readable(lambda: self.runs[0].params, [])
        names = [p.name for p in params]
        # the widgets show names with controls escaped and give back the exact ones
        self.run_select = name_select(label="run",
                                      options=displayed(r.name for r in self.runs),
                                      value=self.runs[0].name, width=220,
                                      visible=len(self.runs) > 1)
        scalars = sorted({n for r in self.runs for n in _readable(r.scalar_names, [])})
        first = [n for n in ("loss", "lr") if n in scalars] or scalars[:1]
        self.curves = pn.widgets.MultiChoice(label="scalars", options=displayed(scalars),
                                             value=first, width=360)
        self.smoothing = pn.widgets.FloatSlider(label="smoothing", start=0.0, end=0.99,
                                                step=0.01, value=0.6, width=240)
        self.param = name_select(label="parameter", options=displayed(names),
                                 value=names[0] if names else None, width=300)
        self.kind = pn.widgets.Select(label="of", options=["grad", "weight"], value="grad",
                                      width=100)
        matrices = [p.name for p in params if p.rows is not None]
        self.wparam = name_select(label="weight matrix", options=displayed(matrices),
                                  value=matrices[0] if matrices else None, width=300)
        self.wstat = pn.widgets.Select(label="statistic", options=["mean", "extremum"],
                                       value="mean", width=120)
        self.step_a = pn.widgets.Select(label="difference: step", options=[], width=140)
        self.step_b = pn.widgets.Select(label="minus step", options=[], width=140)
        self.follow = pn.widgets.Checkbox(label="follow the run (new steps appear as they "
                                                "are recorded)", value=True)
        self.status = pn.pane.Markdown(self._status_text(), sizing_mode="stretch_width")

        self.curves_pane = pn.Column()
        self.flow_pane = pn.Column()
        self.updates_pane = pn.Column()
        self.dist_pane = pn.Column()
        self.weights_pane = pn.Column()
        self.diff_pane = pn.Column()
        self.alerts_pane = pn.Column()
        self.tabs = [
            pn.Column(pn.Row(self.curves, self.smoothing), self.curves_pane, name="Curves"),
            pn.Column(self.flow_pane, name="Gradient flow"),
            pn.Column(self.updates_pane, name="Update ratio"),
            pn.Column(pn.Row(self.param, self.kind), self.dist_pane, name="Distributions"),
            pn.Column(pn.Row(self.wparam, self.wstat), self.weights_pane,
                      pn.Row(self.step_a, self.step_b), self.diff_pane, name="Weights"),
            pn.Column(self.alerts_pane, name="Alerts"),
        ]
        for w, fn in ((self.curves, self._draw_curves), (self.smoothing, self._draw_curves),
                      (self.param, self._draw_dist), (self.kind, self._draw_dist),
                      (self.wparam, self._draw_weights), (self.wstat, self._draw_weights),
                      (self.step_a, self._draw_diff), (self.step_b, self._draw_diff),
                      (self.run_select, self._draw_all)):
            w.param.watch(lambda event, fn=fn: fn(), "value")
        self.last_steps = _readable(self._last_steps, (None,) * len(self.runs))
        self._drawers = {"Curves": self._draw_curves, "Gradient flow": self._draw_flow,
                         "Update ratio": self._draw_updates, "Distributions": self._draw_dist,
                         "Weights": self._draw_weights, "Alerts": self._draw_alerts}
        self.visible: str | None = None      # the tab on screen; None: not known, draw all
        self._stale: set = set()
        self._draw_all()
        header = []
        if title is not None:
            header.append(pn.pane.Markdown(f"## {_shown(title)}",
                                           sizing_mode="stretch_width"))
        self.tabs_widget = pn.Tabs(*self.tabs, dynamic=False)
        self.tabs_widget.param.watch(
            lambda event: self.set_visible(self.tabs[event.new].name), "active")
        self.layout = pn.Column(*header, self.status, pn.Row(self.run_select, self.follow),
                                self.tabs_widget, sizing_mode="stretch_width")
        self.visible = self.tabs[0].name     # until a page that embeds the tabs says otherwise
        self._following = None
        if periodic and any(r.live for r in self.runs):
            # not before the browser has the page (see the module's docstring); outside
            # a server (a notebook, a test) onload runs the callback now
            pn.state.onload(self._start_following)

    def _start_following(self) -> None:
        if self._following is None:
            self._following = self.pn.state.add_periodic_callback(
                self.tick, period=int(FOLLOW_SECONDS * 1000))

    # -- state ---------------------------------------------------------------------------
    @property
    def run(self) -> Run:
        """The run the single-run views show."""
        for r in self.runs:
            if r.name == self.run_select.value:
                return r
        return self.runs[0]

    def _last_steps(self) -> tuple:
        return tuple(r.last_step for r in self.runs)

    def _status_text(self) -> str:
        lines = []
        for r in self.runs:
            try:
                lines.append(_run_status(r))
            except RunFileError as err:     # deleted, truncated, no longer a run
                lines.append(f"**{_shown(r.name)}**: {_unreadable(err)}")
        return "  \n".join(lines)

    # -- drawing -------------------------------------------------------------------------
    def _show(self, pane, build) -> None:
        """Put ``build()`` in ``pane``, or a note saying why it cannot be drawn yet."""
        pn = self.pn
        try:
            obj = build()
        except RunFileError as err:         # a ValueError: before the generic note
            pane.objects = [note(pn, self._unreadable_note(err))]
            return
        except (KeyError, ValueError, LookupError) as err:
            msg = err.args[0] if err.args else str(err)
            pane.objects = [note(pn, f"nothing to draw yet: {display(msg, exact=False)}")]
            return
        if isinstance(obj, tuple):
            obj, kwargs = obj
        else:
            kwargs = {}
        # the pane's layout: the plot and, for a HoloMap, its widgets (the step player)
        pane.objects = [pn.pane.HoloViews(obj, **kwargs).layout]

    def _unreadable_note(self, err: RunFileError) -> str:
        """Plain text (``note`` escapes it): which run cannot be read, and why."""
        names = [r.name for r in self.runs if os.fspath(r.path) == err.path]
        if not names:
            return f"cannot be read: {display(str(err), exact=False)}"
        return (f"{display(names[0], exact=False)}: cannot be read: "
                f"{display(err.problem, exact=False)}")

    def set_visible(self, name: str | None) -> None:
        """Say which tab is on screen (None: none of these); a stale one is redrawn now.

        After new steps, :meth:`tick` redraws only the visible tab and marks
        the others stale, so a live run costs one view's redraw per tick.
        """
        self.visible = name
        if name in self._stale:
            self._stale.discard(name)
            self._drawers[name]()

    def _draw_all(self) -> None:
        if self.visible is None:
            self._stale.clear()
            for draw in self._drawers.values():
                draw()
            return
        self._stale = set(self._drawers) - {self.visible}
        if self.visible in self._drawers:
            self._drawers[self.visible]()

    def _draw_flow(self) -> None:
        self._show(self.flow_pane, lambda: _views().gradient_flow(self.run))

    def _draw_updates(self) -> None:
        self._show(self.updates_pane, lambda: _views().update_ratios(self.run))

    def _draw_alerts(self) -> None:
        self._show(self.alerts_pane, lambda: _views().alerts_table(self.run))

    def _draw_curves(self) -> None:
        names = tuple(self.curves.value)
        w = float(self.smoothing.value)
        if len(self.runs) == 1:
            self._show(self.curves_pane,
                       lambda: _views().training_curves(self.runs[0], names=names, smoothing=w))
        else:
            self._show(self.curves_pane, lambda: compare_curves(self.runs, names, w))

    def _draw_dist(self) -> None:
        if self.param.value is None:
            return
        self._show(self.dist_pane,
                   lambda: _views().distributions(self.run, self.param.value,
                                                  kind=self.kind.value))

    def _draw_weights(self) -> None:
        pn = self.pn
        name = self.wparam.value
        if name is None:
            self.weights_pane.objects = [note(pn, "no weight matrices in this run")]
            return
        try:
            steps = [int(s) for s in self.run.snapshot_steps(name)]
        except RunFileError as err:
            self.weights_pane.objects = [note(pn, self._unreadable_note(err))]
            self.diff_pane.objects = []
            return
        self._syncing = True
        try:
            old = (self.step_a.value, self.step_b.value)
            self.step_a.options = steps
            self.step_b.options = steps
            if steps:
                self.step_a.value = old[0] if old[0] in steps else steps[-1]
                self.step_b.value = old[1] if old[1] in steps else steps[0]
        finally:
            self._syncing = False
        self._show(self.weights_pane, lambda: (
            _views().weight_evolution(self.run, name, stat=self.wstat.value, dynamic=True),
            {"widgets": {"step": pn.widgets.DiscretePlayer}, "widget_location": "bottom"}))
        self._draw_diff()

    def _draw_diff(self) -> None:
        if getattr(self, "_syncing", False):
            return
        a, b = self.step_a.value, self.step_b.value
        if a is None or b is None or self.wparam.value is None:
            self.diff_pane.objects = []
            return
        self._show(self.diff_pane, lambda: _views().snapshot_diff(
            self.run, self.wparam.value, a, b, stat=self.wstat.value))

    def tick(self) -> bool:
        """Redraw when a run has new steps (and following is on); True when it redrew.

        Does nothing (False) in a served session whose browser has not loaded
        the page yet (see the module's docstring), and redraws nothing while
        a run file cannot be read (the status line says why).
        """
        if not self.pn.state.loaded:
            return False
        self.status.object = self._status_text()
        try:
            now = self._last_steps()
        except RunFileError:
            return False
        if not self.follow.value or now == self.last_steps:
            return False
        self.last_steps = now
        self._draw_all()
        return True


def compare_curves(runs, names=("loss",), smoothing: float = 0.6, width: int = 900,
                   height: int = 250):
    """The same scalars of several runs overlaid, one colour per run, stacked per scalar."""
    import holoviews as hv

    import dlviz_gpu as dv

    plots = []
    for name in names:
        layers = []
        for k, r in enumerate(runs):
            if name not in r.scalar_names():
                continue
            steps, values = r.scalar(name)
            if len(values) < 2:
                continue
            w = 0.0 if name.startswith("lr") else smoothing
            layers.append(dv.curve(values, x=steps.astype(float), smoothing=w,
                                   label=f"{name}: {r.name}", width=width, height=height,
                                   color=RUN_COLORS[k % len(RUN_COLORS)]))
        if layers:
            plot = functools.reduce(operator.mul, layers)     # a DynamicMap of overlays
            # each scalar its own y axis (every curve's value dimension is "y")
            shown = _view_label(name)
            plot = plot.redim.label(y=f"{shown} value")
            plots.append(plot.opts(title=f"{shown}: " + " vs ".join(_view_label(r.name)
                                                                    for r in runs))
                         if len(layers) > 1 else plot)
    if not plots:
        raise KeyError(f"none of {list(names)} recorded with two steps or more yet")
    return hv.Layout(plots).cols(1) if len(plots) > 1 else plots[0]


def _run_status(r: Run) -> str:
    """The status line of one run (Markdown); RunFileError when its file cannot be read."""
    last = r.last_step
    if last is None:
        return f"**{_shown(r.name)}**: waiting for the first step"
    state = "training" if r.live else "finished"
    recorded = len(r.steps(recorded=True))
    parts = [f"**{_shown(r.name)}** ({state}): step {last:,}", f"{recorded:,} recorded"]
    if "loss" in r.scalar_names():
        _, loss = r.scalar("loss", since=last)
        if len(loss):
            parts.append(f"loss {loss[-1]:.4g}")
    n = len(r.alerts())
    if n:
        parts.append(f"**{n} alert{'s' if n > 1 else ''}**")
    return ", ".join(parts)


def _unreadable(err: RunFileError) -> str:
    """Markdown: why a run cannot be read (the problem, without its path)."""
    return f"cannot be read: {_shown(err.problem)}"


def _readable(read, default):
    """``read()``, or ``default`` when a run file cannot be read (the page still opens)."""
    try:
        return read()
    except RunFileError:
        return default


def _shown(text) -> str:
    """``text`` for Markdown: controls shown as escapes, then HTML-escaped."""
    return html.escape(display(text, exact=False))


def _view_label(name: str) -> str:
    from ..views.style import label

    return label(name)


def warm_views(run) -> None:
    """Compile the kernels the run views use (M4 decimation of the curves)."""
    import numpy as np

    import dlviz_gpu as dv

    dv.decimate(np.zeros(4), x=np.arange(4.0), width=4)


def _views():
    from ..views import quiet_bokeh, training

    quiet_bokeh()
    return training
