"""Draw the README's pictures with the project itself: ``python scripts/make_pictures.py``.

``python scripts/make_pictures.py [views] [dashboard] [training] [models]``
(default: all) writes into ``docs/images/``:

- ``views``: every view picture, by ``dv.save(view, "....png")`` (no browser);
  the data are deterministic, so reruns give the same files.
- ``dashboard``: ``dashboard.png`` and ``dashboard-layers.png``, screenshots of
  the real dashboard (the demo's TinyGPT, seed 0, after 100 training steps)
  served on a free port and loaded in headless Chromium by Playwright
  (``/usr/bin/chromium`` or ``$DLVIZ_CHROMIUM``, as the browser tests use).
  The model and its training are seeded; the screenshots may still differ by
  a few anti-aliased pixels between machines.
- ``models``: the model views: TinyGPT's structure graph; an RBF SVM's
  decision surface on scikit-learn's wine data, a random forest tree on iris,
  feature importances on breast cancer.
- ``training``: the training views (curves, gradient flow, update ratios, a
  gradient's distributions over steps) of a real run: TinyGPT trained 120
  steps with ``dv.watch`` into a temporary store.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent.parent / "docs" / "images"


def layer(rows: int = 1024, cols: int = 2816, seed: int = 0) -> np.ndarray:
    """A weight matrix that looks trained: low rank + noise, a few outlier rows and columns."""
    rng = np.random.default_rng(seed)
    u = rng.standard_normal((rows, 8)).astype(np.float32)
    v = rng.standard_normal((8, cols)).astype(np.float32)
    w = (u @ v) * 0.02 + rng.standard_normal((rows, cols)).astype(np.float32) * 0.05
    w[rng.integers(0, rows, 6)] *= 6.0          # outlier units
    w[:, rng.integers(0, cols, 3)] += 0.4       # a few hot input features
    w[700:710, 2000:2010] = np.nan              # a patch that went NaN
    return w


def view_pictures() -> None:
    """The views' pictures (heatmap, scatter, curve, distributions, bars) via ``dv.save``."""
    import dlviz_gpu as dv

    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    w = layer()
    pictures = {
        "heatmap.png": dv.heatmap(w, label="mlp.fc1.weight", width=700, height=300)
        + dv.heatmap(w, agg="extremum", norm="symlog", label="mlp.fc1.weight",
                     width=700, height=300),
    }
    # an embedding-like cloud: 2 M points in five clusters
    n = 2_000_000
    cat = rng.integers(0, 5, n)
    centres = rng.standard_normal((5, 2)) * 4
    xy = centres[cat] + rng.standard_normal((n, 2)) * (0.4 + 0.3 * cat[:, None])
    pictures["scatter.png"] = (dv.scatter(xy, norm="log", width=450, height=350, label="embeddings")
                               + dv.scatter(xy, category=cat, width=450, height=350,
                                            labels=[f"class {k}" for k in range(5)]))
    # a loss curve of 10^6 steps: decaying, noisy, with spikes
    steps = 1_000_000
    t = np.arange(steps)
    loss = (2.5 * np.exp(-t / 2e5) + 0.3 + 0.15 * rng.standard_normal(steps)).astype(np.float32)
    loss[rng.integers(0, steps, 20)] += 3.0
    pictures["curve.png"] = dv.curve(loss, smoothing=0.99, label="loss", width=900, height=300)
    # distributions: a weight tensor drifting over 200 steps
    snaps = [rng.standard_normal(20_000).astype(np.float32) * (1 + s / 100) + s / 200
             for s in range(200)]
    pictures["distributions.png"] = (dv.histplot(snaps[-1], bins=128, label="step 199")
                                     + dv.distribution(snaps, label="weights over steps"))
    pictures["bars.png"] = dv.bars({f"layers.{k}.mlp.weight": float(np.linalg.norm(
        rng.standard_normal(1000) * (1 + k / 4))) for k in range(24)}, label="weight norm")
    for name, obj in pictures.items():
        path = dv.save(obj, OUT / name)
        print(f"wrote {path.relative_to(OUT.parent.parent)}")


