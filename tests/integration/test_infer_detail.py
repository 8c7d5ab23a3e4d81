"""``infer.py mode=generate world=ffhq`` with DECA's detail networks in ``deca_model.tar`` (official layout, small
official-format world): ``mesh_detail.obj`` is written next to ``mesh.obj`` — the dense UV-grid mesh, displaced."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from tests.helpers.inference_world import write_tiny_checkpoint
from tests.helpers.fullsize_assets import write_paper_assets

pytestmark = pytest.mark.integration


def test_generate_writes_detail_mesh(project_root, tmp_path):
    assets = write_paper_assets(tmp_path / "assets", full_size=False)
    ckpt = write_tiny_checkpoint(tmp_path / "g_a.safetensors", seed=4)  # w_dim 16, as the small teacher
    out = subprocess.run(
        [sys.executable, "infer.py", "mode=generate", "world=ffhq", f"paths.assets_dir={assets}", f"checkpoint={ckpt}",
         "teacher.image_size=32", "render_size=32", "mode.seeds=[5]", "mode.glb=false",
         "mode.sheet_cell=32", f"output_dir={tmp_path / 'out'}", f"hydra.run.dir={tmp_path}/hydra"],
        cwd=project_root, capture_output=True, text=True, timeout=900,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    folder = tmp_path / "out" / "seed0005"
    lines = (folder / "mesh_detail.obj").read_text().splitlines()
    verts = np.array([[float(x) for x in ln.split()[1:4]] for ln in lines if ln.startswith("v ")])
    faces = [ln for ln in lines if ln.startswith("f ")]
    assert len(verts) > 1000 and len(faces) > len(verts)  # a dense grid over the face region
    assert all(len(ln.split()) == 7 for ln in lines if ln.startswith("v "))  # albedo vertex colours
    assert np.isfinite(verts).all()
    coarse = [ln for ln in (folder / "mesh.obj").read_text().splitlines() if ln.startswith("v ")]
    assert len(coarse) == 5023
