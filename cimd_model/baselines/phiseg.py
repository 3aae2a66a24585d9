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
``y_l = Σ_{k≥l} r_k`` and the loss is ``Σ_l CE(y_l, s) + beta · Σ_l α_l KL(q_l || p_l)``, where ``p_l`` is
conditioned on the *posterior* samples of the coarser levels during training (as in the paper) and
``α_l = 4**l`` (``kl_weighting="exponential"``, the released LIDC config) or 1 (``"equal"``). With
``z_up_convs > 0`` every upsampled ``z_{l+1}`` passes through that many 3×3 convolutions before it is
concatenated at level ``l``; the posterior sees the annotation as ``mask - mask_offset``. Configs written
before these keys existed (no key) keep the earlier behaviour: equal weights, no convolutions, offset 0.
Pixel-summed, batch-averaged. Samples use the prior hierarchy; the output is ``sigmoid(y_0)``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import distributions as D
from torch import nn

from ..base import AmbiguousSegModel
from ..nets.unet import ConvBlock, Encoder, channel_list, check_divisible, logit_head

#: PHiSeg's training recipe, from the released code (baumgach/PHiSeg-code, commit c43f3b3):
#: ``phiseg/experiments/phiseg_7_5.py`` (the LIDC config of the paper's Table 1) and
#: ``phiseg/phiseg_model.py``
_RECIPE: dict[str, Any] = {
    "optimizer": "adam",  # phiseg_7_5.py: optimizer = tf.train.AdamOptimizer
    "l2": 0.0,  # phiseg_7_5.py sets no weight_decay_weight, so phiseg_model.py adds no weight decay
    "lr": 1e-3,  # phiseg_7_5.py: lr_schedule_dict = {0: 1e-3} (constant)
    "beta": 1.0,  # phiseg_7_5.py: KL_divergence_loss_weight = 1.0
    "kl_weighting": "exponential",  # phiseg_7_5.py: exponential_weighting = True -> 4**level (model.py)
    "residual": True,  # phiseg_7_5.py: residual_multinoulli_loss_weight = 1.0 (one CE per level)
    # model_zoo/priors.py, posteriors.py: two convs on every upsampled z ("z%d_ups_to_%d_c_1/2")
    "z_up_convs": 2,
    "level_convs": 2,  # priors.py, posteriors.py: two convs after the concatenation ("z%d_input_1/2")
    "mask_offset": 0.5,  # posteriors.py: the posterior sees tf.concat([x, s_oh - 0.5])
    # phiseg_7_5.py augmentation_options + data/batch_provider.py: half of the images (augment_every_nth = 2)
    # are rotated by U(-10, 10) degrees (rot_degrees default 10) and cropped to a random square of side
    # U(n - 30, n) resized back (offset default 30, i.e. 98/128 at 128 px); the config's 'do_flip_lr' /
    # 'do_flip_ud' keys do not match the provider's 'do_fliplr' / 'do_flipud', so the released runs were
    # NOT flipped
    "augment": {
        "p_spatial": 0.5,
        "rotate_deg": 10.0,
        "scale": [98 / 128, 1.0],
        "translate": "inside",
        "flip_lr": 0.0,
        "flip_ud": 0.0,
    },
}

