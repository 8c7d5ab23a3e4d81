"""The one Wavefront OBJ writer: positions (optionally with MeshLab vertex colours), UVs and triangles.

Used by the exporters (``albedogan.inference.export.export_obj`` adds the material and texture files), NoW
predictions (``albedogan.eval.now``) and the synthetic head's ``head_template.obj``. Indices are written 1-based;
UVs with 9 significant digits (float32 UVs round-trip exactly), positions with 6 decimals (micrometres).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import numpy as np

from albedogan.utils.io import atomic_write_text

__all__ = ["check_mesh", "write_obj"]


def check_mesh(
    vertices: np.ndarray, faces: np.ndarray, verts_uvs: Optional[np.ndarray], faces_uvs: Optional[np.ndarray]
) -> None:
    """Raise ``ValueError`` naming the array unless (V, 3) vertices, (F, 3) faces and optional (T, 2) / (F, 3) UVs
    are consistent (index ranges included)."""
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise ValueError(f"vertices: expected (V, 3), got {vertices.shape}")
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"faces: expected (F, 3), got {faces.shape}")
    if faces.size and (faces.min() < 0 or faces.max() >= len(vertices)):
        raise ValueError(f"faces index vertices outside [0, {len(vertices)})")
    if (verts_uvs is None) != (faces_uvs is None):
        raise ValueError("verts_uvs and faces_uvs must be given together")
    if faces_uvs is not None:
        if faces_uvs.shape != faces.shape:
            raise ValueError(f"faces_uvs: expected {faces.shape}, got {faces_uvs.shape}")
        if faces_uvs.size and (faces_uvs.min() < 0 or faces_uvs.max() >= len(verts_uvs)):
            raise ValueError(f"faces_uvs index UVs outside [0, {len(verts_uvs)})")


def write_obj(
    path: str | os.PathLike,
    vertices: np.ndarray,
    faces: np.ndarray,
    verts_uvs: Optional[np.ndarray] = None,
    faces_uvs: Optional[np.ndarray] = None,
    vertex_colors: Optional[np.ndarray] = None,
    mtllib: Optional[str] = None,
    material: Optional[str] = None,
    comment: Optional[str] = None,
) -> Path:
    """Write an OBJ atomically.

    Args:
        path: the ``.obj`` file.
        vertices: (V, 3) float positions; faces: (F, 3) int 0-based vertex indices.
        verts_uvs: (T, 2) float UVs; faces_uvs: (F, 3) int UV indices (``f v/vt`` records).
        vertex_colors: (V, 3) RGB in [0, 1] written as ``v x y z r g b`` (MeshLab extension).
        mtllib: material library file name (``mtllib`` record); material: ``usemtl`` name.
        comment: first line ``# comment``.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    vt = None if verts_uvs is None else np.asarray(verts_uvs, dtype=np.float64)
    ft = None if faces_uvs is None else np.asarray(faces_uvs, dtype=np.int64)
    check_mesh(v, f, vt, ft)
    lines = [] if comment is None else [f"# {comment}"]
    if mtllib is not None:
        lines.append(f"mtllib {mtllib}")
    if vertex_colors is not None:
        c = np.asarray(vertex_colors, dtype=np.float64)
        if c.shape != v.shape:
            raise ValueError(f"vertex_colors: expected {v.shape}, got {c.shape}")
        lines += [f"v {a:.6f} {b:.6f} {d:.6f} {r:.4f} {g:.4f} {bl:.4f}" for (a, b, d), (r, g, bl) in zip(v, c)]
    else:
        lines += [f"v {a:.6f} {b:.6f} {d:.6f}" for a, b, d in v]
    if vt is not None:
        lines += [f"vt {a:.9g} {b:.9g}" for a, b in vt]
    if material is not None:
        lines.append(f"usemtl {material}")
    if ft is not None:
        lines += [f"f {a + 1}/{ta + 1} {b + 1}/{tb + 1} {c + 1}/{tc + 1}" for (a, b, c), (ta, tb, tc) in zip(f, ft)]
    else:
        lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in f]
    atomic_write_text(path, "\n".join(lines) + "\n")
    return Path(path)
