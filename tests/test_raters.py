"""Rater-vote metrics (vote-table path and per-pixel path) against the per-pixel numpy references."""

from __future__ import annotations

import numpy as np
import pytest
import rater_reference as rr
from hypothesis import given
from hypothesis import strategies as st
from strategies import mask_sets

import ambiseg_metrics as am

TOL = 1e-12


def close(a, b):
    return (np.isnan(a) and np.isnan(b)) or abs(a - b) <= TOL


def check_all(preds, gts, weights=None, n_bins=10):
    """Every metric of the library against the reference for one image."""
    kw = {} if weights is None else {"gt_weights": weights}
    assert close(am.qubiq_score(preds, gts, **kw), rr.qubiq(preds, gts, weights=weights))
    assert close(
        am.qubiq_score(preds, gts, comparison=">=", **kw),
        rr.qubiq(preds, gts, inclusive=True, weights=weights),
    )
    assert close(am.soft_dice(preds, gts, **kw), rr.soft_dice(preds, gts, weights))
    for classes in ("foreground", "both"):
        got = am.rater_calibration(preds, gts, n_bins=n_bins, classes=classes, **kw)
        want = rr.calibration(preds, gts, n_bins, classes == "both", weights)
        for g, w in zip((got.ece, got.mce, got.ace, got.brier), want, strict=True):
            assert close(g, w), (classes, got, want)
    got = am.uncertainty_error_overlap(preds, gts, **kw)
    want = rr.ueo(preds, gts, weights)
    for g, w in zip((got.ueo, got.auroc, got.auprc), want, strict=True):
        assert close(g, w), (got, want)
    assert abs(am.volume_crps(preds, gts, **kw) - rr.volume_crps(preds, gts, weights)) <= 1e-9
    assert close(am.consensus_dice(preds, gts, **kw), rr.consensus_dice(preds, gts, weights))


@given(mask_sets(max_n=7, max_m=5), st.integers(1, 12))
def test_binary_masks_through_the_vote_table(sets, n_bins):
    preds, gts = sets
    check_all(preds, gts, n_bins=n_bins)


@given(mask_sets(max_n=4, max_m=4), st.integers(0, 2**32 - 1))
def test_soft_and_weighted_inputs_through_the_per_pixel_path(sets, seed):
    preds, gts = sets
    rng = np.random.default_rng(seed)
    soft = np.where(preds, rng.random(preds.shape), 0.0)
    check_all(soft, gts)
    w = rng.random(len(gts)) + 0.1
    w[rng.random(len(gts)) < 0.3] = 0.0
    if w.sum() == 0:
        w[0] = 1.0
    check_all(preds, gts, weights=w / w.sum())


@given(mask_sets(max_n=8, max_m=5), st.integers(1, 12))
def test_vectorised_table_path_equals_the_per_image_readouts(sets, n_bins):
    """rater_metrics (vectorised over vote tables) against rater_metrics_from_votes (generic readouts of
    the same tables), both classes settings."""
    from ambiseg_metrics.metrics.raters import rater_metrics_from_votes, rater_votes

    preds, gts = sets
    votes = rater_votes(preds, gts)
    for classes in ("foreground", "both"):
        fast = am.rater_metrics(preds, gts, classes=classes, n_bins=n_bins)
        slow = rater_metrics_from_votes(votes, batch=False, classes=classes, n_bins=n_bins)
        for name in am.RATER_METRICS:
            assert close(fast[name], slow[name]), (name, fast[name], slow[name])


@given(mask_sets(max_n=4, max_m=4))
def test_table_and_per_pixel_paths_agree(sets):
    """0/1 floats take the per-pixel path; with N a power of two u = p(1 - p) is exact in both paths."""
    preds, gts = sets
    preds = preds[: 1 << int(np.log2(len(preds)))]
    for classes in ("foreground", "both"):
        table = am.rater_metrics(preds, gts, classes=classes)
        pixels = am.rater_metrics(preds.astype(np.float64), gts.astype(np.float64), classes=classes)
        for name in am.RATER_METRICS:
            assert close(table[name], pixels[name]) or abs(table[name] - pixels[name]) <= 1e-9, name


def test_batch_ragged_and_weights_per_image():
    rng = np.random.default_rng(0)
    preds = [rng.random((3, 6, 7)) < 0.5, rng.random((5, 6, 7)) < 0.5]
    gts = [rng.random((2, 6, 7)) < 0.5, rng.random((4, 6, 7)) < 0.5]
    got = am.qubiq_score(preds, gts, batch=True)
    assert got.shape == (2,)
    assert all(close(got[i], rr.qubiq(preds[i], gts[i])) for i in range(2))
    w = [np.array([0.25, 0.75]), np.array([0.1, 0.2, 0.3, 0.4])]
    cal = am.rater_calibration(preds, gts, batch=True, gt_weights=w)
    assert cal.bin_count.shape == (2, 10) and cal.bin_count.sum() == 2 * 42
    assert close(cal.ece[1], rr.calibration(preds[1], gts[1], weights=w[1])[0])


def test_worked_values_and_conventions():
    gts = np.array([[[1, 1, 0, 0]], [[1, 0, 0, 0]]], bool)  # f = 1, 1/2, 0, 0
    preds = np.array([[[1, 1, 0, 0]]], bool)  # p = 1, 1, 0, 0
    # τ < 1/2: both {0, 1}: 1; τ >= 1/2 strict: f > τ only at pixel 0: 2/3
    assert close(am.qubiq_score(preds, gts), (4 + 5 * 2 / 3) / 9)
    assert am.qubiq_score(preds, gts, thresholds=[0.5], comparison=">=") == 1.0
    assert am.qubiq_score(preds, gts, thresholds=[0.5]) == 2 / 3
    empty = np.zeros((2, 3, 3), bool)
    assert am.qubiq_score(empty, empty) == 1.0 and am.soft_dice(empty, empty) == 1.0
    assert am.consensus_dice(empty, empty) == 1.0
    r = am.uncertainty_error_overlap(empty, empty)
    assert r.ueo == 1.0 and np.isnan(r.auroc) and np.isnan(r.auprc)
    # one probability map is p itself
    prob = np.array([[[0.9, 0.2, 0.5, 0.0]]])
    assert close(am.soft_dice(prob, gts), 2 * (0.9 + 0.1) / (1.6 + 1.5))


def test_linspace_edges_put_three_tenths_below_the_edge():
    """p = 3/10 lies in [0.2, 0.3) because np.linspace's edge is 0.30000000000000004 (as in SSN's code)."""
    preds = np.zeros((10, 1, 1), bool)
    preds[:3] = True
    cal = am.rater_calibration(preds, np.zeros((1, 1, 1), bool))
    assert cal.bin_count[2] == 1 and cal.bin_count[3] == 0


def test_bad_arguments_are_named():
    m = np.zeros((2, 3, 3), bool)
    with pytest.raises(ValueError, match="comparison"):
        am.qubiq_score(m, m, comparison="<")
    with pytest.raises(ValueError, match="thresholds"):
        am.qubiq_score(m, m, thresholds=[1.0])
    with pytest.raises(ValueError, match="n_bins"):
        am.rater_calibration(m, m, n_bins=0)
    with pytest.raises(ValueError, match="gt_weights must sum to 1"):
        am.soft_dice(m, m, gt_weights=[0.5, 0.6])
    with pytest.raises(ValueError, match="one weight per annotation"):
        am.soft_dice(m, m, gt_weights=[1.0])
    with pytest.raises(ValueError, match="preds contains"):
        am.soft_dice(np.full((1, 3, 3), 1.5), m)
