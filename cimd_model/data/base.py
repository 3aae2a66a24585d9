"""The one dataset interface of :mod:`cimd_model`: an image with *all* of its annotations.

Items are dicts ``{"image": float32 (C, H, W), "masks": float32 (M, H, W) in {0, 1}, "id": str}``.
Training picks one of the ``M`` annotations at random (:mod:`cimd_model.train`), evaluation uses all of them
(:mod:`cimd_model.sample`). Every loader of :mod:`cimd_model.data` returns an :class:`ArrayDataset` holding
the split in memory (the data sets of the paper are small: 128×128 crops / 2-D slices).
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

SPLITS = ("train", "val", "test")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_id(raw: str) -> str:
    """A filesystem-safe version of a case id (anything outside ``[A-Za-z0-9._-]`` becomes ``_``)."""
    out = _UNSAFE.sub("_", str(raw)).strip("._")
    return out or "case"


def unique_ids(raw_ids: Sequence[str]) -> list[str]:
    """Make ids filesystem-safe and unique (``x``, ``x-1``, ``x-2`` … for collisions)."""
    seen: dict[str, int] = {}
    out = []
    for r in raw_ids:
        base = safe_id(r)
        cand, k = base, 0
        while cand in seen:
            k += 1
            cand = f"{base}-{k}"
        seen[cand] = 1
        out.append(cand)
    return out


class AmbiguousSegDataset(Dataset):
    """Abstract interface: ``len``, ``__getitem__`` -> item dict, ``in_channels``, ``n_annotators``,
    ``ids``."""

    in_channels: int
    n_annotators: int

    @property
    def ids(self) -> list[str]:
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError

    def __getitem__(self, index: int) -> dict:
        raise NotImplementedError


class ArrayDataset(AmbiguousSegDataset):
    """In-memory dataset from arrays.

    Parameters
    ----------
    images : (N, C, H, W) array
    masks : (N, M, H, W) array, values in {0, 1} (bool or numeric)
    ids : N strings (made filesystem-safe and unique)
    name : str
        A label for messages.
    """

    def __init__(
        self, images: np.ndarray, masks: np.ndarray, ids: Sequence[str], name: str = "dataset"
    ) -> None:
        images = np.asarray(images)
        masks = np.asarray(masks)
        if images.ndim != 4:
            raise ValueError(f"{name}: images must be (N, C, H, W), got shape {images.shape}")
        if masks.ndim != 4:
            raise ValueError(f"{name}: masks must be (N, M, H, W), got shape {masks.shape}")
        if images.shape[0] != masks.shape[0] or images.shape[2:] != masks.shape[2:]:
            raise ValueError(f"{name}: images {images.shape} and masks {masks.shape} disagree on N or (H, W)")
        if len(ids) != images.shape[0]:
            raise ValueError(f"{name}: {len(ids)} ids for {images.shape[0]} images")
        m = masks.astype(np.float32)
        if not np.all((m == 0) | (m == 1)):
            raise ValueError(f"{name}: masks must be binary (0/1); binarise them in the loader")
        self.name = name
        self.images = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
        self.masks = torch.from_numpy(np.ascontiguousarray(m))
        self._ids = unique_ids(list(ids))
        self.in_channels = int(images.shape[1])
        self.n_annotators = int(masks.shape[1])

    @property
    def ids(self) -> list[str]:
        return list(self._ids)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, index: int) -> dict:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {self.name} of length {len(self)}")
        return {"image": self.images[index], "masks": self.masks[index], "id": self._ids[index]}

    def __repr__(self) -> str:
        c, h, w = self.images.shape[1:]
        return f"ArrayDataset({self.name!r}, n={len(self)}, C={c}, M={self.n_annotators}, {h}x{w})"


def split_groups(
    groups: Sequence[Hashable], seed: int = 0, fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
) -> dict[str, set]:
    """Seeded group-level (patient-level) train/val/test split.

    Every distinct group goes to exactly one split, so slices of one patient never leak across splits.
    With at least 3 groups every split gets at least one.
    """
    if len(fractions) != 3 or min(fractions) < 0 or sum(fractions) <= 0:
        raise ValueError(f"fractions must be three non-negative numbers, got {fractions}")
    uniq = sorted({str(g) for g in groups})
    if not uniq:
        raise ValueError("no groups (patients) to split")
    order = np.random.default_rng(seed).permutation(len(uniq))
    uniq = [uniq[i] for i in order]
    n = len(uniq)
    fr = np.asarray(fractions, dtype=float) / sum(fractions)
    n_val, n_test = int(round(fr[1] * n)), int(round(fr[2] * n))
    if n >= 3:
        n_val, n_test = max(n_val, 1 if fr[1] > 0 else 0), max(n_test, 1 if fr[2] > 0 else 0)
    n_train = max(n - n_val - n_test, 0)
    return {
        "train": set(uniq[:n_train]),
        "val": set(uniq[n_train : n_train + n_val]),
        "test": set(uniq[n_train + n_val :]),
    }


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return split


def binarise(mask: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Binarise a stored annotation: 8-bit files (max > 1) are scaled to [0, 1] first, then ``> threshold``.

    JPEG-compressed masks have ringing; thresholding at 0.5 (not ``> 0``) keeps the drawn shape.
    """
    m = np.asarray(mask, dtype=np.float32)
    if m.size and m.max() > 1.0:
        m = m / 255.0
    return m > threshold
