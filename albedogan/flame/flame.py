"""The FLAME layer: parameters → posed mesh, joints and landmarks (buffers only, no trainable weights).

Conventions: FLAME metres, +Y up, +Z out of the face; pose in FLAME joint order (global, neck, jaw, left eye,
right eye), axis-angle radians. The arrays come from :class:`~albedogan.assets.flame_model.FlameModelData`
(official ``generic_model.pkl`` or the synthetic default) and are registered as buffers, so ``.to(device, dtype)``
moves and casts them; integer buffers (faces, parents, landmark faces) stay int64.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch import nn

from albedogan.assets.flame_model import FlameModelData, load_flame_model
from albedogan.assets.landmark_embedding import LandmarkEmbedding, load_landmark_embedding
from albedogan.flame.landmarks import barycentric_landmarks, contour_rows, now_landmarks, rotation_yaw_degrees
from albedogan.flame.lbs import batch_rodrigues, lbs
from albedogan.structures import FlameOutput, FlameParams
from albedogan.utils.precision import fp32_island
from albedogan.utils.shapes import assert_shape

__all__ = ["FLAME"]

_FLAME_JOINTS = 5


def _tensor(array: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    return torch.tensor(np.asarray(array), dtype=dtype)


class FLAME(nn.Module):
    """FLAME: ``vertices = LBS(v_template + B_shape(β) + B_exp(ψ) + B_pose(θ), θ)`` plus landmarks.

    Args:
        model: the model arrays (5 joints: global, neck, jaw, left eye, right eye).
        landmarks: the landmark embedding for this mesh.
        n_shape: identity coefficients used (columns ``[0, n_shape)`` of ``shapedirs``).
        n_exp: expression coefficients used (columns ``[shape_dims_in_file, shape_dims_in_file + n_exp)``).
        shape_dims_in_file: how many leading ``shapedirs`` columns are identity (300 in official FLAME).
        dtype: floating dtype of the buffers (default: ``torch.get_default_dtype()``); build directly in float64
            for full precision, since ``.to(torch.float64)`` after a float32 build cannot restore dropped digits.

    Raises:
        ValueError: ``n_shape``/``n_exp`` exceed what the file holds, the model is not 5-joint, or landmark faces
            are out of range.
    """

    def __init__(
        self,
        model: FlameModelData,
        landmarks: LandmarkEmbedding,
        n_shape: int = 300,
        n_exp: int = 50,
        shape_dims_in_file: int = 300,
        *,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        total = model.n_blendshapes
        if not 0 < shape_dims_in_file <= total:
            raise ValueError(f"FLAME: shape_dims_in_file={shape_dims_in_file} but the model has {total} blendshapes")
        if not 0 <= n_shape <= shape_dims_in_file:
            raise ValueError(
                f"FLAME: n_shape={n_shape} exceeds the {shape_dims_in_file} identity components of the model file; "
                f"use n_shape <= {shape_dims_in_file}"
            )
        if not 0 <= n_exp <= total - shape_dims_in_file:
            raise ValueError(
                f"FLAME: n_exp={n_exp} exceeds the {total - shape_dims_in_file} expression components of the model "
                f"file; use n_exp <= {total - shape_dims_in_file}"
            )
        if model.n_joints != _FLAME_JOINTS:
            raise ValueError(f"FLAME: expected a 5-joint model (global, neck, jaw, eyes), got {model.n_joints} joints")
        n_faces = int(model.faces.shape[0])
        for name in ("static_lmk_faces_idx", "dynamic_lmk_faces_idx", "full_lmk_faces_idx"):
            idx = getattr(landmarks, name)
            if idx.max() >= n_faces:
                raise ValueError(f"FLAME: landmark embedding '{name}' indexes face {idx.max()} but the mesh has {n_faces}")
        self.n_shape = n_shape
        self.n_exp = n_exp
        fdt = dtype if dtype is not None else torch.get_default_dtype()
        dirs = np.concatenate(
            [model.shapedirs[:, :, :n_shape], model.shapedirs[:, :, shape_dims_in_file : shape_dims_in_file + n_exp]],
            axis=2,
        )
        self.register_buffer("v_template", _tensor(model.v_template, fdt))  # (V, 3)
        self.register_buffer("shapedirs", _tensor(dirs, fdt))  # (V, 3, n_shape + n_exp)
        self.register_buffer("posedirs", _tensor(model.posedirs, fdt))  # (V, 3, 36)
        self.register_buffer("J_regressor", _tensor(model.J_regressor, fdt))  # (J, V)
        self.register_buffer("lbs_weights", _tensor(model.lbs_weights, fdt))  # (V, J)
        self.register_buffer("parents", _tensor(model.parents, torch.long))  # (J,)
        self.register_buffer("faces_idx", _tensor(model.faces, torch.long))  # (F, 3)
        self.register_buffer("static_lmk_faces_idx", _tensor(landmarks.static_lmk_faces_idx, torch.long))  # (51,)
        self.register_buffer("static_lmk_bary_coords", _tensor(landmarks.static_lmk_bary_coords, fdt))  # (51, 3)
        self.register_buffer("dynamic_lmk_faces_idx", _tensor(landmarks.dynamic_lmk_faces_idx, torch.long))  # (79, 17)
        self.register_buffer("dynamic_lmk_bary_coords", _tensor(landmarks.dynamic_lmk_bary_coords, fdt))  # (79, 17, 3)
        self.register_buffer("full_lmk_faces_idx", _tensor(landmarks.full_lmk_faces_idx, torch.long))  # (68,)
        self.register_buffer("full_lmk_bary_coords", _tensor(landmarks.full_lmk_bary_coords, fdt))  # (68, 3)

    @classmethod
    def from_files(
        cls,
        model_path: str | os.PathLike,
        landmark_path: str | os.PathLike,
        n_shape: int = 300,
        n_exp: int = 50,
        shape_dims_in_file: int = 300,
        *,
        dtype: torch.dtype | None = None,
    ) -> "FLAME":
        """Build from ``generic_model.pkl`` and ``landmark_embedding.npy`` (safe loaders, clear errors)."""
        return cls(
            load_flame_model(model_path),
            load_landmark_embedding(landmark_path),
            n_shape,
            n_exp,
            shape_dims_in_file,
            dtype=dtype,
        )

    @property
    def faces(self) -> torch.Tensor:
        """(F, 3) long triangle vertex indices."""
        return self.faces_idx

    @property
    def n_vertices(self) -> int:
        """V."""
        return int(self.v_template.shape[0])

    @fp32_island
    def forward(self, params: FlameParams) -> FlameOutput:
        """Posed mesh and landmarks (an fp32 island under autocast: float16/bfloat16 parameters are cast to float32).

        Args:
            params: shape (N, n_shape), expression (N, n_exp), global/neck/jaw pose (N, 3) and eye pose (N, 6);
                same dtype and device as the layer's buffers.

        Returns:
            :class:`FlameOutput` with vertices (N, V, 3), joints (N, 5, 3), landmarks2d (N, 68, 3) (dynamic
            contour + static), landmarks3d (N, 68, 3) (fixed embedding) and landmarks7 (N, 7, 3), metres.
        """
        n_batch = params.batch_size
        assert_shape(params.shape, (n_batch, self.n_shape), "FlameParams.shape")
        assert_shape(params.expression, (n_batch, self.n_exp), "FlameParams.expression")
        for name in ("global_pose", "neck_pose", "jaw_pose"):
            assert_shape(getattr(params, name), (n_batch, 3), f"FlameParams.{name}")
        assert_shape(params.eye_pose, (n_batch, 6), "FlameParams.eye_pose")
        dtype = self.v_template.dtype
        for name in ("shape", "expression", "global_pose", "neck_pose", "jaw_pose", "eye_pose"):
            value = getattr(params, name)
            if value.dtype != dtype or value.device != self.v_template.device:
                raise TypeError(
                    f"FLAME: FlameParams.{name} is {value.dtype} on {value.device} but the layer is {dtype} on "
                    f"{self.v_template.device}; call params.to(...) or flame.to(...) first"
                )
        coeffs = torch.cat([params.shape, params.expression], dim=1)  # (N, n_shape + n_exp)
        pose = params.full_pose
        rot_mats = batch_rodrigues(pose.reshape(n_batch, -1, 3))  # (N, 5, 3, 3): global, neck, jaw, eyes
        vertices, joints = lbs(
            coeffs,
            pose,
            self.v_template,
            self.shapedirs,
            self.posedirs,
            self.J_regressor,
            self.parents,
            self.lbs_weights,
            rot_mats=rot_mats,
        )
        with torch.no_grad():  # the row choice is piecewise constant: no graph for it
            rows = contour_rows(rotation_yaw_degrees(rot_mats[:, 0] @ rot_mats[:, 1]))  # (N,)
        dyn_faces = self.dynamic_lmk_faces_idx[rows]  # (N, 17)
        dyn_bary = self.dynamic_lmk_bary_coords[rows]  # (N, 17, 3)
        static_faces = self.static_lmk_faces_idx.expand(n_batch, -1)  # (N, 51)
        static_bary = self.static_lmk_bary_coords.expand(n_batch, -1, -1)  # (N, 51, 3)
        landmarks2d = barycentric_landmarks(
            vertices, self.faces_idx, torch.cat([dyn_faces, static_faces], 1), torch.cat([dyn_bary, static_bary], 1)
        )
        landmarks3d = barycentric_landmarks(vertices, self.faces_idx, self.full_lmk_faces_idx, self.full_lmk_bary_coords)
        return FlameOutput(
            vertices=vertices,
            joints=joints,
            landmarks2d=landmarks2d,
            landmarks3d=landmarks3d,
            landmarks7=now_landmarks(landmarks3d),
        )

    @fp32_island
    def neutral(self, params: FlameParams) -> FlameOutput:
        """The mesh of ``params.shape`` with zero expression and zero pose (NoW's neutral-face protocol)."""
        zeros = FlameParams.zeros(
            params.batch_size, self.n_shape, self.n_exp, device=params.shape.device, dtype=params.shape.dtype
        )
        return self(FlameParams(params.shape, zeros.expression, zeros.global_pose, zeros.neck_pose, zeros.jaw_pose,
                                zeros.eye_pose))
