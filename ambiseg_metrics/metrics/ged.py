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

from ..core._validate import INPUT_RULES_DOC, check_choice
from ..core.counts import CountBlock, PairCounts, pair_counts

__all__ = [
    "DISTANCES",
    "EMPTY_PAIRS",
    "ESTIMATORS",
    "GEDTerms",
    "annotator_diversity",
    "ged",
    "ged_terms",
    "ged_terms_from_counts",
    "sample_diversity",
]

ESTIMATORS = ("v-statistic", "unbiased")
DISTANCES = ("iou", "dice")


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


EMPTY_PAIRS = ("one", "zero", "skip")
_EMPTY_VALUES = {"one": 1.0, "zero": 0.0, "skip": float("nan")}


def _distance_matrix(block: CountBlock, distance: str, empty_value: float = 1.0) -> np.ndarray:
    return 1.0 - block.similarity(distance, empty_value)


def _nanmean_pairs(d: np.ndarray, exclude_diagonal: bool) -> np.ndarray:
    """Mean over the last two axes ignoring NaN (skipped pairs); NaN where every pair is skipped."""
    d = d.copy()
    if exclude_diagonal:
        idx = np.arange(d.shape[-1])
        d[:, idx, idx] = np.nan
    valid = ~np.isnan(d)
    total = np.where(valid, d, 0.0).sum(axis=(1, 2))
    count = valid.sum(axis=(1, 2))
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


def _terms_from_distance(d: np.ndarray, n: int, estimator: str) -> np.ndarray:
    """(B, 4) GED terms from distance matrices d (B, K, K), predictions first; NaN entries are skipped.

    With the default empty pair (d(∅, ∅) = 0) no entry is NaN and d(A, A) = 0, so the two estimators
    differ only by the number of pairs they average over (N² or N(N-1)).
    """
    unbiased = estimator == "unbiased"
    cross = _nanmean_pairs(d[:, :n, n:], exclude_diagonal=False)
    ss = _nanmean_pairs(d[:, :n, :n], exclude_diagonal=unbiased)
    yy = _nanmean_pairs(d[:, n:, n:], exclude_diagonal=unbiased)
    return np.stack([2.0 * cross - ss - yy, cross, ss, yy], axis=1)


def _block_terms(block: CountBlock, estimator: str, distance: str, empty_pair: str = "one") -> np.ndarray:
    """(B, 4) array: ged, cross, sample diversity, annotator diversity."""
    if empty_pair == "skip":
        d = _distance_matrix(block, distance, _EMPTY_VALUES[empty_pair])
        return _terms_from_distance(d, block.n_pred, estimator)
    # No pair is skipped: the three means straight from the (shared) similarity matrices.
    sim = block.similarity(distance, _EMPTY_VALUES[empty_pair])
    n, unbiased = block.n_pred, estimator == "unbiased"
    cross = _mean_distance(sim[:, :n, n:], exclude_diagonal=False)
    ss = _mean_distance(sim[:, :n, :n], exclude_diagonal=unbiased)
    yy = _mean_distance(sim[:, n:, n:], exclude_diagonal=unbiased)
    return np.stack([2.0 * cross - ss - yy, cross, ss, yy], axis=1)


def ged_terms_from_counts(
    counts: PairCounts, *, estimator: str = "v-statistic", distance: str = "iou", empty_pair: str = "one"
) -> GEDTerms:
    """GED and its terms from precomputed :func:`~ambiseg_metrics.pair_counts` (see :func:`ged_terms`)."""
    check_choice("estimator", estimator, ESTIMATORS)
    check_choice("distance", distance, DISTANCES)
    check_choice("empty_pair", empty_pair, EMPTY_PAIRS)
    if estimator == "unbiased":
        counts.check_min_masks('ged with estimator="unbiased"')
    return GEDTerms(*counts.columns(lambda block: _block_terms(block, estimator, distance, empty_pair)))


