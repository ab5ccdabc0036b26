"""Hostile (and a few valid) ``.npy``, ``.npz`` and torch files, for the fuzz harness.

Each generator is a function ``(folder: pathlib.Path) -> Case`` that writes
one file into ``folder`` and says what a reader must do with it; :data:`ALL`
lists them.  Every file is small on disk (the bombs are small by
construction: they *claim* sizes, they do not hold them) and quick to write.

``Case.expect`` is ``"accept"`` (opening the file and reading every tensor
it lists succeeds) or ``"refuse"``: a
:class:`~dlviz_gpu.models.CheckpointError` whose one-line message matches
``Case.match``, raised when the file is opened (``stage="open"``: ``dlviz
inspect`` exits 1) or only when the tensor is read or drawn
(``stage="read"``: ``dlviz inspect`` lists the file, ``dlviz render``
exits 1).

The torch cases need torch; :func:`needs_torch` tells which they are.
"""

from __future__ import annotations

import os
import pickle
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Case:
    """One file and what a reader must do with it.

    Attributes
    ----------
    name : str
        The generator's name, e.g. ``"npy_negative_shape"``.
    path : pathlib.Path
    expect : {"accept", "refuse"}
    match : str or None
        A regex the refusal's message must match (``re.search``); None for
        accepted files.
    stage : {"open", "read"}
        Where a refusal comes: opening (listing) the file, or reading a
        tensor it lists.
    """

    name: str
    path: Path
    expect: str
    match: str | None = None
    stage: str = "open"


def _accept(name, path) -> Case:
    return Case(name, Path(path), "accept")


def _refuse(name, path, match, stage="open") -> Case:
    return Case(name, Path(path), "refuse", match, stage)


# --------------------------------------------------------------------------
# .npy
# --------------------------------------------------------------------------

def npy_bytes(header, data: bytes = b"", version=(1, 0), length: int | None = None) -> bytes:
    """A ``.npy`` file: magic, ``version``, header length (default: the header's), header, data.

    ``header`` is a dict (written as numpy writes it, padded to 64 bytes) or
    the header text itself, as str or bytes.
    """
    if isinstance(header, dict):
        text = repr(header)
        pad = -(len(text) + 1 + 10) % 64
        header = text + " " * pad + "\n"
    if isinstance(header, str):
        header = header.encode("latin1")
    fmt = "<H" if version == (1, 0) else "<I"
    n = len(header) if length is None else length
    return b"\x93NUMPY" + bytes(version) + struct.pack(fmt, n) + header + data


def _npy(folder, name, header, data=b"", **kw) -> Path:
    path = Path(folder) / f"{name}.npy"
    path.write_bytes(npy_bytes(header, data, **kw))
    return path


def npy_valid(folder) -> Case:
    path = Path(folder) / "npy_valid.npy"
    np.save(path, np.arange(12, dtype=np.float32).reshape(3, 4))
    return _accept("npy_valid", path)


def npy_python2_long(folder) -> Case:
    # Python 2 numpy wrote (3L, 4L); numpy still reads such headers, so do we
    head = "{'descr': '<f4', 'fortran_order': False, 'shape': (3L, 4L), }"
    return _accept("npy_python2_long",
                   _npy(folder, "npy_python2_long", head.ljust(118) + "\n", bytes(48)))


def npy_negative_shape(folder) -> Case:
    path = _npy(folder, "npy_negative_shape",
                {"descr": "<f4", "fortran_order": False, "shape": (-5,)})
    return _refuse("npy_negative_shape", path, r"shape \(-5,\) has a negative dimension")


def npy_5000_digit_shape(folder) -> Case:
    head = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + "9" * 5000 + ",), }"
    path = _npy(folder, "npy_5000_digit_shape", head + "\n")
    return _refuse("npy_5000_digit_shape", path, "a 5000-digit number")


def npy_header_length_4gb(folder) -> Case:
    # version 2 headers have a 4-byte length: this one claims 4 GiB, holds 20 bytes
    path = _npy(folder, "npy_header_length_4gb", "{'descr': '<f4'}", version=(2, 0),
                length=2**32 - 1)
    return _refuse("npy_header_length_4gb", path,
                   r"header is 4294967295 bytes, over numpy's limit of 10000")


