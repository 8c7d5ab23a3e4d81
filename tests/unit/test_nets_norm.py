"""Frozen-BatchNorm rule: fine-tuned pretrained networks (ArcFace / MICA, SFace, DECA's encoder) keep their
normalisation statistics; phase B runs at batch 1 and leaves every running statistic untouched."""

from __future__ import annotations


import pytorch_lightning as pl
import pytest
import torch
from torch import nn

from albedogan.datamodules.latent_stream import LatentDataModule
from albedogan.flame.head import HeadModel
from albedogan.models.estimator import NetworkEstimator, ShapeNetwork
from albedogan.nets.arcface import iresnet50
from albedogan.nets.encoder import CompactEncoder
from albedogan.nets.identity import IdentityEmbedder
from albedogan.nets.mica import MappingNetwork
from albedogan.nets.norm import freeze_norm_stats, norm_layers_with_stats
from albedogan.teachers.procedural import ProceduralTeacher
from tests.helpers.tiny_module import _tiny_defaults, tiny_model_cfg, tiny_module  # noqa: F401 (YAML defaults)


def _stats(m: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in m.state_dict().items() if k.endswith(("running_mean", "running_var"))}


def test_freeze_norm_stats_keeps_statistics_and_trains_affine():
    net = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.GroupNorm(2, 8), nn.InstanceNorm1d(8))
    with torch.no_grad():
        net[1].running_mean.normal_()
        net[1].running_var.uniform_(0.5, 2.0)
    before = _stats(net)
    net.train()
    freeze_norm_stats(net)
    assert net.training and net[0].training and net[2].training and not net[1].training
    assert norm_layers_with_stats(net) == [net[1]]  # InstanceNorm1d tracks no statistics by default
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, 4, generator=gen)  # batch 1: a train-mode BatchNorm1d would raise
    # a weighted sum: a plain sum of a normalised output has an exactly zero gradient (only rounding noise)
    (net(x) * torch.randn(1, 8, generator=gen)).sum().backward()
    assert net[1].weight.grad is not None and net[1].weight.grad.abs().sum() > 0
    for k, v in _stats(net).items():
        assert torch.equal(v, before[k]), k
    # eval-mode BatchNorm = the stored statistics
    expect = (net[0](x) - net[1].running_mean) / torch.sqrt(net[1].running_var + net[1].eps)
    torch.testing.assert_close(net[1](net[0](x)), expect * net[1].weight + net[1].bias)


def test_identity_embedder_fine_tuned_keeps_bn_stats():
    emb = IdentityEmbedder(iresnet50(freeze_lower=True), "arcface", frozen=False)
    emb.train()
    assert emb.training and emb.net.layer4.training
    assert not any(m.training for m in norm_layers_with_stats(emb))
    emb.eval()
    assert not emb.net.layer4.training


@pytest.fixture(scope="module")
def head(synthetic_data_dir) -> HeadModel:
    return HeadModel.synthetic(synthetic_data_dir, n_shape=20, n_exp=10)


def _arcface_estimator() -> NetworkEstimator:
    """MICA's layout (ArcFace with conv1..layer3 frozen -> mapping) + a small encoder, every part trainable."""
    torch.manual_seed(0)
    arc = iresnet50(freeze_lower=True)
    with torch.no_grad():  # finite activations through 50 layers, and non-trivial statistics as in pretrained nets
        for m in arc.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_in")
                m.weight.mul_(0.5)
        for m in norm_layers_with_stats(arc):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    shape_net = ShapeNetwork(IdentityEmbedder(arc, "arcface", frozen=False), MappingNetwork(512, 16, 20, 1))
    return NetworkEstimator(CompactEncoder(32, channels=(8, 16), hidden_dim=16), shape_net, n_shape=20, n_exp=10,
                            trainable=["shape_mapping", "identity_upper", "encoder"])


def test_phase_b_at_batch_1_trains_and_keeps_running_stats(head, tmp_path):
    """Phase B with ArcFace's BatchNorm1d (``features``) and layer4 BatchNorms trainable: batch 1 runs (train-mode
    BatchNorm1d raised "Expected more than 1 value per channel"), parameters move, running statistics do not."""
    teacher = ProceduralTeacher(head, image_size=32, uv_resolution=32, z_dim=16, w_dim=16, num_ws=8,
                                calibration_samples=64)
    est = _arcface_estimator()
    model = tiny_module(head, teacher, cycle=[("shape", 1)], estimator=est)
    stats0 = _stats(est)
    upper0 = {k: v.detach().clone() for k, v in est.shape_net.identity.net.layer4.named_parameters()}
    trainer = pl.Trainer(max_steps=3, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                         default_root_dir=tmp_path)
    trainer.fit(model, datamodule=LatentDataModule(batch_size=1, z_dim=16))
    assert trainer.global_step == 3
    assert len(stats0) > 100
    for k, v in _stats(est).items():
        assert torch.equal(v, stats0[k]), f"{k} changed"
    layer4 = dict(est.shape_net.identity.net.layer4.named_parameters())
    assert any(not torch.equal(layer4[k], v) for k, v in upper0.items())  # the upper layers did train
