"""ArcFace iresnet backbones in insightface ``arcface_torch`` key layout (``backbone.pth`` loads 1:1).

Input: aligned 112x112 RGB face crops (5-point :data:`ARCFACE_TEMPLATE_112`, crops by ``albedogan.datamodules.alignment``).
:meth:`IResNet.forward` takes RGB in [0, 1] and applies insightface's normalisation ``(255x - 127.5) / 127.5``
(= ``2x - 1``) itself; :meth:`IResNet.forward_normalized` takes already-normalised input in [-1, 1] as the
official code does. Output: the raw 512-d embedding (not L2-normalised).

MICA fine-tunes only the upper part: ``freeze_lower=True`` stops gradients into ``conv1, bn1, prelu,
layer1..layer3`` and keeps their BatchNorm statistics fixed (eval mode) even when the module is in training mode.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from albedogan.utils.shapes import assert_shape

__all__ = ["IRESNET_LAYERS", "ARCFACE_INPUT_SIZE", "ARCFACE_TEMPLATE_112", "IBasicBlock", "IResNet", "iresnet50",
           "iresnet100"]

ARCFACE_INPUT_SIZE = 112
"""Side of the aligned input crop in pixels."""

ARCFACE_TEMPLATE_112: torch.Tensor = torch.tensor(
    [
        [38.2946, 51.6963],  # left eye (image left)
        [73.5318, 51.5014],  # right eye
        [56.0252, 71.7366],  # nose tip
        [41.5493, 92.3655],  # left mouth corner
        [70.7299, 92.2041],  # right mouth corner
    ],
    dtype=torch.float32,
)
"""(5, 2) float32 pixel coordinates (x, y) of insightface's standard 112x112 ArcFace template.

Order: left eye, right eye, nose tip, left mouth corner, right mouth corner (left = smaller x in the image)."""

IRESNET_LAYERS: dict[int, tuple[int, int, int, int]] = {50: (3, 4, 14, 3), 100: (3, 13, 30, 3)}
"""Blocks per stage for each supported depth."""

_BN_EPS = 1e-5
_WIDTHS = (64, 128, 256, 512)


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False)


class IBasicBlock(nn.Module):
    """Pre-activation residual block: BN -> conv3x3 -> BN -> PReLU -> conv3x3(stride) -> BN, plus shortcut.

    Args:
        inplanes: input channels C_in.
        planes: output channels C_out.
        stride: spatial stride of the second convolution (1 or 2).
        downsample: shortcut projection (conv1x1 + BN) when shape changes, else ``None``.
    """

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes, eps=_BN_EPS)
        self.conv1 = _conv3x3(inplanes, planes)
        self.bn2 = nn.BatchNorm2d(planes, eps=_BN_EPS)
        self.prelu = nn.PReLU(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn3 = nn.BatchNorm2d(planes, eps=_BN_EPS)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C_in, H, W) -> (N, C_out, H/stride, W/stride)."""
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        shortcut = x if self.downsample is None else self.downsample(x)
        return out + shortcut


