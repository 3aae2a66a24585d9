"""The rules of ``gt_weights=`` (core/weights.py): accepted forms, each error with its image, the sum
tolerance, and the per-block weights handed to the readouts."""

from __future__ import annotations

import numpy as np
import pytest

import ambiseg_metrics as am
from ambiseg_metrics.core.weights import block_gt_weights, check_gt_weights, is_uniform, n_gt_per_image


def _eq(got, want):
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g.dtype == np.float64
        np.testing.assert_array_equal(g, w)


def test_accepted_forms():
    assert check_gt_weights(None, [2, 3], True) is None
    _eq(check_gt_weights([0.25, 0.75], [2], False), [[0.25, 0.75]])
    _eq(check_gt_weights([0.25, 0.75], [2, 2, 2], True), [[0.25, 0.75]] * 3)  # one (M,) for every image
    _eq(check_gt_weights([[0.5, 0.5], [0.1, 0.9]], [2, 2], True), [[0.5, 0.5], [0.1, 0.9]])  # (B, M)
    ragged = [np.array([1.0]), (0.2, 0.3, 0.5)]  # a sequence of per-image vectors, M differs
    _eq(check_gt_weights(ragged, [1, 3], True), [[1.0], [0.2, 0.3, 0.5]])


@pytest.mark.parametrize(
    ("weights", "n_gts", "batch", "message"),
    [
        ([[0.5, 0.5]], [2], False, r"must have shape \(M,\); got shape \(1, 2\)"),
        (0.5, [2], False, r"must have shape \(M,\); got shape \(\)"),
        (0.5, [2, 2], True, r"must have shape \(M,\) or \(B, M\); got shape \(\)"),
        ([[0.5, 0.5]] * 3, [2, 2], True, r"must have shape \(M,\) or \(B, M\); got shape \(3, 2\)"),
        ([[[0.5, 0.5]]], [2], True, r"must have shape \(M,\) or \(B, M\); got shape \(1, 1, 2\)"),
        ([0.5, 0.5], [3], False, r"gt_weights must hold one weight per annotation, M=3; got shape \(2,\)"),
        ([[0.5, 0.5], [1.0]], [2, 2], True, r"gt_weights \(image 1\) must hold one weight per annotation"),
        ([1.5, -0.5], [2], False, r"gt_weights must be finite and non-negative; got \[1.5, -0.5\]"),
        ([[0.5, 0.5], [np.nan, 1.0]], [2, 2], True, r"gt_weights \(image 1\) must be finite"),
        ([np.inf, 0.0], [2], False, r"must be finite and non-negative"),
        ([0.5, 0.5 + 1.1e-6], [2], False, r"gt_weights must sum to 1; they sum to 1.0000011"),
        ([[0.5, 0.5], [0.5, 0.4]], [2, 2], True, r"gt_weights \(image 1\) must sum to 1; they sum to 0.9"),
    ],
)
def test_errors_name_the_rule_and_the_image(weights, n_gts, batch, message):
    with pytest.raises(ValueError, match=message):
        check_gt_weights(weights, n_gts, batch)


def test_sum_tolerance_is_one_in_a_million():
    check_gt_weights([0.5, 0.5 + 0.9e-6], [2], False)
    check_gt_weights([0.5, 0.5 - 0.9e-6], [2], False)
    with pytest.raises(ValueError, match="must sum to 1"):
        check_gt_weights([0.5, 0.5 - 1.1e-6], [2], False)
    check_gt_weights([1.0, 0.0, -0.0], [3], False)  # zero weights (and -0.0) are allowed


def test_a_list_of_the_wrong_length_is_read_as_one_array():
    """A sequence is per-image only when it has B one-dimensional entries; else it is one array."""
    _eq(check_gt_weights([0.5, 0.5], [2, 2, 2], True), [[0.5, 0.5]] * 3)
    with pytest.raises(ValueError, match=r"got shape \(2, 2\)"):
        check_gt_weights([[0.5, 0.5], [0.5, 0.5]], [2, 2, 2], True)


def test_is_uniform():
    assert is_uniform(None)
    assert is_uniform(np.array([0.25] * 4))
    assert not is_uniform(np.array([0.25, 0.25, 0.5]))
    assert not is_uniform(np.array([0.5, 0.25, 0.25]))


def test_weights_per_block_follow_the_block_images():
    rng = np.random.default_rng(4)
    preds = [rng.random((2, 4, 4)), rng.random((3, 4, 4)), rng.random((2, 4, 4))]
    gts = [rng.random((2, 4, 4)), rng.random((3, 4, 4)), rng.random((2, 4, 4))]
    counts = am.pair_counts(preds, gts, batch=True)
    assert n_gt_per_image(counts.n_images, counts.blocks) == [2, 3, 2]
    w = [np.array([0.1, 0.9]), np.array([0.2, 0.3, 0.5]), np.array([0.6, 0.4])]
    for block in counts.blocks:
        got = block_gt_weights(counts, block, w)
        np.testing.assert_array_equal(got, np.stack([w[int(i)] for i in block.index]))
    assert block_gt_weights(counts, counts.blocks[0], None) is None
