"""Shared timing helpers for ``make bench`` modules (``albedogan/bench/bm_*.py``).

Each benchmark module defines ``run(device: torch.device, full: bool) -> list[BenchResult]``; ``full`` selects the
paper-size configuration (for a GPU), otherwise tiny CPU sizes. ``python -m albedogan.bench`` runs them all.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import torch

__all__ = ["BenchResult", "time_call"]


@dataclass
class BenchResult:
    """One measured figure.

    Attributes:
        name: what was measured, e.g. ``"render 224² batch 8 fwd+bwd"``.
        seconds: mean wall-clock seconds per call.
        items_per_call: images/meshes/faces processed per call (for the throughput column).
        unit: name of the items (``"img"``, ``"mesh"``, ``"face"``).
        extra: other figures, e.g. ``{"ratio_vs_raw_pytorch3d": 1.21}``.
    """

    name: str
    seconds: float
    items_per_call: int = 1
    unit: str = "item"
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def throughput(self) -> float:
        return self.items_per_call / self.seconds if self.seconds > 0 else float("inf")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], object], device: torch.device, warmup: int = 1, repeats: int = 3, min_time: float = 0.0) -> float:
    """Mean seconds per call of ``fn`` after ``warmup`` calls (synchronising CUDA around each timing)."""
    for _ in range(warmup):
        fn()
    _sync(device)
    n = 0
    start = time.perf_counter()
    while n < repeats or (time.perf_counter() - start) < min_time:
        fn()
        n += 1
    _sync(device)
    return (time.perf_counter() - start) / n
