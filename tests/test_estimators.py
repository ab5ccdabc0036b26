"""dlviz_gpu.estimators: checks, tree nodes and layout, classifiers on grids.

Everything is checked against scikit-learn's own arrays and predictions, or
against small independent computations (recursion over the tree, decision
paths, NumPy PCA), on the datasets scikit-learn ships.
"""

import sys
import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")
from sklearn.datasets import load_breast_cancer, load_digits, load_iris, load_wine  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402
from sklearn.ensemble import (ExtraTreesClassifier, GradientBoostingClassifier,  # noqa: E402
                              GradientBoostingRegressor, HistGradientBoostingClassifier,
                              RandomForestClassifier)
from sklearn.linear_model import LinearRegression, LogisticRegression  # noqa: E402
from sklearn.naive_bayes import GaussianNB  # noqa: E402
from sklearn.neighbors import KNeighborsClassifier  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.svm import SVC  # noqa: E402
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor  # noqa: E402

from dlviz_gpu import estimators as E  # noqa: E402


@pytest.fixture(scope="module")
def iris():
    return load_iris()


@pytest.fixture(scope="module")
def wine():
    return load_wine()


# --------------------------------------------------------------------------
# checks
# --------------------------------------------------------------------------

def test_missing_sklearn_says_how_to_install(monkeypatch, iris):
    tree = DecisionTreeClassifier(random_state=0).fit(iris.data, iris.target)
    monkeypatch.setitem(sys.modules, "sklearn", None)
    with pytest.raises(ImportError, match=r'needs scikit-learn.*pip install "dlviz_gpu\[sklearn\]"'):
        E.require_sklearn()
    with pytest.raises(ImportError, match=r'dv.tree needs scikit-learn.*dlviz_gpu\[sklearn\]'):
        E.tree_nodes(tree)


def test_unfitted_regressor_and_non_estimators_are_refused(iris):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError, match=r"estimator: expected a fitted estimator; got an "
                                             r"unfitted SVC \(call \.fit\(X, y\) first\)"):
        E.check_classifier(SVC())
    with pytest.raises(ValueError, match="estimator: expected a fitted estimator; got an "
                                         "unfitted Pipeline"):
        E.check_classifier(make_pipeline(StandardScaler(), SVC()))
    reg = LinearRegression().fit(iris.data, iris.target)
    with pytest.raises(TypeError, match=r"estimator: expected a classifier .*got a regressor "
                                        r"\(LinearRegression\)"):
        E.check_classifier(reg)
    with pytest.raises(TypeError, match=r"estimator: expected a classifier .*no classifier "
                                        r"\(StandardScaler\)"):
        E.check_classifier(StandardScaler().fit(iris.data))
    with pytest.raises(TypeError, match=r"estimator: expected a fitted scikit-learn classifier "
                                        r"or a torch.nn.Module; got builtins.str"):
        E.check_classifier("svm")
    assert E.check_classifier(SVC().fit(iris.data, iris.target)) == "sklearn"


def test_check_X(iris):
    svc = SVC().fit(iris.data, iris.target)
    out = E.check_X(iris.data.astype(np.float32).tolist(), svc)
    assert out.dtype == np.float64 and out.shape == (150, 4)
    with pytest.raises(ValueError, match=r"X: expected 4 columns \(the estimator SVC was fitted "
                                         r"on 4 features, n_features_in_\); got 3"):
        E.check_X(iris.data[:, :3], svc)
    bad = iris.data.copy()
    bad[7, 2] = np.nan
    with pytest.raises(ValueError, match=r"X: expected finite values; got 1 NaN/inf in 1 row\(s\) "
                                         r"\(first: row 7\)"):
        E.check_X(bad)
    with pytest.raises(ValueError, match=r"X: expected a 2-D \(samples, features\) array; got "
                                         r"shape \(150,\)"):
        E.check_X(iris.data[:, 0])
    with pytest.raises(TypeError, match="X: expected an .* array of samples; got None"):
        E.check_X(None)
    with pytest.raises(TypeError, match="X: expected an .* array of numbers"):
        E.check_X([["a", "b"]])


