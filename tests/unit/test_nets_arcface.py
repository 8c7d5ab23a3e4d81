"""ArcFace iresnet: insightface key layout, input normalisation, MICA's freezing rule."""

from __future__ import annotations

import pytest
import torch

from albedogan.nets.arcface import IRESNET_LAYERS, IResNet, iresnet50


def calibrated(net: IResNet, seed: int = 0) -> IResNet:
    """Set BatchNorm statistics from one batch so a randomly initialised net has well-scaled activations."""
    for m in net.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.momentum = None
    net.train()
    with torch.no_grad():
        net(torch.rand(4, 3, 112, 112, generator=torch.Generator().manual_seed(seed)))
    return net.eval()


@pytest.fixture(scope="module")
def tiny() -> IResNet:
    """One block per stage: same code path as iresnet50/100, affordable on a shared CPU."""
    torch.manual_seed(0)
    return calibrated(IResNet((1, 1, 1, 1)))


def test_key_layout_matches_insightface() -> None:
    with torch.device("meta"):
        net50 = iresnet50()
    sd = net50.state_dict()
    assert sd["conv1.weight"].shape == (64, 3, 3, 3)
    assert sd["prelu.weight"].shape == (64,)
    assert sd["fc.weight"].shape == (512, 512 * 7 * 7) and sd["fc.bias"].shape == (512,)
    assert sd["features.weight"].shape == (512,) and sd["bn2.running_var"].shape == (512,)
    for name in ("bn1", "conv1", "bn2", "prelu", "conv2", "bn3"):
        assert any(k.startswith(f"layer3.13.{name}.") for k in sd), name
    assert sd["layer2.0.downsample.0.weight"].shape == (128, 64, 1, 1)
    assert "layer2.0.downsample.1.running_mean" in sd
    assert not any(k.startswith("layer3.14.") for k in sd)
    assert sd["layer4.0.conv2.weight"].shape == (512, 512, 3, 3)
    # features is a BatchNorm1d whose weight is fixed at 1
    assert not net50.features.weight.requires_grad
    assert torch.equal(IResNet((1, 1, 1, 1)).features.weight, torch.ones(512))


def test_depth_table() -> None:
    assert IRESNET_LAYERS[50] == (3, 4, 14, 3) and IRESNET_LAYERS[100] == (3, 13, 30, 3)


def test_forward_normalisation_and_shape(tiny: IResNet) -> None:
    x01 = torch.rand(2, 3, 112, 112, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        a = tiny(x01)
        b = tiny.forward_normalized((x01 * 255.0 - 127.5) / 127.5)  # insightface's own formula
    assert a.shape == (2, 512)
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="IResNet input"):
        tiny(torch.rand(1, 3, 64, 64))


def test_freeze_lower_blocks_grads_and_bn_stats() -> None:
    torch.manual_seed(0)
    net = calibrated(IResNet((1, 1, 1, 1))).freeze_lower().train()
    assert all(not p.requires_grad for m in net.lower_modules() for p in m.parameters())
    assert net.layer4[0].conv1.weight.requires_grad and net.fc.weight.requires_grad and net.bn2.weight.requires_grad
    assert not net.layer1.training and net.layer4.training
    before_l1 = net.layer1[0].bn1.running_mean.clone()
    before_bn2 = net.bn2.running_mean.clone()
    x = torch.rand(3, 3, 112, 112, requires_grad=True)  # N=2 would make the final BatchNorm1d constant
    weights = torch.randn(3, 512, generator=torch.Generator().manual_seed(2))
    (net(x) * weights).sum().backward()
    assert net.layer3[0].conv1.weight.grad is None and net.conv1.weight.grad is None
    g = net.layer4[0].conv1.weight.grad
    assert g is not None and torch.isfinite(g).all() and g.abs().sum() > 0
    assert torch.equal(net.layer1[0].bn1.running_mean, before_l1)  # frozen BN statistics
    assert not torch.equal(net.bn2.running_mean, before_bn2)  # trainable part still updates
    assert x.grad is not None and x.grad.abs().sum() > 0  # gradients reach the input (identity losses)
