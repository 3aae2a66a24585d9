"""The compiled PNG scanline unfilter behind :mod:`ambiseg_metrics.files.png_plain` (8-bit greyscale).

Imported on first use only (like :mod:`._kernels`, whose cache setting it shares), and only by a process
that has loaded the kernels already: ``import ambiseg_metrics`` does not import numba. Self-contained (it
calls no compiled function of another file), as numba's on-disk cache requires (a cached kernel is keyed
on its own file only; ``tests/test_kernel_cache_deps.py``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._kernels import CACHE as _CACHE

__all__ = ["unfilter_grey8"]


@njit(cache=_CACHE, nogil=True)
def unfilter_grey8(raw: np.ndarray, out: np.ndarray) -> int:  # pragma: no cover - compiled by numba
    """Undo the PNG filters of 8-bit greyscale scanlines (one byte per pixel; PNG specification, 3rd
    edition, section 9 "Filtering").

    ``raw`` is the inflated image data, shape ``(H, W + 1)`` uint8: each row a filter-type byte, then the
    W filtered bytes. ``out`` (``(H, W)`` uint8) receives the pixels. With ``a`` the reconstructed byte to
    the left, ``b`` the one above and ``c`` the one above-left (0 outside the image), filter type 0 keeps
    the byte, 1 (Sub) adds ``a``, 2 (Up) ``b``, 3 (Average) ``floor((a + b) / 2)``, 4 (Paeth) the one of
    ``a``, ``b``, ``c`` closest to ``a + b - c`` (ties in that order); all modulo 256.

    Returns -1, or the first row whose filter type is none of these (``out`` then holds garbage).
    """
    h, w = out.shape
    for y in range(h):
        kind = raw[y, 0]
        if kind > 4:
            return y
        for x in range(w):
            v = np.int64(raw[y, x + 1])
            a = np.int64(out[y, x - 1]) if x > 0 else np.int64(0)
            b = np.int64(out[y - 1, x]) if y > 0 else np.int64(0)
            if kind == 1:
                v += a
            elif kind == 2:
                v += b
            elif kind == 3:
                v += (a + b) >> 1
            elif kind == 4:
                c = np.int64(out[y - 1, x - 1]) if x > 0 and y > 0 else np.int64(0)
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                if pa <= pb and pa <= pc:
                    v += a
                elif pb <= pc:
                    v += b
                else:
                    v += c
            out[y, x] = v & 255
    return -1
