"""Mesh, UV layout and left/right symmetry of the synthetic head.

The skin is a (row, column) grid in spherical directions around :data:`HEAD_CENTER` (rows run from the crown down to
the open neck stump, columns go round the head with the face in the middle), closed at the crown by a pole vertex.
Each grid vertex is placed where its ray leaves the implicit head of :mod:`albedogan.assets.synthetic.field`.
One row follows the mouth line; inside the mouth its vertices are duplicated, the lower copies belonging to the lower
lip, which cuts the mouth slit that opens with the jaw. The eyeballs are separate UV spheres, as in FLAME.

UV layout (OBJ convention, v = 1 at the top of the texture image): the skin grid fills u in [0, 1] and v in
[V_BOTTOM, V_TOP] with a seam at the back of the head (u = 0 and u = 1); the eyeballs are discs in the bottom
corners. Like FLAME's layout (DECA's ``head_template.obj``: partner of a face texel at u' = 1 - u - 0.0068, eye
islands not mirror images), it is deliberately *not* mirror symmetric, so code that mirrors UV maps by a width flip
fails on it: the grid columns are placed by :func:`warp_u` (the right half, x < 0, is compressed and the face centre
sits at u = 0.5 - U_SHIFT), and the right eyeball's island is shifted and turned (:data:`RIGHT_EYE_UV_CENTER`,
:data:`RIGHT_EYE_UV_TURN`) rather than mirrored.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from albedogan.assets.synthetic.field import EYE_CENTERS, EYE_RADIUS, MOUTH_Y, NECK_CENTER_Z, NECK_RADII, head_field

__all__ = ["HEAD_CENTER", "HeadMesh", "build_mesh", "MIRROR", "unwarp_u", "warp_u"]

HEAD_CENTER = np.array([0.0, 0.0, -0.005])
"""Origin (m) of the rays that place the skin vertices."""

MIRROR = np.array([-1.0, 1.0, 1.0])
"""Multiply a point or displacement by this to mirror it (x -> -x)."""

N_COLS = 104
N_ROWS = 45
ALPHA_FIRST = np.deg2rad(7.0)
ALPHA_LAST = np.deg2rad(158.0)
NECK_CUT_Y = -0.13
MOUTH_HALF_WIDTH = 0.0235
EYE_RINGS = 10
EYE_SEGMENTS = 16
V_TOP, V_BOTTOM = 0.995, 0.165
EYE_UV_CENTER = np.array([0.925, 0.078])
"""Centre of the left eyeball's (+X) UV disc."""
EYE_UV_RADIUS = 0.072
U_SHIFT = 0.02
"""How far (in u) :func:`warp_u` moves the face centre off u = 0.5: mirror partners sit at u' != 1 - u."""
RIGHT_EYE_UV_CENTER = np.array([1.0 - 0.925 + 0.02, 0.078 - 0.004])
"""Centre of the right eyeball's UV disc: not the mirror image of the left one's (which would be (0.075, 0.078))."""
RIGHT_EYE_UV_TURN = np.deg2rad(25.0)
"""The right eyeball's disc is the mirror image of the left one's turned by this angle (radians) about its centre."""


def warp_u(s: np.ndarray) -> np.ndarray:
    """Symmetric skin-grid coordinate s in [0, 1] (s = 0.5 face centre, column j at s = j / N_COLS) -> texture u.

    Piecewise linear, u(0) = 0, u(1) = 1, u(0.5) = 0.5 - U_SHIFT: the right half (s < 0.5) is compressed and the
    left half stretched, so the layout is not symmetric about any vertical line.
    """
    s = np.asarray(s, dtype=np.float64)
    return s - U_SHIFT * (1.0 - np.abs(2.0 * s - 1.0))


def unwarp_u(u: np.ndarray) -> np.ndarray:
    """Inverse of :func:`warp_u`: texture u in [0, 1] -> skin-grid coordinate s."""
    u = np.asarray(u, dtype=np.float64)
    return np.where(u <= 0.5 - U_SHIFT, u / (1.0 - 2.0 * U_SHIFT), (u + 2.0 * U_SHIFT) / (1.0 + 2.0 * U_SHIFT))


