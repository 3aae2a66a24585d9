"""The packing kernel at the edges of a 64-pixel word, called directly: a row that ends one pixel short of a
word, the index of the first invalid value when it is a word's last pixel or when a word holds several, and
the vote table's bit-sliced counters at their largest. Each case is compared with a plain numpy packing or
count, on the three kernel entry points (``pack_rows``, ``fused_counts``, ``vote_counts``)."""

from __future__ import annotations

import numpy as np
import pytest
import reference as ref

from ambiseg_metrics.core import _kernels


def ref_pack(x: np.ndarray, threshold: float) -> np.ndarray:
    """(..., P) masks -> (..., ceil(P / 64)) uint64 words, bit i of word w = pixel 64 w + i."""
    bits = x > threshold if x.dtype.kind == "f" else x != 0
    P = bits.shape[-1]
    W = -(-P // 64)
    padded = np.zeros((*bits.shape[:-1], 64 * W), bool)
    padded[..., :P] = bits
    return np.packbits(padded, axis=-1, bitorder="little").view("<u8")


def _threshold(dtype) -> float:
    return np.dtype(dtype).type(0.5) if np.dtype(dtype).kind == "f" else np.float64(0.0)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float64])
@pytest.mark.parametrize("P", [63, 127, 191])
def test_a_row_one_pixel_short_of_a_word_is_not_read_past(P, dtype):
    """The last word of such a row holds 63 pixels and is packed pixel by pixel. A kernel that loaded it as
    a whole 64-pixel vector would read the next row's first pixel (foreground in every row here) into the
    padding bit and count it in the areas."""
    rng = np.random.default_rng(P)
    x = (rng.random((2, 5, P)) < 0.5).astype(dtype)
    x[:, :, 0] = 1  # the pixel a read past the row's end would find
    t = _threshold(dtype)
    out = np.zeros((2, 5, -(-P // 64)), np.uint64)
    bad = _kernels.pack_rows(x, out, 0, t)
    np.testing.assert_array_equal(out, ref_pack(x, t))
    assert not bad.any()
    inter, union, bad_p, bad_g = _kernels.fused_counts(x[:, :3], x[:, 3:], t, t)
    table, areas, *_ = _kernels.vote_counts(x[:, :3], x[:, 3:], t, t)
    for b in range(2):
        np.testing.assert_array_equal(inter[b], ref.pair_counts(x[b, :3] > 0, x[b, 3:] > 0)[0])
        np.testing.assert_array_equal(table[b], ref.vote_table(x[b, :3] > 0, x[b, 3:] > 0))
        np.testing.assert_array_equal(areas[b], (x[b] > 0).sum(1))


# (positions of invalid values in one row of 320 pixels = 5 whole words, the index the kernels report)
BAD = [
    ([127], 128),  # the last pixel of word 1 (an odd word): 1 + 64 + 63, where 64 | 64 and 64 ^ 64 are not
    ([255], 256),  # the last pixel of word 3 (start 192, whose bit 6 is set)
    ([5, 63], 6),  # two in one word, the word's last pixel among them: the first one counts
    ([3, 70], 4),  # two in two words: the first word's, not the last word's
    ([0, 319], 1),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("positions", "reported"), BAD)
def test_the_first_invalid_value_of_a_row_is_reported(positions, reported, dtype):
    """The kernels report 1 + the index of a row's first NaN or out-of-[0, 1] value (0: none)."""
    x = np.random.default_rng(7).random((1, 3, 320)).astype(dtype)
    for k, i in enumerate(positions):
        x[0, 1, i] = (np.nan, 1.5, -0.5)[k % 3]
    t = dtype(0.5)
    out = np.zeros((1, 3, 5), np.uint64)
    assert _kernels.pack_rows(x, out, 0, t).tolist() == [[0, reported, 0]]
    *_, bad_p, bad_g = _kernels.fused_counts(x[:, :2], x[:, 2:], t, t)
    assert bad_p.tolist() == [[0, reported]] and bad_g.tolist() == [[0]]
    *_, bad_p, bad_g = _kernels.vote_counts(x[:, 1:], x[:, :1], t, t)
    assert bad_p.tolist() == [[reported, 0]] and bad_g.tolist() == [[0]]


def test_vote_counts_return_no_gram_unless_asked():
    x = np.ones((1, 3, 100), np.uint8)
    _, _, inter, union, _, _ = _kernels.vote_counts(x[:, :2], x[:, 2:], 0.0, 0.0)
    assert inter is None and union is None
    _, _, inter, union, _, _ = _kernels.vote_counts(x[:, :2], x[:, 2:], 0.0, 0.0, with_gram=True)
    assert inter[0].tolist() == [[100] * 3] * 3 and union[0].tolist() == [100, 100, 100]


@pytest.mark.parametrize(("n", "m"), [(2**15, 1), (1, 2**15)])
def test_vote_table_with_two_to_the_fifteen_masks_on_one_side(n, m):
    """Counts up to 2**15 need all 16 bit planes of a counter (the most there are)."""
    rng = np.random.default_rng(n)
    preds = (rng.random((1, n, 64)) < 0.5).astype(np.uint8)
    gts = (rng.random((1, m, 64)) < 0.5).astype(np.uint8)
    preds[0, :, 0] = 1  # pixel 0 is marked by all 2**15 masks of the big side
    gts[0, :, 0] = 1
    table, areas, *_ = _kernels.vote_counts(preds, gts, 0.0, 0.0, with_gram=False)
    np.testing.assert_array_equal(table[0], ref.vote_table(preds[0], gts[0]))
    assert table[0, n, m] >= 1


@pytest.mark.parametrize("with_gram", [False, True])
def test_only_words_without_any_foreground_are_skipped(with_gram):
    """A word where no mask has a pixel adds 64 to T[0, 0] at once; every other word is counted. The cases:
    annotations only in a later word (word 0 empty on both sides); one prediction pixel and a full
    annotation word, whose OR words (1 and 2**64 - 1) add up to 0 modulo 2**64."""
    preds = np.zeros((1, 2, 192), np.uint8)
    gts = np.zeros((1, 2, 192), np.uint8)
    gts[0, 1, 100] = 1  # word 1: annotations only
    preds[0, 0, 128] = 1  # word 2: prediction pixel 0 of the word ...
    gts[0, 0, 128:192] = 1  # ... and every pixel of the word in one annotation
    table, areas, *_ = _kernels.vote_counts(preds, gts, 0.0, 0.0, with_gram=with_gram)
    np.testing.assert_array_equal(table[0], ref.vote_table(preds[0], gts[0]))
    assert table[0, 0, 0] == 192 - 65 and table[0, 1, 1] == 1
    np.testing.assert_array_equal(areas[0], [1, 0, 64, 1])
