"""FIR resampling, the ``upfirdn2d`` family of NVlabs' ``torch_utils/ops`` in pure PyTorch.

The custom CUDA kernel is replaced by depthwise ``conv2d`` / ``conv_transpose2d`` calls; :func:`upfirdn2d_ref` is
the plain reference the fast paths are tested against. Images are (N, C, H, W); filters are (K, K) float tensors
from :func:`setup_filter` (separable, symmetric, summing to 1).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

__all__ = ["blur", "downsample2d", "setup_filter", "upfirdn2d_ref", "upsample2d"]


def setup_filter(taps: Sequence[float] = (1, 3, 3, 1)) -> torch.Tensor:
    """Separable 2D low-pass filter: normalised outer product of ``taps``.

    Args:
        taps: 1D filter taps, e.g. ``(1, 3, 3, 1)``.

    Returns:
        (K, K) float32 tensor summing to 1.
    """
    f = torch.as_tensor(taps, dtype=torch.float32)
    if f.ndim != 1 or f.numel() < 1:
        raise ValueError(f"setup_filter: expected 1D taps, got shape {tuple(f.shape)}")
    f2 = torch.outer(f, f)
    return f2 / f2.sum()


def _depthwise(f: torch.Tensor, channels: int, dtype: torch.dtype, scale: float = 1.0) -> torch.Tensor:
    """(K, K) filter -> (channels, 1, K, K) depthwise conv weight (filter is symmetric, so no flip is needed)."""
    return (f.to(dtype) * scale).expand(channels, 1, *f.shape)


def upfirdn2d_ref(
    x: torch.Tensor, f: torch.Tensor, up: int = 1, down: int = 1, pad: Sequence[int] = (0, 0, 0, 0), gain: float = 1.0
) -> torch.Tensor:
    """Reference upsample -> pad -> FIR filter -> downsample (NVIDIA ``upfirdn2d`` semantics, slow but simple).

    Args:
        x: (N, C, H, W) input.
        f: (K, K) filter (convolution, i.e. flipped before correlating).
        up: integer upsampling factor (zero insertion after every sample).
        down: integer downsampling factor (keeps samples 0, down, 2*down, ...).
        pad: (x0, x1, y0, y1) padding of the upsampled image; negative values crop.
        gain: multiplier applied to the filter (``up**2`` keeps the mean for upsampling).

    Returns:
        (N, C, (H*up + y0 + y1 - K) // down + 1, (W*up + x0 + x1 - K) // down + 1) tensor.
    """
    n, c, h, w = x.shape
    x0, x1, y0, y1 = pad
    if up > 1:
        x = x.reshape(n, c, h, 1, w, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
        x = x.reshape(n, c, h * up, w * up)  # (N, C, H*up, W*up)
    x = F.pad(x, [max(x0, 0), max(x1, 0), max(y0, 0), max(y1, 0)])
    x = x[:, :, max(-y0, 0) : x.shape[2] - max(-y1, 0), max(-x0, 0) : x.shape[3] - max(-x1, 0)]
    weight = _depthwise(f.flip([0, 1]), c, x.dtype, gain)
    x = F.conv2d(x, weight, groups=c)
    return x[:, :, ::down, ::down]


def upsample2d(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """Upsample by 2 with filter ``f`` (gain 4), as NVIDIA ``upsample2d`` with the default padding.

    One depthwise ``conv_transpose2d`` (stride 2) followed by a one-pixel crop on each side.

    Args:
        x: (N, C, H, W).
        f: (K, K) symmetric filter, K = 4 for [1,3,3,1].

    Returns:
        (N, C, 2H, 2W).
    """
    c = x.shape[1]
    k = f.shape[0]
    y = F.conv_transpose2d(x, _depthwise(f, c, x.dtype, 4.0), stride=2, groups=c)  # (N, C, 2H+K-2, 2W+K-2)
    lo = (k - 2) // 2
    hi = k - 2 - lo
    return y[:, :, lo : y.shape[2] - hi, lo : y.shape[3] - hi]


def blur(x: torch.Tensor, f: torch.Tensor, pad: int, gain: float = 1.0, stride: int = 1) -> torch.Tensor:
    """Symmetric pad by ``pad`` then depthwise FIR filter (optionally strided). x: (N, C, H, W)."""
    c = x.shape[1]
    return F.conv2d(F.pad(x, [pad] * 4), _depthwise(f, c, x.dtype, gain), stride=stride, groups=c)


def downsample2d(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """Downsample by 2 with filter ``f`` (NVIDIA ``downsample2d`` default padding), as one strided depthwise conv.

    Args:
        x: (N, C, H, W), H and W even.
        f: (K, K) symmetric filter.

    Returns:
        (N, C, H/2, W/2).
    """
    k = f.shape[0]
    return blur(x, f, (k - 2 + 1) // 2, stride=2)
