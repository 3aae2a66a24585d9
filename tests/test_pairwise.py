"""Dice and IoU from counts: the public defaults and the empty-pair value, on hand-made count matrices."""

from __future__ import annotations

import numpy as np
import pytest

import ambiseg_metrics as am
from ambiseg_metrics.core.pairwise import similarity_from_counts

# two masks of 2 and 3 pixels sharing 1, and an empty third mask
INTER = np.array([[2, 1, 0], [1, 3, 0], [0, 0, 0]])


def test_dice_and_iou_defaults_give_one_for_two_empty_masks() -> None:
    dice = am.dice_from_counts(INTER)
    iou = am.iou_from_counts(INTER)
    assert dice[2, 2] == 1.0 and iou[2, 2] == 1.0
    assert dice[0, 1] == pytest.approx(2 / 5) and iou[0, 1] == pytest.approx(1 / 4)
    assert dice[0, 2] == 0.0 and iou[0, 2] == 0.0  # one empty, one not: no agreement
    assert np.array_equal(np.diagonal(dice)[:2], [1.0, 1.0])


@pytest.mark.parametrize("kind", ["iou", "dice"])
def test_similarity_from_counts_default_and_explicit_empty_value(kind: str) -> None:
    want = (am.iou_from_counts if kind == "iou" else am.dice_from_counts)(INTER)
    assert np.array_equal(similarity_from_counts(INTER, kind), want)
    assert similarity_from_counts(INTER, kind)[2, 2] == 1.0
    assert similarity_from_counts(INTER, kind, empty_value=0.0)[2, 2] == 0.0
    assert np.isnan(similarity_from_counts(INTER, kind, empty_value=np.nan)[2, 2])
