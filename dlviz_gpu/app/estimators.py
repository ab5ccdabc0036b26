"""The dashboard of a fitted classifier: decision surface, trees and feature importances.

>>> board = EstimatorBoard(forest, X, y, feature_names=names, class_names=classes)
>>> url = board.serve(port=0)              # or pn.serve({"/model": board.page})
>>> url.stop()

One :class:`EstimatorBoard` holds what every browser session shares (the
estimator, the samples, the checks made once); each session gets its own page
(:class:`EstimatorSession`) with a header (estimator, classes, samples,
features, training accuracy on ``(X, y)``) and these tabs:

- **Decision surface** (every classifier): :func:`dlviz_gpu.decision_surface`,
  re-evaluated for the visible window on every zoom, with selects for the
  feature on each axis, the plane (others at their medians, or the first two
  principal components; only with more than two features) and the response
  that sets the confidence.  Choosing the feature already on the other axis
  swaps the two.
- **Trees** (decision trees and tree ensembles scikit-learn stores as
  decision trees: forests, extra-trees, bagging of trees, gradient
  boosting): :func:`dlviz_gpu.tree` of the chosen tree, folded at ``max
  depth`` when one is given.  Multi-class gradient boosting has one tree per
  class and stage: a ``class`` select picks it.
- **Importances** (estimators with ``feature_importances_``):
  :func:`dlviz_gpu.importances`.

The estimator may be a Pipeline ending in a classifier, or a torch module
(logits; the decision surface only), as :func:`dlviz_gpu.decision_surface`
takes.  What the views refuse (an unfitted estimator, a regressor, ``X`` of
the wrong width, unknown labels in ``y``) is refused when the board is built,
with the views' own messages.
"""

from __future__ import annotations

import html

import numpy as np

from ..estimators import final_step, tree_nodes
from ..optional import is_torch_module
from ..names import display
from .board import Board, note


def _shown(text) -> str:
    """``text`` for Markdown: controls shown as escapes, then HTML-escaped."""
    return html.escape(display(text, exact=False))

__all__ = ["EstimatorBoard", "EstimatorSession", "estimator_dashboard", "SURFACE_SIZE",
           "TREE_SIZE"]

#: Frame of the decision surface in screen pixels (one grid cell per pixel).
SURFACE_SIZE = (760, 520)
#: Frame of the tree picture.
TREE_SIZE = (900, 560)
#: The Importances tab shows at most this many features (the largest).
TOP_IMPORTANCES = 40
#: Classes named in the header (then "... (K classes)").
HEADER_CLASSES = 12


def _describe(estimator) -> str:
    """``"SVC"``, ``"Pipeline (StandardScaler -> SVC)"``, or a torch module's class."""
    steps = getattr(estimator, "steps", None)
    if isinstance(steps, list) and steps and hasattr(estimator, "named_steps"):
        parts = [type(s).__name__ if s not in (None, "passthrough") else str(s)
                 for _, s in steps]
        return f"{type(estimator).__name__} ({' -> '.join(parts)})"
    if is_torch_module(estimator):
        return f"{type(estimator).__name__} (torch module)"
    return type(estimator).__name__


def _has_importances(estimator) -> bool:
    if is_torch_module(estimator):
        return False
    try:
        imp = final_step(estimator).feature_importances_
    except Exception:  # noqa: BLE001 - a property that raises means "none to show"
        return False
    return np.ndim(imp) == 1 and np.size(imp) > 0


