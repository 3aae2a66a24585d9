"""Numba kernel: every rater-vote metric of a block of images from their vote tables, one loop over images.

Imported on first use only (like :mod:`._kernels`, whose cache setting it shares): ``import
ambiseg_metrics`` does not import numba. The definitions are those of
:mod:`ambiseg_metrics.metrics.rater_readouts` (per-pixel groups) and of the numpy table path
:func:`ambiseg_metrics.metrics.rater_tables.table_metrics`, which the tests compare this kernel with
(rtol 1e-12): cell (a, b) of table T (N+1, M+1) is a group of T[a, b] pixels with p = a/N and f = b/M.

What is computed once in Python, with the numpy path's own expressions, and handed to the kernel: the
first vote counts a0, b0 above each QUBIQ threshold (``p > τ`` / ``p >= τ`` hold for a suffix of a) and
the equal-width bin of every p = a/N and p0 = (N - a)/N (``np.searchsorted`` over ``np.linspace`` edges),
so thresholds and bin edges are compared exactly as in the reference. Everything else is sums over the
(N+1)(M+1) cells of one image: the ACE cells in a-major order (reversed for the background class), the
UEO groups {a, N - a} of equal u = a(N - a)/N² in descending u.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._kernels import CACHE as _CACHE

__all__ = ["COLUMNS", "table_readouts"]

#: Output columns of :func:`table_readouts`, in this order (the order of ``RATER_METRICS``).
COLUMNS = (
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

# bits of the ``sections`` argument: which groups of columns to compute
_QUBIQ, _SOFT, _CAL, _UEO, _VOLUME, _CONSENSUS = 1, 2, 4, 8, 16, 32


@njit(cache=_CACHE, nogil=True)
def _dice(inter, total):  # pragma: no cover - compiled by numba
    """2 I / S, 1 where S = 0."""
    return 2.0 * inter / total if total > 0 else 1.0


@njit(cache=_CACHE, nogil=True)
def _ece_mce(t, n, m, p, f, bins, n_bins, count, sp, sf):  # pragma: no cover - compiled by numba
    """ECE and MCE of one image: cell (a, b) has values p[a], f[b] (a/N, b/M, or the background class's
    (N - a)/N, (M - b)/M), and p[a] lies in bin ``bins[a]``."""
    for k in range(n_bins):
        count[k] = 0.0
        sp[k] = 0.0
        sf[k] = 0.0
    total = 0.0
    for a in range(n + 1):
        row = 0.0
        row_f = 0.0
        for b in range(m + 1):
            c = float(t[a, b])
            row += c
            row_f += c * f[b]
        k = bins[a]
        count[k] += row
        sp[k] += row * p[a]
        sf[k] += row_f
        total += row
    ece = 0.0
    mce = -np.inf
    for k in range(n_bins):
        ece += abs(sp[k] - sf[k])
        if count[k] > 0:
            mce = max(mce, abs(sp[k] / count[k] - sf[k] / count[k]))
    return ece / total, mce


@njit(cache=_CACHE, nogil=True)
def _cell_values(n, m):  # pragma: no cover - compiled by numba
    """p = i/N and f = j/M of the (N+1)(M+1) cells in the ranking order of :func:`_ace`, k = i·(M+1) + j.
    The same for both classes: the background visits cell (N - i, M - j) at rank k, whose p0 = (N - a)/N
    and f0 = (M - b)/M are again i/N and j/M."""
    pv = np.empty((n + 1) * (m + 1))
    fv = np.empty((n + 1) * (m + 1))
    k = 0
    for i in range(n + 1):
        for j in range(m + 1):
            pv[k] = i / n
            fv[k] = j / m
            k += 1
    return pv, fv


@njit(cache=_CACHE, nogil=True)
def _ace(t, n, m, n_bins, background, pv, fv, cum, cum_p, cum_f):  # pragma: no cover - compiled by numba
    """Adaptive ECE of one image: the cells ranked by (p, f) (a-major; for the background class, p0 and
    f0 ascending), split at ranks j·q + min(j, r) (np.array_split sizes); mean over non-empty bins of
    |Σ p - Σ f| / size, a bin's boundary cell split pro rata. ``pv``, ``fv``: p and f of the cells in
    that order (:func:`_cell_values`)."""
    n_cells = (n + 1) * (m + 1)
    k = 0
    cum[0] = 0.0
    cum_p[0] = 0.0
    cum_f[0] = 0.0
    for i in range(n + 1):
        a = n - i if background else i
        for j in range(m + 1):
            b = m - j if background else j
            c = float(t[a, b])
            cum[k + 1] = cum[k] + c
            cum_p[k + 1] = cum_p[k] + c * pv[k]
            cum_f[k + 1] = cum_f[k] + c * fv[k]
            k += 1
    total = int(round(cum[n_cells]))
    q = total // n_bins
    r = total - q * n_bins
    pos = 0
    prev_rank = 0.0
    prev_p = 0.0
    prev_f = 0.0
    acc = 0.0
    kept = 0
    for j in range(n_bins + 1):
        rank = float(j * q + min(j, r))
        while pos < n_cells + 1 and cum[pos] <= rank:  # np.searchsorted(cum, rank, "right")
            pos += 1
        g = min(max(pos - 1, 0), n_cells - 1)
        upto_p = cum_p[g] + (rank - cum[g]) * pv[g]
        upto_f = cum_f[g] + (rank - cum[g]) * fv[g]
        if j > 0:
            size = rank - prev_rank
            if size > 0:
                acc += abs((upto_p - prev_p) - (upto_f - prev_f)) / size
                kept += 1
        prev_rank = rank
        prev_p = upto_p
        prev_f = upto_f
    return acc / kept if kept > 0 else np.nan


@njit(cache=_CACHE, nogil=True)
def _ueo(t, n, m, pos, tot):  # pragma: no cover - compiled by numba
    """(UEO, AUROC, AUPRC) of one image; u groups {a, N - a} for a = ⌊N/2⌋ .. 0 (descending u)."""
    lo = n // 2
    n_groups = lo + 1
    n_pos = 0.0
    n_all = 0.0
    for g in range(n_groups):
        a1 = lo - g
        pos[g] = 0.0
        tot[g] = 0.0
        a2 = n - a1
        for a in range(a1, a2 + 1, max(a2 - a1, 1)):  # a1 and a2 (once when N is even and a1 = a2)
            hi_p = 2 * a > n
            for b in range(m + 1):
                c = float(t[a, b])
                tot[g] += c
                if hi_p != (2 * b > m):
                    pos[g] += c
        n_pos += pos[g]
        n_all += tot[g]
    n_neg = n_all - n_pos
    best = 1.0 if n_pos == 0 else 0.0
    auroc_sum = 0.0
    auprc = 0.0
    cum_pos = 0.0
    cum_tot = 0.0
    cum_neg = 0.0
    prev_recall = 0.0
    for g in range(n_groups):
        cum_pos += pos[g]
        cum_tot += tot[g]
        neg = tot[g] - pos[g]
        cum_neg += neg
        den = cum_tot + n_pos
        best = max(best, 2.0 * cum_pos / den if den > 0 else 0.0)
        auroc_sum += pos[g] * ((n_neg - cum_neg) + 0.5 * neg)
        recall = cum_pos / n_pos if n_pos > 0 else 0.0
        precision = cum_pos / cum_tot if cum_tot > 0 else 0.0
        auprc += (recall - prev_recall) * precision
        prev_recall = recall
    auroc = auroc_sum / (n_pos * n_neg) if n_pos * n_neg > 0 else np.nan
    return best, auroc, (auprc if n_pos > 0 else np.nan)


@njit(cache=_CACHE, nogil=True)
def _readouts(table, areas, qa0, qb0, bins_p, bins_p0, n_bins, both, sections, out):
    # pragma: no cover - compiled by numba
    """``out[i]`` = the :data:`COLUMNS` of image i (NaN where its section is not asked for)."""
    B, A, C = table.shape
    n = A - 1
    m = C - 1
    n_cells = A * C
    suffix = np.zeros((A + 1, C + 1))
    # scratch starts as NaN, not as whatever the memory held: a value read before it is written (a bug)
    # then shows in the results as NaN, which the tests catch, instead of passing when the memory is 0
    count = np.full(n_bins, np.nan)
    sp = np.full(n_bins, np.nan)
    sf = np.full(n_bins, np.nan)
    cum = np.full(n_cells + 1, np.nan)
    cum_p = np.full(n_cells + 1, np.nan)
    cum_f = np.full(n_cells + 1, np.nan)
    pv, fv = _cell_values(n, m)  # both classes' ranking order (see _cell_values)
    p = np.arange(n + 1) / n
    f = np.arange(m + 1) / m
    p0 = (n - np.arange(n + 1)) / n
    f0 = (m - np.arange(m + 1)) / m
    pos = np.full(n // 2 + 1, np.nan)
    tot = np.full(n // 2 + 1, np.nan)
    n_thresholds = qa0.shape[0]
    for i in range(B):
        t = table[i]
        for k in range(out.shape[1]):
            out[i, k] = np.nan
        if sections & _QUBIQ:  # suffix[a, b] = pixels with >= a sample votes and >= b rater votes
            for a in range(n, -1, -1):
                for b in range(m, -1, -1):
                    suffix[a, b] = float(t[a, b]) + suffix[a + 1, b] + suffix[a, b + 1] - suffix[a + 1, b + 1]
            s = 0.0
            for k in range(n_thresholds):
                a0 = qa0[k]
                b0 = qb0[k]
                s += _dice(suffix[a0, b0], suffix[a0, 0] + suffix[0, b0])
            out[i, 0] = s / n_thresholds
        if sections & (_SOFT | _CAL):
            inter = 0.0
            sum_p = 0.0
            sum_f = 0.0
            brier = 0.0
            total = 0.0
            for a in range(n + 1):
                x = p[a]
                for b in range(m + 1):
                    c = float(t[a, b])
                    y = f[b]
                    inter += c * (x * y)
                    sum_p += c * x
                    sum_f += c * y
                    brier += c * (x - y) ** 2
                    total += c
            out[i, 1] = _dice(inter, sum_p + sum_f)
            if sections & _CAL:
                ece, mce = _ece_mce(t, n, m, p, f, bins_p, n_bins, count, sp, sf)
                ace = _ace(t, n, m, n_bins, False, pv, fv, cum, cum_p, cum_f)
                if both:
                    ece0, mce0 = _ece_mce(t, n, m, p0, f0, bins_p0, n_bins, count, sp, sf)
                    ace0 = _ace(t, n, m, n_bins, True, pv, fv, cum, cum_p, cum_f)
                    ece, mce, ace = 0.5 * (ece + ece0), 0.5 * (mce + mce0), 0.5 * (ace + ace0)
                out[i, 2] = ece
                out[i, 3] = mce
                out[i, 4] = ace
                out[i, 5] = brier / total
        if sections & _UEO:
            out[i, 6], out[i, 7], out[i, 8] = _ueo(t, n, m, pos, tot)
        if sections & _VOLUME:  # integer areas: every sum below is exact
            cross = 0.0
            spread = 0.0
            for j in range(n):
                xj = float(areas[i, j])
                for k in range(m):
                    cross += abs(xj - float(areas[i, n + k]))
                for k in range(j + 1, n):
                    spread += 2.0 * abs(xj - float(areas[i, k]))
            out[i, 9] = cross / (n * m) - 0.5 * (spread / (n * n))
        if sections & _CONSENSUS:  # raters agree in columns b = 0 (all no) and b = M (all yes)
            inter = 0.0
            size = 0.0
            for a in range(n + 1):
                yes = float(t[a, m])
                size += yes
                if 2 * a > n:
                    inter += yes
                    size += yes + float(t[a, 0])
            out[i, 10] = _dice(inter, size)


def _sections(wanted: set[str]) -> int:
    groups = (
        (_QUBIQ, {"qubiq"}),
        (_SOFT, {"soft_dice"}),
        (_CAL, {"ece", "mce", "ace", "brier"}),
        (_UEO, {"ueo", "ueo_auroc", "ueo_auprc"}),
        (_VOLUME, {"volume_crps"}),
        (_CONSENSUS, {"consensus_dice"}),
    )
    return sum(bit for bit, names in groups if wanted & names)


def table_readouts(
    table: np.ndarray,
    areas: np.ndarray,
    wanted: set[str],
    thresholds: np.ndarray,
    inclusive: bool,
    n_bins: int,
    both_classes: bool,
) -> dict[str, np.ndarray]:
    """The rater-vote metrics of B images (those of :data:`COLUMNS` in ``wanted``) from their vote
    tables (B, N+1, M+1) and mask areas (B, N+M); same arguments and values as
    :func:`ambiseg_metrics.metrics.rater_tables.table_metrics`."""
    table = np.ascontiguousarray(table, dtype=np.int64)
    areas = np.ascontiguousarray(areas, dtype=np.int64)
    n, m = table.shape[1] - 1, table.shape[2] - 1
    p, f = np.arange(n + 1) / n, np.arange(m + 1) / m
    qa0 = np.empty(len(thresholds), dtype=np.int64)
    qb0 = np.empty(len(thresholds), dtype=np.int64)
    for k, tau in enumerate(thresholds):
        above_p = (p >= tau) if inclusive else (p > tau)  # a suffix of a = 0..N
        above_f = (f >= tau) if inclusive else (f > tau)
        qa0[k] = int(np.argmax(above_p)) if above_p.any() else n + 1
        qb0[k] = int(np.argmax(above_f)) if above_f.any() else m + 1
    inner = np.linspace(0.0, 1.0, n_bins + 1)[1:-1]
    bins_p = np.searchsorted(inner, p, side="right").astype(np.int64)
    bins_p0 = np.searchsorted(inner, (n - np.arange(n + 1)) / n, side="right").astype(np.int64)
    out = np.empty((table.shape[0], len(COLUMNS)))
    _readouts(table, areas, qa0, qb0, bins_p, bins_p0, int(n_bins), bool(both_classes), _sections(wanted),
              out)
    return {name: out[:, k] for k, name in enumerate(COLUMNS) if name in wanted}
