"""Write LIDC rater masks as an ``ambiseg-eval`` tree (one command: ``cimd-lidc export --out DIR``).

Layout under ``DIR``::

    gts/<nodule>/rater0.png … rater{M-1}.png   2D: the largest-union axial slice, uint8 0/255
    gts3d/<nodule>/rater0.nii.gz …             3D: every slice of the box, uint8 0/1, array axes (row,
                                               column, slice), voxel sizes (spacing, spacing, slice spacing)
                                               in the affine
    nodules.csv                                one row per nodule: ids, patient, raters, geometry
    CREDIT.txt                                 the CC BY 3.0 attribution of LIDC-IDRI (TCIA)

The tree is written into a hidden temporary folder inside ``DIR`` and moved into place at the end, so an
interrupted export leaves nothing half-written; existing ``gts``/``gts3d``/``nodules.csv``/``CREDIT.txt`` are
never overwritten unless ``overwrite=True`` (then each is replaced whole, after the new one is complete).
"""

from __future__ import annotations

import csv
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from .lidc_cache import RaterCache
from .lidc_raters import largest_slice, nodule_2d, nodule_3d, select

DIMS = ("2d", "3d", "both")


def _write_png(path: Path, mask: np.ndarray) -> None:
    import imageio.v3 as iio

    iio.imwrite(path, mask.astype(np.uint8) * 255)


def _write_nifti(path: Path, mask: np.ndarray, voxel: tuple[float, float, float]) -> None:
    import nibabel as nib

    img = nib.Nifti1Image(mask.astype(np.uint8), np.diag([*voxel, 1.0]))
    img.header.set_xyzt_units("mm")
    nib.save(img, str(path))


def export_tree(
    cache: RaterCache,
    out: str | os.PathLike,
    missing: str = "pad-empty",
    n_raters: int | None = None,
    dims: str = "2d",
    size: int = 128,
    spacing: float = 0.5,
    overwrite: bool = False,
    progress: bool = True,
) -> list[str]:
    """Export the nodules kept by :func:`~cimd_model.data.lidc_raters.select`; returns the nodule ids.

    Raises
    ------
    FileExistsError
        A target (``gts``, ``gts3d``, ``nodules.csv``, ``CREDIT.txt``) exists and ``overwrite`` is False.
    """
    from tqdm.auto import tqdm

    if dims not in DIMS:
        raise ValueError(f"dims must be one of {DIMS}, got {dims!r}")
    out = Path(out).expanduser()
    names = (
        ["nodules.csv", "CREDIT.txt"]
        + (["gts"] if dims != "3d" else [])
        + (["gts3d"] if dims != "2d" else [])
    )
    existing = [n for n in names if (out / n).exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{out} already holds {existing}; choose another --out or pass --overwrite")
    keep = select(cache, missing, n_raters)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".lidc-export-", dir=out))
    try:
        rows = []
        for i in tqdm(keep, desc="export", unit="nodule", disable=not progress):
            nod = cache[i]
            k = largest_slice(nod)
            m2 = nodule_2d(nod, missing, size, spacing, k) if dims != "3d" else None
            m3, voxel = nodule_3d(nod, missing, size, spacing) if dims != "2d" else (None, None)
            for r in range(len(m2) if m2 is not None else len(m3)):
                if m2 is not None:
                    (tmp / "gts" / nod.id).mkdir(parents=True, exist_ok=True)
                    _write_png(tmp / "gts" / nod.id / f"rater{r}.png", m2[r])
                if m3 is not None:
                    (tmp / "gts3d" / nod.id).mkdir(parents=True, exist_ok=True)
                    # (slice, row, col) -> (row, col, slice)
                    _write_nifti(
                        tmp / "gts3d" / nod.id / f"rater{r}.nii.gz",
                        np.moveaxis(m3[r], 0, -1),
                        (voxel[1], voxel[2], voxel[0]),
                    )
            rows.append(
                {
                    "nodule": nod.id,
                    "patient_id": nod.patient_id,
                    "scan_id": nod.scan_id,
                    "series_uid": nod.series_uid,
                    "raters_present": nod.n_raters,
                    "annotation_ids": " ".join(map(str, nod.ann_ids)),
                    "largest_slice_z_mm": float(nod.z[k]),
                    "n_slices": len(nod.z),
                    "pixel_spacing_mm": nod.pixel_spacing,
                    "slice_spacing_mm": nod.slice_spacing,
                }
            )
        with open(tmp / "nodules.csv", "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["nodule"])
            w.writeheader()
            w.writerows(rows)
        (tmp / "CREDIT.txt").write_text(
            cache.credit
            + f"\n\nExported with missing={missing}, size={size}, spacing={spacing} mm, dims={dims}.\n"
        )
        for name in names:
            target, new = out / name, tmp / name
            if not new.exists():
                new.mkdir()  # nothing kept: an empty folder rather than a missing one
            if target.exists():
                old = tmp / f".old-{name}"
                os.replace(target, old)
            os.replace(new, target)
        return [r["nodule"] for r in rows]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
