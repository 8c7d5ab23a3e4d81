"""DECA's detail layer: a UV displacement map per face -> detail normals and a dense detail mesh (REFERENCE §4).

:class:`DecaDetail` bundles ``E_detail`` / ``D_detail`` (:mod:`albedogan.nets.deca_detail`) with the head's UV
layout at the displacement resolution S (256). It follows the official formulas:

* displacement: ``z = D_detail(cat[jaw_pose (3), expression (50), E_detail(crop) (128)]) * face_eye_mask``
  (the mask resized to S x S with nearest sampling, as DECA's ``F.interpolate`` default), plus an optional fixed
  displacement map (DECA's ``fixed_displacement_256.npy``; None = 0);
* UV maps of the coarse mesh: ``P = world2uv(vertices)``, ``N = world2uv(vertex normals)`` (interpolated, not
  renormalised, as DECA);
* detail vertices ``P + z N + fixed N`` on the dense S x S grid; detail normals = vertex normals of the dense grid
  triangulated as DECA's ``generate_triangles(S, S)`` (margins 2 in x, 5 in y), used inside the mask, the coarse
  normals ``N`` outside;
* the dense detail mesh (``mesh_detail.obj``): the grid vertices inside the mask and the UV layout, the grid
  triangles whose three vertices are kept, coloured by the albedo at their texels.
"""

from __future__ import annotations

import os
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from albedogan.assets.obj import write_obj
from albedogan.nets.deca_detail import DetailDecoder, DetailEncoder
from albedogan.render.normals import vertex_normals
from albedogan.render.uv import UVSpace
from albedogan.utils.shapes import assert_shape

__all__ = ["DecaDetail", "dense_grid_faces"]


def dense_grid_faces(height: int, width: int, margin_x: int = 2, margin_y: int = 5) -> torch.Tensor:
    """DECA's dense UV-grid triangulation: two triangles per grid cell away from the margins.

    Vertex ``y * width + x`` is texel (row y, column x). Each cell (x, y) gives ``[a, c, b]`` and ``[b, c, d]`` with
    a = (y, x), b = (y, x + 1), c = (y + 1, x), d = (y + 1, x + 1) — DECA's triangles with its final column swap.
    Ordered by x then y, as DECA's loops.

    Returns:
        (2 (W - 1 - 2 mx)(H - 1 - 2 my), 3) long.
    """
    xs = torch.arange(margin_x, width - 1 - margin_x)
    ys = torch.arange(margin_y, height - 1 - margin_y)
    x, y = torch.meshgrid(xs, ys, indexing="ij")  # x outer, y inner
    a, b = y * width + x, y * width + x + 1
    c, d = (y + 1) * width + x, (y + 1) * width + x + 1
    tri = torch.stack([torch.stack([a, c, b], -1), torch.stack([b, c, d], -1)], dim=2)  # (X, Y, 2, 3)
    return tri.reshape(-1, 3)


