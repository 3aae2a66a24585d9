"""ambiseg-metrics: exact, fast metrics for ambiguous medical image segmentation.

Each image has M expert annotations and a model gives N sampled masks. All metrics are readouts of one
matrix of pairwise intersection counts, computed once per image by a numba kernel on bit-packed masks.

>>> import numpy as np
>>> from ambiseg_metrics import ci_score, ged
>>> rng = np.random.default_rng(0)
>>> preds = rng.random((16, 64, 64)) > 0.5      # N = 16 samples
>>> gts = rng.random((4, 64, 64)) > 0.5         # M = 4 annotations
>>> 0.0 <= ci_score(preds, gts) <= 1.0 and ged(preds, gts) >= 0.0
True
"""

from .accumulate import AccumulatedMetrics, MetricAccumulator
from .conventions import PRESETS, Conventions, get_convention
from .core._validate import InputError
from .core.counts import CountBlock, PairCounts, VoteCounts, pair_and_vote_counts, pair_counts, vote_counts
from .core.pairwise import dice_from_counts, iou_from_counts
from .evaluation import ALL_METRICS, METRICS, WEIGHTED_METRICS, evaluate, evaluate_counts
from .files.cases import CaseTable, EvalOptions, evaluate_case, evaluate_cases
from .files.compare import ComparisonTable, compare_runs
from .files.io import InputFileError, discover_cases
from .metrics.collective_insight import (
    CollectiveInsight,
    ci_from_components,
    ci_score,
    collective_insight,
    collective_insight_from_counts,
    combined_sensitivity,
    diversity_agreement,
    max_dice_matching,
)
from .metrics.ged import (
    GEDTerms,
    annotator_diversity,
    ged,
    ged_terms,
    ged_terms_from_counts,
    sample_diversity,
)
from .metrics.matching import (
    hungarian_from_matrix,
    hungarian_iou,
    hungarian_iou_from_counts,
    similarity_matrix,
)
from .metrics.multiclass import (
    multiclass_ged,
    multiclass_ged_terms,
    multiclass_hungarian_iou,
    multiclass_similarity,
)
from .metrics.ncc import dice_soft, ncc
from .metrics.raters import (
    RATER_METRICS,
    RaterCalibration,
    UncertaintyErrorOverlap,
    consensus_dice,
    qubiq_score,
    rater_calibration,
    rater_metrics,
    soft_dice,
    uncertainty_error_overlap,
    volume_crps,
)

__version__ = "0.1.0"

__all__ = [
    "CaseTable",
    "EvalOptions",
    "InputFileError",
    "discover_cases",
    "evaluate_case",
    "evaluate_cases",
    "ComparisonTable",
    "compare_runs",
    "CollectiveInsight",
    "Conventions",
    "CountBlock",
    "GEDTerms",
    "METRICS",
    "AccumulatedMetrics",
    "MetricAccumulator",
    "PRESETS",
    "PairCounts",
    "__version__",
    "annotator_diversity",
    "ci_from_components",
    "ci_score",
    "collective_insight",
    "collective_insight_from_counts",
    "combined_sensitivity",
    "dice_from_counts",
    "dice_soft",
    "diversity_agreement",
    "evaluate",
    "evaluate_counts",
    "ged",
    "ged_terms",
    "ged_terms_from_counts",
    "get_convention",
    "hungarian_from_matrix",
    "hungarian_iou",
    "hungarian_iou_from_counts",
    "iou_from_counts",
    "max_dice_matching",
    "multiclass_ged",
    "multiclass_ged_terms",
    "multiclass_hungarian_iou",
    "multiclass_similarity",
    "ncc",
    "pair_counts",
    "sample_diversity",
    "similarity_matrix",
    # rater-vote metrics (issue 17)
    "ALL_METRICS",
    "RATER_METRICS",
    "RaterCalibration",
    "UncertaintyErrorOverlap",
    "VoteCounts",
    "consensus_dice",
    "pair_and_vote_counts",
    "qubiq_score",
    "rater_calibration",
    "rater_metrics",
    "soft_dice",
    "uncertainty_error_overlap",
    "volume_crps",
    "vote_counts",
    "InputError",
    "WEIGHTED_METRICS",
]
