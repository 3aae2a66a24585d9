"""Readouts of the rater-vote metrics from per-image pixel groups (small numpy arrays, no pixels).

An image is summarised by groups of pixels that share (p, f): the predicted frequency p, the raters'
frequency f and the group's pixel count c. For binary inputs the groups are the cells of the vote table
T[a, b] (p = a/N, f = b/M, c = T[a, b]): at most (N+1)(M+1) of them, whatever the image size; for soft or
weighted inputs every pixel is its own group (the direct per-pixel path). Every readout below is a sum
over groups, so both paths give the same numbers for the same (p, f) values.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core._validate import prepare_inputs
from ..core.counts import VoteCounts, vote_counts
from ..core.weights import check_gt_weights, is_uniform, n_gt_per_image

__all__ = [
    "rater_votes",
    "uses_table",
    "votes_from_counts",
    "Votes",
    "votes_from_table",
    "votes_from_pixels",
    "qubiq",
    "soft_dice",
    "calibration",
    "ueo",
    "volume_crps",
    "consensus_dice",
]


@dataclass(frozen=True)
class Votes:
    """Pixel groups of one image.

    Attributes
    ----------
    p, f : ndarray of float64, shape (G,)
        Predicted frequency and raters' (weighted) frequency of each group.
    p0, f0 : ndarray of float64, shape (G,)
        The same for the background class (``(N - a)/N`` and ``(M - b)/M`` for tables; the mean of
        ``1 - value`` for soft inputs), for class-wise calibration.
    c : ndarray of float64, shape (G,)
        Pixel counts.
    p_hi, f_hi : ndarray of bool, shape (G,)
        ``p > 0.5`` and ``f > 0.5`` (exact integer tests ``2a > N``, ``2b > M`` for tables).
    u : ndarray of float64, shape (G,)
        Uncertainty ``p (1 - p)`` (``a (N - a) / N²`` for tables, so that a and N - a tie exactly).
    agree : ndarray of bool, shape (G,)
        All raters (of positive weight) agree on the pixel.
    pred_volumes, gt_volumes, gt_weights : ndarray of float64
        Areas of the N samples (sum of probabilities for soft samples), of the M annotations, and the
        annotation weights.
    """

    p: np.ndarray
    f: np.ndarray
    p0: np.ndarray
    f0: np.ndarray
    c: np.ndarray
    p_hi: np.ndarray
    f_hi: np.ndarray
    u: np.ndarray
    agree: np.ndarray
    pred_volumes: np.ndarray
    gt_volumes: np.ndarray
    gt_weights: np.ndarray


def votes_from_table(table: np.ndarray, areas: np.ndarray) -> Votes:
    """Groups from one image's vote table (N+1, M+1) and its K mask areas (predictions first)."""
    n, m = table.shape[0] - 1, table.shape[1] - 1
    a, b = np.nonzero(table)
    return Votes(
        p=a / n,
        f=b / m,
        p0=(n - a) / n,
        f0=(m - b) / m,
        c=table[a, b].astype(np.float64),
        p_hi=2 * a > n,
        f_hi=2 * b > m,
        u=(a * (n - a)) / float(n * n),
        agree=(b == 0) | (b == m),
        pred_volumes=areas[:n].astype(np.float64),
        gt_volumes=areas[n:].astype(np.float64),
        gt_weights=np.full(m, 1.0 / m),
    )


def votes_from_pixels(preds: np.ndarray, gts: np.ndarray, w: np.ndarray | None) -> Votes:
    """Groups of one pixel each from float64 stacks preds (N, P) and gts (M, P) with values in [0, 1]."""
    m = gts.shape[0]
    p = preds.mean(axis=0)
    p0 = (1.0 - preds).mean(axis=0)
    if w is None:
        f, f0, weights = gts.mean(axis=0), (1.0 - gts).mean(axis=0), np.full(m, 1.0 / m)
    else:
        f, f0, weights = w @ gts, w @ (1.0 - gts), w
    rated = gts[weights > 0]
    return Votes(
        p=p,
        f=f,
        p0=p0,
        f0=f0,
        c=np.ones_like(p),
        p_hi=p > 0.5,
        f_hi=f > 0.5,
        u=p * (1.0 - p),
        agree=np.all(rated == rated[:1], axis=0),
        pred_volumes=preds.sum(axis=1),
        gt_volumes=gts.sum(axis=1),
        gt_weights=weights,
    )


