"""Configs as specifications (as the lightning-hydra template tests them): every option of every config group
composes AND instantiates; printed configs are valid YAML.

Official-asset options (``flame=flame2020|flame2023``, ``teacher=stylegan2``, ``estimator=deca_mica``,
``world=ffhq``, ``experiment=ffhq``) are instantiated against small files in the official formats
(:func:`tests.helpers.official_assets.write_official_assets`), and without them must fail with the one
:class:`~albedogan.assets.locate.MissingAssetError` that lists every missing file. GPU trainer options are
instantiated where CUDA exists; on a CPU-only machine Lightning must refuse them with its own clear error.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import hydra
import pytest
import torch
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from albedogan.models.builder import build_training, instantiate_group, instantiate_with
from tests.helpers.official_assets import write_official_assets

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
OFFICIAL = {("flame", "flame2020"), ("flame", "flame2023"), ("teacher", "stylegan2"), ("estimator", "deca_mica"),
            ("world", "ffhq"), ("experiment", "ffhq")}
GPU_TRAINERS = {"gpu", "ddp", "ddp_multinode"}


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (ROOT / "conf" / group).glob("*.yaml"))


TRAIN_GROUPS = ("paths", "flame", "teacher", "estimator", "model", "data", "callbacks", "trainer", "logger", "world",
                "experiment", "debug", "hydra")
CASES = [(g, o) for g in TRAIN_GROUPS for o in _options(g)]


def test_every_group_is_covered():
    groups = {p.name for p in (ROOT / "conf").iterdir() if p.is_dir() and any(p.glob("*.yaml"))}
    # landmarks / fit (infer.py, mode=reconstruct) are built option by option in test_configs_fitting.py
    expected = set(TRAIN_GROUPS) | {"mode", "landmarks", "fit"}
    assert groups == expected, groups ^ expected


@pytest.fixture(scope="module")
def official_assets(tmp_path_factory, synthetic_data_dir):
    return write_official_assets(tmp_path_factory.mktemp("official"), synthetic_data_dir)


def _compose(name: str, overrides: list[str], hydra_runtime: bool = False):
    """Compose ``name``; with ``hydra_runtime`` the ``${hydra:...}`` resolvers work as in a real run."""
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name=name, overrides=overrides, return_hydra_config=hydra_runtime)
    if hydra_runtime:
        from hydra.core.hydra_config import HydraConfig

        HydraConfig.instance().set_config(cfg)
    return cfg


@pytest.mark.parametrize("script", ["train.py", "infer.py"])
def test_cfg_job_prints_valid_config(project_root, script):
    out = subprocess.run(
        [sys.executable, script, "--cfg", "job"], cwd=project_root, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    cfg = yaml.safe_load(out.stdout)
    assert cfg["flame"]["_target_"].startswith("albedogan.")
    assert "paths" in cfg and "seed" in cfg


#: a small base for the options that are instantiated inside a whole run config (sizes as in experiment=debug)
_SMALL_BASE = {
    "model": {"estimator_pretrain": ["experiment=synthetic_estimator", "model.calibration_samples=16"]},
    # the official-format StyleGAN2 of the test assets is 32 px with few channels: G_A at 1024^2 would have none
    "teacher": {"procedural": ["teacher.calibration_samples=64", "teacher.image_size=64"]},  # the rest as configured
    "experiment": {"ffhq": ["model.albedo_generator.uv_resolution=32", "teacher.image_size=32"],
                   "synthetic_estimator": ["model.calibration_samples=16"]},
}


def _instantiate(group: str, option: str, cfg) -> object:
    """Build what option ``option`` of ``group`` configures (in the composed ``cfg``) and return it."""
    head = None
    if group in ("flame", "teacher", "estimator", "world"):
        head = hydra.utils.instantiate(cfg.flame)
    if group == "flame":
        return head
    if group == "teacher":
        return instantiate_with(cfg.teacher, head=head)
    if group == "estimator":
        return instantiate_with(cfg.estimator, head=head)
    if group == "world":
        return instantiate_with(cfg.teacher, head=head), instantiate_with(cfg.estimator, head=head)
    if group in ("model", "experiment"):
        return build_training(cfg)
    if group == "data":
        if "z_dim" not in cfg.data.keys():  # an evaluation set (data=now / photo_scans, infer.py): its folder is mandatory;
            with pytest.raises(Exception, match="root|path"):  # built on real folders in test_data_configs.py
                hydra.utils.instantiate(cfg.data)
            return cfg.data
        return hydra.utils.instantiate(cfg.data, z_dim=16)
    if group in ("callbacks", "logger"):
        return instantiate_group(cfg.get(group))
    if group in ("trainer", "debug"):
        return hydra.utils.instantiate(cfg.trainer, logger=instantiate_group(cfg.get("logger")) or False)
    if group in ("paths", "hydra"):
        return OmegaConf.to_container(cfg.paths, resolve=True)
    raise AssertionError(group)


@pytest.mark.parametrize("group,option", CASES, ids=[f"{g}={o}" for g, o in CASES])
def test_every_option_instantiates(group, option, official_assets, synthetic_data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    paths = [f"paths.root_dir={ROOT}", f"paths.data_dir={synthetic_data_dir}", f"paths.output_dir={tmp_path}",
             f"paths.assets_dir={official_assets}"]
    base = _SMALL_BASE.get(group, {}).get(option, ["experiment=debug"] if group in ("model", "data") else [])
    override = [] if group == "hydra" else [f"{group}={option}"]
    cfg = _compose("train", [*base, *override, *paths])
    if group == "trainer" and option in GPU_TRAINERS and not torch.cuda.is_available():
        from hydra.errors import InstantiationException
        from lightning_fabric.utilities.exceptions import MisconfigurationException

        with pytest.raises((MisconfigurationException, InstantiationException), match="(?i)gpu|cuda"):
            _instantiate(group, option, cfg)
        return
    built = _instantiate(group, option, cfg)
    assert built is not None
    if group in ("model", "experiment"):
        module, data = built
        assert module.__class__.__name__ in ("AlbedoGANModule", "EstimatorPretrainModule")
        assert data.z_dim == module.teacher.z_dim


@pytest.mark.parametrize("group,option", sorted(OFFICIAL), ids=[f"{g}={o}" for g, o in sorted(OFFICIAL)])
def test_official_options_without_assets_name_every_missing_file(group, option, synthetic_data_dir, tmp_path):
    """Without the official files the option fails with ONE MissingAssetError listing each file (training) or the
    loader's MissingAssetError naming its config key (the single part)."""
    from albedogan.assets.locate import MissingAssetError
    from albedogan.models.builder import check_training_assets

    cfg = _compose("train", [f"{group}={option}", f"paths.root_dir={ROOT}", f"paths.data_dir={synthetic_data_dir}",
                             f"paths.output_dir={tmp_path}", f"paths.assets_dir={tmp_path / 'none'}"])
    with pytest.raises(MissingAssetError) as err:
        check_training_assets(cfg)
    assert str(tmp_path / "none") in str(err.value)
    with pytest.raises(Exception) as err:  # Hydra wraps the loader's error in an InstantiationException
        _instantiate("world" if group == "experiment" else group, option, cfg)
    cause = err.value if isinstance(err.value, MissingAssetError) else err.value.__cause__
    assert isinstance(cause, MissingAssetError) and str(tmp_path / "none") in str(cause), repr(err.value)


