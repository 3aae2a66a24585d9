"""The chunked paths of the count kernels, swept around their chunk and tile boundaries.

A large volume with few images has its word axis split into chunks (one per thread task), and each chunk is
counted in tiles of ``_kernels._TILE`` words. A chunk length that is not a multiple of the tile, or a word
count that is not a multiple of the chunk count, must still count every word: a lost tail word is a silently
wrong GED for a large volume. Each case here is compared with a brute-force count.
"""

from __future__ import annotations

import numpy as np
import pytest
import reference as ref

import ambiseg_metrics as am
from ambiseg_metrics.core import _kernels


@pytest.fixture(autouse=True)
def _compiled_kernels_only(monkeypatch):
    """Small inputs are counted by numpy (``counts._NUMPY_COUNT_BYTES``); these tests are about the
    compiled kernels, so every input goes to them."""
    from ambiseg_metrics.core import counts

    monkeypatch.setattr(counts, "_NUMPY_COUNT_BYTES", 0)


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
    inter, union = ref.pair_counts(preds_b, gts_b)
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
    inter, union = ref.pair_counts(preds, gts)
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


@pytest.fixture
def two_threads():
    """The chunk count depends on the thread count: pin it, so these cases are the same on every machine."""
    _kernels.set_threads(2)
    yield
    _kernels.set_threads(None)


# B images of W = 4097 words: with 2 threads, 2 word chunks for B = 4..7 and 3 for B = 3 (4097 = 2·2048 + 1
# = 3·1365 + 2), so the chunk length is a rounded-up quotient and the last chunk is short
PATHS = ["fused", "packed", "votes", "votes and pairs"]


@pytest.mark.parametrize("images", [3, 5])
@pytest.mark.parametrize("path", PATHS)
def test_few_chunks_count_every_word(two_threads, images, path):
    words = 4097
    n_chunks = _kernels._n_chunks(images, words)
    assert n_chunks == (3 if images == 3 else 2)
    P = 64 * words - 3
    rng = np.random.default_rng([images, PATHS.index(path)])  # other masks for every case
    preds = rng.random((images, 2, 1, P)) < 0.4  # (B, N, 1, P): 2D images of one row
    gts = rng.random((images, 1, 1, P)) < 0.4
    preds[:, :, -2:] = True  # the last word of the last chunk counts in every mask
    gts[:, :, -2:] = True
    if path.startswith("votes"):
        if path == "votes":
            blk = am.vote_counts(preds, gts, batch=True).blocks[0]
        else:  # one pass for both: the Gram partials of the chunks are summed too
            pairs, votes = am.pair_and_vote_counts(preds, gts, batch=True)
            blk = votes.blocks[0]
            for i in range(images):
                inter, union = ref.pair_counts(preds[i], gts[i])
                np.testing.assert_array_equal(pairs.blocks[0].inter[i], inter)
                np.testing.assert_array_equal(pairs.blocks[0].union[i], union)
        for i in range(images):
            np.testing.assert_array_equal(blk.table[i], ref.vote_table(preds[i], gts[i]))
        return
    block = am.pair_counts(list(preds) if path == "packed" else preds, gts if path == "fused" else list(gts),
                           batch=True).blocks[0]
    for i in range(images):
        inter, union = ref.pair_counts(preds[i], gts[i])
        np.testing.assert_array_equal(block.inter[i], inter)
        np.testing.assert_array_equal(block.union[i], union)


@pytest.mark.parametrize("counter", ["pair_counts", "vote_counts"])
def test_bad_value_in_a_later_chunk_is_found(two_threads, counter):
    """Each chunk reports its first bad value; the first over all chunks must be the one named."""
    words = 4097
    P = 64 * words
    x = np.random.default_rng(0).random((1, 3, 1, P))
    x[0, 1, 0, P - 10] = np.nan  # in the last chunk of mask 1
    x[0, 2, 0, 70] = 2.0  # mask 2: in the first chunk
    g = np.random.default_rng(1).random((1, 2, 1, P)) > 0.5
    with pytest.raises(ValueError, match=rf"preds contains NaN \(image 0, mask 1, pixel {P - 10}\)"):
        getattr(am, counter)(x, g, batch=True)


@pytest.mark.parametrize("counter", ["pair_counts", "vote_counts"])
def test_bad_value_at_pixel_0_of_a_chunked_mask_is_found(two_threads, counter):
    """A chunk reports its first bad value as 1 + its index: pixel 0 is reported as 1, and counts."""
    P = 64 * 4097
    x = np.random.default_rng(4).random((1, 3, 1, P))
    x[0, 2, 0, 0] = -1.0  # the only bad value, at the first pixel of the first chunk
    g = np.random.default_rng(5).random((1, 2, 1, P)) > 0.5
    with pytest.raises(ValueError, match=r"preds contains -1.0 \(image 0, mask 2, pixel 0\)"):
        getattr(am, counter)(x, g, batch=True)


@pytest.mark.parametrize("counter", ["pair_counts", "vote_counts"])
def test_bad_value_in_the_second_of_two_chunks_is_found(two_threads, counter):
    """4 large images on 2 threads are split into 2 chunks each: the second chunk's report counts too."""
    words = 4097
    P = 64 * words
    assert _kernels._n_chunks(4, words) == 2
    x = np.random.default_rng(2).random((4, 2, 1, P), dtype=np.float32)
    x[3, 1, 0, P - 10] = np.nan  # in the second chunk of image 3's mask 1, the only bad value
    g = np.random.default_rng(3).random((4, 1, 1, P)) > 0.5
    with pytest.raises(ValueError, match=rf"preds contains NaN \(image 3, mask 1, pixel {P - 10}\)"):
        getattr(am, counter)(x, g, batch=True)


