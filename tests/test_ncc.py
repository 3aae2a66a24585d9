"""NCC (PHiSeg) and dice_soft (MBH-Seg) equal loop references; constant maps and input errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import reference as ref
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import ambiseg_metrics as am

TOL = 1e-10


@st.composite
def soft_sets(draw):
    shape = (draw(st.integers(2, 6)), draw(st.integers(2, 6)))
    n, m = draw(st.integers(1, 5)), draw(st.integers(1, 4))
    probs = st.floats(0.0, 1.0, allow_nan=False, width=64)
    preds = draw(hnp.arrays(np.float64, (n, *shape), elements=probs))
    gts = draw(hnp.arrays(np.bool_, (m, *shape)))
    return preds, gts


def _defined(preds, gts) -> bool:
    """True when no cross-entropy map is (nearly) flat, so Pearson's ρ is well conditioned everywhere."""
    e_ss, maps = ref.ncc_maps(preds, gts)
    return all(np.ptp(m) > 1e-6 for m in [e_ss, *maps])


@given(soft_sets())
def test_ncc_equals_phiseg_loops(sets):
    preds, gts = sets
    got = am.ncc(preds, gts)
    assert -1.0 - TOL <= got <= 1.0 + TOL
    if _defined(preds, gts):
        want = ref.ncc(preds, gts)
        assert abs(got - want) <= TOL * max(1.0, abs(want))


def test_ncc_channels_equals_binary():
    rng = np.random.default_rng(0)
    p = rng.random((4, 6, 6))
    y = rng.random((3, 6, 6)) > 0.5
    pc = np.stack([1 - p, p], axis=1)
    yc = np.stack([~y, y], axis=1).astype(np.float64)
    assert am.ncc(pc, yc, channels=True) == pytest.approx(am.ncc(p, y), abs=1e-12)


@pytest.mark.parametrize("n_classes", [2, 3, 5])
def test_ncc_channels_equals_the_loops_for_several_classes(n_classes):
    """Softmax maps of C classes (the class axis second) against one-hot annotations, as PHiSeg's loops."""
    rng = np.random.default_rng(n_classes)
    logits = rng.normal(size=(4, n_classes, 6, 7))
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = rng.integers(0, n_classes, (3, 6, 7))
    y = (labels[:, None] == np.arange(n_classes)[None, :, None, None]).astype(np.float64)
    got = am.ncc(p, y, channels=True)
    assert got == pytest.approx(ref.ncc_channels(p, y), abs=1e-10)


def _flat_annotation(p: np.ndarray) -> np.ndarray:
    """A soft annotation q (P,) whose expected cross-entropy map -((1 - q) E log(1 - s) + q E log s) is
    exactly one value at every pixel, for the samples p (N, P): q solved per pixel, then nudged by a few
    ulps until the map, computed as ``ncc`` computes it, is bitwise flat."""
    from ambiseg_metrics.metrics.ncc import NCC_EPS, _mean_log

    log0, log1 = _mean_log(1.0 - p, NCC_EPS), _mean_log(p, NCC_EPS)
    lo, hi = np.minimum(-log0, -log1).max(), np.maximum(-log0, -log1).min()
    q = (-(lo + hi) / 2 - log0) / (log1 - log0)
    target = -((1.0 - q[0]) * log0[0] + q[0] * log1[0])
    for i in range(1, len(q)):
        down = up = q[i]
        for _ in range(4000):
            if -((1.0 - up) * log0[i] + up * log1[i]) == target:
                q[i] = up
                break
            if -((1.0 - down) * log0[i] + down * log1[i]) == target:
                q[i] = down
                break
            down, up = np.nextafter(down, -1.0), np.nextafter(up, 2.0)
        else:
            raise AssertionError("no exactly flat map found")
    assert ((0 <= q) & (q <= 1)).all() and np.ptp(-((1.0 - q) * log0 + q * log1)) == 0
    return q


def test_an_annotation_with_a_flat_cross_entropy_map_gets_the_constant_value():
    """Pearson's ρ is undefined for a flat map: the annotation gets ``constant_value`` (the samples' map
    varies here, so only the annotation's check can catch it), with no numpy warning."""
    p = np.array([[0.2, 0.2, 0.5, 0.3], [0.2, 0.6, 0.9, 0.35]])
    q = _flat_annotation(p)
    preds, gts = p[:, None, :], q[None, None, :]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert am.ncc(preds, gts, constant_value=0.25) == 0.25
        assert np.isnan(am.ncc(preds, gts, constant_value=float("nan")))


