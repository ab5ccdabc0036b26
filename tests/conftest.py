import functools

import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(20261126)


@functools.lru_cache(maxsize=None)
def cuda_usable() -> bool:
    """CUDA kernels can run: a real GPU, or NUMBA_ENABLE_CUDASIM=1 set before Python started."""
    from dlviz_gpu.backend import cuda_status

    return cuda_status()[0]


def pytest_runtest_setup(item):
    """A test marked ``cuda`` skips where CUDA kernels cannot run (no GPU and no simulator)."""
    if item.get_closest_marker("cuda") is not None and not cuda_usable():
        from tests.cuda import SKIP_REASON

        pytest.skip(SKIP_REASON)
