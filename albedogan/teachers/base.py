"""The teacher interface: a frozen 2D face generator with a latent space (StyleGAN2-FFHQ or the procedural world).

Every teacher maps z (N, z_dim) → W+ latents ws (N, num_ws, w_dim) → images (N, 3, H, W) in [0, 1]. The albedo
generator G_A is fed the same ws, so the two share a latent space. Teachers are frozen: no parameter requires grad
and ``train()`` keeps them in eval mode.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from albedogan.structures import TeacherSample

__all__ = ["Teacher"]


class Teacher(nn.Module):
    """Base class of teachers.

    Subclasses set ``z_dim``, ``w_dim``, ``num_ws``, ``image_size`` and ``truncation_psi`` and implement
    :meth:`mapping` and :meth:`synthesize`; they call :meth:`freeze` at the end of ``__init__``.

    Attributes:
        z_dim: input latent size.
        w_dim: intermediate latent size.
        num_ws: rows of W+.
        image_size: output images are (N, 3, image_size, image_size).
        truncation_psi: default truncation toward the mean w (1 = none; StyleGAN2-FFHQ in AlbedoGAN uses 0.5).
    """

    z_dim: int
    w_dim: int
    num_ws: int
    image_size: int
    truncation_psi: float = 1.0

    def freeze(self) -> "Teacher":
        self.requires_grad_(False)
        return self.eval()

    def train(self, mode: bool = True) -> "Teacher":
        return super().train(False)

    def mapping(self, z: torch.Tensor, psi: float | None = None) -> torch.Tensor:
        """(N, z_dim) → (N, num_ws, w_dim) W+ latents, truncated with ``psi`` (default ``truncation_psi``)."""
        raise NotImplementedError

    def synthesize(self, ws: torch.Tensor) -> TeacherSample:
        """(N, num_ws, w_dim) → :class:`TeacherSample` (``z`` is None)."""
        raise NotImplementedError

    @torch.no_grad()
    def sample(self, z: torch.Tensor, psi: float | None = None) -> TeacherSample:
        """Map and synthesise; the returned sample records ``z``."""
        ws = self.mapping(z, psi)
        return dataclasses.replace(self.synthesize(ws), z=z)
