"""Synthetic masks of realistic shape (fixed seed): blobs that annotators and samples disagree about.

Each image has a "true" lesion made of one or more ellipses (ellipsoids in 3D). Every annotation and
every sample redraws each blob with its centre and radii jittered, and is empty with some probability,
as in LIDC where many nodule crops have some annotators marking nothing. Blobs are drawn only inside their
bounding box, so generating thousands of masks or a 7-million-voxel volume takes about a second.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["MaskSet", "make_masks"]


@dataclass(frozen=True)
class MaskSet:
    """A batch of B images: ``preds`` (B, N, *spatial) and ``gts`` (B, M, *spatial), both bool."""

    preds: np.ndarray
    gts: np.ndarray

    @property
    def n_images(self) -> int:
        return self.preds.shape[0]

    @property
    def n_pixels(self) -> int:
        return int(np.prod(self.preds.shape[2:]))

    @property
    def nbytes(self) -> int:
        return self.preds.nbytes + self.gts.nbytes

    def subset(self, n: int) -> MaskSet:
        """The first ``n`` images (views)."""
        return MaskSet(self.preds[:n], self.gts[:n])


def _draw(mask: np.ndarray, centre: np.ndarray, radii: np.ndarray) -> None:
    """Set the voxels of one axis-aligned ellipse/ellipsoid to True (in place, bounding box only)."""
    lo = np.maximum(np.floor(centre - radii).astype(int), 0)
    hi = np.minimum(np.ceil(centre + radii).astype(int) + 1, mask.shape)
    if np.any(hi <= lo):
        return
    grids = np.ogrid[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))]
    r2 = sum(((g - c) / r) ** 2 for g, c, r in zip(grids, centre, radii, strict=True))
    mask[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))] |= r2 <= 1.0


def _blob_params(
    rng: np.random.Generator, n_images: int, n_masks: int, shape: tuple[int, ...], n_blobs: int,
    radius: tuple[float, float], p_empty: float, jitter: float, centres: np.ndarray, radii: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-mask jittered blobs: centres and radii (B, R, n_blobs, ndim) and the empty flags (B, R)."""
    ndim = len(shape)
    shift = rng.normal(0.0, jitter, (n_images, n_masks, n_blobs, ndim)) * radii[:, None]
    scale = rng.uniform(1.0 - 2 * jitter, 1.0 + 2 * jitter, (n_images, n_masks, n_blobs, ndim))
    empty = rng.random((n_images, n_masks)) < p_empty
    return centres[:, None] + shift, radii[:, None] * scale, empty


def _draw_all(out: np.ndarray, centres: np.ndarray, radii: np.ndarray, empty: np.ndarray) -> None:
    """Draw every (non-empty) mask of ``out`` (B, R, *spatial)."""
    B, R = out.shape[:2]
    spatial = out.shape[2:]
    if len(spatial) == 2:
        # Separable test ((y-cy)/ry)^2 + ((x-cx)/rx)^2 <= 1, vectorised over chunks of masks.
        flat = out.reshape(B * R, *spatial)
        c = centres.reshape(B * R, -1, 2).astype(np.float32)
        r = radii.reshape(B * R, -1, 2).astype(np.float32)
        keep = ~empty.reshape(-1)
        ys = np.arange(spatial[0], dtype=np.float32)
        xs = np.arange(spatial[1], dtype=np.float32)
        step = max(1, (1 << 20) // (spatial[0] * spatial[1]))  # temporaries stay in cache
        for s0 in range(0, B * R, step):
            sl = slice(s0, min(s0 + step, B * R))
            if not keep[sl].any():
                continue
            for k in range(c.shape[1]):
                ay = ((ys[None, :] - c[sl, k, 0:1]) / r[sl, k, 0:1]) ** 2
                ax = ((xs[None, :] - c[sl, k, 1:2]) / r[sl, k, 1:2]) ** 2
                flat[sl] |= (ay[:, :, None] + ax[:, None, :] <= 1.0) & keep[sl, None, None]
        return
    for b in range(B):
        for k in range(R):
            if not empty[b, k]:
                for c, r in zip(centres[b, k], radii[b, k], strict=True):
                    _draw(out[b, k], c, r)


def make_masks(
    n_images: int,
    n_pred: int,
    n_gt: int,
    shape: tuple[int, ...],
    *,
    seed: int = 0,
    n_blobs: int = 1,
    radius: tuple[float, float] = (3.0, 16.0),
    p_empty_gt: float = 0.3,
    p_empty_pred: float = 0.15,
) -> MaskSet:
    """Generate a reproducible batch of annotations and samples.

    Parameters
    ----------
    n_images, n_pred, n_gt : int
        B, N and M.
    shape : tuple of int
        Spatial shape, 2D or 3D.
    seed : int
        Seed of ``numpy.random.default_rng``.
    n_blobs : int
        Lesions per image (each mask redraws every blob with jitter).
    radius : (float, float)
        Range of the lesions' radii in pixels.
    p_empty_gt, p_empty_pred : float
        Probability that an annotation / a sample is empty.

    Returns
    -------
    MaskSet
    """
    rng = np.random.default_rng(seed)
    dims = np.asarray(shape, dtype=np.float64)
    ndim = len(shape)
    centres = rng.uniform(0.25, 0.75, (n_images, n_blobs, ndim)) * dims
    radii = rng.uniform(*radius, (n_images, n_blobs, 1)) * rng.uniform(0.7, 1.3, (n_images, n_blobs, ndim))
    preds = np.zeros((n_images, n_pred, *shape), dtype=bool)
    gts = np.zeros((n_images, n_gt, *shape), dtype=bool)
    for out, p_empty, jitter in ((gts, p_empty_gt, 0.08), (preds, p_empty_pred, 0.15)):
        params = _blob_params(rng, n_images, out.shape[1], shape, n_blobs, radius, p_empty, jitter,
                              centres, radii)
        _draw_all(out, *params)
    return MaskSet(preds, gts)
