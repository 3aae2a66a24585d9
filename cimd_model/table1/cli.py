"""The ``cimd-table1`` command line."""

from __future__ import annotations

import argparse
import dataclasses
import sys

from ..registry import parse_assignments
from .pipeline import run_table1
from .profiles import MODELS, PROFILES
from .specs import DEFAULT_DATA, parse_data_specs


# ------------------------------------------------------------------------------------------ CLI
def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cimd-table1",
        description="Reproduce Table 1 of CIMD: train (or reuse) Prob. U-Net, PHiSeg, Generalized Prob. "
        "U-Net "
        "and CIMD, sample n masks per test image, evaluate with ambiseg_metrics, write table1.md/csv and "
        "figures. Profiles: " + "; ".join(f"{p.name}: {p.description}" for p in PROFILES.values()),
    )
    p.add_argument(
        "--data",
        action="append",
        default=None,
        help="data spec(s), repeatable or comma-separated (default: " + ",".join(DEFAULT_DATA) + ")",
    )
    p.add_argument("--config", default="cpu-small", choices=sorted(PROFILES), help="run profile")
    p.add_argument("--n-samples", type=int, default=None, help="samples per test image (default: profile's)")
    p.add_argument("--out", default="runs/table1", help="output folder")
    p.add_argument("--models", default=",".join(MODELS), help="comma-separated subset of the four models")
    p.add_argument("--seed", type=int, default=0, help="seed of data, training, sampling and bootstrap")
    p.add_argument(
        "--seeds",
        default=None,
        metavar="S1,S2,...",
        help="train and sample every model once per seed (>= 3 for an interval over seeds; the data and the "
        "bootstrap keep --seed); the tables give mean and 95%% intervals over images and over seeds "
        "(default: the profile's seeds, else --seed)",
    )
    p.add_argument(
        "--protocol",
        default="ours",
        metavar="{ours,kohl,knegt}",
        help="LIDC split protocol (cimd_model.data.protocols): ours = patient-level seeded 70/15/15; kohl = "
        "the train/val/test folders of Kohl et al.'s PNG release (lidc-png); knegt = PHiSeg/MoSE's use of "
        "the pickle, by series_uid with MoSE's random_state 0 (lidc-pickle)",
    )
    p.add_argument(
        "--steps",
        type=int,
        default=None,
        help="the same number of training steps for every model (a matched budget; default: the profile's)",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="the same training batch size for every model (default: the profile's, else each model's)",
    )
    p.add_argument("--retrain", action="store_true", help="ignore existing checkpoints and samples")
    p.add_argument("--data-arg", action="append", metavar="KEY=VALUE", help="keyword for the data loaders")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="train/sample the (data set, model) pairs in this many processes, 1 torch thread each "
        "(same results; e.g. 2 on a 2-core CPU)",
    )
    p.add_argument("--n-boot", type=int, default=10_000, help="bootstrap resamples for the 95%% CIs")
    p.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--quiet", action="store_true", help="no log lines")
    return p


def main(argv: list[str] | None = None) -> int:
    """``cimd-table1``: returns 0 on success, 2 on a usage / data error."""
    args = parser().parse_args(argv)
    import torch

    if args.threads is not None:
        torch.set_num_threads(int(args.threads))
    shown = " ".join(argv if argv is not None else sys.argv[1:])
    try:
        specs = parse_data_specs(args.data or [",".join(DEFAULT_DATA)])
        profile = PROFILES[args.config]
        budget = {k: v for k, v in (("steps", args.steps), ("batch_size", args.batch_size)) if v is not None}
        if any(v < 1 for v in budget.values()):
            raise ValueError(f"--steps and --batch-size must be >= 1, got {budget}")
        if budget:
            profile = dataclasses.replace(profile, budget={**profile.budget, **budget})
        seeds = None
        if args.seeds is not None:
            try:
                seeds = [int(x) for x in args.seeds.split(",") if x.strip()]
            except ValueError:
                raise ValueError(f"--seeds expects comma-separated integers, got {args.seeds!r}") from None
        result = run_table1(
            specs,
            args.out,
            profile=profile,
            n_samples=args.n_samples,
            models=[m.strip() for m in args.models.split(",") if m.strip()],
            seed=args.seed,
            seeds=seeds,
            protocol=args.protocol,
            retrain=args.retrain,
            device=args.device,
            progress=not args.no_progress,
            figures=not args.no_figures,
            data_kwargs=parse_assignments(args.data_arg, "--data-arg"),
            n_boot=args.n_boot,
            jobs=args.jobs,
            command=f"cimd-table1 {shown}".strip(),
            quiet=args.quiet,
        )
    except (ValueError, FileNotFoundError) as exc:
        print(f"cimd-table1: error: {exc}", file=sys.stderr)
        return 2
    if not args.quiet:
        print(result["paths"]["md"].read_text())
    return 0