@pytest.mark.parametrize("side", ["preds", "gts"])
@pytest.mark.parametrize("counter", ["pair_counts", "vote_counts"])
def test_bad_value_in_a_later_chunk_of_a_lone_mask_is_found(two_threads, counter, side):
    """One prediction and one annotation: the per-chunk reports are (B, chunks, 1), and the chunk axis, not
    the mask axis, decides whether there is anything to combine."""
    P = 64 * 4097
    assert _kernels._n_chunks(1, 4097) > 1
    x = np.random.default_rng(8).random((1, 1, 1, P), dtype=np.float32)
    y = np.random.default_rng(9).random((1, 1, 1, P), dtype=np.float32)
    (x if side == "preds" else y)[0, 0, 0, P - 10] = np.nan  # in the last chunk, the only bad value
    with pytest.raises(ValueError, match=rf"{side} contains NaN \(image 0, mask 0, pixel {P - 10}\)"):
        getattr(am, counter)(x, y, batch=True)


def test_vote_table_of_a_256_cubed_volume():
    """A 3D volume of 2**24 voxels, one pass: the vote kernel's scratch is sized by the masks and the tile,
    never by the voxels (sized by the voxels it would be 2**24 x 256 words, 32 GiB)."""
    rng = np.random.default_rng(10)
    preds = rng.random((1, 2, 256, 256, 256), dtype=np.float32) < 0.3
    gts = rng.random((1, 2, 256, 256, 256), dtype=np.float32) < 0.3
    table = am.vote_counts(preds, gts, batch=True).blocks[0].table[0]
    np.testing.assert_array_equal(table, ref.vote_table(preds[0], gts[0]))


@pytest.mark.parametrize("threads", [3, 4, 5])
def test_any_thread_count_runs_every_task(threads):
    """The tasks are split into about 4 ranges per thread; every split must still run each task once."""
    rng = np.random.default_rng(threads)
    preds = rng.random((6, 3, 1, 64 * 4097)) < 0.3  # 6 images x 4097 words: chunked and threaded
    gts = rng.random((6, 2, 1, 64 * 4097)) < 0.3
    _kernels.set_threads(threads)
    try:
        block = am.pair_counts(preds, gts, batch=True).blocks[0]
        votes = am.vote_counts(list(preds), list(gts), batch=True)
    finally:
        _kernels.set_threads(None)
    for i in range(6):
        inter, union = ref.pair_counts(preds[i], gts[i])
        np.testing.assert_array_equal(block.inter[i], inter)
        np.testing.assert_array_equal(block.union[i], union)
        np.testing.assert_array_equal(votes.per_image()[i].table[0], ref.vote_table(preds[i], gts[i]))


def test_thread_pool_follows_set_threads():
    """A change of the thread count gives a pool of that many threads, down as well as up; the same count
    keeps the pool."""
    rng = np.random.default_rng(5)
    preds = rng.random((6, 3, 1, 64 * 4097)) < 0.3  # chunked and threaded
    gts = rng.random((6, 2, 1, 64 * 4097)) < 0.3
    sizes, pools = [], []
    try:
        for threads in (3, 3, 2, 4):
            _kernels.set_threads(threads)
            am.pair_counts(preds, gts, batch=True)
            sizes.append(_kernels._POOL._max_workers)
            pools.append(_kernels._POOL)
    finally:
        _kernels.set_threads(None)
    assert sizes == [3, 3, 2, 4]
    assert pools[1] is pools[0] and len({id(pool) for pool in pools}) == 3  # reused while n is the same


@pytest.mark.parametrize("configured", [1, 3])
def test_threads_follow_numba_num_threads(monkeypatch, configured):
    """Without set_threads the kernels use NUMBA_NUM_THREADS threads (1 included); set_threads wins."""
    monkeypatch.setattr(_kernels.numba_config, "NUMBA_NUM_THREADS", configured)
    assert _kernels._n_threads() == configured
    _kernels.set_threads(2)
    try:
        assert _kernels._n_threads() == 2
    finally:
        _kernels.set_threads(None)
    assert _kernels._n_threads() == configured


def test_more_masks_than_words_per_span():
    """The fused kernel packs spans of up to 1,024 words into a (K, 1024) buffer; with more than 1,024
    masks and words the span length must still be the buffer's width, not the mask count."""
    rng = np.random.default_rng(6)
    P = 64 * 1025
    preds = rng.random((1, 1000, 1, P), dtype=np.float32) < 0.3
    gts = rng.random((1, 25, 1, P), dtype=np.float32) < 0.3
    block = am.pair_counts(preds, gts, batch=True).blocks[0]
    k = np.concatenate([preds[0], gts[0]]).reshape(1025, P)
    np.testing.assert_array_equal(np.diagonal(block.inter[0]), k.sum(axis=1))
    for i in (0, 999, 1024):
        np.testing.assert_array_equal(block.inter[0, i], k @ k[i].astype(np.int64))
    votes = am.vote_counts(preds, gts, batch=True).blocks[0]  # the vote kernel packs spans the same way
    np.testing.assert_array_equal(votes.table[0], ref.vote_table(preds[0], gts[0]))


def test_every_kernel_releases_the_gil():
    """The module promises serial kernels that release the GIL (threads of a caller run them at once)."""
    from numba.core.registry import CPUDispatcher

    kernels = {name: f for name, f in vars(_kernels).items() if isinstance(f, CPUDispatcher)}
    assert "assignment_kernel" in kernels and len(kernels) > 10
    assert [name for name, f in kernels.items() if not f.targetoptions.get("nogil")] == []
