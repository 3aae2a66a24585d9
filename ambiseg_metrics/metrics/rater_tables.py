"""The numpy reference of the rater-vote readouts over a block of vote tables (B images at once).

For B images that share N, M and P, the tables T (B, N+1, M+1) are read with cell values p = a/N and
f = b/M: every metric of :mod:`ambiseg_metrics.metrics.rater_readouts` becomes a few array operations over
(B, N+1, M+1), with no Python loop over images. The definitions are those of ``rater_readouts`` (cells in
the same a-major order, so adaptive bins split the same way); the tests check both paths agree.

The library reads the tables with the compiled kernel :mod:`ambiseg_metrics.core._rater_kernel` (one loop
over images, no numpy passes along short axes); this numpy version is kept as its reference: the
tests compare the two on random tables (rtol 1e-12).
"""

from __future__ import annotations

import numpy as np

__all__ = ["table_metrics"]


def _safe_div(num: np.ndarray, den: np.ndarray, empty: float) -> np.ndarray:
    out = np.full(np.broadcast(num, den).shape, empty)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _dice(inter: np.ndarray, total: np.ndarray) -> np.ndarray:
    """2 I / S per image, 1 where S = 0."""
    return _safe_div(2.0 * inter, total, 1.0)


def _qubiq(t, rows, cols, p, f, thresholds, inclusive):
    """p > τ (or >=) holds for a suffix of a, f > τ for a suffix of b: one 2D suffix sum gives every I."""
    suffix = np.zeros((t.shape[0], t.shape[1] + 1, t.shape[2] + 1))
    suffix[:, :-1, :-1] = t[:, ::-1, ::-1].cumsum(1).cumsum(2)[:, ::-1, ::-1]
    row_suffix = suffix[:, :, 0]
    col_suffix = suffix[:, 0, :]
    scores = []
    for tau in thresholds:
        above_p = (p >= tau) if inclusive else (p > tau)  # a suffix of a = 0..N
        above_f = (f >= tau) if inclusive else (f > tau)
        a0 = int(np.argmax(above_p)) if above_p.any() else len(p)
        b0 = int(np.argmax(above_f)) if above_f.any() else len(f)
        scores.append(_dice(suffix[:, a0, b0], row_suffix[:, a0] + col_suffix[:, b0]))
    return np.mean(scores, axis=0)


def _ece_mce(rows, row_f, p, n_bins, total):
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    onehot = np.eye(n_bins)[np.searchsorted(edges[1:-1], p, side="right")]  # (A, n_bins)
    count, sp, sf = rows @ onehot, (rows * p) @ onehot, row_f @ onehot
    gap = np.abs(_safe_div(sp, count, 0.0) - _safe_div(sf, count, 0.0))
    mce = np.where(count > 0, gap, -np.inf).max(axis=1)
    return np.abs(sp - sf).sum(axis=1) / total, mce, count, sp, sf


def _ace(t, p, f, n_bins):
    b_images = t.shape[0]
    c = t.reshape(b_images, -1).astype(np.float64)  # a-major: sorted by p, then f
    pv, fv = np.repeat(p, len(f)), np.tile(f, len(p))
    zero = np.zeros((b_images, 1))
    cum = np.concatenate([zero, np.cumsum(c, 1)], 1)
    cum_p = np.concatenate([zero, np.cumsum(c * pv, 1)], 1)
    cum_f = np.concatenate([zero, np.cumsum(c * fv, 1)], 1)
    total = int(round(c[0].sum()))
    q, r = divmod(total, n_bins)
    ranks = np.array([j * q + min(j, r) for j in range(n_bins + 1)], dtype=np.float64)
    # g[i, r]: the last cell whose start cum[i, g] <= ranks[r]; one searchsorted over all images at once
    # (image i's cumulative counts shifted by i·(P + 1) keep the concatenation sorted)
    width = cum.shape[1]
    shift = (np.arange(b_images) * (total + 1.0))[:, None]
    flat = (cum + shift).ravel()
    pos = np.searchsorted(flat, (ranks[None, :] + shift).ravel(), side="right").reshape(b_images, -1)
    g = np.clip(pos - 1 - np.arange(b_images)[:, None] * width, 0, c.shape[1] - 1)  # (B, R)
    take = np.take_along_axis
    base = take(cum, g, 1)
    upto_p = take(cum_p, g, 1) + (ranks - base) * pv[g]
    upto_f = take(cum_f, g, 1) + (ranks - base) * fv[g]
    sizes = np.diff(ranks)
    keep = sizes > 0
    gaps = np.abs(np.diff(upto_p, axis=1) - np.diff(upto_f, axis=1))[:, keep] / sizes[keep]
    return gaps.mean(axis=1)


