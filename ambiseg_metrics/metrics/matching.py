"""Matching readouts: Hungarian-matched IoU (HM-IoU) and the per-annotator similarity matrix.

HM-IoU (Kohl et al., 2019; used by MoSE, Gao et al. 2023, and CCDM, Zbinden et al. 2023) pairs the N
predictions with the M annotations one-to-one so that the mean IoU of the pairs is largest. With
N ≠ M each set is repeated to L = lcm(N, M) masks (every prediction L/N times, every annotation L/M
times) and an L×L assignment is solved; this equals the optimal transport between the two sets with
uniform weights 1/N and 1/M (the transport polytope's vertices are reached by the duplicated
assignment), so it is defined for any N and M.
"""

from __future__ import annotations

import math

import numpy as np

from ..conventions import Conventions, resolve_options
from ..core import _kernel_load
from ..core._assign import assignment_means
from ..core._validate import INPUT_RULES_DOC, check_choice
from ..core.counts import CountBlock, PairCounts, pair_counts
from ..core.docfill import fill_doc
from ..core.pairwise import empty_pair_value
from ..core.weights import GT_WEIGHTS_DOC, block_gt_weights, is_uniform
from ..options import CONVENTIONS_DOC, DEFAULT, choices

__all__ = [
    "SIMILARITIES",
    "hungarian_from_matrix",
    "hungarian_iou",
    "hungarian_iou_from_counts",
    "similarity_matrix",
]

SIMILARITIES = choices("similarity")
#: The options the matching functions take.
MATCHING_OPTIONS = ("threshold", "similarity", "empty_pair")


def _cross_similarity(block: CountBlock, similarity: str, empty_pair: str) -> np.ndarray:
    """(B, N, M) similarity of every prediction with every annotation of the block's images."""
    empty = empty_pair_value(empty_pair)
    if math.isnan(empty):  # "skip": a matching needs a value; two empty masks are identical
        empty = 1.0
    return block.cross_similarity(similarity, empty)


#: Above this lcm(N, M) the duplicated L×L assignment is replaced by the equivalent N×M transport LP.
MAX_DUPLICATED = 256
METHODS = ("auto", "assignment", "transport")


def _transport_value(sim: np.ndarray, col_mass: np.ndarray | None = None) -> float:
    """max Σ P_ij sim_ij over plans P >= 0, row sums 1/N, column sums 1/M (or ``col_mass``); HiGHS LP."""
    from scipy.optimize import linprog

    n, m = sim.shape
    cols_b = np.full(m, 1.0 / m) if col_mass is None else np.asarray(col_mass, dtype=np.float64)
    rows = np.kron(np.eye(n), np.ones((1, m)))  # Σ_j P_ij = 1/N
    cols = np.kron(np.ones((1, n)), np.eye(m))  # Σ_i P_ij = 1/M
    a_eq = np.vstack([rows, cols])
    b_eq = np.concatenate([np.full(n, 1.0 / n), cols_b / cols_b.sum()])
    res = linprog(-sim.ravel(), A_eq=a_eq, b_eq=b_eq, bounds=(0, None), method="highs")
    if not res.success:  # pragma: no cover - the transport polytope is never empty
        raise RuntimeError(f"transport LP failed: {res.message}")
    return float(-res.fun)


