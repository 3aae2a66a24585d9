"""Command-line entry points: ``cimd-train``, ``cimd-sample`` (and ``cimd-table1``, which lives in
:mod:`cimd_model.table1.cli`). Model configs and ``--set`` parsing come from :mod:`cimd_model.registry`.

Examples
--------
::

    cimd-train --model prob_unet --data ambiblobs-ct --config cpu-small --out runs/pu
    cimd-train --model prob_unet --data ambiblobs-ct --out runs/pu --resume --steps 1200
    cimd-sample --checkpoint runs/pu/checkpoint.pt --split test --n 16 --out preds/ --gts-out gts/
    ambiseg-eval preds/ gts/
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .registry import MODELS, parse_assignments, resolve_config


def _device(name: str | None) -> str:
    import torch

    if name:
        return name
    return "cuda" if torch.cuda.is_available() else "cpu"


# ------------------------------------------------------------------------------------------ cimd-train
def train_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cimd-train", description="Train a model of cimd_model on a data set.")
    p.add_argument("--model", required=True, choices=sorted(MODELS), help="registered model name")
    p.add_argument("--data", required=True, help="data spec, e.g. ambiblobs-ct or lidc-pickle:/path/x.pickle")
    p.add_argument("--config", default="cpu-small", help="named config of the model (cpu-small | paper)")
    p.add_argument("--out", required=True, help="output folder (checkpoint.pt, config.json, train_log.jsonl)")
    p.add_argument("--steps", type=int, default=None, help="total optimizer steps (default: from the config)")
    p.add_argument("--batch-size", type=int, default=None, help="images per step (default: from the config)")
    p.add_argument("--seed", type=int, default=0, help="seed for data order, annotation choice and model RNG")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt if it exists")
    p.add_argument(
        "--set", dest="overrides", action="append", metavar="KEY=VALUE", help="override a config key"
    )
    p.add_argument("--data-arg", action="append", metavar="KEY=VALUE", help="keyword for the data loader")
    p.add_argument("--ckpt-every", type=int, default=None, help="steps between checkpoints")
    p.add_argument("--log-every", type=int, default=10, help="steps between log lines")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def train_main(argv: list[str] | None = None) -> int:
    """``cimd-train``: returns 0 on success, 2 on a usage / data error."""
    args = train_parser().parse_args(argv)
    from .data import load_dataset
    from .registry import build_model
    from .train import LATEST, load_checkpoint, seed_everything, train

    try:
        out = Path(args.out)
        data_kw = parse_assignments(args.data_arg, "--data-arg")
        if args.resume and (out / LATEST).is_file():
            ckpt = load_checkpoint(out / LATEST)
            run = ckpt["run"]
            if run.get("model", ckpt["model_name"]) != args.model:
                raise ValueError(f"{out / LATEST} holds a {ckpt['model_name']!r} model, not {args.model!r}")
            config = dict(ckpt["config"])
            if args.steps is not None:
                config["steps"] = int(args.steps)
            data_spec, data_kw = run.get("data", args.data), run.get("data_kwargs", data_kw)
            seed, config_name = int(ckpt["seed"]), run.get("config_name", args.config)
        else:
            config = resolve_config(
                args.model,
                args.config,
                parse_assignments(args.overrides, "--set"),
                args.steps,
                args.batch_size,
            )
            data_spec, seed, config_name = args.data, args.seed, args.config
        dataset = load_dataset(data_spec, "train", seed=seed, **data_kw)
        seed_everything(seed)  # the initial weights are part of the seeded run
        model = build_model(args.model, config, dataset.in_channels)
    except (ValueError, FileNotFoundError, FileExistsError) as exc:
        print(f"cimd-train: error: {exc}", file=sys.stderr)
        return 2
    run = {
        "model": args.model,
        "config_name": config_name,
        "data": data_spec,
        "data_kwargs": data_kw,
        "seed": seed,
        "n_train": len(dataset),
        "n_annotators": dataset.n_annotators,
    }
    try:
        result = train(
            model,
            dataset,
            out,
            steps=int(config["steps"]),
            batch_size=int(config["batch_size"]),
            seed=seed,
            resume=args.resume,
            ckpt_every=args.ckpt_every,
            log_every=args.log_every,
            run=run,
            device=_device(args.device),
            progress=not args.no_progress,
        )
    except (ValueError, FileExistsError) as exc:
        print(f"cimd-train: error: {exc}", file=sys.stderr)
        return 2
    logs = ", ".join(f"{k}={v:.4g}" for k, v in result["last"].items())
    print(f"cimd-train: {args.model} at step {result['step']} -> {result['checkpoint']} ({logs})")
    return 0


# ------------------------------------------------------------------------------------------ cimd-sample
def sample_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cimd-sample",
        description="Sample N masks per image; writes OUT/<case_id>.npy float32 (n, H, W) probabilities "
        "and, with --gts-out, GTS/<case_id>.npy uint8 (M, H, W) annotations (the layout ambiseg-eval reads).",
    )
    p.add_argument("--checkpoint", required=True, help="checkpoint file (or a training output folder)")
    p.add_argument("--data", default=None, help="data spec (default: the one the model was trained on)")
    p.add_argument("--data-arg", action="append", metavar="KEY=VALUE", help="keyword for the data loader")
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--n", type=int, default=16, help="samples per image")
    p.add_argument("--out", required=True, help="folder for the predictions")
    p.add_argument("--gts-out", default=None, help="folder for the annotations")
    p.add_argument("--limit", type=int, default=None, help="only the first K images")
    p.add_argument("--batch-size", type=int, default=8, help="images per sampling call")
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.add_argument("--sampler", default=None, help="sampler for models that have one (ddpm | ddim | dpm++)")
    p.add_argument("--sampling-steps", type=int, default=None, help="sampling steps for diffusion models")
    p.add_argument(
        "--eta", type=float, default=None, help="DDIM eta (0 = deterministic, 1 = DDPM-like variance)"
    )
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def sample_main(argv: list[str] | None = None) -> int:
    """``cimd-sample``: returns 0 on success, 2 on a usage / data error."""
    args = sample_parser().parse_args(argv)
    from .data import load_dataset
    from .sample import write_samples
    from .train import load_model

    device = _device(args.device)
    try:
        model, ckpt = load_model(args.checkpoint, map_location=device)
        run = ckpt.get("run", {})
        data_spec = args.data or run.get("data")
        if not data_spec:
            raise ValueError("the checkpoint names no data set; pass --data")
        data_kw = dict(run.get("data_kwargs", {})) if args.data is None else {}
        data_kw.pop("n", None)  # the training-set size does not apply to other splits
        data_kw.update(parse_assignments(args.data_arg, "--data-arg"))
        if args.sampler is not None or args.sampling_steps is not None or args.eta is not None:
            if not hasattr(model, "set_sampling"):
                raise ValueError(
                    f"model {model.name!r} has no sampler options (--sampler/--sampling-steps/--eta)"
                )
            model.set_sampling(
                args.sampler or model.config.get("sampler"),
                int(args.sampling_steps or model.config.get("sampling_steps")),
                eta=args.eta,
            )
        model.set_progress(not args.no_progress)  # e.g. the diffusion sampler's per-step bar
        dataset = load_dataset(data_spec, args.split, seed=int(run.get("seed", 0)), **data_kw)
        ids = write_samples(
            model,
            dataset,
            args.n,
            args.out,
            args.gts_out,
            batch_size=args.batch_size,
            seed=args.seed,
            limit=args.limit,
            progress=not args.no_progress,
        )
    except (ValueError, FileNotFoundError) as exc:
        print(f"cimd-sample: error: {exc}", file=sys.stderr)
        return 2
    extra = f" and {len(ids)} annotation files to {args.gts_out}" if args.gts_out else ""
    print(f"cimd-sample: wrote {len(ids)} prediction files ({args.n} samples each) to {args.out}{extra}")
    return 0


# ------------------------------------------------------------------------------------------ cimd-table1
def table1_main(argv: list[str] | None = None) -> int | None:
    """``cimd-table1``: delegates to :func:`cimd_model.table1.cli.main` (imported lazily)."""
    from .table1.cli import main

    return main(argv)
