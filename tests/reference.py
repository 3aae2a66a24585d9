"""Slow, obviously-correct pure-numpy references of every metric (per-pair loops, formulas written out).

Nothing here is shared with the library: the fast path is tested against these.
"""

from __future__ import annotations

import itertools

import numpy as np


def binarise(x: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype.kind == "f":
        return x > threshold
    return x != 0


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(bool), b.astype(bool)
    total = a.sum() + b.sum()
    if total == 0:
        return 1.0
    return 2.0 * (a & b).sum() / total


def iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(bool), b.astype(bool)
    union = (a | b).sum()
    if union == 0:
        return 1.0
    return (a & b).sum() / union


def ged_terms(preds, gts, estimator="v-statistic", distance="iou"):
    d = (lambda a, b: 1.0 - iou(a, b)) if distance == "iou" else (lambda a, b: 1.0 - dice(a, b))
    n, m = len(preds), len(gts)
    cross = np.mean([d(p, g) for p in preds for g in gts])
    if estimator == "v-statistic":
        ss = np.mean([d(p, q) for p in preds for q in preds])
        yy = np.mean([d(g, h) for g in gts for h in gts])
    else:
        ss = np.mean([d(preds[i], preds[j]) for i in range(n) for j in range(n) if i != j])
        yy = np.mean([d(gts[i], gts[j]) for i in range(m) for j in range(m) if i != j])
    return 2 * cross - ss - yy, cross, ss, yy


def combined_sensitivity(preds, gts) -> float:
    up = np.any(np.asarray(preds, bool), axis=0)
    ug = np.any(np.asarray(gts, bool), axis=0)
    tp = (up & ug).sum()
    fn = (~up & ug).sum()
    if tp + fn == 0:
        return 1.0
    return tp / (tp + fn)


def max_dice_matching(preds, gts) -> float:
    return float(np.mean([max(dice(p, g) for p in preds) for g in gts]))


def pixel_variance(a, b) -> float:
    return float(np.var(a.astype(np.float64) - b.astype(np.float64)))


def diversity_agreement(preds, gts, variance="dice") -> float:
    v = (lambda a, b: 1.0 - dice(a, b)) if variance == "dice" else pixel_variance
    vp = [v(a, b) for a, b in itertools.combinations(preds, 2)]
    vg = [v(a, b) for a, b in itertools.combinations(gts, 2)]
    dmax = abs(max(vg) - max(vp))
    dmin = abs(min(vg) - min(vp))
    return 1.0 - (dmax + dmin) / 2.0


def ci(preds, gts, variance="dice"):
    s = combined_sensitivity(preds, gts)
    d = max_dice_matching(preds, gts)
    a = diversity_agreement(preds, gts, variance)
    paper = 0.0 if s + d + a == 0 else 3 * s * d * a / (s + d + a)
    harmonic = 0.0 if min(s, d, a) == 0 else 3.0 / (1 / s + 1 / d + 1 / a)
    return paper, harmonic, s, d, a
