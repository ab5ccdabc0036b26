"""The one way a package of dlviz_gpu exports its public names: lazily.

A package's ``__init__.py`` lists its public names and the module each lives
in, and :func:`attach` returns its ``__getattr__``, ``__dir__`` and
``__all__`` (the pattern of scientific Python's ``lazy_loader``, which
scikit-image uses)::

    __getattr__, __dir__, __all__ = lazy.attach(__name__, {
        "heatmap": ".matrix",            # a name defined in a submodule
        "models": "dlviz_gpu.models",    # a module exported as itself
    })

Nothing loads until a name is first read; then the module is imported, the
value is kept in the package's namespace (later reads are plain attribute
reads) and ``dir()`` / ``from pkg import *`` see every name.  ``on_first``
runs once before the first load (the views silence a Bokeh warning there).
``call`` makes the package itself callable as a function of one of its
modules (``dv.watch(model, ...)`` is ``dlviz_gpu.watch.recorder.watch``);
that function is not cached in the package, so the package's own name keeps
meaning the package.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Callable

__all__ = ["attach"]


def attach(package: str, exports: dict[str, str], *, extra: tuple[str, ...] = (),
           on_first: Callable[[], None] | None = None, call: tuple[str, str] | None = None):
    """``(__getattr__, __dir__, __all__)`` for the package named ``package``.

    Parameters
    ----------
    package : str
        The package's ``__name__``.
    exports : dict of str -> str
        Public name -> module that defines it: relative (``".matrix"``) to
        the package, or absolute.  A name equal to the module's last part,
        which that module does not define, exports the module itself.
    extra : tuple of str
        Names the package defines itself, listed in ``__all__`` too.
    on_first : callable, optional
        Called once, before the first export loads.
    call : (module, name), optional
        Calling the package calls ``module.name`` (module as in ``exports``).

    Returns
    -------
    __getattr__, __dir__ : callables for the package's namespace
    __all__ : list of str
    """
    names = sorted(set(exports) | set(extra))
    first = [on_first]

    def load(where: str):
        if first[0] is not None:
            hook, first[0] = first[0], None
            hook()
        return importlib.import_module(package + where if where.startswith(".") else where)

    def __getattr__(name: str):
        where = exports.get(name)
        if where is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = load(where)
        if module.__name__.rpartition(".")[2] == name and name not in vars(module):
            value = module
        else:
            value = getattr(module, name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__():
        return list(names)

    if call is not None:
        where, function = call
        sys.modules[package].__class__ = type("CallablePackage", (types.ModuleType,), {
            "__call__": lambda self, *args, **kwargs: getattr(load(where), function)(*args,
                                                                                    **kwargs)})
    return __getattr__, __dir__, names
