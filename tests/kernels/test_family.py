"""The kernel contract: every family is one object with cpu, cuda and reference members."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import dlviz_gpu.kernels as kernels
from dlviz_gpu.kernels import FAMILIES, Family, reference


def _families_defined_in_modules():
    found = {}
    for info in pkgutil.iter_modules(kernels.__path__):
        if info.name.startswith("_") or info.name == "reference":
            continue
        module = importlib.import_module(f"dlviz_gpu.kernels.{info.name}")
        for value in vars(module).values():
            if isinstance(value, Family) and value.cpu.__module__ == module.__name__:
                found[value.name] = value
    return found


def _parameters(fn):
    return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]


def test_FAMILIES_holds_every_family_a_kernel_module_defines():
    found = _families_defined_in_modules()
    assert len(found) >= 11
    assert FAMILIES == found


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_a_family_has_one_signature_for_both_backends_and_a_float64_reference(name):
    family = FAMILIES[name]
    assert family.name == name
    assert family["cpu"] is family.cpu and family["cuda"] is family.cuda
    assert family.cpu.__name__.endswith("_cpu") and family.cuda.__name__.endswith("_cuda")
    # the same parameters, defaults and order (annotations differ: cuda takes device arrays)
    assert _parameters(family.cpu) == _parameters(family.cuda)
    assert family.reference.__module__.startswith(reference.__name__ + ".")
    assert family.summary and name in repr(family)


def test_a_family_names_what_it_expected_when_asked_for_another_backend():
    with pytest.raises(KeyError, match="where: expected one of 'cpu', 'cuda'; got 'gpu'"):
        FAMILIES["moments"]["gpu"]


def test_the_verbs_pick_kernels_through_the_one_dispatch_point():
    from dlviz_gpu.backend import kernel_for

    assert kernel_for(FAMILIES["m4"], "cuda") is kernels.m4_cuda
    assert kernel_for(FAMILIES["matrix_stats"], "cpu") is kernels.matrix_stats_cpu
