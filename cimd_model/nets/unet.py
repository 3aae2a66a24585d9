"""U-Net building blocks shared by the baselines (and usable by any other model).

The blocks are deliberately plain (3×3 convolutions, optional GroupNorm, ReLU, average-pool down, bilinear
up) so that the CPU-small configs train in minutes and the paper configs differ only by widths and depths.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def check_divisible(x: torch.Tensor, factor: int, what: str = "images") -> None:
    """Raise ``ValueError`` unless the spatial size of ``x`` (…, H, W) is divisible by ``factor``."""
    if x.dim() != 4:
        raise ValueError(f"{what} must be a (B, C, H, W) tensor, got shape {tuple(x.shape)}")
    h, w = x.shape[-2:]
    if h % factor or w % factor:
        raise ValueError(
            f"{what} of spatial size {h}x{w} must be divisible by {factor} (2**number of downsamplings); "
            "crop or pad the data, or use a shallower config"
        )


def _norm(channels: int, norm: bool) -> nn.Module:
    if not norm:
        return nn.Identity()
    groups = 8 if channels % 8 == 0 else 1
    return nn.GroupNorm(groups, channels)


class ConvBlock(nn.Module):
    """``n_convs`` × (3×3 conv → [GroupNorm] → ReLU)."""

    def __init__(self, in_channels: int, out_channels: int, n_convs: int = 2, norm: bool = True) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(n_convs):
            layers += [
                nn.Conv2d(in_channels if i == 0 else out_channels, out_channels, 3, padding=1),
                _norm(out_channels, norm),
                nn.ReLU(inplace=True),
            ]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class Encoder(nn.Module):
    """Contracting path: level 0 at full resolution, level ``l`` at ``H / 2**l``.

    Parameters
    ----------
    in_channels : int
    channels : sequence of int
        Width of every level; ``len(channels)`` levels, ``len(channels) - 1`` downsamplings.
    n_convs, norm :
        Passed to :class:`ConvBlock`.
    """

    def __init__(
        self, in_channels: int, channels: Sequence[int], n_convs: int = 2, norm: bool = True
    ) -> None:
        super().__init__()
        if len(channels) < 1:
            raise ValueError("channels must list at least one level width")
        self.channels = list(channels)
        self.blocks = nn.ModuleList()
        prev = in_channels
        for ch in self.channels:
            self.blocks.append(ConvBlock(prev, ch, n_convs, norm))
            prev = ch

    @property
    def downsample_factor(self) -> int:
        return 2 ** (len(self.channels) - 1)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for i, block in enumerate(self.blocks):
            if i > 0:
                x = F.avg_pool2d(x, 2)
            x = block(x)
            feats.append(x)
        return feats


class Decoder(nn.Module):
    """Expanding path: bilinear ×2 upsampling, concatenation with the skip, :class:`ConvBlock`."""

    def __init__(self, channels: Sequence[int], n_convs: int = 2, norm: bool = True) -> None:
        super().__init__()
        self.channels = list(channels)
        self.blocks = nn.ModuleList()
        for lvl in range(len(self.channels) - 2, -1, -1):
            self.blocks.append(
                ConvBlock(self.channels[lvl + 1] + self.channels[lvl], self.channels[lvl], n_convs, norm)
            )

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        x = feats[-1]
        for block, skip in zip(self.blocks, reversed(feats[:-1]), strict=True):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], dim=1))
        return x


class UNet(nn.Module):
    """A U-Net returning its last full-resolution feature map (``channels[0]`` channels).

    With ``out_channels`` set, a final 1×1 convolution maps the features to that many logits.
    """

    def __init__(
        self,
        in_channels: int,
        channels: Sequence[int],
        out_channels: int | None = None,
        n_convs: int = 2,
        norm: bool = True,
    ) -> None:
        super().__init__()
        self.encoder = Encoder(in_channels, channels, n_convs, norm)
        self.decoder = Decoder(channels, n_convs, norm)
        self.head = nn.Conv2d(channels[0], out_channels, 1) if out_channels else None
        self.out_features = out_channels or channels[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_divisible(x, self.encoder.downsample_factor)
        y = self.decoder(self.encoder(x))
        return self.head(y) if self.head is not None else y


def channel_list(base_channels: int, mults: Sequence[float]) -> list[int]:
    """Level widths ``round(base_channels * m)`` for every multiplier ``m``."""
    if base_channels < 1:
        raise ValueError(f"base_channels must be >= 1, got {base_channels}")
    return [max(1, int(round(base_channels * m))) for m in mults]


def logit_head(in_channels: int, foreground_prior: float = 0.1) -> nn.Conv2d:
    """1×1 conv to one logit channel whose bias starts at ``logit(foreground_prior)``.

    Segmentation masks are mostly background; starting the output there (instead of at p = 0.5) saves the
    first few hundred steps of a short CPU run. ``foreground_prior = 0.5`` gives a zero bias.
    """
    if not 0.0 < foreground_prior < 1.0:
        raise ValueError(f"foreground_prior must be in (0, 1), got {foreground_prior}")
    conv = nn.Conv2d(in_channels, 1, 1)
    with torch.no_grad():
        conv.bias.fill_(float(torch.logit(torch.tensor(foreground_prior))))
    return conv
