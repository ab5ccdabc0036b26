"""dv.tree and dv.importances: the Bokeh model they produce, folding, labels on zoom, output."""

import io

import numpy as np
import pytest

hv = pytest.importorskip("holoviews")
pytest.importorskip("sklearn")
pytest.importorskip("holoviews.plotting.bokeh")  # registers the bokeh backend
from bokeh.document import Document  # noqa: E402
from sklearn.datasets import load_breast_cancer, load_digits, load_iris, load_wine  # noqa: E402
from sklearn.ensemble import (GradientBoostingClassifier, RandomForestClassifier,  # noqa: E402
                              RandomForestRegressor)
from sklearn.svm import SVC  # noqa: E402
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor  # noqa: E402

import dlviz_gpu as dv  # noqa: E402
from dlviz_gpu.views.trees import (LABEL_LIMIT, TINT_LEVELS, TreeView,  # noqa: E402
                                  class_colours, importance_table, importances, tree)


def render(obj):
    return hv.renderer("bokeh").instance(mode="server").get_plot(obj, doc=Document())


def node_plot(plot, group="Points"):
    """The subplot drawing the round nodes (its source holds the hover columns)."""
    for key, sub in plot.subplots.items():
        data = sub.handles.get("source").data if "source" in sub.handles else {}
        if "rule" in data and key[0] == group:
            return sub
    raise AssertionError(f"no {group} layer with node columns")


@pytest.fixture(scope="module")
def iris():
    return load_iris()


@pytest.fixture(scope="module")
def iris_tree(iris):
    return DecisionTreeClassifier(random_state=0).fit(iris.data, iris.target)


def test_nodes_hover_and_colours(iris, iris_tree):
    dmap = tree(iris_tree, feature_names=iris.feature_names, class_names=iris.target_names)
    plot = render(dmap)
    t = iris_tree.tree_
    sub = node_plot(plot)
    data = sub.handles["source"].data
    nodes = np.asarray(data["node"])
    assert sorted(nodes.tolist()) == list(range(t.node_count))   # no folding: every node
    np.testing.assert_array_equal(np.asarray(data["samples"]), t.n_node_samples[nodes])
    np.testing.assert_array_equal(np.asarray(data["impurity"]), t.impurity[nodes])
    rules = list(data["rule"])
    for n, r in zip(nodes, rules):
        if t.children_left[n] < 0:
            assert r == "leaf"
        else:
            assert r == f"{iris.feature_names[t.feature[n]]} <= {t.threshold[n]:.6g}"
    # majority class and the class distribution from the training samples' decision paths
    path = iris_tree.decision_path(iris.data).toarray()
    counts = path.T @ np.eye(3)[iris.target]
    maj = counts.argmax(1)
    assert list(data["class"]) == [str(iris.target_names[maj[n]]) for n in nodes]
    for n, text in zip(nodes, data["distribution"]):
        assert text == " | ".join(f"{iris.target_names[k]} {int(counts[n, k]):,}"
                                  for k in range(3))
    purity = counts.max(1) / counts.sum(1)
    np.testing.assert_allclose(np.asarray(data["purity"]), purity[nodes])
    # colour: class * TINT_LEVELS + shade; pure nodes the full class colour
    ci = np.asarray(data["colour"])
    np.testing.assert_array_equal(np.floor(ci / TINT_LEVELS).astype(int), maj[nodes])
    shade = np.floor(ci % TINT_LEVELS).astype(int)
    assert np.all(shade[purity[nodes] == 1.0] == TINT_LEVELS - 1)
    assert shade[list(nodes).index(0)] == 0                         # the root: 50/50/50
    mapper = sub.handles["color_color_mapper"]
    pal = mapper.palette
    assert len(pal) == 3 * TINT_LEVELS and (mapper.low, mapper.high) == (0, 3 * TINT_LEVELS)
    assert [pal[(k + 1) * TINT_LEVELS - 1] for k in range(3)] == class_colours(3)
    assert pal[0].lower() > "#e" and pal[0].lower() != "#ffffff"   # nearly white, not white
    tips = [tt[0] for tt in sub.handles["hover"].tooltips]
    assert tips == ["node", "depth", "split", "samples", "classes", "majority", "purity", "gini"]
    assert plot.state.title.text.startswith("DecisionTreeClassifier: 17 nodes, 9 leaves, depth 5")
    legend = [it.label["value"] for it in plot.state.legend[0].items]
    assert legend == list(iris.target_names)
    # positions: leaves 0..8, parents over the middle of their children, depth rows
    x, y = np.asarray(data["x"]), np.asarray(data["y"])
    pos = dict(zip(nodes, zip(x, y)))
    for n in range(t.node_count):
        if t.children_left[n] >= 0:
            l, r = t.children_left[n], t.children_right[n]
            assert pos[n][0] == 0.5 * (pos[l][0] + pos[r][0])
            assert pos[l][1] == pos[n][1] + 1


