"""Errors that name what is wrong and where, for users rather than developers."""

from __future__ import annotations


class TopoError(Exception):
    """Base class: a problem with the user's input or settings, not a bug."""


class InputFileError(TopoError):
    """An input file that cannot be used; names the file and the problem."""

    def __init__(self, path: str, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path = str(path)
        self.problem = problem


class SettingsError(TopoError):
    """A setting or parameter with a value that cannot work."""
