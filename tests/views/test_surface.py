"""dv.decision_surface: classes on every grid cell, zoom, planes, torch, overlays, bad input.

Every class drawn is checked against the estimator's own ``predict`` at the
cell centres, and against scikit-learn's ``DecisionBoundaryDisplay`` on its
own grid; a torch module against ``argmax`` of its logits.
"""

import io

import numpy as np
import pytest

hv = pytest.importorskip("holoviews")
pytest.importorskip("sklearn")
pytest.importorskip("holoviews.plotting.bokeh")  # registers the bokeh backend
from bokeh.document import Document  # noqa: E402
from sklearn.datasets import load_breast_cancer, load_iris, load_wine  # noqa: E402
from sklearn.ensemble import RandomForestClassifier  # noqa: E402
from sklearn.inspection import DecisionBoundaryDisplay  # noqa: E402
from sklearn.linear_model import LinearRegression, LogisticRegression  # noqa: E402
from sklearn.naive_bayes import GaussianNB  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.svm import SVC  # noqa: E402

from dlviz_gpu.estimators import evaluate_points  # noqa: E402
from dlviz_gpu.views.surface import (LEVELS, MAX_TINT, MIN_TINT, SV_RADIUS,  # noqa: E402
                                     SurfaceView, decision_surface)
from dlviz_gpu.views.trees import hex_to_rgb, class_colours  # noqa: E402


def render(obj):
    return hv.renderer("bokeh").instance(mode="server").get_plot(obj, doc=Document())


@pytest.fixture(scope="module")
def iris():
    return load_iris()


@pytest.fixture(scope="module")
def iris2(iris):
    return iris.data[:, 2:], iris.target, list(iris.feature_names[2:])


@pytest.fixture(scope="module")
def svc(iris2):
    X, y, _ = iris2
    return SVC(gamma=2.0).fit(X, y)


def centres_of(g):
    xx, yy = np.meshgrid(g.x, g.y)
    return np.c_[xx.ravel(), yy.ravel()]


@pytest.mark.parametrize("make", [
    lambda: SVC(gamma=2.0),
    lambda: RandomForestClassifier(n_estimators=10, random_state=0),
    lambda: GaussianNB(),
    lambda: make_pipeline(StandardScaler(), LogisticRegression()),
])
def test_classes_on_every_cell_are_predict_and_decision_boundary_display(make, iris2):
    X, y, names = iris2
    est = make().fit(X, y)
    view = SurfaceView(est, X, y, width=120, height=90)
    g = view.grid()
    assert g.classes.shape == (90, 120)
    (x0, x1), (y0, y1) = view.extent
    assert g.x_range == (x0, x1) and g.y_range == (y0, y1)
    expected = est.predict(centres_of(g)).reshape(g.classes.shape)
    np.testing.assert_array_equal(est.classes_[g.classes], expected)
    # DecisionBoundaryDisplay's own grid and response, evaluated through the view's plane
    disp = DecisionBoundaryDisplay.from_estimator(est, X, grid_resolution=57,
                                                  response_method="predict")
    res = evaluate_points(view.model, view.plane, disp.xx0[0], disp.xx1[:, 0])
    np.testing.assert_array_equal(res["classes"], disp.response)
    import matplotlib.pyplot as plt

    plt.close("all")


def test_auto_response_matches_decision_boundary_display_probabilities(iris2):
    X, y, _ = iris2
    est = LogisticRegression(max_iter=500).fit(X, y)
    view = SurfaceView(est, X, y)
    # DecisionBoundaryDisplay's "auto" prefers decision_function; ours predict_proba
    disp = DecisionBoundaryDisplay.from_estimator(est, X, grid_resolution=40,
                                                  response_method="predict_proba")
    res = evaluate_points(view.model, view.plane, disp.xx0[0], disp.xx1[:, 0])
    np.testing.assert_allclose(res["scores"], disp.response, rtol=1e-12)
    np.testing.assert_array_equal(res["classes"], disp.response.argmax(axis=2))
    import matplotlib.pyplot as plt

    plt.close("all")