CONFIGS: dict[str, dict[str, Any]] = {
    # 64x64 AmbiBlobs on 2 CPU cores: 4 resolution levels (64..8), latents at 32, 16, 8; the paper's recipe
    "cpu-small": {
        **_RECIPE,
        "base_channels": 16,
        "mults": [1, 2, 2, 2],
        "latent_levels": 3,
        "zdim": 2,
        "z_up_channels": 32,  # zdim0 * n0 as in priors.py (2 * 16 here)
        "n_convs": 2,
        "norm": True,
        "batch_size": 16,
        "steps": 600,
    },
    # Baumgartner et al. 2019 §3 / phiseg_7_5.py, LIDC 128x128: resolution_levels = 7, latent_levels = 5,
    # n0 = 32 with widths n0 * [1, 2, 4, 6, 6, 6, 6] (posteriors.py num_channels), zdim0 = 2, three convs per
    # encoder level ("z%d_pre_1..3"), batch norm (here GroupNorm), batch_size = 12
    "paper": {
        **_RECIPE,
        "base_channels": 32,
        "mults": [1, 2, 4, 6, 6, 6, 6],
        "latent_levels": 5,
        "zdim": 2,
        "z_up_channels": 64,  # zdim0 * n0 (priors.py: num_filters=zdim_0*n0)
        "n_convs": 3,
        "norm": True,
        "batch_size": 12,
        # phiseg_7_5.py: num_iter = 5000000 with the best validation checkpoint kept; a fixed step count here
        "steps": 200000,
    },
    # the cpu-small config before the paper's recipe (issue 18): AdamW with torch's weight decay 0.01, equal
    # KL weights, no z convolutions, mask offset 0, no augmentation -- for the fidelity check (table1-v0)
    "cpu-small-v0": {
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
}


def _diag_gaussian(stats: torch.Tensor, zdim: int) -> D.Independent:
    return D.Independent(D.Normal(stats[:, :zdim], torch.exp(stats[:, zdim:].clamp(-10, 10))), 3)


class HierarchicalLatentNet(nn.Module):
    """Prior (or posterior) net of PHiSeg: image features -> per-level Gaussians, coarse to fine."""

    def __init__(
        self,
        in_channels: int,
        chans: list[int],
        latent_levels: int,
        zdim: int,
        n_convs: int,
        norm: bool,
        z_up_convs: int = 0,
        z_up_channels: int = 0,
        level_convs: int | None = None,
        seg_offset: float = 0.0,
    ) -> None:
        super().__init__()
        self.encoder = Encoder(in_channels, chans, n_convs, norm)
        self.in_channels, self.zdim, self.n_levels = in_channels, zdim, len(chans)
        self.latent_levels = latent_levels
        self.offset = len(chans) - latent_levels  # resolution level of z_0
        self.seg_offset = float(seg_offset)
        self.blocks = nn.ModuleList()
        self.heads = nn.ModuleList()
        # the convolutions applied to each upsampled z_{l+1} before it is concatenated at level l
        self.z_up = nn.ModuleList()
        for l in range(latent_levels):
            ch = chans[self.offset + l]
            if l == latent_levels - 1:
                extra = 0
            elif z_up_convs > 0:
                extra = z_up_channels
                self.z_up.append(ConvBlock(zdim, z_up_channels, z_up_convs, norm))
            else:
                extra = zdim
            self.blocks.append(ConvBlock(ch + extra, ch, level_convs or n_convs, norm))
            head = nn.Conv2d(ch, 2 * zdim, 1)
            nn.init.normal_(head.weight, std=1e-3)
            nn.init.zeros_(head.bias)
            self.heads.append(head)

    def features(self, x: torch.Tensor, seg: torch.Tensor | None = None) -> list[torch.Tensor]:
        if seg is not None:
            x = torch.cat([x, seg.to(x.dtype) - self.seg_offset], dim=1)
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
                if len(self.z_up):
                    up = self.z_up[l](up)
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
        # keys absent from configs written before they existed default to the earlier behaviour
        z_up_convs = int(c.get("z_up_convs", 0))
        latent_kw = {
            "z_up_convs": z_up_convs,
            "z_up_channels": int(c.get("z_up_channels", zdim * int(c["base_channels"]))),
            "level_convs": int(c["level_convs"]) if c.get("level_convs") else None,
        }
        self.prior = HierarchicalLatentNet(in_channels, *args, **latent_kw)
        self.posterior = HierarchicalLatentNet(
            in_channels + 1, *args, **latent_kw, seg_offset=float(c.get("mask_offset", 0.0))
        )
        self.likelihood = Likelihood(*args, residual=bool(c.get("residual", True)))
        weighting = str(c.get("kl_weighting", "equal"))
        if weighting not in ("equal", "exponential"):
            raise ValueError(f"config['kl_weighting'] must be 'equal' or 'exponential', got {weighting!r}")
        # exponential: level l (0 = finest) weighted 4**l, as phiseg_model.py add_hierarchical_KL_div_loss
        self.kl_level_weights = [4.0**l if weighting == "exponential" else 1.0 for l in range(levels)]
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
        kls = [
            w * D.kl_divergence(q, p).mean()
            for w, q, p in zip(self.kl_level_weights, q_dists, p_dists, strict=True)
        ]
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
