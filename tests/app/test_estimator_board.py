"""The estimator dashboard (dlviz_gpu.app.estimators) on scikit-learn's shipped datasets.

Tabs per model type, the surface rebuilt when a select changes (checked
against the estimator's own predictions on the plane), the tree index and
depth, importances, the header, the served page and the refusals.  The
browser drives the same page in tests/browser/test_estimator_board_browser.py.
"""

import html
import re
import urllib.request
from collections import deque

import numpy as np
import pytest

pn = pytest.importorskip("panel")
hv = pytest.importorskip("holoviews")
pytest.importorskip("sklearn")
from sklearn.datasets import load_iris, load_wine  # noqa: E402
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier  # noqa: E402
from sklearn.linear_model import LinearRegression, LogisticRegression  # noqa: E402
from sklearn.naive_bayes import GaussianNB  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.svm import SVC  # noqa: E402
from sklearn.tree import DecisionTreeClassifier  # noqa: E402

from dlviz_gpu.app.estimators import EstimatorBoard, EstimatorSession  # noqa: E402


@pytest.fixture(scope="module")
def iris():
    d = load_iris()
    return d.data, d.target, list(d.feature_names), list(d.target_names)


@pytest.fixture(scope="module")
def wine():
    d = load_wine()
    return d.data, d.target, list(d.feature_names), list(d.target_names)


@pytest.fixture(scope="module")
def forest(wine):
    X, y, _, _ = wine
    return RandomForestClassifier(n_estimators=6, max_depth=6, random_state=0).fit(X, y)


def tab_names(session):
    return [t.name for t in session.tabs]


def centres(g):
    xx, yy = np.meshgrid(g.x, g.y)
    return xx.ravel(), yy.ravel()


def node_depths(t):
    """Depth of every node of a fitted sklearn tree, by walking its children arrays."""
    depth = np.full(t.node_count, -1)
    depth[0] = 0
    todo = deque([0])
    while todo:
        n = todo.popleft()
        for c in (t.children_left[n], t.children_right[n]):
            if c >= 0:
                depth[c] = depth[n] + 1
                todo.append(c)
    return depth


@pytest.mark.parametrize("make, data, tabs", [
    (lambda: SVC(gamma=2.0), "iris", ["Decision surface"]),
    (lambda: GaussianNB(), "iris", ["Decision surface"]),
    (lambda: make_pipeline(StandardScaler(), LogisticRegression()), "wine",
     ["Decision surface"]),
    (lambda: DecisionTreeClassifier(max_depth=3, random_state=0), "iris",
     ["Decision surface", "Trees", "Importances"]),
    (lambda: RandomForestClassifier(n_estimators=4, random_state=0), "wine",
     ["Decision surface", "Trees", "Importances"]),
])
def test_tabs_and_header_per_model_type(make, data, tabs, request):
    X, y, names, classes = request.getfixturevalue(data)
    model = make().fit(X, y)
    board = EstimatorBoard(model, X, y, feature_names=names, class_names=classes)
    s = EstimatorSession(board)
    assert tab_names(s) == tabs == board.tabs()
    assert isinstance(s.tabs, pn.Tabs) and s.tabs.dynamic
    # the header: type, classes, samples, features, accuracy against sklearn's own score
    text = s.header.object
    assert text.startswith(f"## {html.escape(board.title)}")
    assert type(model).__name__ in text
    assert all(c in text for c in classes)
    assert f"samples: **{len(X):,}**" in text and f"features: **{X.shape[1]}**" in text
    assert board.accuracy == pytest.approx(model.score(X, y))
    assert f"{model.score(X, y):.4f}" in text
    # the surface select options are the feature names; the plane select shows from 3 features
    assert list(s.x_feature.options) == names
    assert s.plane.visible == (X.shape[1] > 2)
    assert isinstance(s.surface_pane, pn.pane.HoloViews) and s.surface_pane.object is s.surface


def test_no_labels_no_accuracy_and_pipeline_type(iris):
    X, y, _, _ = iris
    model = make_pipeline(StandardScaler(), SVC()).fit(X, y)
    board = EstimatorBoard(model, X)
    assert board.accuracy is None and board.title == "Pipeline (StandardScaler -> SVC)"
    assert "accuracy" not in EstimatorSession(board).header.object
    # the responses offered are those the pipeline has
    assert board.responses == ["auto", "decision_function", "predict"]