def npy_header_over_limit(folder) -> Case:
    head = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }" + " " * 11000 + "\n"
    path = _npy(folder, "npy_header_over_limit", head, bytes(8), version=(2, 0))
    return _refuse("npy_header_over_limit", path, "over numpy's limit of 10000")


def npy_header_truncated(folder) -> Case:
    path = _npy(folder, "npy_header_truncated", "{'descr': '<f4', ", length=1000)
    return _refuse("npy_header_truncated", path, r"header ends after 17 of 1000 bytes: truncated")


def npy_unknown_version(folder) -> Case:
    path = _npy(folder, "npy_unknown_version", {"descr": "<f4", "fortran_order": False,
                                                 "shape": (1,)}, bytes(4), version=(9, 0))
    return _refuse("npy_unknown_version", path, "unknown format version 9.0")


def npy_65_dims(folder) -> Case:
    path = _npy(folder, "npy_65_dims", {"descr": "<f4", "fortran_order": False,
                                         "shape": (1,) * 65}, bytes(4))
    return _refuse("npy_65_dims", path, "65 dimensions; numpy allows at most 64")


def npy_unaddressable_shape(folder) -> Case:
    path = _npy(folder, "npy_unaddressable_shape", {"descr": "<f8", "fortran_order": False,
                                                     "shape": (0, 2**62, 2**62)})
    return _refuse("npy_unaddressable_shape", path, "larger than numpy can address")


def npy_data_truncated(folder) -> Case:
    path = _npy(folder, "npy_data_truncated", {"descr": "<f8", "fortran_order": False,
                                                "shape": (10**6,)}, bytes(10))
    return _refuse("npy_data_truncated", path, r"needs 8000000 bytes .*holds 10: truncated")


def npy_object_dtype(folder) -> Case:
    path = _npy(folder, "npy_object_dtype", {"descr": "|O", "fortran_order": False,
                                              "shape": (1,)}, pickle.dumps([None]))
    return _refuse("npy_object_dtype", path, r"holds Python objects.*allow_pickle=False")


def npy_header_not_dict(folder) -> Case:
    path = _npy(folder, "npy_header_not_dict", "[1, 2, 3]\n")
    return _refuse("npy_header_not_dict", path, "not a Python dict literal")


def npy_header_nested(folder) -> Case:
    # 4000 nested parentheses: the parser gives up (no recursion error escapes)
    path = _npy(folder, "npy_header_nested", "(" * 4000 + ")" * 4000 + "\n")
    return _refuse("npy_header_nested", path, "not a Python dict literal")


def npy_bad_descr(folder) -> Case:
    path = _npy(folder, "npy_bad_descr", {"descr": "<U1000000000000", "fortran_order": False,
                                           "shape": (1,)})
    return _refuse("npy_bad_descr", path, "descr is not a dtype numpy reads")


def npy_fifo(folder) -> Case:
    path = Path(folder) / "npy_fifo.npy"
    os.mkfifo(path)
    return _refuse("npy_fifo", path, r"is not a regular file \(a FIFO\)")


# --------------------------------------------------------------------------
# .npz: a zip writer that declares whatever it is told
# --------------------------------------------------------------------------

@dataclass
class Member:
    """One zip member as written: ``payload`` as stored, and what it declares."""

    name: str
    payload: bytes
    method: int = zipfile.ZIP_STORED
    file_size: int | None = None      # default: len(payload) (stored)
    crc: int | None = None            # default: CRC-32 of payload (stored)
    flags: int = 0


def deflate(data: bytes, level: int = 9) -> bytes:
    """``data`` as a raw deflate stream, as zip members hold it."""
    c = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS)
    return c.compress(data) + c.flush()


def deflated(name: str, data: bytes, **declared) -> Member:
    """A deflated member declaring ``data``'s size and CRC unless told otherwise."""
    declared.setdefault("file_size", len(data))
    declared.setdefault("crc", zlib.crc32(data))
    return Member(name, deflate(data), zipfile.ZIP_DEFLATED, **declared)


