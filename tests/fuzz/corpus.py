"""The fuzz corpus: generators of hostile (and honest) checkpoint files.

A generator is ``make(folder, rng, count) -> iterable of Case``: it writes
its files under ``folder`` (a fresh folder per case, so a refusal can be
checked to name a file of its own) and yields one
:class:`~tests.fuzz.harness.Case` per file.  Fixed lists of named cases
ignore ``count``; the mutation and hypothesis generators make ``count``
cases from ``rng``, deterministically.  :data:`GENERATORS` lists them all
with the number of cases each makes in CI; adding a generator is adding one
line there (:func:`files` adapts the ``(folder) -> Case`` functions of
:mod:`tests.fuzz.hostile_sources`).
"""

from __future__ import annotations

import json
import os
import random
import re
import socket
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from .harness import Case

# --------------------------------------------------------------------------
# Writing files
# --------------------------------------------------------------------------


class Raw(str):
    """JSON text written as it is (``NaN``, a 5000-digit number, ``-0``, ...)."""


class Obj(list):
    """A JSON object as a list of ``(key, value)`` pairs, so a key may repeat."""


def to_json(v, sep: str = ",", colon: str = ":") -> str:
    """JSON text of ``v``; :class:`Raw` verbatim, :class:`Obj` with its pairs as given."""
    if isinstance(v, Raw):
        return str(v)
    if isinstance(v, (Obj, dict)):
        pairs = v if isinstance(v, Obj) else list(v.items())
        return "{" + sep.join(f"{to_json(k, sep, colon)}{colon}{to_json(x, sep, colon)}"
                              for k, x in pairs) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + sep.join(to_json(x, sep, colon) for x in v) + "]"
    if isinstance(v, str):
        try:
            v.encode("utf-8")
            return json.dumps(v, ensure_ascii=False)
        except UnicodeEncodeError:      # a lone surrogate: only as a \u escape
            return json.dumps(v, ensure_ascii=True)
    return json.dumps(v)


def write_st(path, header, data: bytes = b"", length: int | None = None) -> str:
    """A safetensors file: 8-byte ``length`` (default the header's), header, ``data``."""
    if not isinstance(header, (bytes, str)):
        header = to_json(header)
    if isinstance(header, str):
        header = header.encode("utf-8")
    n = len(header) if length is None else length
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", n % 2**64))
        f.write(header)
        f.write(data)
    return os.fspath(path)


def entry(dtype="F32", shape=(1,), offsets=(0, 4)):
    return {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets)}


def packed(tensors, align: bool = False):
    """(header dict, data) for ``{name: (dtype code, shape, bytes)}`` laid out back to back."""
    header, blobs, pos = {}, [], 0
    for name, (code, shape, blob) in tensors.items():
        header[name] = entry(code, shape, (pos, pos + len(blob)))
        blobs.append(blob)
        pos += len(blob)
    return header, b"".join(blobs)


def split(blob: bytes):
    """(header text, data, length) of a safetensors file's bytes."""
    n = struct.unpack("<Q", blob[:8])[0]
    return blob[8:8 + n].decode("utf-8"), blob[8 + n:], n


class Folders:
    """A fresh numbered folder per case under ``root``."""

    def __init__(self, root, prefix: str):
        self.root, self.prefix, self.k = Path(root), prefix, 0

    def __call__(self) -> Path:
        self.k += 1
        p = self.root / f"{self.prefix}{self.k:05d}"
        p.mkdir(parents=True, exist_ok=True)
        return p


# --------------------------------------------------------------------------
# Real files, the seeds of the mutations
# --------------------------------------------------------------------------

def real_files(rng: random.Random) -> list[bytes]:
    """The bytes of honest files written by the ``safetensors`` package itself."""
    import tempfile

    from safetensors.numpy import save_file

    nprng = np.random.default_rng(rng.randrange(2**32))
    sets = [
        {"w": nprng.standard_normal((3, 4)).astype(np.float32)},
        {"layers.0.w": nprng.standard_normal((2, 3)).astype(np.float16),
         "layers.0.b": np.arange(3, dtype=np.int64),
         "layers.1.mask": nprng.random(5) > 0.5,
         "scalar": np.array(2.5, np.float64),
         "empty": np.zeros((0, 2), np.int8)},
        {"emb": nprng.integers(0, 255, (4, 2)).astype(np.uint8),
         "q": nprng.integers(-9, 9, (3,)).astype(np.int32),
         "v": np.arange(2, dtype=np.uint16)},
    ]
    metas = [None, {"format": "np", "note": "é"}, None]
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for k, (arrays, meta) in enumerate(zip(sets, metas)):
            p = os.path.join(tmp, f"{k}.safetensors")
            save_file(arrays, p, metadata=meta)
            out.append(Path(p).read_bytes())
        try:
            import torch
            from safetensors.torch import save_file as save_torch

            p = os.path.join(tmp, "bf16.safetensors")
            save_torch({"b": torch.arange(6, dtype=torch.float32).reshape(2, 3).to(
                torch.bfloat16), "f8": torch.ones(3).to(torch.float8_e4m3fn)}, p)
            out.append(Path(p).read_bytes())
        except (ImportError, AttributeError, TypeError):
            pass
    return out


# --------------------------------------------------------------------------
# Named safetensors cases (every one the issue names, and their neighbours)
# --------------------------------------------------------------------------

A = entry()                        # one F32 at [0, 4]
D4 = b"\x00\x00\x80\x3f"           # 1.0f


