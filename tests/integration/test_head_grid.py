"""The head-model preview renders real heads through the CLI path (loaders → FLAME → renderer → PNG)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from albedogan.inference.head_grid import HeadSampler, render_head_grid
from albedogan.render.cameras import framing_camera

pytestmark = pytest.mark.integration


def test_render_head_grid_draws_heads(synthetic_head_model, tmp_path):
    out = render_head_grid(synthetic_head_model, tmp_path / "grid.png", rows=1, cols=2, image_size=48, seed=3)
    img = np.asarray(Image.open(out).convert("RGB")).astype(float) / 255
    assert img.shape == (2 + 48 + 2, 2 + 2 * (48 + 2), 3)
    cell = img[2:50, 2:50]
    covered = (np.abs(cell - 1.0).sum(-1) > 0.05).mean()  # non-white pixels: the head
    assert 0.25 < covered < 0.95
    # shaded, not flat: the light from the upper left makes intensities vary across the head
    assert cell[np.abs(cell - 1.0).sum(-1) > 0.05].std() > 0.02


def test_framing_camera_centres_mesh():
    verts = torch.tensor([[[0.1, 0.2, 0.0], [0.3, 0.6, 0.0], [0.2, 0.4, 0.1]]])
    projected = framing_camera(verts, margin=0.1).transform_points(verts)
    assert projected[..., :2].abs().max().item() == pytest.approx(0.9, abs=1e-6)
    assert projected[0, :, 0].min() + projected[0, :, 0].max() == pytest.approx(0.0, abs=1e-6)


def test_sampler_is_seeded(synthetic_head_model):
    a = HeadSampler().sample(synthetic_head_model, 3, torch.Generator().manual_seed(1))
    b = HeadSampler().sample(synthetic_head_model, 3, torch.Generator().manual_seed(1))
    assert torch.equal(a.shape, b.shape) and torch.equal(a.jaw_pose, b.jaw_pose)


def test_infer_cli_head_grid(project_root, synthetic_data_dir, tmp_path):
    out = subprocess.run(
        [sys.executable, "infer.py", "mode=head_grid", f"paths.data_dir={synthetic_data_dir}",
         f"output_dir={tmp_path}", "mode.rows=1", "mode.cols=1", "mode.image_size=32",
         f"hydra.run.dir={tmp_path}/hydra"],
        cwd=project_root, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "head_grid.png").is_file() and (tmp_path / "config.yaml").is_file()


def test_infer_cli_missing_official_flame_lists_files(project_root, tmp_path):
    out = subprocess.run(
        [sys.executable, "infer.py", "mode=head_grid", "flame=flame2020", f"paths.assets_dir={tmp_path}/none",
         f"output_dir={tmp_path}", f"hydra.run.dir={tmp_path}/hydra"],
        cwd=project_root, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode != 0
    for name in ("generic_model.pkl", "landmark_embedding.npy", "head_template.obj", "uv_face_mask.png"):
        assert name in out.stderr
    assert "flame.is.tue.mpg.de" in out.stderr