# the page is drawn when Bokeh's documents are idle and a plot frame has a size
# (the same test as tests/browser/bokehjs.py's _READY_JS)
_READY_JS = """() => window.Bokeh !== undefined && Bokeh.documents.length > 0
  && Bokeh.documents.every(d => d.is_idle)
  && [...Bokeh.index.all_views()].some(v => v.frame !== undefined && v.frame.bbox.width > 0)"""
# how many plots are laid out (a plot in a hidden tab has a frame of width 0)
_SHOWN_PLOTS_JS = """() => [...Bokeh.index.all_views()].filter(
  v => v.frame !== undefined && v.frame.bbox.width > 0).length"""
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
VIEWPORT = {"width": 1360, "height": 900}
TIMEOUT_MS = 300_000


def _settle(page, n_plots: int) -> None:
    """Wait until ``n_plots`` plots are laid out and the server has nothing left to send."""
    page.wait_for_function(_READY_JS, timeout=TIMEOUT_MS)
    page.wait_for_function(f"() => ({_SHOWN_PLOTS_JS})() >= {n_plots}", timeout=TIMEOUT_MS)
    # the heatmap re-aggregates once at its laid-out size; let that round trip land
    page.wait_for_timeout(1500)
    page.wait_for_function(_READY_JS, timeout=TIMEOUT_MS)
    page.wait_for_timeout(500)


def dashboard_pictures(steps: int = 100) -> None:
    """``dashboard.png`` (Tensor tab) and ``dashboard-layers.png`` (Layers tab) of the demo model.

    The demo's TinyGPT (``build_model(seed=0)``) is trained for ``steps``
    steps first, so the pictures are of trained weights.
    """
    from playwright.sync_api import sync_playwright

    import dlviz_gpu as dv
    from dlviz_gpu.app.demo import Trainer, build_model, demo_input

    exe = os.environ.get("DLVIZ_CHROMIUM") or "/usr/bin/chromium"
    if not os.access(exe, os.X_OK):
        raise SystemExit(f"dashboard pictures: no Chromium at {exe} (apt-get install -y "
                         f"chromium, or set DLVIZ_CHROMIUM)")
    OUT.mkdir(parents=True, exist_ok=True)
    model = build_model(seed=0)
    shape, dtype = demo_input(model)
    # the dashboard first (its summary's meta-device pass must not overlap training)
    trainer = Trainer(model, steps=steps, seed=0)
    board = dv.dashboard(model, input_shape=shape, input_dtype=dtype, trainer=trainer,
                         title="dlviz demo: TinyGPT, training on synthetic data",
                         initial="blocks.0.attn.qkv.weight")
    t0 = time.perf_counter()
    trainer.start()
    while trainer.running:
        time.sleep(0.2)
    if trainer.error is not None:
        raise RuntimeError(f"training failed: {trainer.error!r}")
    print(f"trained {trainer.step} steps in {time.perf_counter() - t0:.1f} s, "
          f"loss {trainer.history[0][1]:.3f} -> {trainer.history[-1][1]:.3f}")
    board.compute_norms(background=False)  # the Layers tab shows them without a click
    board.warm()
    url = board.serve(port=0)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=exe, headless=True,
                                         args=CHROMIUM_ARGS, timeout=TIMEOUT_MS)
            try:
                page = browser.new_page(viewport=VIEWPORT, device_scale_factor=1)
                page.set_default_timeout(TIMEOUT_MS)
                page.goto(str(url), timeout=TIMEOUT_MS)
                _settle(page, n_plots=2)  # heatmap and histogram
                page.screenshot(path=str(OUT / "dashboard.png"), full_page=True)
                print("wrote docs/images/dashboard.png")
                page.get_by_text("Layers", exact=True).first.click()
                _settle(page, n_plots=2)  # parameters and norms per layer
                # down to the lower of the tensor tree and the norms' button (the
                # full page is as tall as the Tensor tab)
                bottom = max(page.locator(".tabulator").first.bounding_box()["y"]
                             + page.locator(".tabulator").first.bounding_box()["height"],
                             page.get_by_text("recompute norms per layer").bounding_box()["y"]
                             + 40)
                page.screenshot(path=str(OUT / "dashboard-layers.png"), full_page=True,
                                clip={"x": 0, "y": 0, "width": VIEWPORT["width"],
                                      "height": int(bottom) + 16})
                print("wrote docs/images/dashboard-layers.png")
            finally:
                browser.close()
    finally:
        url.stop()


