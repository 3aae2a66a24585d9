"""LIDC-IDRI loaders for the three formats people actually have.

* :func:`load_lidc_pickle` – the pickle of the Probabilistic U-Net PyTorch port: a dict
  ``key -> {"image": (128, 128) float, "masks": [4 × (128, 128) binary], "series_uid": str}``.
* :func:`load_lidc_png` – the PNG crop tree of Kohl et al. / HPU-Net: ``images/<patient>/z-<z>_c<k>.png`` and
  ``gt/<patient>/z-<z>_c<k>_l<0..3>.png`` (180×180, centre-cropped to 128×128), optionally inside
  ``train/``, ``val/``, ``test/`` folders (then those splits are used as given).
* :func:`load_cimd_lidc` – the CIMD release: one folder per sample holding ``image_*.jpg`` and
  ``label0_*.jpg`` … ``label3_*.jpg``; labels are binarised at 0.5 of full scale (not ``> 0``, which turns
  JPEG ringing into foreground).

Unless a format ships its own split folders, the train/val/test split is drawn **per patient** (seeded,
:func:`~cimd_model.data.base.split_groups`), never per slice: slices of one patient never leak across splits.
``protocol=`` selects a published split instead (:mod:`.protocols`: ``kohl`` for the PNG release's folders,
``knegt`` for the pickle as PHiSeg / MoSE use it).
The patient of a slice is the ``LIDC-IDRI-NNNN`` id when the name contains one, else the format's grouping
(``series_uid`` for the pickle, the patient folder for the PNG tree, the sample folder's leading token for
CIMD's release).
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import imageio.v3 as iio
import numpy as np

from .base import ArrayDataset, binarise, check_split, split_groups
from .protocols import check_protocol, knegt_split, warn_kohl_counts

_PATIENT = re.compile(r"LIDC-IDRI-\d+", re.IGNORECASE)
_SPLIT_DIRS = {
    "train": ("train", "training"),
    "val": ("val", "validation", "valid"),
    "test": ("test", "testing"),
}


def _existing(path: str | Path, what: str) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"{what} not found: {p}")
    return p


def _patient_of(name: str, fallback: str) -> str:
    m = _PATIENT.search(name)
    return m.group(0).upper() if m else fallback


def _predefined_split_dir(root: Path, split: str, marker: Callable[[Path], bool]) -> Path | None:
    """``root/<split alias>`` when the tree ships its own splits (``marker``: what a split folder holds)."""
    found = [root / a for names in _SPLIT_DIRS.values() for a in names if marker(root / a)]
    if not found:
        return None
    for alias in _SPLIT_DIRS[split]:
        if marker(root / alias):
            return root / alias
    raise FileNotFoundError(f"{root} ships split folders ({[p.name for p in found]}) but none for {split!r}")


def centre_crop(a: np.ndarray, size: int, what: str) -> np.ndarray:
    """Centre-crop the last two axes of ``a`` to ``size`` × ``size``."""
    h, w = a.shape[-2:]
    if h < size or w < size:
        raise ValueError(f"{what}: {h}x{w} is smaller than the crop size {size}")
    top, left = (h - size) // 2, (w - size) // 2
    return a[..., top : top + size, left : left + size]


def _read_gray(path: Path) -> np.ndarray:
    try:
        a = np.asarray(iio.imread(path))
    except Exception as exc:  # noqa: BLE001 - re-raised with the file name
        raise ValueError(f"cannot read image {path}: {exc}") from exc
    if a.ndim == 3:  # RGB(A) export of a grey image
        a = a[..., :3].mean(axis=-1)
    if a.ndim != 2:
        raise ValueError(f"{path}: expected a 2-D grey image, got shape {a.shape}")
    return a


def _to_unit(a: np.ndarray) -> np.ndarray:
    a = a.astype(np.float32)
    return a / 255.0 if a.size and a.max() > 1.0 else a


def _assemble(records: list[tuple[str, np.ndarray, np.ndarray]], name: str) -> ArrayDataset:
    if not records:
        raise ValueError(f"{name}: no samples in this split")
    shapes = {(r[1].shape, r[2].shape) for r in records}
    if len(shapes) != 1:
        raise ValueError(f"{name}: samples have different shapes {sorted(shapes)[:4]}; crop them to one size")
    images = np.stack([r[1] for r in records])
    masks = np.stack([r[2] for r in records])
    return ArrayDataset(images, masks, [r[0] for r in records], name=name)


def _take_split(groups: Sequence[str], split: str, seed: int, fractions) -> np.ndarray:
    chosen = split_groups(groups, seed, fractions)[split]
    return np.array([g in chosen for g in groups], dtype=bool)


# ------------------------------------------------------------------------------------------ pickle
def load_lidc_pickle(
    path: str | Path,
    split: str,
    seed: int = 0,
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
    n_annotators: int = 4,
    protocol: str = "ours",
) -> ArrayDataset:
    """One split of the Probabilistic U-Net port's LIDC pickle (only load pickles you trust).

    Parameters
    ----------
    path : the ``.pickle`` file
    split : ``"train"``, ``"val"`` or ``"test"`` (patient-level, seeded)
    seed, fractions : split seed and train/val/test fractions (``protocol="ours"``)
    n_annotators : annotations expected per slice
    protocol : ``"ours"`` or ``"knegt"`` (by ``series_uid`` as PHiSeg / MoSE; ``seed`` and ``fractions``
        do not apply), see :mod:`.protocols`
    """
    check_split(split)
    check_protocol(protocol, ("ours", "knegt"), "lidc-pickle")
    p = _existing(path, "LIDC pickle")
    if not p.is_file():
        raise ValueError(f"LIDC pickle path is not a file: {p}")
    try:
        data = pickle.loads(p.read_bytes())
    except Exception as exc:  # noqa: BLE001 - re-raised with the file name
        raise ValueError(f"cannot unpickle {p}: {exc}") from exc
    if not isinstance(data, dict) or not data:
        raise ValueError(f"{p}: expected a non-empty dict key -> {{'image', 'masks', 'series_uid'}}")
    keys = sorted(data, key=str)
    groups = []
    for k in keys:
        v = data[k]
        if not isinstance(v, dict) or not {"image", "masks"} <= set(v):
            raise ValueError(f"{p}: entry {k!r} lacks 'image'/'masks' (got {type(v).__name__})")
        if protocol == "knegt":
            if "series_uid" not in v:
                raise ValueError(f"{p}: entry {k!r} has no 'series_uid', which the knegt protocol splits by")
            groups.append(str(v["series_uid"]))
        else:
            groups.append(_patient_of(str(k), str(v.get("series_uid", k))))
    if protocol == "knegt":
        chosen = knegt_split(groups)[split]
        keep = np.array([g in chosen for g in groups], dtype=bool)
    else:
        keep = _take_split(groups, split, seed, fractions)
    records = []
    for k, use in zip(keys, keep, strict=True):
        if not use:
            continue
        v = data[k]
        image = np.asarray(v["image"], dtype=np.float32)
        masks = np.stack([binarise(m) for m in v["masks"]])
        if image.ndim != 2 or masks.shape[0] != n_annotators or masks.shape[1:] != image.shape:
            raise ValueError(
                f"{p}: entry {k!r} has image {image.shape} and masks {masks.shape}; "
                f"expected (H, W) and ({n_annotators}, H, W)"
            )
        records.append((str(k), image[None], masks))
    return _assemble(records, f"lidc-pickle/{split}")


# ------------------------------------------------------------------------------------------ PNG tree
def _png_tree_root(root: Path) -> bool:
    return (root / "images").is_dir() and (root / "gt").is_dir()


def load_lidc_png(
    root: str | Path,
    split: str,
    seed: int = 0,
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
    crop: int = 128,
    n_annotators: int = 4,
    protocol: str = "ours",
) -> ArrayDataset:
    """One split of the Kohl et al. / HPU-Net LIDC PNG crop tree (see the module docstring).

    Parameters
    ----------
    root : folder holding ``images/`` and ``gt/`` (or ``train/``, ``val/``, ``test/`` folders that do)
    split : ``"train"``, ``"val"`` or ``"test"``
    seed, fractions : patient-level split (ignored when the tree ships split folders)
    crop : centre-crop side (180×180 crops -> 128×128)
    n_annotators : labels per slice (``_l0`` … ``_l{n-1}``)
    protocol : ``"ours"`` or ``"kohl"`` (the release's own train/val/test folders, required; a warning when
        they do not hold 722/144/144 patients), see :mod:`.protocols`
    """
    check_split(split)
    check_protocol(protocol, ("ours", "kohl"), "lidc-png")
    root = _existing(root, "LIDC PNG tree")
    given = _predefined_split_dir(root, split, _png_tree_root)
    if protocol == "kohl" and given is None:
        raise FileNotFoundError(
            f"{root}: the kohl protocol is the PNG release's own split; expected train/, val/ and test/ "
            "folders holding images/ and gt/ (this tree has none, so its split would be ours, not Kohl's)"
        )
    base = given or root
    if not _png_tree_root(base):
        raise FileNotFoundError(
            f"{root}: expected images/ and gt/ folders (or train/, val/, test/ holding them)"
        )
    entries = []  # (patient, file name without .png) -- names like "z-105.0_c0" hold dots
    for img in sorted((base / "images").glob("*/*.png")):
        entries.append((img.parent.name, img.name[: -len(".png")]))
    if not entries:
        raise ValueError(f"{base / 'images'}: no <patient>/*.png images")
    if given is None:
        keep = _take_split([_patient_of(e[0], e[0]) for e in entries], split, seed, fractions)
    else:
        keep = np.ones(len(entries), dtype=bool)
        if protocol == "kohl":
            warn_kohl_counts({split: len({e[0] for e in entries})}, str(root))
    records = []
    for (patient, stem), use in zip(entries, keep, strict=True):
        if not use:
            continue
        image = _to_unit(_read_gray(base / "images" / patient / f"{stem}.png"))
        masks = []
        for l in range(n_annotators):
            gt = base / "gt" / patient / f"{stem}_l{l}.png"
            if not gt.is_file():
                raise FileNotFoundError(f"missing annotation {gt} for image {patient}/{stem}.png")
            masks.append(binarise(_read_gray(gt)))
        image = centre_crop(image, crop, f"{patient}/{stem}")[None]
        masks = centre_crop(np.stack(masks), crop, f"{patient}/{stem}")
        records.append((f"{patient}_{stem}", image, masks))
    return _assemble(records, f"lidc-png/{split}")


# ------------------------------------------------------------------------------------------ CIMD release
def _cimd_files(folder: Path, n_annotators: int) -> tuple[Path, list[Path]] | None:
    imgs = sorted(folder.glob("image_*.jpg"))
    if not imgs:
        return None
    labels = []
    for l in range(n_annotators):
        found = sorted(folder.glob(f"label{l}_*.jpg"))
        if not found:
            raise FileNotFoundError(f"{folder}: has {imgs[0].name} but no label{l}_*.jpg")
        labels.append(found[0])
    return imgs[0], labels


def _has_samples(path: Path) -> bool:
    return path.is_dir() and any(path.rglob("image_*.jpg"))


def load_cimd_lidc(
    root: str | Path,
    split: str,
    seed: int = 0,
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
    n_annotators: int = 4,
    crop: int | None = None,
    protocol: str = "ours",
) -> ArrayDataset:
    """One split of CIMD's LIDC release (per-sample folders of ``image_*.jpg`` + ``label<k>_*.jpg``).

    Parameters
    ----------
    root : folder holding the sample folders (at any depth), or ``train/``, ``val/``, ``test/`` folders
        that do
    split : ``"train"``, ``"val"`` or ``"test"``
    seed, fractions : patient-level split (ignored when the release ships split folders)
    n_annotators : labels per sample
    crop : optional centre-crop side
    protocol : only ``"ours"`` (the published protocols are defined on the other two formats)
    """
    check_split(split)
    check_protocol(protocol, ("ours",), "cimd-lidc")
    root = _existing(root, "CIMD LIDC release")
    given = _predefined_split_dir(root, split, _has_samples)
    base = given or root
    folders = sorted({p.parent for p in base.rglob("image_*.jpg")})
    if not folders:
        raise ValueError(f"{base}: no sample folders with image_*.jpg")
    groups = []
    for f in folders:
        rel = f.relative_to(base).as_posix()
        groups.append(_patient_of(rel, re.split(r"[_\-]", f.name)[0] if len(folders) > 1 else f.name))
    keep = _take_split(groups, split, seed, fractions) if given is None else np.ones(len(folders), bool)
    records = []
    for folder, use in zip(folders, keep, strict=True):
        if not use:
            continue
        files = _cimd_files(folder, n_annotators)
        if files is None:
            continue
        image = _to_unit(_read_gray(files[0]))[None]
        masks = np.stack([binarise(_read_gray(lab), 0.5) for lab in files[1]])
        if crop:
            image, masks = centre_crop(image, crop, str(folder)), centre_crop(masks, crop, str(folder))
        records.append((folder.relative_to(base).as_posix(), image, masks))
    return _assemble(records, f"cimd-lidc/{split}")
