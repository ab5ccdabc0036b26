"""HoloViews/Bokeh views of the engine's results.

Every view returns a HoloViews object (composable with ``+`` and ``*``) and
re-aggregates on zoom where the data is big:

- :func:`heatmap` (matrices, :mod:`.matrix`),
- :func:`scatter` (point clouds, :mod:`.points`),
- :func:`curve` (long series, :mod:`.series`),
- :func:`histplot`, :func:`distribution`, :func:`bars` (:mod:`.distributions`),
- model views: :func:`graph` (:mod:`.network`), :func:`tree`, :func:`importances`
  (:mod:`.trees`), :func:`decision_surface` (:mod:`.surface`) -- no module is
  named like a function it exports, so ``dv.graph`` stays the function after
  any import,
- recorded training runs (:mod:`.training`): :func:`gradient_flow`,
  :func:`param_distributions`, :func:`update_ratios`, :func:`training_curves`,
  :func:`alerts_table`, :func:`weight_evolution`, :func:`snapshot_diff`.

:func:`save` writes HTML or PNG and :func:`serve` runs a Bokeh server
(:mod:`.output`).  Colour, normalisation and limits live in :mod:`.style`.
"""

from __future__ import annotations

from .. import lazy

_LAZY = {
    "heatmap": "matrix", "MatrixView": "matrix", "AGGS": "matrix",
    "scatter": "points", "PointsView": "points",
    "curve": "series", "CurveView": "series",
    "histplot": "distributions", "distribution": "distributions", "bars": "distributions",
    "save": "output", "serve": "output", "ServerURL": "output",
    # model views
    "graph": "network", "GraphView": "network",
    "tree": "trees", "TreeView": "trees", "importances": "trees",
    "decision_surface": "surface", "SurfaceView": "surface",
    # recorded training runs (dv.watch)
    "gradient_flow": "training", "param_distributions": "training",
    "update_ratios": "training", "training_curves": "training", "alerts_table": "training",
    "weight_evolution": "training", "snapshot_diff": "training",
}


def quiet_bokeh() -> None:
    """Silence Bokeh's W-1005 for HoloViews' ``frame_width`` plots.

    HoloViews sizes a plot by its frame and leaves the figure's width unset
    with ``sizing_mode="fixed"``; Bokeh's validator then warns on every page
    although the layout is right.
    """
    from bokeh.core.validation import silence
    from bokeh.core.validation.warnings import FIXED_SIZING_MODE

    silence(FIXED_SIZING_MODE, True)


__getattr__, __dir__, __all__ = lazy.attach(
    __name__, {name: "." + module for name, module in _LAZY.items()}, on_first=quiet_bokeh)
