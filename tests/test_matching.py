"""HM-IoU equals a brute-force search over permutations; its properties; the similarity matrix."""

from __future__ import annotations

import math

import numpy as np
import pytest
import reference as ref
from hypothesis import given
from hypothesis import strategies as st
from strategies import mask_stack, spatial_shapes

import ambiseg_metrics as am

TOL = 1e-12
# (N, M) with lcm(N, M) <= 6 so that the brute force over lcm! permutations stays small.
SMALL_NM = [(n, m) for n in range(1, 5) for m in range(1, 5) if math.lcm(n, m) <= 6]


@st.composite
def small_sets(draw):
    n, m = draw(st.sampled_from(SMALL_NM))
    shape = draw(spatial_shapes(max_side=6))
    return draw(mask_stack(n, shape)), draw(mask_stack(m, shape))


@given(small_sets(), st.sampled_from(["one", "zero", "skip"]))
def test_hm_iou_equals_bruteforce(sets, empty_pair):
    preds, gts = sets
    got = am.hungarian_iou(preds, gts, empty_pair=empty_pair)
    assert abs(got - ref.hungarian_iou(preds, gts, empty_pair)) <= TOL


@given(small_sets())
def test_hm_iou_properties(sets):
    preds, gts = sets
    value = am.hungarian_iou(preds, gts)
    assert 0.0 <= value <= 1.0
    assert abs(am.hungarian_iou(gts, preds) - value) <= TOL  # symmetric
    assert abs(am.hungarian_iou(preds[::-1], gts[::-1]) - value) <= TOL  # order of the masks
    assert am.hungarian_iou(preds, preds) == pytest.approx(1.0, abs=TOL)  # identical sets


def test_hm_iou_any_n_m_and_worked_example():
    a = np.zeros((1, 6), bool)
    a[0, :2] = True  # 2 pixels
    b = np.zeros((1, 6), bool)
    b[0, :4] = True  # 4 pixels, IoU(a, b) = 1/2
    c = np.zeros((1, 6), bool)
    c[0, 4:] = True  # disjoint from a and b
    # N = 3, M = 2: L = 6, every prediction twice, every annotation three times.
    # Sim rows a, b, c vs cols (a, c): [[1, 0], [.5, 0], [0, 1]]. Best: a->a twice, c->c twice, then the
    # two copies of b take one a and one c: (2*1 + 2*1 + 0.5 + 0) / 6.
    got = am.hungarian_iou(np.stack([a, b, c]), np.stack([a, c]))
    assert got == pytest.approx(4.5 / 6, abs=TOL)


def test_hungarian_from_matrix_checks_input():
    with pytest.raises(ValueError, match="non-empty"):
        am.hungarian_from_matrix(np.zeros((0, 2)))
    with pytest.raises(ValueError, match="finite"):
        am.hungarian_from_matrix(np.array([[np.nan]]))
    assert am.hungarian_from_matrix(np.array([[0.2, 0.9], [0.8, 0.1]])) == pytest.approx(0.85)


@given(st.lists(small_sets(), min_size=1, max_size=4))
def test_hm_iou_batch_equals_per_image_and_evaluate(images):
    preds = [p for p, _ in images]
    gts = [g for _, g in images]
    got = am.hungarian_iou(preds, gts, batch=True)
    via_evaluate = am.evaluate(preds, gts, batch=True, metrics=["hm_iou"])["hm_iou"]
    assert got.shape == (len(images),)
    for i, (p, g) in enumerate(images):
        assert abs(got[i] - am.hungarian_iou(p, g)) <= TOL
    np.testing.assert_array_equal(got, via_evaluate)


@given(small_sets(), st.sampled_from(["dice", "iou"]), st.sampled_from(["one", "zero", "skip"]))
def test_similarity_matrix_equals_reference(sets, similarity, empty_pair):
    preds, gts = sets
    got = am.similarity_matrix(preds, gts, similarity=similarity, empty_pair=empty_pair)
    fn = ref.dice_conv if similarity == "dice" else ref.iou_conv
    want = np.array([[fn(p, g, empty_pair) for g in gts] for p in preds])
    np.testing.assert_allclose(got, want, rtol=0, atol=TOL)
    if similarity == "dice" and empty_pair == "one":  # D_max reads the column maxima of this matrix
        assert abs(got.max(axis=0).mean() - am.max_dice_matching(preds, gts)) <= TOL


def test_similarity_matrix_batch_is_a_list_and_options_are_checked():
    rng = np.random.default_rng(3)
    preds, gts = rng.random((2, 3, 5, 5)) > 0.5, rng.random((2, 2, 5, 5)) > 0.5
    out = am.similarity_matrix(preds, gts, batch=True)
    assert isinstance(out, list) and [m.shape for m in out] == [(3, 2), (3, 2)]
    with pytest.raises(ValueError, match="similarity must be one of"):
        am.similarity_matrix(preds[0], gts[0], similarity="jaccard")
    with pytest.raises(ValueError, match="empty_pair must be one of"):
        am.hungarian_iou(preds[0], gts[0], empty_pair="nan")


@given(st.integers(1, 7), st.integers(1, 7), st.integers(0, 2**32 - 1))
def test_transport_lp_equals_duplicated_assignment(n, m, seed):
    sim = np.random.default_rng(seed).random((n, m))
    lsa = am.hungarian_from_matrix(sim, method="assignment")
    assert abs(am.hungarian_from_matrix(sim, method="transport") - lsa) <= 1e-9


def test_large_lcm_uses_the_transport_lp():
    sim = np.random.default_rng(0).random((31, 29))  # L = 899 > MAX_DUPLICATED (256)
    assert am.hungarian_from_matrix(sim) == am.hungarian_from_matrix(sim, method="transport")
    with pytest.raises(ValueError, match="method must be one of"):
        am.hungarian_from_matrix(sim, method="lp")
