"""bf16-mixed with fp32 islands (``albedogan.utils.precision``), checked under CPU autocast (bfloat16).

Inside ``torch.autocast('cpu', dtype=torch.bfloat16)`` -- what Lightning's ``bf16-mixed`` wraps a step in -- the FLAME
layer, the renderer, the target builder, the mapping network, the style affines, the demodulation coefficients,
R1 and the path length return float32 results equal to the fp32 path (<= 1e-6), while G_A's and D's convolutions
run in bfloat16 (recorded at the aten level with a dispatch mode).
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from albedogan.flame.head import HeadModel
from albedogan.losses.gan import PathLengthPenalty, r1_penalty
from albedogan.models.targets import AlbedoTargetBuilder
from albedogan.nets.albedo_generator import AlbedoGenerator
from albedogan.nets.stylegan2 import Discriminator, MappingNetwork, reduced_dtype
from albedogan.render import FaceRenderer, WeakPerspectiveCamera
from albedogan.structures import FaceEstimate
from albedogan.utils.precision import autocast_enabled, float32_region, fp32_island, to_float32


def _bf16():
    return torch.autocast("cpu", dtype=torch.bfloat16)


class _OpDtypes(TorchDispatchMode):
    """Records (aten op name, dtype of the first floating tensor argument) of every op that runs."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, torch.dtype, tuple[int, ...]]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        for a in args:
            if isinstance(a, torch.Tensor) and a.is_floating_point():
                self.calls.append((func.overloadpacket.__name__, a.dtype, tuple(a.shape)))
                break
        return func(*args, **(kwargs or {}))

    def dtypes(self, *names: str, channels: int | None = None) -> set[torch.dtype]:
        """dtypes of the first floating input of ops ``names`` (only inputs with ``channels`` channels if given)."""
        return {d for n, d, shape in self.calls if n in names and (channels is None or shape[1] == channels)}


@pytest.fixture(scope="module")
def head(synthetic_data_dir) -> HeadModel:
    return HeadModel.synthetic(synthetic_data_dir, n_shape=20, n_exp=10)


@pytest.fixture(scope="module")
def estimate(head) -> FaceEstimate:
    g = torch.Generator().manual_seed(0)
    p = head.zero_params(2)
    p = dataclasses.replace(p, shape=torch.randn(2, 20, generator=g), expression=torch.randn(2, 10, generator=g) * .5,
                            global_pose=torch.randn(2, 3, generator=g) * 0.3, jaw_pose=torch.rand(2, 3, generator=g) * .1)
    light = torch.randn(2, 9, 3, generator=g) * 0.2
    light[:, 0] += 0.8
    return FaceEstimate(params=p, cam=torch.tensor([[8.0, 0.02, -0.03], [9.0, -0.05, 0.01]]), light=light)


def test_to_float32_maps_records_and_leaves_float64():
    from albedogan.structures import FlameParams

    params = dataclasses.replace(FlameParams.zeros(1, 20, 10), shape=torch.ones(1, 20, dtype=torch.bfloat16))
    p = FaceEstimate(params=params, cam=torch.ones(1, 3, dtype=torch.float16),
                     light=torch.ones(1, 9, 3, dtype=torch.float64))
    q = to_float32(p)
    assert q.params.shape.dtype == torch.float32 and q.cam.dtype == torch.float32
    assert q.light is p.light and q.params.expression is p.params.expression  # untouched fields are the same objects
    x = torch.ones(2)
    assert to_float32(x) is x and to_float32((x, 3))[0] is x


def test_float32_region_switches_autocast_off_only_inside():
    with _bf16():
        assert autocast_enabled()
        with float32_region():
            assert not autocast_enabled()
            assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16

    @fp32_island
    def f(a):
        return a @ a

    with _bf16():
        assert f(torch.ones(2, 2, dtype=torch.bfloat16)).dtype == torch.float32


def test_flame_is_an_fp32_island(head, estimate):
    ref = head(estimate.params)
    with _bf16():
        out = head(estimate.params)
        from_bf16 = head(estimate.params.to(torch.bfloat16))  # a bf16 estimator output is cast, not rejected
    for name in ("vertices", "landmarks2d", "landmarks3d"):
        assert getattr(out, name).dtype == torch.float32
        torch.testing.assert_close(getattr(out, name), getattr(ref, name), atol=1e-6, rtol=0)
    ref16 = head(to_float32(estimate.params.to(torch.bfloat16)))
    torch.testing.assert_close(from_bf16.vertices, ref16.vertices, atol=1e-6, rtol=0)
    # without the island, the layer under autocast is visibly off (the issue measured 0.19 mm at FLAME size)
    with _bf16():
        raw = head.flame.forward.__wrapped__(head.flame, estimate.params)
    assert (raw.vertices.float() - ref.vertices).abs().max() > 1e-5


