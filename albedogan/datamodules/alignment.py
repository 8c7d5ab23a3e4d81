"""Face alignment: crops of faces fitted to landmark templates.

The similarity fit and the affine warp live with the renderer's conventions in :mod:`albedogan.render.warp`
(re-exported here): pixel centres at integer ``(x, y) = (j, i)``, x right, y down; a 2x3 matrix maps
*source-image* pixel coordinates to *output (crop)* pixel coordinates. The ArcFace template is the ArcFace
network's input convention (:data:`albedogan.nets.arcface.ARCFACE_TEMPLATE_112`).

Two crops are provided:

* the ArcFace crop: a least-squares similarity from the five detected points (left eye, right eye, nose tip,
  left and right mouth corners, as seen in the image) onto :data:`ARCFACE_TEMPLATE_112`
  (:func:`estimate_similarity`, :func:`align_faces`, :func:`arcface_crop`);
* the encoder crop: DECA's square crop around a detector box (side = mean of box width and height x ``scale``,
  centre moved down by 0.12 x that mean), resized so that the square's edges land on the first and last pixel
  centres of the output (:func:`encoder_crop_matrices`, :func:`encoder_crop`);
* the landmark crop: DECA's crop from 68 landmarks (bbox of the points, side = 1.1 x mean bbox side x ``scale``),
  here first rotated upright by the eye line so every face is roll-straightened and consistently scaled
  (:func:`landmark_crop_matrices`, :func:`landmark_crop`).

Torch functions are batched, differentiable, device- and dtype-agnostic; numpy twins work on single
``H x W x C`` images for data preparation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch

from albedogan.nets.arcface import ARCFACE_TEMPLATE_112
from albedogan.render.warp import Matrix, estimate_similarity, invert_affine, transform_points, warp_affine
from albedogan.utils.shapes import assert_shape

if TYPE_CHECKING:  # pragma: no cover - typing only
    from albedogan.datamodules.detection import FaceDetection

__all__ = [
    "ARCFACE_TEMPLATE_112",
    "AlignedCrop",
    "align_faces",
    "arcface_crop",
    "encoder_crop",
    "encoder_crop_matrices",
    "estimate_similarity",
    "invert_affine",
    "landmark_crop",
    "landmark_crop_matrices",
    "transform_points",
    "warp_affine",
    "warp_numpy",
]

DECA_BOX_CENTER_SHIFT = 0.12
"""DECA moves a detector box's centre down by this fraction of the mean box side before cropping."""


# ----------------------------------------------------------------------------------------------------------------
# crops


def align_faces(
    images: torch.Tensor,
    landmarks5: torch.Tensor,
    template: torch.Tensor | None = None,
    out_size: tuple[int, int] = (112, 112),
) -> torch.Tensor:
    """ArcFace-style aligned crops of a batch: similarity from the 5 points to ``template``, then warp.

    Args:
        images: (N, C, H, W) floating images (any range; typically RGB in [0, 1]).
        landmarks5: (N, 5, 2) detected points in ``images``' pixel coordinates, order of
            :data:`ARCFACE_TEMPLATE_112`.
        template: (5, 2) target points in output pixel coordinates; default :data:`ARCFACE_TEMPLATE_112`
            rescaled to ``out_size`` (x by w/112, y by h/112).
        out_size: (h, w) of the crops.

    Returns:
        (N, C, h, w) aligned crops (outside-image samples are 0). Use :func:`estimate_similarity` for the matrices.
    """
    assert_shape(landmarks5, (images.shape[0], 5, 2), "align_faces landmarks5")
    if template is None:
        scale = torch.tensor([out_size[1] / 112.0, out_size[0] / 112.0])
        template = ARCFACE_TEMPLATE_112 * scale
    matrices = estimate_similarity(landmarks5.to(images.dtype), template)
    return warp_affine(images, matrices, out_size)


# ----------------------------------------------------------------------------------------------------------------
# encoder (DECA) crop


