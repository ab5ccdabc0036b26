"""Sources of tensors: models, state dicts and checkpoint files, opened lazily.

>>> import dlviz_gpu.models as models
>>> cat = models.open("model.safetensors")   # sharded index, folder, .npz, .pt, module, ...
>>> cat.table()                              # name, shape, dtype, params, bytes
>>> w = cat["model.layers.0.mlp.up_proj.weight"]   # a view of the file map
>>> print(models.summary(module, (1, 128)))  # torchinfo-like: tree, params, output shapes

Opening reads headers only.  safetensors and uncompressed ``.npz`` / ``.npy``
are memory-mapped, so drawing a tensor reads only its pages; bfloat16 and
float16 stay 16-bit.  Torch files are loaded with ``weights_only=True`` only.
The names live in :mod:`dlviz_gpu.checkpoints` (files and sources) and
:mod:`dlviz_gpu.introspect` (torch model summary and graph); this package
offers both under one name, ``dv.models``.  Importing it loads neither torch
nor any plotting library; its names load on first use (:mod:`dlviz_gpu.lazy`).
"""

from .. import lazy
from ..checkpoints import EXPORTS as _CHECKPOINTS
from ..introspect import EXPORTS as _INTROSPECT

__getattr__, __dir__, __all__ = lazy.attach(__name__, {
    **{name: "dlviz_gpu.checkpoints" + where for name, where in _CHECKPOINTS.items()},
    **{name: "dlviz_gpu.introspect" + where for name, where in _INTROSPECT.items()},
})