def _ueo(t, n, m):
    a, b = np.arange(n + 1), np.arange(m + 1)
    err = (2 * a > n)[:, None] != (2 * b > m)[None, :]
    pos_a, tot_a = (t * err).sum(2).astype(np.float64), t.sum(2).astype(np.float64)
    u_int = a * (n - a)  # u = a(N - a)/N², grouped exactly
    values = np.unique(u_int)[::-1]  # descending
    onehot = (u_int[:, None] == values[None, :]).astype(np.float64)  # (A, U)
    pos, tot = pos_a @ onehot, tot_a @ onehot
    n_pos, n_all = pos.sum(1), tot.sum(1)
    cum_pos, cum_tot = np.cumsum(pos, 1), np.cumsum(tot, 1)
    dice = _safe_div(2.0 * cum_pos, cum_tot + n_pos[:, None], 0.0)
    best = np.maximum(dice.max(1), np.where(n_pos == 0, 1.0, 0.0))
    n_neg = n_all - n_pos
    neg = tot - pos
    neg_below = n_neg[:, None] - np.cumsum(neg, 1)
    auroc = _safe_div((pos * (neg_below + 0.5 * neg)).sum(1), n_pos * n_neg, np.nan)
    recall = _safe_div(cum_pos, n_pos[:, None], 0.0)
    precision = _safe_div(cum_pos, cum_tot, 0.0)
    d_recall = np.diff(np.concatenate([np.zeros((len(t), 1)), recall], 1), axis=1)
    auprc = np.where(n_pos > 0, (d_recall * precision).sum(1), np.nan)
    return best, auroc, auprc


def table_metrics(
    table: np.ndarray,
    areas: np.ndarray,
    wanted: set[str],
    thresholds: np.ndarray,
    inclusive: bool,
    n_bins: int,
    both_classes: bool,
) -> dict[str, np.ndarray]:
    """Rater-vote metrics of B images from their vote tables (B, N+1, M+1) and areas (B, N+M)."""
    n, m = table.shape[1] - 1, table.shape[2] - 1
    t = table.astype(np.float64)
    a, b = np.arange(n + 1), np.arange(m + 1)
    p, f, p0, f0 = a / n, b / m, (n - a) / n, (m - b) / m
    rows, cols = t.sum(2), t.sum(1)  # pixels per vote count of the samples / of the raters
    total = rows.sum(1)
    out: dict[str, np.ndarray] = {}
    if "qubiq" in wanted:
        out["qubiq"] = _qubiq(t, rows, cols, p, f, thresholds, inclusive)
    if "soft_dice" in wanted:
        flat = t.reshape(len(t), -1)
        out["soft_dice"] = _dice(flat @ np.outer(p, f).ravel(), rows @ p + cols @ f)
    if wanted & {"ece", "mce", "ace", "brier"}:
        ece, mce, count, sp, sf = _ece_mce(rows, t @ f, p, n_bins, total)
        ace = _ace(t, p, f, n_bins)
        if both_classes:
            ece0, mce0, *_ = _ece_mce(rows, t @ f0, p0, n_bins, total)
            ece, mce, ace = (
                0.5 * (ece + ece0),
                0.5 * (mce + mce0),
                0.5 * (ace + _ace(t[:, ::-1, ::-1], p0[::-1], f0[::-1], n_bins)),
            )
        out.update(
            ece=ece, mce=mce, ace=ace, brier=np.einsum("kab,ab->k", t, (p[:, None] - f[None, :]) ** 2) / total
        )
    if wanted & {"ueo", "ueo_auroc", "ueo_auprc"}:
        out["ueo"], out["ueo_auroc"], out["ueo_auprc"] = _ueo(t, n, m)
    if "volume_crps" in wanted:
        x, y = areas[:, :n].astype(np.float64), areas[:, n:].astype(np.float64)
        cross = np.abs(x[:, :, None] - y[:, None, :]).mean(axis=(1, 2))
        xs = np.sort(x, axis=1)  # Σ_{n,n'} |x_n - x_n'| = 2 Σ_i (2i - N + 1) x_(i), i = 0..N-1
        spread = 2.0 * (xs @ (2.0 * np.arange(n) - n + 1)) / (n * n)
        out["volume_crps"] = cross - 0.5 * spread
    if "consensus_dice" in wanted:
        # the raters agree only in the columns b = 0 (all say no) and b = M (all say yes, f = 1 > 0.5)
        hi = 2 * a > n
        yes, no = t[:, :, m], t[:, :, 0]
        inter = yes[:, hi].sum(1)
        out["consensus_dice"] = _dice(inter, (yes[:, hi] + no[:, hi]).sum(1) + yes.sum(1))
    return out