def hungarian_from_matrix(
    sim: np.ndarray, method: str = "auto", col_weights: np.ndarray | None = None
) -> float:
    """Mean similarity of the best one-to-one matching after duplicating both sets to lcm(N, M).

    Parameters
    ----------
    sim : ndarray, shape (N, M)
        Similarity (e.g. IoU) of prediction i and annotation j, finite.
    method : {"auto", "assignment", "transport"}, default "auto"
        ``"assignment"``: ``scipy.optimize.linear_sum_assignment`` on the L×L duplicated matrix,
        L = lcm(N, M). ``"transport"``: the same optimum as a linear program over N×M transport plans
        with uniform marginals 1/N, 1/M (its vertices are the duplicated assignments, so the values are
        equal). ``"auto"`` uses the assignment unless L > :data:`MAX_DUPLICATED`.
    col_weights : ndarray, shape (M,), optional
        Masses of the columns (annotation weights, summing to 1). Non-uniform masses are solved as the
        transport LP with row masses 1/N and these column masses (exact, HiGHS).

    Returns
    -------
    float
        ``max over assignments of (1/L) Σ sim`` on the L×L matrix.
    """
    from scipy.optimize import linear_sum_assignment

    check_choice("method", method, METHODS)
    sim = np.asarray(sim, dtype=np.float64)
    if sim.ndim != 2 or 0 in sim.shape:
        raise ValueError(f"sim must be a non-empty (N, M) matrix; got shape {sim.shape}")
    if not np.isfinite(sim).all():
        raise ValueError("sim must be finite (no NaN/inf) to be matched")
    n, m = sim.shape
    if col_weights is not None and not is_uniform(np.asarray(col_weights, dtype=np.float64)):
        return _transport_value(sim, col_weights)
    size = math.lcm(n, m)
    if method == "transport" or (method == "auto" and size > MAX_DUPLICATED):
        return _transport_value(sim)
    big = np.repeat(np.repeat(sim, size // n, axis=0), size // m, axis=1)
    rows, cols = linear_sum_assignment(big, maximize=True)
    return float(big[rows, cols].mean())


#: Batches whose assignments take fewer steps than this (B·L²·min(N, M)) are solved by the same loops
#: in Python while the kernels are not loaded (about 0.1 s of Python here at most).
_COLD_PYTHON_STEPS = 1 << 18


def _hungarian_block(block: CountBlock, similarity: str, empty_pair: str, w: np.ndarray | None) -> np.ndarray:
    n = block.n_pred
    sim = _cross_similarity(block, similarity, empty_pair)
    if w is not None and not all(is_uniform(row) for row in w):
        # weighted annotations: each image's transport problem with its column masses
        return np.array([hungarian_from_matrix(s, col_weights=w[i]) for i, s in enumerate(sim)])
    if math.lcm(n, block.n_gt) > MAX_DUPLICATED:
        return np.array([_transport_value(s) for s in sim])
    # the duplicated L×L assignment of every image, solved exactly in one compiled loop; a few small
    # images run the same code as Python (no compiled kernel to import or load for them), and so do
    # mid-sized batches while the kernels are not loaded (core/_kernel_load.py)
    size = math.lcm(n, block.n_gt)
    if len(sim) * size**2 <= 4096:
        return assignment_means(sim, compiled=False)
    if _kernel_load.numpy_while_unloaded(len(sim) * size**2 * min(n, block.n_gt) < _COLD_PYTHON_STEPS):
        with _kernel_load.charged():
            return assignment_means(sim, compiled=False)
    return assignment_means(sim, compiled=True)


def hungarian_iou_from_counts(
    counts: PairCounts,
    *,
    similarity: str = DEFAULT.similarity,
    empty_pair: str = DEFAULT.empty_pair,
    gt_weights: object = None,
    conventions: str | Conventions | None = None,
) -> float | np.ndarray:
    """HM-IoU from precomputed :func:`~ambiseg_metrics.pair_counts` (see :func:`hungarian_iou`)."""
    o = resolve_options(conventions, accepted=MATCHING_OPTIONS[1:], caller="hungarian_iou_from_counts()",
                        similarity=similarity, empty_pair=empty_pair)
    return counts.map(lambda block: _hungarian_block(
        block, o.similarity, o.empty_pair, block_gt_weights(counts, block, gt_weights)))


@fill_doc(inputs=INPUT_RULES_DOC, conventions=CONVENTIONS_DOC, weights=GT_WEIGHTS_DOC)
def hungarian_iou(
    preds: object,
    gts: object,
    *,
    batch: bool = False,
    threshold: float = DEFAULT.threshold,
    similarity: str = DEFAULT.similarity,
    empty_pair: str = DEFAULT.empty_pair,
    gt_weights: object = None,
    conventions: str | Conventions | None = None,
) -> float | np.ndarray:
    """Hungarian-matched IoU (HM-IoU): mean IoU of the best one-to-one matching of samples and annotations.

    .. math::

        \\mathrm{HM\\text{-}IoU} = \\max_{\\pi} \\frac{1}{L} \\sum_{k=1}^{L}
        \\mathrm{IoU}(\\tilde S_k, \\tilde Y_{\\pi(k)}), \\qquad L = \\mathrm{lcm}(N, M),

    where :math:`\\tilde S` repeats every prediction L/N times, :math:`\\tilde Y` every annotation L/M
    times, and π runs over the permutations of 1..L. The assignment is solved exactly for all images of
    a batch in one compiled loop (shortest augmenting paths with potentials on the N×M matrix whose
    columns hold L/M rows each, without building the L×L matrix); it gives the value of
    ``scipy.optimize.linear_sum_assignment`` on the duplicated matrix (tested to 1e-12). Above
    L = ``MAX_DUPLICATED`` the equal transport linear program is solved instead.

    Parameters
    ----------
    {inputs}
    similarity : {"iou", "dice"}, default "iou"
        Match on IoU (HM-IoU) or on Dice.
    empty_pair : {"one", "zero", "skip"}, default "one"
        IoU of two empty masks: 1 or 0. ``"skip"`` (the Kohl preset) cannot leave a pair out of a
        matching; two empty masks are then identical, IoU 1.
    {weights}
        With weights, HM-IoU is the optimal transport value with masses 1/N on the predictions and
        w_m on the annotations (solved exactly as a linear program).
    {conventions}

    Returns
    -------
    float or ndarray
        HM-IoU in [0, 1] (higher is better); B values with ``batch=True``.

    Notes
    -----
    Works for any N, M >= 1 (no "N must be a multiple of M"); equals the optimal-transport form with
    uniform weights used by MoSE when M does not divide N. Symmetric in (preds, gts), invariant to the
    order of the masks, 1 for identical sets.

    References
    ----------
    Kohl et al., "A Hierarchical Probabilistic U-Net for Modeling Multi-Scale Ambiguities", 2019.
    Gao et al., "Modeling Multimodal Aleatoric Uncertainty in Segmentation with Mixture of Stochastic
    Experts", ICLR 2023 (github.com/gaozhitong/MoSE-AUSeg, utils/metrics.py).
    Zbinden et al., "Stochastic Segmentation with Conditional Categorical Diffusion Models", ICCV 2023
    (github.com/LarsDoorenbos/ccdm-stochastic-segmentation, evaluation/evaluate_lidc_uncertainty.py).

    Examples
    --------
    >>> import numpy as np
    >>> from ambiseg_metrics import hungarian_iou
    >>> a = np.zeros((1, 4), bool); a[0, :2] = True        # 2 pixels
    >>> b = np.zeros((1, 4), bool); b[0, :4] = True        # 4 pixels, IoU(a, b) = 1/2
    >>> hungarian_iou(np.stack([a, b]), np.stack([b]))      # L = 2: (1/2 + 1) / 2
    0.75
    """
    o = resolve_options(conventions, accepted=MATCHING_OPTIONS, caller="hungarian_iou()", threshold=threshold,
                        similarity=similarity, empty_pair=empty_pair)
    counts = pair_counts(preds, gts, batch=batch, threshold=o.threshold)
    return hungarian_iou_from_counts(counts, gt_weights=gt_weights, conventions=o)


@fill_doc(inputs=INPUT_RULES_DOC, conventions=CONVENTIONS_DOC)
def similarity_matrix(
    preds: object,
    gts: object,
    *,
    batch: bool = False,
    threshold: float = DEFAULT.threshold,
    similarity: str = "dice",
    empty_pair: str = DEFAULT.empty_pair,
    conventions: str | Conventions | None = None,
) -> np.ndarray | list[np.ndarray]:
    """Per-annotator similarity matrix: Dice (or IoU) of every prediction with every annotation.

    Parameters
    ----------
    {inputs}
    similarity : {"dice", "iou"}, default "dice"
        This function's own default (Dice, the per-annotator readout of the MBH-Seg code), so a preset's
        ``similarity`` does not apply here; pass ``similarity="iou"`` for IoU.
    empty_pair : {"one", "zero", "skip"}, default "one"
        Value for two empty masks (1, 0; ``"skip"`` gives NaN there).
    {conventions}

    Returns
    -------
    ndarray of shape (N, M), or list of B such arrays with ``batch=True``
        Entry ``[i, j]`` compares prediction i with annotation j. Column j read down gives annotator
        j's scores (its max is what :func:`~ambiseg_metrics.max_dice_matching` averages); the MBH-Seg
        "Dice_each"/"Dice_max" readouts are maxima and means of this matrix.

    Examples
    --------
    >>> import numpy as np
    >>> from ambiseg_metrics import similarity_matrix
    >>> y = np.array([[[1, 1, 0, 0]], [[0, 0, 1, 1]]], bool)
    >>> p = np.array([[[1, 0, 0, 0]]], bool)
    >>> similarity_matrix(p, y).round(4)
    array([[0.6667, 0.    ]])
    """
    o = resolve_options(conventions, accepted=MATCHING_OPTIONS, caller="similarity_matrix()",
                        threshold=threshold, similarity=similarity, empty_pair=empty_pair)
    counts = pair_counts(preds, gts, batch=batch, threshold=o.threshold)
    out: list[np.ndarray | None] = [None] * counts.n_images
    for block in counts.blocks:
        n = block.n_pred
        sim = block.similarity(o.similarity, empty_pair_value(o.empty_pair))[:, :n, n:]
        for k, image in enumerate(block.index):
            out[int(image)] = sim[k].copy()
    if not counts.batch:
        return out[0]
    return out

