"""The time-conditioned denoising U-Net (an ADM / guided-diffusion style architecture, written anew).

Input: the image channels concatenated with the noisy mask :math:`x_t`; output: the predicted noise
:math:`\\epsilon` and (with ``learn_sigma``) the raw variance interpolation value ``v`` of
:meth:`cimd_model.diffusion.schedule.DiffusionSchedule.learned_log_variance`.

Structure: per level, ``num_res_blocks`` residual blocks (GroupNorm-SiLU-conv, the timestep embedding
applied as a scale/shift of the second norm), self-attention after them at the chosen feature-map
resolutions, then a strided-conv downsample; a middle block (res, attention, res); a mirrored decoder
with skip connections and nearest-neighbour upsampling. Inputs whose size is not a multiple of
``2**(levels-1)`` are replicate-padded and the output cropped back.

With ``latent_dim > 0`` (the ``cimd-latent`` variant) a latent code ``z`` (B, latent_dim) is projected by a
linear layer and added to the timestep embedding, so every residual block is conditioned on it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Denoiser", "timestep_embedding"]


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding (B, dim) of the (B,) integer or float timesteps ``t``."""
    if t.ndim != 1:
        raise ValueError(f"t must be 1-D, got shape {tuple(t.shape)}")
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=1)
    return emb


def _groups(channels: int) -> int:
    """GroupNorm group count: up to 32 groups of at least 4 channels (1 group for tiny layers)."""
    for g in (32, 16, 8, 4, 2):
        if channels % g == 0 and channels // g >= 4:
            return g
    return 1


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(_groups(channels), channels)


