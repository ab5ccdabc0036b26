"""How a logical matrix sits in memory, and how a window of it maps to pixels.

Every kernel sees the same picture: a flat 1-D buffer, and for each of the two
logical axes a mixed-radix address map.  Cell ``i`` of an axis with factors
``(k2, k3)`` and strides ``(t1, t2, t3)`` sits at element offset::

    (i // (k2 * k3)) * t1 + ((i // k3) % k2) * t2 + (i % k3) * t3

A plain axis has ``k2 = k3 = 1``.  Factors let a conv weight
``(out, in, kh, kw)`` be shown as an ``(out*kh) x (in*kw)`` mosaic, or a 3-D
tensor as stacked rows, without copying a byte.

:func:`plan` turns (layout, window, canvas) into the *physical* problem the
kernels run: axes swapped so the column axis is the one contiguous in memory,
negative strides flipped, pixel ranges ascending in memory order.  The kernels
fill planes in that physical order and :meth:`Plan.to_logical` puts them back.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numba
import numpy as np

from ._common import axis_ranges, window_problem


@numba.njit(inline="always", cache=True)
def cell_offset(t1, k2, t2, k3, t3, i):
    """Element offset of cell ``i`` of an axis (the rule above; the one copy of it).

    Plain axes (``k2 = k3 = 1``) skip the divisions.  A Numba function the CPU
    kernels inline; the CUDA kernels compile its Python source as a device
    function (``_common.cuda_device(cell_offset.py_func)``).
    """
    if k2 == 1 and k3 == 1:
        return i * t1
    return (i // (k2 * k3)) * t1 + ((i // k3) % k2) * t2 + (i % k3) * t3


@numba.njit(inline="always", cache=True)
def axis_offset(ax, i):
    """:func:`cell_offset` for an axis packed as the tuple ``(t1, k2, t2, k3, t3)``."""
    t1, k2, t2, k3, t3 = ax
    return cell_offset(t1, k2, t2, k3, t3, i)


@dataclass(frozen=True)
class Axis:
    """Address map of one logical axis (see the module docstring)."""

    n: int
    t1: int
    k2: int = 1
    t2: int = 0
    k3: int = 1
    t3: int = 0

    @property
    def simple(self) -> bool:
        return self.k2 == 1 and self.k3 == 1

    def offsets(self, idx: np.ndarray) -> np.ndarray:
        idx = np.asarray(idx, dtype=np.int64)
        return ((idx // (self.k2 * self.k3)) * self.t1
                + ((idx // self.k3) % self.k2) * self.t2
                + (idx % self.k3) * self.t3)

    def extent(self) -> tuple[int, int]:
        """Lowest and highest element offset reached along this axis."""
        lo = hi = 0
        for size, stride in ((self.n // (self.k2 * self.k3), self.t1),
                             (self.k2, self.t2), (self.k3, self.t3)):
            reach = (size - 1) * stride
            lo += min(0, reach)
            hi += max(0, reach)
        return lo, hi


def axis_from_dims(sizes, strides) -> Axis:
    """Merge up to three (size, element-stride) dims, outermost first, into an Axis.

    Adjacent dims merge when the outer stride equals size*stride of the inner
    one (they are one run in memory).  Raises ValueError when more than three
    separate runs remain: such a view cannot be addressed without a copy.
    """
    dims = [(int(n), int(s)) for n, s in zip(sizes, strides) if int(n) != 1]
    merged: list[tuple[int, int]] = []
    for n, s in dims:
        if merged and merged[-1][1] == n * s:
            merged[-1] = (merged[-1][0] * n, s)
        else:
            merged.append((n, s))
    total = int(np.prod([int(n) for n in sizes])) if len(sizes) else 1
    if not merged:
        return Axis(n=total, t1=0)
    if len(merged) > 3:
        raise ValueError(
            f"layout: these dimensions (sizes {tuple(sizes)}, element strides "
            f"{tuple(strides)}) cannot be joined into one axis without a copy; "
            "pass a different layout or make the tensor contiguous first")
    while len(merged) < 3:
        merged.append((1, 0))
    (n1, t1), (k2, t2), (k3, t3) = merged
    return Axis(n=total, t1=t1, k2=k2, t2=t2, k3=k3, t3=t3)


@dataclass(frozen=True)
class Plan:
    """The physical problem a kernel runs, and how to map its output back."""

    offset: int
    rows: Axis
    cols: Axis
    rstart: np.ndarray  # (H',) physical row range per physical pixel row
    rend: np.ndarray
    cstart: np.ndarray  # (W',) physical column range per physical pixel column
    cend: np.ndarray
    transposed: bool
    flip_rows: bool   # physical pixel rows run opposite to logical ones
    flip_cols: bool

    @property
    def contiguous(self) -> bool:
        """Columns are one ascending unit-stride run: the vectorised CPU path."""
        return self.cols.simple and self.cols.t1 == 1

    def to_logical(self, plane):
        """Map a (H', W') plane of physical pixels to (height, width) logical pixels."""
        if self.flip_rows:
            plane = plane[::-1, :]
        if self.flip_cols:
            plane = plane[:, ::-1]
        if self.transposed:
            plane = plane.T
        return plane


def _flip(axis: Axis, offset: int) -> tuple[Axis, int]:
    # Physical index c' = n-1-c: address offset + c*t = offset + (n-1)*t + c'*(-t).
    return replace(axis, t1=-axis.t1), offset + (axis.n - 1) * axis.t1


def plan(offset: int, rows: Axis, cols: Axis, x_range, y_range,
         width: int, height: int, origin=(0, 0)) -> Plan:
    """Physical problem for the window ``x_range`` x ``y_range`` on a width x height canvas.

    ``origin`` = (row, column) of the matrix's element (0, 0) in the data space
    of the canvas, for chunks of a larger tensor.
    """
    x0, x1 = float(x_range[0]), float(x_range[1])
    y0, y1 = float(y_range[0]), float(y_range[1])
    for name, lo, hi, npix in (("x_range", x0, x1, width), ("y_range", y0, y1, height)):
        problem = window_problem(lo, hi, npix)
        if problem:
            raise ValueError(f"{name}: {problem}")
    cs, ce = axis_ranges(cols.n, x0, x1, int(width), int(origin[1]))
    rs, re = axis_ranges(rows.n, y0, y1, int(height), int(origin[0]))

    transposed = False
    if rows.simple and cols.simple and abs(rows.t1) < abs(cols.t1):
        # Column-major data: run the transposed problem so the inner loop
        # walks memory in order.
        rows, cols = cols, rows
        rs, re, cs, ce = cs, ce, rs, re
        transposed = True

    flips = []
    for which in ("rows", "cols"):
        axis = rows if which == "rows" else cols
        start, end = (rs, re) if which == "rows" else (cs, ce)
        flip = axis.simple and axis.t1 < 0
        if flip:
            axis, offset = _flip(axis, offset)
            # Logical pixel p -> physical pixel P-1-p, cells [n-end, n-start).
            start, end = (axis.n - end)[::-1].copy(), (axis.n - start)[::-1].copy()
        if which == "rows":
            rows, rs, re = axis, start, end
        else:
            cols, cs, ce = axis, start, end
        flips.append(flip)
    return Plan(offset=int(offset), rows=rows, cols=cols,
                rstart=rs.astype(np.int64), rend=re.astype(np.int64),
                cstart=cs.astype(np.int64), cend=ce.astype(np.int64),
                transposed=transposed, flip_rows=flips[0], flip_cols=flips[1])


def bands(cstart: np.ndarray, cend: np.ndarray, target_cells: int,
          max_pixels: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Group adjacent pixel columns into bands of about ``target_cells`` columns.

    A band always holds whole pixels, so whoever owns a band owns its output
    pixels outright: no atomics on the CPU, no cross-block merge on the GPU.

    Returns
    -------
    p0, p1 : (B,) int64 arrays
        Band ``b`` holds pixel columns ``p0[b] <= p < p1[b]``.
    """
    w = cstart.size
    cells = (cend - cstart).astype(np.int64)
    p0, p1 = [], []
    start = 0
    acc = 0
    for p in range(w):
        acc += int(cells[p])
        full = acc >= target_cells
        if max_pixels is not None and p + 1 - start >= max_pixels:
            full = True
        if full or p == w - 1:
            p0.append(start)
            p1.append(p + 1)
            start, acc = p + 1, 0
    return np.asarray(p0, np.int64), np.asarray(p1, np.int64)
