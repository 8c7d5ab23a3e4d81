"""load_mica: the mica.tar dict layout, generator.* ignored, strict otherwise."""

from __future__ import annotations

import pytest
import torch

from albedogan.assets.convert.mica import load_mica
from albedogan.assets.convert.torch_checkpoint import CheckpointKeyError
from albedogan.assets.locate import AssetFormatError
from albedogan.nets.arcface import iresnet50
from albedogan.nets.mica import MappingNetwork
from tests.helpers.compact_state import compact_random_state


@pytest.fixture(scope="module")
def mica_dict() -> dict:
    with torch.device("meta"):
        arc = iresnet50().state_dict()
    torch.manual_seed(5)
    reg = {f"regressor.{k}": v.clone() for k, v in MappingNetwork().state_dict().items()}
    flame = dict(reg)
    flame["generator.v_template"] = torch.zeros(5023, 3)  # FLAME buffers stored by MICA: ignored
    flame["generator.shapedirs"] = torch.zeros(5023, 3, 2)
    return {"arcface": compact_random_state(arc, seed=6), "flameModel": flame}


def test_round_trip_outputs_equal(tmp_path, mica_dict) -> None:
    path = tmp_path / "mica.tar"
    torch.save(mica_dict, path)
    model = load_mica(path)
    assert not model.training
    for k, v in mica_dict["arcface"].items():
        assert torch.equal(model.arcface.state_dict()[k], v), k
    ref = MappingNetwork()
    ref.load_state_dict({k[len("regressor."):]: v for k, v in mica_dict["flameModel"].items() if k.startswith("regressor.")})
    z = torch.nn.functional.normalize(torch.randn(2, 512), dim=-1)
    with torch.no_grad():
        torch.testing.assert_close(model.regressor(z), ref(z), rtol=0, atol=0)
    assert not model.arcface.layer2[0].conv1.weight.requires_grad and model.arcface.fc.weight.requires_grad


def test_unexpected_regressor_key_and_missing_entry(tmp_path, mica_dict) -> None:
    bad = {"arcface": mica_dict["arcface"], "flameModel": dict(mica_dict["flameModel"])}
    del bad["flameModel"]["regressor.network.3.bias"]
    bad["flameModel"]["regressor.network.4.weight"] = torch.zeros(300, 300)
    path = tmp_path / "mica.tar"
    torch.save(bad, path)
    with pytest.raises(CheckpointKeyError) as info:
        load_mica(path)
    msg = str(info.value)
    assert f"{path}['flameModel']" in msg and "regressor.network.3.bias" in msg and "regressor.network.4.weight" in msg
    torch.save({"arcface": mica_dict["arcface"]}, path)
    with pytest.raises(AssetFormatError, match="flameModel"):
        load_mica(path)
