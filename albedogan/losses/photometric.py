"""Image-space and UV-space reconstruction losses.

All images are (N, C, H, W) float; masks are (N, 1, H, W) in [0, 1] (soft masks allowed). Means are taken over
masked pixels (and channels) per sample, then over the batch, so the loss does not depend on how much of the
image the face covers.
"""

from __future__ import annotations

import math

import torch

__all__ = ["masked_l1", "log_cosh", "albedo_distillation_loss"]


def _masked_mean(per_pixel: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """per_pixel (N, C, H, W), mask (N, 1, H, W) or None → scalar mean over masked entries (per sample, then batch)."""
    if mask is None:
        return per_pixel.mean()
    if mask.shape[0] != per_pixel.shape[0] or mask.shape[-2:] != per_pixel.shape[-2:]:
        raise ValueError(f"mask {tuple(mask.shape)} does not match image {tuple(per_pixel.shape)}")
    weight = mask.expand_as(per_pixel)
    num = (per_pixel * weight).flatten(1).sum(1)
    den = weight.flatten(1).sum(1).clamp_min(1e-6)
    return (num / den).mean()


def masked_l1(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Masked photometric L1: mean |pred − target| over pixels where ``mask`` > 0.

    Args:
        pred, target: (N, C, H, W).
        mask: (N, 1, H, W) weights in [0, 1], e.g. render alpha × face-region mask; None = all pixels.
    """
    return _masked_mean((pred - target).abs(), mask)


def log_cosh(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Masked mean of log(cosh(pred − target)), computed stably as |x| + softplus(−2|x|) − log 2."""
    x = (pred - target).abs()
    per_pixel = x + torch.nn.functional.softplus(-2.0 * x) - math.log(2.0)
    return _masked_mean(per_pixel, mask)


def albedo_distillation_loss(
    albedo: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """AlbedoGAN's self-distillation term: ½·[logcosh(A − T) + logcosh(A − flip(T))].

    The second term compares against the horizontally mirrored target (the FLAME UV layout is left/right symmetric
    about the vertical centre line), which pushes the albedo toward symmetry where the target is one-sided.

    Args:
        albedo: (N, 3, H, W) generated UV albedo in [0, 1].
        target: (N, 3, H, W) pseudo ground-truth UV texture.
        mask: (N, 1, H, W) texel weights for the target (e.g. visibility after completion); mirrored with it.
    """
    flipped = target.flip(-1)
    flipped_mask = None if mask is None else mask.flip(-1)
    return 0.5 * (log_cosh(albedo, target, mask) + log_cosh(albedo, flipped, flipped_mask))
