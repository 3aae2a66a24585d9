"""``benchmarks/baseline_fidelity.py``: the paired comparison of two one-seed ``cimd-table1`` runs."""

from __future__ import annotations

import pytest

from benchmarks.baseline_fidelity import compare


def _write(path, rows):
    path.write_text(
        "data,model,case,ged,ci,ged_true\n" + "".join(f"d,m,{c},{g},{ci},{t}\n" for c, g, ci, t in rows)
    )


def test_paired_difference_and_interval(tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    _write(a, [("x", 0.2, 0.8, 0.1), ("y", 0.4, 0.6, 0.3)])
    _write(b, [("y", 0.5, 0.6, 0.3), ("x", 0.3, 0.8, 0.1)])  # same cases, other order
    lines = compare(str(a), str(b), n_boot=200)
    ged = next(line for line in lines if line.split()[1] == "ged")
    assert (
        "first 0.300" in ged and "second 0.400" in ged and "second-first +0.100 [95% +0.100, +0.100]" in ged
    )
    assert "second-first +0.000" in next(line for line in lines if line.split()[1] == "ci")


def test_mismatched_images_or_seeded_runs_are_errors(tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    _write(a, [("x", 0.2, 0.8, 0.1)])
    _write(b, [("z", 0.2, 0.8, 0.1)])
    with pytest.raises(ValueError, match="different test images"):
        compare(str(a), str(b))
    (tmp_path / "s.csv").write_text("data,model,seed,case,ged,ci,ged_true\nd,m,0,x,0.1,0.2,0.3\n")
    with pytest.raises(ValueError, match="several seeds"):
        compare(str(tmp_path / "s.csv"), str(a))
