"""Properties every metric must keep: ranges, symmetries, invariances, identities."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from strategies import mask_sets

import ambiseg_metrics as am

EPS = 1e-12


@given(mask_sets(min_n=2, min_m=2), st.sampled_from(["dice", "pixel"]))
def test_values_lie_in_their_ranges(sets, variance):
    preds, gts = sets
    r = am.evaluate(preds, gts, variance=variance)
    for name in ("ci", "ci_harmonic", "combined_sensitivity", "max_dice_matching", "diversity_agreement",
                 "ged_cross", "ged_sample_diversity", "ged_annotator_diversity"):
        assert -EPS <= r[name] <= 1 + EPS, (name, r[name])
    assert r["ged"] <= 2 + EPS
    # the published CI form is never above the true harmonic mean (3xyz/(x+y+z) <= HM for x,y,z in [0,1])
    assert r["ci"] <= r["ci_harmonic"] + EPS


@given(mask_sets())
def test_ged_v_statistic_is_nonnegative_for_iou(sets):
    preds, gts = sets
    assert am.ged(preds, gts) >= -EPS


@given(mask_sets(), st.sampled_from(["iou", "dice"]), st.sampled_from(["v-statistic", "unbiased"]))
def test_ged_is_symmetric(sets, distance, estimator):
    preds, gts = sets
    if estimator == "unbiased" and min(len(preds), len(gts)) < 2:
        return
    a = am.ged(preds, gts, distance=distance, estimator=estimator)
    b = am.ged(gts, preds, distance=distance, estimator=estimator)
    assert abs(a - b) <= EPS


@given(mask_sets(min_n=2, min_m=2), st.sampled_from(["dice", "pixel"]))
def test_diversity_agreement_is_symmetric(sets, variance):
    preds, gts = sets
    a = am.diversity_agreement(preds, gts, variance=variance)
    b = am.diversity_agreement(gts, preds, variance=variance)
    assert abs(a - b) <= EPS


@given(mask_sets(min_n=2, min_m=2), st.randoms(use_true_random=False))
def test_permutation_invariance_over_samples_and_annotators(sets, rnd):
    preds, gts = sets
    p_order = list(range(len(preds)))
    g_order = list(range(len(gts)))
    rnd.shuffle(p_order)
    rnd.shuffle(g_order)
    a = am.evaluate(preds, gts)
    b = am.evaluate(preds[p_order], gts[g_order])
    for name in a:
        assert abs(a[name] - b[name]) <= EPS, name


@given(mask_sets(min_n=2, min_m=2))
def test_identical_sets_are_perfect(sets):
    _, gts = sets
    r = am.evaluate(gts, gts.copy())
    assert abs(r["ged"]) <= EPS
    for name in ("ci", "ci_harmonic", "combined_sensitivity", "max_dice_matching", "diversity_agreement"):
        assert abs(r[name] - 1.0) <= EPS, name


@given(mask_sets(), st.integers(2, 4))
def test_duplicating_samples_keeps_dmax_and_sensitivity(sets, k):
    preds, gts = sets
    dup = np.concatenate([preds] * k)
    assert am.max_dice_matching(dup, gts) == am.max_dice_matching(preds, gts)
    assert am.combined_sensitivity(dup, gts) == am.combined_sensitivity(preds, gts)


@given(mask_sets())
def test_adding_a_prediction_never_lowers_dmax_or_sensitivity(sets):
    """Monotonicity: D_max and S_c only take maxima/unions over predictions."""
    preds, gts = sets
    more = np.concatenate([preds, np.ones_like(preds[:1])])
    assert am.max_dice_matching(more, gts) >= am.max_dice_matching(preds, gts) - EPS
    assert am.combined_sensitivity(more, gts) >= am.combined_sensitivity(preds, gts) - EPS


@given(mask_sets())
def test_unbiased_and_v_statistic_agree_on_cross_term(sets):
    preds, gts = sets
    if min(len(preds), len(gts)) < 2:
        return
    v = am.ged_terms(preds, gts)
    u = am.ged_terms(preds, gts, estimator="unbiased")
    assert v.cross == u.cross
    n, m = len(preds), len(gts)
    # same pair sums, different denominators
    assert abs(v.sample_diversity * n * n - u.sample_diversity * n * (n - 1)) <= 1e-9
    assert abs(v.annotator_diversity * m * m - u.annotator_diversity * m * (m - 1)) <= 1e-9


def test_ci_form_is_x_squared_and_harmonic_is_x():
    """Equal components x: the published form gives x², the true harmonic mean gives x."""
    ci, hm = am.ci_from_components(0.6, 0.6, 0.6)
    assert abs(ci - 0.36) <= EPS
    assert abs(hm - 0.6) <= EPS
    assert am.ci_from_components(0.0, 0.0, 0.0) == (0.0, 0.0)
    ci, hm = am.ci_from_components(0.0, 1.0, 1.0)
    assert hm == 0.0 and abs(ci - 0.0) <= EPS
