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

from .conventions import Conventions, get_convention, resolve_conventions
from .core._validate import INPUT_RULES_DOC, prepare_inputs
from .core.counts import PairCounts, VoteCounts, pair_and_vote_counts, pair_counts
from .metrics.collective_insight import (
    _dmax_block,
    _sensitivity_block,
    collective_insight_from_counts,
)
from .metrics.ged import ged_terms_from_counts
from .metrics.matching import hungarian_iou_from_counts
from .metrics.raters import RATER_METRICS, rater_metrics_from_counts, rater_metrics_from_votes, rater_votes

__all__ = ["ALL_METRICS", "METRICS", "MetricFamily", "evaluate", "evaluate_counts"]

@dataclass(frozen=True)
class MetricFamily:
    """Metrics computed together from the counts.

    Attributes
    ----------
    names : tuple of str
        The metric names this family produces, in report order.
    compute : callable
        ``compute(counts, wanted, conventions) -> {name: value}`` for the wanted subset of ``names``.
    needs_pairs : frozenset of str
        The names among ``names`` that need N >= 2 and M >= 2.
    """

    names: tuple[str, ...]
    compute: Callable[[PairCounts, set[str], Conventions], dict[str, object]]
    needs_pairs: frozenset[str] = frozenset()


def _ged_family(counts: PairCounts, wanted: set[str], conv: Conventions) -> dict[str, object]:
    t = ged_terms_from_counts(
        counts, estimator=conv.estimator, distance=conv.distance, empty_pair=conv.empty_pair,
        pair_average=conv.pair_average,
    )
    return {
        "ged": t.ged,
        "ged_cross": t.cross,
        "ged_sample_diversity": t.sample_diversity,
        "ged_annotator_diversity": t.annotator_diversity,
    }


def _ci_family(counts: PairCounts, wanted: set[str], conv: Conventions) -> dict[str, object]:
    if wanted & {"ci", "ci_harmonic", "diversity_agreement"}:
        r = collective_insight_from_counts(counts, variance=conv.variance)
        return {
            "ci": r.ci_harmonic if conv.ci_form == "harmonic" else r.ci,
            "ci_harmonic": r.ci_harmonic,
            "combined_sensitivity": r.combined_sensitivity,
            "max_dice_matching": r.max_dice_matching,
            "diversity_agreement": r.diversity_agreement,
        }
    out: dict[str, object] = {}
    if "combined_sensitivity" in wanted:
        out["combined_sensitivity"] = counts.map(_sensitivity_block)
    if "max_dice_matching" in wanted:
        out["max_dice_matching"] = counts.map(_dmax_block)
    return out


def _matching_family(counts: PairCounts, wanted: set[str], conv: Conventions) -> dict[str, object]:
    return {"hm_iou": hungarian_iou_from_counts(counts, empty_pair=conv.empty_pair)}


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


def _raters_family(votes: object, wanted: set[str], conv: Conventions, batch: bool) -> dict[str, object]:
    """``votes``: vote tables (:class:`~ambiseg_metrics.VoteCounts`, binary inputs) or per-image groups."""
    if isinstance(votes, VoteCounts):
        return rater_metrics_from_counts(votes, classes=conv.calibration_classes, wanted=wanted)
    return rater_metrics_from_votes(votes, batch=batch, classes=conv.calibration_classes, wanted=wanted)


def _check_metrics(metrics: Iterable[str] | None) -> list[str]:
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


_DEFAULTS = {"estimator": "v-statistic", "distance": "iou", "variance": "dice", "threshold": 0.5}


def _resolve(
    conventions: str | Conventions | None, estimator: str, distance: str, variance: str
) -> Conventions:
    """The conventions in force: ``conventions`` (the defaults when None) with every argument passed with
    a value other than its default on top (:func:`~ambiseg_metrics.conventions.resolve_conventions`,
    which also validates every choice)."""
    passed = {"estimator": estimator, "distance": distance, "variance": variance}
    return resolve_conventions(conventions, **{k: v for k, v in passed.items() if v != _DEFAULTS[k]})


