"""Generalized energy distance (GED) between the predicted and the annotated mask distributions.

Definition (Kohl et al., 2018; Baumgartner et al., 2019), with S, S' independent predictions and Y, Y'
independent annotations of the same image:

.. math::

    D^2_{GED} = 2\\,\\mathbb{E}[d(S, Y)] - \\mathbb{E}[d(S, S')] - \\mathbb{E}[d(Y, Y')],
    \\qquad d = 1 - \\mathrm{IoU} \\;(\\text{or } 1 - \\mathrm{Dice}).

What is reported (as in the published codes) is the *squared* distance :math:`D^2_{GED}`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..conventions import Conventions, resolve_options
from ..core._validate import INPUT_RULES_DOC, check_masks, pairs_error
from ..core.counts import PairCounts, pair_counts
from ..core.docfill import fill_doc
from ..core.weights import GT_WEIGHTS_DOC, block_gt_weights
from ..options import CONVENTIONS_DOC, DEFAULT, choices
from .ged_readouts import block_terms, terms_from_distance

__all__ = [
    "DISTANCES",
    "EMPTY_PAIRS",
    "ESTIMATORS",
    "GEDTerms",
    "PAIR_AVERAGES",
    "annotator_diversity",
    "ged",
    "ged_terms",
    "ged_terms_from_counts",
    "sample_diversity",
    "terms_from_distance",
]

ESTIMATORS = choices("estimator")
DISTANCES = choices("distance")
EMPTY_PAIRS = choices("empty_pair")
PAIR_AVERAGES = choices("pair_average")
#: The options the GED functions take.
GED_OPTIONS = ("threshold", "estimator", "distance", "empty_pair", "pair_average")


@dataclass(frozen=True)
class GEDTerms:
    """The squared GED and its three terms (floats for one image, arrays of B values for a batch).

    Attributes
    ----------
    ged : float or ndarray
        ``2 * cross - sample_diversity - annotator_diversity``.
    cross : float or ndarray
        ``E[d(S, Y)]``: mean distance over the N×M prediction/annotation pairs.
    sample_diversity : float or ndarray
        ``E[d(S, S')]``: mean distance between predictions.
    annotator_diversity : float or ndarray
        ``E[d(Y, Y')]``: mean distance between annotations.
    """

    ged: float | np.ndarray
    cross: float | np.ndarray
    sample_diversity: float | np.ndarray
    annotator_diversity: float | np.ndarray


def ged_terms_from_counts(
    counts: PairCounts,
    *,
    estimator: str = DEFAULT.estimator,
    distance: str = DEFAULT.distance,
    empty_pair: str = DEFAULT.empty_pair,
    pair_average: str = DEFAULT.pair_average,
    gt_weights: object = None,
    conventions: str | Conventions | None = None,
) -> GEDTerms:
    """GED and its terms from precomputed :func:`~ambiseg_metrics.pair_counts` (see :func:`ged_terms`)."""
    o = resolve_options(conventions, accepted=GED_OPTIONS[1:], caller="ged_terms_from_counts()",
                        estimator=estimator, distance=distance, empty_pair=empty_pair,
                        pair_average=pair_average)
    if o.estimator == "unbiased":
        counts.check_min_masks('ged with estimator="unbiased"')
    return GEDTerms(*counts.columns(lambda block: block_terms(
        block, o.estimator, o.distance, o.empty_pair, block_gt_weights(counts, block, gt_weights),
        o.pair_average)))


@fill_doc(inputs=INPUT_RULES_DOC, conventions=CONVENTIONS_DOC, weights=GT_WEIGHTS_DOC)
def ged_terms(
    preds: object,
    gts: object,
    *,
    batch: bool = False,
    threshold: float = DEFAULT.threshold,
    estimator: str = DEFAULT.estimator,
    distance: str = DEFAULT.distance,
    empty_pair: str = DEFAULT.empty_pair,
    pair_average: str = DEFAULT.pair_average,
    gt_weights: object = None,
    conventions: str | Conventions | None = None,
) -> GEDTerms:
    """Squared generalized energy distance and its three terms.

    .. math::

        D^2_{GED} = 2\\,\\mathbb{E}[d(S, Y)] - \\mathbb{E}[d(S, S')] - \\mathbb{E}[d(Y, Y')]

    Parameters
    ----------
    {inputs}
    estimator : {"v-statistic", "unbiased"}, default "v-statistic"
        ``"v-statistic"`` averages the within-set terms over all N² (M²) ordered pairs, self-pairs
        included (d(A, A) = 0), as PHiSeg, the Probabilistic U-Net and CCDM compute it; it is always
        >= 0 for d = 1 - IoU. ``"unbiased"`` averages over the N(N-1) (M(M-1)) pairs of distinct
        masks (a U-statistic); it needs N >= 2 and M >= 2 and can be slightly negative.
    distance : {"iou", "dice"}, default "iou"
        ``d = 1 - IoU`` (the published definition) or ``d = 1 - Dice``.
    empty_pair : {"one", "zero", "skip"}, default "one"
        Similarity of two empty masks: 1 (d = 0, PHiSeg, CCDM, MoSE, CIMD), 0 (d = 1, also for an empty
        mask compared with itself; the MBH-Seg 2025 code) or ``"skip"``: such pairs are left out of
        the mean of their term (a term with no pair left is NaN). See
        :mod:`ambiseg_metrics.conventions`.
    pair_average : {"mean", "pooled"}, default "mean"
        ``"mean"``: each term is the mean of the per-pair distances (every published code but one).
        ``"pooled"``: each term is 1 - (Σ_pairs numerator) / (Σ_pairs denominator) of the similarity,
        the pairs' counts pooled before the ratio, as ValUES computes it (one torchmetrics ``dice``
        call on the stacked pairs, micro average); with weights, the pairs' counts are weighted.
    {weights}
    {conventions}

    Returns
    -------
    GEDTerms
        ``ged``, ``cross`` (E[d(S,Y)]), ``sample_diversity`` (E[d(S,S')]) and ``annotator_diversity``
        (E[d(Y,Y')]); floats, or arrays of B values with ``batch=True``.

    Notes
    -----
    Empty masks: d(∅, ∅) = 0 (IoU(∅, ∅) = Dice(∅, ∅) = 1), d(∅, A) = 1 for A non-empty.

    References
    ----------
    Kohl et al., "A Probabilistic U-Net for Segmentation of Ambiguous Images", NeurIPS 2018.
    Baumgartner et al., "PHiSeg: Capturing Uncertainty in Medical Image Segmentation", MICCAI 2019.
    Székely & Rizzo, "Energy statistics", J. Stat. Plan. Inference, 2013.
    """
    o = resolve_options(conventions, accepted=GED_OPTIONS, caller="ged_terms()", threshold=threshold,
                        estimator=estimator, distance=distance, empty_pair=empty_pair,
                        pair_average=pair_average)
    counts = pair_counts(preds, gts, batch=batch, threshold=o.threshold)
    return ged_terms_from_counts(counts, gt_weights=gt_weights, conventions=o)


@fill_doc(inputs=INPUT_RULES_DOC, conventions=CONVENTIONS_DOC, weights=GT_WEIGHTS_DOC)
def ged(
    preds: object,
    gts: object,
    *,
    batch: bool = False,
    threshold: float = DEFAULT.threshold,
    estimator: str = DEFAULT.estimator,
    distance: str = DEFAULT.distance,
    empty_pair: str = DEFAULT.empty_pair,
    pair_average: str = DEFAULT.pair_average,
    gt_weights: object = None,
    conventions: str | Conventions | None = None,
) -> float | np.ndarray:
    """Squared generalized energy distance between predictions and annotations (lower is better).

    .. math::

        D^2_{GED} = 2\\,\\mathbb{E}[d(S, Y)] - \\mathbb{E}[d(S, S')] - \\mathbb{E}[d(Y, Y')],
        \\quad d = 1 - \\mathrm{IoU}

    Parameters
    ----------
    {inputs}
    estimator : {"v-statistic", "unbiased"}, default "v-statistic"
        Self-pairs included (published codes) or excluded (needs N, M >= 2); see :func:`ged_terms`.
    distance : {"iou", "dice"}, default "iou"
        ``d = 1 - IoU`` or ``d = 1 - Dice``.
    empty_pair : {"one", "zero", "skip"}, default "one"
        Similarity of two empty masks (1, 0, or pair left out); see :func:`ged_terms`.
    pair_average : {"mean", "pooled"}, default "mean"
        Per-pair or pooled averaging; see :func:`ged_terms`.
    {weights}
    {conventions}

    Returns
    -------
    float or ndarray
        The squared GED of the image, or B values with ``batch=True``.

    Notes
    -----
    d(∅, ∅) = 0 and d(∅, A) = 1 for non-empty A. With the V-statistic and d = 1 - IoU the value is >= 0
    (the Jaccard distance is of negative type). See :func:`ged_terms` for the three terms.

    References
    ----------
    Kohl et al., NeurIPS 2018; Baumgartner et al., MICCAI 2019.

    Examples
    --------
    >>> import numpy as np
    >>> from ambiseg_metrics import ged
    >>> a = np.zeros((4, 4), bool); a[:2] = True   # 8 pixels
    >>> b = np.zeros((4, 4), bool); b[:1] = True   # 4 pixels, inside a
    >>> ged(np.stack([a, b]), np.stack([a, a]))    # 2*0.25 - 0.25 - 0
    0.25
    """
    return ged_terms(
        preds, gts, batch=batch, threshold=threshold, estimator=estimator, distance=distance,
        empty_pair=empty_pair, pair_average=pair_average, gt_weights=gt_weights, conventions=conventions,
    ).ged


def _first_masks(masks: object, batch: bool) -> object:
    """A one-mask stack per image (the first mask), sliced without copying; None if it cannot be sliced."""
    try:
        if not batch:
            return masks[:1]
        if isinstance(masks, (list, tuple)):
            return [m[:1] for m in masks]
        return masks[:, :1]
    except (TypeError, IndexError, KeyError):
        return None


def _diversity(masks: object, what: str, batch: bool, conventions: str | Conventions | None = None,
               **options: object) -> float | np.ndarray:
    """Within-set term of ``masks``: ``ged_terms(masks, masks).<what>``, counted with the masks on their own
    side (``preds`` for ``sample_diversity``, ``gts`` for ``annotator_diversity``, so that an input error
    names the argument the caller passed) and only their first mask on the other side: a Gram of
    (K + 1)² pairs instead of (2K)²; the other terms are not used."""
    o = resolve_options(conventions, accepted=GED_OPTIONS, caller=f"{what}()", **options)
    side = "gts" if what == "annotator_diversity" else "preds"
    first = _first_masks(masks, batch)
    if first is None:  # cannot be sliced, so not valid input: the input rules say why
        check_masks(masks, side, batch)
        first = masks  # pragma: no cover - the rules accept nothing that cannot be sliced
    counts = (pair_counts(masks, first, batch=batch, threshold=o.threshold) if side == "preds" else
              pair_counts(first, masks, batch=batch, threshold=o.threshold))
    if o.estimator == "unbiased":
        for block in counts.blocks:
            k = block.n_pred if side == "preds" else block.n_gt
            error = pairs_error(f'{what}() with estimator="unbiased"', k, k,
                                int(block.index[0]) if counts.batch else None)
            if error is not None:
                raise error
    column = 2 if side == "preds" else 3
    return counts.map(lambda block: block_terms(block, o.estimator, o.distance, o.empty_pair,
                                                 pair_average=o.pair_average)[:, column])


@fill_doc(conventions=CONVENTIONS_DOC)
def sample_diversity(
    preds: object,
    *,
    batch: bool = False,
    threshold: float = DEFAULT.threshold,
    estimator: str = DEFAULT.estimator,
    distance: str = DEFAULT.distance,
    empty_pair: str = DEFAULT.empty_pair,
    conventions: str | Conventions | None = None,
) -> float | np.ndarray:
    """Diversity of the predictions, E[d(S, S')]: the GED's within-samples term.

    Parameters
    ----------
    preds : array-like, shape (N, *spatial), or (B, N, *spatial) / sequence with ``batch=True``
        The sampled masks (same input rules as every metric: bool/int nonzero, float ``> threshold``).
    batch, threshold
        As for :func:`ged`.
    estimator : {"v-statistic", "unbiased"}, default "v-statistic"
        Average over all N² ordered pairs (self-pairs included, as in the GED) or over the N(N-1)
        pairs of distinct masks (needs N >= 2).
    distance : {"iou", "dice"}, default "iou"
    empty_pair : {"one", "zero", "skip"}, default "one"
        See :func:`ged_terms`.
    {conventions}

    Returns
    -------
    float or ndarray
        Equal to ``ged_terms(preds, gts).sample_diversity`` for any ``gts``; B values with ``batch=True``.

    References
    ----------
    Kohl et al., NeurIPS 2018; Baumgartner et al., MICCAI 2019 (the "sample diversity" of their tables).

    Examples
    --------
    >>> import numpy as np
    >>> from ambiseg_metrics import sample_diversity
    >>> s = np.zeros((2, 1, 4), bool); s[0, 0, :2] = True; s[1, 0, :4] = True   # IoU = 1/2
    >>> sample_diversity(s)                                    # (0 + 0.5 + 0.5 + 0) / 4
    0.25
    >>> sample_diversity(s, estimator="unbiased")
    0.5
    """
    return _diversity(preds, "sample_diversity", batch, threshold=threshold, estimator=estimator,
                      distance=distance, empty_pair=empty_pair, conventions=conventions)


@fill_doc(conventions=CONVENTIONS_DOC)
def annotator_diversity(
    gts: object,
    *,
    batch: bool = False,
    threshold: float = DEFAULT.threshold,
    estimator: str = DEFAULT.estimator,
    distance: str = DEFAULT.distance,
    empty_pair: str = DEFAULT.empty_pair,
    conventions: str | Conventions | None = None,
) -> float | np.ndarray:
    """Diversity of the annotations, E[d(Y, Y')]: the GED's within-annotators term.

    Parameters
    ----------
    gts : array-like, shape (M, *spatial), or (B, M, *spatial) / sequence with ``batch=True``
        The annotations.
    batch, threshold, estimator, distance, empty_pair
        As for :func:`sample_diversity`.
    {conventions}

    Returns
    -------
    float or ndarray
        Equal to ``ged_terms(preds, gts).annotator_diversity`` for any ``preds``.

    References
    ----------
    Kohl et al., NeurIPS 2018; Baumgartner et al., MICCAI 2019.
    """
    return _diversity(gts, "annotator_diversity", batch, threshold=threshold, estimator=estimator,
                      distance=distance, empty_pair=empty_pair, conventions=conventions)