@pytest.mark.parametrize("features, match", [
    ((0, 4), r"features: expected two different column indices in 0\.\.3 .*4 is out of range"),
    ((-1, 2), r"-1 is out of range"),
    ((1, 1), r"the same feature twice"),
    ((0,), r"features: expected two different column indices"),
    ("ab", r"features: expected two different column indices"),
    ((0, 1.5), r"got \(0, 1\.5\)"),
    ((0, "petal size"), r"'petal size' is not a feature name; names: sepal length"),
])
def test_check_features_refuses(features, match, iris):
    with pytest.raises(ValueError, match=match):
        E.check_features(features, 4, list(iris.feature_names))


def test_check_features_takes_names(iris):
    assert E.check_features(("petal width (cm)", 0), 4, list(iris.feature_names)) == (3, 0)
    assert E.check_features((np.int64(2), 3), 4) == (2, 3)


# --------------------------------------------------------------------------
# trees
# --------------------------------------------------------------------------

def _reference_depth(left, right):
    depth = {}

    def walk(i, d):
        depth[i] = d
        if left[i] >= 0:
            walk(left[i], d + 1)
            walk(right[i], d + 1)
    walk(0, 0)
    return np.array([depth[i] for i in range(len(left))])


@pytest.mark.parametrize("load", [load_iris, load_wine, load_breast_cancer, load_digits])
def test_tree_nodes_are_the_tree_arrays(load):
    data = load()
    est = DecisionTreeClassifier(random_state=0, max_depth=12).fit(data.data, data.target)
    nd = E.tree_nodes(est)
    t = est.tree_
    assert nd.n_nodes == t.node_count
    np.testing.assert_array_equal(nd.left, t.children_left)
    np.testing.assert_array_equal(nd.right, t.children_right)
    np.testing.assert_array_equal(nd.feature, t.feature)
    np.testing.assert_array_equal(nd.threshold, t.threshold)
    np.testing.assert_array_equal(nd.samples, t.n_node_samples)
    np.testing.assert_array_equal(nd.weighted_samples, t.weighted_n_node_samples)
    np.testing.assert_array_equal(nd.impurity, t.impurity)
    np.testing.assert_array_equal(nd.depth, _reference_depth(t.children_left, t.children_right))
    assert nd.max_depth == est.get_depth() and nd.n_leaves == est.get_n_leaves()
    for i in range(1, nd.n_nodes):
        p = nd.parent[i]
        assert i in (nd.left[p], nd.right[p])
    assert nd.parent[0] == -1
    # class counts per node from the samples' decision paths (independent of tree_.value)
    path = est.decision_path(data.data).toarray()            # (N, nodes)
    onehot = np.eye(len(est.classes_))[np.searchsorted(est.classes_, data.target)]
    np.testing.assert_allclose(nd.counts(), path.T @ onehot, atol=1e-9)
    np.testing.assert_allclose(nd.value.sum(axis=1), 1.0)
    assert nd.classes.tolist() == est.classes_.tolist()
    assert nd.feature_names == [str(f) for f in data.feature_names] or \
        nd.feature_names == [f"x{i}" for i in range(data.data.shape[1])]


def test_split_text_names_features(iris):
    est = DecisionTreeClassifier(random_state=0).fit(iris.data, iris.target)
    nd = E.tree_nodes(est, feature_names=iris.feature_names)
    text = nd.split_text()
    i = 0
    assert text[i] == f"{iris.feature_names[est.tree_.feature[0]]} <= {est.tree_.threshold[0]:.6g}"
    assert all(text[k] == "" for k in np.flatnonzero(nd.is_leaf))


