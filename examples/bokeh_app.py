"""A plain Bokeh server app: a zoomable heatmap of a layer and its exact histogram.

Run from the repository root (with the package installed)::

    bokeh serve examples/bokeh_app.py --show

Every zoom or pan of the heatmap asks the kernels again for just the visible
window; zoom far enough and single weights show as blocks, hover for their
values.  The data is a synthetic "layer" (low rank + noise, a few outlier rows),
made the same on every run.
"""

from functools import partial

import holoviews as hv
import numpy as np
import panel as pn
from bokeh.io import curdoc

import dlviz_gpu as dv


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


layer = synthetic_layer()
weights = dv.heatmap(layer, agg="extremum", width=800, height=400, label="layer")
hist = dv.histplot(layer, bins=200, logy=True, width=800, height=250, label="layer")

doc = curdoc()
# HoloViews draws through Panel, and two things Panel's own server does for a
# session are missing under a plain `bokeh serve` (HoloViews 1.23, Panel 1.9):
# 1. mark the session connected once the page is ready.  Without it HoloViews
#    defers every stream update until the session "connects", which never
#    happens, so zooms would never re-aggregate.  Panel's application handler
#    registers exactly this hook (panel/io/application.py).
doc.on_event("document_ready", partial(pn.state._schedule_on_load, doc))
# 2. serve its stylesheets locally: they default to Panel's CDN here, so point
#    them at the copies this server already serves (/static/extensions/panel/)
#    and the page needs no internet.
doc.template_variables["dist_url"] = "static/extensions/panel/"

# attach the plots to this session's document
hv.renderer("bokeh").server_doc((weights + hist).cols(1), doc=doc)
doc.title = "dlviz_gpu: a synthetic layer"
