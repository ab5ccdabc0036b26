"""dlviz_gpu.kernels: the compute layer.

Imports only numpy and numba; numba.cuda is imported inside the GPU code paths.
Each module holds one or more kernel *families* (:class:`Family`): the same
computation as a Numba CPU kernel, a Numba CUDA kernel under the same
signature, and the float64 NumPy twin in ``reference`` that tests check both
against.  :data:`FAMILIES` maps each family's name to its object.  Every
parallel CPU kernel is called through :mod:`._parallel`, so any number of
threads may call them at once.
"""

from ._common import DECODE_BF16, DECODE_F16, DECODE_NATIVE, axis_ranges, window_problem
from ._family import Family
from ._layout import Axis, axis_from_dims
from .matrix import MATRIX_STATS, matrix_stats_cpu, matrix_stats_cuda
from .histogram import HISTOGRAM, HISTOGRAM_MANY, MINMAX
from .points import POINTS_BOUNDS, POINTS_STATS
from .series import EMA, EMA_CHECKPOINTS, M4, m4_cpu, m4_cuda
from .describe import LINE_SUMSQ, line_sumsq_cpu, line_sumsq_cuda
from .moments import MOMENTS, moments_cpu, moments_cuda

#: family name -> :class:`Family`, every family of the compute layer
FAMILIES = {f.name: f for f in (MATRIX_STATS, HISTOGRAM, HISTOGRAM_MANY, MINMAX, POINTS_STATS,
                                POINTS_BOUNDS, M4, EMA, EMA_CHECKPOINTS, LINE_SUMSQ, MOMENTS)}

__all__ = [
    "Axis", "axis_from_dims", "DECODE_NATIVE", "DECODE_BF16", "DECODE_F16", "Family", "FAMILIES",
    "matrix_stats_cpu", "matrix_stats_cuda", "MATRIX_STATS",
    "m4_cpu", "m4_cuda", "M4", "EMA", "EMA_CHECKPOINTS", "POINTS_STATS", "POINTS_BOUNDS",
    "HISTOGRAM", "HISTOGRAM_MANY", "MINMAX", "window_problem", "axis_ranges",
    "LINE_SUMSQ", "line_sumsq_cpu", "line_sumsq_cuda", "MOMENTS", "moments_cpu", "moments_cuda",
]