def zip_bytes(members, claim_entries: int | None = None) -> bytes:
    """A zip archive of ``members``; ``claim_entries`` writes a zip64 end record claiming that many."""
    out, central = bytearray(), bytearray()
    for m in members:
        name = m.name.encode()
        size = len(m.payload) if m.file_size is None else m.file_size
        crc = zlib.crc32(m.payload) if m.crc is None else m.crc
        fields = (20, m.flags, m.method, 0, 0x21, crc, len(m.payload), size)
        central += (struct.pack("<4s2H", b"PK\x01\x02", 20, 20) + struct.pack("<4H3I", *fields[1:])
                    + struct.pack("<5H2I", len(name), 0, 0, 0, 0, 0, len(out)) + name)
        out += struct.pack("<4s5H3I2H", b"PK\x03\x04", *fields, len(name), 0) + name + m.payload
    start, n = len(out), len(members)
    out += central
    if claim_entries is None:
        out += struct.pack("<4s4H2IH", b"PK\x05\x06", 0, 0, n, n, len(central), start, 0)
    else:
        at = len(out)
        out += struct.pack("<4sQ2H2I4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, claim_entries,
                           claim_entries, len(central), start)
        out += struct.pack("<4sIQI", b"PK\x06\x07", 0, at, 1)
        out += struct.pack("<4s4H2IH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF,
                           0xFFFFFFFF, 0)
    return bytes(out)


def _npz(folder, name, members, **kw) -> Path:
    path = Path(folder) / f"{name}.npz"
    path.write_bytes(zip_bytes(members, **kw))
    return path


def _member_npy(shape, dtype="<f4", data=None) -> bytes:
    n = int(np.prod(shape)) * np.dtype(dtype).itemsize
    return npy_bytes({"descr": dtype, "fortran_order": False, "shape": tuple(shape)},
                     bytes(n) if data is None else data)


def npz_valid_stored(folder) -> Case:
    path = Path(folder) / "npz_valid_stored.npz"
    np.savez(path, w=np.arange(6.0).reshape(2, 3), b=np.ones(3, np.int16))
    return _accept("npz_valid_stored", path)


def npz_valid_deflated(folder) -> Case:
    path = Path(folder) / "npz_valid_deflated.npz"
    np.savez_compressed(path, w=np.arange(6.0).reshape(2, 3), b=np.ones(3, np.int16))
    return _accept("npz_valid_deflated", path)


def npz_deflated_zeros_48mb(folder) -> Case:
    # 48 MB of zeros deflate to ~47 KB: a high ratio is not a crime; reading it
    # costs the 48 MB the array needs
    path = Path(folder) / "npz_deflated_zeros_48mb.npz"
    head = npy_bytes({"descr": "<f4", "fortran_order": False, "shape": (4000, 3000)})
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf, zf.open("w.npy", "w") as f:
        f.write(head)
        zeros = bytes(1 << 20)
        left = 4000 * 3000 * 4
        while left:
            f.write(zeros[:min(left, len(zeros))])
            left -= min(left, len(zeros))
    return _accept("npz_deflated_zeros_48mb", path)


def npz_declares_2gb(folder) -> Case:
    # the bomb, lying: a 20000 x 30000 float32 member declared, 2 KB stored
    data = npy_bytes({"descr": "<f4", "fortran_order": False, "shape": (20000, 30000)},
                     bytes(4096))
    m = deflated("w.npy", data, file_size=128 + 20000 * 30000 * 4)
    return _refuse("npz_declares_2gb", _npz(folder, "npz_declares_2gb", [m]),
                   r"member 'w.npy' declares 2400000128 bytes inflated from \d+; deflate "
                   r"expands at most 1032-fold")


def npz_inflates_beyond(folder) -> Case:
    # declares (and checksums) the array, but the stream goes on for 1 MB more
    data = _member_npy((4, 4))
    m = Member("w.npy", deflate(data + bytes(1 << 20)), zipfile.ZIP_DEFLATED,
               file_size=len(data), crc=zlib.crc32(data))
    return _refuse("npz_inflates_beyond", _npz(folder, "npz_inflates_beyond", [m]),
                   r"member 'w.npy': inflates beyond the 192 bytes it declares", "read")


