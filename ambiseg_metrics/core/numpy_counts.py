"""Pairwise counts with numpy (a BLAS product of the 0/1 masks): no compiled code to load.

:func:`~.counts.count_group` takes this path for small groups, and for mid-sized ones while the compiled
kernels are not loaded (:mod:`._kernel_load`); it gives the same counts as the kernels, and the same
errors for NaN / out-of-[0, 1] floats (tests/test_small_path.py).
"""

from __future__ import annotations

import numpy as np

from ._validate import ImageGroup, raise_bad_values

__all__ = ["count_with_numpy"]

#: float32 bytes of the masks converted at a time (a block of images; one image if that is larger)
_NUMPY_BLOCK_BYTES = 8 << 20


def _binary_rows(name: str, chunks: list[np.ndarray], threshold: float, index: np.ndarray,
                 batch: bool) -> np.ndarray:
    """The chunks (b, R, *spatial) as one (B_g, R, P) bool array, floats validated as by the kernels
    (``> threshold`` in the array's precision; NaN / out-of-[0, 1] raise, naming the first one)."""
    parts = []
    row = 0
    for chunk in chunks:
        b, r = chunk.shape[:2]
        src = chunk.reshape(b, r, -1)  # a copy only for a non-contiguous (small) chunk
        if src.dtype.kind == "f":
            invalid = ~((src >= 0) & (src <= 1))  # NaN compares False: invalid
            if invalid.any():
                bad = np.where(invalid.any(axis=2), invalid.argmax(axis=2) + 1, 0)
                raise_bad_values(name, src, bad, index[row : row + b] if batch else None)
            parts.append(src > src.dtype.type(threshold))
        else:
            parts.append(src != 0)
        row += b
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def count_with_numpy(group: ImageGroup, threshold: float, batch: bool) -> tuple[np.ndarray, np.ndarray]:
    """The ``inter`` (B, K, K) and ``union`` (B, 3) counts of :func:`~.counts.count_group`, with numpy:
    ``inter = X Xᵀ`` of the 0/1 masks in float32, exact as long as P < 2**24 (every partial sum is then
    an integer below 2**24; the callers keep P < 2**22)."""
    p = _binary_rows("preds", group.preds, threshold, group.index, batch)
    g = _binary_rows("gts", group.gts, threshold, group.index, batch)
    n_images, k = p.shape[0], p.shape[1] + g.shape[1]
    inter = np.empty((n_images, k, k), dtype=np.int64)
    step = max(1, _NUMPY_BLOCK_BYTES // (4 * k * max(1, p.shape[2])))
    for b0 in range(0, n_images, step):
        x = np.concatenate([p[b0 : b0 + step], g[b0 : b0 + step]], axis=1).astype(np.float32)
        inter[b0 : b0 + step] = x @ x.transpose(0, 2, 1)
    up, ug = p.any(axis=1), g.any(axis=1)
    union = np.stack([up.sum(axis=1), ug.sum(axis=1), (up & ug).sum(axis=1)], axis=1).astype(np.int64)
    return inter, union
