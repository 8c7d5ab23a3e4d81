"""Cameras that map FLAME/world points (metres) to albedogan *image NDC* with depth.

Every camera exposes ``transform_points(points) -> (N, P, 3)`` whose last axis is ``(x, y, depth)`` in image NDC
(x right, y down, both in [-1, 1] across the image; depth grows away from the camera). See ``albedogan.render`` for
the full conventions page. No camera modifies its inputs.
"""

from __future__ import annotations

import math
from typing import Optional, Protocol, Sequence

import torch

from albedogan.utils.shapes import assert_shape

__all__ = [
    "Camera",
    "PerspectiveCamera",
    "WeakPerspectiveCamera",
    "crop_boxes",
    "crop_camera_to_image",
    "framing_camera",
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


def framing_camera(vertices: torch.Tensor, margin: float = 0.1) -> WeakPerspectiveCamera:
    """Weak-perspective camera per mesh that centres its x/y bounding box and fills the image up to ``margin``.

    Args:
        vertices: (N, V, 3) FLAME-frame vertices (metres).
        margin: fraction of the half-extent of NDC left empty around the mesh.
    """
    lo, hi = vertices[..., :2].amin(1), vertices[..., :2].amax(1)  # (N, 2)
    centre = 0.5 * (lo + hi)
    half = 0.5 * (hi - lo).amax(-1)  # (N,)
    scale = (1.0 - margin) / half.clamp_min(1e-6)
    return WeakPerspectiveCamera(torch.cat([scale[:, None], -centre], dim=-1))


def crop_boxes(
    images: torch.Tensor, landmarks5: Optional[torch.Tensor] = None, scale: float = 3.0
) -> torch.Tensor:
    """Square crop boxes in image NDC.

    Without landmarks the box is the whole image (teacher images are face-centred). With five ArcFace-order points it
    is centred on their mean and ``scale`` times their larger x/y extent (in pixels, so the box stays square).

    Args:
        images: (N, 3, H, W) images (only the size and dtype are used).
        landmarks5: optional (N, 5, 2) (x, y) pixel coordinates (pixel centres at integers).
        scale: box side / landmark extent.

    Returns:
        (N, 4) float ``(cx, cy, half_w, half_h)`` in image NDC (x right, y down); ``half_w * W == half_h * H``.
    """
    n, _, h, w = images.shape
    if landmarks5 is None:
        return images.new_tensor([0.0, 0.0, 1.0, 1.0]).expand(n, 4)
    assert_shape(landmarks5, [n, 5, 2], "landmarks5")
    pts = landmarks5.to(images.dtype)
    centre_px = pts.mean(1)  # (N, 2)
    side_px = scale * (pts.amax(1) - pts.amin(1)).amax(-1)  # (N,)
    centre = pixels_to_ndc(centre_px, (h, w))  # (N, 2)
    half = torch.stack([side_px / w, side_px / h], dim=-1)  # (N, 2) NDC half extents (NDC spans 2 / W per pixel)
    return torch.cat([centre, half], dim=-1)


def crop_camera_to_image(cam: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Weak-perspective camera of a square crop -> the same projection in the full image's NDC.

    The crop maps image NDC ``x = cx + hw x_c``, ``y = cy + hh y_c``; with ``x_c = s (X + tx)`` and
    ``y_c = -s (Y + ty)`` this is again weak perspective when ``hw = hh`` (a square box in pixels of a square image):
    ``s' = hw s``, ``tx' = tx + cx / s'``, ``ty' = ty - cy / s'``.

    Args:
        cam: (N, 3) float ``[s, tx, ty]`` in crop NDC (s in NDC units per metre, t in metres).
        boxes: (N, 4) ``(cx, cy, half_w, half_h)`` from :func:`crop_boxes`.

    Returns:
        (N, 3) camera in image NDC. For non-square images the x half-extent is used (weak perspective has one scale).
    """
    assert_shape(cam, [None, 3], "cam")
    assert_shape(boxes, [cam.shape[0], 4], "boxes")
    s = cam[:, 0] * boxes[:, 2]
    safe = torch.where(s.abs() > 1e-8, s, torch.full_like(s, 1e-8))
    return torch.stack([s, cam[:, 1] + boxes[:, 0] / safe, cam[:, 2] - boxes[:, 1] / safe], dim=-1)