class IResNet(nn.Module):
    """insightface iresnet (arcface_torch) with parameter names identical to ``backbone.pth``.

    Args:
        layers: blocks per stage, e.g. ``(3, 13, 30, 3)`` for iresnet100.
        embedding_dim: output size D (512 for every official model).
        dropout: dropout before ``fc`` (0 in the official models).
        freeze_lower: MICA's rule: freeze ``conv1, bn1, prelu, layer1..3`` (no grads, BN stats fixed).
    """

    def __init__(
        self,
        layers: Sequence[int],
        embedding_dim: int = 512,
        dropout: float = 0.0,
        freeze_lower: bool = False,
    ) -> None:
        super().__init__()
        if len(layers) != 4 or any(int(b) < 1 for b in layers):
            raise ValueError(f"IResNet: layers must be 4 positive block counts, got {tuple(layers)}")
        self.layers_config = tuple(int(b) for b in layers)
        self.embedding_dim = int(embedding_dim)
        self.input_size = ARCFACE_INPUT_SIZE
        self.conv1 = _conv3x3(3, 64)
        self.bn1 = nn.BatchNorm2d(64, eps=_BN_EPS)
        self.prelu = nn.PReLU(64)
        inplanes = 64
        stages = []
        for planes, blocks in zip(_WIDTHS, self.layers_config):
            downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes, kernel_size=1, stride=2, bias=False),
                nn.BatchNorm2d(planes, eps=_BN_EPS),
            )
            stage = [IBasicBlock(inplanes, planes, 2, downsample)]
            stage += [IBasicBlock(planes, planes) for _ in range(blocks - 1)]
            stages.append(nn.Sequential(*stage))
            inplanes = planes
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.bn2 = nn.BatchNorm2d(512, eps=_BN_EPS)
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(512 * 7 * 7, self.embedding_dim)
        self.features = nn.BatchNorm1d(self.embedding_dim, eps=_BN_EPS)
        nn.init.constant_(self.features.weight, 1.0)
        self.features.weight.requires_grad_(False)  # fixed at 1 in insightface
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.1)
        self.frozen_lower = False
        if freeze_lower:
            self.freeze_lower()

    def lower_modules(self) -> list[nn.Module]:
        """The modules MICA keeps frozen: ``conv1, bn1, prelu, layer1, layer2, layer3``."""
        return [self.conv1, self.bn1, self.prelu, self.layer1, self.layer2, self.layer3]

    def freeze_lower(self) -> "IResNet":
        """Freeze ``conv1..layer3`` (no gradients, BatchNorm statistics fixed); ``layer4, bn2, fc`` stay trainable."""
        for m in self.lower_modules():
            m.requires_grad_(False)
            m.eval()
        self.frozen_lower = True
        return self

    def train(self, mode: bool = True) -> "IResNet":
        """Set training mode, keeping the frozen lower layers in eval mode (their BN stats never update)."""
        super().train(mode)
        if self.frozen_lower:
            for m in self.lower_modules():
                m.eval()
        return self

    @staticmethod
    def normalize_input(images: torch.Tensor) -> torch.Tensor:
        """RGB in [0, 1] -> insightface input ``(255x - 127.5) / 127.5`` in [-1, 1] (same shape)."""
        return images * 2.0 - 1.0

    def forward_normalized(self, x: torch.Tensor) -> torch.Tensor:
        """Embed normalised crops.

        Args:
            x: (N, 3, 112, 112) float RGB in [-1, 1] (insightface normalisation), ArcFace-aligned.

        Returns:
            (N, D) raw embedding (not L2-normalised), same dtype as ``x``.
        """
        assert_shape(x, [None, 3, ARCFACE_INPUT_SIZE, ARCFACE_INPUT_SIZE], "IResNet input")
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))  # (N, 512, 7, 7)
        x = torch.flatten(self.bn2(x), 1)  # (N, 25088)
        return self.features(self.fc(self.dropout(x)))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Embed aligned crops given as RGB in [0, 1].

        Args:
            images: (N, 3, 112, 112) float RGB in [0, 1], ArcFace-aligned (never BGR).

        Returns:
            (N, D) raw embedding (not L2-normalised).
        """
        return self.forward_normalized(self.normalize_input(images))


def iresnet50(**kwargs: object) -> IResNet:
    """iresnet50: blocks (3, 4, 14, 3). Keyword arguments go to :class:`IResNet`."""
    return IResNet(IRESNET_LAYERS[50], **kwargs)  # type: ignore[arg-type]


def iresnet100(**kwargs: object) -> IResNet:
    """iresnet100 (MICA's and AlbedoGAN's ArcFace): blocks (3, 13, 30, 3). Keyword arguments go to :class:`IResNet`."""
    return IResNet(IRESNET_LAYERS[100], **kwargs)  # type: ignore[arg-type]
