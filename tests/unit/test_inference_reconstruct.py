"""Reconstruct building blocks: latent inversion on a tiny StyleGAN2 teacher, the fit overlay, G_A on inverted w."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from albedogan.inference.reconstruct import differentiable_synthesis, invert_latent, overlay_fit
from albedogan.nets import stylegan2 as sg
from albedogan.teachers.stylegan2 import StyleGAN2Teacher
from tests.helpers.inference_world import tiny_teacher

TINY = dict(z_dim=16, w_dim=16, img_resolution=16, channel_base=256, channel_max=32)


@pytest.fixture(scope="module")
def teacher() -> StyleGAN2Teacher:
    torch.manual_seed(0)
    G = sg.Generator(**TINY)
    with torch.no_grad():
        G.mapping.w_avg.copy_(torch.randn(16))
    return StyleGAN2Teacher(G.eval(), truncation_psi=1.0)


def test_differentiable_synthesis_matches_the_teacher(teacher, synthetic_head_model):
    synth = differentiable_synthesis(teacher)
    ws = teacher.mapping(torch.randn(2, 16, generator=torch.Generator().manual_seed(1)))
    assert torch.allclose(synth(ws), teacher.synthesize(ws).image, atol=1e-6)
    assert differentiable_synthesis(tiny_teacher(synthetic_head_model)) is None  # the procedural world has none


def test_inversion_recovers_a_generated_image(teacher):
    synth = differentiable_synthesis(teacher)
    target_ws = teacher.mapping(torch.randn(1, 16, generator=torch.Generator().manual_seed(2)))
    target = synth(target_ws).detach()
    w0 = teacher.generator.mapping.w_avg.reshape(1, 1, -1).expand(1, teacher.num_ws, -1)
    ws, losses = invert_latent(synth, target, w0, steps=12, lr=0.1, perceptual=None)
    assert ws.shape == w0.shape and not ws.requires_grad
    assert losses[-1] < 0.5 * losses[0]
    assert (synth(ws) - target).abs().mean() < (synth(w0) - target).abs().mean()
    same, none = invert_latent(synth, target, w0, steps=0)
    assert torch.equal(same, w0) and none == []


def test_projection_optimises_normalised_noise_maps(teacher):
    """NVlabs projector style: the noise maps are fitted too (changed, still zero-mean unit-variance per map), and a
    target made with other noise is matched better than with the latent alone."""
    import copy

    from albedogan.inference.reconstruct import noise_regularization

    teacher = copy.deepcopy(teacher)  # the module's teacher keeps its zero noise strengths
    G = teacher.generator
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("noise_strength"):
                p.fill_(0.5)
    synth = differentiable_synthesis(teacher)
    buffers = synth.noise_buffers()
    gen = torch.Generator().manual_seed(4)
    other = [torch.randn(b.shape, generator=gen) for b in buffers]
    ws = teacher.mapping(torch.randn(1, 16, generator=gen))
    target = synth(ws, noise=other).detach()
    w_only, l_w = invert_latent(synth, target, ws, steps=15, lr=0.05)
    with_noise, l_n = invert_latent(synth, target, ws, steps=15, lr=0.05, noise_init=buffers, noise_weight=1.0)
    assert l_n[-1] < l_w[-1]
    assert noise_regularization([torch.randn(1, 1, 32, 32, generator=gen)]) < 1e-2
    assert noise_regularization([torch.ones(1, 1, 16, 16)]) > 1.0  # fully correlated noise is penalised


def test_overlay_draws_render_and_landmarks():
    image = torch.zeros(3, 20, 20)
    render = torch.ones(3, 10, 10)
    alpha = torch.zeros(1, 10, 10)
    alpha[:, :5] = 1.0  # render covers the top half
    lmk = torch.tensor([[0.0, 0.5]])  # image NDC: x centre, y three quarters down → pixel (9.5, 14.5) → (10, 15)
    out = overlay_fit(image, render, alpha, lmk, opacity=1.0)
    assert out.shape == (20, 20, 3) and out.dtype == np.uint8
    assert (out[:8, :, 0] == 255).all() and (out[12:14, :5] == 0).all()
    assert tuple(out[15, 10]) == (40, 220, 60) and tuple(out[14, 9]) == (40, 220, 60)
    assert tuple(out[17, 10]) == (0, 0, 0)


def test_pipeline_uses_g_a_on_inverted_latent(teacher, synthetic_head_model):
    """With a latent, albedo = G_A(w); without one the pipeline falls back to the unwrapped texture."""
    from albedogan.nets.albedo_generator import AlbedoGenerator
    from albedogan.inference.pipeline import FacePipeline

    g = AlbedoGenerator(w_dim=16, uv_resolution=16, channel_base=256, channel_max=32).eval()
    pipe = FacePipeline(teacher, synthetic_head_model, None, g, render_size=32, uv_resolution=16)
    ws = teacher.mapping(torch.randn(1, 16, generator=torch.Generator().manual_seed(3)))
    assert torch.allclose(pipe.albedo(ws), g(ws))


def test_reconstruct_inverts_the_latent_with_a_stylegan2_teacher(teacher, synthetic_head_model, tmp_path):
    """A StyleGAN2 teacher + G_A: the photo's albedo is G_A on the inverted w (recorded in params.npz)."""
    import json

    from PIL import Image
    from skimage import data

    from albedogan.inference.pipeline import FacePipeline
    from albedogan.inference.reconstruct import run_reconstruct
    from albedogan.models.estimator import build_embedded_estimator
    from albedogan.nets.albedo_generator import AlbedoGenerator

    Image.fromarray(data.astronaut()).resize((160, 160)).save(tmp_path / "face.png")
    g = AlbedoGenerator(w_dim=16, uv_resolution=16, channel_base=256, channel_max=32).eval()
    est = build_embedded_estimator(n_shape=300, n_exp=50, input_size=32, shape_network=False)
    pipe = FacePipeline(teacher, synthetic_head_model, est, g, render_size=32, uv_resolution=16)
    status = run_reconstruct(pipe, str(tmp_path / "face.png"), tmp_path / "out", detector="yunet", crop_size=32,
                             invert={"steps": 2, "lpips_weight": 0.0, "blend": False}, glb=False)
    assert status == 0
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["albedo_source"] == "G_A(inverted w)"
    w = torch.from_numpy(np.load(tmp_path / "out" / "face" / "params.npz")["w"])[None]
    assert w.shape == (1, teacher.num_ws, 16)
    albedo = np.asarray(Image.open(tmp_path / "out" / "face" / "mesh_albedo.png"), dtype=float) / 255
    expected = g(w)[0].permute(1, 2, 0).numpy()
    assert np.abs(albedo - expected).max() <= 1 / 255 + 1e-6
