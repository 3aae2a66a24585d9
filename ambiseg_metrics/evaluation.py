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
from .core._validate import INPUT_RULES_DOC
from .core.counts import PairCounts, pair_counts
from .core.docfill import fill_doc
from .metrics.collective_insight import (
    collective_insight_from_counts,
    combined_sensitivity_from_counts,
    max_dice_matching_from_counts,
)
from .metrics.ged import ged_terms_from_counts
from .metrics.matching import hungarian_iou_from_counts
from .options import CONVENTIONS_DOC, evaluate_options, options_doc

__all__ = ["METRICS", "MetricFamily", "check_metrics", "evaluate", "evaluate_counts", "resolve_evaluation"]

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

#: Every metric name :func:`evaluate` knows, in report order.
METRICS: tuple[str, ...] = tuple(name for family in FAMILIES for name in family.names)


def check_metrics(metrics: Iterable[str] | str | None) -> list[str]:
    """The chosen metric names, checked (None: all of :data:`METRICS`; a comma-separated string works)."""
    if metrics is None:
        return list(METRICS)
    if isinstance(metrics, str):
        metrics = [m.strip() for m in metrics.split(",") if m.strip()]
    chosen = list(dict.fromkeys(metrics))
    unknown = [m for m in chosen if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {', '.join(METRICS)}")
    if not chosen:
        raise ValueError("metrics is empty; choose at least one of " + ", ".join(METRICS))
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
    **options: object,
) -> dict[str, float | np.ndarray]:
    """Like :func:`evaluate`, from precomputed :func:`~ambiseg_metrics.pair_counts`.

    Parameters
    ----------
    counts : PairCounts
    metrics : iterable of str or str, optional
        As for :func:`evaluate`.
    {conventions}
    **options
        The options of :func:`evaluate`; ``threshold`` is not used here (the counts are already binarised).
    """
    chosen, conv = resolve_evaluation(metrics, conventions, options, "evaluate_counts()")
    wanted = set(chosen)
    values: dict[str, object] = {}
    for family in FAMILIES:
        subset = wanted & set(family.names)
        if subset:
            values.update(family.compute(counts, subset, conv))
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
        Names from :data:`METRICS` (a comma-separated string works too); default: all of them.
        ``ci``, ``ci_harmonic`` and ``diversity_agreement`` need N >= 2 and M >= 2.
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
    counts = pair_counts(preds, gts, batch=batch, threshold=conv.threshold)
    return evaluate_counts(counts, metrics=chosen, conventions=conv)