class DecaDetail(nn.Module):
    """E_detail + D_detail + the head's UV layout at the displacement resolution (see the module docstring).

    Args:
        encoder: :class:`~albedogan.nets.deca_detail.DetailEncoder` (224² crops -> 128-d code).
        decoder: :class:`~albedogan.nets.deca_detail.DetailDecoder` (181 -> (N, 1, S, S)).
        head: the head model (faces, UV layout, ``uv_face_eye_mask``).
        fixed_displacement: optional (S, S) float map added along the normals (DECA's fixed displacement).
    """

    def __init__(self, encoder: DetailEncoder, decoder: DetailDecoder, head: nn.Module,
                 fixed_displacement: Optional[torch.Tensor] = None) -> None:
        super().__init__()
        self.encoder = encoder.eval().requires_grad_(False)
        self.decoder = decoder.eval().requires_grad_(False)
        size = decoder.output_size
        self.uv_space = UVSpace(head.faces, head.verts_uvs, head.faces_uvs, size)
        mask = F.interpolate(head.uv_face_eye_mask.detach().float().reshape(1, 1, *head.uv_face_eye_mask.shape[-2:]),
                             size=(size, size))  # nearest, as DECA
        self.register_buffer("mask", mask, persistent=False)  # (1, 1, S, S)
        fixed = torch.zeros(size, size) if fixed_displacement is None else torch.as_tensor(fixed_displacement).float()
        assert_shape(fixed, [size, size], "fixed_displacement")
        self.register_buffer("fixed", fixed[None, None], persistent=False)
        self.register_buffer("dense_faces", dense_grid_faces(size, size), persistent=False)

    def train(self, mode: bool = True) -> "DecaDetail":
        """Always eval mode (inference only)."""
        return super().train(False)

    @property
    def resolution(self) -> int:
        return int(self.mask.shape[-1])

    @torch.no_grad()
    def displacement(self, crops: torch.Tensor, expression: torch.Tensor, jaw_pose: torch.Tensor) -> torch.Tensor:
        """(N, 3, 224, 224) RGB [0, 1] crops (the coarse encoder's), (N, 50) expression, (N, 3) jaw axis-angle ->
        (N, 1, S, S) masked displacement (metres)."""
        code = self.encoder(crops)  # (N, 128)
        latent = torch.cat([jaw_pose, expression, code], dim=1)  # DECA's order: jaw pose, expression, detail code
        return self.decoder(latent) * self.mask.to(latent.dtype)

    def uv_geometry(self, world_vertices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, V, 3) coarse vertices -> position and normal UV maps, each (N, 3, S, S) (0 outside the layout)."""
        faces = self.uv_space.faces
        positions = self.uv_space.attribute_map(world_vertices)
        normals = self.uv_space.attribute_map(vertex_normals(world_vertices, faces))
        return positions, normals

    def detail_vertices(self, world_vertices: torch.Tensor, displacement: torch.Tensor) -> torch.Tensor:
        """(N, V, 3), (N, 1, S, S) -> (N, 3, S, S) dense detail vertices ``P + z N + fixed N`` (metres)."""
        assert_shape(displacement, [world_vertices.shape[0], 1, self.resolution, self.resolution], "displacement")
        positions, normals = self.uv_geometry(world_vertices)
        z = displacement * self.mask.to(displacement.dtype)
        return positions + z * normals + self.fixed.to(z.dtype) * normals

    def detail_normals(self, world_vertices: torch.Tensor, displacement: torch.Tensor) -> torch.Tensor:
        """DECA's ``displacement2normal``: (N, 3, S, S) unit normals of the dense detail surface inside the mask,
        the coarse (interpolated) normals outside."""
        n, s = world_vertices.shape[0], self.resolution
        dense = self.detail_vertices(world_vertices, displacement).permute(0, 2, 3, 1).reshape(n, s * s, 3)
        # DECA normalises with eps 1e-6 (tiny dense triangles: a few normals stay shorter than 1, as in the original)
        normals = vertex_normals(dense, self.dense_faces, eps=1e-6).reshape(n, s, s, 3).permute(0, 3, 1, 2)
        _, coarse = self.uv_geometry(world_vertices)
        mask = self.mask.to(normals.dtype)
        return normals * mask + coarse * (1 - mask)

    def dense_mesh(self, world_vertices: torch.Tensor, displacement: torch.Tensor, index: int = 0
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The detail mesh of face ``index``: (K, 3) vertices, (Fd, 3) long faces into them, (K,) long texel ids
        (row-major in the S x S map) of the kept vertices (mask and UV coverage both > 0)."""
        s = self.resolution
        dense = self.detail_vertices(world_vertices[index:index + 1], displacement[index:index + 1])
        dense = dense[0].permute(1, 2, 0).reshape(s * s, 3)
        keep = ((self.mask[0, 0] > 0) & (self.uv_space.coverage[0, 0] > 0)).reshape(-1)  # (S*S,)
        texels = keep.nonzero()[:, 0]
        remap = torch.full((s * s,), -1, dtype=torch.long, device=keep.device)
        remap[texels] = torch.arange(texels.numel(), device=keep.device)
        faces = remap[self.dense_faces.to(keep.device)]
        faces = faces[(faces >= 0).all(dim=1)]
        return dense[texels], faces, texels

    def export_obj(self, path: str | os.PathLike, world_vertices: torch.Tensor, displacement: torch.Tensor,
                   albedo: Optional[torch.Tensor] = None, index: int = 0) -> list:
        """Write ``mesh_detail.obj`` for face ``index``: the dense detail mesh with per-vertex colours from
        ``albedo`` ((N, 3, R, R) [0, 1] UV map, area-resampled to S x S) when given."""
        verts, faces, texels = self.dense_mesh(world_vertices, displacement, index)
        colours = None
        if albedo is not None:
            uv = F.interpolate(albedo[index:index + 1].float(), size=(self.resolution, self.resolution), mode="area")
            colours = uv[0].reshape(3, -1)[:, texels].T.clamp(0, 1).cpu().numpy()
        faces_np = faces.cpu().numpy()
        return [write_obj(path, verts.float().cpu().numpy(), faces_np.astype(np.int64), vertex_colors=colours)]
