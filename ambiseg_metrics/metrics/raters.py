"""Metrics against the raters' vote: the predicted per-pixel frequency p against the raters' frequency f.

For one image with samples S_1..S_N and annotations Y_1..Y_M (annotation weights w, default 1/M):

.. math::

    p(x) = \\frac{1}{N}\\sum_n S_n(x), \\qquad f(x) = \\sum_m w_m Y_m(x).

Float samples are probabilities and are averaged as they are (a single probability map, N = 1, is p
itself); float annotations are soft labels, averaged the same way; bool/integer masks count as 0/1
(nonzero = 1). Nothing is thresholded before the averages.

How it is computed
------------------
* Binary samples and annotations, uniform weights: one fused pass builds the vote table T[a, b] (pixels
  marked by exactly a samples and b raters, :func:`~ambiseg_metrics.vote_counts`); every metric is then
  a sum over its (N+1)(M+1) cells with p = a/N, f = b/M.
* Float (soft) inputs or non-uniform ``gt_weights``: the direct per-pixel path (p and f computed per
  pixel in float64, each pixel its own group). Both paths share the readouts of
  :mod:`ambiseg_metrics.metrics.rater_readouts`, so equal (p, f) give equal numbers.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..core._validate import check_choice
from ..core.docfill import fill_doc
from ..core.weights import GT_WEIGHTS_DOC
from .rater_family import (
    CALIBRATION_CLASSES,
    COMPARISONS,
    QUBIQ_THRESHOLDS,
    RATER_METRICS,
    RaterCalibration,
    UncertaintyErrorOverlap,
    calibration,
    check_bins,
    check_thresholds,
    rater_metrics,
    rater_metrics_from_counts,
    rater_metrics_from_votes,
)
from .rater_readouts import rater_votes, votes_from_counts

__all__ = [
    "CALIBRATION_CLASSES",
    "COMPARISONS",
    "QUBIQ_THRESHOLDS",
    "RATER_METRICS",
    "RaterCalibration",
    "UncertaintyErrorOverlap",
    "consensus_dice",
    "qubiq_score",
    "rater_calibration",
    "rater_metrics",
    "rater_metrics_from_counts",
    "rater_metrics_from_votes",
    "rater_votes",
    "soft_dice",
    "uncertainty_error_overlap",
    "volume_crps",
    "votes_from_counts",
]

_DOC = (
    """preds : array-like, shape (N, *spatial)
    Samples: bool/int masks (nonzero = 1) or float probabilities in [0, 1] (averaged, not
    thresholded). With ``batch=True``: (B, N, *spatial) or a sequence of per-image arrays.
gts : array-like, shape (M, *spatial)
    Annotations, same rules (float = soft labels).
batch : bool, default False
    Declare that the inputs hold several images.
