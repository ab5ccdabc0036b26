"""Slow, obviously-correct float64 NumPy versions of every kernel, for tests.

One module per kernel family; nothing here shares code with the kernels.
"""

from . import describe, histogram, moments, points, series
from .matrix import STATS, matrix_stats

__all__ = ["STATS", "matrix_stats", "describe", "histogram", "moments", "points", "series"]
