"""Writing safetensors files by hand, so tests can make them lie in precise ways."""

from __future__ import annotations

import json
import os
import re

import numpy as np

CODES = {np.dtype(np.float64): "F64", np.dtype(np.float32): "F32", np.dtype(np.float16): "F16",
         np.dtype(np.int64): "I64", np.dtype(np.int32): "I32", np.dtype(np.int16): "I16",
         np.dtype(np.int8): "I8", np.dtype(np.uint8): "U8", np.dtype(np.bool_): "BOOL"}


def write_raw(path, header, data: bytes = b"", length: int | None = None) -> str:
    """Write ``length`` (default: the header's size), the header (dict, str or bytes), ``data``."""
    if isinstance(header, (dict, list)):
        header = json.dumps(header)
    if isinstance(header, str):
        header = header.encode("utf-8")
    n = len(header) if length is None else length
    with open(path, "wb") as f:
        f.write(int(n).to_bytes(8, "little"))
        f.write(header)
        f.write(data)
    return os.fspath(path)


def write_arrays(path, arrays: dict, metadata=None, pad: int = 0) -> str:
    """A valid safetensors file of NumPy arrays; ``("BF16", uint16 bits)`` for bfloat16.

    ``pad`` extra bytes before every tensor make the offsets unaligned.
    """
    header, blobs, pos = {}, [], 0
    for name, arr in arrays.items():
        code = None
        if isinstance(arr, tuple):
            code, arr = arr
        arr = np.array(arr, order="C")  # ascontiguousarray would make 0-d arrays 1-d
        code = code or CODES[arr.dtype]
        blob = b"\0" * pad + arr.tobytes()
        header[name] = {"dtype": code, "shape": list(arr.shape),
                        "data_offsets": [pos + pad, pos + len(blob)]}
        blobs.append(blob)
        pos += len(blob)
    if metadata is not None:
        header["__metadata__"] = metadata
    return write_raw(path, header, b"".join(blobs))


def where(path, problem: str) -> str:
    """A ``match=`` pattern: the message names ``path``, then the problem."""
    return re.escape(os.fspath(path)) + ".*" + problem
