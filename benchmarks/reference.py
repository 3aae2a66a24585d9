"""The metrics written the way published research code computes them: per-pair loops over masks.

This is what a user would otherwise run: for every pair of masks, ``(a & b).sum()`` for the intersection
(and ``(a | b).sum()`` / the two areas for the union), a Python loop over all N² (M², N·M) ordered
pairs for the GED (self-pairs included, as in PHiSeg / the Probabilistic U-Net evaluation code), then
Dice for D_max over the N·M pairs and for D_a over the pairs i < j, the two unions for S_c, and for the
HM-IoU an N·M IoU matrix tiled to lcm(N, M) rows and columns and solved with scipy's
``linear_sum_assignment`` (as the MoSE / CCDM evaluation code does). Nothing is cached between the
metrics, as when each metric is a separate function. Both-empty pairs count as
agreement (IoU = Dice = 1), the convention of ambiseg-metrics.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["research_metrics", "research_batch"]


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.sum(a | b)
    if union == 0:
        return 1.0
    return np.sum(a & b) / union


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    total = np.sum(a) + np.sum(b)
    if total == 0:
        return 1.0
    return 2.0 * np.sum(a & b) / total


def _ged(samples: np.ndarray, gts: np.ndarray) -> tuple[float, float, float, float]:
    n, m = len(samples), len(gts)
    d_sy, d_ss, d_yy = [], [], []
    for i in range(n):
        for j in range(m):
            d_sy.append(1.0 - _iou(samples[i], gts[j]))
        for j in range(n):
            d_ss.append(1.0 - _iou(samples[i], samples[j]))
    for i in range(m):
        for j in range(m):
            d_yy.append(1.0 - _iou(gts[i], gts[j]))
    cross = sum(d_sy) / (n * m)
    ss = sum(d_ss) / (n * n)
    yy = sum(d_yy) / (m * m)
    return 2.0 * cross - ss - yy, cross, ss, yy


def _combined_sensitivity(samples: np.ndarray, gts: np.ndarray) -> float:
    up = np.zeros(samples.shape[1:], dtype=bool)
    for s in samples:
        up = up | s
    ug = np.zeros(gts.shape[1:], dtype=bool)
    for g in gts:
        ug = ug | g
    tp = np.sum(up & ug)
    fn = np.sum(~up & ug)
    return 1.0 if tp + fn == 0 else tp / (tp + fn)


def _max_dice(samples: np.ndarray, gts: np.ndarray) -> float:
    best = []
    for g in gts:
        best.append(max(_dice(s, g) for s in samples))
    return float(np.mean(best))


def _diversity_agreement(samples: np.ndarray, gts: np.ndarray) -> float:
    def variances(masks: np.ndarray) -> list[float]:
        out = []
        for i in range(len(masks)):
            for j in range(i + 1, len(masks)):
                out.append(1.0 - _dice(masks[i], masks[j]))
        return out

    vp, vg = variances(samples), variances(gts)
    return 1.0 - (abs(max(vg) - max(vp)) + abs(min(vg) - min(vp))) / 2.0


def _hm_iou(samples: np.ndarray, gts: np.ndarray) -> float:
    from scipy.optimize import linear_sum_assignment

    n, m = len(samples), len(gts)
    iou = np.zeros((n, m))
    for i in range(n):
        for j in range(m):
            iou[i, j] = _iou(samples[i], gts[j])
    size = n * m // math.gcd(n, m)
    tiled = np.tile(iou, (size // n, size // m))
    rows, cols = linear_sum_assignment(1.0 - tiled)
    return float(tiled[rows, cols].mean())


def research_metrics(samples: np.ndarray, gts: np.ndarray) -> dict[str, float]:
    """Every metric of one image (bool masks (N, *spatial) and (M, *spatial)), research-code style."""
    ged, cross, ss, yy = _ged(samples, gts)
    s_c = _combined_sensitivity(samples, gts)
    d_max = _max_dice(samples, gts)
    d_a = _diversity_agreement(samples, gts)
    hm = _hm_iou(samples, gts)
    total = s_c + d_max + d_a
    ci = 0.0 if total == 0 else 3.0 * s_c * d_max * d_a / total
    return {
        "ged": ged,
        "ged_cross": cross,
        "ged_sample_diversity": ss,
        "ged_annotator_diversity": yy,
        "ci": ci,
        "combined_sensitivity": s_c,
        "max_dice_matching": d_max,
        "diversity_agreement": d_a,
        "hm_iou": hm,
    }


def research_batch(preds: np.ndarray, gts: np.ndarray) -> dict[str, np.ndarray]:
    """:func:`research_metrics` of every image of a batch, as arrays of B values."""
    rows = [research_metrics(p, g) for p, g in zip(preds, gts, strict=True)]
    return {name: np.array([r[name] for r in rows]) for name in rows[0]}
