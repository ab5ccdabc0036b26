"""A Panel app: widgets choose how a synthetic layer and training curve are drawn.

Run from the repository root (with the package installed)::

    panel serve examples/panel_app.py --show

The statistic per pixel and the colour scale rebuild the heatmap; the
smoothing weight rebuilds the curve (raw line faint, smoothed on top, like
TensorBoard).  Zooming re-aggregates the visible window as in the plain Bokeh
example.  The data (``synthetic.py``) is made the same on every run.
"""

import panel as pn

import dlviz_gpu as dv
import synthetic  # this folder is on sys.path while `panel serve` runs the app
from dlviz_gpu.views import AGGS

pn.extension()

# one copy of the data per server process, shared by every browser session
layer = pn.state.as_cached("dlviz-example-layer", synthetic.layer)
loss = pn.state.as_cached("dlviz-example-loss", synthetic.loss)

agg = pn.widgets.Select(name="statistic per pixel", options=list(AGGS), value="mean")
norm = pn.widgets.Select(name="colour scale", options=["linear", "symlog", "eq_hist"],
                         value="linear")
smoothing = pn.widgets.FloatSlider(name="smoothing", start=0.0, end=0.99, step=0.01,
                                   value=0.9)


def weights(agg, norm):
    return dv.heatmap(layer, agg=agg, norm=norm, width=800, height=400, label="layer")


def curve(smoothing):
    return dv.curve(loss, smoothing=smoothing, width=800, height=250, label="loss")


pn.Column(
    "## dlviz_gpu: a synthetic layer and its training curve",
    pn.Row(agg, norm),
    pn.bind(weights, agg, norm),
    dv.histplot(layer, bins=200, logy=True, width=800, height=250, label="layer"),
    smoothing,
    pn.bind(curve, smoothing),
).servable(title="dlviz_gpu: a synthetic layer")
