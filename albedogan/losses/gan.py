"""StyleGAN2 objectives: non-saturating logistic losses, lazy R1 and path-length regularisation.

Inputs are discriminator logits (N,) or (N, 1). Regularisers return the *unscaled* penalty; multiply by the weight
and by the lazy interval when they run every k steps (the usual "lazy regularisation").
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from albedogan.utils.precision import fp32_island

__all__ = ["d_logistic_loss", "g_nonsaturating_loss", "r1_penalty", "PathLengthPenalty"]


def d_logistic_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """softplus(−D(real)) + softplus(D(fake)), averaged over the batch."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def g_nonsaturating_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """softplus(−D(G(w))), averaged over the batch."""
    return F.softplus(-fake_logits).mean()


@fp32_island
def r1_penalty(real_logits: torch.Tensor, real_images: torch.Tensor) -> torch.Tensor:
    """R1: mean over the batch of ‖∇_x D(x)‖² at real images (``real_images`` must require grad); fp32 under autocast.

    Returns the penalty only; the StyleGAN2 loss term is (γ/2)·R1 (× the lazy interval).
    """
    (grad,) = torch.autograd.grad(real_logits.sum(), real_images, create_graph=True)
    return grad.pow(2).flatten(1).sum(1).mean()


class PathLengthPenalty(nn.Module):
    """Path-length regulariser with a persistent exponential running mean (the official code reset it per call).

    penalty = mean((‖J_wᵀ y‖ − a)²), with y ~ N(0, I)/√(H·W) and a the running mean of the path lengths,
    updated as a ← a + decay·(mean length − a). The running mean is a buffer, so it is checkpointed and synchronised
    with the module's device.

    Args:
        decay: update rate of the running mean (StyleGAN2: 0.01).
    """

    def __init__(self, decay: float = 0.01) -> None:
        super().__init__()
        self.decay = decay
        self.register_buffer("mean_path_length", torch.zeros(()))

    @fp32_island
    def forward(self, images: torch.Tensor, ws: torch.Tensor) -> torch.Tensor:
        """images (N, C, H, W) generated from ws (N, num_ws, w_dim) with grad → scalar penalty (fp32 under autocast)."""
        noise = torch.randn_like(images) / math.sqrt(images.shape[2] * images.shape[3])
        (grad,) = torch.autograd.grad((images * noise).sum(), ws, create_graph=True)
        lengths = grad.pow(2).sum(-1).mean(-1).sqrt() if grad.ndim == 3 else grad.pow(2).sum(-1).sqrt()
        with torch.no_grad():
            target = self.mean_path_length + self.decay * (lengths.mean() - self.mean_path_length)
            if torch.distributed.is_available() and torch.distributed.is_initialized():
                torch.distributed.all_reduce(target)
                target /= torch.distributed.get_world_size()
            self.mean_path_length.copy_(target)
        return (lengths - self.mean_path_length).pow(2).mean()
