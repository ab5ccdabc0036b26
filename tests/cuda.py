"""What the CUDA kernel test modules share: run on a GPU or the simulator, else skip."""

from __future__ import annotations

import pytest

SKIP_REASON = "CUDA not available (set NUMBA_ENABLE_CUDASIM=1 for the simulator)"


def cuda_or_skip():
    """``numba.cuda``, or skip the calling test module where CUDA kernels cannot run.

    They run on a real GPU, or under Numba's simulator when
    ``NUMBA_ENABLE_CUDASIM=1`` is set before Python starts.
    """
    try:
        from numba import cuda
        available = cuda.is_available()
    except Exception:  # numba-cuda missing or broken
        available = False
    if not available:
        pytest.skip(SKIP_REASON, allow_module_level=True)
    return cuda


class _Cuda:
    """``numba.cuda``, imported on first use.

    A test module that holds CPU and CUDA tests imports this ``cuda`` at the
    top: nothing CUDA loads until a ``cuda``-marked test runs (tests marked
    ``cuda`` skip where CUDA kernels cannot run: ``tests/conftest.py``).
    """

    def __getattr__(self, name):
        from numba import cuda as module

        return getattr(module, name)


cuda = _Cuda()
