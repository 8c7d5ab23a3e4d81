"""FacePipeline: weights files (export/load, .ckpt, strict errors), seeds → faces, render/fit consistency."""

from __future__ import annotations

import pytest
import torch

from albedogan.assets.locate import AssetFormatError, MissingAssetError
from albedogan.inference.pipeline import build_pipeline, resample_uv
from albedogan.models.weights_file import CKPT_PREFIXES, export_inference_weights, load_inference_weights
from albedogan.utils.seeding import latents_for_seeds
from tests.helpers.inference_world import G_KWARGS, tiny_generator, tiny_pipeline, tiny_teacher, write_tiny_checkpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.safetensors", seed=3)


@pytest.fixture(scope="module")
def pipeline(synthetic_head_model, checkpoint):
    return tiny_pipeline(synthetic_head_model, checkpoint)


def test_export_load_round_trip_is_exact(checkpoint):
    ref = tiny_generator(seed=3)
    loaded = load_inference_weights(checkpoint)
    assert loaded.metadata == {"test": True} and loaded.estimator_state is None
    assert loaded.albedo_generator.init_kwargs == ref.init_kwargs
    ws = torch.randn(2, 16)
    assert torch.equal(loaded.albedo_generator(ws), ref(ws))
    assert not any(p.requires_grad for p in loaded.albedo_generator.parameters())


class _Module(torch.nn.Module):
    """Stands in for the training module: live G, EMA wrapper with .module, an estimator with weights."""

    def __init__(self):
        super().__init__()
        self.G = tiny_generator(seed=1)
        self.G_ema = torch.nn.Module()
        self.G_ema.module = tiny_generator(seed=2)
        self.estimator = torch.nn.Linear(3, 2)


def test_export_prefers_ema_and_keeps_estimator(tmp_path):
    module = _Module()
    path = export_inference_weights(module, tmp_path / "m.safetensors")
    loaded = load_inference_weights(path)
    ws = torch.randn(1, 16)
    assert torch.equal(loaded.albedo_generator(ws), module.G_ema.module(ws))
    assert set(loaded.estimator_state) == {"weight", "bias"}
    assert torch.equal(loaded.estimator_state["weight"], module.estimator.weight)


def test_lightning_ckpt_by_prefix(tmp_path):
    module = _Module()
    assert CKPT_PREFIXES == {"albedo_generator": "G_ema.module.", "estimator": "estimator."}
    path = tmp_path / "last.ckpt"
    torch.save({"state_dict": module.state_dict(), "global_step": 7,
                "hyper_parameters": {"albedo_generator_kwargs": G_KWARGS}, "albedogan_world": {"flame": {"n_exp": 3}}},
               path)
    loaded = load_inference_weights(path)
    ws = torch.randn(1, 16)
    assert torch.equal(loaded.albedo_generator(ws), module.G_ema.module(ws))
    assert loaded.metadata["global_step"] == 7 and loaded.metadata["world"] == {"flame": {"n_exp": 3}}
    torch.save({"state_dict": module.state_dict(), "global_step": 7, "hyper_parameters": {}}, path)
    with pytest.raises(AssetFormatError, match="constructor kwargs"):
        load_inference_weights(path)