def test_forest_tree_index_picks_that_tree(wine):
    rf = RandomForestClassifier(n_estimators=7, random_state=0).fit(wine.data, wine.target)
    for i in (0, 3, 6, -1):
        nd = E.tree_nodes(rf, tree_index=i)
        t = rf.estimators_[i].tree_
        np.testing.assert_array_equal(nd.left, t.children_left)
        np.testing.assert_array_equal(nd.threshold, t.threshold)
        np.testing.assert_array_equal(nd.weighted_samples, t.weighted_n_node_samples)
        assert nd.source == f"RandomForestClassifier.estimators_[{i % 7}]"
        assert nd.class_names == [str(c) for c in rf.classes_]
    with pytest.raises(ValueError, match=r"tree_index: expected an int in 0\.\.6 \(7 trees\); "
                                         r"got 7"):
        E.tree_nodes(rf, tree_index=7)
    with pytest.raises(ValueError, match=r"tree_index: expected an int in 0\.\.6"):
        E.tree_nodes(rf, tree_index="1")
    et = ExtraTreesClassifier(n_estimators=3, random_state=0).fit(wine.data, wine.target)
    np.testing.assert_array_equal(E.tree_nodes(et, 2).feature, et.estimators_[2].tree_.feature)


def test_gradient_boosting_trees(iris, wine):
    gb = GradientBoostingClassifier(n_estimators=4, max_depth=2, random_state=0).fit(
        iris.data, iris.target)
    nd = E.tree_nodes(gb, tree_index=(2, 1))
    t = gb.estimators_[2, 1].tree_
    np.testing.assert_array_equal(nd.value[:, 0], t.value[:, 0, 0])
    assert not nd.is_classifier and nd.value.shape[1] == 1
    with pytest.raises(ValueError, match=r"tree_index: GradientBoostingClassifier has 3 trees per "
                                         r"stage \(one per class\); pass \(stage, class\)"):
        E.tree_nodes(gb, tree_index=1)
    with pytest.raises(ValueError, match=r"tree_index: expected \(stage, class\) with stage in "
                                         r"0\.\.3 and class in 0\.\.2; got \(4, 0\)"):
        E.tree_nodes(gb, tree_index=(4, 0))
    binary = wine.target == 0
    gb2 = GradientBoostingClassifier(n_estimators=3, max_depth=2, random_state=0).fit(
        wine.data, binary)
    np.testing.assert_array_equal(E.tree_nodes(gb2, 2).left, gb2.estimators_[2, 0].tree_.children_left)
    gbr = GradientBoostingRegressor(n_estimators=2, max_depth=2).fit(wine.data, wine.target)
    assert E.tree_nodes(gbr, 1).source == "GradientBoostingRegressor.estimators_[1, 0]"


def test_tree_refusals(iris):
    with pytest.raises(TypeError, match="estimator: expected a fitted decision tree or tree "
                                        "ensemble .*got SVC"):
        E.tree_nodes(SVC().fit(iris.data, iris.target))
    hgb = HistGradientBoostingClassifier(max_iter=2).fit(iris.data, iris.target)
    with pytest.raises(TypeError, match="estimator: HistGradientBoostingClassifier stores its "
                                        "trees in its own format"):
        E.tree_nodes(hgb)
    with pytest.raises(ValueError, match="estimator: expected a fitted estimator; got an unfitted "
                                         "DecisionTreeClassifier"):
        E.tree_nodes(DecisionTreeClassifier())
    est = DecisionTreeClassifier(random_state=0).fit(iris.data, iris.target)
    with pytest.raises(ValueError, match=r"tree_index: DecisionTreeClassifier is a single tree"):
        E.tree_nodes(est, tree_index=2)
    with pytest.raises(ValueError, match=r"feature_names: expected 4 names .*got \['a'\]"):
        E.tree_nodes(est, feature_names=["a"])
    with pytest.raises(ValueError, match=r"class_names: expected 3 names"):
        E.tree_nodes(est, class_names=["a", "b"])
    with pytest.raises(TypeError, match="estimator: expected a fitted scikit-learn decision tree"):
        E.tree_nodes(np.zeros(3))
    reg = DecisionTreeRegressor(max_depth=3).fit(iris.data, iris.data[:, 0])
    with pytest.raises(ValueError, match="class_names: .* is a regression tree"):
        E.tree_nodes(reg, class_names=["a"])


