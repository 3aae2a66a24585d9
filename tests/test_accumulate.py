"""MetricAccumulator stores what evaluate() computes, batch by batch, and averages it."""

from __future__ import annotations

import numpy as np
import pytest

import ambiseg_metrics as am
from ambiseg_metrics.accumulate import summarise

TOL = 1e-12


def _batches(seed: int, n_batches: int = 3):
    rng = np.random.default_rng(seed)
    return [(rng.random((2, 4, 6, 6)), rng.random((2, 3, 6, 6)) > 0.5) for _ in range(n_batches)]


def test_accumulated_values_equal_one_evaluate_call():
    acc = am.MetricAccumulator(conventions="phiseg")
    batches = _batches(0)
    for p, g in batches:
        step = acc.update(p, g)
        assert all(v.shape == (2,) for v in step.values())
    result = acc.compute()
    p_all = np.concatenate([p for p, _ in batches])
    g_all = np.concatenate([g for _, g in batches])
    want = am.evaluate(p_all, g_all, batch=True, conventions="phiseg")
    assert result.n_images == 6 and set(result.per_image) == set(am.METRICS)
    for name, values in want.items():
        np.testing.assert_array_equal(result.per_image[name], values)
        assert abs(result.mean[name] - values.mean()) <= TOL
        assert result.n_undefined[name] == 0


def test_single_images_ragged_batches_and_reset():
    acc = am.MetricAccumulator(["ged", "hm_iou"], estimator="unbiased")
    rng = np.random.default_rng(1)
    acc.update(rng.random((3, 5, 5)) > 0.5, rng.random((2, 5, 5)) > 0.5, batch=False)
    acc.update([rng.random((2, 4, 4)) > 0.5, rng.random((5, 7, 3)) > 0.5],
               [rng.random((2, 4, 4)) > 0.5, rng.random((3, 7, 3)) > 0.5])
    assert acc.n_images == 3
    assert acc.compute().per_image["ged"].shape == (3,)
    acc.reset()
    assert acc.n_images == 0
    with pytest.raises(ValueError, match="before any update"):
        acc.compute()


def test_nan_values_are_counted_not_averaged():
    acc = am.MetricAccumulator(["ged"], conventions="kohl")
    empty = np.zeros((1, 2, 4, 4), bool)
    full = np.ones((1, 2, 4, 4), bool)
    acc.update(empty, empty)  # every pair skipped under "kohl": NaN
    acc.update(full, full)  # 0
    result = acc.compute()
    assert np.isnan(result.per_image["ged"][0]) and result.n_undefined["ged"] == 1
    assert result.mean["ged"] == 0.0
    only_nan = summarise({"ged": np.array([np.nan])})
    assert np.isnan(only_nan.mean["ged"]) and only_nan.n_undefined["ged"] == 1


def test_merge_and_errors():
    a, b = am.MetricAccumulator("ged,ci"), am.MetricAccumulator("ged,ci")
    (pa, ga), (pb, gb) = _batches(2, 2)
    a.update(pa, ga)
    b.update(pb, gb)
    merged = a.merge(b).compute().per_image["ged"]
    want = am.ged(np.concatenate([pa, pb]), np.concatenate([ga, gb]), batch=True)
    np.testing.assert_array_equal(merged, want)
    with pytest.raises(ValueError, match="different metrics"):
        a.merge(am.MetricAccumulator("ged"))
    with pytest.raises(TypeError, match="MetricAccumulator"):
        a.merge({"ged": []})
    with pytest.raises(ValueError, match="unknown metric"):
        am.MetricAccumulator(["gde"])
    assert "n_images=4" in repr(a)
