import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(20261126)


def cuda_usable() -> bool:
    """CUDA kernels can run: a real GPU, or NUMBA_ENABLE_CUDASIM=1 set before Python started."""
    from dlviz_gpu.backend import cuda_status

    return cuda_status()[0]
