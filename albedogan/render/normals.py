"""Face and vertex normals of batched triangle meshes (one shared topology)."""

from __future__ import annotations

import torch

from albedogan.utils.shapes import assert_shape

__all__ = ["face_normals", "vertex_normals"]


def _face_cross(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """(N, V, 3), (F, 3) -> (N, F, 3) unnormalised ``(v1 - v0) x (v2 - v0)`` (length = twice the face area)."""
    assert_shape(vertices, [None, None, 3], "vertices")
    assert_shape(faces, [None, 3], "faces")
    v0, v1, v2 = (vertices[:, faces[:, i]] for i in range(3))  # each (N, F, 3)
    return torch.cross(v1 - v0, v2 - v0, dim=-1)


def face_normals(vertices: torch.Tensor, faces: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Unit face normals, right-handed: counter-clockwise faces (seen from outside) point outward.

    Args:
        vertices: (N, V, 3) float positions in any right-handed frame (e.g. FLAME metres).
        faces: (F, 3) long vertex indices.
        eps: guard for degenerate faces (their normal is ~0).

    Returns:
        (N, F, 3) same dtype, unit length (0 for degenerate faces).
    """
    return torch.nn.functional.normalize(_face_cross(vertices, faces), dim=-1, eps=eps)


def vertex_normals(vertices: torch.Tensor, faces: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Area-weighted unit vertex normals (sum of incident face cross products, then normalised).

    Args:
        vertices: (N, V, 3) float positions, right-handed frame.
        faces: (F, 3) long vertex indices.
        eps: guard for isolated vertices (their normal is 0).

    Returns:
        (N, V, 3) same dtype/device as ``vertices``.
    """
    cross = _face_cross(vertices, faces)  # (N, F, 3), weight = 2 * area
    acc = vertices.new_zeros(vertices.shape)
    for i in range(3):  # 3 corners, not a loop over vertices
        acc = acc.index_add(1, faces[:, i], cross)
    return torch.nn.functional.normalize(acc, dim=-1, eps=eps)
