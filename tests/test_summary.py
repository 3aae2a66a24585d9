"""The shared-draw bootstrap of several columns (summary.bootstrap_cis / nan_summaries) against the
plain one-column-at-a-time computation: the same bits, whatever the lengths, NaNs and options."""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ambiseg_metrics.summary import bootstrap_ci, bootstrap_cis, nan_summaries, nan_summary


def _plain_ci(x: np.ndarray, n_boot: int, confidence: float, seed: int) -> tuple[float, float]:
    """The documented stream, column by column: default_rng(seed), n_boot rows of indices at once."""
    if x.size == 0:
        return math.nan, math.nan
    idx = np.random.default_rng(seed).integers(0, x.size, size=(n_boot, x.size))
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(x[idx].mean(axis=1), [alpha, 1.0 - alpha])
    return float(low), float(high)


def _same(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return all((math.isnan(u) and math.isnan(v)) or u == v for u, v in zip(a, b, strict=True))


columns = st.lists(
    st.lists(st.one_of(st.floats(0, 1), st.just(math.nan)), min_size=0, max_size=30), min_size=1, max_size=6)


@given(columns, st.integers(1, 1200), st.sampled_from([0.5, 0.9, 0.95]), st.integers(0, 3))
def test_shared_draws_give_each_column_its_own_interval(cols, n_boot, confidence, seed):
    xs = [np.array(c, dtype=np.float64) for c in cols]
    defined = [x[~np.isnan(x)] for x in xs]
    got = bootstrap_cis(defined, n_boot=n_boot, confidence=confidence, seed=seed, chunk=500)
    assert len(got) == len(xs)
    for ok, ci in zip(defined, got, strict=True):
        assert _same(ci, _plain_ci(ok, n_boot, confidence, seed))
        assert _same(ci, bootstrap_ci(ok, n_boot=n_boot, confidence=confidence, seed=seed))
    summaries = nan_summaries(xs, n_boot=n_boot, confidence=confidence, seed=seed)
    for x, s in zip(xs, summaries, strict=True):
        alone = nan_summary(x, n_boot=n_boot, confidence=confidence, seed=seed)
        assert s.n == alone.n and s.n_undefined == alone.n_undefined
        for field in ("mean", "std", "median", "ci_low", "ci_high"):
            assert _same((getattr(s, field),), (getattr(alone, field),))


def test_columns_of_equal_length_share_draws_but_not_results():
    rng = np.random.default_rng(0)
    a, b = rng.random(50), rng.random(50)
    (ca, cb) = bootstrap_cis([a, b], n_boot=2000, seed=1)
    assert ca == _plain_ci(a, 2000, 0.95, 1) and cb == _plain_ci(b, 2000, 0.95, 1)
    assert ca != cb
    # a column's interval does not depend on its neighbours (nor on their lengths)
    assert bootstrap_cis([rng.random(7), a, rng.random(50)], n_boot=2000, seed=1)[1] == ca


def test_bad_columns_are_refused_by_name():
    with pytest.raises(ValueError, match="one-dimensional"):
        bootstrap_cis([np.ones(3), np.ones((2, 2))])
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap_cis([np.ones(3)], n_boot=0)
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_cis([np.ones(3)], confidence=1.0)
    assert bootstrap_cis([]) == []
    assert nan_summaries([]) == []


def test_defaults_are_pinned():
    """n_boot 10,000, 95%, seed 0 for the intervals; nan_summary(ies) compute no interval unless asked."""
    x = np.random.default_rng(3).random(31)
    expected = _plain_ci(x, 10_000, 0.95, 0)
    assert bootstrap_ci(x) == expected
    assert bootstrap_cis([x]) == [expected]
    assert bootstrap_cis([x], n_boot=300) == [_plain_ci(x, 300, 0.95, 0)]
    for s in (nan_summary(x), nan_summaries([x])[0]):
        assert math.isnan(s.ci_low) and math.isnan(s.ci_high)
    for s in (nan_summary(x, n_boot=300), nan_summaries([x], n_boot=300)[0]):
        assert (s.ci_low, s.ci_high) == _plain_ci(x, 300, 0.95, 0)


def test_options_are_keyword_only():
    x = np.ones(4)
    for call in (lambda: bootstrap_ci(x, 100), lambda: bootstrap_cis([x], 100),
                 lambda: nan_summary(x, 100), lambda: nan_summaries([x], 100)):
        with pytest.raises(TypeError):
            call()


@pytest.mark.parametrize("confidence", [0.0, -0.5, 1.0, 1.5, math.nan])
def test_confidence_outside_the_open_unit_interval_is_refused(confidence):
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_cis([np.ones(3)], confidence=confidence)


def test_std_needs_two_values_and_warns_of_nothing():
    """std is the sample standard deviation (ddof=1): NaN, without numpy's degrees-of-freedom warning, for
    fewer than 2 defined values; exact for 2."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for values in ([], [math.nan], [0.25], [0.25, math.nan]):
            s = nan_summary(values)
            assert math.isnan(s.std)
        s = nan_summary([0.25, math.nan, 0.75])
    assert s.n == 2 and s.std == np.std([0.25, 0.75], ddof=1) and math.isclose(s.std, 0.5 / math.sqrt(2))


def test_summaries_are_immutable():
    s = nan_summary([0.5, 1.0])
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.mean = 0.0  # type: ignore[misc]


def test_a_zero_dimensional_column_is_refused():
    with pytest.raises(ValueError, match="one-dimensional"):
        bootstrap_cis([np.float64(0.5)])
    with pytest.raises(ValueError, match="one-dimensional"):
        bootstrap_ci(np.array(0.5))
