"""Rasterisation of meshes given in image NDC, over pytorch3d's ``rasterize_meshes``.

pytorch3d decides *which* face covers each pixel (a piecewise-constant, non-differentiable choice, computed on a
detached float32 copy). The barycentric coordinates and depth are then recomputed here from the caller's vertices
with plain tensor ops, so they are exact in the caller's dtype (float64 works) and differentiable w.r.t. the
vertices (interior gradients; silhouettes are hard, as with pytorch3d at ``blur_radius = 0``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch
from pytorch3d.renderer.mesh.rasterize_meshes import rasterize_meshes
from pytorch3d.structures import Meshes

from albedogan.structures import _TensorRecord
from albedogan.utils.shapes import assert_shape

__all__ = ["Fragments", "Rasterizer", "interpolate_nearest", "interpolate_vertex_attributes", "pixel_centers_ndc",
           "rasterize"]


@dataclass(frozen=True)
class Fragments(_TensorRecord):
    """Per-pixel rasterisation result (K faces per pixel, nearest first).

    Attributes:
        pix_to_face: (N, H, W, K) long index into the mesh's *own* faces (0..F-1, not packed), -1 where empty.
        bary_coords: (N, H, W, K, 3) float barycentrics (0 where empty), differentiable w.r.t. the vertices;
            perspective-correct when the rasteriser was asked to be.
        zbuf: (N, H, W, K) float depth in the input's depth units (image NDC third column), -1 where empty.
    """

    pix_to_face: torch.Tensor
    bary_coords: torch.Tensor
    zbuf: torch.Tensor

    @property
    def mask(self) -> torch.Tensor:
        """(N, H, W, K) bool: a face covers the pixel."""
        return self.pix_to_face >= 0


def _hw(image_size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(image_size, int):
        return image_size, image_size
    h, w = image_size
    return int(h), int(w)


def pixel_centers_ndc(
    image_size: int | Sequence[int], device: torch.device | None = None, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """(H, W, 2) image-NDC ``(x, y)`` of pixel centres (``align_corners=False`` positions)."""
    h, w = _hw(image_size)
    ys = (torch.arange(h, device=device, dtype=dtype) * 2 + 1) / h - 1
    xs = (torch.arange(w, device=device, dtype=dtype) * 2 + 1) / w - 1
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx, gy], dim=-1)


def _to_pytorch3d_ndc(verts: torch.Tensor, h: int, w: int, perspective_depth: bool) -> torch.Tensor:
    """Detached float32 copy of image-NDC vertices in pytorch3d NDC (+X left, +Y up, shorter side spans [-1, 1]).

    The depth is mapped to a positive, order-preserving value that is affine in screen space: ``z - min z + 1`` for
    orthographic depth, ``-1/z`` (then shifted) for perspective depth. Only the face choice depends on it.
    """
    v = verts.detach().to(torch.float32)
    short = float(min(h, w))
    xy = v[..., :2] * v.new_tensor([-w / short, -h / short])
    z = v[..., 2:3]
    if perspective_depth:
        z = -1.0 / z.clamp(min=1e-6)
    z = z - z.amin(dim=1, keepdim=True) + 1.0
    return torch.cat([xy, z], dim=-1)


def _barycentric(
    verts: torch.Tensor, faces: torch.Tensor, pix_to_face: torch.Tensor, perspective_correct: bool, eps: float = 1e-12
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact barycentrics and depth of pixel centres inside their chosen faces.

    Args:
        verts: (N, V, 3) image NDC with depth.
        faces: (F, 3) long.
        pix_to_face: (N, H, W, K) long per-mesh face index or -1.
        perspective_correct: weight by 1/depth (depth must then be positive).

    Returns:
        bary (N, H, W, K, 3) and zbuf (N, H, W, K), verts' dtype, zeros / -1 where empty.
    """
    n, h, w, k = pix_to_face.shape
    mask = pix_to_face >= 0  # (N, H, W, K)
    fidx = pix_to_face.clamp(min=0).reshape(n, -1)  # (N, M) with M = H*W*K
    vidx = faces[fidx]  # (N, M, 3)
    tri = torch.gather(verts, 1, vidx.reshape(n, -1, 1).expand(-1, -1, 3)).reshape(n, -1, 3, 3)  # (N, M, 3 corners, 3)
    p = pixel_centers_ndc((h, w), verts.device, verts.dtype)  # (H, W, 2)
    p = p[:, :, None, :].expand(h, w, k, 2).reshape(1, -1, 2)  # (1, M, 2)
    a, b, c = tri[..., 0, :2], tri[..., 1, :2], tri[..., 2, :2]  # (N, M, 2) each

    def cross2(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return u[..., 0] * v[..., 1] - u[..., 1] * v[..., 0]

    area = cross2(b - a, c - a)  # (N, M)
    area = torch.where(area.abs() < eps, torch.full_like(area, eps), area)
    w0 = cross2(b - p, c - p) / area
    w1 = cross2(c - p, a - p) / area
    w2 = cross2(a - p, b - p) / area
    bary = torch.stack([w0, w1, w2], dim=-1)  # (N, M, 3)
    z = tri[..., 2]  # (N, M, 3)
    if perspective_correct:
        inv = bary / z
        bary = inv / inv.sum(-1, keepdim=True)
    depth = (bary * z).sum(-1)  # (N, M)
    m = mask.reshape(n, -1)
    bary = torch.where(m[..., None], bary, torch.zeros_like(bary)).reshape(n, h, w, k, 3)
    depth = torch.where(m, depth, torch.full_like(depth, -1.0)).reshape(n, h, w, k)
    return bary, depth


def rasterize(
    verts: torch.Tensor,
    faces: torch.Tensor,
    image_size: int | Sequence[int],
    faces_per_pixel: int = 1,
    perspective_correct: bool = False,
    bin_size: Optional[int] = None,
    max_faces_per_bin: Optional[int] = None,
    blur_radius: Optional[float] = None,
    backend: str = "auto",
) -> Fragments:
    """Rasterise meshes given in image NDC (x right, y down, depth away from the camera).

    Args:
        verts: (N, V, 3) float image-NDC vertices with depth (NDC units for weak perspective, metres for perspective).
        faces: (F, 3) long, shared by the batch (either winding; no back-face culling).
        image_size: H or (H, W) pixels.
        faces_per_pixel: K, the number of nearest faces kept per pixel.
        perspective_correct: interpolate with perspective-correct barycentrics (depth must be > 0).
        bin_size: pytorch3d bin size; None = pytorch3d's heuristic (naive on CPU, binned on CUDA), 0 = naive.
        max_faces_per_bin: pytorch3d coarse-raster capacity (None = its default).
        blur_radius: pytorch3d's squared-distance slack (pytorch3d NDC units) for counting a pixel as covered.
            None = a 1/1000-pixel slack, so pixel centres lying exactly on a shared edge (common with regular
            grids and symmetric meshes) are not dropped by pytorch3d's strict inside test, leaving cracks.
        backend: which kernel picks the nearest face: ``"pytorch3d"`` (naive on CPU, coarse-to-fine on CUDA),
            ``"bbox"`` (:func:`_nearest_faces_bbox`: per-face bounding-box enumeration in float64, exact inside test,
            K = 1 only; ~10-40x faster than pytorch3d's naive CPU kernel on FLAME-sized meshes), or ``"auto"``
            (``bbox`` on CPU with K = 1 and no explicit ``bin_size``, else pytorch3d).

    Returns:
        :class:`Fragments`; its bary and depth carry gradients to ``verts``.
    """
    assert_shape(verts, [None, None, 3], "verts")
    assert_shape(faces, [None, 3], "faces")
    h, w = _hw(image_size)
    if backend not in ("auto", "pytorch3d", "bbox"):
        raise ValueError(f"rasterize: backend must be 'auto', 'pytorch3d' or 'bbox', got {backend!r}")
    if backend == "bbox" and faces_per_pixel != 1:
        raise ValueError("rasterize: backend='bbox' supports faces_per_pixel=1 only")
    if backend == "auto":
        use_bbox = verts.device.type == "cpu" and faces_per_pixel == 1 and bin_size is None
        backend = "bbox" if use_bbox else "pytorch3d"
    if backend == "bbox":
        pix_to_face = _nearest_faces_bbox(verts, faces, h, w, perspective_correct, slack=_BBOX_SLACK)
    else:
        pix_to_face = _pix_to_face_pytorch3d(verts, faces, h, w, faces_per_pixel, perspective_correct, bin_size,
                                             max_faces_per_bin, blur_radius)
    bary, zbuf = _barycentric(verts, faces, pix_to_face, perspective_correct)
    return Fragments(pix_to_face=pix_to_face, bary_coords=bary, zbuf=zbuf)


def _pix_to_face_pytorch3d(
    verts: torch.Tensor,
    faces: torch.Tensor,
    h: int,
    w: int,
    faces_per_pixel: int,
    perspective_correct: bool,
    bin_size: Optional[int],
    max_faces_per_bin: Optional[int],
    blur_radius: Optional[float],
) -> torch.Tensor:
    """Nearest ``faces_per_pixel`` faces per pixel with pytorch3d's kernel → (N, H, W, K) per-mesh face indices."""
    n, f = verts.shape[0], faces.shape[0]
    if blur_radius is None:
        blur_radius = (1e-3 * 2.0 / min(h, w)) ** 2
    meshes = Meshes(verts=_to_pytorch3d_ndc(verts, h, w, perspective_correct), faces=faces[None].expand(n, f, 3))
    with torch.no_grad():
        pix_to_face, _, _, _ = rasterize_meshes(
            meshes,
            image_size=(h, w),
            blur_radius=blur_radius,
            faces_per_pixel=faces_per_pixel,
            bin_size=bin_size,
            max_faces_per_bin=max_faces_per_bin,
            perspective_correct=False,
            cull_to_frustum=False,
        )
    offsets = (torch.arange(n, device=verts.device) * f).view(n, 1, 1, 1)
    return torch.where(pix_to_face >= 0, pix_to_face - offsets, pix_to_face)


_BBOX_SLACK = 1e-7
"""Barycentric tolerance of the bbox kernel: pixel centres exactly on a shared edge belong to both faces."""


def interpolate_vertex_attributes(
    fragments: Fragments, faces: torch.Tensor, attributes: torch.Tensor
) -> torch.Tensor:
    """Interpolate per-vertex (or per-UV-vertex) attributes at each pixel's nearest face.

    Args:
        fragments: rasterisation result with pix_to_face (N, H, W, K).
        faces: (F, 3) long indices into ``attributes``' second axis (``faces`` or ``faces_uvs``).
        attributes: (N, A, C) or (A, C) float attributes (broadcast over the batch if 2-D).

    Returns:
        (N, C, H, W) attributes of the nearest face (K index 0), 0 where empty. Differentiable w.r.t. the
        attributes and the barycentrics.
    """
    return interpolate_nearest(fragments.pix_to_face[..., 0], fragments.bary_coords[..., 0, :], faces, attributes)


def interpolate_nearest(
    pix_to_face: torch.Tensor, bary: torch.Tensor, faces: torch.Tensor, attributes: torch.Tensor
) -> torch.Tensor:
    """:func:`interpolate_vertex_attributes` on the nearest face's tensors.

    Args:
        pix_to_face: (N, H, W) long face per pixel, -1 where empty.
        bary: (N, H, W, 3) float barycentrics (0 where empty).
        faces: (F, 3) long; attributes: (N, A, C) or (A, C).

    Returns:
        (N, C, H, W), 0 where empty.
    """
    p2f = pix_to_face
    n, h, w = p2f.shape
    if attributes.ndim == 2:
        attributes = attributes[None].expand(n, *attributes.shape)
    assert_shape(attributes, [n, None, None], "attributes")
    c = attributes.shape[-1]
    vidx = faces[p2f.clamp(min=0).reshape(n, -1)]  # (N, H*W, 3)
    vals = torch.gather(attributes, 1, vidx.reshape(n, -1, 1).expand(-1, -1, c)).reshape(n, h * w, 3, c)
    out = (vals * bary.reshape(n, h * w, 3, 1)).sum(2)  # (N, H*W, C); bary is 0 on empty pixels
    return out.reshape(n, h, w, c).permute(0, 3, 1, 2)


class Rasterizer(torch.nn.Module):
    """Module form of :func:`rasterize` holding the settings (pytorch3d ``MeshRasterizer`` style).

    Args:
        image_size: H or (H, W) pixels.
        faces_per_pixel: K.
        perspective_correct: perspective-correct barycentrics (for :class:`PerspectiveCamera` depth).
        bin_size: pytorch3d bin size (None = heuristic; CPU is always naive).
        max_faces_per_bin: pytorch3d coarse-raster capacity.
        backend: ``"auto"`` | ``"pytorch3d"`` | ``"bbox"`` (see :func:`rasterize`).
    """

    def __init__(
        self,
        image_size: int | Sequence[int],
        faces_per_pixel: int = 1,
        perspective_correct: bool = False,
        bin_size: Optional[int] = None,
        max_faces_per_bin: Optional[int] = None,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        self.image_size = _hw(image_size)
        self.faces_per_pixel = faces_per_pixel
        self.perspective_correct = perspective_correct
        self.bin_size = bin_size
        self.max_faces_per_bin = max_faces_per_bin
        self.backend = backend

    def forward(self, verts: torch.Tensor, faces: torch.Tensor) -> Fragments:
        """(N, V, 3) image-NDC vertices, (F, 3) faces -> :class:`Fragments` of size (N, H, W, K)."""
        return rasterize(
            verts,
            faces,
            self.image_size,
            self.faces_per_pixel,
            self.perspective_correct,
            self.bin_size,
            self.max_faces_per_bin,
            backend=self.backend,
        )


def _nearest_faces_bbox(
    verts: torch.Tensor, faces: torch.Tensor, h: int, w: int, perspective_depth: bool, slack: float,
    max_pairs: int = 1 << 23,
) -> torch.Tensor:
    """Nearest face per pixel centre by bounding-box enumeration (the CPU fast path of :func:`rasterize`).

    Every face is tested only against the pixel centres inside its screen bounding box, so the cost grows with the
    covered area instead of pixels × faces (pytorch3d's naive CPU kernel). Pairs are generated with
    ``repeat_interleave``, tested with 2D edge functions, and reduced per pixel with ``scatter_reduce`` (minimum
    depth, then the smallest face index among exact ties); faces are processed in chunks of at most ``max_pairs``
    (face, pixel) pairs to bound memory.

    Args:
        verts: (N, V, 3) image-NDC vertices (detached use only).
        faces: (F, 3) long.
        h, w: image size in pixels.
        perspective_depth: depth is metric (choose the nearest by the screen-affine ``-1/z``).
        slack: barycentric tolerance, so centres exactly on a shared edge are covered (no cracks).

    Returns:
        (N, H, W, 1) long face index per pixel (0..F-1), -1 where empty.
    """
    v = verts.detach().to(torch.float64)
    n, f = v.shape[0], faces.shape[0]
    dev = v.device
    z = -1.0 / v[..., 2].clamp(min=1e-9) if perspective_depth else v[..., 2]
    tri = v[:, faces]  # (N, F, 3, 3)
    tz = z[:, faces]  # (N, F, 3)
    x = tri[..., 0]  # (N, F, 3)
    y = tri[..., 1]
    # pixel centre j has x = (2j + 1)/W - 1  ->  j = ((x + 1) W - 1)/2
    j0 = torch.ceil(((x.amin(-1) + 1) * w - 1) / 2 - 1e-9).clamp(min=0)
    j1 = torch.floor(((x.amax(-1) + 1) * w - 1) / 2 + 1e-9).clamp(max=w - 1)
    i0 = torch.ceil(((y.amin(-1) + 1) * h - 1) / 2 - 1e-9).clamp(min=0)
    i1 = torch.floor(((y.amax(-1) + 1) * h - 1) / 2 + 1e-9).clamp(max=h - 1)
    area = (x[..., 1] - x[..., 0]) * (y[..., 2] - y[..., 0]) - (x[..., 2] - x[..., 0]) * (y[..., 1] - y[..., 0])
    bw = (j1 - j0 + 1).clamp(min=0)
    bh = (i1 - i0 + 1).clamp(min=0)
    counts = (bw * bh).long()  # (N, F)
    counts = torch.where(area.abs() > 1e-18, counts, torch.zeros_like(counts)).reshape(-1)
    flat_tri = tri.reshape(n * f, 3, 3)
    flat_z = tz.reshape(n * f, 3)
    flat_area = area.reshape(-1)
    j0, i0, bw = j0.reshape(-1).long(), i0.reshape(-1).long(), bw.reshape(-1).long()

    n_pix = n * h * w
    best_depth = torch.full((n_pix,), float("inf"), dtype=torch.float64, device=dev)
    cand_key: list[torch.Tensor] = []
    cand_face: list[torch.Tensor] = []
    cand_depth: list[torch.Tensor] = []
    ends = torch.cumsum(counts, 0)
    start = 0
    while start < n * f:
        # largest chunk of faces whose pairs fit in max_pairs (at least one face)
        base = ends[start - 1] if start > 0 else ends.new_zeros(())
        stop = int(torch.searchsorted(ends, base + max_pairs, right=True))
        stop = max(stop, start + 1)
        c = counts[start:stop]
        total = int(c.sum())
        if total:
            ids = torch.repeat_interleave(torch.arange(start, stop, device=dev), c)  # (M,)
            first = torch.cumsum(c, 0) - c
            local = torch.arange(total, device=dev) - torch.repeat_interleave(first, c)
            jj = j0[ids] + local % bw[ids]
            ii = i0[ids] + torch.div(local, bw[ids], rounding_mode="floor")
            px = (2 * jj + 1).to(torch.float64) / w - 1
            py = (2 * ii + 1).to(torch.float64) / h - 1
            t = flat_tri[ids]  # (M, 3, 3)
            ax, ay, bx, by, cx, cy = t[:, 0, 0], t[:, 0, 1], t[:, 1, 0], t[:, 1, 1], t[:, 2, 0], t[:, 2, 1]
            a = flat_area[ids]
            w0 = ((bx - px) * (cy - py) - (by - py) * (cx - px)) / a
            w1 = ((cx - px) * (ay - py) - (cy - py) * (ax - px)) / a
            w2 = 1.0 - w0 - w1
            inside = (w0 >= -slack) & (w1 >= -slack) & (w2 >= -slack)
            ids, ii, jj = ids[inside], ii[inside], jj[inside]
            zz = flat_z[ids]
            depth = w0[inside] * zz[:, 0] + w1[inside] * zz[:, 1] + w2[inside] * zz[:, 2]
            batch = torch.div(ids, f, rounding_mode="floor")
            key = (batch * h + ii) * w + jj
            best_depth.scatter_reduce_(0, key, depth, reduce="amin")
            cand_key.append(key)
            cand_face.append(ids - batch * f)
            cand_depth.append(depth)
        start = stop
    pix_to_face = torch.full((n_pix,), -1, dtype=torch.long, device=dev)
    if cand_key:
        key = torch.cat(cand_key)
        face = torch.cat(cand_face)
        depth = torch.cat(cand_depth)
        winner = depth <= best_depth[key]
        chosen = torch.full((n_pix,), f, dtype=torch.long, device=dev)
        chosen.scatter_reduce_(0, key[winner], face[winner], reduce="amin")
        pix_to_face = torch.where(chosen < f, chosen, pix_to_face)
    return pix_to_face.reshape(n, h, w, 1)
