"""The differential check: what the ``safetensors`` package (the Rust parser) reads from a file.

:func:`reference` reads a file with the package, :func:`ours` with
:class:`dlviz_gpu.models.SafetensorsFile`, both as a :class:`Reading`;
:func:`compare` says how two readings differ (``None``: they agree).  They
agree when both refuse, or both accept with the same names, dtypes, shapes,
metadata and bytes for every tensor; a refusal is compared by outcome only
(the messages are the readers' own).

One difference is by design and reported as such, not as a mismatch: a
header naming a tensor twice.  The Rust parser keeps the last entry; we
refuse the file (:data:`KNOWN_DIVERGENCES`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

#: Where we refuse what the reference accepts, on purpose: label -> reason.
KNOWN_DIVERGENCES = {
    "repeated-tensor-name": (
        "a header naming a tensor twice: the Rust parser keeps the last entry (serde_json "
        "maps), we refuse the file, since two readers of it may disagree on what it holds"),
}


@dataclass
class Reading:
    """What one reader made of a file.

    Attributes
    ----------
    accepted : bool
    problem : str
        The refusal, one line (``""`` when accepted).
    tensors : dict of str to (dtype code, shape tuple, bytes)
    metadata : dict of str to str
    """

    accepted: bool
    problem: str = ""
    tensors: dict = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)


def reference(path) -> Reading:
    """The file as ``safetensors`` reads it (``deserialize`` for the bytes, ``safe_open``
    for the metadata)."""
    import safetensors

    with open(path, "rb") as f:
        blob = f.read()
    try:
        items = safetensors.deserialize(blob)
        with safetensors.safe_open(os.fspath(path), framework="np") as f:
            metadata = f.metadata() or {}
    except BaseException as e:       # the Rust side may panic (PanicException)
        if isinstance(e, (KeyboardInterrupt, SystemExit, MemoryError)):
            raise
        return Reading(False, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
    tensors = {name: (v["dtype"], tuple(v["shape"]), bytes(v["data"])) for name, v in items}
    return Reading(True, tensors=tensors, metadata=dict(metadata))


def ours(path) -> Reading:
    """The file as :class:`dlviz_gpu.models.SafetensorsFile` reads it."""
    from dlviz_gpu.models import CheckpointError, SafetensorsFile

    try:
        f = SafetensorsFile(path)
        tensors = {}
        for name in f.names:
            s = f.spec(name)
            tensors[name] = (s.dtype, tuple(s.shape), bytes(f.raw(name)))
    except CheckpointError as e:
        return Reading(False, str(e))
    return Reading(True, tensors=tensors, metadata=dict(f.metadata))


def repeats_a_tensor_name(path) -> bool:
    """Whether the file's header (if it is JSON at all) names a tensor twice."""
    keys = []

    def pairs(items):
        keys.append([k for k, _ in items])
        return dict(items)

    try:
        with open(path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            if n > 100_000_000:
                return False
            top = json.loads(f.read(n).decode("utf-8"), object_pairs_hook=pairs)
    except (ValueError, RecursionError, OSError):
        return False
    if not isinstance(top, dict):
        return False
    names = [k for k in keys[-1] if k != "__metadata__"]    # the outermost object ends last
    return len(set(names)) != len(names)


def compare(ref: Reading, got: Reading) -> str | None:
    """How ``got`` differs from ``ref`` (``None``: it does not)."""
    if ref.accepted != got.accepted:
        if ref.accepted:
            return f"the reference accepts it; we refuse: {got.problem}"
        return f"the reference refuses it ({ref.problem}); we accept it"
    if not ref.accepted:
        return None
    if set(ref.tensors) != set(got.tensors):
        extra = sorted(set(got.tensors) - set(ref.tensors))[:3]
        lost = sorted(set(ref.tensors) - set(got.tensors))[:3]
        return f"different tensor names: ours has {extra} more, {lost} fewer"
    for name, (dtype, shape, data) in ref.tensors.items():
        g = got.tensors[name]
        if (dtype, shape) != g[:2]:
            return f"tensor {name!r}: reference {dtype} {shape}, ours {g[0]} {g[1]}"
        if data != g[2]:
            return f"tensor {name!r}: different bytes"
    if ref.metadata != got.metadata:
        return f"different metadata: reference {ref.metadata!r}, ours {got.metadata!r}"
    return None


def differential(path) -> tuple[str | None, str | None]:
    """(mismatch or None, known divergence label or None) for one file."""
    ref, got = reference(path), ours(path)
    problem = compare(ref, got)
    if problem is not None and ref.accepted and not got.accepted \
            and repeats_a_tensor_name(path):
        return None, "repeated-tensor-name"
    return problem, None