def _reference_layout(left, right, max_depth=None):
    """Recursive: leaves left to right one unit apart, parents at their children's midpoint."""
    x, slot = {}, [0]

    def walk(i, d):
        if left[i] < 0 or (max_depth is not None and d == max_depth):
            x[i] = float(slot[0])
            slot[0] += 1
            return
        walk(left[i], d + 1)
        walk(right[i], d + 1)
        x[i] = 0.5 * (x[left[i]] + x[right[i]])
    walk(0, 0)
    return x, slot[0]


@pytest.mark.parametrize("max_depth", [None, 0, 2, 5])
def test_tree_layout_matches_the_recursive_reference(max_depth, wine):
    est = DecisionTreeClassifier(random_state=1).fit(wine.data, wine.target)
    nd = E.tree_nodes(est)
    lay = E.tree_layout(nd, max_depth)
    ref, width = _reference_layout(nd.left, nd.right, max_depth)
    assert lay.width == width
    np.testing.assert_array_equal(np.flatnonzero(lay.visible), sorted(ref))
    np.testing.assert_array_equal(lay.x[sorted(ref)], [ref[i] for i in sorted(ref)])
    assert np.all(np.isnan(lay.x[~lay.visible]))
    np.testing.assert_array_equal(lay.y[lay.visible], nd.depth[lay.visible])
    limit = nd.max_depth if max_depth is None else max_depth
    np.testing.assert_array_equal(lay.folded, lay.visible & ~nd.is_leaf & (nd.depth == limit))
    # subtree sizes
    for i in (0, nd.left[0], nd.right[0]):
        stack, count = [i], 0
        while stack:
            k = stack.pop()
            count += 1
            if nd.left[k] >= 0:
                stack += [nd.left[k], nd.right[k]]
        assert lay.subtree_nodes[i] == count


def test_tree_layout_of_a_big_tree_has_no_overlap(rng):
    X = rng.standard_normal((12000, 6))
    y = rng.integers(0, 3, 12000)
    est = DecisionTreeClassifier(random_state=0).fit(X, y)
    nd = E.tree_nodes(est)
    assert nd.n_nodes > 5000
    lay = E.tree_layout(nd)
    for d in range(nd.max_depth + 1):
        xs = np.sort(lay.x[nd.depth == d])
        assert np.all(np.diff(xs) > 0)           # no two nodes of a row on one spot
    inner = np.flatnonzero(~nd.is_leaf)
    np.testing.assert_array_equal(lay.x[inner], 0.5 * (lay.x[nd.left[inner]] +
                                                        lay.x[nd.right[inner]]))
    leaves = np.flatnonzero(nd.is_leaf)
    assert sorted(lay.x[leaves].tolist()) == list(range(leaves.size))
    with pytest.raises(ValueError, match="max_depth: expected None or an int >= 0; got -1"):
        E.tree_layout(nd, -1)


# --------------------------------------------------------------------------
# classifiers on grids
# --------------------------------------------------------------------------

def _iris2(iris):
    return iris.data[:, 2:], iris.target


@pytest.mark.parametrize("make, method", [
    (lambda: SVC(gamma=2.0), "decision_function"),
    (lambda: SVC(probability=True, random_state=0), "predict_proba"),
    (lambda: RandomForestClassifier(n_estimators=15, random_state=0), "predict_proba"),
    (lambda: GaussianNB(), "predict_proba"),
    (lambda: make_pipeline(StandardScaler(), LogisticRegression()), "predict_proba"),
    (lambda: KNeighborsClassifier(7), "predict_proba"),
])
@pytest.mark.filterwarnings("ignore:The `probability` parameter:FutureWarning")
def test_grid_classes_are_predict_at_the_cell_centres(make, method, iris):
    X, y = _iris2(iris)
    est = make().fit(X, y)
    model = E.Classifier(est)
    assert model.method == method
    plane = E.Plane(X, (0, 1), "median", iris.feature_names[2:])
    g = E.evaluate_grid(model, plane, (0.5, 7.5), (-0.3, 2.8), 61, 47)
    np.testing.assert_allclose(g.x, 0.5 + (np.arange(61) + 0.5) * 7.0 / 61)
    np.testing.assert_allclose(g.y, -0.3 + (np.arange(47) + 0.5) * 3.1 / 47)
    xx, yy = np.meshgrid(g.x, g.y)
    centres = np.c_[xx.ravel(), yy.ravel()]
    expected = est.predict(centres).reshape(47, 61)
    np.testing.assert_array_equal(est.classes_[g.classes], expected)
    if method == "predict_proba":
        p = est.predict_proba(centres).reshape(47, 61, -1)
        np.testing.assert_allclose(g.scores, p)
        np.testing.assert_allclose(g.confidence, np.take_along_axis(p, g.classes[..., None],
                                                                    2)[..., 0])
        np.testing.assert_allclose(g.strength, np.clip((g.confidence - 1 / 3) / (2 / 3), 0, 1))
    else:
        d = est.decision_function(centres).reshape(47, 61, -1)
        np.testing.assert_allclose(g.scores, d)
        s = np.sort(d, axis=2)
        np.testing.assert_allclose(g.confidence, s[..., -1] - s[..., -2])
    assert g.strength.min() >= 0 and g.strength.max() <= 1


