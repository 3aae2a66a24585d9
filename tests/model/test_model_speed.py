"""``benchmarks/model_speed.py`` runs and its FLOP bound is consistent (a smoke test, not a timing test)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="the model benchmark needs torch (pip install -e '.[model]')")

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `benchmarks/` is a top-level folder of the repository, not installed
    sys.path.insert(0, str(ROOT))

from benchmarks import model_speed, torch_settings  # noqa: E402


@pytest.mark.parametrize("name", ["prob_unet", "cimd"])
def test_row_has_times_flops_and_bound(name):
    rates = {"1 thr": 1e11}
    row = model_speed.measure(name, "cpu-small", threads=[1], repeats=1, batch=2, images=1, n=2,
                              sampler_steps=1, rates=rates)
    assert row["train_batch"] == 2 and row["params"] > 0
    for what in ("train_step", "sample"):
        m = row[what]
        assert m["seconds"] > 0 and m["flops"] > 0
        assert m["bound_s"] == pytest.approx(m["flops"] / rates["1 thr"])
        assert m["setting"] in ("1 thr", "1 thr, channels_last") and m["precision"] == "fp32"
        assert set(m["every_setting_s"]) == {"1 thr", "1 thr, channels_last"}
        assert m["seconds"] == min(m["every_setting_s"].values())
        assert m["per_unit_s"] == pytest.approx(m["seconds"] / m["units"])
    # a training step (forward + backward of 2 images) costs more FLOPs than one sampling pass over 2 masks
    assert row["train_step"]["flops"] > row["sample"]["flops"] / max(1, row["sample"]["units"] // 2)
    assert "|" in model_speed._table([row])
    checks = row["checks"]
    assert checks["loss_finite"] and checks["sample_finite"] and checks["sample_shape"] == [1, 2, 64, 64]
    assert 0.0 <= checks["sample_min"] <= checks["sample_max"] <= 1.0


def test_settings_per_device():
    cpu = torch_settings.settings_for("cpu", [1, 2])
    assert {(s.threads, s.channels_last, s.precision) for s in cpu} == {
        (1, False, "fp32"), (1, True, "fp32"), (2, False, "fp32"), (2, True, "fp32")}
    gpu = torch_settings.settings_for("cuda", [1, 2])
    assert {(s.precision, s.channels_last) for s in gpu} == {
        (p, cl) for p in ("fp32", "tf32", "bf16") for cl in (False, True)}
    assert gpu[0].label("cuda") == "fp32" and gpu[1].label("cuda") == "fp32, channels_last"
    assert cpu[1].rate_key("cpu") == "1 thr" and gpu[-1].rate_key("cuda") == "bf16"


def test_cpu_refuses_gpu_precisions():
    with pytest.raises(ValueError, match="GPU only"), torch_settings.precision_mode("bf16", "cpu"):
        pass


def test_bad_device_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        model_speed.main(["--device", "meta"])
    assert exc.value.code == 2 and "--device" in capsys.readouterr().err


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_row():
    rates = {p: 1e14 for p in ("fp32", "tf32", "bf16")}
    row = model_speed.measure("prob_unet", "cpu-small", threads=[1], repeats=1, batch=2, images=1, n=2,
                              sampler_steps=1, rates=rates, device="cuda")
    assert row["checks"]["loss_finite"] and row["train_step"]["peak_memory_gib"] > 0


def test_count_only_counts_what_measure_counts():
    kw = {"batch": 2, "images": 1, "n": 2, "sampler_steps": 2}
    counted = model_speed.count_flops("cimd", "cpu-small", **kw)
    row = model_speed.measure("cimd", "cpu-small", threads=[1], repeats=1, rates={"1 thr": 1e11}, **kw)
    for what in ("train_step", "sample"):
        assert counted[what]["flops"] == row[what]["flops"] > 0
    assert counted["sample"]["units"] == row["sample"]["units"] == 1 * 2 * 2
