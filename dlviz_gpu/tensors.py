"""Anything tensor-like -> a 2-D view without a copy.

numpy arrays and memmaps, torch tensors (CPU or CUDA, bfloat16 and float16
included), cupy arrays, and anything with ``__array__``,
``__cuda_array_interface__`` or ``__dlpack__`` become a :class:`Matrix`: a
flat buffer over the tensor's own memory plus address maps for its rows and
columns.  Nothing is copied and nothing is upcast: bfloat16 and float16 stay
16-bit and are decoded inside the kernels, any strides (transposed, sliced,
negative) are addressed as they are.

Layouts (``layout=``):

``"auto"``     1-D -> a 1 x N strip; 2-D as is; 4-D -> ``"mosaic"``;
               3-D and 5-D+ must say which layout they want.
``"mosaic"``   4-D (out, in, kh, kw) conv weights -> (out*kh) x (in*kw), so
               each kernel is a visible kh x kw tile.
``"flatten"``  (d0, d1*d2*...): one row per leading index.
``"stack"``    (d0*d1*..., d_last): leading dims stacked as rows, e.g.
               attention (heads, seq, dim) -> heads one above the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import numpy as np

from .kernels import DECODE_BF16, DECODE_F16, DECODE_NATIVE, Axis, axis_from_dims
from .optional import is_torch_tensor

#: how a tensor of other than two dimensions becomes a matrix (see the module docstring)
Layout = Literal["auto", "mosaic", "flatten", "stack"]
LAYOUTS = get_args(Layout)

_ACCEPTED = ("a numpy array or memmap, a torch tensor, a cupy array, or an object with "
             "__array__, __cuda_array_interface__ or __dlpack__")


@dataclass(frozen=True)
class Matrix:
    """A tensor seen as a 2-D matrix, in place.

    Element ``(i, j)`` is ``buffer[offset + rows.offsets(i) + cols.offsets(j)]``
    (decoded per ``decode`` for 16-bit floats).
    """

    buffer: Any          # (L,) host ndarray, or a CUDA array-interface object
    offset: int
    rows: Axis
    cols: Axis
    decode: int
    dtype: str           # the tensor's dtype name: "float32", "bfloat16", ...
    device: str          # "cpu" or "cuda"
    source_shape: tuple
    layout: str
    owner: Any = field(default=None, repr=False, compare=False)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.rows.n, self.cols.n)

    @property
    def is_float(self) -> bool:
        return self.dtype.startswith(("float", "bfloat"))


def as_matrix(tensor, layout: Layout = "auto", *, name: str = "tensor") -> Matrix:
    """View ``tensor`` as a :class:`Matrix` without copying it.

    Parameters
    ----------
    tensor : array_like
        See the module docstring for what is accepted.
    layout : {"auto", "mosaic", "flatten", "stack"}
        How tensors of other than two dimensions become a matrix.
    name : str
        The argument's name in the caller's signature, which every error
        message starts with (``dv.decimate`` passes ``"y"``, say).

    Raises
    ------
    TypeError
        Unsupported object or dtype (complex, object, strings, ...).
    ValueError
        0-d or empty tensors, unknown layouts, ranks that need a layout.
    """
    if isinstance(tensor, Matrix):
        return tensor
    if not isinstance(layout, str) or layout not in LAYOUTS:
        raise ValueError(f"layout: expected one of {', '.join(map(repr, LAYOUTS))}; "
                         f"got {layout!r}")
    if is_torch_tensor(tensor):
        return _from_torch(tensor, layout, arg=name)
    # objects that know their own memory layout (e.g. a bfloat16 view of a
    # memory-mapped checkpoint, which numpy cannot describe) say it themselves
    hook = getattr(type(tensor), "__dlviz_matrix__", None)
    if hook is not None:
        return hook(tensor, layout, name=name)
    if isinstance(tensor, np.ndarray):
        return from_host(tensor, layout, arg=name)
    if hasattr(tensor, "__cuda_array_interface__"):
        return _from_cuda_interface(tensor.__cuda_array_interface__, tensor, layout, arg=name)
    if hasattr(tensor, "__dlpack__") and hasattr(tensor, "__dlpack_device__"):
        return _from_dlpack(tensor, layout, arg=name)
    if hasattr(tensor, "__array__") or isinstance(tensor, (list, tuple)):
        return from_host(np.asarray(tensor), layout, arg=name)
    raise TypeError(f"{name}: expected {_ACCEPTED}; got {type(tensor).__module__}."
                    f"{type(tensor).__qualname__}")


# --- dtype policy ---------------------------------------------------------

def _storage(dtype: np.dtype, name: str | None = None,
             arg: str = "tensor") -> tuple[np.dtype, int, str]:
    """(dtype the kernels read, decode flag, logical dtype name) for a numpy dtype.

    ``arg`` is the argument's name that errors start with.
    """
    dtype = np.dtype(dtype)
    name = name or dtype.name
    if dtype.kind == "b":
        return np.dtype(np.uint8), DECODE_NATIVE, "bool"
    if dtype.kind == "f" and dtype.itemsize == 2:
        return np.dtype(np.uint16), DECODE_F16, "float16"
    if (dtype.kind == "f" and dtype.itemsize in (4, 8)) or dtype.kind in "iu":
        if not dtype.isnative:
            raise TypeError(f"{arg}: expected native byte order; got {dtype.str!r} "
                            f"(convert with .astype({dtype.name!r}) first)")
        return dtype, DECODE_NATIVE, name
    kind = {"c": "complex", "O": "object", "U": "string", "S": "bytes", "V": "structured",
            "M": "datetime", "m": "timedelta", "f": "extended-precision float"}.get(dtype.kind, dtype.kind)
    raise TypeError(f"{arg}: expected a real numeric dtype (float64, float32, float16, "
                    f"bfloat16, int8..int64, uint8..uint64 or bool); got {kind} dtype "
                    f"{dtype.name!r}")


def _check_shape(shape: tuple, arg: str = "tensor") -> None:
    if len(shape) == 0:
        raise ValueError(f"{arg}: expected at least 1 dimension; got a 0-d scalar")
    if int(np.prod(shape)) == 0:
        raise ValueError(f"{arg}: expected a non-empty tensor; got shape {tuple(shape)}")


def _axes(shape: tuple, st: tuple, layout: str) -> tuple[Axis, Axis, str]:
    """Row and column address maps for a tensor of ``shape`` and element strides ``st``."""
    nd = len(shape)
    shape = tuple(int(n) for n in shape)
    if nd == 1:
        return Axis(n=1, t1=0), axis_from_dims(shape, st), "strip"
    if layout == "mosaic" and nd != 4:
        raise ValueError(f"layout: 'mosaic' needs a 4-D (out, in, kh, kw) tensor; got "
                         f"shape {shape}")
    if nd == 2 and layout in ("auto", "flatten", "stack"):
        return axis_from_dims(shape[:1], st[:1]), axis_from_dims(shape[1:], st[1:]), "matrix"
    if layout == "auto":
        if nd == 4:
            layout = "mosaic"
        elif nd == 3:
            raise ValueError(f"layout: a 3-D tensor of shape {shape} needs an explicit "
                             f"layout: 'flatten' shows ({shape[0]}, {shape[1] * shape[2]}), "
                             f"'stack' shows ({shape[0] * shape[1]}, {shape[2]})")
        else:
            raise ValueError(f"layout: tensors with more than 4 dimensions need "
                             f"layout='flatten' or layout='stack'; got shape {shape}")
    if layout == "mosaic":
        o, i, kh, kw = shape
        rows = axis_from_dims((o, kh), (st[0], st[2]))
        cols = axis_from_dims((i, kw), (st[1], st[3]))
        return rows, cols, "mosaic"
    if layout == "flatten":
        return axis_from_dims(shape[:1], st[:1]), axis_from_dims(shape[1:], st[1:]), "flatten"
    return axis_from_dims(shape[:-1], st[:-1]), axis_from_dims(shape[-1:], st[-1:]), "stack"


def _span(shape, st) -> tuple[int, int]:
    """(elements from the lowest address to element 0, total elements spanned)."""
    below = sum((n - 1) * -s for n, s in zip(shape, st) if s < 0)
    span = sum((n - 1) * abs(s) for n, s in zip(shape, st)) + 1
    return int(below), int(span)


# --- host arrays ----------------------------------------------------------

def from_host(arr: np.ndarray, layout: str, decode: int | None = None,
              name: str | None = None, owner=None, arg: str = "tensor") -> Matrix:
    """A host array as a :class:`Matrix` (no copy), the bits read as ``decode`` says.

    Parameters
    ----------
    arr : ndarray
        Any strides; its dtype is the storage (``uint16`` for bfloat16 bits).
    layout : {"auto", "mosaic", "flatten", "stack"}
    decode : int or None
        A ``dlviz_gpu.kernels.DECODE_*`` flag; None takes the dtype's own.
    name : str or None
        The logical dtype's name (``"bfloat16"``); None takes ``arr.dtype``'s.
    owner : object or None
        What keeps the memory alive (default ``arr``).
    arg : str
        The argument's name that errors start with.
    """
    _check_shape(arr.shape, arg)
    store, dec, dname = _storage(arr.dtype, name, arg)
    if decode is not None:
        dec = decode
    if arr.dtype != store:
        arr = arr.view(store)  # same itemsize: a reinterpretation, never a copy
    itemsize = arr.itemsize
    if any(s % itemsize for s in arr.strides):
        raise ValueError(f"{arg}: strides {arr.strides} are not whole multiples of the "
                         f"{itemsize}-byte element size; pass a regular array view")
    st = tuple(s // itemsize for s in arr.strides)
    rows, cols, resolved = _axes(arr.shape, st, layout)
    below, span = _span(arr.shape, st)
    low = tuple(n - 1 if s < 0 else 0 for n, s in zip(arr.shape, st))
    start = arr[tuple(slice(i, i + 1) for i in low)]
    flat = np.lib.stride_tricks.as_strided(start, shape=(span,), strides=(itemsize,),
                                           writeable=False)
    return Matrix(buffer=flat, offset=below, rows=rows, cols=cols, decode=dec, dtype=dname,
                  device="cpu", source_shape=tuple(arr.shape), layout=resolved,
                  owner=owner if owner is not None else arr)


# --- torch ----------------------------------------------------------------

def _from_torch(t, layout: str, arg: str = "tensor") -> Matrix:
    import torch

    t = t.detach()
    name = str(t.dtype).replace("torch.", "")
    decode = DECODE_NATIVE
    bits = t
    if t.dtype == torch.bfloat16:
        bits, decode = t.view(torch.int16), DECODE_BF16
    elif t.dtype == torch.float16:
        bits, decode = t.view(torch.int16), DECODE_F16
    elif t.dtype == torch.bool:
        bits = t.view(torch.uint8)
    elif t.dtype not in (torch.float32, torch.float64, torch.int8, torch.uint8, torch.int16,
                         torch.int32, torch.int64):
        raise TypeError(f"{arg}: torch dtype {t.dtype} is not supported; expected float64, "
                        f"float32, float16, bfloat16, int8..int64, uint8 or bool")
    _check_shape(tuple(t.shape), arg)
    if t.device.type == "cuda":
        shape, st = tuple(t.shape), tuple(t.stride())
        rows, cols, resolved = _axes(shape, st, layout)
        below, span = _span(shape, st)
        itemsize = bits.element_size()
        typestr = {DECODE_BF16: "<u2", DECODE_F16: "<u2"}.get(
            decode, bits.__cuda_array_interface__["typestr"])
        ptr = bits.data_ptr() - below * itemsize
        flat = _CudaSpan(ptr, span, typestr, owner=t)
        return Matrix(buffer=flat, offset=below, rows=rows, cols=cols, decode=decode,
                      dtype=name, device="cuda", source_shape=shape, layout=resolved, owner=t)
    if t.device.type != "cpu":
        raise ValueError(f"{arg}: torch tensors on {t.device.type!r} are not supported; "
                         f"expected 'cpu' or 'cuda' (move it with .cpu())")
    arr = bits.numpy()
    if decode != DECODE_NATIVE:
        arr = arr.view(np.uint16)
    return from_host(arr, layout, decode=decode, name=name, owner=t, arg=arg)


# --- CUDA array interface and DLPack -----------------------------------------

class _CudaSpan:
    """A flat 1-D CUDA array-interface view over the memory a strided tensor spans."""

    def __init__(self, ptr: int, length: int, typestr: str, owner):
        self._owner = owner
        self.__cuda_array_interface__ = {
            "shape": (int(length),), "strides": None, "typestr": typestr,
            "data": (int(ptr), True), "version": 3,
        }

    @property
    def shape(self):
        return self.__cuda_array_interface__["shape"]

    @property
    def dtype(self):
        return np.dtype(self.__cuda_array_interface__["typestr"])


def _from_cuda_interface(cai: dict, owner, layout: str, arg: str = "tensor") -> Matrix:
    shape = tuple(int(n) for n in cai["shape"])
    _check_shape(shape, arg)
    dtype = np.dtype(cai["typestr"])
    store, decode, name = _storage(dtype, arg=arg)
    itemsize = dtype.itemsize
    if cai.get("strides") is None:
        st = tuple(int(np.prod(shape[k + 1:])) for k in range(len(shape)))
    else:
        if any(s % itemsize for s in cai["strides"]):
            raise ValueError(f"{arg}: strides {tuple(cai['strides'])} are not whole "
                             f"multiples of the {itemsize}-byte element size")
        st = tuple(int(s) // itemsize for s in cai["strides"])
    rows, cols, resolved = _axes(shape, st, layout)
    below, span = _span(shape, st)
    flat = _CudaSpan(cai["data"][0] - below * itemsize, span, store.str, owner=owner)
    return Matrix(buffer=flat, offset=below, rows=rows, cols=cols, decode=decode, dtype=name,
                  device="cuda", source_shape=shape, layout=resolved, owner=owner)


_DLPACK_CPU, _DLPACK_CUDA, _DLPACK_CUDA_HOST, _DLPACK_CUDA_MANAGED = 1, 2, 3, 13


def _from_dlpack(obj, layout: str, arg: str = "tensor") -> Matrix:
    device_type = int(obj.__dlpack_device__()[0])
    if device_type in (_DLPACK_CPU, _DLPACK_CUDA_HOST):
        return from_host(np.from_dlpack(obj), layout, owner=obj, arg=arg)
    if device_type in (_DLPACK_CUDA, _DLPACK_CUDA_MANAGED):
        try:
            import cupy
        except ImportError:
            raise RuntimeError(f"{arg}: a CUDA DLPack tensor needs cupy to be read in place; "
                               "install dlviz_gpu[cu12] or dlviz_gpu[cu13]") from None
        arr = cupy.from_dlpack(obj)
        return _from_cuda_interface(arr.__cuda_array_interface__, arr, layout, arg)
    raise ValueError(f"{arg}: DLPack device type {device_type} is not supported; expected "
                     f"CPU (1) or CUDA (2)")
