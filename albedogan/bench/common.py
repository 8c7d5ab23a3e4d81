"""Shared timing helpers for ``make bench`` modules (``albedogan/bench/bm_*.py``).

Each benchmark module defines ``run(device: torch.device, full: bool) -> list[BenchResult]``; ``full`` selects the
paper-size configuration (for a GPU), otherwise tiny CPU sizes. ``python -m albedogan.bench`` runs them all.
"""

from __future__ import annotations

import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator

import torch

__all__ = ["BenchResult", "BenchTimeout", "raw_pytorch3d_raster", "remaining_budget", "set_budget", "time_call",
           "time_limit"]

_DEADLINE: float | None = None


class BenchTimeout(BaseException):
    """A benchmark (row) ran past its time limit (:func:`time_limit`). A ``BaseException`` (as ``KeyboardInterrupt``),
    so the ``except Exception`` of the code being timed (e.g. the compile fallback) does not swallow it."""


def set_budget(seconds: float | None) -> None:
    """Give the whole benchmark run ``seconds`` of wall time from now (None = unlimited); rows that find less than
    they need left are reported as skipped (:func:`remaining_budget`)."""
    global _DEADLINE
    _DEADLINE = None if seconds is None else time.monotonic() + float(seconds)


def remaining_budget() -> float | None:
    """Seconds left of the run's budget (None = unlimited)."""
    return None if _DEADLINE is None else max(0.0, _DEADLINE - time.monotonic())


@contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Raise :class:`BenchTimeout` in the block once ``seconds`` have passed (SIGALRM, main thread, POSIX; elsewhere
    or for None a no-op). The signal interrupts Python code (e.g. ``torch.compile``), a running CUDA kernel at its
    return. Nested limits: the inner one replaces the outer for its duration, and the outer is restored after."""
    if seconds is None or threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGALRM"):
        yield
        return

    def _raise(signum, frame):  # noqa: ARG001 - signal handler signature
        raise BenchTimeout(f"ran past its {seconds:.0f} s limit")

    previous = signal.signal(signal.SIGALRM, _raise)
    outer_left, _ = signal.setitimer(signal.ITIMER_REAL, max(0.01, float(seconds)))
    start = time.monotonic()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer_left > 0:
            signal.setitimer(signal.ITIMER_REAL, max(0.01, outer_left - (time.monotonic() - start)))


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


def raw_pytorch3d_raster(
    faces: torch.Tensor,
    verts_uvs: torch.Tensor,
    faces_uvs: torch.Tensor,
    ndc: torch.Tensor,
    texture: torch.Tensor,
    size: int,
    grad: bool = True,
) -> Callable[[], None]:
    """The baseline every renderer figure is compared with: raw pytorch3d textured rasterisation.

    ``rasterize_meshes`` + ``interpolate_face_attributes`` of the UVs + ``grid_sample`` of the texture (and, with
    ``grad``, the backward pass to the vertices and the texture), on the same mesh and sizes as the measured code.

    Args:
        faces: (F, 3) long; verts_uvs: (T, 2); faces_uvs: (F, 3) long.
        ndc: (N, V, 3) image-NDC vertices (see ``albedogan.render``); texture: (N, 3, Ht, Wt).
        size: square image size in pixels.
    """
    import torch.nn.functional as F
    from pytorch3d.ops import interpolate_face_attributes
    from pytorch3d.renderer.mesh.rasterize_meshes import rasterize_meshes
    from pytorch3d.structures import Meshes

    from albedogan.render import uv_to_grid

    dev = ndc.device
    faces = faces.to(dev)
    face_uvs = verts_uvs.to(dev)[faces_uvs.to(dev)]  # (F, 3, 2)

    def step() -> None:
        with torch.set_grad_enabled(grad):
            v = ndc.detach().requires_grad_(grad)
            t = texture.detach().requires_grad_(grad)
            p3 = v * v.new_tensor([-1.0, -1.0, 1.0]) + v.new_tensor([0.0, 0.0, 10.0])  # pytorch3d NDC, depth > 0
            meshes = Meshes(verts=p3, faces=faces[None].expand(v.shape[0], -1, -1))
            p2f, _, bary, _ = rasterize_meshes(meshes, image_size=size, blur_radius=0.0, faces_per_pixel=1)
            uv = interpolate_face_attributes(p2f, bary, face_uvs.repeat(v.shape[0], 1, 1))[..., 0, :]  # (N, H, W, 2)
            img = F.grid_sample(t, uv_to_grid(uv), align_corners=False) * (p2f[..., 0] >= 0)[:, None]
            if grad:
                img.sum().backward()

    return step
