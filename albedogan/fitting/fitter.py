"""``FaceFitter``: analysis-by-synthesis refinement of a FLAME estimate against a photo crop (REFERENCE §2).

Starting from an estimator's :class:`~albedogan.structures.FaceEstimate` (camera and light in the crop's image NDC),
the fitter optimises, batched over faces, per stage (coarse to fine; iterations, learning rates per parameter and
loss weights come from the YAML of the ``fit`` config group):

* ``cam`` (weak perspective; log-scale and NDC translation offsets), ``global_pose``, ``neck_pose``, ``jaw_pose``,
  ``expression``, ``shape`` (identity, in the head model's basis), ``light`` (SH, 9 x 3) and ``albedo`` (one
  skin colour per face, the photometric stage's albedo model);
* against: the 2D landmarks with the dynamic contour (``FlameOutput.landmarks2d``) weighted as DECA does
  (:func:`~albedogan.losses.landmark_loss`), eye-closure and lip-distance terms (68 points), a photometric L1 on the
  skin (convex hull of the landmarks minus eyes and inner mouth, :func:`skin_mask_from_landmarks`, times the render
  coverage) with occluders (hair, glasses, hands) down-weighted by a Cauchy (IRLS) weight of the residual, and
  priors on shape, expression, neck/jaw pose, and the light's colour (grey) and ambient level.

The camera is first re-solved in closed form from the landmarks (least-squares scale and translation of the
current mesh's landmarks), so a poor estimator framing does not matter. Five-point targets (``landmarks=yunet5``)
are compared with the eye centres, nose tip and mouth corners of the fitted 68. Device- and dtype-agnostic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from albedogan.fitting.landmark_flame import landmark_flame
from albedogan.fitting.masks import skin_mask_from_landmarks
from albedogan.fitting.optim import PackedAdam
from albedogan.flame.head import HeadModel
from albedogan.losses.landmark import eye_closure_loss, landmark_loss, lip_distance_loss
from albedogan.losses.regularizers import l2_regularizer, light_regularizer
from albedogan.render.cameras import WeakPerspectiveCamera, ndc_to_pixels
from albedogan.render.renderer import FaceRenderer
from albedogan.render.sh_lighting import SH_CONSTANTS
from albedogan.structures import FaceEstimate, FlameParams, _TensorRecord
from albedogan.utils.shapes import assert_shape

__all__ = ["FIT_PARAMETERS", "FaceFitter", "FitResult", "FitStage", "five_points_torch"]

FIT_PARAMETERS = ("cam", "global_pose", "neck_pose", "jaw_pose", "expression", "shape", "light", "albedo")
"""Names a stage may optimise (keys of its ``lr`` mapping)."""

DEFAULT_WEIGHTS: dict[str, float] = {
    "landmarks": 1.0, "eye_closure": 0.5, "lip_distance": 0.5, "photometric": 0.5,
    "shape_prior": 1e-4, "expression_prior": 1e-4, "neck_prior": 1e-2, "jaw_prior": 1e-2,
    "light_colour_prior": 1e-3, "light_level_prior": 1e-3,
}


def five_points_torch(lmk68: torch.Tensor) -> torch.Tensor:
    """(N, 68, D) iBUG points -> (N, 5, D): eye centres, nose tip (30), mouth corners (48, 54) (YuNet order)."""
    return torch.stack([lmk68[:, 36:42].mean(1), lmk68[:, 42:48].mean(1), lmk68[:, 30], lmk68[:, 48], lmk68[:, 54]],
                       dim=1)


@dataclass(frozen=True)
class FitStage:
    """One coarse-to-fine stage.

    Attributes:
        name: for logs and the loss record.
        iters: Adam steps.
        lr: learning rate per optimised parameter (names from :data:`FIT_PARAMETERS`); absent = frozen.
        photometric: add the photometric term (renders every step).
    """

    name: str
    iters: int
    lr: Mapping[str, float]
    photometric: bool = False

    def __post_init__(self) -> None:
        unknown = sorted(set(self.lr) - set(FIT_PARAMETERS))
        if unknown:
            raise ValueError(f"fit stage {self.name!r}: unknown parameters {unknown}; choose from {FIT_PARAMETERS}")
        if int(self.iters) < 0:
            raise ValueError(f"fit stage {self.name!r}: iters must be >= 0, got {self.iters}")


@dataclass(frozen=True)
class FitResult(_TensorRecord):
    """The fitted faces (N of them).

    Attributes:
        estimate: fitted FLAME parameters, camera (N, 3) and SH light (N, 9, 3), in the crop's image NDC.
        albedo_colour: (N, 3) fitted mean skin albedo in [0, 1].
        landmarks: (N, 68, 2) fitted landmarks (dynamic contour), crop image NDC.
        skin_mask: (N, 1, R, R) the photometric skin mask at the fitter's render size (zeros without 68 points).
        losses: final value of every loss term (floats, summed over the batch's mean).
    """

    estimate: FaceEstimate
    albedo_colour: torch.Tensor
    landmarks: torch.Tensor
    skin_mask: torch.Tensor
    losses: dict = field(default_factory=dict)


class FaceFitter(nn.Module):
    """Analysis-by-synthesis fitter (see the module docstring).

    Args:
        head: the head model (FLAME + UV layout); FLAME 2020/2023 or the embedded head.
        stages: list of :class:`FitStage` or mappings with its fields (the YAML), run in order; empty = no fitting.
        weights: loss weights (keys of :data:`DEFAULT_WEIGHTS`; missing keys take those defaults).
        render_size: side (pixels) of the photometric renders (the crop is resized to it).
        robust_scale: Cauchy scale of the photometric residual (colour units): a pixel off by this much weighs 1/2.
        init_camera: re-solve the camera from the landmarks before the first stage.
        grey_light: start from the estimator's light made grey (its RGB mean per SH band): the colour belongs to the
            albedo, and a tinted start would tint the de-lit albedo of a grey photo.
    """

    def __init__(self, head: HeadModel, stages: Sequence[FitStage | Mapping[str, Any]] = (),
                 weights: Optional[Mapping[str, float]] = None, render_size: int = 64, robust_scale: float = 0.1,
                 init_camera: bool = True, grey_light: bool = True) -> None:
        super().__init__()
        unknown = sorted(set(weights or {}) - set(DEFAULT_WEIGHTS))
        if unknown:
            raise ValueError(f"fit weights: unknown keys {unknown}; choose from {sorted(DEFAULT_WEIGHTS)}")
        self.head = head
        self.stages = [s if isinstance(s, FitStage) else FitStage(**dict(s)) for s in stages]
        self.weights = {**DEFAULT_WEIGHTS, **{k: float(v) for k, v in (weights or {}).items()}}
        self.render_size = int(render_size)
        self.robust_scale = float(robust_scale)
        self.init_camera = bool(init_camera)
        self.grey_light = bool(grey_light)
        self.renderer = FaceRenderer(head.faces, head.verts_uvs, head.faces_uvs, self.render_size)
        self.landmark_flame = landmark_flame(head.flame)  # exact landmarks, a fraction of the vertices

    # -- helpers ---------------------------------------------------------------------------------------------------

    @staticmethod
    def solve_camera(points3d: torch.Tensor, target: torch.Tensor, weights: Optional[torch.Tensor] = None
                     ) -> torch.Tensor:
        """Least-squares weak-perspective camera ``[s, tx, ty]`` putting 3D points onto 2D targets.

        Args:
            points3d: (N, L, 3) FLAME-frame points (the posed mesh's landmarks).
            target: (N, L, 2) image-NDC targets.
            weights: optional (N, L) weights.

        Returns:
            (N, 3) camera (:func:`~albedogan.render.weak_perspective_project`: ``x = s (X + tx)``,
            ``y = -s (Y + ty)``).
        """
        w = torch.ones_like(target[..., 0]) if weights is None else weights
        x, y = points3d[..., 0], points3d[..., 1]
        u, v = target[..., 0], target[..., 1]
        ws = w.sum(1).clamp_min(1e-8)
        mx, my = (w * x).sum(1) / ws, (w * y).sum(1) / ws
        mu, mv = (w * u).sum(1) / ws, (w * v).sum(1) / ws
        xc, yc, uc, vc = x - mx[:, None], y - my[:, None], u - mu[:, None], v - mv[:, None]
        s = (w * (xc * uc - yc * vc)).sum(1) / (w * (xc * xc + yc * yc)).sum(1).clamp_min(1e-12)
        s = s.clamp_min(1e-3)
        return torch.stack([s, mu / s - mx, -mv / s - my], dim=-1)

    def _project(self, params: FlameParams, cam: torch.Tensor, mesh: bool = True):
        out = self.head(params) if mesh else self.landmark_flame(params)
        lmk = WeakPerspectiveCamera(cam).transform_points(out.landmarks2d)[..., :2]
        return out, lmk

    # -- fitting ---------------------------------------------------------------------------------------------------

    def forward(self, images: torch.Tensor, landmarks: torch.Tensor, init: FaceEstimate,
                landmark_confidence: Optional[torch.Tensor] = None) -> FitResult:
        """Fit N faces.

        Args:
            images: (N, 3, H, W) float [0, 1] crops (the frame of ``init``'s camera).
            landmarks: (N, 68, 2) or (N, 5, 2) target landmarks in the crops' image NDC.
            init: the start (e.g. the estimator's output on ``images``).
            landmark_confidence: optional (N, L) weights in [0, 1].

        Returns:
            :class:`FitResult` (detached).
        """
        assert_shape(images, [None, 3, None, None], "images")
        n = images.shape[0]
        if landmarks.ndim != 3 or landmarks.shape[0] != n or landmarks.shape[1:] not in ((68, 2), (5, 2)):
            raise ValueError(f"FaceFitter: landmarks must be (N, 68|5, 2) with N={n}, got {tuple(landmarks.shape)}")
        dtype, dev = images.dtype, images.device
        target = landmarks.to(dev, dtype)
        full = target.shape[1] == 68
        p0 = init.params
        var = {k: getattr(p0, k).detach().clone().to(dev, dtype)
               for k in ("shape", "expression", "global_pose", "neck_pose", "jaw_pose")}
        var["cam"] = torch.zeros(n, 3, device=dev, dtype=dtype)  # (log-scale, tx, ty) offsets in NDC
        var["light"] = init.light.detach().clone().to(dev, dtype)
        if self.grey_light and self.stages:
            var["light"] = var["light"].mean(-1, keepdim=True).expand(n, 9, 3).clone()
        eye = p0.eye_pose.detach().to(dev, dtype)
        cam0 = init.cam.detach().to(dev, dtype)

        def params() -> FlameParams:
            return FlameParams(var["shape"], var["expression"], var["global_pose"], var["neck_pose"], var["jaw_pose"],
                               eye)

        def camera() -> torch.Tensor:
            s = cam0[:, :1] * torch.exp(var["cam"][:, :1])
            return torch.cat([s, cam0[:, 1:] + var["cam"][:, 1:] / cam0[:, :1]], dim=-1)

        with torch.no_grad():
            if self.init_camera and self.stages:
                out = self.landmark_flame(params())
                pts = out.landmarks2d if full else five_points_torch(out.landmarks2d)
                rows = slice(17, 68) if full else slice(0, 5)
                cam0 = self.solve_camera(pts[:, rows], target[:, rows])

        # photometric target, skin mask and albedo start (at the render size)
        r = self.render_size
        small = F.interpolate(images, size=(r, r), mode="bilinear", align_corners=False, antialias=True)
        if full:
            skin = skin_mask_from_landmarks(ndc_to_pixels(target, r), r)
        else:
            skin = torch.zeros(n, 1, r, r, device=dev, dtype=dtype)
        denom = skin.sum((2, 3)).clamp_min(1.0)
        mean_colour = torch.where(skin.sum((2, 3)) > 0, (small * skin).sum((2, 3)) / denom,
                                  small.mean((2, 3)))  # (N, 3)
        level0 = var["light"][:, 0].mean(-1, keepdim=True).detach()  # (N, 1) band-0 level to keep
        var["albedo"] = (mean_colour / (SH_CONSTANTS[0] * level0).clamp_min(0.1)).clamp(0.05, 1.0)
        w = self.weights
        record: dict[str, float] = {}

        for stage in self.stages:
            names = [k for k in FIT_PARAMETERS if k in stage.lr]
            if not names or stage.iters == 0:
                continue
            opt = PackedAdam({k: var[k] for k in names}, stage.lr)
            for _ in range(int(stage.iters)):
                with torch.enable_grad():
                    var.update(opt.values())
                    terms = self._losses(params(), camera(), var, target, full, landmark_confidence,
                                         small if stage.photometric else None, skin, level0)
                    total = sum(w[k] * v for k, v in terms.items())
                    total.backward()
                opt.step()
            var.update({k: v.detach() for k, v in opt.values().items()})
            record.update({f"{stage.name}/{k}": float(v.detach()) for k, v in terms.items()})

        with torch.no_grad():
            cam = camera()
            _, lmk = self._project(params(), cam, mesh=False)
        estimate = FaceEstimate(params().detach(), cam.detach(), var["light"].detach())
        return FitResult(estimate=estimate, albedo_colour=var["albedo"].detach().clamp(0, 1), landmarks=lmk.detach(),
                         skin_mask=skin, losses=record)

    def _losses(self, params: FlameParams, cam: torch.Tensor, var: dict, target: torch.Tensor, full: bool,
                confidence: Optional[torch.Tensor], image: Optional[torch.Tensor], skin: torch.Tensor,
                level0: torch.Tensor) -> dict[str, torch.Tensor]:
        out, lmk = self._project(params, cam, mesh=image is not None)
        terms: dict[str, torch.Tensor] = {}
        if full:
            terms["landmarks"] = landmark_loss(lmk, target, confidence)
            terms["eye_closure"] = eye_closure_loss(lmk, target)
            terms["lip_distance"] = lip_distance_loss(lmk, target)
        else:
            terms["landmarks"] = landmark_loss(five_points_torch(lmk), target, confidence)
        terms["shape_prior"] = l2_regularizer(params.shape)
        terms["expression_prior"] = l2_regularizer(params.expression)
        terms["neck_prior"] = l2_regularizer(params.neck_pose)
        terms["jaw_prior"] = l2_regularizer(params.jaw_pose)
        light = var["light"]
        terms["light_colour_prior"] = light_regularizer(light)
        terms["light_level_prior"] = (light[:, 0] - level0).pow(2).sum(-1).mean()
        if image is not None:
            n = image.shape[0]
            tex = var["albedo"].clamp(0, 1)[:, :, None, None].expand(n, 3, 2, 2)
            rend = self.renderer.render_world(out.vertices, WeakPerspectiveCamera(cam), tex, light)
            mask = skin * rend.alpha
            residual = (rend.image - image).abs().mean(1, keepdim=True)  # (N, 1, R, R)
            robust = 1.0 / (1.0 + (residual.detach() / self.robust_scale) ** 2)  # Cauchy IRLS weight
            weight = mask * robust
            per = (residual * weight).flatten(1).sum(1) / weight.flatten(1).sum(1).clamp_min(1.0)
            terms["photometric"] = per.mean()
        return terms

