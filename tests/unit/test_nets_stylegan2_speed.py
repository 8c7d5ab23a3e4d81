"""GPU-speed options of the StyleGAN2 family, each checked for equality with the reference path on CPU (fp32):
channels_last activations, FIR resampling as strided / transposed convolutions, and bias + activation + gain +
clamp as one pointwise chain that inductor fuses into one kernel."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from albedogan.nets import ops
from albedogan.nets.albedo_generator import AlbedoGenerator
from albedogan.nets.stylegan2 import Conv2dLayer, Discriminator, SynthesisBlock, set_channels_last


def _nets() -> tuple[AlbedoGenerator, Discriminator]:
    torch.manual_seed(0)
    g = AlbedoGenerator(w_dim=16, uv_resolution=32, channel_base=512, channel_max=16)
    d = Discriminator(img_resolution=32, channel_base=512, channel_max=16)
    with torch.no_grad():  # non-zero biases / noise strengths so every term matters
        for name, p in list(g.named_parameters()) + list(d.named_parameters()):
            if name.endswith((".bias", "noise_strength")):
                p.add_(torch.randn_like(p) * 0.1)
    return g, d


def _run(g, d, ws, fused):
    g.zero_grad(set_to_none=True)
    d.zero_grad(set_to_none=True)
    img = g(ws, raw=True, fused_modconv=fused)
    logits = d(img * 2 - 1)
    (logits.square().mean() + img.mean()).backward()
    grads = [p.grad.clone() for p in list(g.parameters()) + list(d.parameters())]
    return img.detach(), logits.detach(), grads


@pytest.mark.parametrize("fused", [True, False])
def test_channels_last_equals_contiguous(fused: bool):
    g, d = _nets()
    ws = torch.randn(4, g.num_ws, 16, generator=torch.Generator().manual_seed(3))
    keys = list(g.state_dict()) + list(d.state_dict())
    ref = _run(g, d, ws, fused)
    set_channels_last(g)
    set_channels_last(d)
    blocks = [m for m in list(g.modules()) + list(d.modules()) if hasattr(m, "channels_last")]
    assert blocks and all(m.channels_last for m in blocks)
    seen = []
    hook = g.synthesis.b16.conv0.register_forward_pre_hook(lambda m, a: seen.append(a[0].is_contiguous(
        memory_format=torch.channels_last)))
    out = _run(g, d, ws, fused)
    hook.remove()
    assert seen == [True]  # the activations really are channels_last
    assert list(g.state_dict()) + list(d.state_dict()) == keys  # an execution option, not architecture
    torch.testing.assert_close(out[0], ref[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(out[1], ref[1], atol=1e-5, rtol=0)
    for a, b in zip(out[2], ref[2]):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_downsampling_convs_equal_upfirdn2d_then_strided_conv():
    """Conv2dLayer(down=2): one padded FIR + a stride-2 conv (3x3) / a strided FIR + 1x1 conv, exactly NVIDIA's
    ``conv2d_resample`` (upfirdn2d reference, then the strided convolution)."""
    torch.manual_seed(0)
    f = ops.setup_filter()
    x = torch.randn(2, 4, 8, 8)
    for k in (3, 1):
        layer = Conv2dLayer(4, 5, k, bias=False, down=2)
        w = layer.weight * layer.weight_gain
        if k == 3:
            ref = F.conv2d(ops.upfirdn2d_ref(x, f, pad=(2, 2, 2, 2)), w, stride=2)
        else:
            ref = F.conv2d(ops.upfirdn2d_ref(x, f, down=2, pad=(1, 1, 1, 1)), w)
        torch.testing.assert_close(layer(x), ref, atol=1e-6, rtol=0)


def test_upsampling_block_equals_zero_insertion_reference():
    """SynthesisBlock's image skip (transposed-conv FIR upsampling) equals upfirdn2d_ref with zero insertion."""
    torch.manual_seed(0)
    block = SynthesisBlock(8, 8, 16, 16, 3)
    img = torch.randn(2, 3, 8, 8)
    ref = ops.upfirdn2d_ref(img, block.resample_filter, up=2, pad=(2, 1, 2, 1), gain=4)
    torch.testing.assert_close(ops.upsample2d(img, block.resample_filter), ref, atol=1e-6, rtol=0)


@pytest.mark.slow
def test_bias_act_compiles_to_one_fused_kernel():
    """bias + leaky ReLU + gain + clamp is one pointwise chain: inductor emits a single kernel for it, equal to eager."""
    from torch._inductor.utils import run_and_get_code

    x, b = torch.randn(2, 8, 6, 6), torch.randn(8)

    def f(x, b):
        return ops.bias_act(x, b, act="lrelu", gain=1.7, clamp=1.5)

    out, code = run_and_get_code(torch.compile(f, backend="inductor"), x, b)
    torch.testing.assert_close(out, f(x, b), atol=1e-6, rtol=0)
    src = "\n".join(code)
    assert src.count("def kernel") + src.count("extern \"C\"") >= 1
    assert len({line for line in src.splitlines() if "cpp_fused_" in line and "= async_compile.cpp" in line}) == 1, src
