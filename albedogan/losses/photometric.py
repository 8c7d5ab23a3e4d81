"""Image-space and UV-space reconstruction losses.

All images are (N, C, H, W) float; masks are (N, 1, H, W) in [0, 1] (soft masks allowed). Means are taken over
masked pixels (and channels) per sample, then over the batch, so the loss does not depend on how much of the
image the face covers.
"""

from __future__ import annotations

import math
from typing import Callable

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
    albedo: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    mirror: Callable[[torch.Tensor], torch.Tensor],
    eps: float = 1e-6,
) -> torch.Tensor:
    """AlbedoGAN's self-distillation term: ½·[logcosh(A − T) + logcosh(A − M(T))].

    ``M`` mirrors a UV map left/right (the head's :class:`albedogan.render.UVMirror`: FLAME's UV layout is not
    symmetric about u = 0.5, so this is a partner-UV lookup, not a width flip). The second term pushes the albedo
    toward symmetry where the target is one-sided.

    Args:
        albedo: (N, 3, H, W) generated UV albedo in [0, 1].
        target: (N, 3, H, W) pseudo ground-truth UV texture.
        mask: (N, 1, H, W) texel weights for the target (e.g. visibility after completion); None = all texels. The
            mirrored target is mask-weighted, ``M(m T) / M(m)``, with weight ``M(m)``.
        mirror: (N, C, H, W) -> (N, C, H, W) mirror of UV maps at this resolution.
    """
    m = torch.ones_like(target[:, :1]) if mask is None else mask.to(target.dtype)
    mirrored = mirror(torch.cat([m * target, m], dim=1))  # (N, 4, H, W)
    m_mirror = mirrored[:, 3:]
    t_mirror = mirrored[:, :3] / torch.where(m_mirror > eps, m_mirror, torch.ones_like(m_mirror))
    return 0.5 * (log_cosh(albedo, target, mask) + log_cosh(albedo, t_mirror, m_mirror))
