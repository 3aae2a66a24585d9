"""Smoke test of the benchmark harness (``python -m benchmarks --quick``): it runs, writes its Markdown
report, and every method it compares agrees with ambiseg-metrics. No timing assertions."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `benchmarks/` is a top-level folder of the repository, not installed
    sys.path.insert(0, str(ROOT))

import ambiseg_metrics as am  # noqa: E402
from benchmarks import __main__ as bench  # noqa: E402
from benchmarks.data import make_masks  # noqa: E402
from benchmarks.harness import Table  # noqa: E402
from benchmarks.peers import PEERS, peer_batch  # noqa: E402
from benchmarks.reference import research_batch  # noqa: E402


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "RESULTS.md"
    result = bench.run(["--quick", "--out", str(out), "--skip-peers", "monai,torchmetrics,medpy",
                        "--budget", "0.05", "--repeats", "1", "--no-startup"])
    return result, out


def test_quick_run_covers_every_workload_and_writes_the_report(quick_run):
    result, out = quick_run
    titles = [t.title for t in result["tables"]]
    assert [t.split(":")[0] for t in titles] == ["Workload 1", "Workload 2", "Workload 3", "Workload 4a",
                                                 "Workload 4b"]
    text = out.read_text()
    for needle in ["# Benchmark results", "## Machine", "## Targets", "Workload 1: LIDC scale",
                   "memory-bandwidth bound", "research-code numpy loops"]:
        assert needle in text
    assert len(result["targets"]) == 5


def test_every_compared_method_agrees_with_ours(quick_run):
    result, _ = quick_run
    compared = 0
    for table in result["tables"]:
        if not isinstance(table, Table):
            continue
        for row in table.rows:
            assert row.seconds > 0, row.method
            if row.diff is not None:
                assert row.n_metrics > 0
                assert row.diff <= 1e-12, (table.title, row.method, row.diff)
                compared += 1
    assert compared >= 6  # ours + the reference in each of the three comparison workloads


def test_reference_matches_the_library_on_lidc_like_masks():
    data = make_masks(6, 5, 4, (24, 24), seed=7, radius=(2, 6))
    ours = am.evaluate(data.preds, data.gts, batch=True)
    ref = research_batch(data.preds, data.gts)
    for name, values in ref.items():
        np.testing.assert_allclose(values, ours[name], rtol=0, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("peer", PEERS, ids=[p.module for p in PEERS])
def test_peer_adapter_agrees_with_ours(peer):
    pytest.importorskip(peer.module, reason=f"{peer.module} is optional (benchmark environment only)")
    data = make_masks(3, 4, 3, (20, 20), seed=8, radius=(2, 5), p_empty_gt=0.5, p_empty_pred=0.5)
    ours = am.evaluate(data.preds, data.gts, batch=True)
    got = peer_batch(peer.make(), data.preds, data.gts)
    for name, values in got.items():
        np.testing.assert_allclose(values, ours[name], rtol=0, atol=1e-6, err_msg=name)


def test_unknown_workload_is_rejected():
    with pytest.raises(SystemExit):
        bench.run(["--workloads", "1,9", "--out", ""])


def _force(monkeypatch, kernels, serial: bool) -> None:
    from ambiseg_metrics.core import counts

    big = 1 << 62
    monkeypatch.setattr(counts, "_NUMPY_COUNT_BYTES", 0)  # the compiled kernels, also for small inputs
    monkeypatch.setattr(kernels, "_SERIAL_PACK_BYTES", big if serial else 0)
    monkeypatch.setattr(kernels, "_SERIAL_GRAM_PAIRS", big if serial else 0)


def test_serial_and_parallel_kernel_paths_agree(monkeypatch):
    """The benchmark sizes use the threaded kernels, small inputs the serial ones: same counts, for the
    fused pass (contiguous batches, incl. a volume split into word chunks) and the separate pack + Gram
    path (non-contiguous input)."""
    from ambiseg_metrics.core import _kernels

    rng = np.random.default_rng(5)
    volume = rng.random((1, 3, 8, 200, 200)) < 0.2  # 5,000 words per mask: split into chunks
    cases = [(rng.random((3, 6, 70, 33)) < 0.3, rng.random((3, 2, 70, 33)) < 0.3),
             (rng.random((1, 4, 9, 40, 130)).astype(np.float32), rng.random((1, 3, 9, 40, 130)) < 0.2),
             (volume, volume[:, ::-1]),
             (rng.random((2, 5, 60, 70)).transpose(0, 1, 3, 2), rng.random((2, 3, 70, 60)) < 0.4)]
    for preds, gts in cases:
        _force(monkeypatch, _kernels, serial=False)
        threaded = am.pair_counts(preds, gts, batch=True).blocks[0]
        _force(monkeypatch, _kernels, serial=True)
        serial = am.pair_counts(preds, gts, batch=True).blocks[0]
        assert np.array_equal(threaded.inter, serial.inter)
        assert np.array_equal(threaded.union, serial.union)
        dense_p = np.asarray(preds > 0.5 if preds.dtype.kind == "f" else preds).reshape(*preds.shape[:2], -1)
        dense_g = np.asarray(gts).reshape(*gts.shape[:2], -1)
        k = np.concatenate([dense_p, dense_g], axis=1).astype(np.int64)
        assert np.array_equal(serial.inter, k @ k.transpose(0, 2, 1))


@pytest.mark.parametrize("serial", [False, True])
def test_first_invalid_value_is_reported_across_word_chunks(monkeypatch, serial):
    from ambiseg_metrics.core import _kernels

    _force(monkeypatch, _kernels, serial)
    probs = np.full((2, 8, 200, 200), 0.25, dtype=np.float32)  # 5,000 words per mask
    probs[1, 7, 150, 3] = np.nan       # pixel 7*40000 + 150*200 + 3 = 310003, in the last chunk
    probs[1, 2, 10, 0] = 1.5           # pixel 82000, earlier: this one must be named
    with pytest.raises(ValueError, match=r"preds contains 1\.5 \(mask 1, pixel 82000\)"):
        am.pair_counts(probs, probs[:1] > 0)


def test_comparison_workloads_report_both_bounds_and_the_load(quick_run):
    """W1–W3 give the memory-bandwidth bound and the popcount bound (measured on this CPU) as rows, and a
    note with this run's ratios and load average."""
    result, _ = quick_run
    tables = [t for t in result["tables"] if isinstance(t, Table)]
    assert len(tables) == 3
    for table in tables:
        methods = [r.method for r in table.rows]
        assert any(m.startswith("memory-bandwidth bound") for m in methods)
        assert any(m.startswith("popcount bound") for m in methods)
        assert any(n.startswith("ratios of this run (load average") for n in table.notes)
    for key in ("1", "2", "3"):
        assert result["figures"][key]["popcount_bound_s"] > 0


def test_results_file_is_written_only_when_asked(monkeypatch, tmp_path):
    """Issue 13: ``python -m benchmarks`` must not rewrite the tracked RESULTS.md unless given --write."""
    monkeypatch.setattr(bench, "DEFAULT_OUT", tmp_path / "RESULTS.md")
    assert bench._parse([]).out is None
    assert bench._parse(["--write"]).out == str(tmp_path / "RESULTS.md")
    assert bench._parse(["--out", "x.md"]).out == "x.md"


def test_signal_stops_runs_and_summarises(capsys):
    """``python -m benchmarks.signal_stops`` on a tiny tree: one real SIGTERM, a row and a summary line."""
    pytest.importorskip("distributed", reason="the runs use --scheduler local:2")
    from benchmarks import signal_stops

    assert signal_stops._delays("0.3:0.6:0.15") == [0.3, 0.45, 0.6]
    assert signal_stops.main(["--cases", "20", "--delays", "0.5:0.5:0.1", "--signals", "SIGTERM", "--to",
                              "pid", "--start-method", "fork"]) == 0
    out = capsys.readouterr().out
    assert "SIGTERM to pid at 0.50 s: exit " in out and "| SIGTERM | pid | 1 |" in out
