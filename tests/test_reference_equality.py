"""The fast path (bit-packed numba Gram counts + readouts) equals the plain numpy reference to 1e-12."""

from __future__ import annotations

import numpy as np
import pytest
import reference as ref
from hypothesis import given
from hypothesis import strategies as st
from strategies import mask_sets

import ambiseg_metrics as am

TOL = 1e-12


@given(mask_sets(), st.sampled_from(["v-statistic", "unbiased"]), st.sampled_from(["iou", "dice"]))
def test_ged_terms_equal_reference(sets, estimator, distance):
    preds, gts = sets
    if estimator == "unbiased" and (len(preds) < 2 or len(gts) < 2):
        with pytest.raises(ValueError, match="at least 2"):
            am.ged_terms(preds, gts, estimator=estimator, distance=distance)
        return
    got = am.ged_terms(preds, gts, estimator=estimator, distance=distance)
    want = ref.ged_terms(preds, gts, estimator, distance)
    np.testing.assert_allclose(
        [got.ged, got.cross, got.sample_diversity, got.annotator_diversity], want, rtol=0, atol=TOL
    )
    assert am.ged(preds, gts, estimator=estimator, distance=distance) == got.ged


@given(mask_sets())
def test_sensitivity_and_dmax_equal_reference(sets):
    preds, gts = sets
    assert abs(am.combined_sensitivity(preds, gts) - ref.combined_sensitivity(preds, gts)) <= TOL
    assert abs(am.max_dice_matching(preds, gts) - ref.max_dice_matching(preds, gts)) <= TOL


@given(mask_sets(min_n=2, min_m=2), st.sampled_from(["dice", "pixel"]))
def test_ci_and_components_equal_reference(sets, variance):
    preds, gts = sets
    r = am.collective_insight(preds, gts, variance=variance)
    want = ref.ci(preds, gts, variance)
    got = [r.ci, r.ci_harmonic, r.combined_sensitivity, r.max_dice_matching, r.diversity_agreement]
    np.testing.assert_allclose(got, want, rtol=0, atol=TOL)
    assert abs(am.diversity_agreement(preds, gts, variance=variance) - want[4]) <= TOL
    assert am.ci_score(preds, gts, variance=variance) == r.ci


@given(st.lists(mask_sets(min_n=2, min_m=2), min_size=1, max_size=5))
def test_ragged_batch_equals_per_image(images):
    """A sequence of images with different N, M and sizes gives the per-image values, in order."""
    preds = [p for p, _ in images]
    gts = [g for _, g in images]
    got = am.evaluate(preds, gts, batch=True)
    for i, (p, g) in enumerate(images):
        single = am.evaluate(p, g)
        for name, values in got.items():
            assert values.shape == (len(images),)
            assert abs(values[i] - single[name]) <= TOL, name


@given(st.integers(1, 4), st.integers(2, 5), st.integers(2, 4), st.integers(1, 70), st.integers(0, 2**32 - 1))
def test_uniform_batch_array_equals_reference(b, n, m, width, seed):
    rng = np.random.default_rng(seed)
    preds = rng.random((b, n, 3, width)) < rng.random()
    gts = rng.random((b, m, 3, width)) < rng.random()
    got = am.evaluate(preds, gts, batch=True)
    for i in range(b):
        g = ref.ged_terms(preds[i], gts[i])
        c = ref.ci(preds[i], gts[i])
        want = {
            "ged": g[0], "ged_cross": g[1], "ged_sample_diversity": g[2], "ged_annotator_diversity": g[3],
            "ci": c[0], "ci_harmonic": c[1], "combined_sensitivity": c[2], "max_dice_matching": c[3],
            "diversity_agreement": c[4],
        }
        for name, value in want.items():
            assert abs(got[name][i] - value) <= TOL, name


@given(mask_sets(min_n=2, min_m=2), st.integers(0, 2**32 - 1), st.sampled_from([np.float32, np.float64]))
def test_float_probabilities_threshold_like_numpy(sets, seed, dtype):
    """Float inputs: foreground is `> threshold` in the array's own precision (numpy's comparison)."""
    preds, gts = sets
    rng = np.random.default_rng(seed)
    threshold = float(rng.choice([0.0, 0.3, 0.5, 0.7]))
    probs = rng.random(preds.shape).astype(dtype)
    probs[rng.random(preds.shape) < 0.1] = dtype(threshold)  # values exactly at the threshold: background
    got = am.evaluate(probs, gts, threshold=threshold)
    binary = probs > threshold
    want = am.evaluate(binary, gts)
    assert got == want
    assert abs(got["ged"] - ref.ged_terms(binary, gts)[0]) <= TOL


@given(mask_sets(), st.sampled_from([(np.uint8, 255), (np.int16, -7), (np.int32, 2), (np.int64, -1),
                                     (np.uint64, 2**40)]))
def test_integer_masks_nonzero_is_foreground(sets, dtype_value):
    """Integer masks: any nonzero value (255, negative, large) is foreground."""
    dtype, value = dtype_value
    preds, gts = sets
    as_int = np.where(preds, dtype(value), dtype(0))
    metrics = ["ged", "max_dice_matching", "combined_sensitivity"]
    assert am.evaluate(as_int, gts.astype(np.uint8) * np.uint8(255), metrics=metrics) == am.evaluate(
        preds, gts, metrics=metrics
    )
