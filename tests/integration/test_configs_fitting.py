"""The ``fit`` and ``landmarks`` config groups compose into ``mode=reconstruct`` and build what they name."""

from __future__ import annotations

import hydra
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from albedogan.datamodules.landmarks import Dlib68Detector, YuNet5Landmarks
from albedogan.fitting import FaceFitter

pytestmark = pytest.mark.integration


def test_fit_and_landmark_options_build(project_root, synthetic_head_model):
    expected = {"photometric": ["landmarks", "photometric"], "landmarks": ["landmarks"], "none": []}
    kinds = {"dlib68": Dlib68Detector, "yunet5": YuNet5Landmarks, "none": type(None)}
    with initialize_config_dir(config_dir=str(project_root / "conf"), version_base="1.3"):
        for option, stages in expected.items():
            cfg = compose(config_name="infer", overrides=["mode=reconstruct", f"fit={option}"])
            fit = OmegaConf.to_container(cfg.mode.fit, resolve=True)
            fitter = FaceFitter(synthetic_head_model, **fit)
            assert [s.name for s in fitter.stages] == stages
        for option, cls in kinds.items():
            cfg = compose(config_name="infer", overrides=["mode=reconstruct", f"landmarks={option}"])
            assert isinstance(hydra.utils.instantiate(cfg.mode.landmarks), cls)
        default = compose(config_name="infer", overrides=["mode=reconstruct"])
        assert default.mode.landmarks.kind == "dlib68" and default.mode.faces == "largest"
        assert [s["name"] for s in default.mode.fit.stages] == ["landmarks", "photometric"]
