"""PHiSeg (Baumgartner et al., "PHiSeg: Capturing Uncertainty in Medical Image Segmentation", MICCAI 2019).

A hierarchy of ``L`` spatial latents ``z_0 … z_{L-1}`` (``z_{L-1}`` coarsest) lives on the ``L`` coarsest of
``R`` resolution levels (``R = len(mults)``; the paper uses R=7, L=5 on 128² inputs). Three networks:

* prior ``p(z_l | z_{l+1}, x)``: a conv encoder of the image; at each latent level the features are
  concatenated with the upsampled latent of the level below (coarser) and mapped to a diagonal Gaussian with
  ``zdim`` channels per pixel;
* posterior ``q(z_l | z_{l+1}, x, s)``: the same on the image concatenated with the annotation;
* likelihood ``p(s | z_0 … z_{L-1})``: builds features upward from ``z_{L-1}``, each level emitting logits
  ``r_l`` (upsampled to full resolution; the finest level through a learned upsampling path).

Per-level likelihoods (the paper's residual multinoulli loss): the prediction of level ``l`` is
``y_l = Σ_{k≥l} r_k`` and the loss is ``Σ_l CE(y_l, s) + beta · Σ_l KL(q_l || p_l)``, where ``p_l`` is
conditioned on the *posterior* samples of the coarser levels during training (as in the paper). Pixel-summed,
batch-averaged. Samples use the prior hierarchy; the output is ``sigmoid(y_0)``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import distributions as D
from torch import nn

from ..base import AmbiguousSegModel
from ..nets.unet import ConvBlock, Encoder, channel_list, check_divisible, logit_head

CONFIGS: dict[str, dict[str, Any]] = {
    # tiny: 64x64 AmbiBlobs; 4 resolution levels (64..8), latents at 32, 16, 8
    "cpu-small": {
        "base_channels": 16,
        "mults": [1, 2, 2, 2],
        "latent_levels": 3,
        "zdim": 2,
        "n_convs": 2,
        "norm": True,
        "beta": 1.0,
        "residual": True,
        "lr": 1e-3,
        "batch_size": 16,
        "steps": 600,
    },
    # Baumgartner et al. 2019, LIDC 128x128: 7 resolution levels, 5 latent levels, zdim 2, 32 base
    # filters, 3 convs per block, batch norm (here GroupNorm), KL weight 1, residual multinoulli loss,
    # Adam 1e-3, batch 12
    "paper": {
        "base_channels": 32,
        "mults": [1, 2, 4, 6, 6, 6, 6],
        "latent_levels": 5,
        "zdim": 2,
        "n_convs": 3,
        "norm": True,
        "beta": 1.0,
        "residual": True,
        "lr": 1e-3,
        "batch_size": 12,
        "steps": 200000,
    },
}


def _diag_gaussian(stats: torch.Tensor, zdim: int) -> D.Independent:
    return D.Independent(D.Normal(stats[:, :zdim], torch.exp(stats[:, zdim:].clamp(-10, 10))), 3)


class HierarchicalLatentNet(nn.Module):
    """Prior (or posterior) net of PHiSeg: image features -> per-level Gaussians, coarse to fine."""

    def __init__(
        self, in_channels: int, chans: list[int], latent_levels: int, zdim: int, n_convs: int, norm: bool
    ) -> None:
        super().__init__()
        self.encoder = Encoder(in_channels, chans, n_convs, norm)
        self.in_channels, self.zdim, self.n_levels = in_channels, zdim, len(chans)
        self.latent_levels = latent_levels
        self.offset = len(chans) - latent_levels  # resolution level of z_0
        self.blocks = nn.ModuleList()
        self.heads = nn.ModuleList()
        for l in range(latent_levels):
            ch = chans[self.offset + l]
            extra = 0 if l == latent_levels - 1 else zdim
            self.blocks.append(ConvBlock(ch + extra, ch, n_convs, norm))
            head = nn.Conv2d(ch, 2 * zdim, 1)
            nn.init.normal_(head.weight, std=1e-3)
            nn.init.zeros_(head.bias)
            self.heads.append(head)

    def features(self, x: torch.Tensor, seg: torch.Tensor | None = None) -> list[torch.Tensor]:
        if seg is not None:
            x = torch.cat([x, seg.to(x.dtype)], dim=1)
        if x.shape[1] != self.in_channels:
            raise ValueError(f"expected {self.in_channels} input channels, got shape {tuple(x.shape)}")
        return self.encoder(x)[self.offset :]

    def latents(
        self,
        feats: list[torch.Tensor],
        z_given: list[torch.Tensor] | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[list[D.Independent], list[torch.Tensor]]:
        """Walk the hierarchy coarse to fine; level ``l`` is conditioned on ``z_given[l+1]`` when given,
        else on this net's own sample (reparameterised, noise from ``generator`` if given)."""
        dists: list[D.Independent | None] = [None] * self.latent_levels
        zs: list[torch.Tensor | None] = [None] * self.latent_levels
        below = None
        for l in range(self.latent_levels - 1, -1, -1):
            h = feats[l]
            if below is not None:
                up = F.interpolate(below, size=h.shape[-2:], mode="bilinear", align_corners=False)
                h = torch.cat([h, up], dim=1)
            dist = _diag_gaussian(self.heads[l](self.blocks[l](h)), self.zdim)
            loc, scale = dist.base_dist.loc, dist.base_dist.scale
            eps = torch.randn(loc.shape, generator=generator, device=loc.device, dtype=loc.dtype)
            dists[l], zs[l] = dist, loc + scale * eps
            below = z_given[l] if z_given is not None else zs[l]
        return dists, zs  # type: ignore[return-value]


