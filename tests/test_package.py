"""The package installs and imports the way docs/architecture.md ("Layers") says."""

import json
import subprocess
import sys

HEAVY = ["holoviews", "bokeh", "datashader", "panel", "torch", "cupy", "xarray"]


def _run(code, cwd):
    out = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True,
                         text=True, check=True)
    return out.stdout.strip().splitlines()[-1]


def test_import_loads_no_plotting_library_torch_or_cupy(tmp_path):
    code = ("import sys, json, dlviz_gpu, dlviz_gpu.kernels; "
            f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))")
    assert json.loads(_run(code, tmp_path)) == []


def test_rasterize_path_loads_no_plotting_library(tmp_path):
    # The GPU check runs where only numpy/numba/cupy/torch exist.
    code = ("import sys, json, numpy as np, dlviz_gpu as dv; "
            "dv.rasterize(np.ones((4, 4)), 2, 2); "
            f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))")
    assert json.loads(_run(code, tmp_path)) == []


def test_kernels_install_as_subpackage_not_top_level(tmp_path):
    code = ("import importlib.util, dlviz_gpu.kernels as k; "
            "print(importlib.util.find_spec('kernels') is None, k.__name__)")
    assert _run(code, tmp_path) == "True dlviz_gpu.kernels"


def test_lazy_attributes_and_unknown_names():
    import pytest

    import dlviz_gpu as dv

    assert callable(dv.rasterize)
    assert "rasterize" in dir(dv)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        dv.nope


def test_public_names_survive_importing_their_modules(tmp_path):
    # a submodule import must not shadow a public function of the same package
    code = ("import dlviz_gpu.points, dlviz_gpu.series, dlviz_gpu.projection, dlviz_gpu.histograms, "
            "dlviz_gpu.aggregate; import dlviz_gpu as dv; "
            "print(all(callable(getattr(dv, n)) for n in "
            "('rasterize', 'rasterize_points', 'decimate', 'project', 'histogram')))")
    assert _run(code, tmp_path) == "True"


def test_every_public_name_stays_itself_after_every_submodule_is_imported():
    """No submodule shares a name with a function it exports (``import a.b`` would make
    ``a.b`` the module and hide the function)."""
    import importlib
    import pkgutil
    import types

    import dlviz_gpu as dv

    for pkg in ("dlviz_gpu", "dlviz_gpu.views", "dlviz_gpu.checkpoints", "dlviz_gpu.introspect",
                "dlviz_gpu.app",
                "dlviz_gpu.watch"):
        mod = importlib.import_module(pkg)
        for info in pkgutil.iter_modules(mod.__path__):
            importlib.import_module(f"{pkg}.{info.name}")
    import dlviz_gpu.views as views

    for name in dv._LAZY:
        value = getattr(dv, name)
        if name in ("models", "backend"):          # modules by design
            continue
        if name == "watch":                         # the callable package
            assert callable(value) and callable(value.open_run)
            continue
        assert not isinstance(value, types.ModuleType), name
    for name in views._LAZY:
        assert not isinstance(getattr(views, name), types.ModuleType), name


def test_the_package_says_it_ships_type_hints():
    """PEP 561: ``py.typed`` sits in the package and pyproject installs it."""
    import importlib.resources
    import tomllib
    from pathlib import Path

    assert importlib.resources.files("dlviz_gpu").joinpath("py.typed").is_file()
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert "py.typed" in pyproject["tool"]["setuptools"]["package-data"]["dlviz_gpu"]


def test_option_strings_are_literal_types_the_checks_share():
    """Each verb's option arguments are typed with the ``Literal`` its checks read."""
    import typing

    import dlviz_gpu as dv
    from dlviz_gpu import backend, histograms, projection, tensors

    assert backend.BACKENDS == typing.get_args(backend.Backend) == ("auto", "cpu", "cuda")
    assert tensors.LAYOUTS == typing.get_args(tensors.Layout)
    assert histograms.SCALES == typing.get_args(histograms.Scale)
    assert projection.METHODS == typing.get_args(projection.Method)
    for verb, arg, alias in [(dv.rasterize, "backend", backend.Backend),
                             (dv.rasterize, "layout", tensors.Layout),
                             (dv.rasterize_points, "backend", backend.Backend),
                             (dv.decimate, "backend", backend.Backend),
                             (dv.histogram, "scale", histograms.Scale),
                             (dv.histogram, "backend", backend.Backend),
                             (dv.project, "method", projection.Method),
                             (dv.describe, "layout", tensors.Layout),
                             (dv.describe, "backend", backend.Backend),
                             (dv.as_matrix, "layout", tensors.Layout)]:
        assert typing.get_type_hints(verb)[arg] == alias, (verb.__name__, arg)
