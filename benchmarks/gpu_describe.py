"""The GPU check's LINE_SUMSQ section (``python -m benchmarks gpu``): describe's short lines.

1. **correct**: :func:`~dlviz_gpu.kernels.describe.line_sumsq_cuda` against
   the float64 reference, rows and columns, float32 / bfloat16 / float16 /
   int64, a transposed and a negatively strided view, NaN and +-inf, from a
   device buffer and from a host buffer: every line within 1e-12 relative.
2. **timing** (not under ``--sim-smoke``): the column sums of squares of a
   10**7 x 3 float32 matrix (10**6 with ``--quick``), i.e. one short line per
   row, on the GPU from a device buffer vs :func:`line_sumsq_cpu` on the host,
   best of several runs; the GPU figure includes copying the result back.

Imports only numpy and numba through ``dlviz_gpu.kernels``.
"""

from __future__ import annotations

import numpy as np

from ._common import Row, best_of, correctness_row


def _inputs(rng, kind, view, rows=9, cols=3):
    """(values as stored, float64 truth, decode) of one small test matrix."""
    from dlviz_gpu.kernels import DECODE_BF16, DECODE_F16, DECODE_NATIVE

    base = rng.standard_normal((rows, cols)) * 10
    base[rng.random(base.shape) < 0.15] = np.nan
    base[0, 0], base[-1, -1] = np.inf, -np.inf
    if kind == "i64":
        base = np.nan_to_num(base, nan=0, posinf=5, neginf=-5).astype(np.int64)
        stored, truth, decode = base, base.astype(np.float64), DECODE_NATIVE
    elif kind == "f16":
        h = base.astype(np.float16)
        stored, truth, decode = h.view(np.uint16), h.astype(np.float64), DECODE_F16
    elif kind == "bf16":
        f = base.astype(np.float32)
        bits = (f.view(np.uint32) >> np.uint32(16)).astype(np.uint16)   # truncation: exact bits
        truth = (bits.astype(np.uint32) << np.uint32(16)).view(np.float32).astype(np.float64)
        stored, decode = bits, DECODE_BF16
    else:
        stored = base.astype(np.float32)
        truth, decode = stored.astype(np.float64), DECODE_NATIVE
    if view == "T":
        return stored.T, truth.T, decode
    if view == "neg":
        return stored[::-1, ::-1], truth[::-1, ::-1], decode
    return stored, truth, decode


def _flat(view):
    """(flat buffer, offset, row axis, column axis) of a 2-D NumPy view, no copy."""
    from dlviz_gpu.tensors import as_matrix

    m = as_matrix(view)
    return m.buffer, m.offset, m.rows, m.cols


def compare(cuda) -> list[str]:
    """Problems found comparing line_sumsq_cuda with the float64 reference."""
    from dlviz_gpu.kernels import line_sumsq_cuda, reference

    rng = np.random.default_rng(3)
    problems = []
    for kind in ("f32", "bf16", "f16", "i64"):
        for view in ("C", "T", "neg"):
            stored, truth, decode = _inputs(rng, kind, view)
            flat, offset, rows, cols = _flat(stored)
            for on_device in (False, True):
                buf = cuda.to_device(np.ascontiguousarray(flat)) if on_device else flat
                for lines, other, which in ((rows, cols, "rows"), (cols, rows, "cols")):
                    got = line_sumsq_cuda(buf, offset, lines, other, decode)
                    want = reference.describe.line_sumsq(truth, which)
                    if not np.allclose(got, want, rtol=1e-12, atol=0):
                        problems.append(f"{kind}/{view}/{which}/device={on_device}: "
                                        f"{got.tolist()} != {want.tolist()}")
    return problems


def check_describe(res: dict, sim_smoke: bool = False, quick: bool = False) -> list:
    """The section's rows; details in ``res["line_sumsq"]``."""
    from numba import cuda

    from dlviz_gpu.kernels import line_sumsq_cpu, line_sumsq_cuda

    rows = [correctness_row(res, "line_sumsq", "CUDA == float64 reference", compare(cuda))]
    out = res["line_sumsq"]
    if sim_smoke:
        out["timing"] = "skipped under the simulator"
        return rows
    n = 10**6 if quick else 10**7
    host = np.random.default_rng(4).standard_normal((n, 3)).astype(np.float32)
    flat, offset, r_axis, c_axis = _flat(host)
    dev = cuda.to_device(flat)
    reps = 5 if quick else 10
    t_gpu = best_of(lambda: line_sumsq_cuda(dev, offset, r_axis, c_axis, 0), reps, warmup=2,
                    sync=cuda.synchronize)
    t_cpu = best_of(lambda: line_sumsq_cpu(flat, offset, r_axis, c_axis, 0), reps, warmup=2)
    same = np.allclose(line_sumsq_cuda(dev, offset, r_axis, c_axis, 0),
                       line_sumsq_cpu(flat, offset, r_axis, c_axis, 0), rtol=1e-12, atol=0)
    out.update(n=n, gpu=t_gpu.as_dict(), cpu=t_cpu.as_dict(), same=bool(same))
    rows.append(Row(f"line_sumsq GPU, {n:,} x 3 float32 rows", time_s=t_gpu.best,
                    gbps=host.nbytes / t_gpu.best / 1e9, value=t_cpu.best / t_gpu.best,
                    metric="x CPU kernel", note=f"equal to the CPU kernel: {same}"))
    rows.append(Row(f"line_sumsq CPU, {n:,} x 3 float32 rows", time_s=t_cpu.best,
                    gbps=host.nbytes / t_cpu.best / 1e9))
    return rows