class EstimatorBoard(Board):
    """A fitted classifier and its samples, ready to be served as a dashboard.

    Parameters
    ----------
    estimator : fitted scikit-learn classifier, Pipeline ending in one, or torch.nn.Module
        Anything :func:`dlviz_gpu.decision_surface` takes.
    X : (N, D) array_like
        The samples (training data, usually): drawn on the surface, and they
        set its default window and the medians / principal components of the
        plane.  D >= 2.
    y : (N,) array_like, optional
        Their labels (the estimator's classes; class indices for a torch
        module): the dots' colours and the training accuracy in the header.
    feature_names : sequence of str, optional
        Default: a DataFrame's columns, ``feature_names_in_``, else x0, x1, ...
    class_names : sequence of str, optional
        Default: ``classes_`` (``0 .. K-1`` for a torch module).
    title : str, optional
        The page title (default: the estimator's type).

    Attributes
    ----------
    X : (N, D) float64
        The samples, checked.
    feature_names, labels : list of str
        Feature and class names.
    accuracy : float or None
        Share of ``X`` the estimator classifies as ``y`` (None without ``y``).
    trees : dict or None
        For tree models: ``count`` (trees or stages), ``per_stage`` (trees
        per gradient-boosting stage; 1 otherwise), ``feature_names`` and
        ``class_names`` to draw them with.
    importances : bool
        The estimator has ``feature_importances_``.

    Raises
    ------
    TypeError
        ``estimator`` is not a classifier (a regressor, a transformer, ...);
        ``title`` not a string.
    ValueError
        Not fitted; ``X`` of the wrong width, with NaN, or with fewer than 2
        features; ``y`` with unknown labels or of the wrong length; names of
        the wrong length.
    ImportError
        scikit-learn missing (``pip install "dlviz_gpu[sklearn]"``).
    """

    def __init__(self, estimator, X, y=None, *, feature_names=None, class_names=None,
                 title: str | None = None):
        from ..views.surface import SurfaceView

        if title is not None and not isinstance(title, str):
            raise TypeError(f"title: expected a string or None; got {type(title).__name__}")
        # the surface's own checks, once, at construction: classifier, fitted, X, y, names
        view = SurfaceView(estimator, X, y=y, class_names=class_names,
                           feature_names=feature_names, width=16, height=16, hover="none",
                           support_vectors=False)
        self._view = view
        self.estimator = estimator
        self.X = view.X
        self.y = None if y is None else (y.detach().cpu().numpy()
                                         if hasattr(y, "detach") and hasattr(y, "cpu")
                                         else np.asarray(y))
        self.feature_names = list(view.feature_names)
        self.class_names = None if class_names is None else list(view.labels)
        self.labels = list(view.labels)
        self.kind = view.model.kind
        self.type_name = _describe(estimator)
        self.title = title or self.type_name
        self.method = view.model.method
        self.responses = ["auto"]
        if self.kind == "sklearn":
            self.responses += [m for m in ("predict_proba", "decision_function", "predict")
                               if hasattr(estimator, m)]
        self.accuracy = None
        if view.codes is not None:
            pred = view.model.evaluate(self.X)["codes"]
            self.accuracy = float(np.mean(pred == view.codes))
        self.trees = self._find_trees()
        self.importances = _has_importances(estimator)

    def _find_trees(self):
        """What the Trees tab needs, or None when the estimator has no drawable trees."""
        if self.kind != "sklearn":
            return None
        try:
            first = tree_nodes(self.estimator, self._first_index())
        except (TypeError, ValueError):
            # not a tree model, or trees in their own format (HistGradientBoosting),
            # or multi-output trees: no Trees tab
            return None
        est = final_step(self.estimator)
        trees = getattr(est, "estimators_", None)
        if trees is None:
            count, per = 1, 1
        elif isinstance(trees, np.ndarray) and trees.ndim == 2:
            count, per = int(trees.shape[0]), int(trees.shape[1])
        else:
            count, per = len(trees), 1
        d = len(self.feature_names)
        names = self.feature_names if len(first.feature_names) == d else None
        cls = None
        if first.is_classifier and len(first.class_names) == len(self.labels):
            cls = self.labels
        return {"count": count, "per_stage": per, "feature_names": names, "class_names": cls}

    def _first_index(self):
        trees = getattr(final_step(self.estimator), "estimators_", None)
        if isinstance(trees, np.ndarray) and trees.ndim == 2 and trees.shape[1] > 1:
            return (0, 0)
        return 0

    # -- what every session shares ---------------------------------------------------
    def summary(self) -> list[tuple[str, str]]:
        """The header's facts as (name, value) rows."""
        k = len(self.labels)
        shown = ", ".join(self.labels[:HEADER_CLASSES])
        if k > HEADER_CLASSES:
            shown += ", ..."
        rows = [("estimator", self.type_name), ("classes", f"{shown} ({k})"),
                ("samples", f"{self.X.shape[0]:,}"), ("features", f"{self.X.shape[1]:,}")]
        if self.accuracy is not None:
            rows.append(("training accuracy", f"{self.accuracy:.4f} (on the samples shown)"))
        return rows

    def tabs(self) -> list[str]:
        """The names of the tabs a page shows."""
        out = ["Decision surface"]
        if self.trees is not None:
            out.append("Trees")
        if self.importances:
            out.append("Importances")
        return out

    def warm(self) -> None:
        """Compile what the first page needs (the points kernel, the surface's spreading)
        and evaluate the model once, so pages open quickly."""
        from ..views import quiet_bokeh

        quiet_bokeh()
        self._view.planes(width=16, height=12)

    # -- serving ----------------------------------------------------------------------
    def page(self):
        """A fresh page for one browser session (a Panel layout)."""
        return EstimatorSession(self).layout



