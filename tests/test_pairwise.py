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


# ---- the N × M block alone, the compiled matrices, the Dice of two masks
def _counts(rng, shape, k, p=40):
    masks = rng.random((*shape, k, p)) < rng.random((*shape, k, 1))  # some empty, some full
    masks[..., 0, :] = False  # an empty prediction
    masks[..., -1, :] = False  # and an empty annotation: an empty pair
    x = masks.astype(np.int64)
    return np.einsum("...ip,...jp->...ij", x, x)


@pytest.mark.parametrize("shape", [(), (3,), (2, 2)], ids=["one image", "batch", "two batch axes"])
@pytest.mark.parametrize("kind", ["iou", "dice"])
@pytest.mark.parametrize("empty_value", [None, 0.0, 1.0, np.nan])
def test_cross_similarity_is_the_block_of_the_full_matrix(shape, kind, empty_value):
    from ambiseg_metrics.core.pairwise import cross_similarity, similarity_from_counts

    rng = np.random.default_rng(len(shape))
    inter = _counts(rng, shape, 5)  # N = 3 predictions, M = 2 annotations
    kw = {} if empty_value is None else {"empty_value": empty_value}
    full = similarity_from_counts(inter, kind, **kw)[..., :3, 3:]
    got = cross_similarity(inter, 3, kind, **kw)
    assert got.shape == (*shape, 3, 2)
    np.testing.assert_array_equal(got, full)  # same operations, same bits
    expected = 1.0 if empty_value is None else empty_value  # default: two empty masks agree
    np.testing.assert_array_equal(got[..., 0, 1], np.full(shape, expected))


@pytest.mark.parametrize("kind", ["iou", "dice"])
def test_large_batches_take_the_compiled_matrices(monkeypatch, kind):
    """From 2**15 pairs on (B·K²) one compiled pass; below, numpy; both give the same bits."""
    from ambiseg_metrics.core import _kernels, pairwise

    calls = []
    real = _kernels.similarity_matrices
    monkeypatch.setattr(_kernels, "similarity_matrices", lambda *a: calls.append(a) or real(*a))
    rng = np.random.default_rng(9)
    at_limit = _counts(rng, (2048,), 4)  # 2048 · 16 = 2**15 pairs
    below = at_limit[:2047]
    numpy_path = (pairwise.iou_from_counts if kind == "iou" else pairwise.dice_from_counts)
    np.testing.assert_array_equal(pairwise.similarity_from_counts(at_limit, kind, 0.5),
                                  numpy_path(at_limit, 0.5))
    assert len(calls) == 1 and calls[0][1] == (kind == "dice")
    pairwise.similarity_from_counts(below, kind)
    pairwise.similarity_from_counts(at_limit.reshape(-1, 4)[:4], kind)  # a 2-D matrix: numpy
    assert len(calls) == 1


def test_dice_of_masks():
    from ambiseg_metrics.core.pairwise import dice_of_masks

    a = np.array([[True, True, False, False]])
    b = np.array([[True, False, True, True]])
    assert dice_of_masks(a, b) == pytest.approx(2 * 1 / 5)
    assert dice_of_masks(a, a) == 1.0
    empty = np.zeros((1, 4), bool)
    assert dice_of_masks(empty, empty) == 1.0  # default: two empty masks agree
    assert dice_of_masks(empty, empty, 0.0) == 0.0
    assert dice_of_masks(a, empty) == 0.0


def test_empty_pair_values():
    from ambiseg_metrics.core.pairwise import empty_pair_value

    assert empty_pair_value("one") == 1.0
    assert empty_pair_value("zero") == 0.0
    assert np.isnan(empty_pair_value("skip"))
    for bad in ("none", ["one"], None):  # unknown, unhashable, missing
        with pytest.raises(ValueError, match=r"empty_pair must be one of 'one', 'zero', 'skip'; got"):
            empty_pair_value(bad)


def test_compiled_matrices_only_for_large_three_axis_counts(monkeypatch):
    from ambiseg_metrics.core import _kernels, pairwise

    calls = []
    real = _kernels.similarity_matrices
    monkeypatch.setattr(_kernels, "similarity_matrices", lambda *a: calls.append(a) or real(*a))
    rng = np.random.default_rng(10)
    above = _counts(rng, (2049,), 4)  # 2049 · 16 pairs, above 2**15
    pairwise.similarity_from_counts(above, "iou")
    assert len(calls) == 1
    for inter in (_counts(rng, (), 182, p=8),  # one (K, K) matrix of 33,124 pairs
                  _counts(rng, (2, 1100), 4)):  # two batch axes, 35,200 pairs
        assert inter.size >= 1 << 15
        got = pairwise.similarity_from_counts(inter, "dice", 0.0)
        np.testing.assert_array_equal(got, pairwise.dice_from_counts(inter, 0.0))
    assert len(calls) == 1
