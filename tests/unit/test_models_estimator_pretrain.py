"""EstimatorPretrainModule (the embedded world's DECA pre-training): calibration, what trains, that it learns,
constructor validation, and the estimator-only weights file it exports (round trip through ``weights_path``)."""

from __future__ import annotations

import functools

import pytest
import pytorch_lightning as pl
import torch

from albedogan.assets.locate import AssetFormatError
from albedogan.datamodules.latent_stream import LatentDataModule
from albedogan.flame.head import HeadModel
from albedogan.models.weights_file import export_inference_weights, load_estimator_weights
from albedogan.models.estimator import build_embedded_estimator
from albedogan.models.estimator_pretrain import PARTS, EstimatorPretrainModule
from albedogan.models.targets import AlbedoTargetBuilder
from albedogan.teachers.procedural import ProceduralTeacher
from tests.helpers.inference_world import TEACHER_KWARGS

ESTIMATOR_KWARGS = dict(n_shape=20, n_exp=10, input_size=32, channels=(8, 16), hidden_dim=32, pooling="flatten",
                        shape_network=False, trainable=["encoder"])


@pytest.fixture(scope="module")
def head(synthetic_data_dir) -> HeadModel:
    return HeadModel.synthetic(synthetic_data_dir, n_shape=20, n_exp=10)


@pytest.fixture(scope="module")
def teacher(head) -> ProceduralTeacher:
    return ProceduralTeacher(head, **TEACHER_KWARGS, n_shape_active=8, n_exp_active=4)


def _module(head, teacher, **kwargs) -> EstimatorPretrainModule:
    torch.manual_seed(0)
    args = dict(teacher=teacher, head=head, estimator=build_embedded_estimator(**ESTIMATOR_KWARGS),
                target_builder=AlbedoTargetBuilder(head, uv_resolution=16), optimizer=functools.partial(torch.optim.Adam),
                lr=3e-3, part_weights={"pose": 1, "cam": 1, "light": 1, "expression": 1, "landmark": 10},
                calibration_samples=64, uv_resolution=16, lr_schedule="constant")
    args.update(kwargs)
    return EstimatorPretrainModule(**args)


def test_calibration_keeps_only_varying_dimensions(head, teacher):
    model = _module(head, teacher)
    assert model.varies_shape.sum() == 8 and not model.varies_shape[8:].any()  # n_shape_active
    assert model.varies_expression.sum() == 4
    assert model.varies_pose.tolist() == [True, True, True, True, False, False]  # jaw opens about x only
    assert model.varies_cam.all() and model.varies_light.sum() > 9
    assert (model.std_cam > 0).all()


def test_untrained_errors_are_about_one_std(head, teacher):
    model = _module(head, teacher)
    sample = teacher.sample(torch.randn(64, 16, generator=torch.Generator().manual_seed(1)))
    with torch.no_grad():
        errors = model.part_errors(model.estimator(sample.image), sample.truth.estimate)
    assert set(errors) == set(PARTS)
    for part in ("pose", "expression", "shape"):  # the untrained estimator predicts 0 = about the mean
        assert 0.5 < float(errors[part]) ** 0.5 < 1.6, (part, errors[part])


def test_learns_on_a_fixed_batch_and_never_trains_shape(head, teacher):
    model = _module(head, teacher)
    z = torch.randn(8, 16, generator=torch.Generator().manual_seed(2))
    sample = teacher.sample(z)
    opt = model.configure_optimizers()["optimizer"]
    shape_before = model.estimator(sample.image).params.shape.detach().clone()
    first = last = None
    for _ in range(60):
        est = model.estimator.train()(sample.image)
        errors = model.part_errors(est, sample.truth.estimate)
        loss = sum(errors[p] for p in ("pose", "cam", "light", "expression"))
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = float(loss) if first is None else first
        last = float(loss)
    assert last < 0.3 * first
    model.estimator.eval()
    assert torch.equal(model.estimator(sample.image).params.shape, shape_before)  # shape weight 0: mean face stays


def test_training_step_with_landmarks_leaves_shape_at_the_mean(head, teacher, tmp_path):
    model = _module(head, teacher)
    trainer = pl.Trainer(max_steps=4, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, limit_val_batches=1,
                         val_check_interval=4, default_root_dir=tmp_path)
    trainer.fit(model, datamodule=LatentDataModule(batch_size=4, z_dim=16, val_seeds=[5, 6, 7, 8]))
    logged = trainer.callback_metrics
    for key in ("train/landmark", "val/pose_error", "val/landmark_error_px", "val/shape_error_mm",
                "val/albedo_error_target"):
        assert key in logged and torch.isfinite(logged[key]), key
    images = teacher.sample(torch.randn(4, 16)).image
    assert torch.count_nonzero(model.estimator.eval()(images).params.shape) == 0


def test_cosine_schedule_reaches_the_final_fraction(head, teacher, tmp_path):
    model = _module(head, teacher, lr_schedule="cosine", lr_final_fraction=0.1)
    trainer = pl.Trainer(max_steps=6, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                         default_root_dir=tmp_path)
    trainer.fit(model, datamodule=LatentDataModule(batch_size=2, z_dim=16))
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(3e-3 * 0.1)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"part_weights": {"nose": 1.0}}, "unknown part"),
        ({"part_weights": {"pose": 0.0}}, "every part weight is 0"),
        ({"part_weights": {"pose": -1.0}}, ">= 0"),
        ({"lr_schedule": "step"}, "lr_schedule"),
        ({"calibration_samples": 1}, "calibration_samples"),
    ],
)
def test_constructor_rejects_bad_settings(head, teacher, kwargs, match):
    with pytest.raises(ValueError, match=match):
        _module(head, teacher, **kwargs)


def test_estimator_only_export_round_trips_through_weights_path(head, teacher, tmp_path):
    model = _module(head, teacher)
    with torch.no_grad():
        for p in model.estimator.parameters():
            p.add_(0.01 * torch.randn_like(p))
    path = export_inference_weights(model, tmp_path / "est.safetensors", metadata={"world": {"x": 1}})
    loaded = build_embedded_estimator(**ESTIMATOR_KWARGS, weights_path=path)
    images = teacher.sample(torch.randn(3, 16)).image
    a, b = model.estimator.eval()(images), loaded.eval()(images)
    assert torch.equal(a.cam, b.cam) and torch.equal(a.light, b.light)
    other = {**ESTIMATOR_KWARGS, "hidden_dim": 16}
    with pytest.raises(AssetFormatError, match="est.safetensors"):
        build_embedded_estimator(**other, weights_path=path)


def test_load_estimator_weights_needs_estimator_keys(tmp_path):
    from albedogan.assets.locate import MissingAssetError
    from albedogan.nets.albedo_generator import AlbedoGenerator

    g_only = export_inference_weights(AlbedoGenerator(w_dim=16, uv_resolution=16, channel_base=256, channel_max=16),
                                      tmp_path / "g.safetensors")
    with pytest.raises(AssetFormatError, match="holds no estimator"):
        load_estimator_weights(build_embedded_estimator(**ESTIMATOR_KWARGS), g_only)
    with pytest.raises(MissingAssetError, match="experiment=synthetic_estimator"):
        build_embedded_estimator(**ESTIMATOR_KWARGS, weights_path=tmp_path / "missing.safetensors")
