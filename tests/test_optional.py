"""dlviz_gpu.optional: which optional libraries are loaded, asked without importing them."""

import subprocess
import sys

import numpy as np


def test_asking_imports_nothing(tmp_path):
    code = ("import sys, numpy as np; from dlviz_gpu import optional as o; "
            "a = np.zeros(3); "
            "print(o.is_torch_tensor(a), o.is_torch_module(a), o.is_cupy_array(a), "
            "o.loaded('torch') is None, 'torch' in sys.modules, 'cupy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, check=True).stdout.split()
    assert out == ["False", "False", "False", "True", "False", "False"]


def test_torch_objects_are_recognised_once_torch_is_loaded():
    import torch

    from dlviz_gpu import optional

    assert optional.loaded("torch") is torch
    assert optional.is_torch_tensor(torch.zeros(2)) and not optional.is_torch_tensor(np.zeros(2))
    assert optional.is_torch_module(torch.nn.Linear(2, 2))
    assert not optional.is_torch_module(torch.zeros(2))
    assert not optional.is_cupy_array(torch.zeros(2))
