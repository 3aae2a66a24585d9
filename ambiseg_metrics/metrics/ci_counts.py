"""Collective Insight readouts from the pairwise counts: S_c, D_max, D_a and their combination.

The arithmetic of :mod:`ambiseg_metrics.metrics.collective_insight` (formulas and reference there), on a
:class:`~ambiseg_metrics.PairCounts`; the array entry points live in that module.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..conventions import Conventions, resolve_options
from ..core.counts import CountBlock, PairCounts
from ..options import DEFAULT, choices

__all__ = [
    "CI_OPTIONS",
    "CollectiveInsight",
    "VARIANCES",
    "ci_from_components",
    "collective_insight_from_counts",
    "combined_sensitivity_from_counts",
    "diversity_agreement_from_counts",
    "max_dice_matching_from_counts",
]

VARIANCES = choices("variance")
#: The options the CI functions take.
CI_OPTIONS = ("threshold", "variance")


@dataclass(frozen=True)
class CollectiveInsight:
    """CI score, its true-harmonic-mean variant and its three components.

    Floats for one image; arrays of B values with ``batch=True``.

    Attributes
    ----------
    ci : float or ndarray
        ``3 S_c D_max D_a / (S_c + D_max + D_a)``, the published form (0 when all three are 0).
    ci_harmonic : float or ndarray
        ``3 / (1/S_c + 1/D_max + 1/D_a)``, the true harmonic mean (0 when any component is 0).
    combined_sensitivity : float or ndarray
    max_dice_matching : float or ndarray
    diversity_agreement : float or ndarray
    """

    ci: float | np.ndarray
    ci_harmonic: float | np.ndarray
    combined_sensitivity: float | np.ndarray
    max_dice_matching: float | np.ndarray
    diversity_agreement: float | np.ndarray


# --------------------------------------------------------------------------------------------- readouts
def _sensitivity_block(block: CountBlock) -> np.ndarray:
    covered, annotated = block.union[:, 2], block.union[:, 1]
    out = np.ones(len(block.index))
    np.divide(covered, annotated, out=out, where=annotated > 0)
    return out


def _dmax_block(block: CountBlock) -> np.ndarray:
    n = block.n_pred
    dice = block.similarity("dice")
    return dice[:, n:, :n].max(axis=2).mean(axis=1)


def _pixel_variance(block: CountBlock) -> np.ndarray:
    """``variance="pixel"``: V(A, B) = Var(A - B) over the pixels for every pair of masks, (B, K, K)."""
    areas = block.areas.astype(np.float64)
    p = float(block.n_pixels)
    # A - B takes values in {-1, 0, 1}: E[(A-B)^2] = |A xor B| / P, E[A-B] = (|A| - |B|) / P.
    xor = areas[:, :, None] + areas[:, None, :] - 2.0 * block.inter
    diff = areas[:, :, None] - areas[:, None, :]
    return xor / p - (diff / p) ** 2


def _da_block(block: CountBlock, variance: str) -> np.ndarray:
    n, m = block.n_pred, block.n_gt
    ip, jp = np.triu_indices(n, 1)
    ig, jg = np.triu_indices(m, 1)
    if variance == "dice":  # V = 1 - Dice, on the pairs only (the shared Dice matrix)
        dice = block.similarity("dice")
        v_pred = 1.0 - dice[:, ip, jp]
        v_gt = 1.0 - dice[:, n + ig, n + jg]
    else:
        v = _pixel_variance(block)
        v_pred = v[:, ip, jp]
        v_gt = v[:, n + ig, n + jg]
    dv_max = np.abs(v_gt.max(axis=1) - v_pred.max(axis=1))
    dv_min = np.abs(v_gt.min(axis=1) - v_pred.min(axis=1))
    return 1.0 - (dv_max + dv_min) / 2.0


def ci_from_components(
    s_c: float | np.ndarray, d_max: float | np.ndarray, d_a: float | np.ndarray
) -> tuple[float | np.ndarray, float | np.ndarray]:
    """Combine the three components into (CI as published, true harmonic mean).

    Parameters
    ----------
    s_c, d_max, d_a : float or ndarray
        Components in [0, 1].

    Returns
    -------
    ci : float or ndarray
        ``3 S D A / (S + D + A)``; 0 where ``S + D + A = 0``.
    ci_harmonic : float or ndarray
        ``3 / (1/S + 1/D + 1/A) = 3 S D A / (D A + S A + S D)``; 0 where any component is 0 (the limit).
    """
    s, d, a = (np.asarray(x, dtype=np.float64) for x in (s_c, d_max, d_a))
    num = 3.0 * s * d * a
    total = s + d + a
    pair_sum = d * a + s * a + s * d
    ci = np.divide(num, total, out=np.zeros(np.broadcast(s, d, a).shape), where=total > 0)
    hm = np.divide(num, pair_sum, out=np.zeros_like(ci), where=pair_sum > 0)
    if ci.ndim == 0:
        return float(ci), float(hm)
    return ci, hm


# ------------------------------------------------------------------------------------ from counts
def combined_sensitivity_from_counts(counts: PairCounts) -> float | np.ndarray:
    """S_c from precomputed :func:`~ambiseg_metrics.pair_counts` (see :func:`combined_sensitivity`)."""
    return counts.map(_sensitivity_block)


def max_dice_matching_from_counts(counts: PairCounts) -> float | np.ndarray:
    """D_max from precomputed :func:`~ambiseg_metrics.pair_counts` (see :func:`max_dice_matching`)."""
    return counts.map(_dmax_block)


def collective_insight_from_counts(
    counts: PairCounts, *, variance: str = DEFAULT.variance, conventions: str | Conventions | None = None
) -> CollectiveInsight:
    """CI and its components from precomputed :func:`~ambiseg_metrics.pair_counts`."""
    o = resolve_options(conventions, accepted=CI_OPTIONS[1:], caller="collective_insight_from_counts()",
                        variance=variance)
    counts.check_min_masks("diversity_agreement (and so the CI score)")
    s_c = counts.map(_sensitivity_block)
    d_max = counts.map(_dmax_block)
    d_a = counts.map(lambda block: _da_block(block, o.variance))
    ci, hm = ci_from_components(s_c, d_max, d_a)
    return CollectiveInsight(ci, hm, s_c, d_max, d_a)


def diversity_agreement_from_counts(counts: PairCounts, variance: str) -> float | np.ndarray:
    """D_a from precomputed :func:`~ambiseg_metrics.pair_counts` (``variance`` already checked)."""
    counts.check_min_masks("diversity_agreement")
    return counts.map(lambda block: _da_block(block, variance))
