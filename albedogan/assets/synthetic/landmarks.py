"""68-point landmark embedding of the synthetic head in DECA's format (faces + barycentric coordinates).

Static landmarks (iBUG-68 points 17..67: brows, nose, eyes, mouth) are placed by casting frontal rays at target
(x, y) positions onto the skin; the inner-lip points sit on the mouth slit (upper points on the upper lip, lower
points on the lower-lip copies). The dynamic contour (points 0..16) follows iBUG's convention: the outline of the
cheeks, jaw and chin (in front of the ears) seen under a head yaw of 0..39 degrees, from ear level (just below the
eyes) on one side to the other, 17 points equally spaced by arc length, each on the mesh at exact barycentric
coordinates (rows 0..39, DECA's +yaw convention: the face turns toward +X); rows 40..78 hold the mirror images for
yaw -1..-39 degrees. The brow, nose and contour placement was checked against dlib's 68 points on frontal photos
(docs/fitting.md).
"""

from __future__ import annotations

import numpy as np

from albedogan.assets.synthetic.field import MOUTH_Y
from albedogan.assets.synthetic.mesh import HeadMesh

__all__ = ["STATIC_TARGETS_XY", "build_landmarks"]

_M = MOUTH_Y
STATIC_TARGETS_XY = np.array(
    [
        # 17-21 right brow (image left, x < 0), outer -> inner; 22-26 left brow, inner -> outer (iBUG's brow
        # reaches ~0.2 inter-ocular distances beyond the outer eye corner)
        [-0.058, 0.0415], [-0.049, 0.049], [-0.037, 0.050], [-0.0245, 0.048], [-0.0135, 0.043],
        [0.0135, 0.043], [0.0245, 0.048], [0.037, 0.050], [0.049, 0.049], [0.058, 0.0415],
        # 27-30 nose bridge down to the tip (30: NOSE_TIP_DROP below the most forward skin point), 31-35 nostrils
        [0.0, 0.0285], [0.0, 0.016], [0.0, 0.0025], [0.0, -0.006],
        [-0.0143, -0.0175], [-0.0075, -0.0202], [0.0, -0.0226], [0.0075, -0.0202], [0.0143, -0.0175],
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


def _frontal_hits(vertices: np.ndarray, faces: np.ndarray, xy: np.ndarray, strict: bool = True
                  ) -> tuple[np.ndarray, np.ndarray]:
    """First hit of rays along -Z through points ``xy`` (L, 2) on front-facing ``faces``: face ids (L,), bary (L, 3).

    A ray that misses raises (``strict``) or gets face id -1."""
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
    rows = np.arange(len(xy))
    missed = ~np.isfinite(depth[rows, best])
    if strict and missed.any():
        raise RuntimeError("synthetic head: a landmark ray missed the face")
    bary = np.stack([w0[rows, best], w1[rows, best], w2[rows, best]], axis=-1)
    bary = np.clip(bary, 0.0, None)
    return np.where(missed, -1, ids[best]), bary / bary.sum(-1, keepdims=True)


def _vertex_faces(faces: np.ndarray, n_vertices: int) -> tuple[np.ndarray, np.ndarray]:
    """For each vertex one face containing it and the one-hot barycentric coordinates of the vertex in that face."""
    face_of = np.full(n_vertices, -1, dtype=np.int64)
    corner = np.zeros(n_vertices, dtype=np.int64)
    for k in (2, 1, 0):  # later assignments win: the lowest corner slot of the last face listed
        face_of[faces[:, k]] = np.arange(len(faces))
        corner[faces[:, k]] = k
    return face_of, np.eye(3)[corner]


CONTOUR_TOP_Y = 0.023
"""Height (m) of the contour's end points 0 and 16: just below the eye centres (0.026), in front of the ears, where
iBUG-68 starts the jaw line (dlib's points on frontal photos: 0.05 inter-ocular distances below the eye line)."""

NOSE_TIP_DROP = 0.004
"""Point 30 sits this far (m) below the most forward skin point: iBUG's nose tip is the lower front of the tip."""

_EAR_CENTRE = np.array([0.0745, 0.012, -0.012])  # the ear ellipsoids of the head field (x mirrored for the right ear)
_EAR_RADII = np.array([0.011, 0.029, 0.017]) * 1.4  # kept off the contour, with a margin: it passes in front of it


def _yaw_rotate(p: np.ndarray, yaw_deg: float) -> np.ndarray:
    """(V, 3) points rotated by ``yaw_deg`` about +Y (DECA's +yaw: the face turns toward +X)."""
    t = np.deg2rad(yaw_deg)
    x, y, z = p[:, 0], p[:, 1], p[:, 2]
    return np.stack([np.cos(t) * x + np.sin(t) * z, y, -np.sin(t) * x + np.cos(t) * z], axis=-1)


def _silhouette(points2d: np.ndarray, centre: np.ndarray, top_y: float) -> np.ndarray:
    """(P, 2) outer boundary of projected points (x right, y up), from the image-left end to the image-right end.

    The boundary is the largest distance from ``centre`` per 2-degree direction bin (a 5-bin moving average), kept
    from straight down up to the height ``top_y`` on both sides, the end points interpolated onto that height.
    """
    rel = points2d - centre
    ang = np.arctan2(rel[:, 0], -rel[:, 1])  # 0 = straight down, +pi/2 = image right
    rad = np.hypot(rel[:, 0], rel[:, 1])
    edges = np.deg2rad(np.arange(-170.0, 171.0, 2.0))
    bins = np.digitize(ang, edges) - 1
    keep = (bins >= 0) & (bins < len(edges) - 1)
    best = np.full(len(edges) - 1, -np.inf)
    np.maximum.at(best, bins[keep], rad[keep])
    ok = np.isfinite(best)
    mids = 0.5 * (edges[:-1] + edges[1:])[ok]
    radius = np.convolve(np.pad(best[ok], 2, mode="edge"), np.ones(5) / 5, mode="valid")
    xy = centre + np.stack([radius * np.sin(mids), -radius * np.cos(mids)], axis=-1)
    low = xy[:, 1] <= top_y
    lo = hi = int(np.argmin(np.abs(mids)))
    while lo > 0 and low[lo - 1]:
        lo -= 1
    while hi < len(xy) - 1 and low[hi + 1]:
        hi += 1

    def crossing(inside: int, outside: int) -> np.ndarray:
        if outside < 0 or outside >= len(xy) or xy[outside, 1] == xy[inside, 1]:
            return xy[inside]
        a, b = xy[inside], xy[outside]
        return a + np.clip((top_y - a[1]) / (b[1] - a[1]), 0.0, 1.0) * (b - a)

    return np.concatenate([crossing(lo, lo - 1)[None], xy[lo:hi + 1], crossing(hi, hi + 1)[None]])


def _arc_samples(polyline: np.ndarray, count: int) -> np.ndarray:
    """(count, 2) points equally spaced by arc length along a (P, 2) polyline, both ends included."""
    s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(polyline, axis=0), axis=1))])
    t = np.linspace(0.0, s[-1], count)
    return np.stack([np.interp(t, s, polyline[:, 0]), np.interp(t, s, polyline[:, 1])], axis=-1)


