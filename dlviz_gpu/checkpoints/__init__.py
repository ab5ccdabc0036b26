"""Checkpoint sources: safetensors, npz/npy and torch files, folders and live modules.

>>> from dlviz_gpu.checkpoints import open
>>> cat = open("model.safetensors")          # sharded index, folder, .npz, .pt, module, ...
>>> cat.table()                              # name, shape, dtype, params, bytes

- :mod:`.catalog`: :func:`open` and :class:`Catalog`, the one view of any source.
- :mod:`.safetensors`: the header parser (checked against the reference
  parser) and memory-mapped tensors.
- :mod:`.sources`: npz / npy / torch / module / mapping sources behind a catalog.
- :mod:`.files`: opening files safely (regular files only, paths kept inside
  an index's folder, FIFOs refused without blocking).
- :mod:`.bf16`: bfloat16 arrays NumPy cannot hold natively.
- :mod:`.errors`: :class:`CheckpointError`, one line naming the file.

Opening reads headers only.  safetensors and uncompressed ``.npz`` / ``.npy``
are memory-mapped, so drawing a tensor reads only its pages; bfloat16 and
float16 stay 16-bit.  Torch files are loaded with ``weights_only=True`` only.
Importing this package loads neither torch nor any plotting library; its
names load on first use (:mod:`dlviz_gpu.lazy`).  ``dlviz_gpu.models`` offers
the same names together with the model introspection.
"""

from .. import lazy

#: public name -> module of this package
EXPORTS = {
    **dict.fromkeys(("BFloat16Array", "bf16_to_float32", "float32_to_bf16"), ".bf16"),
    **dict.fromkeys(("Catalog", "ModuleNode", "format_bytes", "open"), ".catalog"),
    **dict.fromkeys(("CheckpointError", "CheckpointNotFound"), ".errors"),
    **dict.fromkeys(("DTYPES", "MAX_HEADER_BYTES", "Header", "SafetensorsFile", "TensorSpec",
                     "read_header", "read_index"), ".safetensors"),
    **dict.fromkeys(("TensorInfo", "module_of"), ".sources"),
}

__getattr__, __dir__, __all__ = lazy.attach(__name__, EXPORTS)
