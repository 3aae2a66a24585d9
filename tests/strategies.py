"""Hypothesis strategies for mask sets, shared by the metric tests (import as ``from strategies import ...``).

They live in a plain module, not in ``conftest.py``: ``tests/model/conftest.py`` would shadow a
``from conftest import ...`` when the whole suite runs.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp


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
