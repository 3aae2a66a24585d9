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

import numpy as np

from ..conventions import Conventions, resolve_options
from ..core._validate import INPUT_RULES_DOC
from ..core.counts import pair_counts
from ..core.docfill import fill_doc
from ..options import CONVENTIONS_DOC, DEFAULT
from .ci_counts import (
    CI_OPTIONS,
    VARIANCES,
    CollectiveInsight,
    ci_from_components,
    collective_insight_from_counts,
    combined_sensitivity_from_counts,
    diversity_agreement_from_counts,
    max_dice_matching_from_counts,
)

__all__ = [
    "CollectiveInsight",
    "VARIANCES",
    "ci_from_components",
    "ci_score",
    "collective_insight",
    "collective_insight_from_counts",
    "combined_sensitivity",
    "combined_sensitivity_from_counts",
    "diversity_agreement",
    "max_dice_matching",
    "max_dice_matching_from_counts",
]

# ------------------------------------------------------------------------------------ public API
@fill_doc(inputs=INPUT_RULES_DOC, conventions=CONVENTIONS_DOC)
def combined_sensitivity(
    preds: object,
    gts: object,
    *,
    batch: bool = False,
    threshold: float = DEFAULT.threshold,
    conventions: str | Conventions | None = None,
) -> float | np.ndarray:
    """Combined sensitivity S_c: how much of the annotators' union the predictions' union covers.

    .. math::

        S_c = \\frac{TP}{TP + FN} = \\frac{|\\cup_j P_j \\cap \\cup_i Y_i|}{|\\cup_i Y_i|}

    Parameters
    ----------
    {inputs}
    {conventions}

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
    o = resolve_options(conventions, accepted=CI_OPTIONS[:1], caller="combined_sensitivity()",
                        threshold=threshold)
    return combined_sensitivity_from_counts(pair_counts(preds, gts, batch=batch, threshold=o.threshold))


@fill_doc(inputs=INPUT_RULES_DOC, conventions=CONVENTIONS_DOC)
def max_dice_matching(
    preds: object,
    gts: object,
    *,
    batch: bool = False,
    threshold: float = DEFAULT.threshold,
    conventions: str | Conventions | None = None,
) -> float | np.ndarray:
    """Maximum Dice matching D_max: each annotation's best Dice with any prediction, averaged.

    .. math::

        D_{max} = \\frac{1}{M} \\sum_{i=1}^{M} \\max_{j=1..N} \\mathrm{Dice}(P_j, Y_i)

    Parameters
    ----------
    {inputs}
    {conventions}

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
    o = resolve_options(conventions, accepted=CI_OPTIONS[:1], caller="max_dice_matching()",
                        threshold=threshold)
    return max_dice_matching_from_counts(pair_counts(preds, gts, batch=batch, threshold=o.threshold))


@fill_doc(inputs=INPUT_RULES_DOC, conventions=CONVENTIONS_DOC)
def diversity_agreement(
    preds: object,
    gts: object,
    *,
    batch: bool = False,
    threshold: float = DEFAULT.threshold,
    variance: str = DEFAULT.variance,
    conventions: str | Conventions | None = None,
) -> float | np.ndarray:
    """Diversity agreement D_a: do the predictions spread as much (and as little) as the annotators?

    .. math::

        D_a = 1 - \\frac{\\Delta V_{max} + \\Delta V_{min}}{2}, \\quad
        \\Delta V_{max} = |\\max V_Y - \\max V_P|, \\quad \\Delta V_{min} = |\\min V_Y - \\min V_P|

    where V_Y (V_P) holds V(A, B) over all pairs i < j of annotations (predictions).

    Parameters
    ----------
    {inputs}
    variance : {"dice", "pixel"}, default "dice"
        The paper calls V the "variance between two masks" without defining it. ``"dice"``:
        V(A, B) = 1 - Dice(A, B) (the reading of the CIMD derivatives). ``"pixel"``: the variance over the
        P pixels of the difference image A - B, ``|A xor B|/P - ((|A| - |B|)/P)^2``, the other reading
        seen in published code. Both lie in [0, 1], so D_a does too.
    {conventions}

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
    >>> y = np.array([[[1, 1, 0, 0]], [[1, 1, 1, 1]]], bool)   # V_Y = {1 - 2*2/6} = {1/3}
    >>> p = np.array([[[1, 1, 0, 0]], [[1, 1, 0, 0]]], bool)   # V_P = {0}
    >>> round(diversity_agreement(p, y), 6)                   # 1 - (1/3 + 1/3) / 2
    0.666667
    """
    o = resolve_options(conventions, accepted=CI_OPTIONS, caller="diversity_agreement()", threshold=threshold,
                        variance=variance)
    counts = pair_counts(preds, gts, batch=batch, threshold=o.threshold)
    return diversity_agreement_from_counts(counts, o.variance)  # type: ignore[arg-type]


@fill_doc(inputs=INPUT_RULES_DOC, conventions=CONVENTIONS_DOC)
def collective_insight(
    preds: object,
    gts: object,
    *,
    batch: bool = False,
    threshold: float = DEFAULT.threshold,
    variance: str = DEFAULT.variance,
    conventions: str | Conventions | None = None,
) -> CollectiveInsight:
    """CI score (paper form and true harmonic mean) with its three components, from one pass.

    Parameters
    ----------
    {inputs}
    variance : {"dice", "pixel"}, default "dice"
        Reading of the pairwise variance in D_a (see :func:`diversity_agreement`).
    {conventions}

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
    o = resolve_options(conventions, accepted=CI_OPTIONS, caller="collective_insight()", threshold=threshold,
                        variance=variance)
    return collective_insight_from_counts(pair_counts(preds, gts, batch=batch, threshold=o.threshold),
                                          conventions=o)


@fill_doc(inputs=INPUT_RULES_DOC, conventions=CONVENTIONS_DOC)
def ci_score(
    preds: object,
    gts: object,
    *,
    batch: bool = False,
    threshold: float = DEFAULT.threshold,
    variance: str = DEFAULT.variance,
    conventions: str | Conventions | None = None,
) -> float | np.ndarray:
    """Collective Insight score as published: ``3 S_c D_max D_a / (S_c + D_max + D_a)`` (higher is better).

    Parameters
    ----------
    {inputs}
    variance : {"dice", "pixel"}, default "dice"
        Reading of the pairwise variance in D_a (see :func:`diversity_agreement`).
    {conventions}

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
    return collective_insight(
        preds, gts, batch=batch, threshold=threshold, variance=variance, conventions=conventions
    ).ci

