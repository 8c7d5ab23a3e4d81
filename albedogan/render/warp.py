"""Image warps and 2D similarity transforms, in the renderer's pixel conventions (``albedogan.render``).

Pixel convention (the same as OpenCV's ``warpAffine`` and insightface's ``norm_crop``): the centre of the pixel in
row ``i``, column ``j`` has coordinates ``(x, y) = (j, i)``; the image covers ``[-0.5, W - 0.5] x [-0.5, H - 0.5]``.
Points are ``(x, y)`` pairs in that frame, x to the right, y down. A 2x3 matrix ``M`` acts on column vectors
``(x, y, 1)`` and maps *source-image* pixel coordinates to *output (crop)* pixel coordinates; its inverse maps crop
points back to the source image (:func:`invert_affine`, :func:`transform_points`). Crop boxes in image NDC
(:func:`crop_to_boxes`) use ``albedogan.render.cameras``' ``(cx, cy, half_w, half_h)`` boxes.

Torch functions are batched, differentiable, device- and dtype-agnostic.
"""

from __future__ import annotations

from typing import Optional, Union

import numpy as np
import torch
import torch.nn.functional as F

from albedogan.utils.shapes import assert_shape

__all__ = ["crop_to_boxes", "estimate_similarity", "invert_affine", "transform_points", "warp_affine"]

Matrix = Union[torch.Tensor, np.ndarray]


