"""AlbedoGAN's objectives per phase, as NVlabs keeps them in ``training/loss.py``: each phase's loss is an object
that turns the tensors the LightningModule computed into *named* terms (already weighted), and the module only
orchestrates (sample -> estimate -> target -> these losses -> optimiser steps -> EMA).

* :class:`AlbedoPhaseLoss` (phase A): the discriminator terms (non-saturating logistic loss + lazy R1 on the
  targets) and the generator terms (non-saturating GAN loss, log-cosh self-distillation, the render comparison,
  lazy path length).
* :class:`ShapePhaseLoss` (phase B): the render comparison, landmarks and the code regularisers.
* :class:`RenderComparison`: photometric / identity / perceptual distance of a render to the teacher image, shared
  by both phases (each with its own weights).

Weights are frozen records (:class:`AlbedoLossWeights`, :class:`ShapeLossWeights`) without Python defaults: their
only defaults are in ``conf/model/albedogan.yaml`` (``model.albedo_weights`` / ``model.shape_weights``).

Conventions (StyleGAN2, NVlabs ``loss.py``): G_A's *raw* output ``x`` (the synthesis image, nominally in [-1, 1])
is what the discriminator sees, for the real targets (albedo in [0, 1] mapped by ``2a - 1``) and for the fakes alike,
in the D step and in G's adversarial term (:func:`albedo_to_d`); the clamped albedo ``clamp((x + 1) / 2, 0, 1)``
is used only where a physical reflectance is needed (rendering). Lazy regularisation counts steps *of the albedo
phase* (:meth:`PhaseSchedule.step_in_phase`): R1 runs when ``phase_step % r1_interval == 0`` and is scaled by
``r1_interval``, path length likewise with ``pl_interval``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from albedogan.losses.gan import PathLengthPenalty, d_logistic_loss, g_nonsaturating_loss, r1_penalty
from albedogan.losses.identity import IdentityLoss
from albedogan.losses.landmark import landmark_loss
from albedogan.losses.photometric import albedo_distillation_loss, masked_l1
from albedogan.losses.regularizers import l2_regularizer, light_regularizer
from albedogan.structures import FaceEstimate, RenderOutput

__all__ = [
    "AlbedoLossWeights",
    "AlbedoPhaseLoss",
    "RenderComparison",
    "ShapeLossWeights",
    "ShapePhaseLoss",
    "albedo_to_d",
]


def _check_non_negative(record: object) -> None:
    for name, value in asdict(record).items():  # type: ignore[call-overload]
        if not (float(value) >= 0.0):
            raise ValueError(f"{type(record).__name__}.{name} must be >= 0, got {value}")


@dataclass(frozen=True)
class AlbedoLossWeights:
    """Phase-A (albedo) loss weights; 0 disables a term. Defaults: ``conf/model/albedogan.yaml``.

    Attributes:
        gan: non-saturating G loss.
        distill: log-cosh self-distillation against the target and its mirror.
        photometric: masked L1 of the render (G_A's albedo on the estimated mesh) against the teacher image.
        identity: identity distance of the render composited over the teacher image.
        perceptual: perceptual distance of the same composite.
        path_length: path-length weight (StyleGAN2: 2).
        r1_gamma: R1 γ of the discriminator (StyleGAN2 FFHQ-1024: 10).
    """

    gan: float
    distill: float
    photometric: float
    identity: float
    perceptual: float
    path_length: float
    r1_gamma: float

    def __post_init__(self) -> None:
        _check_non_negative(self)


@dataclass(frozen=True)
class ShapeLossWeights:
    """Phase-B (shape) loss weights; 0 disables a term. Defaults: ``conf/model/albedogan.yaml``.

    Attributes:
        photometric, identity, perceptual: the render comparison (as in phase A, with G_A frozen).
        landmark: landmark loss against the configured landmark targets.
        reg_shape, reg_expression: squared L2 of the shape / expression codes.
        reg_light: DECA's light regulariser.
    """

    photometric: float
    landmark: float
    identity: float
    perceptual: float
    reg_shape: float
    reg_expression: float
    reg_light: float

    def __post_init__(self) -> None:
        _check_non_negative(self)


def albedo_to_d(albedo: torch.Tensor) -> torch.Tensor:
    """The discriminator's input for a UV albedo-scale map: (N, 3, R, R) ``a`` -> ``2a - 1`` (StyleGAN's [-1, 1];
    for G_A's raw ``(x + 1) / 2`` output this is exactly the synthesis image ``x``)."""
    return albedo * 2 - 1


class RenderComparison:
    """Photometric, identity and perceptual terms of a render against the teacher image.

    Args:
        identity_loss: :class:`~albedogan.losses.identity.IdentityLoss` or None (then identity weights must be 0).
        perceptual: perceptual distance ``(x, y) -> (N,)`` on images in [0, 1], or None (then perceptual weights
            must be 0).

    The networks are owned (registered) by the LightningModule; this object only holds references.
    """

    def __init__(self, identity_loss: IdentityLoss | None, perceptual: nn.Module | None) -> None:
        self.identity_loss = identity_loss
        self.perceptual = perceptual

    def __call__(
        self, out: RenderOutput, mask: torch.Tensor, image: torch.Tensor, photometric: float, identity: float,
        perceptual: float,
    ) -> dict[str, torch.Tensor]:
        """Weighted terms ``photometric`` / ``identity`` / ``perceptual`` (only those with weight > 0).

        Args:
            out: the render (``image`` (N, 3, H, W), ``alpha`` (N, 1, H, W)).
            mask: (N, 1, H, W) weights of the photometric L1 (render alpha × face region).
            image: (N, 3, H, W) teacher image in [0, 1].
            photometric, identity, perceptual: the weights.
        """
        terms: dict[str, torch.Tensor] = {}
        if photometric > 0:
            terms["photometric"] = photometric * masked_l1(out.image, image, mask)
        if identity > 0 or perceptual > 0:
            composite = out.image * out.alpha + image * (1 - out.alpha)  # (N, 3, H, W)
            if identity > 0:
                if self.identity_loss is None:
                    raise ValueError("RenderComparison: an identity weight is > 0 but there is no identity network")
                terms["identity"] = identity * self.identity_loss(composite, image)
            if perceptual > 0:
                if self.perceptual is None:
                    raise ValueError("RenderComparison: a perceptual weight is > 0 but there is no perceptual net")
                terms["perceptual"] = perceptual * self.perceptual(composite, image).mean()
        return terms


class AlbedoPhaseLoss:
    """Phase-A objectives of AlbedoGAN (StyleGAN2's ``Dmain``/``Dreg`` and ``Gmain``/``Greg`` with distillation).

    Args:
        weights: the phase-A weights.
        compare: the render comparison (photometric / identity / perceptual).
        path_length: the path-length penalty (its running mean is a buffer of the LightningModule).
        r1_interval: lazy R1 interval k_D in albedo-phase steps (StyleGAN2: 16).
        pl_interval: lazy path-length interval k_G in albedo-phase steps (StyleGAN2: 4).
    """

    def __init__(self, weights: AlbedoLossWeights, compare: RenderComparison, path_length: PathLengthPenalty,
                 r1_interval: int, pl_interval: int) -> None:
        if r1_interval < 1 or pl_interval < 1:
            raise ValueError(f"AlbedoPhaseLoss: r1_interval/pl_interval must be >= 1, got {r1_interval}/{pl_interval}")
        self.weights = weights
        self.compare = compare
        self.path_length = path_length
        self.r1_interval = int(r1_interval)
        self.pl_interval = int(pl_interval)

    def r1_due(self, phase_step: int) -> bool:
        """Whether the D step at albedo-phase step ``phase_step`` adds R1."""
        return self.weights.r1_gamma > 0 and phase_step % self.r1_interval == 0

    def pl_due(self, phase_step: int) -> bool:
        """Whether the G step at albedo-phase step ``phase_step`` adds the path-length penalty."""
        return self.weights.path_length > 0 and phase_step % self.pl_interval == 0

    def discriminator_terms(
        self, D: nn.Module, real: torch.Tensor, fake: torch.Tensor, with_r1: bool
    ) -> dict[str, torch.Tensor]:
        """``d_logistic`` and, with ``with_r1`` (:meth:`r1_due`), ``r1`` (= γ/2 · r1_interval · R1 at the real maps).

        Args:
            D: the UV discriminator.
            real: (N, 3, R, R) self-distillation targets, albedo scale [0, 1], detached.
            fake: (N, 3, R, R) G_A's raw output ``(x + 1) / 2`` (albedo scale, unclamped), detached.
            with_r1: add the R1 term.
        """
        do_r1 = bool(with_r1) and self.weights.r1_gamma > 0
        real_in = albedo_to_d(real).detach().requires_grad_(do_r1)
        real_logits = D(real_in)
        terms = {"d_logistic": d_logistic_loss(real_logits, D(albedo_to_d(fake.detach())))}
        if do_r1:
            terms["r1"] = (self.weights.r1_gamma / 2) * self.r1_interval * r1_penalty(real_logits, real_in)
        return terms

    def generator_terms(
        self,
        D: nn.Module,
        albedo_raw: torch.Tensor,
        real: torch.Tensor,
        trust: torch.Tensor,
        render: tuple[RenderOutput, torch.Tensor] | None,
        image: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """``gan``, ``distill`` and the render comparison of G's main step.

        Args:
            D: the UV discriminator (frozen for this step).
            albedo_raw: (N, 3, R, R) G_A's raw output ``(x + 1) / 2`` (unclamped, with grad).
            real: (N, 3, R, R) targets in [0, 1]; trust: (N, 1, R, R) their per-texel weights.
            render: ``(render, mask)`` of the estimated mesh with the clamped albedo, or None when no render term
                has weight (:attr:`needs_render`).
            image: (N, 3, H, W) teacher image in [0, 1].
        """
        w = self.weights
        terms: dict[str, torch.Tensor] = {}
        if w.gan > 0:
            terms["gan"] = w.gan * g_nonsaturating_loss(D(albedo_to_d(albedo_raw)))
        if w.distill > 0:
            terms["distill"] = w.distill * albedo_distillation_loss(albedo_raw, real, trust)
        if render is not None:
            out, mask = render
            terms.update(self.compare(out, mask, image, w.photometric, w.identity, w.perceptual))
        return terms

    @property
    def needs_render(self) -> bool:
        """Whether a render term (photometric / identity / perceptual) has weight."""
        w = self.weights
        return w.photometric > 0 or w.identity > 0 or w.perceptual > 0

    def path_length_term(self, synthesis: torch.Tensor, ws: torch.Tensor) -> dict[str, torch.Tensor]:
        """``path_length`` = weight · pl_interval · penalty, measured as StyleGAN2 does.

        Args:
            synthesis: (N, 3, R, R) G_A's synthesis output ``x`` on the [-1, 1] scale (not the (x + 1) / 2 albedo:
                that would halve the Jacobian), generated from ``ws``.
            ws: (N, num_ws, w_dim) the latents it was generated from (requires grad; StyleGAN2 uses untruncated
                latents here, see :class:`~albedogan.models.albedogan_module.AlbedoGANModule`).
        """
        penalty = self.path_length(synthesis, ws)
        return {"path_length": self.weights.path_length * self.pl_interval * penalty}


class ShapePhaseLoss:
    """Phase-B objectives: render comparison, landmarks, code regularisers.

    Args:
        weights: the phase-B weights.
        compare: the render comparison (shared with phase A).
    """

    def __init__(self, weights: ShapeLossWeights, compare: RenderComparison) -> None:
        self.weights = weights
        self.compare = compare

    def __call__(
        self,
        out: RenderOutput,
        mask: torch.Tensor,
        image: torch.Tensor,
        estimate: FaceEstimate,
        landmark_targets: tuple[torch.Tensor, torch.Tensor | None] | None,
    ) -> dict[str, torch.Tensor]:
        """Weighted terms of one shape step.

        Args:
            out: render of the estimated mesh (``landmarks`` (N, 68, 2) image NDC).
            mask: (N, 1, H, W) photometric weights.
            image: (N, 3, H, W) teacher image in [0, 1].
            estimate: the estimate being trained (codes for the regularisers, ``light`` (N, 9, 3)).
            landmark_targets: ``(targets, confidence)`` with targets (N, 68, 2) or (N, 5, 2) image NDC (5 = the
                detector's points, compared with :func:`~albedogan.flame.landmarks.landmarks5_from_68` of the
                render's landmarks) and confidence (N, K) or None; None = no landmark term.

        Raises:
            ValueError: every weight is 0 (nothing to optimise).
        """
        from albedogan.flame.landmarks import landmarks5_from_68

        w = self.weights
        terms = self.compare(out, mask, image, w.photometric, w.identity, w.perceptual)
        if w.landmark > 0 and landmark_targets is not None:
            targets, confidence = landmark_targets
            pred = landmarks5_from_68(out.landmarks) if targets.shape[1] == 5 else out.landmarks
            terms["landmark"] = w.landmark * landmark_loss(pred, targets, confidence)
        if w.reg_shape > 0:
            terms["reg_shape"] = w.reg_shape * l2_regularizer(estimate.params.shape)
        if w.reg_expression > 0:
            terms["reg_expression"] = w.reg_expression * l2_regularizer(estimate.params.expression)
        if w.reg_light > 0:
            terms["reg_light"] = w.reg_light * light_regularizer(estimate.light)
        if not terms:
            raise ValueError("ShapePhaseLoss: every shape-phase loss weight is 0; nothing to optimise in phase B")
        return terms
