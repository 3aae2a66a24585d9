"""gt_weights in ged / ged_terms / hungarian_iou / evaluate() / multiclass_hungarian_iou, and ValUES-style
pooled pair averaging."""

from __future__ import annotations

import numpy as np
import pytest
import rater_reference as rr
import reference as ref
from hypothesis import given
from hypothesis import strategies as st
from strategies import mask_sets, mask_stack, spatial_shapes
from test_multiclass import label_sets

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


# ---- gt_weights in evaluate() / evaluate_counts() and multiclass_hungarian_iou (issue 17)
@st.composite
def weighted_batches(draw):
    """(preds (B, N, *s), gts (B, M, *s), integer masses k (B, M)): w = k / k.sum(1), zeros included;
    2D and 3D; empty, full and single-pixel masks (from ``mask_stack``)."""
    shape = draw(spatial_shapes())
    b, n, m = draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(1, 3))
    preds = np.stack([draw(mask_stack(n, shape)) for _ in range(b)])
    gts = np.stack([draw(mask_stack(m, shape)) for _ in range(b)])
    k = np.array([draw(st.lists(st.integers(0, 3), min_size=m, max_size=m)) for _ in range(b)])
    k[k.sum(1) == 0, 0] = 1
    return preds, gts, k


def _ot_by_duplication(sim, k):
    """Weighted HM-IoU reference: masses 1/N on rows, k_m / K on columns, as one assignment on the
    duplicated L × L matrix (L = lcm(N, K)): row i repeated L/N times, column m k_m·L/K times."""
    from scipy.optimize import linear_sum_assignment

    n, total = sim.shape[0], int(k.sum())
    size = int(np.lcm(n, total))
    rows = np.repeat(np.arange(n), size // n)
    cols = np.repeat(np.arange(len(k)), k * (size // total))
    big = sim[np.ix_(rows, cols)]
    r, c = linear_sum_assignment(big, maximize=True)
    return float(big[r, c].mean())


@given(weighted_batches())
def test_evaluate_with_weights_equals_the_weighted_functions(batch):
    preds, gts, k = batch
    w = k / k.sum(1, keepdims=True)
    got = am.evaluate(preds, gts, batch=True, metrics=list(am.WEIGHTED_METRICS), gt_weights=w)
    terms = am.ged_terms(preds, gts, batch=True, gt_weights=w)
    for name, field in (("ged", "ged"), ("ged_cross", "cross"), ("ged_sample_diversity", "sample_diversity"),
                        ("ged_annotator_diversity", "annotator_diversity")):
        np.testing.assert_array_equal(got[name], getattr(terms, field))
    np.testing.assert_array_equal(got["hm_iou"], am.hungarian_iou(preds, gts, batch=True, gt_weights=w))
    raters = am.rater_metrics(preds, gts, batch=True, gt_weights=w)
    for name in am.RATER_METRICS:
        np.testing.assert_array_equal(got[name], raters[name], err_msg=name)
    # the same weights as a list of per-image arrays, and one image at a time
    again = am.evaluate(list(preds), list(gts), batch=True, metrics=["ged", "hm_iou", "qubiq"],
                        gt_weights=list(w))
    for i in range(len(preds)):
        one = am.evaluate(preds[i], gts[i], metrics=["ged", "hm_iou", "qubiq"], gt_weights=w[i])
        for name in one:
            assert again[name][i] == got[name][i]
            assert abs(one[name] - got[name][i]) <= 1e-12, name


@given(weighted_batches())
def test_evaluate_with_weights_equals_plain_references(batch):
    preds, gts, k = batch
    w = k / k.sum(1, keepdims=True)
    got = am.evaluate(preds, gts, batch=True, metrics=["ged", "ged_cross", "ged_annotator_diversity",
                                                       "hm_iou", "qubiq", "soft_dice", "volume_crps"],
                      gt_weights=w)
    for i, (p, g) in enumerate(zip(preds, gts, strict=True)):
        d_pg = np.array([[1.0 - ref.iou(a, b) for b in g] for a in p])
        d_gg = np.array([[1.0 - ref.iou(a, b) for b in g] for a in g])
        d_pp = np.array([[1.0 - ref.iou(a, b) for b in p] for a in p])
        cross, yy = float(d_pg.mean(0) @ w[i]), float(w[i] @ d_gg @ w[i])
        assert abs(got["ged_cross"][i] - cross) <= 1e-12
        assert abs(got["ged_annotator_diversity"][i] - yy) <= 1e-12
        assert abs(got["ged"][i] - (2 * cross - d_pp.mean() - yy)) <= 1e-12
        assert abs(got["hm_iou"][i] - _ot_by_duplication(1.0 - d_pg, k[i])) <= 1e-9
        assert abs(got["qubiq"][i] - rr.qubiq(p, g, weights=w[i])) <= 1e-12
        assert abs(got["soft_dice"][i] - rr.soft_dice(p, g, weights=w[i])) <= 1e-12
        assert abs(got["volume_crps"][i] - rr.volume_crps(p, g, weights=w[i])) <= 1e-9


@given(label_sets(), st.data())
def test_multiclass_hungarian_iou_with_weights_equals_duplication(sets, data):
    preds, gts = sets
    k = np.array(data.draw(st.lists(st.integers(0, 3), min_size=len(gts), max_size=len(gts))))
    if k.sum() == 0:
        k[0] = 1
    w = k / k.sum()
    got = am.multiclass_hungarian_iou(preds, gts, classes=[1, 2, 3], gt_weights=w)
    sim = np.array([[ref.multiclass_iou(a, b, [1, 2, 3]) for b in gts] for a in preds])
    assert abs(got - _ot_by_duplication(sim, k)) <= 1e-9
    # batch: per-image weights (B, M) equal the single-image calls
    both = am.multiclass_hungarian_iou(np.stack([preds, preds[::-1]]), np.stack([gts, gts]), batch=True,
                                       classes=[1, 2, 3], gt_weights=np.stack([w, w[::-1]]))
    assert both[0] == got
    assert both[1] == am.multiclass_hungarian_iou(preds[::-1], gts, classes=[1, 2, 3], gt_weights=w[::-1])


def test_two_labels_weighted_hm_iou_equals_the_binary_one():
    rng = np.random.default_rng(3)
    preds, gts = rng.integers(0, 2, (3, 5, 6)), rng.integers(0, 2, (2, 5, 6))
    w = np.array([0.7, 0.3])
    got = am.multiclass_hungarian_iou(preds, gts, classes=[1], gt_weights=w)
    assert abs(got - am.hungarian_iou(preds.astype(bool), gts.astype(bool), gt_weights=w)) <= 1e-12


def test_metrics_without_a_weighted_form_refuse_weights():
    rng = np.random.default_rng(4)
    p, g = rng.random((2, 3, 5, 5)) < 0.5, rng.random((2, 2, 5, 5)) < 0.5
    w = np.array([0.25, 0.75])
    refused = [m for m in am.ALL_METRICS if m not in am.WEIGHTED_METRICS]
    assert refused == ["ci", "ci_harmonic", "combined_sensitivity", "max_dice_matching",
                       "diversity_agreement"]
    for name in refused:
        with pytest.raises(ValueError, match=f"gt_weights: {name} has no weighted form"):
            am.evaluate(p, g, batch=True, metrics=["ged", name], gt_weights=w)
        with pytest.raises(ValueError, match=f"gt_weights: {name} has no weighted form"):
            am.evaluate_counts(am.pair_counts(p, g, batch=True), metrics=[name], gt_weights=w)
    with pytest.raises(ValueError, match="no weighted form"):  # the default metrics include the CI family
        am.evaluate(p[0], g[0], gt_weights=w)
    assert am.evaluate(p[0], g[0], metrics="ged", gt_weights=[0.5, 0.5])["ged"] == pytest.approx(
        am.evaluate(p[0], g[0], metrics="ged")["ged"], abs=1e-12)


def test_weights_in_evaluate_are_checked_with_named_errors():
    rng = np.random.default_rng(5)
    p, g = rng.random((2, 3, 5, 5)) < 0.5, rng.random((2, 2, 5, 5)) < 0.5
    with pytest.raises(ValueError, match=r"gt_weights \(image 1\) must hold one weight per annotation, M=2"):
        am.evaluate(p, g, batch=True, metrics="ged", gt_weights=[np.array([0.5, 0.5]), np.ones(3) / 3])
    with pytest.raises(ValueError, match=r"must have shape \(M,\) or \(B, M\); got shape \(3, 2\)"):
        am.evaluate(p, g, batch=True, metrics="ged", gt_weights=np.full((3, 2), 0.5))
    with pytest.raises(ValueError, match="gt_weights .* must sum to 1"):
        am.evaluate(p, g, batch=True, metrics="hm_iou", gt_weights=[0.5, 0.6])
    with pytest.raises(ValueError, match="gt_weights must be finite and non-negative"):
        am.evaluate(p[0], g[0], metrics="qubiq", gt_weights=[1.5, -0.5])
    with pytest.raises(ValueError, match=r"gt_weights must have shape \(M,\)"):
        am.multiclass_hungarian_iou(p[0].astype(int), g[0].astype(int), classes=2, gt_weights=[[0.5, 0.5]])


def test_evaluate_counts_checks_that_votes_carry_the_weights():
    from ambiseg_metrics.metrics.raters import rater_votes

    rng = np.random.default_rng(6)
    p, g = rng.random((2, 3, 5, 5)) < 0.5, rng.random((2, 2, 5, 5)) < 0.5
    w = np.array([0.2, 0.8])
    counts, tables = am.pair_and_vote_counts(p, g, batch=True)
    with pytest.raises(ValueError, match="vote tables, which count the raters unweighted"):
        am.evaluate_counts(counts, metrics="qubiq", votes=tables, gt_weights=w)
    with pytest.raises(ValueError, match=r"differ from the weights votes= was made with"):
        am.evaluate_counts(counts, metrics="qubiq", votes=rater_votes(p, g, batch=True), gt_weights=w)
    votes = rater_votes(p, g, batch=True, gt_weights=w)
    got = am.evaluate_counts(counts, metrics=["qubiq", "ged"], votes=votes, gt_weights=w)
    want = am.evaluate(p, g, batch=True, metrics=["qubiq", "ged"], gt_weights=w)
    for name in want:
        np.testing.assert_array_equal(got[name], want[name])
    np.testing.assert_array_equal(got["qubiq"], am.qubiq_score(p, g, batch=True, gt_weights=w))


@pytest.mark.parametrize("distance", ["iou", "dice"])
@pytest.mark.parametrize("estimator", ["v-statistic", "unbiased"])
@pytest.mark.parametrize("weighted", [False, True])
def test_pooled_terms_match_a_plain_reference(distance, estimator, weighted):
    """Each pooled term is 1 - Σ w·num / Σ w·den over its pairs (pair weight w_j·w_k between annotations,
    w_m against a prediction), the diagonal left out by the unbiased estimator."""
    rng = np.random.default_rng(5)
    preds, gts = rng.random((3, 7, 7)) < 0.4, rng.random((4, 7, 7)) < 0.4
    w_g = np.array([0.1, 0.2, 0.3, 0.4]) if weighted else np.full(4, 0.25)
    w_p = np.full(3, 1 / 3)

    def pooled(a_set, w_a, b_set, w_b, within):
        top = bottom = 0.0
        for i, a in enumerate(a_set):
            for j, b in enumerate(b_set):
                if within and estimator == "unbiased" and i == j:
                    continue
                inter, total = (a & b).sum(), a.sum() + b.sum()
                num, den = (inter, total - inter) if distance == "iou" else (2 * inter, total)
                top += w_a[i] * w_b[j] * num
                bottom += w_a[i] * w_b[j] * den
        return 1 - top / bottom

    got = am.ged_terms(preds, gts, distance=distance, estimator=estimator, pair_average="pooled",
                       gt_weights=w_g if weighted else None)
    cross = pooled(preds, w_p, gts, w_g, False)
    ss, yy = pooled(preds, w_p, preds, w_p, True), pooled(gts, w_g, gts, w_g, True)
    np.testing.assert_allclose([got.ged, got.cross, got.sample_diversity, got.annotator_diversity],
                               [2 * cross - ss - yy, cross, ss, yy], rtol=0, atol=1e-12)


@pytest.mark.parametrize("weighted", [False, True])
def test_all_pairs_skipped_is_nan_without_warnings(weighted):
    """empty_pair="skip" with only empty masks: every term has no pair left, so NaN (documented), and no
    division-by-zero warning on the way."""
    import warnings

    empty = np.zeros((2, 5, 5), bool)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        t = am.ged_terms(empty, empty, empty_pair="skip", gt_weights=[0.3, 0.7] if weighted else None)
    assert all(np.isnan(v) for v in (t.ged, t.cross, t.sample_diversity, t.annotator_diversity))


def test_mean_distance_without_pairs_is_nan_per_image():
    import warnings

    from ambiseg_metrics.metrics.ged_readouts import _mean_distance

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # NaN by construction, not by a 0/0
        out = _mean_distance(np.ones((3, 1, 1)), exclude_diagonal=True)  # one mask, its self-pair left out
    assert out.shape == (3,) and np.isnan(out).all()


@pytest.mark.parametrize("distance", ["iou", "dice"])
def test_pooled_terms_at_the_smallest_denominators(distance):
    """A pooled ratio with Σ den = 1 (one pixel against an empty mask) is a ratio, not the empty-pair value;
    with Σ den = 0 (only empty masks) it is the empty-pair value, without a 0/0 on the way."""
    import warnings

    pixel = np.zeros((1, 3, 3), bool)
    pixel[0, 1, 1] = True
    empty = np.zeros((1, 3, 3), bool)
    t = am.ged_terms(pixel, empty, distance=distance, pair_average="pooled")
    assert (t.cross, t.sample_diversity, t.annotator_diversity) == (1.0, 0.0, 0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        t = am.ged_terms(np.concatenate([empty, empty]), empty, distance=distance, pair_average="pooled")
    assert (t.ged, t.cross, t.sample_diversity, t.annotator_diversity) == (0.0, 0.0, 0.0, 0.0)
