"""Image-space region masks from 68 (iBUG) landmarks: the skin the photometric fit compares."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["inner_mouth_mask_from_landmarks", "skin_mask_from_landmarks"]

_LEFT_EYE = list(range(36, 42))
_RIGHT_EYE = list(range(42, 48))
_INNER_MOUTH = list(range(60, 68))


def skin_mask_from_landmarks(landmarks: torch.Tensor, size: int, eye_dilation: float = 0.25) -> torch.Tensor:
    """Skin mask: convex hull of the 68 points minus the eyes (dilated) and the inner mouth.

    Args:
        landmarks: (N, 68, 2) float pixel coordinates (x right, y down, pixel centres at integers) in an image of
            side ``size``.
        size: image side in pixels.
        eye_dilation: eye polygons are scaled about their centre by ``1 + eye_dilation`` (lids and lashes).

    Returns:
        (N, 1, size, size) float {0, 1} mask (dtype/device of ``landmarks``).
    """
    import cv2

    if landmarks.ndim != 3 or landmarks.shape[1:] != (68, 2):
        raise ValueError(f"skin_mask_from_landmarks: landmarks must be (N, 68, 2), got {tuple(landmarks.shape)}")
    pts = landmarks.detach().cpu().double().numpy()
    shift = 4  # cv2 fixed-point sub-pixel bits
    masks = np.zeros((pts.shape[0], size, size), dtype=np.uint8)
    for i, p in enumerate(pts):  # one polygon fill per face (a handful), no per-pixel loop
        fixed = lambda q: np.round(q * (1 << shift)).astype(np.int32)  # noqa: E731
        hull = cv2.convexHull(fixed(p).reshape(-1, 1, 2))
        cv2.fillConvexPoly(masks[i], hull, 1, lineType=cv2.LINE_8, shift=shift)
        holes = []
        for idx, grow in ((_LEFT_EYE, eye_dilation), (_RIGHT_EYE, eye_dilation), (_INNER_MOUTH, 0.0)):
            q = p[idx]
            c = q.mean(0, keepdims=True)
            holes.append(fixed(c + (q - c) * (1.0 + grow)).reshape(-1, 1, 2))
        cv2.fillPoly(masks[i], holes, 0, lineType=cv2.LINE_8, shift=shift)
    return torch.from_numpy(masks).to(device=landmarks.device, dtype=landmarks.dtype)[:, None]


def inner_mouth_mask_from_landmarks(landmarks: torch.Tensor, size: int) -> torch.Tensor:
    """The mouth opening: the polygon of the inner lip contour (iBUG points 60-67).

    Args:
        landmarks: (N, 68, 2) float pixel coordinates (x right, y down, pixel centres at integers) in an image of
            side ``size``.
        size: image side in pixels.

    Returns:
        (N, 1, size, size) float {0, 1} mask (dtype/device of ``landmarks``); empty for a closed mouth.
    """
    import cv2

    if landmarks.ndim != 3 or landmarks.shape[1:] != (68, 2):
        raise ValueError(f"inner_mouth_mask_from_landmarks: landmarks must be (N, 68, 2), got "
                         f"{tuple(landmarks.shape)}")
    pts = landmarks.detach().cpu().double().numpy()[:, _INNER_MOUTH]
    shift = 4  # cv2 fixed-point sub-pixel bits
    masks = np.zeros((pts.shape[0], size, size), dtype=np.uint8)
    for i, p in enumerate(pts):  # one polygon per face
        cv2.fillPoly(masks[i], [np.round(p * (1 << shift)).astype(np.int32).reshape(-1, 1, 2)], 1,
                     lineType=cv2.LINE_8, shift=shift)
    return torch.from_numpy(masks).to(device=landmarks.device, dtype=landmarks.dtype)[:, None]
