"""GED between a model's samples and a *known* annotation distribution (a weighted mixture of masks).

For AmbiBlobs (:mod:`cimd_model.data.ambiblobs`) an annotator draws mask :math:`Y_j` with probability
:math:`w_j`; the sampled GED of :func:`ambiseg_metrics.ged` estimates, from N samples and M drawn
annotations, the population quantity

.. math::

    D^2_{GED} = 2\\,\\mathbb{E}_{S,Y}[d(S, Y)] - \\mathbb{E}_{S,S'}[d(S, S')] - \\mathbb{E}_{Y,Y'}[d(Y, Y')],

with :math:`d = 1 - \\mathrm{IoU}` and :math:`d(\\emptyset, \\emptyset) = 0`. With the mixture known, the
annotation terms are exact::

    GED_true = 2 Σ_j w_j mean_s d(S_s, Y_j) − E[d(S, S')] − Σ_jk w_j w_k d(Y_j, Y_k)

and only the sample term is estimated from the N samples: by default without the zero diagonal
(``estimator="unbiased"``: mean over the N(N−1) ordered pairs s ≠ s', an unbiased estimate of
:math:`\\mathbb{E}[d(S, S')]` for independent draws), or over all N² pairs (``"v-statistic"``, the
default of :func:`ambiseg_metrics.ged`).

This module does no GED arithmetic of its own: it is the weighted GED of :mod:`ambiseg_metrics`
(:func:`ambiseg_metrics.ged_terms_from_counts` with ``gt_weights`` = the mode probabilities, a
V-statistic, so the annotation term is exactly Σ_jk w_j w_k d(Y_j, Y_k)); the unbiased sample term is
the V-statistic's times N/(N−1) (the diagonal d(S, S) is 0).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["ESTIMATORS", "true_ged", "true_ged_batch"]

#: estimators of the sample-diversity term
ESTIMATORS = ("unbiased", "v-statistic")


def _check(samples: np.ndarray, modes: np.ndarray, weights: np.ndarray, estimator: str) -> None:
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
    if samples.ndim < 2 or samples.shape[0] < 1:
        raise ValueError(f"samples must be (N, *spatial) with N >= 1, got shape {samples.shape}")
    if modes.ndim != samples.ndim or modes.shape[1:] != samples.shape[1:] or modes.shape[0] < 1:
        raise ValueError(
            f"modes must be (J, *spatial) with J >= 1 and the samples' spatial shape {samples.shape[1:]}, "
            f"got shape {modes.shape}"
        )
    if weights.shape != (modes.shape[0],):
        raise ValueError(f"weights must have shape ({modes.shape[0]},) (one per mode), got {weights.shape}")
    if not np.all(np.isfinite(weights)) or np.any(weights < 0) or weights.sum() <= 0:
        raise ValueError("weights must be finite, non-negative and not all zero")


def true_ged(
    samples: np.ndarray,
    modes: np.ndarray,
    weights: Sequence[float] | np.ndarray,
    *,
    threshold: float = 0.5,
    estimator: str = "unbiased",
) -> float:
    """GED between N samples and the mixture ``Σ_j w_j δ(Y_j)`` (see the module docstring).

    Parameters
    ----------
    samples : (N, *spatial) bool / int / float array (floats are foreground where ``> threshold``)
    modes : (J, *spatial) masks of the known distribution
    weights : (J,) their probabilities (normalised to sum 1)
    threshold : float
        Binarisation threshold of float inputs (as in :mod:`ambiseg_metrics`).
    estimator : {"unbiased", "v-statistic"}
        Estimator of the sample-diversity term.

    Returns
    -------
    float
    """
    return float(true_ged_batch([samples], [modes], [weights], threshold=threshold, estimator=estimator)[0])


def true_ged_batch(
    samples: Sequence[np.ndarray],
    modes: Sequence[np.ndarray],
    weights: Sequence[Sequence[float] | np.ndarray],
    *,
    threshold: float = 0.5,
    estimator: str = "unbiased",
) -> np.ndarray:
    """:func:`true_ged` of every image of a batch (the number of modes may differ per image).

    Returns
    -------
    (B,) float64 array
    """
    from ambiseg_metrics import ged_terms_from_counts, pair_counts

    if not (len(samples) == len(modes) == len(weights)):
        raise ValueError(
            f"samples, modes and weights must have one entry per image, got {len(samples)}, "
            f"{len(modes)} and {len(weights)}"
        )
    samples = [np.asarray(s) for s in samples]
    modes = [np.asarray(m) for m in modes]
    weights = [np.asarray(w, dtype=np.float64) for w in weights]
    for s, m, w in zip(samples, modes, weights, strict=True):
        _check(s, m, w, estimator)
    if not samples:
        return np.zeros(0)
    counts = pair_counts(samples, modes, batch=True, threshold=threshold)
    terms = ged_terms_from_counts(counts, gt_weights=[w / w.sum() for w in weights])
    n = np.array([len(s) for s in samples], dtype=np.float64)
    sample_div = np.asarray(terms.sample_diversity, dtype=np.float64)
    if estimator == "unbiased":  # N(N-1) ordered pairs instead of N²; a single sample keeps its 0
        sample_div = np.where(n >= 2, sample_div * n / np.maximum(n - 1, 1), sample_div)
    return 2.0 * np.asarray(terms.cross) - sample_div - np.asarray(terms.annotator_diversity)
