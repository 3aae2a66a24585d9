"""The metrics on real rater masks: the 39 LIDC-IDRI nodules of the committed fixture (no torch, no network).

Real masks bring what random ones rarely do: tiny nodules (3 voxels), raters who did not mark a nodule (empty
masks under ``pad-empty``), near-identical masks, thin 3D boxes. Every metric of ``ambiseg_metrics.evaluate``
is compared with the per-pair numpy reference on sample sets built from the real masks (raters drawn with
replacement, shifted by a pixel or two, unions, intersections, empty masks), in 2D and 3D; and the identities
the rater-floor table relies on are checked on every nodule.

The fixture (``cimd_model/data/fixtures/lidc_raters_fixture.npz``) holds LIDC-IDRI annotations (CC BY 3.0,
The Cancer Imaging Archive; see CREDIT.md beside it); it is read here with numpy alone.
"""

from __future__ import annotations

from math import lcm
from pathlib import Path

import numpy as np
import pytest
import reference as ref
from hypothesis import given, settings
from hypothesis import strategies as st

import ambiseg_metrics as am

FIXTURE = Path(__file__).resolve().parents[1] / "cimd_model" / "data" / "fixtures" / "lidc_raters_fixture.npz"


def _load() -> list[np.ndarray]:
    """Every nodule's (M, ni, nj, nk) bool masks (the cache format of cimd_model.data.lidc_cache)."""
    with np.load(FIXTURE) as z:
        shapes, off, bits = z["shape"], z["bit_off"], z["bits"]
        return [
            np.unpackbits(bits[off[i] : off[i + 1]], count=int(np.prod(s))).astype(bool).reshape(tuple(s))
            for i, s in enumerate(shapes)
        ]


NODULES = [m for m in _load() if len(m) <= 4]  # the 6-annotation clustering artefact is not a nodule


def _gts(i: int, missing: str, dims: str) -> np.ndarray:
    m = NODULES[i]
    if missing == "pad-empty":
        m = np.concatenate([m, np.zeros((4 - len(m), *m.shape[1:]), bool)])
    if dims == "2d":
        k = int(np.argmax(m.any(axis=0).sum(axis=(0, 1))))
        return m[..., k]
    return np.moveaxis(m, 3, 1)  # (M, nk, ni, nj)


@st.composite
def real_case(draw, max_lcm: int = 6):
    i = draw(st.integers(0, len(NODULES) - 1))
    gts = _gts(i, draw(st.sampled_from(["pad-empty", "present-only"])), draw(st.sampled_from(["2d", "3d"])))
    m = len(gts)
    n = draw(st.sampled_from([k for k in range(1, 7) if lcm(k, m) <= max_lcm]))
    preds = []
    for _ in range(n):
        kind = draw(st.sampled_from(["rater", "shifted", "union", "intersection", "empty"]))
        r = gts[draw(st.integers(0, m - 1))]
        if kind == "rater":
            preds.append(r)
        elif kind == "shifted":
            shift = draw(st.tuples(st.integers(-2, 2), st.integers(-2, 2)))
            preds.append(np.roll(r, shift, axis=(-2, -1)))
        elif kind == "union":
            preds.append(gts.any(axis=0))
        elif kind == "intersection":
            preds.append(gts.all(axis=0))
        else:
            preds.append(np.zeros_like(r))
    return np.stack(preds), gts


@settings(max_examples=80, deadline=None)
@given(real_case(), st.sampled_from(["v-statistic", "unbiased"]), st.sampled_from(["iou", "dice"]))
def test_ged_terms_equal_the_reference_on_real_masks(case, estimator, distance):
    preds, gts = case
    n, m = len(preds), len(gts)
    if estimator == "unbiased" and (n < 2 or m < 2):
        return
    got = am.evaluate(
        preds,
        gts,
        estimator=estimator,
        distance=distance,
        metrics=["ged", "ged_cross", "ged_sample_diversity", "ged_annotator_diversity"],
    )
    want = ref.ged_terms(preds, gts, estimator=estimator, distance=distance)
    keys = ("ged", "ged_cross", "ged_sample_diversity", "ged_annotator_diversity")
    np.testing.assert_allclose([got[k] for k in keys], want, rtol=0, atol=1e-12)


