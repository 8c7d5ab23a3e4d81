"""FLAME forward throughput on the embedded synthetic head (FLAME-sized: ~5k vertices, 5 joints, 400 blendshapes).

Measures ``HeadModel.forward`` (shape + expression blendshapes, pose correctives, LBS, 68 + 68 + 7 landmarks) with
random parameters, forward only and forward + backward to all parameters.
"""

from __future__ import annotations

import tempfile

import torch

from albedogan.bench.common import BenchResult, time_call
from albedogan.flame.head import HeadModel
from albedogan.structures import FlameParams

__all__ = ["run"]


def _params(batch: int, head: HeadModel, device: torch.device, requires_grad: bool) -> FlameParams:
    g = torch.Generator().manual_seed(0)
    tensors = [
        torch.randn(batch, n, generator=g) * 0.3 for n in (head.n_shape, head.n_exp, 3, 3, 3, 6)
    ]
    return FlameParams(*(t.to(device).requires_grad_(requires_grad) for t in tensors))


def run(device: torch.device, full: bool) -> list[BenchResult]:
    with tempfile.TemporaryDirectory() as data_dir:
        head = HeadModel.synthetic(data_dir).to(device)
    results = []
    for batch in (1, 32, 256) if full else (1, 16, 64):
        fwd_params = _params(batch, head, device, requires_grad=False)
        bwd_params = _params(batch, head, device, requires_grad=True)

        def forward() -> None:
            with torch.no_grad():
                head(fwd_params)

        def forward_backward() -> None:
            out = head(bwd_params)
            (out.vertices.sum() + out.landmarks2d.sum()).backward()

        n_vertices = head.flame.v_template.shape[0]
        results.append(BenchResult(f"FLAME forward batch {batch} ({n_vertices} verts)",
                                   time_call(forward, device, repeats=5), batch, "mesh"))
        results.append(BenchResult(f"FLAME forward+backward batch {batch}",
                                   time_call(forward_backward, device, repeats=3), batch, "mesh"))
    return results
