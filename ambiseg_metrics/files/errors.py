"""Errors of the file layer: a user's file or case that cannot be used (each names the path)."""

from __future__ import annotations

import os

from ..core._validate import InputError

__all__ = ["InputFileError", "UnmatchedCasesError"]


class InputFileError(InputError):
    """A user's file (or case) cannot be used; the message names it.

    An :class:`~ambiseg_metrics.core._validate.InputError` (so a ``ValueError``) whose ``path`` is set.

    Attributes
    ----------
    path : str or None
        The offending file or folder, when there is one.
    """

    def __init__(self, message: str, path: str | os.PathLike | None = None) -> None:
        super().__init__(message, path=None if path is None else str(path))

    def __reduce__(self):  # keep the path when the error crosses a process boundary
        return (type(self), (str(self), self.path))


class UnmatchedCasesError(InputFileError):
    """Some cases have predictions but no annotations, or the reverse (``allow_missing=True`` skips them).

    Attributes
    ----------
    unmatched : str
        Which cases are unmatched, without the advice of how to skip them.
    """

    def __init__(self, unmatched: str) -> None:
        super().__init__(unmatched + " (allow_missing=True skips them)")
        self.unmatched = unmatched

    def __reduce__(self):
        return (type(self), (self.unmatched,))
