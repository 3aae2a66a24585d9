"""The one NaN-aware summary of per-image (or per-case) metric values, and its bootstrap interval.

A NaN marks a value that is undefined for that image (e.g. a GED term whose every pair was skipped under
the ``kohl`` conventions): it is left out of every statistic and counted in ``n_undefined``.
:class:`~ambiseg_metrics.MetricAccumulator`, the torchmetrics adapter and the reports of ``ambiseg-eval``
all summarise through :func:`nan_summary`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["Summary", "bootstrap_ci", "nan_summary"]


@dataclass(frozen=True)
class Summary:
    """Statistics of the defined (non-NaN) values of one metric.

    Attributes
    ----------
    n : int
        Number of defined values.
    n_undefined : int
        Number of NaN values (left out).
    mean, std, median : float
        Of the defined values; ``std`` is the sample standard deviation (``ddof=1``). NaN when there are
        too few values (none; ``std``: fewer than 2).
    ci_low, ci_high : float
        Seeded percentile-bootstrap interval of the mean (NaN when not asked for or no value).
    """

    n: int
    n_undefined: int
    mean: float
    std: float
    median: float
    ci_low: float
    ci_high: float


def bootstrap_ci(
    values: np.ndarray, *, n_boot: int = 10_000, confidence: float = 0.95, seed: int = 0, chunk: int = 1000
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean of ``values``.

    ``n_boot`` resamples of the cases with replacement, drawn from ``numpy.random.default_rng(seed)``
    (so the interval is reproducible); the interval is the ``(1 - confidence) / 2`` and
    ``(1 + confidence) / 2`` quantiles of the resampled means. One value gives ``(v, v)``; none gives NaNs.
    """
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"values must be one-dimensional; got shape {x.shape}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1); got {confidence!r}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1; got {n_boot!r}")
    if x.size == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot, dtype=np.float64)
    for start in range(0, n_boot, chunk):  # bounded memory for large cohorts
        stop = min(start + chunk, n_boot)
        idx = rng.integers(0, x.size, size=(stop - start, x.size))
        means[start:stop] = x[idx].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return float(low), float(high)


def nan_summary(values: object, *, n_boot: int = 0, confidence: float = 0.95, seed: int = 0) -> Summary:
    """Summarise ``values`` (1-D) leaving NaNs out; with ``n_boot > 0`` also the bootstrap CI of the mean.

    Examples
    --------
    >>> from ambiseg_metrics.summary import nan_summary
    >>> s = nan_summary([0.5, float("nan"), 1.0])
    >>> s.n, s.n_undefined, s.mean
    (2, 1, 0.75)
    """
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    defined = ~np.isnan(x)
    ok = x[defined]
    n = int(ok.size)
    low, high = (math.nan, math.nan)
    if n_boot:
        low, high = bootstrap_ci(ok, n_boot=n_boot, confidence=confidence, seed=seed)
    return Summary(
        n=n,
        n_undefined=int(x.size - n),
        mean=float(ok.mean()) if n else math.nan,
        std=float(ok.std(ddof=1)) if n > 1 else math.nan,
        median=float(np.median(ok)) if n else math.nan,
        ci_low=low,
        ci_high=high,
    )
