"""Latent editing: interpolation between seeds and attribute directions in w space.

An edit acts on W+ latents only; the pipeline then renders the edited latent end to end (teacher image → estimator
→ shape/expression, and G_A(w) → albedo), so albedo and shape change consistently. ``strength = 0`` is the identity.

Shapes: z (N, z_dim); w (N, w_dim); W+ ws (N, num_ws, w_dim); a direction is (w_dim,) (applied to every W+ row) or
(num_ws, w_dim) (per row). Directions computed here have unit norm (per the whole array), so ``strength`` is in
units of w distance.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from albedogan.assets.locate import AssetFormatError, MissingAssetError

__all__ = ["apply_direction", "direction_from_labels", "lerp", "load_direction", "save_direction", "slerp"]


def lerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Linear interpolation ``a + t (b - a)``.

    Args:
        a, b: (..., D) float latents of the same shape (e.g. W+ (num_ws, w_dim)).
        t: (T,) float fractions (0 → a, 1 → b).

    Returns:
        (T, ..., D) interpolated latents.
    """
    t = t.to(a.dtype).reshape(-1, *([1] * a.ndim))
    return a.unsqueeze(0) + t * (b - a).unsqueeze(0)


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Spherical interpolation of Gaussian latents along the great circle (norms interpolated linearly).

    Args:
        a, b: (D,) float z latents.
        t: (T,) float fractions.

    Returns:
        (T, D); falls back to :func:`lerp` when a and b are (anti)parallel.
    """
    na, nb = a.norm(), b.norm()
    ua, ub = a / na.clamp_min(eps), b / nb.clamp_min(eps)
    omega = torch.arccos((ua * ub).sum().clamp(-1 + eps, 1 - eps))
    so = torch.sin(omega)
    if so.abs() < 1e-4:
        return lerp(a, b, t)
    t = t.to(a.dtype)[:, None]
    direction = (torch.sin((1 - t) * omega) * ua + torch.sin(t * omega) * ub) / so  # (T, D) unit
    return direction * (na + t * (nb - na))


def apply_direction(ws: torch.Tensor, direction: torch.Tensor, strength: float | torch.Tensor) -> torch.Tensor:
    """``ws + strength · direction`` (out of place).

    Args:
        ws: (N, num_ws, w_dim) float W+.
        direction: (w_dim,) or (num_ws, w_dim) float.
        strength: scalar or (N,) float.

    Returns:
        (N, num_ws, w_dim) edited W+.
    """
    if ws.ndim != 3:
        raise ValueError(f"apply_direction: ws must be (N, num_ws, w_dim), got {tuple(ws.shape)}")
    d = direction.to(ws)
    if d.shape not in ((ws.shape[2],), tuple(ws.shape[1:])):
        raise ValueError(f"apply_direction: direction must be ({ws.shape[2]},) or {tuple(ws.shape[1:])}, "
                         f"got {tuple(d.shape)}")
    s = torch.as_tensor(strength, dtype=ws.dtype, device=ws.device).reshape(-1, 1, 1)
    return ws + s * d


def direction_from_labels(ws: torch.Tensor, labels: torch.Tensor, method: str = "mean_difference",
                          ridge: float = 1e-3) -> torch.Tensor:
    """An attribute direction from labelled latents.

    Args:
        ws: (N, w_dim) or (N, num_ws, w_dim) float latents of labelled samples.
        labels: (N,) binary (0/1 or bool) for ``mean_difference``; any real values for ``least_squares``.
        method: ``"mean_difference"`` (mean of positives − mean of negatives) or ``"least_squares"`` (ridge-
            regularised linear regression of the centred labels on the centred latents; no SVM needed).
        ridge: Tikhonov weight for ``least_squares`` (relative to the mean eigenvalue of the covariance).

    Returns:
        Direction of the latents' trailing shape ((w_dim,) or (num_ws, w_dim)), unit Frobenius norm, pointing
        toward larger labels.
    """
    if ws.shape[0] != labels.shape[0] or labels.ndim != 1:
        raise ValueError(f"direction_from_labels: labels must be (N={ws.shape[0]},), got {tuple(labels.shape)}")
    x = ws.reshape(ws.shape[0], -1).double()  # (N, D)
    y = labels.double().to(x.device)
    if method == "mean_difference":
        pos, neg = y > 0.5, y <= 0.5
        if not pos.any() or not neg.any():
            raise ValueError("direction_from_labels: mean_difference needs both positive and negative samples")
        d = x[pos].mean(0) - x[neg].mean(0)
    elif method == "least_squares":
        xc, yc = x - x.mean(0), y - y.mean()
        if x.shape[0] <= x.shape[1]:  # dual form: d = Xᵀ (X Xᵀ + λI)⁻¹ y
            gram = xc @ xc.T
            lam = ridge * gram.diagonal().mean().clamp_min(1e-12)
            d = xc.T @ torch.linalg.solve(gram + lam * torch.eye(gram.shape[0], dtype=x.dtype, device=x.device), yc)
        else:
            cov = xc.T @ xc
            lam = ridge * cov.diagonal().mean().clamp_min(1e-12)
            d = torch.linalg.solve(cov + lam * torch.eye(cov.shape[0], dtype=x.dtype, device=x.device), xc.T @ yc)
    else:
        raise ValueError(f"direction_from_labels: unknown method {method!r} (mean_difference | least_squares)")
    norm = d.norm()
    if norm < 1e-12:
        raise ValueError("direction_from_labels: the labelled classes have identical means (zero direction)")
    return (d / norm).reshape(ws.shape[1:]).to(ws.dtype)


def load_direction(path: str | os.PathLike, w_dim: int, num_ws: int) -> torch.Tensor:
    """Read a direction saved as ``.npy``: (w_dim,) or (num_ws, w_dim) float.

    Raises:
        MissingAssetError: no such file. AssetFormatError: not a float array of an accepted shape.
    """
    p = Path(path)
    if not p.is_file():
        raise MissingAssetError(f"edit direction not found: {p} (edit.direction=<file.npy> with shape ({w_dim},) "
                                f"or ({num_ws}, {w_dim}))")
    try:
        arr = np.load(p, allow_pickle=False)
    except Exception as err:  # noqa: BLE001
        raise AssetFormatError(f"{p}: not a .npy array ({err})") from err
    if arr.dtype.kind != "f" or arr.shape not in ((w_dim,), (num_ws, w_dim)):
        raise AssetFormatError(f"{p}: direction must be float with shape ({w_dim},) or ({num_ws}, {w_dim}), "
                               f"got {arr.dtype} {arr.shape}")
    if not np.isfinite(arr).all():
        raise AssetFormatError(f"{p}: direction contains NaN/inf")
    return torch.from_numpy(arr.astype(np.float32))


def save_direction(path: str | os.PathLike, direction: torch.Tensor) -> Path:
    """Write a direction as ``.npy`` (atomically)."""
    from albedogan.utils.io import atomic_open

    with atomic_open(path, "wb") as fh:
        np.save(fh, direction.detach().cpu().float().numpy(), allow_pickle=False)
    return Path(path)
