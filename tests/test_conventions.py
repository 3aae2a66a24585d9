"""Convention presets: each one pinned by a worked example; convention-aware GED equals the reference."""

from __future__ import annotations

import numpy as np
import pytest
import reference as ref
from hypothesis import given
from hypothesis import strategies as st
from strategies import mask_sets

import ambiseg_metrics as am
from ambiseg_metrics.conventions import resolve_conventions

TOL = 1e-12


def _mask(*pixels: int, size: int = 4) -> np.ndarray:
    m = np.zeros((1, size), bool)
    m[0, list(pixels)] = True
    return m


A = _mask(0, 1)  # 2 pixels
B = _mask(0, 1, 2, 3)  # 4 pixels: IoU(A, B) = 1/2
E = _mask()  # empty
# preds (A, ∅), gts (A, B). E[d(S,Y)] = (0 + 1/2 + 1 + 1) / 4 = 5/8, E[d(Y,Y')] = 1/4;
# E[d(S,S')] = (0 + 1 + 1 + d(∅,∅)) / 4 over all four pairs, or over the three defined ones ("skip").
PREDS, GTS = np.stack([A, E]), np.stack([A, B])
GED_BY_EMPTY_PAIR = {
    "one": 2 * 5 / 8 - 2 / 4 - 1 / 4,  # d(∅,∅) = 0
    "zero": 2 * 5 / 8 - 3 / 4 - 1 / 4,  # d(∅,∅) = 1
    "skip": 2 * 5 / 8 - 2 / 3 - 1 / 4,  # the ∅-∅ pair leaves the mean
}
PRESET_GED = {"cimd": 0.5, "phiseg": 0.5, "ccdm": 0.5, "mose": 0.5, "mbh": 0.25, "kohl": 1 / 3}


#: Presets of the rater-vote metrics and ValUES, pinned in tests/test_presets.py.
RATER_PRESETS = {"qubiq", "ssn", "values"}


def test_presets_exist_and_name_themselves():
    assert set(am.PRESETS) == set(PRESET_GED) | RATER_PRESETS
    for name, conv in am.PRESETS.items():
        assert conv.name == name and conv.source, name
        assert am.get_convention(name) is conv
        assert am.get_convention(name.upper()) is conv


@pytest.mark.parametrize("name", sorted(PRESET_GED))
def test_preset_binary_ged_worked_example(name):
    conv = am.get_convention(name)
    assert GED_BY_EMPTY_PAIR[conv.empty_pair] == pytest.approx(PRESET_GED[name], abs=TOL)
    got = am.evaluate(PREDS, GTS, metrics=["ged"], conventions=name)["ged"]
    assert got == pytest.approx(PRESET_GED[name], abs=TOL)
    assert am.ged(PREDS, GTS, empty_pair=conv.empty_pair) == pytest.approx(PRESET_GED[name], abs=TOL)


@pytest.mark.parametrize(
    ("name", "want"),
    [("cimd", 0.5), ("phiseg", 0.5), ("ccdm", 0.5), ("mose", 0.5), ("kohl", 0.5), ("mbh", 0.0)],
)
def test_preset_hm_iou_worked_example(name, want):
    # preds (∅), gts (∅, A): L = 2, the empty prediction is matched once with ∅ and once with A.
    got = am.evaluate(E[None], np.stack([E, A]), metrics=["hm_iou"], conventions=name)["hm_iou"]
    assert got == pytest.approx(want, abs=TOL)


@pytest.mark.parametrize(
    ("name", "want"),
    # Label maps y = (1, 1, 0, 0), s = (1, 0, 0, 0), classes 0..2, background out: class 1 IoU = 1/2,
    # class 2 absent from both. d(s, y) = 1 - mean over classes; d(s, s), d(y, y) count class 2 too.
    [("phiseg", 0.5), ("ccdm", 0.5), ("cimd", 0.5), ("mbh", 2 * 0.75 - 0.5 - 0.5), ("kohl", 1.0),
     ("mose", 1.0)],
)
def test_preset_multiclass_ged_worked_example(name, want):
    conv = am.get_convention(name)
    y, s = np.array([[[1, 1, 0, 0]]]), np.array([[[1, 0, 0, 0]]])
    got = am.multiclass_ged(
        s, y, classes=3, class_absent=conv.class_absent, include_background=conv.include_background
    )
    assert got == pytest.approx(want, abs=TOL)
    assert am.multiclass_ged(s, y, classes=3, conventions=name) == pytest.approx(want, abs=TOL)


