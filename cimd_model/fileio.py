"""Small file helpers shared by training, sampling and the Table 1 pipeline (no torch import).

Every writer goes through the package's one atomic writer, :func:`ambiseg_metrics.files.atomic.atomic_write`
(temporary file in the target folder, fsync, rename; a link is followed, a file keeps its mode), so a reader
never sees a half-written file.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from ambiseg_metrics.files.atomic import atomic_write

__all__ = ["save_npy", "write_json", "write_text"]


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Indented, key-sorted JSON, written atomically."""
    atomic_write(path, json.dumps(obj, indent=2, sort_keys=True) + "\n", mkdir=True)


def write_text(path: str | os.PathLike, text: str) -> None:
    """UTF-8 text, written atomically."""
    atomic_write(path, text, mkdir=True)


def save_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    """``np.save`` atomically (no pickles)."""
    atomic_write(path, lambda fh: np.save(fh, array, allow_pickle=False), mkdir=True)
