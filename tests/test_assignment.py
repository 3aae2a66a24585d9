"""The batched assignment kernel behind HM-IoU equals scipy's ``linear_sum_assignment`` on the
lcm-duplicated matrix, image by image, for any N and M (ties, zeros, one row or column included)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment

from ambiseg_metrics.core._kernels import assignment_means

TOL = 1e-12


def scipy_value(sim: np.ndarray) -> float:
    n, m = sim.shape
    size = math.lcm(n, m)
    big = np.repeat(np.repeat(sim, size // n, axis=0), size // m, axis=1)
    rows, cols = linear_sum_assignment(big, maximize=True)
    return float(big[rows, cols].mean())


@st.composite
def sim_batches(draw):
    n = draw(st.integers(1, 12))
    m = draw(st.integers(1, 12))
    b = draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    kind = draw(st.sampled_from(["uniform", "ties", "iou-like"]))
    if kind == "uniform":
        sim = rng.random((b, n, m))
    elif kind == "ties":  # many equal values: several optimal assignments
        sim = rng.integers(0, 3, (b, n, m)) / 2.0
    else:  # ratios of small integers, as IoU of small masks, with exact 0 and 1
        inter = rng.integers(0, 5, (b, n, m))
        sim = inter / (inter + rng.integers(0, 4, (b, n, m))).clip(1)
    return sim


@settings(max_examples=300, deadline=None)
@given(sim_batches())
def test_assignment_means_equals_scipy(sim):
    got = assignment_means(sim)
    assert got.shape == (sim.shape[0],)
    for b in range(sim.shape[0]):
        assert abs(got[b] - scipy_value(sim[b])) <= TOL


@pytest.mark.parametrize(("n", "m"), [(16, 4), (4, 16), (100, 4), (6, 4), (7, 5), (1, 9), (9, 1), (20, 20)])
def test_assignment_means_on_the_benchmark_shapes(n, m):
    rng = np.random.default_rng(n * 100 + m)
    sim = rng.random((25, n, m))
    sim[::3] = np.round(sim[::3], 1)  # ties
    want = np.array([scipy_value(s) for s in sim])
    np.testing.assert_allclose(assignment_means(sim), want, rtol=0, atol=TOL)


def test_assignment_means_can_fail():
    """A greedy matching (each annotation takes its best free prediction) is not optimal here; the kernel
    must find the better crossing assignment, so a non-optimal kernel fails this test."""
    sim = np.array([[[0.9, 0.8], [0.85, 0.0]]])  # greedy: 0.9 + 0.0; optimal: 0.8 + 0.85
    assert assignment_means(sim)[0] == pytest.approx((0.8 + 0.85) / 2, abs=TOL)
    assert assignment_means(np.zeros((0, 3, 2))).shape == (0,)
