"""Every metric of an image (or a batch) from one pass over the pixels.

:func:`evaluate` counts the pairwise intersections once (:func:`~ambiseg_metrics.pair_counts`) and reads
all requested metrics from those counts, so asking for ten metrics costs about as much as asking for one.
Metrics are organised in *families* that share a readout (e.g. the GED and its three terms); a family is
computed only when one of its metrics is requested.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from .conventions import Conventions, Options, resolve_options
from .core._validate import INPUT_RULES_DOC, prepare_inputs
from .core.counts import PairCounts, VoteCounts, pair_and_vote_counts, pair_counts
from .core.docfill import fill_doc
from .metrics.collective_insight import (
    collective_insight_from_counts,
    combined_sensitivity_from_counts,
    max_dice_matching_from_counts,
)
from .metrics.ged import ged_terms_from_counts
from .metrics.matching import hungarian_iou_from_counts
from .metrics.raters import RATER_METRICS, rater_metrics_from_counts, rater_metrics_from_votes, rater_votes
from .options import CONVENTIONS_DOC, evaluate_options, options_doc

__all__ = ["ALL_METRICS", "METRICS", "MetricFamily", "check_metrics", "evaluate", "evaluate_counts",
           "resolve_evaluation"]

@dataclass(frozen=True)
class MetricFamily:
    """Metrics computed together from the counts.

    Attributes
    ----------
    names : tuple of str
        The metric names this family produces, in report order.
    compute : callable
        ``compute(counts, wanted, options) -> {name: value}`` for the wanted subset of ``names``.
    needs_pairs : frozenset of str
        The names among ``names`` that need N >= 2 and M >= 2.
    """

    names: tuple[str, ...]
    compute: Callable[[PairCounts, set[str], Options], dict[str, object]]
    needs_pairs: frozenset[str] = frozenset()


def _ged_family(counts: PairCounts, wanted: set[str], conv: Options) -> dict[str, object]:
    t = ged_terms_from_counts(counts, conventions=conv)
    return {
        "ged": t.ged,
        "ged_cross": t.cross,
        "ged_sample_diversity": t.sample_diversity,
        "ged_annotator_diversity": t.annotator_diversity,
    }


def _ci_family(counts: PairCounts, wanted: set[str], conv: Options) -> dict[str, object]:
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


def _matching_family(counts: PairCounts, wanted: set[str], conv: Options) -> dict[str, object]:
    # HM-IoU matches on IoU whatever the similarity option says (that option is the matching functions')
    return {"hm_iou": hungarian_iou_from_counts(counts, similarity="iou", conventions=conv)}


#: Families of metrics known to :func:`evaluate`, in report order.
FAMILIES: list[MetricFamily] = [
    MetricFamily(
        ("ged", "ged_cross", "ged_sample_diversity", "ged_annotator_diversity"), _ged_family
    ),
    MetricFamily(
        ("ci", "ci_harmonic", "combined_sensitivity", "max_dice_matching", "diversity_agreement"),
        _ci_family,
        frozenset({"ci", "ci_harmonic", "diversity_agreement"}),
    ),
    MetricFamily(("hm_iou",), _matching_family),
]

#: The metrics :func:`evaluate` computes by default (``metrics=None``), in report order.
METRICS: tuple[str, ...] = tuple(name for family in FAMILIES for name in family.names)

# ---- the rater-vote family (issue 17): read the vote table (binary inputs, same pass as the pairwise
# counts) or the per-pixel frequencies (soft inputs); asked for by name, or all of it as "raters".
#: Every metric name :func:`evaluate` accepts: :data:`METRICS` and the rater-vote metrics.
ALL_METRICS: tuple[str, ...] = METRICS + RATER_METRICS


def _raters_family(votes: object, wanted: set[str], conv: Options, batch: bool) -> dict[str, object]:
    """``votes``: vote tables (:class:`~ambiseg_metrics.VoteCounts`, binary inputs) or per-image groups."""
    if isinstance(votes, VoteCounts):
        return rater_metrics_from_counts(votes, classes=conv.calibration_classes, wanted=wanted)
    return rater_metrics_from_votes(votes, batch=batch, classes=conv.calibration_classes, wanted=wanted)


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


@fill_doc(conventions=CONVENTIONS_DOC)
def evaluate_counts(
    counts: PairCounts,
    *,
    metrics: Iterable[str] | str | None = None,
    conventions: str | Conventions | None = None,
    votes: object = None,
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
    **options
        The options of :func:`evaluate`; ``threshold`` is not used here (the counts are already binarised).
    """
    chosen, conv = resolve_evaluation(metrics, conventions, options, "evaluate_counts()")
    wanted = set(chosen)
    rater_wanted = wanted & set(RATER_METRICS)
    if rater_wanted and votes is None:
        raise ValueError("rater-vote metrics need votes= (use evaluate(), or pass rater_votes(...))")
    values: dict[str, object] = {}
    for family in FAMILIES:
        subset = wanted & set(family.names)
        if subset:
            values.update(family.compute(counts, subset, conv))
    if rater_wanted:
        values.update(_raters_family(votes, rater_wanted, conv, counts.batch))
    return {name: values[name] for name in chosen}


@fill_doc(inputs=INPUT_RULES_DOC, conventions=CONVENTIONS_DOC,
          options=options_doc(n for n in evaluate_options() if n != "threshold"))  # threshold: in inputs
def evaluate(
    preds: object,
    gts: object,
    *,
    batch: bool = False,
    metrics: Iterable[str] | str | None = None,
    conventions: str | Conventions | None = None,
    **options: object,
) -> dict[str, float | np.ndarray]:
    """Compute several metrics of one image (or a batch) from a single pass over the pixels.

    Every option is checked (and the preset resolved) before any pixel is read.

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
    votes = None
    if set(chosen) & set(RATER_METRICS):
        if isinstance(preds, np.ndarray) and isinstance(gts, np.ndarray):
            binary = preds.dtype.kind in "biu" and gts.dtype.kind in "biu"
        else:  # lists, tensors: the validated views tell which dtypes came in
            _, groups = prepare_inputs(preds, gts, batch)
            binary = all(c.dtype.kind == "u" for g in groups for c in (*g.preds, *g.gts))
        if binary:  # one fused pass: pairwise counts and vote tables
            counts, votes = pair_and_vote_counts(preds, gts, batch=batch, threshold=conv.threshold)
        else:  # soft samples are averaged, not thresholded: the per-pixel path
            counts = pair_counts(preds, gts, batch=batch, threshold=conv.threshold)
            votes = rater_votes(preds, gts, batch=batch)
    else:
        counts = pair_counts(preds, gts, batch=batch, threshold=conv.threshold)
    return evaluate_counts(counts, metrics=chosen, conventions=conv, votes=votes)
