"""Long 1-D series -> per-pixel-column first / min / max / last (M4 decimation).

>>> d = dv.decimate(loss, width=1200)                 # xarray.Dataset, dim "x"
>>> d = dv.decimate(loss, x=steps, smoothing=0.9)      # TensorBoard-style smoothing
>>> d = dv.decimate(loss, x_range=(2e6, 3e6))          # a window: only its samples are read

Drawing the first, minimum, maximum and last sample of every pixel column, in
index order, is pixel-identical to drawing every sample (docs/architecture.md,
"Series").  :class:`Decimator` holds a series prepared once (validated x,
buffers moved once, EMA checkpoints) for the repeated zooms of a view.
"""

from __future__ import annotations

import math

import numpy as np

from . import backend as _backend
from .backend import Backend
from .checks import check_range, check_size, check_smoothing
from .kernels import series as _ks
from .kernels import window_problem
from .tensors import as_matrix

STATS = _ks.STATS
# EMA states are kept every this many samples, so a smoothed window reads at
# most this many samples before it (Decimator only; decimate() reads the prefix).
CHECKPOINT_EVERY = 1 << 16


def _series(obj, name: str):
    """``(Matrix or None, n)`` for a 1-D series; None for an empty one."""
    if isinstance(obj, (list, tuple, range)) or not hasattr(obj, "shape"):
        if isinstance(obj, (list, tuple, range)) or hasattr(obj, "__array__"):
            try:
                obj = np.asarray(obj)
            except (TypeError, ValueError) as exc:
                raise TypeError(f"{name}: expected a 1-D numeric series; could not convert "
                                f"the {type(obj).__name__} ({exc})") from None
        elif isinstance(obj, (int, float, np.number)):
            raise ValueError(f"{name}: expected a 1-D series; got a scalar {obj!r}")
    shape = getattr(obj, "shape", None)
    if shape is None:
        raise TypeError(f"{name}: expected a 1-D array (numpy, memmap, torch, cupy, list or "
                        f"pandas Series); got {type(obj).__module__}.{type(obj).__qualname__}")
    shape = tuple(int(s) for s in shape)
    if len(shape) != 1:
        raise ValueError(f"{name}: expected a 1-D series; got shape {shape}")
    if shape[0] == 0:
        dtype = getattr(obj, "dtype", None)
        if isinstance(dtype, np.dtype) and dtype.kind not in "biuf":
            raise TypeError(f"{name}: expected a real numeric dtype; got {dtype.name!r}")
        return None, 0
    return as_matrix(obj, name=name), shape[0]


def _host_address(m):
    """(host buffer, offset, stride, decode) of a 1-D Matrix; device data is copied."""
    buf = m.buffer if m.device == "cpu" else _backend.to_host(m.buffer)
    return buf, int(m.offset), int(m.cols.t1), int(m.decode)


