"""Perceptual distances: back-end selection (never downloading), strict loading, and behaviour on a real photo."""

from __future__ import annotations

import logging
import sys
import types

import numpy as np
import pytest
import skimage.data
import torch
import torch.nn.functional as F
import torchvision

from albedogan.assets.locate import AssetFormatError, MissingAssetError
from albedogan.assets.convert.lpips import (
    TORCHVISION_BACKBONE_FILES,
    build_perceptual,
    find_torchvision_backbone,
    load_official_lpips,
)
from albedogan.nets.perceptual import PerceptualDistance


@pytest.fixture(autouse=True)
def _no_network(monkeypatch, tmp_path):
    """Any attempt to download weights fails the test; the hub cache starts empty."""

    def _refuse(*args, **kwargs):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(torch.hub, "download_url_to_file", _refuse)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", _refuse)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_torch_home"))


@pytest.fixture(scope="module")
def photo() -> torch.Tensor:
    """(1, 3, 64, 64) astronaut in [0, 1]."""
    img = torch.from_numpy(skimage.data.astronaut()).permute(2, 0, 1)[None].float() / 255.0
    return F.interpolate(img[:, :, :320, 96:416], size=(64, 64), mode="area")


@pytest.fixture(scope="module")
def stlpips_alex() -> PerceptualDistance:
    return build_perceptual("stlpips", "alex")


def _fake_alexnet_file(folder) -> torch.nn.Module:
    """Write a randomly initialised torchvision AlexNet's trunk where the hub cache keeps the real one."""
    torch.manual_seed(0)
    model = torchvision.models.alexnet(weights=None)
    state = {k: v for k, v in model.state_dict().items() if k.startswith("features.")}  # classifier: 230 MB, unused
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(state, folder / TORCHVISION_BACKBONE_FILES["alex"])
    return model


def test_fallback_to_stlpips_without_torchvision_weights(caplog) -> None:
    caplog.set_level(logging.INFO, logger="albedogan")
    assert find_torchvision_backbone("alex") is None
    m = build_perceptual("auto", "alex")
    assert m.backend == "stlpips"
    assert any("ST-LPIPS" in r.getMessage() for r in caplog.records)
    with pytest.raises(MissingAssetError, match="alexnet-owt"):
        build_perceptual("lpips", "alex")
    with pytest.raises(ValueError, match="kind"):
        build_perceptual("dists")
    with pytest.raises(ValueError, match="'alex' or 'vgg'"):
        build_perceptual("auto", "squeeze")


@pytest.mark.filterwarnings("ignore:.*since 0.13:UserWarning")
def test_lpips_path_taken_with_local_backbone_and_matches_reference(monkeypatch, tmp_path, photo, caplog) -> None:
    import lpips

    torch_home = tmp_path / "th"
    tv_model = _fake_alexnet_file(torch_home / "hub" / "checkpoints")
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    caplog.set_level(logging.INFO, logger="albedogan")
    m = build_perceptual("auto", "alex")
    assert m.backend == "lpips"
    assert any("official LPIPS" in r.getMessage() for r in caplog.records)
    # reference: the lpips package loads its own heads; the trunk is copied module by module from torchvision
    ref = lpips.LPIPS(pretrained=True, net="alex", pnet_rand=True, verbose=False).eval()
    for k in range(1, 6):
        for name, module in getattr(ref.net, f"slice{k}").named_children():
            module.load_state_dict(tv_model.features[int(name)].state_dict())
    y = (photo + 0.1 * torch.randn_like(photo)).clamp(0, 1)
    expected = ref(photo, y, normalize=True).flatten()
    torch.testing.assert_close(m(photo, y), expected, rtol=1e-5, atol=1e-6)
    # the same file passed through weights_dir works too
    assert build_perceptual("lpips", "alex", weights_dir=torch_home / "hub" / "checkpoints").backend == "lpips"


def test_official_lpips_loading_is_strict(tmp_path) -> None:
    good = tmp_path / "good"
    _fake_alexnet_file(good)
    path = good / TORCHVISION_BACKBONE_FILES["alex"]
    state = torch.load(path, weights_only=True)
    ok = dict(state, **{"classifier.1.weight": torch.zeros(1)})  # classifier keys are ignored
    torch.save(ok, path)
    load_official_lpips("alex", path)
    bad = dict(state)
    bad.pop("features.3.weight")
    torch.save(bad, tmp_path / "missing.pth")
    with pytest.raises(AssetFormatError, match="features.3.weight"):
        load_official_lpips("alex", tmp_path / "missing.pth")
    torch.save(dict(state, **{"extra.weight": torch.zeros(1)}), tmp_path / "extra.pth")
    with pytest.raises(AssetFormatError, match="unexpected keys"):
        load_official_lpips("alex", tmp_path / "extra.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(AssetFormatError, match="junk.pth"):
        load_official_lpips("alex", tmp_path / "junk.pth")


def test_stlpips_matches_the_stlpips_package(monkeypatch, photo, stlpips_alex) -> None:
    """Our re-declared ST-LPIPS equals the package's own network (its unused debug imports stubbed out)."""
    monkeypatch.setitem(sys.modules, "torchsummary", types.SimpleNamespace(summary=None))
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(embed=None))
    for name in [n for n in sys.modules if n.startswith("stlpips_pytorch")]:
        monkeypatch.delitem(sys.modules, name)
    from stlpips_pytorch import stlpips

    ref = stlpips.LPIPS(net="alex", variant="shift_tolerant", verbose=False).eval()
    y = (photo + 0.05 * torch.randn_like(photo)).clamp(0, 1)
    x2 = torch.cat([photo, y])
    y2 = torch.cat([y, photo.flip(-1)])
    torch.testing.assert_close(stlpips_alex(x2, y2), ref(x2, y2, normalize=True).flatten(), rtol=1e-5, atol=1e-6)


def test_identical_zero_and_monotone_in_noise(photo, stlpips_alex) -> None:
    gen = torch.Generator().manual_seed(0)
    noise = torch.randn(photo.shape, generator=gen)
    levels = [0.0, 0.03, 0.1, 0.3]
    batch_y = torch.cat([(photo + s * noise).clamp(0, 1) for s in levels])
    d = stlpips_alex(photo.expand(len(levels), -1, -1, -1), batch_y)
    assert d.shape == (len(levels),)
    assert abs(d[0].item()) < 1e-6
    assert bool((d[1:] > d[:-1]).all()), d
    assert d[-1] > 0.15


def test_differentiable_and_frozen(photo, stlpips_alex) -> None:
    x = photo.clone().requires_grad_(True)
    y = (photo + 0.1).clamp(0, 1)
    stlpips_alex.train()  # a parent module switching to train mode must not enable dropout
    d1, d2 = stlpips_alex(x, y), stlpips_alex(x, y)
    assert torch.equal(d1, d2)
    d1.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in stlpips_alex.parameters())
    with pytest.raises(ValueError, match="perceptual y"):
        stlpips_alex(photo, photo[:, :, :32])


def test_vgg_stlpips_loads_and_is_zero_on_identical(photo) -> None:
    m = build_perceptual("stlpips", "vgg")
    small = F.interpolate(photo, size=(32, 32), mode="area")
    d = m(torch.cat([small, small]), torch.cat([small, (small * 0.5)]))
    assert abs(d[0].item()) < 1e-6 and d[1].item() > 0.05
    assert np.isfinite(d.detach().numpy()).all()