@settings(max_examples=80, deadline=None)
@given(real_case())
def test_ci_family_and_hm_iou_equal_the_reference_on_real_masks(case):
    preds, gts = case
    np.testing.assert_allclose(
        am.hungarian_iou(preds, gts), ref.hungarian_iou(preds, gts), rtol=0, atol=1e-12
    )
    if len(preds) < 2 or len(gts) < 2:
        return  # the CI family needs pairs on both sides
    got = am.evaluate(preds, gts)
    np.testing.assert_allclose(got["hm_iou"], ref.hungarian_iou(preds, gts), rtol=0, atol=1e-12)
    paper, harmonic, s, d, a = ref.ci(preds, gts)
    np.testing.assert_allclose(
        [
            got["ci"],
            got["ci_harmonic"],
            got["combined_sensitivity"],
            got["max_dice_matching"],
            got["diversity_agreement"],
        ],
        [paper, harmonic, s, d, a],
        rtol=0,
        atol=1e-12,
    )


@pytest.mark.parametrize("missing", ["pad-empty", "present-only"])
@pytest.mark.parametrize("dims", ["2d", "3d"])
def test_rater_floor_identities_on_every_nodule(missing, dims):
    for i in range(len(NODULES)):
        gts = _gts(i, missing, dims)
        m = len(gts)
        if m < 2:
            continue
        div_v = am.ged_terms(gts, gts).annotator_diversity
        div_u = am.ged_terms(gts, gts, estimator="unbiased").annotator_diversity
        # the raters as samples: V-statistic GED 0; unbiased GED = 2 (M-1)/M D_u - 2 D_u = -(2/M) D_u
        assert abs(am.ged(gts, gts)) < 1e-12
        assert am.ged(gts, gts, estimator="unbiased") == pytest.approx(-2 / m * div_u, abs=1e-12)
        assert am.hungarian_iou(gts, gts) == pytest.approx(1.0, abs=1e-12)
        # one rater repeated, averaged over the raters: GED (V) = the all-pairs diversity
        singles = [am.ged(np.repeat(gts[r : r + 1], 3, axis=0), gts) for r in range(m)]
        assert np.mean(singles) == pytest.approx(div_v, abs=1e-12)
        # unbiased: 2 D_v - D_u = (M - 2)/M D_u (the repeated samples have no distinct-pair spread)
        singles_u = [
            am.ged(np.repeat(gts[r : r + 1], 3, axis=0), gts, estimator="unbiased") for r in range(m)
        ]
        assert np.mean(singles_u) == pytest.approx((m - 2) / m * div_u, abs=1e-12)
        # and the all-pairs diversity is (M - 1) / M of the distinct-pair one
        assert div_v == pytest.approx(div_u * (m - 1) / m, abs=1e-12)


def test_metrics_ignore_background_padding_and_order():
    rng = np.random.default_rng(0)
    for i in range(0, len(NODULES), 3):
        gts = _gts(i, "pad-empty", "3d")
        preds = np.roll(gts[rng.integers(0, 4, 5)], 1, axis=-1)
        base = am.evaluate(preds, gts)
        padded = am.evaluate(
            np.pad(preds, ((0, 0), (0, 1), (3, 0), (0, 2))), np.pad(gts, ((0, 0), (0, 1), (3, 0), (0, 2)))
        )
        shuffled = am.evaluate(preds[rng.permutation(5)], gts[rng.permutation(4)])
        for key, value in base.items():
            np.testing.assert_allclose(padded[key], value, rtol=0, atol=1e-12, err_msg=key)
            np.testing.assert_allclose(shuffled[key], value, rtol=0, atol=1e-12, err_msg=key)


def test_fixture_has_the_hard_cases():
    sizes = [int(m.sum(axis=(1, 2, 3)).min()) for m in NODULES]
    assert min(sizes) <= 3  # a 3-voxel rater mask
    assert {len(m) for m in NODULES} == {1, 2, 3, 4}
    assert any(m.shape[3] == 1 for m in NODULES)  # a one-slice nodule
    # a rater who does not mark the largest-union slice: an empty mask among present raters
    assert any((~_gts(i, "present-only", "2d").any(axis=(1, 2))).any() for i in range(len(NODULES)))
