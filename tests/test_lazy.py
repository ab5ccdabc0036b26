"""dlviz_gpu.lazy: the one lazy-export mechanism every package uses."""

from __future__ import annotations

import subprocess
import sys
import types

import pytest

from dlviz_gpu import lazy

PACKAGES = ("dlviz_gpu", "dlviz_gpu.views", "dlviz_gpu.watch", "dlviz_gpu.models",
            "dlviz_gpu.checkpoints", "dlviz_gpu.introspect")


@pytest.fixture
def package(tmp_path, monkeypatch):
    """A throwaway package ``lazypkg`` with a submodule ``sub`` that counts its imports."""
    root = tmp_path / "lazypkg"
    root.mkdir()
    (root / "__init__.py").write_text("")
    (root / "sub.py").write_text("import builtins\nbuiltins.LAZY_LOADS = "
                                 "getattr(builtins, 'LAZY_LOADS', 0) + 1\n"
                                 "def f(x):\n    return x + 1\nVALUE = 7\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import builtins

    monkeypatch.setattr(builtins, "LAZY_LOADS", 0, raising=False)
    for name in ("lazypkg", "lazypkg.sub"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    import lazypkg

    return lazypkg


def test_a_name_loads_its_module_on_first_read_and_is_kept(package):
    import builtins

    hooks = []
    getattr_, dir_, all_ = lazy.attach("lazypkg", {"f": ".sub", "VALUE": ".sub", "sub": ".sub"},
                                       extra=("own",), on_first=lambda: hooks.append(1))
    package.__getattr__, package.__dir__ = getattr_, dir_
    assert all_ == ["VALUE", "f", "own", "sub"] and dir_() == all_
    assert builtins.LAZY_LOADS == 0 and hooks == []
    assert package.f(1) == 2 and package.VALUE == 7
    assert isinstance(package.sub, types.ModuleType)          # a module exported as itself
    assert builtins.LAZY_LOADS == 1 and hooks == [1]
    assert "f" in vars(package)                                # later reads skip __getattr__
    with pytest.raises(AttributeError, match="module 'lazypkg' has no attribute 'g'"):
        package.g


def test_call_makes_the_package_callable_without_shadowing_its_name(package):
    lazy.attach("lazypkg", {"VALUE": ".sub"}, call=(".sub", "f"))
    assert package(41) == 42
    assert "f" not in vars(package)


@pytest.mark.parametrize("name", PACKAGES)
def test_every_package_exports_through_the_one_mechanism(name):
    module = __import__(name, fromlist=["x"])
    assert module.__getattr__.__module__ == "dlviz_gpu.lazy"
    assert sorted(dir(module)) == sorted(module.__all__)
    for public in module.__all__:
        if public != "__version__":
            assert getattr(module, public) is not None


def test_importing_the_packages_loads_none_of_their_heavy_modules():
    code = ("import sys, dlviz_gpu, dlviz_gpu.views, dlviz_gpu.watch, dlviz_gpu.models\n"
            "heavy = ['sqlite3', 'holoviews', 'bokeh', 'torch', 'dlviz_gpu.watch.store',"
            " 'dlviz_gpu.checkpoints.catalog', 'dlviz_gpu.views.matrix']\n"
            "print([m for m in heavy if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
