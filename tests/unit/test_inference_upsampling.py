"""Exports above the albedo's own resolution are resampled with one warning per run, not one per face."""

from __future__ import annotations

import logging

from PIL import Image

from albedogan.inference import generate
from albedogan.inference.generate import run_generate
from tests.helpers.inference_world import tiny_pipeline, write_tiny_checkpoint


def test_upsampling_warns_once(synthetic_head_model, tmp_path, caplog):
    pipeline = tiny_pipeline(synthetic_head_model, write_tiny_checkpoint(tmp_path / "g.safetensors"))
    generate._UPSAMPLE_WARNED.clear()
    with caplog.at_level(logging.WARNING, logger="albedogan.inference.generate"):
        run_generate(pipeline, tmp_path / "out", seeds=[1, 2, 3], uv_resolution=64, sheet_cell=16)
        run_generate(pipeline, tmp_path / "same", seeds=[4], uv_resolution=32, sheet_cell=16)  # native: silent
    warnings = [r.getMessage() for r in caplog.records if "upsamples" in r.getMessage()]
    assert warnings == ["uv_resolution=64 upsamples the 32² albedo this checkpoint produces (bilinear, no new "
                        "detail); mode.uv_resolution=32 or null keeps its own resolution"]
    assert Image.open(tmp_path / "out" / "seed0001" / "mesh_albedo.png").size == (64, 64)
