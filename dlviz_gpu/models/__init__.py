"""Sources of tensors: models, state dicts and checkpoint files, opened lazily.

>>> import dlviz_gpu.models as models
>>> cat = models.open("model.safetensors")   # sharded index, folder, .npz, .pt, module, ...
>>> cat.table()                              # name, shape, dtype, params, bytes
>>> w = cat["model.layers.0.mlp.up_proj.weight"]   # a view of the file map
>>> print(models.summary(module, (1, 128)))  # torchinfo-like: tree, params, output shapes

Opening reads headers only.  safetensors and uncompressed ``.npz`` / ``.npy``
are memory-mapped, so drawing a tensor reads only its pages; bfloat16 and
float16 stay 16-bit.  Torch files are loaded with ``weights_only=True`` only.
Importing this package loads neither torch nor any plotting library.
"""

from .bf16 import BFloat16Array, bf16_to_float32, float32_to_bf16
from .catalog import Catalog, ModuleNode, format_bytes, open
from .errors import CheckpointError, CheckpointNotFound
from .safetensors import (DTYPES, MAX_HEADER_BYTES, Header, SafetensorsFile, TensorSpec,
                          read_header, read_index)
from .sources import TensorInfo, module_of
from .graph import GraphNode, ModelGraph, structure
from .summary import ModelSummary, ModuleCall, meta_inputs, summary, trace_calls

__all__ = [
    "open", "Catalog", "ModuleNode", "TensorInfo", "CheckpointError", "CheckpointNotFound",
    "SafetensorsFile", "read_header", "read_index", "Header", "TensorSpec", "DTYPES",
    "MAX_HEADER_BYTES", "BFloat16Array", "bf16_to_float32", "float32_to_bf16",
    "format_bytes", "module_of", "summary", "ModelSummary", "trace_calls", "ModuleCall",
    "meta_inputs", "structure", "ModelGraph", "GraphNode",
]