def test_renderer_is_an_fp32_island(head, estimate):
    flame = head(estimate.params)
    renderer = FaceRenderer(head.faces, head.verts_uvs, head.faces_uvs, 32, texture_filter="mip")
    texture = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    cam = WeakPerspectiveCamera(estimate.cam)
    ref = renderer.render_world(flame.vertices, cam, texture, estimate.light, landmarks=flame.landmarks2d)
    with _bf16():
        out = renderer.render_world(flame.vertices, cam, texture.to(torch.bfloat16), estimate.light,
                                    landmarks=flame.landmarks2d)
    ref16 = renderer.render_world(flame.vertices, cam, texture.to(torch.bfloat16).float(), estimate.light,
                                  landmarks=flame.landmarks2d)
    assert ref.alpha.sum() > 100
    for name in ("image", "shading", "normals", "uv", "depth", "alpha"):
        assert getattr(out, name).dtype == torch.float32, name
    for name in ("shading", "normals", "uv", "depth", "alpha"):
        torch.testing.assert_close(getattr(out, name), getattr(ref, name), atol=1e-6, rtol=0)
    torch.testing.assert_close(out.image, ref16.image, atol=1e-6, rtol=0)  # the texture was bf16 on the way in
    assert torch.equal(out.pix_to_face, ref.pix_to_face)


def test_target_builder_is_an_fp32_island(head, estimate):
    builder = AlbedoTargetBuilder(head, uv_resolution=32)
    image = torch.rand(2, 3, 48, 48, generator=torch.Generator().manual_seed(2))
    ref = builder(image, estimate)
    with _bf16():
        out = builder(image, estimate)
    assert ref.visible_fraction.min() > 0.05
    for name in ("texture", "weight", "visibility"):
        assert getattr(out, name).dtype == torch.float32
        torch.testing.assert_close(getattr(out, name), getattr(ref, name), atol=1e-6, rtol=0)


def test_mapping_affines_and_demodulation_are_fp32_while_convolutions_run_in_bf16():
    torch.manual_seed(0)
    mapping = MappingNetwork(z_dim=16, w_dim=16, num_ws=6, num_layers=4).eval()
    g = AlbedoGenerator(w_dim=16, uv_resolution=16, channel_base=256, channel_max=16).train()
    d = Discriminator(img_resolution=16, channel_base=256, channel_max=16)
    z = torch.randn(4, 16)
    ws_ref = mapping(z)
    ref = g(ws_ref, raw=True)
    with _bf16():
        ws = mapping(z)
        with _OpDtypes() as rec:
            out = g(ws, raw=True)
            logits = d(out * 2 - 1)
    assert ws.dtype == torch.float32
    torch.testing.assert_close(ws, ws_ref, atol=1e-6, rtol=0)
    # every feature convolution of G_A and D runs in bf16; fp32 convolutions are only the running RGB image's FIR
    # upsampling (3 channels), an island as in NVIDIA's code
    convs = [(d, shape) for n, d, shape in rec.calls if n == "convolution"]
    assert {d for d, shape in convs if shape[1] != 3} == {torch.bfloat16}
    assert sum(d == torch.bfloat16 for d, _ in convs) > 10
    assert all(shape[1] == 3 for d, shape in convs if d == torch.float32)
    assert rec.dtypes("addmm", "mm") >= {torch.float32}  # style affines (fp32) ...
    assert torch.float32 in rec.dtypes("rsqrt") and torch.bfloat16 not in rec.dtypes("rsqrt")  # ... demodulation
    assert out.dtype == torch.float32 and logits.dtype in (torch.float32, torch.bfloat16)
    err = (out - ref).abs().max()
    assert 1e-5 < err < 0.1, err  # bf16 convolutions: close to, not equal to, the fp32 path


def test_r1_and_path_length_are_fp32():
    torch.manual_seed(0)
    d = Discriminator(img_resolution=16, channel_base=256, channel_max=16)
    real = (torch.rand(4, 3, 16, 16) * 2 - 1).requires_grad_(True)
    with _bf16():
        logits = d(real)
        r1 = r1_penalty(logits, real)
    assert r1.dtype == torch.float32 and torch.isfinite(r1)
    ws = torch.randn(2, 4, 8, requires_grad=True)
    with _bf16():
        images = torch.nn.functional.linear(ws, torch.randn(48, 8)).reshape(2, 4, 3, 4, 4).mean(1)
        pl = PathLengthPenalty()(images, ws)
    assert pl.dtype == torch.float32


def test_flagged_blocks_take_the_autocast_dtype():
    cpu = torch.device("cpu")
    assert reduced_dtype(True, cpu) == torch.float32 and reduced_dtype(False, cpu) == torch.float32
    with _bf16():
        assert reduced_dtype(True, cpu) == torch.bfloat16 and reduced_dtype(False, cpu) == torch.float32
        g = AlbedoGenerator(w_dim=16, uv_resolution=16, channel_base=256, channel_max=16, num_fp16_res=2,
                            conv_clamp=4.0)
        out = g.synthesis(torch.randn(2, g.num_ws, 16))
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
