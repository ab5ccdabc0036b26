"""Per-line sums of squares of a matrix whose lines are short (CPU, Numba).

:func:`dlviz_gpu.tensor_stats.describe` gets its per-row and per-column
statistics from the matrix kernel on a canvas of one pixel per line.  That is
fast while each line holds many elements, but a skinny matrix -- a 1 x N
strip (any 1-D tensor), an N x 3 matrix -- puts one or a few elements in each
of N pixels, and the matrix kernel's per-pixel work then dominates (about a
microsecond per pixel: 9 s for a strip of 10**7).  :func:`line_sumsq_cpu` does
that case directly: one parallel loop over the lines, each summing the squares
of its finite elements, read in place through the same address maps
(:mod:`._layout`) and decodings (:mod:`._common`) as every kernel.

The family :data:`LINE_SUMSQ` has both backends under one signature:
:func:`line_sumsq_cpu` (one parallel loop over the lines, compiled once per
buffer dtype and cached on disk with ``cache=True``) and
:func:`line_sumsq_cuda` (one thread per line, over a device buffer or a host
buffer it copies to the device; the result comes back to the host: it is one
float64 per line).  Both read the same address maps and decodings and add the
squares of each line's finite elements in index order, so they agree to
float64 rounding; the float64 reference is
:func:`dlviz_gpu.kernels.reference.describe.line_sumsq`.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from numba import prange

from ._common import decode_value, import_cuda
from ._layout import Axis, cell_offset
from ._parallel import parallel_jit
from ._family import Family
from .reference import describe as _reference


cuda = None     # numba.cuda once a GPU path runs (see _common.import_cuda)


def _import_cuda():
    return import_cuda(globals())


_value = decode_value    # one element as float64


@parallel_jit(cache=True)
def _line_sumsq(flat, offset, lt1, lk2, lt2, lk3, lt3, nlines,
                ot1, ok2, ot2, ok3, ot3, nother, decode, out):
    # plain strided axes (everything but mosaics and stacked layouts) skip the
    # mixed-radix divisions, which would cost more than the rest of the loop
    simple = lk2 == 1 and lk3 == 1 and ok2 == 1 and ok3 == 1
    for j in prange(nlines):
        acc = 0.0
        if simple:
            base = offset + j * lt1
            for i in range(nother):
                x = _value(flat[base + i * ot1], decode)
                if math.isfinite(x):
                    acc += x * x
        else:
            base = offset + cell_offset(lt1, lk2, lt2, lk3, lt3, j)
            for i in range(nother):
                x = _value(flat[base + cell_offset(ot1, ok2, ot2, ok3, ot3, i)], decode)
                if math.isfinite(x):
                    acc += x * x
        out[j] = acc


def line_sumsq_cpu(flat: np.ndarray, offset: int, lines: Axis, other: Axis,
                   decode: int) -> np.ndarray:
    """Sum of squares of the finite elements of each line of a matrix.

    Parameters
    ----------
    flat : (L,) host ndarray
        The matrix's flat buffer (``Matrix.buffer``).
    offset : int
        Element offset of the matrix's element (0, 0).
    lines : Axis
        Address map of the axis whose cells are the lines (the rows for row
        sums, the columns for column sums).
    other : Axis
        Address map of the axis summed along (best kept short: it is walked
        once per line).
    decode : int
        ``DECODE_NATIVE``, ``DECODE_BF16`` or ``DECODE_F16``.

    Returns
    -------
    (lines.n,) float64 ndarray
        NaN and +-inf are left out; 0.0 for a line with no finite element.
    """
    out = np.empty(lines.n, np.float64)
    _line_sumsq(flat, np.int64(offset),
                np.int64(lines.t1), np.int64(lines.k2), np.int64(lines.t2),
                np.int64(lines.k3), np.int64(lines.t3), np.int64(lines.n),
                np.int64(other.t1), np.int64(other.k2), np.int64(other.t2),
                np.int64(other.k3), np.int64(other.t3), np.int64(other.n),
                np.int64(decode), out)
    return out


@functools.lru_cache(maxsize=None)
def cuda_kernel(decode: int):
    """The CUDA kernel for one decoding: thread ``j`` sums the squares of line ``j``."""
    _import_cuda()
    from ._common import cuda_decoder, cuda_device

    dec = cuda_decoder(decode)
    offset_of = cuda_device(cell_offset.py_func)

    def kernel(flat, offset, lt1, lk2, lt2, lk3, lt3, nlines, ot1, ok2, ot2, ok3, ot3,
               nother, out):
        j = cuda.grid(1)
        if j >= nlines:
            return
        base = offset + offset_of(lt1, lk2, lt2, lk3, lt3, j)
        acc = 0.0
        for i in range(nother):
            x = dec(flat[base + offset_of(ot1, ok2, ot2, ok3, ot3, i)])
            if math.isfinite(x):
                acc += x * x
        out[j] = acc

    return cuda.jit(kernel)


#: threads per block of :func:`line_sumsq_cuda`
CUDA_BLOCK = 256


def line_sumsq_cuda(flat, offset: int, lines: Axis, other: Axis, decode: int) -> np.ndarray:
    """:func:`line_sumsq_cpu` on the GPU, same parameters and result.

    ``flat`` is a device array (read in place) or a host ndarray (copied to
    the device whole: the lines this family is for are short, so the buffer is
    at most a few times the result).  Returns a host ``(lines.n,)`` float64
    ndarray.
    """
    _import_cuda()
    if isinstance(flat, np.ndarray):          # host data: copied whole (short lines)
        flat = cuda.to_device(np.ascontiguousarray(flat))
    out = cuda.device_array(lines.n, np.float64)
    if lines.n:
        blocks = (lines.n + CUDA_BLOCK - 1) // CUDA_BLOCK
        cuda_kernel(int(decode))[blocks, CUDA_BLOCK](
            flat, np.int64(offset),
            np.int64(lines.t1), np.int64(lines.k2), np.int64(lines.t2),
            np.int64(lines.k3), np.int64(lines.t3), np.int64(lines.n),
            np.int64(other.t1), np.int64(other.k2), np.int64(other.t2),
            np.int64(other.k3), np.int64(other.t3), np.int64(other.n), out)
    return out.copy_to_host()


#: the family (docs/architecture.md, "The kernel contract")
LINE_SUMSQ = Family("line_sumsq", line_sumsq_cpu, line_sumsq_cuda, _reference.line_sumsq,
                    "sum of squares of the finite elements of each row or column")
