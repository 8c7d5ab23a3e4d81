"""Cameras that map FLAME/world points (metres) to albedogan *image NDC* with depth.

Every camera exposes ``transform_points(points) -> (N, P, 3)`` whose last axis is ``(x, y, depth)`` in image NDC
(x right, y down, both in [-1, 1] across the image; depth grows away from the camera). See ``albedogan.render`` for
the full conventions page. No camera modifies its inputs.
"""

from __future__ import annotations

import math
from typing import Protocol, Sequence

import torch

from albedogan.utils.shapes import assert_shape

__all__ = [
    "Camera",
    "PerspectiveCamera",
    "WeakPerspectiveCamera",
    "ndc_to_pixels",
    "pixels_to_ndc",
    "weak_perspective_project",
]


def weak_perspective_project(points: torch.Tensor, cam: torch.Tensor) -> torch.Tensor:
    """Weak-perspective (scaled orthographic) projection of world points into image NDC (REFERENCE §1).

    ``x' = s (x + tx)``, ``y' = s (y + ty)``, ``z' = s z``; then y and z are negated, so that y points down the image
    and depth grows away from the camera (the FLAME frame has +Y up and +Z toward the camera).

    Args:
        points: (N, P, 3) float world points, metres, FLAME frame (+Y up, +Z out of the face).
        cam: (N, 3) float ``[s, tx, ty]``: scale (NDC units per metre) and translation (metres, applied before
            scaling).

    Returns:
        (N, P, 3) same dtype: ``(x, y, depth)`` in image NDC; depth is ``-s z`` (NDC units, smaller = nearer).
    """
    assert_shape(points, [None, None, 3], "points")
    assert_shape(cam, [points.shape[0], 3], "cam")
    s = cam[:, None, 0:1]  # (N, 1, 1)
    t = cam[:, None, 1:3]  # (N, 1, 2)
    xy = s * (points[..., :2] + t)  # (N, P, 2)
    z = s * points[..., 2:3]  # (N, P, 1)
    flip = points.new_tensor([1.0, -1.0])
    return torch.cat([xy * flip, -z], dim=-1)


class Camera(Protocol):
    """The shared camera interface: world points (N, P, 3) -> image-NDC points with depth (N, P, 3)."""

    def transform_points(self, points: torch.Tensor) -> torch.Tensor:  # pragma: no cover - protocol
        ...


class WeakPerspectiveCamera:
    """Batched weak-perspective camera ``[s, tx, ty]`` (DECA convention, see :func:`weak_perspective_project`).

    Args:
        cam: (N, 3) or (3,) float ``[s, tx, ty]``; a (3,) vector is treated as a batch of one and broadcast
            against the points' batch.
    """

    def __init__(self, cam: torch.Tensor) -> None:
        if cam.ndim == 1:
            cam = cam[None]
        assert_shape(cam, [None, 3], "cam")
        self.cam = cam

    def transform_points(self, points: torch.Tensor) -> torch.Tensor:
        """(N, P, 3) world points (metres, FLAME frame) -> (N, P, 3) image NDC ``(x, y, depth)``."""
        cam = self.cam.expand(points.shape[0], 3) if self.cam.shape[0] == 1 else self.cam
        return weak_perspective_project(points, cam)


