"""Evaluation benchmarks: exact point-to-mesh distance throughput and one full NoW scan evaluation.

``full``: ~60k scan points against a ~10k-face mesh (NoW-like sizes); tiny: ~6k points, ~4.9k faces.
"""

from __future__ import annotations

import numpy as np
import torch
import trimesh

from albedogan.bench.common import BenchResult, time_call
from albedogan.eval.geometry import point_to_mesh_distance
from albedogan.eval.now import evaluate_scan


def _bumpy(count: int, radius_mm: float, amp: float) -> tuple[np.ndarray, np.ndarray]:
    m = trimesh.creation.uv_sphere(radius=1.0, count=[count, count])
    v = np.asarray(m.vertices)
    v = radius_mm * v * (1 + amp * np.sin(3 * v[:, :1]) * np.cos(2 * v[:, 1:2]))
    return v, np.asarray(m.faces)


def run(device: torch.device, full: bool) -> list[BenchResult]:
    """Distance throughput (points/s) and one NoW per-image evaluation (crop + align + errors)."""
    count, n_pts = (51, 60_000) if full else (36, 6_000)  # uv sphere: ~9.9k / ~4.9k faces
    v, f = _bumpy(count, 100.0, 0.1)  # (V, 3) mm, (F, 3)
    g = torch.Generator().manual_seed(0)
    verts = torch.as_tensor(v, dtype=torch.float32, device=device)
    faces = torch.as_tensor(f, device=device)
    src = verts[torch.randint(0, len(v), (n_pts,), generator=g).to(device)]
    pts = src + torch.randn(n_pts, 3, generator=g).to(device)  # ~1 mm off the surface, like an aligned scan
    sec = time_call(lambda: point_to_mesh_distance(pts, verts, faces), device, warmup=1, repeats=2)
    results = [BenchResult(f"point-to-mesh exact distance, {n_pts} pts vs {len(f)} faces (fp32)", sec, n_pts, "pt")]

    scan_count = 180 if full else 56  # scan density: ~60k (full) / ~6k (tiny) vertices, about half inside the crop
    scan_v, _ = _bumpy(scan_count, 100.0, 0.1)
    pred_v, pred_f = _bumpy(count, 100.0, 0.12)
    front = np.flatnonzero(pred_v[:, 2] > 50)[:: max(1, int((pred_v[:, 2] > 50).sum()) // 7)][:7]
    lmk_pred = pred_v[front] / 1000.0
    lmk_scan = scan_v[np.argmin(np.linalg.norm(scan_v[None] - pred_v[front][:, None], axis=-1), axis=1)]
    pred_m = pred_v / 1000.0
    holder: dict[str, object] = {}

    def one() -> None:
        holder["ev"] = evaluate_scan(scan_v, lmk_scan, pred_m, pred_f, lmk_pred, device=device)

    sec = time_call(one, device, warmup=0, repeats=1)
    ev = holder["ev"]
    results.append(BenchResult(
        f"NoW evaluate_scan, {len(scan_v)}-vertex scan vs {len(pred_f)}-face prediction (fp64)", sec, 1, "scan",
        extra={"cropped_points": float(ev.distances.size), "iterations": float(ev.similarity.iterations),
               "median_mm": float(np.median(ev.distances))}))
    return results