def _named_st(rng):
    """(label, header, data, length, expect, match) for hand-made files."""
    real = real_files(random.Random(1))[1]
    text, data, n = split(real)
    big = "9" * 5000
    deep = 1_000_000
    yield "header length one byte short", text, data, n - 1, "refuse", None
    yield "header length one byte long", text, data, n + 1, "refuse", None
    yield "header length 2^64-1", text, data, 2**64 - 1, "refuse", "runs past the end"
    yield "header length 0", text, data, 0, "refuse", "header length is 0"
    yield "data truncated by one byte", text, data[:-1], None, "refuse", "run past the end"
    yield "one trailing byte", text, data + b"\0", None, "refuse", "cover .* bytes"
    yield "gap between tensors", {"a": A, "b": entry(offsets=(5, 9))}, b"\0" * 9, None, \
        "refuse", "1 unused bytes after tensor 'a'"
    yield "gap at the start", {"a": entry(offsets=(2, 6))}, b"\0" * 6, None, "refuse", \
        "2 unused bytes at the start"
    yield "overlap", {"a": entry(shape=(2,), offsets=(0, 8)), "b": entry(offsets=(4, 8))}, \
        b"\0" * 8, None, "refuse", "overlap"
    yield "zero-size tensor inside another", \
        {"a": entry(shape=(2,), offsets=(0, 8)), "z": entry(shape=(0,), offsets=(4, 4))}, \
        b"\0" * 8, None, "refuse", "overlap"
    yield "zero-size tensor at the end", {"a": A, "z": entry(shape=(0,), offsets=(4, 4))}, \
        D4, None, "accept", None
    yield "tensors listed out of order", {"b": entry(offsets=(4, 8)), "a": A}, D4 * 2, None, \
        "accept", None
    yield "5000-digit shape", {"a": entry(shape=(Raw(big),))}, D4, None, "refuse", \
        "5000-digit integer"
    yield "5000-digit offset", {"a": entry(offsets=(0, Raw(big)))}, D4, None, "refuse", \
        "5000-digit integer"
    yield "5000-digit integer in an unknown field", Obj([("a", Obj(list(A.items()) + [
        ("x", Raw(big))]))]), D4, None, "refuse", "5000-digit integer"
    yield "5000-digit metadata value", {"__metadata__": {"k": Raw(big)}, "a": A}, D4, None, \
        "refuse", "5000-digit integer"
    yield "5000-digit negative shape", {"a": entry(shape=(Raw("-" + big),))}, D4, None, \
        "refuse", "5000-digit integer"
    yield "dimension 2^64", {"a": entry(shape=(2**64,), offsets=(0, 0))}, b"", None, \
        "refuse", None
    yield "dimensions 2^32 x 2^32 x 0 (the product overflows first)", \
        {"a": entry(shape=(2**32, 2**32, 0), offsets=(0, 0))}, b"", None, "refuse", \
        "more than 2\\^64 elements"
    yield "dimensions 0 x (2^64 - 1)", {"a": entry(shape=(0, 2**64 - 1), offsets=(0, 0))}, \
        b"", None, ("refuse", "read"), "more than NumPy can hold"
    yield "empty, but its other dimensions span 2^64 bytes", \
        {"a": entry(shape=(2**62, 0, 4), offsets=(0, 0))}, b"", None, ("refuse", "read"), \
        "more than NumPy can hold"
    yield "2^62 float32 elements (2^67 bits)", {"a": entry(shape=(2**62,), offsets=(0, 0))}, \
        b"", None, "refuse", "2\\^64 bits"
    yield "float4 with an odd element count", {"a": entry("F4", (3,), (0, 2))}, b"\0\0", None, \
        "refuse", "needs 1.5 bytes"
    yield "nested a million deep", "[" * deep + "]" * deep, b"", None, "refuse", \
        "nested too deeply"
    yield "unknown field nested 125 deep (the limit)", Obj([("a", Obj(list(A.items()) + [
        ("x", Raw("[" * 125 + "]" * 125))]))]), D4, None, "accept", None
    yield "unknown field nested 126 deep", Obj([("a", Obj(list(A.items()) + [
        ("x", Raw("[" * 126 + "]" * 126))]))]), D4, None, "refuse", "nested too deeply"
    yield "tensor named twice", Obj([("a", entry(shape=(0,), offsets=(0, 0))), ("a", A)]), D4, \
        None, "refuse", "names 'a' twice"
    yield "field named twice", Obj([("a", Obj(list(A.items()) + [("dtype", "F32")]))]), D4, \
        None, "refuse", "names 'dtype' twice"
    yield "__metadata__ twice", Obj([("__metadata__", {}), ("__metadata__", {}), ("a", A)]), \
        D4, None, "refuse", "names '__metadata__' twice"
    yield "metadata key twice (the last one holds)", Obj([("__metadata__", Obj([
        ("k", "1"), ("k", "2")])), ("a", A)]), D4, None, "accept", None
    for label, bad in [("latin-1", b'{"w\xe9":1}'), ("overlong /", b'{"\xc0\xaf":1}'),
                       ("UTF-8 surrogate", b'{"\xed\xa0\x80":1}'),
                       ("cut multibyte", b'{"a":1}\xe2\x82'), ("0xff", b'\xff{}')]:
        yield f"non-UTF-8 header ({label})", bad, b"", None, "refuse", "not valid UTF-8"
    yield "NaN in an unknown field", Obj([("a", Obj(list(A.items()) + [("x", Raw("NaN"))]))]), \
        D4, None, "refuse", "NaN"
    yield "-Infinity in the metadata", {"__metadata__": {"k": Raw("-Infinity")}, "a": A}, D4, \
        None, "refuse", "Infinity"
    yield "1e400 in an unknown field", Obj([("a", Obj(list(A.items()) + [
        ("x", Raw("1e400"))]))]), D4, None, "refuse", "beyond the range"
    yield "-0 as a dimension", {"a": entry(shape=(Raw("-0"),), offsets=(0, 0))}, b"", None, \
        "refuse", "shape must be a list"
    yield "lone surrogate escape in a name", {"\ud800": A}, D4, None, "refuse", \
        "lone UTF-16 surrogate"
    yield "escaped surrogate pair in a name", {"\U0001F600": A}, D4, None, "accept", None
    yield "entry as [dtype, shape, offsets]", {"a": ["F32", [1], [0, 4]]}, D4, None, \
        "accept", None
    yield "dtype as {\"F32\": null}", {"a": entry(dtype={"F32": None})}, D4, None, "accept", None
    yield "empty header {}", "{}", b"", None, "any", None
    yield "header of spaces", "        ", b"", None, "refuse", "not valid JSON"
    yield "header with leading and trailing whitespace", " \n\t{\"a\":" + to_json(A) + "}\r\n ", \
        D4, None, "accept", None
    yield "float8, float6, float4 tensors", {
        "q": entry("F8_E4M3", (2, 3), (0, 6)), "f6": entry("F6_E2M3", (4,), (6, 9)),
        "f4": entry("F4", (4,), (9, 11)), "fnuz": entry("F8_E5M2FNUZ", (1,), (11, 12))}, \
        bytes(range(12)), None, "accept", None
    yield "a scalar and empty tensors", {"s": entry(shape=(), offsets=(0, 4)),
                                         "e": entry(shape=(0, 7), offsets=(4, 4)),
                                         "e2": entry("BF16", (3, 0), (4, 4))}, D4, None, \
        "accept", None
    names = {"esc\x1b[31mred": A, "cr\rlf\n": entry(offsets=(4, 8)),
             "nul\x00": entry(offsets=(8, 12)), "<script>alert(1)</script>": entry(
                 offsets=(12, 16)), "x" * 100_000: entry(offsets=(16, 20))}
    yield "control characters, HTML and a 100k-character name", names, D4 * 5, None, \
        "accept", None
    # misaligned tensors: accepted, values as stored, drawn without a kernel compile
    u8 = bytes([1, 2, 3])
    f32 = np.arange(16, dtype=np.float32).tobytes()
    yield "float32 at offset 3", {"u": entry("U8", (3,), (0, 3)),
                                  "f": entry("F32", (4, 4), (3, 67))}, u8 + f32, None, \
        "accept", None
    f64 = np.linspace(-1, 1, 12).tobytes()
    yield "float64 at offset 4", {"i": entry("I32", (1,), (0, 4)),
                                  "d": entry("F64", (3, 4), (4, 100))}, D4 + f64, None, \
        "accept", None
    bf = np.arange(20, dtype=np.uint16).tobytes()
    yield "bfloat16 and int16 at odd offsets", {
        "u": entry("U8", (1,), (0, 1)), "b": entry("BF16", (4, 5), (1, 41)),
        "i": entry("I16", (20,), (41, 81)), "h": entry("F16", (2, 10), (81, 121))}, \
        b"\1" + bf + bf + bf, None, "accept", None
    for dt, code in [("<u8", "U64"), ("<i8", "I64"), ("<u4", "U32")]:
        blob = np.arange(1, 13, dtype=dt).tobytes()
        yield f"{code} after a 1-byte header pad (header length odd)", \
            '{"t":' + to_json(entry(code, (3, 4), (0, len(blob)))) + '} ', blob, None, \
            "accept", None
    big = np.random.default_rng(3).standard_normal((512, 512)).astype(np.float32).tobytes()
    yield "a 1 MiB float32 tensor at offset 1", {"u": entry("U8", (1,), (0, 1)),
                                                 "w": entry("F32", (512, 512), (1, 1 + len(big)))}, \
        b"\7" + big, None, "accept", None


