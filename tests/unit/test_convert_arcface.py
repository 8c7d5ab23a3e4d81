"""load_arcface: backbone.pth and mica.tar['arcface'] round trips, strict key errors, refusal of code pickles."""

from __future__ import annotations

import os
import pickle

import pytest
import torch

from albedogan.assets.convert.arcface import infer_iresnet_depth, load_arcface
from albedogan.assets.convert.torch_checkpoint import CheckpointKeyError
from albedogan.assets.locate import AssetFormatError, MissingAssetError
from albedogan.assets.safe_pickle import UnsafePickleError
from albedogan.nets.arcface import IRESNET_LAYERS, iresnet50
from tests.helpers.compact_state import compact_random_state


@pytest.fixture(scope="module")
def official_state() -> dict[str, torch.Tensor]:
    with torch.device("meta"):
        template = iresnet50().state_dict()
    return compact_random_state(template, seed=3)


def _assert_same(net: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    loaded = net.state_dict()
    assert set(loaded) == set(state)
    for k, v in state.items():
        assert torch.equal(loaded[k], v), k


def test_backbone_pth_round_trip(tmp_path, official_state) -> None:
    path = tmp_path / "backbone.pth"
    torch.save(official_state, path)
    assert path.stat().st_size < 8 * 2**20
    net = load_arcface(path)
    assert net.layers_config == IRESNET_LAYERS[50] and not net.training
    _assert_same(net, official_state)
    assert not net.features.weight.requires_grad


def test_mica_tar_arcface_entry_and_freeze(tmp_path, official_state) -> None:
    path = tmp_path / "mica.tar"
    torch.save({"arcface": official_state, "flameModel": {"regressor.output.bias": torch.zeros(300)}}, path)
    net = load_arcface(path, freeze_lower=True)
    _assert_same(net, official_state)
    assert not net.layer3[0].conv1.weight.requires_grad and net.layer4[0].conv1.weight.requires_grad


def test_num_batches_tracked_optional(tmp_path, official_state) -> None:
    path = tmp_path / "backbone.pth"
    torch.save({k: v for k, v in official_state.items() if not k.endswith("num_batches_tracked")}, path)
    net = load_arcface(path)
    assert int(net.bn1.num_batches_tracked) == 0


def test_depth_inferred_from_keys() -> None:
    keys = {"conv1.weight": None}
    for stage, blocks in enumerate(IRESNET_LAYERS[100], start=1):
        keys.update({f"layer{stage}.{i}.bn1.weight": None for i in range(blocks)})
    assert infer_iresnet_depth(keys) == 100
    keys["layer3.30.bn1.weight"] = None
    with pytest.raises(AssetFormatError, match=r"\(3, 13, 31, 3\)"):
        infer_iresnet_depth(keys, "x.pth")


def test_missing_and_unexpected_keys_name_file_and_keys(tmp_path, official_state) -> None:
    bad = dict(official_state)
    del bad["fc.bias"]
    bad["head.kernel"] = torch.zeros(3)
    bad["layer4.0.conv1.weight"] = torch.zeros(1, 2)
    path = tmp_path / "bad_backbone.pth"
    torch.save(bad, path)
    with pytest.raises(CheckpointKeyError) as info:
        load_arcface(path)
    msg = str(info.value)
    assert str(path) in msg and "fc.bias" in msg and "head.kernel" in msg and "layer4.0.conv1.weight" in msg
    assert info.value.missing == ["fc.bias"] and info.value.unexpected == ["head.kernel"]


def test_missing_file_is_clear(tmp_path) -> None:
    with pytest.raises(MissingAssetError, match="backbone.pth"):
        load_arcface(tmp_path / "backbone.pth")


class _Exploit:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("container", ["raw_pickle", "torch_zip"])
def test_malicious_checkpoint_is_refused_and_not_run(tmp_path, container) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "backbone.pth"
    payload = {"conv1.weight": _Exploit(str(marker))}
    if container == "raw_pickle":
        path.write_bytes(pickle.dumps(payload))
    else:
        torch.save(payload, path)
    with pytest.raises(UnsafePickleError, match="backbone.pth"):
        load_arcface(path)
    assert not marker.exists()
