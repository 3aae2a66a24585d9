"""Draw ``n`` masks per test image from a trained model and write the "file per case" layout.

``write_samples`` writes ``<out>/<case_id>.npy`` = float32 (n, H, W) foreground probabilities and, with
``gts_out``, ``<gts_out>/<case_id>.npy`` = uint8 (M, H, W) annotations — exactly what ``ambiseg-eval preds/
gts/`` reads. Case ids come from the dataset (filesystem-safe and unique). Every file is written atomically.

Sampling is deterministic for a given ``(seed, batch_size)``: batch ``b`` uses a generator seeded with
``seed * 1_000_003 + b``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .base import AmbiguousSegModel
from .fileio import save_npy


def _generator(seed: int, batch: int, device: torch.device) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(int(seed) * 1_000_003 + int(batch))


@torch.no_grad()
def sample_dataset(
    model: AmbiguousSegModel,
    dataset,
    n: int,
    batch_size: int = 8,
    seed: int = 0,
    limit: int | None = None,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """Yield ``(case_id, probs float32 (n, H, W), annotations uint8 (M, H, W))`` for the dataset's images.

    Parameters
    ----------
    model : trained model (put in eval mode here)
    dataset : a :mod:`cimd_model.data` dataset
    n : samples per image
    batch_size : images per ``model.sample`` call
    seed : sampling seed
    limit : only the first ``limit`` images
    device : defaults to the model's device
    progress : tqdm bar over images
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if dataset.in_channels != model.in_channels:
        raise ValueError(
            f"dataset has {dataset.in_channels} image channels, "
            f"but the model was built for {model.in_channels}"
        )
    if device is None:
        first = next(model.parameters(), None)
        device = first.device if first is not None else torch.device("cpu")
    device = torch.device(device)
    model.to(device).eval()
    total = len(dataset) if limit is None else min(len(dataset), max(int(limit), 0))
    bar = tqdm(total=total, disable=not progress, desc=f"sample {model.name}", dynamic_ncols=True)
    try:
        for b, start in enumerate(range(0, total, batch_size)):
            items = [dataset[i] for i in range(start, min(start + batch_size, total))]
            images = torch.stack([it["image"] for it in items]).to(device)
            probs = model.sample(images, n, generator=_generator(seed, b, device))
            expected = (len(items), n, *images.shape[-2:])
            if tuple(probs.shape) != expected:
                raise ValueError(
                    f"{model.name}.sample returned shape {tuple(probs.shape)}, expected {expected}"
                )
            probs = probs.float().clamp_(0, 1).cpu().numpy()
            for it, p in zip(items, probs, strict=True):
                yield it["id"], p.astype(np.float32), it["masks"].numpy().astype(np.uint8)
            bar.update(len(items))
    finally:
        bar.close()


def write_samples(
    model: AmbiguousSegModel,
    dataset,
    n: int,
    out: str | os.PathLike,
    gts_out: str | os.PathLike | None = None,
    **kw,
) -> list[str]:
    """Sample the dataset (``kw`` as in :func:`sample_dataset`) and write one ``.npy`` per case.

    Returns the case ids written.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if gts_out is not None:
        gts_out = Path(gts_out)
        gts_out.mkdir(parents=True, exist_ok=True)
    ids = []
    for case_id, probs, gts in sample_dataset(model, dataset, n, **kw):
        save_npy(out / f"{case_id}.npy", probs)
        if gts_out is not None:
            save_npy(gts_out / f"{case_id}.npy", gts)
        ids.append(case_id)
    return ids
