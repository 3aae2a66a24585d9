"""DDPM vs DDIM for a trained CIMD checkpoint: wall time and quality (GED, CI) per sampler setting.

Every setting samples the same images with the same seed, ``n`` masks per image in one batch of
``B * n`` per step, and is scored with :func:`ambiseg_metrics.evaluate` (masks thresholded at 0.5)
against the stored annotations. The wall time counts ``model.sample`` calls only (not data loading or
metrics).

Example (the numbers in ``docs/cimd_sampling.md``)::

    cimd-train --model cimd --data ambiblobs-ct --out runs/cimd-small
    python benchmarks/cimd_sampling.py --checkpoint runs/cimd-small/checkpoint.pt \\
        --limit 8 --n 8 --settings ddpm:1000,ddim:50,ddim:25,ddim:10 --json cimd_sampling.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from typing import Any

import numpy as np
import torch

from ambiseg_metrics import evaluate
from cimd_model.data import load_dataset
from cimd_model.train import load_model


def parse_settings(text: str) -> list[tuple[str, int]]:
    """``"ddpm:1000,ddim:50"`` -> ``[("ddpm", 1000), ("ddim", 50)]``."""
    out = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        name, _, steps = item.partition(":")
        if name not in ("ddpm", "ddim") or not steps.isdigit():
            raise ValueError(f"--settings: expected items like ddpm:1000 or ddim:50, got {item!r}")
        out.append((name, int(steps)))
    if not out:
        raise ValueError("--settings is empty")
    return out


def run(
    checkpoint: str,
    data: str | None,
    split: str,
    limit: int,
    n: int,
    settings: list[tuple[str, int]],
    seed: int,
    eta: float,
    batch_size: int,
    json_path: str | None = None,
) -> dict[str, Any]:
    """Sample and score every setting; returns a JSON-serialisable report.

    With ``json_path`` the report is rewritten after every setting, so a long DDPM run that is cut
    short still leaves the finished rows.
    """
    model, ckpt = load_model(checkpoint)
    model.eval()
    if not hasattr(model, "set_sampling"):
        raise ValueError(
            f"checkpoint {checkpoint} holds a {model.name!r} model, which has no sampler options"
        )
    model.config["progress"] = False
    run_info = ckpt.get("run", {})
    spec = data or run_info.get("data")
    if not spec:
        raise ValueError("the checkpoint names no data set; pass --data")
    dataset = load_dataset(spec, split, seed=int(run_info.get("seed", 0)))
    count = min(limit, len(dataset))
    items = [dataset[i] for i in range(count)]
    gts = np.stack([it["masks"].numpy().astype(np.uint8) for it in items])
    rows: list[dict[str, Any]] = []
    report = {
        "checkpoint": str(checkpoint),
        "train_step": int(ckpt.get("step", -1)),
        "data": spec,
        "split": split,
        "images": count,
        "n": n,
        "seed": seed,
        "eta": eta,
        "torch_threads": torch.get_num_threads(),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "torch": torch.__version__,
        "rows": rows,
    }
    for sampler, steps in settings:
        model.set_sampling(sampler, steps, eta=eta)
        preds, elapsed = [], 0.0
        for b, start in enumerate(range(0, count, batch_size)):
            images = torch.stack([it["image"] for it in items[start : start + batch_size]])
            gen = torch.Generator().manual_seed(seed * 1_000_003 + b)
            t0 = time.perf_counter()
            probs = model.sample(images, n, generator=gen)
            elapsed += time.perf_counter() - t0
            preds.append(probs.numpy())
        pred = np.concatenate(preds)
        scores = evaluate(pred, gts, batch=True, metrics=["ged", "ci"], threshold=0.5)
        row = {
            "sampler": sampler,
            "steps": steps,
            "wall_s": elapsed,
            "s_per_image": elapsed / count,
            "ged_mean": float(np.mean(scores["ged"])),
            "ged_std": float(np.std(scores["ged"])),
            "ci_mean": float(np.mean(scores["ci"])),
            "ci_std": float(np.std(scores["ci"])),
        }
        rows.append(row)
        print(
            f"{sampler:>4} {steps:>5} steps: {elapsed:8.1f} s  "
            f"GED {row['ged_mean']:.4f}  CI {row['ci_mean']:.4f}",
            file=sys.stderr,
        )
        if json_path:
            with open(json_path, "w") as fh:
                json.dump(report, fh, indent=2)
    return report


def markdown_table(report: dict[str, Any]) -> str:
    """The report as a Markdown table; speed-up is relative to the row with the most steps."""
    lines = [
        "| sampler | steps | wall time (s) | s / step | speed-up | GED ↓ (mean ± sd) | CI ↑ (mean ± sd) |",
        "|---|---:|---:|---:|---:|---|---|",
    ]
    ref = max(report["rows"], key=lambda r: r["steps"])["wall_s"]
    for r in report["rows"]:
        lines.append(
            f"| {r['sampler'].upper()} | {r['steps']} | {r['wall_s']:.1f} | {r['wall_s'] / r['steps']:.2f} | "
            f"{ref / r['wall_s']:.1f}× | {r['ged_mean']:.3f} ± {r['ged_std']:.3f} | "
            f"{r['ci_mean']:.3f} ± {r['ci_std']:.3f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, help="CIMD checkpoint (cimd-train output)")
    p.add_argument("--data", default=None, help="data spec (default: the training data set)")
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--limit", type=int, default=8, help="number of test images")
    p.add_argument("--n", type=int, default=8, help="samples per image")
    p.add_argument("--settings", default="ddpm:1000,ddim:50,ddim:25,ddim:10")
    p.add_argument("--eta", type=float, default=0.0, help="DDIM eta")
    p.add_argument("--batch-size", type=int, default=8, help="images per sampling call")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    p.add_argument("--json", default=None, help="also write the report here")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    report = run(
        args.checkpoint,
        args.data,
        args.split,
        args.limit,
        args.n,
        parse_settings(args.settings),
        args.seed,
        args.eta,
        args.batch_size,
        args.json,
    )
    print(markdown_table(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