def test_strict_and_clear_errors(tmp_path, synthetic_head_model):
    with pytest.raises(MissingAssetError, match="allow_no_checkpoint"):
        load_inference_weights(tmp_path / "nope.safetensors")
    (tmp_path / "x.bin").write_bytes(b"123")
    with pytest.raises(AssetFormatError, match="suffix"):
        load_inference_weights(tmp_path / "x.bin")
    (tmp_path / "bad.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(AssetFormatError, match="bad.safetensors"):
        load_inference_weights(tmp_path / "bad.safetensors")
    # an estimator whose keys differ from the stored ones is rejected, naming the keys
    path = export_inference_weights(_Module(), tmp_path / "m.safetensors")
    with pytest.raises(AssetFormatError, match=r"weight \(file \(2, 3\) vs expected \(2, 4\)\)"):
        build_pipeline(tiny_teacher(synthetic_head_model), synthetic_head_model, torch.nn.Linear(4, 2), path)
    with pytest.raises(AssetFormatError, match="missing keys"):
        build_pipeline(tiny_teacher(synthetic_head_model), synthetic_head_model,
                       torch.nn.Sequential(torch.nn.Linear(3, 2)), path)
    with pytest.raises(ValueError, match="allow_no_checkpoint=true"):
        build_pipeline(tiny_teacher(synthetic_head_model), synthetic_head_model, None, None)


def test_generate_uses_g_a_on_the_seed_latents(pipeline, checkpoint):
    result = pipeline.generate([5, 9])
    z = latents_for_seeds([5, 9], 16)
    ws = pipeline.teacher.mapping(z)
    assert torch.equal(result.z, z)
    expected = load_inference_weights(checkpoint).albedo_generator(ws)
    assert torch.allclose(result.albedo, expected, atol=1e-6)
    assert result.albedo.shape == (2, 3, 32, 32) and result.render.shape == (2, 3, 32, 32)
    assert 0 <= result.render.min() and result.render.max() <= 1


def test_same_seed_same_face_whatever_the_batch(pipeline):
    both = pipeline.generate([1, 2])
    alone = pipeline.generate([2])
    for name in ("image", "ws", "albedo", "vertices", "render", "albedo_render", "landmarks"):
        assert torch.equal(getattr(both, name)[1], getattr(alone, name)[0]), name  # bit-identical (defect 7)
    assert torch.equal(both.estimate.params.shape[1], alone.estimate.params.shape[0])


def test_render_matches_teacher_silhouette_with_oracle_fit(pipeline):
    """With the ground-truth estimate the rendered silhouette is the teacher's coverage (independent render)."""
    z = latents_for_seeds([4], 16)
    sample = pipeline.teacher.sample(z)
    result = pipeline.generate([4])
    inter = (result.alpha * sample.truth.alpha).sum()
    union = ((result.alpha + sample.truth.alpha) > 0).float().sum()
    assert inter / union > 0.98
    assert torch.allclose(result.landmarks, sample.truth.landmarks2d, atol=1e-5)


def test_unwrapped_mode_recovers_visible_albedo(synthetic_head_model):
    """Without G_A the albedo is the teacher image unwrapped: close to the true albedo where it is trusted."""
    pipe = tiny_pipeline(synthetic_head_model, None)
    assert pipe.albedo_generator is None
    z = latents_for_seeds([6], 16)
    truth = pipe.teacher.sample(z).truth
    result = pipe.generate([6])
    mask = synthetic_head_model.uv_face_mask
    mask = torch.nn.functional.interpolate(mask.reshape(1, 1, *mask.shape[-2:]).float(), size=(32, 32)) > 0.5
    err = (result.albedo - truth.albedo).abs().mean(1, keepdim=True)[mask].median()
    spread = (truth.albedo - truth.albedo.mean((2, 3), keepdim=True)).abs().mean(1, keepdim=True)[mask].median()
    assert err < 0.2 and err < 2 * spread + 0.1


def test_oracle_needs_truth(synthetic_head_model):
    pipe = build_pipeline(tiny_teacher(synthetic_head_model), synthetic_head_model, None, None,
                          allow_no_checkpoint=True, render_size=32, uv_resolution=32)
    with pytest.raises(ValueError, match="no estimator configured"):
        pipe.estimate(torch.zeros(1, 3, 32, 32))


def test_resample_uv():
    tex = torch.rand(1, 3, 8, 8)
    assert resample_uv(tex, None) is tex and resample_uv(tex, 8) is tex
    up = resample_uv(tex, 16)
    assert up.shape == (1, 3, 16, 16)
    assert torch.allclose(up.mean(), tex.mean(), atol=0.02)
