"""Annotation weights (``gt_weights=``): checked once, handed to the readouts as one array per image.

A weight w_m is the probability of annotation m in the annotation distribution (Kohl et al.'s Cityscapes
protocol, MoSE's weighted annotations, a known mixture such as AmbiBlobs'). Weights must be finite,
non-negative and sum to 1 per image (checked to 1e-6, then used as given).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .counts import CountBlock, PairCounts

__all__ = ["GT_WEIGHTS_DOC", "block_gt_weights", "check_gt_weights", "is_uniform", "n_gt_per_image"]

#: Parameter text for :func:`~ambiseg_metrics.core.docfill.fill_doc` (a ``{weights}`` marker line).
GT_WEIGHTS_DOC = """gt_weights : array-like, optional
    Probabilities w_1..w_M of the M annotations (finite, >= 0, summing to 1): every expectation over
    annotations becomes a weighted one. With ``batch=True``: one (M,) array shared by every image, a
    (B, M) array, or a sequence of B per-image arrays. None (default): uniform, 1/M each."""


def check_gt_weights(gt_weights: object, n_gts: list[int], batch: bool) -> list[np.ndarray] | None:
    """Per-image float64 weight vectors (``None`` stays ``None``).

    Parameters
    ----------
    gt_weights : array-like or sequence or None
    n_gts : list of int
        M of every image, in input order.
    batch : bool

    Raises
    ------
    ValueError
        Wrong length, negative / non-finite values, or a sum other than 1; the message names the image.
    """
    if gt_weights is None:
        return None
    n_images = len(n_gts)
    if (
        batch
        and isinstance(gt_weights, (list, tuple))
        and len(gt_weights) == n_images
        and all(np.ndim(w) == 1 for w in gt_weights)
    ):
        per = [np.asarray(w, dtype=np.float64) for w in gt_weights]
    else:
        arr = np.asarray(gt_weights, dtype=np.float64)
        if arr.ndim == 1:
            per = [arr] * n_images
        elif batch and arr.ndim == 2 and arr.shape[0] == n_images:
            per = list(arr)
        else:
            raise ValueError(
                f"gt_weights must have shape (M,){' or (B, M)' if batch else ''}; got shape {arr.shape}"
            )
    for i, (w, m) in enumerate(zip(per, n_gts, strict=True)):
        where = f" (image {i})" if batch else ""
        if w.shape != (m,):
            raise ValueError(
                f"gt_weights{where} must hold one weight per annotation, M={m}; got shape {w.shape}"
            )
        if not np.all(np.isfinite(w)) or np.any(w < 0):
            raise ValueError(f"gt_weights{where} must be finite and non-negative; got {w.tolist()}")
        if abs(float(w.sum()) - 1.0) > 1e-6:
            raise ValueError(f"gt_weights{where} must sum to 1; they sum to {float(w.sum())!r}")
    return per


def is_uniform(w: np.ndarray | None) -> bool:
    """True for None or equal weights (the unweighted formulas then apply exactly)."""
    return w is None or bool(np.all(w == w[0]))


def n_gt_per_image(n_images: int, parts: Iterable) -> list[int]:
    """M of every image, in input order, from groups or count blocks (having ``index`` and ``n_gt``)."""
    n_gts = [0] * n_images
    for part in parts:
        for i in part.index:
            n_gts[int(i)] = part.n_gt
    return n_gts


def block_gt_weights(counts: PairCounts, block: CountBlock, gt_weights: object) -> np.ndarray | None:
    """The (B, M) annotation weights of one block's images (None: uniform)."""
    if gt_weights is None:
        return None
    per = check_gt_weights(gt_weights, n_gt_per_image(counts.n_images, counts.blocks), counts.batch)
    return np.stack([per[int(i)] for i in block.index])
