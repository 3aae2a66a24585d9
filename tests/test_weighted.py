"""gt_weights in ged / ged_terms / hungarian_iou, and ValUES-style pooled pair averaging."""

from __future__ import annotations

import numpy as np
import pytest
import reference as ref
from hypothesis import given
from hypothesis import strategies as st
from strategies import mask_sets

import ambiseg_metrics as am


@given(mask_sets(max_n=4, max_m=3), st.lists(st.integers(1, 3), min_size=3, max_size=3),
       st.sampled_from(["iou", "dice"]))
def test_integer_weights_equal_repeated_annotations(sets, reps, distance):
    """w_m = k_m / K is the same distribution as annotation m repeated k_m times (V-statistic)."""
    preds, gts = sets
    k = np.array(reps[: len(gts)])
    repeated = np.repeat(gts, k, axis=0)
    w = k / k.sum()
    got = am.ged_terms(preds, gts, gt_weights=w, distance=distance)
    want = am.ged_terms(preds, repeated, distance=distance)
    for g, r in zip((got.ged, got.cross, got.annotator_diversity), (want.ged, want.cross,
                                                                     want.annotator_diversity), strict=True):
        assert abs(g - r) <= 1e-12
    assert abs(am.hungarian_iou(preds, gts, gt_weights=w) - am.hungarian_iou(preds, repeated)) <= 1e-9


def test_weighted_unbiased_and_skip_against_direct_sums():
    rng = np.random.default_rng(1)
    preds = rng.random((3, 5, 5)) < 0.5
    gts = rng.random((3, 5, 5)) < 0.5
    gts[1] = False
    gts[2] = False  # two empty annotations: a skipped pair under empty_pair="skip"
    w = np.array([0.5, 0.2, 0.3])
    d = 1 - np.array([[ref.iou_conv(a, b, "skip") for b in gts] for a in gts])
    off = ~np.eye(3, dtype=bool) & ~np.isnan(d)
    ww = np.outer(w, w)
    yy = (ww * np.nan_to_num(d))[off].sum() / ww[off].sum()
    got = am.ged_terms(preds, gts, gt_weights=w, estimator="unbiased", empty_pair="skip")
    assert abs(got.annotator_diversity - yy) <= 1e-12


def test_pooled_average_equals_one_ratio_over_all_pairs():
    rng = np.random.default_rng(2)
    preds = rng.random((3, 6, 6)) < 0.4
    gts = rng.random((2, 6, 6)) < 0.4

    def pooled(a_set, b_set):
        num = sum(2 * (a & b).sum() for a in a_set for b in b_set)
        den = sum(a.sum() + b.sum() for a in a_set for b in b_set)
        return 1 - num / den

    t = am.ged_terms(preds, gts, distance="dice", pair_average="pooled")
    assert abs(t.cross - pooled(preds, gts)) <= 1e-12
    assert abs(t.sample_diversity - pooled(preds, preds)) <= 1e-12
    assert abs(t.ged - (2 * pooled(preds, gts) - pooled(preds, preds) - pooled(gts, gts))) <= 1e-12


def test_weights_are_checked():
    m = np.zeros((2, 3, 3), bool)
    with pytest.raises(ValueError, match="gt_weights"):
        am.ged(m, m, gt_weights=[0.3, 0.3])
    with pytest.raises(ValueError, match="pair_average"):
        am.ged(m, m, pair_average="sum")
