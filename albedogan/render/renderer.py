"""``FaceRenderer``: rasterise a textured, SH-lit mesh given in image NDC (Lambertian: image = albedo x shading).

As pytorch3d's ``MeshRenderer``, a renderer is a rasteriser followed by a shader: :class:`Rasterizer` picks the
nearest face per pixel once per batch (pytorch3d's kernel or the CPU bbox kernel: not traceable by ``torch.compile``)
and :class:`SHTextureShader` turns those fragments into colour, mask, normals, UVs and shading with plain tensor ops
(the part ``model.compile`` compiles). The whole render is an fp32 island under ``bf16-mixed``
(:func:`~albedogan.utils.precision.fp32_island`).
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch

from albedogan.render.cameras import Camera
from albedogan.render.mip import sample_texture_mip
from albedogan.render.normals import face_normals, vertex_normals
from albedogan.render.rasterizer import Rasterizer, interpolate_nearest
from albedogan.render.sh_lighting import sh_shading
from albedogan.render.uv import ndc_to_view, sample_texture
from albedogan.structures import RenderOutput
from albedogan.utils.precision import fp32_island
from albedogan.utils.shapes import assert_shape

__all__ = ["FaceRenderer", "SHTextureShader", "inside_pixels"]


def inside_pixels(vertices: torch.Tensor, faces: torch.Tensor, pix_to_face: torch.Tensor) -> torch.Tensor:
    """Pixels where the camera sees the inside of the mesh: the nearest triangle faces away from the camera.

    Args:
        vertices: (N, V, 3) image-NDC vertices with depth (x right, y down, depth away from the camera).
        faces: (F, 3) long, counter-clockwise seen from outside (outward normals).
        pix_to_face: (N, H, W) long nearest face per pixel, -1 where empty.

    Returns:
        (N, 1, H, W) bool: covered pixels whose triangle's outward normal points away from the camera.
    """
    toward_camera = face_normals(ndc_to_view(vertices.detach()), faces)[..., 2]  # (N, F), view frame z to camera
    covered = pix_to_face >= 0
    facing = torch.gather(toward_camera, 1, pix_to_face.clamp_min(0).flatten(1)).view_as(pix_to_face)
    return (covered & (facing < 0))[:, None]


class SHTextureShader(torch.nn.Module):
    """Fragments -> Lambertian image: UV-textured albedo x SH shading of the interpolated normals.

    Pure tensor ops on one rasterisation (no data-dependent Python except the mip level count), so ``torch.compile``
    can fuse it. Empty pixels (``pix_to_face < 0``) get 0 everywhere (plus the background in ``image``).

    Args:
        texture_filter: ``"bilinear"`` or ``"mip"`` (see :class:`FaceRenderer`).
    """

    def __init__(self, texture_filter: str = "bilinear") -> None:
        super().__init__()
        if texture_filter not in ("bilinear", "mip"):
            raise ValueError(f"texture_filter must be 'bilinear' or 'mip', got {texture_filter!r}")
        self.texture_filter = texture_filter

    def forward(
        self,
        pix_to_face: torch.Tensor,
        bary: torch.Tensor,
        faces: torch.Tensor,
        faces_uvs: torch.Tensor,
        verts_uvs: torch.Tensor,
        vertex_normals: torch.Tensor,
        texture: torch.Tensor,
        sh_coeffs: Optional[torch.Tensor] = None,
        background: Optional[torch.Tensor] = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Shade one rasterisation.

        Args:
            pix_to_face: (N, H, W) long nearest face per pixel, -1 where empty.
            bary: (N, H, W, 3) float barycentrics in that face (0 where empty).
            faces: (F, 3) long; faces_uvs: (F, 3) long; verts_uvs: (T, 2) float UVs.
            vertex_normals: (N, V, 3) float normals in the lighting frame.
            texture: (N, 3, Ht, Wt) float albedo UV map; sh_coeffs: (N, 9, 3) or None (unlit);
            background: (N, 3, H, W) or None (black).

        Returns:
            ``(image, mask, normals, uv, albedo, shading)``: (N, 3, H, W), (N, 1, H, W) {0, 1}, (N, 3, H, W) unit
            normals, (N, 2, H, W) UVs, (N, 3, H, W) sampled albedo, (N, 3, H, W) shading (all 0 where empty).
        """
        dtype = bary.dtype
        n, h, w = pix_to_face.shape
        mask = (pix_to_face >= 0)[:, None].to(dtype)  # (N, 1, H, W)
        normals = interpolate_nearest(pix_to_face, bary, faces, vertex_normals)  # (N, 3, H, W)
        normals = torch.nn.functional.normalize(normals, dim=1, eps=1e-12)
        uv = interpolate_nearest(pix_to_face, bary, faces_uvs, verts_uvs)  # (N, 2, H, W)
        if self.texture_filter == "mip":
            albedo = sample_texture_mip(texture, uv, mask)
        else:
            albedo = sample_texture(texture, uv, mask)
        if sh_coeffs is None:
            shading = mask.expand(n, 3, h, w)
        else:
            shading = sh_shading(normals.permute(0, 2, 3, 1), sh_coeffs).permute(0, 3, 1, 2) * mask
        image = albedo * shading
        if background is not None:
            image = image + background * (1 - mask)
        return image, mask, normals, uv, albedo, shading


