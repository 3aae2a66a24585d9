"""Peer libraries used as a user would use them: a pairwise Dice / IoU function applied to mask pairs.

MONAI (``DiceMetric``, ``MeanIoU``), torchmetrics (``dice_score``, ``mean_iou``) and medpy (``dc``,
``jc``) compute one overlap score per pair of masks; none computes the GED or the CI score. Each adapter
here computes, per image, IoU for every pair the GED needs and Dice for every pair D_max and D_a need
(the same 190 unordered pairs each for N=16, M=4), then the metrics are read from those two matrices by
:func:`metrics_from_pairwise` (a few microseconds, not what is being compared).

MONAI and torchmetrics get all the pairs of one image in one batched call (chunked to bound memory);
medpy is called once per pair. Where a peer returns NaN for two empty masks (torchmetrics, medpy's
``dc``), the adapter applies the library's convention (both empty = 1) so the results can be compared.

A peer that is not installed is skipped with the reason (:func:`available_peers`).
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["Peer", "PEERS", "available_peers", "metrics_from_pairwise", "pairs_needed"]

#: Pair scores a peer returns: (iou, dice) arrays of shape (n_pairs,) for the pairs (i, j) of one image.
PairScorer = Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class Peer:
    """One peer adapter: ``name`` as printed, ``module`` to import, ``make`` builds the pair scorer."""

    name: str
    module: str
    make: Callable[[], PairScorer]


def pairs_needed(n: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (i, j), i < j, into the stacked (N + M) masks: all pairs any metric needs."""
    i, j = np.triu_indices(n + m, 1)
    return i, j


def metrics_from_pairwise(iou: np.ndarray, dice: np.ndarray, n: int) -> dict[str, float]:
    """GED (V-statistic, d = 1 - IoU) with its terms, D_max and D_a (Dice variance) from K×K matrices."""
    d = 1.0 - iou
    m = iou.shape[0] - n
    cross = d[:n, n:].mean()
    ss = d[:n, :n].sum() / (n * n)
    yy = d[n:, n:].sum() / (m * m)
    v = 1.0 - dice
    vp = v[:n, :n][np.triu_indices(n, 1)]
    vg = v[n:, n:][np.triu_indices(m, 1)]
    return {
        "ged": 2.0 * cross - ss - yy,
        "ged_cross": cross,
        "ged_sample_diversity": ss,
        "ged_annotator_diversity": yy,
        "max_dice_matching": dice[n:, :n].max(axis=1).mean(),
        "diversity_agreement": 1.0 - (abs(vg.max() - vp.max()) + abs(vg.min() - vp.min())) / 2.0,
    }


def _chunks(n_pairs: int, n_pixels: int, budget: int = 1 << 24) -> list[slice]:
    """Split the pairs so that one batched call holds at most ``budget`` pixels per operand."""
    step = max(1, budget // max(1, n_pixels))
    return [slice(s, min(s + step, n_pairs)) for s in range(0, n_pairs, step)]


def _monai() -> PairScorer:
    import torch
    from monai.metrics import DiceMetric, MeanIoU

    dice_metric = DiceMetric(include_background=True, reduction="none", ignore_empty=False)
    iou_metric = MeanIoU(include_background=True, reduction="none", ignore_empty=False)

    def score(masks: np.ndarray, i: np.ndarray, j: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        t = torch.from_numpy(masks).float().unsqueeze(1)  # (K, 1, *spatial): one channel
        ious, dices = [], []
        for sl in _chunks(len(i), masks[0].size):
            a, b = t[i[sl]], t[j[sl]]
            ious.append(iou_metric(y_pred=a, y=b).reshape(-1))
            dices.append(dice_metric(y_pred=a, y=b).reshape(-1))
            iou_metric.reset()
            dice_metric.reset()
        return torch.cat(ious).numpy(), torch.cat(dices).numpy()

    return score


def _both_empty_to_one(values: np.ndarray, masks: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    empty = ~masks.reshape(len(masks), -1).any(axis=1)
    return np.where(empty[i] & empty[j], 1.0, values)


def _torchmetrics() -> PairScorer:
    import torch
    from torchmetrics.functional.segmentation import dice_score, mean_iou

    def score(masks: np.ndarray, i: np.ndarray, j: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        t = torch.from_numpy(masks).to(torch.uint8).unsqueeze(1)  # one-hot with one class
        ious, dices = [], []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "dice_score currently defaults to ..."
            for sl in _chunks(len(i), masks[0].size):
                a, b = t[i[sl]], t[j[sl]]
                ious.append(mean_iou(a, b, num_classes=1, include_background=True).reshape(-1))
                dices.append(dice_score(a, b, num_classes=1, include_background=True, average="micro")
                             .reshape(-1))
        iou = torch.cat(ious).double().numpy()
        dice = torch.cat(dices).double().numpy()
        return _both_empty_to_one(iou, masks, i, j), _both_empty_to_one(dice, masks, i, j)

    return score


def _medpy() -> PairScorer:
    from medpy.metric.binary import dc, jc

    def score(masks: np.ndarray, i: np.ndarray, j: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        iou = np.empty(len(i))
        dice = np.empty(len(i))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # dc() divides 0 by 0 for two empty masks
            for q, (a, b) in enumerate(zip(i, j, strict=True)):
                iou[q] = jc(masks[a], masks[b])
                dice[q] = dc(masks[a], masks[b])
        return _both_empty_to_one(iou, masks, i, j), _both_empty_to_one(dice, masks, i, j)

    return score


PEERS: tuple[Peer, ...] = (
    Peer("MONAI DiceMetric+MeanIoU (batched pairs)", "monai", _monai),
    Peer("torchmetrics dice_score+mean_iou (batched pairs)", "torchmetrics", _torchmetrics),
    Peer("medpy dc+jc (one call per pair)", "medpy", _medpy),
)


def available_peers(skip: set[str] | None = None) -> tuple[list[tuple[Peer, PairScorer]], list[str]]:
    """Build the scorers of the installed peers.

    Returns
    -------
    peers : list of (Peer, scorer)
    skipped : list of str
        One line per peer that could not be used, with the reason.
    """
    ready, skipped = [], []
    for peer in PEERS:
        if skip and peer.module in skip:
            skipped.append(f"{peer.name}: skipped (--skip-peers)")
            continue
        try:
            importlib.import_module(peer.module)
            ready.append((peer, peer.make()))
        except Exception as exc:  # ImportError, or a broken install raising anything at import
            skipped.append(f"{peer.name}: not available ({type(exc).__name__}: {exc}); "
                           f"pip install {peer.module}")
    return ready, skipped


def peer_batch(scorer: PairScorer, preds: np.ndarray, gts: np.ndarray) -> dict[str, np.ndarray]:
    """Metrics of every image of a batch from a peer's pairwise scores."""
    n, m = preds.shape[1], gts.shape[1]
    i, j = pairs_needed(n, m)
    k = n + m
    rows = []
    for p, g in zip(preds, gts, strict=True):
        masks = np.concatenate([p, g])
        iou_pairs, dice_pairs = scorer(masks, i, j)
        iou = np.eye(k)
        dice = np.eye(k)
        iou[i, j] = iou[j, i] = iou_pairs
        dice[i, j] = dice[j, i] = dice_pairs
        rows.append(metrics_from_pairwise(iou, dice, n))
    return {name: np.array([r[name] for r in rows]) for name in rows[0]}
