"""StyleGAN2's modulated (and demodulated) convolution, optionally upsampling by 2 (NVlabs ``modulated_conv2d``)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from albedogan.nets.ops.upfirdn2d import blur
from albedogan.utils.shapes import assert_shape

__all__ = ["modulated_conv2d"]


def modulated_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    noise: torch.Tensor | None = None,
    up: int = 1,
    resample_filter: torch.Tensor | None = None,
    demodulate: bool = True,
    fused_modconv: bool = True,
) -> torch.Tensor:
    """StyleGAN2 modulated (and demodulated) convolution with 'same' padding, optionally upsampling by 2.

    The fused path folds the batch into the channel axis and runs one grouped ``conv2d`` (or ``conv_transpose2d``
    for ``up=2``); the unfused path scales the activations before/after a shared-weight convolution (cheaper
    backward in training). Both compute the same function.

    Args:
        x: (N, I, H, W) activations.
        weight: (O, I, k, k) raw conv weight (k odd).
        styles: (N, I) per-sample input-channel scales.
        noise: None or a tensor broadcastable to (N, O, H*up, W*up), added after demodulation.
        up: 1 or 2. For 2: transposed conv (stride 2) followed by the FIR filter with padding 1, gain 4.
        resample_filter: (K, K) filter, required when ``up == 2``.
        demodulate: normalise each output channel's modulated weight to unit L2 norm.
        fused_modconv: use the grouped-convolution path.

    Returns:
        (N, O, H*up, W*up) tensor, dtype of ``x``.
    """
    n, in_ch, h, w_ = x.shape
    out_ch, in_w, kh, kw = weight.shape
    assert_shape(styles, [n, in_ch], "styles")
    if in_w != in_ch:
        raise ValueError(f"modulated_conv2d: weight expects {in_w} input channels, x has {in_ch}")
    if up not in (1, 2):
        raise ValueError(f"modulated_conv2d: up must be 1 or 2, got {up}")
    if up == 2 and resample_filter is None:
        raise ValueError("modulated_conv2d: up=2 needs resample_filter")

    if x.dtype == torch.float16 and demodulate:  # pre-normalise to avoid fp16 overflow (scale cancels in demod)
        weight = weight * (1 / math.sqrt(in_ch * kh * kw) / weight.norm(float("inf"), dim=[1, 2, 3], keepdim=True))
        styles = styles / styles.norm(float("inf"), dim=1, keepdim=True)

    dcoefs = None
    wmod = None
    if demodulate or fused_modconv:
        wmod = weight.unsqueeze(0) * styles.reshape(n, 1, in_ch, 1, 1)  # (N, O, I, k, k)
    if demodulate:
        dcoefs = (wmod.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()  # (N, O)
    pad = kh // 2

    if fused_modconv:
        if dcoefs is not None:
            wmod = wmod * dcoefs.reshape(n, out_ch, 1, 1, 1)
        xg = x.reshape(1, n * in_ch, h, w_)  # (1, N*I, H, W)
        wg = wmod.to(x.dtype)
        if up == 1:
            y = F.conv2d(xg, wg.reshape(n * out_ch, in_ch, kh, kw), padding=pad, groups=n)
        else:
            wt = wg.transpose(1, 2).reshape(n * in_ch, out_ch, kh, kw)  # (N*I, O, k, k)
            y = F.conv_transpose2d(xg, wt, stride=2, groups=n)  # (1, N*O, 2H+k-2, 2W+k-2)
            y = blur(y, resample_filter, pad=_up_blur_pad(resample_filter.shape[0], kh), gain=4.0)  # (1, N*O, 2H, 2W)
        y = y.reshape(n, out_ch, *y.shape[2:])
        if noise is not None:
            y = y + noise.to(y.dtype)
        return y

    y = x * styles.to(x.dtype).reshape(n, in_ch, 1, 1)
    wt = weight.to(x.dtype)
    if up == 1:
        y = F.conv2d(y, wt, padding=pad)
    else:
        y = F.conv_transpose2d(y, wt.transpose(0, 1), stride=2)
        y = blur(y, resample_filter, pad=_up_blur_pad(resample_filter.shape[0], kh), gain=4.0)
    if dcoefs is not None:
        y = y * dcoefs.to(y.dtype).reshape(n, out_ch, 1, 1)
    if noise is not None:
        y = y + noise.to(y.dtype)
    return y


def _up_blur_pad(k_filter: int, k_conv: int) -> int:
    """FIR padding after a stride-2 transposed conv so that 'same'-padded conv + 2x upsample gives exactly 2H.

    Transposed conv output is 2H + k_conv - 2; filtering with a K-tap filter and padding p keeps
    2H + k_conv - 2 + 2p - K + 1 samples, which must be 2H: p = (K - k_conv + 1) / 2 (= 1 for K=4, k=3).
    """
    return (k_filter - k_conv + 1) // 2
