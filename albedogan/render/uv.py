"""UV-space operations: texture sampling, UV rasterisation, unwrapping an image into UV space, the left/right
mirror of a UV map (:class:`UVMirror`) and mirror completion.

UV convention (see ``albedogan.render``): u right, v up, both in [0, 1]; texture row 0 is v = 1; a UV maps to a
``grid_sample`` grid as ``(2u - 1, 1 - 2v)`` with ``align_corners=False``. Texel centres of a (Hu, Wu) map are the
``align_corners=False`` positions, so sampling a texture at its own texel centres returns it exactly.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any, Callable, Optional, Sequence

import torch
import torch.nn.functional as F

from albedogan.render.normals import vertex_normals
from albedogan.render.rasterizer import Fragments, _hw, rasterize
from albedogan.utils.precision import fp32_island
from albedogan.utils.shapes import assert_shape

__all__ = ["UVMirror", "UVSpace", "mirror_complete", "ndc_to_view", "resize_uv", "sample_texture", "uv_rasterisation",
           "uv_to_grid"]

_LAYOUT_CACHE: "OrderedDict[tuple, tuple[torch.Tensor, ...]]" = OrderedDict()
_LAYOUT_CACHE_SIZE = 16


def _fingerprint(*tensors: torch.Tensor) -> str:
    """Content hash of tensors (shape, dtype and values): the cache key of a topology / UV layout."""
    h = hashlib.sha1()
    for t in tensors:
        c = t.detach().cpu().contiguous()
        h.update(f"{tuple(c.shape)}{c.dtype}".encode())
        h.update(c.numpy().tobytes())
    return h.hexdigest()


def _cached(key: tuple, build: Callable[[], tuple[torch.Tensor, ...]]) -> tuple[torch.Tensor, ...]:
    """Per-process memo of what depends only on a topology / UV layout and a resolution (small LRU)."""
    if key in _LAYOUT_CACHE:
        _LAYOUT_CACHE.move_to_end(key)
        return _LAYOUT_CACHE[key]
    value = build()
    _LAYOUT_CACHE[key] = value
    while len(_LAYOUT_CACHE) > _LAYOUT_CACHE_SIZE:
        _LAYOUT_CACHE.popitem(last=False)
    return value


def uv_rasterisation(
    verts_uvs: torch.Tensor, faces_uvs: torch.Tensor, resolution: int | Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """The UV layout rasterised once per process and (layout, resolution): every :class:`UVSpace` /
    :class:`UVMirror` of one head at one resolution (target builder, mirror, module) shares the result.

    Args:
        verts_uvs: (T, 2) float UVs in [0, 1]; faces_uvs: (F, 3) long.
        resolution: Hu or (Hu, Wu).

    Returns:
        ``(texel_face, texel_bary)``: (Hu, Wu) long face per texel or -1 and (Hu, Wu, 3) float32 barycentrics, on
        ``verts_uvs``' device. Shared, read-only tensors (never modify them in place).
    """
    size = _hw(resolution)

    def build() -> tuple[torch.Tensor, torch.Tensor]:
        uv = verts_uvs.detach().to(torch.float64)
        grid = uv_to_grid(uv)  # (T, 2) image NDC of each UV vertex
        flat = torch.cat([grid, torch.zeros_like(grid[:, :1])], dim=-1)[None]  # (1, T, 3)
        frag = rasterize(flat, faces_uvs.long().to(uv.device), size)
        return frag.pix_to_face[0, ..., 0], frag.bary_coords[0, :, :, 0].to(torch.float32)

    key = ("uv_raster", _fingerprint(verts_uvs.double(), faces_uvs.long()), size, str(verts_uvs.device))
    return _cached(key, build)  # type: ignore[return-value]


def uv_to_grid(uv: torch.Tensor) -> torch.Tensor:
    """(..., 2) UVs (u right, v up, [0, 1]) -> (..., 2) ``grid_sample`` coordinates ``(2u - 1, 1 - 2v)``."""
    return torch.stack([uv[..., 0] * 2 - 1, 1 - uv[..., 1] * 2], dim=-1)


def ndc_to_view(points: torch.Tensor) -> torch.Tensor:
    """(..., 3) image NDC (x right, y down, depth away) -> view frame (x right, y up, z toward the camera).

    Negating y and depth is a rotation (det +1), so face windings, cross products and normals stay consistent.
    """
    return points * points.new_tensor([1.0, -1.0, -1.0])


def resize_uv(texture: torch.Tensor, resolution: Optional[int | Sequence[int]]) -> torch.Tensor:
    """The one UV-map resampling: (N, C, Hu, Wu) -> (N, C, R, R) (or (N, C, H, W) for a pair).

    Area averaging when shrinking both sides (exact box averages for integer factors), bilinear
    (``align_corners=False``) otherwise; ``None`` or the same size returns ``texture`` itself. Both are convex
    combinations, so values stay in the input's range (no clamp needed).
    """
    assert_shape(texture, [None, None, None, None], "texture")
    if resolution is None:
        return texture
    size = _hw(resolution)
    if tuple(texture.shape[-2:]) == size:
        return texture
    if texture.shape[-2] >= size[0] and texture.shape[-1] >= size[1]:
        return F.interpolate(texture, size=size, mode="area")
    return F.interpolate(texture, size=size, mode="bilinear", align_corners=False)


def sample_texture(
    texture: torch.Tensor, pixel_uv: torch.Tensor, mask: Optional[torch.Tensor] = None, mode: str = "bilinear"
) -> torch.Tensor:
    """Look up a UV texture at per-pixel UVs (UV texture -> image).

    Args:
        texture: (N, C, Hu, Wu) float texture (e.g. albedo in [0, 1]).
        pixel_uv: (N, 2, H, W) float UVs per pixel.
        mask: optional (N, 1, H, W) float/bool; output is 0 where it is 0.
        mode: ``grid_sample`` mode (``"bilinear"`` or ``"nearest"``); borders are clamped.

    Returns:
        (N, C, H, W) texture's dtype; differentiable w.r.t. texture and UVs.
    """
    assert_shape(texture, [None, None, None, None], "texture")
    assert_shape(pixel_uv, [texture.shape[0], 2, None, None], "pixel_uv")
    grid = uv_to_grid(pixel_uv.permute(0, 2, 3, 1))  # (N, H, W, 2)
    out = F.grid_sample(texture, grid.to(texture.dtype), mode=mode, padding_mode="border", align_corners=False)
    if mask is not None:
        out = out * mask.to(out.dtype)
    return out


def mirror_complete(
    texture: torch.Tensor,
    visibility: torch.Tensor,
    mirror: Callable[[torch.Tensor], torch.Tensor],
    weights: Optional[torch.Tensor] = None,
    eps: float = 1e-6,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fill poorly seen texels from their left/right mirror partners.

    With confidence ``w`` (``weights``, default ``visibility``) and the partner's ``w' = M(w)`` (``M`` = ``mirror``),
    ``completed = (w T + (1 - w) M(w T)) / (w + (1 - w) w')``: fully seen texels keep their value, unseen texels take
    the partner's, and partly seen texels blend by confidence (soft, e.g. a facing-angle weight; not a yaw sign).
    The partner colour is confidence-weighted (``M(w T) / M(w)``), so resampling at island borders does not pull in
    unseen texels.

    Args:
        texture: (N, C, Hu, Wu) float texture unwrapped from an image (invalid texels may hold anything finite).
        visibility: (N, 1, Hu, Wu) float in [0, 1] from :meth:`UVSpace.unwrap`.
        mirror: maps a (N, C, Hu, Wu) UV map to its mirror image, usually a :class:`UVMirror` of the head (the
            layout need not be symmetric about u = 0.5; a width flip is right only for such toy layouts).
        weights: optional (N, 1, Hu, Wu) float in [0, 1] confidence; defaults to ``visibility``.
        eps: below this total confidence a texel is left empty (0).

    Returns:
        ``(completed, coverage)``: (N, C, Hu, Wu) completed texture and (N, 1, Hu, Wu) completed confidence
        ``w + (1 - w) w'`` in [0, 1] (0 where neither side was seen).
    """
    assert_shape(texture, [None, None, None, None], "texture")
    n, c, hu, wu = texture.shape
    assert_shape(visibility, [n, 1, hu, wu], "visibility")
    w = visibility if weights is None else weights
    assert_shape(w, [n, 1, hu, wu], "weights")
    w = w.to(texture.dtype).clamp(0.0, 1.0)
    mirrored = mirror(torch.cat([w * texture, w], dim=1))  # (N, C + 1, Hu, Wu)
    w_m = mirrored[:, c:].clamp(0.0, 1.0)
    t_m = mirrored[:, :c] / torch.where(w_m > eps, w_m, torch.ones_like(w_m))
    own = w
    other = (1 - w) * w_m
    coverage = own + other
    denom = torch.where(coverage > eps, coverage, torch.ones_like(coverage))
    completed = (own * texture + other * t_m) / denom
    completed = torch.where(coverage > eps, completed, torch.zeros_like(completed))
    return completed, coverage


