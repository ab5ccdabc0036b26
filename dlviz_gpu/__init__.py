"""dlviz_gpu: exact, zoomable pictures of huge tensors.

>>> import dlviz_gpu as dv
>>> r = dv.rasterize(weights, width=800, height=600)   # -> dv.Raster
>>> r.to_xarray()                                       # count, mean, min, max, ...

Importing the package is cheap: the plotting libraries, torch and cupy load
only when something needs them, and numba compiles a kernel the first time it
runs.
"""

from __future__ import annotations

from . import lazy

__version__ = "0.1.0"

# public name -> module that defines it (loaded on first access)
_LAZY = {
    "rasterize": "dlviz_gpu.aggregate",
    "STATS": "dlviz_gpu.aggregate",
    "Raster": "dlviz_gpu.raster",
    "Canvas": "dlviz_gpu.raster",
    "as_matrix": "dlviz_gpu.tensors",
    "Matrix": "dlviz_gpu.tensors",
    "backend": "dlviz_gpu.backend",
    "rasterize_points": "dlviz_gpu.points",
    "decimate": "dlviz_gpu.series",
    "histogram": "dlviz_gpu.histograms",
    "Histogram": "dlviz_gpu.histograms",
    "project": "dlviz_gpu.projection",
    "describe": "dlviz_gpu.tensor_stats",
    # checkpoints and models: dv.models.open(path) -> Catalog
    "models": "dlviz_gpu.models",
    # views (HoloViews / Bokeh; loaded only when used)
    "heatmap": "dlviz_gpu.views",
    "scatter": "dlviz_gpu.views",
    "curve": "dlviz_gpu.views",
    "histplot": "dlviz_gpu.views",
    "distribution": "dlviz_gpu.views",
    "bars": "dlviz_gpu.views",
    "save": "dlviz_gpu.views",
    "serve": "dlviz_gpu.views",
    # model views
    "graph": "dlviz_gpu.views",
    "tree": "dlviz_gpu.views",
    "importances": "dlviz_gpu.views",
    "decision_surface": "dlviz_gpu.views",
    # views of recorded training runs
    "gradient_flow": "dlviz_gpu.views",
    "param_distributions": "dlviz_gpu.views",
    "update_ratios": "dlviz_gpu.views",
    "training_curves": "dlviz_gpu.views",
    "alerts_table": "dlviz_gpu.views",
    "weight_evolution": "dlviz_gpu.views",
    "snapshot_diff": "dlviz_gpu.views",
    # the training watch: dv.watch(model, optimizer, store=...) records a run
    "watch": "dlviz_gpu.watch",
    "open_run": "dlviz_gpu.watch",
    # the dashboard (Panel; loaded only when used)
    "dashboard": "dlviz_gpu.app.dashboard",
    "estimator_dashboard": "dlviz_gpu.app.estimators",
}

__getattr__, __dir__, __all__ = lazy.attach(__name__, _LAZY, extra=("__version__",))
