"""Hand-computed examples: tiny masks with the arithmetic written out."""

from __future__ import annotations

import numpy as np
import pytest

import ambiseg_metrics as am


def m(*rows: str) -> np.ndarray:
    """Mask from strings: '#' foreground, '.' background."""
    return np.array([[c == "#" for c in r] for r in rows])


# Four 1x4 masks used below: A = ##.., B = #..., C = .##., E = ....
A, B, C, E = m("##.."), m("#..."), m(".##."), m("....")


def test_ged_worked_example():
    # preds {A, B}, gts {A, C}; d = 1 - IoU
    # d(A,A)=0, d(A,C)=1-1/3=2/3, d(B,A)=1-1/2=1/2, d(B,C)=1-0=1  -> cross = (0+2/3+1/2+1)/4 = 13/24
    # V-stat: sample = 2*d(A,B)/4 = 2*(1/2)/4 = 1/4; annot = 2*d(A,C)/4 = 1/3
    # GED = 2*13/24 - 1/4 - 1/3 = 13/12 - 7/12 = 1/2
    t = am.ged_terms(np.stack([A, B]), np.stack([A, C]))
    assert t.cross == pytest.approx(13 / 24, abs=1e-15)
    assert t.sample_diversity == pytest.approx(1 / 4, abs=1e-15)
    assert t.annotator_diversity == pytest.approx(1 / 3, abs=1e-15)
    assert t.ged == pytest.approx(1 / 2, abs=1e-15)
    # unbiased: sample = d(A,B) = 1/2, annot = d(A,C) = 2/3 -> GED = 13/12 - 1/2 - 2/3 = -1/12
    u = am.ged_terms(np.stack([A, B]), np.stack([A, C]), estimator="unbiased")
    assert u.ged == pytest.approx(-1 / 12, abs=1e-15)
    # Dice distance: d(A,C)=1-2/4=1/2, d(B,A)=1-2/3=1/3, d(B,C)=1 -> cross=(0+1/2+1/3+1)/4=11/24
    # sample = 2*(1/3)/4 = 1/6, annot = 2*(1/2)/4 = 1/4 -> GED = 11/12 - 1/6 - 1/4 = 1/2
    assert am.ged(np.stack([A, B]), np.stack([A, C]), distance="dice") == pytest.approx(1 / 2, abs=1e-15)


def test_ged_empty_masks():
    # all empty on both sides: every distance is d(∅,∅) = 0
    assert am.ged(np.stack([E, E]), np.stack([E])) == 0.0
    # preds empty, gts = {A}: cross = 1, sample = 0, annot = 0 -> 2
    assert am.ged(np.stack([E]), np.stack([A])) == 2.0


def test_combined_sensitivity_worked_example():
    # union of gts {B, C} = ###. (3 px); union of preds {B} = #... -> TP=1, FN=2 -> 1/3
    assert am.combined_sensitivity(np.stack([B]), np.stack([B, C])) == pytest.approx(1 / 3, abs=1e-15)
    # empty annotations: vacuous sensitivity = 1, whatever the predictions
    assert am.combined_sensitivity(np.stack([A]), np.stack([E, E])) == 1.0
    assert am.combined_sensitivity(np.stack([E]), np.stack([E])) == 1.0
    # empty predictions, non-empty annotations: 0
    assert am.combined_sensitivity(np.stack([E]), np.stack([A])) == 0.0


def test_max_dice_matching_worked_example():
    # gts {A, C}, preds {B, C}: best for A is Dice(B,A)=2/3 (Dice(C,A)=1/2); best for C is 1
    assert am.max_dice_matching(np.stack([B, C]), np.stack([A, C])) == pytest.approx(5 / 6, abs=1e-15)
    # an empty annotation is matched perfectly only by an empty prediction
    assert am.max_dice_matching(np.stack([A]), np.stack([E])) == 0.0
    assert am.max_dice_matching(np.stack([A, E]), np.stack([E])) == 1.0


def test_diversity_agreement_worked_example():
    # gts {A, C}: V = 1 - Dice(A,C) = 1/2 (only pair: max = min = 1/2)
    # preds {A, B, C}: V(A,B)=1/3, V(A,C)=1/2, V(B,C)=1 -> max 1, min 1/3
    # dVmax = |1/2 - 1| = 1/2, dVmin = |1/2 - 1/3| = 1/6 -> D_a = 1 - (1/2 + 1/6)/2 = 2/3
    assert am.diversity_agreement(np.stack([A, B, C]), np.stack([A, C])) == pytest.approx(2 / 3, abs=1e-15)
    # pixel variance of A - C = [1, 0, -1, 0]: mean 0, var 1/2; of A - B = [0,1,0,0]: 3/16; B - C: [1,-1,-1,0]
    # mean -1/4, E[x^2] = 3/4 -> var = 3/4 - 1/16 = 11/16
    # gts {A,C}: {1/2}; preds {A,B,C}: {3/16, 1/2, 11/16} -> dVmax = 3/16, dVmin = 5/16 -> D_a = 1 - 1/4
    assert am.diversity_agreement(np.stack([A, B, C]), np.stack([A, C]), variance="pixel") == pytest.approx(
        3 / 4, abs=1e-15
    )


