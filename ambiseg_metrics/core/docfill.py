"""Shared docstring text without templating traps: a line holding only ``{name}`` is replaced, nothing else.

Docstrings of this package are written out, formulas included (``\\mathbb{E}`` needs no doubled braces);
where several functions share a block (the input rules, the option list), the docstring has a line that
holds only ``{inputs}`` (any indentation) and :func:`fill_doc` puts the block there, indented like the
marker line. Braces anywhere else are left alone, and a marker that is not filled (or a part that has
no marker) is an error at import time, so a typo cannot ship a docstring with a hole.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TypeVar

__all__ = ["fill_doc"]

F = TypeVar("F", bound=Callable)

_MARKER = re.compile(r"^(?P<indent>[ \t]*)\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)\}[ \t]*$", re.MULTILINE)


def fill_doc(**parts: str) -> Callable[[F], F]:
    """Decorator: replace every line that is exactly ``{name}`` in the docstring by ``parts[name]``.

    The first line of a part goes where the marker was; its other lines keep their own indentation
    relative to the part's first line and are shifted by the marker's indentation.

    Raises
    ------
    KeyError
        A marker line names no part.
    ValueError
        A part is given whose marker the docstring does not have.
    """

    def decorate(func: F) -> F:
        doc = func.__doc__ or ""
        used: set[str] = set()

        def put(match: re.Match) -> str:
            name, indent = match.group("name"), match.group("indent")
            if name not in parts:
                raise KeyError(f"{func.__qualname__}: docstring marker {{{name}}} has no text to fill it")
            used.add(name)
            lines = parts[name].splitlines()
            rest = (indent + line if line.strip() else "" for line in lines[1:])
            return "\n".join([indent + lines[0], *rest])

        func.__doc__ = _MARKER.sub(put, doc)
        unused = sorted(set(parts) - used)
        if unused:
            raise ValueError(f"{func.__qualname__}: its docstring has no marker line for {unused}")
        return func

    return decorate
