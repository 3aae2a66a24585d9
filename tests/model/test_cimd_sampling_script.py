"""``benchmarks/cimd_sampling.py --variants`` runs, and every variant samples with the same network.

The per-variant table of ``docs/cimd_sampling.md`` was made by this path; it once broke on a removed config
key without any test noticing. The FLOP counts back the page's reading of that table: every variant runs the
same denoiser per step, ``cimd-latent`` adds only its prior encoder and a linear layer.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="the sampling script needs torch (pip install -e '.[model]')")

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `benchmarks/` is a top-level folder of the repository, not installed
    sys.path.insert(0, str(ROOT))

from benchmarks import cimd_sampling  # noqa: E402


def test_variant_costs_run_and_count_the_same_denoiser() -> None:
    torch.set_num_threads(1)
    rows = cimd_sampling.variant_costs("cpu-small", images=1, n=2, steps=1, size=16, repeats=1)
    by_name = {r["model"]: r for r in rows}
    assert set(by_name) == set(cimd_sampling.VARIANT_NAMES)
    for r in rows:
        assert r["s_per_sample_step"] > 0 and r["flops_per_sample_step"] > 0
    base = by_name["cond-ddpm"]["flops_per_sample_step"]
    # the encoders of cimd-official / cimd-paper are not run when sampling
    assert by_name["cimd-official"]["flops_per_sample_step"] == base
    assert by_name["cimd-paper"]["flops_per_sample_step"] == base
    # cimd-latent: the same denoiser plus its prior encoder and the z projection, a small addition
    assert base < by_name["cimd-latent"]["flops_per_sample_step"] < 1.1 * base
