"""Input rules: what is accepted, and a clear error naming the argument for everything else."""

from __future__ import annotations

import numpy as np
import pytest

import ambiseg_metrics as am

RNG = np.random.default_rng(0)
P = RNG.random((3, 8, 8)) > 0.5
G = RNG.random((2, 8, 8)) > 0.5

ALL_FUNCS = [am.ged, am.combined_sensitivity, am.max_dice_matching, am.ci_score, am.diversity_agreement,
             am.evaluate, am.ged_terms, am.collective_insight, am.pair_counts]


@pytest.mark.parametrize("func", ALL_FUNCS)
def test_nan_probability_is_rejected(func):
    bad = RNG.random((3, 8, 8))
    bad[1, 2, 3] = np.nan
    with pytest.raises(ValueError, match=r"preds contains NaN \(mask 1, pixel 19\)"):
        func(bad, G)


@pytest.mark.parametrize("value", [-0.1, 1.5, np.inf, -np.inf])
def test_probability_outside_unit_interval_is_rejected(value):
    bad = RNG.random((2, 8, 8)).astype(np.float32)
    bad[0, 0, 5] = value
    with pytest.raises(ValueError, match=r"gts contains .* \(mask 0, pixel 5\).*\[0, 1\]"):
        am.ged(P, bad)


def test_bad_value_in_batch_names_the_image():
    preds = RNG.random((3, 2, 4, 4))
    preds[2, 1, 0, 0] = 2.0
    with pytest.raises(ValueError, match=r"preds contains 2.0 \(image 2, mask 1, pixel 0\)"):
        am.ged(preds, preds > 0.5, batch=True)
    ragged = [RNG.random((2, 4, 4)), RNG.random((3, 5, 5))]
    ragged[1][0, 1, 1] = -1.0
    with pytest.raises(ValueError, match=r"preds contains -1.0 \(image 1, mask 0, pixel 6\)"):
        am.ged(ragged, [g > 0.5 for g in ragged], batch=True)


def test_bad_value_in_non_contiguous_input_is_found():
    x = RNG.random((3, 8, 8))
    x[2, 3, 1] = 7.0
    with pytest.raises(ValueError, match=r"preds contains 7.0 \(mask 2, pixel 11\)"):
        am.ged(x.transpose(0, 2, 1), G)


def test_mismatched_spatial_shapes():
    with pytest.raises(ValueError, match=r"same spatial shape; got preds \(3, 8, 8\) and gts \(2, 8, 9\)"):
        am.ged(P, np.zeros((2, 8, 9), bool))
    with pytest.raises(ValueError, match=r"same spatial shape \(image 1\)"):
        am.ged([P, P], [G, G[:, :4]], batch=True)


@pytest.mark.parametrize("func", ALL_FUNCS)
def test_zero_masks(func):
    with pytest.raises(ValueError, match=r"preds has N=0 masks"):
        func(np.zeros((0, 8, 8), bool), G)
    with pytest.raises(ValueError, match=r"gts has M=0 masks"):
        func(P, np.zeros((0, 8, 8), bool))


@pytest.mark.parametrize("shape", [(8,), (8, 8), (1, 2, 3, 4, 5)])
def test_wrong_ndim_single_image(shape):
    with pytest.raises(ValueError, match=r"preds must have shape \(N, H, W\) or \(N, D, H, W\); got shape"):
        am.ged(np.zeros(shape, bool), G)


def test_wrong_ndim_hints():
    with pytest.raises(ValueError, match=r"add the leading axis: preds\[None\]"):
        am.ged(P[0], G)
    with pytest.raises(ValueError, match=r"pass batch=True"):
        am.ged(np.zeros((2, 3, 4, 4, 4), bool), np.zeros((2, 3, 4, 4, 4), bool))
    with pytest.raises(ValueError, match=r"batch=True must have shape \(B, N, H, W\).*pass batch=False"):
        am.ged(P, G, batch=True)


def test_four_d_is_not_guessed():
    """A 4-D array is one 3-D image unless batch=True says it is a batch of 2-D images."""
    vol_p = RNG.random((3, 4, 6, 6)) > 0.5
    vol_g = RNG.random((2, 4, 6, 6)) > 0.5
    one = am.ged(vol_p, vol_g)
    assert isinstance(one, float)
    many = am.ged(vol_p, RNG.random((3, 2, 6, 6)) > 0.5, batch=True)
    assert many.shape == (3,)


def test_empty_image():
    with pytest.raises(ValueError, match=r"preds has an empty image \(shape \(2, 0, 4\)\)"):
        am.ged(np.zeros((2, 0, 4), bool), np.zeros((2, 0, 4), bool))


