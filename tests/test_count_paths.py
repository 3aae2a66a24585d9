"""Which counting path a call takes, and what each path is handed.

The paths give the same numbers (``test_small_path.py``), so a wrong choice would only cost time: small
groups (< 1 MiB) are counted by numpy without loading compiled code, one contiguous batch array per side
in one fused pack-and-count pass, anything else (a list of images, a transposed view) packed at
64 pixels per word and then counted. These tests pin that choice and the packed width, and the image an
error names on the packing path.
"""

from __future__ import annotations

import numpy as np
import pytest

import ambiseg_metrics as am
from ambiseg_metrics.core import _kernels, counts

RNG = np.random.default_rng(11)
# 2 images x (3 + 2) float64 masks of 60 x 331 pixels: 1.59 MB, above the 1 MiB numpy limit;
# 19,860 pixels = 310.3 words, so the last word is partly used
BIG = (2, 60, 331)


def _spy(monkeypatch, name):
    calls = []
    real = getattr(_kernels, name)

    def spy(*args):
        calls.append(args)
        return real(*args)

    monkeypatch.setattr(_kernels, name, spy)
    return calls


def _big(n, dtype=np.float64):
    return RNG.random((BIG[0], n, *BIG[1:])).astype(dtype)


def test_small_group_is_counted_by_numpy(monkeypatch):
    fused, gram = _spy(monkeypatch, "fused_counts"), _spy(monkeypatch, "gram_counts")
    p, g = RNG.random((2, 3, 16, 16)), RNG.random((2, 2, 16, 16)) > 0.5
    am.pair_counts(p, g, batch=True)
    assert fused == [] and gram == []


def test_contiguous_batch_takes_the_fused_pass(monkeypatch):
    fused, gram = _spy(monkeypatch, "fused_counts"), _spy(monkeypatch, "gram_counts")
    p, g = _big(3), _big(2)
    assert p.nbytes + g.nbytes > counts._NUMPY_COUNT_BYTES
    c = am.pair_counts(p, g, batch=True)
    assert len(fused) == 1 and gram == []
    assert fused[0][0].shape == (2, 3, BIG[1] * BIG[2])
    np.testing.assert_array_equal(c.blocks[0].inter[:, 0, 0], (p[:, 0] > 0.5).sum(axis=(1, 2)))


