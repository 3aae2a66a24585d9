"""Readouts of the GED terms from the pair counts of one block (small (B, K, K) arrays, no pixels).

Per-pair means (``pair_average="mean"``; NaN entries, the ``"skip"`` empty pairs, left out; optional
annotation weights) and pooled ratios (``"pooled"``, as ValUES). The formulas are in
:mod:`ambiseg_metrics.metrics.ged`.
"""

from __future__ import annotations

import numpy as np

from ..core.counts import CountBlock
from ..core.pairwise import empty_pair_value

__all__ = ["block_terms", "terms_from_distance"]


def _distance_matrix(block: CountBlock, distance: str, empty_value: float) -> np.ndarray:
    return 1.0 - block.similarity(distance, empty_value)


def _nanmean_pairs(d: np.ndarray, exclude_diagonal: bool, weights: np.ndarray | None = None) -> np.ndarray:
    """(Weighted) mean over the last two axes ignoring NaN (skipped pairs); NaN where every pair is skipped.

    ``weights`` (B, R, C) are pair weights (None: uniform)."""
    d = d.copy()
    if exclude_diagonal:
        idx = np.arange(d.shape[-1])
        d[:, idx, idx] = np.nan
    valid = ~np.isnan(d)
    w = np.ones(d.shape) if weights is None else np.broadcast_to(weights, d.shape)
    w = np.where(valid, w, 0.0)
    total = np.where(valid, d, 0.0)
    total = (total * w).sum(axis=(1, 2)) if weights is not None else total.sum(axis=(1, 2))
    count = w.sum(axis=(1, 2))
    out = np.full(total.shape, np.nan)
    np.divide(total, count, out=out, where=count > 0)
    return out


def _mean_distance(sim: np.ndarray, exclude_diagonal: bool) -> np.ndarray:
    """Mean of ``1 - sim`` over the last two axes of a (B, a, b) block view holding no NaN.

    The same numbers, summed in the same order, as :func:`_nanmean_pairs` of ``1 - sim`` (a skipped
    pair is never present here), without its masks and copies of the whole matrix."""
    d = 1.0 - sim  # a new C-contiguous (B, a, b) array
    n_pairs = d.shape[1] * d.shape[2]
    if exclude_diagonal:
        idx = np.arange(d.shape[-1])
        d[:, idx, idx] = 0.0
        n_pairs -= d.shape[-1]
    if n_pairs == 0:
        return np.full(d.shape[0], np.nan)
    return d.sum(axis=(1, 2)) / n_pairs


def terms_from_distance(
    d: np.ndarray, n: int, estimator: str, gt_weights: np.ndarray | None = None
) -> np.ndarray:
    """(B, 4) GED terms from distance matrices d (B, K, K), predictions first; NaN entries are skipped.

    With the default empty pair (d(∅, ∅) = 0) no entry is NaN and d(A, A) = 0, so the two estimators
    differ only by the number of pairs they average over (N² or N(N-1)). ``gt_weights`` (B, M): the
    cross term weighs annotation m by w_m, the annotation term the pair (j, k) by w_j w_k (without the
    diagonal for the unbiased estimator, renormalised).
    """
    unbiased = estimator == "unbiased"
    w_cross = w_yy = None
    if gt_weights is not None:
        w_cross = np.repeat(gt_weights[:, None, :], n, axis=1)
        w_yy = gt_weights[:, :, None] * gt_weights[:, None, :]
    cross = _nanmean_pairs(d[:, :n, n:], exclude_diagonal=False, weights=w_cross)
    ss = _nanmean_pairs(d[:, :n, :n], exclude_diagonal=unbiased)
    yy = _nanmean_pairs(d[:, n:, n:], exclude_diagonal=unbiased, weights=w_yy)
    return np.stack([2.0 * cross - ss - yy, cross, ss, yy], axis=1)


def _pooled_terms(block: CountBlock, distance: str, estimator: str, empty: float,
                  gt_weights: np.ndarray | None) -> np.ndarray:
    """(B, 4) GED terms with each term's similarity pooled over its pairs: 1 - Σ num / Σ den (ValUES)."""
    inter = block.inter.astype(np.float64)
    areas = np.diagonal(inter, axis1=1, axis2=2)
    sums = areas[:, :, None] + areas[:, None, :]
    num, den = (inter, sums - inter) if distance == "iou" else (2.0 * inter, sums)
    n = block.n_pred
    unbiased = estimator == "unbiased"

    def term(sl_r, sl_c, w, diag):
        a, b = num[:, sl_r, sl_c], den[:, sl_r, sl_c]
        w = np.ones(a.shape) if w is None else np.broadcast_to(w, a.shape).copy()
        if diag and unbiased:
            idx = np.arange(a.shape[-1])
            w[:, idx, idx] = 0.0
        top, bottom = (a * w).sum(axis=(1, 2)), (b * w).sum(axis=(1, 2))
        sim = np.full(top.shape, empty)
        np.divide(top, bottom, out=sim, where=bottom > 0)
        return 1.0 - sim

    w_cross = w_yy = None
    if gt_weights is not None:
        w_cross = gt_weights[:, None, :]
        w_yy = gt_weights[:, :, None] * gt_weights[:, None, :]
    cross = term(slice(0, n), slice(n, None), w_cross, False)
    ss = term(slice(0, n), slice(0, n), None, True)
    yy = term(slice(n, None), slice(n, None), w_yy, True)
    return np.stack([2.0 * cross - ss - yy, cross, ss, yy], axis=1)


def block_terms(block: CountBlock, estimator: str, distance: str, empty_pair: str,
                 gt_weights: np.ndarray | None = None, pair_average: str = "mean") -> np.ndarray:
    """(B, 4) array of one block's images: ged, cross, sample diversity, annotator diversity."""
    empty = empty_pair_value(empty_pair)
    if pair_average == "pooled":
        return _pooled_terms(block, distance, estimator, empty, gt_weights)
    if empty_pair == "skip" or gt_weights is not None:
        d = _distance_matrix(block, distance, empty)
        return terms_from_distance(d, block.n_pred, estimator, gt_weights)
    # No pair is skipped, no weights: the three means straight from the (shared) similarity matrices.
    sim = block.similarity(distance, empty)
    n, unbiased = block.n_pred, estimator == "unbiased"
    cross = _mean_distance(sim[:, :n, n:], exclude_diagonal=False)
    ss = _mean_distance(sim[:, :n, :n], exclude_diagonal=unbiased)
    yy = _mean_distance(sim[:, n:, n:], exclude_diagonal=unbiased)
    return np.stack([2.0 * cross - ss - yy, cross, ss, yy], axis=1)