def named_safetensors(folder, rng, count) -> Iterable[Case]:
    """Every safetensors case the issue names, written by hand; differential included."""
    mk = Folders(folder, "st")
    for label, header, data, length, expect, match in _named_st(rng):
        path = write_st(mk() / "model.safetensors", header, data, length)
        expect, stage = expect if isinstance(expect, tuple) else (expect, "open")
        yield Case("safetensors: named cases", label, path, expect, match, stage,
                   reference=True)


def special_files(folder, rng, count) -> Iterable[Case]:
    """Things that are not regular files, named like checkpoints (no reference: it would block)."""
    mk = Folders(folder, "sp")
    area = "safetensors: not regular files"
    d = mk()
    p = d / "model.safetensors"
    os.mkfifo(p)
    yield Case(area, "a FIFO named *.safetensors", str(p), "refuse",
               r"is not a regular file \(a FIFO\)")
    d = mk()
    p = d / "model.safetensors"
    os.symlink("/dev/zero", p)
    yield Case(area, "a symlink to /dev/zero", str(p), "refuse",
               r"is not a regular file \(a character device\)")
    d = mk()
    p = d / "model.safetensors"
    s = socket.socket(socket.AF_UNIX)
    try:
        s.bind(str(p))
        yield Case(area, "a socket named *.safetensors", str(p), "refuse",
                   r"is not a regular file \(a socket\)")
    except OSError:                     # a path too long for a socket: skip it
        pass
    finally:
        s.close()
    d = mk()
    (d / "model.safetensors").mkdir()
    yield Case(area, "a directory named *.safetensors", str(d / "model.safetensors"), "refuse")
    d = mk()
    p = d / "model.safetensors"
    p.write_bytes(b"")
    yield Case(area, "an empty file", str(p), "refuse", "shorter than the 8-byte")
    d = mk()
    p = d / "model.safetensors"
    write_st(p, b"{", b"", length=100_000_001)
    with open(p, "r+b") as f:
        f.truncate(8 + 100_000_001 + 8)          # sparse: no disk
    yield Case(area, "a header over 100 MB (sparse file)", str(p), "refuse",
               "exceeds the 100000000 byte limit")


# --------------------------------------------------------------------------
# Parity with the serde_json reader behind the Rust parser
# --------------------------------------------------------------------------

