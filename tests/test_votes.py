"""The vote table T[a, b] (bit-sliced counters in the fused kernel) against a per-pixel numpy count."""

from __future__ import annotations

import numpy as np
import pytest
import reference as ref
from hypothesis import given
from hypothesis import strategies as st
from strategies import mask_sets

from ambiseg_metrics.core.counts import pair_and_vote_counts, pair_counts, vote_counts


@given(mask_sets(max_n=9, max_m=6))
def test_vote_table_equals_per_pixel_count(sets):
    preds, gts = sets
    blk = vote_counts(preds, gts).blocks[0]
    assert np.array_equal(blk.table[0], ref.vote_table(preds, gts))
    areas = np.concatenate([preds.reshape(len(preds), -1).sum(1), gts.reshape(len(gts), -1).sum(1)])
    assert np.array_equal(blk.areas[0], areas)


@given(st.integers(1, 300), st.integers(1, 20), st.integers(1, 9), st.integers(0, 2**32 - 1))
def test_vote_table_across_word_boundaries_and_many_masks(width, n, m, seed):
    rng = np.random.default_rng(seed)
    preds = rng.random((n, 1, width)) < rng.random()
    gts = rng.random((m, 1, width)) < rng.random()
    assert np.array_equal(vote_counts(preds, gts).blocks[0].table[0], ref.vote_table(preds, gts))


@pytest.mark.parametrize(("n", "m"), [(3, 17), (17, 3), (16, 16)])
def test_vote_table_with_sixteen_or_more_masks_per_side(n, m):
    """The bit-sliced counters hold up to 65,535 masks per side; 16 and more take a second plane."""
    rng = np.random.default_rng(n * 100 + m)
    preds, gts = rng.random((n, 9, 70)) < 0.5, rng.random((m, 9, 70)) < 0.4
    assert np.array_equal(vote_counts(preds, gts).blocks[0].table[0], ref.vote_table(preds, gts))


def test_pair_and_vote_counts_match_the_separate_passes():
    rng = np.random.default_rng(3)
    preds = rng.random((3, 5, 7, 70)) < 0.4
    gts = rng.random((3, 3, 7, 70)) < 0.4
    pairs, votes = pair_and_vote_counts(preds, gts, batch=True)
    alone = pair_counts(preds, gts, batch=True)
    assert np.array_equal(pairs.blocks[0].inter, alone.blocks[0].inter)
    assert np.array_equal(pairs.blocks[0].union, alone.blocks[0].union)
    for i in range(3):
        assert np.array_equal(votes.blocks[0].table[i], ref.vote_table(preds[i], gts[i]))


def test_ragged_batch_non_contiguous_and_float_inputs():
    rng = np.random.default_rng(4)
    p0 = rng.random((4, 9, 11, 13)).transpose(0, 3, 2, 1)  # float, not C-contiguous, 3D
    g0 = rng.random((2, 13, 11, 9)) < 0.5
    p1 = rng.random((2, 5, 5)) < 0.5
    g1 = rng.random((3, 5, 5)) < 0.5
    vc = vote_counts([p0, p1], [g0, g1], batch=True, threshold=0.3)
    tables = {int(b.index[i]): b.table[i] for b in vc.blocks for i in range(len(b.index))}
    assert np.array_equal(tables[0], ref.vote_table(p0 > 0.3, g0))
    assert np.array_equal(tables[1], ref.vote_table(p1, g1))
    assert [b.n_pred for b in vc.per_image()] == [4, 2]


def test_big_volume_takes_the_chunked_parallel_path():
    rng = np.random.default_rng(5)
    preds = rng.random((3, 40, 128, 130)) < 0.2  # > 1 MiB and > 4096 words: parallel, split word axis
    gts = rng.random((2, 40, 128, 130)) < 0.2
    pairs, votes = pair_and_vote_counts(preds, gts)
    assert np.array_equal(votes.blocks[0].table[0], ref.vote_table(preds, gts))
    assert np.array_equal(pairs.blocks[0].inter, pair_counts(preds, gts).blocks[0].inter)
    alone = vote_counts(preds, gts).blocks[0]  # the vote pass without the Gram tile, threaded too
    assert np.array_equal(alone.table, votes.blocks[0].table)
    assert np.array_equal(alone.areas, votes.blocks[0].areas)


def test_bad_float_is_reported():
    preds = np.full((2, 4, 4), 0.2)
    preds[1, 2, 3] = np.nan
    with pytest.raises(ValueError, match="preds contains NaN"):
        vote_counts(preds, preds > 0.1)