def evaluate_counts(
    counts: PairCounts,
    *,
    metrics: Iterable[str] | None = None,
    estimator: str = "v-statistic",
    distance: str = "iou",
    variance: str = "dice",
    conventions: str | Conventions | None = None,
    votes: object = None,
) -> dict[str, float | np.ndarray]:
    """Like :func:`evaluate`, from precomputed :func:`~ambiseg_metrics.pair_counts`.

    The conventions' ``threshold`` is not used here (the counts are already binarised). Rater-vote
    metrics need ``votes``: :func:`~ambiseg_metrics.vote_counts` of the same binary inputs, or the per-image
    pixel groups of :func:`~ambiseg_metrics.metrics.raters.rater_votes` (soft inputs).
    """
    chosen = _check_metrics(metrics)
    conv = _resolve(conventions, estimator, distance, variance)
    wanted = set(chosen)
    values: dict[str, object] = {}
    for family in FAMILIES:
        subset = wanted & set(family.names)
        if subset:
            values.update(family.compute(counts, subset, conv))
    if wanted & set(RATER_METRICS):
        if votes is None:
            raise ValueError("rater-vote metrics need votes= (use evaluate(), or pass rater_votes(...))")
        values.update(_raters_family(votes, wanted & set(RATER_METRICS), conv, counts.batch))
    return {name: values[name] for name in chosen}


def evaluate(
    preds: object,
    gts: object,
    *,
    batch: bool = False,
    metrics: Iterable[str] | None = None,
    threshold: float = 0.5,
    estimator: str = "v-statistic",
    distance: str = "iou",
    variance: str = "dice",
    conventions: str | Conventions | None = None,
) -> dict[str, float | np.ndarray]:
    """Compute several metrics of one image (or a batch) from a single pass over the pixels.

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
    estimator, distance : str
        GED options, see :func:`~ambiseg_metrics.ged`.
    variance : str
        D_a option, see :func:`~ambiseg_metrics.diversity_agreement`.
    conventions : str or Conventions, optional
        A preset name from :data:`~ambiseg_metrics.PRESETS` (``"cimd"``, ``"phiseg"``, ``"kohl"``,
        ``"mose"``, ``"ccdm"``, ``"mbh"``, ``"qubiq"``, ``"ssn"``, ``"values"``) or a
        :class:`~ambiseg_metrics.Conventions`: sets the empty-pair value, estimator, distance, variance,
        threshold and what ``ci`` reports (paper form or harmonic mean). An argument given with a value
        other than its default overrides the preset.

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
    if conventions is not None and threshold == _DEFAULTS["threshold"]:
        threshold = get_convention(conventions).threshold
    votes = None
    if set(_check_metrics(metrics)) & set(RATER_METRICS):
        if isinstance(preds, np.ndarray) and isinstance(gts, np.ndarray):
            binary = preds.dtype.kind in "biu" and gts.dtype.kind in "biu"
        else:  # lists, tensors: the validated views tell which dtypes came in
            _, groups = prepare_inputs(preds, gts, batch)
            binary = all(c.dtype.kind == "u" for g in groups for c in (*g.preds, *g.gts))
        if binary:  # one fused pass: pairwise counts and vote tables
            counts, votes = pair_and_vote_counts(preds, gts, batch=batch, threshold=threshold)
        else:  # soft samples are averaged, not thresholded: the per-pixel path
            counts = pair_counts(preds, gts, batch=batch, threshold=threshold)
            votes = rater_votes(preds, gts, batch=batch)
    else:
        counts = pair_counts(preds, gts, batch=batch, threshold=threshold)
    return evaluate_counts(
        counts, metrics=metrics, estimator=estimator, distance=distance, variance=variance,
        conventions=conventions, votes=votes,
    )


evaluate.__doc__ = evaluate.__doc__.replace("{inputs}", INPUT_RULES_DOC)
