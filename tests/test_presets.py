"""The presets of issue 17 (qubiq, ssn, values) and the classes= requirement of phiseg/ccdm, each pinned
by a worked example computed by hand from the published code's definition."""

from __future__ import annotations

import numpy as np
import pytest

import ambiseg_metrics as am

TOL = 1e-12


def test_values_preset_pools_dice_over_the_stacked_pairs():
    """ValUES calculate_ged: 1 - torchmetrics dice(stacked pairs, ignore_index=0), micro average.

    S = (1100, 1000), Y = (1100, 0110). Cross: ΣI = 2+1+1+0 = 4, Σ(|S|+|Y|) = 4+4+3+3 = 14 -> d = 3/7;
    S-S (all 4 ordered pairs): ΣI = 5, Σ = 12 -> d = 1/6; Y-Y: ΣI = 6, Σ = 16 -> d = 1/4;
    GED = 6/7 - 1/6 - 1/4 = 37/84. torchmetrics 0.11.4 (ValUES' pin) gave 0.44047611951828003 in float32
    (checked once with that wheel, outside the test suite). The per-pair mean would give another value.
    """
    s = np.array([[[1, 1, 0, 0]], [[1, 0, 0, 0]]], bool)
    y = np.array([[[1, 1, 0, 0]], [[0, 1, 1, 0]]], bool)
    conv = am.get_convention("values")
    got = am.ged(s, y, distance=conv.distance, empty_pair=conv.empty_pair, pair_average=conv.pair_average)
    assert got == pytest.approx(37 / 84, abs=TOL)
    assert abs(got - 0.44047611951828003) < 1e-6
    assert abs(am.ged(s, y, distance="dice") - 37 / 84) > 1e-3  # per-pair mean differs
    empty = np.zeros((2, 1, 4), bool)  # zero_division=0: every term d = 1, GED = 2 - 1 - 1
    assert am.ged(empty, empty, distance="dice", empty_pair="zero", pair_average="pooled") == 0.0
    t = am.ged_terms(empty, empty, distance="dice", empty_pair="zero", pair_average="pooled")
    assert (t.cross, t.sample_diversity, t.annotator_diversity) == (1.0, 1.0, 1.0)


def test_ssn_preset_class_wise_ece():
    """SSN fork of PHiSeg: ECE of class 0 and class 1, 10 np.linspace bins, averaged.

    p = (1, 1, 1, 0), f = (1, 1/2, 0, 0). Class 1: bin [.9, 1]: 3 px, |1 - 1/2| -> 3/4·1/2 = 3/8; bin 0:
    |0 - 0| -> ECE_1 = 3/8. Class 0: p0 = (0, 0, 0, 1), f0 = (0, 1/2, 1, 1): bin 0: 3 px, |0 - 1/2| -> 3/8;
    bin 9: |1 - 1| -> ECE_0 = 3/8. Mean 3/8.
    """
    gts = np.array([[[1, 1, 0, 0]], [[1, 0, 0, 0]]], bool)
    preds = np.array([[[1, 1, 1, 0]]], bool)
    conv = am.get_convention("ssn")
    cal = am.rater_calibration(preds, gts, classes=conv.calibration_classes)
    assert cal.ece == pytest.approx(3 / 8, abs=TOL)
    # an asymmetric case: p = (0.25, 0.75), f = (0, 1) with soft samples -> class 1: bins 2 and 7,
    # gaps 1/4 and 1/4 -> 1/4; class 0 the same -> 1/4
    p = np.array([[[0.25, 0.75]]])
    f = np.array([[[0, 1]]], bool)
    assert am.rater_calibration(p, f, classes="both").ece == pytest.approx(0.25, abs=TOL)


def test_qubiq_preset_strict_comparison():
    """Two raters, f = (1, 1/2, 0); p = (1, 1/2, 1/2) from two samples. Strict: at τ < 1/2 p > τ on
    all three, f > τ on two -> 4/5; at τ >= 1/2 both {0} -> 1. Score (4·4/5 + 5)/9 = 41/45."""
    gts = np.array([[[1, 1, 0]], [[1, 0, 0]]], bool)
    preds = np.array([[[1, 1, 1]], [[1, 0, 0]]], bool)
    assert am.get_convention("qubiq").source
    assert am.qubiq_score(preds, gts) == pytest.approx(41 / 45, abs=TOL)
    # >=: at τ = 0.5 p >= τ on all three and f on two -> 4/5 instead of 1
    assert am.qubiq_score(preds, gts, comparison=">=") == pytest.approx((5 * 4 / 5 + 4) / 9, abs=TOL)


@pytest.mark.parametrize("name", ["phiseg", "ccdm", "ssn"])
def test_fixed_class_presets_require_classes(name):
    """PHiSeg/CCDM average over the fixed classes 1..L-1 (absent ones score 1): y = (1,1,0,0) with
    classes {1, 2}: s = (1,0,0,0) has class-1 IoU 1/2, class 2 absent from both -> 3/4 -> d = 1/4."""
    y, s = np.array([[[1, 1, 0, 0]]]), np.array([[[1, 0, 0, 0]]])
    with pytest.raises(ValueError, match="classes="):
        am.multiclass_ged(s, y, conventions=name)
    assert am.multiclass_ged(s, y, classes=3, conventions=name) == pytest.approx(0.5, abs=TOL)
    # what classes=None would do (drop the absent class 2): d = 1/2, GED = 1
    assert am.multiclass_ged(s, y) == pytest.approx(1.0, abs=TOL)


def test_kohl_ignore_label_and_probability_weights():
    """Pixels where the annotation is 255 leave every pair; weights give Kohl's probability_weighted GED."""
    y = np.array([[[1, 1, 255, 0]], [[1, 0, 255, 0]]])
    s = np.array([[[1, 1, 1, 0]]])  # pixel 2 ignored: s equals y_0 on the rest
    got = am.multiclass_ged_terms(s, y, classes=[1], ignore_label=255, conventions="kohl")
    # d(s, y0) = 0, d(s, y1) = 1 - 1/2; d(y0, y1) = 1/2
    assert got.cross == pytest.approx(0.25, abs=TOL)
    w = np.array([0.75, 0.25])
    gw = am.multiclass_ged_terms(s, y, classes=[1], ignore_label=255, gt_weights=w, conventions="kohl")
    assert gw.cross == pytest.approx(0.25 * 0.5, abs=TOL)
    assert gw.annotator_diversity == pytest.approx(2 * 0.75 * 0.25 * 0.5, abs=TOL)
    with pytest.raises(ValueError, match="ignore_label"):
        am.multiclass_ged(s, y, classes=[1, 255], ignore_label=255)


@pytest.mark.parametrize(("shape", "exact"), [((8, 8), True), ((50, 50), True), ((71, 108), False),
                                              ((87, 80), False)])
def test_phiseg_ncc_constant_map_depends_on_image_size(shape, exact):
    """docs/metrics.rst: PHiSeg's NCC of a constant map is NaN only where np.mean of it is exact."""
    a = np.full(shape, np.log(1.0 + 1e-8))
    assert bool(np.mean(a) == a[0, 0]) is exact
    centred = a - np.mean(a)
    with np.errstate(invalid="ignore", divide="ignore"):
        normed = centred / (np.std(a) * a.size)
    if exact:  # 0/0 everywhere: NaN
        assert np.isnan(normed).all()
    else:  # rounding noise divided by its own spread: finite, ±1/P
        assert np.isfinite(normed).all()
