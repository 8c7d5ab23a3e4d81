"""Ground-truth metrics for the embedded (procedural) world, where every teacher image comes with its truth.

* :func:`albedo_error` — mean absolute RGB error of a UV albedo against the true albedo on face texels.
* :func:`neutral_shape_error` — mean per-vertex distance (millimetres) between neutral meshes (zero expression
  and pose) built from predicted and true shape coefficients: measures identity shape only.
* :func:`landmark_error` — mean 2D landmark distance in pixels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from albedogan.flame.head import HeadModel
from albedogan.render.uv import resize_uv  # noqa: F401  (also imported from here by the training modules)
from albedogan.structures import FlameParams
from albedogan.utils.shapes import assert_shape

__all__ = ["albedo_error", "face_texel_mask", "landmark_error", "neutral_shape_error"]


def face_texel_mask(head: HeadModel, resolution: int, threshold: float = 0.5) -> torch.Tensor:
    """(1, 1, R, R) float {0, 1}: texels of the head's face region (``uv_face_mask``) at resolution R."""
    return (resize_uv(head.uv_face_mask, resolution) > threshold).to(head.uv_face_mask.dtype)


def albedo_error(pred: torch.Tensor, truth: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean absolute error of UV albedo maps on masked texels, per sample.

    Args:
        pred: (N, 3, R, R) predicted albedo in [0, 1].
        truth: (N, 3, R', R') true albedo in [0, 1]; resampled to R when R' != R.
        mask: (1 or N, 1, R, R) texel weights (e.g. :func:`face_texel_mask`).

    Returns:
        (N,) mean |pred − truth| over masked texels and the 3 channels (albedo units, [0, 1]).
    """
    assert_shape(pred, [None, 3, None, None], "pred")
    r = pred.shape[-1]
    truth = resize_uv(truth.to(pred.dtype), r)
    assert_shape(truth, [pred.shape[0], 3, r, r], "truth")
    w = mask.to(pred.dtype).expand(pred.shape[0], 1, r, r)
    err = ((pred - truth).abs().mean(1, keepdim=True) * w).flatten(1).sum(1)
    return err / w.flatten(1).sum(1).clamp_min(1e-8)


def neutral_shape_error(head: HeadModel, pred_shape: torch.Tensor, true_shape: torch.Tensor) -> torch.Tensor:
    """Mean per-vertex distance between neutral meshes of predicted and true identity shapes.

    Args:
        head: the head model (FLAME units: metres).
        pred_shape: (N, S) predicted shape coefficients (S ≤ ``head.n_shape``; zero-padded).
        true_shape: (N, S') true shape coefficients.

    Returns:
        (N,) mean Euclidean vertex distance in millimetres.
    """

    def neutral(shape: torch.Tensor) -> torch.Tensor:
        params = head.zero_params(shape.shape[0])
        s = shape[:, : head.n_shape].to(params.shape)
        s = F.pad(s, (0, head.n_shape - s.shape[1]))
        return head(FlameParams(s, params.expression, params.global_pose, params.neck_pose, params.jaw_pose,
                                params.eye_pose)).vertices  # (N, V, 3) metres

    return (neutral(pred_shape) - neutral(true_shape)).norm(dim=-1).mean(-1) * 1000.0


def landmark_error(pred: torch.Tensor, truth: torch.Tensor, image_size: int) -> torch.Tensor:
    """(N, L, 2) image-NDC landmarks vs truth → (N,) mean distance in pixels of an ``image_size`` square image."""
    assert_shape(pred, [None, None, 2], "pred")
    assert_shape(truth, list(pred.shape), "truth")
    return (pred - truth).norm(dim=-1).mean(-1) * (image_size / 2.0)
