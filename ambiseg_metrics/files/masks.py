"""How the values stored in a mask file become a mask: label selection, 8-bit probabilities, odd values.

The library's rule (bool/integer: nonzero = foreground; float: probabilities, ``> threshold``) is right for
0/1 and 0/255 masks, but it silently binarises a label map (0/1/2/3), an 8-bit probability image (0..255)
or a mask with a ``-1`` "ignore" value. :func:`interpret` applies the reading options of one file:

* ``label=K``: foreground = ``value == K`` (one class of an integer label map);
* ``grey_probability=True``: 8-bit (``uint8``) images are probabilities ``value / 255`` (then compared
  with the threshold like float masks);
* otherwise an integer file holding more than zero and one foreground value, or negative values, is
  reported (``warn("multivalued", ...)``), or refused under ``strict=True``; an explicitly given threshold
  that cannot apply to an integer mask is reported the same way (kind ``"threshold"``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["ReadOptions", "interpret", "multivalued"]


@dataclass(frozen=True)
class ReadOptions:
    """How mask files are read (the ``--label``, ``--grey-probability`` and ``--strict`` options).

    Attributes
    ----------
    label : int or None
        Foreground = ``value == label`` for integer masks (None: nonzero = foreground).
    grey_probability : bool
        Read ``uint8`` images as probabilities ``value / 255``.
    strict : bool
        Refuse (instead of warning about) multi-valued integer masks and a threshold that cannot apply.
    threshold : float or None
        The threshold the user gave explicitly (None = not given); only used to say when it cannot apply.
    """

    label: int | None = None
    grey_probability: bool = False
    strict: bool = False
    threshold: float | None = None


def _values(a: np.ndarray, limit: int = 6) -> str:
    u = np.unique(a)
    shown = ", ".join(str(v) for v in u[:limit])
    return shown + (f", ... ({u.size} distinct values)" if u.size > limit else "")


def multivalued(a: np.ndarray) -> bool:
    """Whether the integer array ``a`` holds a negative value or more than one nonzero value."""
    if a.dtype.kind == "b" or a.size == 0:
        return False
    high = a.max()
    if a.dtype.kind == "i" and a.min() < 0:
        return True
    # every nonzero value equals the maximum: as many nonzero pixels as pixels at the maximum
    return bool(high > 0 and np.count_nonzero(a) != np.count_nonzero(a == high))


def interpret(a: np.ndarray, read: ReadOptions | None, warn: Callable[[str, str], None] | None,
              where: str) -> np.ndarray:
    """Apply ``read`` to the array ``a`` read from ``where`` (a path, used in messages).

    Raises
    ------
    ValueError
        The option cannot apply to this file (``--label`` on float data, ``--grey-probability`` on
        non-8-bit integers) or, under ``strict``, the file is multi-valued / the threshold cannot apply.
    """
    read = read or ReadOptions()
    kind = a.dtype.kind
    if read.label is not None:
        if kind == "f":
            raise ValueError(f"holds float {a.dtype} data; --label {read.label} selects a class of an "
                             "integer label map")
        return a == read.label
    if read.grey_probability and kind in "iub":
        if a.dtype != np.uint8:
            raise ValueError(f"holds {a.dtype} data; --grey-probability reads 8-bit (uint8) images as "
                             "value/255")
        return a.astype(np.float32) / np.float32(255.0)
    if kind == "f":
        return a
    problems = []
    if multivalued(a):
        problems.append(("multivalued", f"integer mask with values {_values(a)}: read as nonzero = "
                         "foreground; pass --label K for one class of a label map, or --grey-probability "
                         "for 8-bit probability images"))
    if read.threshold is not None and kind != "b":
        problems.append(("threshold", f"--threshold {read.threshold} does not apply to integer {a.dtype} "
                         "masks (nonzero = foreground); pass --grey-probability to threshold 8-bit images "
                         "at value/255"))
    for what, body in problems:
        if read.strict:
            raise ValueError(body + " (refused under --strict)")
        if warn is not None:
            warn(what, f"{where}: {body}")
    return a
