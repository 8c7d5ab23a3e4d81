"""The same CLI on the official world: ``world=ffhq`` with every asset in its official file format (FLAME
``generic_model.pkl`` chumpy-style pickle, DECA's landmark ``.npy`` and ``head_template.obj``, FLAME masks, a
rosinality StyleGAN2 ``.pt`` training checkpoint, ``deca_model.tar``, ``mica.tar``), built small here."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import trimesh

from tests.helpers.inference_world import write_tiny_checkpoint
from tests.helpers.official_assets import write_official_assets

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def official_assets(tmp_path_factory, synthetic_data_dir):
    return write_official_assets(tmp_path_factory.mktemp("official"), synthetic_data_dir)


def test_generate_with_official_format_assets(project_root, official_assets, tmp_path):
    ckpt = write_tiny_checkpoint(tmp_path / "g_a.safetensors", seed=4)  # G_A with the teacher's w_dim (16)
    out = subprocess.run(
        [sys.executable, "infer.py", "mode=generate", "world=ffhq", f"paths.assets_dir={official_assets}",
         f"checkpoint={ckpt}", "teacher.image_size=32", "render_size=32", "mode.seeds=[5]",
         "mode.sheet_cell=32", f"output_dir={tmp_path / 'out'}", f"hydra.run.dir={tmp_path}/hydra"],
        cwd=project_root, capture_output=True, text=True, timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    folder = tmp_path / "out" / "seed0005"
    mesh = trimesh.load(folder / "mesh.obj", process=False, force="mesh")
    assert len(mesh.faces) == 9896
    params = np.load(folder / "params.npz")
    assert params["w"].shape[-1] == 16 and params["shape"].shape == (300,)
    cfg = (tmp_path / "out" / "config.yaml").read_text()
    assert "StyleGAN2Teacher" in cfg and "build_deca_mica_estimator" in cfg and "generic_model.pkl" in cfg
