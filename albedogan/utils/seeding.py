"""Seeding: global RNG seeding for a run, and per-seed latents that do not depend on batch composition.

``latents_for_seeds`` follows NVIDIA ``generate.py``: every seed owns its generator, so seed 7 gives the same z
whether it is drawn alone, first or last in a batch, on any device. (NVIDIA draws with numpy's RandomState; we use
``torch.Generator`` on the CPU, so the values differ from NVIDIA's, but the property is the same.)
"""

from __future__ import annotations

import random
from typing import Sequence

import numpy as np
import torch

__all__ = ["MAX_SEED", "seed_everything", "latents_for_seeds"]

#: Largest seed accepted (``torch.Generator.manual_seed`` takes unsigned 64-bit values).
MAX_SEED: int = 2**64 - 1


def _check_seed(seed: object, name: str = "seed") -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(seed).__name__} ({seed!r})")
    seed = int(seed)
    if not 0 <= seed <= MAX_SEED:
        raise ValueError(f"{name} must be in [0, 2**64 - 1], got {seed}")
    return seed


def seed_everything(seed: int, workers: bool = True) -> int:
    """Seed Python ``random``, numpy, torch (all devices) and Lightning's worker seeding.

    Thin wrapper over :func:`pytorch_lightning.seed_everything` (which sets ``PL_GLOBAL_SEED`` so DataLoader
    workers and DDP processes derive their own seeds) that validates the seed first.

    Args:
        seed: integer in [0, 2**32 - 1] (the range numpy's global generator accepts).
        workers: also seed DataLoader workers deterministically (``PL_SEED_WORKERS=1``).

    Returns:
        The seed that was set.
    """
    seed = _check_seed(seed)
    if seed > 2**32 - 1:
        raise ValueError(f"seed_everything: seed must be in [0, 2**32 - 1] (numpy's limit), got {seed}")
    import pytorch_lightning as pl  # local import: keeps `albedogan.utils` import light

    pl.seed_everything(seed, workers=workers, verbose=False)
    # pl already seeds these; repeating keeps the contract explicit if Lightning's behaviour changes.
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return seed


def latents_for_seeds(
    seeds: Sequence[int],
    dim: int,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Standard-normal latents, one independent generator per seed.

    Row n is ``torch.randn(dim, generator=torch.Generator().manual_seed(seeds[n]))`` drawn on the CPU in float32,
    then moved to ``device``/``dtype``; so a seed's latent is independent of the other seeds in the batch, of the
    batch order and of the device.

    Args:
        seeds: N integer seeds in [0, 2**64 - 1] (duplicates allowed: they give identical rows).
        dim: latent size (e.g. 512 for StyleGAN2 z).
        device: output device (CPU if None).
        dtype: floating output dtype.

    Returns:
        (N, dim) tensor of ``dtype`` on ``device``, entries ~ N(0, 1).
    """
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise ValueError(f"latents_for_seeds: dim must be a positive integer, got {dim!r}")
    if not dtype.is_floating_point:
        raise ValueError(f"latents_for_seeds: dtype must be floating, got {dtype}")
    checked = [_check_seed(s, f"seeds[{i}]") for i, s in enumerate(seeds)]
    out = torch.empty(len(checked), dim, dtype=torch.float32)  # (N, dim), allocated here
    for row, seed in enumerate(checked):  # loop over samples (not pixels): a fresh generator per seed
        torch.randn(dim, generator=torch.Generator(device="cpu").manual_seed(seed), out=out[row])
    return out.to(device=device, dtype=dtype)
