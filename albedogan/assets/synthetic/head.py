"""The embedded synthetic head model: build it in memory, or write it once as official-format FLAME files.

``build_synthetic_head()`` is deterministic (fixed seed, numpy only). ``ensure_synthetic_head(data_dir)`` writes
``<data_dir>/synthetic_flame/`` with the same writers and file formats as the official assets (``generic_model.pkl``
chumpy-style, DECA's ``landmark_embedding.npy`` and ``head_template.obj``, ``uv_face_mask.png``,
``uv_face_eye_mask.png``) plus ``VERSION``; it reuses a complete folder of the current version and rebuilds it
otherwise. The folder is assembled in a temporary sibling and renamed into place, so an interrupted run never
leaves a half-written set.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from albedogan.assets.flame_assets import FlameAssetPaths
from albedogan.assets.flame_model import FlameModelData
from albedogan.assets.landmark_embedding import LandmarkEmbedding
from albedogan.assets.synthetic.writers import (
    write_flame_model,
    write_landmark_embedding,
    write_uv_mask,
    write_uv_template,
)
from albedogan.assets.uv_template import UVTemplate
from albedogan.assets.synthetic.basis import build_basis, vertex_normals
from albedogan.assets.synthetic.landmarks import build_landmarks
from albedogan.assets.synthetic.masks import build_masks
from albedogan.assets.synthetic.mesh import build_mesh
from albedogan.assets.synthetic.rig import PARENTS, joint_regressor, pose_correctives, skinning_weights
from albedogan.utils.io import OutputWriteError, atomic_write_text
from albedogan.utils.logging import get_logger

__all__ = ["SYNTHETIC_HEAD_VERSION", "SYNTHETIC_DIRNAME", "SyntheticHead", "build_synthetic_head",
           "ensure_synthetic_head", "synthetic_asset_paths"]

SYNTHETIC_HEAD_VERSION = 4
"""Bump whenever the generator's output changes: cached folders of another version are rebuilt."""

SYNTHETIC_DIRNAME = "synthetic_flame"
_VERSION_FILE = "VERSION"
_log = get_logger(__name__)


@dataclass(frozen=True, eq=False)
class SyntheticHead:
    """The synthetic head in memory.

    Attributes:
        model: FLAME-format arrays (V ≈ 5000 vertices, F ≈ 9900 faces, 300 + 100 blendshapes, 5 joints).
        landmarks: DECA-format landmark embedding on ``model.faces``.
        uv: UV layout (``uv.faces_uvs`` row-aligned with ``model.faces``).
        face_mask: (256, 256) float64 in {0, 1} UV face region (row 0 = top, v = 1).
        face_eye_mask: (256, 256) float64 in {0, 1} UV face + eye region.
        symmetry: (V,) int64 mirror permutation: ``v_template[symmetry] == v_template * [-1, 1, 1]``.
        shape_stds: (400,) float64 standard deviation (column norm) of each blendshape, decreasing per block.
        blendshape_parity: (400,) int64 +1 mirror-symmetric column, -1 antisymmetric (e.g. mouth left/right),
            0 approximately symmetric (random fields).
        identity_names: names of the leading semantic identity columns, in column order.
        expression_names: names of the leading semantic expression columns (column 300 + i).
        eye_id: (V,) int64 0 skin, 1 left eyeball (+X), 2 right eyeball.
        lower_lip: (V,) bool lower-lip copies of the mouth-slit vertices.
        slit_upper: (M,) int64 upper-lip mouth-slit vertices (same positions as ``slit_lower`` at rest).
        slit_lower: (M,) int64 their lower-lip copies.
    """

    model: FlameModelData
    landmarks: LandmarkEmbedding
    uv: UVTemplate
    face_mask: np.ndarray
    face_eye_mask: np.ndarray
    symmetry: np.ndarray
    shape_stds: np.ndarray
    blendshape_parity: np.ndarray
    identity_names: tuple[str, ...]
    expression_names: tuple[str, ...]
    eye_id: np.ndarray
    lower_lip: np.ndarray
    slit_upper: np.ndarray
    slit_lower: np.ndarray


