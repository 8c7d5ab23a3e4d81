"""Photo reconstruction with the default fitting: seconds per photo (``mode=reconstruct``, excluding start-up).

The shipped embedded world (``conf/world/synthetic.yaml``: the synthetic head and the pre-trained embedded estimator
at the sizes that preset names, renders 256², de-lit albedo at UV 256) on skimage's ``astronaut`` (512²): YuNet +
dlib 68 points + landmark crop (224²) + estimator + ``conf/fit/photometric.yaml`` fitting + de-lit albedo + exports
(OBJ, npz, PNGs, landmarks.json). Start-up (building the detectors, the fitter, the albedo builder) is excluded by
difference: one run over a folder of one photo, one over ``1 + n`` copies; per photo = the difference / n, in wall
seconds and in process CPU seconds (``time.process_time``; with one thread that is the single-core work). The
target is <= 2 s per photo on 2 CPU cores. CPU and full runs use the same sizes (the photo path has one size).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any, Optional

import torch

from albedogan.bench.common import BenchResult, _sync

__all__ = ["embedded_world_estimator", "run"]

_ROOT = Path(__file__).resolve().parents[2]
_ESTIMATOR_ONLY_KEYS = ("_target_", "trainable", "weights_path", "n_shape", "n_exp")


def embedded_world_estimator(weights_path: Optional[str | Path] = "default") -> tuple[Any, int, int]:
    """The embedded estimator as ``conf/world/synthetic.yaml`` configures it (over ``conf/estimator/embedded.yaml``),
    with the shipped weights (``"default"``), the given file, or none (None). Returns ``(estimator, n_shape, n_exp)``.

    Reading the preset (not copying its sizes) keeps benchmarks and tests in step with the shipped checkpoint.
    """
    from omegaconf import OmegaConf

    from albedogan.models.estimator import build_embedded_estimator

    world = OmegaConf.to_container(OmegaConf.load(_ROOT / "conf" / "world" / "synthetic.yaml"), resolve=False)
    base = OmegaConf.to_container(OmegaConf.load(_ROOT / "conf" / "estimator" / "embedded.yaml"), resolve=False)
    kwargs = {k: v for k, v in {**base, **world["estimator"]}.items() if k not in _ESTIMATOR_ONLY_KEYS}
    n_shape, n_exp = int(world["flame"]["n_shape"]), int(world["flame"]["n_exp"])
    if weights_path == "default":
        shipped = _ROOT / "checkpoints" / "embedded_estimator.safetensors"
        weights_path = shipped if shipped.is_file() else None
    est = build_embedded_estimator(n_shape=n_shape, n_exp=n_exp, weights_path=None if weights_path is None else
                                   str(weights_path), **kwargs)
    return est.eval(), n_shape, n_exp


def _pipeline(device: torch.device):
    from albedogan.flame.head import HeadModel
    from albedogan.inference.pipeline import build_pipeline
    from albedogan.teachers.procedural import ProceduralTeacher

    est, n_shape, n_exp = embedded_world_estimator()
    head = HeadModel.synthetic(Path(tempfile.gettempdir()) / "albedogan_bench_data", n_shape=n_shape, n_exp=n_exp)
    teacher = ProceduralTeacher(head, image_size=32, uv_resolution=64, z_dim=64, w_dim=64, num_ws=8,
                                calibration_samples=64)  # not used by reconstruct (no differentiable synthesis)
    return build_pipeline(teacher, head, est, None, allow_no_checkpoint=True, render_size=256, uv_resolution=256,
                          device=device)


def run(device: torch.device, full: bool) -> list[BenchResult]:
    """Seconds per photo of reconstruct with the default fitting (start-up excluded by difference)."""
    from omegaconf import OmegaConf
    from PIL import Image
    from skimage import data

    from albedogan.inference.reconstruct import run_reconstruct

    fit = OmegaConf.to_container(OmegaConf.load(_ROOT / "conf" / "fit" / "photometric.yaml"))
    pipe = _pipeline(device)
    n = 3
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        one, many = tmp / "one", tmp / "many"
        one.mkdir()
        many.mkdir()
        photo = Image.fromarray(data.astronaut())
        photo.save(one / "astronaut.png")
        for k in range(n + 1):
            photo.save(many / f"astronaut_{k}.png")

        def timed(folder: Path) -> tuple[float, float]:
            _sync(device)
            wall, cpu = time.perf_counter(), time.process_time()
            run_reconstruct(pipe, str(folder), tmp / "out" / folder.name, detector="yunet", fit=fit, glb=False,
                            contact_sheet_rows=0)
            _sync(device)
            return time.perf_counter() - wall, time.process_time() - cpu

        timed(one)  # warm-up (first calls, lazy imports)
        wall_1, cpu_1 = timed(one)
        wall_n, cpu_n = timed(many)
    wall, cpu = (wall_n - wall_1) / n, (cpu_n - cpu_1) / n
    return [BenchResult("reconstruct, default fit (dlib68 + landmarks + photometric), 224² crop", wall, 1, "img",
                        extra={"cpu_seconds_per_photo": cpu, "startup_seconds": wall_1 - wall,
                               "threads": float(torch.get_num_threads())})]