class UVSpace(torch.nn.Module):
    """The mesh rasterised in UV space at a fixed resolution (topology is constant, so this is computed once).

    Buffers (non-persistent, follow ``.to()``): ``texel_face`` (Hu, Wu) long face per texel or -1,
    ``texel_bary`` (Hu, Wu, 3) float32 barycentrics, ``coverage`` (1, 1, Hu, Wu) float32 {0, 1}, ``faces`` (F, 3),
    and the per-call gathers done once: ``texel_vidx`` (Hu*Wu, 3) long vertex indices of each texel's face and
    ``texel_weight`` (Hu*Wu, 3) float32 barycentrics times coverage. The rasterisation itself is shared between all
    UV spaces of one layout and resolution (:func:`uv_rasterisation`).

    Args:
        faces: (F, 3) long vertex indices.
        verts_uvs: (T, 2) float UVs in [0, 1].
        faces_uvs: (F, 3) long indices into ``verts_uvs``.
        resolution: Hu or (Hu, Wu) texels.
    """

    def __init__(
        self,
        faces: torch.Tensor,
        verts_uvs: torch.Tensor,
        faces_uvs: torch.Tensor,
        resolution: int | Sequence[int],
    ) -> None:
        super().__init__()
        assert_shape(faces, [None, 3], "faces")
        assert_shape(verts_uvs, [None, 2], "verts_uvs")
        assert_shape(faces_uvs, [faces.shape[0], 3], "faces_uvs")
        self.resolution = _hw(resolution)
        uv = verts_uvs.detach().to(torch.float64)
        if uv.numel() and (uv.min() < -1e-6 or uv.max() > 1 + 1e-6):
            raise ValueError(f"verts_uvs must lie in [0, 1], got range [{uv.min():.4g}, {uv.max():.4g}]")
        p2f, bary = uv_rasterisation(verts_uvs, faces_uvs, self.resolution)  # (Hu, Wu), (Hu, Wu, 3)
        coverage = (p2f >= 0).to(torch.float32)
        faces = faces.long().to(p2f.device)
        self.register_buffer("faces", faces.clone(), persistent=False)
        self.register_buffer("texel_face", p2f, persistent=False)
        self.register_buffer("texel_bary", bary, persistent=False)
        self.register_buffer("coverage", coverage[None, None], persistent=False)
        self.register_buffer("texel_vidx", faces[p2f.clamp(min=0).reshape(-1)], persistent=False)  # (M, 3)
        self.register_buffer("texel_weight", (bary * coverage[..., None]).reshape(-1, 3), persistent=False)

    def corner_map(self, corner_attrs: torch.Tensor) -> torch.Tensor:
        """Interpolate per-face-corner attributes over the UV layout (values may differ between faces at a vertex).

        Args:
            corner_attrs: (F, 3, C) float value at each face corner.

        Returns:
            (C, Hu, Wu) same dtype, 0 outside :attr:`coverage`.
        """
        assert_shape(corner_attrs, [self.faces.shape[0], 3, None], "corner_attrs")
        hu, wu = self.resolution
        vals = corner_attrs[self.texel_face.clamp(min=0).reshape(-1)]  # (M, 3, C)
        bary = self.texel_weight.reshape(-1, 3, 1).to(vals.dtype)
        return (vals * bary).sum(1).T.reshape(-1, hu, wu)

    def attribute_map(self, vertex_attrs: torch.Tensor) -> torch.Tensor:
        """Interpolate per-vertex attributes over the UV layout (e.g. position or normal maps).

        Args:
            vertex_attrs: (N, V, C) float per-vertex values.

        Returns:
            (N, C, Hu, Wu) same dtype, 0 outside :attr:`coverage`. Differentiable w.r.t. ``vertex_attrs``.
        """
        assert_shape(vertex_attrs, [None, None, None], "vertex_attrs")
        n, _, c = vertex_attrs.shape
        hu, wu = self.resolution
        vals = vertex_attrs[:, self.texel_vidx]  # (N, M, 3, C), M = Hu*Wu
        bary = self.texel_weight.reshape(1, -1, 3, 1).to(vals.dtype)
        return (vals * bary).sum(2).reshape(n, hu, wu, c).permute(0, 3, 1, 2)

    @fp32_island
    def unwrap(
        self,
        image: torch.Tensor,
        verts: torch.Tensor,
        normals: Optional[torch.Tensor] = None,
        depth_tolerance: float = 0.02,
        soft_facing: float = 0.0,
        fragments: Optional[Fragments] = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Sample an image into UV space at each texel's projected position, keeping visible texels only.

        A texel is visible when it is covered by the UV layout, projects inside the image, is front-facing
        (view-frame normal z > 0) and passes a depth test against the screen z-buffer: texel depth
        ``<= screen depth + depth_tolerance * (per-mesh depth extent)`` at the nearest pixel.

        Args:
            image: (N, C, H, W) float image (e.g. the teacher image in [0, 1]).
            verts: (N, V, 3) float image-NDC vertices with depth (x right, y down, depth away from the camera).
            normals: optional (N, V, 3) view-frame vertex normals (x right, y up, z toward the camera); by default
                computed from ``verts`` via :func:`ndc_to_view`.
            depth_tolerance: depth-test slack as a fraction of each mesh's depth extent.
            soft_facing: 0 for a hard front-facing test; > 0 ramps visibility as ``clamp(n_z / soft_facing, 0, 1)``
                (grazing texels get low confidence for :func:`mirror_complete`).
            fragments: optional screen-space rasterisation of ``verts`` at the image size (reused if given).

        Returns:
            ``(texture, visibility)``: (N, C, Hu, Wu) sampled colours (0 where not visible) and (N, 1, Hu, Wu)
            visibility in [0, 1]. The texture is differentiable w.r.t. the image and the vertex positions.
        """
        assert_shape(image, [None, None, None, None], "image")
        n, _, h, w = image.shape
        assert_shape(verts, [n, None, 3], "verts")
        if normals is None:
            normals = vertex_normals(ndc_to_view(verts), self.faces)
        assert_shape(normals, [n, verts.shape[1], 3], "normals")
        if fragments is None:
            fragments = rasterize(verts, self.faces, (h, w))
        elif fragments.pix_to_face.shape[1:3] != (h, w):
            raise ValueError(f"fragments are {tuple(fragments.pix_to_face.shape[1:3])} pixels, image is {(h, w)}")
        pos = self.attribute_map(verts)  # (N, 3, Hu, Wu)
        nz = F.normalize(self.attribute_map(normals), dim=1)[:, 2:3]  # (N, 1, Hu, Wu)
        grid = pos[:, :2].permute(0, 2, 3, 1)  # (N, Hu, Wu, 2): image NDC is grid_sample's convention
        covered = fragments.pix_to_face[..., 0] >= 0  # (N, H, W)
        screen = torch.stack([fragments.zbuf[..., 0], covered.to(verts.dtype)], dim=1).detach()  # (N, 2, H, W)
        looked = F.grid_sample(screen, grid.detach(), mode="nearest", padding_mode="border", align_corners=False)
        z_extent = (verts[..., 2].amax(1) - verts[..., 2].amin(1)).detach().view(n, 1, 1, 1)
        g = grid.detach()
        inside = ((g.abs() <= 1).all(-1))[:, None]  # (N, 1, Hu, Wu)
        hard = (
            (self.coverage > 0)
            & inside
            & (looked[:, 1:2] > 0.5)
            & (pos[:, 2:3].detach() <= looked[:, 0:1] + depth_tolerance * z_extent)
        )
        facing = (nz > 0).to(verts.dtype) if soft_facing <= 0 else (nz / soft_facing).clamp(0.0, 1.0)
        visibility = hard.to(verts.dtype) * facing.detach()
        sampled = F.grid_sample(
            image, grid.to(image.dtype), mode="bilinear", padding_mode="border", align_corners=False
        )
        texture = sampled * (visibility > 0).to(sampled.dtype)
        return texture, visibility


class UVMirror(torch.nn.Module):
    """The left/right mirror of UV maps of one head at one resolution: ``mirror(T)[texel] = T[partner(texel)]``.

    The partner UV of every texel is the barycentric interpolation of its face's per-corner partner UVs
    (``HeadModel.mirror_face_uvs``, from the template's mirror vertex pairs), rasterised once; applying the mirror is
    one bilinear ``grid_sample``. The layout need not be symmetric about u = 0.5 (FLAME's is not).

    Buffers (non-persistent, follow ``.to()``): ``grid`` (1, Hu, Wu, 2) ``grid_sample`` coordinates of each texel's
    partner, ``valid`` (1, 1, Hu, Wu) float {0, 1}: the texel is covered and so is its partner.

    Args:
        faces: (F, 3) long vertex indices.
        verts_uvs: (T, 2) float UVs in [0, 1].
        faces_uvs: (F, 3) long indices into ``verts_uvs``.
        mirror_face_uvs: (F, 3, 2) float partner UV of each face corner.
        resolution: Hu or (Hu, Wu) texels.
    """

    def __init__(
        self,
        faces: torch.Tensor,
        verts_uvs: torch.Tensor,
        faces_uvs: torch.Tensor,
        mirror_face_uvs: torch.Tensor,
        resolution: int | Sequence[int],
    ) -> None:
        super().__init__()
        assert_shape(mirror_face_uvs, [faces.shape[0], 3, 2], "mirror_face_uvs")
        self.resolution = _hw(resolution)

        def build() -> tuple[torch.Tensor, torch.Tensor]:
            space = UVSpace(faces, verts_uvs, faces_uvs, resolution)
            partner = space.corner_map(mirror_face_uvs.detach().to(torch.float64))  # (2, Hu, Wu)
            grid = uv_to_grid(partner.permute(1, 2, 0))[None]  # (1, Hu, Wu, 2)
            hit = F.grid_sample(space.coverage.double(), grid, mode="nearest", padding_mode="zeros",
                                align_corners=False)
            return grid.to(torch.float32), (space.coverage * hit.to(torch.float32)).clamp(0, 1)

        key = ("uv_mirror", _fingerprint(faces.long(), verts_uvs.double(), faces_uvs.long(),
                                         mirror_face_uvs.double()), self.resolution, str(verts_uvs.device))
        grid, valid = _cached(key, build)  # once per layout and resolution (target builder and module share it)
        self.register_buffer("grid", grid, persistent=False)
        self.register_buffer("valid", valid, persistent=False)

    @classmethod
    def from_head(cls, head: Any, resolution: int | Sequence[int]) -> "UVMirror":
        """The mirror of a :class:`~albedogan.flame.head.HeadModel`'s UV layout at ``resolution``."""
        return cls(head.faces, head.verts_uvs, head.faces_uvs, head.mirror_face_uvs, resolution).to(
            head.verts_uvs.device
        )

    def forward(self, texture: torch.Tensor) -> torch.Tensor:
        """(N, C, Hu, Wu) UV maps -> (N, C, Hu, Wu) their mirror images (bilinear; 0 where :attr:`valid` is 0)."""
        assert_shape(texture, [None, None, *self.resolution], "texture")
        grid = self.grid.to(texture.dtype).expand(texture.shape[0], -1, -1, -1)
        out = F.grid_sample(texture, grid, mode="bilinear", padding_mode="border", align_corners=False)
        return out * self.valid.to(out.dtype)
