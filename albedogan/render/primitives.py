"""Small UV-mapped meshes for tests, benchmarks and demos (FLAME frame: metres, +Y up, +Z toward the camera)."""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

__all__ = ["UVMesh", "uv_grid", "uv_sphere"]


class UVMesh(NamedTuple):
    """A mesh with a UV layout.

    Attributes:
        verts: (V, 3) float positions.
        faces: (F, 3) long, counter-clockwise seen from outside (normals point outward / toward +Z for grids).
        verts_uvs: (T, 2) float UVs in [0, 1] (u right, v up).
        faces_uvs: (F, 3) long indices into ``verts_uvs``.
    """

    verts: torch.Tensor
    faces: torch.Tensor
    verts_uvs: torch.Tensor
    faces_uvs: torch.Tensor


def uv_sphere(n_lat: int = 16, n_lon: int = 32, radius: float = 1.0, dtype: torch.dtype = torch.float32) -> UVMesh:
    """Latitude-longitude sphere whose UV layout is left/right symmetric about u = 0.5 (FLAME's is not).

    Polar angle ``theta = pi (1 - v)`` from +Y; azimuth ``phi = 2 pi (u - 0.5)`` from +Z toward +X, so u = 0.5 is
    the front (+Z) meridian, mirroring u -> 1 - u mirrors x -> -x, and the UV seam is at the back.
    V = 2 + (n_lat - 1) n_lon positions, T = (n_lat + 1)(n_lon + 1) UVs, F = 2 n_lon (n_lat - 1) faces.

    Args:
        n_lat: latitude bands (>= 2).
        n_lon: longitude segments (>= 3).
        radius: metres.
        dtype: float dtype of positions and UVs.
    """
    if n_lat < 2 or n_lon < 3:
        raise ValueError(f"uv_sphere needs n_lat >= 2 and n_lon >= 3, got {n_lat}, {n_lon}")
    i = torch.arange(n_lat + 1, dtype=torch.float64)[:, None]  # (n_lat+1, 1) latitude index
    j = torch.arange(n_lon + 1, dtype=torch.float64)[None, :]  # (1, n_lon+1) longitude index
    u = (j / n_lon).expand(n_lat + 1, n_lon + 1)
    v = (1 - i / n_lat).expand(n_lat + 1, n_lon + 1)
    verts_uvs = torch.stack([u, v], -1).reshape(-1, 2)  # (T, 2)

    def uv_index(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a * (n_lon + 1) + b

    def pos_index(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Grid (lat, lon) -> position index: 0 north pole, last = south pole, ring vertices wrap in longitude."""
        ring = 1 + (a - 1) * n_lon + (b % n_lon)
        south = torch.full_like(ring, 1 + (n_lat - 1) * n_lon)
        return torch.where(a == 0, torch.zeros_like(ring), torch.where(a == n_lat, south, ring))

    theta = math.pi * torch.arange(1, n_lat, dtype=torch.float64)[:, None] / n_lat  # (n_lat-1, 1)
    phi = 2 * math.pi * (torch.arange(n_lon, dtype=torch.float64)[None, :] / n_lon - 0.5)  # (1, n_lon)
    ring = torch.stack(
        [torch.sin(theta) * torch.sin(phi), torch.cos(theta).expand_as(phi * theta), torch.sin(theta) * torch.cos(phi)],
        -1,
    ).reshape(-1, 3)
    verts = torch.cat([ring.new_tensor([[0.0, 1.0, 0.0]]), ring, ring.new_tensor([[0.0, -1.0, 0.0]])]) * radius

    a = torch.arange(n_lat)[:, None].expand(n_lat, n_lon).reshape(-1)
    b = torch.arange(n_lon)[None, :].expand(n_lat, n_lon).reshape(-1)
    # quad corners (a,b) top-left, (a+1,b) bottom-left, (a+1,b+1) bottom-right, (a,b+1) top-right (seen from outside)
    c00, c10, c11, c01 = (a, b), (a + 1, b), (a + 1, b + 1), (a, b + 1)
    tri_a = [c00, c10, c11]  # lower-left triangle; degenerate at the south pole (c10 = c11) -> dropped
    tri_b = [c00, c11, c01]  # upper-right triangle; degenerate at the north pole (c00 = c01) -> dropped
    keep_a = a < n_lat - 1
    keep_b = a > 0
    faces = torch.cat(
        [
            torch.stack([pos_index(*c) for c in tri_a], -1)[keep_a],
            torch.stack([pos_index(*c) for c in tri_b], -1)[keep_b],
        ]
    )
    faces_uvs = torch.cat(
        [
            torch.stack([uv_index(*c) for c in tri_a], -1)[keep_a],
            torch.stack([uv_index(*c) for c in tri_b], -1)[keep_b],
        ]
    )
    return UVMesh(verts.to(dtype), faces, verts_uvs.to(dtype), faces_uvs)


def uv_grid(n: int = 4, size: float = 2.0, dtype: torch.dtype = torch.float32) -> UVMesh:
    """Flat (n x n)-quad grid in the z = 0 plane, facing +Z, centred at the origin, UVs covering [0, 1]^2.

    Vertex (row r, col c) is at ``x = size (c / n - 0.5)``, ``y = size (0.5 - r / n)`` with UV ``(c / n, 1 - r / n)``;
    positions and UVs share indices (V = T = (n + 1)^2, F = 2 n^2).
    """
    r = torch.arange(n + 1, dtype=torch.float64)[:, None].expand(n + 1, n + 1)
    c = torch.arange(n + 1, dtype=torch.float64)[None, :].expand(n + 1, n + 1)
    uvs = torch.stack([c / n, 1 - r / n], -1).reshape(-1, 2)
    verts = torch.cat([(uvs - 0.5) * size, torch.zeros_like(uvs[:, :1])], -1)
    a = torch.arange(n)[:, None].expand(n, n).reshape(-1)
    b = torch.arange(n)[None, :].expand(n, n).reshape(-1)
    idx = lambda rr, cc: rr * (n + 1) + cc  # noqa: E731
    # counter-clockwise seen from +Z (x right, y up): (top-left, bottom-left, bottom-right), (top-left, bottom-right,
    # top-right)
    lower = torch.stack([idx(a, b), idx(a + 1, b), idx(a + 1, b + 1)], -1)
    upper = torch.stack([idx(a, b), idx(a + 1, b + 1), idx(a, b + 1)], -1)
    faces = torch.cat([lower, upper])
    return UVMesh(verts.to(dtype), faces, uvs.to(dtype), faces.clone())
