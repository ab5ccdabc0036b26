"""``dv.tree`` (a scikit-learn decision tree, or one tree of an ensemble) and
``dv.importances`` (feature importances of a tree model).

(The module is ``trees``, not ``tree``: a submodule named like the function
would replace ``dlviz_gpu.views.tree`` by the module once anything imports it.)

A tree is drawn from :func:`dlviz_gpu.estimators.tree_nodes` and
:func:`~dlviz_gpu.estimators.tree_layout`: every node a dot, one row per
depth (root at the top), leaves one unit apart in depth-first order, parents
centred over their children, so a 20,000-node tree is a few arrays of 20,000
numbers, laid out in milliseconds and drawn by Bokeh as one glyph of dots and
one of segments.  Hover tells each node's split, threshold, samples, class
distribution (or value) and impurity.  Wheel-zoom into any part: once few
enough nodes are in view, each shows its split or its class as text.
``max_depth`` folds the tree: an inner node at that depth stands for its whole
subtree (a square, with the subtree's node count in the hover).

Hover, per node: its id, depth, split (``feature <= threshold``; "leaf"),
training samples reaching it (``n_node_samples``), the class distribution as
weighted counts (in a bagged forest these count bootstrap draws, so they can
sum to more than the samples), the majority class and its share (purity),
and the impurity under the tree's criterion; for regression and boosting
trees the node's value instead of the classes.

Colours: a classifier's node takes its majority class's colour (the palette
the scatter uses for categories), lighter the more mixed the node is
(white = as mixed as it can be, full colour = pure); a regression tree's node
(gradient-boosting trees, regressors) takes its value on a colour scale.
"""

from __future__ import annotations


import numpy as np

from ..estimators import final_step, tree_layout, tree_nodes
from ..names import display
from ..checks import check_size
from . import style
from .zoom import ZoomView

#: Text labels appear once at most this many nodes are in view.
LABEL_LIMIT = 48
#: Screen size of a node dot (pixels).
NODE_SIZE = 9
FOLDED_SIZE = 12
EDGE_COLOR = "#9a9a9a"
OUTLINE = "#505050"
#: Lightest colour fraction of a maximally mixed node (0 would be pure white).
MIN_TINT = 0.08
#: Shades per class from mixed (nearly white) to pure (the class colour).
TINT_LEVELS = 16
#: Classes named in a node's hover distribution (the largest ones).
HOVER_CLASSES = 10


def class_colours(k: int) -> list[str]:
    """The colours of ``k`` classes: the scatter's category palette, so a class
    has one colour in every view."""
    from .points import CATEGORY_CMAP

    pal = style.check_cmap(CATEGORY_CMAP, signed=False)
    return [pal[i % len(pal)] for i in range(k)]


def hex_to_rgb(colours) -> np.ndarray:
    """(K, 3) float array of '#rrggbb' colours."""
    return np.array([[int(c[1 + 2 * i:3 + 2 * i], 16) for i in range(3)] for c in colours],
                    dtype=np.float64)


def _rgb_to_hex(rgb: np.ndarray) -> np.ndarray:
    v = np.clip(np.rint(rgb), 0, 255).astype(np.int64)
    packed = (v[:, 0] << 16) | (v[:, 1] << 8) | v[:, 2]
    return np.array([f"#{p:06x}" for p in packed.tolist()], dtype=object)


def tint(base_rgb: np.ndarray, amount: np.ndarray) -> np.ndarray:
    """Blend colours with white: ``amount`` 0 -> white, 1 -> the colour.  (N, 3) floats."""
    a = np.asarray(amount, dtype=np.float64)[:, None]
    return 255.0 - a * (255.0 - base_rgb)


def _fmt(v: float) -> str:
    return style.format_value(float(v))