def _probabilities(a: np.ndarray, name: str, where: str) -> np.ndarray:
    """(R, P) float64 copy: unsigned -> nonzero as 1.0; float -> checked in [0, 1] without NaN."""
    if a.dtype.kind == "u":
        return (a != 0).astype(np.float64)
    bad = np.isnan(a) | (a < 0) | (a > 1)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"{name} contains {a[first].item()!r}{where} at index {first}: probabilities must lie in "
            "[0, 1] without NaN"
        )
    return a.astype(np.float64)


def uses_table(preds: object, gts: object, *, batch: bool = False, gt_weights: object = None) -> bool:
    """True when the vote table applies: bool/integer samples and annotations and uniform weights
    (checks shapes, dtypes and weights; reads no pixel)."""
    n_images, groups = prepare_inputs(preds, gts, batch)
    weights = check_gt_weights(gt_weights, n_gt_per_image(n_images, groups), bool(batch))
    binary = all(c.dtype.kind == "u" for g in groups for c in (*g.preds, *g.gts))
    return binary and (weights is None or all(is_uniform(w) for w in weights))


def rater_votes(preds: object, gts: object, *, batch: bool = False, gt_weights: object = None) -> list[Votes]:
    """The pixel groups (p, f, count) of every image, in input order (see the module docstring)."""
    if uses_table(preds, gts, batch=batch, gt_weights=gt_weights):
        return votes_from_counts(vote_counts(preds, gts, batch=batch))
    n_images, groups = prepare_inputs(preds, gts, batch)
    weights = check_gt_weights(gt_weights, n_gt_per_image(n_images, groups), bool(batch))
    out: list[Votes | None] = [None] * n_images
    for g in groups:
        k = 0
        for pc, gc in zip(g.preds, g.gts, strict=True):
            for b in range(pc.shape[0]):
                image = int(g.index[k])
                where = f" (image {image})" if batch else ""
                p = _probabilities(pc[b].reshape(g.n_pred, -1), "preds", where)
                y = _probabilities(gc[b].reshape(g.n_gt, -1), "gts", where)
                w = None if weights is None or is_uniform(weights[image]) else weights[image]
                out[image] = votes_from_pixels(p, y, w)
                k += 1
    return out  # type: ignore[return-value]


def votes_from_counts(counts: VoteCounts) -> list[Votes]:
    """Pixel groups of every image from precomputed vote tables."""
    return [votes_from_table(blk.table[0], blk.areas[0]) for blk in counts.per_image()]


def _dice(inter: float, total: float) -> float:
    """2 I / S with Dice(∅, ∅) = 1."""
    return 1.0 if total == 0 else 2.0 * inter / total


def qubiq(v: Votes, thresholds: np.ndarray, inclusive: bool) -> float:
    """Mean over τ of Dice(p > τ, f > τ) (``>=`` with ``inclusive``)."""
    scores = []
    for t in thresholds:
        sp = v.p >= t if inclusive else v.p > t
        sf = v.f >= t if inclusive else v.f > t
        scores.append(_dice(float(v.c[sp & sf].sum()), float(v.c[sp].sum() + v.c[sf].sum())))
    return float(np.mean(scores))


def soft_dice(v: Votes) -> float:
    """2 Σ p f / (Σ p + Σ f), 1 when both sums are 0."""
    return _dice(float(np.sum(v.c * v.p * v.f)), float(np.sum(v.c * v.p) + np.sum(v.c * v.f)))


