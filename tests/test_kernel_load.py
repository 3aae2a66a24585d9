"""The start-up rule (core/_kernel_load.py): mid-sized calls run in numpy while the kernels are not loaded,
until that numpy time reaches what loading them costs; the results are the same bits either way."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys

import numpy as np
import pytest

import ambiseg_metrics as am
from ambiseg_metrics.core import _kernel_load, _kernels, counts, pairwise
from ambiseg_metrics.metrics import matching


def _mid_sized(seed=0):
    """32 images, N=6, M=4, 96×96: 2.9 MB of masks (above numpy's 1 MB limit, far below the cold one),
    B·K² = 3200 similarity pairs, B·lcm(N, M)² = 4608 assignment cells (above 4096: compiled when warm)."""
    rng = np.random.default_rng(seed)
    preds = rng.random((32, 6, 96, 96)) < rng.random((32, 6, 1, 1))
    gts = rng.random((32, 4, 96, 96)) < rng.random((32, 4, 1, 1))
    preds[0, :2] = False  # empty masks and an empty pair too
    gts[0, 0] = False
    return preds, gts


@pytest.fixture
def kernels(monkeypatch):
    """Calls of the three compiled entry points of a mid-sized evaluate() (counts, similarity matrices,
    assignment), by name."""
    monkeypatch.setattr(pairwise, "_KERNEL_PAIRS", 1 << 10)  # the 3200 pairs: compiled when warm
    calls: list[str] = []
    for name in ("fused_counts", "similarity_matrices", "assignment_kernel"):
        real = getattr(_kernels, name)

        def spy(*args, _real=real, _name=name):
            calls.append(_name)
            return _real(*args)

        monkeypatch.setattr(_kernels, name, spy)
    return calls


@pytest.fixture
def cold(monkeypatch):
    """This process as if it had not loaded the kernels, with no numpy time charged yet."""
    monkeypatch.setattr(_kernel_load, "KERNELS", "ambiseg_metrics.core._not_loaded_in_this_test")
    monkeypatch.setattr(_kernel_load, "LOAD_SECONDS", 0.4)
    monkeypatch.setattr(_kernel_load, "_spent", 0.0)


def test_warm_process_runs_the_kernels(kernels, monkeypatch):
    monkeypatch.setattr(_kernel_load, "LOAD_SECONDS", 0.4)
    assert _kernel_load.kernels_loaded()
    am.evaluate(*_mid_sized(), batch=True)
    assert sorted(set(kernels)) == ["assignment_kernel", "fused_counts", "similarity_matrices"]


def test_cold_process_runs_mid_sized_calls_in_numpy_with_the_same_bits(kernels, cold, monkeypatch):
    preds, gts = _mid_sized()
    got = am.evaluate(preds, gts, batch=True)
    assert kernels == []
    assert 0 < _kernel_load._spent < 0.4
    monkeypatch.setattr(_kernel_load, "KERNELS", _kernels.__name__)  # warm again
    want = am.evaluate(preds, gts, batch=True)
    assert sorted(set(kernels)) == ["assignment_kernel", "fused_counts", "similarity_matrices"]
    assert got.keys() == want.keys()
    for name in got:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)  # bit for bit


def test_the_kernels_are_loaded_once_numpy_has_taken_the_load_time(kernels, cold, monkeypatch):
    preds, gts = _mid_sized()
    monkeypatch.setattr(_kernel_load, "_spent", 0.399)
    am.evaluate(preds, gts, batch=True)  # still under: counted in numpy, and charged (then over)
    assert "fused_counts" not in kernels and _kernel_load._spent > 0.4
    kernels.clear()
    am.evaluate(preds, gts, batch=True)
    assert sorted(set(kernels)) == ["assignment_kernel", "fused_counts", "similarity_matrices"]


@pytest.mark.parametrize("site", ["counts", "pairs", "assignment"])
def test_a_call_above_its_cold_limit_loads_the_kernels_at_once(kernels, cold, monkeypatch, site):
    limit = {"counts": (counts, "_COLD_NUMPY_COUNT_BYTES", 32 * 10 * 96 * 96),  # the call's size
             "pairs": (pairwise, "_COLD_NUMPY_PAIRS", 32 * 10 * 10),
             "assignment": (matching, "_COLD_PYTHON_STEPS", 32 * 12**2 * 4)}[site]
    wanted = {"counts": "fused_counts", "pairs": "similarity_matrices", "assignment": "assignment_kernel"}
    for size in (limit[2] // 2, limit[2]):  # above the limit, and at it: not below
        monkeypatch.setattr(limit[0], limit[1], size)
        kernels.clear()
        am.evaluate(*_mid_sized(), batch=True)
        assert set(kernels) == {wanted[site]}
    monkeypatch.setattr(limit[0], limit[1], limit[2] + 1)
    kernels.clear()
    am.evaluate(*_mid_sized(), batch=True)
    assert kernels == []


def test_small_and_large_calls_ignore_the_rule(kernels, cold):
    am.evaluate(*(a[:2, :, :40, :40] for a in _mid_sized()), batch=True)  # small: numpy, not charged
    assert kernels == [] and _kernel_load._spent == 0.0
    big = np.zeros((1, 2, 1, 1 << 22), dtype=bool)  # 2**22 pixels: not exact in float32 sums
    am.pair_counts(big, big, batch=True)
    assert kernels == ["fused_counts"]


def test_charged_adds_the_time_of_the_block_even_when_it_raises(monkeypatch, cold):
    ticks = iter([10.0, 10.25, 20.0, 20.5])
    monkeypatch.setattr(_kernel_load.time, "perf_counter", lambda: next(ticks))
    with _kernel_load.charged():
        pass
    with pytest.raises(ValueError), _kernel_load.charged():
        raise ValueError
    assert _kernel_load._spent == 0.75
    assert _kernel_load.numpy_while_unloaded(True) is False  # 0.75 >= 0.4
    monkeypatch.setattr(_kernel_load, "_spent", 0.3999)
    assert _kernel_load.numpy_while_unloaded(True) is True
    monkeypatch.setattr(_kernel_load, "_spent", 0.4)  # the rent has reached the price: buy
    assert _kernel_load.numpy_while_unloaded(True) is False
    assert _kernel_load.numpy_while_unloaded(False) is False


def test_a_fresh_process_answers_a_mid_sized_call_without_numba_then_loads_it():
    """The real thing: nothing patched. The first call imports no numba; the later calls load the kernels
    once numpy has taken the load time; every call gives the bits the kernels give here."""
    code = (
        "import json, sys, numpy as np, ambiseg_metrics as am\n"
        + inspect.getsource(_mid_sized)
        + "out = []\n"
        "for _ in range(40):\n"
        "    r = am.evaluate(*_mid_sized(), batch=True)\n"
        "    out.append(['numba' in sys.modules, {k: v.tolist() for k, v in r.items()}])\n"
        "print(json.dumps(out))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    runs = json.loads(proc.stdout)
    loaded = [has_numba for has_numba, _ in runs]
    assert loaded[0] is False
    assert loaded[-1] is True  # 40 calls of ~10-60 ms of numpy each: past 0.4 s
    assert loaded == sorted(loaded)  # once loaded, it stays
    want = {k: v.tolist() for k, v in am.evaluate(*_mid_sized(), batch=True).items()}  # the kernels here
    assert all(r == want for _, r in runs)


def test_a_batched_file_run_loads_the_kernels_at_once(monkeypatch):
    """``ambiseg-eval`` knows its run is long when it batches (200 cases or more): it loads the kernels
    before its first batched call and in each worker's warm-up, instead of renting numpy first."""
    from ambiseg_metrics.files import case_eval
    from ambiseg_metrics.files.cases import EvalOptions

    loads = []
    monkeypatch.setattr(case_eval, "load_kernels", lambda: loads.append(1))
    options = EvalOptions(metrics=("ged",)).checked()
    assert case_eval.evaluate_chunk([], options, None, batched=False) == [] and loads == []
    assert case_eval.evaluate_chunk([], options, None, batched=True) == [] and loads == [1]
    case_eval.warm_up(options, batched=False)
    assert loads == [1]
    case_eval.warm_up(options, batched=True)
    assert loads == [1, 1]


def test_load_kernels_imports_the_kernel_module(monkeypatch):
    imported = []
    monkeypatch.setattr(_kernel_load.importlib, "import_module", imported.append)
    _kernel_load.load_kernels()
    assert imported == [_kernel_load.KERNELS] == ["ambiseg_metrics.core._kernels"]


@pytest.mark.parametrize("n_images, side", [(60, 128), (3, 512)])
def test_numpy_counts_convert_one_block_of_images_at_a_time(cold, n_images, side):
    """The numpy count holds a 0/1 copy of the masks and converts them to float32 about
    ``_NUMPY_BLOCK_BYTES`` at a time (or one image, if that is more), not all at once (4× the masks'
    size). Measured with 60 images of 128²: 26 MB at the peak with 8 MB blocks, 45 MB with 16 MB blocks,
    56 MB in one block, 13 MB image by image. 3 images of 512² (10.5 MB each as float32) go one by one."""
    import tracemalloc

    rng = np.random.default_rng(5)
    preds = rng.random((n_images, 6, side, side), dtype=np.float32) < 0.4
    gts = rng.random((n_images, 4, side, side), dtype=np.float32) < 0.4
    want = [am.pair_counts(preds[i : i + 1], gts[i : i + 1], batch=True).blocks[0].inter for i in (0, 2)]
    tracemalloc.start()
    try:
        got = am.pair_counts(preds, gts, batch=True)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    block = max(8 << 20, 4 * 10 * side * side)  # the documented 8 MB block (not the constant), or one image
    assert peak < preds.nbytes + gts.nbytes + 2.5 * block, peak / 2**20  # the block and the product's copy
    np.testing.assert_array_equal(got.blocks[0].inter[[0, 2]], np.concatenate(want))


def test_numpy_counts_only_where_float32_sums_are_exact(cold):
    """2**24 + 1 pixels in one mask: a float32 sum would round the count to 2**24; such a group is counted
    by the kernels even while they are not loaded."""
    P = (1 << 24) + 1
    x = np.ones((1, 1, 1, P), dtype=bool)  # 2 masks, 33.6 MB: under the cold limit by size alone
    got = am.pair_counts(x, x, batch=True)
    assert int(got.blocks[0].inter[0, 0, 1]) == P
