"""``benchmarks/cimd_ablation.py`` end to end on a few steps: it trains, samples, scores and summarises.

The script is how ``docs/cimd_ablation.md`` was made; this smoke test keeps it runnable against the current
configs (it once broke on a removed config key without any test noticing).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="the ablation script needs torch (pip install -e '.[model]')")

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `benchmarks/` is a top-level folder of the repository, not installed
    sys.path.insert(0, str(ROOT))

from benchmarks import cimd_ablation  # noqa: E402

TINY = ["--set", "base_channels=4", "--set", "channel_mult=[1,2]", "--set", "encoder_channels=4",
        "--set", "encoder_mults=[1,2]", "--set", "attention_resolutions=[]"]


@pytest.mark.parametrize("data, extra, has_truth", [
    ("ambiblobs-ct", [], True),
    ("lidc-raters-sim:fixture", ["--data-arg", "spacing=4.0"], False),
])
def test_ablation_script_runs_and_summarises(tmp_path, capsys, data, extra, has_truth):
    out = tmp_path / "r.json"
    argv = ["--variants", "cond-ddpm,cimd-latent", "--seeds", "0", "--steps", "2", "--data", data, "--size",
            "16", "--test-images", "2", "--n", "2", "--sampler", "ddim", "--eta", "1.0", "--sampling-steps",
            "2", "--diag-pairs", "4", "--out", str(tmp_path / "runs"), "--json", str(out), *TINY, *extra]
    assert cimd_ablation.main(argv) == 0
    results = json.loads(out.read_text())["results"]
    assert [r["model"] for r in results] == ["cond-ddpm", "cimd-latent"]
    for r in results:
        assert ("true_ged" in r["per_image"]) == has_truth
        assert all(len(v) == 2 for v in r["per_image"].values())
    text = capsys.readouterr().out
    assert "Difference to cond-ddpm" in text and ("true_ged" in text) == has_truth
    assert cimd_ablation.main(["--summarise", str(out)]) == 0


def test_a_checkpoint_of_another_data_set_is_not_reused(tmp_path, capsys):
    """The same --out for a second data set: the first one's checkpoints (same variant and seed, enough
    steps) must not be sampled as if trained on the second (they were, silently)."""
    base = ["--variants", "cond-ddpm", "--seeds", "0", "--steps", "2", "--size", "16", "--test-images", "2",
            "--n", "2", "--sampler", "ddim", "--eta", "1.0", "--sampling-steps", "2", "--diag-pairs", "4",
            "--out", str(tmp_path / "runs"), *TINY]
    assert cimd_ablation.main([*base, "--data", "ambiblobs-ct"]) == 0
    with pytest.raises(ValueError, match="ambiblobs-ct"):
        cimd_ablation.main([*base, "--data", "lidc-raters-sim:fixture", "--data-arg", "spacing=4.0"])
    capsys.readouterr()
    assert cimd_ablation.main([*base, "--data", "ambiblobs-ct"]) == 0  # the same run: reused
    assert "train None s" in capsys.readouterr().err
