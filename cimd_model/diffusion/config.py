"""Named configs of the CIMD variants (one table for all four) and their validation."""

from __future__ import annotations

from typing import Any

from .sampler import SAMPLERS

__all__ = ["CONFIGS", "check_config"]

#: Named configs. ``cpu-small`` is sized for a CPU (its 1500 steps on 64x64 AmbiBlobs took 40 min on 2 shared
#: cores, docs/cimd_sampling.md); ``paper`` follows the paper / its code base, with the deviations listed
#: in docs/cimd_ablation.md (128 base channels, multipliers (1,1,2,3,4), 2 residual blocks per level,
#: attention at 16x16, T=1000 linear betas, learned variance, EMA 0.9999, AdamW 1e-4, 1000 DDPM steps).
CONFIGS: dict[str, dict[str, Any]] = {
    "cpu-small": {
        "image_size": 64,
        "T": 1000,
        "beta_start": 1e-4,
        "beta_end": 0.02,
        "base_channels": 16,
        "channel_mult": [1, 2, 4],
        "num_res_blocks": 1,
        "attention_resolutions": [16],
        "num_heads": 1,
        "dropout": 0.0,
        "learn_sigma": True,
        "vlb_weight": 1.0,
        "latent_dim": 6,
        "kl_weight": 1e-3,
        "encoder_channels": 8,
        "encoder_mults": [1, 2, 4, 8],
        "encoder_convs": 1,
        "official_encoder_filters": [32, 64, 128, 192],
        "official_encoder_convs": 3,
        "latent_kl_weight": 1e-4,
        "kl_anneal_steps": 500,
        "free_bits": 0.25,
        "latent_init": "default",
        "lr": 5e-4,
        "weight_decay": 0.0,
        "batch_size": 8,
        "steps": 1500,
        "ema_decay": 0.999,
        "sampler": "ddim",
        "sampling_steps": 25,
        "eta": 0.0,
        "clip_x0": True,
    },
    "paper": {
        "image_size": 128,
        "T": 1000,
        "beta_start": 1e-4,
        "beta_end": 0.02,
        "base_channels": 128,
        "channel_mult": [1, 1, 2, 3, 4],
        "num_res_blocks": 2,
        "attention_resolutions": [16],
        "num_heads": 1,
        "dropout": 0.0,
        "learn_sigma": True,
        "vlb_weight": 1.0,
        "latent_dim": 6,
        "kl_weight": 1e-3,
        "encoder_channels": 32,
        "encoder_mults": [1, 2, 4, 6, 6],
        "encoder_convs": 3,
        "official_encoder_filters": [32, 64, 128, 192],
        "official_encoder_convs": 3,
        "latent_kl_weight": 1e-4,
        "kl_anneal_steps": 10000,
        "free_bits": 0.25,
        "latent_init": "default",
        "lr": 1e-4,
        "weight_decay": 0.0,
        "batch_size": 8,
        "steps": 100000,
        "ema_decay": 0.9999,
        "sampler": "ddpm",
        "sampling_steps": 1000,
        "eta": 0.0,
        "clip_x0": True,
    },
}


def check_config(cfg: dict[str, Any]) -> None:
    """Raise ``ValueError`` naming the first bad config entry."""
    if int(cfg["T"]) < 1:
        raise ValueError(f"config['T'] must be >= 1, got {cfg['T']}")
    if cfg["sampler"] not in SAMPLERS:
        raise ValueError(f"config['sampler'] must be one of {SAMPLERS}, got {cfg['sampler']!r}")
    if not (1 <= int(cfg["sampling_steps"]) <= int(cfg["T"])):
        raise ValueError(
            f"config['sampling_steps'] must be in [1, T={cfg['T']}], got {cfg['sampling_steps']}"
        )
    for key in ("kl_weight", "vlb_weight", "eta", "dropout", "weight_decay", "latent_kl_weight", "free_bits"):
        if float(cfg[key]) < 0:
            raise ValueError(f"config[{key!r}] must be >= 0, got {cfg[key]}")
    if not (0.0 <= float(cfg["ema_decay"]) < 1.0):
        raise ValueError(f"config['ema_decay'] must be in [0, 1), got {cfg['ema_decay']}")
    if int(cfg["image_size"]) < 1:
        raise ValueError(f"config['image_size'] must be >= 1, got {cfg['image_size']}")