def estimate_similarity(src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    """Batched least-squares similarity (rotation, uniform scale, translation; no reflection) from ``src`` to ``dst``.

    Minimises ``sum_k |s R src_k + t - dst_k|^2``. In 2D this is Umeyama's solution (with the determinant
    correction that excludes reflections) in closed form: writing points as complex numbers, the optimal
    ``a + ib = s e^{i theta}`` is ``sum conj(src_c) dst_c / sum |src_c|^2`` over centred points. No SVD, so the
    result is smooth and differentiable w.r.t. both point sets.

    Args:
        src: (N, K, 2) source points (x, y) in source pixel coordinates, K >= 2, floating dtype.
        dst: (K, 2) template shared by the batch or (N, K, 2) per-sample targets, output pixel coordinates.

    Returns:
        (N, 2, 3) matrices ``[[a, -b, tx], [b, a, ty]]`` mapping source pixel coordinates to output pixel
        coordinates; dtype and device of ``src``.

    Raises:
        ValueError: on wrong shapes, or when all source points of a sample coincide (no scale defined).
    """
    if src.ndim != 3 or src.shape[-1] != 2 or src.shape[1] < 2:
        raise ValueError(f"estimate_similarity: src must be (N, K>=2, 2), got {tuple(src.shape)}")
    dst = dst.to(device=src.device, dtype=src.dtype)
    if dst.ndim == 2:
        dst = dst.unsqueeze(0).expand(src.shape[0], -1, -1)
    assert_shape(dst, (src.shape[0], src.shape[1], 2), "estimate_similarity dst")
    src_mean = src.mean(dim=1, keepdim=True)  # (N, 1, 2)
    dst_mean = dst.mean(dim=1, keepdim=True)
    s = src - src_mean  # (N, K, 2)
    d = dst - dst_mean
    denom = (s * s).sum(dim=(1, 2))  # (N,)
    if bool((denom <= torch.finfo(src.dtype).tiny).any()):
        raise ValueError("estimate_similarity: all source points of a sample coincide; check the landmarks")
    a = (s[..., 0] * d[..., 0] + s[..., 1] * d[..., 1]).sum(dim=1) / denom  # (N,)
    b = (s[..., 0] * d[..., 1] - s[..., 1] * d[..., 0]).sum(dim=1) / denom
    rot = torch.stack([torch.stack([a, -b], dim=-1), torch.stack([b, a], dim=-1)], dim=1)  # (N, 2, 2)
    t = dst_mean.squeeze(1) - (rot @ src_mean.transpose(1, 2)).squeeze(-1)  # (N, 2)
    return torch.cat([rot, t.unsqueeze(-1)], dim=-1)


def invert_affine(matrices: Matrix) -> Matrix:
    """Invert 2x3 affine matrices.

    Args:
        matrices: (..., 2, 3) torch tensor or numpy array mapping frame A to frame B (pixel coordinates).

    Returns:
        (..., 2, 3) of the same type, dtype and device, mapping B back to A.
    """
    lin, t = matrices[..., :2], matrices[..., 2:]
    if isinstance(matrices, torch.Tensor):
        inv = torch.linalg.inv(lin)
        return torch.cat([inv, -inv @ t], dim=-1)
    inv = np.linalg.inv(lin)
    return np.concatenate([inv, -inv @ t], axis=-1)


def transform_points(points: Matrix, matrices: Matrix) -> Matrix:
    """Apply 2x3 affine matrices to points.

    Args:
        points: (..., P, 2) (x, y) pixel coordinates (torch or numpy).
        matrices: (..., 2, 3) matrices, broadcastable against ``points``' leading dimensions.

    Returns:
        (..., P, 2) transformed points, same library as ``points``.
    """
    if isinstance(points, torch.Tensor):
        m = torch.as_tensor(matrices, dtype=points.dtype, device=points.device)
        return points @ m[..., :2].transpose(-1, -2) + m[..., 2].unsqueeze(-2)
    m = np.asarray(matrices, dtype=np.float64)
    return np.asarray(points, dtype=np.float64) @ np.swapaxes(m[..., :2], -1, -2) + m[..., None, :, 2]


def _pixel_to_normalized(size_hw: tuple[int, int], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(3, 3) matrix from pixel coordinates to grid_sample's [-1, 1] frame with ``align_corners=False``."""
    h, w = size_hw
    return torch.tensor(
        [[2.0 / w, 0.0, 1.0 / w - 1.0], [0.0, 2.0 / h, 1.0 / h - 1.0], [0.0, 0.0, 1.0]], dtype=dtype, device=device
    )


def warp_affine(
    images: torch.Tensor,
    matrices: torch.Tensor,
    out_size: tuple[int, int],
    mode: str = "bilinear",
    padding_mode: str = "zeros",
) -> torch.Tensor:
    """Warp a batch of images with 2x3 matrices (``cv2.warpAffine`` semantics, differentiable).

    ``out[n, :, y, x] = images[n, :, M_n^{-1}(x, y)]`` sampled bilinearly, with the pixel-centre convention of the
    module docstring (integer coordinates are pixel centres); samples outside the source read 0 (``zeros``) or
    the nearest edge pixel (``border``). Implemented with ``affine_grid`` + ``grid_sample(align_corners=False)``,
    so gradients flow to both ``images`` and ``matrices``.

    Args:
        images: (N, C, H, W) floating images, any range.
        matrices: (N, 2, 3) or (2, 3) matrices mapping source pixel coords to output pixel coords.
        out_size: (h, w) of the output in pixels.
        mode: ``"bilinear"`` or ``"nearest"``.
        padding_mode: ``"zeros"``, ``"border"`` or ``"reflection"``.

    Returns:
        (N, C, h, w) warped images, dtype/device of ``images``.
    """
    if images.ndim != 4:
        raise ValueError(f"warp_affine: images must be (N, C, H, W), got {tuple(images.shape)}")
    if not images.is_floating_point():
        raise TypeError(f"warp_affine: images must be a floating tensor, got {images.dtype}; convert with .float()")
    n, _, h_in, w_in = images.shape
    h_out, w_out = int(out_size[0]), int(out_size[1])
    m = matrices.to(device=images.device, dtype=images.dtype)
    if m.ndim == 2:
        m = m.unsqueeze(0).expand(n, -1, -1)
    assert_shape(m, (n, 2, 3), "warp_affine matrices")
    bottom = torch.tensor([0.0, 0.0, 1.0], dtype=m.dtype, device=m.device).expand(n, 1, 3)
    inv = torch.linalg.inv(torch.cat([m, bottom], dim=1))  # (N, 3, 3): output px -> source px
    to_norm_src = _pixel_to_normalized((h_in, w_in), m.dtype, m.device)
    from_norm_out = torch.linalg.inv(_pixel_to_normalized((h_out, w_out), m.dtype, m.device))
    theta = (to_norm_src @ inv @ from_norm_out)[:, :2]  # (N, 2, 3): output normalised -> source normalised
    grid = F.affine_grid(theta, [n, images.shape[1], h_out, w_out], align_corners=False)  # (N, h, w, 2)
    return F.grid_sample(images, grid, mode=mode, padding_mode=padding_mode, align_corners=False)


_MAX_CROP_SHRINK = 2.0


def crop_to_boxes(images: torch.Tensor, boxes: Optional[torch.Tensor], size: int) -> torch.Tensor:
    """(N, 3, H, W) -> (N, 3, size, size) crops, differentiable w.r.t. images and boxes.

    ``boxes`` None resizes the whole image (antialiased when shrinking); otherwise (N, 4) ``(cx, cy, hw, hh)`` image
    NDC boxes are resampled bilinearly (samples outside the image are 0), after an antialiased downsampling of the
    whole image when the box would shrink it by more than 2x (NDC boxes are resolution-independent).
    """
    n = images.shape[0]
    if boxes is None:
        if tuple(images.shape[-2:]) == (size, size):
            return images
        antialias = images.shape[-2] > size or images.shape[-1] > size
        return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=antialias)
    # antialias: when the crop shrinks the image by more than 2x, area-filter the whole image first (the bilinear
    # resample below then shrinks by <= 2x, e.g. a 224^2 DECA crop of a 1024^2 teacher image)
    shrink = float((boxes[:, 2].detach().amax() * images.shape[-1] / size))
    if shrink > _MAX_CROP_SHRINK:
        factor = _MAX_CROP_SHRINK / shrink
        hw = (max(1, round(images.shape[-2] * factor)), max(1, round(images.shape[-1] * factor)))
        images = F.interpolate(images, size=hw, mode="bilinear", align_corners=False, antialias=True)
    zero = torch.zeros_like(boxes[:, 0])
    theta = torch.stack(
        [torch.stack([boxes[:, 2], zero, boxes[:, 0]], dim=-1), torch.stack([zero, boxes[:, 3], boxes[:, 1]], dim=-1)],
        dim=1,
    )  # (N, 2, 3): crop NDC -> image NDC
    grid = F.affine_grid(theta.to(images.dtype), [n, 3, size, size], align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
