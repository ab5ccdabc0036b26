"""Errors raised while opening checkpoints."""

from __future__ import annotations

import os

# control characters (C0, DEL, C1) and the Unicode line and paragraph
# separators, written as escapes: a message is one line whatever a path holds
_ESCAPES = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))}
_ESCAPES.update({0x2028: "\\u2028", 0x2029: "\\u2029"})


def one_line(text: str) -> str:
    """``text`` with control characters and line separators escaped (``\\n`` -> ``\\x0a``)."""
    return text.translate(_ESCAPES)


class CheckpointError(ValueError):
    """A checkpoint that cannot be read: the message names the file and the problem.

    The message is one line, ``PATH: problem``: control characters and line
    separators in either are escaped (``\\x0a``), so a hostile file name or
    tensor name cannot break it or reach a terminal raw.

    Attributes
    ----------
    path : str
        The file (or directory) at fault, as given.
    problem : str
        What is wrong with it, without the path.
    """

    def __init__(self, path, problem: str):
        self.path = os.fspath(path) if path is not None else "<memory>"
        self.problem = problem
        super().__init__(one_line(f"{self.path}: {problem}"))

    def __reduce__(self):
        # the default (the class called with the message alone) cannot rebuild it
        return type(self), (self.path, self.problem)


class CheckpointNotFound(CheckpointError, FileNotFoundError):
    """The path does not exist (also a ``FileNotFoundError``)."""
