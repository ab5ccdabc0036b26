"""Torch model introspection: what a network is made of and how data flows through it.

- :mod:`.summary`: :func:`summary`, a torchinfo-like table (module tree,
  parameters, output shapes from one pass on the ``meta`` device).
- :mod:`.graph`: :func:`structure`, the network as a graph of modules and ops
  (``torch.fx`` where it traces, else hooks on ``meta``), folded by depth and
  collapsed over repeated blocks; its layout comes from :mod:`dlviz_gpu.layouts`.

torch is imported inside the functions only; importing this package loads
neither torch nor any plotting library (:mod:`dlviz_gpu.lazy`).
"""

from .. import lazy

#: public name -> module of this package
EXPORTS = {
    **dict.fromkeys(("GraphNode", "ModelGraph", "structure"), ".graph"),
    **dict.fromkeys(("ModelSummary", "ModuleCall", "meta_inputs", "summary", "trace_calls"),
                    ".summary"),
}

__getattr__, __dir__, __all__ = lazy.attach(__name__, EXPORTS)
