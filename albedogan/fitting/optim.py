"""Adam over a few small per-face tensors packed into one flat leaf (the fitter's inner loop).

The fitter optimises a handful of (N, ...) tensors (camera, poses, expression, shape, light, albedo), each with its
own learning rate, for a few hundred steps. ``torch.optim.Adam`` with one parameter group per tensor spends more time
in Python bookkeeping per step than the update itself; :class:`PackedAdam` keeps one (N, D) leaf, a per-column
learning rate, and does the textbook Adam update (Kingma & Ba; ``torch.optim.Adam`` defaults: no weight decay, no
AMSGrad) in a few tensor ops. Per element the update is the same as ``torch.optim.Adam`` with those groups.
"""

from __future__ import annotations

from typing import Mapping

import torch

__all__ = ["PackedAdam"]


class PackedAdam:
    """Adam on named (N, ...) tensors packed column-wise into one (N, D) leaf.

    Args:
        tensors: name -> (N, ...) start value (copied; same N, dtype and device for all).
        lr: name -> learning rate (every name of ``tensors``).
        betas: Adam's moment decay rates.
        eps: Adam's denominator floor.

    Use ``values()`` inside the graph (views of the leaf, reshaped to each tensor's shape), ``loss.backward()``,
    then ``step()``.
    """

    def __init__(self, tensors: Mapping[str, torch.Tensor], lr: Mapping[str, float],
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        missing = sorted(set(tensors) - set(lr))
        if missing:
            raise ValueError(f"PackedAdam: no learning rate for {missing}")
        first = next(iter(tensors.values()))
        n = first.shape[0]
        self._shapes = {k: tuple(t.shape) for k, t in tensors.items()}
        widths = [t[0].numel() for t in tensors.values()]
        self.leaf = torch.cat([t.detach().reshape(n, -1) for t in tensors.values()], dim=1).clone().requires_grad_(True)
        self._lr = torch.cat([torch.full((w,), float(lr[k]), dtype=first.dtype, device=first.device)
                              for k, w in zip(tensors, widths)])  # (D,)
        ends = torch.tensor(widths).cumsum(0).tolist()
        self._slices = {k: slice(e - w, e) for k, w, e in zip(tensors, widths, ends)}
        self._m = torch.zeros_like(self.leaf)
        self._v = torch.zeros_like(self.leaf)
        self.betas, self.eps, self.steps = betas, float(eps), 0

    def values(self) -> dict[str, torch.Tensor]:
        """name -> view of the leaf in the tensor's shape (carries gradients to the leaf)."""
        return {k: self.leaf[:, s].reshape(self._shapes[k]) for k, s in self._slices.items()}

    @torch.no_grad()
    def step(self) -> None:
        """One Adam update from ``leaf.grad`` (which is then cleared)."""
        grad = self.leaf.grad
        if grad is None:
            return
        b1, b2 = self.betas
        self.steps += 1
        self._m.lerp_(grad, 1 - b1)
        self._v.mul_(b2).addcmul_(grad, grad, value=1 - b2)
        denom = (self._v / (1 - b2 ** self.steps)).sqrt_().add_(self.eps)
        self.leaf.addcdiv_(self._m * self._lr, denom, value=-1.0 / (1 - b1 ** self.steps))
        self.leaf.grad = None
