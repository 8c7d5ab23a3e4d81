"""Image-space region masks from 68 (iBUG) landmarks: the skin the photometric fit compares."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["inner_mouth_mask_from_landmarks", "skin_mask_from_landmarks"]

_LEFT_EYE = list(range(36, 42))
_RIGHT_EYE = list(range(42, 48))
_INNER_MOUTH = list(range(60, 68))
_SHIFT = 4  # cv2 fixed-point sub-pixel bits


def _points(landmarks: torch.Tensor, caller: str) -> np.ndarray:
    """(N, 68, 2) tensor -> float64 array, or one clear error naming ``caller``."""
    if landmarks.ndim != 3 or landmarks.shape[1:] != (68, 2):
        raise ValueError(f"{caller}: landmarks must be (N, 68, 2), got {tuple(landmarks.shape)}")
    return landmarks.detach().cpu().double().numpy()


def _fixed(points: np.ndarray) -> np.ndarray:
    """(K, 2) pixel coordinates -> (K, 1, 2) int32 cv2 polygon in :data:`_SHIFT`-bit fixed point."""
    return np.round(points * (1 << _SHIFT)).astype(np.int32).reshape(-1, 1, 2)


def _as_mask(masks: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    """(N, S, S) uint8 -> (N, 1, S, S) float {0, 1} on ``like``'s device and dtype."""
    return torch.from_numpy(masks).to(device=like.device, dtype=like.dtype)[:, None]


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

    pts = _points(landmarks, "skin_mask_from_landmarks")
    masks = np.zeros((pts.shape[0], size, size), dtype=np.uint8)
    for i, p in enumerate(pts):  # one polygon fill per face (a handful), no per-pixel loop
        cv2.fillConvexPoly(masks[i], cv2.convexHull(_fixed(p)), 1, lineType=cv2.LINE_8, shift=_SHIFT)
        holes = []
        for idx, grow in ((_LEFT_EYE, eye_dilation), (_RIGHT_EYE, eye_dilation), (_INNER_MOUTH, 0.0)):
            q = p[idx]
            c = q.mean(0, keepdims=True)
            holes.append(_fixed(c + (q - c) * (1.0 + grow)))
        cv2.fillPoly(masks[i], holes, 0, lineType=cv2.LINE_8, shift=_SHIFT)
    return _as_mask(masks, landmarks)


def inner_mouth_mask_from_landmarks(landmarks: torch.Tensor, size: int) -> torch.Tensor:
    """The mouth opening: the polygon of the inner lip contour (iBUG points 60-67).

    Args:
        landmarks: (N, 68, 2) float pixel coordinates (x right, y down, pixel centres at integers) in an image of
            side ``size``.
        size: image side in pixels.

    Returns:
        (N, 1, size, size) float {0, 1} mask (dtype/device of ``landmarks``); for a closed mouth only the seam line.
    """
    import cv2

    pts = _points(landmarks, "inner_mouth_mask_from_landmarks")[:, _INNER_MOUTH]
    masks = np.zeros((pts.shape[0], size, size), dtype=np.uint8)
    for i, p in enumerate(pts):  # one polygon per face
        cv2.fillPoly(masks[i], [_fixed(p)], 1, lineType=cv2.LINE_8, shift=_SHIFT)
    return _as_mask(masks, landmarks)