def _contour_points(vertices: np.ndarray, faces: np.ndarray, region: np.ndarray, yaw_deg: float
                    ) -> tuple[np.ndarray, np.ndarray]:
    """The 17 contour landmarks seen under a head yaw of ``yaw_deg``: (17,) face ids into ``faces`` and (17, 3) bary.

    iBUG-68's contour: the face's outline (silhouette of the ``region`` vertices: cheeks, jaw, chin; ears excluded)
    from ear level on one side to ear level on the other, its 17 points equally spaced by arc length. Each point is
    put on the mesh by a ray along the view direction just inside the outline (1 mm, or up to 4 mm where the smoothed
    outline passes outside the mesh; exact barycentric coordinates), or else on the nearest region vertex.
    """
    rotated = _yaw_rotate(vertices, yaw_deg)
    centre = np.array([np.sin(np.deg2rad(yaw_deg)) * 0.03, -0.005])
    outline = _arc_samples(_silhouette(rotated[region, :2], centre, CONTOUR_TOP_Y), 17)
    inward = centre - outline
    inward /= np.linalg.norm(inward, axis=1, keepdims=True)
    region_faces = np.nonzero(region[faces].all(axis=1))[0]
    hit = np.full(17, -1)
    bary = np.zeros((17, 3))
    for depth in (0.001, 0.002, 0.003, 0.004):  # the rays that missed try again further inside
        todo = hit < 0
        if not todo.any():
            break
        h, b = _frontal_hits(rotated, faces[region_faces], outline[todo] + depth * inward[todo], strict=False)
        hit[todo], bary[todo] = h, b
    faces_out = region_faces[np.maximum(hit, 0)]
    for k in np.nonzero(hit < 0)[0]:  # on an edge of the region (e.g. the chin's centre line): the nearest vertex
        ids = np.nonzero(region)[0]
        vid = ids[np.argmin(np.linalg.norm(rotated[ids, :2] - outline[k], axis=1))]
        face = int(np.nonzero((faces == vid).any(axis=1))[0][0])
        faces_out[k] = face
        bary[k] = (faces[face] == vid).astype(np.float64)
    return faces_out, bary