def npz_inflates_short(folder) -> Case:
    # the header and zip both declare 1000 floats; the stream holds 10
    full = _member_npy((1000,))
    m = Member("w.npy", deflate(full[:128 + 40]), zipfile.ZIP_DEFLATED,
               file_size=len(full), crc=zlib.crc32(full))
    return _refuse("npz_inflates_short", _npz(folder, "npz_inflates_short", [m]),
                   r"member 'w.npy': inflates to 40 bytes of array data, its header declares "
                   r"4000", "read")


def npz_corrupt_stream(folder) -> Case:
    # block type 3 does not exist: the first inflate fails
    data = _member_npy((4,))
    m = Member("w.npy", b"\x07" + deflate(data)[1:], zipfile.ZIP_DEFLATED,
               file_size=len(data), crc=zlib.crc32(data))
    return _refuse("npz_corrupt_stream", _npz(folder, "npz_corrupt_stream", [m]),
                   r"member 'w.npy': corrupted deflate stream")


def npz_bad_crc(folder) -> Case:
    data = _member_npy((64,), data=bytes(range(256)))
    m = deflated("w.npy", data, crc=zlib.crc32(data) ^ 1)
    return _refuse("npz_bad_crc", _npz(folder, "npz_bad_crc", [m]),
                   r"member 'w.npy': CRC-32 [0-9a-f]{8}, it declares [0-9a-f]{8}: corrupted",
                   "read")


def npz_claims_10m_members(folder) -> Case:
    m = Member("w.npy", _member_npy((2,)))
    return _refuse("npz_claims_10m_members",
                   _npz(folder, "npz_claims_10m_members", [m], claim_entries=10**7),
                   "declares 10000000 members; at most 100000 are read")


def npz_encrypted(folder) -> Case:
    m = Member("w.npy", _member_npy((2,)), flags=0x1)
    return _refuse("npz_encrypted", _npz(folder, "npz_encrypted", [m]),
                   "member 'w.npy' is encrypted")


def npz_bzip2(folder) -> Case:
    import bz2

    data = _member_npy((2,))
    m = Member("w.npy", bz2.compress(data), zipfile.ZIP_BZIP2, file_size=len(data),
               crc=zlib.crc32(data))
    return _refuse("npz_bzip2", _npz(folder, "npz_bzip2", [m]),
                   "compressed with zip method 12; numpy writes stored or deflated")


def npz_duplicate_member(folder) -> Case:
    ms = [Member("w.npy", _member_npy((2,))), Member("w.npy", _member_npy((3,)))]
    return _refuse("npz_duplicate_member", _npz(folder, "npz_duplicate_member", ms),
                   "member 'w.npy' appears twice")


def npz_member_header_4gb(folder) -> Case:
    # a deflated member whose .npy header claims 4 GiB of header: refused
    # before a byte of it is inflated
    data = b"\x93NUMPY\x02\x00" + struct.pack("<I", 2**32 - 1) + b" " * 10_000
    return _refuse("npz_member_header_4gb",
                   _npz(folder, "npz_member_header_4gb", [deflated("w.npy", data)]),
                   r"member 'w.npy': not a valid .npy array: its header is 4294967295 bytes")


def npz_member_past_end(folder) -> Case:
    path = _npz(folder, "npz_member_past_end", [Member("w.npy", _member_npy((2,)))])
    raw = bytearray(path.read_bytes())
    # the central directory's compressed and uncompressed sizes: 1 MB
    at = raw.rindex(b"PK\x01\x02")
    raw[at + 20:at + 28] = struct.pack("<2I", 1 << 20, 1 << 20)
    path.write_bytes(bytes(raw))
    return _refuse("npz_member_past_end", path, "runs past the end of the file: truncated")


def npz_member_negative_shape(folder) -> Case:
    data = npy_bytes({"descr": "<f4", "fortran_order": False, "shape": (3, -5)})
    return _refuse("npz_member_negative_shape",
                   _npz(folder, "npz_member_negative_shape", [deflated("w.npy", data)]),
                   r"member 'w.npy': not a valid .npy array: its shape \(3, -5\) has a "
                   r"negative dimension")


def npz_not_zip(folder) -> Case:
    path = Path(folder) / "npz_not_zip.npz"
    path.write_bytes(b"PK\x03\x04 but nothing else of a zip file")
    return _refuse("npz_not_zip", path, r"not a readable .npz \(zip\) archive")


