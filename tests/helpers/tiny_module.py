"""The tiny AlbedoGAN module of the unit tests: YAML defaults from ``conf/model/tiny.yaml`` (the only home of the
hyper-parameters) and a builder with a 16² G_A / D and the embedded estimator.

Import both fixtures into a test module that calls :func:`tiny_module` (``_tiny_defaults`` is autouse there)::

    from tests.helpers.tiny_module import _tiny_defaults, tiny_model_cfg, tiny_module  # noqa: F401 (YAML defaults)
"""

from __future__ import annotations

import functools

import pytest
import torch

from albedogan.models.albedogan_module import AlbedoGANModule
from albedogan.models.estimator import build_embedded_estimator
from albedogan.models.phases import PhaseSchedule
from albedogan.models.targets import AlbedoTargetBuilder
from albedogan.nets.albedo_generator import AlbedoGenerator
from albedogan.nets.stylegan2 import Discriminator

__all__ = ["TINY", "tiny_model_cfg", "tiny_module"]


@pytest.fixture(scope="module")
def tiny_model_cfg(project_root):
    """``conf/model/tiny.yaml`` composed (the only home of the hyper-parameter defaults)."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(project_root / "conf"), version_base="1.3"):
        return compose(config_name="train", overrides=["model=tiny"]).model


TINY: dict = {}


@pytest.fixture(scope="module", autouse=True)
def _tiny_defaults(tiny_model_cfg):
    from hydra.utils import instantiate

    m = tiny_model_cfg
    TINY.update(
        lr_g=m.lr_g, lr_d=m.lr_d, lr_shape=m.lr_shape, betas=tuple(m.betas),
        albedo_weights=instantiate(m.albedo_weights), shape_weights=instantiate(m.shape_weights),
        shape_albedo=m.shape_albedo, landmark_source=m.landmark_source, grad_clip_norm=m.grad_clip_norm,
        truncation_psi=m.truncation_psi, detector_kind=m.detector_kind, seed=0, compile=m.compile,
        compile_backend=m.compile_backend, channels_last=m.channels_last, micro_batch=m.micro_batch,
    )


def tiny_module(head, teacher, cycle=(("albedo", 1), ("shape", 1)), **kwargs) -> AlbedoGANModule:
    torch.manual_seed(0)
    est = build_embedded_estimator(n_shape=20, n_exp=10, input_size=32, channels=(8, 16), hidden_dim=32,
                                   shape_network=False, trainable=["encoder"])
    args = dict(
        teacher=teacher, head=head, estimator=est,
        target_builder=AlbedoTargetBuilder(head, uv_resolution=16),
        albedo_generator=AlbedoGenerator(w_dim=16, uv_resolution=16, channel_base=256, channel_max=16),
        discriminator=Discriminator(img_resolution=16, channel_base=256, channel_max=16),
        schedule=PhaseSchedule(cycle),
        optimizer_gan=torch.optim.Adam, optimizer_shape=functools.partial(torch.optim.Adam),
        r1_interval=2, pl_interval=2, ema_half_life_images=8, **TINY,
    )
    args.update(kwargs)
    return AlbedoGANModule(**args)
