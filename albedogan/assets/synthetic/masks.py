"""UV-space region masks of the synthetic head (``uv_face_mask.png`` / ``uv_face_eye_mask.png`` content).

The skin UVs form a tensor-product grid (u by column through ``warp_u``, v by row), so a texel is mapped back to fractional grid
coordinates and a per-vertex region value is interpolated bilinearly; the eyeballs are discs in their own corners.
"""

from __future__ import annotations

import numpy as np

from albedogan.assets.synthetic.field import EYE_CENTERS, EYE_RADIUS
from albedogan.assets.synthetic.mesh import (
    EYE_UV_CENTER,
    EYE_UV_RADIUS,
    N_COLS,
    N_ROWS,
    RIGHT_EYE_UV_CENTER,
    V_BOTTOM,
    V_TOP,
    HeadMesh,
    unwarp_u,
)

__all__ = ["MASK_SIZE", "build_masks", "face_region"]

MASK_SIZE = 256


def face_region(mesh: HeadMesh, normals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-vertex region flags: (V,) float face skin (forehead to chin, ear to ear, front) and (V,) eye-socket skin."""
    x, y, z = mesh.vertices.T
    face = (z > 0.005) & (y < 0.078) & (np.abs(x) < 0.064) & ((y > -0.07) | (normals[:, 1] > -0.6)) & (y > -0.1)
    socket = np.zeros(len(x), dtype=bool)
    for c in EYE_CENTERS:
        socket |= np.linalg.norm(mesh.vertices - c, axis=-1) < EYE_RADIUS + 0.0035
    skin = mesh.eye_id == 0
    return (face & skin & ~socket).astype(np.float64), (socket & skin).astype(np.float64)


def _grid_sample(values: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Bilinear lookup of per-grid-vertex ``values`` (N_ROWS, N_COLS) at UV positions (H, W); 0 off the grid."""
    col = unwarp_u(u) * N_COLS
    row = (V_TOP - v) / (V_TOP - V_BOTTOM) * N_ROWS - 1.0
    on = (row >= 0.0) & (row <= N_ROWS - 1)
    r0 = np.clip(np.floor(row).astype(np.int64), 0, N_ROWS - 2)
    c0 = np.floor(col).astype(np.int64) % N_COLS
    fr, fc = np.clip(row - r0, 0.0, 1.0), col - np.floor(col)
    c1 = (c0 + 1) % N_COLS
    top = values[r0, c0] * (1 - fc) + values[r0, c1] * fc
    bot = values[r0 + 1, c0] * (1 - fc) + values[r0 + 1, c1] * fc
    return np.where(on, top * (1 - fr) + bot * fr, 0.0)


def build_masks(mesh: HeadMesh, normals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(face, face_eye) masks: (256, 256) float64 in {0, 1}, row 0 = top of the image (v = 1)."""
    face, socket = face_region(mesh, normals)
    px = (np.arange(MASK_SIZE) + 0.5) / MASK_SIZE
    u, v = np.meshgrid(px, 1.0 - px, indexing="xy")  # (H, W)
    face_uv = _grid_sample(face[mesh.grid_index], u, v) > 0.5
    socket_uv = _grid_sample(np.maximum(socket, face)[mesh.grid_index], u, v) > 0.5
    eyes = np.zeros_like(face_uv)
    for cu, cv in (EYE_UV_CENTER, RIGHT_EYE_UV_CENTER):
        eyes |= np.hypot(u - cu, v - cv) < EYE_UV_RADIUS * 0.55
    return face_uv.astype(np.float64), (socket_uv | eyes | face_uv).astype(np.float64)
