"""Inference throughput: ``generate`` faces/s (pipeline compute, then with every export written) and
``reconstruct`` images/s (load + detect + crop + estimator + unwrapped albedo + exports) on the embedded world.

CPU (``full=False``): procedural teacher 64², tiny G_A at UV 64, renders 64², 4 faces; reconstruct 4 photos at 64²
crops with the embedded estimator (no SFace shape net). Full (GPU): teacher 224², G_A at UV 256 (channel_base
16384), renders 256², 16 faces; reconstruct 16 photos at 224² crops with the SFace shape network. Weights are random
(throughput does not depend on training).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from albedogan.bench.common import BenchResult, time_call

__all__ = ["run"]


def _setup(device: torch.device, full: bool):
    from albedogan.flame.head import HeadModel
    from albedogan.inference.pipeline import FacePipeline
    from albedogan.models.estimator import build_embedded_estimator
    from albedogan.nets.albedo_generator import AlbedoGenerator
    from albedogan.teachers.procedural import ProceduralTeacher

    head = HeadModel.synthetic(Path(tempfile.gettempdir()) / "albedogan_bench_data")
    size, uv, dim = (224, 256, 512) if full else (64, 64, 32)
    teacher = ProceduralTeacher(head, image_size=size, uv_resolution=uv, z_dim=dim, w_dim=dim, num_ws=14,
                                calibration_samples=256)
    torch.manual_seed(0)
    g = AlbedoGenerator(w_dim=dim, uv_resolution=uv, channel_base=16384 if full else 512, channel_max=512 if full
                        else 32)
    oracle = FacePipeline(teacher, head, None, g, render_size=size + 32 if full else size, uv_resolution=uv)
    est = build_embedded_estimator(n_shape=head.n_shape, n_exp=head.n_exp, input_size=size if full else 64,
                                   shape_network=full)
    photo = FacePipeline(teacher, head, est, None, render_size=size, uv_resolution=uv)
    return oracle.to(device), photo.to(device), size


def _photos(folder: Path, n: int) -> Path:
    from PIL import Image
    from skimage import data

    folder.mkdir(parents=True, exist_ok=True)
    face = Image.fromarray(data.astronaut()).resize((256, 256))
    for i in range(n):
        face.save(folder / f"p{i}.png")
    return folder


def run(device: torch.device, full: bool) -> list[BenchResult]:
    """faces/s of generate (compute only, and with exports) and images/s of reconstruct."""
    from albedogan.inference.generate import run_generate
    from albedogan.inference.reconstruct import run_reconstruct

    n = 16 if full else 4
    repeats = 3 if device.type == "cuda" else 1
    results: list[BenchResult] = []
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        oracle, photo, size = _setup(device, full)
        seeds = list(range(n))
        t = time_call(lambda: oracle.generate(seeds), device, warmup=1, repeats=repeats)
        results.append(BenchResult(f"generate compute {size}² uv {oracle.albedo_generator.uv_resolution} batch {n}",
                                   t, n, "face"))
        t = time_call(lambda: run_generate(oracle, tmp / "gen", seeds=seeds, glb=True), device,
                      warmup=0, repeats=1)
        results.append(BenchResult(f"generate + exports (OBJ, GLB, npz, PNGs) batch {n}", t, n, "face"))
        folder = _photos(tmp / "photos", n)
        crop = 224 if full else 64
        t = time_call(lambda: run_reconstruct(photo, str(folder), tmp / "rec", detector="yunet", crop_size=crop,
                                              glb=True), device, warmup=0, repeats=1)
        results.append(BenchResult(f"reconstruct {crop}² crops (detect+estimate+unwrap+exports)", t, n, "img",
                                   extra={"inputs": float(n)}))
    return results


if __name__ == "__main__":  # pragma: no cover - manual use: python -m albedogan.bench.bm_inference
    import logging

    from albedogan.utils.logging import get_logger

    logging.basicConfig(level=logging.INFO)
    log = get_logger(__name__)
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    for r in run(dev, full=dev.type == "cuda"):
        log.info("%s: %.4f s/call, %.2f %s/s", r.name, r.seconds, r.throughput, r.unit)
