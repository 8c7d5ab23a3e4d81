"""1024² self-distillation targets come from the full-resolution teacher image: a target unwrapped from the
1024² image carries the image's fine detail; one unwrapped from its 224² version is ~4.6x blurrier (measured as
high-frequency energy); and the training module hands the target builder ``TeacherSample.target_image``."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from albedogan.flame.head import HeadModel
from albedogan.models.targets import AlbedoTargetBuilder
from albedogan.teachers.procedural import ProceduralTeacher
from tests.helpers.tiny_module import _tiny_defaults, tiny_model_cfg  # noqa: F401 (YAML defaults)


@pytest.fixture(scope="module")
def world(synthetic_data_dir):
    head = HeadModel.synthetic(synthetic_data_dir)
    teacher = ProceduralTeacher(head, image_size=32, uv_resolution=16, calibration_samples=8)
    torch.manual_seed(1)
    return head, teacher.sample(torch.randn(1, teacher.z_dim), 0.5).truth.estimate


def high_frequency_energy(texture: torch.Tensor, weight: torch.Tensor) -> float:
    """Weighted mean squared difference between a map and its 3x3 box blur (detail at the texel scale)."""
    blur = F.avg_pool2d(F.pad(texture, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    w = (weight > 0.99).to(texture.dtype)  # directly seen texels only
    w = w * (F.avg_pool2d(w, 3, stride=1, padding=1) > 0.999)  # away from the region border
    return float((((texture - blur) ** 2).mean(1, keepdim=True) * w).sum() / w.sum())


def test_target_effective_resolution_full_vs_224(world):
    head, est = world
    builder = AlbedoTargetBuilder(head, uv_resolution=1024, delight=False, mirror=False)
    torch.manual_seed(2)
    full = torch.rand(1, 3, 1024, 1024)  # detail at every pixel, as a StyleGAN2-FFHQ image has (pores, hair)
    small = F.interpolate(full, size=(224, 224), mode="area")  # the 224² loss image of the same face
    t_full, t_small = builder(full, est), builder(small, est)
    e_full = high_frequency_energy(t_full.texture, t_full.weight)
    e_small = high_frequency_energy(t_small.texture, t_small.weight)
    print(f"high-frequency energy of a 1024² target: from the 1024² image {e_full:.2e}, from 224² {e_small:.2e}")
    assert e_full > 8 * e_small


def test_module_unwraps_targets_from_the_full_image(synthetic_data_dir, tmp_path):
    import pytorch_lightning as pl

    from albedogan.datamodules.latent_stream import LatentDataModule
    from albedogan.nets import stylegan2 as sg
    from albedogan.teachers.stylegan2 import StyleGAN2Teacher
    from tests.helpers.tiny_module import tiny_module

    head = HeadModel.synthetic(synthetic_data_dir, n_shape=20, n_exp=10)
    torch.manual_seed(0)
    teacher = StyleGAN2Teacher(sg.Generator(z_dim=16, w_dim=16, img_resolution=32, channel_base=256,
                                            channel_max=16), image_size=16)
    seen: list[tuple[int, ...]] = []

    class Recording(AlbedoTargetBuilder):
        def forward(self, image, estimate, delight=None):
            seen.append(tuple(image.shape))
            return super().forward(image, estimate, delight)

    model = tiny_module(head, teacher, cycle=[("albedo", 1)], target_builder=Recording(head, uv_resolution=16))
    assert model.renderer.image_size == (16, 16) and model.renderer.texture_filter == "mip"
    pl.Trainer(max_steps=1, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
               enable_model_summary=False, limit_val_batches=0, default_root_dir=tmp_path).fit(
        model, datamodule=LatentDataModule(batch_size=2, z_dim=16))
    assert seen == [(2, 3, 32, 32)]  # the generator's full 32² image, not the 16² loss image