class PerspectiveCamera:
    """Batched pinhole camera with rotation R, translation T and focal length in NDC units.

    A world point ``X`` (FLAME frame) goes to the camera frame as ``X_cam = R X + T``. The camera frame is the
    OpenCV one: +x right, +y down, +z forward (away from the camera), so image NDC is simply
    ``x = fx * X_cam.x / X_cam.z``, ``y = fy * X_cam.y / X_cam.z`` and ``depth = X_cam.z`` (metres).
    A camera on the +Z axis looking at the face therefore has ``R = diag(1, -1, -1)`` (see :meth:`facing`).

    Args:
        R: (N, 3, 3) float rotation matrices (world -> camera, acting on column vectors).
        T: (N, 3) float translations, metres.
        focal_length: focal length in NDC units, ``1 / tan(fov / 2)``: a float, (N,) or (N, 2) for ``(fx, fy)``.
    """

    def __init__(self, R: torch.Tensor, T: torch.Tensor, focal_length: float | torch.Tensor = 1.0) -> None:
        assert_shape(R, [None, 3, 3], "R")
        assert_shape(T, [R.shape[0], 3], "T")
        f = torch.as_tensor(focal_length, dtype=R.dtype, device=R.device)
        if f.ndim == 0:
            f = f.expand(R.shape[0], 2)
        elif f.ndim == 1:
            if f.shape[0] != R.shape[0]:
                raise ValueError(
                    f"focal_length: expected shape ({R.shape[0]},) or ({R.shape[0]}, 2), got {tuple(f.shape)}"
                )
            f = f[:, None].expand(R.shape[0], 2)
        else:
            assert_shape(f, [R.shape[0], 2], "focal_length")
        self.R, self.T, self.focal_length = R, T, f

    @staticmethod
    def fov_to_focal(fov_degrees: float) -> float:
        """Field of view (degrees, across the full image side) -> focal length in NDC units."""
        if not 0.0 < fov_degrees < 180.0:
            raise ValueError(f"fov_degrees must be in (0, 180), got {fov_degrees}")
        return 1.0 / math.tan(math.radians(fov_degrees) / 2.0)

    @classmethod
    def facing(
        cls,
        batch_size: int,
        distance: float,
        fov_degrees: float = 12.0,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> "PerspectiveCamera":
        """Camera on the world +Z axis at ``distance`` metres, looking at the origin (the face's front view)."""
        R = torch.diag(torch.tensor([1.0, -1.0, -1.0], device=device, dtype=dtype)).expand(batch_size, 3, 3)
        T = torch.tensor([0.0, 0.0, distance], device=device, dtype=dtype).expand(batch_size, 3)
        return cls(R, T, cls.fov_to_focal(fov_degrees))

    def world_to_view(self, points: torch.Tensor) -> torch.Tensor:
        """(N, P, 3) world points -> (N, P, 3) camera-frame points (OpenCV axes, metres)."""
        assert_shape(points, [self.R.shape[0], None, 3], "points")
        return torch.einsum("nij,npj->npi", self.R, points) + self.T[:, None, :]

    def transform_points(self, points: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
        """(N, P, 3) world points -> (N, P, 3) image NDC ``(x, y, depth)``; depth in metres (> 0 in front).

        Points at depth below ``eps`` are divided by ``eps`` (they are behind the camera and will not render sensibly).
        """
        view = self.world_to_view(points)
        z = view[..., 2:3]
        z_safe = torch.where(z.abs() < eps, torch.full_like(z, eps), z)
        xy = self.focal_length[:, None, :] * view[..., :2] / z_safe
        return torch.cat([xy, z], dim=-1)


def _hw(image_size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(image_size, int):
        return image_size, image_size
    h, w = image_size
    return int(h), int(w)


def ndc_to_pixels(points: torch.Tensor, image_size: int | Sequence[int]) -> torch.Tensor:
    """Image NDC -> pixel coordinates; pixel (col j, row i) has its centre at ``(j, i)``.

    ``u = (x + 1) W / 2 - 0.5``, ``v = (y + 1) H / 2 - 0.5`` (the ``align_corners=False`` convention), so the image
    spans ``[-0.5, W - 0.5] x [-0.5, H - 0.5]``.

    Args:
        points: (..., 2) or (..., 3) image NDC; any third column (depth) is passed through unchanged.
        image_size: H (square) or (H, W) in pixels.

    Returns:
        tensor of the same shape and dtype, ``(u, v[, depth])`` in pixels.
    """
    h, w = _hw(image_size)
    scale = points.new_tensor([w / 2.0, h / 2.0])
    uv = (points[..., :2] + 1.0) * scale - 0.5
    return torch.cat([uv, points[..., 2:]], dim=-1)


def pixels_to_ndc(points: torch.Tensor, image_size: int | Sequence[int]) -> torch.Tensor:
    """Inverse of :func:`ndc_to_pixels`: (..., 2|3) pixel ``(u, v[, depth])`` -> image NDC, same shape and dtype."""
    h, w = _hw(image_size)
    scale = points.new_tensor([w / 2.0, h / 2.0])
    xy = (points[..., :2] + 0.5) / scale - 1.0
    return torch.cat([xy, points[..., 2:]], dim=-1)
