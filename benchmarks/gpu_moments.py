"""The GPU check's MOMENTS section (``python -m benchmarks gpu``): the watch's statistics.

1. **correct**: :func:`~dlviz_gpu.kernels.moments.moments_cuda` against the
   float64 reference (:mod:`dlviz_gpu.kernels.reference.moments`): float64 /
   float32 / bfloat16 / float16 / int64, NaN and +-inf, with and without the
   previous weights, the per-row largest ``|x|``, from device and host arrays.
   Counts, min, max and row maxima exact; mean, m2, sums of squares within
   1e-10 relative.
2. **timing** (not under ``--sim-smoke``): one 8192 x 4096 float32 tensor
   (128 MiB; 2048 x 4096 with ``--quick``) on the device, best of several
   runs: the family's CUDA kernel, the watch's torch probe on the same tensor
   (when torch sees the GPU), and the CPU kernel on a host copy.  The watch
   keeps its torch path on the GPU until this row shows the CUDA kernel
   faster (docs/architecture.md, "The kernel contract").

Imports only numpy and numba through ``dlviz_gpu.kernels`` (and torch for the
probe row, when present).
"""

from __future__ import annotations

import numpy as np

from ._common import Row, best_of, correctness_row

_INEXACT = ("mean", "m2", "sumsq", "diffsq")


def _case(rng, kind, shape):
    """(stored values, float64 truth, decode) of one test matrix with NaN and +-inf."""
    from dlviz_gpu.kernels import DECODE_BF16, DECODE_F16, DECODE_NATIVE

    base = rng.standard_normal(shape) * 10 + 3
    if kind == "i64":
        v = np.round(base).astype(np.int64)
        return v, v.astype(np.float64), DECODE_NATIVE
    base[rng.random(shape) < 0.05] = np.nan
    base.flat[0], base.flat[-1] = np.inf, -np.inf
    if kind == "f16":
        h = base.astype(np.float16)
        return h.view(np.uint16), h.astype(np.float64), DECODE_F16
    if kind == "bf16":
        f = base.astype(np.float32)
        bits = (f.view(np.uint32) >> np.uint32(16)).astype(np.uint16)   # truncation: exact bits
        truth = (bits.astype(np.uint32) << np.uint32(16)).view(np.float32).astype(np.float64)
        return bits, truth, DECODE_BF16
    v = base.astype(np.float32 if kind == "f32" else np.float64)
    return v, v.astype(np.float64), DECODE_NATIVE


def compare(cuda) -> list[str]:
    """Problems found comparing moments_cuda with the float64 reference."""
    from dlviz_gpu.kernels import reference
    from dlviz_gpu.kernels.moments import FIELDS, moments_cuda

    rng = np.random.default_rng(5)
    problems = []
    for kind in ("f64", "f32", "bf16", "f16", "i64"):
        # a wide and a tall matrix; one from device arrays, one from host arrays
        for shape, on_device in (((3, 200), True), ((9, 5), False)):
            x, truth, decode = _case(rng, kind, shape)
            p, ptruth, _ = _case(rng, kind, shape)
            want = reference.moments.moments(truth, ptruth)
            xs, ps = (cuda.to_device(x), cuda.to_device(p)) if on_device else (x, p)
            got, rowmax = moments_cuda(xs, ps, decode=decode, rows=True)
            where = f"{kind}/{shape}/device={on_device}"
            for name, value in zip(FIELDS, got):
                ok = (np.isclose(value, want[name], rtol=1e-10, atol=0, equal_nan=True)
                      if name in _INEXACT else value == want[name])
                if not ok:
                    problems.append(f"{where}: {name} {value!r} != {want[name]!r}")
            if not np.array_equal(rowmax, reference.moments.row_max_abs(truth), equal_nan=True):
                problems.append(f"{where}: row maxima differ")
    return problems


def _torch_probe_timing(x: np.ndarray, reps: int):
    """Best time of the watch's torch probe on ``x`` on the GPU, or None without torch CUDA."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    from dlviz_gpu.watch.probes import TorchProbe

    t = torch.from_numpy(x).cuda()
    probe = TorchProbe(64)
    return best_of(lambda: probe.measure([t], [None], [None], [False], False), reps, warmup=2,
                   sync=torch.cuda.synchronize)


def check_moments(res: dict, sim_smoke: bool = False, quick: bool = False) -> list:
    """The section's rows; details in ``res["moments"]``."""
    from numba import cuda

    from dlviz_gpu.kernels import moments_cpu, moments_cuda

    rows = [correctness_row(res, "moments", "CUDA == float64 reference", compare(cuda))]
    out = res["moments"]
    if sim_smoke:
        out["timing"] = "skipped under the simulator"
        return rows
    shape = (2048, 4096) if quick else (8192, 4096)
    host = np.random.default_rng(6).standard_normal(shape).astype(np.float32)
    dev = cuda.to_device(host)
    reps = 5 if quick else 10
    t_gpu = best_of(lambda: moments_cuda(dev), reps, warmup=2, sync=cuda.synchronize)
    t_cpu = best_of(lambda: moments_cpu(host), reps, warmup=2)
    t_torch = _torch_probe_timing(host, reps)
    same = np.allclose(moments_cuda(dev), moments_cpu(host), rtol=1e-10, atol=0)
    out.update(shape=shape, gpu=t_gpu.as_dict(), cpu=t_cpu.as_dict(), same=bool(same),
               torch_probe=None if t_torch is None else t_torch.as_dict())
    label = f"{shape[0]} x {shape[1]} float32"
    rows.append(Row(f"moments GPU (family kernel), {label}", time_s=t_gpu.best,
                    gbps=host.nbytes / t_gpu.best / 1e9, value=t_cpu.best / t_gpu.best,
                    metric="x CPU kernel", note=f"equal to the CPU kernel: {same}"))
    if t_torch is not None:
        rows.append(Row(f"moments GPU (watch's torch probe), {label}", time_s=t_torch.best,
                        gbps=host.nbytes / t_torch.best / 1e9,
                        value=t_torch.best / t_gpu.best, metric="x family kernel's time"))
    rows.append(Row(f"moments CPU, {label}", time_s=t_cpu.best,
                    gbps=host.nbytes / t_cpu.best / 1e9))
    return rows
