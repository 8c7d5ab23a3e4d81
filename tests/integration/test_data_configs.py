"""Every ``conf/data`` config composes and instantiates: training datasets under train.py (and cache.py, which
composes the same config), evaluation sets under infer.py."""

from __future__ import annotations

from pathlib import Path

import hydra
import pytest
from hydra import compose, initialize_config_dir

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TRAINING = {"latent": "LatentDataModule", "teacher_cache": "TeacherCacheDataModule", "images": "LatentDataModule"}
EVALUATION = {"now": "NowEvalSet", "photo_scans": "PhotoScanSet"}


def test_every_data_config_is_covered():
    names = {p.stem for p in (ROOT / "conf" / "data").glob("*.yaml")}
    assert names == set(TRAINING) | set(EVALUATION)


@pytest.mark.parametrize("name", sorted(TRAINING))
@pytest.mark.parametrize("experiment", ["synthetic", "ffhq"])
def test_training_data_configs_instantiate(name, experiment, tmp_path):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"experiment={experiment}", f"data={name}",
                                                      f"paths.root_dir={ROOT}", f"paths.output_dir={tmp_path}",
                                                      "data.z_dim=16"])
    data = hydra.utils.instantiate(cfg.data)
    assert type(data).__name__ == TRAINING[name]
    assert data.batch_size == cfg.data.batch_size and data.mix.real_fraction == (0.5 if name == "images" else 0.0)
    assert data.mix.image_size == cfg.teacher.image_size
    if name == "teacher_cache":  # the identity a cache is checked against is fully resolved
        assert data.expected_config["source"]["teacher"] == cfg.teacher._target_
        assert "batch_size" not in data.expected_config["write"]


@pytest.mark.parametrize("name", sorted(EVALUATION))
def test_evaluation_data_configs_instantiate(name, tmp_path):
    (tmp_path / "imagepathsvalidation.txt").write_text("S1/selfie/IMG_1.jpg\n")
    key = "root" if name == "now" else "path"
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="infer", overrides=["mode=evaluate", f"data={name}", f"data.{key}={tmp_path}",
                                                      f"paths.root_dir={ROOT}", f"output_dir={tmp_path}"])
    assert type(hydra.utils.instantiate(cfg.data)).__name__ == EVALUATION[name]
    assert type(hydra.utils.instantiate(cfg.mode).keywords["data"]).__name__ == EVALUATION[name]
