"""The estimator dashboard in headless Chromium: an RBF SVM on iris's petal features,
and a random forest on wine.

The SVM's board is served in this process (``EstimatorBoard.serve``); a mouse-wheel
zoom over the decision surface must make the server evaluate the model on the
smaller visible window (the picture's image glyph covers a narrower window),
with nothing in the browser console and nothing in the server log.  The
forest's Trees tab draws the tree typed into its index box, and its
Importances tab draws the bars.
"""

from __future__ import annotations

import pytest

from . import bokehjs as bj

pytestmark = pytest.mark.browser
pytest.importorskip("sklearn")


def surface(page):
    """The decision surface's plot frame and its picture (the RGBA image), or None."""
    v = bj.views(page)
    plots = [p for p in v["plots"] if (p["title"] or "").startswith("SVC:")]
    if not plots:
        return None
    images = [g for g in v["glyphs"] if g["type"] == "ImageRGBA" and g["plot"] == plots[0]["id"]]
    return (plots[0], images[0]) if images else None


def test_estimator_board_zoom_re_evaluates_the_surface(tab, server_log):
    from sklearn.datasets import load_iris
    from sklearn.svm import SVC

    from dlviz_gpu.app.estimators import SURFACE_SIZE, EstimatorBoard

    iris = load_iris()
    X, y = iris.data[:, 2:], iris.target
    board = EstimatorBoard(SVC(kernel="rbf", gamma=2.0).fit(X, y), X, y,
                           feature_names=iris.feature_names[2:],
                           class_names=list(iris.target_names), title="iris petals")
    board.warm()
    url = board.serve(port=0)
    try:
        page = tab.page
        bj.load(page, url)
        assert page.get_by_text("iris petals", exact=False).count() >= 1
        plot, image = bj.wait_until(lambda: surface(page), page, "the decision surface")
        # one grid cell per pixel of the frame, over the samples' padded extent
        assert image["shape"] == [SURFACE_SIZE[1], SURFACE_SIZE[0]]
        x0, dw0 = image["x"], image["dw"]
        assert x0 < X[:, 0].min() and x0 + dw0 > X[:, 0].max()

        bj.wheel(page, plot["x"] + plot["width"] / 2, plot["y"] + plot["height"] / 2, steps=3)

        def zoomed():
            s = surface(page)
            return s if s and s[1]["dw"] < 0.9 * dw0 else None

        plot2, image2 = bj.wait_until(zoomed, page, "the surface re-evaluated on a smaller window")
        # the picture covers the plot's new window (the server evaluated what is visible)
        assert image2["x"] == pytest.approx(plot2["x_range"][0], rel=1e-6, abs=1e-9)
        assert image2["x"] + image2["dw"] == pytest.approx(plot2["x_range"][1], rel=1e-6)
        tab.assert_clean()
        server_log.assert_clean()
    finally:
        url.stop()


def test_estimator_board_trees_tab_follows_the_tree_index(tab, server_log):
    from sklearn.datasets import load_wine
    from sklearn.ensemble import RandomForestClassifier

    from dlviz_gpu.app.estimators import EstimatorBoard

    wine = load_wine()
    forest = RandomForestClassifier(n_estimators=4, max_depth=5, random_state=0).fit(
        wine.data, wine.target)
    board = EstimatorBoard(forest, wine.data, wine.target, feature_names=wine.feature_names)
    url = board.serve(port=0)
    try:
        page = tab.page
        bj.load(page, url)
        page.get_by_text("Trees", exact=True).first.click()

        def tree_plot(i):
            return [p for p in bj.views(page)["plots"]
                    if f"estimators_[{i}]: {forest.estimators_[i].tree_.node_count} nodes"
                    in (p["title"] or "")]

        bj.wait_until(lambda: tree_plot(0), page, "tree 0 drawn")
        box = page.get_by_label(f"tree (0..{len(forest.estimators_) - 1})")
        box.fill("2")
        box.press("Enter")
        bj.wait_until(lambda: tree_plot(2), page, "tree 2 drawn after choosing it")
        page.get_by_text("Importances", exact=True).first.click()
        bj.wait_until(lambda: any("feature importances" in (p["title"] or "")
                                  for p in bj.views(page)["plots"]), page, "the importances")
        tab.assert_clean()
        server_log.assert_clean()
    finally:
        url.stop()
