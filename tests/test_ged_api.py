"""The GED functions' contract beyond their numbers: the N >= 2 rule of the unbiased estimator, the
frozen result type, and the diversity functions counting against one mask per image only."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import ambiseg_metrics as am
from ambiseg_metrics.core.counts import pair_counts
from ambiseg_metrics.metrics import ged as ged_module

RNG = np.random.default_rng(7)
ONE = RNG.random((1, 6, 6)) > 0.5
TWO = RNG.random((2, 6, 6)) > 0.5


@pytest.mark.parametrize(
    "call",
    [
        lambda **kw: am.ged(ONE, TWO, **kw),
        lambda **kw: am.ged(TWO, ONE, **kw),
        lambda **kw: am.ged_terms(ONE, TWO, **kw),
        lambda **kw: am.ged_terms_from_counts(pair_counts(ONE, TWO), **kw),
        lambda **kw: am.sample_diversity(ONE, **kw),
        lambda **kw: am.annotator_diversity(ONE, **kw),
    ],
    ids=["ged-N1", "ged-M1", "ged_terms", "from_counts", "sample_diversity", "annotator_diversity"],
)
def test_unbiased_estimator_needs_two_masks_each_side(call):
    rule = r'estimator="unbiased" needs at least 2 predictions and 2 annotations'
    with pytest.raises(ValueError, match=rule):
        call(estimator="unbiased")
    value = call(estimator="v-statistic")  # self-pairs count: one mask is enough
    value = value.ged if isinstance(value, am.GEDTerms) else value
    assert np.isfinite(value)


def test_unbiased_rule_names_the_image_in_a_batch():
    preds = [TWO, ONE, TWO]
    with pytest.raises(ValueError, match=r"got N=1, M=2 \(image 1\)"):
        am.ged(preds, [TWO, TWO, TWO], batch=True, estimator="unbiased")
    with pytest.raises(ValueError, match=r"got N=1, M=1 \(image 1\)"):
        am.sample_diversity(preds, batch=True, estimator="unbiased")


def test_v_statistic_of_single_masks_is_twice_the_cross_distance():
    terms = am.ged_terms(ONE, ONE[:, ::-1])
    inter = np.logical_and(ONE, ONE[:, ::-1]).sum()
    union = np.logical_or(ONE, ONE[:, ::-1]).sum()
    assert terms.cross == pytest.approx(1 - inter / union)
    assert terms.sample_diversity == 0.0 and terms.annotator_diversity == 0.0
    assert terms.ged == pytest.approx(2 * terms.cross)


def test_ged_terms_is_frozen():
    terms = am.ged_terms(TWO, TWO)
    with pytest.raises(dataclasses.FrozenInstanceError):
        terms.ged = 0.0  # type: ignore[misc]


@pytest.mark.parametrize("as_list", [False, True])
@pytest.mark.parametrize("what", ["sample_diversity", "annotator_diversity"])
def test_diversity_counts_against_one_mask_per_image(monkeypatch, as_list, what):
    """The within-set term needs the Gram of the stack only: the other side is the first mask per image
    (not the whole stack again, which would count K² cross pairs for nothing)."""
    masks = RNG.random((3, 4, 5, 5)) > 0.5
    seen = []

    def spy(preds, gts, **kw):
        own, other = (preds, gts) if what == "sample_diversity" else (gts, preds)
        sizes = (lambda x: [np.shape(m)[0] for m in x]) if kw.get("batch") else (lambda x: np.shape(x)[0])
        seen.append((sizes(own), sizes(other)))  # the masks stay on their own side, in full
        return pair_counts(preds, gts, **kw)

    monkeypatch.setattr(ged_module, "pair_counts", spy)
    batch_in = list(masks) if as_list else masks
    got = getattr(am, what)(batch_in, batch=True)
    single = getattr(am, what)(masks[1])
    assert seen == [([4, 4, 4], [1, 1, 1]), (4, 1)]
    ref = [1 - np.mean([(np.logical_and(a, b).sum() / max(np.logical_or(a, b).sum(), 1))
                        if np.logical_or(a, b).any() else 1.0 for a in m for b in m]) for m in masks]
    np.testing.assert_allclose(got, ref)
    assert single == pytest.approx(ref[1])


@pytest.mark.parametrize(
    ("masks", "batch", "error", "message"),
    [
        (5, False, TypeError, r"preds must be an array of masks .* got int"),
        ([np.array(1), np.array(0)], True, ValueError, r"preds\[0\] must have shape \(N, H, W\)"),
        ({"a": 1}, True, TypeError, r"preds with batch=True must be an array of shape \(B, N, \.\.\.\)"),
        ({"a": 1}, False, ValueError, r"preds must have shape \(N, H, W\)"),
    ],
)
@pytest.mark.parametrize("what", ["sample_diversity", "annotator_diversity"])
def test_diversity_of_unsliceable_input_gets_the_input_rules_error(what, masks, batch, error, message):
    """Masks that cannot be sliced (a scalar, 0-d arrays, a mapping) reach the input rules, whose error
    names the argument, not a bare IndexError / TypeError / KeyError from slicing them."""
    if what == "annotator_diversity":  # the error names the argument the caller passed
        message = message.replace("preds", "gts").replace("(N,", "(M,").replace("(B, N,", "(B, M,")
    with pytest.raises(error, match=message):
        getattr(am, what)(masks, batch=batch)


@pytest.mark.parametrize("name", ["ged", "ged_terms", "ged_terms_from_counts", "sample_diversity",
                                  "annotator_diversity"])
def test_ged_options_are_keyword_only(name):
    import inspect

    params = list(inspect.signature(getattr(am, name)).parameters.values())
    data = [p for p in params if p.kind is p.POSITIONAL_OR_KEYWORD]
    assert [p.name for p in data] == {"ged_terms_from_counts": ["counts"], "sample_diversity": ["preds"],
                                      "annotator_diversity": ["gts"]}.get(name, ["preds", "gts"])
    assert all(p.kind is p.KEYWORD_ONLY for p in params[len(data):])


def test_unbiased_diversity_names_the_first_image_of_a_group():
    with pytest.raises(ValueError, match=r"\(image 0\)"):
        am.sample_diversity(np.stack([ONE, ONE, ONE]), batch=True, estimator="unbiased")
    with pytest.raises(ValueError, match=r"\(image 0\)"):
        am.annotator_diversity(np.stack([ONE, ONE, ONE]), batch=True, estimator="unbiased")
