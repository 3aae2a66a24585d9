"""AmbiBlobs: a synthetic ambiguous-segmentation benchmark with a *known* annotation distribution.

Every image shows a structure with a part that every annotator marks (the *base*, possibly empty), optional
*ambiguous parts* (a faint rim, a satellite lobe, a fading band end, a faint lesion) that each annotator marks
with a known probability, and — for some images — a probability ``p_empty`` that an annotator marks nothing.
The fainter an ambiguous part is drawn, the lower its probability (its intensity is an increasing function
of it), so the ambiguity is visible in the image.

The masks an annotator can draw are the *modes*::

    p(empty)        = p_empty
    p(base ∪ S)     = (1 - p_empty) · Π_{k∈S} p_k · Π_{k∉S} (1 - p_k)     for every subset S of the parts

(identical masks are merged). :meth:`AmbiBlobs.modes` returns this list, so a GED against the true
distribution can be computed; the ``M`` stored annotations are i.i.d. draws from it.

Flavours mimic the data sets of the CIMD paper:

* ``ct``  – LIDC-like: 1 channel, 4 annotators; nodule core, faint rim, satellite lobe, sometimes nothing.
* ``us``  – bone-ultrasound-like: 1 channel, 4 annotators; speckle, a bright bone-surface band with an
  acoustic shadow below it whose faint ends are ambiguous.
* ``mri`` – MS-lesion-like: 4 channels (FLAIR, T1, T2, PD contrasts), 2 annotators; definite and faint
  lesions, sometimes no definite lesion at all.

Everything is generated from ``numpy.random.default_rng([seed, flavour, split, index])``: deterministic, no
download, and the first ``k`` images of a split do not depend on how many are requested.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product

import numpy as np
from scipy.ndimage import gaussian_filter

from .base import ArrayDataset, check_split

FLAVOURS: dict[str, dict] = {
    "ct": {"channels": 1, "annotators": 4, "code": 1},
    "us": {"channels": 1, "annotators": 4, "code": 2},
    "mri": {"channels": 4, "annotators": 2, "code": 3},
}
DEFAULT_COUNTS = {"train": 512, "val": 64, "test": 64}
_SPLIT_CODE = {"train": 0, "val": 1, "test": 2}


@dataclass(frozen=True)
class BlobCase:
    """One generated image with the structure of its annotation distribution."""

    image: np.ndarray  # (C, H, W) float32 in [0, 1]
    base: np.ndarray  # (H, W) bool, marked by every annotator who marks anything
    parts: tuple[np.ndarray, ...]  # ambiguous parts, (H, W) bool each
    part_probs: tuple[float, ...]  # marginal probability of each part
    p_empty: float  # probability that an annotator marks nothing

    def modes(self) -> list[tuple[np.ndarray, float]]:
        """All distinct masks an annotator can draw, with their probabilities (summing to 1)."""
        merged: dict[bytes, list] = {}
        shape = self.base.shape

        def add(mask: np.ndarray, p: float) -> None:
            if p <= 0:
                return
            key = np.packbits(mask).tobytes()
            if key in merged:
                merged[key][1] += p
            else:
                merged[key] = [mask, p]

        add(np.zeros(shape, dtype=bool), self.p_empty)
        for choice in product((0, 1), repeat=len(self.parts)):
            p = 1.0 - self.p_empty
            mask = self.base.copy()
            for chosen, part, pk in zip(choice, self.parts, self.part_probs, strict=True):
                p *= pk if chosen else 1.0 - pk
                if chosen:
                    mask |= part
            add(mask, p)
        return [(m, float(p)) for m, p in merged.values()]


# --------------------------------------------------------------------------------------------- shapes
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    return yy, xx


def _ellipse(yy, xx, cy, cx, a, b, theta) -> np.ndarray:
    c, s = np.cos(theta), np.sin(theta)
    u = (xx - cx) * c + (yy - cy) * s
    v = -(xx - cx) * s + (yy - cy) * c
    return (u / a) ** 2 + (v / b) ** 2 <= 1.0


def _smooth_field(rng: np.random.Generator, size: int, sigma: float) -> np.ndarray:
    f = gaussian_filter(rng.standard_normal((size, size)), sigma)
    return f / (np.abs(f).max() + 1e-8)


# --------------------------------------------------------------------------------------------- flavours
def _make_ct(rng: np.random.Generator, size: int) -> tuple:
    yy, xx = _grid(size)
    cy, cx = rng.uniform(0.35, 0.65, 2) * size
    a, b = rng.uniform(0.08, 0.15, 2) * size
    theta = rng.uniform(0, np.pi)
    core = _ellipse(yy, xx, cy, cx, a, b, theta)
    grow = rng.uniform(1.35, 1.6)
    rim = _ellipse(yy, xx, cy, cx, a * grow, b * grow, theta) & ~core
    parts, probs, intens = [rim], [rng.uniform(0.15, 0.85)], []
    if rng.random() < 0.6:  # a satellite lobe on the core boundary
        phi = rng.uniform(0, 2 * np.pi)
        r = 0.5 * (a + b) * rng.uniform(1.0, 1.3)
        lobe = _ellipse(yy, xx, cy + r * np.sin(phi), cx + r * np.cos(phi), a * 0.55, b * 0.55, theta) & ~core
        parts.append(lobe)
        probs.append(rng.uniform(0.15, 0.85))
    p_empty = rng.uniform(0.2, 0.6) if rng.random() < 0.25 else 0.0
    intens = [0.12 + 0.4 * p for p in probs]
    img = 0.2 + 0.08 * _smooth_field(rng, size, size / 8)
    img = img + (0.75 - 0.9 * p_empty) * core
    for part, level in zip(parts, intens, strict=True):
        img = img + level * part
    img = gaussian_filter(img, 0.8) + rng.normal(0, 0.04, (size, size))
    return np.clip(img, 0, 1)[None], core, parts, probs, p_empty


def _make_us(rng: np.random.Generator, size: int) -> tuple:
    yy, xx = _grid(size)
    y0 = rng.uniform(0.35, 0.6) * size
    amp = rng.uniform(0.03, 0.1) * size
    freq, phase = rng.uniform(0.3, 1.0), rng.uniform(0, 2 * np.pi)
    curve = y0 + amp * np.sin(2 * np.pi * freq * xx / size + phase)
    thick = rng.uniform(0.03, 0.05) * size
    band = (yy >= curve) & (yy <= curve + thick)
    x1, x2 = np.sort(rng.uniform(0.25, 0.75, 2) * size)
    x2 = max(x2, x1 + 0.15 * size)
    core = band & (xx >= x1) & (xx <= x2)
    e1, e2 = rng.uniform(0.08, 0.22, 2) * size
    left = band & (xx >= x1 - e1) & (xx < x1)
    right = band & (xx > x2) & (xx <= x2 + e2)
    probs = [rng.uniform(0.15, 0.85), rng.uniform(0.15, 0.85)]
    p_empty = rng.uniform(0.2, 0.5) if rng.random() < 0.15 else 0.0
    tissue = 0.35 + 0.1 * _smooth_field(rng, size, size / 10)
    bright = (0.85 - 0.8 * p_empty) * core + (0.15 + 0.5 * probs[0]) * left + (0.15 + 0.5 * probs[1]) * right
    # acoustic shadow below every drawn part of the band, as deep as the part is bright
    shadow_strength = np.zeros(size)
    for mask, level in ((core, 0.85 - 0.8 * p_empty), (left, 0.5 * probs[0]), (right, 0.5 * probs[1])):
        cols = mask.any(axis=0)
        shadow_strength[cols] = np.maximum(shadow_strength[cols], level)
    below = yy > curve + thick
    img = tissue * (1 - 0.85 * below * shadow_strength[None, :]) + bright
    speckle = gaussian_filter(rng.rayleigh(1.0, (size, size)), 0.6) / np.sqrt(np.pi / 2)
    img = img * speckle
    return np.clip(img, 0, 1)[None], core, [left, right], probs, p_empty


def _make_mri(rng: np.random.Generator, size: int) -> tuple:
    yy, xx = _grid(size)
    brain = _ellipse(yy, xx, size / 2, size / 2, 0.44 * size, 0.38 * size, rng.uniform(-0.2, 0.2) + np.pi / 2)
    inner = _ellipse(yy, xx, size / 2, size / 2, 0.3 * size, 0.25 * size, np.pi / 2)

    def lesion() -> np.ndarray:
        while True:
            cy, cx = rng.uniform(0.25, 0.75, 2) * size
            if inner[int(cy), int(cx)]:
                break
        a, b = rng.uniform(0.03, 0.08, 2) * size
        return _ellipse(yy, xx, cy, cx, a, b, rng.uniform(0, np.pi)) & brain

    base = np.zeros((size, size), dtype=bool)
    if rng.random() < 0.8:
        for _ in range(rng.integers(1, 3)):
            base |= lesion()
    parts, probs = [], []
    for _ in range(rng.integers(1, 3)):
        parts.append(lesion() & ~base)
        probs.append(rng.uniform(0.15, 0.85))
    # per-channel contrasts: (tissue, lesion) for FLAIR, T1, T2, PD
    contrasts = [(0.45, +0.45), (0.6, -0.35), (0.4, +0.45), (0.55, +0.3)]
    field = 0.06 * _smooth_field(rng, size, size / 8)
    chans = []
    for tissue, les in contrasts:
        img = brain * (tissue + field) + les * base
        for part, p in zip(parts, probs, strict=True):
            img = img + les * (0.2 + 0.6 * p) * part
        img = gaussian_filter(img, 0.7) + rng.normal(0, 0.035, (size, size))
        chans.append(np.clip(img, 0, 1))
    return np.stack(chans), base, parts, probs, 0.0


_MAKERS = {"ct": _make_ct, "us": _make_us, "mri": _make_mri}


def make_case(flavour: str, seed: int, split: str, index: int, size: int = 64) -> BlobCase:
    """Generate image ``index`` of ``split`` (deterministic in all arguments)."""
    if flavour not in FLAVOURS:
        raise ValueError(f"unknown AmbiBlobs flavour {flavour!r}; choose one of {sorted(FLAVOURS)}")
    if size < 16:
        raise ValueError(f"size must be >= 16 pixels, got {size}")
    rng = np.random.default_rng(
        [int(seed), FLAVOURS[flavour]["code"], _SPLIT_CODE[check_split(split)], index]
    )
    image, base, parts, probs, p_empty = _MAKERS[flavour](rng, int(size))
    return BlobCase(
        image=image.astype(np.float32),
        base=np.asarray(base, dtype=bool),
        parts=tuple(np.asarray(p, dtype=bool) for p in parts),
        part_probs=tuple(float(p) for p in probs),
        p_empty=float(p_empty),
    )


class AmbiBlobs(ArrayDataset):
    """One split of an AmbiBlobs flavour (see the module docstring).

    Parameters
    ----------
    flavour : {"ct", "us", "mri"}
    split : {"train", "val", "test"}
    seed : int
    n : int, optional
        Number of images (default 512 train / 64 val / 64 test).
    size : int
        Image side in pixels (default 64).
    n_annotators : int, optional
        Annotations per image (default 4 for ct/us, 2 for mri).
    """

    def __init__(
        self,
        flavour: str = "ct",
        split: str = "train",
        seed: int = 0,
        n: int | None = None,
        size: int = 64,
        n_annotators: int | None = None,
    ) -> None:
        check_split(split)
        if flavour not in FLAVOURS:
            raise ValueError(f"unknown AmbiBlobs flavour {flavour!r}; choose one of {sorted(FLAVOURS)}")
        n = DEFAULT_COUNTS[split] if n is None else int(n)
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        m = FLAVOURS[flavour]["annotators"] if n_annotators is None else int(n_annotators)
        if m < 1:
            raise ValueError(f"n_annotators must be >= 1, got {m}")
        self.flavour, self.split, self.seed, self.size = flavour, split, int(seed), int(size)
        self.cases = [make_case(flavour, seed, split, i, size) for i in range(n)]
        masks = np.zeros((n, m, size, size), dtype=bool)
        for i, case in enumerate(self.cases):
            modes = case.modes()
            rng = np.random.default_rng([int(seed), FLAVOURS[flavour]["code"], _SPLIT_CODE[split], i, 7])
            probs = np.array([p for _, p in modes])
            picks = rng.choice(len(modes), size=m, p=probs / probs.sum())
            for j, k in enumerate(picks):
                masks[i, j] = modes[k][0]
        images = np.stack([c.image for c in self.cases])
        ids = [f"ambiblobs-{flavour}-{split}-{i:05d}" for i in range(n)]
        super().__init__(images, masks, ids, name=f"ambiblobs-{flavour}/{split}")

    def modes(self, index: int) -> list[tuple[np.ndarray, float]]:
        """The true annotation distribution of image ``index``: list of (mask (H, W) bool, probability)."""
        return self.cases[index].modes()

    def marginal(self, index: int) -> np.ndarray:
        """Pixel-wise probability of foreground under the true distribution, (H, W) float64."""
        return sum(p * m.astype(np.float64) for m, p in self.modes(index))
