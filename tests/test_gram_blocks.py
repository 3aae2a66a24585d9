"""The register-blocked Gram counts (4 × 4 blocks of rows, then the leftover rows pair by pair) equal a
brute-force count for every K (multiples of 4 and not), across tile boundaries, fused and unfused."""

from __future__ import annotations

import numpy as np
import pytest

from ambiseg_metrics.core import _kernels


def brute(masks: np.ndarray, n_pred: int) -> tuple[np.ndarray, np.ndarray]:
    x = masks.reshape(*masks.shape[:2], -1).astype(np.int64)
    up = masks[:, :n_pred].any(1).reshape(len(masks), -1)
    ug = masks[:, n_pred:].any(1).reshape(len(masks), -1)
    union = np.stack([up.sum(1), ug.sum(1), (up & ug).sum(1)], axis=1)
    return x @ x.transpose(0, 2, 1), union


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 7, 8, 9, 12, 13])
@pytest.mark.parametrize("words", [1, 255, 257, 600])
def test_blocked_gram_equals_brute_force(k, words):
    rng = np.random.default_rng(k * 1000 + words)
    P = 64 * words - 3
    masks = rng.random((2, k, P)) < rng.random((2, k, 1))
    masks[:, :, -1] = True  # the last pixel of the last (partial) word
    n_pred = max(1, k // 2) if k > 1 else 1
    inter, union = brute(masks, n_pred)
    packed = np.zeros((2, k, words), dtype=np.uint64)
    _kernels.pack_rows(masks[:, :n_pred].view(np.uint8), packed, 0, None)
    if k > n_pred:
        _kernels.pack_rows(masks[:, n_pred:].view(np.uint8), packed, n_pred, None)
    got_inter, got_union = _kernels.gram_counts(packed, n_pred)
    assert np.array_equal(got_inter, inter)
    if k > n_pred:
        assert np.array_equal(got_union, union)
        f_inter, f_union, _, _ = _kernels.fused_counts(
            masks[:, :n_pred].view(np.uint8), masks[:, n_pred:].view(np.uint8), 0.5, 0.5)
        assert np.array_equal(f_inter, inter)
        assert np.array_equal(f_union, union)


def test_thread_count_can_be_set_per_process():
    """One thread (a process-pool worker) or several: the same counts; bad values are refused."""
    rng = np.random.default_rng(9)
    masks = rng.random((6, 9, 200, 200)) < 0.3
    packed = np.zeros((6, 9, (200 * 200 + 63) // 64), dtype=np.uint64)
    assert 6 * 45 * packed.shape[2] >= _kernels._SERIAL_GRAM_PAIRS  # the threaded path
    _kernels.pack_rows(masks.reshape(6, 9, -1).view(np.uint8), packed, 0, None)
    try:
        _kernels.set_threads(1)
        one = _kernels.gram_counts(packed, 5)
        _kernels.set_threads(3)
        three = _kernels.gram_counts(packed, 5)
    finally:
        _kernels.set_threads(None)
    assert np.array_equal(one[0], three[0]) and np.array_equal(one[1], three[1])
    assert np.array_equal(one[0], brute(masks, 5)[0])
    with pytest.raises(ValueError, match="positive integer"):
        _kernels.set_threads(0)