def _mirror_faces(faces: np.ndarray, symmetry: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each face its mirror image: (F,) face ids and (F, 3) corner order (mirror corner k = original corner
    ``order[f, k]``), so that a point (f, bary) mirrors to (mirror[f], bary[order[f]])."""
    index = {tuple(sorted(face)): i for i, face in enumerate(faces.tolist())}
    mirrored = symmetry[faces]  # (F, 3) mirrored corners, original order
    ids = np.array([index[tuple(sorted(m))] for m in mirrored.tolist()], dtype=np.int64)  # one lookup per face
    target = faces[ids]  # (F, 3) corners of the mirror face
    order = np.argmax(target[:, :, None] == mirrored[:, None, :], axis=2)  # (F, 3)
    return ids, order


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
    targets[30 - 17] = v[tip, :2] - [0.0, NOSE_TIP_DROP]
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

    # dynamic contour: the face outline under each yaw (rows 0..39 = yaw 0..39 degrees, rows 40..78 = the mirror
    # images for yaw -1..-39); the region: skin of the cheeks, jaw and chin, not the ears, not under the chin
    ear = np.minimum(*(np.linalg.norm((v - c) / _EAR_RADII, axis=1) for c in (_EAR_CENTRE, _EAR_CENTRE * [-1, 1, 1])))
    region = (skin & (ear > 1.0) & (v[:, 2] > -0.025) & (v[:, 1] < CONTOUR_TOP_Y + 0.01) & (v[:, 1] > -0.1)
              & (normals[:, 1] > -0.8) & ~mesh.lower_lip)
    centre = np.nonzero(region & (np.abs(v[:, 0]) < 1e-12))[0]
    region &= v[:, 1] >= v[centre, 1].min() - 0.002  # nothing below the chin: the contour follows the jaw line
    rows = [_contour_points(v, f, region, float(yaw)) for yaw in range(40)]
    dyn_faces = np.stack([r[0] for r in rows])  # (40, 17)
    dyn_bary = np.stack([r[1] for r in rows])
    mirror, order = _mirror_faces(f, mesh.symmetry)
    # yaw 0 exactly symmetric: the image-right half mirrors the image-left half, the chin point on the mirror plane
    dyn_faces[0, 9:] = mirror[dyn_faces[0, :8]][::-1]
    dyn_bary[0, 9:] = np.take_along_axis(dyn_bary[0, :8], order[dyn_faces[0, :8]], axis=1)[::-1]
    chin_point = dyn_bary[0, 8] @ v[f[dyn_faces[0, 8]]]
    if abs(chin_point[0]) > 1e-12:  # move it onto the mirror plane: a centre-line vertex's face, one-hot
        vid = centre[np.argmin(np.abs(v[centre, 1] - chin_point[1]))]
        dyn_faces[0, 8], dyn_bary[0, 8] = face_of[vid], onehot[vid]
    neg_faces = mirror[dyn_faces[1:, ::-1]]  # yaw -1..-39 from +1..+39
    neg_bary = np.take_along_axis(dyn_bary[1:, ::-1], order[dyn_faces[1:, ::-1]], axis=2)
    dyn_faces = np.concatenate([dyn_faces, neg_faces])  # (79, 17)
    dyn_bary = np.concatenate([dyn_bary, neg_bary])
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
