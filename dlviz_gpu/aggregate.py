"""Public verbs: validate -> pick a backend -> run a kernel -> Raster."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from . import backend as _backend
from .backend import Backend
from .raster import STATS, Canvas, Raster
from .tensors import Layout, as_matrix


def _check_stats(stats) -> tuple[str, ...]:
    if stats is None:
        return STATS
    if isinstance(stats, str):
        stats = (stats,)
    if not isinstance(stats, Iterable):
        raise TypeError(f"stats: expected a statistic name or a list of them; got {stats!r}")
    chosen = tuple(dict.fromkeys(stats))
    unknown = [s for s in chosen if s not in STATS]
    if unknown or not chosen:
        raise ValueError(f"stats: expected names from {', '.join(STATS)}; got "
                         f"{', '.join(map(repr, unknown)) if unknown else 'nothing'}")
    # count and nan_count come free with every pass
    return tuple(s for s in STATS if s in chosen or s in ("count", "nan_count"))


def _check_origin(origin) -> tuple[int, int]:
    try:
        r, c = origin
        ok = all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in (r, c))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise TypeError(f"origin: expected a (row, column) pair of integers; got {origin!r}")
    return int(r), int(c)


def rasterize(tensor, width: int = 800, height: int = 600, x_range=None, y_range=None,
              layout: Layout = "auto", backend: Backend = "auto", stats=None,
              origin=(0, 0)) -> Raster:
    """Reduce a tensor to per-pixel statistics on a ``width`` x ``height`` canvas.

    Parameters
    ----------
    tensor : (R, C) array_like, or 1-D / 3-D / 4-D with ``layout``
        numpy array or memmap, torch tensor (CPU or CUDA, any float dtype
        including bfloat16), cupy array, or anything with ``__array__``,
        ``__cuda_array_interface__`` or ``__dlpack__``. Read in place.
    width, height : int
        Canvas size in pixels.  Each pixel gets the elements whose centres
        fall in it; with fewer visible cells than pixels most pixels are empty
        (ask for a canvas of the visible cell count to see blocks instead).
    x_range, y_range : (float, float), optional
        Visible window in data space (x = column, y = row coordinate).
        Default: the whole tensor, ``(0, C)`` and ``(0, R)``.
    layout : {"auto", "mosaic", "flatten", "stack"}
        How non-2-D tensors become a matrix (see :mod:`dlviz_gpu.tensors`).
    backend : {"auto", "cpu", "cuda"}
        ``"auto"`` follows the data (and ``DLVIZ_BACKEND``).
    stats : str or list of str, optional
        Statistics to compute, from ``count, nan_count, sum, mean, min, max,
        extremum, std``; default all.  Whatever is asked comes from one pass.
    origin : (int, int)
        (row, column) of the tensor's element (0, 0) in the canvas's data
        space, when ``tensor`` is a chunk of a larger one: rasters of the
        chunks on one canvas then :meth:`Raster.merge` into exactly the
        raster of the whole.

    Returns
    -------
    Raster
        Planes of shape (height, width); row 0 is the ``y_range[0]`` side.
    """
    chosen = _check_stats(stats)
    origin = _check_origin(origin)
    matrix = as_matrix(tensor, layout=layout)
    rows, cols = matrix.shape
    canvas = Canvas(width, height,
                    (float(origin[1]), float(origin[1] + cols)) if x_range is None else x_range,
                    (float(origin[0]), float(origin[0] + rows)) if y_range is None else y_range)
    where = _backend.resolve(backend, matrix.device)
    want_minmax = any(s in chosen for s in ("min", "max", "extremum"))
    want_m2 = "std" in chosen
    planes = _backend.run_matrix(matrix, canvas, want_minmax, want_m2, where, origin)
    return Raster(canvas, planes, chosen, device=where, dtype=matrix.dtype)