def test_labels_follow_the_zoom(rng):
    X = rng.standard_normal((3000, 4))
    y = rng.integers(0, 2, 3000)
    est = DecisionTreeClassifier(random_state=0).fit(X, y)
    dmap = tree(est)
    render(dmap)
    view = dmap.view
    n = est.tree_.node_count
    assert n > LABEL_LIMIT
    assert view.last["in_view"] == n and view.last["labels"] == 0    # too many for text
    stream = next(s for s in dmap.streams if isinstance(s, hv.streams.RangeXY))
    stream.event(x_range=(10.0, 16.0), y_range=(5.0, 15.0))
    xs, ys = view.columns["x"], view.columns["y"]
    inside = (xs >= 10) & (xs <= 16) & (ys >= 5) & (ys <= 15)
    assert 0 < inside.sum() <= LABEL_LIMIT
    assert view.last == {"window": ((10.0, 16.0), (5.0, 15.0)), "in_view": int(inside.sum()),
                         "labels": int(inside.sum())}
    frame = dmap[()]
    labels = frame.Labels.I
    np.testing.assert_array_equal(labels.dimension_values("x"), xs[inside])
    assert list(labels.dimension_values("text")) == list(view.text[inside])


def test_folding_by_max_depth():
    data = load_breast_cancer()
    est = DecisionTreeClassifier(random_state=0).fit(data.data, data.target)
    view = TreeView(est, max_depth=2)
    nd = est.tree_
    depth = view.nodes.depth
    assert set(view.ids.tolist()) == set(np.flatnonzero(depth <= 2).tolist())
    folded = view.layout.folded
    np.testing.assert_array_equal(folded, (depth == 2) & (nd.children_left >= 0))
    plot = render(tree(est, max_depth=2))
    sq = node_plot(plot, "Folded").handles["source"].data
    fids = np.asarray(sq["node"])
    assert sorted(fids.tolist()) == np.flatnonzero(folded).tolist()
    # a folded node stands for its subtree: its samples, and the hidden node count in the hover
    np.testing.assert_array_equal(np.asarray(sq["samples"]), nd.n_node_samples[fids])
    for f, rule in zip(fids, sq["rule"]):
        below = view.layout.subtree_nodes[f] - 1
        assert rule.endswith(f"(folded: {below:,} nodes below)")
    hidden = int((depth > 2).sum())
    assert f"folded at depth 2: {int(folded.sum())} subtrees ({hidden:,} nodes) hidden" in \
        plot.state.title.text


def test_forest_gradient_boosting_and_regression_trees():
    data = load_wine()
    rf = RandomForestClassifier(n_estimators=5, random_state=0).fit(data.data, data.target)
    view = TreeView(rf, tree_index=4)
    t = rf.estimators_[4].tree_
    np.testing.assert_array_equal(view.columns["samples"], t.n_node_samples[view.ids])
    assert view.title().startswith("RandomForestClassifier.estimators_[4]: ")
    gb = GradientBoostingClassifier(n_estimators=3, max_depth=3, random_state=0).fit(
        data.data, data.target)
    gview = TreeView(gb, tree_index=(1, 2))
    np.testing.assert_array_equal(gview.columns["value"],
                                  gb.estimators_[1, 2].tree_.value[gview.ids, 0, 0])
    plot = render(tree(gb, tree_index=(1, 2)))
    sub = node_plot(plot)
    assert [tt[0] for tt in sub.handles["hover"].tooltips] == [
        "node", "depth", "split", "samples", "value", gb.estimators_[1, 2].criterion]
    v = gview.nodes.value[:, 0]
    mapper = sub.handles["color_color_mapper"]
    assert mapper.low == pytest.approx(-np.abs(v).max()) and mapper.high == pytest.approx(
        np.abs(v).max())
    reg = DecisionTreeRegressor(max_depth=4).fit(data.data, data.data[:, 0])
    rview = TreeView(reg)
    np.testing.assert_array_equal(rview.colour_index, reg.tree_.value[:, 0, 0])


def test_a_20000_node_tree_renders(rng):
    X = rng.standard_normal((26000, 8))
    y = rng.integers(0, 4, 26000)
    est = DecisionTreeClassifier(random_state=0, min_samples_leaf=1).fit(X, y)
    assert est.tree_.node_count >= 20000
    dmap = tree(est)
    plot = render(dmap)
    data = node_plot(plot).handles["source"].data
    assert len(data["node"]) == est.tree_.node_count
    # the browser gets the numbers, not per-node colour strings
    assert np.asarray(data["colour"]).dtype.kind == "f"


