"""StyleGAN2Teacher on a tiny native Generator and through a rosinality .pt written here; missing-file error."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from albedogan.assets.convert import stylegan2_rosinality as ros
from albedogan.assets.locate import MissingAssetError
from albedogan.nets import stylegan2 as sg
from albedogan.teachers.stylegan2 import StyleGAN2Teacher

ROOT = Path(__file__).resolve().parents[2]
TINY = dict(z_dim=16, w_dim=16, img_resolution=16, channel_base=256, channel_max=32)


@pytest.fixture(scope="module")
def generator() -> sg.Generator:
    torch.manual_seed(0)
    G = sg.Generator(**TINY)
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("bias") or name.endswith("noise_strength"):
                p.add_(torch.randn_like(p) * 0.1)
        G.mapping.w_avg.copy_(torch.randn(16))
    return G.eval().requires_grad_(False)


def _z(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 16, generator=torch.Generator().manual_seed(seed))


def test_mapping_truncates_toward_w_avg(generator) -> None:
    t = StyleGAN2Teacher(generator, truncation_psi=0.5, head=object())
    z = _z(3)
    w = generator.mapping(z, truncation_psi=1.0, update_w_avg=False)
    w_avg = generator.mapping.w_avg
    torch.testing.assert_close(t.mapping(z), w_avg + 0.5 * (w - w_avg))
    torch.testing.assert_close(t.mapping(z, psi=0.0), w_avg.expand(3, t.num_ws, 16))
    assert t.num_ws == generator.num_ws and t.z_dim == 16 and t.image_size == 16


def test_images_are_the_generator_output_in_unit_range(generator) -> None:
    t = StyleGAN2Teacher(generator, truncation_psi=0.7)
    z = _z(2, seed=1)
    s = t.sample(z)
    ws = generator.mapping(z, truncation_psi=0.7, update_w_avg=False)
    raw = generator.synthesis(ws, noise_mode="const")
    torch.testing.assert_close(s.image, ((raw + 1) / 2).clamp(0, 1))
    assert s.image.min() >= 0 and s.image.max() <= 1 and s.truth is None and torch.equal(s.z, z)
    assert torch.equal(t.sample(z).image, s.image)  # const noise: deterministic
    small = StyleGAN2Teacher(generator, truncation_psi=0.7, image_size=8).sample(z)
    torch.testing.assert_close(small.image, F.avg_pool2d(s.image, 2), atol=1e-6, rtol=0)


def test_frozen_and_eval(generator) -> None:
    t = StyleGAN2Teacher(generator)
    t.train()
    assert not t.training and not any(m.training for m in t.modules())
    assert all(not p.requires_grad for p in t.parameters())
    assert not t.sample(_z(1)).image.requires_grad


def test_from_rosinality_file_matches_in_memory(tmp_path, generator) -> None:
    state, latent_avg = ros.generator_to_rosinality(generator)
    path = tmp_path / "stylegan2-tiny.pt"
    torch.save({"g_ema": state, "latent_avg": latent_avg}, path)
    loaded = StyleGAN2Teacher.from_file(path, truncation_psi=0.5, image_size=8, head=None)
    ref = StyleGAN2Teacher(generator, truncation_psi=0.5, image_size=8)
    z = _z(2, seed=2)
    torch.testing.assert_close(loaded.sample(z).image, ref.sample(z).image, atol=1e-5, rtol=0)

    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(ROOT / "conf/teacher/stylegan2.yaml")
    cfg = OmegaConf.merge(cfg, {"checkpoint_path": str(path), "image_size": 8})
    t = instantiate(cfg, head=object())
    assert isinstance(t, StyleGAN2Teacher) and t.truncation_psi == 0.5 and t.image_size == 8


def test_missing_checkpoint_names_the_key_and_source(tmp_path) -> None:
    with pytest.raises(MissingAssetError) as err:
        StyleGAN2Teacher.from_file(tmp_path / "nope.pt")
    msg = str(err.value)
    assert "nope.pt" in msg and "teacher.checkpoint_path" in msg and "stylegan2" in msg.lower()
    assert "ffhq" in msg.lower()


def test_full_resolution_image_for_targets(generator) -> None:
    z = _z(2, seed=3)
    full = StyleGAN2Teacher(generator, truncation_psi=0.7).sample(z)
    assert full.image_full is None and full.target_image is full.image  # image_size = resolution: nothing extra
    s = StyleGAN2Teacher(generator, truncation_psi=0.7, image_size=8).sample(z)
    assert s.image.shape[-1] == 8 and s.image_full.shape[-1] == 16
    torch.testing.assert_close(s.image_full, full.image)
    assert s.target_image is s.image_full and s.to("cpu").image_full.shape == s.image_full.shape
    mid = StyleGAN2Teacher(generator, truncation_psi=0.7, image_size=4, target_image_size=8).sample(z)
    torch.testing.assert_close(mid.image_full, F.avg_pool2d(full.image, 2), atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="target_image_size"):
        StyleGAN2Teacher(generator, target_image_size=0)
