"""Photo reconstruction with the default fitting: seconds per photo (``mode=reconstruct``, excluding start-up).

The shipped embedded world (synthetic head 50/20 coefficients, the pre-trained embedded estimator, renders 256²,
unwrapped de-lit albedo at UV 256) on skimage's ``astronaut`` (512²): YuNet + dlib 68 points + landmark crop (224²)
+ estimator + ``conf/fit/photometric.yaml`` fitting + de-lit albedo + exports (OBJ, npz, PNGs, landmarks.json). The
target is <= 2 s per photo on 2 CPU cores. CPU and full runs use the same sizes (the photo path has one size).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch

from albedogan.bench.common import BenchResult, time_call

__all__ = ["run"]

_ROOT = Path(__file__).resolve().parents[2]


def _pipeline(device: torch.device):
    from albedogan.flame.head import HeadModel
    from albedogan.inference.pipeline import build_pipeline
    from albedogan.models.estimator import build_embedded_estimator
    from albedogan.teachers.procedural import ProceduralTeacher

    head = HeadModel.synthetic(Path(tempfile.gettempdir()) / "albedogan_bench_data", n_shape=50, n_exp=20)
    weights = _ROOT / "checkpoints" / "embedded_estimator.safetensors"
    est = build_embedded_estimator(n_shape=50, n_exp=20, input_size=32, channels=[16, 32, 64], hidden_dim=128,
                                   pooling="flatten", shape_network=False,
                                   weights_path=str(weights) if weights.is_file() else None)
    teacher = ProceduralTeacher(head, image_size=32, uv_resolution=64, z_dim=64, w_dim=64, num_ws=8,
                                calibration_samples=64)
    return build_pipeline(teacher, head, est, None, allow_no_checkpoint=True, render_size=256, uv_resolution=256,
                          device=device)


def run(device: torch.device, full: bool) -> list[BenchResult]:
    """Seconds per photo of reconstruct with the default fitting (one warm-up photo first)."""
    from omegaconf import OmegaConf
    from PIL import Image
    from skimage import data

    from albedogan.inference.reconstruct import run_reconstruct

    fit = OmegaConf.to_container(OmegaConf.load(_ROOT / "conf" / "fit" / "photometric.yaml"))
    pipe = _pipeline(device)
    n = 3
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        photo = tmp / "astronaut.png"
        Image.fromarray(data.astronaut()).save(photo)
        call = lambda: run_reconstruct(pipe, str(photo), tmp / "out", detector="yunet", fit=fit,  # noqa: E731
                                       glb=False, contact_sheet_rows=0)
        cpu0 = time.process_time()
        t = time_call(call, device, warmup=1, repeats=n)
        cpu = (time.process_time() - cpu0) / (n + 1)
    return [BenchResult("reconstruct, default fit (dlib68 + landmarks + photometric), 224² crop", t, 1, "img",
                        extra={"cpu_seconds_per_photo": cpu, "threads": float(torch.get_num_threads())})]
