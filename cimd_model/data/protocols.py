"""Named LIDC-IDRI evaluation protocols: which slices train, validate and test, as published codes split them.

=========  ======================  ====================================================================
name       data it applies to      split
=========  ======================  ====================================================================
``ours``   every LIDC format       patient-level, seeded (``split_groups``: 70/15/15 of the patients);
                                   split folders shipped with a PNG / JPEG release are used as given
``kohl``   ``lidc-png:DIR``        the train/val/test folders of the PNG crop release of Kohl et al.
                                   (2018, §4: 722/144/144 patients); never re-drawn
``knegt``  ``lidc-pickle:FILE``    the use of the Prob. U-Net port's pickle (``data_lidc.pickle``) by
                                   PHiSeg and MoSE: ``np.unique`` of the ``series_uid`` values, test =
                                   ``train_test_split(test_size=0.2)``, then val =
                                   ``train_test_split(rest, test_size=0.2)``, both with MoSE's
                                   ``random_state=0`` (MoSE-AUSeg ``data/preprocess/lidc_data_loader.py``)
=========  ======================  ====================================================================

PHiSeg's own ``data/lidc_data_loader.py`` (baumgach/PHiSeg-code) makes the same two calls **without** a
``random_state``: its split cannot be reproduced, and ``knegt`` does not claim to be it -- it is MoSE's seeded
version of that recipe. CCDM's split is unseeded too and is not offered. The Generalized Prob. U-Net code
(``scripts/train.py``) shuffles *slices* (not patients) 60/20/20 with seed 42, which lets one patient's
slices reach both training and test; it is not offered either.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np

__all__ = [
    "KOHL_PATIENTS",
    "PROTOCOLS",
    "check_protocol",
    "knegt_split",
    "sklearn_train_test_split",
    "warn_kohl_counts",
]

#: protocol name -> one-line description
PROTOCOLS: dict[str, str] = {
    "ours": "patient-level seeded 70/15/15 split (shipped split folders used as given)",
    "kohl": "the train/val/test folders of Kohl et al.'s PNG release (722/144/144 patients)",
    "knegt": "PHiSeg/MoSE use of the pickle: series_uid, test 0.2 then val 0.2, random_state 0",
}

#: patients per split in Kohl et al. (2018), §4 (train, val, test)
KOHL_PATIENTS = {"train": 722, "val": 144, "test": 144}
#: the seed MoSE passes to both train_test_split calls
MOSE_RANDOM_STATE = 0


def check_protocol(protocol: str, allowed: Sequence[str], what: str) -> str:
    """``protocol`` if it is known and applies to ``what`` (a loader name), else a ``ValueError`` naming the
    data formats it does apply to."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown LIDC protocol {protocol!r}; choose one of {sorted(PROTOCOLS)}")
    if protocol not in allowed:
        fits = {
            "kohl": "lidc-png:DIR (the PNG release with its train/val/test folders)",
            "knegt": "lidc-pickle:FILE (the Prob. U-Net port's data_lidc.pickle)",
        }
        raise ValueError(f"LIDC protocol {protocol!r} does not apply to {what}; it needs {fits[protocol]}")
    return protocol


def sklearn_train_test_split(items: Sequence, test_size: float, random_state: int) -> tuple[list, list]:
    """``sklearn.model_selection.train_test_split(items, test_size=…, random_state=…)`` for one sequence
    (no shuffle options, no stratification), without importing scikit-learn.

    As scikit-learn's ``ShuffleSplit``: ``n_test = ceil(test_size * n)``, ``n_train = n - n_test``; one
    permutation of ``np.random.RandomState(random_state)``; test = its first ``n_test`` indices, train = the
    next ``n_train``; both returned in permutation order.
    """
    n = len(items)
    n_test = math.ceil(float(test_size) * n)
    n_train = n - n_test
    if n_test < 1 or n_train < 1:
        raise ValueError(f"cannot split {n} item(s) with test_size={test_size}: a part would be empty")
    perm = np.random.RandomState(int(random_state)).permutation(n)
    return [items[i] for i in perm[n_test : n_test + n_train]], [items[i] for i in perm[:n_test]]


def knegt_split(series_uids: Sequence[str], random_state: int = MOSE_RANDOM_STATE) -> dict[str, set[str]]:
    """The ``knegt`` protocol: split the distinct ``series_uid`` values as MoSE does (module docstring).

    Returns split name -> set of series uids.
    """
    unique = [str(u) for u in np.unique(np.asarray([str(u) for u in series_uids]))]
    train_val, test = sklearn_train_test_split(unique, 0.2, random_state)
    train, val = sklearn_train_test_split(train_val, 0.2, random_state)
    return {"train": set(train), "val": set(val), "test": set(test)}


def warn_kohl_counts(counts: dict[str, int], root: str) -> None:
    """Warn when the patients per split folder differ from Kohl et al.'s 722/144/144 (a partial copy)."""
    if any(counts.get(k) != v for k, v in KOHL_PATIENTS.items() if k in counts):
        warnings.warn(
            f"{root}: the split folders hold {counts} patients, not Kohl et al.'s {KOHL_PATIENTS}; "
            "results on this copy are not comparable with the published ones",
            stacklevel=3,
        )
