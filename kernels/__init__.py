"""dlviz_gpu.kernels: the compute layer.

Imports only numpy and numba; numba.cuda is imported inside the GPU code paths.
Each module holds one family of kernels with CPU and CUDA versions side by side
under one signature; ``reference`` holds the float64 NumPy versions tests check
them against.  Every parallel CPU kernel is called through
:mod:`._parallel`, so any number of threads may call them at once.
"""

from ._common import DECODE_BF16, DECODE_F16, DECODE_NATIVE, axis_ranges, window_problem
from ._layout import Axis, axis_from_dims
from .matrix import matrix_stats_cpu, matrix_stats_cuda
from .histogram import HISTOGRAM, HISTOGRAM_MANY, MINMAX
from .points import POINTS_BOUNDS, POINTS_STATS
from .series import M4, m4_cpu, m4_cuda
from .describe import LINE_SUMSQ, line_sumsq_cpu, line_sumsq_cuda

MATRIX_STATS = {"cpu": matrix_stats_cpu, "cuda": matrix_stats_cuda}

__all__ = [
    "Axis", "axis_from_dims", "DECODE_NATIVE", "DECODE_BF16", "DECODE_F16",
    "matrix_stats_cpu", "matrix_stats_cuda", "MATRIX_STATS",
    "m4_cpu", "m4_cuda", "M4", "POINTS_STATS", "POINTS_BOUNDS",
    "HISTOGRAM", "HISTOGRAM_MANY", "MINMAX", "window_problem", "axis_ranges",
    "LINE_SUMSQ", "line_sumsq_cpu", "line_sumsq_cuda",
]
