"""The one NaN-aware summary of per-image (or per-case) metric values, and its bootstrap interval.

A NaN marks a value that is undefined for that image (e.g. a GED term whose every pair was skipped under
the ``kohl`` conventions): it is left out of every statistic and counted in ``n_undefined``.
:class:`~ambiseg_metrics.MetricAccumulator`, the torchmetrics adapter and the reports of ``ambiseg-eval``
all summarise through :func:`nan_summary`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Summary", "bootstrap_ci", "bootstrap_cis", "nan_summaries", "nan_summary"]


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
    return bootstrap_cis([values], n_boot=n_boot, confidence=confidence, seed=seed, chunk=chunk)[0]


def bootstrap_cis(
    columns: Sequence[object], *, n_boot: int = 10_000, confidence: float = 0.95, seed: int = 0,
    chunk: int = 1000,
) -> list[tuple[float, float]]:
    """:func:`bootstrap_ci` of each of several columns (e.g. the metrics of one run), bit for bit.

    Each column's interval is the one it gets alone, from its own ``default_rng(seed)`` stream. Columns of
    the same length would draw the same resample indices from that stream, so those are drawn once per
    length and shared (``tests/test_summary.py`` checks the equality); ``python -m
    benchmarks.cli_runner`` times both ways ("bootstrap", "bootstrap-alone").
    """
    xs = [np.asarray(values, dtype=np.float64) for values in columns]
    for x in xs:
        if x.ndim != 1:
            raise ValueError(f"values must be one-dimensional; got shape {x.shape}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1); got {confidence!r}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1; got {n_boot!r}")
    out: list[tuple[float, float]] = [(math.nan, math.nan)] * len(xs)
    alpha = (1.0 - confidence) / 2.0
    for size in sorted({x.size for x in xs if x.size}):
        same = [k for k, x in enumerate(xs) if x.size == size]
        rng = np.random.default_rng(seed)
        means = np.empty((len(same), n_boot), dtype=np.float64)
        for start in range(0, n_boot, chunk):  # bounded memory for large cohorts
            stop = min(start + chunk, n_boot)
            idx = rng.integers(0, size, size=(stop - start, size))
            for row, k in enumerate(same):
                means[row, start:stop] = xs[k][idx].mean(axis=1)
        for row, k in enumerate(same):
            low, high = np.quantile(means[row], [alpha, 1.0 - alpha])
            out[k] = (float(low), float(high))
    return out


def nan_summary(values: object, *, n_boot: int = 0, confidence: float = 0.95, seed: int = 0) -> Summary:
    """Summarise ``values`` (1-D) leaving NaNs out; with ``n_boot > 0`` also the bootstrap CI of the mean.

    Examples
    --------
    >>> from ambiseg_metrics.summary import nan_summary
    >>> s = nan_summary([0.5, float("nan"), 1.0])
    >>> s.n, s.n_undefined, s.mean
    (2, 1, 0.75)
    """
    return nan_summaries([values], n_boot=n_boot, confidence=confidence, seed=seed)[0]


def nan_summaries(
    columns: Sequence[object], *, n_boot: int = 0, confidence: float = 0.95, seed: int = 0
) -> list[Summary]:
    """:func:`nan_summary` of each column, each the same as alone; the bootstrap draws are shared
    between columns with as many defined values (:func:`bootstrap_cis`)."""
    defined = []
    for values in columns:
        x = np.asarray(values, dtype=np.float64).reshape(-1)
        defined.append((x, x[~np.isnan(x)]))
    cis = [(math.nan, math.nan)] * len(defined)
    if n_boot:
        cis = bootstrap_cis([ok for _, ok in defined], n_boot=n_boot, confidence=confidence, seed=seed)
    out = []
    for (x, ok), (low, high) in zip(defined, cis, strict=True):
        n = int(ok.size)
        out.append(Summary(
            n=n,
            n_undefined=int(x.size - n),
            mean=float(ok.mean()) if n else math.nan,
            std=float(ok.std(ddof=1)) if n > 1 else math.nan,
            median=float(np.median(ok)) if n else math.nan,
            ci_low=low,
            ci_high=high,
        ))
    return out
