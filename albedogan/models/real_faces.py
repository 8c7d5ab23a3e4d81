"""Phase-B loss terms on real photos (``data.mix``): detected landmarks, photometric, identity, perceptual and the
code regularisers — :class:`~albedogan.losses.albedogan.ShapePhaseLoss` applied to real crops.

Real photos have no latent, so G_A cannot give their albedo and is never trained on them: the render uses the
mean-face albedo ``G_A(w_avg)`` (the teacher's mean W+, i.e. its latent at truncation 0), lit by the estimated SH
light, which then carries the per-photo colour; the landmark term is the main shape signal, as in DECA/MICA's
training on photo collections. Landmark targets are the cached ones: 68 iBUG points when the cache holds them
(compared with FLAME's 68), else the detector's five (compared with the five derived from FLAME's 68), weighted
by the detection score.
"""

from __future__ import annotations

from typing import Callable

import torch

from albedogan.datamodules.real_faces import RealFaceSample
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
    shape_loss: Callable[..., dict[str, torch.Tensor]],
) -> dict[str, torch.Tensor]:
    """Phase-B terms of a batch of real crops (not yet scaled by the real fraction).

    Args:
        real: batch of crops: (N, 3, H, W) images at the renderer's size, (N, K, 2) image-NDC landmarks (K = 68 or
            5), (N,) detection scores.
        estimator: the estimator being refined (called with the whole crops, as with teacher images).
        albedo: (1, 3, R, R) albedo for every crop (:func:`mean_albedo`).
        render: ``(estimate, albedo (N, 3, R, R)) -> (render, face-region mask)``.
        shape_loss: the module's :class:`~albedogan.losses.albedogan.ShapePhaseLoss`.

    Returns:
        ``{name: weighted term}`` (photometric, landmark, identity, perceptual, regularisers as weighted).
    """
    images = real.image
    n = images.shape[0]
    estimate = estimator(images)
    out, mask = render(estimate, albedo.expand(n, -1, -1, -1))
    targets = real.landmarks.to(out.landmarks)
    confidence = real.score.to(targets)[:, None].expand(n, targets.shape[1])
    return shape_loss(out, mask, images, estimate, (targets, confidence))