@dataclass(frozen=True)
class HeadMesh:
    """Rest-pose mesh with its bookkeeping.

    Attributes:
        vertices: (V, 3) float64 rest positions, metres, FLAME frame.
        faces: (F, 3) int64 vertex indices, counter-clockwise seen from outside.
        uvs: (T, 2) float64 texture coordinates in [0, 1] (v = 1 at the top of the image).
        faces_uv: (F, 3) int64 indices into ``uvs``.
        symmetry: (V,) int64 permutation; ``vertices[symmetry] == vertices * MIRROR`` exactly.
        grid_row: (V,) int64 skin grid row (0 = first ring below the crown pole), -1 for the pole, -2 for eyeballs.
        grid_col: (V,) int64 skin grid column (0 = back of the head, N_COLS // 2 = face centre), -1 otherwise.
        eye_id: (V,) int64 0 for skin, 1 for the left eyeball (+X), 2 for the right eyeball.
        lower_lip: (V,) bool, True for the lower copies of the mouth-slit vertices.
        slit_upper: (M,) int64 the upper-lip slit vertices, ordered by column.
        slit_lower: (M,) int64 their lower-lip copies (same positions at rest).
        mouth_row: the grid row that follows the mouth line.
        grid_index: (N_ROWS, N_COLS) int64 vertex index of each skin grid node (upper copy on the slit).
    """

    vertices: np.ndarray
    faces: np.ndarray
    uvs: np.ndarray
    faces_uv: np.ndarray
    symmetry: np.ndarray
    grid_row: np.ndarray
    grid_col: np.ndarray
    eye_id: np.ndarray
    lower_lip: np.ndarray
    slit_upper: np.ndarray
    slit_lower: np.ndarray
    mouth_row: int
    grid_index: np.ndarray


