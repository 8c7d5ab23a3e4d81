"""``HeadModel``: the FLAME layer together with its UV layout and UV masks — what the rest of albedogan consumes.

One class serves the official FLAME 2020/2023 files and the embedded synthetic head: both are read through the same
loaders (``albedogan.assets.flame_assets``) from the same file formats.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch import nn

from albedogan.assets.flame_assets import FlameAssetPaths, FlameAssets, load_flame_assets
from albedogan.flame.flame import FLAME
from albedogan.flame.symmetry import mirror_face_uvs, mirror_vertex_pairs
from albedogan.structures import FlameOutput, FlameParams
from albedogan.utils.logging import get_logger

__all__ = ["HeadModel"]

log = get_logger(__name__)
_MIRROR_WARN = 0.01  # warn when a mirror partner is farther than this fraction of the head size


class HeadModel(nn.Module):
    """FLAME + UV topology + UV region masks.

    Attributes:
        flame: the :class:`~albedogan.flame.flame.FLAME` layer.
        faces: (F, 3) long vertex indices (buffer).
        verts_uvs: (T, 2) float UVs in [0, 1], v up (buffer).
        faces_uvs: (F, 3) long UV indices (buffer).
        uv_face_mask: (1, 1, Hm, Wm) float face-region mask in UV space (buffer; Hm = Wm = 256 officially).
        uv_face_eye_mask: (1, 1, Hm, Wm) float face + eyes mask (buffer).
        mirror_vertices: (V,) long mirror partner of each template vertex (non-persistent buffer).
        mirror_face_uvs: (F, 3, 2) float UV of each face corner's mirror partner (non-persistent buffer); what
            :class:`albedogan.render.UVMirror` interpolates into a per-texel partner map (the UV layout is not
            assumed symmetric about u = 0.5).
        mirror_error: largest distance (metres) between a mirrored template vertex and its matched partner.
        n_shape, n_exp: the number of shape / expression coefficients in use.
    """

    def __init__(self, assets: FlameAssets, n_shape: int = 300, n_exp: int = 50) -> None:
        super().__init__()
        self.flame = FLAME(assets.model, assets.landmarks, n_shape=n_shape, n_exp=n_exp)
        if len(assets.uv.faces_uvs) != len(assets.model.faces):
            raise ValueError(
                f"UV template has {len(assets.uv.faces_uvs)} faces but the FLAME model has {len(assets.model.faces)}: "
                "the head_template.obj does not belong to this model"
            )
        self.register_buffer("verts_uvs", torch.tensor(np.asarray(assets.uv.verts_uvs), dtype=torch.float32))
        self.register_buffer("faces_uvs", torch.tensor(np.asarray(assets.uv.faces_uvs), dtype=torch.long))
        self.register_buffer("uv_face_mask", torch.tensor(np.asarray(assets.face_mask), dtype=torch.float32)[None, None])
        self.register_buffer(
            "uv_face_eye_mask", torch.tensor(np.asarray(assets.face_eye_mask), dtype=torch.float32)[None, None]
        )
        pairs, self.mirror_error = mirror_vertex_pairs(assets.model.v_template, assets.model.faces, tolerance=None)
        extent = float(np.linalg.norm(np.ptp(np.asarray(assets.model.v_template), axis=0)))
        if self.mirror_error > _MIRROR_WARN * extent:
            log.warning("the head template is not left/right symmetric about x = 0 (a vertex is %.4g from its mirror "
                        "partner, head size %.4g): UV mirroring pairs the nearest vertices", self.mirror_error, extent)
        corner_uvs, _ = mirror_face_uvs(assets.model.faces, assets.uv.faces_uvs, assets.uv.verts_uvs, pairs)
        self.register_buffer("mirror_vertices", torch.from_numpy(pairs), persistent=False)
        self.register_buffer("mirror_face_uvs", torch.from_numpy(corner_uvs).to(torch.float32), persistent=False)
        self.n_shape = n_shape
        self.n_exp = n_exp

    @property
    def faces(self) -> torch.Tensor:
        return self.flame.faces

    def zero_params(self, batch_size: int) -> FlameParams:
        """Neutral parameters on this model's device/dtype."""
        ref = self.verts_uvs
        return FlameParams.zeros(batch_size, self.n_shape, self.n_exp, device=ref.device, dtype=ref.dtype)

    def forward(self, params: FlameParams) -> FlameOutput:
        return self.flame(params)

    @classmethod
    def from_paths(cls, paths: FlameAssetPaths, n_shape: int = 300, n_exp: int = 50) -> "HeadModel":
        return cls(load_flame_assets(paths), n_shape=n_shape, n_exp=n_exp)

    @classmethod
    def from_files(
        cls,
        model_path: str | os.PathLike,
        landmark_embedding_path: str | os.PathLike,
        uv_template_path: str | os.PathLike,
        uv_face_mask_path: str | os.PathLike,
        uv_face_eye_mask_path: str | os.PathLike,
        n_shape: int = 300,
        n_exp: int = 50,
    ) -> "HeadModel":
        """Official assets (FLAME ``generic_model.pkl`` 2020/2023, DECA's ``landmark_embedding.npy`` and
        ``head_template.obj``, FLAME's UV masks). One error lists every missing file."""
        from pathlib import Path

        paths = FlameAssetPaths(
            model=Path(model_path),
            landmark_embedding=Path(landmark_embedding_path),
            uv_template=Path(uv_template_path),
            uv_face_mask=Path(uv_face_mask_path),
            uv_face_eye_mask=Path(uv_face_eye_mask_path),
        )
        return cls.from_paths(paths, n_shape=n_shape, n_exp=n_exp)

    @classmethod
    def synthetic(cls, data_dir: str | os.PathLike, n_shape: int = 300, n_exp: int = 50) -> "HeadModel":
        """The embedded synthetic head, generated into ``<data_dir>/synthetic_flame`` on first use."""
        from albedogan.assets.synthetic import ensure_synthetic_head

        return cls.from_paths(ensure_synthetic_head(data_dir), n_shape=n_shape, n_exp=n_exp)
