"""Packing and counting kernels on edge layouts: word boundaries, non-contiguous input, split word axis."""

from __future__ import annotations

import numpy as np
import pytest
import reference as ref
from hypothesis import given
from hypothesis import strategies as st

import ambiseg_metrics as am


@pytest.fixture(autouse=True)
def _compiled_kernels_only(monkeypatch):
    """Small inputs are counted by numpy (``counts._NUMPY_COUNT_BYTES``); these tests are about the
    compiled kernels, so every input goes to them."""
    from ambiseg_metrics.core import counts

    monkeypatch.setattr(counts, "_NUMPY_COUNT_BYTES", 0)


@given(st.integers(1, 200), st.integers(1, 5), st.integers(1, 4), st.integers(0, 2**32 - 1))
def test_counts_across_word_boundaries(width, n, m, seed):
    rng = np.random.default_rng(seed)
    preds = rng.random((n, 1, width)) < 0.5
    gts = rng.random((m, 1, width)) < 0.5
    block = am.pair_counts(preds, gts).blocks[0]
    inter, union = ref.pair_counts(preds, gts)
    assert np.array_equal(block.inter[0], inter)
    assert np.array_equal(block.union[0], union)


def test_large_3d_volume_splits_the_word_axis_and_stays_exact():
    """One big volume (few images, many words) takes the chunked path of the Gram kernel."""
    rng = np.random.default_rng(1)
    shape = (24, 64, 65)  # 99,840 voxels -> 1,560 words per mask; 6 masks
    preds = rng.random((4, *shape)) < 0.3
    gts = rng.random((2, *shape)) < 0.3
    block = am.pair_counts(preds, gts).blocks[0]
    inter, union = ref.pair_counts(preds, gts)
    assert np.array_equal(block.inter[0], inter)
    assert np.array_equal(block.union[0], union)
    big = np.zeros((2, 40, 128, 128), bool)  # 10,240 words per mask: more than 4,096, so it is split
    big[0, 3, 5, 7] = True
    big[1, 39, 127, 127] = True
    c = am.pair_counts(big, big).blocks[0]
    assert np.array_equal(np.diagonal(c.inter[0]), [1, 1, 1, 1])
    assert c.inter[0, 0, 2] == 1 and c.inter[0, 0, 1] == 0


def test_non_contiguous_float_volume_is_packed_mask_by_mask():
    rng = np.random.default_rng(2)
    vol = rng.random((3, 9, 10, 11))
    view = vol.transpose(0, 3, 2, 1)  # not C-contiguous
    gts = rng.random((2, 11, 10, 9)) > 0.5
    got = am.evaluate(view, gts)
    want = am.evaluate(np.ascontiguousarray(view) > 0.5, gts)
    assert got == want
    assert abs(got["ged"] - ref.ged_terms(np.ascontiguousarray(view) > 0.5, gts)[0]) <= 1e-12


@pytest.mark.parametrize("dtype", [np.bool_, np.uint8, np.int8, np.uint16, np.int32, np.int64, np.float32,
                                   np.float64])
def test_every_kernel_dtype(dtype):
    rng = np.random.default_rng(3)
    masks = rng.random((3, 5, 77)) < 0.4
    as_dtype = masks.astype(dtype)
    assert am.evaluate(as_dtype, as_dtype) == am.evaluate(masks, masks)


def test_concurrent_threads_are_safe_and_exact():
    """Kernels entered from several Python threads at once (a Dask worker, a user's thread pool) stay
    exact and do not abort the process (numba's workqueue layer would, had a parallel kernel been used)."""
    import subprocess
    import sys

    code = """
import numpy as np
from concurrent.futures import ThreadPoolExecutor
import numba, ambiseg_metrics as am
rng = np.random.default_rng(0)
# inputs of > 1 MB per call, so the parallel kernels run
cases = [(rng.random((8, 16, 96, 96)) > 0.5, rng.random((8, 4, 96, 96)) > 0.5) for _ in range(8)]
want = [am.evaluate(p, g, batch=True, metrics=["ged", "ci"]) for p, g in cases]
with ThreadPoolExecutor(4) as pool:
    for _ in range(3):
        got = list(pool.map(lambda c: am.evaluate(c[0], c[1], batch=True, metrics=["ged", "ci"]), cases))
        assert all(np.array_equal(a[k], b[k]) for a, b in zip(got, want) for k in a)
try:
    print(numba.threading_layer())
except ValueError:  # the kernels run on their own thread pool: numba's thread team never starts
    print("not-started")
"""
    import os

    env = {**os.environ, "NUMBA_THREADING_LAYER": "workqueue", "NUMBA_NUM_THREADS": "2"}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split()[-1] in ("workqueue", "not-started")