def test_changing_the_x_feature_rebuilds_the_surface(forest, wine):
    X, y, names, classes = wine
    s = EstimatorSession(EstimatorBoard(forest, X, y, feature_names=names,
                                        class_names=classes))
    first = s.surface
    assert first.view.plane.features == (0, 1)
    s.x_feature.value = names.index("proline")
    assert s.surface is not first and s.surface_pane.object is s.surface
    view = s.surface.view
    assert view.plane.features == (12, 1) and view.plane.xlabel == "proline"
    # the element's x axis is the feature
    frame = s.surface.callback.callable(x_range=None, y_range=None, width=24, height=18)
    rgb = frame.get(0)
    assert rgb.kdims[0].label == "proline" and rgb.kdims[1].label == names[1]
    # the numbers: the forest's classes on the plane, other features at their medians
    g = view.grid(width=24, height=18)
    a, b = centres(g)
    pts = np.repeat(np.median(X, axis=0)[None], a.size, axis=0)
    pts[:, 12], pts[:, 1] = a, b
    np.testing.assert_array_equal(forest.classes_[g.classes].ravel(), forest.predict(pts))
    # the feature already on y: the axes swap
    s.x_feature.value = 1
    assert s.surface.view.plane.features == (1, 12)
    assert (s.x_feature.value, s.y_feature.value) == (1, 12)
    # the pca plane: the selects are idle, the axes are components
    s.plane.value = "pca"
    assert s.surface.view.plane.kind == "pca" and s.x_feature.disabled
    assert s.surface.view.plane.xlabel.startswith("PC1")
    s.plane.value = "median"
    assert s.surface.view.plane.kind == "median" and not s.x_feature.disabled


def test_response_select(iris):
    X, y, _, _ = iris
    svc = SVC(gamma=2.0).fit(X[:, 2:], y)
    s = EstimatorSession(EstimatorBoard(svc, X[:, 2:], y))
    assert s.response.options == ["auto", "decision_function", "predict"]
    assert s.surface.view.model.method == "decision_function"
    s.response.value = "predict"
    assert s.surface.view.model.method == "predict"
    g = s.surface.view.grid(width=10, height=8)
    a, b = centres(g)
    np.testing.assert_array_equal(g.classes.ravel(), svc.predict(np.c_[a, b]))
    assert not s.plane.visible       # two features: no plane to choose


def test_changing_the_tree_index_redraws_that_tree(forest, wine):
    X, y, names, classes = wine
    s = EstimatorSession(EstimatorBoard(forest, X, y, feature_names=names,
                                        class_names=classes))
    assert s.tree_index.end == len(forest.estimators_) - 1 and not s.tree_class.visible
    assert s.tree.view.nodes.n_nodes == forest.estimators_[0].tree_.node_count
    for i in (3, 5):
        s.tree_index.value = i
        t = forest.estimators_[i].tree_
        assert s.tree_pane.object is s.tree
        nodes = s.tree.view.nodes
        assert nodes.n_nodes == t.node_count
        np.testing.assert_array_equal(nodes.threshold, t.threshold)
        assert f"estimators_[{i}]" in s.tree.view.title()
        assert nodes.class_names == classes
        used = {names[f] for f in t.feature if f >= 0}
        assert {nodes.feature_names[f] for f in nodes.feature if f >= 0} == used
    # max depth folds: the nodes at depth <= 2 stay visible
    s.max_depth.value = 2
    t = forest.estimators_[5].tree_
    np.testing.assert_array_equal(s.tree.view.layout.visible, node_depths(t) <= 2)
    s.max_depth.value = None
    assert s.tree.view.layout.visible.all()


