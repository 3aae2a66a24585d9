"""Data sets of the Table 1 pipeline: ``--data`` parsing, folder keys, labels, loading (cached) and the
known annotation distribution of synthetic data."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .profiles import Profile

#: the paper data set each AmbiBlobs flavour stands in for
STANDS_IN_FOR = {"ambiblobs-ct": "LIDC-IDRI", "ambiblobs-us": "Bone ultrasound", "ambiblobs-mri": "MS-lesion"}
DEFAULT_DATA = ("ambiblobs-ct", "ambiblobs-us", "ambiblobs-mri")


# ------------------------------------------------------------------------------------------ data
def parse_data_specs(items: Sequence[str] | None) -> list[str]:
    """``--data`` values (repeatable, comma lists allowed) -> unique specs in order.

    A comma splits specs only where the next piece starts a known spec, so paths holding commas survive.
    """
    from ..data import SPECS

    def starts_spec(piece: str) -> bool:
        return any(piece.startswith(s) if s.endswith(":") else piece == s for s in SPECS)

    specs: list[str] = []
    for item in items or []:
        pieces = item.split(",")
        current: list[str] = []
        for piece in pieces:
            piece = piece.strip()
            if current and starts_spec(piece):
                specs.append(",".join(current))
                current = []
            if piece or current:
                current.append(piece)
        if current:
            specs.append(",".join(current))
    out = list(dict.fromkeys(s for s in specs if s))
    if not out:
        raise ValueError("--data: no data set given")
    return out


def data_key(spec: str) -> str:
    """Folder / column name of a data spec: ``ambiblobs-ct`` or ``<kind>-<file stem>`` for file specs."""
    from ..data.base import safe_id

    kind, sep, path = spec.partition(":")
    if not sep:
        return safe_id(spec)
    return safe_id(f"{kind}-{Path(path.rstrip('/')).stem or 'data'}")


def data_label(spec: str) -> str:
    """Display name of a data set (AmbiBlobs flavours name the paper data set they stand in for)."""
    if spec in STANDS_IN_FOR:
        flavour = spec.split("-", 1)[1].upper()
        return f"AmbiBlobs-{flavour} (synthetic, {STANDS_IN_FOR[spec]}-like)"
    kind = spec.partition(":")[0]
    return {
        "lidc-pickle": "LIDC-IDRI",
        "lidc-png": "LIDC-IDRI",
        "cimd-lidc": "LIDC-IDRI",
        "msmri": "MS-lesion",
        "lidc-raters": "LIDC-IDRI raters (real masks, no images)",
        "lidc-raters-sim": "LIDC-IDRI raters (real masks, semi-synthetic images)",
    }.get(kind, spec)


def loader_kwargs(spec: str, split: str, profile: Profile, data_kw: Mapping[str, Any]) -> dict[str, Any]:
    """Keywords for :func:`cimd_model.data.load_dataset`: ``data_kw`` plus, for AmbiBlobs, the profile's
    ``size`` and ``n_train`` / ``n_test``."""
    kw = dict(data_kw)
    if spec.startswith("ambiblobs-") and ":" not in spec:
        amb = profile.ambiblobs
        if amb.get("size") is not None:
            kw.setdefault("size", int(amb["size"]))
        n = amb.get("n_train" if split == "train" else "n_test")
        if n is not None:
            kw.setdefault("n", int(n))
    return kw


def load_split(spec: str, split: str, profile: Profile, seed: int, data_kw: Mapping[str, Any]):
    """Load one split of ``spec`` with :func:`loader_kwargs`."""
    from ..data import load_dataset

    return load_dataset(spec, split, seed=seed, **loader_kwargs(spec, split, profile, data_kw))


def known_modes(dataset, index: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(modes (J, H, W) bool, weights (J,)) of image ``index`` when the data set knows its distribution."""
    modes = getattr(dataset, "modes", None)
    if not callable(modes):
        return None
    pairs = modes(index)
    return np.stack([np.asarray(m, dtype=bool) for m, _ in pairs]), np.array([p for _, p in pairs])



_DATA_CACHE: dict[str, Any] = {}


def cached_split(spec: str, split: str, profile: Profile, seed: int, data_kw: Mapping[str, Any]):
    key = json.dumps(
        [spec, split, profile.name, dict(profile.ambiblobs), seed, dict(data_kw)], sort_keys=True
    )
    if key not in _DATA_CACHE:
        if len(_DATA_CACHE) >= 4:
            _DATA_CACHE.clear()
        _DATA_CACHE[key] = load_split(spec, split, profile, seed, data_kw)
    return _DATA_CACHE[key]



def n_test_images(spec: str, test_ds, prof: Profile) -> int:
    limit = len(test_ds) if prof.n_test is None else min(len(test_ds), int(prof.n_test))
    if limit < 1:
        raise ValueError(f"{spec}: the test split is empty")
    return limit