def test_ncc_constant_map_gives_the_documented_value():
    y = np.zeros((2, 4, 4), bool)
    y[0, :2] = True
    same = np.repeat(y[:1], 3, axis=0)  # identical hard samples: E_ss is the same at every pixel
    assert am.ncc(same, y) == 0.0
    assert np.isnan(am.ncc(same, y, constant_value=float("nan")))
    with np.errstate(all="ignore"):
        assert not np.isfinite(ref.ncc(same, y))  # PHiSeg's formula: 0/0


def test_ncc_batch_and_errors():
    rng = np.random.default_rng(1)
    preds = [rng.random((3, 5, 5)), rng.random((2, 4, 4))]
    gts = [rng.random((2, 5, 5)) > 0.5, rng.random((3, 4, 4)) > 0.5]
    got = am.ncc(preds, gts, batch=True)
    assert got.shape == (2,)
    for i in range(2):
        assert got[i] == pytest.approx(ref.ncc(preds[i], gts[i]), abs=TOL)
    with pytest.raises(ValueError, match=r"probabilities must lie in \[0, 1\]"):
        am.ncc(np.full((2, 3, 3), 1.5), gts[0][:, :3, :3])
    with pytest.raises(ValueError, match="image 1"):
        am.ncc([preds[0], np.full((2, 4, 4), np.nan)], gts, batch=True)
    for eps in (0, -1e-8):
        with pytest.raises(ValueError, match="eps must be > 0"):
            am.ncc(preds[0], gts[0], eps=eps)


@pytest.mark.parametrize("value", [-0.5, -1e-9, 1.0 + 1e-9, 2.0, np.nan])
@pytest.mark.parametrize("metric", ["ncc", "dice_soft"])
def test_a_probability_outside_0_1_is_refused(metric, value):
    """Both bounds are checked, just outside as well as far off, and the error names the mask and pixel;
    0 and 1 themselves are valid."""
    preds = np.full((2, 3, 3), 0.25)
    gts = np.zeros((2, 3, 3), bool)
    preds[0], preds[1, 0, 0] = 0.0, 1.0
    getattr(am, metric)(preds, gts)
    preds[1, 2, 1] = value
    refused = r"preds contains .* \(mask 1, pixel 7\): probabilities must lie in \[0, 1\]"
    with pytest.raises(ValueError, match=refused):
        getattr(am, metric)(preds, gts)


@pytest.mark.parametrize("metric", ["ncc", "dice_soft"])
def test_of_several_bad_probabilities_the_first_is_named(metric):
    preds = np.full((3, 3, 3), 0.25)
    preds[0, 2, 2], preds[1, 0, 1], preds[2, 0, 0] = 1.5, -0.5, np.nan  # mask 0 pixel 8 comes first
    with pytest.raises(ValueError, match=r"preds contains 1.5 \(mask 0, pixel 8\)"):
        getattr(am, metric)(preds, np.zeros((2, 3, 3), bool))


@given(soft_sets(), st.lists(st.floats(0.0, 0.99), min_size=1, max_size=5))
def test_dice_soft_equals_reference(sets, thresholds):
    preds, gts = sets
    got = am.dice_soft(preds, gts, thresholds=thresholds)
    assert abs(got - ref.dice_soft(preds, gts, thresholds)) <= 1e-12
    assert abs(am.dice_soft(preds, gts) - ref.dice_soft(preds, gts)) <= 1e-12


def test_dice_soft_worked_example_and_errors():
    y = np.array([[[1, 1, 0, 0]], [[1, 0, 0, 0]]], bool)  # mean 1, .5, 0, 0
    s = np.array([[[1, 0, 0, 0]]], bool)
    assert am.dice_soft(s, y) == pytest.approx((2 * 2 / 3 + 3 * 1) / 5)
    assert am.dice_soft(np.zeros((2, 1, 4), bool), np.zeros((2, 1, 4), bool)) == 1.0
    with pytest.raises(ValueError, match="thresholds is empty"):
        am.dice_soft(s, y, thresholds=[])
    for bad in (1.0, 1.5, -0.1):
        with pytest.raises(ValueError, match=r"thresholds must lie in \[0, 1\)"):
            am.dice_soft(s, y, thresholds=[0.5, bad])


@pytest.mark.parametrize("metric", ["ncc", "dice_soft"])
def test_a_batch_of_equal_images_keeps_their_order(metric):
    """Images of one shape are read as one group: each value lands at its own image's place."""
    rng = np.random.default_rng(3)
    preds = rng.random((4, 3, 5, 5))
    gts = rng.random((4, 2, 5, 5)) > 0.5
    got = getattr(am, metric)(preds, gts, batch=True)
    want = [getattr(am, metric)(preds[i], gts[i]) for i in range(4)]
    assert len(set(want)) == 4
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
