"""torch tensors are accepted by every metric (converted without importing torch in ambiseg_metrics)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch tensor inputs are tested only where torch is installed")

import ambiseg_metrics as am  # noqa: E402

RNG = np.random.default_rng(0)


@pytest.mark.parametrize("dtype", [torch.bool, torch.uint8, torch.int64, torch.float32, torch.float64,
                                   torch.bfloat16, torch.float16])
def test_tensor_inputs_equal_numpy(dtype):
    p = RNG.random((4, 16, 16))
    g = RNG.random((3, 16, 16)) > 0.5
    pt = torch.from_numpy(p > 0.5).to(dtype) if dtype in (torch.bool, torch.uint8, torch.int64) else \
        torch.from_numpy(p).to(dtype)
    gt = torch.from_numpy(g)
    want = am.evaluate(pt.float().numpy() > 0.5 if pt.is_floating_point() else pt.numpy(), g)
    assert am.evaluate(pt, gt) == want


def test_tensor_requiring_grad_and_batches():
    p = torch.rand(2, 4, 8, 8, requires_grad=True)
    g = torch.rand(2, 3, 8, 8) > 0.5
    got = am.ged(p, g, batch=True)
    want = am.ged(p.detach().numpy(), g.numpy(), batch=True)
    assert np.array_equal(got, want)
    assert np.array_equal(am.ged([p[0], p[1]], [g[0], g[1]], batch=True), want)

