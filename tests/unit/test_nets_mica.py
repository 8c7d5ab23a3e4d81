"""MICA mapping network: MICA's key names, forward against a numpy reference, normalised ArcFace input."""

from __future__ import annotations

import numpy as np
import torch

from albedogan.nets.arcface import IResNet
from albedogan.nets.mica import MICA, MappingNetwork


def test_mapping_keys_and_shapes() -> None:
    sd = MappingNetwork().state_dict()
    assert sd["network.0.weight"].shape == (300, 512)
    for i in (1, 2, 3):
        assert sd[f"network.{i}.weight"].shape == (300, 300)
    assert "network.4.weight" not in sd
    assert sd["output.weight"].shape == (300, 300) and sd["output.bias"].shape == (300,)


def test_mapping_forward_matches_numpy() -> None:
    torch.manual_seed(0)
    net = MappingNetwork()
    z = torch.randn(3, 512)
    h = z.numpy().astype(np.float64)
    for i in range(4):
        w, b = net.network[i].weight.detach().numpy(), net.network[i].bias.detach().numpy()
        h = h @ w.T + b
        h = np.where(h > 0, h, 0.2 * h)
    ref = h @ net.output.weight.detach().numpy().T + net.output.bias.detach().numpy()
    with torch.no_grad():
        out = net(z)
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-4, atol=1e-5)


class _FixedEmbedding(torch.nn.Module):
    """Stand-in backbone returning a scaled copy of a fixed embedding."""

    embedding_dim = 512

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale = scale
        self.register_buffer("e", torch.randn(1, 512, generator=torch.Generator().manual_seed(4)))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.e.expand(images.shape[0], -1) * self.scale


def test_mica_normalises_embedding_before_mapping() -> None:
    torch.manual_seed(0)
    reg = MappingNetwork()
    crops = torch.rand(2, 3, 112, 112)
    a = MICA(_FixedEmbedding(1.0), reg)(crops)  # type: ignore[arg-type]
    b = MICA(_FixedEmbedding(37.0), reg)(crops)  # type: ignore[arg-type]
    assert a.shape == (2, 300)
    torch.testing.assert_close(a, b)
    unit = torch.nn.functional.normalize(_FixedEmbedding(1.0).e, dim=-1)
    torch.testing.assert_close(a[:1], reg(unit))


def test_mica_default_freezing_rule() -> None:
    with torch.device("meta"):
        model = MICA()
    trainable = {n.split(".")[1] for n, p in model.named_parameters() if p.requires_grad and n.startswith("arcface.")}
    assert trainable == {"layer4", "bn2", "fc", "features"}  # (features.weight itself stays fixed at 1)
    assert not model.arcface.features.weight.requires_grad
    assert all(p.requires_grad for p in model.regressor.parameters())
    assert isinstance(model.arcface, IResNet) and model.arcface.layers_config == (3, 13, 30, 3)
