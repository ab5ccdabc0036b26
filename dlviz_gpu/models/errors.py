"""Errors raised while opening checkpoints."""

from __future__ import annotations

import os


class CheckpointError(ValueError):
    """A checkpoint that cannot be read: the message names the file and the problem.

    Attributes
    ----------
    path : str
        The file (or directory) at fault.
    problem : str
        What is wrong with it, without the path.
    """

    def __init__(self, path, problem: str):
        self.path = os.fspath(path) if path is not None else "<memory>"
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class CheckpointNotFound(CheckpointError, FileNotFoundError):
    """The path does not exist (also a ``FileNotFoundError``)."""
