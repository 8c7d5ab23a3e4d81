"""DECA's detail networks (``deca_model.tar['E_detail']``, ``['D_detail']``): a UV displacement map per face.

* :class:`DetailEncoder` — the same ResNet-50 + MLP as the coarse encoder, with a 128-d output (the detail code).
  Keys: ``encoder.*`` (torchvision resnet50 names, no ``fc``), ``layers.0`` [1024, 2048], ``layers.2`` [128, 1024].
* :class:`DetailDecoder` — DECA's ``Generator``: ``Linear(latent, 128*8*8)`` -> (N, 128, 8, 8), then five
  ``x2 bilinear upsample -> 3x3 conv -> BatchNorm -> LeakyReLU(0.2)`` stages (128, 64, 64, 32, 16 channels; 8² ->
  256²), a 3x3 conv to one channel, ``tanh``, times ``out_scale`` (DECA's ``max_z`` = 0.01). The first BatchNorm
  (before the first upsample) has eps 1e-5; the five inside the stages were built as ``BatchNorm2d(C, 0.8)`` in the
  official code — the positional argument is **eps**, so eps = 0.8 (kept: the weights were trained with it).
  Keys: ``l1.0.*``, ``conv_blocks.{0,2,3,6,7,10,11,14,15,18,19,21}.*`` (the index of each layer in DECA's
  ``nn.Sequential``; upsample / activation slots hold no weights).
  Input: ``cat([jaw_pose (3, axis-angle), expression (50), detail code (128)])`` = 181 values, in that order.

Both run in eval mode (inference only; their BatchNorm layers use the stored statistics).
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models import resnet50

from albedogan.utils.shapes import assert_shape

__all__ = ["DETAIL_CODE_DIM", "DETAIL_COND_DIM", "DetailDecoder", "DetailEncoder"]

DETAIL_CODE_DIM = 128
"""Size of DECA's detail code (``n_detail``)."""
DETAIL_COND_DIM = 50 + 3
"""Conditioning appended by DECA: expression (50) + jaw pose (3)."""

_STAGES = (128, 128, 64, 64, 32, 16)  # channels: l1 output, then after each of the five upsample stages


class DetailEncoder(nn.Module):
    """ResNet-50 (no fc) + ``Linear(2048, 1024) -> ReLU -> Linear(1024, code_dim)``: 224² crops -> detail code.

    Args:
        code_dim: output size (DECA: 128).
        hidden_dim: MLP width (1024).
    """

    input_size = 224

    def __init__(self, code_dim: int = DETAIL_CODE_DIM, hidden_dim: int = 1024) -> None:
        super().__init__()
        backbone = resnet50(weights=None)  # never downloads; weights come from deca_model.tar
        backbone.fc = nn.Identity()
        self.encoder = backbone
        self.layers = nn.Sequential(nn.Linear(2048, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, int(code_dim)))
        self.code_dim = int(code_dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, 224, 224) RGB in [0, 1] (the coarse encoder's crop) -> (N, code_dim) detail code."""
        assert_shape(images, [None, 3, self.input_size, self.input_size], "DetailEncoder input")
        return self.layers(self.encoder(images))


class DetailDecoder(nn.Module):
    """DECA's detail generator: (N, latent_dim) -> (N, 1, 256, 256) UV displacement along the normal (metres).

    Args:
        latent_dim: input size (DECA: 128 + 50 + 3 = 181).
        out_scale: multiplies the ``tanh`` output (DECA's ``max_z``: 0.01).
        init_size: side of the first feature map (8; five x2 stages give 256).
    """

    def __init__(self, latent_dim: int = DETAIL_CODE_DIM + DETAIL_COND_DIM, out_scale: float = 0.01,
                 init_size: int = 8) -> None:
        super().__init__()
        self.latent_dim, self.out_scale, self.init_size = int(latent_dim), float(out_scale), int(init_size)
        self.l1 = nn.Sequential(nn.Linear(self.latent_dim, _STAGES[0] * self.init_size ** 2))
        layers: list[nn.Module] = [nn.BatchNorm2d(_STAGES[0])]
        for cin, cout in zip(_STAGES[:-1], _STAGES[1:]):
            layers += [nn.Upsample(scale_factor=2, mode="bilinear"), nn.Conv2d(cin, cout, 3, padding=1),
                       nn.BatchNorm2d(cout, eps=0.8), nn.LeakyReLU(0.2)]
        layers += [nn.Conv2d(_STAGES[-1], 1, 3, padding=1), nn.Tanh()]
        self.conv_blocks = nn.Sequential(*layers)

    @property
    def output_size(self) -> int:
        """Side of the displacement map (256 for DECA)."""
        return self.init_size * 2 ** (len(_STAGES) - 1)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        """(N, latent_dim) -> (N, 1, S, S) displacement, in [-out_scale, out_scale]."""
        assert_shape(latent, [None, self.latent_dim], "DetailDecoder latent")
        x = self.l1(latent).view(latent.shape[0], _STAGES[0], self.init_size, self.init_size)  # (N, 128, 8, 8)
        return self.conv_blocks(x) * self.out_scale
