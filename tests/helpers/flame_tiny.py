"""Tiny FLAME-format data for tests: a 200-vertex face strip with FLAME's 5-joint tree (not the embedded default)."""

from __future__ import annotations

import numpy as np

from albedogan.assets.flame_model import FlameModelData
from albedogan.assets.landmark_embedding import LandmarkEmbedding
from albedogan.assets.uv_template import UVTemplate

N_SHAPE = 6
N_EXP = 4
JAW, LEFT_EYE, RIGHT_EYE = 2, 3, 4


def tiny_flame_model(seed: int = 0, rows: int = 10, cols: int = 20) -> FlameModelData:
    """A (rows·cols)-vertex half-cylinder "face" with FLAME's joints: global, neck, jaw, left eye, right eye.

    Lower vertices are skinned partly to the jaw, two small patches fully to the eyes; pose correctives of joint j
    are non-zero only on vertices that joint j skins (as in FLAME, where they are local).
    """
    rng = np.random.default_rng(seed)
    ys = np.linspace(-0.1, 0.1, rows)
    angles = np.linspace(-1.2, 1.2, cols)
    yy, aa = np.meshgrid(ys, angles, indexing="ij")
    v = np.stack([0.08 * np.sin(aa), yy, 0.08 * np.cos(aa)], -1).reshape(-1, 3)
    grid = np.arange(rows * cols).reshape(rows, cols)
    a, b, c, d = grid[:-1, :-1].ravel(), grid[:-1, 1:].ravel(), grid[1:, :-1].ravel(), grid[1:, 1:].ravel()
    faces = np.concatenate([np.stack([a, b, d], 1), np.stack([a, d, c], 1)])

    n_verts = v.shape[0]
    weights = np.zeros((n_verts, 5))
    weights[:, 0] = 0.3
    weights[:, 1] = 0.7
    lower = v[:, 1] < -0.03
    weights[lower, 1] = 0.3
    weights[lower, JAW] = 0.4
    left_eye_v = grid[6, 6:8]
    right_eye_v = grid[6, 12:14]
    for eye, idx in ((LEFT_EYE, left_eye_v), (RIGHT_EYE, right_eye_v)):
        weights[idx] = 0.0
        weights[idx, eye] = 1.0

    regressor = np.zeros((5, n_verts))
    regressor[0, grid[0, 9:11]] = 0.5
    regressor[1, grid[1, 8:12]] = 0.25
    regressor[JAW, grid[2, 9:11]] = 0.5
    regressor[LEFT_EYE, left_eye_v] = 0.5
    regressor[RIGHT_EYE, right_eye_v] = 0.5

    shapedirs = rng.normal(scale=0.01, size=(n_verts, 3, N_SHAPE + N_EXP))
    posedirs = rng.normal(scale=0.002, size=(n_verts, 3, 4, 9))  # (V, 3, joint 1..4, 9)
    posedirs *= (weights[:, 1:] > 0)[:, None, :, None]
    return FlameModelData(
        v_template=v,
        faces=faces,
        shapedirs=shapedirs,
        posedirs=posedirs.reshape(n_verts, 3, 36),
        J_regressor=regressor,
        parents=np.array([-1, 0, 1, 1, 1]),
        lbs_weights=weights,
    )


def tiny_landmark_embedding(n_faces: int, seed: int = 1) -> LandmarkEmbedding:
    """Random landmark embedding; barycentric weights are float32-exact so DECA's float32 entries round-trip."""
    rng = np.random.default_rng(seed)

    def bary(*shape: int) -> np.ndarray:
        return rng.dirichlet(np.ones(3), size=shape).astype(np.float32).astype(np.float64)

    return LandmarkEmbedding(
        static_lmk_faces_idx=rng.integers(0, n_faces, 51),
        static_lmk_bary_coords=bary(51),
        dynamic_lmk_faces_idx=rng.integers(0, n_faces, (79, 17)),
        dynamic_lmk_bary_coords=bary(79, 17),
        full_lmk_faces_idx=rng.integers(0, n_faces, 68),
        full_lmk_bary_coords=bary(68),
    )


def tiny_uv_template(model: FlameModelData) -> UVTemplate:
    """UVs = normalised (x, y) of the template, one UV per vertex."""
    xy = model.v_template[:, :2]
    uv = (xy - xy.min(0)) / (xy.max(0) - xy.min(0))
    return UVTemplate(verts_uvs=uv.astype(np.float32), faces_uvs=model.faces.copy())
