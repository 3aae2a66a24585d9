"""Shared hypothesis strategies and settings for the metric tests."""

from __future__ import annotations

import os
import sys

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

sys.path.insert(0, os.path.dirname(__file__))  # `import reference` from any test

settings.register_profile(
    "ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "thorough", max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@st.composite
def spatial_shapes(draw, max_side: int = 9) -> tuple[int, ...]:
    """2D or 3D shapes, including single pixels and sizes that are not multiples of 64."""
    ndim = draw(st.sampled_from([2, 3]))
    side = max_side if ndim == 2 else 5
    return tuple(draw(st.integers(1, side)) for _ in range(ndim))


@st.composite
def mask_stack(draw, count: int, shape: tuple[int, ...]) -> np.ndarray:
    """``count`` masks of ``shape``, each drawn as random, empty, full or a single pixel."""
    masks = []
    for _ in range(count):
        kind = draw(st.sampled_from(["random", "random", "random", "empty", "full", "pixel"]))
        if kind == "random":
            m = draw(hnp.arrays(np.bool_, shape))
        elif kind == "empty":
            m = np.zeros(shape, bool)
        elif kind == "full":
            m = np.ones(shape, bool)
        else:
            m = np.zeros(shape, bool)
            m[tuple(draw(st.integers(0, s - 1)) for s in shape)] = True
        masks.append(m)
    return np.stack(masks)


@st.composite
def mask_sets(draw, min_n: int = 1, min_m: int = 1, max_n: int = 6, max_m: int = 5):
    """(preds, gts) of one image: bool arrays (N, *spatial) and (M, *spatial)."""
    shape = draw(spatial_shapes())
    n = draw(st.integers(min_n, max_n))
    m = draw(st.integers(min_m, max_m))
    return draw(mask_stack(n, shape)), draw(mask_stack(m, shape))