def test_ci_worked_example():
    # preds {B, C}, gts {A, C}: S_c: union gts = ###., union preds = ###. -> 1
    # D_max = 5/6 (above). D_a: V_gts = {1/2}, V_preds = {1 - Dice(B,C)} = {1} -> dV = 1/2, 1/2 -> D_a = 1/2
    # CI = 3 * 1 * 5/6 * 1/2 / (1 + 5/6 + 1/2) = (5/4) / (7/3) = 15/28
    # HM = 3 / (1 + 6/5 + 2) = 3 / (21/5) = 5/7
    r = am.collective_insight(np.stack([B, C]), np.stack([A, C]))
    assert r.combined_sensitivity == 1.0
    assert r.max_dice_matching == pytest.approx(5 / 6, abs=1e-15)
    assert r.diversity_agreement == pytest.approx(1 / 2, abs=1e-15)
    assert r.ci == pytest.approx(15 / 28, abs=1e-15)
    assert r.ci_harmonic == pytest.approx(5 / 7, abs=1e-15)
    assert am.ci_score(np.stack([B, C]), np.stack([A, C])) == r.ci


def test_3d_volume_worked_example():
    # 2x2x2 volumes: a = first slice full (4 voxels), b = one voxel of it
    a = np.zeros((2, 2, 2), bool)
    a[0] = True
    b = np.zeros((2, 2, 2), bool)
    b[0, 0, 0] = True
    # Dice(a, b) = 2/5, IoU = 1/4
    assert am.max_dice_matching(b[None], a[None]) == pytest.approx(2 / 5, abs=1e-15)
    assert am.ged(b[None], a[None]) == pytest.approx(2 * (1 - 1 / 4), abs=1e-15)


def test_batch_returns_array_single_returns_float():
    preds = np.stack([np.stack([A, B]), np.stack([C, E])])
    gts = np.stack([np.stack([A, C]), np.stack([A, C])])
    out = am.ged(preds, gts, batch=True)
    assert isinstance(out, np.ndarray) and out.shape == (2,)
    assert out[0] == am.ged(preds[0], gts[0])
    assert isinstance(am.ged(preds[0], gts[0]), float)
    ci = am.collective_insight(preds, gts, batch=True)
    assert ci.ci.shape == (2,)


def test_single_image_ci_fields_are_floats():
    preds, gts = np.stack([A, B]), np.stack([A, C])
    ci = am.collective_insight(preds, gts)
    for value in (ci.ci, ci.ci_harmonic, ci.combined_sensitivity, ci.max_dice_matching,
                  ci.diversity_agreement):
        assert type(value) is float
    assert all(type(v) is float for v in am.ci_from_components(0.5, 0.25, 1.0))
    assert am.ci_from_components(0.5, 0.25, 1.0) == pytest.approx((3 * 0.125 / 1.75, 3 / (2 + 4 + 1)))


def test_sensitivity_of_a_one_pixel_annotation():
    """S_c = |∪ preds ∩ ∪ gts| / |∪ gts| also when ∪ gts is one pixel: 0 if no prediction covers it."""
    gts = np.zeros((2, 3, 3), bool)
    gts[0, 1, 1] = True
    preds = np.zeros((2, 3, 3), bool)
    preds[0, 0, 0] = True
    assert am.combined_sensitivity(preds, gts) == 0.0
    preds[1, 1, 1] = True
    assert am.combined_sensitivity(preds, gts) == 1.0


def test_collective_insight_from_counts_options_are_keyword_only():
    counts = am.pair_counts(np.stack([A, B]), np.stack([A, C]))
    assert am.collective_insight_from_counts(counts, variance="pixel").ci >= 0
    with pytest.raises(TypeError):
        am.collective_insight_from_counts(counts, "pixel")


def test_collective_insight_result_is_frozen():
    import dataclasses

    ci = am.collective_insight(np.stack([A, B]), np.stack([A, C]))
    with pytest.raises(dataclasses.FrozenInstanceError):
        ci.ci = 0.0  # type: ignore[misc]