class TreeView(ZoomView):
    """The state behind one tree picture: nodes, layout, colours and hover columns.

    Attributes
    ----------
    nodes : :class:`~dlviz_gpu.estimators.TreeNodes`
    layout : :class:`~dlviz_gpu.layouts.TreeLayout`
    palette : list of str
        Classifiers: :data:`TINT_LEVELS` shades per class; regressors: the
        value colour map.
    colour_index : (n,) float64
        What each node is coloured by through ``palette`` and ``clim``
        (classifiers: class * TINT_LEVELS + shade + 0.5; regressors: the value).
    updates : int
        How many windows the label layer was built for.
    """

    #: the labels follow the window; the tree's size does not depend on the frame
    STREAMS = ("RangeXY",)

    def __init__(self, estimator, tree_index=0, max_depth=None, feature_names=None,
                 class_names=None, width=900, height=600):
        self.width = check_size(width, "width")
        self.height = check_size(height, "height")
        self.nodes = tree_nodes(estimator, tree_index, feature_names=feature_names,
                                class_names=class_names)
        self.layout = tree_layout(self.nodes, max_depth)
        super().__init__((self.width, self.height))
        self._base = None
        self._colour()
        self._columns()

    # -- colours -------------------------------------------------------------------
    def _colour(self) -> None:
        """Colour index per node into :attr:`palette` (a colour mapper, not a column of
        colour strings: Bokeh maps indices in the browser, and HoloViews need not
        validate 20,000 colour strings on every zoom)."""
        nd = self.nodes
        if nd.is_classifier:
            k = nd.value.shape[1]
            self.class_colors = class_colours(k)
            base = hex_to_rgb(self.class_colors)
            # TINT_LEVELS tints per class, from nearly white (mixed) to the full colour (pure)
            amount = MIN_TINT + (1.0 - MIN_TINT) * np.linspace(0.0, 1.0, TINT_LEVELS)
            rows = [tint(np.repeat(base[c:c + 1], TINT_LEVELS, axis=0), amount)
                    for c in range(k)]
            self.palette = list(_rgb_to_hex(np.concatenate(rows)))
            purity = nd.purity()
            t = (purity - 1.0 / k) / (1.0 - 1.0 / k) if k > 1 else np.ones(nd.n_nodes)
            level = np.clip(np.rint(np.clip(t, 0.0, 1.0) * (TINT_LEVELS - 1)), 0,
                            TINT_LEVELS - 1).astype(np.int64)
            self.colour_index = nd.majority() * TINT_LEVELS + level + 0.5
            self.clim = (0.0, float(k * TINT_LEVELS))
            return
        self.class_colors = []
        v = nd.value[:, 0]
        signed = bool(v.min() < 0 < v.max())
        self.palette = style.check_cmap(None, signed)
        self.clim = style.robust_limits(v, signed=signed, percentile=100.0)
        self.colour_index = v.copy()

    # -- hover columns ---------------------------------------------------------------
    def _columns(self) -> None:
        nd, lay = self.nodes, self.layout
        ids = np.flatnonzero(lay.visible)
        # feature and class names are data (a DataFrame's columns): shown with controls
        # escaped in the hover, the labels and the legend
        split = np.array([display(t, exact=False) for t in nd.split_text()], dtype=object)
        leaf = nd.is_leaf
        folded = lay.folded
        hidden = lay.subtree_nodes - 1
        rule = np.where(leaf, "leaf", split).astype(object)
        rule[folded] = [f"{s} (folded: {h:,} nodes below)" for s, h in
                        zip(split[folded], hidden[folded])]
        cols = {"x": lay.x[ids], "y": lay.y[ids], "node": ids, "depth": nd.depth[ids],
                "rule": rule[ids], "samples": nd.samples[ids],
                "impurity": nd.impurity[ids], "colour": self.colour_index[ids]}
        if nd.is_classifier:
            counts = nd.counts()
            names = [display(n, limit=style.LABEL_LIMIT) for n in nd.class_names]
            maj = nd.majority()
            cols["class"] = np.array(names, dtype=object)[maj[ids]]
            cols["purity"] = nd.purity()[ids]
            cols["distribution"] = self._distribution(counts[ids], names)
        else:
            cols["value"] = nd.value[ids, 0]
        self.ids = ids
        self.columns = cols
        # text for the labels of a zoomed-in window
        if nd.is_classifier:
            leaf_text = [f"{c}\nn={s:,}" for c, s in zip(cols["class"], cols["samples"])]
        else:
            leaf_text = [f"{_fmt(v)}\nn={s:,}" for v, s in zip(cols["value"], cols["samples"])]
        two_lines = np.array([t.replace(" <= ", "\n<= ") for t in split[ids]], dtype=object)
        text = np.where(leaf[ids], np.array(leaf_text, dtype=object), two_lines).astype(object)
        fold_ids = folded[ids]
        if fold_ids.any():
            text[fold_ids] = [f"{t}\n+{h:,} nodes" for t, h in
                              zip(text[fold_ids], hidden[ids][fold_ids])]
        self.text = text

    @staticmethod
    def _distribution(counts: np.ndarray, names) -> np.ndarray:
        """'setosa 50 | versicolor 3' per node (largest classes first when there are many)."""
        k = counts.shape[1]
        out = np.empty(counts.shape[0], dtype=object)
        fmt = (lambda v: f"{v:,.0f}") if np.allclose(counts, np.rint(counts)) else \
            (lambda v: f"{v:,.4g}")
        if k <= HOVER_CLASSES:
            for r in range(counts.shape[0]):
                out[r] = " | ".join(f"{names[c]} {fmt(counts[r, c])}" for c in range(k))
            return out
        order = np.argsort(-counts, axis=1, kind="stable")[:, :HOVER_CLASSES]
        for r in range(counts.shape[0]):
            out[r] = " | ".join(f"{names[c]} {fmt(counts[r, c])}" for c in order[r]
                                if counts[r, c] > 0) + " | ..."
        return out

    # -- HoloViews ---------------------------------------------------------------------
    def title(self) -> str:
        nd, lay = self.nodes, self.layout
        t = (f"{style.label(nd.source)}: {nd.n_nodes:,} nodes, {nd.n_leaves:,} leaves, depth "
             f"{nd.max_depth}")
        if nd.criterion:
            t += f", {nd.criterion}"
        nf = int(lay.folded.sum())
        if nf:
            t += (f" - folded at depth {lay.max_depth}: {nf:,} subtrees "
                  f"({int((~lay.visible).sum()):,} nodes) hidden")
        return t

    def _tooltips(self):
        tips = [("node", "@{node}"), ("depth", "@{depth}"), ("split", "@{rule}"),
                ("samples", "@{samples}{0,0}")]
        if self.nodes.is_classifier:
            tips += [("classes", "@{distribution}"), ("majority", "@{class}"),
                     ("purity", "@{purity}{0.000}")]
        else:
            tips += [("value", "@{value}{%.6g}")]
        crit = self.nodes.criterion or "impurity"
        tips.append((crit, "@{impurity}{%.6g}"))
        fmts = {"@{impurity}": "printf", "@{value}": "printf"}
        return tips, fmts

    def base(self):
        """The static layers: edges, nodes, folded nodes and the class legend."""
        hv = style.ensure_bokeh()
        nd, lay = self.nodes, self.layout
        kids = np.flatnonzero(lay.visible & (nd.parent >= 0))
        par = nd.parent[kids]
        seg = hv.Segments((lay.x[par], lay.y[par], lay.x[kids], lay.y[kids]),
                          kdims=["x", "depth", "x1", "depth1"])
        seg = seg.opts(backend="bokeh", color=EDGE_COLOR, line_width=1.0)
        cols = self.columns
        vdims = [c for c in cols if c not in ("x", "y")]
        tips, fmts = self._tooltips()
        fold = self.layout.folded[self.ids]
        kd = [hv.Dimension("x", label="x"), hv.Dimension("y", label="depth")]
        common = dict(color="colour", cmap=self.palette, clim=self.clim, line_color=OUTLINE,
                      line_width=0.6, tools=["hover"], hover_tooltips=tips,
                      hover_formatters=fmts, colorbar=not nd.is_classifier)
        pts = hv.Points({k: v[~fold] for k, v in cols.items()}, kdims=kd, vdims=vdims)
        pts = pts.opts(backend="bokeh", size=NODE_SIZE, marker="circle", **common)
        layers = [seg, pts]
        if fold.any():
            fpts = hv.Points({k: v[fold] for k, v in cols.items()}, kdims=kd, vdims=vdims,
                             group="Folded")
            layers.append(fpts.opts(backend="bokeh", size=FOLDED_SIZE, marker="square",
                                    **common))
        if nd.is_classifier:
            for name, col in zip(style.labels(nd.class_names), self.class_colors):
                layers.append(hv.Points(style.LEGEND_POINT, kdims=kd, label=name).opts(
                    backend="bokeh", color=col, size=8))
        return hv.Overlay(layers)

    def labels(self, x_range=None, y_range=None):
        """Text of the nodes in the window when at most :data:`LABEL_LIMIT` are in view."""
        hv = style.ensure_bokeh()
        x, y = self.columns["x"], self.columns["y"]
        inside = np.ones(x.size, dtype=bool)
        if x_range is not None and None not in tuple(x_range):
            lo, hi = sorted(float(v) for v in x_range)
            inside &= (x >= lo) & (x <= hi)
        if y_range is not None and None not in tuple(y_range):
            lo, hi = sorted(float(v) for v in y_range)
            inside &= (y >= lo) & (y <= hi)
        n_in = int(inside.sum())
        show = inside if n_in <= LABEL_LIMIT else np.zeros_like(inside)
        self.record({"window": (x_range, y_range), "in_view": n_in, "labels": int(show.sum())})
        lab = hv.Labels((x[show], y[show] + 0.3, self.text[show]),
                        kdims=[hv.Dimension("x", label="x"), hv.Dimension("y", label="depth")],
                        vdims=["text"])
        return lab.opts(backend="bokeh", text_font_size="8pt", text_color="#202020",
                        text_baseline="top")

    def zoom(self, x_range, y_range):
        """The tree with the labels of the nodes in the window (the DynamicMap's callback);
        the dots and edges are built once."""
        if self._base is None:
            self._base = self.base()
        return self._base * self.labels(x_range, y_range)

    def opts(self) -> dict:
        lay = self.layout
        pad = 0.5
        depth = int(np.nanmax(lay.y)) if lay.visible.any() else 0
        o = dict(frame_width=self.width, frame_height=self.height, title=self.title(),
                 xaxis=None, ylabel="depth", invert_yaxis=True,
                 xlim=(-pad - 0.5, max(lay.width - 1, 0) + pad + 0.5),
                 ylim=(-0.5, depth + 0.9), active_tools=["wheel_zoom"],
                 show_legend=self.nodes.is_classifier, legend_position="right")
        return o


