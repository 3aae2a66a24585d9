"""The compiled readout kernels equal their plain references.

* The batched assignment kernel behind HM-IoU equals scipy's ``linear_sum_assignment`` on the
  lcm-duplicated matrix, image by image, for any N and M (ties, zeros, one row or column included).
* The one-pass Dice / IoU matrices equal the numpy formulas of ``core.pairwise`` bit for bit, and a
  block's matrices are computed once and shared (read-only) by the readouts.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment

import ambiseg_metrics as am
from ambiseg_metrics.core import pairwise
from ambiseg_metrics.core._assign import assignment_means
from ambiseg_metrics.core._kernels import similarity_matrices

TOL = 1e-12


def scipy_value(sim: np.ndarray) -> float:
    n, m = sim.shape
    size = math.lcm(n, m)
    big = np.repeat(np.repeat(sim, size // n, axis=0), size // m, axis=1)
    rows, cols = linear_sum_assignment(big, maximize=True)
    return float(big[rows, cols].mean())


@st.composite
def sim_batches(draw):
    n = draw(st.integers(1, 12))
    m = draw(st.integers(1, 12))
    b = draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    kind = draw(st.sampled_from(["uniform", "ties", "iou-like"]))
    if kind == "uniform":
        sim = rng.random((b, n, m))
    elif kind == "ties":  # many equal values: several optimal assignments
        sim = rng.integers(0, 3, (b, n, m)) / 2.0
    else:  # ratios of small integers, as IoU of small masks, with exact 0 and 1
        inter = rng.integers(0, 5, (b, n, m))
        sim = inter / (inter + rng.integers(0, 4, (b, n, m))).clip(1)
    return sim


@settings(max_examples=300, deadline=None)
@given(sim_batches())
def test_assignment_means_equals_scipy(sim):
    got = assignment_means(sim)
    assert got.shape == (sim.shape[0],)
    for b in range(sim.shape[0]):
        assert abs(got[b] - scipy_value(sim[b])) <= TOL


@pytest.mark.parametrize(("n", "m"), [(16, 4), (4, 16), (100, 4), (6, 4), (7, 5), (1, 9), (9, 1), (20, 20)])
def test_assignment_means_on_the_benchmark_shapes(n, m):
    rng = np.random.default_rng(n * 100 + m)
    sim = rng.random((25, n, m))
    sim[::3] = np.round(sim[::3], 1)  # ties
    want = np.array([scipy_value(s) for s in sim])
    np.testing.assert_allclose(assignment_means(sim), want, rtol=0, atol=TOL)


def test_assignment_means_can_fail():
    """A greedy matching (each annotation takes its best free prediction) is not optimal here; the kernel
    must find the better crossing assignment, so a non-optimal kernel fails this test."""
    sim = np.array([[[0.9, 0.8], [0.85, 0.0]]])  # greedy: 0.9 + 0.0; optimal: 0.8 + 0.85
    assert assignment_means(sim)[0] == pytest.approx((0.8 + 0.85) / 2, abs=TOL)
    assert assignment_means(np.zeros((0, 3, 2))).shape == (0,)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 5), st.integers(1, 9), st.integers(0, 2**32 - 1), st.sampled_from([1.0, 0.0, np.nan]))
def test_similarity_kernel_equals_numpy_bit_for_bit(b, k, seed, empty):
    rng = np.random.default_rng(seed)
    masks = rng.random((b, k, 40)) < rng.random((b, k, 1))
    masks[:, rng.random(k) < 0.3] = False  # empty masks: the 0/0 convention
    x = masks.astype(np.int64)
    inter = x @ x.transpose(0, 2, 1)
    for dice, numpy_fn in ((True, pairwise.dice_from_counts), (False, pairwise.iou_from_counts)):
        np.testing.assert_array_equal(similarity_matrices(inter, dice, empty), numpy_fn(inter, empty))


def test_block_similarity_is_shared_and_read_only(monkeypatch):
    rng = np.random.default_rng(3)
    preds, gts = rng.random((40, 5, 2, 15)) < 0.4, rng.random((40, 3, 2, 15)) < 0.4
    monkeypatch.setattr(pairwise, "_KERNEL_PAIRS", 0)  # the kernel path, as for large batches
    block = am.pair_counts(preds, gts, batch=True).blocks[0]
    dice = block.similarity("dice")
    assert block.similarity("dice") is dice
    assert not dice.flags.writeable
    np.testing.assert_array_equal(dice, pairwise.dice_from_counts(block.inter))
    np.testing.assert_array_equal(block.cross_similarity("dice"), dice[:, :5, 5:])
    assert block.similarity("dice", np.nan) is block.similarity("dice", float("nan"))
    fresh = am.pair_counts(preds, gts, batch=True).blocks[0]  # cross part alone, before any full matrix
    np.testing.assert_array_equal(fresh.cross_similarity("iou", 0.0),
                                  pairwise.iou_from_counts(fresh.inter, 0.0)[:, :5, 5:])


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 5), st.integers(1, 4), st.integers(0, 2**32 - 1),
       st.sampled_from(["one", "zero", "skip"]), st.sampled_from(["v-statistic", "unbiased"]))
def test_diversity_counts_one_side_and_equals_the_ged_term(n, b, seed, empty_pair, estimator):
    """sample_diversity / annotator_diversity count the masks against one of them (not against
    themselves) and equal the GED's within-set terms bit for bit; as a list batch too."""
    rng = np.random.default_rng(seed)
    masks = rng.random((b, n, 3, 7)) < rng.random((b, n, 1, 1))
    other = rng.random((b, 2, 3, 7)) < 0.5
    kw = {"estimator": estimator, "empty_pair": empty_pair}
    if estimator == "unbiased" and n < 2:
        with pytest.raises(ValueError, match="at least 2 predictions and 2 annotations"):
            am.sample_diversity(masks, batch=True, **kw)
        return
    want_s = am.ged_terms(masks, other, batch=True, **kw).sample_diversity
    want_a = am.ged_terms(other, masks, batch=True, **kw).annotator_diversity
    np.testing.assert_array_equal(am.sample_diversity(masks, batch=True, **kw), want_s)
    np.testing.assert_array_equal(am.annotator_diversity(masks, batch=True, **kw), want_a)
    np.testing.assert_array_equal(am.sample_diversity(list(masks), batch=True, **kw), want_s)
    # NaN where every pair is skipped (one empty prediction with empty_pair="skip"): equal as NaN
    np.testing.assert_equal(am.sample_diversity(masks[0], **kw),
                            am.ged_terms(masks[0], other[0], **kw).sample_diversity)


def test_diversity_counts_n_plus_one_masks(monkeypatch):
    from ambiseg_metrics.metrics import ged as ged_module

    seen = []
    real = ged_module.pair_counts

    def spy(preds, gts, **kw):
        seen.append((np.shape(preds), np.shape(gts)))
        return real(preds, gts, **kw)

    monkeypatch.setattr(ged_module, "pair_counts", spy)
    am.sample_diversity(np.zeros((6, 4, 4), bool))
    assert seen == [((6, 4, 4), (1, 4, 4))]
