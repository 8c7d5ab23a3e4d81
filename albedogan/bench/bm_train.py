"""Training throughput (images/s) of the AlbedoGAN LightningModule, per phase, on the embedded world.

CPU (default): ``experiment=debug`` sizes (image 32², UV 16², batch 2). ``full`` (a GPU): the procedural teacher at
224², G_A/D config-f channels at UV 256², batch 8, bf16-mixed. Each phase is timed over a fixed number of steps of
``trainer.fit`` with a one-phase schedule, after a warm-up fit (so imports/first-call costs are excluded).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir

from albedogan.bench.common import BenchResult
from albedogan.models.builder import build_training

__all__ = ["run"]

ROOT = Path(__file__).resolve().parents[2]


def _overrides(data_dir: str, out: str, phase: str, full: bool) -> list[str]:
    common = [f"paths.root_dir={ROOT}", f"paths.data_dir={data_dir}", f"paths.output_dir={out}",
              f"model.schedule.cycle=[[{phase},1]]", "model.schedule.warmup_steps=0"]
    if not full:
        return ["experiment=debug", *common]
    return ["experiment=synthetic", "model=albedogan", *common, "teacher.image_size=224", "teacher.uv_resolution=256",
            "model.albedo_generator.uv_resolution=256", "model.albedo_weights.identity=0",
            "model.albedo_weights.perceptual=0", "model.shape_weights.identity=0",
            "model.shape_weights.perceptual=0", "estimator.input_size=224", "estimator.weights_path=null",
            "data.batch_size=8"]


def _time_fit(cfg, device: torch.device, steps: int, precision: str) -> tuple[float, int]:
    model, data = build_training(cfg)
    return time_model_fit(model, data, device, steps, precision), int(data.batch_size)


def time_model_fit(model: pl.LightningModule, data: pl.LightningDataModule, device: torch.device, steps: int,
                   precision: str, warmup: int = 1) -> float:
    """Seconds per step of ``trainer.fit`` over ``steps`` steps, after a ``warmup``-step fit (first-call costs,
    compilation: each fit restarts at step 0, so a 2-step warm-up meets both a lazy-R1 step and a plain one)."""
    accel = "gpu" if device.type == "cuda" else "cpu"

    def fit(n: int) -> None:
        trainer = pl.Trainer(max_steps=n, accelerator=accel, devices=1, logger=False, enable_checkpointing=False,
                             enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                             precision=precision)
        trainer.fit(model, datamodule=data)

    fit(warmup)  # warm-up (first-call costs)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    fit(steps)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) / steps


def run(device: torch.device, full: bool) -> list[BenchResult]:
    results = []
    steps = 20 if full else 4
    precision = "bf16-mixed" if (full and device.type == "cuda") else "32-true"
    with tempfile.TemporaryDirectory() as tmp:
        for phase in ("albedo", "shape"):
            with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
                cfg = compose(config_name="train", overrides=_overrides(str(ROOT / "data"), tmp, phase, full))
            seconds, batch = _time_fit(cfg, device, steps, precision)
            size = cfg.teacher.image_size
            uv = cfg.model.albedo_generator.uv_resolution
            results.append(BenchResult(f"train phase {phase} (image {size}², UV {uv}², batch {batch})",
                                       seconds, batch, "img"))
    return results
