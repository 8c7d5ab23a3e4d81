"""Bias + activation + gain + clamp in one call, the ``bias_act`` op of NVlabs' ``torch_utils/ops`` in pure PyTorch."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["LRELU_GAIN", "LRELU_SLOPE", "bias_act"]

LRELU_SLOPE = 0.2
"""Negative slope of StyleGAN2's leaky ReLU."""
LRELU_GAIN = math.sqrt(2.0)
"""Default gain after the leaky ReLU (keeps the activations' scale)."""


def bias_act(
    x: torch.Tensor,
    bias: torch.Tensor | None = None,
    act: str = "linear",
    gain: float | None = None,
    clamp: float | None = None,
) -> torch.Tensor:
    """Add a per-channel bias (dim 1), apply the activation, multiply by ``gain``, clamp to ``[-clamp, clamp]``.

    Args:
        x: (N, C, ...) tensor.
        bias: (C,) or None.
        act: ``"linear"`` or ``"lrelu"`` (slope 0.2).
        gain: output gain; None = the activation's default (√2 for lrelu, 1 for linear).
        clamp: None = no clamping.

    Returns:
        Tensor shaped like ``x``.
    """
    if act not in ("linear", "lrelu"):
        raise ValueError(f"bias_act: unsupported activation {act!r}; use 'linear' or 'lrelu'")
    if bias is not None:
        x = x + bias.to(x.dtype).reshape([1, -1] + [1] * (x.ndim - 2))
    if act == "lrelu":
        x = F.leaky_relu(x, LRELU_SLOPE)
    g = (LRELU_GAIN if act == "lrelu" else 1.0) if gain is None else gain
    if g != 1:
        x = x * g
    if clamp is not None and clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return x
