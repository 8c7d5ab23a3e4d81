"""MICA: ArcFace identity embedding -> FLAME shape coefficients.

``MICA = IResNet (iresnet100) + MappingNetwork``: the ArcFace embedding of an aligned 112x112 RGB crop is
L2-normalised and mapped by an MLP (512 -> 300, then 3 x 300 -> 300, each followed by LeakyReLU(0.2); output
Linear 300 -> 300) to FLAME identity shape coefficients beta (unitless PCA weights of FLAME's shape basis).
Parameter names match ``mica.tar``: ``arcface.*`` and ``regressor.network.{0..3}.*``, ``regressor.output.*``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from albedogan.nets.arcface import IResNet, iresnet100
from albedogan.utils.shapes import assert_shape

__all__ = ["MappingNetwork", "MICA"]


class MappingNetwork(nn.Module):
    """MICA's shape regressor.

    Args:
        in_dim: input embedding size (512).
        hidden_dim: hidden width (300).
        out_dim: number of FLAME shape coefficients (300).
        num_hidden: extra hidden layers after the first (3 in MICA -> ``network.0..3``).
        negative_slope: LeakyReLU slope (0.2).
    """

    def __init__(
        self, in_dim: int = 512, hidden_dim: int = 300, out_dim: int = 300, num_hidden: int = 3,
        negative_slope: float = 0.2,
    ) -> None:
        super().__init__()
        self.in_dim, self.out_dim = int(in_dim), int(out_dim)
        self.negative_slope = float(negative_slope)
        dims = [self.in_dim] + [int(hidden_dim)] * (int(num_hidden) + 1)
        self.network = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.output = nn.Linear(int(hidden_dim), self.out_dim)
        for layer in self.network:
            nn.init.kaiming_normal_(layer.weight, a=negative_slope, mode="fan_in", nonlinearity="leaky_relu")
        with torch.no_grad():
            self.output.weight.mul_(0.25)  # small initial shapes, as MICA

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(N, in_dim) float embedding -> (N, out_dim) FLAME shape coefficients."""
        assert_shape(z, [None, self.in_dim], "MappingNetwork input")
        h = z
        for layer in self.network:
            h = F.leaky_relu(layer(h), negative_slope=self.negative_slope)
        return self.output(h)


class MICA(nn.Module):
    """ArcFace + mapping network: aligned face crops -> FLAME shape.

    Args:
        arcface: the identity backbone (default: iresnet100 with MICA's lower layers frozen).
        regressor: the mapping network (default: 512 -> 300 with 3 extra hidden layers).
    """

    def __init__(self, arcface: IResNet | None = None, regressor: MappingNetwork | None = None) -> None:
        super().__init__()
        self.arcface = arcface if arcface is not None else iresnet100(freeze_lower=True)
        self.regressor = regressor if regressor is not None else MappingNetwork()
        if self.arcface.embedding_dim != self.regressor.in_dim:
            raise ValueError(
                f"MICA: ArcFace embedding size {self.arcface.embedding_dim} != mapping input {self.regressor.in_dim}"
            )

    def identity_code(self, crops: torch.Tensor) -> torch.Tensor:
        """(N, 3, 112, 112) RGB [0, 1] aligned crops -> (N, 512) unit-length ArcFace embedding."""
        return F.normalize(self.arcface(crops), dim=-1)

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        """Predict FLAME shape.

        Args:
            crops: (N, 3, 112, 112) float RGB in [0, 1], aligned to the ArcFace 5-point template.

        Returns:
            (N, 300) FLAME shape coefficients beta.
        """
        return self.regressor(self.identity_code(crops))