def test_zoom_re_evaluates_the_visible_window(svc, iris2):
    X, y, _ = iris2
    dmap = decision_surface(svc, X, y, width=160, height=120)
    plot = render(dmap)
    view = dmap.view
    assert view.updates == 1 and view.last["canvas"] == (160, 120)
    rgb_before = np.asarray(plot.subplots[list(plot.subplots)[0]].handles["source"].data["image"][0])
    stream = next(s for s in dmap.streams if isinstance(s, hv.streams.RangeXY))
    stream.event(x_range=(4.0, 5.5), y_range=(1.2, 1.9))
    assert view.updates == 2
    assert view.last["window"] == ((4.0, 5.5), (1.2, 1.9))
    g = view.grid((4.0, 5.5), (1.2, 1.9), 160, 120)
    np.testing.assert_array_equal(svc.classes_[g.classes],
                                  svc.predict(centres_of(g)).reshape(120, 160))
    # the plotted frame changed: the zoomed window has a boundary across it
    # the invisible hover image: Bokeh calls its first plane (the class) "image"
    hover = [p for p in plot.subplots.values() if "confidence" in p.handles["source"].data]
    cls = np.asarray(hover[0].handles["source"].data["image"][0])
    np.testing.assert_array_equal(cls, g.classes)
    assert len(np.unique(cls)) == 2
    assert rgb_before.shape == (120, 160)
    # the callback itself, called with new ranges and a new size
    frame = dmap.callback.callable(x_range=(1.0, 2.0), y_range=(0.0, 0.5), width=50, height=40)
    assert isinstance(frame, hv.Overlay)
    assert view.last["window"] == ((1.0, 2.0), (0.0, 0.5)) and view.last["canvas"] == (50, 40)


def test_colours_confidence_points_and_hover(iris2):
    X, y, names = iris2
    est = GaussianNB().fit(X, y)
    view = SurfaceView(est, X, y, feature_names=names, class_names=["se", "ve", "vi"],
                       width=200, height=150)
    res = view.planes()
    g = res["grid"]
    colours = hex_to_rgb(class_colours(3))
    # the strength rounded to 1/255 (a lookup table of LEVELS shades per class)
    amount = MIN_TINT + (MAX_TINT - MIN_TINT) * np.rint(g.strength * (LEVELS - 1)) / (LEVELS - 1)
    expected = 255 - amount[..., None] * (255 - colours[g.classes])
    no_point = res["count"] == 0
    # cells far from every sample show the tinted class colour exactly
    from dlviz_gpu.views.surface import POINT_RADIUS, _disc

    far = ~_disc(~no_point, POINT_RADIUS + 1)
    assert far.mean() > 0.8
    np.testing.assert_array_equal(res["rgb"][far], np.clip(np.rint(expected[far]), 0, 255))
    # every sample's pixel shows its own class's full colour (one class per pixel here)
    (x0, x1), (y0, y1) = g.x_range, g.y_range
    px = np.floor((X[:, 0] - x0) * 200 / (x1 - x0)).astype(int)
    py = np.floor((X[:, 1] - y0) * 150 / (y1 - y0)).astype(int)
    assert res["count"].sum() == len(X)
    for k in range(3):
        sel = y == k
        pix = set(zip(py[sel], px[sel])) - set(zip(py[~sel], px[~sel]))
        got = np.array([res["rgb"][r, c] for r, c in pix])
        assert np.all(got == colours[k])
    el = view.element()
    plot = render(el)
    tips = [t[0] for p in plot.subplots.values() if "hover" in p.handles
            for t in p.handles["hover"].tooltips]
    assert tips[:3] == ["x", "y", "class"]
    assert {"p(se)", "p(ve)", "p(vi)", "confidence", "samples"} <= set(tips)
    legend = [item.label["value"] for item in plot.state.legend[0].items]
    assert legend == ["se", "ve", "vi"]
    # fewer hover planes, fewer bytes per zoom
    small = SurfaceView(est, X, y, class_names=["se", "ve", "vi"], width=200, height=150,
                        hover="class")
    splot = render(small.element())
    tips = [t[0] for p in splot.subplots.values() if "hover" in p.handles
            for t in p.handles["hover"].tooltips]
    assert tips == ["x", "y", "class", "confidence", "samples"]
    bare = render(SurfaceView(est, X, y, hover=None, width=200, height=150).element())
    assert not [p for p in bare.subplots.values() if "hover" in p.handles]
    with pytest.raises(ValueError, match="hover: expected one of full, class, none; got 'all'"):
        SurfaceView(est, X, y, hover="all")
    assert plot.state.xaxis[0].axis_label == "petal length (cm)"


