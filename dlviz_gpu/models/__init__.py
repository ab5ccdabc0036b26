"""Sources of tensors: models, state dicts and checkpoint files, opened lazily.

>>> import dlviz_gpu.models as models
>>> cat = models.open("model.safetensors")   # sharded index, folder, .npz, .pt, module, ...
>>> cat.table()                              # name, shape, dtype, params, bytes
>>> w = cat["model.layers.0.mlp.up_proj.weight"]   # a view of the file map
>>> print(models.summary(module, (1, 128)))  # torchinfo-like: tree, params, output shapes

Opening reads headers only.  safetensors and uncompressed ``.npz`` / ``.npy``
are memory-mapped, so drawing a tensor reads only its pages; bfloat16 and
float16 stay 16-bit.  Torch files are loaded with ``weights_only=True`` only.
Importing this package loads neither torch nor any plotting library; its names load
on first use (:mod:`dlviz_gpu.lazy`).
"""

from .. import lazy

__getattr__, __dir__, __all__ = lazy.attach(__name__, {
    **dict.fromkeys(("BFloat16Array", "bf16_to_float32", "float32_to_bf16"), ".bf16"),
    **dict.fromkeys(("Catalog", "ModuleNode", "format_bytes", "open"), ".catalog"),
    **dict.fromkeys(("CheckpointError", "CheckpointNotFound"), ".errors"),
    **dict.fromkeys(("DTYPES", "MAX_HEADER_BYTES", "Header", "SafetensorsFile", "TensorSpec",
                     "read_header", "read_index"), ".safetensors"),
    **dict.fromkeys(("TensorInfo", "module_of"), ".sources"),
    **dict.fromkeys(("GraphNode", "ModelGraph", "structure"), ".graph"),
    **dict.fromkeys(("ModelSummary", "ModuleCall", "meta_inputs", "summary", "trace_calls"),
                    ".summary"),
})
