"""2D landmark losses with DECA's per-landmark weights (68-point iBUG order)."""

from __future__ import annotations

import torch

__all__ = ["deca_landmark_weights", "landmark_loss", "eye_closure_loss", "lip_distance_loss"]


def deca_landmark_weights(device: torch.device | str | None = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(68,) weights: 2 for points 5–6 and 10–11, nose (27–35) 1.5, points 30/31/35 = 3, mouth (48–67) 1.5,
    points 48/54 = 3, others 1 (REFERENCE §2)."""
    w = torch.ones(68, device=device, dtype=dtype)
    w[[5, 6, 10, 11]] = 2.0
    w[27:36] = 1.5
    w[[30, 31, 35]] = 3.0
    w[48:68] = 1.5
    w[[48, 54]] = 3.0
    return w


def landmark_loss(
    pred: torch.Tensor, target: torch.Tensor, confidence: torch.Tensor | None = None, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Weighted mean L1 distance between landmark sets.

    Args:
        pred: (N, L, 2) predicted landmarks in image NDC ([-1, 1]).
        target: (N, L, 2) targets in the same frame.
        confidence: (N, L) per-landmark confidence in [0, 1] (detector scores); None = all 1.
        weights: (L,) per-landmark weights; None = DECA's weights when L = 68, else uniform.
    """
    if pred.shape != target.shape:
        raise ValueError(f"landmark_loss: pred {tuple(pred.shape)} vs target {tuple(target.shape)}")
    n_lmk = pred.shape[1]
    if weights is None:
        weights = deca_landmark_weights(pred.device, pred.dtype) if n_lmk == 68 else pred.new_ones(n_lmk)
    w = weights.to(pred)[None, :].expand(pred.shape[0], n_lmk)
    if confidence is not None:
        w = w * confidence
    dist = (pred - target).abs().sum(-1)  # (N, L)
    return (dist * w).sum() / w.sum().clamp_min(1e-6)


def _pair_distance(lmk: torch.Tensor, upper: list[int], lower: list[int]) -> torch.Tensor:
    return (lmk[:, upper] - lmk[:, lower]).norm(dim=-1)  # (N, P)


def eye_closure_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 between predicted and target eyelid openings (upper/lower lid pairs of both eyes), (N, 68, 2) inputs."""
    upper, lower = [37, 38, 43, 44], [41, 40, 47, 46]
    return (_pair_distance(pred, upper, lower) - _pair_distance(target, upper, lower)).abs().mean()


def lip_distance_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 between predicted and target inner-lip openings, (N, 68, 2) inputs."""
    upper, lower = [61, 62, 63], [67, 66, 65]
    return (_pair_distance(pred, upper, lower) - _pair_distance(target, upper, lower)).abs().mean()
