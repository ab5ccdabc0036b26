"""The one place that knows which optional array libraries a process has loaded.

An object can only be a torch tensor, a torch module or a cupy array if its
library is already imported, so these tests look in ``sys.modules`` and never
import anything themselves: asking whether a numpy array is a torch tensor
must not cost the seconds that importing torch takes.
"""

from __future__ import annotations

import sys

__all__ = ["loaded", "is_torch_tensor", "is_torch_module", "is_cupy_array"]


def loaded(library: str):
    """The module ``library`` ("torch", "cupy", ...) if the process imported it, else None."""
    return sys.modules.get(library)


def is_torch_tensor(obj) -> bool:
    """True for a ``torch.Tensor`` (without importing torch when it is not loaded)."""
    torch = loaded("torch")
    return torch is not None and isinstance(obj, torch.Tensor)


def is_torch_module(obj) -> bool:
    """True for a ``torch.nn.Module`` (without importing torch when it is not loaded)."""
    torch = loaded("torch")
    return torch is not None and isinstance(obj, torch.nn.Module)


def is_cupy_array(obj) -> bool:
    """True for a ``cupy.ndarray`` (without importing cupy when it is not loaded)."""
    cupy = loaded("cupy")
    return cupy is not None and isinstance(obj, cupy.ndarray)
