"""68-point landmark embedding of the synthetic head in DECA's format (faces + barycentric coordinates).

Static landmarks (iBUG-68 points 17..67: brows, nose, eyes, mouth) are placed by casting frontal rays at target
(x, y) positions onto the skin; the inner-lip points sit on the mouth slit (upper points on the upper lip, lower
points on the lower-lip copies). The dynamic contour (points 0..16) is the silhouette of the jaw/cheek region seen
under a head yaw of 0..39 degrees (rows 0..39, DECA's +yaw convention: the face turns toward +X); rows 40..78 hold
the mirrored contours for yaw -1..-39 degrees.
"""

from __future__ import annotations

import numpy as np

from albedogan.assets.synthetic.field import MOUTH_Y
from albedogan.assets.synthetic.mesh import HeadMesh

__all__ = ["STATIC_TARGETS_XY", "build_landmarks"]

_M = MOUTH_Y
STATIC_TARGETS_XY = np.array(
    [
        # 17-21 right brow (image left, x < 0), outer -> inner; 22-26 left brow, inner -> outer
        [-0.048, 0.040], [-0.040, 0.046], [-0.031, 0.048], [-0.022, 0.047], [-0.013, 0.043],
        [0.013, 0.043], [0.022, 0.047], [0.031, 0.048], [0.040, 0.046], [0.048, 0.040],
        # 27-30 nose bridge down to the tip (30 is replaced by the most forward skin point), 31-35 nostrils
        [0.0, 0.026], [0.0, 0.016], [0.0, 0.006], [0.0, -0.006],
        [-0.012, -0.017], [-0.006, -0.019], [0.0, -0.020], [0.006, -0.019], [0.012, -0.017],
        # 36-41 right eye (outer corner, upper lid x2, inner corner, lower lid x2); 42-47 left eye
        [-0.044, 0.025], [-0.036, 0.0295], [-0.027, 0.0295], [-0.019, 0.025], [-0.027, 0.0215], [-0.036, 0.0215],
        [0.019, 0.025], [0.027, 0.0295], [0.036, 0.0295], [0.044, 0.025], [0.036, 0.0215], [0.027, 0.0215],
        # 48-59 outer lips: right corner, upper lip to the left corner, lower lip back
        [-0.0225, _M], [-0.016, _M + 0.006], [-0.007, _M + 0.009], [0.0, _M + 0.0085], [0.007, _M + 0.009],
        [0.016, _M + 0.006], [0.0225, _M], [0.016, _M - 0.008], [0.007, _M - 0.011], [0.0, _M - 0.0115],
        [-0.007, _M - 0.011], [-0.016, _M - 0.008],
        # 60-67 inner lips (x only is used: they sit on the mouth slit)
        [-0.019, _M], [-0.008, _M], [0.0, _M], [0.008, _M], [0.019, _M], [0.008, _M], [0.0, _M], [-0.008, _M],
    ]
)
"""(51, 2) frontal target positions (m) of the 68-point landmarks 17..67."""

_INNER_UPPER = (61, 62, 63)
_INNER_LOWER = (65, 66, 67)
_INNER_CORNERS = (60, 64)


