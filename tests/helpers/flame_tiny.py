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


# FLAME's sizes (REFERENCE §1): 5023 vertices, 9976 faces, 300 identity + 100 expression components, 5 joints.
FLAME_VERTICES, FLAME_FACES, FLAME_SHAPE, FLAME_EXP = 5023, 9976, 300, 100


def flame_sized_head(seed: int = 0, rows: int = 81, cols: int = 62,
                     dropped: int = 6) -> tuple[FlameModelData, UVTemplate]:
    """A head-like ellipsoid with FLAME's exact sizes and joint tree, random bases, and a seamless UV layout.

    Topology: a ``rows x cols`` latitude/longitude band (wrapping around y) closed at the top by a fan around one
    pole vertex, ``dropped`` fan triangles left out (an open crown, as FLAME's mesh is open): ``rows*cols + 1``
    vertices and ``2(rows-1)cols + cols - dropped`` faces = 5023 / 9976 for the defaults. The face looks along +z
    and is mirror-symmetric in x (column ``j`` mirrors ``cols - j``); UVs put the face at u = 0.5 (the seam column
    and every fan triangle get their own UVs, so no triangle spans the map).
    """
    rng = np.random.default_rng(seed)
    lat = np.linspace(-1.05, 1.35, rows)  # radians, neck to crown
    azi = 2 * np.pi * np.arange(cols) / cols - np.pi  # -pi = back, 0 = front (+z)
    la, az = np.meshgrid(lat, azi, indexing="ij")  # (rows, cols)
    radii = np.array([0.075, 0.105, 0.09])
    ring = np.stack([np.cos(la) * np.sin(az), np.sin(la), np.cos(la) * np.cos(az)], -1) * radii
    pole = np.array([[0.0, radii[1], 0.0]])
    v = np.concatenate([ring.reshape(-1, 3), pole])  # (V, 3)
    grid = np.arange(rows * cols).reshape(rows, cols)
    nxt = np.roll(grid, -1, axis=1)
    a, b, c, d = grid[:-1].ravel(), nxt[:-1].ravel(), grid[1:].ravel(), nxt[1:].ravel()
    band = np.concatenate([np.stack([a, d, b], 1), np.stack([a, c, d], 1)])
    top, top_next = grid[-1], nxt[-1]
    keep = np.ones(cols, bool)
    keep[:dropped] = False  # the open crown sits at the back
    fan = np.stack([top, np.full(cols, v.shape[0] - 1), top_next], 1)[keep]
    faces = np.concatenate([band, fan])
    # outward orientation (the renderer culls nothing, but normals and shading must point out)
    tri = v[faces]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    flip = (normal * tri.mean(1)).sum(-1) < 0
    faces[flip] = faces[flip][:, [0, 2, 1]]

    # UVs: (cols + 1) columns (seam duplicated) x rows, plus one pole UV per fan triangle
    uu, vv = np.meshgrid(np.arange(cols + 1) / cols, (np.arange(rows) + 0.5) / (rows + 0.5), indexing="xy")
    uv_grid = np.arange(rows * (cols + 1)).reshape(rows, cols + 1)
    fan_cols = np.arange(cols)[keep]
    verts_uvs = np.concatenate([np.stack([uu.ravel(), vv.ravel()], 1),
                                np.stack([(fan_cols + 0.5) / cols, np.ones(len(fan_cols))], 1)])
    ua, ub = uv_grid[:-1, :-1].ravel(), uv_grid[:-1, 1:].ravel()
    uc, ud = uv_grid[1:, :-1].ravel(), uv_grid[1:, 1:].ravel()
    uv_band = np.concatenate([np.stack([ua, ud, ub], 1), np.stack([ua, uc, ud], 1)])
    pole_uvs = rows * (cols + 1) + np.arange(len(fan_cols))
    uv_fan = np.stack([uv_grid[-1, fan_cols], pole_uvs, uv_grid[-1, fan_cols + 1]], 1)
    faces_uvs = np.concatenate([uv_band, uv_fan])
    faces_uvs[flip] = faces_uvs[flip][:, [0, 2, 1]]

    # rig: FLAME's joints (global, neck, jaw, left eye, right eye) and skinning, local pose correctives
    n = v.shape[0]

    def nearest(point, k: int) -> np.ndarray:
        return np.argsort(((v - np.asarray(point)) ** 2).sum(-1))[:k]

    weights = np.zeros((n, 5))
    weights[:, 0], weights[:, 1] = 0.3, 0.7
    jaw = (v[:, 1] < -0.03) & (v[:, 2] > 0.02)
    weights[jaw, 1], weights[jaw, JAW] = 0.3, 0.4
    eyes = {LEFT_EYE: nearest([0.03, 0.02, 0.09], 4), RIGHT_EYE: nearest([-0.03, 0.02, 0.09], 4)}
    regressor = np.zeros((5, n))
    for j, (point, k) in enumerate((([0, 0, 0.0], 8), ([0, -0.09, 0], 8), ([0, -0.04, 0.05], 6))):
        regressor[j, nearest(point, k)] = 1.0 / k
    for j, idx in eyes.items():
        weights[idx] = 0.0
        weights[idx, j] = 1.0
        regressor[j, idx] = 1.0 / len(idx)
    shapedirs = rng.normal(scale=0.002, size=(n, 3, FLAME_SHAPE + FLAME_EXP))
    posedirs = rng.normal(scale=0.001, size=(n, 3, 4, 9)) * (weights[:, 1:] > 0)[:, None, :, None]
    model = FlameModelData(v_template=v, faces=faces, shapedirs=shapedirs, posedirs=posedirs.reshape(n, 3, 36),
                           J_regressor=regressor, parents=np.array([-1, 0, 1, 1, 1]), lbs_weights=weights)
    return model, UVTemplate(verts_uvs=verts_uvs.astype(np.float32), faces_uvs=faces_uvs)
