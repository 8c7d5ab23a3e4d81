"""Mip-mapped (area-prefiltered, trilinear) texture lookup for rendering a large UV map into a smaller image.

Bilinear lookup of a 1024² albedo rendered at 224² reads 4 texels per pixel although each pixel covers ~4.6 x 4.6
texels with DECA's UV layout: the render aliases, and photometric / identity / perceptual gradients reach only
~12% of the visible texels. :func:`sample_texture_mip` does what a GPU texture unit does, in plain PyTorch:

1. the **footprint** of each pixel in texels is measured from the per-pixel UVs of the rasterised mesh
   (:func:`texel_footprint`: finite differences to the neighbouring covered pixels, OpenGL's
   ``rho = max(|d(uv)/dx|, |d(uv)/dy|)`` in texel units);
2. a pyramid of 2x2 area averages (level k = the texture area-filtered to 1/2^k of its side);
3. per pixel, level of detail ``lod = clamp(log2(rho), 0, L)`` and a blend of the two nearest levels, each sampled
   bilinearly (trilinear filtering).

Where ``rho <= 1`` (the texture is magnified) ``lod = 0`` and the result equals :func:`~albedogan.render.uv.
sample_texture` exactly. Differentiable w.r.t. the texture (every texel under a pixel's footprint receives
gradient) and the UVs; the level of detail itself is computed from detached UVs.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F

from albedogan.render.uv import sample_texture
from albedogan.utils.shapes import assert_shape

__all__ = ["mip_pyramid", "sample_texture_mip", "texel_footprint"]


def texel_footprint(pixel_uv: torch.Tensor, mask: torch.Tensor, texture_hw: tuple[int, int]) -> torch.Tensor:
    """Texels covered by one pixel along its longer axis (``rho``), per pixel.

    Args:
        pixel_uv: (N, 2, H, W) float per-pixel UVs (u right, v up, [0, 1]).
        mask: (N, 1, H, W) covered pixels (> 0).
        texture_hw: (Ht, Wt) texture size in texels.

    Returns:
        (N, 1, H, W) float ``rho >= 0`` (0 where the pixel or all its neighbours are uncovered). Differences are
        taken to both neighbours along x and y and the smaller one is used, so a UV seam (a jump between islands)
        next to a pixel does not inflate its footprint.
    """
    assert_shape(pixel_uv, [None, 2, None, None], "pixel_uv")
    uv = pixel_uv.detach() * pixel_uv.new_tensor([texture_hw[1], texture_hw[0]]).view(1, 2, 1, 1)  # texel units
    valid = (mask.detach() > 0).to(uv.dtype)
    big = torch.finfo(uv.dtype).max ** 0.5

    def axis_rate(dim: int) -> torch.Tensor:
        fwd = uv.diff(dim=dim)  # (N, 2, ...) differences between neighbours along ``dim``
        both = valid.narrow(dim, 1, valid.shape[dim] - 1) * valid.narrow(dim, 0, valid.shape[dim] - 1)
        length = torch.where(both > 0, fwd.norm(dim=1, keepdim=True), torch.full_like(both, big))
        first, last = ((1, 0, 0, 0), (0, 1, 0, 0)) if dim == 3 else ((0, 0, 1, 0), (0, 0, 0, 1))
        before = F.pad(length, first, value=big)  # (N, 1, H, W): difference to the previous neighbour
        after = F.pad(length, last, value=big)  # difference to the next neighbour
        rate = torch.minimum(before, after)
        return torch.where(rate >= big, torch.zeros_like(rate), rate)

    return torch.maximum(axis_rate(3), axis_rate(2)) * valid


def mip_pyramid(texture: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """``[texture, area/2, area/4, ...]`` (``levels + 1`` maps); a side of odd length rounds up (area resampling)."""
    out = [texture]
    for _ in range(levels):
        h, w = out[-1].shape[-2:]
        if h % 2 == 0 and w % 2 == 0:
            out.append(F.avg_pool2d(out[-1], 2))
        else:
            out.append(F.interpolate(out[-1], size=(max(1, -(-h // 2)), max(1, -(-w // 2))), mode="area"))
    return out


def sample_texture_mip(
    texture: torch.Tensor, pixel_uv: torch.Tensor, mask: Optional[torch.Tensor] = None,
    footprint: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Trilinear mip-mapped texture lookup (see the module docstring).

    Args:
        texture: (N, C, Ht, Wt) float texture.
        pixel_uv: (N, 2, H, W) float per-pixel UVs.
        mask: optional (N, 1, H, W) coverage; output is 0 where it is 0 (and uncovered pixels do not count as
            neighbours for the footprint). None = every pixel covered.
        footprint: optional precomputed (N, 1, H, W) ``rho`` (:func:`texel_footprint`).

    Returns:
        (N, C, H, W) in the texture's dtype; equal to bilinear :func:`~albedogan.render.uv.sample_texture` where
        ``rho <= 1``.
    """
    assert_shape(texture, [None, None, None, None], "texture")
    n, _, h, w = pixel_uv.shape
    cover = mask if mask is not None else pixel_uv.new_ones(n, 1, h, w)
    rho = texel_footprint(pixel_uv, cover, tuple(texture.shape[-2:])) if footprint is None else footprint
    max_level = int(math.floor(math.log2(max(1, min(texture.shape[-2:])))))
    lod = torch.log2(rho.clamp_min(1.0)).clamp(0.0, float(max_level)).to(texture.dtype)  # (N, 1, H, W)
    top = int(math.ceil(float(lod.max()))) if lod.numel() else 0
    if top == 0:
        return sample_texture(texture, pixel_uv, mask)
    out = None
    for k, level in enumerate(mip_pyramid(texture, top)):
        weight = (1.0 - (lod - k).abs()).clamp_min(0.0)  # (N, 1, H, W): tent around level k
        if not bool((weight > 0).any()):
            continue
        term = sample_texture(level, pixel_uv) * weight
        out = term if out is None else out + term
    return out * cover.to(out.dtype) if mask is not None else out
