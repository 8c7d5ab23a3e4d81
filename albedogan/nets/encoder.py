"""DECA-style coarse encoder: torchvision ResNet-50 (no fc) + MLP 2048 -> 1024 -> 236.

Input: (N, 3, 224, 224) RGB in [0, 1], face crops (DECA's landmark-box crop); no ImageNet normalisation (DECA
was trained without it). Output: :class:`EncoderOutput`, split exactly like DECA's ``E_flame``:
shape 0:100, tex 100:150, expression 150:200, pose 200:206, cam 206:209, light 209:236 (-> 9 x 3).
Parameter names match ``deca_model.tar['E_flame']`` (``encoder.*`` torchvision names, ``layers.0``, ``layers.2``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn
from torchvision.models import resnet50

from albedogan.utils.shapes import assert_shape

__all__ = ["DECA_OUTPUT_SIZES", "ENCODER_INPUT_SIZE", "EncoderOutput", "DecaEncoder"]

ENCODER_INPUT_SIZE = 224
"""Side of the square input crop in pixels."""

DECA_OUTPUT_SIZES: dict[str, int] = {"shape": 100, "tex": 50, "expression": 50, "pose": 6, "cam": 3, "light": 27}
"""Output slices in DECA's order (sums to 236)."""


@dataclass(frozen=True)
class EncoderOutput:
    """Per-image estimates of the coarse encoder (all float, batch-first).

    Attributes:
        shape: (N, S) FLAME shape coefficients (S = 100 for DECA).
        tex: (N, T) FLAME texture-space coefficients (T = 50).
        expression: (N, E) FLAME expression coefficients (E = 50).
        pose: (N, 6) axis-angle radians: global rotation (0:3) and jaw (3:6).
        cam: (N, 3) weak-perspective camera [s, tx, ty] (see ``albedogan.render`` for the projection).
        light: (N, 9, 3) second-order SH lighting coefficients, RGB last.
    """

    shape: torch.Tensor
    tex: torch.Tensor
    expression: torch.Tensor
    pose: torch.Tensor
    cam: torch.Tensor
    light: torch.Tensor

    def detach(self) -> "EncoderOutput":
        """Copy with every tensor detached."""
        return EncoderOutput(**{k: getattr(self, k).detach() for k in DECA_OUTPUT_SIZES})


class DecaEncoder(nn.Module):
    """ResNet-50 + MLP regressor of FLAME/camera/light parameters.

    Args:
        output_sizes: ordered sizes of ``shape, tex, expression, pose, cam, light`` (DECA's by default). ``pose``
            must be 6, ``cam`` 3 and ``light`` 27 (9 SH bands x RGB).
        hidden_dim: width of the MLP's hidden layer (1024).
    """

    def __init__(self, output_sizes: Mapping[str, int] | None = None, hidden_dim: int = 1024) -> None:
        super().__init__()
        sizes = dict(DECA_OUTPUT_SIZES if output_sizes is None else output_sizes)
        if list(sizes) != list(DECA_OUTPUT_SIZES):
            raise ValueError(f"DecaEncoder: output_sizes keys must be {list(DECA_OUTPUT_SIZES)} in order, got {list(sizes)}")
        if sizes["pose"] != 6 or sizes["cam"] != 3 or sizes["light"] != 27:
            raise ValueError(f"DecaEncoder: pose/cam/light sizes must be 6/3/27, got {sizes}")
        self.output_sizes = {k: int(v) for k, v in sizes.items()}
        self.out_dim = sum(self.output_sizes.values())
        backbone = resnet50(weights=None)  # never downloads; weights come from deca_model.tar
        backbone.fc = nn.Identity()
        self.encoder = backbone
        self.layers = nn.Sequential(nn.Linear(2048, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, self.out_dim))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, 224, 224) RGB [0, 1] -> (N, 236) raw parameter vector in DECA's order."""
        assert_shape(images, [None, 3, ENCODER_INPUT_SIZE, ENCODER_INPUT_SIZE], "DecaEncoder input")
        return self.layers(self.encoder(images))

    def split(self, params: torch.Tensor) -> EncoderOutput:
        """Split a (N, out_dim) vector into :class:`EncoderOutput` (light reshaped to (N, 9, 3))."""
        assert_shape(params, [None, self.out_dim], "DecaEncoder parameters")
        parts = dict(zip(self.output_sizes, torch.split(params, list(self.output_sizes.values()), dim=1)))
        parts["light"] = parts["light"].reshape(params.shape[0], 9, 3)  # (N, 27) -> (N, 9, 3)
        return EncoderOutput(**parts)

    def forward(self, images: torch.Tensor) -> EncoderOutput:
        """Encode face crops.

        Args:
            images: (N, 3, 224, 224) float RGB in [0, 1], not ImageNet-normalised.

        Returns:
            :class:`EncoderOutput`.
        """
        return self.split(self.features(images))
