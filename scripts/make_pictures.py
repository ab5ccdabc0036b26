"""Draw the README's pictures with the project itself: ``python scripts/make_pictures.py``.

Every picture is written by ``dv.save(view, "....png")`` (no browser) into
``docs/images/``; the data are deterministic, so reruns give the same files.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent.parent / "docs" / "images"


def layer(rows: int = 1024, cols: int = 2816, seed: int = 0) -> np.ndarray:
    """A weight matrix that looks trained: low rank + noise, a few outlier rows and columns."""
    rng = np.random.default_rng(seed)
    u = rng.standard_normal((rows, 8)).astype(np.float32)
    v = rng.standard_normal((8, cols)).astype(np.float32)
    w = (u @ v) * 0.02 + rng.standard_normal((rows, cols)).astype(np.float32) * 0.05
    w[rng.integers(0, rows, 6)] *= 6.0          # outlier units
    w[:, rng.integers(0, cols, 3)] += 0.4       # a few hot input features
    w[700:710, 2000:2010] = np.nan              # a patch that went NaN
    return w


def main() -> int:
    import dlviz_gpu as dv

    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    w = layer()
    pictures = {
        "heatmap.png": dv.heatmap(w, label="mlp.fc1.weight", width=700, height=300)
        + dv.heatmap(w, agg="extremum", norm="symlog", label="mlp.fc1.weight",
                     width=700, height=300),
    }
    # an embedding-like cloud: 2 M points in five clusters
    n = 2_000_000
    cat = rng.integers(0, 5, n)
    centres = rng.standard_normal((5, 2)) * 4
    xy = centres[cat] + rng.standard_normal((n, 2)) * (0.4 + 0.3 * cat[:, None])
    pictures["scatter.png"] = (dv.scatter(xy, norm="log", width=450, height=350, label="embeddings")
                               + dv.scatter(xy, category=cat, width=450, height=350,
                                            labels=[f"class {k}" for k in range(5)]))
    # a loss curve of 10^6 steps: decaying, noisy, with spikes
    steps = 1_000_000
    t = np.arange(steps)
    loss = (2.5 * np.exp(-t / 2e5) + 0.3 + 0.15 * rng.standard_normal(steps)).astype(np.float32)
    loss[rng.integers(0, steps, 20)] += 3.0
    pictures["curve.png"] = dv.curve(loss, smoothing=0.99, label="loss", width=900, height=300)
    # distributions: a weight tensor drifting over 200 steps
    snaps = [rng.standard_normal(20_000).astype(np.float32) * (1 + s / 100) + s / 200
             for s in range(200)]
    pictures["distributions.png"] = (dv.histplot(snaps[-1], bins=128, label="step 199")
                                     + dv.distribution(snaps, label="weights over steps"))
    pictures["bars.png"] = dv.bars({f"layers.{k}.mlp.weight": float(np.linalg.norm(
        rng.standard_normal(1000) * (1 + k / 4))) for k in range(24)}, label="weight norm")
    for name, obj in pictures.items():
        path = dv.save(obj, OUT / name)
        print(f"wrote {path.relative_to(OUT.parent.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
