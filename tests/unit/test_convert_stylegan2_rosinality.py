"""rosinality <-> native StyleGAN2 conversion: tables, round trips, an independent functional reference, safety."""

from __future__ import annotations

import math
import os
import pickle

import pytest
import torch
import torch.nn.functional as F

from albedogan.assets.convert import stylegan2_rosinality as ros
from albedogan.assets.safe_pickle import UnsafePickleError
from albedogan.assets.stylegan2 import load_stylegan2, load_stylegan2_discriminator
from albedogan.nets import ops as sg
from tests.helpers.stylegan2_files import tiny_pair, write_training_checkpoint

def _ros_reference_generator(sd: dict, ws: torch.Tensor) -> torch.Tensor:
    """rosinality Generator.forward(input_is_latent, randomize_noise=False) written from its documented math."""
    n = ws.shape[0]
    wdim = ws.shape[-1]

    def modconv(x, p, style, demod=True, up=False):
        w5 = sd[p + "conv.weight"]
        _, o, i, k, _ = w5.shape
        s = F.linear(style, sd[p + "conv.modulation.weight"] / math.sqrt(wdim), sd[p + "conv.modulation.bias"])
        weight = w5 / math.sqrt(i * k * k) * s.view(n, 1, i, 1, 1)
        if demod:
            weight = weight * torch.rsqrt(weight.pow(2).sum([2, 3, 4]) + 1e-8).view(n, o, 1, 1, 1)
        h = x.shape[-1]
        if up:
            wt = weight.transpose(1, 2).reshape(n * i, o, k, k)
            y = F.conv_transpose2d(x.reshape(1, n * i, h, h), wt, stride=2, groups=n)
            y = y.view(n, o, *y.shape[2:])
            return sg.upfirdn2d_ref(y, sd[p + "conv.blur.kernel"], pad=(1, 1, 1, 1))
        y = F.conv2d(x.reshape(1, n * i, h, h), weight.view(n * o, i, k, k), padding=k // 2, groups=n)
        return y.view(n, o, h, h)

    def styled(x, p, style, noise, up=False):
        y = modconv(x, p, style, up=up) + sd[p + "noise.weight"] * noise
        return F.leaky_relu(y + sd[p + "activate.bias"].view(1, -1, 1, 1), 0.2) * math.sqrt(2)

    def to_rgb(x, p, style, skip=None):
        y = modconv(x, p, style, demod=False) + sd[p + "bias"]
        if skip is not None:
            y = y + sg.upfirdn2d_ref(skip, sd[p + "upsample.kernel"], up=2, pad=(2, 1, 2, 1))
        return y

    out = sd["input.input"].repeat(n, 1, 1, 1)
    out = styled(out, "conv1.", ws[:, 0], sd["noises.noise_0"])
    skip = to_rgb(out, "to_rgb1.", ws[:, 1])
    i = 1
    n_rgb = sum(1 for k in sd if k.startswith("to_rgbs.") and k.endswith("conv.weight"))
    for k in range(n_rgb):
        out = styled(out, f"convs.{2 * k}.", ws[:, i], sd[f"noises.noise_{2 * k + 1}"], up=True)
        out = styled(out, f"convs.{2 * k + 1}.", ws[:, i + 1], sd[f"noises.noise_{2 * k + 2}"])
        skip = to_rgb(out, f"to_rgbs.{k}.", ws[:, i + 2], skip)
        i += 2
    return skip


def _ros_reference_mapping(sd: dict, z: torch.Tensor, n_mlp: int) -> torch.Tensor:
    x = z * torch.rsqrt(z.pow(2).mean(1, keepdim=True) + 1e-8)
    for i in range(1, n_mlp + 1):
        w, b = sd[f"style.{i}.weight"], sd[f"style.{i}.bias"]
        x = F.leaky_relu(F.linear(x, w * 0.01 / math.sqrt(w.shape[1])) + b * 0.01, 0.2) * math.sqrt(2)
    return x


def _ros_reference_discriminator(sd: dict, x: torch.Tensor) -> torch.Tensor:
    """rosinality Discriminator.forward written from its documented math (blur-then-strided-conv downsampling)."""

    def conv(x, wkey, bkey=None, blur_key=None):
        w = sd[wkey]
        k = w.shape[-1]
        scale = 1 / math.sqrt(w[0].numel())
        if blur_key is not None:
            p = 2 + (k - 1)
            x = sg.upfirdn2d_ref(x, sd[blur_key], pad=((p + 1) // 2, p // 2, (p + 1) // 2, p // 2))
            y = F.conv2d(x, w * scale, stride=2)
        else:
            y = F.conv2d(x, w * scale, padding=k // 2)
        if bkey is None:
            return y
        return F.leaky_relu(y + sd[bkey].view(1, -1, 1, 1), 0.2) * math.sqrt(2)

    out = conv(x, "convs.0.0.weight", "convs.0.1.bias")
    j = 1
    while f"convs.{j}.conv1.0.weight" in sd:
        o = conv(out, f"convs.{j}.conv1.0.weight", f"convs.{j}.conv1.1.bias")
        o = conv(o, f"convs.{j}.conv2.1.weight", f"convs.{j}.conv2.2.bias", f"convs.{j}.conv2.0.kernel")
        out = (o + conv(out, f"convs.{j}.skip.1.weight", None, f"convs.{j}.skip.0.kernel")) / math.sqrt(2)
        j += 1
    b, c, h, w = out.shape
    g = min(b, 4)
    std = out.view(g, -1, 1, c, h, w)
    std = torch.sqrt(std.var(0, unbiased=False) + 1e-8).mean([2, 3, 4], keepdim=True).squeeze(2)
    out = torch.cat([out, std.repeat(g, 1, h, w)], 1)
    out = conv(out, "final_conv.0.weight", "final_conv.1.bias").view(b, -1)
    w0, w1 = sd["final_linear.0.weight"], sd["final_linear.1.weight"]
    out = F.leaky_relu(F.linear(out, w0 / math.sqrt(w0.shape[1])) + sd["final_linear.0.bias"], 0.2) * math.sqrt(2)
    return F.linear(out, w1 / math.sqrt(w1.shape[1]), sd["final_linear.1.bias"])


def test_generator_table_names_shapes_and_round_trip() -> None:
    G, _ = tiny_pair(32)
    sd, latent_avg = ros.generator_to_rosinality(G)
    assert sd["input.input"].shape == (1, 32, 4, 4)
    assert sd["conv1.conv.weight"].shape == (1, 32, 32, 3, 3)
    assert sd["conv1.noise.weight"].shape == (1,)
    assert sd["to_rgb1.bias"].shape == (1, 3, 1, 1)
    assert sd["noises.noise_0"].shape == (1, 1, 4, 4) and sd["noises.noise_6"].shape == (1, 1, 32, 32)
    assert sd["convs.4.conv.weight"].shape == (1, 8, 16, 3, 3)  # b32.conv0: 16 -> 8 channels
    assert "convs.4.conv.blur.kernel" in sd and "to_rgbs.2.upsample.kernel" in sd and "to_rgbs.3.conv.weight" not in sd
    assert torch.equal(latent_avg, G.mapping.w_avg)
    G2 = ros.generator_from_rosinality({"module." + k: v for k, v in sd.items()}, latent_avg)
    for k, v in G.state_dict().items():
        assert torch.equal(v, G2.state_dict()[k]), k


def test_native_matches_independent_rosinality_reference() -> None:
    G, _ = tiny_pair(32)
    sd, latent_avg = ros.generator_to_rosinality(G)
    G2 = ros.generator_from_rosinality(sd, latent_avg)
    z = torch.randn(2, 16)
    w_ref = _ros_reference_mapping(sd, z, 8)
    w_ref = latent_avg + 0.7 * (w_ref - latent_avg)
    ws = G2.mapping(z, truncation_psi=0.7)
    assert torch.allclose(ws[:, 0], w_ref, atol=1e-5)
    ref = _ros_reference_generator(sd, ws)
    assert torch.allclose(G2.synthesis(ws, noise_mode="const"), ref, atol=1e-4)


def test_explicit_noise_list_matches_rosinality_and_nvidia_buffers() -> None:
    """``synthesis(ws, noise=[...])``: rosinality's ``noise=`` list (it replaces ``noises.noise_i``, scaled by each
    layer's ``noise.weight``) and NVIDIA's per-layer ``noise_const`` buffers (noise_mode='const') are the same
    thing; per-sample (N, 1, r, r) tensors act per sample."""
    G, _ = tiny_pair(32)
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("noise_strength"):
                p.fill_(0.3)  # visible noise
    sd, latent_avg = ros.generator_to_rosinality(G)
    ws = G.mapping(torch.randn(2, 16), truncation_psi=0.7)
    buffers = G.synthesis.noise_buffers()
    assert [tuple(b.shape[-2:]) for b in buffers] == [tuple(sd[f"noises.noise_{i}"].shape[-2:])
                                                       for i in range(len(buffers))]
    assert torch.allclose(G.synthesis(ws, noise=buffers), G.synthesis(ws, noise_mode="const"), atol=1e-6)
    gen = torch.Generator().manual_seed(5)
    fresh = [torch.randn(1, 1, *b.shape[-2:], generator=gen) for b in buffers]
    ref = _ros_reference_generator({**sd, **{f"noises.noise_{i}": t for i, t in enumerate(fresh)}}, ws)
    out = G.synthesis(ws, noise=fresh)
    assert torch.allclose(out, ref, atol=1e-4)
    assert not torch.allclose(out, G.synthesis(ws, noise_mode="const"), atol=1e-3)  # the noise matters
    per_sample = [torch.cat([f, torch.randn(f.shape, generator=gen)]) for f in fresh]
    both = G.synthesis(ws, noise=per_sample)
    assert torch.allclose(both[:1], G.synthesis(ws[:1], noise=[t[:1] for t in per_sample]), atol=1e-5)
    assert torch.allclose(both[1:], G.synthesis(ws[1:], noise=[t[1:] for t in per_sample]), atol=1e-5)
    with pytest.raises(ValueError, match="per-layer tensors"):
        G.synthesis(ws, noise=fresh[:-1])


def test_discriminator_round_trip_and_names() -> None:
    _, D = tiny_pair(32)
    sd = ros.discriminator_to_rosinality(D)
    assert {"convs.0.0.weight", "convs.0.1.bias", "convs.1.conv1.0.weight", "convs.1.conv2.0.kernel",
            "convs.1.conv2.2.bias", "convs.3.skip.1.weight", "final_conv.0.weight", "final_linear.1.bias"} <= set(sd)
    assert sd["final_conv.0.weight"].shape == (32, 33, 3, 3)  # +1 minibatch-std channel
    assert "convs.4.conv1.0.weight" not in sd
    D2 = ros.discriminator_from_rosinality(sd)
    x = torch.randn(8, 3, 32, 32)
    assert torch.equal(D(x), D2(x))
    assert torch.allclose(D2(x), _ros_reference_discriminator(sd, x), atol=1e-5)


def test_strict_tables_report_missing_and_unexpected_keys() -> None:
    G, _ = tiny_pair(32)
    sd, avg = ros.generator_to_rosinality(G)
    bad = dict(sd)
    del bad["convs.1.noise.weight"]
    bad["convs.1.extra"] = torch.zeros(1)
    with pytest.raises(ros.KeyTableError, match=r"convs\.1\.noise\.weight") as info:
        ros.generator_from_rosinality(bad, avg, source="x.pt")
    assert "convs.1.extra" in str(info.value) and "x.pt" in str(info.value)
    wrong = dict(sd)
    wrong["to_rgb1.bias"] = torch.zeros(3)
    with pytest.raises(ros.KeyTableError, match="to_rgb1.bias"):
        ros.generator_from_rosinality(wrong, avg)
    blur = dict(sd)
    blur["convs.0.conv.blur.kernel"] = torch.ones(4, 4)
    with pytest.raises(ros.KeyTableError, match="FIR"):
        ros.generator_from_rosinality(blur, avg)


def test_training_checkpoint_loads_each_network(tmp_path) -> None:
    G_ema, D = tiny_pair(32, seed=0)
    G_raw, _ = tiny_pair(32, seed=1)
    path = tmp_path / "stylegan2-tiny.pt"
    write_training_checkpoint(path, G_ema, G_raw, D, prefix="module.")
    z = torch.randn(2, 16)
    g = load_stylegan2(path)
    assert not g.training and not any(p.requires_grad for p in g.parameters())
    assert torch.allclose(g(z, noise_mode="const"), G_ema(z, noise_mode="const"), atol=1e-6)
    g_raw = load_stylegan2(path, which="g")
    assert torch.allclose(g_raw.synthesis.b4.const, G_raw.synthesis.b4.const)
    d = load_stylegan2_discriminator(path)
    x = torch.randn(4, 3, 32, 32)
    assert torch.allclose(d(x), D(x))


def test_missing_latent_avg_is_estimated(tmp_path) -> None:
    G, D = tiny_pair(32)
    path = tmp_path / "no_avg.pt"
    write_training_checkpoint(path, G, G, D, with_latent_avg=False)
    g = load_stylegan2(path)
    gen = torch.Generator().manual_seed(123)
    ws = g.mapping(torch.randn(4096, 16, generator=gen))[:, 0]
    assert torch.allclose(g.mapping.w_avg, ws.mean(0), atol=0.05 * ws.std(0).mean().item())


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch PWNED_ROS",))


def test_malicious_pt_is_refused(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pt"
    torch.save({"g_ema": {"style.1.weight": torch.zeros(2, 2)}, "x": _Payload()}, path, pickle_module=pickle)
    with pytest.raises(UnsafePickleError, match="evil.pt"):
        load_stylegan2(path)
    assert not (tmp_path / "PWNED_ROS").exists()