def test_binary_decision_function_and_predict_only(wine):
    X = wine.data[:, [0, 6]]
    y = np.where(wine.target == 0, "class_0", "other")
    est = SVC().fit(X, y)
    model = E.Classifier(est)
    model.calibrate(X)
    margins = np.abs(est.decision_function(X))
    assert model.margin_scale == pytest.approx(np.median(margins))
    plane = E.Plane(X)
    g = E.evaluate_grid(model, plane, (11, 15), (0, 5), 30, 20)
    xx, yy = np.meshgrid(g.x, g.y)
    pts = np.c_[xx.ravel(), yy.ravel()]
    np.testing.assert_array_equal(np.array(g.labels)[g.classes].ravel(), est.predict(pts))
    np.testing.assert_allclose(g.confidence.ravel(), np.abs(est.decision_function(pts)))
    np.testing.assert_allclose(g.strength.ravel(), np.clip(np.abs(est.decision_function(pts))
                                                           / model.margin_scale, 0, 1))
    only = E.Classifier(est, response="predict")
    g2 = E.evaluate_grid(only, plane, (11, 15), (0, 5), 30, 20)
    np.testing.assert_array_equal(g2.classes, g.classes)
    assert g2.scores is None and np.all(g2.strength == 1)
    with pytest.raises(ValueError, match=r"response: SVC has no predict_proba \(it has "
                                         r"decision_function, predict\)"):
        E.Classifier(est, response="predict_proba")
    with pytest.raises(ValueError, match="response: expected one of auto, predict_proba"):
        E.Classifier(est, response="proba")


def test_dataframe_fitted_estimators_get_frames(iris):
    df = load_iris(as_frame=True).frame
    X = df[iris.feature_names]
    est = LogisticRegression(max_iter=500).fit(X, iris.target)
    model = E.Classifier(est)
    plane = E.Plane(X.to_numpy(), (2, 3), "median", list(X.columns))
    with warnings.catch_warnings():
        warnings.simplefilter("error")       # no "X does not have valid feature names"
        g = E.evaluate_grid(model, plane, (1, 7), (0, 2.5), 9, 7)
    pts = plane.lift(*np.meshgrid(g.x, g.y))
    np.testing.assert_array_equal(g.classes.ravel(),
                                  est.predict(X.__class__(pts, columns=X.columns)))