def build_synthetic_head() -> SyntheticHead:
    """Generate the synthetic head (deterministic: identical arrays on every call and machine with IEEE floats)."""
    mesh = build_mesh()
    normals = vertex_normals(mesh.vertices, mesh.faces)
    weights = skinning_weights(mesh)
    shapedirs, stds, id_names, exp_names, parity = build_basis(mesh)
    model = FlameModelData(
        v_template=mesh.vertices,
        faces=mesh.faces,
        shapedirs=shapedirs,
        posedirs=pose_correctives(mesh, weights),
        J_regressor=joint_regressor(mesh),
        parents=PARENTS,
        lbs_weights=weights,
    )
    landmarks = LandmarkEmbedding(**build_landmarks(mesh, normals))
    face_mask, face_eye_mask = build_masks(mesh, normals)
    return SyntheticHead(
        model=model,
        landmarks=landmarks,
        uv=UVTemplate(verts_uvs=mesh.uvs, faces_uvs=mesh.faces_uv),
        face_mask=face_mask,
        face_eye_mask=face_eye_mask,
        symmetry=mesh.symmetry,
        shape_stds=stds,
        blendshape_parity=parity,
        identity_names=tuple(id_names),
        expression_names=tuple(exp_names),
        eye_id=mesh.eye_id,
        lower_lip=mesh.lower_lip,
        slit_upper=mesh.slit_upper,
        slit_lower=mesh.slit_lower,
    )


def synthetic_asset_paths(data_dir: str | os.PathLike) -> FlameAssetPaths:
    """Where :func:`ensure_synthetic_head` puts the files under ``data_dir`` (nothing is checked or written)."""
    root = Path(data_dir).expanduser() / SYNTHETIC_DIRNAME
    return FlameAssetPaths(
        model=root / "generic_model.pkl",
        landmark_embedding=root / "landmark_embedding.npy",
        uv_template=root / "head_template.obj",
        uv_face_mask=root / "uv_face_mask.png",
        uv_face_eye_mask=root / "uv_face_eye_mask.png",
    )


def _is_current(folder: Path) -> bool:
    stamp = folder / _VERSION_FILE
    paths = synthetic_asset_paths(folder.parent)
    if not stamp.is_file():
        return False
    try:
        version = int(stamp.read_text().strip())
    except ValueError:
        return False
    files = (paths.model, paths.landmark_embedding, paths.uv_template, paths.uv_face_mask, paths.uv_face_eye_mask)
    return version == SYNTHETIC_HEAD_VERSION and all(p.is_file() for p in files)


def _write_all(folder: Path, head: SyntheticHead) -> None:
    write_flame_model(folder / "generic_model.pkl", head.model, chumpy=True)
    write_landmark_embedding(folder / "landmark_embedding.npy", head.landmarks)
    write_uv_template(folder / "head_template.obj", head.uv, head.model.v_template, head.model.faces)
    write_uv_mask(folder / "uv_face_mask.png", head.face_mask)
    write_uv_mask(folder / "uv_face_eye_mask.png", head.face_eye_mask)
    atomic_write_text(folder / _VERSION_FILE, f"{SYNTHETIC_HEAD_VERSION}\n")  # written last: marks completion


def ensure_synthetic_head(data_dir: str | os.PathLike) -> FlameAssetPaths:
    """Make sure ``<data_dir>/synthetic_flame/`` holds the current synthetic head; return its file paths.

    A folder with the current ``VERSION`` and all files is reused untouched. Otherwise the files are generated into
    a temporary folder next to it, which then replaces the old folder by rename.

    Args:
        data_dir: the project's data folder (``paths.data_dir``); created if missing.

    Raises:
        OutputWriteError: ``data_dir`` is not writable (the message names it).
    """
    data_dir = Path(data_dir).expanduser()
    target = data_dir / SYNTHETIC_DIRNAME
    if _is_current(target):
        return synthetic_asset_paths(data_dir)
    _log.info("generating the synthetic FLAME-format head (version %d) into %s", SYNTHETIC_HEAD_VERSION, target)
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{SYNTHETIC_DIRNAME}.", suffix=".tmp", dir=data_dir))
    except OSError as err:
        raise OutputWriteError(
            f"cannot write the synthetic head into {data_dir}: {err.strerror or err}. Set `paths.data_dir` to a "
            "writable folder."
        ) from err
    try:
        os.chmod(tmp, 0o755)
        _write_all(tmp, build_synthetic_head())
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{SYNTHETIC_DIRNAME}.old.", dir=data_dir))
            os.replace(target, old / SYNTHETIC_DIRNAME)
            shutil.rmtree(old, ignore_errors=True)
        try:
            os.replace(tmp, target)
        except OSError:
            if not _is_current(target):  # another process did not finish it either
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return synthetic_asset_paths(data_dir)
