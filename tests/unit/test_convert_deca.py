"""load_deca_encoder: deca_model.tar layout (E_flame used, E_detail / D_detail ignored), strict keys, safety."""

from __future__ import annotations

import os

import pytest
import torch

from albedogan.assets.convert.deca import load_deca_encoder
from albedogan.assets.convert.torch_checkpoint import CheckpointKeyError
from albedogan.assets.safe_pickle import UnsafePickleError
from albedogan.nets.encoder import DecaEncoder
from tests.helpers.compact_state import compact_random_state


@pytest.fixture(scope="module")
def e_flame() -> dict[str, torch.Tensor]:
    with torch.device("meta"):
        template = DecaEncoder().state_dict()
    return compact_random_state(template, seed=8)


def _tar(e_flame: dict) -> dict:
    return {
        "E_flame": e_flame,
        "E_detail": {"encoder.conv1.weight": torch.zeros(64, 3, 7, 7)},
        "D_detail": {"layers.0.bn.weight": torch.ones(4)},
    }


def test_round_trip(tmp_path, e_flame) -> None:
    path = tmp_path / "deca_model.tar"
    torch.save(_tar(e_flame), path)
    enc = load_deca_encoder(path)
    assert not enc.training
    loaded = enc.state_dict()
    for k, v in e_flame.items():
        assert torch.equal(loaded[k], v), k
    feats = torch.randn(2, 2048)
    ref = torch.nn.functional.linear(
        torch.relu(torch.nn.functional.linear(feats, e_flame["layers.0.weight"], e_flame["layers.0.bias"])),
        e_flame["layers.2.weight"], e_flame["layers.2.bias"],
    )
    with torch.no_grad():
        torch.testing.assert_close(enc.layers(feats), ref)


def test_strict_errors(tmp_path, e_flame) -> None:
    bad = dict(e_flame)
    del bad["encoder.layer2.1.bn2.running_mean"]
    bad["encoder.fc.weight"] = torch.zeros(1000, 2048)
    path = tmp_path / "deca_model.tar"
    torch.save(_tar(bad), path)
    with pytest.raises(CheckpointKeyError) as info:
        load_deca_encoder(path)
    msg = str(info.value)
    assert "['E_flame']" in msg and "encoder.layer2.1.bn2.running_mean" in msg and "encoder.fc.weight" in msg


class _Exploit:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_tar_refused(tmp_path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "deca_model.tar"
    torch.save({"E_flame": {"x": _Exploit(str(marker))}}, path)
    with pytest.raises(UnsafePickleError):
        load_deca_encoder(path)
    assert not marker.exists()
