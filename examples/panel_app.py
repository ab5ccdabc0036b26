"""A Panel app: pick the per-pixel statistic and colour normalisation of a layer's heatmap.

Run from the repository root (with the package installed)::

    panel serve examples/panel_app.py --show

Changing a widget rebuilds the heatmap; zooming re-aggregates the visible
window as in the plain Bokeh example.  The data is the same synthetic layer
(low rank + noise, a few outlier rows), made the same on every run.
"""

import numpy as np
import panel as pn

import dlviz_gpu as dv
from dlviz_gpu.views import AGGS

pn.extension()


def synthetic_layer(rows: int = 1024, cols: int = 4096, rank: int = 8, seed: int = 0):
    """(rows, cols) float32: low-rank structure plus noise, three outlier rows, a dead block."""
    rng = np.random.default_rng(seed)
    u = rng.standard_normal((rows, rank), dtype=np.float32)
    v = rng.standard_normal((rank, cols), dtype=np.float32)
    w = (u @ v) * np.float32(0.02 / np.sqrt(rank))
    w += rng.standard_normal((rows, cols), dtype=np.float32) * np.float32(0.01)
    w[[17, 511, 900]] *= 12.0                 # outlier rows: what "extremum" is for
    w[600:640, 3000:3200] = 0.0               # a dead block of weights
    return w


# one layer per server process, shared by every browser session
layer = pn.state.as_cached("dlviz-example-layer", synthetic_layer)

agg = pn.widgets.Select(name="statistic per pixel", options=list(AGGS), value="mean")
norm = pn.widgets.Select(name="colour scale", options=["linear", "symlog", "eq_hist"],
                         value="linear")


def weights(agg, norm):
    return dv.heatmap(layer, agg=agg, norm=norm, width=800, height=400, label="layer")


pn.Column(
    "## dlviz_gpu: a synthetic layer",
    pn.Row(agg, norm),
    pn.bind(weights, agg, norm),
    dv.histplot(layer, bins=200, logy=True, width=800, height=250, label="layer"),
).servable(title="dlviz_gpu: a synthetic layer")
