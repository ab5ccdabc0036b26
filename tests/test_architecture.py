"""The structure docs/architecture.md describes, read from the source with ``ast``.

Floors ("Layers"): a module imports from its own floor and those below it.
No import loops.  No private name crosses a module boundary ("Conventions").
Nothing in the repository points at documents outside it.
"""

from __future__ import annotations

import ast
import itertools
import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: floor -> module prefixes (docs/architecture.md, "Layers"); the package root
#: ``dlviz_gpu`` (the version and the lazy public names) is on no floor
FLOORS = {
    0: ("dlviz_gpu.kernels",),
    1: ("dlviz_gpu.tensors", "dlviz_gpu.backend", "dlviz_gpu.raster", "dlviz_gpu.names",
        "dlviz_gpu.checks", "dlviz_gpu.optional", "dlviz_gpu.lazy"),
    2: ("dlviz_gpu.aggregate", "dlviz_gpu.points", "dlviz_gpu.series", "dlviz_gpu.histograms",
        "dlviz_gpu.projection", "dlviz_gpu.layouts"),
    3: ("dlviz_gpu.views", "dlviz_gpu.models", "dlviz_gpu.checkpoints", "dlviz_gpu.introspect",
        "dlviz_gpu.estimators", "dlviz_gpu.watch", "dlviz_gpu.tensor_stats"),
    4: ("dlviz_gpu.app", "dlviz_gpu.cli"),
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[0] == "kernels":                   # installed as dlviz_gpu.kernels
        parts.insert(0, "dlviz_gpu")
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def _modules() -> dict:
    """Module name -> (path, syntax tree) of every module of the package."""
    out = {}
    for top in ("dlviz_gpu", "kernels"):
        for path in sorted((ROOT / top).rglob("*.py")):
            if path.is_relative_to(ROOT / "dlviz_gpu" / "kernels"):  # a link to kernels/, if any
                continue
            out[_module_name(path)] = (path, ast.parse(path.read_text(encoding="utf-8")))
    return out


def _is_package(name: str) -> bool:
    return _modules()[name][0].name == "__init__.py"


def _source(importer: str, node: ast.ImportFrom) -> str:
    """The absolute module an ``ImportFrom`` in ``importer`` reads from."""
    if not node.level:
        return node.module or ""
    base = importer if _is_package(importer) else importer.rpartition(".")[0]
    for _ in range(node.level - 1):
        base = base.rpartition(".")[0]
    return f"{base}.{node.module}" if node.module else base


def _imports(name: str):
    """(imported module, imported name or None, line) of every project import in ``name``."""
    mods = _modules()
    for node in ast.walk(mods[name][1]):
        if isinstance(node, ast.ImportFrom):
            src = _source(name, node)
            if src.split(".")[0] != "dlviz_gpu":
                continue
            for alias in node.names:
                sub = f"{src}.{alias.name}"
                if sub in mods:                  # ``from pkg import module``
                    yield sub, None, node.lineno
                else:
                    yield src, alias.name, node.lineno
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "dlviz_gpu":
                    yield alias.name, None, node.lineno


def _floor(name: str):
    for floor, prefixes in FLOORS.items():
        if any(name == p or name.startswith(p + ".") for p in prefixes):
            return floor
    return None


def _private(part: str) -> bool:
    return part.startswith("_") and not (part.startswith("__") and part.endswith("__"))


def test_every_module_has_a_floor():
    assert [m for m in _modules() if m != "dlviz_gpu" and _floor(m) is None] == []


def test_no_import_runs_up_a_floor():
    upward = []
    for name in _modules():
        for target, _, line in _imports(name):
            if target == "dlviz_gpu" or name == "dlviz_gpu":
                continue
            if _floor(target) > _floor(name):
                upward.append(f"{name}:{line} imports {target}")
    assert upward == [], "\n".join(upward)


def test_no_import_loops():
    mods = _modules()
    graph = {m: {t for t, _, _ in _imports(m) if t in mods and t not in (m, "dlviz_gpu")}
             for m in mods}
    order, low, stack, on_stack, loops = {}, {}, [], set(), []
    counter = itertools.count()

    def visit(v):                                 # Tarjan's strongly connected components
        order[v] = low[v] = next(counter)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in order:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], order[w])
        if low[v] == order[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                loops.append(sorted(component))

    for v in graph:
        if v not in order:
            visit(v)
    assert loops == [], loops


def test_no_private_name_crosses_a_module_boundary():
    """``_name`` is used in its own module only (and a private module in its own package)."""
    mods = _modules()
    crossings = []
    for name, (path, tree) in mods.items():
        aliases = {}                              # local name -> project module
        for target, imported, line in _imports(name):
            if imported is None:
                parts = target.split(".")
                first = next((k for k, part in enumerate(parts) if _private(part)), None)
                owner = ".".join(parts[:first]) if first is not None else None
                if owner is not None and not name.startswith(owner + "."):
                    crossings.append(f"{name}:{line} imports the private module {target}")
            elif _private(imported) and target != name:
                crossings.append(f"{name}:{line} imports {target}.{imported}")
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                src = _source(name, node)
                for alias in node.names:
                    if f"{src}.{alias.name}" in mods:
                        aliases[alias.asname or alias.name] = f"{src}.{alias.name}"
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname and alias.name in mods:
                        aliases[alias.asname] = alias.name
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in aliases and _private(node.attr)
                    and aliases[node.value.id] != name):
                crossings.append(f"{name}:{node.lineno} uses "
                                 f"{aliases[node.value.id]}.{node.attr}")
    assert crossings == [], "\n".join(crossings)


