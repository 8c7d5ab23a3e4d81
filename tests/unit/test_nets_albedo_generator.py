"""AlbedoGenerator: latent adaptation, [0, 1] output, initialisation from a teacher at equal/smaller/larger sizes."""

from __future__ import annotations

import pytest
import torch

from albedogan.nets import stylegan2 as sg
from albedogan.nets.albedo_generator import AlbedoGenerator

TINY = dict(z_dim=16, w_dim=16, channel_base=256, channel_max=32)


def _teacher(res: int = 32) -> sg.Generator:
    torch.manual_seed(0)
    G = sg.Generator(img_resolution=res, **TINY).eval()
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("noise_strength"):
                p.fill_(0.1)
    return G


def test_same_resolution_copies_everything_and_matches_teacher() -> None:
    G = _teacher(32)
    before = {k: v.clone() for k, v in G.state_dict().items()}
    A = AlbedoGenerator.from_teacher(G).eval()
    assert A.num_ws == G.num_ws and A.uv_resolution == 32
    ws = G.mapping(torch.randn(2, 16), truncation_psi=0.5)
    teacher_img = G.synthesis(ws, noise_mode="const")
    albedo = A(ws)
    assert albedo.shape == (2, 3, 32, 32) and albedo.min() >= 0 and albedo.max() <= 1
    assert torch.allclose(A(ws, raw=True), (teacher_img + 1) / 2, atol=1e-6)
    assert torch.allclose(albedo, ((teacher_img + 1) / 2).clamp(0, 1), atol=1e-6)
    # teacher untouched, and the copy is independent
    with torch.no_grad():
        A.synthesis.b4.const.add_(1.0)
    for k, v in G.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_smaller_resolution_copies_lower_blocks_and_takes_first_ws_rows() -> None:
    G = _teacher(32)
    A = AlbedoGenerator.from_teacher(G, uv_resolution=16)
    assert A.num_ws == 6 < G.num_ws
    for k, v in A.synthesis.state_dict().items():
        assert torch.equal(v, G.synthesis.state_dict()[k]), k
    ws = G.mapping(torch.randn(2, 16))
    ws = sg.mix_styles(ws, G.mapping(torch.randn(2, 16)), 4)  # rows differ, so the row choice matters
    captured = {}
    hook = G.synthesis.b16.register_forward_hook(lambda m, i, o: captured.update(img=o[1]))  # returns None
    G.synthesis(ws, noise_mode="const")
    hook.remove()
    assert torch.allclose(A.eval()(ws, raw=True), (captured["img"] + 1) / 2, atol=1e-6)


def test_larger_resolution_keeps_shared_blocks_and_adds_fresh_ones() -> None:
    G = _teacher(16)
    torch.manual_seed(5)
    A = AlbedoGenerator.from_teacher(G, uv_resolution=64)
    sd, tsd = A.synthesis.state_dict(), G.synthesis.state_dict()
    for k, v in tsd.items():
        assert torch.equal(sd[k], v), k
    assert A.synthesis.b32.conv0.weight.shape == (8, 16, 3, 3) and "b32.conv0.weight" not in tsd
    w = torch.randn(3, 16)
    out = A(w)  # a single w is broadcast; teacher W+ with fewer rows repeats its last row
    assert out.shape == (3, 3, 64, 64)
    ws_teacher = w.unsqueeze(1).expand(-1, G.num_ws, -1)
    assert torch.equal(A.select_ws(ws_teacher), w.unsqueeze(1).expand(-1, A.num_ws, -1))


def test_gradients_and_bad_latents() -> None:
    A = AlbedoGenerator(w_dim=16, uv_resolution=16, channel_base=256, channel_max=32).train()
    ws = torch.randn(2, 16, requires_grad=True)
    A(ws, noise_mode="random", raw=True).mean().backward()
    assert ws.grad.abs().sum() > 0 and A.synthesis.b4.const.grad is not None
    with pytest.raises(ValueError, match="w_dim=16"):
        A(torch.randn(2, 8))
    B = AlbedoGenerator(**A.init_kwargs)
    B.load_state_dict(A.state_dict(), strict=True)
