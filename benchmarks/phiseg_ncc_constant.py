"""PHiSeg's NCC on a constant cross-entropy map: NaN or a finite number depending on the image size.

PHiSeg-code ``utils.ncc`` normalises each map as (a - np.mean(a)) / (np.std(a) * len(a)). This script
re-expresses that normalisation (written here, not copied) and applies it to the constant map of identical
one-hot samples, -log(1 + 1e-8) per pixel. Run: python benchmarks/phiseg_ncc_constant.py
"""

import warnings

import numpy as np


def phiseg_style_ncc(a: np.ndarray, v: np.ndarray) -> float:
    a, v = a.ravel(), v.ravel()
    a = (a - np.mean(a)) / (np.std(a) * len(a))
    v = (v - np.mean(v)) / np.std(v)
    return float(np.correlate(a, v)[0])


def variance_ncc_style(samples: np.ndarray, gts: np.ndarray, eps: float = 1e-8) -> float:
    """Mean over annotators of the NCC of E[CE(mean, s)] and E[CE(y_j, s)] (one-hot maps, classes last)."""
    def xent(s, g):
        return -np.sum(g * np.log(s + eps), axis=-1)
    mean = samples.mean(0)
    e_ss = np.mean([xent(s, mean) for s in samples], 0)
    return float(np.mean([phiseg_style_ncc(e_ss, np.mean([xent(s, y) for s in samples], 0)) for y in gts]))


if __name__ == "__main__":
    warnings.simplefilter("ignore")
    rng = np.random.default_rng(0)
    constant = -np.log(1.0 + 1e-8)
    for h, w in [(8, 8), (50, 50), (71, 108), (87, 80)]:
        a = np.full((h, w), -constant)
        fg = np.zeros((h, w), bool)
        fg[h // 4 : h // 2, w // 4 : w // 2] = True
        onehot = np.stack([~fg, fg], -1).astype(float)
        samples = np.stack([onehot] * 4)  # identical hard samples: E_ss is constant
        gts = np.stack([onehot, np.stack([fg, ~fg], -1).astype(float)])
        print(f"{h}x{w}: np.mean exact: {bool(np.mean(a) == a[0, 0])}, "
              f"ncc vs random map: {phiseg_style_ncc(a, rng.random((h, w))):.3g}, "
              f"variance_ncc_dist-style: {variance_ncc_style(samples, gts):.3g}")
