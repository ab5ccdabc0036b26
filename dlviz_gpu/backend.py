"""The one place that decides CPU or CUDA and moves arrays between them.

Where the data lives decides: a torch CUDA tensor or a cupy array runs on the
GPU, host data on the CPU.  ``backend="cpu"`` or ``"cuda"`` (the argument, or
the environment variable ``DLVIZ_BACKEND`` when the argument is ``"auto"``)
overrides.  An explicit CUDA request that cannot be met raises a RuntimeError
saying why and how to fix it; ``"auto"`` never fails over to an error.
"""

from __future__ import annotations

import os
from typing import Literal, get_args

import numpy as np

#: where a verb runs: "auto" follows the data (and DLVIZ_BACKEND)
Backend = Literal["auto", "cpu", "cuda"]
BACKENDS = get_args(Backend)
ENV_VAR = "DLVIZ_BACKEND"

_FIX = ("install the CUDA extra (pip install 'dlviz_gpu[cu12]' or 'dlviz_gpu[cu13]' to "
        "match your driver), or pass backend='cpu'; to run the CUDA kernels without a "
        "GPU, set NUMBA_ENABLE_CUDASIM=1 before starting Python")


def cuda_status() -> tuple[bool, str]:
    """Whether CUDA kernels can run here, and if not, why.

    Returns
    -------
    usable : bool
    reason : str
        "simulator", the device name, or what is missing.
    """
    try:
        from numba import cuda
    except ImportError as exc:  # pragma: no cover - numba always ships numba.cuda or numba-cuda
        return False, f"numba.cuda cannot be imported ({exc})"
    if getattr(cuda, "simulator_enabled", False) or _simulator():
        return True, "simulator"
    try:
        if not cuda.is_available():
            try:
                cuda.current_context()
            except Exception as exc:  # the driver's own words on what is missing
                return False, " ".join(str(exc).split()) or type(exc).__name__
            return False, "no CUDA device was found"
        return True, cuda.get_current_device().name.decode()
    except Exception as exc:
        return False, " ".join(str(exc).split()) or type(exc).__name__


def _simulator() -> bool:
    import numba

    return bool(getattr(numba.config, "ENABLE_CUDASIM", False))


def _check_name(value, where: str) -> str:
    if not isinstance(value, str) or value.strip().lower() not in BACKENDS:
        raise ValueError(f"{where}: expected one of {', '.join(map(repr, BACKENDS))}; "
                         f"got {value!r}")
    return value.strip().lower()


def resolve(backend: str | None, data_device: str) -> str:
    """Pick ``"cpu"`` or ``"cuda"`` for data living on ``data_device``.

    Parameters
    ----------
    backend : {"auto", "cpu", "cuda"} or None
        The caller's request; ``None`` means ``"auto"``.
    data_device : {"cpu", "cuda"}
        Where the input lives.
    """
    name = "auto" if backend is None else _check_name(backend, "backend")
    if name == "auto":
        env = os.environ.get(ENV_VAR, "").strip()
        if env:
            name = _check_name(env, f"environment variable {ENV_VAR}")
    if name == "cuda":
        ok, why = cuda_status()
        if not ok:
            raise RuntimeError(f"backend='cuda' was requested but CUDA cannot be used here: "
                               f"{why}. To fix: {_FIX}.")
        return "cuda"
    if name == "cpu":
        return "cpu"
    return "cuda" if data_device == "cuda" else "cpu"


def is_device_array(arr) -> bool:
    """True for arrays that live in GPU memory (numba device arrays, cupy, CAI objects)."""
    return hasattr(arr, "__cuda_array_interface__") and not isinstance(arr, np.ndarray)


def to_host(arr) -> np.ndarray:
    """Copy a device array to the host; host arrays pass through."""
    if isinstance(arr, np.ndarray):
        return arr
    if hasattr(arr, "copy_to_host"):
        return arr.copy_to_host()
    if hasattr(arr, "get"):  # cupy
        return arr.get()
    if hasattr(arr, "__cuda_array_interface__"):
        from numba import cuda

        return cuda.as_cuda_array(arr).copy_to_host()
    return np.asarray(arr)


def host_buffer(buffer) -> np.ndarray:
    """A host copy of a flat device buffer, for CPU runs on GPU data."""
    return to_host(buffer)


def buffer_for(matrix, where: str):
    """The flat buffer of ``matrix`` as backend ``where`` reads it.

    GPU data for a CPU run is copied to the host (same dtype, never upcast);
    host data for a CUDA run is left on the host: the CUDA kernels stream it.
    """
    if where == "cpu" and matrix.device == "cuda":
        return host_buffer(matrix.buffer)
    return matrix.buffer


def kernel_for(family, where: str):
    """The kernel of ``family`` (a :class:`dlviz_gpu.kernels.Family`) for backend ``where``.

    The verbs pick every kernel here, after :func:`resolve` chose ``where``.
    """
    return family[where]


def run_matrix(matrix, canvas, want_minmax: bool, want_m2: bool, backend: str,
               origin=(0, 0)):
    """Run the matrix kernel for ``matrix`` on ``canvas`` on the resolved backend.

    Returns the raw planes (host ndarrays for "cpu", device arrays for "cuda").
    """
    from .kernels import MATRIX_STATS

    kernel = kernel_for(MATRIX_STATS, backend)
    return kernel(buffer_for(matrix, backend), matrix.offset, matrix.rows, matrix.cols,
                  canvas.x_range, canvas.y_range, canvas.width, canvas.height,
                  decode=matrix.decode, want_minmax=want_minmax, want_m2=want_m2,
                  origin=origin)