def _directions(alpha: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Unit directions (..., 3) for polar angle ``alpha`` from +Y and azimuth ``phi`` from +Z toward +X."""
    alpha, phi = np.broadcast_arrays(alpha, phi)
    return np.stack([np.sin(alpha) * np.sin(phi), np.cos(alpha), np.sin(alpha) * np.cos(phi)], axis=-1)


def _raycast(dirs: np.ndarray, r_max: float = 0.3, n_coarse: int = 120, n_bisect: int = 24) -> np.ndarray:
    """Distance from HEAD_CENTER along each direction (K, 3) to the outermost skin crossing, (K,) metres."""
    rs = np.linspace(r_max, 0.004, n_coarse)
    pts = HEAD_CENTER + rs[None, :, None] * dirs[:, None, :]  # (K, n, 3)
    inside = head_field(pts) < 0.0
    if not inside.any(axis=1).all():
        raise RuntimeError("synthetic head: a ray missed the head surface (field definition is broken)")
    first = np.argmax(inside, axis=1)
    if (first == 0).any():
        raise RuntimeError("synthetic head: the head surface extends past the ray-casting radius")
    lo, hi = rs[first], rs[first - 1]  # inside, outside
    for _ in range(n_bisect):
        mid = 0.5 * (lo + hi)
        f = head_field(HEAD_CENTER + mid[:, None] * dirs)
        inside_mid = f < 0.0
        lo = np.where(inside_mid, mid, lo)
        hi = np.where(inside_mid, hi, mid)
    return 0.5 * (lo + hi)


def _row_alphas() -> np.ndarray:
    """(N_ROWS,) polar angles of the rows, denser over the face (alpha ~ 60..140 degrees)."""
    fine = np.linspace(ALPHA_FIRST, ALPHA_LAST, 2001)
    density = 1.0 + 2.2 * np.exp(-(((np.rad2deg(fine) - 100.0) / 30.0) ** 2))
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (density[1:] + density[:-1]) * np.diff(fine))])
    cdf /= cdf[-1]
    return np.interp(np.linspace(0.0, 1.0, N_ROWS), cdf, fine)


def _col_phis() -> np.ndarray:
    """(N_COLS,) azimuths: column 0 at the back (-pi), column N_COLS // 2 at the face centre, denser in front."""
    s = 2.0 * np.arange(N_COLS) / N_COLS - 1.0
    return np.pi * (0.42 * s + 0.58 * s**3)


def _mouth_alphas(phis: np.ndarray, mouth_alpha_default: float) -> np.ndarray:
    """(N_COLS,) polar angle per column at which the mouth row must lie (the mouth line on the skin)."""
    out = np.full(phis.shape, mouth_alpha_default)
    near = np.abs(phis) < np.deg2rad(75.0)
    samples = np.deg2rad(np.linspace(100.0, 132.0, 49))
    dirs = _directions(samples[None, :], phis[near][:, None])  # (C, S, 3)
    r = _raycast(dirs.reshape(-1, 3)).reshape(dirs.shape[:2])
    pts = HEAD_CENTER + r[..., None] * dirs
    g = pts[..., 1] - (MOUTH_Y + 2.0 * pts[..., 0] ** 2)  # > 0 above the mouth line, decreasing with alpha
    idx = np.argmax(g < 0.0, axis=1)
    g0, g1 = g[np.arange(len(idx)), idx - 1], g[np.arange(len(idx)), idx]
    frac = g0 / (g0 - g1)
    alpha_line = samples[idx - 1] + frac * (samples[1] - samples[0])
    weight = np.clip((np.deg2rad(85.0) - np.abs(phis[near])) / np.deg2rad(40.0), 0.0, 1.0)
    weight = weight * weight * (3.0 - 2.0 * weight)
    out[near] = weight * alpha_line + (1.0 - weight) * mouth_alpha_default
    return out


def _neck_alphas(phis: np.ndarray) -> np.ndarray:
    """(N_COLS,) polar angle of the last row per column, so that the neck stump is cut level at NECK_CUT_Y."""
    # horizontal distance from the rays' axis to the neck cylinder along azimuth phi (ray/ellipse intersection)
    d = np.stack([np.sin(phis), np.cos(phis)], axis=-1) / NECK_RADII  # (C, 2)
    o = np.array([HEAD_CENTER[0], HEAD_CENTER[2] - NECK_CENTER_Z]) / NECK_RADII
    qa = (d * d).sum(-1)
    qb = 2.0 * (d @ o)
    qc = o @ o - 1.0
    rho = (-qb + np.sqrt(qb * qb - 4.0 * qa * qc)) / (2.0 * qa)
    return np.pi - np.arctan2(rho, HEAD_CENTER[1] - NECK_CUT_Y)


def _eyeball(center: np.ndarray, mirrored: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """UV sphere for one eyeball (front pole = pupil) with a disc UV layout.

    Returns:
        vertices (E, 3), faces (Fe, 3) local indices, uvs (Te, 2), faces_uv (Fe, 3) local indices.
    """
    theta = np.pi * np.arange(1, EYE_RINGS + 1) / (EYE_RINGS + 1)
    psi = 2.0 * np.pi * np.arange(EYE_SEGMENTS) / EYE_SEGMENTS
    th, ps = np.meshgrid(theta, psi, indexing="ij")  # (K, L)
    sx = -1.0 if mirrored else 1.0
    ring = np.stack([sx * np.sin(th) * np.cos(ps), np.sin(th) * np.sin(ps), np.cos(th)], axis=-1).reshape(-1, 3)
    unit = np.concatenate([[[0.0, 0.0, 1.0]], ring, [[0.0, 0.0, -1.0]]])
    verts = center + EYE_RADIUS * unit
    K, L = EYE_RINGS, EYE_SEGMENTS
    ring_idx = 1 + np.arange(K * L).reshape(K, L)
    back = 1 + K * L
    nxt = np.roll(ring_idx, -1, axis=1)
    faces = [np.stack([np.zeros(L, int), ring_idx[0], nxt[0]], axis=1)]
    a, b, c, d = ring_idx[:-1], ring_idx[1:], nxt[:-1], nxt[1:]
    faces.append(np.stack([a, b, c], axis=-1).reshape(-1, 3))
    faces.append(np.stack([c, b, d], axis=-1).reshape(-1, 3))
    faces.append(np.stack([np.full(L, back), nxt[-1], ring_idx[-1]], axis=1))
    faces = np.concatenate(faces)
    # UVs: disc, radius proportional to the angle from the pupil; the back pole gets one uv per fan triangle
    rho = np.concatenate([[0.0], (th / np.pi).reshape(-1)])
    ang = np.concatenate([[0.0], ps.reshape(-1)])
    uv_dir = np.stack([np.cos(ang), np.sin(ang)], axis=-1)
    uvs = EYE_UV_CENTER + EYE_UV_RADIUS * rho[:, None] * uv_dir
    mid = psi + np.pi / EYE_SEGMENTS
    back_uv = EYE_UV_CENTER + EYE_UV_RADIUS * np.stack([np.cos(mid), np.sin(mid)], axis=-1)
    uvs = np.concatenate([uvs, back_uv])
    faces_uv = faces.copy()
    faces_uv[-L:, 0] = 1 + K * L + np.arange(L)
    if mirrored:  # mirror the disc, then turn it and move it: the right island is not the left one's mirror image
        c, s = np.cos(RIGHT_EYE_UV_TURN), np.sin(RIGHT_EYE_UV_TURN)
        rel = (uvs - EYE_UV_CENTER) * np.array([-1.0, 1.0])
        uvs = RIGHT_EYE_UV_CENTER + rel @ np.array([[c, s], [-s, c]])
        faces = faces[:, [0, 2, 1]]
        faces_uv = faces_uv[:, [0, 2, 1]]
    return verts, faces, uvs, faces_uv


def _split_quads(a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Triangulate (R-1, C) grid quads (a top-left, b bottom-left, c top-right, d bottom-right) into (2·(R-1)·C, 3).

    The diagonal is b-c on the back/right half (columns < C/2) and a-d on the other, so the triangulation is its
    own mirror image.
    """
    left = (np.arange(a.shape[1]) < a.shape[1] // 2)[None, :]
    t1 = np.where(left[..., None], np.stack([a, b, c], -1), np.stack([a, b, d], -1))
    t2 = np.where(left[..., None], np.stack([c, b, d], -1), np.stack([a, d, c], -1))
    return np.concatenate([t1.reshape(-1, 3), t2.reshape(-1, 3)])


def build_mesh() -> HeadMesh:
    """Build the rest-pose head mesh (deterministic, no randomness)."""
    base_alphas = _row_alphas()
    phis = _col_phis()
    mouth_row = int(np.argmin(np.abs(base_alphas - np.deg2rad(116.0))))
    line = _mouth_alphas(phis, base_alphas[mouth_row])
    # per-column piecewise-linear remap of the rows so that row ``mouth_row`` lies on the mouth line
    a0, am = base_alphas[0], base_alphas[mouth_row]
    a1 = _neck_alphas(phis)[None, :]
    rows = np.arange(N_ROWS)[:, None]
    s_up = (base_alphas[:, None] - a0) / (am - a0)
    s_dn = (base_alphas[:, None] - am) / (base_alphas[-1] - am)
    alphas = np.where(rows <= mouth_row, a0 + s_up * (line[None, :] - a0), line[None, :] + s_dn * (a1 - line[None, :]))
    dirs = _directions(alphas, phis[None, :])  # (R, C, 3)
    r = _raycast(dirs.reshape(-1, 3)).reshape(N_ROWS, N_COLS)
    pole_r = _raycast(np.array([[0.0, 1.0, 0.0]]))[0]
    grid = HEAD_CENTER + r[..., None] * dirs  # (R, C, 3)

    # mouth slit: vertices on the mouth row strictly inside the mouth width are duplicated
    in_slit = np.abs(grid[mouth_row, :, 0]) < MOUTH_HALF_WIDTH
    in_slit &= np.abs(phis) < np.pi / 2
    slit_cols = np.nonzero(in_slit)[0]
    # lips roll inward at the slit (deepest at the centre, nothing at the corners)
    depth = 0.0022 * (1.0 - (grid[mouth_row, slit_cols, 0] / MOUTH_HALF_WIDTH) ** 2)
    grid[mouth_row, slit_cols] -= depth[:, None] * dirs[mouth_row, slit_cols]

    n_grid = N_ROWS * N_COLS
    grid_index = np.arange(n_grid).reshape(N_ROWS, N_COLS)
    pole = n_grid
    slit_lower = pole + 1 + np.arange(len(slit_cols))
    skin_verts = np.concatenate([grid.reshape(-1, 3), [HEAD_CENTER + pole_r * np.array([0, 1.0, 0])], grid[mouth_row, slit_cols]])
    n_skin = len(skin_verts)

    # faces of the grid (wrapping around in columns); quads just below the mouth row use the lower copies
    below = grid_index.copy()
    below[mouth_row, slit_cols] = slit_lower
    j0 = np.arange(N_COLS)
    j1 = (j0 + 1) % N_COLS
    top_rows = grid_index[:-1]  # (R-1, C) upper corners
    bot_rows = grid_index[1:]
    top_rows = np.where(np.arange(N_ROWS - 1)[:, None] == mouth_row, below[:-1], top_rows)
    a, b = top_rows[:, j0], bot_rows[:, j0]
    c, d = top_rows[:, j1], bot_rows[:, j1]
    quads_f = _split_quads(a, b, c, d)
    pole_f = np.stack([np.full(N_COLS, pole), grid_index[0, j0], grid_index[0, j1]], axis=1)
    skin_faces = np.concatenate([pole_f, quads_f])

    # skin UVs: a (R, C + 1) grid (column C repeats column 0 at u = 1) plus one pole uv per fan triangle
    us = warp_u(np.arange(N_COLS + 1) / N_COLS)
    vs = V_TOP - (np.arange(N_ROWS) + 1) / N_ROWS * (V_TOP - V_BOTTOM)
    uv_grid = np.stack(np.meshgrid(us, vs, indexing="xy"), axis=-1).reshape(-1, 2)  # (R*(C+1), 2)
    uv_index = np.arange(N_ROWS * (N_COLS + 1)).reshape(N_ROWS, N_COLS + 1)
    pole_uv = np.stack([warp_u((j0 + 0.5) / N_COLS), np.full(N_COLS, V_TOP)], axis=1)
    pole_uv_idx = len(uv_grid) + j0
    ju = j0 + 1  # uv column of the right-hand side of each quad (N_COLS for the seam quad)
    ua, ub = uv_index[:-1, j0], uv_index[1:, j0]
    uc, ud = uv_index[:-1, ju], uv_index[1:, ju]
    quads_uv = _split_quads(ua, ub, uc, ud)
    pole_fuv = np.stack([pole_uv_idx, uv_index[0, j0], uv_index[0, ju]], axis=1)
    skin_uvs = np.concatenate([uv_grid, pole_uv])
    skin_faces_uv = np.concatenate([pole_fuv, quads_uv])

    # eyeballs
    verts = [skin_verts]
    faces = [skin_faces]
    uvs = [skin_uvs]
    faces_uv = [skin_faces_uv]
    n_eye = 0
    for k, mirrored in ((0, False), (1, True)):
        ev, ef, eu, efu = _eyeball(EYE_CENTERS[k], mirrored)
        offset_v = sum(len(x) for x in verts)
        offset_t = sum(len(x) for x in uvs)
        verts.append(ev)
        faces.append(ef + offset_v)
        uvs.append(eu)
        faces_uv.append(efu + offset_t)
        n_eye = len(ev)
    vertices = np.concatenate(verts)
    V = len(vertices)

    # bookkeeping
    grid_row = np.full(V, -2, dtype=np.int64)
    grid_col = np.full(V, -1, dtype=np.int64)
    grid_row[:n_grid] = np.repeat(np.arange(N_ROWS), N_COLS)
    grid_col[:n_grid] = np.tile(np.arange(N_COLS), N_ROWS)
    grid_row[pole] = -1
    grid_row[slit_lower] = mouth_row
    grid_col[slit_lower] = slit_cols
    eye_id = np.zeros(V, dtype=np.int64)
    eye_id[n_skin : n_skin + n_eye] = 1
    eye_id[n_skin + n_eye :] = 2
    lower_lip = np.zeros(V, dtype=bool)
    lower_lip[slit_lower] = True

    # symmetry permutation
    sym = np.empty(V, dtype=np.int64)
    mirror_col = (N_COLS - np.arange(N_COLS)) % N_COLS
    sym[:n_grid] = grid_index[:, mirror_col].reshape(-1)
    sym[pole] = pole
    col_to_lower = {int(c): int(i) for c, i in zip(slit_cols, slit_lower)}
    if sorted(col_to_lower) != sorted(int(mirror_col[c]) for c in slit_cols):
        raise RuntimeError("synthetic head: mouth slit is not symmetric")
    sym[slit_lower] = [col_to_lower[int(mirror_col[c])] for c in slit_cols]
    left = n_skin + np.arange(n_eye)
    sym[left] = left + n_eye
    sym[left + n_eye] = left
    if not np.array_equal(sym[sym], np.arange(V)):
        raise RuntimeError("synthetic head: symmetry map is not an involution")
    vertices = 0.5 * (vertices + vertices[sym] * MIRROR)  # exact mirror symmetry
    return HeadMesh(
        vertices=vertices,
        faces=np.concatenate(faces).astype(np.int64),
        uvs=np.concatenate(uvs),
        faces_uv=np.concatenate(faces_uv).astype(np.int64),
        symmetry=sym,
        grid_row=grid_row,
        grid_col=grid_col,
        eye_id=eye_id,
        lower_lip=lower_lip,
        slit_upper=grid_index[mouth_row, slit_cols].astype(np.int64),
        slit_lower=slit_lower.astype(np.int64),
        mouth_row=mouth_row,
        grid_index=grid_index,
    )
