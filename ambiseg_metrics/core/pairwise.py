"""Gram counts -> Dice / IoU matrices, with the empty-mask convention.

For masks A and B,

.. math::

    \\mathrm{Dice}(A, B) = \\frac{2|A \\cap B|}{|A| + |B|}, \\qquad
    \\mathrm{IoU}(A, B) = \\frac{|A \\cap B|}{|A \\cup B|},

and when both masks are empty the ratio is 0/0: this library then uses ``empty_value`` (default 1.0,
"both empty = perfect agreement", the convention of PHiSeg (Baumgartner et al., 2019), of the CIMD
derivatives and of most published code). One empty and one non-empty mask give 0.

This module is the only place that computes a Dice or an IoU, and :data:`EMPTY_PAIR_VALUES` the only
place that maps the ``empty_pair`` / ``class_absent`` choices to a value.
"""

from __future__ import annotations

import math

import numpy as np

from . import _kernel_load

__all__ = [
    "EMPTY_PAIR_VALUES",
    "cross_similarity",
    "dice_from_counts",
    "dice_of_masks",
    "empty_pair_value",
    "iou_from_counts",
    "similarity_from_counts",
]

#: Similarity (IoU/Dice) of two empty masks for each ``empty_pair`` (and ``class_absent``) choice:
#: ``"one"`` = perfect agreement, ``"zero"`` = none, ``"skip"`` = NaN (the pair is left out of its mean).
EMPTY_PAIR_VALUES: dict[str, float] = {"one": 1.0, "zero": 0.0, "skip": math.nan}


def empty_pair_value(choice: str) -> float:
    """The value of :data:`EMPTY_PAIR_VALUES` for ``choice`` (``"one"``, ``"zero"`` or ``"skip"``)."""
    try:
        return EMPTY_PAIR_VALUES[choice]
    except (KeyError, TypeError):
        raise ValueError(
            f"empty_pair must be one of {', '.join(map(repr, EMPTY_PAIR_VALUES))}; got {choice!r}"
        ) from None


def _sums(inter: np.ndarray) -> np.ndarray:
    areas = np.diagonal(inter, axis1=-2, axis2=-1)
    return areas[..., :, None] + areas[..., None, :]


def dice_from_counts(inter: np.ndarray, empty_value: float = 1.0) -> np.ndarray:
    """Dice matrix from intersection counts.

    Parameters
    ----------
    inter : ndarray of int, shape (..., K, K)
        Pairwise intersection counts (diagonal = areas).
    empty_value : float, default 1.0
        Dice of two empty masks.

    Returns
    -------
    ndarray of float64, shape (..., K, K)
        ``2 |A∩B| / (|A| + |B|)``; ``empty_value`` where both masks are empty.
    """
    sums = _sums(inter)
    out = np.full(inter.shape, float(empty_value))
    np.divide(2.0 * inter, sums, out=out, where=sums > 0)
    return out


def iou_from_counts(inter: np.ndarray, empty_value: float = 1.0) -> np.ndarray:
    """IoU (Jaccard) matrix from intersection counts.

    Parameters
    ----------
    inter : ndarray of int, shape (..., K, K)
        Pairwise intersection counts (diagonal = areas).
    empty_value : float, default 1.0
        IoU of two empty masks.

    Returns
    -------
    ndarray of float64, shape (..., K, K)
        ``|A∩B| / |A∪B|`` with ``|A∪B| = |A| + |B| - |A∩B|``; ``empty_value`` where both are empty.
    """
    unions = _sums(inter) - inter
    out = np.full(inter.shape, float(empty_value))
    np.divide(inter, unions, out=out, where=unions > 0)
    return out


#: From this many pairs on (B·K² of a batch) the matrices are computed by one compiled pass (no
#: temporaries); smaller ones by numpy (no compiled code to load). Both give the same bits.
_KERNEL_PAIRS = 1 << 15
#: Up to this many pairs, numpy while the kernels are not loaded (:mod:`._kernel_load`).
_COLD_NUMPY_PAIRS = 1 << 21


def similarity_from_counts(inter: np.ndarray, kind: str, empty_value: float = 1.0) -> np.ndarray:
    """:func:`iou_from_counts` (``kind="iou"``) or :func:`dice_from_counts` (``kind="dice"``)."""
    numpy_fn = iou_from_counts if kind == "iou" else dice_from_counts
    if inter.ndim == 3 and inter.size >= _KERNEL_PAIRS:
        if _kernel_load.numpy_while_unloaded(inter.size < _COLD_NUMPY_PAIRS):
            with _kernel_load.charged():
                return numpy_fn(inter, empty_value)
        from . import _kernels

        return _kernels.similarity_matrices(inter, kind == "dice", empty_value)
    return numpy_fn(inter, empty_value)


def cross_similarity(inter: np.ndarray, n: int, kind: str, empty_value: float = 1.0) -> np.ndarray:
    """The (..., N, M) block ``[:n, n:]`` of :func:`similarity_from_counts`, computed alone.

    Parameters
    ----------
    inter : ndarray of int, shape (..., K, K)
        Pairwise intersection counts, predictions first (rows/columns ``0..n-1``).
    n : int
        Number of predictions N; the remaining ``K - n`` masks are the annotations.
    kind : {"iou", "dice"}
    empty_value : float, default 1.0
        Similarity of two empty masks.

    Returns
    -------
    ndarray of float64, shape (..., N, K - N)
        Similarity of prediction i with annotation j, with the same formulas (and the same floating-point
        operations) as the full matrix.
    """
    areas = np.diagonal(inter, axis1=-2, axis2=-1)
    cross = inter[..., :n, n:]
    sums = areas[..., :n, None] + areas[..., None, n:]
    out = np.full(cross.shape, float(empty_value))
    if kind == "iou":
        np.divide(cross, sums - cross, out=out, where=sums > 0)
    else:
        np.divide(2.0 * cross, sums, out=out, where=sums > 0)
    return out


def dice_of_masks(a: np.ndarray, b: np.ndarray, empty_value: float = 1.0) -> float:
    """Dice of two boolean masks of the same shape (``empty_value`` when both are empty)."""
    both = int(np.count_nonzero(a & b))
    inter = np.array([[int(np.count_nonzero(a)), both], [both, int(np.count_nonzero(b))]])
    return float(dice_from_counts(inter, empty_value)[0, 1])
