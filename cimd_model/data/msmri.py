"""ISBI-2015 longitudinal MS lesion challenge loader (4 modalities, 2 raters) as 2-D slices.

Expected layout (the challenge's ``training`` release)::

    <root>/…/<patient>/preprocessed/<patient>_<tp>_{flair,mprage,pd,t2}_pp.nii[.gz]
    <root>/…/<patient>/masks/<patient>_<tp>_mask1.nii[.gz], …_mask2.nii[.gz]

(masks may also sit next to the images). Every time point is sliced along ``axis`` (default 2, axial);
channels are FLAIR, MPRAGE (T1), PD, T2, each z-scored over the non-zero voxels of its volume. The masks of
the two raters are the annotations. Slices are kept according to ``slices`` (``"lesion"``: any rater marks
something, default; ``"brain"``: at least 5 % non-zero FLAIR; ``"all"``). Slices are padded / centre-cropped
to ``size`` (default: padded up to a multiple of 16). The split is per patient (seeded): time points and
slices of one patient never leak across splits.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .base import ArrayDataset, binarise, check_split, split_groups

MODALITIES = ("flair", "mprage", "pd", "t2")
_FLAIR = re.compile(r"^(?P<prefix>.+)_flair_pp\.nii(\.gz)?$", re.IGNORECASE)
_SLICES = ("lesion", "brain", "all")


def _find(folder_candidates: list[Path], name: str) -> Path:
    for folder in folder_candidates:
        for suffix in (".nii", ".nii.gz"):
            p = folder / f"{name}{suffix}"
            if p.is_file():
                return p
    raise FileNotFoundError(f"missing {name}.nii[.gz] (looked in {', '.join(map(str, folder_candidates))})")


def _load(path: Path) -> np.ndarray:
    import nibabel as nib

    try:
        return np.asarray(nib.load(str(path)).dataobj, dtype=np.float32)
    except Exception as exc:  # noqa: BLE001 - re-raised with the file name
        raise ValueError(f"cannot read NIfTI {path}: {exc}") from exc


def _zscore(v: np.ndarray) -> np.ndarray:
    fg = v[v != 0]
    if fg.size < 2:
        return v
    return np.where(v != 0, (v - fg.mean()) / (fg.std() + 1e-6), 0).astype(np.float32)


def _fit(a: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Pad (zeros) / centre-crop the last two axes of ``a`` to ``size``."""
    out = a
    for axis, target in zip((-2, -1), size, strict=True):
        n = out.shape[axis]
        if n < target:
            before = (target - n) // 2
            pad = [(0, 0)] * out.ndim
            pad[axis] = (before, target - n - before)
            out = np.pad(out, pad)
        elif n > target:
            start = (n - target) // 2
            out = np.take(out, np.arange(start, start + target), axis=axis)
    return out


def load_msmri(
    root: str | Path,
    split: str,
    seed: int = 0,
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2),
    axis: int = 2,
    slices: str = "lesion",
    size: int | tuple[int, int] | None = None,
    multiple: int = 16,
) -> ArrayDataset:
    """One split of the ISBI-2015 MS lesion data as 2-D slices (see the module docstring).

    Parameters
    ----------
    root : folder searched recursively for ``*_flair_pp.nii[.gz]``
    split : ``"train"``, ``"val"`` or ``"test"`` (patient-level, seeded)
    seed, fractions : split seed and fractions
    axis : volume axis to slice along
    slices : ``"lesion"``, ``"brain"`` or ``"all"``
    size : output slice size (int or (H, W)); default pads to a multiple of ``multiple``
    """
    check_split(split)
    if slices not in _SLICES:
        raise ValueError(f"slices must be one of {_SLICES}, got {slices!r}")
    if axis not in (0, 1, 2):
        raise ValueError(f"axis must be 0, 1 or 2, got {axis}")
    root = Path(root).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"MS lesion data folder not found: {root}")
    flairs = sorted(p for p in root.rglob("*") if _FLAIR.match(p.name))
    if not flairs:
        raise ValueError(f"{root}: no *_flair_pp.nii[.gz] files (ISBI-2015 'preprocessed' layout expected)")
    prefixes = [_FLAIR.match(p.name).group("prefix") for p in flairs]
    patients = [pre.split("_")[0] for pre in prefixes]
    chosen = split_groups(patients, seed, fractions)[split]
    records = []
    for flair, prefix, patient in zip(flairs, prefixes, patients, strict=True):
        if patient not in chosen:
            continue
        folders = [flair.parent, flair.parent.parent / "masks", flair.parent.parent]
        vols = [_zscore(_load(_find([flair.parent], f"{prefix}_{m}_pp"))) for m in MODALITIES]
        raters = [binarise(_load(_find(folders, f"{prefix}_mask{r}"))) for r in (1, 2)]
        shapes = {v.shape for v in vols + raters}
        if len(shapes) != 1 or len(next(iter(shapes))) != 3:
            raise ValueError(f"{prefix}: modalities and masks must be 3-D volumes of one shape, got {shapes}")
        image = np.moveaxis(np.stack(vols), axis + 1, 1)  # (4, S, a, b)
        masks = np.moveaxis(np.stack(raters), axis + 1, 1)  # (2, S, a, b)
        for s in range(image.shape[1]):
            m = masks[:, s]
            if slices == "lesion" and not m.any():
                continue
            if slices == "brain" and (image[0, s] != 0).mean() < 0.05:
                continue
            records.append((f"{prefix}_s{s:03d}", image[:, s], m))
    if not records:
        raise ValueError(f"{root}: no {slices!r} slices in split {split!r}")
    h, w = records[0][1].shape[-2:]
    if size is None:
        target = (-(-h // multiple) * multiple, -(-w // multiple) * multiple)
    else:
        target = (size, size) if isinstance(size, int) else tuple(size)
    images = np.stack([_fit(r[1], target) for r in records])
    masks = np.stack([_fit(r[2], target) for r in records])
    return ArrayDataset(images, masks, [r[0] for r in records], name=f"msmri/{split}")
