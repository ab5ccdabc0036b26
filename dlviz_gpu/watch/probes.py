"""What the watch measures at a recorded step, on the parameters' own device.

Two implementations with one result, chosen in one place (:func:`probe_for`):

- :class:`CpuProbe`, for parameters in host memory: the kernel families
  ``MOMENTS`` and ``HISTOGRAM_MANY`` picked through the one dispatch point,
  :func:`dlviz_gpu.backend.kernel_for`, read in place through NumPy views of
  the tensors.  Returns NumPy arrays.
- :class:`TorchProbe`, for parameters on a GPU (and anything the CPU probe
  cannot view): torch reductions and a bucketize/index_add histogram, all
  queued on the device, whole rows at a time in float64 chunks of at most
  :data:`CHUNK` elements.  Nothing here synchronises with the host: the
  results stay device tensors until the watch's writer thread copies them.
  The ``MOMENTS`` family has a CUDA kernel too (``moments_cuda``), but it
  copies each tensor's partials back, which waits for the training step; the
  torch path stays the GPU's until the GPU check's moments section
  (``benchmarks/gpu_moments.py``) shows the family's kernel faster inside a
  training step.

Both give, per parameter, the rows of :data:`STAT_NAMES` for the weight and
its gradient, the squared update norm ``||w - w_prev||^2`` when a copy of the
previous weights is given, the largest ``|g|`` per row of the gradient (dead
units), and ``bins`` equal-width histogram counts over the tensor's own
``[finite min, finite max]`` (one distinct value v: ``[v - 0.5, v + 0.5]``).
Histogram edges are those of :func:`dlviz_gpu.histograms.make_edges` (NumPy's
``linspace``, the same float64 operations on the device) and each value is
compared with them as a float64 number, so both probes count identically.
"""

from __future__ import annotations

import numpy as np

from ..backend import kernel_for
from ..kernels import moments as km
from .store import STAT_NAMES

__all__ = ["CpuProbe", "TorchProbe", "probe_for", "CHUNK", "stats_row"]

#: Elements per float64 chunk of the torch probe (whole rows; 32 MiB of float64).
CHUNK = 1 << 22

_NSTATS = len(STAT_NAMES)


def stats_row(m: np.ndarray) -> np.ndarray:
    """:data:`STAT_NAMES` values from a :data:`moments.FIELDS` array."""
    f = dict(zip(km.FIELDS, m))
    n = f["count"]
    out = np.full(_NSTATS, np.nan)
    out[0] = f["numel"]
    if n > 0:
        out[1] = f["mean"]
        out[2] = np.sqrt(max(f["m2"], 0.0) / n)
        out[3] = np.sqrt(max(f["sumsq"], 0.0))
        out[4] = f["min"]
        out[5] = f["max"]
        out[6] = max(abs(f["min"]), abs(f["max"]))
    out[7] = f["zeros"]
    out[8] = f["nan"]
    out[9] = f["posinf"]
    out[10] = f["neginf"]
    return out


def hist_range(lo: float, hi: float) -> tuple[float, float]:
    """The histogram range of a tensor whose finite values span [lo, hi]."""
    if not lo <= hi:                     # no finite value
        return np.nan, np.nan
    if lo == hi:
        return lo - 0.5, hi + 0.5
    return lo, hi


def _numpy_view(t):
    """(2-D C-contiguous ndarray, decode) reading ``t`` in place, or None."""
    import torch

    if t.device.type != "cpu" or not t.is_contiguous():
        return None
    t2 = t.detach().reshape(t.shape[0], -1) if t.dim() >= 2 else t.detach().reshape(1, -1)
    if t.dtype == torch.bfloat16:
        return t2.view(torch.int16).numpy().view(np.uint16), km.DECODE_BF16
    if t.dtype == torch.float16:
        return t2.view(torch.int16).numpy().view(np.uint16), km.DECODE_F16
    if t.dtype in (torch.float32, torch.float64):
        return t2.numpy(), km.DECODE_NATIVE
    return None