def test_importances_bars_and_std(iris):
    rf = RandomForestClassifier(n_estimators=20, random_state=0).fit(iris.data, iris.target)
    names, imp, std = importance_table(rf, feature_names=iris.feature_names)
    order = np.argsort(-rf.feature_importances_)
    assert names == [iris.feature_names[i] for i in order]
    np.testing.assert_array_equal(imp, rf.feature_importances_[order])
    per_tree = np.array([t.feature_importances_ for t in rf.estimators_])
    np.testing.assert_allclose(std, per_tree.std(axis=0)[order])
    el = importances(rf, feature_names=iris.feature_names, top=2)
    bars = el.Bars.I
    assert list(bars.dimension_values("name")) == names[:2]
    err = el.ErrorBars.I
    np.testing.assert_allclose(err.dimension_values("std"), std[:2])
    plot = render(el)
    assert "+/- std over trees" in plot.state.title.text
    # a single tree: bars without error bars; boosting too
    single = importances(DecisionTreeClassifier(random_state=0).fit(iris.data, iris.target))
    assert isinstance(single, hv.Bars)
    digits = load_digits()
    many = importances(RandomForestClassifier(n_estimators=4, random_state=0).fit(
        digits.data, digits.target))
    render(many)                          # 64 features: horizontal bars with error bars
    assert len(many.Bars.I) == 64
    reg = RandomForestRegressor(n_estimators=3, random_state=0).fit(iris.data, iris.data[:, 0])
    assert importance_table(reg)[2] is not None


@pytest.mark.parametrize("call, exc, match", [
    (lambda d: tree(SVC().fit(d.data, d.target)), TypeError,
     r"estimator: expected a fitted decision tree or tree ensemble .*got SVC"),
    (lambda d: tree(DecisionTreeClassifier()), ValueError,
     r"estimator: expected a fitted estimator; got an unfitted DecisionTreeClassifier"),
    (lambda d: tree(RandomForestClassifier(3).fit(d.data, d.target), tree_index=3), ValueError,
     r"tree_index: expected an int in 0\.\.2 \(3 trees\); got 3"),
    (lambda d: tree(DecisionTreeClassifier().fit(d.data, d.target), max_depth=-2), ValueError,
     r"max_depth: expected None or an int >= 0; got -2"),
    (lambda d: tree(DecisionTreeClassifier().fit(d.data, d.target), width=0), ValueError,
     r"width"),
    (lambda d: importances(SVC().fit(d.data, d.target)), TypeError,
     r"forest: SVC has no feature_importances_"),
    (lambda d: importances(RandomForestClassifier()), ValueError,
     r"forest: expected a fitted estimator; got an unfitted RandomForestClassifier"),
    (lambda d: importances(RandomForestClassifier(3).fit(d.data, d.target), top=0), ValueError,
     r"top: expected None or an int >= 1; got 0"),
    (lambda d: importances({"a": 1.0}), TypeError, r"forest: expected a fitted scikit-learn "
                                                   r"model with feature_importances_; got "
                                                   r"builtins.dict"),
])
def test_bad_input(call, exc, match, iris):
    with pytest.raises(exc, match=match):
        call(iris)


def test_save_html_and_png(tmp_path, iris, iris_tree):
    from PIL import Image

    view = tree(iris_tree, feature_names=iris.feature_names, class_names=iris.target_names)
    page = dv.save(view, tmp_path / "tree.html")
    text = page.read_text(encoding="utf-8")
    # the hover's split rules travel with the page
    assert "petal width (cm)" in text and "cdn.bokeh.org" not in text
    assert "petal width (cm) &lt;= 0.8" in text          # the page's JSON escapes "<"
    png = dv.save(view, tmp_path / "tree.png")
    img = np.asarray(Image.open(io.BytesIO(png.read_bytes())).convert("RGB"))
    assert img.shape[0] > 400 and img.shape[1] > 600
    # the pure leaves' class colours are drawn
    for c in class_colours(3):
        rgb = np.array([int(c[i:i + 2], 16) for i in (1, 3, 5)])
        assert np.any(np.all(np.abs(img.astype(int) - rgb) < 12, axis=2))
    rf = RandomForestClassifier(n_estimators=5, random_state=0).fit(iris.data, iris.target)
    bars = dv.save(importances(rf), tmp_path / "imp.png")
    assert bars.stat().st_size > 5000
    dv.save(importances(rf), tmp_path / "imp.html")