def test_support_vectors_are_ringed(iris2):
    X, y, _ = iris2
    pipe = make_pipeline(StandardScaler(), SVC(C=0.5)).fit(X, y)
    view = SurfaceView(pipe, X, y, width=300, height=200)
    svc = pipe[-1]
    # back through the scaler: the support vectors are the training rows they came from
    np.testing.assert_allclose(view.sv, X[svc.support_], atol=1e-12)
    assert f"{len(svc.support_)} support vectors" in view.title()
    res = view.planes()
    g = res["grid"]
    (x0, x1), (y0, y1) = g.x_range, g.y_range
    # the ring pixels SV_RADIUS + 1 left and right of every support vector are black
    px = np.floor((view.sv[:, 0] - x0) * 300 / (x1 - x0)).astype(int)
    py = np.floor((view.sv[:, 1] - y0) * 200 / (y1 - y0)).astype(int)
    black = np.all(res["rgb"] == 0, axis=2)
    for dx in (-SV_RADIUS - 1, SV_RADIUS + 1):
        assert black[py, px + dx].all()
    # and nothing else is black: only rings are
    far = np.ones_like(black)
    for r, c in zip(py, px):
        far[max(r - SV_RADIUS - 1, 0):r + SV_RADIUS + 2, max(c - SV_RADIUS - 1, 0):c + SV_RADIUS + 2] = False
    assert not black[far].any()
    off = SurfaceView(pipe, X, y, support_vectors=False)
    assert off.sv is None and "support vectors" not in off.title()


def test_torch_mlp_surface_is_torch_argmax(iris2):
    torch = pytest.importorskip("torch")
    X, y, _ = iris2
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(2, 32), torch.nn.ReLU(), torch.nn.Linear(32, 3))
    opt = torch.optim.Adam(mlp.parameters(), 0.02)
    xt, yt = torch.tensor(X, dtype=torch.float32), torch.tensor(y)
    for _ in range(150):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(mlp(xt), yt).backward()
        opt.step()
    dmap = decision_surface(mlp, X, y, width=140, height=100,
                            class_names=["setosa", "versicolor", "virginica"])
    render(dmap)
    view = dmap.view
    assert view.model.method == "softmax"
    g = view.grid()
    with torch.no_grad():
        logits = mlp(torch.tensor(centres_of(g), dtype=torch.float32))
    np.testing.assert_array_equal(g.classes.ravel(), logits.argmax(1).numpy())
    assert len(np.unique(g.classes)) == 3
    g2 = view.grid((3.0, 5.0), (1.0, 2.0), 64, 48)
    with torch.no_grad():
        logits = mlp(torch.tensor(centres_of(g2), dtype=torch.float32))
    np.testing.assert_array_equal(g2.classes.ravel(), logits.argmax(1).numpy())
    with pytest.raises(ValueError, match=r"y: expected class indices in 0\.\.2 \(the module has 3 "
                                         r"outputs\); got 3 at row 0"):
        SurfaceView(mlp, X, np.full(len(X), 3))


def test_more_features_median_and_pca_planes(wine):
    X, y = wine.data, wine.target
    est = make_pipeline(StandardScaler(), SVC()).fit(X, y)
    med = SurfaceView(est, X, y, features=("alcohol", "flavanoids"), width=90, height=70,
                      feature_names=wine.feature_names)
    g = med.grid()
    pts = np.tile(np.median(X, axis=0), (g.classes.size, 1))
    c = centres_of(g)
    pts[:, 0], pts[:, 6] = c[:, 0], c[:, 1]
    np.testing.assert_array_equal(est.classes_[g.classes].ravel(), est.predict(pts))
    assert "other features at their medians: malic_acid = " in med.title()
    pca = SurfaceView(est, X, y, plane="pca", width=90, height=70)
    gp = pca.grid()
    lifted = pca.plane.lift(*np.meshgrid(gp.x, gp.y))
    np.testing.assert_array_equal(est.classes_[gp.classes].ravel(), est.predict(lifted))
    # the lifted grid lies on the plane: its standardised points are combinations of 2 PCs
    z = (lifted - X.mean(0)) / X.std(0)
    resid = z - (z @ pca.plane.components.T) @ pca.plane.components
    assert np.abs(resid).max() < 1e-9
    plot = render(decision_surface(est, X, y, plane="pca", width=90, height=70))
    assert plot.state.xaxis[0].axis_label.startswith("PC1 (")
    assert "principal components" in plot.state.title.text
    # the PCA plane separates wine's three classes; the median slice shows fewer
    assert len(np.unique(gp.classes)) == 3


def test_naive_bayes_densities_are_sigma_contours(iris2):
    X, y, _ = iris2
    nb = GaussianNB().fit(X, y)
    view = SurfaceView(nb, X, y, densities=True, width=240, height=180)
    res = view.planes()
    assert len(res["densities"]) == 3
    for k, lines in enumerate(res["densities"]):
        assert lines
        pts = np.concatenate(lines)
        q = np.sum((pts - nb.theta_[k]) ** 2 / nb.var_[k], axis=1)
        # every contour vertex lies on the 1, 2 or 3 sigma level (linear interpolation)
        near = np.min(np.abs(q[:, None] - np.array([1.0, 4.0, 9.0])), axis=1)
        assert np.quantile(near, 0.99) < 0.05
    el = view.element()
    assert len(el.Density) == 3
    with pytest.raises(ValueError, match="densities: class-conditional densities need a Gaussian "
                                         "naive Bayes model .*got SVC"):
        SurfaceView(SVC().fit(X, y), X, y, densities=True)


