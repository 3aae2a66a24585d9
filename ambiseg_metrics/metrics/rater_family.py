"""All rater-vote metrics of an image (or a batch) from one set of vote tables or pixel groups.

The engine behind :mod:`ambiseg_metrics.metrics.raters` (whose functions document each metric) and the
``raters`` family of :func:`~ambiseg_metrics.evaluate`: checks the options, reads the vote tables
(binary inputs: one compiled loop over each block's images, :mod:`ambiseg_metrics.core._rater_kernel`,
whose numpy reference is :mod:`~ambiseg_metrics.metrics.rater_tables`) or the per-pixel groups
(:mod:`~ambiseg_metrics.metrics.rater_readouts`), and collects the values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..core._validate import check_choice
from ..core.counts import VoteCounts, vote_counts
from . import rater_readouts as ro
from .rater_readouts import rater_votes, uses_table

__all__ = [
    "CALIBRATION_CLASSES",
    "COMPARISONS",
    "QUBIQ_THRESHOLDS",
    "RATER_METRICS",
    "RaterCalibration",
    "UncertaintyErrorOverlap",
    "calibration",
    "check_bins",
    "check_thresholds",
    "collect",
    "rater_metrics",
    "rater_metrics_from_counts",
    "rater_metrics_from_votes",
]

#: The QUBIQ challenge thresholds 0.1, 0.2, ..., 0.9 (written as decimals, so p = 3/10 > 0.3 is False).
QUBIQ_THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
COMPARISONS = (">", ">=")
CALIBRATION_CLASSES = ("foreground", "both")
#: Names produced by :func:`rater_metrics` (and the ``raters`` family of :func:`~ambiseg_metrics.evaluate`).
RATER_METRICS = (
    "qubiq",
    "soft_dice",
    "ece",
    "mce",
    "ace",
    "brier",
    "ueo",
    "ueo_auroc",
    "ueo_auprc",
    "volume_crps",
    "consensus_dice",
)


@dataclass(frozen=True)
class RaterCalibration:
    """Calibration of p against the raters' frequency f (floats, or arrays of B values with ``batch``).

    Attributes
    ----------
    ece, mce, ace, brier : float or ndarray
        Expected, maximum and adaptive calibration error, Brier score Σ(p - f)²/P.
    bin_count, bin_mean_pred, bin_mean_rater : ndarray, shape (n_bins,) or (B, n_bins)
        Reliability curve of the foreground class: pixels per equal-width bin of p, mean p and mean f
        in the bin (NaN for an empty bin).
    """

    ece: float | np.ndarray
    mce: float | np.ndarray
    ace: float | np.ndarray
    brier: float | np.ndarray
    bin_count: np.ndarray
    bin_mean_pred: np.ndarray
    bin_mean_rater: np.ndarray


@dataclass(frozen=True)
class UncertaintyErrorOverlap:
    """UEO and the detection scores of u = p(1 - p) for the error e (floats or arrays of B values)."""

    ueo: float | np.ndarray
    auroc: float | np.ndarray
    auprc: float | np.ndarray


def collect(values: list[float], batch: bool) -> float | np.ndarray:
    """The per-image values as an array (``batch``), or the one image's value as a float."""
    arr = np.asarray(values, dtype=np.float64)
    return arr if batch else float(arr[0])


def check_thresholds(thresholds: Sequence[float]) -> np.ndarray:
    t = np.asarray([float(x) for x in thresholds], dtype=np.float64)
    if t.size == 0 or np.any(~np.isfinite(t)) or np.any((t < 0) | (t >= 1)):
        raise ValueError(
            f"thresholds must be a non-empty sequence of levels in [0, 1); got {list(thresholds)}"
        )
    return t


def check_bins(n_bins: int) -> int:
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer; got {n_bins!r}")
    return int(n_bins)


def calibration(votes: list[ro.Votes], n_bins: int, classes: str, batch: bool) -> RaterCalibration:
    rows = [ro.calibration(v, n_bins, classes == "both") for v in votes]
    curves = np.stack([r[4] for r in rows])  # (B, 3, n_bins)
    scalars = [collect([r[j] for r in rows], batch) for j in range(4)]
    pick = (lambda a: a) if batch else (lambda a: a[0])
    return RaterCalibration(*scalars, pick(curves[:, 0]), pick(curves[:, 1]), pick(curves[:, 2]))