def _parity():
    a = to_json(A)[1:-1]
    fields = '"dtype":"F32","shape":[1],"data_offsets":[0,4]'
    assert a == fields
    F = fields
    yield "leading whitespace", ' {"a":{%s}}' % F, D4
    yield "trailing NUL", '{"a":{%s}}\x00' % F, D4
    yield "form feed", '\x0c{"a":{%s}}' % F, D4
    yield "BOM", '\ufeff{"a":{%s}}' % F, D4
    yield "repeated unknown field", '{"a":{%s,"x":1,"x":2}}' % F, D4
    yield "unknown field: 30-digit integer", '{"a":{%s,"x":%s}}' % (F, "9" * 30), D4
    yield "unknown field: 309-digit integer", '{"a":{%s,"x":1%s}}' % (F, "0" * 308), D4
    yield "unknown field: 310-digit integer", '{"a":{%s,"x":1%s}}' % (F, "0" * 309), D4
    yield "unknown field: f64 max as an integer", '{"a":{%s,"x":%d}}' % (
        F, int(1.7976931348623157e308)), D4
    yield "unknown field: 0.1e310", '{"a":{%s,"x":0.1e310}}' % F, D4
    yield "unknown field: 1e-400", '{"a":{%s,"x":1e-400}}' % F, D4
    yield "unknown field: 0e99999999999", '{"a":{%s,"x":0e99999999999}}' % F, D4
    yield "unknown field: 1e2147483648", '{"a":{%s,"x":1e2147483648}}' % F, D4
    yield "unknown field: -0", '{"a":{%s,"x":-0}}' % F, D4
    yield "unknown field: lone low surrogate", '{"a":{%s,"x":"\\udc00"}}' % F, D4
    yield "escaped backslash before u", '{"a\\\\ud800":{%s}}' % F, D4
    yield "surrogate followed by a non-surrogate", '{"\\ud800\\u0041":{%s}}' % F, D4
    yield "key spelled with an escape", '{"a":{"\\u0064type":"F32","shape":[1],' \
                                        '"data_offsets":[0,4]}}', D4
    yield "escape and literal both name dtype", '{"a":{"\\u0064type":"F32",%s}}' % F, D4
    yield "entry as a 4-array", '{"a":["F32",[1],[0,4],5]}', D4
    yield "entry as a 2-array", '{"a":["F32",[1]]}', D4
    yield "dtype {\"F32\": []}", '{"a":{"dtype":{"F32":[]},"shape":[1],"data_offsets":[0,4]}}', D4
    yield "dtype with two variants", '{"a":{"dtype":{"F32":null,"F16":null},"shape":[1],' \
                                     '"data_offsets":[0,4]}}', D4
    yield "dtype [\"F32\"]", '{"a":{"dtype":["F32"],"shape":[1],"data_offsets":[0,4]}}', D4
    yield "dtype in lower case", '{"a":{"dtype":"f32","shape":[1],"data_offsets":[0,4]}}', D4
    yield "shape 1.0", '{"a":{"dtype":"F32","shape":[1.0],"data_offsets":[0,4]}}', D4
    yield "shape 1e0", '{"a":{"dtype":"F32","shape":[1e0],"data_offsets":[0,4]}}', D4
    yield "shape true", '{"a":{"dtype":"F32","shape":[true],"data_offsets":[0,4]}}', D4
    yield "shape null", '{"a":{"dtype":"F32","shape":null,"data_offsets":[0,4]}}', D4
    yield "shape {}", '{"a":{"dtype":"F32","shape":{},"data_offsets":[0,4]}}', D4
    yield "offsets as an object", '{"a":{"dtype":"F32","shape":[1],"data_offsets":' \
                                  '{"0":0,"1":4}}}', D4
    yield "three offsets", '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4,5]}}', D4
    yield "offset -0", '{"a":{"dtype":"F32","shape":[0],"data_offsets":[-0,0]}}', b""
    yield "leading zero", '{"a":{"dtype":"F32","shape":[01],"data_offsets":[0,4]}}', D4
    yield "plus sign", '{"a":{"dtype":"F32","shape":[+1],"data_offsets":[0,4]}}', D4
    yield "tensor null", '{"a":null}', b""
    yield "metadata null", '{"__metadata__":null}', b""
    yield "metadata true", '{"__metadata__":true}', b""
    yield "metadata as pairs", '{"__metadata__":[["a","b"]]}', b""
    yield "metadata number", '{"__metadata__":{"a":1}}', b""
    yield "metadata named dtype", '{"__metadata__":{"dtype":"F32"}}', b""
    yield "top-level array", '[]', b""
    yield "empty name", '{"":{%s}}' % F, D4
    yield "raw control character in a name", '{"a\x01":{%s}}' % F, D4
    yield "DEL in a name", '{"a\x7f":{%s}}' % F, D4
    yield "invalid escape", '{"a\\q":{%s}}' % F, D4
    yield "Dtype and dtype", '{"a":{"Dtype":"F32",%s}}' % F, D4
    yield "missing shape", '{"a":{"dtype":"F32","data_offsets":[0,4]}}', D4
    yield "empty with data", '{}', b"\0"
    off, parts = 0, []
    for code, bits in [("BOOL", 8), ("U8", 8), ("I8", 8), ("F8_E5M2", 8), ("F8_E4M3", 8),
                       ("F8_E8M0", 8), ("F8_E4M3FNUZ", 8), ("F8_E5M2FNUZ", 8), ("I16", 16),
                       ("U16", 16), ("F16", 16), ("BF16", 16), ("I32", 32), ("U32", 32),
                       ("F32", 32), ("C64", 64), ("F64", 64), ("I64", 64), ("U64", 64),
                       ("F6_E2M3", 6), ("F6_E3M2", 6), ("F4", 4)]:
        nb = 8 * bits // 8
        parts.append('"%s":{"dtype":"%s","shape":[8],"data_offsets":[%d,%d]}'
                     % (code, code, off, off + nb))
        off += nb
    yield "one tensor of every dtype", "{" + ",".join(parts) + "}", bytes(range(256)) * (
        off // 256) + bytes(range(off % 256))


def serde_parity(folder, rng, count) -> Iterable[Case]:
    """Where Python's JSON reader and serde_json differ; each checked against the reference."""
    mk = Folders(folder, "sd")
    for label, header, data in _parity():
        path = write_st(mk() / "model.safetensors", header.encode("utf-8", "surrogatepass"),
                        data)
        yield Case("safetensors: JSON parity", label, path, reference=True)


def numbers(folder, rng, count) -> Iterable[Case]:
    """Numbers near a double's limit in an unknown field: serde_json's range, to the bit."""
    mk = Folders(folder, "nm")
    f64max = str(int(1.7976931348623157e308))
    for k in range(count):
        digits = rng.choice([1, 2, 5, 16, 17, 18, 19, 20, 21, 25, 40])
        exp = 309 - digits + rng.choice([-2, -1, 0, 0, 0, 1])
        mant = str(max(0, int(f64max[:digits]) + rng.choice([-2, -1, 0, 0, 1, 2])))
        form = rng.choice(["e", "int", "dec"])
        if form == "e":
            lit = f"{mant}e{'+' if rng.random() < 0.2 else ''}{exp}"
        elif form == "int":
            lit = mant + "0" * max(0, exp)
        else:
            lit = f"{mant[:1]}.{mant[1:] or '0'}E{exp + len(mant) - 1}"
        if rng.random() < 0.2:
            lit = "-" + lit
        header = '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":%s}}' % lit
        path = write_st(mk() / "model.safetensors", header, D4)
        yield Case("safetensors: number range", lit[:40], path, reference=True)


# --------------------------------------------------------------------------
# Mutations of real headers
# --------------------------------------------------------------------------

_BYTES = (0x00, 0x09, 0x20, 0x22, 0x2C, 0x2D, 0x2E, 0x30, 0x31, 0x34, 0x38, 0x39, 0x3A,
          0x5B, 0x5C, 0x5D, 0x65, 0x7B, 0x7D, 0x80, 0xFF)


def byte_mutations(folder, rng, count) -> Iterable[Case]:
    """Every position of the length field and header of real files, set to telling bytes
    (and +-1): ``count`` of them, evenly spread over the whole list."""
    seeds = real_files(random.Random(1))
    todo = []
    for s, blob in enumerate(seeds):
        n = struct.unpack("<Q", blob[:8])[0]
        for pos in range(8 + n):
            old = blob[pos]
            for b in sorted(set(_BYTES) | {(old + 1) % 256, (old - 1) % 256}):
                if b != old:
                    todo.append((s, pos, b))
    step = max(1, len(todo) / max(1, count))
    picks = sorted({int(k * step) for k in range(min(count, len(todo)))})
    mk = Folders(folder, "bm")
    for k in picks:
        s, pos, b = todo[k]
        blob = bytearray(seeds[s])
        blob[pos] = b
        path = mk() / "model.safetensors"
        path.write_bytes(bytes(blob))
        yield Case("safetensors: byte mutations of real headers",
                   f"file {s}, byte {pos} -> 0x{b:02x}", str(path), reference=True)


def _mutate_structure(rng: random.Random, header: Obj, data: bytes):
    """One structured mutation of a parsed header: (label, header, data, length or None).

    A mutation that does not apply to what an earlier one left (an entry that
    lost its offsets, an entry turned into an array) becomes a byte mutation.
    """
    state = rng.getstate()
    try:
        return _mutate_once(rng, Obj(list(header)), data)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError):
        rng.setstate(state)
        return _mutate_once(rng, Obj(list(header)), data, op="bytes")