def tree(estimator, tree_index=0, max_depth: int | None = None, feature_names=None,
         class_names=None, width: int = 900, height: int = 600, *, dynamic: bool = True):
    """A zoomable picture of a decision tree, or of one tree of an ensemble.

    Parameters
    ----------
    estimator : fitted scikit-learn tree model
        ``DecisionTreeClassifier`` / ``Regressor``, ``ExtraTree*``,
        ``RandomForest*``, ``ExtraTrees*``, ``Bagging*`` of trees,
        ``GradientBoosting*``, ``IsolationForest``, or a Pipeline ending in one.
    tree_index : int or (int, int)
        Which tree of an ensemble.  Gradient boosting: the stage, or
        ``(stage, class)`` for a multi-class model (one tree per class).
    max_depth : int, optional
        Fold the tree: nodes deeper than this are hidden and an inner node at
        this depth is drawn as a square standing for its subtree.
    feature_names, class_names : sequence of str, optional
        Default: ``feature_names_in_`` / ``classes_`` of the estimator.
    width, height : int
        Plot frame size in screen pixels.
    dynamic : bool
        ``True``: a ``DynamicMap`` whose text labels follow the zoom.
        ``False``: one static overlay (labels of the whole tree when it is small).

    Returns
    -------
    holoviews.DynamicMap or holoviews.Overlay
        ``.view`` (on the DynamicMap) is the :class:`TreeView`.

    Raises
    ------
    TypeError
        Not a tree model (``estimator``).
    ValueError
        Not fitted, ``tree_index`` out of range, bad ``max_depth``, names of
        the wrong length.
    ImportError
        scikit-learn missing (``pip install "dlviz_gpu[sklearn]"``).
    """
    style.ensure_bokeh()
    view = TreeView(estimator, tree_index, max_depth, feature_names, class_names, width,
                    height)
    if not dynamic:
        return (view.base() * view.labels()).opts(backend="bokeh", **view.opts())
    return view.dynamic(view.opts())