def test_ci_form_and_threshold_of_custom_conventions():
    rng = np.random.default_rng(0)
    preds, gts = rng.random((3, 6, 6)), rng.random((3, 6, 6)) > 0.5
    ci = am.collective_insight(preds, gts)
    harmonic = am.Conventions(ci_form="harmonic")
    assert am.evaluate(preds, gts, metrics=["ci"], conventions=harmonic)["ci"] == ci.ci_harmonic
    assert am.evaluate(preds, gts, metrics=["ci"], conventions="cimd")["ci"] == ci.ci
    strict = am.get_convention("cimd").with_options(threshold=0.8)
    assert strict.name == "cimd+custom" and strict.threshold == 0.8
    want = am.evaluate(preds, gts, metrics=["ged"], threshold=0.8)["ged"]
    assert am.evaluate(preds, gts, metrics=["ged"], conventions=strict)["ged"] == want


def test_explicit_arguments_override_the_preset():
    got = am.evaluate(PREDS, GTS, metrics=["ged"], conventions="mbh", distance="dice")["ged"]
    want = ref.ged_terms_conv(PREDS, GTS, "v-statistic", "dice", "zero")[0]
    assert got == pytest.approx(want, abs=TOL)
    assert resolve_conventions("kohl", estimator="unbiased").estimator == "unbiased"
    assert resolve_conventions(None) is am.PRESETS["cimd"]


def test_bad_conventions_are_rejected():
    with pytest.raises(ValueError, match="unknown conventions 'nope'"):
        am.get_convention("nope")
    with pytest.raises(TypeError, match="preset name or a Conventions"):
        am.get_convention(3)
    with pytest.raises(ValueError, match="empty_pair must be one of"):
        am.Conventions(empty_pair="nan")
    with pytest.raises(ValueError, match="threshold must lie"):
        am.Conventions(threshold=1.5)
    with pytest.raises(TypeError, match="unknown convention option"):
        am.PRESETS["cimd"].with_options(colour="red")
    with pytest.raises(ValueError, match="unknown conventions"):
        am.evaluate(PREDS, GTS, conventions="phi-seg")


@given(
    mask_sets(),
    st.sampled_from(["v-statistic", "unbiased"]),
    st.sampled_from(["iou", "dice"]),
    st.sampled_from(["one", "zero", "skip"]),
)
def test_ged_terms_with_empty_pair_equal_reference(sets, estimator, distance, empty_pair):
    preds, gts = sets
    if estimator == "unbiased" and (len(preds) < 2 or len(gts) < 2):
        return
    got = am.ged_terms(preds, gts, estimator=estimator, distance=distance, empty_pair=empty_pair)
    want = ref.ged_terms_conv(preds, gts, estimator, distance, empty_pair)
    np.testing.assert_allclose(
        [got.ged, got.cross, got.sample_diversity, got.annotator_diversity], want, rtol=0, atol=TOL
    )
    kw = {"estimator": estimator, "distance": distance, "empty_pair": empty_pair}
    np.testing.assert_allclose(am.sample_diversity(preds, **kw), want[2], rtol=0, atol=TOL)
    np.testing.assert_allclose(am.annotator_diversity(gts, **kw), want[3], rtol=0, atol=TOL)


def test_all_pairs_skipped_is_nan_not_an_accident():
    empty = np.zeros((2, 3, 3), bool)
    terms = am.ged_terms(empty, empty, empty_pair="skip")
    assert np.isnan(terms.ged) and np.isnan(terms.cross)
    assert am.ged(empty, empty) == 0.0  # default: two empty masks agree
    assert am.ged(empty, empty, empty_pair="zero") == 0.0  # 2·1 - 1 - 1


def test_diversity_batch():
    rng = np.random.default_rng(1)
    masks = rng.random((3, 4, 5, 5)) > 0.5
    got = am.sample_diversity(masks, batch=True)
    assert got.shape == (3,)
    for i in range(3):
        assert got[i] == am.ged_terms(masks[i], masks[i][:1]).sample_diversity