def test_median_and_pca_planes(wine):
    X = wine.data
    names = list(wine.feature_names)
    med = E.Plane(X, (0, 6), "median", names)
    assert med.kind == "median" and med.xlabel == "alcohol" and med.ylabel == "flavanoids"
    pts = med.lift(np.array([12.0, 13.0]), np.array([1.0, 2.0]))
    expected = np.tile(np.median(X, axis=0), (2, 1))
    expected[:, 0] = [12.0, 13.0]
    expected[:, 6] = [1.0, 2.0]
    np.testing.assert_array_equal(pts, expected)
    assert med.fixed["ash"] == pytest.approx(np.median(X[:, 2]))
    assert "other features at their medians: malic_acid = " in med.description
    np.testing.assert_array_equal(med.project(X), X[:, [0, 6]])

    pca = E.Plane(X, plane="pca", feature_names=names)
    ref = PCA(2).fit(StandardScaler().fit_transform(X))
    np.testing.assert_allclose(pca.explained, ref.explained_variance_ratio_, rtol=1e-9)
    np.testing.assert_allclose(np.abs(pca.components), np.abs(ref.components_), atol=1e-9)
    proj = pca.project(X)
    z = ref.transform(StandardScaler().fit_transform(X))
    np.testing.assert_allclose(np.abs(proj), np.abs(z), atol=1e-9)
    a, b = np.array([-1.0, 0.5, 2.0]), np.array([0.3, -2.0, 1.0])
    np.testing.assert_allclose(pca.project(pca.lift(a, b)), np.c_[a, b], atol=1e-12)
    assert pca.xlabel.startswith("PC1 (") and "% of variance" in pca.ylabel
    assert "principal components" in pca.description
    two = E.Plane(X[:, :2], plane="pca")
    assert two.kind == "features" and two.description == ""
    with pytest.raises(ValueError, match="plane: expected one of median, pca; got 'tsne'"):
        E.Plane(X, plane="tsne")
    with pytest.raises(ValueError, match="X: expected at least 2 features"):
        E.Plane(X[:, :1])


def _mlp(k=3, seed=0):
    import torch

    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.Tanh(), torch.nn.Dropout(0.5),
                               torch.nn.Linear(16, k))


def test_torch_module_in_batches_is_torch_argmax(iris):
    torch = pytest.importorskip("torch")
    X, _ = _iris2(iris)
    module = _mlp()
    module.train()
    model = E.Classifier(module, batch=100)                 # many batches
    plane = E.Plane(X)
    g = E.evaluate_grid(model, plane, (0, 8), (-1, 3), 37, 23)
    assert module.training and all(m.training for m in module.modules())   # restored
    pts = torch.tensor(plane.lift(*np.meshgrid(g.x, g.y)), dtype=torch.float32)
    module.eval()
    with torch.no_grad():
        logits = module(pts)
    np.testing.assert_array_equal(g.classes.ravel(), logits.argmax(1).numpy())
    np.testing.assert_allclose(g.scores.reshape(-1, 3), torch.softmax(logits, 1).numpy(),
                               rtol=1e-6, atol=1e-7)
    assert model.labels == ["0", "1", "2"] and model.method == "softmax"
    # one logit per row: sigmoid
    one = _mlp(k=1)
    m1 = E.Classifier(one, class_names=["no", "yes"])
    g1 = E.evaluate_grid(m1, plane, (0, 8), (-1, 3), 11, 9)
    one.eval()
    with torch.no_grad():
        z = one(torch.tensor(plane.lift(*np.meshgrid(g1.x, g1.y)), dtype=torch.float32))[:, 0]
    np.testing.assert_array_equal(g1.classes.ravel(), (z > 0).numpy().astype(int))
    np.testing.assert_allclose(g1.confidence.ravel(),
                               torch.sigmoid(z.abs()).double().numpy(), rtol=1e-6)
    assert m1.method == "sigmoid" and g1.labels == ["no", "yes"]
    # float64 parameters: evaluated in float64
    m64 = _mlp(seed=3).double()
    g64 = E.evaluate_grid(E.Classifier(m64), plane, (0, 8), (-1, 3), 13, 7)
    m64.eval()
    with torch.no_grad():
        ref = m64(torch.tensor(plane.lift(*np.meshgrid(g64.x, g64.y)), dtype=torch.float64))
    np.testing.assert_array_equal(g64.classes.ravel(), ref.argmax(1).numpy())
    with pytest.raises(ValueError, match="response: a torch module gives logits"):
        E.Classifier(module, response="decision_function")
    with pytest.raises(ValueError, match=r"X: the module could not evaluate rows of 4 features "
                                         r"\(RuntimeError"):
        E.Classifier(module).check_width(iris.data)