class FaceRenderer(torch.nn.Module):
    """Differentiable renderer for one mesh topology with a UV texture and SH lighting.

    Gradients flow to the vertices (through barycentrics, depth and normals; silhouettes are hard), the texture, the
    SH coefficients and, via :meth:`render_world`, the camera.

    Args:
        faces: (F, 3) long vertex indices (counter-clockwise seen from outside).
        verts_uvs: (T, 2) float UVs in [0, 1] (u right, v up).
        faces_uvs: (F, 3) long indices into ``verts_uvs``.
        image_size: H or (H, W) output pixels.
        perspective_correct: perspective-correct interpolation (use with :class:`PerspectiveCamera` depth).
        bin_size: pytorch3d bin size (None = its heuristic; CPU is always naive).
        max_faces_per_bin: pytorch3d coarse-raster capacity (None = default).
        texture_filter: ``"bilinear"`` (4 texels per pixel) or ``"mip"`` (trilinear mip-mapping with the footprint
            measured per pixel, :func:`~albedogan.render.mip.sample_texture_mip`: a texture larger than the render is
            area-filtered first, so every texel under a pixel contributes and receives gradient). Both give the same
            image where the texture is magnified.
    """

    def __init__(
        self,
        faces: torch.Tensor,
        verts_uvs: torch.Tensor,
        faces_uvs: torch.Tensor,
        image_size: int | Sequence[int],
        perspective_correct: bool = False,
        bin_size: Optional[int] = None,
        max_faces_per_bin: Optional[int] = None,
        texture_filter: str = "bilinear",
    ) -> None:
        super().__init__()
        self.shader = SHTextureShader(texture_filter)  # checks texture_filter
        assert_shape(faces, [None, 3], "faces")
        assert_shape(verts_uvs, [None, 2], "verts_uvs")
        assert_shape(faces_uvs, [faces.shape[0], 3], "faces_uvs")
        self.register_buffer("faces", faces.long().clone(), persistent=False)
        self.register_buffer("verts_uvs", verts_uvs.detach().clone(), persistent=False)
        self.register_buffer("faces_uvs", faces_uvs.long().clone(), persistent=False)
        self.rasterizer = Rasterizer(
            image_size, perspective_correct=perspective_correct, bin_size=bin_size, max_faces_per_bin=max_faces_per_bin
        )

    @property
    def texture_filter(self) -> str:
        """``"bilinear"`` or ``"mip"``: how the shader samples the albedo."""
        return self.shader.texture_filter

    @property
    def image_size(self) -> tuple[int, int]:
        """(H, W) output size in pixels."""
        return self.rasterizer.image_size

    @fp32_island
    def forward(
        self,
        vertices: torch.Tensor,
        texture: torch.Tensor,
        sh_coeffs: Optional[torch.Tensor] = None,
        world_vertices: Optional[torch.Tensor] = None,
        landmarks: Optional[torch.Tensor] = None,
        background: Optional[torch.Tensor] = None,
        interior: Optional[torch.Tensor] = None,
    ) -> RenderOutput:
        """Render a batch.

        Args:
            vertices: (N, V, 3) float image-NDC vertices with depth (x right, y down, depth away from the camera).
            texture: (N, 3, Ht, Wt) float albedo UV map in [0, 1] (row 0 = v = 1); (1, 3, Ht, Wt) is broadcast.
            sh_coeffs: (N, 9, 3) float SH lighting, or None for unlit rendering (shading = 1).
            world_vertices: optional (N, V, 3) world-frame vertices (FLAME metres) for the normals that are lit, as
                DECA does; by default normals come from ``vertices`` in the view frame (x right, y up, z to camera).
            landmarks: optional (N, L, 2|3) image-NDC landmarks, passed through as (N, L, 2).
            background: optional (N, 3, H, W) float image composited behind the mesh (default black).
            interior: optional (N, 3), (1, 3) or (3,) unlit colour of the pixels whose triangle faces away from the camera,
                i.e. the inside of the head seen through an opening (the mouth cavity between parted lips, the neck
                opening): in ``image`` and ``albedo_image`` instead of the texture there (which belongs to the outside
                of the back of the head). None = shade them like any other pixel.

        Returns:
            :class:`~albedogan.structures.RenderOutput` (float32 for float16/bfloat16/float32 inputs, also under
            autocast; float64 for float64 vertices).
        """
        assert_shape(vertices, [None, None, 3], "vertices")
        n, v = vertices.shape[:2]
        dtype = vertices.dtype
        assert_shape(texture, [None, 3, None, None], "texture")
        if texture.shape[0] not in (1, n):
            raise ValueError(f"texture: expected batch 1 or {n}, got shape {tuple(texture.shape)}")
        if texture.shape[0] == 1 and n > 1:
            texture = texture.expand(n, *texture.shape[1:])
        frag = self.rasterizer(vertices, self.faces)  # one rasterisation: colour, mask, normals, depth, UVs
        if world_vertices is not None:
            assert_shape(world_vertices, [n, v, 3], "world_vertices")
            normal_src = world_vertices
        else:
            normal_src = ndc_to_view(vertices)
        vnormals = vertex_normals(normal_src, self.faces)  # (N, V, 3)
        if sh_coeffs is not None:
            sh_coeffs = sh_coeffs.to(dtype)
        if background is not None:
            assert_shape(background, [n, 3, *self.image_size], "background")
            background = background.to(dtype)
        image, mask, normals, uv, albedo, shading = self.shader(
            frag.pix_to_face[..., 0], frag.bary_coords[..., 0, :], self.faces, self.faces_uvs,
            self.verts_uvs.to(dtype), vnormals, texture.to(dtype), sh_coeffs, background,
        )
        if interior is not None:
            colour = interior.to(vertices.device, dtype).reshape(-1, 3, 1, 1).expand(n, 3, 1, 1)  # (1|N, 3)
            inside = inside_pixels(vertices, self.faces, frag.pix_to_face[..., 0])  # (N, 1, H, W)
            image = torch.where(inside, colour, image)
            albedo = torch.where(inside, colour, albedo)
        lmk = None
        if landmarks is not None:
            assert_shape(landmarks, [n, None, None], "landmarks")
            lmk = landmarks[..., :2]
        return RenderOutput(
            image=image,
            alpha=mask,
            normals=normals,
            depth=frag.zbuf[..., 0][:, None] * mask,  # (N, 1, H, W)
            uv=uv,
            uv_mask=mask,
            shading=shading,
            albedo_image=albedo,
            pix_to_face=frag.pix_to_face[..., 0],
            landmarks=lmk,
        )

    @fp32_island
    def render_world(
        self,
        world_vertices: torch.Tensor,
        camera: Camera,
        texture: torch.Tensor,
        sh_coeffs: Optional[torch.Tensor] = None,
        landmarks: Optional[torch.Tensor] = None,
        background: Optional[torch.Tensor] = None,
        interior: Optional[torch.Tensor] = None,
    ) -> RenderOutput:
        """Project world vertices (and landmarks) with ``camera``, light with world normals, and render.

        Args:
            world_vertices: (N, V, 3) float FLAME-frame vertices, metres.
            camera: any camera with ``transform_points`` (e.g. :class:`WeakPerspectiveCamera`).
            texture: (N, 3, Ht, Wt) albedo UV map in [0, 1].
            sh_coeffs: (N, 9, 3) or None.
            landmarks: optional (N, L, 3) world-frame 3D landmarks; returned projected as (N, L, 2) image NDC.
            background: optional (N, 3, H, W).
            interior: optional (N, 3) or (3,) colour of the inside of the head (see :meth:`forward`).

        Returns:
            :class:`~albedogan.structures.RenderOutput`; differentiable w.r.t. the camera parameters too.
        """
        verts = camera.transform_points(world_vertices)
        lmk = camera.transform_points(landmarks) if landmarks is not None else None
        return self(verts, texture, sh_coeffs, world_vertices=world_vertices, landmarks=lmk, background=background,
                    interior=interior)