# --------------------------------------------------------------------------
# torch: a writer of torch's zip format around a hand-made pickle
# --------------------------------------------------------------------------

def p_int(n: int) -> bytes:
    """Pickle opcodes pushing the integer ``n``."""
    return pickle.dumps(n, 2)[2:-1]


def p_str(s: str) -> bytes:
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def p_tuple(items) -> bytes:
    return b"(" + b"".join(items) + b"t"


def p_tensor(key: str, numel: int, size, stride, offset: int = 0,
             storage: str = "FloatStorage") -> bytes:
    """Opcodes pushing ``torch._utils._rebuild_tensor_v2`` of storage ``key``, as torch.save writes."""
    return (b"ctorch._utils\n_rebuild_tensor_v2\n("
            + p_tuple([p_str("storage"), b"ctorch\n" + storage.encode() + b"\n", p_str(key),
                       p_str("cpu"), p_int(numel)]) + b"Q"
            + p_int(offset) + p_tuple(map(p_int, size)) + p_tuple(map(p_int, stride))
            + b"\x89ccollections\nOrderedDict\n)RtR")


def p_dict(items) -> bytes:
    """Opcodes pushing a dict of ``(str key, opcodes of the value)``."""
    return b"}(" + b"".join(p_str(k) + v for k, v in items) + b"u"


def torch_zip(path, body: bytes, records=None, compress=(), duplicate=None) -> Path:
    """A torch zip checkpoint: ``archive/data.pkl`` = PROTO 2 + ``body`` + STOP, and ``records``.

    ``records`` maps storage keys to their bytes (``archive/data/KEY``,
    aligned to 64 bytes as torch writes them); names in ``compress`` are
    deflated; ``duplicate`` names a record written a second time.
    """
    entries = [("data.pkl", b"\x80\x02" + body + b"."), ("byteorder", b"little")]
    entries += [(f"data/{k}", v) for k, v in (records or {}).items()]
    entries += [("version", b"3\n")]
    if duplicate is not None:
        entries += [(duplicate, dict(entries)[duplicate])]
    with open(path, "wb") as f, zipfile.ZipFile(f, "w") as zf:
        for name, data in entries:
            zi = zipfile.ZipInfo(f"archive/{name}", date_time=(1980, 1, 1, 0, 0, 0))
            zi.compress_type = zipfile.ZIP_DEFLATED if name in compress else zipfile.ZIP_STORED
            # pad the local header's extra field so the data starts 64-byte aligned
            pad = -(f.tell() + 30 + len(zi.filename) + 4) % 64
            zi.extra = struct.pack("<HH", 0xCAFE, pad) + b"Z" * pad
            if duplicate is not None:
                import warnings

                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)   # "Duplicate name"
                    zf.writestr(zi, data)
            else:
                zf.writestr(zi, data)
    return Path(path)


_F6 = np.arange(6, dtype=np.float32).tobytes()


def pt_valid(folder) -> Case:
    import torch

    path = Path(folder) / "pt_valid.pt"
    torch.save({"w": torch.arange(6.0).reshape(2, 3), "step": 3}, path)
    return _accept("pt_valid", path)


def pt_module_state_dict(folder) -> Case:
    import torch

    path = Path(folder) / "pt_module_state_dict.pt"
    torch.save(torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.LayerNorm(2)).state_dict(),
               path)
    return _accept("pt_module_state_dict", path)


def pt_handmade_valid(folder) -> Case:
    path = torch_zip(Path(folder) / "pt_handmade_valid.pt",
                     p_dict([("w", p_tensor("0", 6, (2, 3), (3, 1)))]), {"0": _F6})
    return _accept("pt_handmade_valid", path)


def pt_expanded_1e14(folder) -> Case:
    # torch.zeros(1).expand(10**7, 10**7): 1.6 KB claiming 10^14 elements
    import torch

    path = Path(folder) / "pt_expanded_1e14.pt"
    torch.save({"w": torch.zeros(1).expand(10**7, 10**7)}, path)
    return _refuse("pt_expanded_1e14", path,
                   r"tensor 'w' is refused: an expanded or overlapping view \(strides \(0, 0\)\):"
                   r" it claims 100000000000000 elements \(400000000000000 bytes\) but reaches "
                   r"1 stored \(4 bytes\)", "read")


