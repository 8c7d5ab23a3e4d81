"""World records in exported weights: no machine paths, and inference refuses another world with one clear error."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from albedogan.models.weights_file import check_world, world_record


def test_world_record_drops_paths_and_resolves():
    cfg = OmegaConf.create({"paths": {"d": "/abs"}, "teacher": {"_target_": "T", "z_dim": 64, "checkpoint_path":
                                                                 "${paths.d}/x.pt", "head": "???"},
                            "estimator": {"data_dir": "${paths.d}", "input_size": 32}})
    rec = world_record({"teacher": cfg.teacher, "estimator": cfg.estimator})
    assert rec == {"teacher": {"_target_": "T", "z_dim": 64}, "estimator": {"input_size": 32}}


def test_check_world_lists_every_difference():
    recorded = {"teacher": {"_target_": "T", "z_dim": 64, "w_dim": 64, "image_size": 32}, "flame": {"n_shape": 50}}
    same = {"teacher": {"_target_": "T", "z_dim": 64, "w_dim": 64, "image_size": 256, "extra": 1},
            "flame": {"n_shape": 50}}
    check_world(recorded, same, "ckpt")  # image_size may differ, keys only on one side are ignored
    other = {"teacher": {"_target_": "U", "z_dim": 512, "w_dim": 64}, "flame": {"n_shape": 300}}
    with pytest.raises(ValueError) as err:
        check_world(recorded, other, "ckpt.safetensors")
    msg = str(err.value)
    assert "ckpt.safetensors" in msg and "teacher.z_dim: trained with 64, configured 512" in msg
    assert "teacher._target_" in msg and "flame.n_shape" in msg and "world=synthetic" in msg
