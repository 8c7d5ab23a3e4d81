"""Phase-B loss terms on real photos (``data.mix``): detected landmarks, photometric, identity and perceptual.

Real photos have no latent, so G_A cannot give their albedo and is never trained on them: the render uses the
mean-face albedo ``G_A(w_avg)`` (the teacher's mean W+, i.e. its latent at truncation 0), lit by the estimated SH
light, which then carries the per-photo colour; the landmark term is the main shape signal, as in DECA/MICA's
training on photo collections. Landmark targets are the cached ones: 68 iBUG points when the cache holds them
(compared with FLAME's 68), else the detector's five (compared with :func:`landmarks5_from_68` of FLAME's 68),
weighted by the detection score.
"""

from __future__ import annotations

from typing import Callable

import torch

from albedogan.datamodules.real_faces import RealFaceSample
from albedogan.losses.landmark import landmark_loss
from albedogan.structures import FaceEstimate, RenderOutput

__all__ = ["real_face_terms", "mean_albedo"]


@torch.no_grad()
def mean_albedo(teacher: torch.nn.Module, generator: torch.nn.Module, device: torch.device) -> torch.Tensor:
    """(1, 3, R, R) G_A albedo at the teacher's mean latent (``mapping(z, psi=0)``)."""
    z = torch.zeros(1, int(teacher.z_dim), device=device)
    return generator(teacher.mapping(z, 0.0))


def real_face_terms(
    real: RealFaceSample,
    estimator: torch.nn.Module,
    albedo: torch.Tensor,
    render: Callable[[FaceEstimate, torch.Tensor], tuple[RenderOutput, torch.Tensor]],
    image_terms: Callable[[RenderOutput, torch.Tensor, torch.Tensor], dict[str, torch.Tensor]],
    landmark_weight: float,
) -> dict[str, torch.Tensor]:
    """Unweighted-by-fraction phase-B terms of a batch of real crops (weights of ``image_terms`` applied).

    Args:
        real: batch of crops, (N, 3, H, W) images at the renderer's size, (N, K, 2) NDC landmarks, (N, 5, 2) NDC
            detector points, (N,) scores.
        estimator: the estimator being refined (called with the crops, as with teacher images).
        albedo: (1, 3, R, R) albedo for every crop (:func:`mean_albedo`).
        render: ``(estimate, albedo (N, 3, R, R)) -> (render, face-region mask)``.
        image_terms: ``(render, mask, images) -> {name: weighted term}`` (photometric / identity / perceptual).
        landmark_weight: weight of the landmark term (0 disables it).

    Returns:
        ``{name: term}``: the image terms plus ``landmark``.
    """
    images = real.image
    n = images.shape[0]
    # like the teacher images, the crop is passed whole (its framing is set by data.mix.crop_scale)
    estimate = estimator(images)
    out, mask = render(estimate, albedo.expand(n, -1, -1, -1))
    terms = image_terms(out, mask, images)
    if landmark_weight > 0:
        pred = out.landmarks  # (N, 68, 2) image NDC
        if real.landmarks.shape[1] != 68:
            from albedogan.models.albedogan_module import landmarks5_from_68

            pred = landmarks5_from_68(pred)
        confidence = real.score.to(pred)[:, None].expand(n, pred.shape[1])
        terms["landmark"] = landmark_weight * landmark_loss(pred, real.landmarks.to(pred), confidence)
    return terms
