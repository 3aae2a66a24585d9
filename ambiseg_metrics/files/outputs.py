"""Where ``ambiseg-eval`` may write: resolved targets, never onto an input, never two outputs on one file."""

from __future__ import annotations

import os

from .atomic import STDOUT, resolve_target

__all__ = ["OutputPathError", "check_output", "check_outputs"]


class OutputPathError(ValueError):
    """An output path that cannot or must not be written (a usage error: exit code 2)."""


def check_output(path: str | None, flag: str) -> str | None:
    """The file ``path`` writes to (symbolic links followed; ``-`` = stdout), checked to be writable."""
    if path is None:
        return None
    target = resolve_target(path)
    if target == STDOUT:
        return target
    if os.path.isdir(target):
        raise OutputPathError(f"{flag} {path}: is a folder; give a file name")
    if os.path.exists(target) and not os.path.isfile(target):  # a FIFO or device: written in place
        if not os.access(target, os.W_OK):
            raise OutputPathError(f"{flag} {path}: not writable")
        return target
    if os.path.exists(target) and not os.access(target, os.W_OK):
        raise OutputPathError(f"{flag} {path}: the file is not writable")
    parent = os.path.dirname(target)
    if not os.path.isdir(parent):
        raise OutputPathError(f"{flag} {path}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise OutputPathError(f"{flag} {path}: folder {parent} is not writable")
    return target


def _inside(target: str, root: str) -> bool:
    root = os.path.realpath(root)
    return target == root or target.startswith(root.rstrip(os.sep) + os.sep)


def check_outputs(outputs: list[tuple[str, str, str]], roots: list[tuple[str, str]]) -> None:
    """Refuse outputs that land on an input (after symbolic links) or on the same file as another output.

    ``outputs``: (flag, path as given, resolved target); ``roots``: (what, folder).
    """
    for flag, given, target in outputs:
        if target == STDOUT:
            continue
        for what, root in roots:
            if _inside(target, root):
                via = "" if os.path.abspath(given) == target else f" (resolves to {target})"
                raise OutputPathError(f"{flag} {given}{via} lies inside the {what} folder {root}; "
                                      "refusing to write over an input: choose an output path outside it")
    for i, (flag_a, given_a, a) in enumerate(outputs):
        for flag_b, given_b, b in outputs[i + 1:]:
            same = a == b
            if not same and STDOUT not in (a, b) and os.path.exists(a) and os.path.exists(b):
                same = os.path.samefile(a, b)
            if same:
                raise OutputPathError(f"{flag_a} {given_a} and {flag_b} {given_b} are the same file; give "
                                 "different files")