# --------------------------------------------------------------------------
# importances
# --------------------------------------------------------------------------

def importance_table(model, feature_names=None, top: int | None = None):
    """(names, importances, std or None) of a fitted model, largest first.

    ``std`` is the standard deviation of the importance over the trees of a
    forest / bagging ensemble (None for a single tree or boosting).
    """
    from ..estimators import check_fitted, require_sklearn

    require_sklearn("dv.importances")
    if not (hasattr(model, "fit") and hasattr(model, "get_params")):
        raise TypeError(f"forest: expected a fitted scikit-learn model with "
                        f"feature_importances_; got {type(model).__module__}."
                        f"{type(model).__qualname__}")
    check_fitted(model, "forest")
    est = final_step(model)
    try:
        imp = np.asarray(est.feature_importances_, dtype=np.float64)
    except AttributeError:
        raise TypeError(f"forest: {type(est).__name__} has no feature_importances_ (tree "
                        "models have them; use sklearn.inspection.permutation_importance "
                        "for others)") from None
    n = imp.size
    names = feature_names
    if names is None:
        fn = getattr(model, "feature_names_in_", None)
        if fn is None:
            fn = getattr(est, "feature_names_in_", None)
        names = [str(s) for s in fn] if fn is not None and len(fn) == n else \
            [f"x{i}" for i in range(n)]
    elif isinstance(names, str) or len(names) != n:
        raise ValueError(f"feature_names: expected {n} names (one per feature); got {names!r}")
    names = [str(s) for s in names]
    std = None
    trees = getattr(est, "estimators_", None)
    if isinstance(trees, list) and trees and all(hasattr(final_step(t), "feature_importances_")
                                                  for t in trees):
        per = np.array([final_step(t).feature_importances_ for t in trees], dtype=np.float64)
        if per.shape[1] == n:
            std = per.std(axis=0)
    if top is not None:
        if isinstance(top, bool) or not isinstance(top, (int, np.integer)) or top < 1:
            raise ValueError(f"top: expected None or an int >= 1; got {top!r}")
    order = np.argsort(-imp, kind="stable")[:top]
    return [names[i] for i in order], imp[order], None if std is None else std[order]


