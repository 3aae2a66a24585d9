"""``benchmarks/model_speed.py`` runs and its FLOP bound is consistent (a smoke test, not a timing test)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="the model benchmark needs torch (pip install -e '.[model]')")

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `benchmarks/` is a top-level folder of the repository, not installed
    sys.path.insert(0, str(ROOT))

from benchmarks import model_speed  # noqa: E402


@pytest.mark.parametrize("name", ["prob_unet", "cimd"])
def test_row_has_times_flops_and_bound(name):
    rates = {1: 1e11}
    row = model_speed.measure(name, "cpu-small", threads=[1], repeats=1, batch=2, images=1, n=2,
                              sampler_steps=1, rates=rates)
    assert row["train_batch"] == 2 and row["params"] > 0
    for what in ("train_step", "sample"):
        m = row[what]
        assert m["seconds"] > 0 and m["flops"] > 0
        assert m["bound_s"] == pytest.approx(m["flops"] / rates[1])
        assert m["per_unit_s"] == pytest.approx(m["seconds"] / m["units"])
    # a training step (forward + backward of 2 images) costs more FLOPs than one sampling pass over 2 masks
    assert row["train_step"]["flops"] > row["sample"]["flops"] / max(1, row["sample"]["units"] // 2)
    assert "|" in model_speed._table([row])