@pytest.mark.parametrize("bad", [np.zeros((2, 4, 4), complex), np.zeros((2, 4, 4), object),
                                 np.array([[["a"]]])])
def test_unsupported_dtype(bad):
    with pytest.raises(TypeError, match=r"preds has dtype"):
        am.ged(bad, np.zeros(bad.shape, bool))


@pytest.mark.parametrize("bad", ["masks.png", None, 3, 2.5])
def test_not_an_array(bad):
    with pytest.raises(TypeError, match=r"preds must be an array of masks"):
        am.ged(bad, G)


def test_batch_length_mismatch():
    with pytest.raises(ValueError, match=r"same number of images; got 2 and 3"):
        am.ged([P, P], [G, G, G], batch=True)
    with pytest.raises(ValueError, match=r"preds is an empty batch"):
        am.ged([], [], batch=True)
    with pytest.raises(TypeError, match=r"batch=True must be an array of shape"):
        am.ged("x", [G], batch=True)


def test_list_of_masks_with_different_shapes():
    with pytest.raises(ValueError, match=r"preds: the masks in the list have different shapes"):
        am.ged([np.zeros((4, 4)), np.zeros((4, 5))], G)


@pytest.mark.parametrize("threshold", [-0.1, 1.0, 2, float("nan")])
def test_threshold_range(threshold):
    with pytest.raises(ValueError, match=r"threshold must lie in \[0, 1\)"):
        am.ged(P, G, threshold=threshold)


@pytest.mark.parametrize("threshold", ["0.5", None, True])
def test_threshold_type(threshold):
    with pytest.raises(TypeError, match=r"threshold must be a real number"):
        am.ged(P, G, threshold=threshold)


def test_batch_flag_type():
    with pytest.raises(TypeError, match=r"batch must be True or False"):
        am.ged(P, G, batch="yes")


def test_option_names():
    with pytest.raises(ValueError, match=r"estimator must be one of 'v-statistic', 'unbiased'; got 'biased'"):
        am.ged(P, G, estimator="biased")
    with pytest.raises(ValueError, match=r"distance must be one of 'iou', 'dice'; got 'l2'"):
        am.ged(P, G, distance="l2")
    with pytest.raises(ValueError, match=r"variance must be one of 'dice', 'pixel'; got 'std'"):
        am.ci_score(P, G, variance="std")
    with pytest.raises(ValueError, match=r"unknown metric\(s\) \['gde'\]"):
        am.evaluate(P, G, metrics=["gde"])


@pytest.mark.parametrize("func", [am.diversity_agreement, am.ci_score, am.collective_insight])
def test_pairs_needed(func):
    msg = r"needs at least 2 predictions and 2 annotations per image; got N=1, M=2"
    with pytest.raises(ValueError, match=msg):
        func(P[:1], G)
    with pytest.raises(ValueError, match=r"got N=3, M=1 \(image 1\)"):
        func([P, P], [G, G[:1]], batch=True)


def test_unbiased_ged_needs_pairs():
    msg = r'ged with estimator="unbiased" needs at least 2 predictions and 2 annotations'
    with pytest.raises(ValueError, match=msg):
        am.ged(P, G[:1], estimator="unbiased")


def test_metrics_defined_for_single_masks():
    """N = 1 / M = 1: GED (V-statistic), S_c and D_max are defined and work."""
    r = am.evaluate(P[:1], G[:1], metrics=["ged", "combined_sensitivity", "max_dice_matching"])
    assert set(r) == {"ged", "combined_sensitivity", "max_dice_matching"}


def test_accepted_containers_give_the_same_numbers():
    base = am.evaluate(P, G)
    assert am.evaluate(list(P), list(G)) == base
    assert am.evaluate(P.astype(np.uint8) * 255, G.astype(np.int64)) == base
    assert am.evaluate(P.astype(np.float16), G) == base
    assert am.evaluate(P.tolist(), G.tolist()) == base
    assert am.evaluate(np.asfortranarray(P), G[:, ::-1, :][:, ::-1, :]) == base
    batch = am.evaluate(np.stack([P, P]), [G, G], batch=True)
    assert all(np.all(v == base[k]) for k, v in batch.items())


def test_inputs_are_not_modified():
    p = RNG.random((3, 8, 8))
    g = (RNG.random((2, 8, 8)) > 0.5).astype(np.uint8) * 255
    p0, g0 = p.copy(), g.copy()
    am.evaluate(p, g)
    assert np.array_equal(p, p0) and np.array_equal(g, g0)
