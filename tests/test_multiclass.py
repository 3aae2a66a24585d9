"""Multi-class GED / HM-IoU equal per-class loops written as in the published codes."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import reference as ref
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import ambiseg_metrics as am

TOL = 1e-12


@st.composite
def label_sets(draw, max_n: int = 4, max_m: int = 3, n_classes: int = 4):
    shape = (draw(st.integers(1, 6)), draw(st.integers(1, 6)))
    n, m = draw(st.integers(1, max_n)), draw(st.integers(1, max_m))
    labels = st.integers(0, n_classes - 1)
    preds = draw(hnp.arrays(np.int64, (n, *shape), elements=labels))
    gts = draw(hnp.arrays(np.int64, (m, *shape), elements=labels))
    return preds, gts


@given(label_sets(), st.sampled_from(["one", "zero", "skip"]), st.booleans(),
       st.sampled_from(["v-statistic", "unbiased"]))
def test_multiclass_ged_equals_reference(sets, class_absent, include_background, estimator):
    preds, gts = sets
    if estimator == "unbiased" and (len(preds) < 2 or len(gts) < 2):
        with pytest.raises(ValueError, match="at least 2"):
            am.multiclass_ged(preds, gts, classes=4, estimator=estimator)
        return
    classes = [0, 1, 2, 3] if include_background else [1, 2, 3]
    got = am.multiclass_ged(
        preds, gts, classes=4, include_background=include_background, class_absent=class_absent,
        estimator=estimator,
    )
    want = ref.multiclass_ged(preds, gts, classes, class_absent, estimator)
    if np.isnan(want):
        assert np.isnan(got)
    else:
        assert abs(got - want) <= TOL


@given(label_sets(max_n=3, max_m=2), st.sampled_from(["one", "zero"]))
def test_multiclass_hm_iou_equals_bruteforce(sets, class_absent):
    preds, gts = sets
    got = am.multiclass_hungarian_iou(preds, gts, classes=[1, 2, 3], class_absent=class_absent)
    sim = [[ref.multiclass_iou(p, g, [1, 2, 3], class_absent) for g in gts] for p in preds]
    assert abs(got - ref.hungarian_bruteforce(sim)) <= TOL
    assert 0.0 <= got <= 1.0


@given(label_sets(n_classes=2), st.sampled_from(["one", "zero", "skip"]))
def test_two_labels_equal_the_binary_metrics(sets, empty_pair):
    """Label maps with classes {0, 1}, foreground only: the binary GED / HM-IoU with the same convention."""
    preds, gts = sets
    got = am.multiclass_ged_terms(preds, gts, classes=2, class_absent=empty_pair)
    want = am.ged_terms(preds, gts, empty_pair=empty_pair)
    np.testing.assert_allclose(
        [got.ged, got.cross, got.sample_diversity, got.annotator_diversity],
        [want.ged, want.cross, want.sample_diversity, want.annotator_diversity],
        rtol=0, atol=TOL,
    )
    hm = am.multiclass_hungarian_iou(preds, gts, classes=2, class_absent=empty_pair)
    assert abs(hm - am.hungarian_iou(preds, gts, empty_pair=empty_pair)) <= TOL


def test_worked_example_and_classes_forms():
    y = np.array([[[1, 1, 2, 2]]])
    s = np.array([[[1, 1, 2, 0]]])  # class 1 IoU = 1, class 2 IoU = 1/2
    assert am.multiclass_ged(s, y, classes=3) == pytest.approx(0.5)
    assert am.multiclass_ged(s, y) == pytest.approx(0.5)  # classes inferred: 0..2, background out
    assert am.multiclass_ged(s, y, classes=[2]) == pytest.approx(1.0)  # only class 2: d = 1/2
    # background in: class 0 IoU = 0 (pixel 3 is 0 only in s) -> mean (0 + 1 + 1/2) / 3
    assert am.multiclass_ged(s, y, classes=3, include_background=True) == pytest.approx(2 * (1 - 0.5))
    sim = am.multiclass_similarity(s, y, classes=3)
    assert sim.shape == (2, 2) and sim[0, 1] == pytest.approx(0.75)


def test_batch_ragged_equals_per_image():
    rng = np.random.default_rng(0)
    preds = [rng.integers(0, 3, (3, 5, 5)), rng.integers(0, 3, (2, 4, 6))]
    gts = [rng.integers(0, 3, (2, 5, 5)), rng.integers(0, 3, (3, 4, 6))]
    got = am.multiclass_ged(preds, gts, batch=True, classes=3)
    hm = am.multiclass_hungarian_iou(preds, gts, batch=True, classes=3)
    inferred = am.multiclass_ged(preds, gts, batch=True)
    for i in range(2):
        assert got[i] == pytest.approx(am.multiclass_ged(preds[i], gts[i], classes=3), abs=TOL)
        assert hm[i] == pytest.approx(am.multiclass_hungarian_iou(preds[i], gts[i], classes=3), abs=TOL)
        assert inferred[i] == pytest.approx(am.multiclass_ged(preds[i], gts[i]), abs=TOL)


def test_input_errors():
    y = np.zeros((2, 4, 4), np.int64)
    with pytest.raises(TypeError, match="integer label maps"):
        am.multiclass_ged(y.astype(float), y)
    with pytest.raises(ValueError, match="no class left"):
        am.multiclass_ged(y, y)  # only background and include_background=False
    with pytest.raises(ValueError, match="classes is empty"):
        am.multiclass_ged(y, y, classes=[])
    with pytest.raises(ValueError, match="class_absent must be one of"):
        am.multiclass_ged(y, y, classes=2, class_absent="nan")
    with pytest.raises(ValueError, match="same spatial shape"):
        am.multiclass_ged(y, y[:, :2])


def test_conventions_set_the_options_and_explicit_arguments_win():
    y, s = np.array([[[1, 1, 0, 0]]]), np.array([[[1, 0, 0, 0]]])
    kohl = am.multiclass_ged(s, y, classes=3, conventions="kohl")
    assert kohl == am.multiclass_ged(s, y, classes=3, class_absent="skip")
    # kohl skips the absent class 2; an explicit class_absent="zero" overrides the preset.
    zero = am.multiclass_ged(s, y, classes=3, conventions="kohl", class_absent="zero")
    assert zero == am.multiclass_ged(s, y, classes=3, conventions="mbh") != kohl
    hm = am.multiclass_hungarian_iou(s, y, classes=3, conventions="mbh")
    assert hm == pytest.approx(0.25)  # class 1 IoU 1/2, absent class 2 counts 0
    assert am.multiclass_similarity(s, y, classes=3, conventions="phiseg")[0, 1] == pytest.approx(0.75)


@pytest.mark.parametrize("dtype", [np.int64, np.uint8])
@pytest.mark.parametrize("n_images", [2, 3])
@pytest.mark.parametrize("classes", [3, [1, 2]])
def test_ignored_pixels_are_left_out_image_by_image(classes, n_images, dtype):
    """A pixel where any annotation of an image has ``ignore_label`` counts for no pair of that image: the
    same as removing it. In a batch with a fixed class list (counted for all images at once), with as many
    images as predictions (2) and with more (3); each image has its own ignored pixels."""
    rng = np.random.default_rng(n_images)
    preds = rng.integers(0, 3, (n_images, 2, 6, 6)).astype(dtype)
    gts = rng.integers(0, 3, (n_images, 3, 6, 6)).astype(dtype)
    for b in range(n_images):  # 255: the largest uint8 label
        gts[b, b % 3, rng.integers(0, 6, 6), rng.integers(0, 6, 6)] = 255
    got = am.multiclass_similarity(preds, gts, batch=True, classes=classes, ignore_label=255)
    ged = am.multiclass_ged(preds, gts, batch=True, classes=classes, ignore_label=255)
    for b in range(n_images):
        keep = ~(gts[b] == 255).any(0)
        assert 0 < keep.sum() < 36
        kept_p, kept_g = preds[b][:, None, keep], gts[b][:, None, keep]  # images of one row of kept pixels
        want = am.multiclass_similarity(kept_p, kept_g, classes=classes)
        np.testing.assert_allclose(got[b], want, rtol=0, atol=1e-12, equal_nan=True)
        assert ged[b] == pytest.approx(am.multiclass_ged(kept_p, kept_g, classes=classes), abs=TOL)


def test_label_0_can_be_the_ignored_label():
    """``ignore_label=0`` leaves out the pixels some annotation marks 0 (the smallest label there is)."""
    rng = np.random.default_rng(5)
    preds = rng.integers(1, 4, (2, 6, 6))
    gts = rng.integers(1, 4, (3, 6, 6))
    gts[1, 2, :4] = 0
    keep = ~(gts == 0).any(0)
    got = am.multiclass_ged(preds, gts, classes=[1, 2, 3], ignore_label=0)
    want = am.multiclass_ged(preds[:, None, keep], gts[:, None, keep], classes=[1, 2, 3])
    assert got == pytest.approx(want, abs=TOL)
    assert got != pytest.approx(am.multiclass_ged(preds, gts, classes=[1, 2, 3]), abs=1e-6)


@pytest.mark.parametrize("label", [1.5, True, "255", np.float64(2.0)])
def test_ignore_label_must_be_an_integer(label):
    maps = np.ones((2, 4, 4), np.int64)
    with pytest.raises(TypeError, match="ignore_label must be an integer label"):
        am.multiclass_ged(maps, maps, classes=[1], ignore_label=label)


@pytest.mark.parametrize(("ignored", "top_in"), [(255, "preds"), (255, "gts"), (0, "preds"), (0, "gts")])
def test_inferred_classes_leave_the_ignored_label_out(ignored, top_in):
    """With ``classes=None`` the class list runs up to the largest label other than ``ignore_label``
    (which may also stand in predictions), whichever side holds that label; absent classes count
    (class_absent="one"), so a class too many or too few would show."""
    rng = np.random.default_rng(ignored)
    preds = rng.integers(1, 3, (2, 6, 6)).astype(np.uint8)
    gts = rng.integers(1, 3, (3, 6, 6)).astype(np.uint8)
    (preds if top_in == "preds" else gts)[1, 2, :2] = 3  # the largest label, on one side only
    preds[0, 0, :3] = ignored
    gts[1, 5, 2:] = ignored
    want = am.multiclass_ged(preds, gts, classes=[1, 2, 3], ignore_label=ignored)
    assert am.multiclass_ged(preds, gts, ignore_label=ignored) == pytest.approx(want, abs=TOL)


def test_only_background_and_the_ignored_label_give_class_0_alone():
    """Maps of background and the ignored label only (on both sides; a prediction's 255 at a kept pixel
    is simply not class 0): the inferred class list is class 0 alone."""
    rng = np.random.default_rng(8)
    preds = np.where(rng.random((2, 6, 6)) < 0.3, 255, 0)
    gts = np.where(rng.random((3, 6, 6)) < 0.1, 255, 0)
    want = am.multiclass_ged(preds, gts, classes=[0], ignore_label=255)
    assert want > 0
    got = am.multiclass_ged(preds, gts, ignore_label=255, include_background=True)
    assert got == pytest.approx(want, abs=TOL)


def test_images_of_one_batch_infer_their_own_classes():
    """Same-shape images are counted as one group, but without ``classes`` each image's class list is its
    own (here: labels up to 1 in image 0, up to 3 in image 1)."""
    rng = np.random.default_rng(11)
    preds = rng.integers(0, 2, (2, 3, 6, 6))
    gts = rng.integers(0, 2, (2, 2, 6, 6))
    preds[1, 0, :2], gts[1, 1, 4:] = 3, 2
    got = am.multiclass_ged(preds, gts, batch=True)
    for i in range(2):
        assert got[i] == pytest.approx(am.multiclass_ged(preds[i], gts[i]), abs=TOL)


def test_a_pair_with_no_class_present_under_skip():
    """class_absent="skip" with no class present in either map of a pair: its similarity is NaN (no
    class to average, no numpy warning), and a matching counts it as 1."""
    preds = np.zeros((2, 4, 4), np.int64)
    preds[1, :2] = 1
    gts = np.zeros((2, 4, 4), np.int64)
    gts[0, 1:] = 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sim = am.multiclass_similarity(preds, gts, classes=[1], class_absent="skip")
        hm = am.multiclass_hungarian_iou(preds, gts, classes=[1], class_absent="skip")
    assert np.isnan(sim[0, 3]) and sim[1, 2] == 0.25  # pred 1: rows 0-1, gts 0: rows 1-3
    # best matching: pred 0 with gts 1 (no class: counted as 1), pred 1 with gts 0 (0.25)
    assert hm == (1 + 0.25) / 2


@pytest.mark.parametrize(("dtype", "label"), [(np.uint8, 300), (np.uint8, -1), (np.int16, 40_000)])
def test_an_ignore_label_the_maps_cannot_hold_ignores_nothing(dtype, label):
    rng = np.random.default_rng(9)
    preds = rng.integers(0, 3, (3, 5, 5)).astype(dtype)
    gts = rng.integers(0, 3, (2, 5, 5)).astype(dtype)
    for f in (am.multiclass_ged, am.multiclass_hungarian_iou):
        got = f(preds, gts, classes=3, ignore_label=label)
        assert got == pytest.approx(f(preds, gts, classes=3), abs=TOL)
    batch = am.multiclass_similarity(np.stack([preds] * 3), np.stack([gts] * 3), batch=True, classes=3,
                                     ignore_label=label)
    for sim in batch:
        np.testing.assert_array_equal(sim, am.multiclass_similarity(preds, gts, classes=3))


def test_multiclass_ged_with_weights_equals_duplication():
    """Annotation weights 1/4, 1/4, 1/2 give the GED terms of the annotations with the third one twice
    (v-statistic), with as many predictions as annotations."""
    rng = np.random.default_rng(10)
    preds = rng.integers(0, 3, (3, 6, 6))
    gts = rng.integers(0, 3, (3, 6, 6))
    got = am.multiclass_ged_terms(preds, gts, classes=3, gt_weights=[0.25, 0.25, 0.5])
    want = am.multiclass_ged_terms(preds, np.concatenate([gts, gts[2:]]), classes=3)
    for name in ("ged", "cross", "sample_diversity", "annotator_diversity"):
        assert getattr(got, name) == pytest.approx(getattr(want, name), abs=TOL), name


def test_more_images_than_pixels_with_an_ignore_label_the_maps_cannot_hold():
    """A batch of 4 one-pixel images with a fixed class list is counted as one group: the kept-pixel
    mask must have one row per image, not per pixel."""
    preds = np.array([[[[1]], [[0]]], [[[1]], [[1]]], [[[0]], [[0]]], [[[1]], [[0]]]], np.uint8)
    gts = np.array([[[[1]]], [[[0]]], [[[0]]], [[[1]]]], np.uint8)
    got = am.multiclass_ged(preds, gts, batch=True, classes=2, ignore_label=300)
    np.testing.assert_allclose(got, am.multiclass_ged(preds, gts, batch=True, classes=2), rtol=0, atol=TOL)
