"""Float32 distance matrices (as Kohl's eval_cityscapes.py stores d_YS/d_SS/d_YY; MoSE's torch float
tensors likewise) against float64: how far a float32 GED can move. Run: python benchmarks/float32_ged.py"""
import numpy as np

import ambiseg_metrics as am


def ged(d: np.ndarray, n: int) -> float:
    return float(2 * d[:n, n:].mean() - d[:n, :n].mean() - d[n:, n:].mean())


rng = np.random.default_rng(0)
worst = 0.0
for _case in range(200):
    n, m = 16, 4
    base = rng.random((128, 128)) < rng.random()
    preds = base ^ (rng.random((n, 128, 128)) < 0.2 * rng.random())
    gts = base ^ (rng.random((m, 128, 128)) < 0.2 * rng.random())
    inter = am.pair_counts(preds, gts).blocks[0].inter[0]
    d64 = 1.0 - am.iou_from_counts(inter)
    d32 = (np.float32(1.0) - am.iou_from_counts(inter).astype(np.float32)).astype(np.float32)
    worst = max(worst, abs(ged(d32, n) - ged(d64, n)))
print(f"max |GED(float32 d) - GED(float64 d)| over 200 cases (N=16, M=4, 128x128): {worst:.2e}")