def _mutate_once(rng: random.Random, header: Obj, data: bytes, op: str | None = None):
    names = [k for k, _ in header if k != "__metadata__"]
    ops = ["offset", "shape", "dtype", "drop_field", "extra_field", "duplicate", "reorder",
           "swap_offsets", "drop_tensor", "zero_tensor", "metadata", "whitespace", "pad",
           "length", "data", "array_form", "bytes"]
    op = op or rng.choice(ops)
    pairs = [(k, Obj(list(v.items())) if isinstance(v, dict) else v) for k, v in header]
    header = Obj(pairs)
    length = None
    if not names and op not in ("metadata", "whitespace", "pad", "length", "data", "bytes"):
        op = "length"
    pick = rng.choice(names) if names else None
    idx = next((i for i, (k, _) in enumerate(header) if k == pick), None)
    try:
        ent = dict(header[idx][1]) if idx is not None else None
    except (TypeError, ValueError):        # not an object any more
        ent = None

    def put(e):
        header[idx] = (pick, Obj(list(e.items())) if isinstance(e, dict) else e)

    if op == "offset":
        b, e = ent["data_offsets"]
        d = rng.choice([-8, -4, -2, -1, 1, 2, 4, 8, 2**32, 2**63, 2**64])
        which = rng.randrange(3)
        ent["data_offsets"] = [b + d if which != 1 else b, e + d if which != 0 else e]
        put(ent)
    elif op == "shape":
        shape = list(ent["shape"])
        choice = rng.randrange(8)
        if choice == 0 or not shape:
            shape.append(rng.choice([0, 1, 2, 2**32, 2**63, 2**64 - 1, 2**64]))
        elif choice == 1:
            shape.pop(rng.randrange(len(shape)))
        elif choice == 2:
            shape[rng.randrange(len(shape))] += rng.choice([-1, 1])
        elif choice == 3:
            shape[rng.randrange(len(shape))] = rng.choice(
                [Raw("-0"), Raw("1.0"), Raw("1e1"), "2", True, None, Raw("9" * 400),
                 Raw("-1"), [2]])
        elif choice == 4:
            shape = shape[::-1]
        elif choice == 5:
            shape = [x * 2 for x in shape]
        elif choice == 6:
            shape = [0] + shape
        else:
            shape = Raw("[" + ",".join(map(str, shape)) + ",]")
        ent["shape"] = shape
        put(ent)
    elif op == "dtype":
        ent["dtype"] = rng.choice(["BOOL", "U8", "I8", "I16", "U16", "F16", "BF16", "I32", "U32",
                                   "F32", "F64", "I64", "U64", "C64", "F8_E4M3", "F8_E5M2", "F4",
                                   "F6_E2M3", "F8_E8M0", "f32", "F13", "", 4, None,
                                   {"F32": None}, ["F32"]])
        put(ent)
    elif op == "drop_field":
        ent.pop(rng.choice(list(ent)))
        put(ent)
    elif op == "extra_field":
        ent[rng.choice(["x", "dtype ", "Shape", "__metadata__", "offsets"])] = rng.choice(
            [1, -1, 2**70, Raw("1e400"), Raw("NaN"), Raw("1.5"), "s", None, [], {},
             Raw("[" * 130 + "]" * 130), Raw("[" * 20 + "]" * 20), Raw('"\\ud800"')])
        put(ent)
    elif op == "duplicate":
        if rng.random() < 0.5:
            header.insert(rng.randrange(len(header) + 1), (pick, Obj(list(ent.items()))))
        else:
            put(Obj(list(ent.items()) + [(k := rng.choice(list(ent)), ent[k])]))
    elif op == "reorder":
        rng.shuffle(header)
    elif op == "swap_offsets" and any(n != pick for n in names):
        other = rng.choice([n for n in names if n != pick])
        j = next(i for i, (k, _) in enumerate(header) if k == other)
        e2 = dict(header[j][1])
        ent["data_offsets"], e2["data_offsets"] = e2["data_offsets"], ent["data_offsets"]
        put(ent)
        header[j] = (other, Obj(list(e2.items())))
    elif op == "drop_tensor":
        del header[idx]
    elif op == "zero_tensor":
        at = rng.choice([0, len(data), rng.randrange(len(data) + 1)])
        header.insert(rng.randrange(len(header) + 1),
                      ("z", Obj(list(entry("F32", (0,), (at, at)).items()))))
    elif op == "metadata":
        header[:] = [(k, v) for k, v in header if k != "__metadata__"]
        header.insert(0, ("__metadata__", rng.choice(
            [None, {}, {"a": "b"}, {"a": 1}, [], "x", {"a": {"b": "c"}}, {"a": None},
             Obj([("k", "1"), ("k", "2")])])))
    elif op == "whitespace":
        return ("whitespace", rng.choice([" ", "\n", "\t", "\r", "\x0c", "\x00", "  \n"])
                + to_json(header) + rng.choice(["", " ", "\n", "\x00", "x"]), data, None)
    elif op == "pad":
        text = to_json(header) + " " * rng.randrange(1, 9)
        return "pad", text, data, len(text) - rng.choice([0, 0, 1, 2])
    elif op == "length":
        text = to_json(header)
        return "length", text, data, len(text) + rng.choice([-9, -2, -1, 1, 2, 8, 2**32])
    elif op == "data":
        cut = rng.choice([-8, -4, -1, 1, 4, 8])
        return "data", to_json(header), data[:cut] if cut < 0 else data + bytes(cut), None
    elif op == "array_form":
        put([ent.get("dtype"), ent.get("shape"), ent.get("data_offsets")])
    elif op == "bytes":
        text = bytearray(to_json(header).encode())
        for _ in range(rng.randrange(1, 4)):
            kind = rng.randrange(3)
            at = rng.randrange(len(text) + 1)
            if kind == 0 and text:
                text[min(at, len(text) - 1)] = rng.randrange(256)
            elif kind == 1:
                text.insert(at, rng.choice(_BYTES))
            elif text:
                del text[min(at, len(text) - 1)]
        return "bytes", bytes(text), data, None
    return op, to_json(header), data, length


