"""Run-time shape checks at module boundaries (``None`` in an expected shape means "any size")."""

from __future__ import annotations

from typing import Sequence

import torch

__all__ = ["assert_shape"]


def assert_shape(tensor: torch.Tensor, shape: Sequence[int | None], name: str = "tensor") -> None:
    """Raise ``ValueError`` naming ``name`` unless ``tensor.shape`` matches ``shape``.

    Args:
        tensor: the tensor to check.
        shape: expected sizes; ``None`` matches any size in that dimension.
        name: how the tensor is called in the error message.
    """
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(tensor).__name__}")
    expected = tuple("*" if s is None else s for s in shape)
    if tensor.ndim != len(shape) or any(s is not None and s != t for s, t in zip(shape, tensor.shape)):
        raise ValueError(f"{name}: expected shape {expected}, got {tuple(tensor.shape)}")
