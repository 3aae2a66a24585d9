"""The train and sample stages of one (data set, model) pair, each reusing earlier work when it matches.

A checkpoint is reused (or resumed) only when it was trained with the same model, training config, data
and seed; samples are reused only when their manifest matches the model, sampler settings and seeds.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..fileio import save_npy, write_json

SAMPLE_MANIFEST = "manifest.json"


# ------------------------------------------------------------------------------------------ train / sample
#: UI keys that configs written before the progress flag left them may carry; never part of a comparison
_IGNORED_CONFIG_KEYS = ("progress",)
#: config keys that only affect sampling: a checkpoint trained with other values is reused (and resampled)
SAMPLING_KEYS = ("sampler", "sampling_steps", "eta")


def _comparable(config: Mapping[str, Any], ignore: Sequence[str] = _IGNORED_CONFIG_KEYS) -> str:
    return json.dumps({k: v for k, v in config.items() if k not in ignore}, sort_keys=True)


def _training_config(config: Mapping[str, Any]) -> str:
    return _comparable(config, (*_IGNORED_CONFIG_KEYS, *SAMPLING_KEYS))


def _clear_model_dir(model_dir: Path) -> None:
    for pattern in ("checkpoint*.pt", "train_log.jsonl", "config.json"):
        for p in model_dir.glob(pattern):
            p.unlink()
    shutil.rmtree(model_dir / "samples", ignore_errors=True)


def train_or_load(
    name: str,
    config: dict[str, Any],
    train_ds,
    model_dir: Path,
    *,
    seed: int,
    run: dict[str, Any],
    retrain: bool,
    device: str,
    progress: bool,
):
    """Train ``name`` into ``model_dir`` -- or reuse / resume its checkpoint. Returns (model, status).

    A checkpoint trained with another config, data set or seed is an error (pass ``retrain=True``); the
    sampling keys (:data:`SAMPLING_KEYS`) may differ: the returned model samples with ``config``'s.
    """
    import torch

    from ..registry import build_model
    from ..train import LATEST, load_checkpoint, train

    latest = model_dir / LATEST
    steps = int(config["steps"])
    if retrain:
        _clear_model_dir(model_dir)
    status = "trained"
    if latest.is_file():
        ckpt = load_checkpoint(latest)
        theirs = (
            ckpt["model_name"],
            _training_config(ckpt["config"]),
            ckpt["run"].get("data"),
            json.dumps(ckpt["run"].get("data_kwargs"), sort_keys=True),
            int(ckpt["seed"]),
        )
        ours = (
            name,
            _training_config(config),
            run["data"],
            json.dumps(run["data_kwargs"], sort_keys=True),
            int(seed),
        )
        if theirs != ours:
            raise ValueError(
                f"{latest} was trained with another model/config/data/seed than this run asks for; "
                "pass --retrain to train again or choose another --out"
            )
        status = "reused" if int(ckpt["step"]) >= steps else f"resumed at step {int(ckpt['step'])}"
    torch.manual_seed(int(seed))  # the initial weights depend only on the seed, not on earlier work
    model = build_model(name, config, train_ds.in_channels)
    model.set_progress(progress)
    train(
        model,
        train_ds,
        model_dir,
        steps=steps,
        batch_size=int(config["batch_size"]),
        seed=seed,
        resume=True,
        run=run,
        device=device,
        progress=progress and status != "reused",
    )
    return model, status


def _manifest(
    model, step: int, n: int, seed: int, batch_size: int, ids: Sequence[str], data: Mapping[str, Any]
) -> dict[str, Any]:
    return {
        "model": model.name,
        "data": dict(data),
        "config": json.loads(_comparable(model.config)),
        "checkpoint_step": int(step),
        "n_samples": int(n),
        "seed": int(seed),
        "sample_batch_size": int(batch_size),
        "ids": list(ids),
    }


def sample_or_reuse(
    model,
    test_ds,
    samples_dir: Path,
    *,
    step: int,
    n: int,
    seed: int,
    batch_size: int,
    limit: int,
    progress: bool,
    data: Mapping[str, Any],
) -> tuple[list[str], str]:
    """Write ``samples_dir/<case>.npy`` unless a manifest shows identical samples are there already."""
    from ..sample import write_samples

    ids = test_ds.ids[:limit]
    wanted = _manifest(model, step, n, seed, batch_size, ids, data)
    path = samples_dir / SAMPLE_MANIFEST
    if path.is_file():
        try:
            have = json.loads(path.read_text())
        except json.JSONDecodeError:
            have = None
        if have == wanted and all((samples_dir / f"{i}.npy").is_file() for i in ids):
            return ids, "reused"
        path.unlink()
    written = write_samples(
        model, test_ds, n, samples_dir, None, batch_size=batch_size, seed=seed, limit=limit, progress=progress
    )
    if written != ids:
        raise RuntimeError(f"sampler wrote cases {written[:3]}..., expected {ids[:3]}...")
    write_json(path, wanted)
    return ids, "sampled"


def write_gts(test_ds, gts_dir: Path, limit: int) -> list[str]:
    """Write ``gts_dir/<case>.npy`` = uint8 (M, H, W) annotations of the first ``limit`` test images."""
    gts_dir.mkdir(parents=True, exist_ok=True)
    ids = []
    for i in range(limit):
        item = test_ds[i]
        save_npy(gts_dir / f"{item['id']}.npy", item["masks"].numpy().astype(np.uint8))
        ids.append(item["id"])
    return ids


