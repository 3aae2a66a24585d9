"""Every metric of an image (or a batch) from one pass over the pixels.

:func:`evaluate` counts the pairwise intersections once (:func:`~ambiseg_metrics.pair_counts`) and reads
all requested metrics from those counts, so asking for ten metrics costs about as much as asking for one.
Metrics are organised in *families* that share a readout (e.g. the GED and its three terms); a family is
computed only when one of its metrics is requested.

Annotation weights (``gt_weights=``) reach the families that have a weighted form (:data:`WEIGHTED_METRICS`:
the GED and its terms, HM-IoU, every rater-vote metric); asking for another metric (the CI family) together
with ``gt_weights`` is a ValueError, never a silently unweighted value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from .conventions import Conventions, Options, resolve_options
from .core._validate import INPUT_RULES_DOC, prepare_inputs
from .core.counts import PairCounts, VoteCounts, pair_and_vote_counts, pair_counts
from .core.docfill import fill_doc
from .core.weights import GT_WEIGHTS_DOC, check_gt_weights, is_uniform, n_gt_per_image
from .metrics.collective_insight import (
    collective_insight_from_counts,
    combined_sensitivity_from_counts,
    max_dice_matching_from_counts,
)
from .metrics.ged import ged_terms_from_counts
from .metrics.matching import hungarian_iou_from_counts
from .metrics.raters import RATER_METRICS, rater_metrics_from_counts, rater_metrics_from_votes, rater_votes
from .options import CONVENTIONS_DOC, evaluate_options, options_doc

__all__ = ["ALL_METRICS", "METRICS", "WEIGHTED_METRICS", "MetricFamily", "check_metrics", "check_weighted",
           "evaluate", "evaluate_counts", "resolve_evaluation"]

@dataclass(frozen=True)
class MetricFamily:
    """Metrics computed together from the counts.

    Attributes
    ----------
    names : tuple of str
        The metric names this family produces, in report order.
    compute : callable
        ``compute(counts, wanted, options, gt_weights) -> {name: value}`` for the wanted subset of
        ``names``; ``gt_weights`` is None or the checked weights (only for a ``weighted`` family).
    needs_pairs : frozenset of str
        The names among ``names`` that need N >= 2 and M >= 2.
    weighted : bool
        Whether the family's metrics have a form with annotation weights (``gt_weights=``).
    """

    names: tuple[str, ...]
    compute: Callable[[PairCounts, set[str], Options, object], dict[str, object]]
    needs_pairs: frozenset[str] = frozenset()
    weighted: bool = False


def _ged_family(counts: PairCounts, wanted: set[str], conv: Options, gt_weights: object) -> dict[str, object]:
    t = ged_terms_from_counts(counts, gt_weights=gt_weights, conventions=conv)
    return {
        "ged": t.ged,
        "ged_cross": t.cross,
        "ged_sample_diversity": t.sample_diversity,
        "ged_annotator_diversity": t.annotator_diversity,
    }


def _ci_family(counts: PairCounts, wanted: set[str], conv: Options, gt_weights: object) -> dict[str, object]:
    if wanted & {"ci", "ci_harmonic", "diversity_agreement"}:
        r = collective_insight_from_counts(counts, conventions=conv)
        return {
            "ci": r.ci_harmonic if conv.ci_form == "harmonic" else r.ci,
            "ci_harmonic": r.ci_harmonic,
            "combined_sensitivity": r.combined_sensitivity,
            "max_dice_matching": r.max_dice_matching,
            "diversity_agreement": r.diversity_agreement,
        }
    out: dict[str, object] = {}
    if "combined_sensitivity" in wanted:
        out["combined_sensitivity"] = combined_sensitivity_from_counts(counts)
    if "max_dice_matching" in wanted:
        out["max_dice_matching"] = max_dice_matching_from_counts(counts)
    return out


def _matching_family(counts: PairCounts, wanted: set[str], conv: Options, gt_weights: object
                     ) -> dict[str, object]:
    # HM-IoU matches on IoU whatever the similarity option says (that option is the matching functions')
    return {"hm_iou": hungarian_iou_from_counts(counts, similarity="iou", gt_weights=gt_weights,
                                                conventions=conv)}


#: Families of metrics known to :func:`evaluate`, in report order.
FAMILIES: list[MetricFamily] = [
    MetricFamily(
        ("ged", "ged_cross", "ged_sample_diversity", "ged_annotator_diversity"), _ged_family, weighted=True
    ),
    # CI (Rahman et al.): unions of the annotations, a max over samples per annotation and the range of
    # the pairwise variances have no published weighted form: with gt_weights they are refused
    MetricFamily(
        ("ci", "ci_harmonic", "combined_sensitivity", "max_dice_matching", "diversity_agreement"),
        _ci_family,
        frozenset({"ci", "ci_harmonic", "diversity_agreement"}),
    ),
    MetricFamily(("hm_iou",), _matching_family, weighted=True),
]

#: The metrics :func:`evaluate` computes by default (``metrics=None``), in report order.
METRICS: tuple[str, ...] = tuple(name for family in FAMILIES for name in family.names)

# ---- the rater-vote family (issue 17): read the vote table (binary inputs, same pass as the pairwise
# counts) or the per-pixel frequencies (soft inputs); asked for by name, or all of it as "raters".
#: Every metric name :func:`evaluate` accepts: :data:`METRICS` and the rater-vote metrics.
ALL_METRICS: tuple[str, ...] = METRICS + RATER_METRICS
#: The metrics of :data:`ALL_METRICS` that honour ``gt_weights=`` (the others refuse it, see
#: :func:`check_weighted`).
WEIGHTED_METRICS: tuple[str, ...] = tuple(
    name for family in FAMILIES if family.weighted for name in family.names
) + RATER_METRICS


def _raters_family(votes: object, wanted: set[str], conv: Options, batch: bool,
                   per_image: list[np.ndarray] | None) -> dict[str, object]:
    """``votes``: vote tables (:class:`~ambiseg_metrics.VoteCounts`, binary inputs) or per-image groups;
    ``per_image``: the checked annotation weights of every image (None: uniform)."""
    if isinstance(votes, VoteCounts):
        if per_image is not None and not all(is_uniform(w) for w in per_image):
            raise ValueError("gt_weights: votes= holds vote tables, which count the raters unweighted; for "
                             "weighted rater-vote metrics pass votes=rater_votes(preds, gts, gt_weights=...)")
        return rater_metrics_from_counts(votes, classes=conv.calibration_classes, wanted=wanted)
    if per_image is not None:
        for i, (v, w) in enumerate(zip(votes, per_image, strict=True)):  # type: ignore[call-overload]
            if v.gt_weights.shape != w.shape or not np.allclose(v.gt_weights, w, rtol=0.0, atol=1e-12):
                raise ValueError(
                    f"gt_weights (image {i}) {w.tolist()} differ from the weights votes= was made with, "
                    f"{v.gt_weights.tolist()}: pass rater_votes(preds, gts, gt_weights=...) with the same "
                    "weights"
                )
    return rater_metrics_from_votes(votes, batch=batch, classes=conv.calibration_classes, wanted=wanted)


def check_weighted(
    chosen: list[str], gt_weights: object, n_gts: list[int], batch: bool
) -> list[np.ndarray] | None:
    """``gt_weights`` checked once for the chosen metrics: the (M,) weights of every image, in input order
    (None stays None).

    Raises
    ------
    ValueError
        A chosen metric has no weighted form (not in :data:`WEIGHTED_METRICS`), or the weights are
        malformed (shape, sign, sum; see :func:`~ambiseg_metrics.core.weights.check_gt_weights`).
    """
    if gt_weights is None:
        return None
    refused = [m for m in chosen if m not in WEIGHTED_METRICS]
    if refused:
        raise ValueError(
            f"gt_weights: {', '.join(refused)} ha{'s' if len(refused) == 1 else 've'} no weighted form "
            "(the CI family: unions of the annotations, the best sample per annotation, the range of the "
            f"pairwise variances); with gt_weights choose metrics among {', '.join(WEIGHTED_METRICS)}"
        )
    return check_gt_weights(gt_weights, n_gts, batch)


def check_metrics(metrics: Iterable[str] | str | None) -> list[str]:
    """The chosen metric names, checked (None: all of :data:`METRICS`; a comma-separated string works;
    ``"raters"`` stands for every rater-vote metric)."""
    if metrics is None:
        return list(METRICS)
    if isinstance(metrics, str):
        metrics = [m.strip() for m in metrics.split(",") if m.strip()]
    expanded = [n for m in metrics for n in (RATER_METRICS if m == "raters" else (m,))]
    chosen = list(dict.fromkeys(expanded))
    unknown = [m for m in chosen if m not in ALL_METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {', '.join(ALL_METRICS)} (or 'raters')")
    if not chosen:
        raise ValueError("metrics is empty; choose at least one of " + ", ".join(ALL_METRICS))
    return chosen


def resolve_evaluation(
    metrics: Iterable[str] | str | None,
    conventions: str | Conventions | None,
    options: dict[str, object],
    caller: str = "evaluate()",
) -> tuple[list[str], Options]:
    """The checked metric names and the resolved options of an :func:`evaluate`-like entry point.

    ``options`` are the keyword arguments the caller received (names from
    :func:`~ambiseg_metrics.options.evaluate_options`); any other name is a TypeError. Raises before any
    pixel is read.
    """
    chosen = check_metrics(metrics)
    resolved = resolve_options(conventions, accepted=evaluate_options(), caller=caller, **options)
    return chosen, resolved


def _read(counts: PairCounts, chosen: list[str], conv: Options, votes: object,
          per_image: list[np.ndarray] | None) -> dict[str, float | np.ndarray]:
    """The chosen metrics from the counts (and votes), with checked per-image weights (or None)."""
    wanted = set(chosen)
    rater_wanted = wanted & set(RATER_METRICS)
    if rater_wanted and votes is None:
        raise ValueError("rater-vote metrics need votes= (use evaluate(), or pass rater_votes(...))")
    weights = None if per_image is None else (per_image if counts.batch else per_image[0])
    values: dict[str, object] = {}
    for family in FAMILIES:
        subset = wanted & set(family.names)
        if subset:
            values.update(family.compute(counts, subset, conv, weights))
    if rater_wanted:
        values.update(_raters_family(votes, rater_wanted, conv, counts.batch, per_image))
    return {name: values[name] for name in chosen}  # type: ignore[misc]


_WEIGHTS_NOTE = """    Honoured by the metrics of :data:`WEIGHTED_METRICS`: the GED and its terms (weighted
    expectations over annotations), HM-IoU (optimal transport with masses 1/N and w_m) and the
    rater-vote metrics (f = Σ w_m Y_m). The CI family (ci, ci_harmonic, combined_sensitivity,
    max_dice_matching, diversity_agreement) has no weighted form: asking for any of it with gt_weights
    raises ValueError."""


@fill_doc(conventions=CONVENTIONS_DOC, weights=GT_WEIGHTS_DOC + "\n" + _WEIGHTS_NOTE)
def evaluate_counts(
    counts: PairCounts,
    *,
    metrics: Iterable[str] | str | None = None,
    conventions: str | Conventions | None = None,
    votes: object = None,
    gt_weights: object = None,
    **options: object,
) -> dict[str, float | np.ndarray]:
    """Like :func:`evaluate`, from precomputed :func:`~ambiseg_metrics.pair_counts`.

    Parameters
    ----------
    counts : PairCounts
    metrics : iterable of str or str, optional
        As for :func:`evaluate`.
    {conventions}
    votes : VoteCounts or per-image pixel groups, optional
        Needed by the rater-vote metrics: :func:`~ambiseg_metrics.vote_counts` of the same binary inputs,
        or the per-image pixel groups of :func:`~ambiseg_metrics.metrics.raters.rater_votes` (soft inputs).
        With non-uniform ``gt_weights``: pixel groups made with the same weights
        (``rater_votes(preds, gts, gt_weights=...)``).
    {weights}
    **options
        The options of :func:`evaluate`; ``threshold`` is not used here (the counts are already binarised).
    """
    chosen, conv = resolve_evaluation(metrics, conventions, options, "evaluate_counts()")
    n_gts = n_gt_per_image(counts.n_images, counts.blocks)
    per_image = check_weighted(chosen, gt_weights, n_gts, counts.batch)
    return _read(counts, chosen, conv, votes, per_image)


@fill_doc(inputs=INPUT_RULES_DOC, conventions=CONVENTIONS_DOC, weights=GT_WEIGHTS_DOC + "\n" + _WEIGHTS_NOTE,
          options=options_doc(n for n in evaluate_options() if n != "threshold"))  # threshold: in inputs
def evaluate(
    preds: object,
    gts: object,
    *,
    batch: bool = False,
    metrics: Iterable[str] | str | None = None,
    conventions: str | Conventions | None = None,
    gt_weights: object = None,
    **options: object,
) -> dict[str, float | np.ndarray]:
    """Compute several metrics of one image (or a batch) from a single pass over the pixels.

    Every option (and ``gt_weights``) is checked, and the preset resolved, before any pixel is read.

    Parameters
    ----------
    {inputs}
    metrics : iterable of str or str, optional
        Names from :data:`ALL_METRICS` (a comma-separated string works too); default: :data:`METRICS`.
        ``ci``, ``ci_harmonic`` and ``diversity_agreement`` need N >= 2 and M >= 2. The rater-vote
        metrics (:data:`~ambiseg_metrics.RATER_METRICS`, all of them with the name ``"raters"``) are
        computed only when asked for; they read float samples as probabilities (averaged, not
        thresholded, see :mod:`ambiseg_metrics.metrics.raters`), and for bool/integer inputs their vote
        tables come from the same pass as the pairwise counts.
    {conventions}
    {weights}
    {options}

    Returns
    -------
    dict
        metric name -> float (one image) or array of B floats (``batch=True``), in the order asked.

    Examples
    --------
    >>> import numpy as np
    >>> from ambiseg_metrics import evaluate
    >>> masks = np.zeros((2, 4, 4), bool); masks[0, :2] = True; masks[1, 1:3] = True
    >>> r = evaluate(masks, masks, metrics=["ged", "ci"])
    >>> r["ged"], r["ci"]
    (0.0, 1.0)
    """
    chosen, conv = resolve_evaluation(metrics, conventions, options)
    per_image = None
    if gt_weights is not None:  # M of every image from the validated views (no pixel read)
        n_images, groups = prepare_inputs(preds, gts, batch)
        per_image = check_weighted(chosen, gt_weights, n_gt_per_image(n_images, groups), bool(batch))
    votes = None
    if set(chosen) & set(RATER_METRICS):
        if isinstance(preds, np.ndarray) and isinstance(gts, np.ndarray):
            binary = preds.dtype.kind in "biu" and gts.dtype.kind in "biu"
        else:  # lists, tensors: the validated views tell which dtypes came in
            _, groups = prepare_inputs(preds, gts, batch)
            binary = all(c.dtype.kind == "u" for g in groups for c in (*g.preds, *g.gts))
        uniform = per_image is None or all(is_uniform(w) for w in per_image)
        if binary and uniform:  # one fused pass: pairwise counts and vote tables
            counts, votes = pair_and_vote_counts(preds, gts, batch=batch, threshold=conv.threshold)
        else:  # soft samples are averaged, not thresholded; weighted raters: the per-pixel path
            counts = pair_counts(preds, gts, batch=batch, threshold=conv.threshold)
            weights = None if per_image is None else (per_image if batch else per_image[0])
            votes = rater_votes(preds, gts, batch=batch, gt_weights=weights)
    else:
        counts = pair_counts(preds, gts, batch=batch, threshold=conv.threshold)
    return _read(counts, chosen, conv, votes, per_image)
