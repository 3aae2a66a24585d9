"""Generate the example masks shipped with the package (seeded, so the data can be regenerated exactly).

Each case is a synthetic lesion-like image of 64 x 64 pixels:

* the lesion is a star-shaped blob (a circle with a smooth random radial profile) plus, in some cases, a
  faint *satellite* lesion that only some experts see — the kind of ambiguity the metrics are about;
* M = 4 annotators each trace the lesion with their own smooth boundary offset (some draw tight, some
  generous) and include the satellite with a case-dependent probability;
* N = 16 "model samples" imitate a stochastic segmentation model of case-dependent quality: each sample
  follows one annotator style (or a style of its own), with a shifted centre, noisy boundary and
  sometimes a spurious blob.

A second, deliberately worse model (``data/preds_worse/<case>.npz``, same layout) is derived from the first
with its own seeded generator (:func:`make_worse`): every sample is shifted by 2-3 pixels, grown or shrunk
by one pixel, and a third of them get a spurious blob. ``ambiseg-eval compare`` uses the two to show a
comparison that must find the worse one.

Layouts (both shipped, to show both): predictions as one compressed NPZ stack per case
(``data/preds/<case>.npz``, array ``masks`` of shape (16, 64, 64), uint8 0/1), annotations as one PNG per
annotator (``data/gts/<case>/rater_<k>.png``, 0/255).

Run ``python -m ambiseg_metrics.examples.make_examples [OUT_DIR]`` to regenerate (default: the package's
``examples/data``).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np

N_CASES = 32
SIZE = 64
N_ANNOTATORS = 4
N_SAMPLES = 16
SEED = 20231117


def _smooth_profile(
    rng: np.random.Generator, angles: np.ndarray, amplitude: float, n_terms: int = 4
) -> np.ndarray:
    """A smooth periodic function of the angle (a few random Fourier terms), mean 0."""
    out = np.zeros_like(angles)
    for k in range(1, n_terms + 1):
        a, b = rng.normal(0.0, amplitude / k, size=2)
        out += a * np.cos(k * angles) + b * np.sin(k * angles)
    return out


def _blob(shape: tuple[int, int], centre: tuple[float, float], radius: float, rng: np.random.Generator,
          roughness: float) -> np.ndarray:
    """A star-shaped blob: pixels whose distance to ``centre`` is below a smoothly varying radius."""
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(np.float64)
    dy, dx = yy - centre[0], xx - centre[1]
    angles = np.arctan2(dy, dx)
    r = np.hypot(dy, dx)
    return r < radius * (1.0 + _smooth_profile(rng, angles, roughness))


def make_case(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One case: (samples (N, H, W) uint8 0/1, annotations (M, H, W) uint8 0/1)."""
    shape = (SIZE, SIZE)
    centre = tuple(rng.uniform(22, 42, size=2))
    radius = rng.uniform(6, 13)
    has_satellite = rng.random() < 0.6
    sat_centre = tuple(np.clip(np.asarray(centre) + rng.normal(0, 1, 2) * radius * 1.8, 8, 56))
    sat_radius = radius * rng.uniform(0.3, 0.5)
    sat_prob = rng.uniform(0.25, 0.75)
    styles = rng.normal(0.0, 0.12, size=N_ANNOTATORS)  # tight (<0) or generous (>0) tracers

    def trace(style: float, jitter: float, sat: bool, shift: float) -> np.ndarray:
        c = tuple(np.asarray(centre) + rng.normal(0, shift, 2))
        m = _blob(shape, c, radius * (1.0 + style), rng, jitter)
        if sat:
            m |= _blob(shape, sat_centre, sat_radius * (1.0 + style), rng, jitter)
        return m

    gts = np.stack([trace(s, 0.06, has_satellite and rng.random() < sat_prob, 0.4) for s in styles])

    quality = rng.uniform(0.0, 1.0)  # 0 = a good model on this case, 1 = a poor one
    preds = []
    for _ in range(N_SAMPLES):
        style = styles[rng.integers(N_ANNOTATORS)] if rng.random() < 0.7 else rng.normal(0, 0.2)
        m = trace(style + rng.normal(0, 0.05 + 0.1 * quality), 0.06 + 0.1 * quality,
                  has_satellite and rng.random() < sat_prob * (1.0 - 0.5 * quality), 0.5 + 2.0 * quality)
        if rng.random() < 0.15 * quality:  # a spurious detection
            m |= _blob(shape, tuple(rng.uniform(6, 58, 2)), rng.uniform(2, 4), rng, 0.1)
        preds.append(m)
    return np.stack(preds).astype(np.uint8), gts.astype(np.uint8)


def _grow(m: np.ndarray) -> np.ndarray:
    """Binary dilation by the 4-neighbourhood (one pixel)."""
    out = m.copy()
    out[1:] |= m[:-1]
    out[:-1] |= m[1:]
    out[:, 1:] |= m[:, :-1]
    out[:, :-1] |= m[:, 1:]
    return out


def make_worse(preds: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A worse model's samples from a good one's: shifted 2-3 px, grown or shrunk a pixel, spurious blobs."""
    out = []
    for m in preds.astype(bool):
        dy, dx = rng.integers(2, 4, size=2) * rng.choice([-1, 1], size=2)
        m = np.roll(m, (int(dy), int(dx)), axis=(0, 1))
        m = _grow(m) if rng.random() < 0.5 else ~_grow(~m)
        if rng.random() < 1 / 3:
            m |= _blob(m.shape, tuple(rng.uniform(6, 58, 2)), rng.uniform(2, 4), rng, 0.1)
        out.append(m)
    return np.stack(out).astype(np.uint8)


def generate(out_dir: str | Path, *, n_cases: int = N_CASES, seed: int = SEED) -> None:
    """Write ``out_dir/preds/<case>.npz``, ``out_dir/gts/<case>/rater_<k>.png`` and the worse model's
    ``out_dir/preds_worse/<case>.npz`` (replacing old data)."""
    import imageio.v3 as iio

    out = Path(out_dir)
    for sub in ("preds", "gts", "preds_worse"):
        if (out / sub).exists():
            shutil.rmtree(out / sub)
        (out / sub).mkdir(parents=True)
    rng = np.random.default_rng(seed)
    worse_rng = np.random.default_rng(seed + 1)  # its own stream: the first model's data do not change
    for i in range(n_cases):
        name = f"case_{i + 1:03d}"
        preds, gts = make_case(rng)
        np.savez_compressed(out / "preds" / f"{name}.npz", masks=preds)
        np.savez_compressed(out / "preds_worse" / f"{name}.npz", masks=make_worse(preds, worse_rng))
        (out / "gts" / name).mkdir()
        for k, g in enumerate(gts, start=1):
            iio.imwrite(out / "gts" / name / f"rater_{k}.png", (g * 255).astype(np.uint8))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out_dir", nargs="?", default=str(Path(__file__).parent / "data"))
    parser.add_argument("--cases", type=int, default=N_CASES)
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    generate(args.out_dir, n_cases=args.cases, seed=args.seed)
    print(f"wrote {args.cases} cases to {args.out_dir}")


if __name__ == "__main__":
    main()
