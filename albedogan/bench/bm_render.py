"""Renderer throughput: ``FaceRenderer`` forward+backward vs a raw pytorch3d textured rasterisation, same run.

Mesh: a ~4.9k-vertex / 9.8k-face UV sphere (FLAME-sized). Ours = rasterise + exact barycentrics + vertex normals +
SH shading + texture lookup, gradients to vertices, texture and light. Raw = pytorch3d ``rasterize_meshes`` +
``interpolate_face_attributes`` of the UVs + ``grid_sample``, gradients to vertices and texture. ``extra`` holds
``ratio_vs_raw_pytorch3d`` = ours / raw seconds (target <= 1.5).
"""

from __future__ import annotations

import torch

from albedogan.bench.common import BenchResult, raw_pytorch3d_raster, time_call
from albedogan.render import FaceRenderer, directional_sh_coeffs, uv_sphere, weak_perspective_project

__all__ = ["run"]

CPU_CONFIGS = ((64, 4), (128, 2), (224, 1))
FULL_CONFIGS = ((224, 32), (512, 8), (1024, 4))
TEXTURE_SIZE = 256


def _inputs(device: torch.device, batch: int):
    mesh = uv_sphere(50, 100, radius=0.1)
    g = torch.Generator().manual_seed(0)
    verts = (mesh.verts[None] + 0.002 * torch.randn(batch, *mesh.verts.shape, generator=g)).to(device)
    cam = torch.tensor([[8.0, 0.0, 0.0]], device=device).expand(batch, 3)
    ndc = weak_perspective_project(verts, cam)
    tex = torch.rand(batch, 3, TEXTURE_SIZE, TEXTURE_SIZE, generator=g).to(device)
    sh = directional_sh_coeffs(torch.tensor([0.3, 0.2, 1.0])).to(device).expand(batch, 9, 3).contiguous()
    return mesh, ndc, tex, sh


def _ours(renderer: FaceRenderer, ndc: torch.Tensor, tex: torch.Tensor, sh: torch.Tensor):
    def step() -> None:
        v = ndc.detach().requires_grad_(True)
        t = tex.detach().requires_grad_(True)
        s = sh.detach().requires_grad_(True)
        renderer(v, t, s).image.sum().backward()

    return step


def run(device: torch.device, full: bool) -> list[BenchResult]:
    """Time ours and raw pytorch3d fwd+bwd for each (resolution, batch); one result per configuration."""
    results: list[BenchResult] = []
    for size, batch in FULL_CONFIGS if full else CPU_CONFIGS:
        mesh, ndc, tex, sh = _inputs(device, batch)
        renderer = FaceRenderer(mesh.faces, mesh.verts_uvs, mesh.faces_uvs, size).to(device)
        repeats = 5 if device.type == "cuda" else 2
        t_ours = time_call(_ours(renderer, ndc, tex, sh), device, warmup=1, repeats=repeats)
        t_raw = time_call(raw_pytorch3d_raster(mesh.faces, mesh.verts_uvs, mesh.faces_uvs, ndc, tex, size), device,
                          warmup=1, repeats=repeats)
        results.append(
            BenchResult(
                name=f"render {size}² batch {batch} fwd+bwd ({mesh.faces.shape[0]} faces)",
                seconds=t_ours,
                items_per_call=batch,
                unit="img",
                extra={"raw_pytorch3d_seconds": t_raw, "ratio_vs_raw_pytorch3d": t_ours / t_raw},
            )
        )
    return results


if __name__ == "__main__":  # pragma: no cover - manual use: python -m albedogan.bench.bm_render
    import logging

    from albedogan.utils.logging import get_logger

    logging.basicConfig(level=logging.INFO)
    log = get_logger(__name__)
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    for r in run(dev, full=dev.type == "cuda"):
        log.info("%s: %.4f s/call, %.1f %s/s, %s", r.name, r.seconds, r.throughput, r.unit, r.extra)
