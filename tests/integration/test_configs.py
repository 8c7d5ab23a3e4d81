"""Every entry point composes; every config group option composes; printed configs are valid YAML."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml
from hydra import compose, initialize_config_dir

pytestmark = pytest.mark.integration


def _groups(root, group):
    return sorted(p.stem for p in (root / "conf" / group).glob("*.yaml"))


@pytest.mark.parametrize("script", ["train.py", "infer.py"])
def test_cfg_job_prints_valid_config(project_root, script):
    out = subprocess.run(
        [sys.executable, script, "--cfg", "job"], cwd=project_root, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    cfg = yaml.safe_load(out.stdout)
    assert cfg["flame"]["_target_"].startswith("albedogan.")
    assert "paths" in cfg and "seed" in cfg


def test_every_group_option_composes(project_root):
    conf = str(project_root / "conf")
    with initialize_config_dir(config_dir=conf, version_base="1.3"):
        for group in ("flame", "trainer", "logger", "experiment"):
            for option in _groups(project_root, group):
                cfg = compose(config_name="train", overrides=[f"{group}={option}"])
                assert cfg.task_name == "train"
        for option in _groups(project_root, "mode"):
            cfg = compose(config_name="infer", overrides=[f"mode={option}"])
            assert cfg.mode._target_.startswith("albedogan.")


def test_experiment_ffhq_selects_official_flame(project_root):
    with initialize_config_dir(config_dir=str(project_root / "conf"), version_base="1.3"):
        cfg = compose(config_name="train", overrides=["experiment=ffhq", "paths.assets_dir=/assets"])
    assert cfg.flame._target_.endswith("HeadModel.from_files")
    assert cfg.flame.model_path == "/assets/FLAME2020/generic_model.pkl"
