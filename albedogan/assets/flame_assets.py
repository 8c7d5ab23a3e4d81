"""All FLAME asset files of a head model, found together (one error lists every missing file) and cross-checked.

One reader module per format: ``flame_model`` (``generic_model.pkl``), ``landmark_embedding``
(``landmark_embedding.npy``), ``uv_template`` (``head_template.obj``), ``uv_mask`` (the UV mask PNGs). The
same-format writers, used only to build the embedded synthetic head, live in ``albedogan.assets.synthetic.writers``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from albedogan.assets.arrays import with_source
from albedogan.assets.flame_model import FLAME_MODEL_SPEC, FlameModelData, load_flame_model
from albedogan.assets.landmark_embedding import LANDMARK_EMBEDDING_SPEC, LandmarkEmbedding, load_landmark_embedding
from albedogan.assets.locate import AssetFormatError, require_files
from albedogan.assets.uv_mask import UV_FACE_EYE_MASK_SPEC, UV_FACE_MASK_SPEC, load_uv_mask
from albedogan.assets.uv_template import UV_TEMPLATE_SPEC, UVTemplate, load_uv_template

__all__ = ["FlameAssetPaths", "FlameAssets", "load_flame_assets"]


@dataclass(frozen=True)
class FlameAssetPaths:
    """Where the FLAME asset files are (config group ``flame``: ``flame.model_path`` etc.)."""

    model: Path
    landmark_embedding: Path
    uv_template: Path
    uv_face_mask: Path
    uv_face_eye_mask: Path


@dataclass(frozen=True, eq=False)
class FlameAssets:
    """All FLAME assets, loaded and cross-checked.

    Attributes:
        model: the head model.
        landmarks: the landmark embedding (face indices < F of ``model``).
        uv: the UV layout (as many UV faces as ``model.faces``).
        face_mask: (H, W) float32 in [0, 1] UV mask of the face region.
        face_eye_mask: (H, W) float32 in [0, 1] UV mask of face + eye region (same size as ``face_mask``).
    """

    model: FlameModelData
    landmarks: LandmarkEmbedding
    uv: UVTemplate
    face_mask: np.ndarray
    face_eye_mask: np.ndarray


def load_flame_assets(paths: FlameAssetPaths) -> FlameAssets:
    """Load and cross-check every FLAME asset.

    All files are checked first: if any is missing, ONE :class:`MissingAssetError` lists each missing file, the
    config key that sets it and where to obtain it.
    """
    model_p, lmk_p, uv_p, mask_p, eye_p = require_files(
        [
            (paths.model, FLAME_MODEL_SPEC),
            (paths.landmark_embedding, LANDMARK_EMBEDDING_SPEC),
            (paths.uv_template, UV_TEMPLATE_SPEC),
            (paths.uv_face_mask, UV_FACE_MASK_SPEC),
            (paths.uv_face_eye_mask, UV_FACE_EYE_MASK_SPEC),
        ]
    )
    model = load_flame_model(model_p)
    landmarks = load_landmark_embedding(lmk_p)
    with_source(lmk_p, lambda: landmarks.check_faces(model.faces.shape[0]))
    uv = load_uv_template(uv_p)
    if uv.faces_uvs.shape[0] != model.faces.shape[0]:
        raise AssetFormatError(
            f"{uv_p}: {uv.faces_uvs.shape[0]} UV faces but the FLAME model {model_p} has {model.faces.shape[0]} faces; "
            "the UV template does not belong to this model"
        )
    face_mask = load_uv_mask(mask_p, UV_FACE_MASK_SPEC)
    face_eye_mask = load_uv_mask(eye_p, UV_FACE_EYE_MASK_SPEC)
    if face_mask.shape != face_eye_mask.shape:
        raise AssetFormatError(f"{eye_p}: mask size {face_eye_mask.shape} differs from {mask_p} {face_mask.shape}")
    return FlameAssets(model, landmarks, uv, face_mask, face_eye_mask)
