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

from .collective_insight import (
    CollectiveInsight,
    ci_from_components,
    ci_score,
    collective_insight,
    collective_insight_from_counts,
    combined_sensitivity,
    diversity_agreement,
    max_dice_matching,
)
from .counts import CountBlock, PairCounts, pair_counts
from .evaluation import METRICS, evaluate, evaluate_counts
from .ged import GEDTerms, ged, ged_terms, ged_terms_from_counts
from .pairwise import dice_from_counts, iou_from_counts

__version__ = "0.1.0"

__all__ = [
    "METRICS",
    "CollectiveInsight",
    "CountBlock",
    "GEDTerms",
    "PairCounts",
    "__version__",
    "ci_from_components",
    "ci_score",
    "collective_insight",
    "collective_insight_from_counts",
    "combined_sensitivity",
    "dice_from_counts",
    "diversity_agreement",
    "evaluate",
    "evaluate_counts",
    "ged",
    "ged_terms",
    "ged_terms_from_counts",
    "iou_from_counts",
    "max_dice_matching",
    "pair_counts",
]