def _zero(module: nn.Module) -> nn.Module:
    """Zero-initialise a layer's parameters (residual branches start as the identity)."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class ResBlock(nn.Module):
    """Residual block with the timestep embedding as a scale/shift of the second GroupNorm."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.in_layers = nn.Sequential(_norm(in_ch), nn.SiLU(), nn.Conv2d(in_ch, out_ch, 3, padding=1))
        self.emb = nn.Sequential(nn.SiLU(), nn.Linear(emb_dim, 2 * out_ch))
        self.out_norm = _norm(out_ch)
        self.out_layers = nn.Sequential(
            nn.SiLU(), nn.Dropout(dropout), _zero(nn.Conv2d(out_ch, out_ch, 3, padding=1))
        )
        self.skip = nn.Identity() if in_ch == out_ch else nn.Conv2d(in_ch, out_ch, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.in_layers(x)
        scale, shift = self.emb(emb)[:, :, None, None].chunk(2, dim=1)
        h = self.out_norm(h) * (1.0 + scale) + shift
        return self.skip(x) + self.out_layers(h)


class AttentionBlock(nn.Module):
    """Multi-head self-attention over all spatial positions, residual, output projection zero-initialised."""

    def __init__(self, channels: int, num_heads: int = 1) -> None:
        super().__init__()
        if channels % num_heads:
            raise ValueError(f"channels ({channels}) must be divisible by num_heads ({num_heads})")
        self.num_heads = num_heads
        self.norm = _norm(channels)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.proj = _zero(nn.Conv1d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(self.norm(x).reshape(b, c, h * w))  # (b, 3c, L)
        q, k, v = qkv.reshape(b, 3, self.num_heads, c // self.num_heads, h * w).permute(1, 0, 2, 4, 3)
        out = F.scaled_dot_product_attention(q, k, v)  # (b, heads, L, d)
        out = out.permute(0, 1, 3, 2).reshape(b, c, h * w)
        return x + self.proj(out).reshape(b, c, h, w)


class _Level(nn.Module):
    """Residual blocks of one resolution, each optionally followed by attention."""

    def __init__(self, blocks: Sequence[ResBlock], attn: Sequence[nn.Module]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.attn = nn.ModuleList(attn)


class Denoiser(nn.Module):
    """Time-conditioned U-Net predicting the noise (and the variance interpolation) of a noisy mask.

    Parameters
    ----------
    in_channels : int
        Image channels + mask channels (the image is concatenated with :math:`x_t`).
    out_channels : int
        Mask channels (1).
    base_channels : int
        Channels of the first level (128 in the paper).
    channel_mult : sequence of int
        Per-level multipliers of ``base_channels`` ((1, 1, 2, 3, 4) in the paper).
    num_res_blocks : int
        Residual blocks per level in the encoder (the decoder has one more, as in ADM).
    attention_ds : sequence of int
        Downsampling factors (1, 2, 4, ...) of the levels that get self-attention; a factor of
        ``image_size // 16`` is attention at 16x16.
    num_heads : int
        Attention heads.
    dropout : float
    learn_sigma : bool
        Also output the variance interpolation ``v``.
    latent_dim : int
        Size of the latent code ``z`` added (through a linear projection) to the timestep embedding;
        0 (default): no latent input.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int = 1,
        base_channels: int = 128,
        channel_mult: Sequence[int] = (1, 1, 2, 3, 4),
        num_res_blocks: int = 2,
        attention_ds: Sequence[int] = (8,),
        num_heads: int = 1,
        dropout: float = 0.0,
        learn_sigma: bool = True,
        latent_dim: int = 0,
    ) -> None:
        super().__init__()
        if latent_dim < 0:
            raise ValueError(f"latent_dim must be >= 0, got {latent_dim}")
        if in_channels < 1 or out_channels < 1 or base_channels < 1 or num_res_blocks < 1:
            raise ValueError(
                "in_channels, out_channels, base_channels and num_res_blocks must be >= 1, got "
                f"{in_channels}, {out_channels}, {base_channels}, {num_res_blocks}"
            )
        if not channel_mult or min(channel_mult) < 1:
            raise ValueError(
                f"channel_mult must be a non-empty sequence of positive ints, got {channel_mult}"
            )
        self.out_channels = int(out_channels)
        self.learn_sigma = bool(learn_sigma)
        self.levels = len(channel_mult)
        self.base_channels = int(base_channels)
        emb_dim = 4 * base_channels
        self.time_embed = nn.Sequential(
            nn.Linear(base_channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim)
        )
        self.input_conv = nn.Conv2d(in_channels, base_channels, 3, padding=1)
        attention_ds = {int(a) for a in attention_ds}

        def attn(ch: int, ds: int) -> nn.Module:
            return AttentionBlock(ch, num_heads) if ds in attention_ds else nn.Identity()

        ch = base_channels
        skip_channels = [ch]
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        for level, mult in enumerate(channel_mult):
            ds = 2**level
            blocks, attns = [], []
            for _ in range(num_res_blocks):
                blocks.append(ResBlock(ch, mult * base_channels, emb_dim, dropout))
                ch = mult * base_channels
                attns.append(attn(ch, ds))
                skip_channels.append(ch)
            self.down.append(_Level(blocks, attns))
            if level < self.levels - 1:
                self.downsample.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1))
                skip_channels.append(ch)
        mid_ds = 2 ** (self.levels - 1)
        self.mid = nn.ModuleList(
            [
                ResBlock(ch, ch, emb_dim, dropout),
                AttentionBlock(ch, num_heads),
                ResBlock(ch, ch, emb_dim, dropout),
            ]
        )
        del mid_ds
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for level, mult in reversed(list(enumerate(channel_mult))):
            ds = 2**level
            blocks, attns = [], []
            for _ in range(num_res_blocks + 1):
                blocks.append(ResBlock(ch + skip_channels.pop(), mult * base_channels, emb_dim, dropout))
                ch = mult * base_channels
                attns.append(attn(ch, ds))
            self.up.append(_Level(blocks, attns))
            if level > 0:
                self.upsample.append(nn.Conv2d(ch, ch, 3, padding=1))
        self.out = nn.Sequential(
            _norm(ch), nn.SiLU(), _zero(nn.Conv2d(ch, out_channels * (2 if learn_sigma else 1), 3, padding=1))
        )
        self.latent_dim = int(latent_dim)
        self.latent_embed = nn.Linear(self.latent_dim, emb_dim) if self.latent_dim else None

    def forward(
        self, x: torch.Tensor, t: torch.Tensor, z: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Predict ``(eps, v)`` for the input ``x`` (B, in_channels, H, W) at timesteps ``t`` (B,).

        ``z`` (B, latent_dim) is required when the network was built with ``latent_dim > 0`` and refused
        otherwise. ``v`` is ``None`` when ``learn_sigma`` is False.
        """
        if x.ndim != 4:
            raise ValueError(f"x must be (B, C, H, W), got shape {tuple(x.shape)}")
        if t.shape != (x.shape[0],):
            raise ValueError(f"t must have shape ({x.shape[0]},), got {tuple(t.shape)}")
        H, W = x.shape[-2:]
        m = 2 ** (self.levels - 1)
        pad_h, pad_w = (-H) % m, (-W) % m
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        emb = self.time_embed(timestep_embedding(t, self.base_channels))
        if self.latent_embed is not None:
            if z is None or tuple(z.shape) != (x.shape[0], self.latent_dim):
                got = None if z is None else tuple(z.shape)
                raise ValueError(f"z must have shape ({x.shape[0]}, {self.latent_dim}), got {got}")
            emb = emb + self.latent_embed(z.to(emb.dtype))
        elif z is not None:
            raise ValueError("this denoiser has no latent input (latent_dim=0) but z was given")
        h = self.input_conv(x)
        skips = [h]
        for level, block in enumerate(self.down):
            for res, att in zip(block.blocks, block.attn, strict=True):
                h = att(res(h, emb))
                skips.append(h)
            if level < self.levels - 1:
                h = self.downsample[level](h)
                skips.append(h)
        h = self.mid[2](self.mid[1](self.mid[0](h, emb)), emb)
        for i, block in enumerate(self.up):
            for res, att in zip(block.blocks, block.attn, strict=True):
                h = att(res(torch.cat([h, skips.pop()], dim=1), emb))
            if i < self.levels - 1:
                h = self.upsample[i](F.interpolate(h, scale_factor=2.0, mode="nearest"))
        out = self.out(h)[..., :H, :W]
        if self.learn_sigma:
            eps, v = out.split(self.out_channels, dim=1)
            return eps, v
        return out, None