class Decimator:
    """A 1-D series prepared for repeated M4 decimation (one per view).

    Validation, the check that ``x`` is monotonic, moving device data for a
    CPU run and (with smoothing) the EMA checkpoints happen once; each
    :meth:`decimate` then reads only the samples of its window (plus at most
    ``CHECKPOINT_EVERY`` before it when smoothing).

    Parameters
    ----------
    y : (N,) array_like
        numpy array or memmap, torch tensor (CPU or CUDA; bfloat16 and
        float16 read in place), cupy array, list or pandas Series; floats,
        integers or bool.  Read in place, never upcast.
    x : (N,) array_like, optional
        Sample positions, finite and non-decreasing (e.g. training steps).
        Default: the sample index.  Read on the host (device x is copied once).
    smoothing : float
        Weight ``w`` in [0, 1) of TensorBoard's debiased exponential moving
        average, applied before decimating; 0 shows the raw samples.
    backend : {"auto", "cpu", "cuda"}
        ``"auto"`` follows where ``y`` lives (and ``DLVIZ_BACKEND``).
    checkpoints : bool
        With smoothing, keep the EMA state every ``CHECKPOINT_EVERY`` samples
        (one pass over the series, on the first window that starts past two
        checkpoints; O(N / CHECKPOINT_EVERY) memory), so later windows start
        from the nearest state instead of sample 0.
    """

    def __init__(self, y, x=None, smoothing: float = 0.0, backend: str = "auto",
                 checkpoints: bool = True):
        self.smoothing = check_smoothing(smoothing)
        self._y, self.n = _series(y, "y")
        self.dtype = self._y.dtype if self._y is not None else str(getattr(y, "dtype", "float64"))
        self._x = None
        if x is not None:
            xm, nx = _series(x, "x")
            if nx != self.n:
                raise ValueError(f"x: expected {self.n} positions (one per sample of y); "
                                 f"got {nx}")
            if xm is not None:
                self._x = _host_address(xm)
                self._check_x()
        device = self._y.device if self._y is not None else "cpu"
        self.backend = _backend.resolve(backend, device)
        self._buffer = None
        if self._y is not None:
            self._buffer = _backend.buffer_for(self._y, self.backend)
        self._use_checkpoints = bool(checkpoints)
        self._checkpoints = None

    # -- x ------------------------------------------------------------------
    def _check_x(self):
        buf, off, stride, dec = self._x
        bad = _ks.x_first_bad(buf, off, stride, dec, self.n)
        if bad < 0:
            return
        v = [float(a) for a in _ks.gather(buf, off, stride, dec, np.array([bad - 1, bad]))]
        if not math.isfinite(v[1]):
            raise ValueError(f"x: expected finite, non-decreasing positions; x[{bad}] is "
                             f"{v[1]!r}")
        raise ValueError(f"x: expected finite, non-decreasing positions (sort y and x by x "
                         f"first); x[{bad}] = {v[1]!r} is below x[{bad - 1}] = {v[0]!r}")

    def x_of(self, index) -> np.ndarray:
        """Positions of samples ``index`` (the index itself without x; NaN for -1)."""
        idx = np.asarray(index, dtype=np.int64)
        if self._x is None:
            return np.where(idx >= 0, idx.astype(np.float64), np.nan)
        buf, off, stride, dec = self._x
        return _ks.gather(buf, off, stride, dec, idx.reshape(-1)).reshape(idx.shape)

    @property
    def x_extent(self) -> tuple[float, float]:
        """The default ``x_range``: ``(0, N)`` in index space, ``(x[0], x[-1])`` with x.

        A single position ``x0`` (or an empty series) gets a unit-wide range
        around it (``(0, 1)`` when empty).
        """
        if self._x is None:
            return (0.0, float(max(self.n, 1)))
        lo, hi = (float(v) for v in self.x_of([0, self.n - 1]))
        if hi > lo:
            return (lo, hi)
        return (lo - 0.5, lo + 0.5)

    # -- decimation -----------------------------------------------------------
    def _ema_state(self, first: int):
        """Known EMA state at or before sample ``first`` (None: start at sample 0)."""
        if not self._use_checkpoints or first < 2 * CHECKPOINT_EVERY:
            return None
        if self._checkpoints is None:
            fn = _backend.kernel_for(_ks.EMA_CHECKPOINTS, self.backend)
            self._checkpoints = fn(self._buffer, self._y.offset, self._y.cols.t1,
                                   self._y.decode, self.n, self.smoothing, CHECKPOINT_EVERY)
        pos, k, last = self._checkpoints
        j = int(np.searchsorted(pos, first, side="right")) - 1
        return (int(pos[j]), int(k[j]), float(last[j])) if j >= 0 else None

    def decimate(self, width: int = 1200, x_range=None):
        """M4 of the samples in ``x_range`` on ``width`` pixel columns.

        Parameters
        ----------
        width : int
            Number of pixel columns.
        x_range : (float, float), optional
            Visible window in x units; default :attr:`x_extent`.  Samples
            outside it are dropped (counted in ``attrs["outside"]``); only
            the window's samples are read.

        Returns
        -------
        xarray.Dataset
            See :func:`decimate`.
        """
        width = check_size(width, "width")
        if x_range is None:
            x_range = self.x_extent
            if window_problem(*x_range, width):
                raise ValueError(f"x: the positions span {x_range}, wider than a float64 "
                                 f"window of {width} columns can hold; pass x_range "
                                 f"explicitly")
        else:
            x_range = check_range(x_range, "x_range", width)
        start, end, outside = _ks.column_runs(self.n, x_range, width, self._x)
        if self._y is None or not (end > start).any():
            res = _ks.empty_result(width)
        else:
            kernel = _backend.kernel_for(_ks.M4, self.backend)
            state = None
            if self.smoothing:
                state = self._ema_state(int(start[end > start][0]))
            res = kernel(self._buffer, self._y.offset, self._y.cols.t1, self._y.decode,
                         start, end, smoothing=self.smoothing, ema_state=state)
        return self._dataset(res, width, x_range, outside)

    def _dataset(self, res: dict, width: int, x_range, outside: int):
        import xarray as xr

        x0, x1 = x_range
        centres = x0 + (np.arange(width) + 0.5) * ((x1 - x0) / width)
        data = {name: ("x", np.asarray(res[name])) for name in STATS}
        attrs = {"n": int(self.n), "outside": int(outside), "x_range": (float(x0), float(x1)),
                 "smoothing": float(self.smoothing), "width": int(width),
                 "backend": self.backend, "dtype": self.dtype,
                 "x": "index" if self._x is None else "given"}
        return xr.Dataset(data, coords={"x": ("x", centres)}, attrs=attrs)

    def polyline(self, d) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The M4 vertices of a :meth:`decimate` result: what a line view draws.

        Returns
        -------
        index : (K,) int64
            Distinct sample indices of every column's first/min/max/last, ascending.
        x, y : (K,) float64
            Their positions and (smoothed, if asked) values.
        """
        return polyline(d, x=self.x_of)


def polyline(d, x=None):
    """The M4 vertices of a :func:`decimate` result, in index order.

    Parameters
    ----------
    d : xarray.Dataset
        A :func:`decimate` result.
    x : (N,) array_like or callable, optional
        The positions ``decimate`` was given (or a function of the indices);
        default the index itself.

    Returns
    -------
    index : (K,) int64
        Distinct sample indices of every column's first/min/max/last, ascending.
    x, y : (K,) float64
        Their positions and values (one sample's value is the same in every
        statistic that picked it).
    """
    names = ("first", "min", "max", "last")
    idx = np.concatenate([np.asarray(d[n + "_index"]) for n in names])
    val = np.concatenate([np.asarray(d[n], dtype=np.float64) for n in names])
    keep = idx >= 0
    idx, val = idx[keep], val[keep]
    order = np.argsort(idx, kind="stable")
    idx, val = idx[order], val[order]
    first = np.ones(idx.size, bool)
    first[1:] = idx[1:] != idx[:-1]
    idx, val = idx[first], val[first]
    if x is None:
        pos = idx.astype(np.float64)
    elif callable(x):
        pos = np.asarray(x(idx), dtype=np.float64)
    else:
        pos = np.asarray(x, dtype=np.float64)[idx]
    return idx, pos, val


def decimate(y, x=None, width: int = 1200, x_range=None, smoothing: float = 0.0,
             backend: Backend = "auto"):
    """Reduce a long series to the first, min, max and last sample of each pixel column.

    Drawing those four per column, in index order, is pixel-identical to
    drawing every sample (M4), so a 10^8-step training curve becomes at most
    4 x ``width`` points with nothing lost on screen.

    Sample ``i`` sits at ``x = i`` (or ``x[i]``) and falls in column
    ``floor((x - x0) * width / (x1 - x0))`` for ``x0 <= x < x1``; ``x == x1``
    goes to the last column; samples outside ``x_range`` are dropped and
    counted.  NaN and +-inf samples are skipped and counted per column; on a
    tie the earliest sample wins.

    Parameters
    ----------
    y : (N,) array_like
        numpy array or memmap, torch tensor (CPU or CUDA; bfloat16 and float16
        read in place), cupy array, list or pandas Series; floats, integers or
        bool.  Never copied or upcast on its own device.
    x : (N,) array_like, optional
        Sample positions (e.g. training steps), finite and non-decreasing;
        default the sample index.  Each column is then a contiguous run of
        samples found by binary search.
    width : int
        Number of pixel columns.
    x_range : (float, float), optional
        Visible window in x units; default ``(0, N)`` without x, ``(x[0],
        x[-1])`` with it.  Only the window's samples are read (with smoothing,
        also those before it: the moving average starts at sample 0; use
        :class:`Decimator` for repeated windows).
    smoothing : float
        Weight ``w`` in [0, 1) of TensorBoard's debiased exponential moving
        average, applied first: for each finite sample ``last = w * last +
        (1 - w) * y_i``, smoothed ``= last / (1 - w**k)`` with ``k`` the finite
        samples so far; non-finite samples stay as they are (and are skipped
        and counted).  0 shows the raw samples.
    backend : {"auto", "cpu", "cuda"}
        ``"auto"`` follows where ``y`` lives (and ``DLVIZ_BACKEND``).

    Returns
    -------
    xarray.Dataset
        Dimension ``x`` (``width`` pixel columns; coordinate: the column's
        centre in x units) with variables ``first``, ``last``, ``min``,
        ``max`` (float64, NaN in empty columns), ``first_index``,
        ``last_index``, ``min_index``, ``max_index`` (int64 sample indices in
        ``y``, -1 in empty columns), ``count`` (finite samples) and
        ``nan_count`` (NaN/inf samples); attrs ``n``, ``outside``,
        ``x_range``, ``smoothing``, ``width``, ``backend``, ``dtype``, ``x``.

    Raises
    ------
    TypeError
        ``y``/``x`` not numeric or not array-like; ``width`` or ``smoothing``
        of the wrong type.
    ValueError
        ``y``/``x`` not 1-D, ``x`` of another length, not finite or
        decreasing (the message names the first offending index), ``width``
        not positive, ``smoothing`` outside [0, 1), a bad ``x_range`` (not
        finite, low >= high, or a width ``high - low`` that overflows float64
        times ``width``) or ``backend``; positions whose span overflows so
        without an ``x_range``.
    RuntimeError
        ``backend="cuda"`` where CUDA cannot run (the message says how to fix it).
    """
    width = check_size(width, "width")
    if x_range is not None:
        x_range = check_range(x_range, "x_range", width)
    dec = Decimator(y, x=x, smoothing=smoothing, backend=backend, checkpoints=False)
    return dec.decimate(width, x_range)


__all__ = ["decimate", "Decimator", "polyline", "STATS"]
