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


# ----------------------------------------------------------------------------------------------------
# Issue 5 references: convention-aware GED, HM-IoU by brute force, multi-class GED, NCC, dice_soft.
# ----------------------------------------------------------------------------------------------------
EMPTY = {"one": 1.0, "zero": 0.0, "skip": float("nan")}


def iou_conv(a, b, empty_pair="one") -> float:
    """IoU with the value of two empty masks given by a convention name (NaN = skipped)."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    union = (a | b).sum()
    if union == 0:
        return EMPTY[empty_pair]
    return (a & b).sum() / union


def dice_conv(a, b, empty_pair="one") -> float:
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    total = a.sum() + b.sum()
    if total == 0:
        return EMPTY[empty_pair]
    return 2.0 * (a & b).sum() / total


def _mean_defined(values) -> float:
    values = [v for v in values if not np.isnan(v)]
    return float(np.mean(values)) if values else float("nan")


def ged_terms_conv(preds, gts, estimator="v-statistic", distance="iou", empty_pair="one"):
    """GED terms, pair by pair, with the empty-pair convention; skipped pairs leave the mean."""
    sim = iou_conv if distance == "iou" else dice_conv

    def d(a, b):
        return 1.0 - sim(a, b, empty_pair)

    n, m = len(preds), len(gts)
    cross = _mean_defined([d(p, g) for p in preds for g in gts])
    keep = (lambda i, j: True) if estimator == "v-statistic" else (lambda i, j: i != j)
    ss = _mean_defined([d(preds[i], preds[j]) for i in range(n) for j in range(n) if keep(i, j)])
    yy = _mean_defined([d(gts[i], gts[j]) for i in range(m) for j in range(m) if keep(i, j)])
    return 2 * cross - ss - yy, cross, ss, yy


def hungarian_bruteforce(sim) -> float:
    """Best mean similarity over all permutations of the lcm-duplicated sets (tiny sizes only)."""
    sim = np.asarray(sim, dtype=np.float64)
    n, m = sim.shape
    size = n * m // int(np.gcd(n, m))
    rows = [i for i in range(n) for _ in range(size // n)]
    cols = [j for j in range(m) for _ in range(size // m)]
    best = -1.0
    for perm in itertools.permutations(range(size)):
        best = max(best, float(np.mean([sim[rows[k], cols[perm[k]]] for k in range(size)])))
    return best


def hungarian_iou(preds, gts, empty_pair="one") -> float:
    value = "one" if empty_pair == "skip" else empty_pair
    return hungarian_bruteforce([[iou_conv(p, g, value) for g in gts] for p in preds])


def multiclass_iou(a, b, classes, class_absent="one") -> float:
    """Mean over the classes of the per-class IoU of two label maps (PHiSeg / Kohl style loop)."""
    per_class = []
    for c in classes:
        ac, bc = np.asarray(a) == c, np.asarray(b) == c
        union = (ac | bc).sum()
        per_class.append(EMPTY[class_absent] if union == 0 else (ac & bc).sum() / union)
    return _mean_defined(per_class)


def multiclass_ged(preds, gts, classes, class_absent="one", estimator="v-statistic"):
    n, m = len(preds), len(gts)

    def d(a, b):
        return 1.0 - multiclass_iou(a, b, classes, class_absent)

    cross = _mean_defined([d(p, g) for p in preds for g in gts])
    keep = (lambda i, j: True) if estimator == "v-statistic" else (lambda i, j: i != j)
    ss = _mean_defined([d(preds[i], preds[j]) for i in range(n) for j in range(n) if keep(i, j)])
    yy = _mean_defined([d(gts[i], gts[j]) for i in range(m) for j in range(m) if keep(i, j)])
    return 2 * cross - ss - yy


def _cross_entropy_maps(s, y, eps):
    """E_ss (P,) and the M maps E_sy (P,) of class-last probabilities s (N, ..., C) and y (M, ..., C)."""
    mean = s.mean(axis=0)

    def xent(q, p):  # -sum_c p_c log(q_c + eps), per pixel
        return -np.sum(p * np.log(q + eps), axis=-1)

    e_ss = np.mean([xent(s[i], mean) for i in range(len(s))], axis=0).ravel()
    e_sy = [np.mean([xent(s[i], y[j]) for i in range(len(s))], axis=0).ravel() for j in range(len(y))]
    return e_ss, e_sy


def _mean_correlation(e_ss, maps) -> float:
    values = []
    for e_sy in maps:
        a = (e_ss - e_ss.mean()) / (e_ss.std() * len(e_ss))
        v = (e_sy - e_sy.mean()) / e_sy.std()
        values.append(float(np.sum(a * v)))
    return float(np.mean(values))


def ncc_maps(samples, gts, eps=1e-8):
    """PHiSeg's expected cross-entropy maps as loops: E_ss (P,) and the M maps E_sy (P,)."""
    s = np.stack([1.0 - np.asarray(samples, float), np.asarray(samples, float)], axis=-1)
    y = np.stack([1.0 - np.asarray(gts, float), np.asarray(gts, float)], axis=-1)
    return _cross_entropy_maps(s, y, eps)


