"""A tiny embedded world for inference tests: procedural teacher at 32 px, a tiny G_A and its exported weights."""

from __future__ import annotations

from pathlib import Path

import torch

from albedogan.inference.pipeline import FacePipeline, build_pipeline
from albedogan.models.weights_file import export_inference_weights
from albedogan.models.estimator import GroundTruthEstimator
from albedogan.nets.albedo_generator import AlbedoGenerator
from albedogan.teachers.procedural import ProceduralTeacher

TEACHER_KWARGS = dict(image_size=32, uv_resolution=32, z_dim=16, w_dim=16, num_ws=8, calibration_samples=64)
G_KWARGS = dict(w_dim=16, uv_resolution=32, channel_base=256, channel_max=16)

#: infer.py overrides that build the same world from the CLI (append checkpoint=..., paths.data_dir=..., ...); ``~world``
#: drops the default world preset so the groups and keys below define it
CLI_OVERRIDES = ["~world"] + [f"teacher.{k}={v}" for k, v in TEACHER_KWARGS.items()] + ["render_size=32",
                                                                                        "uv_resolution=32"]


def tiny_generator(seed: int = 0) -> AlbedoGenerator:
    torch.manual_seed(seed)
    return AlbedoGenerator(**G_KWARGS).eval()


def write_tiny_checkpoint(path: Path, seed: int = 0) -> Path:
    """Export a randomly initialised tiny G_A (seeded) as an inference weights file."""
    return export_inference_weights(tiny_generator(seed), path, metadata={"test": True})


def tiny_teacher(head) -> ProceduralTeacher:
    return ProceduralTeacher(head, **TEACHER_KWARGS)


def tiny_pipeline(head, checkpoint: Path | None, estimator=None) -> FacePipeline:
    """Teacher + oracle estimator (GroundTruthEstimator unless given) + G_A from ``checkpoint`` (None: unwrap)."""
    est = GroundTruthEstimator(n_shape=head.n_shape, n_exp=head.n_exp) if estimator is None else estimator
    return build_pipeline(tiny_teacher(head), head, est, checkpoint, allow_no_checkpoint=checkpoint is None,
                          render_size=32, uv_resolution=32)
