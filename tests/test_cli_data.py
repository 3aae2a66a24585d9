"""Helpers (no tests here): write small mask datasets in every layout and format for the CLI and I/O tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: (layout, extension) combinations the CLI reads losslessly.
LOSSLESS = [
    ("folder", ".png"),
    ("folder", ".bmp"),
    ("folder", ".tif"),
    ("folder", ".npy"),
    ("folder", ".nii.gz"),
    ("folder", ".nii"),
    ("file", ".npy"),
    ("file", ".npz"),
    ("file", ".tif"),
    ("file", ".nii.gz"),
]


def random_case(rng: np.random.Generator, n: int, m: int, shape: tuple[int, ...], kind: str = "bool"):
    """(preds, gts) of one case: correlated random masks; ``kind="float"`` gives probabilities."""
    base = rng.random(shape)
    preds = np.stack([np.clip(base + rng.normal(0, 0.25, shape), 0, 1) for _ in range(n)])
    gts = np.stack([np.clip(base + rng.normal(0, 0.2, shape), 0, 1) for _ in range(m)])
    if kind == "float":
        return preds.astype(np.float32), gts > 0.5
    return preds > 0.5, gts > 0.5


def write_mask(path: Path, mask: np.ndarray) -> None:
    """Write one mask (2D or 3D) in the format given by the extension of ``path``."""
    name = path.name.lower()
    if name.endswith((".png", ".bmp", ".jpg", ".jpeg")):
        import imageio.v3 as iio

        iio.imwrite(path, (mask.astype(np.uint8) * 255) if mask.dtype == bool else mask)
    elif name.endswith((".tif", ".tiff")):
        import tifffile

        data = mask.astype(np.uint8) if mask.dtype == bool else mask
        tifffile.imwrite(path, data, photometric="minisblack")
    elif name.endswith(".npy"):
        np.save(path, mask)
    elif name.endswith((".nii", ".nii.gz")):
        import nibabel as nib

        data = mask.astype(np.uint8) if mask.dtype == bool else mask
        nib.save(nib.Nifti1Image(data, np.eye(4)), str(path))
    else:
        raise ValueError(name)


def write_stack(path: Path, stack: np.ndarray) -> None:
    """Write a stack (R, *spatial) as one file (file-per-case layout)."""
    name = path.name.lower()
    if name.endswith(".npz"):
        np.savez_compressed(path, masks=stack)
    elif name.endswith((".nii", ".nii.gz")):
        write_mask(path, np.moveaxis(stack, 0, -1))  # NIfTI: mask index last
    else:
        write_mask(path, stack)


def write_side(root: Path, name: str, stack: np.ndarray, layout: str, ext: str) -> None:
    root.mkdir(parents=True, exist_ok=True)
    if layout == "file":
        write_stack(root / f"{name}{ext}", stack)
    else:
        (root / name).mkdir()
        for k, mask in enumerate(stack):
            write_mask(root / name / f"mask_{k:02d}{ext}", mask)


def write_dataset(
    tmp: Path, layout: str, ext: str, *, n_cases: int = 4, n: int = 5, m: int = 3, seed: int = 0,
    kind: str = "bool",
) -> tuple[Path, Path, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Write ``tmp/preds`` and ``tmp/gts``; return them and ``{case: (preds, gts)}`` as written."""
    rng = np.random.default_rng(seed)
    three_d = ext in (".nii", ".nii.gz") and layout == "folder"
    shape = (4, 9, 11) if three_d else (13, 17)
    data = {}
    for i in range(n_cases):
        name = f"case{i:02d}"
        preds, gts = random_case(rng, n, m, shape, kind)
        write_side(tmp / "preds", name, preds, layout, ext)
        write_side(tmp / "gts", name, gts, layout, ext)
        data[name] = (preds, gts)
    return tmp / "preds", tmp / "gts", data
