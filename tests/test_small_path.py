"""Small inputs are counted by numpy (no compiled code to load); the counts, the error messages and
every metric equal those of the compiled kernels, and a first small call imports no numba."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import ambiseg_metrics as am
from ambiseg_metrics.core import _assign, counts


def _both(fn):
    """``fn()`` through the numpy path and through the compiled kernels: (result or error text) twice."""
    out = []
    for limit in (1 << 62, 0):
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(counts, "_NUMPY_COUNT_BYTES", limit)
            try:
                out.append(fn())
            except ValueError as exc:
                out.append(str(exc))
    return out


@st.composite
def inputs(draw):
    b = draw(st.integers(1, 3))
    n, m = draw(st.integers(1, 5)), draw(st.integers(1, 4))
    shape = draw(st.sampled_from([(1, 1), (3, 5), (7, 70), (2, 3, 11), (1, 130)]))
    seed = draw(st.integers(0, 2**32 - 1))
    dtype = draw(st.sampled_from(["bool", "uint8", "int16", "float32", "float64"]))
    layout = draw(st.sampled_from(["contiguous", "transposed", "list"]))
    bad = draw(st.booleans())
    rng = np.random.default_rng(seed)
    raw_p, raw_g = rng.random((b, n, *shape)), rng.random((b, m, *shape))
    if dtype == "bool":
        p, g = raw_p < 0.4, raw_g < 0.4
    elif dtype.startswith("float"):
        p, g = raw_p.astype(dtype), raw_g < 0.5
        if bad:  # a NaN and an out-of-range value somewhere: the first one must be named
            p.reshape(-1)[rng.integers(p.size)] = np.nan
            p.reshape(-1)[rng.integers(p.size)] = 1.5
    else:
        p, g = (raw_p * 3).astype(dtype), (raw_g * 2).astype(dtype)
    if layout == "transposed":
        p = np.swapaxes(p, -1, -2)
        g = np.swapaxes(g, -1, -2)
    elif layout == "list":
        p, g = list(p), list(g)
    return p, g


@given(inputs())
def test_numpy_counts_equal_the_kernels(case):
    preds, gts = case

    def run():
        c = am.pair_counts(preds, gts, batch=True)
        return [(blk.index.tolist(), blk.inter.tolist(), blk.union.tolist()) for blk in c.blocks]

    small, compiled = _both(run)
    assert small == compiled


@given(inputs())
def test_every_metric_equal_on_both_paths(case):
    preds, gts = case
    metrics = ["ged", "hm_iou", "max_dice_matching"]
    small, compiled = _both(lambda: am.evaluate(preds, gts, batch=True, metrics=metrics))
    if isinstance(small, str):
        assert small == compiled
    else:
        for name in small:
            np.testing.assert_array_equal(small[name], compiled[name])


@given(st.integers(1, 6), st.integers(1, 6), st.integers(1, 3), st.integers(0, 2**32 - 1))
def test_python_assignment_equals_the_compiled_one(n, m, b, seed):
    sim = np.random.default_rng(seed).random((b, n, m))
    sim[:, ::2] = np.round(sim[:, ::2], 1)  # ties
    np.testing.assert_array_equal(_assign.assignment_means(sim, compiled=False),
                                  _assign.assignment_means(sim, compiled=True))


def test_a_small_first_call_imports_no_numba():
    code = ("import sys, numpy as np, ambiseg_metrics as am\n"
            "rng = np.random.default_rng(0)\n"
            "am.evaluate(rng.random((2, 16, 64, 64)) > 0.5, rng.random((2, 4, 64, 64)) > 0.5, batch=True)\n"
            "print('numba' in sys.modules, 'scipy.optimize' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


@pytest.mark.parametrize("limit", [0, 1 << 62])
def test_large_pixel_counts_stay_exact(monkeypatch, limit):
    """float32 products are exact below 2**24: the numpy path is only taken far below that."""
    monkeypatch.setattr(counts, "_NUMPY_COUNT_BYTES", limit)
    masks = np.ones((2, 1, 700, 700), bool)  # 490,000 pixels each
    block = am.pair_counts(masks, masks).blocks[0]
    assert block.inter[0, 0, 1] == 490_000


@pytest.mark.parametrize("image", [1, 2, 3])
def test_a_bad_value_in_a_list_names_its_image_on_the_numpy_path(image):
    """Per-image arrays are separate chunks: the error names the image of the chunk it is in (the rows
    before it count, not only the chunk's own)."""
    rng = np.random.default_rng(image)
    preds = [rng.random((3, 8, 8)) for _ in range(4)]
    gts = [rng.random((2, 8, 8)) > 0.5 for _ in range(4)]
    preds[image][1, 2, 3] = np.nan
    with pytest.raises(ValueError, match=rf"preds contains NaN \(image {image}, mask 1, pixel 19\)"):
        am.pair_counts(preds, gts, batch=True)