def importances(forest, feature_names=None, top: int | None = None, *, width: int = 700,
                height: int = 300):
    """Bars of a tree model's feature importances (mean decrease in impurity), largest first.

    Parameters
    ----------
    forest : fitted scikit-learn model with ``feature_importances_``
        A forest, extra-trees, gradient boosting or single tree (or a Pipeline
        ending in one).  For forests and bagging the error bars are the
        standard deviation of the importance over the trees.
    feature_names : sequence of str, optional
        Default: ``feature_names_in_``, else ``x0, x1, ...``.
    top : int, optional
        Only the ``top`` most important features.
    width, height : int
        Plot frame size.

    Returns
    -------
    holoviews.Bars or holoviews.Overlay
        :func:`dlviz_gpu.bars`, with ``hv.ErrorBars`` overlaid when the
        spread over trees is known.
    """
    from .distributions import HORIZONTAL_ABOVE, bars

    hv = style.ensure_bokeh()
    names, imp, std = importance_table(forest, feature_names, top)
    model = type(final_step(forest)).__name__
    el = bars(dict(zip(names, imp)), sort=False, width=width, height=height,
              label="importance")
    title = f"{model}: feature importances (mean decrease in impurity)"
    if std is not None:
        title += ", +/- std over trees"
    el = el.opts(backend="bokeh", title=title)
    if std is None:
        return el
    horizontal = len(names) > HORIZONTAL_ABOVE
    names = style.labels(names)      # the factors bars() shows for the same names
    if horizontal:
        err = hv.ErrorBars((names[::-1], imp[::-1], std[::-1]), kdims=["name"],
                           vdims=["importance", "std"]).opts(backend="bokeh", invert_axes=True)
    else:
        err = hv.ErrorBars((names, imp, std), kdims=["name"], vdims=["importance", "std"])
    err = err.opts(backend="bokeh", color="#303030", line_width=1.2)
    return (el * err).opts(backend="bokeh", title=title)


__all__ = ["tree", "TreeView", "importances", "importance_table", "class_colours", "tint",
           "LABEL_LIMIT"]
