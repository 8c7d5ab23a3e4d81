"""Exponential moving average (EMA) of a network's weights — StyleGAN2's ``G_ema``, for the albedo generator.

The decay is set by a half-life counted in *images* (REFERENCE §2: 10k images), so it does not depend on the batch
size: after each step on ``batch_images`` images (summed over DDP ranks)
``beta = 0.5 ** (batch_images / half_life_images)`` and ``ema = beta · ema + (1 − beta) · live`` for every
parameter; buffers (e.g. constant noise) are copied.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

__all__ = ["ModelEMA", "ema_beta"]


def ema_beta(batch_images: int, half_life_images: float) -> float:
    """Per-step EMA decay for a half-life in images.

    Args:
        batch_images: images consumed by one optimiser step (global batch size, > 0).
        half_life_images: images after which an old weight's share has halved (> 0); 0 disables averaging.

    Returns:
        beta in [0, 1): 0 means the EMA copies the live weights.
    """
    if batch_images <= 0:
        raise ValueError(f"ema_beta: batch_images must be > 0, got {batch_images}")
    if half_life_images < 0:
        raise ValueError(f"ema_beta: half_life_images must be >= 0, got {half_life_images}")
    if half_life_images == 0:
        return 0.0
    return 0.5 ** (batch_images / half_life_images)


class ModelEMA(nn.Module):
    """A frozen, eval-mode copy of a module whose weights track the live module's by EMA.

    The copy is a submodule, so it is saved in checkpoints (resume continues the same average) and follows
    ``.to()``. Its parameters never require grad.

    Args:
        model: the live module (copied at construction).
        half_life_images: EMA half-life in images (0 = copy the live weights every update).
    """

    def __init__(self, model: nn.Module, half_life_images: float) -> None:
        super().__init__()
        if half_life_images < 0:
            raise ValueError(f"ModelEMA: half_life_images must be >= 0, got {half_life_images}")
        self.module = copy.deepcopy(model).requires_grad_(False).eval()
        self.half_life_images = float(half_life_images)

    def train(self, mode: bool = True) -> ModelEMA:
        """The average always stays in eval mode."""
        return super().train(False)

    @torch.no_grad()
    def update(self, model: nn.Module, batch_images: int) -> float:
        """Move the average toward ``model`` after a step on ``batch_images`` images; returns the beta used.

        Raises:
            ValueError: if ``model``'s parameter or buffer names differ from the copy's.
        """
        beta = ema_beta(batch_images, self.half_life_images)
        live_p = dict(model.named_parameters())
        own_p = dict(self.module.named_parameters())
        if live_p.keys() != own_p.keys():
            raise ValueError("ModelEMA.update: the live model's parameters differ from the EMA copy's")
        for name, p_ema in own_p.items():
            p_ema.lerp_(live_p[name].detach().to(p_ema.dtype), 1.0 - beta)  # EMA-owned tensor: in place is safe
        live_b = dict(model.named_buffers())
        for name, b_ema in self.module.named_buffers():
            if name not in live_b:
                raise ValueError(f"ModelEMA.update: buffer {name!r} missing from the live model")
            b_ema.copy_(live_b[name])
        return beta

    def forward(self, *args, **kwargs):
        """Run the averaged module."""
        return self.module(*args, **kwargs)