def structured_mutations(folder, rng, count) -> Iterable[Case]:
    """Real headers parsed, then changed one or two fields at a time (offsets, shapes, dtypes,
    repeated names, extra fields, metadata, whitespace, length field, data size...)."""
    seeds = []
    for blob in real_files(random.Random(1)):
        text, data, _ = split(blob)
        seeds.append((Obj(json.loads(text, object_pairs_hook=Obj)), data))
    mk = Folders(folder, "sm")
    for k in range(count):
        header, data = seeds[rng.randrange(len(seeds))]
        header = Obj([(n, Obj(v) if isinstance(v, Obj) else v) for n, v in header])
        label, text, data2, length = _mutate_structure(rng, header, data)
        if rng.random() < 0.3 and not isinstance(text, bytes):
            # a second mutation on top of the first
            try:
                again = Obj(json.loads(text, object_pairs_hook=Obj))
                if isinstance(again, Obj):
                    label2, text, data2, length = _mutate_structure(rng, again, data2)
                    label = f"{label}+{label2}"
            except ValueError:
                pass
        raw = text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")
        path = write_st(mk() / "model.safetensors", raw, data2, length)
        yield Case("safetensors: structured mutations of real headers", label, path,
                   reference=True)


# --------------------------------------------------------------------------
# Hypothesis-generated headers
# --------------------------------------------------------------------------

_CODES = {"BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8, "I16": 16,
          "U16": 16, "F16": 16, "BF16": 16, "I32": 32, "U32": 32, "F32": 32, "C64": 64,
          "F64": 64, "I64": 64, "U64": 64, "F6_E2M3": 6, "F6_E3M2": 6, "F4": 4}


def _header_strategy():
    from hypothesis import strategies as st

    name = st.one_of(st.text(max_size=12), st.from_regex(r"[a-z]+(\.[0-9]+)?\.[a-z_]+",
                                                         fullmatch=True))
    dim = st.one_of(st.integers(0, 5), st.sampled_from([0, 1, 7, 2**32, 2**63, 2**64 - 1]))
    tensor = st.tuples(name, st.sampled_from(sorted(_CODES)), st.lists(dim, max_size=4))
    perturb = st.one_of(st.none(), st.tuples(st.integers(0, 2), st.integers(-9, 9)))
    extra = st.one_of(st.none(), st.dictionaries(
        st.sampled_from(["x", "y", "dtype"]),
        st.recursive(st.one_of(st.integers(), st.floats(allow_nan=False), st.text(max_size=4),
                               st.booleans(), st.none()),
                     lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=3),
                                                                          c, max_size=2),
                     max_leaves=6), max_size=2))
    return st.fixed_dictionaries({
        "tensors": st.lists(st.tuples(tensor, perturb, extra), max_size=6),
        "metadata": st.one_of(st.none(), st.dictionaries(st.text(max_size=5),
                                                         st.text(max_size=5), max_size=3)),
        "order": st.randoms(use_true_random=False),
        "slack": st.sampled_from([0, 0, 0, 1, -1, 7]),
        "sep": st.sampled_from([(",", ":"), (", ", ": ")]),
        "pad": st.sampled_from(["", " ", "    ", "\n"]),
    })


def _build(h):
    """(header text, data) of one drawn header description, packed then perturbed."""
    pairs, pos = [], 0
    for (name, code, shape), perturb, extra in h["tensors"]:
        numel = 1
        for d in shape:
            numel *= d
        nbytes = numel * _CODES[code] // 8 if numel * _CODES[code] < 2**20 else 0
        begin, end = pos, pos + nbytes
        if perturb is not None:
            which, delta = perturb
            begin, end = (begin + delta, end) if which == 0 else (
                (begin, end + delta) if which == 1 else (begin + delta, end + delta))
        e = Obj([("dtype", code), ("shape", shape), ("data_offsets", [begin, end])])
        if extra:
            e.extend(extra.items())
        pairs.append((name, e))
        pos += nbytes
    if h["metadata"] is not None:
        pairs.insert(0, ("__metadata__", h["metadata"]))
    h["order"].shuffle(pairs)
    text = to_json(Obj(pairs), *h["sep"]) + h["pad"]
    size = max(0, pos + h["slack"])
    return text, bytes(k % 251 for k in range(size))


def hypothesis_headers(folder, rng, count) -> Iterable[Case]:
    """Headers drawn by hypothesis: random names, dtypes, shapes (up to 2^64), offsets packed
    or nudged, unknown fields, metadata, key order, separators and padding."""
    from hypothesis import HealthCheck, given, seed, settings

    drawn = []

    @seed(rng.randrange(2**32))
    @settings(max_examples=count, database=None, deadline=None, derandomize=False,
              suppress_health_check=list(HealthCheck))
    @given(_header_strategy())
    def collect(h):
        drawn.append(_build(h))

    collect()
    mk = Folders(folder, "hy")
    for k, (text, data) in enumerate(drawn[:count]):
        path = write_st(mk() / "model.safetensors", text.encode("utf-8", "surrogatepass"), data)
        yield Case("safetensors: hypothesis headers", f"example {k}", path, reference=True)


