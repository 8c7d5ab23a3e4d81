"""Parameter regularisers (squared L2 on FLAME codes, SH light) and a total-variation smoothness term."""

from __future__ import annotations

import torch

__all__ = ["l2_regularizer", "light_regularizer", "total_variation"]


def l2_regularizer(codes: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of the squared L2 norm of (N, K) codes (shape, expression, texture)."""
    return codes.pow(2).sum(-1).mean()


def light_regularizer(sh: torch.Tensor) -> torch.Tensor:
    """DECA's light regulariser on (N, 9, 3) SH coefficients: keeps the colour of each band close to grey.

    Penalises the deviation of every band's RGB from its channel mean (so lighting does not explain skin colour).
    """
    return (sh - sh.mean(-1, keepdim=True)).pow(2).sum((-1, -2)).mean()


def total_variation(image: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of neighbouring pixels of (N, C, H, W) images."""
    dx = (image[..., :, 1:] - image[..., :, :-1]).abs().mean()
    dy = (image[..., 1:, :] - image[..., :-1, :]).abs().mean()
    return dx + dy
