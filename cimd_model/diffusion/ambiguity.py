"""The ambiguity part of the CIMD variants: which encoders exist, what they see, how their KL enters the loss.

All four variants share the diffusion core of :class:`~cimd_model.diffusion.cimd.CIMD` (schedule,
denoiser, hybrid loss, EMA, samplers); they differ only here.

``official`` (registry ``cimd-official``) -- the behaviour of the released code:
    :math:`q(z | image, mask)` ("posterior", sees the {0, 1} mask) and :math:`p(z | image, \\hat\\epsilon)`
    ("prior", sees the denoiser's predicted noise), both with the released architecture (levels of
    32/64/128/192 channels, 3 convolutions each, ReLU, no normalisation) and initialisation
    (:func:`~cimd_model.nets.encoders.released_init_`), **frozen** (not in the optimizer, as the released
    ``train_util.py`` optimises only the diffusion model). The term ``KL(q || p) * kl_weight`` (1/1000)
    is added to the hybrid loss; its only trainable path is :math:`\\hat\\epsilon`, i.e. it is a fixed
    random-feature penalty on the denoiser's output. ``z`` is never used.
``paper`` (``cimd-paper``; ``cimd`` is the same model under its old name) -- the paper's text as
    implemented before: the same two encoders with GroupNorm and a near-N(0, I) start, trained jointly
    with the denoiser; the posterior sees the mask in [-1, 1]. ``z`` is never used, so the KL is minimised
    by making both encoders output the same distribution.
``latent`` (``cimd-latent``) -- **our extension, not in the paper or its code**: ``z ~ q(z | image, mask)``
    in training is fed to the denoiser (a linear projection added to the timestep embedding); a prior
    :math:`p(z | image)` is trained towards the posterior; sampling draws one ``z`` per sample from the
    prior. Against posterior collapse: the posterior's KL is annealed linearly from 0 over
    ``kl_anneal_steps`` and uses free bits (each latent dimension's batch-mean KL below ``free_bits``
    nats costs nothing). Units: the diffusion MSE is a per-pixel mean, so a weight ``w`` on the per-image
    KL is a Prob.-U-Net-style beta of ``w * H * W`` (``latent_kl_weight = 1e-4`` at 64x64 is beta 0.41,
    whereas CIMD's 1e-3 would be 4.1).
``none`` (``cond-ddpm``) -- no encoders: the conditional DDPM of Wolleb et al. (2022), the ablation.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import distributions as D
from torch import nn

from ..nets.encoders import GaussianEncoder

__all__ = [
    "VARIANTS",
    "build_encoders",
    "anneal_factor",
    "free_bits_kl",
    "uses_latent",
    "detached",
]

#: variant -> registry name
VARIANTS: dict[str, str] = {
    "official": "cimd-official",
    "paper": "cimd-paper",
    "latent": "cimd-latent",
    "none": "cond-ddpm",
}


def uses_latent(variant: str) -> bool:
    """Whether the denoiser of ``variant`` takes a latent code ``z``."""
    return variant == "latent"


def build_encoders(variant: str, cfg: dict[str, Any], in_channels: int) -> dict[str, nn.Module]:
    """The encoders of a variant, by attribute name (in creation order, so seeded weights are stable).

    ``official`` / ``paper``: ``mask_encoder`` (image + mask) and ``eps_encoder`` (image + predicted noise);
    ``paper`` has none when ``kl_weight == 0`` (the behaviour of the old ``cimd`` model).
    ``latent``: ``mask_encoder`` (image + mask) and ``prior_encoder`` (image only). ``none``: nothing.
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {sorted(VARIANTS)}, got {variant!r}")
    latent_dim = int(cfg["latent_dim"])
    if variant == "official":
        kw = dict(
            latent_dim=latent_dim,
            base_channels=1,
            mults=tuple(int(c) for c in cfg["official_encoder_filters"]),
            n_convs=int(cfg["official_encoder_convs"]),
            norm=False,
            init="released",
        )
        encoders = {
            "mask_encoder": GaussianEncoder(in_channels + 1, **kw),
            "eps_encoder": GaussianEncoder(in_channels + 1, **kw),
        }
        for enc in encoders.values():
            enc.requires_grad_(False)
        return encoders
    kw = dict(
        latent_dim=latent_dim,
        base_channels=int(cfg["encoder_channels"]),
        mults=tuple(cfg["encoder_mults"]),
        n_convs=int(cfg["encoder_convs"]),
    )
    if variant == "paper":
        if float(cfg["kl_weight"]) <= 0:
            return {}
        return {
            "mask_encoder": GaussianEncoder(in_channels + 1, **kw),
            "eps_encoder": GaussianEncoder(in_channels + 1, **kw),
        }
    if variant == "latent":
        # no GroupNorm: with per-image normalisation followed by global average pooling the pooled
        # features barely depend on the mask's area (measured: posterior-mean variance ~1e-5 on a toy)
        kw = {**kw, "norm": False, "init": str(cfg["latent_init"])}
        return {
            "mask_encoder": GaussianEncoder(in_channels + 1, **kw),
            "prior_encoder": GaussianEncoder(in_channels, **kw),
        }
    return {}


def anneal_factor(step: int, anneal_steps: int) -> float:
    """Linear KL warm-up: ``min(1, step / anneal_steps)``; 1 when ``anneal_steps <= 0``."""
    if anneal_steps <= 0:
        return 1.0
    return min(1.0, max(0, int(step)) / float(anneal_steps))


def free_bits_kl(q: D.Independent, p: D.Independent, free_bits: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-dimension KL of two diagonal Gaussians with free bits (Kingma et al. 2016).

    Returns ``(penalised, raw)``: ``penalised = sum_d max(free_bits, mean_b KL_bd)`` (a scalar; dimensions
    whose batch-mean KL is below ``free_bits`` nats get no gradient) and ``raw = mean_b sum_d KL_bd``.
    """
    per_dim = D.kl_divergence(q.base_dist, p.base_dist)  # (B, d)
    mean_dim = per_dim.mean(dim=0)
    penalised = torch.clamp(mean_dim, min=float(free_bits)).sum()
    return penalised, per_dim.sum(dim=1).mean()


def detached(dist: D.Independent) -> D.Independent:
    """The same diagonal Gaussian with its parameters cut from the graph."""
    base = dist.base_dist
    return D.Independent(D.Normal(base.loc.detach(), base.scale.detach()), 1)
