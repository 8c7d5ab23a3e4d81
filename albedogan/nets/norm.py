"""Frozen normalisation statistics for fine-tuned pretrained networks.

The rule (as in MICA, DECA and insightface fine-tuning): a pretrained network that is fine-tuned keeps the
normalisation statistics it was trained with. Its BatchNorm layers run in eval mode even while the surrounding module
trains — they normalise with the stored running mean / variance, never overwrite them, and work at any batch size
(batch 1 included: train-mode ``BatchNorm1d`` raises "Expected more than 1 value per channel when training"). Their
affine weight and bias still train when their parameters require grad.

Layers with no running statistics (GroupNorm, LayerNorm, InstanceNorm without ``track_running_stats``) are
unaffected: they behave the same in train and eval mode.
"""

from __future__ import annotations

from typing import TypeVar

from torch import nn

__all__ = ["freeze_norm_stats", "norm_layers_with_stats"]

M = TypeVar("M", bound=nn.Module)


def norm_layers_with_stats(module: nn.Module) -> list[nn.Module]:
    """Every BatchNorm / InstanceNorm layer in ``module`` (itself included) that tracks running statistics."""
    return [m for m in module.modules()
            if isinstance(m, nn.modules.batchnorm._NormBase) and m.track_running_stats]


def freeze_norm_stats(module: M) -> M:
    """Put every normalisation layer of ``module`` that tracks running statistics in eval mode (in place).

    Call it at the end of a ``train()`` override, after ``nn.Module.train``, so the rule survives every mode switch.
    ``module.training`` itself is left as it is. Returns ``module``.
    """
    for m in norm_layers_with_stats(module):
        m.train(False)
    return module
