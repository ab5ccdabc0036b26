"""(N, D) embeddings -> (N, 2) coordinates, on the device the data lives on.

``method="pca"`` is randomized PCA (Halko, Martinsson & Tropp, 2011): a
Gaussian sketch of the centred data, a few power iterations, an SVD of a
small (l x D) matrix.  The data is never centred or upcast in one piece: every
pass goes over row chunks, each chunk converted to float32 (float64 for
float64 input) on its own, so a bf16 or memory-mapped (N, D) matrix is read
in place and extra memory is O(N x l + chunk x D), l = n_components + 10.

The work runs with the input's own array library: NumPy for host arrays,
torch for torch tensors (CPU or CUDA), CuPy for CuPy arrays; the result comes
back in that library, on that device.
"""

from __future__ import annotations


from typing import Literal, get_args

import numpy as np

from .optional import is_cupy_array, is_torch_tensor, loaded

#: how embeddings become 2-D
Method = Literal["pca", "first"]
METHODS = get_args(Method)
_CHUNK_BYTES = 64 << 20


class _Torch:
    def __init__(self, like):
        import torch

        self.t = torch
        self.device = like.device

    def chunk(self, x, lo, hi, dtype):
        return x[lo:hi].to(dtype)

    def float_dtype(self, x):
        return self.t.float64 if x.dtype == self.t.float64 else self.t.float32

    @property
    def f64(self):
        return self.t.float64

    def cast(self, a, dtype):
        return a.to(dtype)

    def arange(self, k):
        return self.t.arange(k, device=self.device)

    def randn(self, shape, dtype, seed):
        g = self.t.Generator(device="cpu").manual_seed(seed)
        return self.t.randn(shape, generator=g, dtype=dtype).to(self.device)

    def empty(self, shape, dtype):
        return self.t.empty(shape, dtype=dtype, device=self.device)

    def zeros(self, shape, dtype):
        return self.t.zeros(shape, dtype=dtype, device=self.device)

    def qr(self, a):
        return self.t.linalg.qr(a)[0]

    def svd(self, a):
        return self.t.linalg.svd(a, full_matrices=False)


class _ArrayModule:
    """NumPy or CuPy, which share the calls used here."""

    def __init__(self, xp):
        self.xp = xp

    def chunk(self, x, lo, hi, dtype):
        return self.xp.asarray(x[lo:hi], dtype=dtype)

    def float_dtype(self, x):
        return np.float64 if x.dtype == np.float64 else np.float32

    f64 = np.float64

    def cast(self, a, dtype):
        return a.astype(dtype)

    def arange(self, k):
        return self.xp.arange(k)

    def randn(self, shape, dtype, seed):
        return self.xp.asarray(np.random.default_rng(seed).standard_normal(shape).astype(dtype))

    def empty(self, shape, dtype):
        return self.xp.empty(shape, dtype=dtype)

    def zeros(self, shape, dtype):
        return self.xp.zeros(shape, dtype=dtype)

    def qr(self, a):
        return self.xp.linalg.qr(a)[0]

    def svd(self, a):
        return self.xp.linalg.svd(a, full_matrices=False)


def _namespace(x):
    if is_torch_tensor(x):
        return _Torch(x), x.detach()
    if is_cupy_array(x):
        return _ArrayModule(loaded("cupy")), x
    if not isinstance(x, np.ndarray):
        x = np.asarray(x)
    return _ArrayModule(np), x


def _check(x, n_components: int, method: str):
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"method: expected one of {', '.join(map(repr, METHODS))}; got {method!r}")
    if isinstance(n_components, bool) or not isinstance(n_components, (int, np.integer)) \
            or n_components < 1:
        raise ValueError(f"n_components: expected a positive integer; got {n_components!r}")
    shape = tuple(x.shape)
    if len(shape) != 2:
        raise ValueError(f"embeddings: expected a 2-D (N, D) array; got shape {shape}")
    if shape[1] < n_components:
        raise ValueError(f"embeddings: expected at least n_components={n_components} columns; "
                         f"got shape {shape}")
    kind = str(x.dtype)
    if "complex" in kind or not any(k in kind for k in ("float", "int", "bool")):
        raise TypeError(f"embeddings: expected a real numeric dtype; got {kind}")


def project(embeddings, method: Method = "pca", n_components: int = 2, seed: int = 0,
            n_iter: int = 4, oversample: int = 10, progress: bool | None = None):
    """Project (N, D) embeddings to (N, n_components) coordinates for a scatter plot.

    Parameters
    ----------
    embeddings : (N, D) array_like
        numpy array or memmap, torch tensor (CPU or CUDA, any float dtype),
        cupy array.
    method : {"pca", "first"}
        ``"pca"``: randomized PCA onto the leading principal components
        (signs fixed so each component's largest loading is positive).
        ``"first"``: the first ``n_components`` columns, as a view.
    n_components : int
        Output dimensions (2 for a scatter).
    seed : int
        Seed of the Gaussian sketch: same input, same output.
    n_iter : int
        Power iterations (more = sharper when the spectrum decays slowly).
    oversample : int
        Extra sketch columns beyond ``n_components``.
    progress : bool, optional
        Show a progress bar (default: when the input is over 256 MiB).

    Returns
    -------
    (N, n_components) array
        float32 (float64 for float64 input), same library and device as the input.
    """
    ns, x = _namespace(embeddings)
    _check(x, n_components, method)
    if method == "first":
        return x[:, :n_components]
    n, d = (int(s) for s in x.shape)
    dtype = ns.float_dtype(x)
    itemsize = x.element_size() if hasattr(x, "element_size") else x.dtype.itemsize
    step = max(1, _CHUNK_BYTES // max(1, d * 4))
    chunks = [(lo, min(n, lo + step)) for lo in range(0, n, step)]
    if progress is None:
        progress = n * d * itemsize > (256 << 20)
    passes = 3 + 2 * n_iter

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=passes * len(chunks), desc="project (randomized PCA)", unit="chunk")

    def tick():
        if bar is not None:
            bar.update(1)

    # pass 1: the column mean, accumulated in float64
    total = ns.zeros((d,), ns.f64)
    for lo, hi in chunks:
        total += ns.chunk(x, lo, hi, ns.f64).sum(0)
        tick()
    mean = ns.cast(total / max(n, 1), dtype)

    width = min(d, n_components + oversample)
    omega = ns.randn((d, width), dtype, seed)

    def times(right):  # (X - mean) @ right, (N, w)
        out = ns.empty((n, right.shape[1]), dtype)
        shift = mean @ right
        for lo, hi in chunks:
            out[lo:hi] = ns.chunk(x, lo, hi, dtype) @ right - shift
            tick()
        return out

    def t_times(left):  # (X - mean).T @ left, (D, w)
        acc = ns.zeros((d, left.shape[1]), dtype)
        for lo, hi in chunks:
            acc += ns.chunk(x, lo, hi, dtype).T @ left[lo:hi]
            tick()
        col = left.sum(0)
        return acc - mean[:, None] * col[None, :]

    q = ns.qr(times(omega))
    for _ in range(n_iter):
        q = ns.qr(times(ns.qr(t_times(q))))
    b = t_times(q).T                     # (w, D) = Q^T (X - mean)
    _, _, vt = ns.svd(b)
    comps = vt[:n_components]            # (k, D)
    # deterministic signs: the largest |loading| of each component is positive
    signs = comps[ns.arange(n_components), abs(comps).argmax(1)]
    comps = comps * ns.cast((signs >= 0) * 2 - 1, dtype)[:, None]
    out = times(comps.T)
    if bar is not None:
        bar.close()
    return out

