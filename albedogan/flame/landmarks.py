"""Landmarks on the FLAME mesh: barycentric interpolation and DECA's yaw-dependent face contour.

The 68-point image landmarks are 17 contour points followed by 51 inner-face points. The contour is not fixed on
the mesh: for a head turned by yaw θ the visible jaw line is read from row ``r(θ)`` of the dynamic table
(REFERENCE §4, as DECA/MICA do it, whose table ``landmark_embedding.npy`` is):

    R = R_global · R_neck
    θ = round_half_even(degrees(atan2(−R[2, 0], √(R[0, 0]² + R[1, 0]²))))  clamped to ≤ 39
    r = θ            for θ ≥ 0
    r = 39 − θ       for −39 ≤ θ ≤ −1   (rows 40..78)
    r = 78           for θ < −39

(FLAME_PyTorch / smplx negate θ first and so pick the mirrored contour for the same pose: not used here.)
Positions are metres in FLAME's frame; the NoW landmarks are rows [19, 22, 25, 28, 16, 31, 37] of lmk68[17:].
"""

from __future__ import annotations

import torch

from albedogan.flame.lbs import batch_rodrigues

__all__ = [
    "NOW_LANDMARK_ROWS",
    "barycentric_landmarks",
    "contour_rows",
    "contour_yaw_degrees",
    "landmarks5_from_68",
    "now_landmarks",
    "rotation_yaw_degrees",
]

NOW_LANDMARK_ROWS = (19, 22, 25, 28, 16, 31, 37)
"""Rows of the 51 static landmarks (lmk68[17:]) used by the NoW challenge, in NoW's order."""

_MAX_YAW = 39


def contour_yaw_degrees(global_pose: torch.Tensor, neck_pose: torch.Tensor) -> torch.Tensor:
    """Head yaw used for the contour choice: ``degrees(atan2(−R[2,0], √(R00² + R10²)))`` of R = R_global·R_neck.

    Args:
        global_pose: (N, 3) root axis-angle, radians.
        neck_pose: (N, 3) neck axis-angle, radians.

    Returns:
        (N,) yaw in degrees (float, same dtype), not yet rounded.
    """
    return rotation_yaw_degrees(batch_rodrigues(global_pose) @ batch_rodrigues(neck_pose))


def rotation_yaw_degrees(rot: torch.Tensor) -> torch.Tensor:
    """(N, 3, 3) head rotation R = R_global·R_neck -> (N,) yaw in degrees, ``degrees(atan2(−R20, √(R00² + R10²)))``."""
    cos_term = torch.sqrt(rot[:, 0, 0] ** 2 + rot[:, 1, 0] ** 2)
    return torch.rad2deg(torch.atan2(-rot[:, 2, 0], cos_term))


def contour_rows(yaw_degrees: torch.Tensor) -> torch.Tensor:
    """Row of the dynamic contour table for each yaw (see the module docstring).

    Args:
        yaw_degrees: (N,) float yaw in degrees.

    Returns:
        (N,) long rows in [0, 78].
    """
    yaw = torch.clamp(torch.round(yaw_degrees.detach()), max=_MAX_YAW).long()  # torch.round: half to even
    negative = torch.where(yaw < -_MAX_YAW, torch.full_like(yaw, 2 * _MAX_YAW), _MAX_YAW - yaw)
    return torch.where(yaw >= 0, yaw, negative)


def barycentric_landmarks(
    vertices: torch.Tensor, faces: torch.Tensor, face_idx: torch.Tensor, bary: torch.Tensor
) -> torch.Tensor:
    """Interpolate landmarks inside mesh triangles (batched gather).

    Args:
        vertices: (N, V, 3) mesh vertices.
        faces: (F, 3) long triangle vertex indices.
        face_idx: (N, L) or (L,) long face of each landmark.
        bary: (N, L, 3) or (L, 3) barycentric weights (same dtype as ``vertices``).

    Returns:
        (N, L, 3) landmarks ``Σ_k bary[..., k] · vertices[faces[face_idx, k]]``.
    """
    n_batch = vertices.shape[0]
    if face_idx.dim() == 1:
        face_idx = face_idx.expand(n_batch, -1)
    if bary.dim() == 2:
        bary = bary.expand(n_batch, -1, -1)
    corner_idx = faces[face_idx]  # (N, L, 3) vertex indices
    n_lmk = corner_idx.shape[1]
    gathered = torch.gather(vertices, 1, corner_idx.reshape(n_batch, n_lmk * 3, 1).expand(-1, -1, 3))
    corners = gathered.reshape(n_batch, n_lmk, 3, 3)  # (N, L, corner, xyz)
    return torch.einsum("nlk,nlkc->nlc", bary.to(vertices.dtype), corners)


def now_landmarks(landmarks68: torch.Tensor) -> torch.Tensor:
    """The 7 NoW landmarks from a 68-landmark set.

    Args:
        landmarks68: (..., 68, D) landmarks (use the fixed "full" embedding for 3D evaluation).

    Returns:
        (..., 7, D) ``landmarks68[..., 17:, :][..., NOW_LANDMARK_ROWS, :]``.
    """
    rows = torch.tensor(NOW_LANDMARK_ROWS, device=landmarks68.device) + 17
    return landmarks68[..., rows, :]


def landmarks5_from_68(landmarks: torch.Tensor) -> torch.Tensor:
    """The five points of a face detector from 68 iBUG landmarks: eye centres, nose tip, mouth corners.

    Order as :class:`~albedogan.datamodules.detection.FaceDetection`: image-left eye (mean of points 36–41),
    image-right eye (mean of 42–47), nose tip (30), image-left mouth corner (48), image-right mouth corner (54).

    Args:
        landmarks: (N, 68, D) landmarks (any frame, D >= 1; image NDC for the loss).

    Returns:
        (N, 5, D) new tensor, same dtype and frame.
    """
    if landmarks.ndim != 3 or landmarks.shape[1] != 68:
        raise ValueError(f"landmarks5_from_68: expected (N, 68, D) landmarks, got {tuple(landmarks.shape)}")
    return torch.stack(
        [landmarks[:, 36:42].mean(1), landmarks[:, 42:48].mean(1), landmarks[:, 30], landmarks[:, 48],
         landmarks[:, 54]],
        dim=1,
    )