def pt_overlapping_strides(folder) -> Case:
    import torch

    path = Path(folder) / "pt_overlapping_strides.pt"
    torch.save({"w": torch.arange(25.0).as_strided((5, 5), (1, 1)), "b": torch.ones(3)}, path)
    return _refuse("pt_overlapping_strides", path,
                   r"tensor 'w' is refused: an expanded or overlapping view \(strides \(1, 1\)\):"
                   r" it claims 25 elements \(100 bytes\) but reaches 9 stored", "read")


def pt_storage_claims_more(folder) -> Case:
    # the pickle claims 10^12 floats of storage "0"; its record holds 24 bytes
    # (mapped loading would hand out whatever follows the record)
    path = torch_zip(Path(folder) / "pt_storage_claims_more.pt",
                     p_dict([("w", p_tensor("0", 10**12, (2, 3), (3, 1)))]), {"0": _F6})
    return _refuse("pt_storage_claims_more", path,
                   r"storage '0' claims 1000000000000 x 4 bytes, its record holds 24")


def _deep_list(n: int) -> bytes:
    return b"]" * n + b"a" * (n - 1)


def pt_deep_list_5000(folder) -> Case:
    path = torch_zip(Path(folder) / "pt_deep_list_5000.pt", _deep_list(5000))
    return _refuse("pt_deep_list_5000", path, "nests containers deeper than 127 levels")


def pt_deep_list_200k(folder) -> Case:
    path = torch_zip(Path(folder) / "pt_deep_list_200k.pt", _deep_list(200_000))
    return _refuse("pt_deep_list_200k", path, "nests containers deeper than 127 levels")


def pt_deep_list_filled_late(folder) -> Case:
    # each list is put into its parent first and filled afterwards (through the
    # memo), so only walking the loaded object sees the depth
    n = 300
    body = b"]q\x02q\x00" + b"".join(      # the root: memo 2 and 0
        b"h" + bytes([i % 2]) + b"]q" + bytes([(i + 1) % 2]) + b"a" for i in range(n))
    body += b"h\x02"       # the root on top of the stack, for STOP (torch has no POP)
    path = torch_zip(Path(folder) / "pt_deep_list_filled_late.pt", body)
    return _refuse("pt_deep_list_filled_late", path,
                   "containers are nested deeper than 127 levels")


def pt_deep_tuple_key(folder) -> Case:
    # {((((...)))): 1} with 10^6 levels: hashing the key overflows the C stack
    n = 10**6
    body = b"}" + b")" + b"\x85" * n + b"K\x01s"
    path = torch_zip(Path(folder) / "pt_deep_tuple_key.pt", body)
    return _refuse("pt_deep_tuple_key", path, "nests containers deeper than 127 levels")


def pt_colliding_keys(folder) -> Case:
    # 20000 int keys that all hash to 0: quadratic to insert into one dict
    m = 2**61 - 1
    body = b"}(" + b"".join(p_int(i * m) + b"K\x00" for i in range(20000)) + b"u"
    path = torch_zip(Path(folder) / "pt_colliding_keys.pt", body)
    return _refuse("pt_colliding_keys", path, "more than 1000 number keys with the same hash")


def pt_self_list(folder) -> Case:
    # [t, <itself>]
    body = b"]q\x00(" + p_tensor("0", 6, (6,), (1,)) + b"h\x00e"
    path = torch_zip(Path(folder) / "pt_self_list.pt", body, {"0": _F6})
    return _refuse("pt_self_list", path, r"contains itself: '1' is '<root>'")


def pt_self_dict(folder) -> Case:
    body = b"}q\x00(" + p_str("w") + p_tensor("0", 6, (6,), (1,)) + p_str("me") + b"h\x00u"
    path = torch_zip(Path(folder) / "pt_self_dict.pt", body, {"0": _F6})
    return _refuse("pt_self_dict", path, r"contains itself: 'me' is '<root>'")


