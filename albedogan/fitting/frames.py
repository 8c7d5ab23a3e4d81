"""Move a fit made in a roll-straightened crop back to the frame of the source image."""

from __future__ import annotations

import torch

from albedogan.flame.lbs import batch_rodrigues
from albedogan.render.cameras import WeakPerspectiveCamera, ndc_to_pixels, pixels_to_ndc
from albedogan.structures import FaceEstimate, FlameParams

__all__ = ["crop_estimate_to_source", "rotation_to_axis_angle"]


def rotation_to_axis_angle(rot: torch.Tensor) -> torch.Tensor:
    """(N, 3, 3) rotation matrices -> (N, 3) axis-angle (radians), stable away from 180 degrees."""
    cos = ((rot.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2).clamp(-1 + 1e-7, 1 - 1e-7)
    angle = torch.acos(cos)
    axis = torch.stack([rot[:, 2, 1] - rot[:, 1, 2], rot[:, 0, 2] - rot[:, 2, 0], rot[:, 1, 0] - rot[:, 0, 1]], -1)
    sin = torch.sin(angle)
    scale = torch.where(sin.abs() > 1e-6, angle / (2 * sin), torch.full_like(sin, 0.5))
    return axis * scale[:, None]


def crop_estimate_to_source(estimate: FaceEstimate, head, matrices: torch.Tensor, crop_size: int,
                            source_size: int) -> FaceEstimate:
    """The same posed, projected face expressed in the (square) source image's NDC.

    A crop made by a similarity ``p_crop = k R(a) p_src + t`` (pixels, y down) sees the head rotated by ``-a`` about
    FLAME's +Z (y up), so the source-frame global pose is ``Rz(a) R_global``; the camera is re-solved exactly from
    the projected landmarks mapped back through the inverse similarity.

    Args:
        estimate: the fit in crop NDC.
        head: the head model (for the landmarks).
        matrices: (N, 2, 3) source pixels -> crop pixels.
        crop_size: crop side in pixels.
        source_size: source side in pixels (square sources only: weak perspective has one scale).

    Returns:
        :class:`FaceEstimate` in source NDC (light unchanged: it is in the world frame, which rotates with the head
        only through the global pose; an exact transfer would rotate the SH too, which this does not do).
    """
    from albedogan.fitting.fitter import FaceFitter

    m = matrices.to(estimate.cam)
    a = torch.atan2(m[:, 1, 0], m[:, 0, 0])  # (N,)
    cos, sin, zero, one = torch.cos(a), torch.sin(a), torch.zeros_like(a), torch.ones_like(a)
    rz = torch.stack([torch.stack([cos, -sin, zero], -1), torch.stack([sin, cos, zero], -1),
                      torch.stack([zero, zero, one], -1)], 1)  # (N, 3, 3) rotation by a about +Z (y up)
    p = estimate.params
    global_src = rotation_to_axis_angle(rz @ batch_rodrigues(p.global_pose))
    params = FlameParams(p.shape, p.expression, global_src, p.neck_pose, p.jaw_pose, p.eye_pose)
    crop_lmk = WeakPerspectiveCamera(estimate.cam).transform_points(head(p).landmarks2d)[..., :2]
    lin, t = m[:, :, :2], m[:, :, 2:]
    src_px = (ndc_to_pixels(crop_lmk, crop_size) - t.transpose(1, 2)) @ torch.linalg.inv(lin).transpose(1, 2)
    target = pixels_to_ndc(src_px, source_size)
    cam = FaceFitter.solve_camera(head(params).landmarks2d, target)
    return FaceEstimate(params, cam, estimate.light)
