"""The shared-draw bootstrap of several columns (summary.bootstrap_cis / nan_summaries) against the
plain one-column-at-a-time computation: the same bits, whatever the lengths, NaNs and options."""

from __future__ import annotations

import math

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