def encoder_crop_matrices(
    boxes: torch.Tensor, size: int = 224, scale: float = 1.25, center_shift: float = DECA_BOX_CENTER_SHIFT
) -> torch.Tensor:
    """Matrices of DECA's square face crop from detector boxes.

    With ``m = (box width + box height) / 2``: centre ``c = (box centre x, box centre y + center_shift * m)``,
    square side ``S = scale * m``; the square ``[c - S/2, c + S/2]`` maps onto ``[0, size - 1]`` (its edges on the
    first and last pixel centres, as DECA's three-point similarity does). DECA truncates ``S`` to an integer; we
    keep it continuous so the crop is differentiable w.r.t. the box.

    Args:
        boxes: (N, 4) boxes ``(x0, y0, x1, y1)`` in source pixel coordinates.
        size: output side in pixels.
        scale: square side relative to the mean box side (DECA: 1.25).
        center_shift: downward centre shift relative to the mean box side (DECA detector boxes: 0.12).

    Returns:
        (N, 2, 3) matrices mapping source pixel coordinates to crop pixel coordinates (dtype/device of ``boxes``).
    """
    if boxes.ndim != 2 or boxes.shape[-1] != 4:
        raise ValueError(f"encoder_crop_matrices: boxes must be (N, 4) x0,y0,x1,y1, got {tuple(boxes.shape)}")
    x0, y0, x1, y1 = boxes.unbind(-1)
    mean_side = ((x1 - x0) + (y1 - y0)) / 2.0  # (N,)
    if bool((mean_side <= 0).any()):
        raise ValueError(f"encoder_crop_matrices: boxes need x1 > x0 and y1 > y0, got {boxes.tolist()}")
    cx = (x0 + x1) / 2.0
    cy = (y0 + y1) / 2.0 + center_shift * mean_side
    side = scale * mean_side
    k = (size - 1) / side  # (N,) pixels per source pixel
    zeros = torch.zeros_like(k)
    row0 = torch.stack([k, zeros, -k * (cx - side / 2.0)], dim=-1)
    row1 = torch.stack([zeros, k, -k * (cy - side / 2.0)], dim=-1)
    return torch.stack([row0, row1], dim=1)


@dataclass(frozen=True)
class AlignedCrop:
    """A crop and the matrix that made it.

    Attributes:
        image: the crop: numpy ``(h, w, C)`` with the source dtype (uint8 stays uint8), or torch ``(N, C, h, w)``.
        matrix: numpy (2, 3) float64 or torch (N, 2, 3): source pixel coords -> crop pixel coords.
            ``invert_affine(matrix)`` maps crop points back to the source image.
    """

    image: np.ndarray | torch.Tensor
    matrix: np.ndarray | torch.Tensor

    def to_source(self, points: Matrix) -> Matrix:
        """Map (..., P, 2) crop pixel coordinates back to the source image."""
        return transform_points(points, invert_affine(self.matrix))

    def to_crop(self, points: Matrix) -> Matrix:
        """Map (..., P, 2) source pixel coordinates into the crop."""
        return transform_points(points, self.matrix)


def warp_numpy(image: np.ndarray, matrix: np.ndarray, out_size: tuple[int, int]) -> np.ndarray:
    """Warp one (H, W, C) or (H, W) numpy image with ``warp_affine`` (same convention), keeping its dtype."""
    if image.ndim not in (2, 3):
        raise ValueError(f"expected an (H, W) or (H, W, C) image, got shape {image.shape}")
    chw = image[..., None] if image.ndim == 2 else image
    t = torch.from_numpy(np.ascontiguousarray(chw.transpose(2, 0, 1))).unsqueeze(0).to(torch.float64)
    out = warp_affine(t, torch.from_numpy(np.asarray(matrix, dtype=np.float64)), out_size)[0]
    out = out.permute(1, 2, 0).numpy()
    if np.issubdtype(image.dtype, np.integer):
        info = np.iinfo(image.dtype)
        out = np.clip(np.rint(out), info.min, info.max)
    out = out.astype(image.dtype)
    return out[..., 0] if image.ndim == 2 else out


def arcface_crop(image: np.ndarray, landmarks5: np.ndarray, size: int = 112) -> AlignedCrop:
    """ArcFace aligned crop of one numpy image (what insightface's ``norm_crop`` produces, bilinear).

    Args:
        image: (H, W, C) or (H, W) image, any dtype (uint8 RGB typical).
        landmarks5: (5, 2) points in ``image`` pixel coordinates, order of :data:`ARCFACE_TEMPLATE_112`.
        size: output side; the template is scaled by ``size / 112``.

    Returns:
        :class:`AlignedCrop` with a (size, size[, C]) image of the input dtype and a (2, 3) float64 matrix.
    """
    pts = np.asarray(landmarks5, dtype=np.float64)
    if pts.shape != (5, 2):
        raise ValueError(f"arcface_crop: landmarks5 must be (5, 2), got {pts.shape}")
    template = ARCFACE_TEMPLATE_112.to(torch.float64) * (size / 112.0)
    matrix = estimate_similarity(torch.from_numpy(pts)[None], template)[0].numpy()
    return AlignedCrop(image=warp_numpy(image, matrix, (size, size)), matrix=matrix)


def _box_of(detection: "FaceDetection | Sequence[float] | np.ndarray") -> np.ndarray:
    box = getattr(detection, "box", detection)
    box = np.asarray(box, dtype=np.float64)
    if box.shape != (4,):
        raise ValueError(f"encoder_crop: expected a FaceDetection or a (4,) box x0,y0,x1,y1, got shape {box.shape}")
    return box


