"""StyleGAN2 building blocks and networks: FIR helpers, modconv, mapping/truncation/mixing, G/D shapes and names."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from albedogan.nets import ops
from albedogan.nets import stylegan2 as sg

TINY = dict(z_dim=16, w_dim=16, channel_base=256, channel_max=32)


def _tiny_g(res: int = 32, seed: int = 0) -> sg.Generator:
    torch.manual_seed(seed)
    G = sg.Generator(img_resolution=res, **TINY)
    with torch.no_grad():  # non-zero noise strengths and biases so every parameter matters
        for name, p in G.named_parameters():
            if name.endswith("noise_strength") or name.endswith(".bias"):
                p.add_(torch.randn_like(p) * 0.1)
    return G.eval()


def test_fir_fast_paths_match_reference_and_preserve_constants() -> None:
    f = ops.setup_filter()
    assert torch.allclose(f.sum(), torch.tensor(1.0)) and f.shape == (4, 4)
    assert torch.allclose(f, torch.outer(torch.tensor([1, 3, 3, 1.0]), torch.tensor([1, 3, 3, 1.0])) / 64)
    x = torch.randn(2, 3, 8, 8)
    up = ops.upsample2d(x, f)
    assert up.shape == (2, 3, 16, 16)
    assert torch.allclose(up, ops.upfirdn2d_ref(x, f, up=2, pad=(2, 1, 2, 1), gain=4), atol=1e-6)
    down = ops.downsample2d(x, f)
    assert down.shape == (2, 3, 4, 4)
    assert torch.allclose(down, ops.upfirdn2d_ref(x, f, down=2, pad=(1, 1, 1, 1)), atol=1e-6)
    ones = torch.ones(1, 1, 8, 8)  # interior of a constant image is preserved (gain 4 for upsampling)
    assert torch.allclose(ops.upsample2d(ones, f)[..., 2:-2, 2:-2], torch.ones(1, 1, 12, 12))
    assert torch.allclose(ops.downsample2d(ones, f)[..., 1:-1, 1:-1], torch.ones(1, 1, 2, 2))


def _modconv_reference(x, weight, styles, demodulate, up, f):
    """Per-sample loop with explicit zero insertion + full convolution (independent of the fused paths)."""
    outs = []
    for i in range(x.shape[0]):
        w = weight * styles[i].reshape(1, -1, 1, 1)
        if demodulate:
            w = w * (w.square().sum(dim=[1, 2, 3], keepdim=True) + 1e-8).rsqrt()
        xi = x[i : i + 1]
        if up == 1:
            outs.append(F.conv2d(xi, w, padding=w.shape[-1] // 2))
        else:
            h = xi.shape[-1]
            z = torch.zeros(1, xi.shape[1], 2 * h - 1, 2 * h - 1)
            z[..., ::2, ::2] = xi
            k = w.shape[-1]
            y = F.conv2d(z, w.flip([2, 3]), padding=k - 1)  # == conv_transpose2d(stride 2)
            outs.append(ops.upfirdn2d_ref(y, f, pad=(1, 1, 1, 1), gain=4))
    return torch.cat(outs)


@pytest.mark.parametrize("up", [1, 2])
@pytest.mark.parametrize("demodulate", [True, False])
def test_modulated_conv2d_fused_unfused_and_reference(up: int, demodulate: bool) -> None:
    torch.manual_seed(1)
    x, weight, styles = torch.randn(3, 4, 6, 6), torch.randn(5, 4, 3, 3), torch.randn(3, 4)
    f = ops.setup_filter()
    ref = _modconv_reference(x, weight, styles, demodulate, up, f)
    for fused in (True, False):
        y = ops.modulated_conv2d(x, weight, styles, up=up, resample_filter=f, demodulate=demodulate, fused_modconv=fused)
        assert y.shape == (3, 5, 6 * up, 6 * up)
        assert torch.allclose(y, ref, atol=1e-5), (fused, (y - ref).abs().max())


def test_bias_act_lrelu_gain_and_clamp() -> None:
    x = torch.tensor([[-1.0, 2.0]])
    y = ops.bias_act(x, torch.tensor([0.0, 1.0]), act="lrelu")
    assert torch.allclose(y, torch.tensor([[-0.2 * math.sqrt(2), 3 * math.sqrt(2)]]))
    assert ops.bias_act(x * 100, act="lrelu", clamp=5.0).max() == 5.0
    with pytest.raises(ValueError, match="unsupported activation"):
        ops.bias_act(x, act="gelu")


def test_config_f_channels_names_and_parameter_counts() -> None:
    with torch.device("meta"):
        G = sg.Generator()  # 1024², config-f
        D = sg.Discriminator()
        G256 = sg.Generator(img_resolution=256)
    assert G.synthesis.channels == {4: 512, 8: 512, 16: 512, 32: 512, 64: 512, 128: 256, 256: 128, 512: 64, 1024: 32}
    assert G.num_ws == 18 and G256.num_ws == 14
    keys = set(G.state_dict())
    for k in ["mapping.fc0.weight", "mapping.fc7.bias", "mapping.w_avg", "synthesis.b4.const",
              "synthesis.b4.resample_filter", "synthesis.b4.conv1.noise_const", "synthesis.b4.conv1.noise_strength",
              "synthesis.b8.conv0.affine.weight", "synthesis.b1024.torgb.affine.bias", "synthesis.b1024.conv1.bias",
              "synthesis.b64.conv0.resample_filter"]:
        assert k in keys, k
    assert G.state_dict()["synthesis.b4.const"].shape == (512, 4, 4)
    assert G.state_dict()["synthesis.b1024.conv0.weight"].shape == (32, 64, 3, 3)
    assert {"b1024.fromrgb.weight", "b1024.skip.weight", "b8.conv1.resample_filter", "b4.conv.weight", "b4.fc.weight",
            "b4.out.bias"} <= set(D.state_dict())
    assert "b1024.skip.bias" not in D.state_dict()
    # published size of the official FFHQ-1024 config-f generator (stylegan2-ada-pytorch summary)
    assert sum(p.numel() for p in G.parameters()) == 30_370_060


def test_truncation_identity_zero_and_cutoff() -> None:
    G = _tiny_g()
    with torch.no_grad():
        G.mapping.w_avg.copy_(torch.randn(16))
    z = torch.randn(3, 16)
    ws = G.mapping(z)
    assert ws.shape == (3, G.num_ws, 16)
    assert torch.equal(G.mapping(z, truncation_psi=1.0), ws)
    assert torch.allclose(G.mapping(z, truncation_psi=0.0), G.mapping.w_avg.expand_as(ws))
    half = G.mapping(z, truncation_psi=0.5, truncation_cutoff=3)
    assert torch.allclose(half[:, :3], G.mapping.w_avg + 0.5 * (ws[:, :3] - G.mapping.w_avg))
    assert torch.equal(half[:, 3:], ws[:, 3:])


def test_w_avg_tracked_only_in_training() -> None:
    G = _tiny_g()
    before = G.mapping.w_avg.clone()
    G.mapping(torch.randn(8, 16))
    assert torch.equal(G.mapping.w_avg, before)
    G.train()
    w = G.mapping(torch.randn(8, 16))[:, 0]
    assert torch.allclose(G.mapping.w_avg, w.mean(0).lerp(before, G.mapping.w_avg_beta), atol=1e-6)


def test_style_mixing_changes_only_later_styles() -> None:
    G = _tiny_g()
    ws_a, ws_b = G.mapping(torch.randn(2, 16)), G.mapping(torch.randn(2, 16))
    cutoff = 3
    styles: dict[str, torch.Tensor] = {}
    hooks = [m.register_forward_hook(lambda mod, inp, out, n=n: styles.__setitem__(n, out))
             for n, m in G.synthesis.named_modules() if n.endswith("affine")]

    def run(ws):
        styles.clear()
        G.synthesis(ws, noise_mode="const")
        return dict(styles)

    sa, sb, sm = run(ws_a), run(ws_b), run(sg.mix_styles(ws_a, ws_b, cutoff))
    for h in hooks:
        h.remove()
    # layer -> its w row: b4.conv1 0, b4.torgb 1, b8.conv0 1, b8.conv1 2, b8.torgb 3, b16.conv0 3, ...
    def row(name: str) -> int:
        res = int(name.split(".")[0][1:])
        j = int(math.log2(res))
        if res == 4:
            return 0 if ".conv1." in name + "." else 1
        base = 2 * (j - 3) + 1
        return base + {"conv0": 0, "conv1": 1, "torgb": 2}[name.split(".")[1]]

    assert len(sm) == 3 * 3 + 2
    for name, s in sm.items():
        ref = sa[name] if row(name) < cutoff else sb[name]
        assert torch.equal(s, ref), name


@pytest.mark.parametrize("res", [32, 64])
def test_generator_runs_fused_equals_unfused_and_rebuilds(res: int) -> None:
    G = _tiny_g(res)
    z = torch.randn(2, 16)
    a = G(z, noise_mode="const")
    assert a.shape == (2, 3, res, res) and a.dtype == torch.float32 and torch.isfinite(a).all()
    assert torch.allclose(a, G(z, noise_mode="const", fused_modconv=False), atol=1e-5)
    assert torch.equal(a, G(z, noise_mode="const"))
    assert not torch.allclose(a, G(z, noise_mode="random"))
    G2 = sg.Generator(**G.init_kwargs)
    G2.load_state_dict(G.state_dict(), strict=True)
    assert torch.equal(G2.eval()(z, noise_mode="const"), a)


def test_fp16_blocks_stay_float32_on_cpu() -> None:
    torch.manual_seed(0)
    G = sg.Generator(img_resolution=32, num_fp16_res=2, conv_clamp=256, **TINY).eval()
    assert G.synthesis.b32.use_fp16 and G.synthesis.b16.use_fp16 and not G.synthesis.b8.use_fp16
    assert G(torch.randn(1, 16), noise_mode="none").dtype == torch.float32


def test_gradients_flow_through_g_and_d() -> None:
    G = _tiny_g().train()
    D = sg.Discriminator(img_resolution=32, channel_base=256, channel_max=32).train()
    ws = G.mapping(torch.randn(4, 16)).detach().requires_grad_(True)
    logits = D(G.synthesis(ws, noise_mode="random"))
    assert logits.shape == (4, 1)
    F.softplus(-logits).mean().backward()
    assert ws.grad is not None and ws.grad.abs().sum() > 0
    for name, p in list(G.synthesis.named_parameters()) + list(D.named_parameters()):
        assert p.grad is not None, name
    assert G.synthesis.b32.torgb.weight.grad.abs().sum() > 0 and D.b4.out.weight.grad.abs().sum() > 0


def test_discriminator_minibatch_std_and_errors() -> None:
    layer = sg.MinibatchStdLayer(group_size=2)
    x = torch.randn(4, 3, 2, 2)
    y = layer(x)
    assert y.shape == (4, 4, 2, 2)
    g = x.reshape(2, 2, 3, 2, 2)
    expect = (g.var(0, unbiased=False) + 1e-8).sqrt().mean(dim=[1, 2, 3])  # per group-member column
    assert torch.allclose(y[:2, 3, 0, 0], expect) and torch.allclose(y[2:, 3, 0, 0], expect)
    with pytest.raises(ValueError, match="not divisible"):
        layer(torch.randn(3, 3, 2, 2))
    with pytest.raises(ValueError, match="power of two"):
        sg.Generator(img_resolution=48, **TINY)
    D = sg.Discriminator(img_resolution=32, channel_base=256, channel_max=32)
    with pytest.raises(ValueError, match="img"):
        D(torch.randn(2, 3, 16, 16))
