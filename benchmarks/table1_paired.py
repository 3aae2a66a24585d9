"""Paired differences between CIMD and each baseline in a multi-seed ``cimd-table1`` run.

Reads the run's ``per_image.csv`` (one row per data set, model, seed and test image), averages each image's
metric over the seeds, and reports for every data set and metric the mean of CIMD − baseline over the test
images with its paired percentile-bootstrap 95% interval (images resampled, pairs kept;
:func:`ambiseg_metrics.files.paired_stats.paired_bootstrap_ci`) and, per seed, the sign of the mean
difference. Oriented so that a positive number means "CIMD better" for every metric (GED and GED vs.
truth are negated).

Run: ``python -m benchmarks.table1_paired docs/table1_results_matched/per_image.csv``
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict

import numpy as np

from ambiseg_metrics.files.paired_stats import paired_bootstrap_ci

METRICS = {"ged_true": "GED vs. truth", "ged": "GED", "ci": "CI", "max_dice_matching": "D_max",
           "hm_iou": "HM-IoU"}
LOWER_IS_BETTER = {"ged", "ged_true"}
LABELS = {"prob_unet": "Prob. U-Net", "phiseg": "PHiSeg", "gen_prob_unet": "Gen. Prob. U-Net"}


def load(path: str) -> dict[tuple[str, str, str], dict[str, dict[str, float]]]:
    """(data, model, metric) -> seed -> case -> value."""
    out: dict[tuple[str, str, str], dict[str, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            for metric in METRICS:
                if row.get(metric, "") not in ("", "nan"):
                    out[(row["data"], row["model"], metric)][row["seed"]][row["case"]] = float(row[metric])
    return out


def paired_table(path: str, reference: str = "cimd", n_boot: int = 10_000) -> str:
    """The Markdown table of CIMD − each baseline (see the module docstring)."""
    values = load(path)
    datas = sorted({d for d, _, _ in values})
    models = [m for m in LABELS if any(k[1] == m for k in values)]
    lines = ["| data | baseline | " + " | ".join(METRICS.values()) + " |",
             "|---|---|" + "---|" * len(METRICS)]
    for data in datas:
        for model in models:
            cells = []
            for metric in METRICS:
                ours, theirs = values.get((data, reference, metric)), values.get((data, model, metric))
                if not ours or not theirs:
                    cells.append("–")
                    continue
                seeds = sorted(set(ours) & set(theirs))
                shared = [set(ours[s]) & set(theirs[s]) for s in seeds]
                cases = sorted(set.intersection(*shared)) if shared else []
                if not cases:  # no seed, or no test image, in common: nothing to pair
                    cells.append("–")
                    continue
                a = np.array([[ours[s][c] for c in cases] for s in seeds])
                b = np.array([[theirs[s][c] for c in cases] for s in seeds])
                sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
                d = sign * (a - b)  # (seeds, cases), positive = the reference is better
                low, high = paired_bootstrap_ci(d.mean(axis=0), n_boot=n_boot, seed=0)
                wins = int((d.mean(axis=1) > 0).sum())
                cells.append(f"{d.mean():+.3f} [{low:+.3f}, {high:+.3f}] ({wins}/{len(seeds)})")
            lines.append(f"| {data} | {LABELS[model]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.table1_paired",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("per_image", help="per_image.csv of a cimd-table1 run with several seeds")
    ap.add_argument("--n-boot", type=int, default=10_000)
    args = ap.parse_args(argv)
    print(paired_table(args.per_image, n_boot=args.n_boot))
    print("\nCells: mean of CIMD − baseline over test images (each image averaged over the seeds), oriented "
          "so that > 0 favours CIMD, [paired bootstrap 95% interval over images] (seeds in which CIMD's "
          "mean is better / seeds).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
