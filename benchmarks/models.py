"""``python -m benchmarks models [--quick] [--out DIR]``: decision surfaces, trees, graphs.

Reports, never asserts.  Everything runs in one process on one machine, on
the wine data scikit-learn ships (178 samples, 3 classes; the two features
``alcohol`` and ``flavanoids``, which is what ``DecisionBoundaryDisplay``
needs), so compare ratios, not absolute times.

**Decision surfaces**, for an RBF SVM (``StandardScaler`` + ``SVC``), a random
forest (100 trees) and a torch MLP (2-64-64-3, trained here), each at the
same ``n x n`` grid (``n`` = 400, 200 with ``--quick``):

- ``same class``: the share of grid cells where our class equals
  ``DecisionBoundaryDisplay.from_estimator(response_method="predict")`` on
  scikit-learn's own grid points (``evaluate_points`` on its ``xx0``,
  ``xx1``); must be 1.0.  The torch MLP reaches scikit-learn through a small
  estimator wrapper (``predict_proba`` = softmax of the logits), as a user
  would have to write;
- ``DecisionBoundaryDisplay``: ``from_estimator`` with its default
  ``response_method="auto"`` (one response call; contourf on a matplotlib
  Agg figure), the time per view a scikit-learn user waits for;
- ``model alone``: one call of the response ``"auto"`` picks, on the same
  ``n x n`` points: the floor for any tool;
- ``ours, grid``: :meth:`SurfaceView.grid` at ``n x n`` (class and
  confidence: ``predict`` and ``decision_function`` for the SVM, one
  ``predict_proba`` for the forest, one batched forward for the MLP);
- ``ours, frame``: :meth:`SurfaceView.element` (grid, picture, samples drawn
  by the points kernel, hover planes): what each zoom builds.

The ratio column of the time rows is DecisionBoundaryDisplay's time divided
by ours (> 1: ours is faster).  Time rows are the best of ``--repeats`` calls
after a warm-up call (the development VM is shared and torch's threads suffer
badly from other processes; every time is in the JSON); the zoom row is the
median of its range changes.

**Torch MLP per zoom**: ``dv.decision_surface`` of the MLP in an 800 x 600
frame, rendered the way a Bokeh server renders it, and zoomed by
``RangeXY.event`` between two windows (as ``benchmarks/views.py``): the
median server-side update (model on 480,000 cells, picture, HoloViews,
Bokeh), goal < 200 ms; and the grid alone.

**Trees**: fitted on random labels (so every split is real and the tree
grows to the requested size through ``max_leaf_nodes``), 1k, 10k and 20k
nodes: node extraction, :func:`tree_layout`, the view (hover columns),
the Bokeh plot (server mode) and a standalone HTML page.  Goal: a 20,000-node
tree drawn in under 2 s.

**Structure graphs**: where ``benchmarks/graph_layout.py`` exists, its
``measure((1000, 10000))`` rows.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
import traceback

import numpy as np

from ._common import (Row, ensure_dlviz, format_table, high_load_note, loadavg, machine_info,
                      peak_rss_mib, progress, timestamp, write_json)

DEFAULT_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
ZOOM_FRAME = (800, 600)
ZOOM_GOAL_MS = 200.0
TREE_GOAL_S = 2.0
TREE_SIZES = (1000, 10000, 20000)
GRAPH_SIZES = (1000, 10000)
FEATURES = ("alcohol", "flavanoids")


def _settings(quick: bool, repeats: int | None, grid: int | None = None) -> dict:
    if grid is not None and grid < 2:
        raise ValueError(f"grid: expected at least 2 cells per side; got {grid}")
    return {"quick": quick, "grid": int(grid or (200 if quick else 400)),
            "repeats": int(repeats or (3 if quick else 5)),
            "zoom_events": 6 if quick else 12, "zoom_frame": list(ZOOM_FRAME),
            "tree_sizes": list(TREE_SIZES), "graph_sizes": list(GRAPH_SIZES),
            "features": list(FEATURES)}


def _best_time(fn, repeats: int, warmup: int = 1):
    """(best time, all times, the last result) of ``repeats`` calls after ``warmup``."""
    for _ in range(warmup):
        out = fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), times, out


def _err(name: str, exc: BaseException) -> Row:
    return Row(name, error=f"{type(exc).__name__}: {exc}",
               extra={"traceback": traceback.format_exc(limit=6)})


# --------------------------------------------------------------------------
# The models
# --------------------------------------------------------------------------

def _data():
    from sklearn.datasets import load_wine

    w = load_wine()
    cols = [list(w.feature_names).index(f) for f in FEATURES]
    return w.data[:, cols].astype(np.float64), w.target


def _mlp(X, y, seed: int = 0):
    """A 2-64-64-3 ReLU MLP with the standardisation built in, trained with Adam."""
    import torch

    torch.manual_seed(seed)
    mean = torch.tensor(X.mean(axis=0), dtype=torch.float32)
    std = torch.tensor(X.std(axis=0), dtype=torch.float32)

    class Standardise(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("mean", mean)
            self.register_buffer("std", std)

        def forward(self, x):
            return (x - self.mean) / self.std

    net = torch.nn.Sequential(Standardise(), torch.nn.Linear(2, 64), torch.nn.ReLU(),
                              torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 3))
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    xt = torch.tensor(X, dtype=torch.float32)
    yt = torch.tensor(y)
    for _ in range(400):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(xt), yt).backward()
        opt.step()
    net.eval()
    return net


def _torch_estimator(net, n_classes: int):
    """A scikit-learn classifier around a torch module, so DecisionBoundaryDisplay takes it."""
    import torch
    from sklearn.base import BaseEstimator, ClassifierMixin

    class TorchClassifier(ClassifierMixin, BaseEstimator):
        def __init__(self, module=None):
            self.module = module

        def fit(self, X, y=None):
            return self

        def predict_proba(self, X):
            with torch.inference_mode():
                logits = self.module(torch.as_tensor(np.asarray(X), dtype=torch.float32))
            return torch.softmax(logits, dim=1).numpy().astype(np.float64)

        def predict(self, X):
            with torch.inference_mode():
                logits = self.module(torch.as_tensor(np.asarray(X), dtype=torch.float32))
            return self.classes_[logits.argmax(dim=1).numpy()]

    est = TorchClassifier(net)
    est.classes_ = np.arange(n_classes)
    est.n_features_in_ = 2
    return est


def _models(X, y):
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    svm = make_pipeline(StandardScaler(), SVC(kernel="rbf", C=1.0, gamma="scale")).fit(X, y)
    forest = RandomForestClassifier(n_estimators=100, random_state=0).fit(X, y)
    net = _mlp(X, y)
    return [("RBF SVM", svm, svm), ("random forest", forest, forest),
            ("torch MLP", net, _torch_estimator(net, 3))]


# --------------------------------------------------------------------------
# Decision surfaces against DecisionBoundaryDisplay
# --------------------------------------------------------------------------

def _dbd(est, X, n: int, response: str = "auto"):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from sklearn.inspection import DecisionBoundaryDisplay

    fig, ax = plt.subplots()
    try:
        return DecisionBoundaryDisplay.from_estimator(est, X, grid_resolution=n,
                                                      response_method=response, ax=ax)
    finally:
        plt.close(fig)


def _surface_rows(name, model, sk_est, X, y, cfg, bar) -> list[Row]:
    from dlviz_gpu.estimators import evaluate_points
    from dlviz_gpu.views.surface import SurfaceView

    n, R = cfg["grid"], cfg["repeats"]
    rows: list[Row] = []
    view = SurfaceView(model, X, y, feature_names=list(FEATURES), width=n, height=n)
    # the same classes as scikit-learn, on scikit-learn's own grid points
    disp = _dbd(sk_est, X, n, "predict")
    ours = evaluate_points(view.model, view.plane, disp.xx0[0], disp.xx1[:, 0])["classes"]
    same = float(np.mean(ours == disp.response))
    rows.append(Row(f"{name}: same class as DecisionBoundaryDisplay", value=same,
                    metric="of cells", goal=(">=", 1.0),
                    note=f"{n} x {n} grid, DecisionBoundaryDisplay(response_method='predict'); "
                         f"{int(np.sum(ours != disp.response))} cells differ",
                    extra={"cells": n * n, "differ": int(np.sum(ours != disp.response))}))
    bar.update(1)
    # time per view
    t_dbd, tl_dbd, d_auto = _best_time(lambda: _dbd(sk_est, X, n), R)
    bar.update(1)
    (x0, x1), (y0, y1) = view.extent
    grid_pts = view.plane.lift(*np.meshgrid(
        x0 + (np.arange(n) + 0.5) * (x1 - x0) / n, y0 + (np.arange(n) + 0.5) * (y1 - y0) / n))
    method = view.model.method if view.model.kind == "sklearn" else "predict_proba"
    t_model, tl_model, _ = _best_time(lambda: getattr(sk_est, method)(grid_pts), R)
    t_grid, tl_grid, _ = _best_time(lambda: view.grid(), R)
    bar.update(1)
    # frames of alternating windows, so none comes from the view's last-frame cache
    wins = [(None, None), ((x0 + 0.01 * (x1 - x0), x1), (y0, y1))]
    k = [0]

    def frame():
        k[0] += 1
        return view.element(*wins[k[0] % 2], n, n)
    t_frame, tl_frame, _ = _best_time(frame, R)
    bar.update(1)
    auto_response = getattr(d_auto, "response", None)
    rows += [
        Row(f"{name}: DecisionBoundaryDisplay (auto, contourf)", time_s=t_dbd,
            note=f"from_estimator, grid_resolution={n}, matplotlib Agg; best of {R}",
            extra={"times_s": tl_dbd,
                   "response_shape": None if auto_response is None
                   else list(auto_response.shape)}),
        Row(f"{name}: model alone ({method}, {n}x{n})", time_s=t_model,
            note="one response call on the n x n points: the floor for any tool",
            extra={"times_s": tl_model}),
        Row(f"{name}: ours, grid (class + confidence)", time_s=t_grid, value=t_dbd / t_grid,
            metric="x faster than DBD",
            note=f"SurfaceView.grid at {n} x {n}, response {view.model.method}; "
                 f"{t_grid / t_model:.2f} x the model alone",
            extra={"times_s": tl_grid, "vs_model_alone": t_grid / t_model}),
        Row(f"{name}: ours, frame (grid + picture + samples)", time_s=t_frame,
            value=t_dbd / t_frame, metric="x faster than DBD",
            note=f"SurfaceView.element at {n} x {n}: what each zoom builds before Bokeh",
            extra={"times_s": tl_frame}),
    ]
    return rows


def _zoom_rows(net, X, y, cfg, bar) -> list[Row]:
    from dlviz_gpu.views import quiet_bokeh
    from dlviz_gpu.views.surface import decision_surface

    quiet_bokeh()

    from .views import Served

    w, h = ZOOM_FRAME
    dmap = decision_surface(net, X, y, width=w, height=h, feature_names=list(FEATURES))
    view = dmap.view
    t_grid, tl_grid, _ = _best_time(lambda: view.grid(), cfg["repeats"])
    served = Served(dmap)
    (x0, x1), (y0, y1) = view.extent
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    wins = [((cx - 0.25 * (x1 - x0), cx + 0.25 * (x1 - x0)), (cy - 0.25 * (y1 - y0),
                                                              cy + 0.25 * (y1 - y0))),
            ((cx - 0.2 * (x1 - x0), cx + 0.3 * (x1 - x0)), (cy - 0.3 * (y1 - y0),
                                                            cy + 0.2 * (y1 - y0)))]
    for k in range(2):
        served.zoom(*wins[k % 2])
    recs, models_s = [], []
    for k in range(cfg["zoom_events"]):
        recs.append(served.zoom(*wins[k % 2]))
        models_s.append(view.last["model_seconds"])
    served.close()
    walls = [r["wall_s"] for r in recs]
    views = [r["aggregate_s"] for r in recs]
    med = statistics.median(walls)
    best = min(walls)
    bar.update(1)
    return [
        Row(f"torch MLP {w}x{h}: zoom update (server side)", time_s=med, value=med * 1e3,
            metric="ms median", goal=("<", ZOOM_GOAL_MS),
            note=f"RangeXY.event on a server-mode Bokeh plot, median of {len(recs)} range "
                 f"changes alternating two windows (best {best * 1e3:.0f} ms); medians: the "
                 f"view's frame {statistics.median(views) * 1e3:.0f} ms, of which the model "
                 f"{statistics.median(models_s) * 1e3:.0f} ms; the rest is HoloViews + Bokeh",
            extra={"times_s": walls, "view_s": views, "model_s": models_s,
                   "canvas": recs[-1]["canvas"],
                   "patch_bytes": [r["patch_bytes"] for r in recs]}),
        Row(f"torch MLP {w}x{h}: grid alone", time_s=t_grid, value=t_grid * 1e3,
            metric=f"ms, best of {cfg['repeats']}", note="SurfaceView.grid: 480,000 cells, one batched forward "
                                     "per 16,384 rows (TORCH_BATCH), softmax",
            extra={"times_s": tl_grid}),
    ]


# --------------------------------------------------------------------------
# Trees
# --------------------------------------------------------------------------

def _tree_of(nodes: int, seed: int = 0):
    from sklearn.tree import DecisionTreeClassifier

    rng = np.random.default_rng(seed)
    n = max(200, int(nodes * 1.4))
    X = rng.standard_normal((n, 8))
    y = rng.integers(0, 4, n)
    return DecisionTreeClassifier(max_leaf_nodes=(nodes + 1) // 2, random_state=seed).fit(X, y)


def _tree_rows(cfg, bar, folder: str) -> list[Row]:
    import holoviews as hv
    from bokeh.document import Document

    from dlviz_gpu.estimators import tree_layout, tree_nodes
    from dlviz_gpu.views import quiet_bokeh
    from dlviz_gpu.views.output import save
    from dlviz_gpu.views.trees import TreeView, tree

    quiet_bokeh()
    rows = []
    R = cfg["repeats"]
    # warm-up: imports, HoloViews' first plot
    save(tree(_tree_of(63)), os.path.join(folder, "warm.html"))
    for size in cfg["tree_sizes"]:
        try:
            est = _tree_of(size)
            count = int(est.tree_.node_count)
            t_nodes, _, nd = _best_time(lambda: tree_nodes(est), R)
            t_lay, tl_lay, _ = _best_time(lambda: tree_layout(nd), R)
            t_view, _, _ = _best_time(lambda: TreeView(est), R)

            def plot():
                p = hv.renderer("bokeh").instance(mode="server").get_plot(tree(est),
                                                                         doc=Document())
                p.cleanup()
            t_plot, _, _ = _best_time(plot, R)
            path = os.path.join(folder, f"tree{size}.html")
            t_html, _, _ = _best_time(lambda: save(tree(est), path), R)
            mib = os.path.getsize(path) / 2 ** 20
            total = t_view + t_plot + t_html
            rows.append(Row(f"tree {count:,} nodes: layout", time_s=t_lay,
                            note=f"tree_layout alone; node arrays {t_nodes * 1e3:.1f} ms",
                            extra={"nodes": count, "nodes_s": t_nodes, "times_s": tl_lay}))
            rows.append(Row(f"tree {count:,} nodes: view + plot + HTML", time_s=total,
                            value=total, metric="s",
                            goal=("<", TREE_GOAL_S) if count >= 20000 else None,
                            note=f"TreeView {t_view * 1e3:.0f} ms, Bokeh plot (server mode) "
                                 f"{t_plot * 1e3:.0f} ms, standalone HTML {t_html * 1e3:.0f} ms "
                                 f"({mib:.1f} MiB)",
                            extra={"nodes": count, "view_s": t_view, "plot_s": t_plot,
                                   "html_s": t_html, "html_mib": mib}))
        except Exception as exc:  # reported, never hidden
            rows.append(_err(f"tree {size:,} nodes", exc))
        bar.update(1)
    return rows


# --------------------------------------------------------------------------
# Structure graphs (benchmarks/graph_layout.py, when present)
# --------------------------------------------------------------------------

def _graph_rows(cfg) -> tuple[list[Row], list]:
    try:
        from . import graph_layout
    except ImportError as exc:
        return [Row("graph layout", error=f"benchmarks/graph_layout.py not available ({exc})")], []
    try:
        raw = graph_layout.measure(tuple(cfg["graph_sizes"]))
    except Exception as exc:
        return [_err("graph layout", exc)], []
    rows = []
    for r in raw:
        name = f"graph: {r.get('name')}"
        if r.get("error"):
            rows.append(Row(name, error=r["error"], extra=r))
            continue
        total = r.get("total_s")
        goal = ("<", r["goal_s"]) if r.get("goal_s") else None
        parts = [f"{k[:-2]} {r[k] * 1e3:.0f} ms" for k in
                 ("structure_s", "layout_s", "element_s", "html_s") if r.get(k) is not None]
        note = f"{r.get('nodes', 0):,} nodes" + (f", {r['edges']:,} edges" if "edges" in r
                                                  else "") + ("; " + ", ".join(parts)
                                                              if parts else "")
        rows.append(Row(name, time_s=total, value=total, metric="s", goal=goal, note=note,
                        extra=r))
    return rows, raw


# --------------------------------------------------------------------------
# The suite
# --------------------------------------------------------------------------

def run(quick: bool = False, out_dir: str = DEFAULT_OUT, repeats: int | None = None,
        grid: int | None = None, graph: bool = True) -> dict:
    """Run every part, print the table, write the JSON; returns the JSON payload.

    ``grid`` overrides the comparison grid's side; ``graph=False`` skips the
    structure-graph rows (a smoke run: ``--quick --grid 40 --repeats 1 --no-graph``).
    """
    wall0 = time.perf_counter()
    load0 = loadavg()
    stamp = timestamp()
    cfg = _settings(quick, repeats, grid)
    cfg["graph"] = bool(graph)
    found = ensure_dlviz()
    print(f"models benchmark: decision surfaces at {cfg['grid']} x {cfg['grid']} vs "
          f"DecisionBoundaryDisplay, torch MLP zoom at {ZOOM_FRAME[0]} x {ZOOM_FRAME[1]}, "
          f"trees of {', '.join(map(str, TREE_SIZES))} nodes" + (" [quick]" if quick else ""),
          file=sys.stderr, flush=True)
    rows: list[Row] = []
    graph_raw: list = []
    bar = progress(3 * 4 + 1 + len(TREE_SIZES) + 1, "models")
    try:
        X, y = _data()
        models = _models(X, y)
    except Exception as exc:
        models = []
        rows.append(_err("training the models", exc))
    for name, model, sk_est in models:
        try:
            rows += _surface_rows(name, model, sk_est, X, y, cfg, bar)
        except Exception as exc:
            rows.append(_err(f"{name}: decision surface", exc))
    net = next((m for name, m, _ in models if name == "torch MLP"), None)
    if net is not None:
        try:
            rows += _zoom_rows(net, X, y, cfg, bar)
        except Exception as exc:
            rows.append(_err("torch MLP zoom", exc))
    with tempfile.TemporaryDirectory() as folder:
        try:
            rows += _tree_rows(cfg, bar, folder)
        except Exception as exc:
            rows.append(_err("trees", exc))
    if graph:
        g_rows, graph_raw = _graph_rows(cfg)
        rows += g_rows
    bar.update(1)
    bar.close()
    load1 = loadavg()
    wall = time.perf_counter() - wall0
    title = (f"dlviz_gpu models benchmark: decision surfaces ({cfg['grid']} x {cfg['grid']} grid, "
             f"best of {cfg['repeats']}), torch MLP zoom (median), tree and graph layout"
             + (" [quick]" if quick else "") + high_load_note(load0, load1,
                                                             "; re-run on a quiet machine"))
    print(format_table(rows, title))
    print(f"total {wall:.1f} s; peak RSS {peak_rss_mib():.0f} MiB")
    payload = {
        "suite": "models",
        "started": stamp,
        "config": cfg,
        "machine": machine_info(("numpy", "numba", "sklearn", "torch", "holoviews", "bokeh",
                                 "matplotlib")),
        "package": found,
        "loadavg_start": load0,
        "loadavg_end": load1,
        "wall_s": wall,
        "rows": [r.as_dict() for r in rows],
        "graph_layout_rows": graph_raw,
    }
    path = write_json(out_dir, "models", payload, stamp)
    print(f"results: {path}")
    return payload


__all__ = ["run"]