@pytest.mark.parametrize("spatial", [BIG[1:], (64, 320)], ids=["partial last word", "whole words"])
@pytest.mark.parametrize("layout", ["list", "transposed", "list of transposed"])
def test_other_layouts_are_packed_64_pixels_per_word(monkeypatch, layout, spatial):
    fused, gram = _spy(monkeypatch, "fused_counts"), _spy(monkeypatch, "gram_counts")
    packs = _spy(monkeypatch, "pack_rows")
    p, g = RNG.random((3, 3, *spatial)), RNG.random((3, 2, *spatial))
    if "transposed" in layout:  # packed one mask at a time, each into its own image's row
        p, g = np.swapaxes(p, -1, -2), np.swapaxes(g, -1, -2)
    p_in, g_in = (list(p), list(g)) if "list" in layout else (p, g)
    c = am.pair_counts(p_in, g_in, batch=True)
    assert fused == [] and len(gram) == 1
    packed = gram[0][0]
    assert packed.shape == (3, 5, -(-spatial[0] * spatial[1] // 64))  # ceil(P / 64) words, no more
    # a contiguous image is packed by one call per side, a transposed one mask by mask
    assert len(packs) == (6 if layout == "list" else 3 * (3 + 2))
    x = np.concatenate([p, g], axis=1).reshape(3, 5, -1) > 0.5
    np.testing.assert_array_equal(c.blocks[0].inter, np.einsum("bip,bjp->bij", x, x.astype(np.int64)))


@pytest.mark.parametrize("image", [1, 2])
@pytest.mark.parametrize("side", ["preds", "gts"])
def test_bad_value_on_the_packing_path_names_its_image(side, image):
    """A transposed batch is packed one mask at a time: the error still names the image and mask."""
    p, g = RNG.random((3, 3, *BIG[1:])), RNG.random((3, 2, *BIG[1:]))
    (p if side == "preds" else g)[image, 1, 5, 7] = 1.5
    p, g = np.swapaxes(p, -1, -2), np.swapaxes(g, -1, -2)  # pixel (5, 7) is flat index 7 * 60 + 5
    with pytest.raises(ValueError, match=rf"{side} contains 1.5 \(image {image}, mask 1, pixel 425\)"):
        am.pair_counts(p, g, batch=True)


@pytest.mark.parametrize("path", ["fused", "packed", "votes"])
def test_first_of_two_bad_values_in_the_partial_last_word(path):
    """The last word of a row is packed pixel by pixel: of two bad values there, the error names the
    first (a kernel that kept the last one would name pixel 19,850)."""
    p, g = _big(3), _big(2)
    flat = g[1, 1].reshape(-1)  # a view: 19,860 pixels, the last word holds pixels 19,840 .. 19,859
    flat[19845], flat[19850] = 1.5, -0.5
    call = am.vote_counts if path == "votes" else am.pair_counts
    with pytest.raises(ValueError, match=r"gts contains 1.5 \(image 1, mask 1, pixel 19845\)"):
        call(list(p) if path == "packed" else p, list(g) if path == "packed" else g, batch=True)


@pytest.mark.parametrize("value", [-0.5, 1.5])
@pytest.mark.parametrize("path", ["fused", "packed", "votes"])
def test_bad_value_alone_in_the_partial_last_word(path, value):
    """Below 0 and above 1 are both refused in the last word, which is checked pixel by pixel."""
    p, g = _big(3), _big(2)
    p[1, 2].reshape(-1)[19857] = value
    call = am.vote_counts if path == "votes" else am.pair_counts
    with pytest.raises(ValueError, match=rf"preds contains {value} \(image 1, mask 2, pixel 19857\)"):
        call(list(p) if path == "packed" else p, list(g) if path == "packed" else g, batch=True)


@pytest.mark.parametrize("path", ["fused", "packed", "votes"])
def test_float_masks_count_as_their_threshold(path):
    """Probabilities count as value > 0.5 on every kernel path, on both sides, and the bounds 0.0 and 1.0
    are valid values, in whole words and in the partial last word."""
    p, g = _big(3), _big(2)
    for x, first, last in ((p, 1.0, 0.0), (g, 0.0, 1.0)):
        x[:, :, 0, :3] = first
        x[:, :, -1, -5:] = last  # the last 5 pixels, in the last (partial) word
    bp, bg = p > 0.5, g > 0.5
    if path == "votes":
        got, want = am.vote_counts(p, g, batch=True), am.vote_counts(bp, bg, batch=True)
        np.testing.assert_array_equal(got.blocks[0].table, want.blocks[0].table)
        return
    got = am.pair_counts(list(p) if path == "packed" else p, list(g) if path == "packed" else g, batch=True)
    want = am.pair_counts(bp, bg, batch=True)
    np.testing.assert_array_equal(got.blocks[0].inter, want.blocks[0].inter)
    np.testing.assert_array_equal(got.blocks[0].union, want.blocks[0].union)


@pytest.mark.parametrize("threshold", [0.5, 0.3])
@pytest.mark.parametrize("path", ["fused", "packed", "votes"])
def test_a_value_equal_to_the_threshold_is_background(path, threshold):
    """``value > threshold``, not ``>=``: on every kernel path, on both sides, in whole words (vector
    compare) and in the partial last word (pixel by pixel)."""
    p, g = _big(3), _big(2)
    for x in (p, g):
        x[:, :, 0, :7] = threshold
        x[:, :, -1, -5:] = threshold
    bp, bg = p > threshold, g > threshold
    assert not bp[:, :, -1, -5:].any() and not bg[:, :, 0, :7].any()
    if path == "votes":
        got = am.vote_counts(p, g, batch=True, threshold=threshold)
        np.testing.assert_array_equal(got.blocks[0].table, am.vote_counts(bp, bg, batch=True).blocks[0].table)
        return
    got = am.pair_counts(list(p) if path == "packed" else p, list(g) if path == "packed" else g, batch=True,
                         threshold=threshold)
    want = am.pair_counts(bp, bg, batch=True)
    np.testing.assert_array_equal(got.blocks[0].inter, want.blocks[0].inter)
    np.testing.assert_array_equal(got.blocks[0].union, want.blocks[0].union)


@pytest.mark.parametrize("path", ["fused", "votes"])
@pytest.mark.parametrize("side", ["preds", "gts"])
def test_first_of_two_bad_values_in_different_spans(side, path):
    """The fused kernels pack a chunk span by span (1024 words); a later span's bad value must not replace
    an earlier one (one chunk here: 2,188 words on one thread)."""
    rng = np.random.default_rng(3)
    p, g = rng.random((1, 2, 1, 140_000)), rng.random((1, 2, 1, 140_000))
    x = p if side == "preds" else g
    x[0, 1, 0, 100], x[0, 1, 0, 70_000] = 1.5, -0.5
    call = am.vote_counts if path == "votes" else am.pair_counts
    _kernels.set_threads(1)
    try:
        with pytest.raises(ValueError, match=rf"{side} contains 1.5 \(image 0, mask 1, pixel 100\)"):
            call(p, g, batch=True)
    finally:
        _kernels.set_threads(None)


@pytest.mark.parametrize("path", ["fused", "packed", "votes"])
@pytest.mark.parametrize("side", ["preds", "gts"])
def test_bad_value_at_the_first_pixel(side, path):
    """The kernels report a bad value as 1 + its index, so pixel 0 is reported as 1, not as "none" (0)."""
    p, g = _big(3), _big(2)
    (p if side == "preds" else g)[0, 2 if side == "preds" else 1, 0, 0] = np.nan
    mask = 2 if side == "preds" else 1
    call = am.vote_counts if path == "votes" else am.pair_counts
    with pytest.raises(ValueError, match=rf"{side} contains NaN \(image 0, mask {mask}, pixel 0\)"):
        call(list(p) if path == "packed" else p, list(g) if path == "packed" else g, batch=True)


@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("side", ["preds", "gts"])
def test_bad_value_in_vote_counts_names_its_image(side, transposed):
    p, g = RNG.random((3, 3, 8, 8)), RNG.random((3, 2, 8, 8))
    (p if side == "preds" else g)[2, 1, 0, 3] = -0.5
    if transposed:
        p, g = np.swapaxes(p, -1, -2), np.swapaxes(g, -1, -2)
    pixel = 24 if transposed else 3
    with pytest.raises(ValueError, match=rf"{side} contains -0.5 \(image 2, mask 1, pixel {pixel}\)"):
        am.vote_counts(p, g, batch=True)


def test_vote_counts_alone_skip_the_gram(monkeypatch):
    votes = _spy(monkeypatch, "vote_counts")
    p, g = _big(3), _big(2)
    am.vote_counts(p, g, batch=True)
    am.pair_and_vote_counts(p, g, batch=True)
    assert [call[-1] for call in votes] == [False, True]  # with_gram


def test_pair_counts_signature():
    p, g = RNG.random((2, 4, 4)), RNG.random((2, 4, 4))
    by_name = am.pair_counts(preds=p, gts=g, threshold=0.5)
    np.testing.assert_array_equal(by_name.blocks[0].inter, am.pair_counts(p, g).blocks[0].inter)
    with pytest.raises(TypeError):
        am.pair_counts(p, g, False)  # batch and threshold are keyword-only
    assert "_memo" not in repr(by_name.blocks[0])  # the similarity cache is not part of the value


def test_numpy_path_is_limited_by_pixels_as_well(monkeypatch):
    """The numpy product sums in float32, exact while every count stays below 2**24: from 2**22 pixels per
    mask on, the kernels count, whatever the byte limit says."""
    fused = _spy(monkeypatch, "fused_counts")
    monkeypatch.setattr(counts, "_NUMPY_COUNT_BYTES", 1 << 62)
    p = np.zeros((2, 2048, 2048), bool)  # 4,194,304 = 2**22 pixels: the limit itself goes to the kernels
    p[0, :5, :7] = True
    c = am.pair_counts(p, p[:1])
    assert len(fused) == 1
    assert c.blocks[0].inter[0, 0, 0] == 35


def test_count_block_cache_is_not_a_field():
    import dataclasses
    import inspect

    assert "_memo" not in inspect.signature(counts.CountBlock).parameters
    assert [f.name for f in dataclasses.fields(counts.CountBlock) if f.compare] == [
        f.name for f in dataclasses.fields(counts.CountBlock) if f.name != "_memo"
    ]


@pytest.mark.parametrize("func", [am.pair_counts, am.vote_counts, am.pair_and_vote_counts])
def test_count_functions_take_options_by_keyword_only(func):
    p, g = RNG.random((2, 4, 4)), RNG.random((2, 4, 4))
    func(preds=p, gts=g, batch=False, threshold=0.5)
    with pytest.raises(TypeError):
        func(p, g, False)


def test_count_results_are_frozen():
    import dataclasses

    p, g = RNG.random((2, 4, 4)), RNG.random((2, 4, 4))
    pairs, votes = am.pair_and_vote_counts(p, g)
    for value in (pairs, pairs.blocks[0], votes, votes.blocks[0]):
        field = dataclasses.fields(value)[0].name
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(value, field, None)


def test_similarity_is_cached_per_kind_and_empty_value():
    empty = np.zeros((1, 4, 4), bool)
    full = np.ones((1, 4, 4), bool)
    block = am.pair_counts(np.concatenate([empty, full]), empty).blocks[0]  # masks: ∅, full | ∅
    for kind in ("iou", "dice"):
        assert block.similarity(kind)[0, 0, 2] == 1.0  # default: two empty masks agree
        assert block.similarity(kind, 0.0)[0, 0, 2] == 0.0
        assert np.isnan(block.similarity(kind, np.nan)[0, 0, 2])
        assert block.similarity(kind, 1.0)[0, 1, 2] == 0.0
        assert block.cross_similarity(kind)[0, 0, 0] == 1.0
    fresh = am.pair_counts(np.concatenate([empty, full]), empty).blocks[0]
    assert fresh.cross_similarity("dice")[0, 0, 0] == 1.0  # computed alone, same default
    assert fresh.cross_similarity("dice", 0.0)[0, 0, 0] == 0.0
    assert np.isnan(fresh.cross_similarity("dice", np.nan)[0, 0, 0])


def test_too_few_masks_names_the_first_image_of_the_group():
    one = RNG.random((3, 1, 4, 4))
    with pytest.raises(ValueError, match=r"got N=1, M=1 \(image 0\)"):
        am.ged(one, one, batch=True, estimator="unbiased")


@pytest.mark.parametrize("layout", ["contiguous", "transposed preds", "transposed gts"])
def test_vote_counts_copy_a_non_contiguous_batch_one_image_at_a_time(monkeypatch, layout):
    votes = _spy(monkeypatch, "vote_counts")
    p, g = RNG.random((3, 3, 9, 9)), RNG.random((3, 2, 9, 9))  # square: transposing one side is legal
    p_in = np.swapaxes(p, -1, -2) if layout == "transposed preds" else p
    g_in = np.swapaxes(g, -1, -2) if layout == "transposed gts" else g
    got = am.vote_counts(p_in, g_in, batch=True).blocks[0].table
    assert [call[0].shape[0] for call in votes] == ([3] if layout == "contiguous" else [1, 1, 1])
    ref = am.vote_counts(np.ascontiguousarray(p_in), np.ascontiguousarray(g_in), batch=True).blocks[0].table
    np.testing.assert_array_equal(got, ref)


def test_numpy_limit_is_one_mebibyte(monkeypatch):
    fused = _spy(monkeypatch, "fused_counts")
    at_limit = np.zeros((4, 512, 512), np.uint8)  # 4 masks x 262,144 bytes = 1 MiB exactly: kernels
    am.pair_counts(at_limit[:2], at_limit[2:])
    assert len(fused) == 1
    below = np.zeros((4, 384, 512), np.uint8)  # 0.75 MiB: numpy
    am.pair_counts(below[:2], below[2:])
    assert len(fused) == 1


def test_numpy_path_below_the_pixel_limit(monkeypatch):
    fused = _spy(monkeypatch, "fused_counts")
    monkeypatch.setattr(counts, "_NUMPY_COUNT_BYTES", 1 << 62)
    p = np.zeros((2, 1024, 3072), bool)  # 3,145,728 pixels: under 2**22, so numpy
    p[0, :3, :5] = True
    assert am.pair_counts(p, p[:1]).blocks[0].inter[0, 0, 0] == 15
    assert fused == []


@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("counter", ["pair_counts", "vote_counts"])
def test_bad_value_in_a_list_batch_names_its_image(monkeypatch, counter, transposed):
    """A list batch is one chunk per image: the error must name the image of its chunk (odd and even)."""
    packs = _spy(monkeypatch, "pack_rows")
    for image in (1, 2):
        # 3 images x 5 masks x 10,000 float64 pixels = 1.2 MB: the kernels' path
        p, g = RNG.random((3, 3, 100, 100)), RNG.random((3, 2, 100, 100))
        p[image, 2, 4, 9] = np.nan
        if transposed:
            p, g = np.swapaxes(p, -1, -2), np.swapaxes(g, -1, -2)
        pixel = 9 * 100 + 4 if transposed else 4 * 100 + 9
        with pytest.raises(ValueError, match=rf"preds contains NaN \(image {image}, mask 2, pixel {pixel}\)"):
            getattr(am, counter)(list(p), list(g), batch=True)
    assert (len(packs) > 0) == (counter == "pair_counts")  # pair counts of a list: the packing path


def test_vote_counts_per_image_are_the_single_image_tables():
    sizes = [(2, 3, 9), (3, 2, 9), (2, 3, 9), (2, 3, 4)]  # three groups, one of two images
    preds = [RNG.random((n, s, s)) for n, _, s in sizes]
    gts = [RNG.random((m, s, s)) for _, m, s in sizes]
    per_image = am.vote_counts(preds, gts, batch=True).per_image()
    assert len(per_image) == len(sizes)
    for i, blk in enumerate(per_image):
        alone = am.vote_counts(preds[i], gts[i]).blocks[0]
        assert list(blk.index) == [i]
        np.testing.assert_array_equal(blk.table, alone.table)
        np.testing.assert_array_equal(blk.areas, alone.areas)
        assert (blk.n_pred, blk.n_gt, blk.n_pixels) == (alone.n_pred, alone.n_gt, alone.n_pixels)


def test_vote_tables_hold_up_to_65535_masks_per_side():
    """Per-pixel vote counts are bit-sliced over 16 planes: 65,535 masks per side at most."""
    preds = np.zeros((40_000, 1, 2), bool)  # more than 15 planes could count
    preds[:30_001, 0, 0] = True
    table = am.vote_counts(preds, np.ones((1, 1, 2), bool)).blocks[0].table[0]
    assert table[30_001, 1] == 1 and table[0, 1] == 1 and table.sum() == 2
    few = np.ones((1, 1, 2), bool)
    for n in (65_536, 65_537):
        many = np.zeros((n, 1, 2), bool)
        for preds, gts in ((many, few), (few, many)):
            with pytest.raises(ValueError, match="the vote table supports at most 65535 masks per side"):
                am.vote_counts(preds, gts)


def test_shared_similarity_matrices_are_read_only():
    block = am.pair_counts(RNG.random((2, 4, 4)), RNG.random((2, 4, 4))).blocks[0]
    for kind in ("iou", "dice"):
        with pytest.raises(ValueError, match="read-only"):
            block.similarity(kind)[0, 0, 1] = 0.5