def pt_shared_laughs(folder) -> Case:
    # 60 levels of a list holding the level below twice: 2^60 paths to the
    # tensor at the bottom, 61 lists in the file
    body = b"]q\x00" + p_tensor("0", 6, (6,), (1,)) + b"a"
    for i in range(60):
        # a new list, MARK, the level below twice (from the memo), APPENDS,
        # BINPUT; the lists stay on the stack (torch's unpickler has no POP),
        # STOP returns the last
        body += b"](h" + bytes([i]) + b"h" + bytes([i]) + b"eq" + bytes([i + 1])
    path = torch_zip(Path(folder) / "pt_shared_laughs.pt", body, {"0": _F6})
    return _accept("pt_shared_laughs", path)


def pt_compressed_record(folder) -> Case:
    path = torch_zip(Path(folder) / "pt_compressed_record.pt",
                     p_dict([("w", p_tensor("0", 6, (6,), (1,)))]), {"0": _F6},
                     compress=("data/0",))
    return _refuse("pt_compressed_record", path,
                   "record 'archive/data/0' is compressed; torch writes records stored")


def pt_duplicate_record(folder) -> Case:
    path = torch_zip(Path(folder) / "pt_duplicate_record.pt",
                     p_dict([("w", p_tensor("0", 6, (6,), (1,)))]), {"0": _F6},
                     duplicate="data/0")
    return _refuse("pt_duplicate_record", path,
                   "its archive holds two records named 'archive/data/0'")


def pt_sparse_huge(folder) -> Case:
    import torch

    path = Path(folder) / "pt_sparse_huge.pt"
    s = torch.sparse_coo_tensor(torch.tensor([[0], [0]]), torch.tensor([1.0]), (10**7, 10**7),
                                check_invariants=True)
    torch.save({"s": s, "w": torch.ones(2)}, path)
    return _refuse("pt_sparse_huge", path,
                   r"tensor 's' is refused: a sparse_coo tensor: only dense \(strided\) tensors "
                   r"are read", "read")


def pt_legacy_deep_tuple(folder) -> Case:
    # the legacy (pre-zip) format is five pickles; the first holds the bomb
    path = Path(folder) / "pt_legacy_deep_tuple.pt"
    path.write_bytes(b"\x80\x02}" + b")" + b"\x85" * 300_000 + b"K\x01s.")
    return _refuse("pt_legacy_deep_tuple", path, "nests containers deeper than 127 levels")


def pt_not_a_zip_inside(folder) -> Case:
    path = Path(folder) / "pt_not_a_zip_inside.pt"
    path.write_bytes(b"PK\x03\x04" + bytes(100))
    return _refuse("pt_not_a_zip_inside", path, "not a readable torch checkpoint")


def pt_empty(folder) -> Case:
    path = Path(folder) / "pt_empty.pt"
    path.write_bytes(b"")
    return _refuse("pt_empty", path, "file is empty")


NPY = [npy_valid, npy_python2_long, npy_negative_shape, npy_5000_digit_shape,
       npy_header_length_4gb, npy_header_over_limit, npy_header_truncated, npy_unknown_version,
       npy_65_dims, npy_unaddressable_shape, npy_data_truncated, npy_object_dtype,
       npy_header_not_dict, npy_header_nested, npy_bad_descr, npy_fifo]
NPZ = [npz_valid_stored, npz_valid_deflated, npz_deflated_zeros_48mb, npz_declares_2gb,
       npz_inflates_beyond, npz_inflates_short, npz_corrupt_stream, npz_bad_crc,
       npz_claims_10m_members, npz_encrypted, npz_bzip2, npz_duplicate_member,
       npz_member_header_4gb, npz_member_past_end, npz_member_negative_shape, npz_not_zip]
TORCH = [pt_valid, pt_module_state_dict, pt_handmade_valid, pt_expanded_1e14,
         pt_overlapping_strides, pt_storage_claims_more, pt_deep_list_5000, pt_deep_list_200k,
         pt_deep_list_filled_late, pt_deep_tuple_key, pt_colliding_keys, pt_self_list,
         pt_self_dict, pt_shared_laughs, pt_compressed_record, pt_duplicate_record,
         pt_sparse_huge, pt_legacy_deep_tuple, pt_not_a_zip_inside, pt_empty]

#: Every generator, npy then npz then torch.
ALL = NPY + NPZ + TORCH


def needs_torch(generator) -> bool:
    """Whether a generator's case needs torch (to write it, or to read it)."""
    return generator in TORCH