def _bins(p: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin k holds edges[k] <= p < edges[k+1] (edges = np.linspace(0, 1, n_bins + 1)); last bin closed."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return np.searchsorted(edges[1:-1], p, side="right")


def _ece_terms(p, f, c, n_bins):
    k = _bins(p, n_bins)
    count = np.bincount(k, weights=c, minlength=n_bins)
    sp = np.bincount(k, weights=c * p, minlength=n_bins)
    sf = np.bincount(k, weights=c * f, minlength=n_bins)
    return count, sp, sf


def _ace(p, f, c, n_bins) -> float:
    """Adaptive ECE: pixels ranked by (p, f), split into n_bins bins of equal count (np.array_split
    sizes: the first P mod n_bins bins hold one pixel more); mean over non-empty bins of |mean p - mean f|."""
    order = np.lexsort((f, p))
    p, f, c = p[order], f[order], c[order]
    total = int(round(c.sum()))
    cum = np.concatenate([[0.0], np.cumsum(c)])
    cum_p = np.concatenate([[0.0], np.cumsum(c * p)])
    cum_f = np.concatenate([[0.0], np.cumsum(c * f)])
    q, r = divmod(total, n_bins)
    ranks = np.array([j * q + min(j, r) for j in range(n_bins + 1)], dtype=np.float64)

    def upto(cum_x, x, rank):  # sum of x over the first `rank` ranked pixels
        g = np.clip(np.searchsorted(cum, rank, side="right") - 1, 0, len(x) - 1)
        return cum_x[g] + (rank - cum[g]) * x[g]

    sizes = np.diff(ranks)
    sum_p = np.diff(upto(cum_p, p, ranks))
    sum_f = np.diff(upto(cum_f, f, ranks))
    keep = sizes > 0
    return float(np.mean(np.abs(sum_p[keep] - sum_f[keep]) / sizes[keep]))


def calibration(v: Votes, n_bins: int, both_classes: bool) -> tuple[float, float, float, float, np.ndarray]:
    """(ECE, MCE, ACE, Brier, curve (3, n_bins): count, mean p, mean f per bin (NaN if empty))."""
    total = float(v.c.sum())
    count, sp, sf = _ece_terms(v.p, v.f, v.c, n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p, mean_f = sp / count, sf / count
    full = count > 0
    ece = float(np.abs(sp - sf).sum() / total)
    mce = float(np.max(np.abs(mean_p - mean_f)[full]))
    ace = _ace(v.p, v.f, v.c, n_bins)
    if both_classes:
        count0, sp0, sf0 = _ece_terms(v.p0, v.f0, v.c, n_bins)
        full0 = count0 > 0
        ece = 0.5 * (ece + float(np.abs(sp0 - sf0).sum() / total))
        mce = 0.5 * (mce + float(np.max(np.abs(sp0 - sf0)[full0] / count0[full0])))
        ace = 0.5 * (ace + _ace(v.p0, v.f0, v.c, n_bins))
    brier = float(np.sum(v.c * (v.p - v.f) ** 2) / total)
    return ece, mce, ace, brier, np.stack([count, mean_p, mean_f])


def ueo(v: Votes) -> tuple[float, float, float]:
    """(UEO, AUROC, AUPRC) of u as a detector of the error e = [p > 0.5] != [f > 0.5].

    Superlevel sets {u >= t} over every distinct value t of u (and the empty set); ties in u are never
    split. AUROC counts tied (error, non-error) pairs as 1/2; AUPRC is the average precision
    Σ_k (R_k - R_{k-1}) P_k over the distinct thresholds, descending (no interpolation)."""
    err = v.p_hi != v.f_hi
    values, inverse = np.unique(v.u, return_inverse=True)
    pos = np.bincount(inverse, weights=v.c * err, minlength=len(values))[::-1]  # descending u
    tot = np.bincount(inverse, weights=v.c, minlength=len(values))[::-1]
    n_pos, n_all = float(pos.sum()), float(tot.sum())
    cum_pos, cum_tot = np.cumsum(pos), np.cumsum(tot)
    dice = 2.0 * cum_pos / (cum_tot + n_pos)
    best = max(float(dice.max()), 1.0 if n_pos == 0 else 0.0)
    n_neg = n_all - n_pos
    if n_pos == 0 or n_neg == 0:
        auroc = float("nan")
    else:
        neg = tot - pos
        neg_below = n_neg - np.cumsum(neg)  # non-errors with strictly smaller u
        auroc = float(np.sum(pos * (neg_below + 0.5 * neg)) / (n_pos * n_neg))
    if n_pos == 0:
        auprc = float("nan")
    else:
        recall = cum_pos / n_pos
        precision = cum_pos / cum_tot
        auprc = float(np.sum(np.diff(np.concatenate([[0.0], recall])) * precision))
    return best, auroc, auprc


def volume_crps(v: Votes) -> float:
    """Σ_m w_m mean_n |x_n - y_m| - (1 / 2N²) Σ_{n,n'} |x_n - x_n'| (energy form of the CRPS)."""
    x, y = v.pred_volumes, v.gt_volumes
    cross = np.abs(x[:, None] - y[None, :]).mean(axis=0) @ v.gt_weights
    spread = np.abs(x[:, None] - x[None, :]).mean()
    return float(cross - 0.5 * spread)


def consensus_dice(v: Votes) -> float:
    """Dice(p > 0.5, f > 0.5) over the pixels where all raters agree; Dice(∅, ∅) = 1."""
    a = v.p_hi & v.agree
    b = v.f_hi & v.agree
    return _dice(float(v.c[a & b].sum()), float(v.c[a].sum() + v.c[b].sum()))