class CpuProbe:
    """Numba kernels on host tensors; see the module docstring."""

    device = "cpu"

    def __init__(self, bins: int):
        self.bins = bins

    def supports(self, tensors) -> bool:
        return all(_numpy_view(t) is not None for t in tensors)

    def measure(self, weights, grads, prevs, want_rows, histograms: bool) -> dict:
        """Measure one recorded step.

        Parameters
        ----------
        weights : list of P tensors
        grads : list of P tensors or None (no gradient this step)
        prevs : list of P tensors or None (no previous weights)
        want_rows : list of P bool
            Whether to return the per-row max |g| of the gradient.
        histograms : bool

        Returns
        -------
        dict with ``stats`` (P, 2, NSTATS) float64, ``diffsq`` (P,) float64
        (NaN without a previous copy), ``rowmax`` list of (R,) arrays or None,
        and with histograms ``hist_counts`` (P, 2, B) int64 and ``hist_range``
        (P, 2, 2) float64.
        """
        moments = kernel_for(km.MOMENTS, self.device)
        P = len(weights)
        stats = np.full((P, 2, _NSTATS), np.nan)
        diffsq = np.full(P, np.nan)
        rowmax = [None] * P
        views = [[None, None] for _ in range(P)]
        for i in range(P):
            w = _numpy_view(weights[i])
            views[i][0] = w
            pv = _numpy_view(prevs[i]) if prevs[i] is not None else None
            m = moments(w[0], pv[0] if pv is not None else None, decode=w[1])
            stats[i, 0] = stats_row(m)
            if pv is not None:
                diffsq[i] = m[km.FIELDS.index("diffsq")]
            if grads[i] is not None:
                g = _numpy_view(grads[i])
                views[i][1] = g
                if want_rows[i]:
                    m, rowmax[i] = moments(g[0], decode=g[1], rows=True)
                else:
                    m = moments(g[0], decode=g[1])
                stats[i, 1] = stats_row(m)
        out = {"stats": stats, "diffsq": diffsq, "rowmax": rowmax}
        if histograms:
            out["hist_counts"], out["hist_range"] = self._histograms(views, stats)
        return out

    def _histograms(self, views, stats):
        from ..histograms import make_edges
        from ..kernels import Axis
        from ..kernels import histogram as kh

        P = len(views)
        B = self.bins
        counts = np.zeros((P, 2, B), np.int64)
        ranges = np.full((P, 2, 2), np.nan)
        items, edges, where = [], [], []
        for i in range(P):
            for k in range(2):
                v = views[i][k]
                if v is None:
                    continue
                lo, hi = hist_range(stats[i, k, 4], stats[i, k, 5])
                ranges[i, k] = (stats[i, k, 4], stats[i, k, 5])
                if not lo <= hi:
                    continue
                a, dec = v
                r, c = a.shape
                items.append((a.reshape(-1), 0, Axis(n=r, t1=c), Axis(n=c, t1=1), dec))
                edges.append(make_edges(B, lo, hi))
                where.append((i, k))
        if items:
            c, _ = kernel_for(kh.HISTOGRAM_MANY, self.device)(items, np.stack(edges))
            for (i, k), row in zip(where, c):
                counts[i, k] = row
        return counts, ranges


