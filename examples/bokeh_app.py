"""A plain Bokeh server app: every dlviz_gpu view of a synthetic layer and training run.

Run from the repository root (with the package installed)::

    bokeh serve examples/bokeh_app.py --show

Every zoom or pan of the heatmap, the scatter and the curve asks the kernels
again for just the visible window: zoom far enough and single weights show as
blocks (hover for their values), and the curve shows the samples themselves.
The data (``synthetic.py``) is made the same on every run.
"""

from functools import partial

import holoviews as hv
import numpy as np
import panel as pn
from bokeh.io import curdoc

import dlviz_gpu as dv
import synthetic  # this folder is on sys.path while `bokeh serve` runs the app

layer = synthetic.layer()
weights = dv.heatmap(layer, agg="extremum", width=800, height=400, label="layer")
hist = dv.histplot(layer, bins=200, logy=True, width=800, height=250, label="layer")
# each row of the layer as a point (PCA of the rows), coloured by its largest |weight|:
# the outlier rows sit far out and bright
rows = dv.scatter(dv.project(layer), value=np.abs(layer).max(axis=1), width=500, height=400,
                  label="rows of the layer (PCA)")
loss = dv.curve(synthetic.loss(), smoothing=0.9, width=800, height=250, label="loss")

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

# attach the plots to this session's document; unshared axes, or the curve's y
# would be linked to the scatter's (both dimensions are called "y")
layout = (weights + hist + rows + loss).cols(1).opts(shared_axes=False)
hv.renderer("bokeh").server_doc(layout, doc=doc)
doc.title = "dlviz_gpu: a synthetic layer"
