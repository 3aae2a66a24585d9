"""Plain per-pixel numpy references of the rater-vote metrics (loops and direct formulas, no tables)."""

from __future__ import annotations

import numpy as np


def frequencies(preds, gts, weights=None):
    """Per-pixel p, f (float64), the exact uncertainty for binary samples, and the raters' agreement."""
    s = preds.reshape(len(preds), -1)
    y = gts.reshape(len(gts), -1)
    n = len(s)
    if s.dtype == bool:
        a = s.sum(0).astype(np.int64)
        p, u = a / n, a * (n - a) / float(n * n)
        p_hi = 2 * a > n
    else:
        p = s.astype(np.float64).mean(0)
        u, p_hi = p * (1 - p), p > 0.5
    yf = y.astype(np.float64)
    if weights is None:
        f = yf.mean(0)
        if y.dtype == bool:
            f_hi = 2 * y.sum(0) > len(y)
        else:
            f_hi = f > 0.5
        agree = np.all(yf == yf[:1], axis=0)
    else:
        w = np.asarray(weights, float)
        f = w @ yf
        f_hi = f > 0.5
        agree = np.all(yf[w > 0] == yf[w > 0][:1], axis=0)
    return p, f, u, p_hi, f_hi, agree


def dice(a, b):
    s = a.sum() + b.sum()
    return 1.0 if s == 0 else 2.0 * (a & b).sum() / s


def qubiq(
    preds, gts, thresholds=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9), inclusive=False, weights=None
):
    p, f = frequencies(preds, gts, weights)[:2]
    if inclusive:
        return float(np.mean([dice(p >= t, f >= t) for t in thresholds]))
    return float(np.mean([dice(p > t, f > t) for t in thresholds]))


def soft_dice(preds, gts, weights=None):
    p, f = frequencies(preds, gts, weights)[:2]
    s = p.sum() + f.sum()
    return 1.0 if s == 0 else 2 * (p * f).sum() / s


def _ece(p, f, n_bins):
    edges = np.linspace(0, 1, n_bins + 1)
    ece, gaps = 0.0, []
    for k in range(n_bins):
        hi = edges[k + 1] if k < n_bins - 1 else 2.0
        ind = (p >= edges[k]) & (p < hi)
        if ind.any():
            gap = abs(p[ind].mean() - f[ind].mean())
            ece += ind.sum() / p.size * gap
            gaps.append(gap)
    return ece, max(gaps)


def _ace(p, f, n_bins):
    order = np.lexsort((f, p))
    parts = [b for b in np.array_split(order, n_bins) if b.size]
    return float(np.mean([abs(p[b].mean() - f[b].mean()) for b in parts]))


def calibration(preds, gts, n_bins=10, both=False, weights=None):
    p, f = frequencies(preds, gts, weights)[:2]
    ece, mce = _ece(p, f, n_bins)
    ace = _ace(p, f, n_bins)
    if both:
        s = preds.reshape(len(preds), -1)
        p0 = (len(s) - s.sum(0)) / len(s) if s.dtype == bool else (1 - s.astype(float)).mean(0)
        y = gts.reshape(len(gts), -1).astype(float)
        f0 = (1 - y).mean(0) if weights is None else np.asarray(weights) @ (1 - y)
        e0, m0 = _ece(p0, f0, n_bins)
        ece, mce, ace = (ece + e0) / 2, (mce + m0) / 2, (ace + _ace(p0, f0, n_bins)) / 2
    return ece, mce, ace, float(np.mean((p - f) ** 2))


def ueo(preds, gts, weights=None):
    p, f, u, p_hi, f_hi, _ = frequencies(preds, gts, weights)
    e = p_hi != f_hi
    best = dice(np.zeros_like(e), e)
    for t in np.unique(u):
        best = max(best, dice(u >= t, e))
    pos, neg = u[e], u[~e]
    if pos.size and neg.size:
        auroc = float(np.mean((pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])))
    else:
        auroc = float("nan")
    if pos.size:
        ap, prev = 0.0, 0.0
        for t in np.unique(u)[::-1]:
            sel = u >= t
            rec = (sel & e).sum() / e.sum()
            ap += (rec - prev) * (sel & e).sum() / sel.sum()
            prev = rec
    else:
        ap = float("nan")
    return best, auroc, ap


def volume_crps(preds, gts, weights=None):
    x = preds.reshape(len(preds), -1).astype(float).sum(1)
    y = gts.reshape(len(gts), -1).astype(float).sum(1)
    w = np.full(len(y), 1 / len(y)) if weights is None else np.asarray(weights, float)
    total = 0.0
    for m in range(len(y)):
        total += w[m] * (np.mean(np.abs(x - y[m])) - 0.5 * np.mean(np.abs(x[:, None] - x[None, :])))
    return total


def consensus_dice(preds, gts, weights=None):
    _, _, _, p_hi, f_hi, agree = frequencies(preds, gts, weights)
    return dice(p_hi & agree, f_hi & agree)
