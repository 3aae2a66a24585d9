"""Probabilistic U-Net (Kohl et al., "A Probabilistic U-Net for Segmentation of Ambiguous Images", 2018).

A deterministic U-Net computes features of the image once; a *prior net* ``p(z | x)`` and a *posterior net*
``q(z | x, s)`` (image concatenated with an annotation) output Gaussians over a low-dimensional latent
(``latent_dim = 6``). A sample ``z`` is broadcast over space, concatenated with the last U-Net features and
passed through ``n_comb`` 1×1 convolutions (the *combination layers*) to the mask logits.
Training maximises the ELBO with weight ``beta`` on the KL::

    loss = E_{z~q}[ sum_pixels BCE(f(x, z), s) ] + beta * KL(q(z|x,s) || p(z|x))

(pixel-summed cross-entropy, batch mean, one posterior sample, as in the paper). Sampling draws ``z`` from the
prior. The latent family is configurable (``"latent"``: ``diagonal`` as in the paper, or ``full`` /
``lowrank`` / ``mixture``), which :mod:`.gen_prob_unet` builds on.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..base import AmbiguousSegModel
from ..nets.encoders import (
    GaussianEncoder,
    MixtureGaussianEncoder,
    kl_divergence,
    sample_latent,
    sample_with_generator,
)
from ..nets.unet import UNet, channel_list, logit_head

LATENTS = ("diagonal", "full", "lowrank", "mixture")

CONFIGS: dict[str, dict[str, Any]] = {
    # tiny: 64x64 AmbiBlobs on 2 CPU cores in a couple of minutes
    "cpu-small": {
        "base_channels": 16,
        "mults": [1, 2, 4],
        "n_convs": 2,
        "norm": True,
        "encoder_base_channels": 16,
        "encoder_mults": [1, 2, 4],
        "latent_dim": 6,
        "latent": "diagonal",
        "rank": 2,
        "n_components": 4,
        "n_comb": 3,
        "beta": 1.0,
        "lr": 1e-3,
        "batch_size": 16,
        "steps": 600,
    },
    # Kohl et al. 2018, LIDC 128x128: widths 32-64-128-192, 3 convs per block, no normalisation,
    # latent dim 6, 3 combination 1x1 convs, beta 1, Adam 1e-4, batch 32, 240k iterations
    "paper": {
        "base_channels": 32,
        "mults": [1, 2, 4, 6],
        "n_convs": 3,
        "norm": False,
        "encoder_base_channels": 32,
        "encoder_mults": [1, 2, 4, 6],
        "latent_dim": 6,
        "latent": "diagonal",
        "rank": 2,
        "n_components": 4,
        "n_comb": 3,
        "beta": 1.0,
        "lr": 1e-4,
        "batch_size": 32,
        "steps": 240000,
    },
}


class Combination(nn.Module):
    """The 1×1 combination layers: [features, tiled z] -> … -> 1 logit channel."""

    def __init__(self, feat_channels: int, latent_dim: int, n_comb: int) -> None:
        super().__init__()
        if n_comb < 1:
            raise ValueError(f"n_comb must be >= 1, got {n_comb}")
        layers: list[nn.Module] = []
        ch = feat_channels + latent_dim
        for _ in range(n_comb - 1):
            layers += [nn.Conv2d(ch, feat_channels, 1), nn.ReLU(inplace=True)]
            ch = feat_channels
        layers.append(logit_head(ch))
        self.body = nn.Sequential(*layers)

    def forward(self, feats: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """feats (B, F, H, W), z (B, D) -> logits (B, 1, H, W)."""
        tiled = z[:, :, None, None].expand(-1, -1, *feats.shape[-2:])
        return self.body(torch.cat([feats, tiled], dim=1))


class ProbUNet(AmbiguousSegModel):
    """Probabilistic U-Net; see the module docstring. Built from a :data:`CONFIGS`-style dict."""

    name = "prob_unet"

    def __init__(self, config: dict[str, Any], in_channels: int) -> None:
        super().__init__(config, in_channels)
        c = self.config
        latent = c.get("latent", "diagonal")
        if latent not in LATENTS:
            raise ValueError(f"config['latent'] must be one of {LATENTS}, got {latent!r}")
        d = int(c["latent_dim"])
        self.unet = UNet(
            in_channels, channel_list(c["base_channels"], c["mults"]), None, c["n_convs"], c["norm"]
        )
        enc = {
            "base_channels": int(c["encoder_base_channels"]),
            "mults": list(c["encoder_mults"]),
            "n_convs": int(c["n_convs"]),
            "norm": bool(c["norm"]),
        }
        if latent == "mixture":
            k = int(c.get("n_components", 4))
            self.prior = MixtureGaussianEncoder(in_channels, d, k, **enc)
            self.posterior = MixtureGaussianEncoder(in_channels + 1, d, k, **enc)
        else:
            r = int(c.get("rank", 1))
            self.prior = GaussianEncoder(in_channels, d, covariance=latent, rank=r, **enc)
            self.posterior = GaussianEncoder(in_channels + 1, d, covariance=latent, rank=r, **enc)
        self.combination = Combination(self.unet.out_features, d, int(c["n_comb"]))
        self.beta = float(c.get("beta", 1.0))

    def training_loss(
        self, images: torch.Tensor, masks: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        feats = self.unet(images)
        q = self.posterior(images, masks)
        p = self.prior(images)
        z = sample_latent(q)
        logits = self.combination(feats, z)
        rec = F.binary_cross_entropy_with_logits(logits, masks, reduction="none").sum(dim=(1, 2, 3)).mean()
        kl = kl_divergence(q, p, z).mean()
        loss = rec + self.beta * kl
        return loss, {"loss": float(loss.detach()), "rec": float(rec.detach()), "kl": float(kl.detach())}

    @torch.no_grad()
    def sample(self, images: torch.Tensor, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        feats = self.unet(images)
        z = sample_with_generator(self.prior(images), n, generator)  # (n, B, D)
        out = [torch.sigmoid(self.combination(feats, z[i]))[:, 0] for i in range(n)]
        return torch.stack(out, dim=1)


def build(config: dict[str, Any], in_channels: int) -> ProbUNet:
    """Registry builder: ``ProbUNet(config, in_channels)``."""
    return ProbUNet(config, in_channels)
