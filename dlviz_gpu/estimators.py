"""Fitted classifiers and decision trees as arrays: checks, tree nodes, tree layout, grids.

The model views (:mod:`dlviz_gpu.views.trees`, :mod:`dlviz_gpu.views.surface`)
draw what this module computes; nothing here imports a plotting library, and
scikit-learn and torch are imported only when an estimator of theirs is given.

- **Checks** (:func:`require_sklearn`, :func:`check_fitted`,
  :func:`check_classifier`, :func:`check_X`, :func:`check_features`): each
  failure is a ``ValueError`` / ``TypeError`` that names the parameter
  (``estimator``, ``X``, ``features``), the expectation and what was received.
  scikit-learn missing is an ``ImportError`` that says
  ``pip install "dlviz_gpu[sklearn]"``.
- **Trees** (:func:`tree_nodes`): a scikit-learn ``tree_`` (of a decision
  tree, or of any single tree of a random forest, extra-trees, bagging or
  gradient-boosting ensemble chosen by ``tree_index``) as flat node arrays:
  children, split feature and threshold, samples, class distribution or value,
  impurity, depth, parent.
- **Tree layout** (:func:`tree_layout`, the algorithm
  :func:`dlviz_gpu.layouts.binary_tree_layout`): leaves one unit apart in
  depth-first order, every parent centred over its two children, one row per
  depth; folded at ``max_depth``.  Computed level by level with NumPy (a
  20,000-node tree takes milliseconds).
- **Grids** (:class:`Classifier`, :class:`Plane`, :func:`evaluate_grid`): a
  classifier (scikit-learn, pipelines included, or a torch module) evaluated
  on a W x H grid of cell centres over an x / y window of a 2-D plane of the
  feature space.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field

import numpy as np

from .layouts import TreeLayout, binary_tree_layout, depth_levels
from .optional import is_torch_module

#: How to install the optional dependency, quoted in every ImportError.
INSTALL_HINT = 'pip install "dlviz_gpu[sklearn]"'
#: Values of ``response``.
RESPONSES = ("auto", "predict_proba", "decision_function", "predict")
#: Values of ``plane``.
PLANES = ("median", "pca")
#: Rows per call when a scikit-learn model is evaluated on a grid.
BATCH = 1 << 16
#: Rows per forward pass of a torch module: small enough that a layer's
#: activations stay in the CPU caches (an 800 x 600 grid through a 64-wide MLP
#: ran about twice as fast in batches of 8192 or 16384 as in batches of 65536 on
#: the 2-core development VM), large enough to keep the per-call overhead low.
TORCH_BATCH = 1 << 14
#: ``decision_function`` confidences are margins relative to this percentile of
#: the margins of the samples (:meth:`Classifier.calibrate`): a cell as decided
#: as the median sample gets the full colour.
MARGIN_PERCENTILE = 50.0


# --------------------------------------------------------------------------
# scikit-learn and torch, only when needed
# --------------------------------------------------------------------------

def require_sklearn(what: str = "this view"):
    """Import scikit-learn, or raise an ImportError that says how to install it.

    Returns the ``sklearn`` module.
    """
    import importlib

    try:
        for mod in ("sklearn", "sklearn.base", "sklearn.utils.validation"):
            importlib.import_module(mod)
    except ImportError as err:
        raise ImportError(f"{what} needs scikit-learn, which is not installed: "
                          f"{INSTALL_HINT}") from err
    return sys.modules["sklearn"]


def _is_sklearn_estimator(obj) -> bool:
    # duck typing first, so a missing scikit-learn can still be reported for one
    return hasattr(obj, "fit") and hasattr(obj, "get_params")


def _name(obj) -> str:
    return type(obj).__name__


def final_step(estimator):
    """The last step of a Pipeline (recursively); the estimator itself otherwise."""
    steps = getattr(estimator, "steps", None)
    while isinstance(steps, list) and steps and hasattr(estimator, "named_steps"):
        estimator = steps[-1][1]
        steps = getattr(estimator, "steps", None)
    return estimator


# --------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------

def check_fitted(estimator, name: str = "estimator") -> None:
    """Raise ``NotFittedError`` (a ValueError) naming ``name`` when ``estimator`` is not fitted."""
    require_sklearn()
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    try:
        check_is_fitted(estimator)
    except NotFittedError:
        raise NotFittedError(f"{name}: expected a fitted estimator; got an unfitted "
                             f"{_name(estimator)} (call .fit(X, y) first)") from None


def check_classifier(estimator, name: str = "estimator", torch_ok: bool = True):
    """Check that ``estimator`` is a fitted scikit-learn classifier (or a torch module).

    Returns ``"torch"`` or ``"sklearn"``.

    Raises
    ------
    TypeError
        Not an estimator, or a regressor / clusterer / transformer.
    ValueError
        Not fitted (scikit-learn's ``NotFittedError``, a ValueError).
    ImportError
        scikit-learn is not installed.
    """
    if torch_ok and is_torch_module(estimator):
        return "torch"
    if not _is_sklearn_estimator(estimator):
        extra = " or a torch.nn.Module" if torch_ok else ""
        raise TypeError(f"{name}: expected a fitted scikit-learn classifier{extra}; got "
                        f"{type(estimator).__module__}.{type(estimator).__qualname__}")
    require_sklearn()
    from sklearn.base import is_classifier, is_regressor

    if not is_classifier(estimator):
        kind = "a regressor" if is_regressor(estimator) else "an estimator that is no classifier"
        raise TypeError(f"{name}: expected a classifier (this view colours classes); got {kind} "
                        f"({_name(estimator)})")
    check_fitted(estimator, name)
    if not hasattr(estimator, "classes_"):
        raise TypeError(f"{name}: expected a classifier with classes_; {_name(estimator)} has "
                        "none")
    return "sklearn"


def n_features_in(estimator) -> int | None:
    """The number of features the estimator was fitted on, if it says."""
    n = getattr(estimator, "n_features_in_", None)
    if n is None:
        first = getattr(estimator, "steps", None)
        if isinstance(first, list) and first:
            n = getattr(first[0][1], "n_features_in_", None)
    return None if n is None else int(n)


def check_X(X, estimator=None, name: str = "X") -> np.ndarray:
    """``X`` as a float64 (N, D) array with N >= 1, finite, as wide as the estimator's input.

    Parameters
    ----------
    X : (N, D) array_like
        numpy array, pandas DataFrame, torch CPU tensor, nested lists.
    estimator : fitted estimator, optional
        When it has ``n_features_in_``, ``D`` must equal it.
    """
    if X is None:
        raise TypeError(f"{name}: expected an (N, D) array of samples; got None")
    if hasattr(X, "detach") and hasattr(X, "cpu"):
        X = X.detach().cpu().numpy()
    try:
        arr = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name}: expected an (N, D) array of numbers; got "
                        f"{type(X).__name__} ({err})") from None
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D (samples, features) array; got shape "
                         f"{arr.shape}")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"{name}: expected at least one sample and one feature; got shape "
                         f"{arr.shape}")
    bad = ~np.isfinite(arr)
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=1))
        raise ValueError(f"{name}: expected finite values; got {int(bad.sum())} NaN/inf in "
                         f"{rows.size} row(s) (first: row {int(rows[0])})")
    if estimator is not None:
        n = n_features_in(estimator)
        if n is not None and arr.shape[1] != n:
            raise ValueError(f"{name}: expected {n} columns (the estimator "
                             f"{_name(estimator)} was fitted on {n} features, n_features_in_); "
                             f"got {arr.shape[1]}")
    return arr


def feature_names_of(X, estimator=None, feature_names=None, n: int | None = None) -> list[str]:
    """Names of the D features: given, a DataFrame's columns, ``feature_names_in_``, or x0..."""
    if n is None:
        n = int(np.shape(X)[1])
    if feature_names is not None:
        if isinstance(feature_names, str) or len(feature_names) != n:
            raise ValueError(f"feature_names: expected {n} names (one per feature); got "
                             f"{feature_names!r}")
        return [str(f) for f in feature_names]
    cols = getattr(X, "columns", None)
    if cols is not None and len(cols) == n:
        return [str(c) for c in cols]
    names = getattr(estimator, "feature_names_in_", None) if estimator is not None else None
    if names is not None and len(names) == n:
        return [str(c) for c in names]
    return [f"x{i}" for i in range(n)]


def check_features(features, n_features: int, names=None) -> tuple[int, int]:
    """Two different column indices in ``0..n_features-1`` (or feature names) -> (i, j)."""
    err = (f"features: expected two different column indices in 0..{n_features - 1}"
           f"{' or feature names' if names else ''}; got {features!r}")
    if isinstance(features, str) or not hasattr(features, "__len__") or len(features) != 2:
        raise ValueError(err)
    out = []
    for f in features:
        if isinstance(f, str):
            if not names or f not in names:
                raise ValueError(f"{err} ({f!r} is not a feature name"
                                 + (f"; names: {', '.join(names[:12])}" if names else "") + ")")
            out.append(list(names).index(f))
        elif isinstance(f, (int, np.integer)) and not isinstance(f, (bool, np.bool_)):
            k = int(f)
            if not 0 <= k < n_features:
                raise ValueError(f"{err} ({k} is out of range for {n_features} features)")
            out.append(k)
        else:
            raise ValueError(err)
    if out[0] == out[1]:
        raise ValueError(f"{err} (the same feature twice)")
    return out[0], out[1]


# --------------------------------------------------------------------------
# Trees
# --------------------------------------------------------------------------

@dataclass
class TreeNodes:
    """One decision tree as flat node arrays (node 0 is the root).

    Attributes
    ----------
    left, right : (n,) int64
        Children (-1 for leaves).  A sample goes left when
        ``x[feature] <= threshold``.
    parent : (n,) int64
        The parent (-1 for the root).
    feature : (n,) int64
        Split feature (-2 for leaves, scikit-learn's ``TREE_UNDEFINED``).
    threshold : (n,) float64
        Split threshold (-2 for leaves).
    samples : (n,) int64
        Training samples reaching the node (``n_node_samples``).
    weighted_samples : (n,) float64
        Their total weight (``weighted_n_node_samples``; bootstrap counts in a forest).
    impurity : (n,) float64
        The criterion's impurity at the node.
    value : (n, K) float64
        Classifiers: the class distribution as fractions (rows sum to 1);
        regressors (and gradient-boosting trees): the node's value, K = 1.
    depth : (n,) int64
        Root = 0.
    classes : (K,) array or None
        Class labels of a classifier tree.
    feature_names : list of str
    criterion : str
    source : str
        Which tree this is, e.g. ``"RandomForestClassifier.estimators_[3]"``.
    """

    left: np.ndarray
    right: np.ndarray
    parent: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    samples: np.ndarray
    weighted_samples: np.ndarray
    impurity: np.ndarray
    value: np.ndarray
    depth: np.ndarray
    classes: np.ndarray | None
    feature_names: list
    criterion: str = ""
    source: str = ""
    class_names: list = field(default_factory=list)

    @property
    def n_nodes(self) -> int:
        return int(self.left.size)

    @property
    def is_leaf(self) -> np.ndarray:
        return self.left < 0

    @property
    def n_leaves(self) -> int:
        return int(self.is_leaf.sum())

    @property
    def max_depth(self) -> int:
        return int(self.depth.max()) if self.depth.size else 0

    @property
    def is_classifier(self) -> bool:
        return self.classes is not None

    def counts(self) -> np.ndarray:
        """(n, K) weighted class counts of a classifier tree (fractions x weighted samples)."""
        if not self.is_classifier:
            raise ValueError("counts: a regression tree has values, not class counts")
        return self.value * self.weighted_samples[:, None]

    def majority(self) -> np.ndarray:
        """(n,) index of each node's most frequent class (classifier trees)."""
        return np.argmax(self.value, axis=1)

    def purity(self) -> np.ndarray:
        """(n,) fraction of the majority class (classifier trees)."""
        return np.max(self.value, axis=1)

    def split_text(self) -> np.ndarray:
        """(n,) object array: ``"name <= 2.45"`` for splits, ``""`` for leaves."""
        names = np.array(list(self.feature_names) + ["?"], dtype=object)
        out = np.full(self.n_nodes, "", dtype=object)
        inner = np.flatnonzero(~self.is_leaf)
        f = self.feature[inner]
        f = np.where((f >= 0) & (f < len(self.feature_names)), f, len(self.feature_names))
        for k, i in enumerate(inner):
            out[i] = f"{names[f[k]]} <= {self.threshold[i]:.6g}"
        return out


def _pick_tree(estimator, tree_index):
    """(the fitted single tree, its description, the ensemble or None)."""
    est = final_step(estimator)
    if hasattr(est, "tree_"):
        if tree_index not in (0, None):
            raise ValueError(f"tree_index: {_name(est)} is a single tree (tree_index 0); got "
                             f"{tree_index!r}")
        return est, _name(est), None
    trees = getattr(est, "estimators_", None)
    if trees is None:
        if hasattr(est, "_predictors"):
            raise TypeError(f"estimator: {_name(est)} stores its trees in its own format; "
                            "dv.tree draws scikit-learn decision trees and forests, extra-trees, "
                            "bagging and GradientBoosting ensembles")
        raise TypeError(f"estimator: expected a fitted decision tree or tree ensemble (random "
                        f"forest, extra-trees, bagging of trees, gradient boosting); got "
                        f"{_name(est)}")
    arr = np.asarray(trees, dtype=object) if isinstance(trees, np.ndarray) else None
    if arr is not None and arr.ndim == 2:
        stages, per = arr.shape
        if isinstance(tree_index, tuple):
            ok = (len(tree_index) == 2 and all(isinstance(t, (int, np.integer)) and
                                                not isinstance(t, bool) for t in tree_index)
                  and 0 <= tree_index[0] < stages and 0 <= tree_index[1] < per)
            if not ok:
                raise ValueError(f"tree_index: expected (stage, class) with stage in "
                                 f"0..{stages - 1} and class in 0..{per - 1}; got {tree_index!r}")
            s, k = int(tree_index[0]), int(tree_index[1])
        else:
            if not isinstance(tree_index, (int, np.integer)) or isinstance(tree_index, bool):
                raise ValueError(f"tree_index: expected an int in 0..{stages - 1}; got "
                                 f"{tree_index!r}")
            if per > 1:
                raise ValueError(f"tree_index: {_name(est)} has {per} trees per stage (one per "
                                 f"class); pass (stage, class), stage in 0..{stages - 1}, class "
                                 f"in 0..{per - 1}; got {tree_index!r}")
            if not 0 <= int(tree_index) < stages:
                raise ValueError(f"tree_index: expected an int in 0..{stages - 1} ({stages} "
                                 f"stages); got {tree_index}")
            s, k = int(tree_index), 0
        return arr[s, k], f"{_name(est)}.estimators_[{s}, {k}]", est
    n = len(trees)
    if not isinstance(tree_index, (int, np.integer)) or isinstance(tree_index, bool) or \
            not -n <= int(tree_index) < n:
        raise ValueError(f"tree_index: expected an int in 0..{n - 1} ({n} trees); got "
                         f"{tree_index!r}")
    t = trees[int(tree_index)]
    t = final_step(t)
    if not hasattr(t, "tree_"):
        raise TypeError(f"estimator: the trees of {_name(est)} are {_name(t)}, not decision "
                        "trees")
    return t, f"{_name(est)}.estimators_[{int(tree_index) % n}]", est


def tree_nodes(estimator, tree_index=0, feature_names=None, class_names=None) -> TreeNodes:
    """The nodes of a fitted scikit-learn decision tree, or of one tree of an ensemble.

    Parameters
    ----------
    estimator : fitted DecisionTree*, ExtraTree*, RandomForest*, ExtraTrees*, Bagging* of
        trees, GradientBoosting*, or a Pipeline ending in one
    tree_index : int or (int, int)
        Which tree of an ensemble (``estimators_[tree_index]``).  Gradient
        boosting: the stage, or ``(stage, class)`` for multi-class models
        (one tree per class and stage).
    feature_names : sequence of str, optional
        Default: the estimator's ``feature_names_in_``, else ``x0, x1, ...``.
    class_names : sequence of str, optional
        Default: the ensemble's / tree's ``classes_``.

    Returns
    -------
    TreeNodes
    """
    if not _is_sklearn_estimator(estimator):
        raise TypeError(f"estimator: expected a fitted scikit-learn decision tree or tree "
                        f"ensemble; got {type(estimator).__module__}."
                        f"{type(estimator).__qualname__}")
    require_sklearn("dv.tree")
    check_fitted(estimator)
    tree, source, ensemble = _pick_tree(estimator, tree_index)
    t = tree.tree_
    if int(t.n_outputs) != 1:
        raise ValueError(f"estimator: expected a single-output tree; {source} has "
                         f"{int(t.n_outputs)} outputs")
    left = np.asarray(t.children_left, dtype=np.int64).copy()
    right = np.asarray(t.children_right, dtype=np.int64).copy()
    depth, parent, _ = depth_levels(left, right)
    value = np.asarray(t.value, dtype=np.float64)[:, 0, :].copy()
    from sklearn.base import is_classifier

    classes = None
    if is_classifier(tree) and hasattr(tree, "classes_"):
        owner = ensemble if ensemble is not None and hasattr(ensemble, "classes_") else tree
        classes = np.asarray(owner.classes_)
        if value.shape[1] != classes.size:
            classes = np.asarray(tree.classes_)
        # scikit-learn >= 1.4 stores fractions; older versions weighted counts
        tot = value.sum(axis=1, keepdims=True)
        value = np.divide(value, tot, out=np.zeros_like(value), where=tot > 0)
    n_feat = int(getattr(tree, "n_features_in_", t.n_features))
    names = feature_names
    if names is None:
        for owner in (estimator, ensemble, tree):
            fn = getattr(owner, "feature_names_in_", None)
            if fn is not None and len(fn) == n_feat:
                names = [str(s) for s in fn]
                break
    if names is None:
        names = [f"x{i}" for i in range(n_feat)]
    elif isinstance(names, str) or len(names) != n_feat:
        raise ValueError(f"feature_names: expected {n_feat} names (one per feature); got "
                         f"{names!r}")
    cnames = []
    if classes is not None:
        if class_names is None:
            cnames = [str(c) for c in classes]
        elif isinstance(class_names, str) or len(class_names) != classes.size:
            raise ValueError(f"class_names: expected {classes.size} names (one per class); got "
                             f"{class_names!r}")
        else:
            cnames = [str(c) for c in class_names]
    elif class_names is not None:
        raise ValueError(f"class_names: {source} is a regression tree (node values, no "
                         f"classes); got {class_names!r}")
    return TreeNodes(left=left, right=right, parent=parent,
                     feature=np.asarray(t.feature, dtype=np.int64).copy(),
                     threshold=np.asarray(t.threshold, dtype=np.float64).copy(),
                     samples=np.asarray(t.n_node_samples, dtype=np.int64).copy(),
                     weighted_samples=np.asarray(t.weighted_n_node_samples,
                                                 dtype=np.float64).copy(),
                     impurity=np.asarray(t.impurity, dtype=np.float64).copy(),
                     value=value, depth=depth, classes=classes,
                     feature_names=[str(s) for s in names],
                     criterion=str(getattr(tree, "criterion", "")), source=source,
                     class_names=cnames)


def tree_layout(nodes: TreeNodes, max_depth: int | None = None) -> TreeLayout:
    """The tidy layout of a fitted tree's nodes (:func:`dlviz_gpu.layouts.binary_tree_layout`)."""
    return binary_tree_layout(nodes.left, nodes.right, max_depth)


# --------------------------------------------------------------------------
# Classifiers on a grid
# --------------------------------------------------------------------------

def _argmax_is_predict(est) -> bool:
    """Whether ``est.predict`` is, in scikit-learn's source, ``classes_[argmax(predict_proba)]``.

    Then one ``predict_proba`` call gives both the class and the confidence;
    every other estimator is asked for ``predict`` too, so the class drawn is
    always exactly what the estimator predicts.
    """
    try:
        from sklearn.ensemble import BaggingClassifier
        from sklearn.ensemble._forest import ForestClassifier
    except ImportError:  # pragma: no cover - private module moved
        return False
    predict = getattr(type(est), "predict", None)
    return predict is not None and predict in (ForestClassifier.predict,
                                               BaggingClassifier.predict)


class Classifier:
    """A fitted classifier behind one interface: classes, width, grid evaluation.

    Parameters
    ----------
    estimator : fitted scikit-learn classifier (Pipeline included) or torch.nn.Module
        A torch module maps a float batch (B, D) to logits (B, K) (softmax
        gives the probabilities) or (B,) / (B, 1) (one logit: sigmoid).  It is
        evaluated in batches on the device and in the dtype of its
        parameters, under ``torch.inference_mode`` and in eval mode (its
        training flags are restored afterwards).
    response : {"auto", "predict_proba", "decision_function", "predict"}
        What gives the confidence.  ``"auto"``: ``predict_proba`` if the
        estimator has it, else ``decision_function``, else ``predict`` only.
        The class is always the estimator's own prediction (``predict``; one
        ``predict_proba`` call where ``predict`` is defined as its argmax:
        forests and bagging).
    class_names : sequence of str, optional
        Torch modules: names of the K outputs (default ``0 .. K-1``).
    batch : int, optional
        Rows per model call (default :data:`BATCH` for scikit-learn,
        :data:`TORCH_BATCH` for torch).

    Attributes
    ----------
    kind : {"sklearn", "torch"}
    method : str
        The response used: ``predict_proba``, ``decision_function``,
        ``predict`` or, for torch, ``softmax`` / ``sigmoid``.
    labels : list of str
        Class names (None for a torch module until its first evaluation).
    margin_scale : float or None
        ``decision_function`` only: the margin that counts as full confidence.
    """

    def __init__(self, estimator, response: str = "auto", class_names=None,
                 batch: int | None = None):
        if not isinstance(response, str) or response not in RESPONSES:
            raise ValueError(f"response: expected one of {', '.join(RESPONSES)}; got "
                             f"{response!r}")
        self.kind = check_classifier(estimator)
        self.estimator = estimator
        if batch is None:
            batch = TORCH_BATCH if self.kind == "torch" else BATCH
        if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 1:
            raise ValueError(f"batch: expected a positive number of rows; got {batch!r}")
        self.batch = int(batch)
        self.margin_scale: float | None = None
        self.n_features = n_features_in(estimator) if self.kind == "sklearn" else None
        if self.kind == "torch":
            if response not in ("auto", "predict_proba"):
                raise ValueError(f"response: a torch module gives logits (softmax "
                                 f"probabilities); expected 'auto' or 'predict_proba'; got "
                                 f"{response!r}")
            self.method = "softmax"
            self.classes = None
            self.labels = None if class_names is None else [str(c) for c in class_names]
            return
        self.classes = np.asarray(estimator.classes_)
        if class_names is not None:
            if isinstance(class_names, str) or len(class_names) != self.classes.size:
                raise ValueError(f"class_names: expected {self.classes.size} names (one per "
                                 f"class); got {class_names!r}")
            self.labels = [str(c) for c in class_names]
        else:
            self.labels = [str(c) for c in self.classes]
        has = {m: hasattr(estimator, m) for m in RESPONSES[1:]}
        if response == "auto":
            response = next(m for m in RESPONSES[1:] if has[m])
        elif not has[response]:
            avail = [m for m in RESPONSES[1:] if has[m]]
            raise ValueError(f"response: {_name(estimator)} has no {response} (it has "
                             f"{', '.join(avail)}); use one of those or 'auto'")
        self.method = response
        self._one_call = response == "predict_proba" and _argmax_is_predict(
            final_step(estimator))
        # classes_ of scikit-learn classifiers are sorted (np.unique); keep a lookup either way
        self._sorted = bool(np.all(self.classes[:-1] < self.classes[1:])) \
            if self.classes.size > 1 and self.classes.dtype.kind in "biufUS" else None

    @property
    def n_classes(self) -> int | None:
        return None if self.labels is None else len(self.labels)

    def describe(self) -> str:
        est = final_step(self.estimator) if self.kind == "sklearn" else self.estimator
        return _name(est)

    # -- evaluation -------------------------------------------------------------------
    def _codes(self, pred: np.ndarray) -> np.ndarray:
        """Class labels -> indices into ``classes``."""
        if self._sorted:
            return np.searchsorted(self.classes, pred).astype(np.int64)
        lookup = {c: i for i, c in enumerate(self.classes.tolist())}
        return np.fromiter((lookup[c] for c in pred.tolist()), dtype=np.int64, count=pred.size)

    def _frame(self, points: np.ndarray):
        """What the estimator is called with: a DataFrame when it was fitted on one."""
        names = getattr(self.estimator, "feature_names_in_", None)
        if names is None:
            return points
        import pandas as pd

        return pd.DataFrame(points, columns=list(names))

    def evaluate(self, points: np.ndarray) -> dict:
        """Evaluate (N, D) points.

        Returns a dict: ``codes`` (N,) int64 indices into :attr:`labels`;
        ``confidence`` (N,) float64: the probability of the predicted class
        (``predict_proba``, softmax, sigmoid), the margin (``decision_function``:
        \\|score\\| for two classes, the top score minus the runner-up
        otherwise), 1.0 for ``predict``; ``scores`` (N, K) probabilities or
        decision values, or None.
        """
        points = np.ascontiguousarray(points, dtype=np.float64)
        if self.kind == "torch":
            return self._evaluate_torch(points)
        codes = np.empty(points.shape[0], dtype=np.int64)
        conf = np.ones(points.shape[0], dtype=np.float64)
        scores = None
        est = self.estimator
        for s in range(0, points.shape[0], self.batch):
            chunk = self._frame(points[s:s + self.batch])
            e = s + (chunk.shape[0])
            if self.method == "predict_proba":
                p = np.asarray(est.predict_proba(chunk), dtype=np.float64)
                if scores is None:
                    scores = np.empty((points.shape[0], p.shape[1]), dtype=np.float64)
                scores[s:e] = p
                c = np.argmax(p, axis=1) if self._one_call else \
                    self._codes(np.asarray(est.predict(chunk)))
                codes[s:e] = c
                conf[s:e] = p[np.arange(c.size), c]
            elif self.method == "decision_function":
                d = np.asarray(est.decision_function(chunk), dtype=np.float64)
                codes[s:e] = self._codes(np.asarray(est.predict(chunk)))
                if d.ndim == 1:
                    conf[s:e] = np.abs(d)
                    d = d[:, None]
                else:
                    part = np.partition(d, d.shape[1] - 2, axis=1)
                    conf[s:e] = part[:, -1] - part[:, -2]
                if scores is None:
                    scores = np.empty((points.shape[0], d.shape[1]), dtype=np.float64)
                scores[s:e] = d
            else:
                codes[s:e] = self._codes(np.asarray(est.predict(chunk)))
        return {"codes": codes, "confidence": conf, "scores": scores}

    def _evaluate_torch(self, points: np.ndarray) -> dict:
        import torch

        module = self.estimator
        param = next(iter(module.parameters()), None)
        if param is None:
            param = next(iter(module.buffers()), None)
        device = param.device if param is not None else torch.device("cpu")
        dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
        flags = [(m, m.training) for m in module.modules()]
        n = points.shape[0]
        codes = np.empty(n, dtype=np.int64)
        scores = None
        try:
            module.eval()
            with torch.inference_mode():
                xs = torch.from_numpy(points).to(dtype=dtype)
                for s in range(0, n, self.batch):
                    xb = xs[s:s + self.batch].to(device)
                    out = module(xb)
                    if not isinstance(out, torch.Tensor):
                        raise TypeError(f"estimator: expected the module to return a tensor of "
                                        f"logits; got {type(out).__name__}")
                    if out.ndim == 2 and out.shape[1] == 1:
                        out = out[:, 0]
                    if out.ndim == 1:
                        p1 = torch.sigmoid(out.float())
                        p = torch.stack([1 - p1, p1], dim=1)
                        c = (out > 0).to(torch.int64)
                        self.method = "sigmoid"
                    elif out.ndim == 2:
                        p = torch.softmax(out.float(), dim=1)
                        c = torch.argmax(out, dim=1)
                    else:
                        raise ValueError(f"estimator: expected logits of shape (B, K) or (B,); "
                                         f"got {tuple(out.shape)}")
                    if scores is None:
                        scores = np.empty((n, p.shape[1]), dtype=np.float32)
                    e = s + c.numel()
                    scores[s:e] = p.cpu().numpy()
                    codes[s:e] = c.cpu().numpy()
        finally:
            for m, flag in flags:
                m.training = flag
        k = 0 if scores is None else int(scores.shape[1])
        if self.labels is None:
            self.labels = [str(i) for i in range(k)]
        elif k and len(self.labels) != k:
            raise ValueError(f"class_names: expected {k} names (the module has {k} outputs); "
                             f"got {len(self.labels)}")
        if scores is None:
            return {"codes": codes, "confidence": np.ones(n), "scores": None}
        conf = np.take_along_axis(scores, codes[:, None], axis=1)[:, 0].astype(np.float64)
        return {"codes": codes, "confidence": conf, "scores": scores}

    def check_width(self, X: np.ndarray, name: str = "X") -> None:
        """Evaluate the first row of ``X`` once, turning a failure into an error naming ``X``."""
        if self.kind != "torch":
            return
        try:
            self.evaluate(X[:1])
        except Exception as err:
            raise ValueError(f"{name}: the module could not evaluate rows of {X.shape[1]} "
                             f"features ({type(err).__name__}: {err})") from None

    def calibrate(self, X: np.ndarray) -> None:
        """Set :attr:`margin_scale` from the samples ``X`` (``decision_function`` only):
        the :data:`MARGIN_PERCENTILE` percentile of their margins, fixed across zooms."""
        if self.method != "decision_function" or X.shape[0] == 0:
            return
        m = self.evaluate(X)["confidence"]
        s = float(np.percentile(m, MARGIN_PERCENTILE))
        self.margin_scale = s if s > 0 and math.isfinite(s) else 1.0

    def strength(self, confidence: np.ndarray) -> np.ndarray:
        """Confidence mapped to [0, 1] (0 = undecided, 1 = certain), the colour's saturation.

        Probabilities: ``(p - 1/K) / (1 - 1/K)``; margins: the margin over
        :attr:`margin_scale` (:meth:`calibrate`, else the median margin of the
        first call), clipped; ``predict``: 1.
        """
        if self.method in ("predict_proba", "softmax", "sigmoid"):
            k = max(self.n_classes or 2, 2)
            return np.clip((confidence - 1.0 / k) / (1.0 - 1.0 / k), 0.0, 1.0)
        if self.method == "decision_function":
            if self.margin_scale is None:
                s = float(np.percentile(confidence, MARGIN_PERCENTILE)) if confidence.size else 1.0
                self.margin_scale = s if s > 0 and math.isfinite(s) else 1.0
            return np.clip(confidence / self.margin_scale, 0.0, 1.0)
        return np.ones_like(confidence)


# --------------------------------------------------------------------------
# The plane of the feature space a 2-D picture shows
# --------------------------------------------------------------------------

class Plane:
    """A 2-D plane of the D-dimensional feature space: ``origin + a * u + b * v``.

    Parameters
    ----------
    X : (N, D) float64
        The samples (medians, principal components and the points' positions
        come from them).
    features : (int, int)
        ``plane="median"``: the two features on the axes; the others are fixed
        at their medians over ``X``.
    plane : {"median", "pca"}
        ``"pca"``: the plane through the mean spanned by the first two
        principal components of the standardised features (z-scores); the
        axes are the component scores, and grid points are mapped back to
        feature space (``mean + std * (a * pc1 + b * pc2)``).  With D = 2
        features the plane is the feature space itself (``plane`` is ignored).
    feature_names : list of str

    Attributes
    ----------
    kind : {"features", "median", "pca"}
    xlabel, ylabel : str
    description : str
        One line for the plot: which plane is shown.
    fixed : dict
        ``"median"``: feature name -> the median it is fixed at.
    explained : (float, float)
        ``"pca"``: fraction of the (standardised) variance of each component.
    """

    def __init__(self, X: np.ndarray, features=(0, 1), plane: str = "median",
                 feature_names=None):
        if not isinstance(plane, str) or plane not in PLANES:
            raise ValueError(f"plane: expected one of {', '.join(PLANES)}; got {plane!r}")
        n, d = X.shape
        names = list(feature_names) if feature_names is not None else [f"x{i}" for i in range(d)]
        if d < 2:
            raise ValueError(f"X: expected at least 2 features for a 2-D decision surface; got "
                             f"{d}")
        i, j = check_features(features, d, names)
        self.d = d
        self.features = (i, j)
        self.fixed: dict = {}
        self.explained = None
        if plane == "pca" and d > 2:
            self.kind = "pca"
            mean = X.mean(axis=0)
            std = X.std(axis=0)
            std = np.where(std > 0, std, 1.0)
            z = (X - mean) / std
            _, s, vt = np.linalg.svd(z, full_matrices=False)
            comps = vt[:2].copy()
            # deterministic signs: the largest |loading| of each component positive
            for k in range(2):
                if comps[k, np.argmax(np.abs(comps[k]))] < 0:
                    comps[k] = -comps[k]
            var = s ** 2
            self.explained = tuple(float(v) for v in var[:2] / var.sum()) if var.sum() > 0 \
                else (0.0, 0.0)
            self.mean, self.std, self.components = mean, std, comps
            self.origin = mean.copy()
            self.u = std * comps[0]
            self.v = std * comps[1]
            self.xlabel = f"PC1 ({100 * self.explained[0]:.1f} % of variance)"
            self.ylabel = f"PC2 ({100 * self.explained[1]:.1f} % of variance)"
            self.description = (f"plane of the first two principal components of the "
                                f"{d} standardised features; points projected onto it")
            return
        self.kind = "features" if d == 2 else "median"
        med = np.median(X, axis=0)
        self.origin = med.copy()
        self.origin[[i, j]] = 0.0
        self.u = np.zeros(d)
        self.u[i] = 1.0
        self.v = np.zeros(d)
        self.v[j] = 1.0
        self.xlabel, self.ylabel = names[i], names[j]
        others = [k for k in range(d) if k not in (i, j)]
        self.fixed = {names[k]: float(med[k]) for k in others}
        if others:
            shown = ", ".join(f"{names[k]} = {med[k]:.4g}" for k in others[:4])
            more = f", ... ({len(others)} features)" if len(others) > 4 else ""
            self.description = f"other features at their medians: {shown}{more}"
        else:
            self.description = ""

    def project(self, X: np.ndarray) -> np.ndarray:
        """(N, D) samples -> (N, 2) plane coordinates (the points' positions in the plot)."""
        if self.kind == "pca":
            return ((X - self.mean) / self.std) @ self.components.T
        return X[:, list(self.features)].astype(np.float64, copy=True)

    def lift(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Plane coordinates (broadcast 1-D arrays) -> (N, D) feature-space points."""
        a = np.asarray(a, dtype=np.float64).ravel()
        b = np.asarray(b, dtype=np.float64).ravel()
        if self.kind == "pca":
            return self.origin + a[:, None] * self.u + b[:, None] * self.v
        out = np.empty((a.size, self.d), dtype=np.float64)
        out[:] = self.origin
        out[:, self.features[0]] = a
        out[:, self.features[1]] = b
        return out


def cell_centres(lo: float, hi: float, n: int) -> np.ndarray:
    """Centres of ``n`` equal cells over [lo, hi]: ``lo + (k + 0.5) * (hi - lo) / n``."""
    return lo + (np.arange(n, dtype=np.float64) + 0.5) * ((hi - lo) / n)


@dataclass
class SurfaceGrid:
    """A classifier evaluated on a grid of a plane.

    Attributes
    ----------
    x : (W,) float64
        Cell-centre x coordinates (plane units); ``y`` : (H,) likewise; row 0
        of every plane is the ``y[0]`` (smallest y) side.
    classes : (H, W) int64
        Index into ``labels`` of the predicted class of each cell.
    confidence : (H, W) float64
        Probability of the predicted class, or the decision margin, or 1.0
        (see :meth:`Classifier.evaluate`).
    strength : (H, W) float64
        ``confidence`` mapped to [0, 1] (the colour's saturation).
    scores : (H, W, K) float64 (float32 for torch modules) or None
        Per-class probabilities or decision values.
    labels : list of str
    method : str
    x_range, y_range : (float, float)
    seconds : float
        Wall time of the model evaluation.
    """

    x: np.ndarray
    y: np.ndarray
    classes: np.ndarray
    confidence: np.ndarray
    strength: np.ndarray
    scores: np.ndarray | None
    labels: list
    method: str
    x_range: tuple
    y_range: tuple
    seconds: float = 0.0

    @property
    def shape(self) -> tuple[int, int]:
        return self.classes.shape


def evaluate_points(model: Classifier, plane: Plane, xs: np.ndarray, ys: np.ndarray) -> dict:
    """``model`` on the meshgrid of plane coordinates ``xs`` (W,) x ``ys`` (H,), row-major (H, W)."""
    xs = np.asarray(xs, dtype=np.float64).ravel()
    ys = np.asarray(ys, dtype=np.float64).ravel()
    a = np.broadcast_to(xs[None, :], (ys.size, xs.size))
    b = np.broadcast_to(ys[:, None], (ys.size, xs.size))
    res = model.evaluate(plane.lift(a, b))
    h, w = ys.size, xs.size
    out = {"classes": res["codes"].reshape(h, w), "confidence": res["confidence"].reshape(h, w)}
    out["scores"] = None if res["scores"] is None else res["scores"].reshape(h, w, -1)
    return out


def evaluate_grid(model: Classifier, plane: Plane, x_range, y_range, width: int,
                  height: int) -> SurfaceGrid:
    """``model`` on a ``width`` x ``height`` grid of cell centres over the window."""
    import time

    x0, x1 = (float(v) for v in x_range)
    y0, y1 = (float(v) for v in y_range)
    xs = cell_centres(x0, x1, int(width))
    ys = cell_centres(y0, y1, int(height))
    t0 = time.perf_counter()
    res = evaluate_points(model, plane, xs, ys)
    seconds = time.perf_counter() - t0
    return SurfaceGrid(x=xs, y=ys, classes=res["classes"], confidence=res["confidence"],
                       strength=model.strength(res["confidence"]), scores=res["scores"],
                       labels=list(model.labels), method=model.method, x_range=(x0, x1),
                       y_range=(y0, y1), seconds=seconds)


__all__ = ["require_sklearn", "final_step", "check_fitted",
           "check_classifier", "check_X", "check_features", "feature_names_of", "n_features_in",
           "TreeNodes", "tree_nodes", "tree_layout", "Classifier", "Plane",
           "SurfaceGrid", "evaluate_grid", "evaluate_points", "cell_centres", "INSTALL_HINT",
           "BATCH", "TORCH_BATCH", "RESPONSES", "PLANES"]
