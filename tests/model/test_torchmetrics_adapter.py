"""The torchmetrics adapter stores what evaluate() computes and gathers per-image values across ranks."""

from __future__ import annotations

import os
import socket

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="cimd_model tests need torch (pip install .[model])")
pytest.importorskip(
    "torchmetrics", reason="the torchmetrics adapter needs torchmetrics (pip install torchmetrics)"
)
torch.set_num_threads(1)

import ambiseg_metrics as am  # noqa: E402
from ambiseg_metrics.torchmetrics_adapter import AmbiSegMetric  # noqa: E402


def _batches(seed: int, n_batches: int = 3):
    rng = np.random.default_rng(seed)
    return [(rng.random((2, 4, 6, 6)) > 0.5, rng.random((2, 3, 6, 6)) > 0.5) for _ in range(n_batches)]


def test_metric_equals_functional_core_on_tensors():
    metric = AmbiSegMetric(["ged", "hm_iou", "ci"], conventions="ccdm")
    batches = _batches(0)
    for p, g in batches:
        metric.update(torch.from_numpy(p), torch.from_numpy(g))
    per_image = metric.compute_per_image()
    means = metric.compute()
    p_all = np.concatenate([p for p, _ in batches])
    g_all = np.concatenate([g for _, g in batches])
    want = am.evaluate(p_all, g_all, batch=True, metrics=["ged", "hm_iou", "ci"], conventions="ccdm")
    for name, values in want.items():
        assert per_image[name].dtype == torch.float64
        np.testing.assert_allclose(per_image[name].numpy(), values, rtol=0, atol=1e-12)
        assert abs(float(means[name]) - values.mean()) <= 1e-12


def test_reset_and_empty_compute():
    metric = AmbiSegMetric("ged")
    with pytest.raises(ValueError, match="before any update"):
        metric.compute_per_image()
    metric.update(*_batches(1, 1)[0])
    assert metric.compute_per_image()["ged"].shape == (2,)
    metric.reset()
    with pytest.raises(ValueError, match="before any update"):
        metric.compute_per_image()


def test_unknown_metric_is_rejected():
    with pytest.raises(ValueError, match="unknown metric"):
        AmbiSegMetric(["ged", "nope"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, out_dir: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        metric = AmbiSegMetric(["ged", "hm_iou"])
        p, g = _batches(10 + rank, 1)[0]
        metric.update(p, g)
        per_image = metric.compute_per_image()
        np.save(os.path.join(out_dir, f"rank{rank}.npy"), per_image["ged"].numpy())
    finally:
        dist.destroy_process_group()


def test_ddp_gathers_every_rank(tmp_path):
    """Two gloo ranks on the CPU: each rank's compute() sees the images of both ranks."""
    import torch.multiprocessing as mp

    if not torch.distributed.is_available():
        pytest.skip("torch.distributed is not available in this torch build")
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    got = [np.load(tmp_path / f"rank{r}.npy") for r in range(2)]
    want = np.concatenate([am.ged(*_batches(10 + r, 1)[0], batch=True) for r in range(2)])
    for values in got:
        assert values.shape == (4,)
        np.testing.assert_allclose(np.sort(values), np.sort(want), rtol=0, atol=1e-12)


def test_rater_metrics_through_the_adapter():
    metric = AmbiSegMetric(["qubiq", "ece"])
    batches = _batches(3)
    for p, g in batches:
        metric.update(torch.from_numpy(p), torch.from_numpy(g))
    p_all = np.concatenate([p for p, _ in batches])
    g_all = np.concatenate([g for _, g in batches])
    per_image = metric.compute_per_image()
    want = am.qubiq_score(p_all, g_all, batch=True)
    np.testing.assert_allclose(per_image["qubiq"].numpy(), want, rtol=0, atol=1e-12)
@pytest.mark.parametrize("name", ["threshold", "estimator", "distance", "empty_pair", "ci_form", "variance"])
def test_explicit_option_beats_the_preset(name):
    from option_cases import PRESET_VS_EXPLICIT, as_comparable, binary_case, preset_with

    p, g = binary_case()
    base = preset_with(name)
    explicit = PRESET_VS_EXPLICIT[name][1]

    def run(conventions, **opts):
        metric = AmbiSegMetric(conventions=conventions, **opts)
        metric.update(p[None], g[None])
        return {k: v.numpy() for k, v in metric.compute_per_image().items()}

    got = as_comparable(run(base, **{name: explicit}))
    assert got == as_comparable(run(base.with_options(**{name: explicit})))
    assert got != as_comparable(run(base))


def test_options_are_split_from_torchmetrics_kwargs():
    metric = AmbiSegMetric(["ged"], threshold=0.0, dist_sync_on_step=True)
    assert metric.eval_options.threshold == 0.0 and metric.dist_sync_on_step
    with pytest.raises(ValueError, match="estimator must be one of"):
        AmbiSegMetric(["ged"], estimator="nope")
