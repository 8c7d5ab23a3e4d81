"""Supervised pre-training of a trainable estimator on a teacher with ground truth (the embedded world's DECA).

AlbedoGAN starts from a *pretrained* per-image estimator: DECA's encoder (pose, expression, camera, light) and MICA
(shape). The embedded world has no such network, so ``python train.py experiment=synthetic_estimator`` trains its
stand-in on the procedural teacher, whose every image comes with the exact parameters that made it. The result is
an embedded asset (``checkpoints/embedded_estimator.safetensors``) that ``experiment=synthetic`` loads through
``estimator.weights_path``, exactly as ``experiment=ffhq`` loads ``deca_model.tar``.

Loss, per batch of teacher samples: for every part ``p`` with weight ``w_p > 0`` (:data:`PARTS`),
``w_p · mean_d ((pred_d − true_d) / σ_d)²`` over the part's dimensions ``d`` that vary in the teacher's world
(σ_d = the teacher's standard deviation of that parameter, measured once on ``calibration_samples`` latents drawn
from ``seed``; dimensions the teacher never varies are left out), plus ``w_landmark ·`` the landmark loss of the 68
projected landmarks of FLAME(estimated pose / expression / camera, *true* shape) against the true ones (image-space
alignment, which is what unwrapping needs, without teaching shape). With ``shape: 0`` (the embedded default) the
shape output is never trained, stays at the mean face, and AlbedoGAN's phase B is what learns identity shape.
The learning rate follows a cosine decay to ``lr_final_fraction · lr`` over ``trainer.max_steps`` (``constant``:
no decay).

Validation (fixed seeds) logs the normalised RMS error per part (``val/<part>_error``), the landmark error in
pixels, the neutral-shape error in mm and the error of the self-distillation target unwrapped through the estimate
(``val/albedo_error_target``), i.e. how good the albedo targets of phase A will be.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

import pytorch_lightning as pl
import torch
from torch import nn

from albedogan.datamodules.latent_stream import LatentSample
from albedogan.eval.synthetic_gt import albedo_error, face_texel_mask, landmark_error, neutral_shape_error, resize_uv
from albedogan.flame.head import HeadModel
from albedogan.losses.landmark import landmark_loss
from albedogan.models.estimator import fit_code_sizes
from albedogan.render.cameras import WeakPerspectiveCamera
from albedogan.structures import FaceEstimate
from albedogan.teachers.base import Teacher

__all__ = ["PARTS", "EstimatorPretrainModule", "estimate_parts"]

PARTS: tuple[str, ...] = ("pose", "cam", "light", "expression", "shape")
"""Supervised parameter groups: global + jaw pose (6), camera (3), SH light (27), expression, shape."""


def estimate_parts(estimate: FaceEstimate) -> dict[str, torch.Tensor]:
    """Flatten a :class:`FaceEstimate` into the (N, D_p) blocks of :data:`PARTS`."""
    p = estimate.params
    return {
        "pose": torch.cat([p.global_pose, p.jaw_pose], dim=1),
        "cam": estimate.cam,
        "light": estimate.light.flatten(1),
        "expression": p.expression,
        "shape": p.shape,
    }


class EstimatorPretrainModule(pl.LightningModule):
    """Train ``estimator.parameter_groups()`` to regress the teacher's ground truth (see the module docstring).

    Args:
        teacher: a teacher whose samples carry ``truth`` (the procedural teacher).
        head: the head model (landmarks and neutral meshes for the metrics).
        estimator: a :class:`~albedogan.models.estimator.NetworkEstimator` (or any estimator with trainable
            ``parameter_groups()``) whose shape/expression sizes match the head's.
        target_builder: the AlbedoGAN target builder, for ``val/albedo_error_target`` (None: not logged).
        optimizer: partial optimiser, called as ``optimizer(params, lr=lr)``.
        lr: learning rate.
        part_weights: weight per part of :data:`PARTS` and ``landmark`` (missing: 0).
        lr_schedule: ``"cosine"`` (decay to ``lr_final_fraction · lr`` at ``trainer.max_steps``) or ``"constant"``.
        lr_final_fraction: final learning rate / ``lr`` of the cosine schedule.
        calibration_samples: latents used to measure the teacher's parameter spread.
        uv_resolution: UV resolution of the albedo metric.
        truncation_psi: teacher truncation (None = its default).
        seed: calibration seed; every step also reseeds torch with ``(seed, step, rank)`` like the AlbedoGAN module.
    """

    def __init__(
        self,
        teacher: Teacher,
        head: HeadModel,
        estimator: nn.Module,
        target_builder: nn.Module | None,
        optimizer,
        lr: float = 1e-3,
        part_weights: Mapping[str, float] | None = None,
        lr_schedule: str = "cosine",
        lr_final_fraction: float = 0.05,
        calibration_samples: int = 512,
        uv_resolution: int = 32,
        truncation_psi: float | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        weights = {k: float(v) for k, v in dict(part_weights or {}).items()}
        unknown = sorted(set(weights) - set(PARTS) - {"landmark"})
        if unknown:
            raise ValueError(f"EstimatorPretrainModule: unknown part(s) {unknown} in part_weights; choose from "
                             f"{PARTS + ('landmark',)}")
        if lr_schedule not in ("cosine", "constant"):
            raise ValueError(f"EstimatorPretrainModule: lr_schedule must be 'cosine' or 'constant', got {lr_schedule!r}")
        if any(w < 0 for w in weights.values()):
            raise ValueError(f"EstimatorPretrainModule: part weights must be >= 0, got {weights}")
        if not any(w > 0 for w in weights.values()):
            raise ValueError(f"EstimatorPretrainModule: every part weight is 0 ({weights}); nothing to train")
        self.teacher = teacher.requires_grad_(False).eval()
        self.head = head
        self.estimator = estimator
        self.target_builder = target_builder
        self.optimizer = optimizer
        self.lr = float(lr)
        self.part_weights = {p: weights.get(p, 0.0) for p in PARTS}
        self.landmark_weight = weights.get("landmark", 0.0)
        self.lr_schedule, self.lr_final_fraction = lr_schedule, float(lr_final_fraction)
        self.truncation_psi = truncation_psi
        self.seed = int(seed)
        self.uv_resolution = int(uv_resolution)
        self._groups = list(estimator.parameter_groups()) if hasattr(estimator, "parameter_groups") else []
        if not self._groups:
            raise ValueError(f"EstimatorPretrainModule: {type(estimator).__name__} has no trainable parameters "
                             "(set estimator.trainable, e.g. [encoder])")
        std = self._calibrate(int(calibration_samples))
        for part in PARTS:
            self.register_buffer(f"std_{part}", std[part].clamp_min(1e-6), persistent=False)
            self.register_buffer(f"varies_{part}", std[part] > 1e-6, persistent=False)
        self.register_buffer("face_texels", face_texel_mask(head, self.uv_resolution), persistent=False)

    @torch.no_grad()
    def _calibrate(self, n: int) -> dict[str, torch.Tensor]:
        """The teacher's standard deviation of every parameter, from ``n`` latents drawn from ``seed``."""
        if n < 2:
            raise ValueError(f"EstimatorPretrainModule: calibration_samples must be >= 2, got {n}")
        gen = torch.Generator().manual_seed(self.seed)
        z = torch.randn(n, self.teacher.z_dim, generator=gen)
        sample = self.teacher.sample(z, self.truncation_psi)
        if sample.truth is None:
            raise ValueError(f"EstimatorPretrainModule: {type(self.teacher).__name__} gives no ground truth; "
                             "pre-training needs the procedural teacher (teacher=procedural)")
        parts = estimate_parts(self._fit_sizes(sample.truth.estimate))
        return {k: v.std(0) for k, v in parts.items()}

    def _fit_sizes(self, estimate: FaceEstimate) -> FaceEstimate:
        """Truth with shape/expression padded or cut to the estimator's sizes."""
        params = fit_code_sizes(estimate.params, getattr(self.estimator, "n_shape", None),
                                getattr(self.estimator, "n_exp", None))
        return dataclasses.replace(estimate, params=params)

    def configure_optimizers(self) -> dict:
        opt = self.optimizer(self._groups, lr=self.lr)
        total = int(getattr(self.trainer, "max_steps", -1) or -1) if self._trainer is not None else -1
        if self.lr_schedule == "constant" or total <= 0:
            return {"optimizer": opt}
        floor = self.lr_final_fraction

        def factor(step: int) -> float:
            t = min(step, total) / total
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def _landmarks(self, estimate: FaceEstimate, shape: torch.Tensor | None = None) -> torch.Tensor:
        """(N, 68, 2) image-NDC landmarks of FLAME(estimate) (with ``shape`` in place of the estimated one)."""
        p = estimate.params if shape is None else dataclasses.replace(estimate.params, shape=shape)
        flame = self.head(p)
        return WeakPerspectiveCamera(estimate.cam).transform_points(flame.landmarks2d)[..., :2]

    def part_errors(self, estimate: FaceEstimate, truth: FaceEstimate) -> dict[str, torch.Tensor]:
        """Mean squared normalised error per part (over the dimensions the teacher varies)."""
        pred, true = estimate_parts(estimate), estimate_parts(self._fit_sizes(truth))
        out = {}
        for part in PARTS:
            keep = getattr(self, f"varies_{part}")
            if pred[part].shape[1] != keep.shape[0]:
                raise ValueError(f"EstimatorPretrainModule: estimator part {part!r} has {pred[part].shape[1]} values, "
                                 f"the teacher's truth {keep.shape[0]}")
            z = (pred[part] - true[part]) / getattr(self, f"std_{part}")
            out[part] = z[:, keep].pow(2).mean() if bool(keep.any()) else z.new_zeros(())
        return out

    def training_step(self, batch: LatentSample, batch_idx: int) -> torch.Tensor:
        torch.manual_seed(self.seed * 1_000_003 + self.global_step * 131 + self.global_rank)
        with torch.no_grad():
            sample = self.teacher.sample(batch.z.to(self.device), self.truncation_psi)
        self.estimator.train()
        estimate = self.estimator(sample.image)
        errors = self.part_errors(estimate, sample.truth.estimate)
        loss = sum(self.part_weights[p] * errors[p] for p in PARTS if self.part_weights[p] > 0)
        if self.landmark_weight > 0:
            true_shape = self._fit_sizes(sample.truth.estimate).params.shape
            errors["landmark"] = landmark_loss(self._landmarks(estimate, true_shape), sample.truth.landmarks2d)
            loss = loss + self.landmark_weight * errors["landmark"]
        if not torch.isfinite(loss.detach()):
            raise FloatingPointError(f"non-finite pre-training loss at step {self.global_step}: "
                                     f"{ {k: float(v) for k, v in errors.items()} }")
        n = sample.image.shape[0]
        self.log("train/loss", loss.detach(), batch_size=n, prog_bar=True, sync_dist=True)  # mean over ranks
        for part, value in errors.items():
            self.log(f"train/{part}", value.detach(), batch_size=n, sync_dist=True)
        return loss

    def validation_step(self, batch: LatentSample, batch_idx: int) -> None:
        sample = self.teacher.sample(batch.z.to(self.device), self.truncation_psi)
        n = sample.image.shape[0]
        truth = sample.truth
        estimate = self.estimator(sample.image)
        metrics = {f"{p}_error": v.sqrt() for p, v in self.part_errors(estimate, truth.estimate).items()}
        metrics["landmark_error_px"] = landmark_error(self._landmarks(estimate), truth.landmarks2d, sample.image.shape[-1]).mean()
        metrics["shape_error_mm"] = neutral_shape_error(self.head, estimate.params.shape,
                                                        truth.estimate.params.shape).mean()
        if self.target_builder is not None:
            target = resize_uv(self.target_builder(sample.image, estimate).texture, self.uv_resolution)
            metrics["albedo_error_target"] = albedo_error(target, truth.albedo, self.face_texels).mean()
        for name, value in metrics.items():
            self.log(f"val/{name}", value, batch_size=n, sync_dist=True)