class EstimatorSession:
    """One browser session's page: its widgets and pictures.

    Attributes
    ----------
    board : EstimatorBoard
    layout : panel.Column
        The page: header and tabs.
    tabs : panel.Tabs
        The tabs (named; only the one on screen is rendered).
    x_feature, y_feature : panel.widgets.Select
        The features on the surface's axes (options: name -> column index).
    plane, response : panel.widgets.Select
        The plane of a surface with more than two features (``median`` /
        ``pca``; hidden with two) and what sets the confidence.
    surface : holoviews.DynamicMap
        The current decision surface (``.view`` is its
        :class:`~dlviz_gpu.views.surface.SurfaceView`).
    surface_pane : panel.pane.HoloViews
    surface_note : panel.pane.Markdown
        Why the last change could not be drawn (empty when it could).
    tree_index, tree_class, max_depth : panel widgets
        Trees tab only: the tree (or gradient-boosting stage), its class
        (multi-class gradient boosting only) and the fold depth (None: the
        whole tree).
    tree : holoviews.DynamicMap or None
        The current tree picture (``.view`` is its TreeView).
    tree_pane, importances_pane : panel.pane.HoloViews or None
    """

    def __init__(self, board: EstimatorBoard):
        import panel as pn

        from ..views import quiet_bokeh

        # no pn.extension(...) here: it changes Panel's process-wide config
        # (see app/dashboard.py); a served page loads what it uses
        quiet_bokeh()
        self.board = board
        self.pn = pn
        self._syncing = False
        # names are data (a DataFrame's columns): shown with controls escaped; labels
        # must be unique keys; the values are column indices
        names = [display(n, limit=80) for n in board.feature_names]
        options = {}
        for i, n in enumerate(names):
            options[n if n not in options else f"{n} (column {i})"] = i
        self.x_feature = pn.widgets.Select(label="x feature", options=options, value=0,
                                           width=220)
        self.y_feature = pn.widgets.Select(label="y feature", options=options, value=1,
                                           width=220)
        d = board.X.shape[1]
        self.plane = pn.widgets.Select(label="plane", options=["median", "pca"], value="median",
                                       width=120, visible=d > 2)
        self.response = pn.widgets.Select(label="response", options=list(board.responses),
                                          value="auto", width=170,
                                          visible=len(board.responses) > 1)
        self.surface_note = pn.pane.Markdown("", sizing_mode="stretch_width")
        self.surface = self._make_surface()
        self.surface_pane = pn.pane.HoloViews(self.surface, sizing_mode="fixed")
        self.x_feature.param.watch(lambda e: self._on_axis(e, self.y_feature), "value")
        self.y_feature.param.watch(lambda e: self._on_axis(e, self.x_feature), "value")
        self.plane.param.watch(self._on_plane, "value")
        self.response.param.watch(lambda e: self._redraw_surface(), "value")
        if d > 2:
            help_text = ("Other features fixed at their medians (plane *median*), or the plane "
                         "of the first two principal components (*pca*). ")
        else:
            help_text = ""
        help_text += ("Lightness is the confidence; scroll to zoom: the model is evaluated "
                      "again for the visible window.")
        tabs = [pn.Column(pn.Row(self.x_feature, self.y_feature, self.plane, self.response),
                          pn.pane.Markdown(help_text, sizing_mode="stretch_width"),
                          self.surface_note, self.surface_pane, name="Decision surface")]

        self.tree = self.tree_pane = self.tree_index = self.tree_class = self.max_depth = None
        self.tree_note = None
        if board.trees is not None:
            tabs.append(self._trees_tab(pn))
        self.importances_pane = None
        if board.importances:
            tabs.append(self._importances_tab(pn))

        self.tabs = pn.Tabs(*tabs, dynamic=True)      # only the tab on screen is rendered
        facts = " &middot; ".join(f"{_shown(k)}: **{_shown(v)}**"
                                  for k, v in board.summary())
        self.header = pn.pane.Markdown(f"## {_shown(board.title)}\n{facts}",
                                       sizing_mode="stretch_width")
        self.layout = pn.Column(self.header, self.tabs, sizing_mode="stretch_width")

    # -- decision surface ---------------------------------------------------------------
    def _make_surface(self):
        from ..views.surface import decision_surface

        from ..views.style import labels as shown_labels

        b = self.board
        w, h = SURFACE_SIZE
        # class and feature names are data (y's labels, a DataFrame's columns): the surface
        # gets them as they may be shown (its legend entries are HoloViews labels)
        classes = shown_labels(b.labels)
        features = shown_labels(b.feature_names)
        return decision_surface(b.estimator, b.X, b.y,
                                features=(self.x_feature.value, self.y_feature.value),
                                plane=self.plane.value, response=self.response.value,
                                width=w, height=h,
                                class_names=b.class_names if classes == b.labels else classes,
                                feature_names=b.feature_names if features == b.feature_names
                                else features)

    def _redraw_surface(self) -> None:
        if self._syncing:
            return
        try:
            dmap = self._make_surface()
        except (ValueError, TypeError) as err:  # the picture stays; the note says why
            msg = err.args[0] if err.args else str(err)
            self.surface_note.object = f"*not redrawn: {_shown(str(msg))}*"
            return
        self.surface_note.object = ""
        self.surface = dmap
        self.surface_pane.object = dmap

    def _on_axis(self, event, other) -> None:
        if self._syncing:
            return
        if event.new == other.value:
            # the feature already on the other axis: swap the two
            self._syncing = True
            try:
                other.value = event.old
            finally:
                self._syncing = False
        self._redraw_surface()

    def _on_plane(self, event) -> None:
        pca = event.new == "pca"
        self.x_feature.disabled = pca
        self.y_feature.disabled = pca
        self._redraw_surface()

    # -- trees --------------------------------------------------------------------------
    def _trees_tab(self, pn):
        t = self.board.trees
        n, per = t["count"], t["per_stage"]
        what = "stage" if per > 1 or self._is_boosting() else "tree"
        self.tree_index = pn.widgets.IntInput(label=f"{what} (0..{n - 1})", value=0, start=0,
                                              end=max(n - 1, 0), width=140, disabled=n <= 1)
        # multi-class gradient boosting: one tree per class and stage
        labels = self.board.labels if len(self.board.labels) == per else \
            [str(k) for k in range(per)]
        options = {}
        for k, lab in enumerate(labels):
            shown = display(lab, limit=80)
            options[shown if shown not in options else f"{shown} ({k})"] = k
        self.tree_class = pn.widgets.Select(label="class", options=options,
                                            value=0, width=160, visible=per > 1)
        self.max_depth = pn.widgets.IntInput(label="max depth", value=None, start=0,
                                             placeholder="all", width=120)
        self.tree_note = pn.pane.Markdown("", sizing_mode="stretch_width")
        self.tree = self._make_tree()
        self.tree_pane = pn.pane.HoloViews(self.tree, sizing_mode="fixed")
        for w in (self.tree_index, self.tree_class, self.max_depth):
            w.param.watch(lambda e: self._redraw_tree(), "value")
        text = ("Each node's colour is its majority class, lighter the more mixed; hover for "
                "the split, samples and classes; scroll to zoom (labels appear once few nodes "
                "are in view). *max depth* folds deeper subtrees into squares.")
        return pn.Column(pn.Row(self.tree_index, self.tree_class, self.max_depth),
                         pn.pane.Markdown(text, sizing_mode="stretch_width"),
                         self.tree_note, self.tree_pane, name="Trees")

    def _is_boosting(self) -> bool:
        trees = getattr(final_step(self.board.estimator), "estimators_", None)
        return isinstance(trees, np.ndarray) and trees.ndim == 2

    def tree_key(self):
        """The ``tree_index`` :func:`dlviz_gpu.tree` is given: an int, or (stage, class)."""
        i = int(self.tree_index.value or 0)
        if self.board.trees["per_stage"] > 1:
            return (i, int(self.tree_class.value))
        return i

    def _make_tree(self):
        from ..views.trees import tree

        t = self.board.trees
        w, h = TREE_SIZE
        return tree(self.board.estimator, tree_index=self.tree_key(),
                    max_depth=self.max_depth.value, feature_names=t["feature_names"],
                    class_names=t["class_names"], width=w, height=h)

    def _redraw_tree(self) -> None:
        try:
            el = self._make_tree()
        except (ValueError, TypeError) as err:
            msg = err.args[0] if err.args else str(err)
            self.tree_note.object = f"*not redrawn: {_shown(str(msg))}*"
            return
        self.tree_note.object = ""
        self.tree = el
        self.tree_pane.object = el

    # -- importances ----------------------------------------------------------------------
    def _importances_tab(self, pn):
        from ..views.trees import importances

        b = self.board
        imp = np.asarray(final_step(b.estimator).feature_importances_)
        names = b.feature_names if imp.size == len(b.feature_names) else None
        top = TOP_IMPORTANCES if imp.size > TOP_IMPORTANCES else None
        height = 300 if imp.size <= 12 else min(900, 120 + 18 * min(imp.size, TOP_IMPORTANCES))
        items = []
        if top is not None:
            items.append(note(pn, f"the {TOP_IMPORTANCES} most important of {imp.size} "
                                   "features"))
        try:
            self.importances_pane = pn.pane.HoloViews(
                importances(b.estimator, feature_names=names, top=top, width=700,
                            height=height), sizing_mode="fixed")
            items.append(self.importances_pane)
        except (ValueError, TypeError) as err:
            items.append(note(pn, f"no importances: {display(str(err), exact=False)}"))
        return pn.Column(*items, name="Importances")


def estimator_dashboard(estimator, X, y=None, **kwargs) -> EstimatorBoard:
    """An :class:`EstimatorBoard` of a fitted classifier (see there); ``.serve()`` it or ``.page()`` it."""
    return EstimatorBoard(estimator, X, y, **kwargs)
