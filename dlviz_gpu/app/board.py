"""What every dashboard shares: serving its page, and the note a pane shows instead of a view.

A board (:class:`~dlviz_gpu.app.dashboard.Dashboard`,
:class:`~dlviz_gpu.app.runs.RunBoard`,
:class:`~dlviz_gpu.app.estimators.EstimatorBoard`) holds what browser
sessions share and builds one fresh page per session with ``page()``.
"""

from __future__ import annotations

import html

__all__ = ["Board", "note"]


class Board:
    """Base of the dashboards: subclasses set ``title`` and define ``page()``."""

    title: str

    def page(self):  # pragma: no cover - every board defines it
        raise NotImplementedError

    def serve(self, port: int = 0, address: str = "127.0.0.1", show: bool = False, *,
              allow_websocket_origin=None):
        """Serve the dashboard (see :func:`dlviz_gpu.serve`); returns the URL with ``.stop()``."""
        from ..views.output import serve

        return serve(self.page, port=port, address=address, show=show,
                     allow_websocket_origin=allow_websocket_origin, title=f"dlviz: {self.title}")


def note(pn, text: str):
    """An italic Markdown line (why a view is not drawn), HTML-escaped."""
    return pn.pane.Markdown(f"*{html.escape(text)}*", sizing_mode="stretch_width")