def rater_metrics_from_votes(
    votes: list[ro.Votes],
    *,
    batch: bool,
    thresholds: Sequence[float] = QUBIQ_THRESHOLDS,
    comparison: str = ">",
    n_bins: int = 10,
    classes: str = "foreground",
    wanted: Sequence[str] = RATER_METRICS,
) -> dict[str, float | np.ndarray]:
    """Every metric of :data:`RATER_METRICS` (or those in ``wanted``) from the pixel groups of each image."""
    check_choice("comparison", comparison, COMPARISONS)
    check_choice("classes", classes, CALIBRATION_CLASSES)
    t, n_bins, want = check_thresholds(thresholds), check_bins(n_bins), set(wanted)
    out: dict[str, float | np.ndarray] = {}
    if "qubiq" in want:
        out["qubiq"] = collect([ro.qubiq(v, t, comparison == ">=") for v in votes], batch)
    if "soft_dice" in want:
        out["soft_dice"] = collect([ro.soft_dice(v) for v in votes], batch)
    if want & {"ece", "mce", "ace", "brier"}:
        cal = calibration(votes, n_bins, classes, batch)
        out.update(ece=cal.ece, mce=cal.mce, ace=cal.ace, brier=cal.brier)
    if want & {"ueo", "ueo_auroc", "ueo_auprc"}:
        rows = [ro.ueo(v) for v in votes]
        out.update(
            zip(
                ("ueo", "ueo_auroc", "ueo_auprc"),
                (collect([r[j] for r in rows], batch) for j in range(3)),
                strict=True,
            )
        )
    if "volume_crps" in want:
        out["volume_crps"] = collect([ro.volume_crps(v) for v in votes], batch)
    if "consensus_dice" in want:
        out["consensus_dice"] = collect([ro.consensus_dice(v) for v in votes], batch)
    return {k: out[k] for k in RATER_METRICS if k in want}


def rater_metrics_from_counts(
    counts: VoteCounts,
    *,
    thresholds: Sequence[float] = QUBIQ_THRESHOLDS,
    comparison: str = ">",
    n_bins: int = 10,
    classes: str = "foreground",
    wanted: Sequence[str] = RATER_METRICS,
) -> dict[str, float | np.ndarray]:
    """The rater-vote metrics from precomputed :func:`~ambiseg_metrics.vote_counts` (binary inputs), read
    from each block's vote tables by one compiled loop over its images (numba, imported on first use)."""
    from ..core._rater_kernel import table_readouts
    check_choice("comparison", comparison, COMPARISONS)
    check_choice("classes", classes, CALIBRATION_CLASSES)
    t, n_bins, want = check_thresholds(thresholds), check_bins(n_bins), set(wanted)
    names = [k for k in RATER_METRICS if k in want]
    out = {k: np.empty(counts.n_images) for k in names}
    for blk in counts.blocks:
        values = table_readouts(blk.table, blk.areas, want, t, comparison == ">=", n_bins, classes == "both")
        for k in names:
            out[k][blk.index] = values[k]
    return {k: (v if counts.batch else float(v[0])) for k, v in out.items()}


def rater_metrics(
    preds: object, gts: object, *, batch: bool = False, gt_weights: object = None, **options: object
) -> dict[str, float | np.ndarray]:
    """All rater-vote metrics from one pass (``options``: thresholds, comparison, n_bins, classes, wanted).

    Binary inputs with uniform weights: vote tables, read vectorised over the images; otherwise the
    per-pixel path."""
    if uses_table(preds, gts, batch=batch, gt_weights=gt_weights):
        return rater_metrics_from_counts(vote_counts(preds, gts, batch=batch), **options)  # type: ignore[arg-type]
    votes = rater_votes(preds, gts, batch=batch, gt_weights=gt_weights)
    return rater_metrics_from_votes(votes, batch=bool(batch), **options)  # type: ignore[arg-type]
