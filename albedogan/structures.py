"""Frozen dataclasses passed between stages (pytorch3d ``Fragments`` style): shapes are part of the contract.

Letters: N batch, V vertices, F faces, S shape coefficients, E expression coefficients, J joints (5 for FLAME),
L landmarks, H/W image height/width, C channels. FLAME coordinates are metres, +Y up, +Z out of the face.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Optional

import torch

__all__ = [
    "FaceEstimate",
    "FlameOutput",
    "FlameParams",
    "GroundTruth",
    "RenderOutput",
    "TeacherSample",
    "cat_records",
]


def _map_tensors(obj, fn):
    kwargs = {}
    for f in fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, torch.Tensor):
            value = fn(value)
        elif isinstance(value, _TensorRecord):
            value = _map_tensors(value, fn)
        kwargs[f.name] = value
    return type(obj)(**kwargs)


def cat_records(records: list):
    """Concatenate records of the same type along the batch dimension (tensors with ``torch.cat``, nested records
    recursively; a field that is None in every record stays None).

    Raises:
        ValueError: no records, or a field that is None in some records only.
    """
    if not records:
        raise ValueError("cat_records: nothing to concatenate")
    first = records[0]
    kwargs = {}
    for f in fields(first):
        values = [getattr(r, f.name) for r in records]
        if all(v is None for v in values):
            kwargs[f.name] = None
        elif any(v is None for v in values):
            raise ValueError(f"cat_records: field {f.name!r} of {type(first).__name__} is None in some records only")
        elif isinstance(values[0], torch.Tensor):
            kwargs[f.name] = torch.cat(values)
        else:
            kwargs[f.name] = cat_records(values)
    return type(first)(**kwargs)


class _TensorRecord:
    """Mixin: ``.to()``, ``.detach()`` and batch indexing for dataclasses of tensors."""

    def to(self, *args, **kwargs):
        return _map_tensors(self, lambda t: t.to(*args, **kwargs))

    def detach(self):
        return _map_tensors(self, lambda t: t.detach())

    def __getitem__(self, index):
        return _map_tensors(self, lambda t: t[index])


@dataclass(frozen=True)
class FlameParams(_TensorRecord):
    """FLAME parameters for a batch.

    Attributes:
        shape: (N, S) identity coefficients (S ≤ 300).
        expression: (N, E) expression coefficients (E ≤ 100, 50 by default).
        global_pose: (N, 3) axis-angle rotation of the root joint (radians).
        neck_pose: (N, 3) axis-angle of the neck joint.
        jaw_pose: (N, 3) axis-angle of the jaw joint (positive x opens the mouth).
        eye_pose: (N, 6) axis-angles of the left then right eyeball.
    """

    shape: torch.Tensor
    expression: torch.Tensor
    global_pose: torch.Tensor
    neck_pose: torch.Tensor
    jaw_pose: torch.Tensor
    eye_pose: torch.Tensor

    @property
    def batch_size(self) -> int:
        return self.shape.shape[0]

    @property
    def full_pose(self) -> torch.Tensor:
        """(N, 15) pose in FLAME joint order: global, neck, jaw, left eye, right eye."""
        return torch.cat([self.global_pose, self.neck_pose, self.jaw_pose, self.eye_pose], dim=-1)

    @property
    def deca_pose(self) -> torch.Tensor:
        """(N, 6) DECA pose vector: global 3 + jaw 3."""
        return torch.cat([self.global_pose, self.jaw_pose], dim=-1)

    @classmethod
    def zeros(
        cls,
        batch_size: int,
        n_shape: int = 300,
        n_exp: int = 50,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> "FlameParams":
        """Neutral parameters (the template in rest pose)."""
        z = lambda n: torch.zeros(batch_size, n, device=device, dtype=dtype)  # noqa: E731
        return cls(z(n_shape), z(n_exp), z(3), z(3), z(3), z(6))

    @classmethod
    def from_deca(
        cls, shape: torch.Tensor, expression: torch.Tensor, pose: torch.Tensor, eye_pose: Optional[torch.Tensor] = None
    ) -> "FlameParams":
        """Build from DECA-style codes: ``pose`` (N, 6) = global 3 + jaw 3; neck and eyes zero unless given."""
        zeros3 = pose.new_zeros(pose.shape[0], 3)
        eyes = eye_pose if eye_pose is not None else pose.new_zeros(pose.shape[0], 6)
        return cls(shape, expression, pose[:, :3], zeros3, pose[:, 3:6], eyes)


@dataclass(frozen=True)
class FlameOutput(_TensorRecord):
    """Output of the FLAME layer.

    Attributes:
        vertices: (N, V, 3) posed mesh vertices, metres.
        joints: (N, J, 3) posed joint locations.
        landmarks2d: (N, 68, 3) 3D points of the 68 image landmarks with the pose-dependent (dynamic) face
            contour, as DECA/MICA select it; project them with a camera to get 2D landmarks.
        landmarks3d: (N, 68, 3) the 68 landmarks on the fixed ("full") embedding, for 3D evaluation.
        landmarks7: (N, 7, 3) the NoW challenge landmarks (lmk51 = lmk68[17:], rows [19, 22, 25, 28, 16, 31, 37]).
    """

    vertices: torch.Tensor
    joints: torch.Tensor
    landmarks2d: torch.Tensor
    landmarks3d: torch.Tensor
    landmarks7: torch.Tensor


@dataclass(frozen=True)
class RenderOutput(_TensorRecord):
    """Output of :class:`albedogan.render.FaceRenderer` (image NDC / UV conventions: see ``albedogan.render``).

    Attributes:
        image: (N, 3, H, W) float rendered colour, ``albedo_image * shading`` over the background (0 if none); not
            clamped (SH shading may exceed 1).
        alpha: (N, 1, H, W) float in {0, 1}: a face covers the pixel.
        normals: (N, 3, H, W) float unit normals per pixel (world frame if world vertices were given, otherwise the
            view frame x right / y up / z toward the camera); 0 outside the mesh.
        depth: (N, 1, H, W) float depth (image-NDC third column: grows away from the camera), 0 outside the mesh.
        uv: (N, 2, H, W) float per-pixel texture coordinates (u right, v up, in [0, 1]); 0 outside the mesh.
        uv_mask: (N, 1, H, W) float in {0, 1}: ``uv`` is valid (same as ``alpha`` for fully UV-mapped meshes).
        shading: (N, 3, H, W) float SH shading (1 everywhere inside the mesh when no light was given), 0 outside.
        albedo_image: (N, 3, H, W) float albedo sampled from the texture, 0 outside the mesh.
        pix_to_face: (N, H, W) long nearest face index per pixel, -1 where empty.
        landmarks: (N, L, 2) float image-NDC ``(x, y)`` of the landmarks, or None when none were passed.
    """

    image: torch.Tensor
    alpha: torch.Tensor
    normals: torch.Tensor
    depth: torch.Tensor
    uv: torch.Tensor
    uv_mask: torch.Tensor
    shading: torch.Tensor
    albedo_image: torch.Tensor
    pix_to_face: torch.Tensor
    landmarks: Optional[torch.Tensor] = None


@dataclass(frozen=True)
class FaceEstimate(_TensorRecord):
    """Per-image 3D estimate: what DECA/MICA-style networks (or a teacher's ground truth) give for an image.

    Attributes:
        params: FLAME parameters (shape from the identity network, expression/pose from the encoder).
        cam: (N, 3) weak-perspective camera ``[s, tx, ty]`` (``albedogan.render.weak_perspective_project``).
        light: (N, 9, 3) SH lighting coefficients (``albedogan.render.sh_lighting``).
    """

    params: FlameParams
    cam: torch.Tensor
    light: torch.Tensor

    @property
    def batch_size(self) -> int:
        return self.cam.shape[0]


@dataclass(frozen=True)
class GroundTruth(_TensorRecord):
    """What a synthetic teacher knows about its own images (the procedural world's benchmark labels).

    Attributes:
        estimate: the true FLAME parameters, camera and light of each image.
        albedo: (N, 3, R, R) true UV albedo in [0, 1] (FLAME UV layout, row 0 = v = 1).
        landmarks2d: (N, 68, 2) true image-NDC landmarks (x right, y down, in [-1, 1]).
        alpha: (N, 1, H, W) float coverage of the head in the image.
    """

    estimate: FaceEstimate
    albedo: torch.Tensor
    landmarks2d: torch.Tensor
    alpha: torch.Tensor


@dataclass(frozen=True)
class TeacherSample(_TensorRecord):
    """A batch from a teacher (StyleGAN2 or the procedural world).

    Attributes:
        image: (N, 3, H, W) float RGB in [0, 1].
        ws: (N, num_ws, w_dim) the W+ latents that produced the images (after truncation) — what G_A is fed.
        z: (N, z_dim) the input latents, or None when the sample was synthesised from given ws.
        truth: ground truth when the teacher has it (procedural world), else None.
    """

    image: torch.Tensor
    ws: torch.Tensor
    z: Optional[torch.Tensor] = None
    truth: Optional[GroundTruth] = None