class Likelihood(nn.Module):
    """``p(s | z)``: features built upward from the coarsest latent; logits per level (full resolution)."""

    def __init__(
        self, chans: list[int], latent_levels: int, zdim: int, n_convs: int, norm: bool, residual: bool = True
    ) -> None:
        super().__init__()
        self.offset = len(chans) - latent_levels
        self.blocks = nn.ModuleList()
        self.heads = nn.ModuleList()
        for l in range(latent_levels):
            ch = chans[self.offset + l]
            extra = 0 if l == latent_levels - 1 else chans[self.offset + l + 1]
            self.blocks.append(ConvBlock(zdim + extra, ch, n_convs, norm))
            # z_0's logits come from the upsampling path below when z_0 is not at full resolution
            # the coarsest level carries the background prior; finer levels add residuals around it
            prior = 0.1 if l == latent_levels - 1 or not residual else 0.5
            self.heads.append(nn.Identity() if l == 0 and self.offset > 0 else logit_head(ch, prior))
        # from z_0's resolution up to full resolution
        self.up_blocks = nn.ModuleList(
            ConvBlock(chans[r + 1], chans[r], n_convs, norm) for r in range(self.offset - 1, -1, -1)
        )
        self.final = logit_head(chans[0], 0.1 if latent_levels == 1 or not residual else 0.5)

    def forward(self, zs: list[torch.Tensor], size: tuple[int, int]) -> list[torch.Tensor]:
        """Per-level logits ``r_l`` (B, 1, H, W), finest first."""
        out: list[torch.Tensor | None] = [None] * len(zs)
        s = None
        for l in range(len(zs) - 1, -1, -1):
            h = zs[l]
            if s is not None:
                h = torch.cat(
                    [h, F.interpolate(s, size=h.shape[-2:], mode="bilinear", align_corners=False)], 1
                )
            s = self.blocks[l](h)
            if l > 0 or self.offset == 0:
                out[l] = F.interpolate(self.heads[l](s), size=size, mode="bilinear", align_corners=False)
        if self.offset > 0:
            for block in self.up_blocks:
                s = block(F.interpolate(s, scale_factor=2, mode="bilinear", align_corners=False))
            out[0] = self.final(s)
        return out  # type: ignore[return-value]


class PHiSeg(AmbiguousSegModel):
    """PHiSeg; see the module docstring. Built from a :data:`CONFIGS`-style dict."""

    name = "phiseg"

    def __init__(self, config: dict[str, Any], in_channels: int) -> None:
        super().__init__(config, in_channels)
        c = self.config
        chans = channel_list(c["base_channels"], c["mults"])
        levels, zdim = int(c["latent_levels"]), int(c["zdim"])
        if not 1 <= levels <= len(chans):
            raise ValueError(f"latent_levels must be in [1, len(mults)={len(chans)}], got {levels}")
        args = (chans, levels, zdim, int(c["n_convs"]), bool(c["norm"]))
        self.prior = HierarchicalLatentNet(in_channels, *args)
        self.posterior = HierarchicalLatentNet(in_channels + 1, *args)
        self.likelihood = Likelihood(*args, residual=bool(c.get("residual", True)))
        self.factor = 2 ** (len(chans) - 1)
        self.beta = float(c.get("beta", 1.0))
        self.residual = bool(c.get("residual", True))

    def _combine(self, level_logits: list[torch.Tensor]) -> list[torch.Tensor]:
        """Residual combination ``y_l = Σ_{k≥l} r_k`` (or ``y_l = r_l`` when ``residual`` is off)."""
        if not self.residual:
            return level_logits
        out, acc = [], None
        for r in reversed(level_logits):
            acc = r if acc is None else acc + r
            out.append(acc)
        return out[::-1]

    def training_loss(
        self, images: torch.Tensor, masks: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        check_divisible(images, self.factor)
        q_dists, q_z = self.posterior.latents(self.posterior.features(images, masks))
        p_dists, _ = self.prior.latents(self.prior.features(images), z_given=q_z)
        preds = self._combine(self.likelihood(q_z, images.shape[-2:]))
        recs = [
            F.binary_cross_entropy_with_logits(y, masks, reduction="none").sum(dim=(1, 2, 3)).mean()
            for y in preds
        ]
        kls = [D.kl_divergence(q, p).mean() for q, p in zip(q_dists, p_dists, strict=True)]
        rec, kl = torch.stack(recs).sum(), torch.stack(kls).sum()
        loss = rec + self.beta * kl
        logs = {"loss": float(loss.detach()), "rec": float(recs[0].detach()), "kl": float(kl.detach())}
        return loss, logs

    @torch.no_grad()
    def sample(self, images: torch.Tensor, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        check_divisible(images, self.factor)
        b = images.shape[0]
        feats = [f.repeat_interleave(n, dim=0) for f in self.prior.features(images)]  # (B*n, …)
        _, zs = self.prior.latents(feats, generator=generator)
        y0 = self._combine(self.likelihood(zs, images.shape[-2:]))[0]
        return torch.sigmoid(y0).reshape(b, n, *images.shape[-2:])


def build(config: dict[str, Any], in_channels: int) -> PHiSeg:
    """Registry builder: ``PHiSeg(config, in_channels)``."""
    return PHiSeg(config, in_channels)