class TorchProbe:
    """torch reductions queued on the tensors' device; see the module docstring."""

    def __init__(self, bins: int):
        self.bins = bins
        self.device = None

    def supports(self, tensors) -> bool:
        return True

    def measure(self, weights, grads, prevs, want_rows, histograms: bool) -> dict:
        """As :meth:`CpuProbe.measure`, every array a tensor on the parameters' device."""
        import torch

        P = len(weights)
        dev = weights[0].device
        nan = torch.full((_NSTATS,), float("nan"), dtype=torch.float64, device=dev)
        rows_w, rows_g, diffs, rowmax, hc, hr = [], [], [], [], [], []
        for i in range(P):
            s, d, _, h = self._one(weights[i], prevs[i], False, histograms)
            rows_w.append(s)
            diffs.append(d)
            if grads[i] is not None:
                sg, _, rm, hg = self._one(grads[i], None, want_rows[i], histograms)
            else:
                sg, rm, hg = nan, None, None
            rows_g.append(sg)
            rowmax.append(rm)
            if histograms:
                zc = torch.zeros(self.bins, dtype=torch.int64, device=dev)
                zr = torch.full((2,), float("nan"), dtype=torch.float64, device=dev)
                hc.append(torch.stack([h[0], hg[0] if hg else zc]))
                hr.append(torch.stack([h[1], hg[1] if hg else zr]))
        out = {"stats": torch.stack([torch.stack(rows_w), torch.stack(rows_g)], 1),
               "diffsq": torch.stack(diffs), "rowmax": rowmax}
        if histograms:
            out["hist_counts"] = torch.stack(hc)
            out["hist_range"] = torch.stack(hr)
        return out

    def _one(self, t, prev, want_rows: bool, histograms: bool):
        import torch

        t = t.detach()
        x2 = t.reshape(t.shape[0], -1) if t.dim() >= 2 else t.reshape(1, -1)
        p2 = None
        if prev is not None:
            p2 = prev.detach().reshape(x2.shape)
        R, C = x2.shape
        dev = t.device
        f64 = dict(dtype=torch.float64, device=dev)
        step = max(1, CHUNK // max(C, 1))
        n = torch.zeros((), **f64)
        mean = torch.zeros((), **f64)
        m2 = torch.zeros((), **f64)
        mn = torch.full((), float("inf"), **f64)
        mx = torch.full((), float("-inf"), **f64)
        cnt = torch.zeros(4, **f64)                   # zeros, nan, +inf, -inf
        dd = torch.zeros((), **f64)
        rm = [] if want_rows else None
        chunks = []
        for r0 in range(0, R, step):
            v = x2[r0:r0 + step].double()
            fin = torch.isfinite(v)
            vf = torch.where(fin, v, 0.0)
            cn = fin.sum(dtype=torch.float64)
            cmean = vf.sum() / cn.clamp(min=1)
            cm2 = (torch.where(fin, v - cmean, 0.0) ** 2).sum()
            tot = n + cn
            delta = cmean - mean
            safe = tot.clamp(min=1)
            mean = mean + delta * cn / safe
            m2 = m2 + cm2 + delta * delta * n * cn / safe
            n = tot
            mn = torch.minimum(mn, torch.where(fin, v, float("inf")).amin())
            mx = torch.maximum(mx, torch.where(fin, v, float("-inf")).amax())
            cnt = cnt + torch.stack([(v == 0).sum(dtype=torch.float64),
                                     torch.isnan(v).sum(dtype=torch.float64),
                                     torch.isposinf(v).sum(dtype=torch.float64),
                                     torch.isneginf(v).sum(dtype=torch.float64)])
            if p2 is not None:
                q = p2[r0:r0 + step].double()
                ok = fin & torch.isfinite(q)
                dd = dd + (torch.where(ok, v - q, 0.0) ** 2).sum()
            if want_rows:
                rm.append(v.abs().amax(dim=1))
            if histograms:
                chunks.append((v, fin))
        has = n > 0
        std = torch.sqrt(m2.clamp(min=0) / n.clamp(min=1))
        sumsq = m2 + n * mean * mean
        maxabs = torch.maximum(mn.abs(), mx.abs())
        fnan = torch.tensor(float("nan"), **f64)
        row = torch.stack([
            torch.tensor(float(R * C), **f64),
            torch.where(has, mean, fnan), torch.where(has, std, fnan),
            torch.where(has, torch.sqrt(sumsq.clamp(min=0)), fnan),
            torch.where(has, mn, fnan), torch.where(has, mx, fnan),
            torch.where(has, maxabs, fnan), *cnt])
        hist = None
        if histograms:
            hist = self._histogram(chunks, mn, mx, has)
        rowmax = torch.cat(rm) if want_rows else None
        return row, (dd if p2 is not None else torch.tensor(float("nan"), **f64)), rowmax, hist

    def _histogram(self, chunks, mn, mx, has):
        import torch

        B = self.bins
        dev = mn.device
        f64 = dict(dtype=torch.float64, device=dev)
        same = mn == mx
        lo = torch.where(has, torch.where(same, mn - 0.5, mn), 0.0)
        hi = torch.where(has, torch.where(same, mx + 0.5, mx), 1.0)
        stepv = (hi - lo) / B
        edges = torch.arange(B + 1, **f64) * stepv + lo      # numpy.linspace's operations
        edges[0] = lo
        edges[-1] = hi
        if B % 2 == 0:
            edges[B // 2] = torch.where(lo == -hi, 0.0, edges[B // 2])
        counts = torch.zeros(B + 1, dtype=torch.int64, device=dev)   # last: non-finite
        for v, fin in chunks:
            idx = torch.bucketize(v.reshape(-1), edges, right=True) - 1
            idx = idx.clamp(0, B - 1)
            idx = torch.where(fin.reshape(-1) & has, idx, B)
            counts.index_add_(0, idx, torch.ones_like(idx))
        rng = torch.stack([torch.where(has, mn, float("nan")), torch.where(has, mx, float("nan"))])
        return counts[:B], rng


def probe_for(tensors, bins: int):
    """The probe that measures ``tensors`` where they live (the one dispatch point)."""
    cpu = CpuProbe(bins)
    if cpu.supports(tensors):
        return cpu
    return TorchProbe(bins)