@pytest.mark.parametrize("option", _options("mode"))
def test_every_infer_mode_instantiates(option, tmp_path):
    from hydra.core.hydra_config import HydraConfig

    cfg = _compose("infer", [f"mode={option}", f"output_dir={tmp_path}"], hydra_runtime=True)
    try:
        mode = hydra.utils.instantiate(cfg.mode)
    finally:
        HydraConfig.instance().cfg = None  # leave no runtime config behind for later tests
    assert callable(mode) and cfg.mode._target_.startswith("albedogan.")


def test_experiment_ffhq_selects_official_flame(project_root):
    cfg = _compose("train", ["experiment=ffhq", "paths.assets_dir=/assets"])
    assert cfg.flame._target_.endswith("HeadModel.from_files")
    assert cfg.flame.model_path == "/assets/FLAME2020/generic_model.pkl"


def test_sizes_are_interpolated_not_repeated():
    """``estimator.n_shape`` / ``n_exp`` follow ``flame`` in every world (one value, interpolated)."""
    for overrides in ([], ["experiment=debug"], ["experiment=synthetic"], ["flame=flame2020"]):
        cfg = _compose("train", overrides)
        assert (cfg.estimator.n_shape, cfg.estimator.n_exp) == (cfg.flame.n_shape, cfg.flame.n_exp), overrides
    debug = OmegaConf.load(ROOT / "conf" / "experiment" / "debug.yaml")
    assert "override /world" in str(OmegaConf.to_container(debug)["defaults"])
