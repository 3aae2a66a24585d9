"""The chunked paths of the count kernels, swept around their chunk and tile boundaries.

A large volume with few images has its word axis split into chunks (one per thread task), and each chunk is
counted in tiles of ``_kernels._TILE`` words. A chunk length that is not a multiple of the tile, or a word
count that is not a multiple of the chunk count, must still count every word: a lost tail word is a silently
wrong GED for a large volume. Each case here is compared with a brute-force count.
"""

from __future__ import annotations

import numpy as np
import pytest

import ambiseg_metrics as am
from ambiseg_metrics.core import _kernels


@pytest.fixture(autouse=True)
def _compiled_kernels_only(monkeypatch):
    """Small inputs are counted by numpy (``counts._NUMPY_COUNT_BYTES``); these tests are about the
    compiled kernels, so every input goes to them."""
    from ambiseg_metrics.core import counts

    monkeypatch.setattr(counts, "_NUMPY_COUNT_BYTES", 0)


def brute_counts(preds: np.ndarray, gts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    k = np.concatenate([preds, gts]).reshape(len(preds) + len(gts), -1).astype(np.int64)
    up = preds.reshape(len(preds), -1).any(0)
    ug = gts.reshape(len(gts), -1).any(0)
    return k @ k.T, np.array([up.sum(), ug.sum(), (up & ug).sum()])


# Word counts just above the 4,096-word chunking threshold and not multiples of 2, 4 or 8 chunks, nor of
# the tile: e.g. 4,099 words (P = 262,335, the example) gives 4 chunks of 1,025 words = 4 tiles + 1.
WORDS = [4097, 4099, 4101, 5000, 6143, 8191]


@pytest.mark.parametrize("words", WORDS)
@pytest.mark.parametrize("kind", ["bool", "float"])
def test_chunked_volume_counts_every_word(words: int, kind: str) -> None:
    P = 64 * words - 13  # a partial last word too
    assert P > 64 * (words - 1)
    rng = np.random.default_rng(words)
    shape = (1, P)  # contiguous, one image: the fused, word-chunked path
    raw_p = rng.random((3, *shape))
    raw_g = rng.random((2, *shape))
    # the last voxels of the volume are marked in every mask, so a lost tail changes every count
    raw_p[..., -70:] = 0.9
    raw_g[..., -70:] = 0.9
    preds_b, gts_b = raw_p > 0.5, raw_g > 0.5
    preds, gts = (raw_p, raw_g) if kind == "float" else (preds_b, gts_b)
    inter, union = brute_counts(preds_b, gts_b)
    block = am.pair_counts(preds, gts).blocks[0]
    assert np.array_equal(block.inter[0], inter)
    assert np.array_equal(block.union[0], union)


@pytest.mark.parametrize("words", WORDS[:3])
def test_chunked_gram_of_packed_words_counts_every_word(words: int) -> None:
    """The pack-then-Gram path (non-contiguous input) splits the word axis the same way."""
    P = 64 * words - 5
    rng = np.random.default_rng(100 + words)
    base_p = rng.random((P, 4)) < 0.4
    base_g = rng.random((P, 3)) < 0.4
    base_p[-3:] = True
    base_g[-3:] = True
    view_p, view_g = base_p.T[:, None, :], base_g.T[:, None, :]  # (K, 1, P), not C-contiguous
    assert not view_p.flags.c_contiguous
    # enough pair-words for the parallel, chunked Gram (not the serial one for tiny inputs)
    assert 7 * 8 // 2 * words >= _kernels._SERIAL_GRAM_PAIRS
    preds, gts = np.ascontiguousarray(view_p), np.ascontiguousarray(view_g)
    inter, union = brute_counts(preds, gts)
    block = am.pair_counts(view_p, view_g).blocks[0]
    assert np.array_equal(block.inter[0], inter)
    assert np.array_equal(block.union[0], union)


def test_the_sweep_reaches_uneven_chunks_and_clipped_tiles() -> None:
    """Guard the sweep itself: with this machine's thread count, some case has a chunk count that does not
    divide the word count and a chunk length that is not a multiple of the tile."""
    import numba

    n_threads = numba.get_num_threads()
    uneven = clipped = False
    for w in WORDS:
        n_chunks = min(4 * n_threads, max(1, w // 1024))  # the rule for one image (B = 1)
        chunk = -(-w // n_chunks)
        uneven |= w % n_chunks != 0
        clipped |= chunk % _kernels._TILE != 0
    assert uneven and clipped
