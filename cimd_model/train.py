"""Generic, seeded, resumable training loop for every :class:`~cimd_model.base.AmbiguousSegModel`.

The loop only uses the base-class members (``training_loss``, ``make_optimizer``, ``on_train_step_end``,
``config``, ``name``, ``in_channels``), so any registered model trains with it.

Batches
-------
Step ``t`` (0-based) takes images ``t*B … (t+1)*B - 1`` of an endless sequence of per-epoch permutations
(epoch ``e`` is ``randperm(N)`` seeded by ``(seed, e)``), and for every image one of its ``M`` annotations
chosen uniformly at random with a generator seeded by ``(seed, t)`` (``config["annotation"] = "per-batch"``:
one annotator index for the whole batch); the same generator then draws the augmentation of
``config["augment"]`` (:mod:`cimd_model.augment`). All of it depends only on ``(seed, t)``, so a
resumed run sees exactly the batches an uninterrupted run would. Randomness inside the model (posterior
samples, diffusion noise, dropout) uses the global torch RNG, seeded once from ``seed`` and saved in every
checkpoint; a resumed run therefore reproduces an uninterrupted one bit for bit (on the same device).
The learning rate of step ``t`` is ``model.learning_rate(t)`` when the config has an ``lr_schedule``.

Checkpoint format (``torch.save`` of a plain dict, loadable with ``weights_only=True``)
-------------------------------------------------------------------------------------
=====================  ==============================================================================
``format``             ``"cimd_model-checkpoint/1"``
``model_name``         registry name (e.g. ``"prob_unet"``, ``"cimd"``, ``"cond-ddpm"``; see ``registry.py``)
``in_channels``        image channels the model was built for
``config``             the model's config dict (``model.config``)
``model_state``        ``model.state_dict()`` (tensors moved to CPU)
``optimizer_state``    ``optimizer.state_dict()``
``step``               number of optimizer steps taken
``seed``               the run seed
``torch_rng_state``    ``torch.get_rng_state()`` after the last step (``cuda_rng_state`` too on CUDA)
``run``                the run description of ``config.json`` (model, config name, data spec, data kwargs…)
``torch_version``      ``torch.__version__`` that wrote it
=====================  ==============================================================================

Files written under the output folder: ``checkpoint.pt`` (latest, rewritten every ``ckpt_every`` steps and
at the end), ``checkpoint_step<NNNNNNN>.pt`` (periodic snapshots, the ``keep`` most recent kept),
``config.json`` (run description) and ``train_log.jsonl`` (one JSON object per logged step). All files are
written atomically (:func:`ambiseg_metrics.files.atomic.atomic_write`: temporary file, fsync,
``os.replace``).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from ambiseg_metrics.files.atomic import atomic_write

from .augment import augment_batch, check_spec
from .base import AmbiguousSegModel
from .fileio import write_json

CHECKPOINT_FORMAT = "cimd_model-checkpoint/1"
LATEST = "checkpoint.pt"


# ------------------------------------------------------------------------------------------ file helpers


# ------------------------------------------------------------------------------------------ checkpoints
def _cpu_state(state: dict) -> dict:
    return {k: v.detach().cpu() if torch.is_tensor(v) else v for k, v in state.items()}


def make_checkpoint(
    model: AmbiguousSegModel,
    optimizer: torch.optim.Optimizer | None,
    step: int,
    seed: int,
    run: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The checkpoint dict (see the module docstring)."""
    ckpt: dict[str, Any] = {
        "format": CHECKPOINT_FORMAT,
        "model_name": model.name,
        "in_channels": int(model.in_channels),
        "config": dict(model.config),
        "model_state": _cpu_state(model.state_dict()),
        "optimizer_state": optimizer.state_dict() if optimizer is not None else None,
        "step": int(step),
        "seed": int(seed),
        "torch_rng_state": torch.get_rng_state(),
        "run": dict(run or {}),
        "torch_version": str(torch.__version__),
    }
    if torch.cuda.is_available():
        ckpt["cuda_rng_state"] = torch.cuda.get_rng_state_all()
    return ckpt


