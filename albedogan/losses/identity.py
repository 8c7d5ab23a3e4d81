"""Identity loss: cosine distance between face-recognition embeddings of two image batches."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["cosine_distance", "IdentityLoss"]


def cosine_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(N, D), (N, D) embeddings → (N,) 1 − cos(a, b) (inputs need not be normalised)."""
    return 1.0 - torch.nn.functional.cosine_similarity(a, b, dim=-1)


class IdentityLoss(nn.Module):
    """Mean cosine distance between ``embedder(pred)`` and ``embedder(target)``; the target side has no gradient.

    Args:
        embedder: a module mapping (N, 3, H, W) RGB in [0, 1] (+ optional (N, 5, 2) landmarks) to (N, D) embeddings
            (see ``albedogan.nets.identity``). It is frozen here (eval mode, no parameter gradients) unless
            ``train_embedder`` is True.
    """

    def __init__(self, embedder: nn.Module, train_embedder: bool = False) -> None:
        super().__init__()
        self.embedder = embedder
        self.train_embedder = train_embedder
        if not train_embedder:
            self.embedder.requires_grad_(False)
            self.embedder.eval()

    def train(self, mode: bool = True) -> "IdentityLoss":
        super().train(mode)
        if not self.train_embedder:
            self.embedder.eval()  # BatchNorm statistics stay frozen
        return self

    def forward(self, pred: torch.Tensor, target: torch.Tensor, landmarks5: torch.Tensor | None = None) -> torch.Tensor:
        args = () if landmarks5 is None else (landmarks5,)
        with torch.no_grad():
            target_emb = self.embedder(target, *args)
        return cosine_distance(self.embedder(pred, *args), target_emb).mean()