def test_breast_cancer_binary_probabilities(breast):
    X, y = breast.data, breast.target
    est = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, y)
    view = SurfaceView(est, X, y, features=(0, 1), width=50, height=40)
    g = view.grid()
    pts = np.tile(np.median(X, axis=0), (g.classes.size, 1))
    pts[:, :2] = centres_of(g)
    np.testing.assert_array_equal(g.classes.ravel(), est.predict(pts))
    np.testing.assert_allclose(g.confidence.ravel(), est.predict_proba(pts).max(axis=1))
    np.testing.assert_allclose(g.strength, np.clip(2 * g.confidence - 1, 0, 1))


@pytest.fixture(scope="module")
def wine():
    return load_wine()


@pytest.fixture(scope="module")
def breast():
    return load_breast_cancer()


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(estimator="reg"), TypeError,
     r"estimator: expected a classifier \(this view colours classes\); got a regressor "
     r"\(LinearRegression\)"),
    (dict(estimator="unfitted"), ValueError, r"estimator: expected a fitted estimator; got an "
                                            r"unfitted SVC"),
    (dict(X="narrow"), ValueError, r"X: expected 2 columns \(the estimator SVC was fitted on 2 "
                                   r"features, n_features_in_\); got 1"),
    (dict(features=(0, 2)), ValueError, r"features: expected two different column indices in "
                                        r"0\.\.1 .*2 is out of range"),
    (dict(y="bad"), ValueError, r"y: expected labels among the estimator's classes_ \[0, 1, 2\]; "
                                r"got np.int64\(7\) at row 0|y: expected labels among the "
                                r"estimator's classes_ \[0, 1, 2\]; got 7 at row 0"),
    (dict(y="short"), ValueError, r"y: expected one label per row of X \(150\); got shape \(3,\)"),
    (dict(plane="lda"), ValueError, r"plane: expected one of median, pca; got 'lda'"),
    (dict(response="predict_proba"), ValueError, r"response: SVC has no predict_proba"),
    (dict(pixel_ratio=0), ValueError, r"pixel_ratio: expected a number in \(0, 4\]; got 0"),
    (dict(width=0), ValueError, r"width"),
    (dict(densities="yes"), TypeError, r"densities: expected True or False; got 'yes'"),
])
def test_bad_input(kwargs, exc, match, svc, iris2):
    X, y, _ = iris2
    args = dict(estimator=svc, X=X, y=y)
    args.update(kwargs)
    if args["estimator"] == "reg":
        args["estimator"] = LinearRegression().fit(X, y)
    elif args["estimator"] == "unfitted":
        args["estimator"] = SVC()
    if isinstance(args["X"], str):
        args["X"] = X[:, :1]
    if isinstance(args["y"], str):
        args["y"] = np.full(len(X), 7) if args["y"] == "bad" else y[:3]
    with pytest.raises(exc, match=match):
        decision_surface(**args)


def test_torch_width_mismatch_is_named(iris):
    torch = pytest.importorskip("torch")
    mlp = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.ReLU(), torch.nn.Linear(4, 3))
    with pytest.raises(ValueError, match=r"X: the module could not evaluate rows of 4 features"):
        decision_surface(mlp, iris.data)


def test_save_html_and_png(tmp_path, svc, iris2):
    from PIL import Image

    import dlviz_gpu as dv

    X, y, names = iris2
    dmap = decision_surface(svc, X, y, width=240, height=180, feature_names=names)
    page = dv.save(dmap, tmp_path / "surface.html")
    text = page.read_text(encoding="utf-8")
    assert "cdn.bokeh.org" not in text and "petal length (cm)" in text
    png = dv.save(dmap, tmp_path / "surface.png")
    img = np.asarray(Image.open(io.BytesIO(png.read_bytes())).convert("RGB"))
    assert img.shape[0] > 180 and img.shape[1] > 240
    # all three (tinted) class colours are in the picture
    for c in hex_to_rgb(class_colours(3)):
        tinted = 255 - MAX_TINT * (255 - c)
        close = np.all(np.abs(img.astype(float) - tinted) < 40, axis=2)
        assert close.mean() > 0.01