def training_pictures(steps: int = 120) -> None:
    """The training views of a real run: the demo's TinyGPT trained with ``dv.watch``."""
    import tempfile

    import dlviz_gpu as dv
    from dlviz_gpu.app.demo import Trainer, build_model

    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        model = build_model(seed=0)
        trainer = Trainer(model, steps=steps, seed=0, threads=2,
                          watch=dict(store=os.path.join(tmp, "demo"), every=2,
                                     snapshot_every=40))
        trainer.run_steps(steps)
        trainer.close()
        run = dv.open_run(os.path.join(tmp, "demo"))
        dv.save(dv.training_curves(run, names=("loss", "lr", "grad_norm"), width=700,
                                   height=160), OUT / "training-curves.png")
        dv.save(dv.gradient_flow(run, width=700), OUT / "gradient-flow.png")
        dv.save(dv.update_ratios(run, width=560, height=320), OUT / "update-ratios.png")
        dv.save(dv.param_distributions(run, "blocks.0.attn.qkv.weight", kind="grad",
                                       width=700, height=260), OUT / "grad-distributions.png")
        run.close()


def model_pictures() -> None:
    """The model views on scikit-learn's shipped datasets and the demo's TinyGPT."""
    from sklearn.datasets import load_breast_cancer, load_iris, load_wine
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    import dlviz_gpu as dv
    from dlviz_gpu.app.demo import build_model, demo_input

    OUT.mkdir(parents=True, exist_ok=True)
    model = build_model(seed=0)
    shape, dtype = demo_input(model)
    dv.save(dv.graph(model, shape, input_dtype=dtype, width=500, height=600),
            OUT / "graph.png")
    wine = load_wine()
    svm = make_pipeline(StandardScaler(), SVC(kernel="rbf", C=3.0, gamma=0.5))
    X = wine.data[:, [0, 6]]                        # alcohol, flavanoids
    svm.fit(X, wine.target)
    dv.save(dv.decision_surface(svm, X, wine.target, width=560, height=420,
                                feature_names=["alcohol", "flavanoids"],
                                class_names=list(wine.target_names)),
            OUT / "decision-surface.png")
    iris = load_iris()
    forest = RandomForestClassifier(n_estimators=50, max_depth=4, random_state=0)
    forest.fit(iris.data, iris.target)
    dv.save(dv.tree(forest, tree_index=0, feature_names=iris.feature_names,
                    class_names=list(iris.target_names), width=760, height=420),
            OUT / "tree.png")
    cancer = load_breast_cancer()
    big = RandomForestClassifier(n_estimators=100, random_state=0).fit(cancer.data,
                                                                       cancer.target)
    dv.save(dv.importances(big, feature_names=list(cancer.feature_names), top=12,
                           width=700, height=300), OUT / "importances.png")


PICTURES = {"views": view_pictures, "dashboard": dashboard_pictures,
            "training": training_pictures, "models": model_pictures}


def main(argv: list[str] | None = None) -> int:
    names = sys.argv[1:] if argv is None else argv
    unknown = [n for n in names if n not in PICTURES]
    if unknown:
        print(f"make_pictures.py: unknown picture set(s) {unknown}; expected any of "
              f"{list(PICTURES)}", file=sys.stderr)
        return 2
    for name in names or list(PICTURES):
        PICTURES[name]()
    return 0


if __name__ == "__main__":
    sys.exit(main())
