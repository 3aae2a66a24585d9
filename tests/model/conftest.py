"""Shared fixtures for the cimd_model tests: one thread, tiny configs (32×32 images, 8 base channels)."""

from __future__ import annotations

import pytest

try:
    import torch
except ImportError:  # the torch tests skip themselves via importorskip
    torch = None
else:
    torch.set_num_threads(1)

#: tiny configs per registered baseline: fast enough for unit tests on 32x32 inputs
TINY_CONFIGS: dict[str, dict] = {
    "prob_unet": {
        "base_channels": 8,
        "mults": [1, 2],
        "n_convs": 1,
        "norm": True,
        "encoder_base_channels": 8,
        "encoder_mults": [1, 2],
        "latent_dim": 6,
        "latent": "diagonal",
        "rank": 2,
        "n_components": 3,
        "n_comb": 3,
        "beta": 1.0,
        "lr": 3e-3,
        "batch_size": 4,
        "steps": 10,
    },
    "phiseg": {
        "base_channels": 8,
        "mults": [1, 2, 2],
        "latent_levels": 2,
        "zdim": 2,
        "n_convs": 1,
        "norm": True,
        "beta": 1.0,
        "residual": True,
        "lr": 3e-3,
        "batch_size": 4,
        "steps": 10,
    },
}
TINY_CONFIGS["gen_prob_unet"] = {**TINY_CONFIGS["prob_unet"], "latent": "mixture"}

#: (registry name, config overrides) for every baseline variant the tests cover
VARIANTS = [
    ("prob_unet", {}),
    ("phiseg", {}),
    ("gen_prob_unet", {}),
    ("gen_prob_unet", {"latent": "full"}),
    ("gen_prob_unet", {"latent": "lowrank"}),
    # the papers' recipes (issue 18): PHiSeg's KL weighting, z convolutions and mask centring; Bhat et al.'s
    # Monte-Carlo mixture KL, temperature and norm penalty
    (
        "phiseg",
        {
            "kl_weighting": "exponential",
            "z_up_convs": 2,
            "z_up_channels": 8,
            "level_convs": 2,
            "mask_offset": 0.5,
        },
    ),
    ("gen_prob_unet", {"kl_samples": 50, "temperature": 0.1, "l2_norm_penalty": 1e-5}),
]


def variant_id(v) -> str:
    name, over = v
    return name + "".join(f"-{k}={val}" for k, val in over.items())


@pytest.fixture(params=VARIANTS, ids=variant_id)
def variant(request):
    """(name, tiny config) for each baseline variant."""
    name, over = request.param
    return name, {**TINY_CONFIGS[name], **over}


@pytest.fixture
def tiny_blobs():
    """A tiny AmbiBlobs-ct train split: 12 images of 32x32, 4 annotators."""
    from cimd_model.data import load_dataset

    return load_dataset("ambiblobs-ct", "train", seed=0, n=12, size=32)


@pytest.fixture
def tiny_configs() -> dict[str, dict]:
    """A fresh copy of :data:`TINY_CONFIGS`."""
    return {k: dict(v) for k, v in TINY_CONFIGS.items()}
