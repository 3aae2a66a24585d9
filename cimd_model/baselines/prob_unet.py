"""Probabilistic U-Net (Kohl et al., "A Probabilistic U-Net for Segmentation of Ambiguous Images", 2018).

A deterministic U-Net computes features of the image once; a *prior net* ``p(z | x)`` and a *posterior net*
``q(z | x, s)`` (image concatenated with an annotation) output Gaussians over a low-dimensional latent
(``latent_dim = 6``). A sample ``z`` is broadcast over space, concatenated with the last U-Net features and
passed through ``n_comb`` 1×1 convolutions (the *combination layers*) to the mask logits.
Training maximises the ELBO with weight ``beta`` on the KL::

    loss = E_{z~q}[ sum_pixels BCE(f(x, z), s) ] + beta * KL(q(z|x,s) || p(z|x))

(pixel-summed cross-entropy, batch mean, one posterior sample, as in the paper). Sampling draws ``z`` from the
prior. Optional config keys (absent = earlier behaviour): ``temperature`` (Gumbel-softmax tau of mixture
latents, 0.5), ``kl_samples`` (Monte-Carlo samples of a mixture KL, 1), ``l2_norm_penalty`` (weight of
``Σ ||w||_2`` over the prior and posterior nets' parameters, 0; Bhat et al.'s ``scripts/train.py``).
The latent family is configurable (``"latent"``: ``diagonal`` as in the paper, or ``full`` /
``lowrank`` / ``mixture``), which :mod:`.gen_prob_unet` builds on.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import distributions as D
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

#: Kohl et al.'s training recipe. The LIDC training config of the paper is not released; the values below
#: are those of the released training code (SimonKohl/probabilistic_unet, commit 7a2e79d,
#: ``training/prob_unet_config.py`` and ``training/train_prob_unet.py``, written for Cityscapes), with the
#: paper's appendix for the LIDC-specific numbers (batch 32, 240k iterations, see ``CONFIGS["paper"]``).
_RECIPE: dict[str, Any] = {
    "optimizer": "adam",  # train_prob_unet.py: tf.train.AdamOptimizer
    # train_prob_unet.py: reg_loss = regularizarion_weight * Σ tf.contrib.layers.l2_regularizer(1.0)(w) over
    # the weights only ({'w': ...}, no biases), regularizarion_weight = 1e-5 (prob_unet_config.py)
    "l2": 1e-5,
    "l2_on": "weights",
    "lr": 1e-4,  # prob_unet_config.py: initial_learning_rate = values[0] = 1e-4
    # prob_unet_config.py: piecewise_constant, values [1e-4, 0.5e-4, 1e-5, 0.5e-6] at boundaries
    # [80000, 160000, 240000] of 240000 iterations, i.e. at 1/3 and 2/3 of the run (the last value is never
    # reached); "relative" keeps those fractions when a profile shortens the run
    "lr_schedule": {
        "boundaries": [1 / 3, 2 / 3, 1.0],
        "values": [1e-4, 0.5e-4, 1e-5, 0.5e-6],
        "relative": True,
    },
    "beta": 1.0,  # prob_unet_config.py: beta = 1.0, analytic_kl = True
    "n_comb": 3,  # prob_unet_config.py: num_1x1_convs = 3
    # prob_unet_config.py da_kwargs (batchgenerators SpatialTransform, every sample): rotation U(-pi/8, pi/8),
    # scale U(0.8, 1.2), zero padding; elastic deformation and gamma augmentation are not implemented here
    "augment": {"p_spatial": 1.0, "rotate_deg": 22.5, "scale": [0.8, 1.2], "translate": "none"},
}

#: the learning rates of a run of a few hundred steps: Kohl et al.'s schedule (same shape) at 10x its values.
#: Measured (docs/baselines.md, fidelity check): with the paper's 1e-4 for 400 steps the Prob. U-Net does not
#: learn AmbiBlobs-CT (D_max 0.31)
CPU_LR: dict[str, Any] = {
    "lr": 1e-3,
    "lr_schedule": {
        "boundaries": [1 / 3, 2 / 3, 1.0],
        "values": [1e-3, 0.5e-3, 1e-4, 0.5e-5],
        "relative": True,
    },
}

CONFIGS: dict[str, dict[str, Any]] = {
    # 64x64 AmbiBlobs on 2 CPU cores in a couple of minutes; the paper's recipe on a small network, with the
    # learning rates scaled for the short run (CPU_LR)
    "cpu-small": {
        **_RECIPE,
        **CPU_LR,
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
        "batch_size": 16,
        "steps": 600,
    },
    # Kohl et al. 2018 (appendix, LIDC 128x128): widths 32-64-128-192, 3 convs per block, no normalisation,
    # latent dim 6, batch 32, 240k iterations; schedule, L2 and augmentation from the recipe above
    "paper": {
        **_RECIPE,
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
        "batch_size": 32,
        "steps": 240000,
        # prob_unet_config.py gives absolute boundaries; identical to the relative ones at 240000 steps
        "lr_schedule": {"boundaries": [80000, 160000, 240000], "values": [1e-4, 0.5e-4, 1e-5, 0.5e-6]},
    },
    # the cpu-small config before the papers' recipes (issue 18): AdamW with torch's weight decay 0.01, no
    # schedule, no augmentation -- kept for the fidelity check (profile table1-v0, docs/baselines.md)
    "cpu-small-v0": {
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
}


def mixture_kl_estimate(
    q: D.MixtureSameFamily, p: D.Distribution, samples: int, tau: float
) -> torch.Tensor:
    """``KL(q || p)`` per batch element by ``samples`` reparameterised samples of ``q``:
    ``mean_s [log q(z_s) - log p(z_s)]`` (Bhat et al., ``model.py`` ``kl_divergence(analytic=False)``)."""
    logits = q.mixture_distribution.logits  # (B, K)
    comp = q.component_distribution.base_dist  # Normal (B, K, D)
    flat = D.MixtureSameFamily(
        D.Categorical(logits=logits.repeat(samples, 1)),
        D.Independent(D.Normal(comp.loc.repeat(samples, 1, 1), comp.scale.repeat(samples, 1, 1)), 1),
    )
    z = sample_latent(flat, tau).reshape(samples, *logits.shape[:-1], comp.loc.shape[-1])  # (S, B, D)
    return (q.log_prob(z) - p.log_prob(z)).mean(dim=0)


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
        # absent keys keep the behaviour of configs written before they existed
        self.temperature = float(c.get("temperature", 0.5))  # Gumbel-softmax tau of mixture latents
        self.kl_samples = int(c.get("kl_samples", 1))  # Monte-Carlo samples of a KL without closed form
        self.l2_norm_penalty = float(c.get("l2_norm_penalty", 0.0))

    def training_loss(
        self, images: torch.Tensor, masks: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        feats = self.unet(images)
        q = self.posterior(images, masks)
        p = self.prior(images)
        z = sample_latent(q, self.temperature)
        logits = self.combination(feats, z)
        rec = F.binary_cross_entropy_with_logits(logits, masks, reduction="none").sum(dim=(1, 2, 3)).mean()
        if self.kl_samples > 1 and isinstance(q, D.MixtureSameFamily):
            kl = mixture_kl_estimate(q, p, self.kl_samples, self.temperature).mean()
        else:
            kl = kl_divergence(q, p, z).mean()
        loss = rec + self.beta * kl
        logs = {"rec": float(rec.detach()), "kl": float(kl.detach())}
        if self.l2_norm_penalty:
            norms = [w.norm(2) for net in (self.prior, self.posterior) for w in net.parameters()]
            penalty = self.l2_norm_penalty * torch.stack(norms).sum()
            loss = loss + penalty
            logs["l2_norm"] = float(penalty.detach())
        return loss, {"loss": float(loss.detach()), **logs}

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
