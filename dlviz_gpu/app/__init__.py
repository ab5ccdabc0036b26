"""The dashboard application: a Panel app over a model or checkpoint.

``dashboard.py``  the page (tensor tree, zoomable heatmap, histogram, stats,
                  per-layer bars, model summary) for any :class:`~dlviz_gpu.models.Catalog`
``runs.py``       the dashboard of recorded training runs (``dlviz serve RUN``)
``estimators.py`` the scikit-learn views of a classifier on one page
``board.py``      what every dashboard shares (serving its page)
``report.py``     ``dlviz render``'s standalone HTML page and PNG folder
``demo.py``       the embedded default model of ``dlviz demo`` and its
                  background training loop

Nothing here is imported by ``import dlviz_gpu``; Panel and torch load when
the app is built.
"""
