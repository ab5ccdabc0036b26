"""bfloat16 on the host without torch.

NumPy has no bfloat16 dtype, so a bfloat16 tensor read from a file is kept as
its raw 16-bit patterns (a ``uint16`` view of the file, no copy) inside a
:class:`BFloat16Array`.  The engine reads those bits in place through
:meth:`BFloat16Array.matrix` (a :class:`dlviz_gpu.tensors.Matrix`, accepted by
``dv.rasterize``, ``dv.histogram`` and the views as it is); ``np.asarray`` on
it gives a float32 *copy*, for code that needs a real NumPy dtype.
"""

from __future__ import annotations

import numpy as np


def bf16_to_float32(bits: np.ndarray) -> np.ndarray:
    """Decode bfloat16 bit patterns to float32 (a new array of the same shape).

    Parameters
    ----------
    bits : (...) uint16 or int16 array
        bfloat16 values as raw 16-bit patterns.

    Returns
    -------
    (...) float32 array
        Exactly the bfloat16 values (bfloat16 is the top half of a float32).
    """
    bits = np.asarray(bits)
    if bits.dtype not in (np.uint16, np.int16):
        raise TypeError(f"bits: expected a uint16 or int16 array of bfloat16 patterns; got "
                        f"dtype {bits.dtype}")
    return (bits.view(np.uint16).astype(np.uint32) << 16).view(np.float32)


def float32_to_bf16(values) -> np.ndarray:
    """Round float32 values to bfloat16 bit patterns (round to nearest even, NaN kept).

    Parameters
    ----------
    values : (...) array_like of float

    Returns
    -------
    (...) uint16 array
    """
    f = np.ascontiguousarray(values, dtype=np.float32)
    u = f.view(np.uint32).astype(np.uint64)
    rounded = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    nan = np.isnan(f)
    # a NaN must stay a NaN: keep its sign and force a quiet-NaN mantissa bit
    rounded[nan] = ((u[nan] >> 16).astype(np.uint16) | np.uint16(0x0040))
    return rounded


class BFloat16Array:
    """A host bfloat16 tensor held as its bit patterns, read in place.

    Parameters
    ----------
    bits : (...) uint16 array
        The raw bfloat16 patterns, typically a read-only view of a
        memory-mapped file.
    owner : object, optional
        Anything that must stay alive while the bits are used.

    Attributes
    ----------
    bits : (...) uint16 array
    shape : tuple of int
    dtype : str
        Always ``"bfloat16"``.
    """

    dtype = "bfloat16"
    itemsize = 2

    def __init__(self, bits: np.ndarray, owner=None):
        if not isinstance(bits, np.ndarray) or bits.dtype != np.uint16:
            raise TypeError(f"bits: expected a uint16 ndarray of bfloat16 patterns; got "
                            f"{type(bits).__name__} of dtype {getattr(bits, 'dtype', None)}")
        self.bits = bits
        self._owner = owner

    # -- array-like metadata ---------------------------------------------------
    @property
    def shape(self) -> tuple:
        return self.bits.shape

    @property
    def ndim(self) -> int:
        return self.bits.ndim

    @property
    def size(self) -> int:
        return int(self.bits.size)

    @property
    def nbytes(self) -> int:
        return int(self.bits.nbytes)

    @property
    def T(self) -> "BFloat16Array":
        return BFloat16Array(self.bits.T, self._owner)

    def __len__(self) -> int:
        return len(self.bits)

    def __getitem__(self, index) -> "BFloat16Array":
        """Basic or advanced indexing on the bits (basic indexing is a view)."""
        sub = self.bits[index]
        if not isinstance(sub, np.ndarray):
            sub = np.asarray(sub, dtype=np.uint16)
        return BFloat16Array(sub, self._owner)

    def reshape(self, *shape) -> "BFloat16Array":
        return BFloat16Array(self.bits.reshape(*shape), self._owner)

    def __repr__(self) -> str:
        return f"BFloat16Array(shape={self.shape})"

    # -- conversions --------------------------------------------------------
    def matrix(self, layout: str = "auto", *, name: str = "tensor"):
        """The tensor as a :class:`dlviz_gpu.tensors.Matrix` over the bits, no copy.

        ``dv.rasterize``, ``dv.histogram`` and the views accept the result as
        it is and decode bfloat16 inside the kernels.  ``name`` is the
        argument's name that errors start with.
        """
        from ..kernels import DECODE_BF16
        from ..tensors import LAYOUTS, from_host

        if not isinstance(layout, str) or layout not in LAYOUTS:
            raise ValueError(f"layout: expected one of {', '.join(map(repr, LAYOUTS))}; "
                             f"got {layout!r}")
        return from_host(self.bits, layout, decode=DECODE_BF16, name="bfloat16", owner=self,
                         arg=name)

    # The engine's intake (dlviz_gpu.tensors.as_matrix) calls this hook as
    # ``hook(obj, layout, name=...)``.
    __dlviz_matrix__ = matrix

    def astype(self, dtype) -> np.ndarray:
        """A NumPy copy in ``dtype`` (decoded through float32)."""
        return bf16_to_float32(self.bits).astype(dtype, copy=False)

    def __array__(self, dtype=None, copy=None):
        # NumPy has no bfloat16: conversion is necessarily a float32 copy.
        if copy is False:
            raise ValueError("a BFloat16Array cannot become a NumPy array without a copy "
                             "(NumPy has no bfloat16); use .matrix() to read it in place")
        out = bf16_to_float32(self.bits)
        return out if dtype is None else out.astype(dtype, copy=False)

    def to_torch(self):
        """A torch ``bfloat16`` tensor sharing the bits (needs torch)."""
        import warnings

        import torch

        with warnings.catch_warnings():
            # read-only file maps: torch warns that it cannot protect them; we never write
            warnings.simplefilter("ignore", UserWarning)
            t = torch.from_numpy(self.bits.view(np.int16))
        return t.view(torch.bfloat16)
