"""DECA-style encoder: E_flame key names, output split exactly as DECA, configurable sizes."""

from __future__ import annotations

import pytest
import torch

from albedogan.nets.encoder import DECA_OUTPUT_SIZES, DecaEncoder, EncoderOutput


@pytest.fixture(scope="module")
def meta_encoder() -> DecaEncoder:
    with torch.device("meta"):
        return DecaEncoder()


def test_keys_match_deca_e_flame(meta_encoder) -> None:
    sd = meta_encoder.state_dict()
    assert sd["encoder.conv1.weight"].shape == (64, 3, 7, 7)
    assert sd["encoder.layer4.2.bn3.running_var"].shape == (2048,)
    assert sd["encoder.layer1.0.downsample.0.weight"].shape == (256, 64, 1, 1)
    assert sd["layers.0.weight"].shape == (1024, 2048) and sd["layers.2.weight"].shape == (236, 1024)
    assert not any(k.startswith("encoder.fc") for k in sd)
    assert max(int(k.split(".")[2]) for k in sd if k.startswith("encoder.layer3.")) == 5  # [3, 4, 6, 3]


def test_split_follows_deca_order(meta_encoder) -> None:
    assert sum(DECA_OUTPUT_SIZES.values()) == 236
    params = torch.arange(2 * 236, dtype=torch.float32).reshape(2, 236)
    out = DecaEncoder.split(meta_encoder, params)
    assert isinstance(out, EncoderOutput)
    torch.testing.assert_close(out.shape, params[:, 0:100])
    torch.testing.assert_close(out.tex, params[:, 100:150])
    torch.testing.assert_close(out.expression, params[:, 150:200])
    torch.testing.assert_close(out.pose, params[:, 200:206])
    torch.testing.assert_close(out.cam, params[:, 206:209])
    assert out.light.shape == (2, 9, 3)
    assert out.light[1, 4, 2] == params[1, 209 + 4 * 3 + 2]  # band-major, RGB last
    with pytest.raises(Exception):
        out.shape = params  # frozen dataclass


def test_forward_and_custom_sizes() -> None:
    torch.manual_seed(0)
    enc = DecaEncoder({"shape": 10, "tex": 0, "expression": 5, "pose": 6, "cam": 3, "light": 27}, hidden_dim=16).eval()
    x = torch.rand(1, 3, 224, 224, requires_grad=True)
    out = enc(x)
    assert out.shape.shape == (1, 10) and out.tex.shape == (1, 0) and out.light.shape == (1, 9, 3)
    out.cam.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    with pytest.raises(ValueError, match="pose/cam/light"):
        DecaEncoder({"shape": 10, "tex": 0, "expression": 5, "pose": 3, "cam": 3, "light": 27})
    with pytest.raises(ValueError, match="DecaEncoder input"):
        enc(torch.rand(1, 3, 128, 128))
