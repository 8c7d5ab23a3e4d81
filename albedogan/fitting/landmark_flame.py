"""A FLAME layer reduced to the vertices the 68 landmarks need, for fast landmark fitting.

Landmarks only read the vertices of their triangles (51 static faces, the 79 x 17 dynamic-contour faces and the 68
fixed ones: a few hundred vertices of FLAME's 5023). The joints, however, are regressed from the whole shaped mesh.
Both are kept exact by appending one *virtual vertex per joint*: its template is ``J_regressor @ v_template`` and
its blendshapes ``J_regressor @ shapedirs`` (the joint regressor is linear), and the reduced model's regressor picks
those vertices one-hot. The reduced layer therefore gives the same ``landmarks2d`` / ``landmarks3d`` / joints as the
full one (to float rounding) at a fraction of the cost.
"""

from __future__ import annotations

import numpy as np

from albedogan.assets.flame_model import FlameModelData
from albedogan.assets.landmark_embedding import LandmarkEmbedding
from albedogan.flame.flame import FLAME

__all__ = ["landmark_flame"]


def landmark_flame(flame: FLAME) -> FLAME:
    """The reduced layer of ``flame`` (same ``n_shape``/``n_exp``, dtype and device; see the module docstring)."""
    buf = lambda t: t.detach().cpu().double().numpy()  # noqa: E731
    faces = buf(flame.faces_idx).astype(np.int64)
    used_faces = np.unique(np.concatenate([buf(flame.static_lmk_faces_idx).ravel(),
                                           buf(flame.dynamic_lmk_faces_idx).ravel(),
                                           buf(flame.full_lmk_faces_idx).ravel()]).astype(np.int64))
    face_map = np.full(faces.shape[0], -1, np.int64)
    face_map[used_faces] = np.arange(used_faces.size)
    used_verts = np.unique(faces[used_faces].ravel())
    vert_map = np.full(flame.n_vertices, -1, np.int64)
    vert_map[used_verts] = np.arange(used_verts.size)
    n_joints = flame.J_regressor.shape[0]

    regressor = buf(flame.J_regressor)  # (J, V)
    template = buf(flame.v_template)
    shapedirs = buf(flame.shapedirs)  # (V, 3, K)
    posedirs = buf(flame.posedirs)
    weights = buf(flame.lbs_weights)
    joint_template = regressor @ template  # (J, 3)
    joint_dirs = np.einsum("jv,vck->jck", regressor, shapedirs)  # (J, 3, K)
    root_weights = np.zeros((n_joints, n_joints))
    root_weights[:, 0] = 1.0  # virtual vertices are never used as mesh points; any valid skinning will do
    n_sub = used_verts.size
    sub_regressor = np.zeros((n_joints, n_sub + n_joints))
    sub_regressor[np.arange(n_joints), n_sub + np.arange(n_joints)] = 1.0
    model = FlameModelData(
        v_template=np.concatenate([template[used_verts], joint_template]),
        faces=vert_map[faces[used_faces]],
        shapedirs=np.concatenate([shapedirs[used_verts], joint_dirs]),
        posedirs=np.concatenate([posedirs[used_verts], np.zeros((n_joints,) + posedirs.shape[1:])]),
        J_regressor=sub_regressor,
        parents=buf(flame.parents).astype(np.int64),
        lbs_weights=np.concatenate([weights[used_verts], root_weights]),
    )
    embedding = LandmarkEmbedding(
        static_lmk_faces_idx=face_map[buf(flame.static_lmk_faces_idx).astype(np.int64)],
        static_lmk_bary_coords=buf(flame.static_lmk_bary_coords),
        dynamic_lmk_faces_idx=face_map[buf(flame.dynamic_lmk_faces_idx).astype(np.int64)],
        dynamic_lmk_bary_coords=buf(flame.dynamic_lmk_bary_coords),
        full_lmk_faces_idx=face_map[buf(flame.full_lmk_faces_idx).astype(np.int64)],
        full_lmk_bary_coords=buf(flame.full_lmk_bary_coords),
    )
    k = flame.shapedirs.shape[-1]
    reduced = FLAME(model, embedding, n_shape=flame.n_shape, n_exp=flame.n_exp, shape_dims_in_file=flame.n_shape,
                    dtype=flame.v_template.dtype) if k == flame.n_shape + flame.n_exp else None
    if reduced is None:  # pragma: no cover - FLAME always stores exactly n_shape + n_exp columns
        raise ValueError(f"landmark_flame: shapedirs has {k} columns, expected {flame.n_shape + flame.n_exp}")
    return reduced.to(flame.v_template.device)
