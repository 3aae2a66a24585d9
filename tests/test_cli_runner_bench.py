"""Smoke test of ``python -m benchmarks.cli_runner`` (issue 20): a tiny tree, every way of running, the
CSVs byte-identical; and the tree it writes is what it says."""

from __future__ import annotations

import numpy as np
import pytest

bench = pytest.importorskip("benchmarks.cli_runner")


def test_tree_layout(tmp_path):
    preds, gts, files = bench.write_tree(tmp_path / "png", 3, n_pred=4, n_gt=2, size=16)
    assert files == 3 * (4 + 2)
    assert sorted(p.name for p in preds.iterdir()) == ["case_00000", "case_00001", "case_00002"]
    assert len(list((gts / "case_00001").iterdir())) == 2
    preds, gts, files = bench.write_tree(tmp_path / "npy", 2, n_pred=4, n_gt=2, size=16, fmt="npy")
    assert files == 4 and np.load(preds / "case_00001.npy").shape == (4, 16, 16)


def test_smoke_run_reports_identical_outputs():
    lines = bench.run(["--cases", "4", "--repeats", "1", "--formats", "png,npy", "--no-dask",
                       "--no-startup"])
    text = "\n".join(lines)
    assert text.count("byte-identical across ways of running: yes") == 2
    assert "decode only" in text and "jobs 2" in text and "jobs auto" in text
    assert "CPU us per PNG file: Pillow" in text and "fast 8-bit grey path" in text


def test_smoke_crossover_reports_each_format():
    lines = bench.run(["--crossover", "--sizes", "3", "--repeats", "1", "--formats", "png,npy"])
    text = "\n".join(lines)
    assert "crossover (png" in text and "crossover (npy" in text and "DIFFER" not in text
    assert len([line for line in lines if line.strip().startswith("3 ")]) == 2