def _outside_crossings(path: Path) -> list:
    """Private names of the package that a script, benchmark or example reaches for."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    aliases, found = {}, []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and not node.level and \
                (node.module or "").split(".")[0] == "dlviz_gpu":
            if any(_private(part) for part in node.module.split(".")):
                found.append(f"{node.lineno}: from {node.module} import ...")
            for alias in node.names:
                if _private(alias.name):
                    found.append(f"{node.lineno}: {node.module}.{alias.name}")
                aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "dlviz_gpu":
                    if any(_private(part) for part in alias.name.split(".")):
                        found.append(f"{node.lineno}: import {alias.name}")
                    aliases[alias.asname or alias.name.split(".")[0]] = alias.name
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in aliases and _private(node.attr)):
            found.append(f"{node.lineno}: {aliases[node.value.id]}.{node.attr}")
    return [f"{path.relative_to(ROOT)}:{line}" for line in found]


def test_benchmarks_scripts_and_examples_use_public_names_only():
    """They are users of the package: what they need is public."""
    found = []
    for folder in ("benchmarks", "scripts", "examples"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            found += _outside_crossings(path)
    assert found == [], "\n".join(found)


def test_the_checks_above_find_what_they_look_for():
    """The scanner is not blind: a planted crossing and an upward import are seen."""
    tree = ast.parse("from ..checkpoints.catalog import _secret\nfrom ..app import board\n")
    mods = _modules()
    mods["dlviz_gpu.views.planted"] = (ROOT / "dlviz_gpu/views/planted.py", tree)
    try:
        found = list(_imports("dlviz_gpu.views.planted"))
        assert ("dlviz_gpu.checkpoints.catalog", "_secret", 1) in found
        assert ("dlviz_gpu.app.board", None, 2) in found
        with pytest.raises(AssertionError, match="_secret"):
            test_no_private_name_crosses_a_module_boundary()
        with pytest.raises(AssertionError, match="imports dlviz_gpu.app.board"):
            test_no_import_runs_up_a_floor()
    finally:
        del mods["dlviz_gpu.views.planted"]
    planted = ROOT / "benchmarks" / "planted_for_the_test.py"
    try:
        planted.write_text("from dlviz_gpu.views import _quiet\nimport dlviz_gpu as dv\n"
                           "dv._LAZY\nfrom dlviz_gpu.kernels._common import x\n")
        found = _outside_crossings(planted)
    finally:
        planted.unlink()
    assert [f.rsplit(":", 2)[-2:] for f in found] == [
        ["1", " dlviz_gpu.views._quiet"], ["4", " from dlviz_gpu.kernels._common import ..."],
        ["3", " dlviz_gpu._LAZY"]]


_OUTSIDE = re.compile(r"DESIGN\.md|\.\./shared|shared/seeds")


def test_nothing_points_at_documents_outside_the_repository():
    import os

    suffixes = {".py", ".md", ".toml", ".sh", ".txt", ".cfg", ".ipynb", ".yml", ".yaml"}
    found = []
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d != "__pycache__"
                   and not d.endswith(".egg-info")]
        for file in files:
            path = Path(folder) / file
            if path.suffix not in suffixes or path == Path(__file__).resolve():
                continue
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if _OUTSIDE.search(line):
                    found.append(f"{path.relative_to(ROOT)}:{number}")
    assert found == [], "\n".join(found)
    assert (ROOT / "docs" / "architecture.md").is_file()
