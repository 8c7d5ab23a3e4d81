"""Self-distillation targets: pseudo ground-truth UV albedo unwrapped from teacher images (REFERENCE §3).

:class:`AlbedoTargetBuilder` turns a teacher image and its per-image 3D estimate into a UV albedo target and a
per-texel trust weight, batched and without loops over texels:

1. FLAME(estimate.params) -> world vertices (metres, FLAME frame); project them with
   ``WeakPerspectiveCamera(estimate.cam)`` into image NDC (conventions: ``albedogan.render``).
2. :meth:`UVSpace.unwrap <albedogan.render.UVSpace.unwrap>`: sample the image at every texel's projected position;
   a texel counts only when it is visible (screen z-buffer depth test) and front-facing.
3. Optional de-lighting: divide by the SH shading of the estimate's light evaluated on the UV map of the *world*
   vertex normals (the frame :class:`~albedogan.render.FaceRenderer` lights in), clamped below by
   ``delight_min_shading`` so dark grazing texels do not explode; the result is clamped to [0, 1].
4. Mirror completion: blend each texel with its left/right partner by confidence
   (:func:`albedogan.render.mirror_complete` through the head's :class:`~albedogan.render.UVMirror`: FLAME's UV
   layout is not symmetric about u = 0.5, so partners come from the template's mirror vertex pairs, not from a
   width flip). The confidence is the visibility (optionally soft in the facing angle) times, with
   ``yaw_weighting``, ``1 - clamp(|yaw| / yaw_full_degrees, 0, 1)`` on the half of the head turned away from the
   camera: the blend follows the yaw *magnitude* continuously — a frontal face keeps
   both halves, a strongly turned face takes its far half from the mirrored near half. (The official code uses
   only the yaw sign, and an angle proxy in wrong units.)
5. Texels outside the chosen UV region (face / face+eyes mask, or all UV-covered texels) and texels seen by neither
   side are filled with a mean albedo: a given mean texture/colour, or per image the weight-averaged colour of the
   trusted region texels.

Targets carry no gradient: :meth:`AlbedoTargetBuilder.forward` runs under ``@torch.no_grad()``; the estimate and
image are read, never modified.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from albedogan.flame.head import HeadModel
from albedogan.flame.landmarks import contour_yaw_degrees
from albedogan.render.cameras import WeakPerspectiveCamera
from albedogan.render.normals import vertex_normals
from albedogan.render.sh_lighting import sh_shading
from albedogan.render.uv import UVMirror, UVSpace, mirror_complete, resize_uv
from albedogan.structures import FaceEstimate, _TensorRecord
from albedogan.utils.precision import fp32_island
from albedogan.utils.shapes import assert_shape

__all__ = ["AlbedoTarget", "AlbedoTargetBuilder"]

_FILL_MODES = ("mean", "none")
_REGIONS = ("face", "face_eye", "all")
_FALLBACK_ALBEDO = 0.5  # mid grey when an image has no trusted texel at all (nothing to average)


@dataclass(frozen=True)
class AlbedoTarget(_TensorRecord):
    """A batch of pseudo ground-truth UV albedos (FLAME UV layout, row 0 = v = 1; see ``albedogan.render``).

    Attributes:
        texture: (N, 3, R, R) float albedo target in [0, 1]: unwrapped (and optionally de-lit) image colours where
            seen, mirror-completed where only the mirror side was seen, the fill albedo elsewhere.
        weight: (N, 1, R, R) float in [0, 1], how much each texel is trusted: 1 for texels seen directly (with full
            confidence), ``mirror_weight`` times the mirror confidence for completed texels, ``fill_weight`` for
            filled texels (0 by default), blended in between.
        visibility: (N, 1, R, R) float in [0, 1], the raw visibility from the unwrap (before yaw weighting,
            mirroring and region masking).
        visible_fraction: (N,) float in [0, 1], fraction of the region's texels seen directly.
        completed_fraction: (N,) float in [0, 1], fraction of the region's texels seen directly or via the mirror.
    """

    texture: torch.Tensor
    weight: torch.Tensor
    visibility: torch.Tensor
    visible_fraction: torch.Tensor
    completed_fraction: torch.Tensor


class AlbedoTargetBuilder(nn.Module):
    """Teacher image + :class:`~albedogan.structures.FaceEstimate` -> :class:`AlbedoTarget` (see module docstring).

    Args:
        head: the head model (FLAME + UV layout + UV masks); kept as a submodule so ``.to()`` moves it.
        uv_resolution: R, side of the target UV maps in texels.
        delight: divide the unwrapped colours by the estimate's SH shading.
        delight_min_shading: lower clamp of the shading before dividing (> 0).
        fill: ``"mean"`` (fill with ``mean_albedo`` or the per-image mean of trusted region texels) or ``"none"``
            (fill with 0 and weight 0).
        mirror: complete unseen texels from the mirrored UV map.
        mirror_weight: trust in [0, 1] given to texels that come from the mirror side.
        fill_weight: trust in [0, 1] given to filled texels (only with ``fill="mean"``).
        depth_tolerance: depth-test slack of :meth:`UVSpace.unwrap` (fraction of each mesh's depth extent).
        soft_facing: 0 for a hard front-facing test, > 0 ramps visibility as ``clamp(n_z / soft_facing, 0, 1)``
            (view-frame normal z), so grazing texels get low confidence.
        yaw_weighting: reduce the confidence of the half of the head turned away from the camera by the yaw
            magnitude (see module docstring).
        yaw_full_degrees: yaw (degrees) at which the far half's own confidence reaches 0 (> 0).
        region: which texels the target keeps: ``"face"`` (``head.uv_face_mask``), ``"face_eye"``
            (``head.uv_face_eye_mask``) or ``"all"`` (every texel the UV layout covers); the rest is filled.
        mean_albedo: optional fill albedo in [0, 1]: (3,) RGB colour or (1, 3, Hm, Wm) mean texture (resized to R).
    """

    def __init__(
        self,
        head: HeadModel,
        uv_resolution: int = 256,
        delight: bool = True,
        delight_min_shading: float = 0.2,
        fill: Literal["mean", "none"] = "mean",
        mirror: bool = True,
        mirror_weight: float = 0.5,
        fill_weight: float = 0.0,
        depth_tolerance: float = 0.02,
        soft_facing: float = 0.0,
        yaw_weighting: bool = True,
        yaw_full_degrees: float = 60.0,
        region: Literal["face", "face_eye", "all"] = "face_eye",
        mean_albedo: Optional[torch.Tensor | Sequence[float]] = None,
    ) -> None:
        super().__init__()
        if fill not in _FILL_MODES:
            raise ValueError(f"AlbedoTargetBuilder: fill must be one of {_FILL_MODES}, got {fill!r}")
        if region not in _REGIONS:
            raise ValueError(f"AlbedoTargetBuilder: region must be one of {_REGIONS}, got {region!r}")
        if not delight_min_shading > 0:
            raise ValueError(f"AlbedoTargetBuilder: delight_min_shading must be > 0, got {delight_min_shading}")
        for name, value in (("mirror_weight", mirror_weight), ("fill_weight", fill_weight)):
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"AlbedoTargetBuilder: {name} must be in [0, 1], got {value}")
        if not yaw_full_degrees > 0:
            raise ValueError(f"AlbedoTargetBuilder: yaw_full_degrees must be > 0, got {yaw_full_degrees}")
        self.head = head
        self.uv_space = UVSpace(head.faces, head.verts_uvs, head.faces_uvs, int(uv_resolution))
        self.resolution = self.uv_space.resolution
        self.uv_mirror = UVMirror.from_head(head, self.resolution)
        self.delight = bool(delight)
        self.delight_min_shading = float(delight_min_shading)
        self.fill = fill
        self.mirror = bool(mirror)
        self.mirror_weight = float(mirror_weight)
        self.fill_weight = float(fill_weight) if fill == "mean" else 0.0
        self.depth_tolerance = float(depth_tolerance)
        self.soft_facing = float(soft_facing)
        self.yaw_weighting = bool(yaw_weighting)
        self.yaw_full_degrees = float(yaw_full_degrees)
        self.region_name = region

        coverage = self.uv_space.coverage  # (1, 1, R, R)
        if region == "all":
            region_mask = coverage
        else:
            src = head.uv_face_mask if region == "face" else head.uv_face_eye_mask
            region_mask = (resize_uv(src.detach().float(), self.resolution) > 0.5).float().to(coverage.device) * coverage
        self.register_buffer("region", region_mask, persistent=False)

        # Which side of the head each texel lies on: sign of the neutral template's x (+x = subject's left).
        with torch.no_grad():
            rest = head(head.zero_params(1)).vertices.detach().to(coverage.device, torch.float32)  # (1, V, 3)
            side = torch.sign(self.uv_space.attribute_map(rest[..., :1]))  # (1, 1, R, R)
        self.register_buffer("texel_side", side * coverage, persistent=False)

        if mean_albedo is None:
            self.register_buffer("mean_albedo", None, persistent=False)
        else:
            mean = torch.as_tensor(mean_albedo, dtype=torch.float32).detach().to(coverage.device)
            if mean.ndim == 1:
                assert_shape(mean, [3], "mean_albedo")
                mean = mean.view(1, 3, 1, 1).expand(1, 3, *self.resolution).clone()
            else:
                assert_shape(mean, [1, 3, None, None], "mean_albedo")
                mean = resize_uv(mean, self.resolution)
            self.register_buffer("mean_albedo", mean.clamp(0.0, 1.0), persistent=False)

    def shading_map(self, world_vertices: torch.Tensor, light: torch.Tensor) -> torch.Tensor:
        """SH shading of each texel, as :class:`~albedogan.render.FaceRenderer` would apply it.

        Args:
            world_vertices: (N, V, 3) float FLAME-frame vertices, metres.
            light: (N, 9, 3) float SH coefficients (FLAME/world frame).

        Returns:
            (N, 3, R, R) float shading (unclamped), 0 outside the UV layout.
        """
        normals = vertex_normals(world_vertices, self.uv_space.faces)  # (N, V, 3)
        normal_map = F.normalize(self.uv_space.attribute_map(normals), dim=1, eps=1e-12)  # (N, 3, R, R)
        shading = sh_shading(normal_map.permute(0, 2, 3, 1), light.to(normal_map.dtype))  # (N, R, R, 3)
        return shading.permute(0, 3, 1, 2) * self.uv_space.coverage.to(shading.dtype)

    def yaw_confidence(self, estimate: FaceEstimate) -> torch.Tensor:
        """Per-texel factor in [0, 1] that lowers the far half's confidence by the yaw magnitude.

        Args:
            estimate: gives ``params.global_pose`` / ``params.neck_pose`` (N, 3) axis-angle radians.

        Returns:
            (N, 1, R, R) float: 1 on the near half and at the midline, ``1 - clamp(|yaw| / yaw_full_degrees, 0, 1)``
            on the far half (the half with ``sign(template x) == sign(yaw)``; positive yaw turns +x away).
        """
        yaw = contour_yaw_degrees(estimate.params.global_pose, estimate.params.neck_pose)  # (N,)
        strength = (yaw.abs() / self.yaw_full_degrees).clamp(0.0, 1.0).view(-1, 1, 1, 1)
        side = self.texel_side.to(yaw.dtype)  # (1, 1, R, R)
        far = (side * torch.sign(yaw).view(-1, 1, 1, 1) > 0).to(yaw.dtype)  # (N, 1, R, R)
        return 1.0 - strength * far

    @torch.no_grad()
    @fp32_island
    def forward(self, image: torch.Tensor, estimate: FaceEstimate, delight: Optional[bool] = None) -> AlbedoTarget:
        """Build targets (no gradient; inputs are not modified; an fp32 island under autocast).

        Args:
            image: (N, 3, H, W) float RGB teacher images in [0, 1].
            estimate: per-image FLAME parameters (matching the head's n_shape / n_exp), camera (N, 3) and light
                (N, 9, 3).
            delight: override the builder's ``delight`` for this call (``False`` gives the unwrapped image texture
                with its shading, what the official demos output).

        Returns:
            :class:`AlbedoTarget` with R = ``uv_resolution``.
        """
        assert_shape(image, [None, 3, None, None], "image")
        n = image.shape[0]
        assert_shape(estimate.cam, [n, 3], "estimate.cam")
        assert_shape(estimate.light, [n, 9, 3], "estimate.light")
        world = self.head(estimate.params).vertices  # (N, V, 3) metres
        verts_ndc = WeakPerspectiveCamera(estimate.cam.to(world.dtype)).transform_points(world)  # (N, V, 3)
        colours, visibility = self.uv_space.unwrap(
            image.to(world.dtype), verts_ndc, depth_tolerance=self.depth_tolerance, soft_facing=self.soft_facing
        )  # (N, 3, R, R), (N, 1, R, R)
        seen = (visibility > 0).to(colours.dtype)
        if self.delight if delight is None else delight:
            shading = self.shading_map(world, estimate.light)
            colours = (colours / shading.clamp(min=self.delight_min_shading)).clamp(0.0, 1.0) * seen

        confidence = visibility
        if self.yaw_weighting:
            confidence = confidence * self.yaw_confidence(estimate)
        if self.mirror:
            completed, coverage = mirror_complete(colours, visibility, self.uv_mirror, weights=confidence)
        else:
            completed, coverage = colours, confidence
        coverage = coverage.clamp(0.0, 1.0)
        region = self.region.to(colours.dtype)  # (1, 1, R, R)
        trust = (confidence + self.mirror_weight * (coverage - confidence)) * region  # (N, 1, R, R)
        kept = coverage * region  # how much of each texel comes from the image

        if self.fill == "none":
            fill = torch.zeros_like(completed)
        elif self.mean_albedo is not None:
            fill = self.mean_albedo.to(completed.dtype).expand_as(completed)
        else:
            total = trust.sum(dim=(2, 3))  # (N, 1)
            mean = (completed * trust).sum(dim=(2, 3)) / total.clamp_min(1e-8)  # (N, 3)
            mean = torch.where(total > 1e-8, mean, torch.full_like(mean, _FALLBACK_ALBEDO))
            fill = mean[:, :, None, None].expand_as(completed)
        texture = (kept * completed + (1.0 - kept) * fill).clamp(0.0, 1.0)
        weight = (trust + self.fill_weight * (1.0 - kept)).clamp(0.0, 1.0)

        region_size = region.sum().clamp_min(1.0)
        visible_fraction = (seen * region).sum(dim=(1, 2, 3)) / region_size
        completed_fraction = ((coverage > 1e-6).to(colours.dtype) * region).sum(dim=(1, 2, 3)) / region_size
        return AlbedoTarget(
            texture=texture,
            weight=weight,
            visibility=visibility,
            visible_fraction=visible_fraction,
            completed_fraction=completed_fraction,
        )