# --------------------------------------------------------------------------
# Sharded indexes
# --------------------------------------------------------------------------

def _shard(path, names=("a",)) -> None:
    header, data = packed({n: ("F32", (2,), np.arange(2, dtype=np.float32).tobytes())
                           for n in names})
    write_st(path, header, data)


def _index(path, weight_map, raw: str | bytes | None = None) -> str:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    if raw is None:
        raw = json.dumps({"metadata": {"total_size": 8}, "weight_map": weight_map})
    Path(path).write_bytes(raw if isinstance(raw, bytes) else raw.encode("utf-8",
                                                                          "surrogatepass"))
    return os.fspath(path)


def index_cases(folder, rng, count) -> Iterable[Case]:
    """Sharded indexes: shard names leaving the folder (``..``, absolute, symlinks, existing
    or not: one message), hub cache snapshots, FIFOs, missing shards, broken index JSON."""
    area = "index: shard paths"
    root = Path(folder)
    outside = root / "outside"
    outside.mkdir(parents=True, exist_ok=True)
    private = outside / "private.safetensors"
    _shard(private)
    mk = Folders(root, "ix")
    def out_rx(name):
        return f"shard {re.escape(repr(name))} is outside the index's folder$"


    def case(label, weight_map, expect, match=None, setup=None, raw=None, name=None):
        d = mk()
        if setup is not None:
            setup(d)
        path = _index(d / (name or "model.safetensors.index.json"), weight_map, raw)
        return Case(area, label, path, expect, match)

    def leaving(label, entry_name, setup=None):
        return case(label, {"a": entry_name}, "refuse", out_rx(entry_name), setup)

    yield leaving("'..' to a file that exists", "../outside/private.safetensors")
    yield leaving("'..' to a file that does not exist", "../outside/nope.safetensors")
    yield leaving("'..' to the root", "../../../../../../../../etc/passwd")
    yield leaving("absolute path to a file that exists", str(private))
    yield leaving("absolute path to a file that does not exist", str(outside / "nope"))
    yield leaving("'..' that comes back inside", "sub/../shard.safetensors",
                  lambda d: (_shard(d / "shard.safetensors"), (d / "sub").mkdir()))
    yield leaving("backslash '..'", "..\\outside\\private.safetensors")
    yield leaving("NUL in the name", "shard.safetensors\x00.txt")
    yield leaving("symlink to a file outside that exists", "link.safetensors",
                  lambda d: os.symlink(private, d / "link.safetensors"))
    yield leaving("symlink to a file outside that does not exist", "link.safetensors",
                  lambda d: os.symlink(outside / "nope.safetensors", d / "link.safetensors"))
    yield leaving("symlink to a folder outside", "dir/private.safetensors",
                  lambda d: os.symlink(outside, d / "dir"))
    yield case("symlink loop", {"a": "loop1.safetensors"}, "refuse", None,
               lambda d: (os.symlink("loop2.safetensors", d / "loop1.safetensors"),
                          os.symlink("loop1.safetensors", d / "loop2.safetensors")))
    yield case("symlink to a shard inside", {"a": "link.safetensors"}, "accept", None,
               lambda d: (_shard(d / "real.safetensors"),
                          os.symlink("real.safetensors", d / "link.safetensors")))
    yield case("shard in a subfolder", {"a": "sub/shard.safetensors"}, "accept", None,
               lambda d: _shard(d / "sub" / "shard.safetensors"))
    yield case("./shard", {"a": "./shard.safetensors"}, "accept", None,
               lambda d: _shard(d / "shard.safetensors"))
    yield case("two shards", {"a": "s1.safetensors", "b": "s2.safetensors"}, "accept", None,
               lambda d: (_shard(d / "s1.safetensors"), _shard(d / "s2.safetensors", ("b",))))
    yield case("missing shard", {"a": "nope.safetensors"}, "refuse", "does not exist")
    yield case("shard that is a FIFO", {"a": "fifo.safetensors"}, "refuse",
               r"is not a regular file \(a FIFO\)", lambda d: os.mkfifo(d / "fifo.safetensors"))
    yield case("shard that is a directory", {"a": "dir.safetensors"}, "refuse",
               r"is not a regular file \(a directory\)",
               lambda d: (d / "dir.safetensors").mkdir())
    yield case("shard that lies (a gap)", {"a": "s.safetensors"}, "refuse", "unused bytes",
               lambda d: write_st(d / "s.safetensors", {"a": entry(offsets=(1, 5))}, bytes(5)))
    yield case("shard lacking its tensor", {"b": "s.safetensors"}, "refuse", "lacks 1",
               lambda d: _shard(d / "s.safetensors"))
    d = mk()
    fifo = d / "model.safetensors.index.json"
    os.mkfifo(fifo)
    yield Case(area, "index that is a FIFO", str(fifo), "refuse",
               r"is not a regular file \(a FIFO\)")
    for label, raw, match in [
            ("index not UTF-8", b'{"weight_map": {"a\xff": "s"}}', "not valid UTF-8"),
            ("index not JSON", b'{"weight_map": ', "not valid JSON"),
            ("index nested a million deep", b"[" * 1_000_000 + b"]" * 1_000_000,
             "nested too deeply"),
            ("index with a 5000-digit number", ('{"metadata": {"total_size": %s}, "weight_map":'
                                                ' {"a": "s.safetensors"}}' % ("9" * 5000)),
             "5000-digit integer"),
            ("index with NaN", '{"metadata": NaN, "weight_map": {"a": "s.safetensors"}}', "NaN"),
            ("weight_map not an object", '{"weight_map": []}', "maps tensor names"),
            ("weight_map value not a string", '{"weight_map": {"a": 3}}', "maps tensor names"),
            ("weight_map empty", '{"weight_map": {}}', "lists no tensors"),
            ("empty shard name", '{"weight_map": {"a": ""}}', "maps tensor names")]:
        yield case(label, None, "refuse", match, raw=raw)
    d = mk()
    big = d / "model.safetensors.index.json"
    with open(big, "wb") as f:
        f.truncate(100_000_001)
    yield Case(area, "index over 100 MB (sparse)", str(big), "refuse", "over the 100000000")

    # Hugging Face hub cache: snapshots/REV/* are symlinks into ../../blobs/
    def hub(d, escape: bool = False, blobs: bool = True):
        repo = d / "hub" / "models--org--name"
        snap = repo / "snapshots" / "0123abcd"
        (repo / "blobs").mkdir(parents=True) if blobs else repo.mkdir(parents=True)
        snap.mkdir(parents=True)
        store = repo / "blobs" if blobs else repo / "elsewhere"
        store.mkdir(exist_ok=True)
        _shard(store / "h1")
        (store / "h2").write_text(json.dumps({"weight_map": {"a": "model-00001.safetensors"}}))
        os.symlink(private if escape else Path("../..") / store.name / "h1",
                   snap / "model-00001.safetensors")
        os.symlink(Path("../..") / store.name / "h2", snap / "model.safetensors.index.json")
        return snap / "model.safetensors.index.json"

    d = mk()
    yield Case(area, "hub cache snapshot (symlinks into blobs)", str(hub(d)), "accept")
    d = mk()
    yield Case(area, "hub cache snapshot with a symlink leaving the repo", str(hub(d, True)),
               "refuse", out_rx("model-00001.safetensors"))
    d = mk()
    yield Case(area, "hub-like folder without blobs", str(hub(d, blobs=False)), "refuse",
               out_rx("model-00001.safetensors"))


