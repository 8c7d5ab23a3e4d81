"""Random state dicts that save to a few MB whatever the network size (for official-layout checkpoint tests).

Every tensor is a distinct strided view of one shared random storage, so ``torch.save`` writes the storage once and
the views' metadata; ``torch.load(weights_only=True)`` rebuilds the same values. BatchNorm running variances are
positive, ``num_batches_tracked`` counters are real int64 scalars.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

_PRIMES = (1, 3, 7, 13, 29)


def compact_random_state(template: Mapping[str, torch.Tensor], seed: int = 0, pool: int = 1 << 18) -> dict[str, torch.Tensor]:
    """Random tensors with ``template``'s keys, shapes and dtypes, backed by one shared storage."""
    gen = torch.Generator().manual_seed(seed)
    base = torch.randn(pool, generator=gen) * 0.05
    positive = base.abs() + 0.5
    out: dict[str, torch.Tensor] = {}
    for i, (key, ref) in enumerate(template.items()):
        if not ref.is_floating_point():
            out[key] = torch.tensor(7, dtype=ref.dtype) if ref.ndim == 0 else torch.zeros_like(ref)
            continue
        src = positive if key.endswith("running_var") else base
        if ref.ndim == 0:
            out[key] = src[i % pool].clone()
            continue
        strides = _PRIMES[: ref.ndim][::-1]
        span = sum((d - 1) * s for d, s in zip(ref.shape, strides)) + 1
        if span > pool:
            raise ValueError(f"{key}: shape {tuple(ref.shape)} does not fit the pool")
        offset = int(torch.randint(0, pool - span + 1, (1,), generator=gen))
        out[key] = src.as_strided(tuple(ref.shape), strides, offset)
    return out