def test_gradient_boosting_trees_per_class_and_importances(wine):
    X, y, names, _ = wine
    gb = GradientBoostingClassifier(n_estimators=3, max_depth=2, random_state=0).fit(X, y)
    s = EstimatorSession(EstimatorBoard(gb, X, y, feature_names=names))
    assert tab_names(s) == ["Decision surface", "Trees", "Importances"]
    assert s.tree_class.visible and list(s.tree_class.options) == ["0", "1", "2"]
    assert s.tree_index.label.startswith("stage")
    s.tree_index.value = 2
    s.tree_class.value = 1
    assert s.tree_key() == (2, 1)
    assert s.tree.view.nodes.n_nodes == gb.estimators_[2, 1].tree_.node_count
    np.testing.assert_array_equal(s.tree.view.nodes.threshold,
                                  gb.estimators_[2, 1].tree_.threshold)
    # importances: the bars hold feature_importances_ by name, largest first
    obj = s.importances_pane.object
    bars = obj if isinstance(obj, hv.Bars) else obj.get(0)
    got = dict(zip(bars.dimension_values(0), bars.dimension_values(1)))
    want = dict(zip(names, gb.feature_importances_))
    assert set(got) == set(names)
    for k in names:
        assert got[k] == pytest.approx(want[k])


def test_torch_module_gets_the_surface_only(iris):
    torch = pytest.importorskip("torch")
    X, y, _, _ = iris
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    board = EstimatorBoard(mlp, X, y, class_names=["a", "b", "c"])
    s = EstimatorSession(board)
    assert tab_names(s) == ["Decision surface"] and not s.response.visible
    with torch.no_grad():
        pred = mlp(torch.tensor(X, dtype=torch.float32)).argmax(1).numpy()
    assert board.accuracy == pytest.approx(np.mean(pred == y))
    assert "Sequential (torch module)" in s.header.object


def test_pages_are_fresh_per_session_and_warm(forest, wine):
    X, y, _, _ = wine
    board = EstimatorBoard(forest, X, y)
    board.warm()
    a, b = board.page(), board.page()
    assert a is not b
    sa = a.select(pn.widgets.Select)[0]
    sb = b.select(pn.widgets.Select)[0]
    assert sa is not sb and sa.label == "x feature"
    sa.value = 4
    assert sb.value == 0


def test_served_page(iris):
    X, y, names, classes = iris
    svc = SVC(gamma=2.0).fit(X[:, 2:], y)
    board = EstimatorBoard(svc, X[:, 2:], y, feature_names=names[2:], class_names=classes,
                           title="iris petals, RBF SVM")
    url = board.serve(port=0)
    try:
        with urllib.request.urlopen(url, timeout=60) as resp:
            page = resp.read().decode("utf-8")
            assert resp.status == 200
        assert "dlviz: iris petals, RBF SVM" in page
        assert re.search(r"bokeh", page)
    finally:
        url.stop()


@pytest.mark.parametrize("case, exc, match", [
    ("unfitted", ValueError, r"estimator: expected a fitted estimator; got an unfitted SVC"),
    ("regressor", TypeError, r"estimator: expected a classifier \(this view colours classes\); "
                             r"got a regressor \(LinearRegression\)"),
    ("width", ValueError, r"X: expected 2 columns \(the estimator SVC was fitted on 2 features, "
                          r"n_features_in_\); got 4"),
    ("labels", ValueError, r"y: expected labels among the estimator's classes_ \[0, 1, 2\]"),
    ("short y", ValueError, r"y: expected one label per row of X \(150\); got shape \(3,\)"),
    ("names", ValueError, r"feature_names: expected 2 names \(one per feature\)"),
    ("classes", ValueError, r"class_names: expected 3 names \(one per class\)"),
    ("title", TypeError, r"title: expected a string or None; got int"),
    ("not a model", TypeError, r"estimator: expected a fitted scikit-learn classifier"),
])
def test_refusals(case, exc, match, iris):
    X, y, _, _ = iris
    X2 = X[:, 2:]
    args = dict(estimator=SVC().fit(X2, y), X=X2, y=y)
    if case == "unfitted":
        args["estimator"] = SVC()
    elif case == "regressor":
        args["estimator"] = LinearRegression().fit(X2, y)
    elif case == "width":
        args["X"] = X
    elif case == "labels":
        args["y"] = np.full(len(y), 7)
    elif case == "short y":
        args["y"] = y[:3]
    elif case == "names":
        args["feature_names"] = ["a", "b", "c"]
    elif case == "classes":
        args["class_names"] = ["a", "b"]
    elif case == "title":
        args["title"] = 3
    elif case == "not a model":
        args["estimator"] = object()
    with pytest.raises(exc, match=match):
        EstimatorBoard(**args)