"""
    + GT_WEIGHTS_DOC
)


@fill_doc(inputs=_DOC)
def qubiq_score(
    preds: object,
    gts: object,
    *,
    batch: bool = False,
    thresholds: Sequence[float] = QUBIQ_THRESHOLDS,
    comparison: str = ">",
    gt_weights: object = None,
) -> float | np.ndarray:
    """QUBIQ score: Dice of the thresholded predicted and rater frequencies, averaged over thresholds.

    .. math::

        \\mathrm{QUBIQ} = \\frac{1}{|T|} \\sum_{\\tau \\in T} \\mathrm{Dice}(p > \\tau,\\; f > \\tau),
        \\qquad T = \\{0.1, 0.2, \\dots, 0.9\\},\\; \\mathrm{Dice}(\\emptyset, \\emptyset) = 1.

    Parameters
    ----------
    {inputs}
    thresholds : sequence of float, default (0.1, ..., 0.9)
        Levels τ in [0, 1).
    comparison : {">", ">="}, default ">"
        Strict (``p > τ``, the challenge's binarisation) or inclusive (``p >= τ``). They differ where p or
        f equals a level exactly, e.g. f = 1/2 with M = 2 raters at τ = 0.5, or f = 3/10 at τ = 0.3 (the
        comparison is done in float64 and decimal levels compare exactly with a/N, as a rational would).

    Returns
    -------
    float or ndarray
        In [0, 1], higher is better; B values with ``batch=True``.

    References
    ----------
    QUBIQ: Quantification of Uncertainties in Biomedical Image Quantification challenge (MICCAI 2020/2021),
    qubiq.grand-challenge.org; Li et al., "QUBIQ: Uncertainty Quantification for Biomedical Image
    Segmentation Challenge", arXiv:2405.18435, 2024.

    Examples
    --------
    >>> import numpy as np
    >>> from ambiseg_metrics import qubiq_score
    >>> gts = np.array([[[1, 1, 0, 0]], [[1, 0, 0, 0]]], bool)   # f = 1, 1/2, 0, 0
    >>> preds = np.array([[[1, 1, 1, 0]]], bool)                  # p = 1, 1, 1, 0
    >>> round(qubiq_score(preds, gts), 4)            # τ = .1-.4: 2·2/(3+2); τ = .5-.9: 2·1/(3+1)
    0.6333
    """
    check_choice("comparison", comparison, COMPARISONS)
    t = check_thresholds(thresholds)
    return rater_metrics(preds, gts, batch=batch, gt_weights=gt_weights, thresholds=t, comparison=comparison,
                         wanted=["qubiq"])["qubiq"]


@fill_doc(inputs=_DOC)
def soft_dice(
    preds: object, gts: object, *, batch: bool = False, gt_weights: object = None
) -> float | np.ndarray:
    """Soft Dice of the predicted and the rater frequencies (no threshold).

    .. math::

        \\mathrm{SoftDice} = \\frac{2 \\sum_x p(x) f(x)}{\\sum_x p(x) + \\sum_x f(x)}
        \\quad (1 \\text{ when both sums are 0}).

    Not the MBH-Seg ``Dice_soft`` (:func:`~ambiseg_metrics.dice_soft`, thresholds averaged).

    Parameters
    ----------
    {inputs}

    Returns
    -------
    float or ndarray

    References
    ----------
    Milletari et al., "V-Net", 3DV 2016 (the soft Dice); used against rater frequencies in QUBIQ reports.

    Examples
    --------
    >>> import numpy as np
    >>> from ambiseg_metrics import soft_dice
    >>> soft_dice(np.array([[[1, 1, 0, 0]]], bool), np.array([[[1, 0, 0, 0]], [[1, 1, 0, 0]]], bool))
    0.8571428571428571
    """
    return rater_metrics(preds, gts, batch=batch, gt_weights=gt_weights, wanted=["soft_dice"])["soft_dice"]


@fill_doc(inputs=_DOC)
def rater_calibration(
    preds: object,
    gts: object,
    *,
    batch: bool = False,
    n_bins: int = 10,
    classes: str = "foreground",
    gt_weights: object = None,
) -> RaterCalibration:
    """Calibration of the predicted frequency p against the raters' frequency f.

    With equal-width bins B_k of p on [0, 1] (edges ``np.linspace(0, 1, n_bins + 1)``, bin k holding
    edges[k] <= p < edges[k+1], the last bin closed) and P pixels:

    .. math::

        \\mathrm{ECE} = \\sum_k \\frac{|B_k|}{P} |\\bar p_{B_k} - \\bar f_{B_k}|, \\quad
        \\mathrm{MCE} = \\max_{k: B_k \\neq \\emptyset} |\\bar p_{B_k} - \\bar f_{B_k}|, \\quad
        \\mathrm{Brier} = \\frac{1}{P} \\sum_x (p(x) - f(x))^2,

    and ACE, the same gap averaged over n_bins *adaptive* bins of equal pixel count (pixels ranked by p,
    ties by f; sizes as ``np.array_split``; empty bins, when P < n_bins, are skipped).

    Parameters
    ----------
    {inputs}
    n_bins : int, default 10
    classes : {"foreground", "both"}, default "foreground"
        ``"both"`` averages ECE, MCE and ACE of the foreground (p against f) and of the background class
        (1 - p against 1 - f, binned on their own), as the class-wise ECE of the SSN evaluation
        (preset ``ssn``); Brier and the curve are always the foreground's.

    Returns
    -------
    RaterCalibration
        ``ece``, ``mce``, ``ace``, ``brier`` and the reliability curve (``bin_count``, ``bin_mean_pred``,
        ``bin_mean_rater``).

    Notes
    -----
    The bin edges are the float64 values of ``np.linspace``: the edge "0.3" is 0.30000000000000004, so
    p = 3/10 falls into [0.2, 0.3), exactly as in the codes that bin with ``np.linspace`` edges.

    References
    ----------
    Guo et al., "On Calibration of Modern Neural Networks", ICML 2017 (ECE, MCE); Nixon et al.,
    "Measuring Calibration in Deep Learning", CVPR-W 2019 (adaptive bins); Monteiro et al., "Stochastic
    Segmentation Networks", NeurIPS 2020 (ECE against the rater frequency,
    github.com/MiguelMonteiro/PHiSeg-code phiseg_full_evaluation.py).

    Examples
    --------
    >>> import numpy as np
    >>> from ambiseg_metrics import rater_calibration
    >>> gts = np.array([[[1, 1, 0, 0]], [[1, 0, 0, 0]]], bool)    # f = 1, 1/2, 0, 0
    >>> preds = np.array([[[1, 1, 1, 0]]], bool)                   # p = 1, 1, 1, 0
    >>> r = rater_calibration(preds, gts)
    >>> r.ece, r.brier                                            # bin [0.9, 1]: |1 - 1/2|·3/4
    (0.375, 0.3125)
    """
    check_choice("classes", classes, CALIBRATION_CLASSES)
    n_bins = check_bins(n_bins)
    return calibration(rater_votes(preds, gts, batch=batch, gt_weights=gt_weights), n_bins, classes, batch)


@fill_doc(inputs=_DOC)
def uncertainty_error_overlap(
    preds: object, gts: object, *, batch: bool = False, gt_weights: object = None
) -> UncertaintyErrorOverlap:
    """Uncertainty–error overlap (UEO) and the AUROC / AUPRC of the uncertainty as an error detector.

    Uncertainty u = p (1 - p), error e = [p > 0.5] ≠ [f > 0.5]:

    .. math::

        \\mathrm{UEO} = \\max_t \\mathrm{Dice}(\\{u > t\\}, e),

    exact: t runs over every distinct value of u (and above the maximum: the empty set, whose Dice is
    1 when there is no error, else 0), so the maximum is over all superlevel sets {u >= t}. AUROC:
    the probability that an error pixel has higher u than a correct one, ties 1/2; AUPRC: average
    precision over the distinct thresholds (no interpolation). Both are NaN when there is no error
    pixel (AUROC also when every pixel is an error).

    Parameters
    ----------
    {inputs}

    Returns
    -------
    UncertaintyErrorOverlap
        ``ueo``, ``auroc``, ``auprc``.

    Notes
    -----
    For binary samples u = a(N - a)/N² is computed from the integer vote count, so a and N - a tie
    exactly (p(1 - p) in floats can differ in the last bit).

    References
    ----------
    Jungo & Reyes, "Assessing Reliability and Challenges of Uncertainty Estimations for Medical Image
    Segmentation", MICCAI 2019.

    Examples
    --------
    >>> import numpy as np
    >>> from ambiseg_metrics import uncertainty_error_overlap
    >>> preds = np.array([[[1, 1, 0, 0]], [[1, 0, 0, 0]], [[1, 0, 0, 0]]], bool)   # p = 1, 1/3, 0, 0
    >>> gts = np.array([[[1, 1, 0, 0]]], bool)                                      # error at pixel 1
    >>> r = uncertainty_error_overlap(preds, gts)
    >>> r.ueo, r.auroc, r.auprc                                 # u > 0 exactly at the error pixel
    (1.0, 1.0, 1.0)
    """
    wanted = ["ueo", "ueo_auroc", "ueo_auprc"]
    r = rater_metrics(preds, gts, batch=batch, gt_weights=gt_weights, wanted=wanted)
    return UncertaintyErrorOverlap(r["ueo"], r["ueo_auroc"], r["ueo_auprc"])


@fill_doc(inputs=_DOC)
def volume_crps(
    preds: object, gts: object, *, batch: bool = False, gt_weights: object = None
) -> float | np.ndarray:
    """CRPS of the predicted volume distribution against the rater volumes (energy form), in pixels.

    With sample volumes x_1..x_N (areas; the sum of probabilities for a soft sample) and rater volumes
    y_1..y_M:

    .. math::

        \\mathrm{CRPS} = \\sum_m w_m \\frac{1}{N} \\sum_n |x_n - y_m|
        - \\frac{1}{2N^2} \\sum_{n, n'} |x_n - x_{n'}|,

    the rater-weighted mean of the CRPS of the empirical distribution of the x_n at each y_m (lower is
    better; 0 only when every sample and every rater give the same volume). Multiply by the voxel
    volume for physical units (the CRPS scales linearly).

    Parameters
    ----------
    {inputs}

    Returns
    -------
    float or ndarray

    References
    ----------
    Gneiting & Raftery, "Strictly Proper Scoring Rules, Prediction, and Estimation", JASA 2007.

    Examples
    --------
    >>> import numpy as np
    >>> from ambiseg_metrics import volume_crps
    >>> preds = np.zeros((2, 1, 4), bool); preds[0, 0, :1] = True; preds[1, 0, :3] = True  # x = 1, 3
    >>> gts = np.zeros((1, 1, 4), bool); gts[0, 0, :2] = True                              # y = 2
    >>> volume_crps(preds, gts)                                     # (1 + 1)/2 - (0 + 2 + 2 + 0)/8
    0.5
    """
    r = rater_metrics(preds, gts, batch=batch, gt_weights=gt_weights, wanted=["volume_crps"])
    return r["volume_crps"]


@fill_doc(inputs=_DOC)
def consensus_dice(
    preds: object, gts: object, *, batch: bool = False, gt_weights: object = None
) -> float | np.ndarray:
    """Dice(p > 0.5, f > 0.5) restricted to the pixels on which all raters agree.

    .. math::

        \\mathrm{Dice}(\\{p > 0.5\\} \\cap C,\\; \\{f > 0.5\\} \\cap C), \\quad
        C = \\{x : Y_1(x) = \\dots = Y_M(x)\\},

    (raters of weight 0 are ignored; soft labels agree where they are equal); Dice(∅, ∅) = 1.

    Parameters
    ----------
    {inputs}

    Returns
    -------
    float or ndarray

    References
    ----------
    Menze et al., "The Multimodal Brain Tumor Image Segmentation Benchmark (BRATS)", IEEE TMI 2015
    (scores restricted to the raters' consensus); Jungo et al., "On the Effect of Inter-observer
    Variability for a Reliable Estimation of Uncertainty of Medical Image Segmentation", MICCAI 2018.

    Examples
    --------
    >>> import numpy as np
    >>> from ambiseg_metrics import consensus_dice
    >>> gts = np.array([[[1, 1, 0, 0]], [[1, 0, 0, 0]]], bool)    # raters disagree at pixel 1
    >>> preds = np.array([[[0, 1, 1, 0]]], bool)
    >>> consensus_dice(preds, gts)                                 # on pixels 0, 2, 3: {2} vs {0}
    0.0
    """
    r = rater_metrics(preds, gts, batch=batch, gt_weights=gt_weights, wanted=["consensus_dice"])
    return r["consensus_dice"]