# --------------------------------------------------------------------------
# Big headers (the long run)
# --------------------------------------------------------------------------

def big_header(folder, rng, count) -> Iterable[Case]:
    """A header of 500,000 tensors (48 MB), listed; big headers refused after parsing."""
    n = 500_000
    names = sorted(f"model.layers.{i // 50}.block.{(i % 50) // 5}.w{i % 5}.weight"
                   for i in range(n))
    parts = ['"%s":{"dtype":"F32","shape":[1],"data_offsets":[%d,%d]}' % (nm, 4 * k, 4 * k + 4)
             for k, nm in enumerate(names)]
    text = "{" + ",".join(parts) + "}"
    text += " " * (-len(text) % 8)
    d = Folders(folder, "big")()
    path = write_st(d / "model.safetensors", text, np.arange(n, dtype=np.float32).tobytes())
    # the header's parsed form is what a 500k-tensor listing costs, in any reader
    # listing them takes seconds in any reader (the Rust parser: ~1.5 s on the dev VM);
    # the limit is a bound, not a benchmark (benchmarks measure the time)
    yield Case("safetensors: 500k tensors", "500,000 tensors", path, "accept",
               reference=True, budget=os.path.getsize(path) + 1024 * 2**20, cpu_limit=60.0,
               draw=100, hang_s=600.0)
    # Refusals after the whole header is parsed.  Held as Python objects a JSON header
    # takes about ten times its text (the Rust parser: 469 MiB for this one's 36 MB, by
    # its serde Content buffers), so these get that budget, not the file + 100 MiB.
    parts = ['"t.%d":{"dtype":"F32","shape":[1],"data_offsets":[%d,%d]}' % (k, 4 * k, 4 * k + 4)
             for k in range(n)]
    d = Folders(folder, "bigref")()
    path = write_st(d / "model.safetensors", "{" + ",".join(parts) + "}",
                    bytes(4 * n + 1))
    yield Case("safetensors: 500k tensors", "500,000 tensors and one byte too many", path,
               "refuse", "cover", reference=True, budget=16 * os.path.getsize(path) + 100 * 2**20,
               cpu_limit=10.0, hang_s=600.0)
    d = Folders(folder, "lists")()
    path = write_st(d / "model.safetensors",
                    '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":['
                    + ",".join(["[]"] * 5_000_000) + ']}}', bytes(3))
    # the Rust parser: 167 MiB, 0.3 s; Python lists cost 64 bytes where its Content costs 32
    yield Case("safetensors: 500k tensors", "5 million empty lists in an unknown field", path,
               "refuse", "run past|cover", reference=True,
               budget=40 * os.path.getsize(path) + 100 * 2**20, cpu_limit=10.0, hang_s=600.0)


# --------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class Generator:
    """A generator and the number of cases it makes in CI (0: a fixed list, made whole)."""

    name: str
    make: Callable
    ci: int = 0
    long_only: bool = False


def files(area: str, makers) -> Callable:
    """A generator from ``(folder) -> hostile_sources.Case`` functions (one case each)."""

    def make(folder, rng, count):
        for maker in makers:
            d = Path(folder) / maker.__name__
            d.mkdir(parents=True, exist_ok=True)
            c = maker(d)
            yield Case(area, c.name, os.fspath(c.path), c.expect, c.match,
                       getattr(c, "stage", "open"))

    make.__name__ = f"files({area!r})"
    return make


def _hostile_sources():
    from . import hostile_sources as hs

    try:
        import torch  # noqa: F401
        torch_ok = True
    except ImportError:
        torch_ok = False
    return hs, [g for g in hs.TORCH if torch_ok]


def _sources(area, pick):
    def make(folder, rng, count):
        hs, torch_makers = _hostile_sources()
        makers = {"npy": hs.NPY, "npz": hs.NPZ, "torch": torch_makers}[pick]
        yield from files(area, makers)(folder, rng, count)

    return make


GENERATORS = [
    Generator("named", named_safetensors),
    Generator("special", special_files),
    Generator("parity", serde_parity),
    Generator("numbers", numbers, ci=150),
    Generator("index", index_cases),
    Generator("bytes", byte_mutations, ci=1100),
    Generator("structured", structured_mutations, ci=1100),
    Generator("hypothesis", hypothesis_headers, ci=500),
    Generator("npy", _sources("npy: hostile files", "npy")),
    Generator("npz", _sources("npz: hostile files", "npz")),
    Generator("torch", _sources("torch: hostile files", "torch")),
    Generator("big", big_header, long_only=True),
]


def build(root, seed: int = 0, scale: float = 1.0, long: bool = False,
          only: set | None = None) -> list[Case]:
    """Every generator's cases under ``root``: CI counts times ``scale``; long-only ones with
    ``long``; ``only`` restricts to the named generators."""
    cases = []
    for k, g in enumerate(GENERATORS):
        if (g.long_only and not long) or (only is not None and g.name not in only):
            continue
        rng = random.Random(f"{seed}:{g.name}")
        count = max(1, round(g.ci * scale)) if g.ci else 0
        folder = Path(root) / f"{k:02d}-{g.name}"
        folder.mkdir(parents=True, exist_ok=True)
        cases.extend(g.make(folder, rng, count))
    return cases
