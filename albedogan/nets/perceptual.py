"""Perceptual image distances: official LPIPS when its backbone weights are on disk, else bundled ST-LPIPS.

Both are the LPIPS construction (Zhang et al. 2018): a frozen ImageNet backbone (AlexNet or VGG-16) gives five
feature maps; each is unit-normalised over channels, the squared difference of the two images' features is
weighted per channel by a learned non-negative 1x1 convolution, averaged over space, and the five terms summed.

Back-ends (built from their weight files by :func:`albedogan.assets.convert.lpips.build_perceptual`):

* ``"lpips"`` - the ``lpips`` package's network with its bundled v0.1 linear weights and torchvision's ImageNet
  backbone, read from a local file (``<weights_dir>/`` or the torch hub cache ``$TORCH_HOME/hub/checkpoints/``:
  ``alexnet-owt-7be5be79.pth`` / ``vgg16-397923af.pth``). The package is built with ``pnet_rand=True`` so it
  never downloads; the backbone state dict is loaded here, strictly, through an explicit key table.
* ``"stlpips"`` - shift-tolerant LPIPS (Ghildyal & Liu 2022): anti-aliased AlexNet/VGG (blur-pool downsampling)
  whose complete weights (backbone + linear heads) ship inside the ``stlpips-pytorch`` wheel. The package itself
  cannot be imported here (it imports ``torchsummary`` and ``IPython`` at module level), so the two networks are
  re-declared below with the same parameter names and the bundled files are loaded strictly.

``kind="auto"`` picks ``lpips`` when the torchvision file exists and ``stlpips`` otherwise; the choice is logged.

Input range: images are (N, 3, H, W) RGB in [0, 1]; the module maps them to [-1, 1] (``2x - 1``), which is what
the LPIPS networks were trained on, then applies LPIPS' fixed per-channel shift/scale layer. All weights are
frozen (``requires_grad=False``), the module stays in eval mode (dropout in the heads is inactive), and gradients
flow to the inputs.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from albedogan.utils.logging import get_logger
from albedogan.utils.shapes import assert_shape

__all__ = ["PerceptualDistance", "ShiftTolerantLPIPS", "check_net"]

_log = get_logger(__name__)


_NETS = ("alex", "vgg")


def check_net(net: str) -> None:
    """Raise ``ValueError`` unless ``net`` is ``'alex'`` or ``'vgg'``."""
    if net not in _NETS:
        raise ValueError(f"perceptual net must be 'alex' or 'vgg', got {net!r}")


# ----------------------------------------------------------------------------------------------------------------
# shared LPIPS arithmetic


def _unit_normalize(features: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """Divide (N, C, h, w) features by their L2 norm over channels (LPIPS' ``normalize_tensor``)."""
    return features / (features.pow(2).sum(dim=1, keepdim=True).sqrt() + eps)


class _ScalingLayer(nn.Module):
    """LPIPS' fixed input normalisation: ``(x - shift) / scale`` per RGB channel, for x in [-1, 1]."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.shift) / self.scale


class _LinearHead(nn.Module):
    """Per-channel weights of one layer's squared feature difference: (dropout +) 1x1 conv to one channel."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.model = nn.Sequential(nn.Dropout(), nn.Conv2d(channels, 1, kernel_size=1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class _BlurPool(nn.Module):
    """Anti-aliased stride-2 downsampling: reflect-pad by 2, depthwise [1,2,1]x[1,2,1]/16 blur, stride 2."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        a = torch.tensor([1.0, 2.0, 1.0])
        filt = (a[:, None] * a[None, :]) / 16.0
        self.register_buffer("filt", filt[None, None].repeat(channels, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), self.filt, stride=2, groups=x.shape[1])


def _sliced(layers: Sequence[nn.Module], cuts: Sequence[int]) -> list[nn.Sequential]:
    """Split ``layers`` at ``cuts`` into Sequentials whose children keep their global index as name."""
    bounds = [0, *cuts, len(layers)]
    slices = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        seq = nn.Sequential()
        for i in range(lo, hi):
            seq.add_module(str(i), layers[i])
        slices.append(seq)
    return slices


class _ShiftTolerantBackbone(nn.Module):
    """Anti-aliased AlexNet / VGG-16 trunk returning five ReLU feature maps (names match the ST-LPIPS files)."""

    def __init__(self, net: str) -> None:
        super().__init__()
        relu = lambda: nn.ReLU(inplace=False)  # noqa: E731 - tiny factory
        if net == "alex":
            layers: list[nn.Module] = [
                nn.Conv2d(3, 64, 11, stride=1, padding=2), _BlurPool(64), relu(),
                nn.MaxPool2d(3, stride=1), _BlurPool(64), nn.Conv2d(64, 192, 5, padding=2), relu(),
                nn.MaxPool2d(3, stride=1), _BlurPool(192), nn.Conv2d(192, 384, 3, padding=1), relu(),
                nn.Conv2d(384, 256, 3, padding=1), relu(),
                nn.Conv2d(256, 256, 3, padding=1), relu(),
            ]  # fmt: skip
            cuts = [3, 7, 11, 13]
        else:
            layers = []
            cin = 3
            for v in (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512):
                if v == "M":
                    layers += [nn.MaxPool2d(2, stride=1), _BlurPool(cin)]
                else:
                    layers += [nn.Conv2d(cin, int(v), 3, padding=1), relu()]
                    cin = int(v)
            cuts = [4, 10, 18, 26]
        for k, seq in enumerate(_sliced(layers, cuts), start=1):
            self.add_module(f"slice{k}", seq)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for k in range(1, 6):
            x = getattr(self, f"slice{k}")(x)
            feats.append(x)
        return feats


class ShiftTolerantLPIPS(nn.Module):
    """ST-LPIPS network (parameter names identical to the ``stlpips-pytorch`` weight files).

    ``forward(x, y)`` takes LPIPS-range inputs (N, 3, H, W) in [-1, 1] and returns (N,) distances.
    Use :func:`load_stlpips` to get it with the bundled weights.
    """

    CHANNELS = {"alex": (64, 192, 384, 256, 256), "vgg": (64, 128, 256, 512, 512)}

    def __init__(self, net: str = "alex") -> None:
        super().__init__()
        check_net(net)
        self.scaling_layer = _ScalingLayer()
        self.net = _ShiftTolerantBackbone(net)
        for k, c in enumerate(self.CHANNELS[net]):
            self.add_module(f"lin{k}", _LinearHead(c))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        fx, fy = self.net(self.scaling_layer(x)), self.net(self.scaling_layer(y))
        total = x.new_zeros(x.shape[0])
        for k, (a, b) in enumerate(zip(fx, fy)):
            diff = (_unit_normalize(a) - _unit_normalize(b)).pow(2)  # (N, C_k, h_k, w_k)
            total = total + getattr(self, f"lin{k}")(diff).mean(dim=(1, 2, 3))
        return total


# ----------------------------------------------------------------------------------------------------------------
# loaders


# ----------------------------------------------------------------------------------------------------------------
# public module


class PerceptualDistance(nn.Module):
    """LPIPS-style distance between images in [0, 1].

    Args:
        network: a network taking (x, y) in [-1, 1] and returning per-sample distances ((N,) or (N, 1, 1, 1)).
        backend: ``"lpips"`` or ``"stlpips"`` (recorded for logs and checkpoints).
        net: ``"alex"`` or ``"vgg"``.

    Forward:
        x, y: (N, 3, H, W) float RGB in [0, 1] (same shape; H, W >= 32 recommended). Returns (N,) distances
        (>= 0, ~0 for identical images, typically < 1), differentiable w.r.t. both inputs.
    """

    def __init__(self, network: nn.Module, backend: str, net: str) -> None:
        super().__init__()
        self.network = network.eval().requires_grad_(False)
        self.backend = backend
        self.net = net

    def train(self, mode: bool = True) -> "PerceptualDistance":
        """Keep the frozen network in eval mode (dropout off) whatever the parent module does."""
        super().train(mode)
        self.network.eval()
        return self

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        assert_shape(x, (None, 3, None, None), "perceptual x")
        assert_shape(y, tuple(x.shape), "perceptual y")
        out = self.network(x * 2.0 - 1.0, y * 2.0 - 1.0)  # [0, 1] -> [-1, 1], the LPIPS input range
        return out.reshape(x.shape[0])

    def extra_repr(self) -> str:
        return f"backend={self.backend}, net={self.net}"