def _frontal_hits(vertices: np.ndarray, faces: np.ndarray, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First hit of rays along -Z through points ``xy`` (L, 2) on front-facing ``faces``: face ids (L,), bary (L, 3)."""
    a, b, c = (vertices[faces[:, k]] for k in range(3))  # (F, 3) each
    normal_z = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    front = normal_z > 1e-14
    a, b, c, ids = a[front], b[front], c[front], np.nonzero(front)[0]
    det = normal_z[front]
    px, py = xy[:, None, 0], xy[:, None, 1]  # (L, 1)
    w1 = ((px - a[:, 0]) * (c[:, 1] - a[:, 1]) - (py - a[:, 1]) * (c[:, 0] - a[:, 0])) / det  # (L, F')
    w2 = ((b[:, 0] - a[:, 0]) * (py - a[:, 1]) - (b[:, 1] - a[:, 1]) * (px - a[:, 0])) / det
    w0 = 1.0 - w1 - w2
    inside = (w0 >= -1e-9) & (w1 >= -1e-9) & (w2 >= -1e-9)
    depth = np.where(inside, w0 * a[:, 2] + w1 * b[:, 2] + w2 * c[:, 2], -np.inf)
    best = np.argmax(depth, axis=1)
    if not np.isfinite(depth[np.arange(len(xy)), best]).all():
        raise RuntimeError("synthetic head: a landmark ray missed the face")
    rows = np.arange(len(xy))
    bary = np.stack([w0[rows, best], w1[rows, best], w2[rows, best]], axis=-1)
    bary = np.clip(bary, 0.0, None)
    return ids[best], bary / bary.sum(-1, keepdims=True)


def _vertex_faces(faces: np.ndarray, n_vertices: int) -> tuple[np.ndarray, np.ndarray]:
    """For each vertex one face containing it and the one-hot barycentric coordinates of the vertex in that face."""
    face_of = np.full(n_vertices, -1, dtype=np.int64)
    corner = np.zeros(n_vertices, dtype=np.int64)
    for k in (2, 1, 0):  # later assignments win: the lowest corner slot of the last face listed
        face_of[faces[:, k]] = np.arange(len(faces))
        corner[faces[:, k]] = k
    return face_of, np.eye(3)[corner]


def _contour_vertices(mesh: HeadMesh, yaw_deg: float, candidates: np.ndarray) -> np.ndarray:
    """(17,) vertex ids of the image-space jaw contour under a head yaw (rotation about +Y) of ``yaw_deg``."""
    t = np.deg2rad(yaw_deg)
    p = mesh.vertices[candidates]
    x2 = np.cos(t) * p[:, 0] + np.sin(t) * p[:, 2]  # image x of R_y(t) p
    y2 = p[:, 1]
    cx = np.sin(t) * 0.03
    cy = -0.005
    ang = np.arctan2(x2 - cx, -(y2 - cy))  # 0 = straight down, +pi/2 = image right
    rad = np.hypot(x2 - cx, y2 - cy)
    betas = np.deg2rad(np.linspace(-98.0, 98.0, 17))
    out = np.empty(17, dtype=np.int64)
    for k, beta in enumerate(betas):  # 17 contour points, not a per-vertex loop
        diff = np.abs(np.angle(np.exp(1j * (ang - beta))))
        window = diff < np.deg2rad(3.0)
        score = np.where(window, rad, -np.inf)
        out[k] = candidates[int(np.argmax(score))]
    return out


def build_landmarks(mesh: HeadMesh, normals: np.ndarray) -> dict[str, np.ndarray]:
    """Landmark embedding arrays (names and shapes of :class:`~albedogan.assets.landmark_embedding.LandmarkEmbedding`).

    Args:
        mesh: the rest-pose head.
        normals: (V, 3) unit vertex normals of ``mesh``.
    """
    v, f = mesh.vertices, mesh.faces
    skin_faces = np.nonzero((mesh.eye_id[f] == 0).all(axis=1))[0]
    targets = STATIC_TARGETS_XY.copy()
    skin = mesh.eye_id == 0
    tip = np.argmax(np.where(skin & (np.abs(v[:, 0]) < 1e-12), v[:, 2], -np.inf))
    targets[30 - 17] = v[tip, :2]
    hit_faces, bary = _frontal_hits(v, f[skin_faces], targets)
    static_faces = skin_faces[hit_faces]
    face_of, onehot = _vertex_faces(f, len(v))
    # inner lips: the slit vertices (upper copies on the upper lip, lower copies on the lower lip)
    slit_x = v[mesh.slit_upper, 0]
    upper_faces = np.nonzero(~np.isin(f, mesh.slit_lower).any(axis=1))[0]
    face_of_up, onehot_up = _vertex_faces(f[upper_faces], len(v))
    for idx in _INNER_UPPER + _INNER_LOWER:
        j = int(np.argmin(np.abs(slit_x - targets[idx - 17, 0])))
        if idx in _INNER_UPPER:
            vid = mesh.slit_upper[j]
            static_faces[idx - 17], bary[idx - 17] = upper_faces[face_of_up[vid]], onehot_up[vid]
        else:
            vid = mesh.slit_lower[j]
            static_faces[idx - 17], bary[idx - 17] = face_of[vid], onehot[vid]
    for idx in _INNER_CORNERS:
        sign = np.sign(targets[idx - 17, 0])
        j = int(np.argmax(sign * slit_x))
        vid = mesh.slit_upper[j]
        static_faces[idx - 17], bary[idx - 17] = upper_faces[face_of_up[vid]], onehot_up[vid]

    # dynamic contour
    cand = np.nonzero(
        skin & (v[:, 2] > -0.012) & (v[:, 1] < 0.03) & (v[:, 1] > -0.1) & (normals[:, 1] > -0.8) & ~mesh.lower_lip
    )[0]
    centre = cand[np.abs(v[cand, 0]) < 1e-12]
    chin_y = v[centre, 1].min()
    cand = cand[v[cand, 1] >= chin_y - 0.002]  # nothing below the chin: the contour follows the jaw line
    rows = np.stack([_contour_vertices(mesh, float(yaw), cand) for yaw in range(40)])  # (40, 17)
    # yaw 0 exactly symmetric: the left half mirrors the right half, the chin point on the mirror plane
    rows[0, 9:] = mesh.symmetry[rows[0, :8]][::-1]
    if mesh.symmetry[rows[0, 8]] != rows[0, 8]:
        rows[0, 8] = centre[np.argmin(v[centre, 1])]
    mirrored = mesh.symmetry[rows[1:, ::-1]]  # yaw -1..-39 from +1..+39
    contour = np.concatenate([rows, mirrored])  # (79, 17)
    dyn_faces = face_of[contour]
    dyn_bary = onehot[contour]
    full_faces = np.concatenate([dyn_faces[0], static_faces])
    full_bary = np.concatenate([dyn_bary[0], bary])
    return {
        "static_lmk_faces_idx": static_faces.astype(np.int64),
        "static_lmk_bary_coords": bary,
        "dynamic_lmk_faces_idx": dyn_faces.astype(np.int64),
        "dynamic_lmk_bary_coords": dyn_bary,
        "full_lmk_faces_idx": full_faces.astype(np.int64),
        "full_lmk_bary_coords": full_bary,
    }