def encoder_crop(
    image: np.ndarray | torch.Tensor,
    detection: "FaceDetection | Sequence[float] | np.ndarray | torch.Tensor",
    size: int = 224,
    scale: float = 1.25,
    center_shift: float = DECA_BOX_CENTER_SHIFT,
) -> AlignedCrop:
    """DECA-style square crop around a face box, resized to ``size`` (see :func:`encoder_crop_matrices`).

    Two forms:

    * numpy: ``image`` (H, W, C) or (H, W), any dtype; ``detection`` a :class:`FaceDetection` or a (4,) box.
      Returns a (size, size[, C]) crop of the input dtype and a (2, 3) float64 matrix.
    * torch: ``image`` (N, C, H, W) floating; ``detection`` an (N, 4) box tensor. Returns (N, C, size, size)
      crops and (N, 2, 3) matrices; differentiable w.r.t. images and boxes.

    Source pixels outside the image read as 0.
    """
    if isinstance(image, torch.Tensor):
        boxes = torch.as_tensor(detection, dtype=image.dtype, device=image.device)
        assert_shape(boxes, (image.shape[0], 4), "encoder_crop boxes")
        matrices = encoder_crop_matrices(boxes, size, scale, center_shift)
        return AlignedCrop(image=warp_affine(image, matrices, (size, size)), matrix=matrices)
    box = torch.from_numpy(_box_of(detection))[None]
    matrix = encoder_crop_matrices(box, size, scale, center_shift)[0].numpy()
    return AlignedCrop(image=warp_numpy(np.asarray(image), matrix, (size, size)), matrix=matrix)


# ----------------------------------------------------------------------------------------------------------------
# landmark (DECA) crop, roll-straightened


def landmark_crop_matrices(landmarks: torch.Tensor, size: int = 224, scale: float = 1.25,
                           straighten: bool = True) -> torch.Tensor:
    """Matrices of a roll-straightened square crop from 68 (iBUG) landmarks, DECA's landmark bbox.

    The roll is the angle of the line from the image-left eye centre (points 36-41) to the image-right one (42-47);
    the points are rotated by minus that angle about their bbox centre, and in that upright frame DECA's rule
    applies: bbox of the points, ``side = scale * 1.1 * (bbox width + bbox height) / 2`` about the bbox centre,
    mapped onto ``[0, size - 1]``.

    Args:
        landmarks: (N, 68, 2) (x, y) source pixel coordinates (5-point input (N, 5, 2) also works: the eyes are
            then points 0 and 1).
        size: output side in pixels.
        scale: DECA's crop scale (1.25).
        straighten: rotate by the eye line (False = DECA's axis-aligned crop).

    Returns:
        (N, 2, 3) matrices source pixels -> crop pixels (dtype/device of ``landmarks``); the crop's roll is
        ``atan2(M[1, 0], M[0, 0])`` (radians, the rotation applied).
    """
    if landmarks.ndim != 3 or landmarks.shape[-1] != 2 or landmarks.shape[1] not in (5, 68):
        raise ValueError(f"landmark_crop_matrices: landmarks must be (N, 68|5, 2), got {tuple(landmarks.shape)}")
    pts = landmarks
    if pts.shape[1] == 68:
        left, right = pts[:, 36:42].mean(1), pts[:, 42:48].mean(1)
    else:
        left, right = pts[:, 0], pts[:, 1]
    d = right - left
    angle = torch.atan2(d[:, 1], d[:, 0]) if straighten else torch.zeros_like(d[:, 0])
    cos, sin = torch.cos(-angle), torch.sin(-angle)
    rot = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], 1)  # (N, 2, 2)
    upright = pts @ rot.transpose(1, 2)  # rotated about the origin
    lo, hi = upright.amin(1), upright.amax(1)  # (N, 2)
    centre = (lo + hi) / 2.0
    side = scale * 1.1 * ((hi - lo).sum(-1) / 2.0)  # (N,)
    if bool((side <= 0).any()):
        raise ValueError("landmark_crop_matrices: all landmarks of a face coincide; check the detector")
    k = ((size - 1) / side)[:, None, None]
    lin = k * rot
    t = (size - 1) / 2.0 - k[:, :, 0] * centre
    return torch.cat([lin, t[..., None]], dim=-1)


def landmark_crop(image: np.ndarray, landmarks: np.ndarray, size: int = 224, scale: float = 1.25,
                  straighten: bool = True) -> AlignedCrop:
    """Roll-straightened DECA crop of one numpy image from its (68|5, 2) landmarks (:func:`landmark_crop_matrices`).

    Returns:
        :class:`AlignedCrop` with a (size, size[, C]) image of the input dtype and a (2, 3) float64 matrix; its
        ``to_source`` maps crop points back to the photo.
    """
    pts = torch.as_tensor(np.asarray(landmarks, dtype=np.float64))[None]
    matrix = landmark_crop_matrices(pts, size, scale, straighten)[0].numpy()
    return AlignedCrop(image=warp_numpy(np.asarray(image), matrix, (size, size)), matrix=matrix)