def ged_terms(
    preds: object,
    gts: object,
    *,
    batch: bool = False,
    threshold: float = 0.5,
    estimator: str = "v-statistic",
    distance: str = "iou",
    empty_pair: str = "one",
) -> GEDTerms:
    """Squared generalized energy distance and its three terms.

    .. math::

        D^2_{GED} = 2\\,\\mathbb{{E}}[d(S, Y)] - \\mathbb{{E}}[d(S, S')] - \\mathbb{{E}}[d(Y, Y')]

    Parameters
    ----------
    {inputs}
    estimator : {{"v-statistic", "unbiased"}}, default "v-statistic"
        ``"v-statistic"`` averages the within-set terms over all N² (M²) ordered pairs, self-pairs
        included (d(A, A) = 0), as PHiSeg, the Probabilistic U-Net and CCDM compute it; it is always
        >= 0 for d = 1 - IoU. ``"unbiased"`` averages over the N(N-1) (M(M-1)) pairs of distinct
        masks (a U-statistic); it needs N >= 2 and M >= 2 and can be slightly negative.
    distance : {{"iou", "dice"}}, default "iou"
        ``d = 1 - IoU`` (the published definition) or ``d = 1 - Dice``.
    empty_pair : {{"one", "zero", "skip"}}, default "one"
        Similarity of two empty masks: 1 (d = 0, PHiSeg, CCDM, MoSE, CIMD), 0 (d = 1, also for an empty
        mask compared with itself; the MBH-Seg 2025 code) or ``"skip"``: such pairs are left out of
        the mean of their term (a term with no pair left is NaN). See
        :mod:`ambiseg_metrics.conventions`.

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
    counts = pair_counts(preds, gts, batch=batch, threshold=threshold)
    return ged_terms_from_counts(counts, estimator=estimator, distance=distance, empty_pair=empty_pair)


def ged(
    preds: object,
    gts: object,
    *,
    batch: bool = False,
    threshold: float = 0.5,
    estimator: str = "v-statistic",
    distance: str = "iou",
    empty_pair: str = "one",
) -> float | np.ndarray:
    """Squared generalized energy distance between predictions and annotations (lower is better).

    .. math::

        D^2_{GED} = 2\\,\\mathbb{{E}}[d(S, Y)] - \\mathbb{{E}}[d(S, S')] - \\mathbb{{E}}[d(Y, Y')],
        \\quad d = 1 - \\mathrm{{IoU}}

    Parameters
    ----------
    {inputs}
    estimator : {{"v-statistic", "unbiased"}}, default "v-statistic"
        Self-pairs included (published codes) or excluded (needs N, M >= 2); see :func:`ged_terms`.
    distance : {{"iou", "dice"}}, default "iou"
        ``d = 1 - IoU`` or ``d = 1 - Dice``.
    empty_pair : {{"one", "zero", "skip"}}, default "one"
        Similarity of two empty masks (1, 0, or pair left out); see :func:`ged_terms`.

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
        empty_pair=empty_pair,
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


def _diversity(
    masks: object, *, batch: bool, threshold: float, estimator: str, distance: str, empty_pair: str, what: str
) -> float | np.ndarray:
    """Within-set term of ``masks``: the masks on the predictions' side, one of them as the other side
    (its Gram of (N + 1)² pairs instead of (2N)²; the other terms are not used)."""
    check_choice("estimator", estimator, ESTIMATORS)
    check_choice("distance", distance, DISTANCES)
    check_choice("empty_pair", empty_pair, EMPTY_PAIRS)
    other = _first_masks(masks, batch)
    counts = pair_counts(masks, masks if other is None else other, batch=batch, threshold=threshold)
    if estimator == "unbiased":
        for block in counts.blocks:
            if block.n_pred < 2:
                where = f" (image {int(block.index[0])})" if counts.batch else ""
                raise ValueError(f'{what} with estimator="unbiased" needs at least 2 masks per image; got '
                                 f"{block.n_pred}{where}")
    return counts.map(lambda block: _block_terms(block, estimator, distance, empty_pair)[:, 2])


def sample_diversity(
    preds: object,
    *,
    batch: bool = False,
    threshold: float = 0.5,
    estimator: str = "v-statistic",
    distance: str = "iou",
    empty_pair: str = "one",
) -> float | np.ndarray:
    """Diversity of the predictions, E[d(S, S')]: the GED's within-samples term.

    Parameters
    ----------
    preds : array-like, shape (N, *spatial), or (B, N, *spatial) / sequence with ``batch=True``
        The sampled masks (same input rules as every metric: bool/int nonzero, float ``> threshold``).
    batch, threshold
        As for :func:`ged`.
    estimator : {{"v-statistic", "unbiased"}}, default "v-statistic"
        Average over all N² ordered pairs (self-pairs included, as in the GED) or over the N(N-1)
        pairs of distinct masks (needs N >= 2).
    distance : {{"iou", "dice"}}, default "iou"
    empty_pair : {{"one", "zero", "skip"}}, default "one"
        See :func:`ged_terms`.

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
    return _diversity(preds, batch=batch, threshold=threshold, estimator=estimator, distance=distance,
                      empty_pair=empty_pair, what="sample_diversity")


def annotator_diversity(
    gts: object,
    *,
    batch: bool = False,
    threshold: float = 0.5,
    estimator: str = "v-statistic",
    distance: str = "iou",
    empty_pair: str = "one",
) -> float | np.ndarray:
    """Diversity of the annotations, E[d(Y, Y')]: the GED's within-annotators term.

    Parameters
    ----------
    gts : array-like, shape (M, *spatial), or (B, M, *spatial) / sequence with ``batch=True``
        The annotations.
    batch, threshold, estimator, distance, empty_pair
        As for :func:`sample_diversity`.

    Returns
    -------
    float or ndarray
        Equal to ``ged_terms(preds, gts).annotator_diversity`` for any ``preds``.

    References
    ----------
    Kohl et al., NeurIPS 2018; Baumgartner et al., MICCAI 2019.
    """
    return _diversity(gts, batch=batch, threshold=threshold, estimator=estimator, distance=distance,
                      empty_pair=empty_pair, what="annotator_diversity")


for _f in (ged, ged_terms, sample_diversity, annotator_diversity):
    _f.__doc__ = _f.__doc__.replace("{inputs}", INPUT_RULES_DOC).replace("{{", "{").replace("}}", "}")
