"""Every official asset in its official file format, built small (FLAME ``generic_model.pkl`` chumpy-style pickle,
DECA's landmark ``.npy`` and ``head_template.obj``, FLAME masks, a rosinality StyleGAN2 ``.pt`` training checkpoint,
``deca_model.tar``, ``mica.tar`` and insightface's ArcFace ``backbone.pth``), laid out as ``paths.assets_dir``
expects them (``conf/world/ffhq.yaml``, ``conf/experiment/ffhq.yaml``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from albedogan.assets.synthetic import ensure_synthetic_head
from albedogan.nets.arcface import iresnet50, iresnet100
from albedogan.nets.encoder import DecaEncoder
from albedogan.nets.mica import MappingNetwork
from tests.helpers.compact_state import compact_random_state
from tests.helpers.stylegan2_files import tiny_pair, write_training_checkpoint


def write_official_assets(root: Path, synthetic_data_dir: Path) -> Path:
    """Write the official-format files under ``root`` (the synthetic head in FLAME's formats; a 32 px StyleGAN2 with
    w_dim 16; compact random DECA / MICA / ArcFace weights) and return ``root``."""
    flame = ensure_synthetic_head(synthetic_data_dir)  # the official FLAME formats, written by the project's writers
    (root / "FLAME2020").mkdir(parents=True, exist_ok=True)
    (root / "FLAME2023").mkdir(exist_ok=True)
    shutil.copy(flame.model, root / "FLAME2020" / "generic_model.pkl")
    shutil.copy(flame.model, root / "FLAME2023" / "generic_model.pkl")
    for src, name in ((flame.landmark_embedding, "landmark_embedding.npy"), (flame.uv_template, "head_template.obj"),
                      (flame.uv_face_mask, "uv_face_mask.png"), (flame.uv_face_eye_mask, "uv_face_eye_mask.png")):
        shutil.copy(src, root / name)
    G, D = tiny_pair(32, seed=0)
    write_training_checkpoint(root / "stylegan2-ffhq-config-f.pt", G, G, D, prefix="module.")
    with torch.device("meta"):
        e_flame, arc50, arc100 = DecaEncoder().state_dict(), iresnet50().state_dict(), iresnet100().state_dict()
    torch.save({"E_flame": compact_random_state(e_flame, seed=1), "E_detail": {}, "D_detail": {}},
               root / "deca_model.tar")
    mapping = {f"regressor.{k}": v for k, v in MappingNetwork().state_dict().items()}
    torch.save({"arcface": compact_random_state(arc50, seed=2), "flameModel": mapping}, root / "mica.tar")
    (root / "arcface").mkdir(exist_ok=True)
    torch.save(compact_random_state(arc100, seed=3), root / "arcface" / "backbone.pth")
    return root
