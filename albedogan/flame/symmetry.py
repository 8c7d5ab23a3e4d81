"""Left/right symmetry of a head template: mirror vertex pairs and the mirror partner UV of every face corner.

A head's *mesh* is (nearly) mirror symmetric about x = 0 (FLAME frame: +x is the subject's left), but its *UV
layout* need not be: on DECA's ``head_template.obj`` the partner of a face-skin texel sits at u' = 1 - u - 0.0068 and
the two eyeball islands are not mirror images of each other. So mirroring a UV map is not a width flip; it is a
lookup through a partner-UV map built from these pairs (:class:`albedogan.render.UVMirror`).

Computed once per head model from the template, with numpy (no loops over vertices or faces).
"""

from __future__ import annotations

import numpy as np

__all__ = ["mirror_face_uvs", "mirror_vertex_pairs"]


def _umbrella(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(V, 3) mean of each vertex's edge neighbours minus the vertex (0 for unused vertices)."""
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    edges = np.unique(np.sort(edges, axis=1), axis=0)
    both = np.concatenate([edges, edges[:, ::-1]])  # (2E, 2) directed
    total = np.zeros_like(vertices)
    np.add.at(total, both[:, 0], vertices[both[:, 1]])
    count = np.bincount(both[:, 0], minlength=len(vertices))[:, None]
    return np.where(count > 0, total / np.maximum(count, 1) - vertices, 0.0)


def mirror_vertex_pairs(
    vertices: np.ndarray, faces: np.ndarray | None = None, tolerance: float | None = 0.02, chunk: int = 1024
) -> tuple[np.ndarray, float]:
    """Match each vertex to the vertex nearest to its mirror image (x -> -x).

    With ``faces``, each vertex is described by its position and its umbrella vector (neighbour mean minus
    position), so coincident vertices on either side of a cut (e.g. upper and lower lip copies of a mouth slit)
    are told apart by which side their neighbours lie on.

    Args:
        vertices: (V, 3) float template positions (FLAME frame, mirror plane x = 0).
        faces: optional (F, 3) int triangles (to separate coincident vertices).
        tolerance: largest accepted match distance as a fraction of the bounding-box diagonal (None: no check).
        chunk: rows per distance block (memory bound V x chunk).

    Returns:
        ``(pairs, max_error)``: (V,) int64 partner index per vertex, and the largest match distance (input units).

    Raises:
        ValueError: when some vertex has no mirror partner within ``tolerance`` (the template is not symmetric).
    """
    v = np.asarray(vertices, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] != 3 or len(v) == 0:
        raise ValueError(f"mirror_vertex_pairs: vertices must be (V, 3), got {v.shape}")
    flip = np.array([-1.0, 1.0, 1.0])
    feat = v if faces is None else np.concatenate([v, _umbrella(v, np.asarray(faces, dtype=np.int64))], axis=1)
    mirrored = feat * np.tile(flip, feat.shape[1] // 3)
    sq = (feat * feat).sum(1)
    pairs = np.empty(len(v), dtype=np.int64)
    for s in range(0, len(v), chunk):
        m = mirrored[s : s + chunk]  # (B, D)
        d2 = (m * m).sum(1)[:, None] + sq[None, :] - 2.0 * m @ feat.T  # (B, V)
        pairs[s : s + chunk] = d2.argmin(1)
    dist = np.linalg.norm(v[pairs] - v * flip, axis=1)
    diag = float(np.linalg.norm(v.max(0) - v.min(0)))
    max_error = float(dist.max())
    if tolerance is not None and max_error > tolerance * max(diag, 1e-12):
        worst = int(dist.argmax())
        raise ValueError(
            f"mirror_vertex_pairs: vertex {worst} has no mirror partner within {tolerance:g} x the head size "
            f"(nearest is {max_error:.4g} away, size {diag:.4g}): the template is not left/right symmetric about x = 0"
        )
    return pairs, max_error


def mirror_face_uvs(
    faces: np.ndarray, faces_uvs: np.ndarray, verts_uvs: np.ndarray, pairs: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The UV of each face corner's mirror partner, seam-safe.

    For a face (a, b, c) whose mirror face (pairs[a], pairs[b], pairs[c]) exists in the topology, corner i gets the
    UV that the mirror face gives vertex pairs[f[i]] (so a partner across a UV seam takes the UV of the right chart).
    Faces whose mirror is not a face fall back to one UV per partner vertex (the first corner that uses it).

    Args:
        faces: (F, 3) int vertex indices.
        faces_uvs: (F, 3) int UV indices, row-aligned with ``faces``.
        verts_uvs: (T, 2) float UVs.
        pairs: (V,) int mirror partner of each vertex (:func:`mirror_vertex_pairs`).

    Returns:
        ``(corner_uvs, has_mirror_face)``: (F, 3, 2) float64 partner UV per corner, and (F,) bool.
    """
    faces = np.asarray(faces, dtype=np.int64)
    faces_uvs = np.asarray(faces_uvs, dtype=np.int64)
    uvs = np.asarray(verts_uvs, dtype=np.float64)
    pairs = np.asarray(pairs, dtype=np.int64)
    n_v = int(max(faces.max() + 1, len(pairs))) if faces.size else len(pairs)

    def keys(tri: np.ndarray) -> np.ndarray:
        s = np.sort(tri, axis=1)
        return (s[:, 0] * n_v + s[:, 1]) * n_v + s[:, 2]

    own = keys(faces)
    order = np.argsort(own, kind="stable")
    partner_faces = pairs[faces]  # (F, 3) partner vertex of each corner
    wanted = keys(partner_faces)
    pos = np.clip(np.searchsorted(own[order], wanted), 0, len(own) - 1)
    mirror_face = order[pos]
    distinct = (partner_faces[:, 0] != partner_faces[:, 1]) & (partner_faces[:, 1] != partner_faces[:, 2])
    distinct &= partner_faces[:, 0] != partner_faces[:, 2]
    found = (own[mirror_face] == wanted) & distinct  # (F,)

    # per corner: where in the mirror face is this corner's partner vertex
    mf = faces[mirror_face]  # (F, 3)
    slot = (mf[:, None, :] == partner_faces[:, :, None]).argmax(-1)  # (F, 3)
    corner_uv_index = np.take_along_axis(faces_uvs[mirror_face], slot, axis=1)  # (F, 3)

    # fallback: one UV per vertex (the first corner that uses it)
    first_uv = np.zeros(n_v, dtype=np.int64)
    flat_v, flat_t = faces.reshape(-1), faces_uvs.reshape(-1)
    used, first = np.unique(flat_v, return_index=True)
    first_uv[used] = flat_t[first]
    fallback = first_uv[partner_faces]
    index = np.where(found[:, None], corner_uv_index, fallback)
    return uvs[index], found
