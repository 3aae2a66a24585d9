"""Paired comparison of two ``cimd-table1`` runs on the same test images (the baselines' fidelity check).

Usage::

    python -m benchmarks.baseline_fidelity runs/fid_old/per_image.csv runs/fid_new/per_image.csv

For every model present in both runs and for ``ged_true`` (GED against the known AmbiBlobs mixture),
``ged`` and ``ci``: the means of both runs, the mean per-image difference (second − first) and its seeded
percentile-bootstrap 95% interval over the test images (10,000 resamples, seed 0). The interval covers the
choice of test images only, not the variation between training seeds.
"""

from __future__ import annotations

import argparse
import csv
import sys

import numpy as np

METRICS = ("ged_true", "ged", "ci")


def load(path: str) -> dict[str, dict[str, dict[str, float]]]:
    """model -> case -> metric -> value of a ``per_image.csv`` (one seed)."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            if "seed" in row:
                raise ValueError(f"{path}: a run of several seeds; compare one-seed runs")
            out.setdefault(row["model"], {})[row["case"]] = {k: float(row[k]) for k in METRICS if k in row}
    return out


def compare(first: str, second: str, n_boot: int = 10_000) -> list[str]:
    a, b = load(first), load(second)
    rng = np.random.default_rng(0)
    lines = []
    for model in [m for m in a if m in b]:
        cases = sorted(a[model])
        if sorted(b[model]) != cases:
            raise ValueError(f"{model}: the two runs have different test images")
        for metric in METRICS:
            x = np.array([a[model][c][metric] for c in cases])
            y = np.array([b[model][c][metric] for c in cases])
            d = y - x
            boot = d[rng.integers(0, d.size, (n_boot, d.size))].mean(axis=1)
            lo, hi = np.quantile(boot, [0.025, 0.975])
            lines.append(
                f"{model:14s} {metric:8s} first {x.mean():.3f}  second {y.mean():.3f}  "
                f"second-first {d.mean():+.3f} [95% {lo:+.3f}, {hi:+.3f}] (n = {d.size})"
            )
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.baseline_fidelity",
        description="Paired per-image comparison of two one-seed cimd-table1 runs (second minus first).",
    )
    p.add_argument("first", help="per_image.csv of the first run")
    p.add_argument("second", help="per_image.csv of the second run (same test images)")
    p.add_argument("--n-boot", type=int, default=10_000, help="bootstrap resamples")
    args = p.parse_args(argv)
    print("\n".join(compare(args.first, args.second, n_boot=args.n_boot)))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
