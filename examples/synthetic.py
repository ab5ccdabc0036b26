"""Deterministic synthetic data for the examples: a weight matrix and a training curve.

``bokeh serve`` and ``panel serve`` put the app's folder on ``sys.path`` while
they run it, so the apps import this module as ``synthetic``.
"""

import numpy as np

#: Rows of :func:`layer` scaled up twelvefold.
OUTLIER_ROWS = (17, 511, 900)


def layer(rows: int = 1024, cols: int = 4096, rank: int = 8, seed: int = 0) -> np.ndarray:
    """(rows, cols) float32: low-rank structure plus noise, a few outlier rows, a dead block.

    About 16 MiB, made in a fraction of a second.
    """
    rng = np.random.default_rng(seed)
    u = rng.standard_normal((rows, rank), dtype=np.float32)
    v = rng.standard_normal((rank, cols), dtype=np.float32)
    w = (u @ v) * np.float32(0.02 / np.sqrt(rank))
    w += rng.standard_normal((rows, cols), dtype=np.float32) * np.float32(0.01)
    w[list(OUTLIER_ROWS)] *= 12.0             # outlier rows: what agg="extremum" is for
    w[600:640, 3000:3200] = 0.0               # a dead block of weights
    return w


def loss(steps: int = 1_000_000, seed: int = 0) -> np.ndarray:
    """(steps,) float32: a noisy decaying training loss with one short spike."""
    rng = np.random.default_rng(seed)
    t = np.arange(steps, dtype=np.float64)
    y = 2.5 * np.exp(-t / 150_000) + 0.3 + 0.15 * rng.standard_normal(steps)
    y[400_000:400_050] += 3.0                 # 50 bad steps: M4 keeps them at any zoom
    return y.astype(np.float32)
