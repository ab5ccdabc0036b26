"""The kernel contract: one object per family, one member per backend.

A *family* is one computation (the per-pixel statistics of a matrix, the M4
columns of a series, the exact histogram, ...).  Its module exports one
:class:`Family` whose members are

``cpu``
    the Numba CPU kernel (host buffers);
``cuda``
    the Numba CUDA kernel under the **same signature and result** (device
    buffers read in place; host buffers copied or streamed, as its docstring
    says; results on the host unless the docstring says device);
``reference``
    the slow float64 NumPy twin the tests check both against.  It takes the
    logical values (a float64 array), not the strided buffer the kernels
    read: it states the semantics, not the addressing.

``family[where]`` picks the kernel for a resolved backend (``"cpu"`` or
``"cuda"``); :func:`dlviz_gpu.backend.kernel_for` is the one place the verbs
call it from.  :data:`dlviz_gpu.kernels.FAMILIES` maps every family's name to
its object.  How to add one: docs/architecture.md, "Adding a kernel family".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

__all__ = ["Family", "BACKEND_MEMBERS"]

#: the members that are kernels, one per backend
BACKEND_MEMBERS = ("cpu", "cuda")


@dataclass(frozen=True)
class Family:
    """One kernel family.

    Parameters
    ----------
    name : str
        Its key in :data:`dlviz_gpu.kernels.FAMILIES` (lower case).
    cpu, cuda : callable
        The kernels, one signature for both.
    reference : callable
        The float64 NumPy twin (in :mod:`dlviz_gpu.kernels.reference`).
    summary : str
        One line: what a call computes.
    """

    name: str
    cpu: Callable
    cuda: Callable
    reference: Callable
    summary: str

    def __getitem__(self, where: str) -> Callable:
        if where not in BACKEND_MEMBERS:
            raise KeyError(f"where: expected one of {', '.join(map(repr, BACKEND_MEMBERS))}; "
                           f"got {where!r}")
        return getattr(self, where)

    def __repr__(self) -> str:
        return f"<kernel family {self.name!r}: {self.summary}>"
