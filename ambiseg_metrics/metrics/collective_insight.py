"""The Collective Insight (CI) score and its three components (Rahman et al., CVPR 2023).

For one image with predictions P_1..P_N and annotations Y_1..Y_M:

* combined sensitivity :math:`S_c = |\\cup P \\cap \\cup Y| / |\\cup Y|`;
* maximum Dice matching :math:`D_{max} = \\frac{1}{M}\\sum_i \\max_j \\mathrm{Dice}(P_j, Y_i)`;
* diversity agreement :math:`D_a = 1 - (\\Delta V_{max} + \\Delta V_{min}) / 2` with
  :math:`\\Delta V_{max} = |\\max V_Y - \\max V_P|`, :math:`\\Delta V_{min} = |\\min V_Y - \\min V_P|`, where
  :math:`V_Y` (:math:`V_P`) are the pairwise "variances" V(A, B) of the annotations (predictions);
* :math:`CI = 3 S_c D_{max} D_a / (S_c + D_{max} + D_a)` as published and computed by the CIMD
  derivatives. It is *not* the harmonic mean (equal components x give x², not x), so the true harmonic
  mean :math:`3 / (1/S_c + 1/D_{max} + 1/D_a)` is reported beside it as ``ci_harmonic``.

Reference: A. Rahman, J. M. J. Valanarasu, I. Hacihaliloglu, V. M. Patel, "Ambiguous Medical Image
Segmentation using Diffusion Models", CVPR 2023.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core._validate import INPUT_RULES_DOC, check_choice
from ..core.counts import CountBlock, PairCounts, pair_counts

__all__ = [
    "CollectiveInsight",
    "VARIANCES",
    "ci_from_components",
    "ci_score",
    "collective_insight",
    "collective_insight_from_counts",
    "combined_sensitivity",
    "diversity_agreement",
    "max_dice_matching",
]

VARIANCES = ("dice", "pixel")


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


def _pair_variance(block: CountBlock, variance: str) -> np.ndarray:
    """V(A, B) for every pair of masks, shape (B, K, K)."""
    if variance == "dice":
        return 1.0 - block.similarity("dice")
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
        v = _pair_variance(block, variance)
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
def collective_insight_from_counts(counts: PairCounts, *, variance: str = "dice") -> CollectiveInsight:
    """CI and its components from precomputed :func:`~ambiseg_metrics.pair_counts`."""
    check_choice("variance", variance, VARIANCES)
    counts.check_min_masks("diversity_agreement (and so the CI score)")
    s_c = counts.map(_sensitivity_block)
    d_max = counts.map(_dmax_block)
    d_a = counts.map(lambda block: _da_block(block, variance))
    ci, hm = ci_from_components(s_c, d_max, d_a)
    return CollectiveInsight(ci, hm, s_c, d_max, d_a)


# ------------------------------------------------------------------------------------ public API
def combined_sensitivity(
    preds: object, gts: object, *, batch: bool = False, threshold: float = 0.5
) -> float | np.ndarray:
    """Combined sensitivity S_c: how much of the annotators' union the predictions' union covers.

    .. math::

        S_c = \\frac{{TP}}{{TP + FN}} = \\frac{{|\\cup_j P_j \\cap \\cup_i Y_i|}}{{|\\cup_i Y_i|}}

    Parameters
    ----------
    {inputs}

    Returns
    -------
    float or ndarray
        S_c in [0, 1]; B values with ``batch=True``.

    Notes
    -----
    When the annotations' union is empty there is nothing to detect and sensitivity is vacuous: S_c = 1,
    whether or not the predictions are empty (false positives are not penalised by a sensitivity;
    D_max and D_a are the components that see them).

    References
    ----------
    Rahman et al., "Ambiguous Medical Image Segmentation using Diffusion Models", CVPR 2023.

    Examples
    --------
    >>> import numpy as np
    >>> from ambiseg_metrics import combined_sensitivity
    >>> y = np.zeros((2, 1, 4), bool); y[0, 0, :2] = True; y[1, 0, 2:] = True  # union: 4 pixels
    >>> p = np.zeros((2, 1, 4), bool); p[0, 0, :3] = True                      # covers 3 of them
    >>> combined_sensitivity(p, y)
    0.75
    """
    return pair_counts(preds, gts, batch=batch, threshold=threshold).map(_sensitivity_block)


def max_dice_matching(
    preds: object, gts: object, *, batch: bool = False, threshold: float = 0.5
) -> float | np.ndarray:
    """Maximum Dice matching D_max: each annotation's best Dice with any prediction, averaged.

    .. math::

        D_{{max}} = \\frac{{1}}{{M}} \\sum_{{i=1}}^{{M}} \\max_{{j=1..N}} \\mathrm{{Dice}}(P_j, Y_i)

    Parameters
    ----------
    {inputs}

    Returns
    -------
    float or ndarray
        D_max in [0, 1]; B values with ``batch=True``.

    Notes
    -----
    Dice(∅, ∅) = 1 and Dice(∅, A) = 0 for non-empty A, so an empty annotation is matched perfectly by an
    empty prediction. Defined for any N, M >= 1.

    References
    ----------
    Rahman et al., CVPR 2023.

    Examples
    --------
    >>> import numpy as np
    >>> from ambiseg_metrics import max_dice_matching
    >>> y = np.array([[[1, 1, 0, 0]], [[0, 0, 0, 0]]], bool)     # a 2-pixel mask and an empty one
    >>> p = np.array([[[1, 0, 0, 0]], [[0, 0, 0, 0]]], bool)     # Dice(p0, y0) = 2/3, Dice(p1, y1) = 1
    >>> round(max_dice_matching(p, y), 6)                        # (2/3 + 1) / 2
    0.833333
    """
    return pair_counts(preds, gts, batch=batch, threshold=threshold).map(_dmax_block)


def diversity_agreement(
    preds: object,
    gts: object,
    *,
    batch: bool = False,
    threshold: float = 0.5,
    variance: str = "dice",
) -> float | np.ndarray:
    """Diversity agreement D_a: do the predictions spread as much (and as little) as the annotators?

    .. math::

        D_a = 1 - \\frac{{\\Delta V_{{max}} + \\Delta V_{{min}}}}{{2}}, \\quad
        \\Delta V_{{max}} = |\\max V_Y - \\max V_P|, \\quad \\Delta V_{{min}} = |\\min V_Y - \\min V_P|

    where V_Y (V_P) holds V(A, B) over all pairs i < j of annotations (predictions).

    Parameters
    ----------
    {inputs}
    variance : {{"dice", "pixel"}}, default "dice"
        The paper calls V the "variance between two masks" without defining it. ``"dice"``:
        V(A, B) = 1 - Dice(A, B) (the reading of the CIMD derivatives). ``"pixel"``: the variance over the
        P pixels of the difference image A - B, ``|A xor B|/P - ((|A| - |B|)/P)^2``, the other reading
        seen in published code. Both lie in [0, 1], so D_a does too.

    Returns
    -------
    float or ndarray
        D_a in [0, 1]; B values with ``batch=True``.

    Raises
    ------
    ValueError
        If N < 2 or M < 2 (no pairs to compare).

    References
    ----------
    Rahman et al., CVPR 2023.

    Examples
    --------
    >>> import numpy as np
    >>> from ambiseg_metrics import diversity_agreement
    >>> y = np.array([[[1, 1, 0, 0]], [[1, 1, 1, 1]]], bool)   # V_Y = {{1 - 2*2/6}} = {{1/3}}
    >>> p = np.array([[[1, 1, 0, 0]], [[1, 1, 0, 0]]], bool)   # V_P = {{0}}
    >>> round(diversity_agreement(p, y), 6)                   # 1 - (1/3 + 1/3) / 2
    0.666667
    """
    check_choice("variance", variance, VARIANCES)
    counts = pair_counts(preds, gts, batch=batch, threshold=threshold)
    counts.check_min_masks("diversity_agreement")
    return counts.map(lambda block: _da_block(block, variance))


def collective_insight(
    preds: object,
    gts: object,
    *,
    batch: bool = False,
    threshold: float = 0.5,
    variance: str = "dice",
) -> CollectiveInsight:
    """CI score (paper form and true harmonic mean) with its three components, from one pass.

    Parameters
    ----------
    {inputs}
    variance : {{"dice", "pixel"}}, default "dice"
        Reading of the pairwise variance in D_a (see :func:`diversity_agreement`).

    Returns
    -------
    CollectiveInsight
        ``ci``, ``ci_harmonic``, ``combined_sensitivity``, ``max_dice_matching``,
        ``diversity_agreement``.

    Raises
    ------
    ValueError
        If N < 2 or M < 2 (D_a is undefined).

    Notes
    -----
    ``ci = 3 S_c D_max D_a / (S_c + D_max + D_a)`` is what the paper and its derivatives compute and call
    a harmonic mean; it equals x² (not x) when all three are x. ``ci_harmonic = 3 / (1/S_c + 1/D_max +
    1/D_a)`` is the true harmonic mean. Both are 0 (not NaN) when all components are 0; ``ci_harmonic``
    is 0 whenever one component is 0 (its limit).

    References
    ----------
    Rahman et al., CVPR 2023.
    """
    counts = pair_counts(preds, gts, batch=batch, threshold=threshold)
    return collective_insight_from_counts(counts, variance=variance)


def ci_score(
    preds: object,
    gts: object,
    *,
    batch: bool = False,
    threshold: float = 0.5,
    variance: str = "dice",
) -> float | np.ndarray:
    """Collective Insight score as published: ``3 S_c D_max D_a / (S_c + D_max + D_a)`` (higher is better).

    Parameters
    ----------
    {inputs}
    variance : {{"dice", "pixel"}}, default "dice"
        Reading of the pairwise variance in D_a (see :func:`diversity_agreement`).

    Returns
    -------
    float or ndarray
        CI in [0, 1]; B values with ``batch=True``. See :func:`collective_insight` for the true harmonic
        mean and the components.

    Raises
    ------
    ValueError
        If N < 2 or M < 2 (D_a is undefined).

    References
    ----------
    Rahman et al., CVPR 2023.

    Examples
    --------
    >>> import numpy as np
    >>> from ambiseg_metrics import ci_score
    >>> masks = np.zeros((2, 4, 4), bool); masks[0, :2] = True; masks[1, 1:3] = True
    >>> ci_score(masks, masks)   # identical sets: S_c = D_max = D_a = 1
    1.0
    """
    return collective_insight(preds, gts, batch=batch, threshold=threshold, variance=variance).ci


for _f in (combined_sensitivity, max_dice_matching, diversity_agreement, collective_insight, ci_score):
    _f.__doc__ = _f.__doc__.replace("{inputs}", INPUT_RULES_DOC).replace("{{", "{").replace("}}", "}")
