"""EMA of G_A: half-life in images, closed-form average, buffers copied, frozen copy, state in state_dict."""

import math

import pytest
import torch
from torch import nn

from albedogan.models.ema import ModelEMA, ema_beta


def test_beta_half_life_in_images():
    # after half_life images the old weight's share is exactly 1/2, whatever the batch size
    for batch in (1, 4, 32):
        beta = ema_beta(batch, 64.0)
        assert beta ** (64 / batch) == pytest.approx(0.5, rel=1e-12)
    assert ema_beta(32, 10_000) == pytest.approx(0.5 ** (32 / 10_000))  # REFERENCE §2
    assert ema_beta(8, 0) == 0.0
    with pytest.raises(ValueError, match="batch_images"):
        ema_beta(0, 10.0)


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 2)
        self.register_buffer("noise", torch.zeros(2))


def test_update_matches_closed_form_average():
    torch.manual_seed(0)
    live = _Net()
    ema = ModelEMA(live, half_life_images=10.0)
    w0 = live.lin.weight.detach().clone()
    beta = ema_beta(5, 10.0)
    expected = w0.clone()
    for k in range(4):
        with torch.no_grad():
            live.lin.weight.add_(1.0)  # our own module: in-place is fine in the test
            live.noise.fill_(float(k))
        assert ema.update(live, 5) == pytest.approx(beta)
        expected = beta * expected + (1 - beta) * live.lin.weight.detach()
    torch.testing.assert_close(ema.module.lin.weight, expected, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(ema.module.noise, torch.full((2,), 3.0))
    assert not any(p.requires_grad for p in ema.parameters())
    assert not ema.train().module.training
    assert "module.lin.weight" in ema.state_dict()


def test_zero_half_life_copies_and_mismatch_raises():
    live = _Net()
    ema = ModelEMA(live, 0.0)
    with torch.no_grad():
        live.lin.bias.add_(2.0)
    ema.update(live, 1)
    torch.testing.assert_close(ema.module.lin.bias, live.lin.bias)
    with pytest.raises(ValueError, match="parameters differ"):
        ema.update(nn.Linear(3, 2), 1)
    assert math.isfinite(ema_beta(1, 1.0))
