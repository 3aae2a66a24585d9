"""Training-time data augmentation of (image, annotation) pairs: flips, rotation and scaling.

One affine resampling per image (bilinear; zeros outside the image, as ``cv2.warpAffine`` and
batchgenerators' ``border_mode="constant"`` do), the annotation resampled with the same transform and
thresholded at 0.5 -- for a binary mask this is what PHiSeg's one-hot interpolation followed by argmax gives.
All randomness comes from the ``generator`` the caller passes, so a resumed run sees the same batches.

The spec is a JSON-able dict stored in the model config under ``"augment"`` (``None`` or absent: off):

``p_spatial``
    probability that an image gets the rotation / scaling transform (default 1).
``rotate_deg``
    rotation angle drawn uniformly from ``[-rotate_deg, rotate_deg]`` degrees (default 0).
``scale``
    ``[lo, hi]``: side of the sampled input square relative to the image, drawn uniformly (default
    ``[1, 1]``); below 1 zooms in, above 1 zooms out.
``translate``
    ``"inside"``: the sampled square is placed uniformly at random where it fits inside the image (PHiSeg's
    random crop; only meaningful with ``scale <= 1``); ``"none"`` (default): centred.
``flip_lr``, ``flip_ud``
    probabilities of a left-right / up-down flip (default 0).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

__all__ = ["KEYS", "augment_batch", "check_spec"]

KEYS = ("p_spatial", "rotate_deg", "scale", "translate", "flip_lr", "flip_ud")


def check_spec(spec: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Validate an ``augment`` spec; returns it with defaults filled (``None`` when augmentation is off)."""
    if not spec:
        return None
    unknown = sorted(set(spec) - set(KEYS))
    if unknown:
        raise ValueError(f"augment: unknown key(s) {unknown}; known: {list(KEYS)}")
    out = {
        "p_spatial": float(spec.get("p_spatial", 1.0)),
        "rotate_deg": float(spec.get("rotate_deg", 0.0)),
        "scale": [float(v) for v in spec.get("scale", (1.0, 1.0))],
        "translate": str(spec.get("translate", "none")),
        "flip_lr": float(spec.get("flip_lr", 0.0)),
        "flip_ud": float(spec.get("flip_ud", 0.0)),
    }
    for key in ("p_spatial", "flip_lr", "flip_ud"):
        if not 0.0 <= out[key] <= 1.0:
            raise ValueError(f"augment[{key!r}] must be a probability in [0, 1], got {out[key]}")
    lo, hi = out["scale"] if len(out["scale"]) == 2 else (0.0, -1.0)
    if not 0.0 < lo <= hi:
        raise ValueError(f"augment['scale'] must be [lo, hi] with 0 < lo <= hi, got {spec.get('scale')}")
    if out["translate"] not in ("none", "inside"):
        raise ValueError(f"augment['translate'] must be 'none' or 'inside', got {out['translate']!r}")
    return out


def _uniform(n: int, lo: float, hi: float, generator: torch.Generator | None) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=generator, dtype=torch.float64)


def augment_batch(
    images: torch.Tensor,
    masks: torch.Tensor,
    spec: Mapping[str, Any] | None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Augment a batch: images (B, C, H, W) float, masks (B, 1, H, W) in {0, 1}; returns new tensors.

    Every image draws its own parameters from ``generator``: first whether and how it is rotated and scaled,
    then its flips (see the module docstring for ``spec``).
    """
    spec = check_spec(spec)
    if spec is None:
        return images, masks
    if images.dim() != 4 or masks.dim() != 4 or images.shape[0] != masks.shape[0]:
        raise ValueError(
            f"expected (B, C, H, W) images and (B, 1, H, W) masks, got {tuple(images.shape)}, "
            f"{tuple(masks.shape)}"
        )
    b = images.shape[0]
    spatial = torch.rand(b, generator=generator, dtype=torch.float64) < spec["p_spatial"]
    angle = _uniform(b, -spec["rotate_deg"], spec["rotate_deg"], generator) * math.pi / 180.0
    side = _uniform(b, *spec["scale"], generator)
    # "inside": the sampled pixel centres stay within the outermost input pixel centres (normalised
    # coordinates, align_corners=False: pixel centres at ±(1 - 1/size)), so nothing is sampled from padding
    h, w = images.shape[-2:]
    edge = torch.tensor([1.0 - 1.0 / w, 1.0 - 1.0 / h], dtype=torch.float64)
    if spec["translate"] == "inside":
        room = (1.0 - side).clamp(min=0.0)[:, None] * edge
    else:
        room = torch.zeros(b, 2, dtype=torch.float64)
    shift = _uniform(2 * b, -1.0, 1.0, generator).reshape(b, 2) * room
    flip_lr = torch.rand(b, generator=generator, dtype=torch.float64) < spec["flip_lr"]
    flip_ud = torch.rand(b, generator=generator, dtype=torch.float64) < spec["flip_ud"]
    identity = spec["rotate_deg"] == 0.0 and spec["scale"] == [1.0, 1.0]
    if not identity and bool(spatial.any()):
        angle, side = torch.where(spatial, angle, 0.0), torch.where(spatial, side, 1.0)
        shift = torch.where(spatial[:, None], shift, 0.0)
        cos, sin = torch.cos(angle), torch.sin(angle)
        rot = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)  # (B, 2, 2)
        # output pixel u samples the input at R (shift + side * u): crop the square, then undo the rotation
        theta = torch.cat([rot * side[:, None, None], (rot @ shift[..., None])], dim=-1)
        grid = F.affine_grid(theta.to(images.dtype), list(images.shape), align_corners=False)
        images = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        warped = F.grid_sample(
            masks.to(images.dtype), grid, mode="bilinear", padding_mode="zeros", align_corners=False
        )
        masks = (warped > 0.5).to(masks.dtype)
    if bool(flip_lr.any()):
        images = torch.where(flip_lr[:, None, None, None], images.flip(-1), images)
        masks = torch.where(flip_lr[:, None, None, None], masks.flip(-1), masks)
    if bool(flip_ud.any()):
        images = torch.where(flip_ud[:, None, None, None], images.flip(-2), images)
        masks = torch.where(flip_ud[:, None, None, None], masks.flip(-2), masks)
    return images, masks
