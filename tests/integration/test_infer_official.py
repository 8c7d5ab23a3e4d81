"""The same CLI on the official world: ``world=ffhq`` with every asset in its official file format (FLAME
``generic_model.pkl`` chumpy-style pickle, DECA's landmark ``.npy`` and ``head_template.obj``, FLAME masks, a
rosinality StyleGAN2 ``.pt`` training checkpoint, ``deca_model.tar``, ``mica.tar``), built small here."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
import trimesh

from albedogan.assets.synthetic import ensure_synthetic_head
from albedogan.nets.arcface import iresnet50
from albedogan.nets.encoder import DecaEncoder
from albedogan.nets.mica import MappingNetwork
from tests.helpers.compact_state import compact_random_state
from tests.helpers.inference_world import write_tiny_checkpoint
from tests.helpers.stylegan2_files import tiny_pair, write_training_checkpoint

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def official_assets(tmp_path_factory, synthetic_data_dir):
    root = tmp_path_factory.mktemp("official")
    flame = ensure_synthetic_head(synthetic_data_dir)  # the official FLAME formats, written by the project's writers
    (root / "FLAME2020").mkdir()
    shutil.copy(flame.model, root / "FLAME2020" / "generic_model.pkl")
    for src, name in ((flame.landmark_embedding, "landmark_embedding.npy"), (flame.uv_template, "head_template.obj"),
                      (flame.uv_face_mask, "uv_face_mask.png"), (flame.uv_face_eye_mask, "uv_face_eye_mask.png")):
        shutil.copy(src, root / name)
    G, D = tiny_pair(32, seed=0)
    write_training_checkpoint(root / "stylegan2-ffhq-config-f.pt", G, G, D, prefix="module.")
    with torch.device("meta"):
        e_flame, arc = DecaEncoder().state_dict(), iresnet50().state_dict()
    torch.save({"E_flame": compact_random_state(e_flame, seed=1), "E_detail": {}, "D_detail": {}},
               root / "deca_model.tar")
    mapping = {f"regressor.{k}": v for k, v in MappingNetwork().state_dict().items()}
    torch.save({"arcface": compact_random_state(arc, seed=2), "flameModel": mapping}, root / "mica.tar")
    return root


def test_generate_with_official_format_assets(project_root, official_assets, tmp_path):
    ckpt = write_tiny_checkpoint(tmp_path / "g_a.safetensors", seed=4)  # G_A with the teacher's w_dim (16)
    out = subprocess.run(
        [sys.executable, "infer.py", "mode=generate", "world=ffhq", f"paths.assets_dir={official_assets}",
         f"checkpoint={ckpt}", "teacher.image_size=32", "render_size=32", "mode.seeds=[5]", "mode.batch_size=1",
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
