"""The rules every checkpoint reader follows when it opens a file.

Three functions, shared by the safetensors, npy/npz and torch readers:

:func:`open_regular`
    Open a file for reading, refusing anything that is not a regular file
    (a FIFO, a socket, a device, a directory) *without blocking*: the file is
    opened with ``O_NONBLOCK``, so opening a FIFO that nobody writes to
    returns at once; its type is then read from the open descriptor
    (``fstat``, so a path swapped between the check and the open cannot slip
    through) and, for a regular file, ``O_NONBLOCK`` is cleared again.
:func:`check_regular`
    The same refusal for callers that only need the size (``stat`` never
    blocks, whatever the file is).
:func:`resolve_inside`
    Where a file named by an index (a shard of a sharded set) really lives,
    refusing names that leave the index's folder: absolute paths, ``..``
    components, and symlinks whose target lies outside.  A Hugging Face hub
    cache snapshot (``.../models--ORG--NAME/snapshots/REV/``), whose files are
    symlinks into ``.../models--ORG--NAME/blobs/``, may point anywhere inside
    its repository's cache folder.  Every refused name gets the same text,
    decided before anything about the target is looked up, so the error never
    tells whether a path outside exists.

All refusals are :class:`~dlviz_gpu.checkpoints.errors.CheckpointError` (one
line, ``PATH: problem``); a missing file is
:class:`~dlviz_gpu.checkpoints.errors.CheckpointNotFound`.
"""

from __future__ import annotations

import errno
import os
import stat

from .errors import CheckpointError, CheckpointNotFound

__all__ = ["open_regular", "check_regular", "resolve_inside", "file_type"]

# O_NONBLOCK and fcntl are POSIX; where they are missing (Windows) FIFOs do not
# exist under ordinary paths either, so a plain open is enough.
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_OPEN_FLAGS = (os.O_RDONLY | _O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
               | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0))


def file_type(mode: int) -> str:
    """What a ``st_mode`` describes, as a noun phrase: ``"a FIFO"``, ``"a directory"``, ..."""
    for test, name in ((stat.S_ISREG, "a regular file"), (stat.S_ISDIR, "a directory"),
                       (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISLNK, "a symbolic link")):
        if test(mode):
            return name
    return "not a file"


def _refuse(path: str, mode: int):
    return CheckpointError(path, f"is not a regular file ({file_type(mode)})")


def _os_error(path: str, e: OSError) -> CheckpointError:
    if e.errno == errno.ENOENT:
        return CheckpointNotFound(path, "no such file")
    reason = e.strerror or type(e).__name__
    return CheckpointError(path, f"cannot be opened: {reason[0].lower() + reason[1:]}")


def _fspath(path) -> str:
    try:
        return os.fspath(path)
    except TypeError:
        raise TypeError(f"path: expected a str or os.PathLike; got "
                        f"{type(path).__name__}") from None


def check_regular(path) -> os.stat_result:
    """``os.stat(path)`` (following symlinks), refusing anything but a regular file.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    os.stat_result

    Raises
    ------
    CheckpointNotFound
        ``path`` does not exist (or is a dangling symlink).
    CheckpointError
        ``path`` is a FIFO, socket, device or directory ("is not a regular
        file (a FIFO)"), or cannot be stat'ed.
    """
    path = _fspath(path)
    try:
        st = os.stat(path)
    except OSError as e:
        raise _os_error(path, e) from None
    if not stat.S_ISREG(st.st_mode):
        raise _refuse(path, st.st_mode)
    return st


def open_regular(path):
    """Open ``path`` for binary reading if it is a regular file, never blocking.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    io.BufferedReader
        An ordinary ``"rb"`` file object (blocking reads, closes its
        descriptor on ``close``); use it in a ``with`` block.

    Raises
    ------
    CheckpointNotFound
        ``path`` does not exist.
    CheckpointError
        ``path`` is a FIFO, socket, device or directory, or cannot be opened
        (permission denied, ...).

    Examples
    --------
    >>> with open_regular("model.safetensors") as f:
    ...     size = os.fstat(f.fileno()).st_size
    """
    path = _fspath(path)
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as e:
        # opening a socket fails (ENXIO); say what it is rather than the errno
        try:
            mode = os.stat(path).st_mode
        except OSError:
            mode = None
        if mode is not None and not stat.S_ISREG(mode):
            raise _refuse(path, mode) from None
        raise _os_error(path, e) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _refuse(path, st.st_mode)
        if _O_NONBLOCK:
            import fcntl

            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~_O_NONBLOCK)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _hub_repo_folder(folder_real: str, folder_given: str) -> str | None:
    """The ``models--ORG--NAME`` folder when ``folder`` is a hub cache snapshot, else None.

    A snapshot folder is ``<repo>/snapshots/<revision>`` where ``<repo>`` is
    named ``models--*`` (or ``datasets--*`` / ``spaces--*``) and holds a
    ``blobs`` folder.  Both the real path and the path as given are tried, in
    case the cache itself sits behind a symlink.
    """
    for folder in (folder_real, folder_given):
        rev_parent = os.path.dirname(folder)
        repo = os.path.dirname(rev_parent)
        if (os.path.basename(rev_parent) == "snapshots"
                and os.path.basename(repo).startswith(("models--", "datasets--", "spaces--"))
                and os.path.isdir(os.path.join(repo, "blobs"))):
            return os.path.realpath(repo)
    return None


def _within(child: str, parent: str) -> bool:
    return child == parent or child.startswith(parent.rstrip(os.sep) + os.sep)


def resolve_inside(index_path, entry: str) -> str:
    """The real path of a file an index names, refusing names that leave its folder.

    Parameters
    ----------
    index_path : str or os.PathLike
        The index file; ``entry`` is relative to its folder.
    entry : str
        The name as written in the index (``"model-00001-of-00002.safetensors"``).

    Returns
    -------
    str
        The entry's real path (symlinks resolved).  It is not checked to
        exist: open it with :func:`open_regular`.

    Raises
    ------
    CheckpointError
        ``"shard 'ENTRY' is outside the index's folder"``, the same text for
        an absolute path, a ``..`` component, a NUL byte, or a symlink whose
        real path lies outside the index's real folder (or, for a hub cache
        snapshot, outside its ``models--ORG--NAME`` folder).  The lexical
        checks come before anything is looked up on disk.
    """
    index_path = _fspath(index_path)
    refused = CheckpointError(index_path, f"shard {entry!r} is outside the index's folder")
    if (not isinstance(entry, str) or not entry or "\0" in entry or os.path.isabs(entry)
            or entry.startswith(("/", "\\")) or os.path.splitdrive(entry)[0]):
        raise refused
    parts = entry.replace("\\", "/").split("/")
    if ".." in parts:
        raise refused
    given = os.path.dirname(os.path.abspath(index_path))
    folder = os.path.realpath(given)
    try:
        real = os.path.realpath(os.path.join(folder, entry))
    except (OSError, ValueError):
        raise refused from None
    if _within(real, folder):
        return real
    repo = _hub_repo_folder(folder, given)
    if repo is not None and _within(real, repo):
        return real
    raise refused
