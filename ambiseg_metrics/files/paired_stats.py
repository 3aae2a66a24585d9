"""Paired statistics over cases: one model's per-case values against another's on the same cases.

Everything here works on a vector of paired differences ``d_i = a_i - b_i`` (one per case) and is seeded,
so a comparison is reproducible:

* :func:`paired_bootstrap_ci` — percentile bootstrap interval of the mean difference (the cases are
  resampled with replacement, the pairs kept together);
* :func:`sign_flip_p` — the paired permutation test: under the null hypothesis that the two models are
  exchangeable on every case, each ``d_i`` is as likely to be ``-d_i``; the statistic is ``|mean(d)|``.
  Exact (all ``2**k`` sign patterns of the ``k`` non-zero differences) when ``k <= exact_max``,
  otherwise a seeded Monte Carlo estimate with the ``(1 + hits) / (1 + n_perm)`` correction (never 0);
* :func:`wilcoxon_p` — :func:`scipy.stats.wilcoxon` (two-sided; zero differences dropped), 1.0 when all
  differences are zero;
* :func:`holm` — Holm's step-down correction of a family of p-values (Holm 1979);
* :func:`effect_sizes` — Cohen's ``d_z = mean(d) / sd(d)`` (ddof=1) and the matched-pairs rank-biserial
  correlation ``r = (W+ - W-) / (W+ + W-)`` (Kerby 2014), both with the sign of ``a - b``.

References: Good, *Permutation, Parametric and Bootstrap Tests of Hypotheses* (2005), ch. 3 (the paired
sign-flip test); Holm, S. (1979), Scand. J. Statist. 6, 65-70; Kerby, D. S. (2014), Comprehensive
Psychology 3, 11.IT.3.1.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["effect_sizes", "holm", "paired_bootstrap_ci", "sign_flip_p", "wilcoxon_p"]

#: Differences with ``|d| <= TIE_TOL`` count as ties (win/tie/loss) and as zeros (sign-flip test).
TIE_TOL = 1e-12


def _vector(d: np.ndarray) -> np.ndarray:
    x = np.asarray(d, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"differences must be one-dimensional; got shape {x.shape}")
    if np.isnan(x).any():
        raise ValueError("differences contain NaN; drop the cases where a metric is undefined first")
    return x


def paired_bootstrap_ci(
    d: np.ndarray, *, n_boot: int = 10_000, confidence: float = 0.95, seed: int = 0, chunk: int = 1000
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``mean(d)``: cases resampled with replacement, pairs kept together.

    All-zero differences give ``(0, 0)``; no differences give NaNs.
    """
    x = _vector(d)
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1; got {n_boot!r}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1); got {confidence!r}")
    if x.size == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    for start in range(0, n_boot, chunk):
        stop = min(start + chunk, n_boot)
        means[start:stop] = x[rng.integers(0, x.size, size=(stop - start, x.size))].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return float(low), float(high)


def sign_flip_p(
    d: np.ndarray, *, n_perm: int = 10_000, seed: int = 0, exact_max: int = 16, chunk: int = 2000
) -> tuple[float, bool]:
    """Two-sided paired permutation (sign-flip) p-value of ``mean(d) = 0``; returns ``(p, exact)``.

    Zero differences are unchanged by a flip, so only the ``k`` non-zero ones are flipped: exactly (all
    ``2**k`` patterns, the observed one included) when ``k <= exact_max``, else ``n_perm`` seeded random
    patterns with ``p = (1 + #{|T*| >= |T|}) / (1 + n_perm)``. All-zero differences give ``p = 1``.
    """
    x = _vector(d)
    if n_perm < 1:
        raise ValueError(f"n_perm must be >= 1; got {n_perm!r}")
    nz = x[np.abs(x) > TIE_TOL]
    if nz.size == 0:
        return 1.0, True
    observed = abs(nz.sum())
    tol = 1e-9 * max(observed, np.abs(nz).sum()) + 1e-300  # sums of the same numbers in another order
    k = nz.size
    if k <= exact_max:
        patterns = ((np.arange(2**k)[:, None] >> np.arange(k)) & 1) * 2 - 1  # (2**k, k) of +-1
        stats = np.abs(patterns @ nz)
        return float(np.count_nonzero(stats >= observed - tol) / 2**k), True
    rng = np.random.default_rng(seed)
    hits = 0
    for start in range(0, n_perm, chunk):
        size = min(chunk, n_perm - start)
        signs = rng.integers(0, 2, size=(size, k)) * 2 - 1
        hits += int(np.count_nonzero(np.abs(signs @ nz) >= observed - tol))
    return (1.0 + hits) / (1.0 + n_perm), False


def wilcoxon_p(d: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p-value (:func:`scipy.stats.wilcoxon`, zeros dropped).

    1.0 when every difference is zero; NaN for no differences.
    """
    x = _vector(d)
    if x.size == 0:
        return math.nan
    nz = x[np.abs(x) > TIE_TOL]
    if nz.size == 0:
        return 1.0
    from scipy.stats import wilcoxon

    return float(wilcoxon(nz, zero_method="wilcox", alternative="two-sided").pvalue)


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values (same order as given); NaNs are left out and stay NaN.

    With ``m`` valid p-values sorted ``p_(1) <= ... <= p_(m)``, the adjusted value of ``p_(i)`` is
    ``max_{j <= i} min(1, (m - j + 1) p_(j))``.
    """
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    if valid.size == 0:
        return out.tolist()
    if ((p[valid] < 0) | (p[valid] > 1)).any():
        raise ValueError("p-values must lie in [0, 1]")
    m = valid.size
    order = valid[np.argsort(p[valid], kind="stable")]
    adjusted = np.minimum(1.0, np.maximum.accumulate(p[order] * (m - np.arange(m))))
    out[order] = adjusted
    return out.tolist()


def effect_sizes(d: np.ndarray) -> tuple[float, float]:
    """``(d_z, rank_biserial)`` of the differences, both with the sign of ``a - b``.

    ``d_z = mean(d) / std(d, ddof=1)``: 0 when every difference is zero, NaN when fewer than two cases
    or when all differences are equal and non-zero (infinite standardised effect). ``rank_biserial``:
    ``(W+ - W-) / (W+ + W-)`` over the non-zero differences ranked by size (average ranks for ties), in
    [-1, 1]; 0 when all differences are zero.
    """
    x = _vector(d)
    if x.size == 0:
        return math.nan, math.nan
    nz = x[np.abs(x) > TIE_TOL]
    if nz.size == 0:
        return 0.0, 0.0
    from scipy.stats import rankdata

    ranks = rankdata(np.abs(nz))
    w_plus, w_minus = ranks[nz > 0].sum(), ranks[nz < 0].sum()
    r = float((w_plus - w_minus) / (w_plus + w_minus))
    if x.size < 2:
        return math.nan, r
    sd = float(x.std(ddof=1))
    dz = float(x.mean() / sd) if sd > TIE_TOL * max(1.0, float(np.abs(x).max())) else math.nan
    return dz, r