def save_checkpoint(path: str | os.PathLike, model, optimizer, step: int, seed: int, run=None) -> Path:
    """Write a checkpoint atomically; returns its path."""
    ckpt = make_checkpoint(model, optimizer, step, seed, run)
    atomic_write(path, lambda fh: torch.save(ckpt, fh), mkdir=True)
    return Path(path)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read and check a checkpoint dict (raises ``FileNotFoundError`` / ``ValueError`` naming the file)."""
    path = Path(path)
    if path.is_dir():
        path = path / LATEST
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - re-raised with the file name
        raise ValueError(f"cannot read checkpoint {path}: {exc}") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a cimd_model checkpoint (format {CHECKPOINT_FORMAT!r})")
    return ckpt


def load_model(
    path: str | os.PathLike, map_location: str | torch.device = "cpu"
) -> tuple[AmbiguousSegModel, dict[str, Any]]:
    """Rebuild the model of a checkpoint (via the registry) and load its weights; returns (model, ckpt)."""
    from .registry import build_model

    ckpt = load_checkpoint(path, map_location)
    model = build_model(ckpt["model_name"], ckpt["config"], ckpt["in_channels"])
    model.load_state_dict(ckpt["model_state"])
    return model.to(map_location), ckpt


# ------------------------------------------------------------------------------------------ batches
def _epoch_perm(n: int, seed: int, epoch: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(epoch))
    return torch.randperm(n, generator=g)


class _Batcher:
    """Builds training batches from any dataset of the interface: one random annotation per image
    (``annotation="per-image"``) or one random annotator index shared by the batch (``"per-batch"``, as
    Bhat et al.'s ``scripts/train.py``), then the model's ``augment`` spec (:mod:`cimd_model.augment`)."""

    def __init__(
        self,
        dataset,
        batch_size: int,
        seed: int,
        device: torch.device,
        augment: dict[str, Any] | None = None,
        annotation: str = "per-image",
    ) -> None:
        if len(dataset) == 0:
            raise ValueError("training dataset is empty")
        if annotation not in ("per-image", "per-batch"):
            raise ValueError(f"annotation choice must be 'per-image' or 'per-batch', got {annotation!r}")
        self.dataset, self.batch_size, self.seed, self.device = dataset, int(batch_size), int(seed), device
        self.n, self.m = len(dataset), int(dataset.n_annotators)
        self.augment, self.annotation = check_spec(augment), annotation
        self._perms: dict[int, torch.Tensor] = {}

    def _index(self, pos: int) -> int:
        epoch, k = divmod(pos, self.n)
        if epoch not in self._perms:
            self._perms = {epoch: _epoch_perm(self.n, self.seed, epoch)}
        return int(self._perms[epoch][k])

    def __call__(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        start = step * self.batch_size
        idx = [self._index(p) for p in range(start, start + self.batch_size)]
        g = torch.Generator().manual_seed(self.seed * 7_919 + 104_729 * int(step) + 1)
        ann = torch.randint(self.m, (self.batch_size,), generator=g)
        if self.annotation == "per-batch":
            ann = ann[:1].expand(self.batch_size)
        items = [self.dataset[i] for i in idx]
        images = torch.stack([it["image"] for it in items])
        masks = torch.stack([it["masks"][a] for it, a in zip(items, ann.tolist(), strict=True)])[:, None]
        if self.augment is not None:  # drawn after the annotation choice: same batches as before when off
            images, masks = augment_batch(images, masks, self.augment, g)
        return images.to(self.device), masks.to(self.device)


# ------------------------------------------------------------------------------------------ the loop
def _trim_log(path: Path, step: int) -> None:
    """Keep only the log lines up to ``step`` (lines of an interrupted run past its last checkpoint go)."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            if int(json.loads(line)["step"]) <= step:
                kept.append(line)
        except (ValueError, KeyError, TypeError):
            continue
    atomic_write(path, "".join(x + "\n" for x in kept))


def seed_everything(seed: int) -> None:
    """Seed the global torch RNG (CPU and CUDA)."""
    torch.manual_seed(int(seed))


def train(
    model: AmbiguousSegModel,
    dataset,
    out_dir: str | os.PathLike,
    steps: int,
    batch_size: int,
    seed: int = 0,
    resume: bool = False,
    ckpt_every: int | None = None,
    log_every: int = 10,
    keep: int = 3,
    run: dict[str, Any] | None = None,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> dict[str, Any]:
    """Train ``model`` on ``dataset`` for ``steps`` optimizer steps in total, checkpointing into ``out_dir``.

    Parameters
    ----------
    model : AmbiguousSegModel
    dataset : a :mod:`cimd_model.data` dataset (items with ``image`` (C,H,W) and ``masks`` (M,H,W))
    out_dir : folder for ``checkpoint.pt``, snapshots, ``config.json`` and ``train_log.jsonl``
    steps : total number of steps (a resumed run continues up to it)
    batch_size : images per step
    seed : seeds batches, annotation choice and the model's RNG
    resume : continue from ``out_dir/checkpoint.pt`` (model, optimizer, step, RNG state) if it exists
    ckpt_every : steps between checkpoints (default ``max(steps // 5, 50)``)
    log_every : steps between log lines
    keep : number of periodic snapshots kept
    run : run description stored in ``config.json`` and in checkpoints
    device : torch device
    progress : show a tqdm progress bar

    Returns
    -------
    dict with ``step`` (final step), ``last`` (mean logs over the last ``log_every`` steps), ``checkpoint``.
    """
    if steps < 0 or batch_size < 1:
        raise ValueError(
            f"steps must be >= 0 and batch_size >= 1, got steps={steps}, batch_size={batch_size}"
        )
    if dataset.in_channels != model.in_channels:
        raise ValueError(
            f"dataset has {dataset.in_channels} image channels, "
            f"but the model was built for {model.in_channels}"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    latest = out / LATEST
    device = torch.device(device)
    ckpt_every = int(ckpt_every or max(steps // 5, 50))
    run = dict(run or {})
    run.setdefault("model", model.name)
    run.setdefault("seed", int(seed))
    run["steps"], run["batch_size"] = int(steps), int(batch_size)

    model.to(device)
    optimizer = model.make_optimizer()
    step = 0
    if resume and latest.is_file():
        ckpt = load_checkpoint(latest, device)
        if ckpt["model_name"] != model.name:
            raise ValueError(f"{latest} holds a {ckpt['model_name']!r} model, not {model.name!r}")
        model.load_state_dict(ckpt["model_state"])
        if ckpt.get("optimizer_state") is not None:
            optimizer.load_state_dict(ckpt["optimizer_state"])
        step = int(ckpt["step"])
        seed = int(ckpt["seed"])
        torch.set_rng_state(ckpt["torch_rng_state"].cpu())
        if "cuda_rng_state" in ckpt and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(ckpt["cuda_rng_state"])
    else:
        if latest.exists() and not resume:
            raise FileExistsError(
                f"{latest} exists; pass resume=True (--resume) or choose another output folder"
            )
        seed_everything(seed)
    write_json(out / "config.json", {**run, "config": model.config, "in_channels": model.in_channels})

    batcher = _Batcher(
        dataset,
        batch_size,
        seed,
        device,
        augment=model.config.get("augment"),
        annotation=str(model.config.get("annotation", "per-image")),
    )
    scheduled = bool(model.config.get("lr_schedule"))
    log_path = out / "train_log.jsonl"
    _trim_log(log_path, step)
    window: dict[str, list[float]] = {}
    last: dict[str, float] = {}
    model.train()
    bar = tqdm(
        total=steps, initial=step, disable=not progress, desc=f"train {model.name}", dynamic_ncols=True
    )
    t0 = time.time()
    try:
        while step < steps:
            images, masks = batcher(step)
            loss, logs = model.training_loss(images, masks)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"non-finite loss {float(loss)} at step {step}: {logs}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if scheduled:
                for group in optimizer.param_groups:
                    group["lr"] = model.learning_rate(step)
            optimizer.step()
            model.on_train_step_end()
            step += 1
            for k, v in logs.items():
                window.setdefault(k, []).append(float(v))
            bar.update(1)
            if step % log_every == 0 or step == steps:
                last = {k: sum(v) / len(v) for k, v in window.items()}
                window = {}
                bar.set_postfix({k: f"{v:.4g}" for k, v in last.items()})
                line = {"step": step, "time_s": round(time.time() - t0, 3), **last}
                with open(log_path, "a") as fh:
                    fh.write(json.dumps(line) + "\n")
            if step % ckpt_every == 0 or step == steps:
                save_checkpoint(latest, model, optimizer, step, seed, run)
                if step % ckpt_every == 0:
                    save_checkpoint(out / f"checkpoint_step{step:07d}.pt", model, optimizer, step, seed, run)
                    snaps = sorted(out.glob("checkpoint_step*.pt"))
                    for old in snaps[: max(len(snaps) - keep, 0)]:
                        old.unlink()
    finally:
        bar.close()
    if not latest.exists():  # steps == 0 or already done before resume
        save_checkpoint(latest, model, optimizer, step, seed, run)
    return {"step": step, "last": last, "checkpoint": str(latest)}