def ncc_channels(samples, gts, eps=1e-8) -> float:
    """NCC of class probability maps (N, C, ...) and (M, C, ...), the class axis second, as loops."""
    s = np.moveaxis(np.asarray(samples, float), 1, -1)
    y = np.moveaxis(np.asarray(gts, float), 1, -1)
    return _mean_correlation(*_cross_entropy_maps(s, y, eps))


def ncc(samples, gts, eps=1e-8) -> float:
    """PHiSeg's NCC written as loops: binary foreground probabilities, classes [1 - p, p]."""
    return _mean_correlation(*ncc_maps(samples, gts, eps))


def vote_table(preds, gts) -> np.ndarray:
    """T[a, b] = pixels marked by exactly a of the N predictions and b of the M annotations."""
    a = np.asarray(preds).reshape(len(preds), -1).astype(np.int64).sum(0)
    b = np.asarray(gts).reshape(len(gts), -1).astype(np.int64).sum(0)
    cells = (len(preds) + 1) * (len(gts) + 1)
    return np.bincount(a * (len(gts) + 1) + b, minlength=cells).reshape(len(preds) + 1, len(gts) + 1)


def pair_counts(preds, gts):
    """Intersection counts of every pair of the N + M masks (predictions first), and the areas of the
    union of the predictions, of the annotations, and of their intersection."""
    k = np.concatenate([preds, gts]).reshape(len(preds) + len(gts), -1).astype(np.int64)
    up = np.asarray(preds).reshape(len(preds), -1).any(0)
    ug = np.asarray(gts).reshape(len(gts), -1).any(0)
    return k @ k.T, np.array([up.sum(), ug.sum(), (up & ug).sum()])


def dice_soft(samples, gts, thresholds=(0.1, 0.3, 0.5, 0.7, 0.9)) -> float:
    ms = np.mean(np.asarray(samples, float), axis=0)
    my = np.mean(np.asarray(gts, float), axis=0)
    return float(np.mean([dice(ms > t, my > t) for t in thresholds]))


def _paeth(a: int, b: int, c: int) -> int:
    """PNG's Paeth predictor: of a (left), b (above), c (above left), the one closest to a + b - c; ties in
    that order."""
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)


def png_unfilter(raw: np.ndarray) -> np.ndarray:
    """PNG scanline unfiltering for 1 byte per pixel, written from the specification (section 9), pixel by
    pixel in Python ints: ``raw`` is (H, W + 1) uint8 (a filter byte per row), the result (H, W) uint8."""
    h, w = raw.shape[0], raw.shape[1] - 1
    out = [[0] * w for _ in range(h)]
    for y in range(h):
        kind = int(raw[y, 0])
        for x in range(w):
            a = out[y][x - 1] if x > 0 else 0
            b = out[y - 1][x] if y > 0 else 0
            c = out[y - 1][x - 1] if x > 0 and y > 0 else 0
            if kind == 0:
                pred = 0
            elif kind == 1:
                pred = a
            elif kind == 2:
                pred = b
            elif kind == 3:
                pred = (a + b) // 2
            elif kind == 4:
                pred = _paeth(a, b, c)
            else:
                raise ValueError(f"filter type {kind}")
            out[y][x] = (int(raw[y, x + 1]) + pred) % 256
    return np.array(out, dtype=np.uint8).reshape(h, w)


def png_filter(pixels: np.ndarray, kinds: list[int]) -> np.ndarray:
    """The inverse of :func:`png_unfilter`: filter each row of (H, W) uint8 ``pixels`` with its filter
    type ``kinds[y]`` (as a PNG encoder does), giving the (H, W + 1) scanlines."""
    h, w = pixels.shape
    px = pixels.astype(int)
    raw = np.zeros((h, w + 1), np.uint8)
    for y in range(h):
        kind = kinds[y]
        raw[y, 0] = kind
        for x in range(w):
            a = px[y, x - 1] if x > 0 else 0
            b = px[y - 1, x] if y > 0 else 0
            c = px[y - 1, x - 1] if x > 0 and y > 0 else 0
            pred = _paeth(a, b, c) if kind == 4 else (0, a, b, (a + b) // 2)[kind]
            raw[y, x + 1] = (px[y, x] - pred) % 256
    return raw
