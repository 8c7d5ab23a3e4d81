"""AlbedoGANModule on a tiny embedded world: what each phase trains, lazy-ratio optimisers, EMA, NaN naming,
checkpoint contents, constructor validation; and the ground-truth metrics of ``eval.synthetic_gt``."""

from __future__ import annotations

import dataclasses

import pytest
import pytorch_lightning as pl
import torch

from albedogan.datamodules.latent_stream import LatentDataModule
from albedogan.eval.synthetic_gt import albedo_error, landmark_error, neutral_shape_error
from albedogan.flame.head import HeadModel
from albedogan.losses import albedogan as phase_losses
from albedogan.losses.albedogan import AlbedoLossWeights, ShapeLossWeights
from albedogan.models.albedogan_module import REBUILT_PREFIXES, AlbedoGANModule, NonFiniteLossError
from albedogan.nets.stylegan2 import Discriminator
from albedogan.structures import FlameParams
from albedogan.teachers.procedural import ProceduralTeacher
from tests.helpers.tiny_module import TINY, _tiny_defaults, tiny_model_cfg, tiny_module  # noqa: F401


@pytest.fixture(scope="module")
def head(synthetic_data_dir) -> HeadModel:
    return HeadModel.synthetic(synthetic_data_dir, n_shape=20, n_exp=10)


@pytest.fixture(scope="module")
def teacher(head) -> ProceduralTeacher:
    return ProceduralTeacher(head, image_size=32, uv_resolution=32, z_dim=16, w_dim=16, num_ws=8,
                             calibration_samples=64)


def _weights(record, **changes):
    return dataclasses.replace(record, **changes)


def _fit(model: AlbedoGANModule, steps: int, tmp_path, batch_size: int = 2) -> pl.Trainer:
    trainer = pl.Trainer(max_steps=steps, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                         default_root_dir=tmp_path)
    trainer.fit(model, datamodule=LatentDataModule(batch_size=batch_size, z_dim=16))
    return trainer


def _snapshot(m: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in m.named_parameters()}


def _changed(before: dict[str, torch.Tensor], m: torch.nn.Module) -> bool:
    return any(not torch.equal(before[k], v) for k, v in m.named_parameters())


def test_optimisers_use_lazy_ratio(head, teacher):
    model = tiny_module(head, teacher, lr_g=1e-3, lr_d=2e-3, betas=(0.5, 0.99), r1_interval=16, pl_interval=4)
    opt_g, opt_d, opt_s = model.configure_optimizers()
    assert opt_g.param_groups[0]["lr"] == pytest.approx(1e-3 * 4 / 5)
    assert opt_g.param_groups[0]["betas"] == pytest.approx((0.5 ** 0.8, 0.99 ** 0.8))
    assert opt_d.param_groups[0]["lr"] == pytest.approx(2e-3 * 16 / 17)
    assert opt_d.param_groups[0]["betas"][1] == pytest.approx(0.99 ** (16 / 17))
    est_params = {id(p) for p in model.estimator.parameters() if p.requires_grad}
    assert {id(p) for g in opt_s.param_groups for p in g["params"]} == est_params


def test_albedo_step_trains_g_and_d_only(head, teacher, tmp_path):
    model = tiny_module(head, teacher, cycle=(("albedo", 1),))
    g0, d0, e0 = _snapshot(model.G), _snapshot(model.D), _snapshot(model.estimator)
    ema0 = {k: v.clone() for k, v in model.G_ema.module.state_dict().items()}
    trainer = _fit(model, 1, tmp_path)
    assert trainer.global_step == 1  # one counted step per batch
    assert _changed(g0, model.G) and _changed(d0, model.D)
    assert not _changed(e0, model.estimator)
    # EMA moved toward the live weights by exactly (1 - beta)
    beta = 0.5 ** (2 / 8)
    name = next(k for k, _ in model.G.named_parameters())
    torch.testing.assert_close(
        model.G_ema.module.state_dict()[name], beta * ema0[name] + (1 - beta) * dict(model.G.named_parameters())[name]
    )


def test_shape_step_trains_estimator_only(head, teacher, tmp_path):
    model = tiny_module(head, teacher, cycle=(("shape", 1),))
    g0, d0, e0 = _snapshot(model.G), _snapshot(model.D), _snapshot(model.estimator)
    trainer = _fit(model, 2, tmp_path)
    assert trainer.global_step == 2
    assert _changed(e0, model.estimator)
    assert not _changed(g0, model.G) and not _changed(d0, model.D)


def test_nan_loss_names_the_term(head, teacher, tmp_path, monkeypatch):
    model = tiny_module(head, teacher, cycle=(("albedo", 1),))
    monkeypatch.setattr(phase_losses, "masked_l1", lambda *a, **k: torch.tensor(float("nan")))
    with pytest.raises(NonFiniteLossError, match=r"'albedo/photometric'.*step 0"):
        _fit(model, 1, tmp_path)


def test_checkpoint_leaves_out_rebuilt_parts(head, teacher):
    model = tiny_module(head, teacher)
    ckpt = {"state_dict": model.state_dict()}
    assert any(k.startswith("teacher.") for k in ckpt["state_dict"])
    model.on_save_checkpoint(ckpt)
    keys = ckpt["state_dict"].keys()
    assert not any(k.startswith(REBUILT_PREFIXES) for k in keys)
    assert any(k.startswith("G.") for k in keys) and any(k.startswith("G_ema.") for k in keys)
    assert any(k.startswith("estimator.") for k in keys) and any(k.startswith("D.") for k in keys)
    model.on_load_checkpoint(ckpt)
    model.load_state_dict(ckpt["state_dict"], strict=True)


def test_shape_phase_dropped_without_trainable_estimator(head, teacher):
    from albedogan.models.estimator import GroundTruthEstimator

    model = tiny_module(head, teacher, estimator=GroundTruthEstimator(n_shape=20, n_exp=10))
    assert model.schedule.phases == {"albedo"}
    assert len(model.configure_optimizers()) == 2


def test_constructor_validation(head, teacher):
    with pytest.raises(ValueError, match="distill"):
        _weights(TINY["albedo_weights"], distill=-1.0)
    with pytest.raises(TypeError):  # no Python defaults: every weight comes from the YAML
        AlbedoLossWeights(gan=1.0)
    with pytest.raises(TypeError):
        ShapeLossWeights(photometric=1.0)
    with pytest.raises(ValueError, match="identity_embedder"):
        tiny_module(head, teacher, albedo_weights=_weights(TINY["albedo_weights"], identity=1.0))
    with pytest.raises(ValueError, match="shape_albedo"):
        tiny_module(head, teacher, shape_albedo="best")
    with pytest.raises(ValueError, match="micro_batch must be >= 1"):
        tiny_module(head, teacher, micro_batch=0)


def test_synthetic_gt_metrics(head):
    truth = torch.rand(2, 3, 32, 32)
    mask = torch.zeros(1, 1, 16, 16)
    mask[..., 4:8, 4:8] = 1
    pred = torch.nn.functional.interpolate(truth, size=(16, 16), mode="area")
    torch.testing.assert_close(albedo_error(pred, truth, mask), torch.zeros(2))
    torch.testing.assert_close(albedo_error(pred + 0.25, truth, mask), torch.full((2,), 0.25))
    # neutral shape error: same shapes -> 0 mm; shapes differing -> mean vertex distance computed independently
    s = torch.randn(2, 20)
    assert neutral_shape_error(head, s, s).abs().max() < 1e-6
    s2 = s.clone()
    s2[:, 0] += 1.0
    z = head.zero_params(2)
    v1 = head(FlameParams(s, z.expression, z.global_pose, z.neck_pose, z.jaw_pose, z.eye_pose)).vertices
    v2 = head(FlameParams(s2, z.expression, z.global_pose, z.neck_pose, z.jaw_pose, z.eye_pose)).vertices
    expected = (v1 - v2).norm(dim=-1).mean(-1) * 1000
    torch.testing.assert_close(neutral_shape_error(head, s, s2), expected)
    assert (expected > 0).all()
    lm = torch.zeros(1, 4, 2)
    torch.testing.assert_close(landmark_error(lm + torch.tensor([0.5, 0.0]), lm, 64), torch.tensor([16.0]))


def _debug_cfg_with_stylegan2_teacher(project_root, synthetic_data_dir, tmp_path):
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=str(project_root / "conf"), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[
            "experiment=debug", f"paths.root_dir={project_root}", f"paths.data_dir={synthetic_data_dir}",
            f"paths.output_dir={tmp_path}"])
    cfg.teacher = OmegaConf.create({
        "_target_": "albedogan.teachers.stylegan2.StyleGAN2Teacher", "truncation_psi": 1.0, "image_size": 32,
        "generator": {"_target_": "albedogan.nets.stylegan2.Generator", "z_dim": 16, "w_dim": 16,
                      "img_resolution": 32, "channel_base": 256, "channel_max": 16}})
    return cfg


def test_builder_initialises_albedo_generator_from_stylegan2_teacher(project_root, synthetic_data_dir, tmp_path):
    """albedo_init=teacher copies the StyleGAN2 teacher's synthesis blocks b4..b{R} into G_A (and its EMA)."""
    from albedogan.models.builder import build_training

    cfg = _debug_cfg_with_stylegan2_teacher(project_root, synthetic_data_dir, tmp_path)
    model, data = build_training(cfg)
    assert data.z_dim == 16 and model.G.uv_resolution == 16
    teacher_synth = model.teacher.generator.synthesis.state_dict()
    own = model.G.synthesis.state_dict()
    shared = [k for k in own if k.split(".")[0] in ("b4", "b8", "b16")]
    assert shared and all(torch.equal(own[k], teacher_synth[k]) for k in shared)
    ema = model.G_ema.module.synthesis.state_dict()
    assert all(torch.equal(ema[k], own[k]) for k in own)


def test_make_grid_layout():
    from albedogan.callbacks.image_grid import make_grid

    a = torch.zeros(2, 3, 4, 4)
    b = torch.ones(2, 3, 8, 8)
    grid = make_grid([a, b])
    assert grid.shape == (16, 16, 3) and grid.dtype.name == "uint8"
    assert (grid[:, :8] == 0).all() and (grid[:, 8:] == 255).all()
    with pytest.raises(ValueError, match="every column"):
        make_grid([a, torch.zeros(3, 3, 4, 4)])


# ---------------------------------------------------------------------------------------------- issue 10 defects
def test_lazy_regularisation_counts_albedo_phase_steps_over_tiny_schedule(tiny_model_cfg, head, teacher):
    """Defect 1: model=tiny alternates albedo 2 / shape 2 after 2 warm-up steps, so every multiple of 16 (or 4) of
    the *global* step is a shape step. Over 2000 steps R1 (every 16) must run ~1/16 and path length (every 4) ~1/4
    of the albedo steps — counted in albedo-phase steps (before: 1 and 1)."""
    from hydra.utils import instantiate

    schedule = instantiate(tiny_model_cfg.schedule)
    r1_k, pl_k = int(tiny_model_cfg.r1_interval), int(tiny_model_cfg.pl_interval)
    assert (r1_k, pl_k) == (16, 4)
    model = tiny_module(head, teacher, schedule=schedule, r1_interval=r1_k, pl_interval=pl_k,
                    albedo_weights=instantiate(tiny_model_cfg.albedo_weights))
    albedo_steps = [s for s in range(2000) if schedule.phase_at(s) == "albedo"]
    due = [model.regularisation_due(s) for s in albedo_steps]
    assert len(albedo_steps) == 1002
    assert sum(r1 for r1, _ in due) == 63  # ceil(1002 / 16)
    assert sum(pl for _, pl in due) == 251  # ceil(1002 / 4)
    assert model.regularisation_due(albedo_steps[16]) == (True, True)  # the 17th albedo step (global step 32 + 2)


def test_lazy_regularisation_runs_on_albedo_phase_steps_in_training(head, teacher, tmp_path, monkeypatch):
    """Defect 1 in a real fit: (albedo 1, shape 1), r1/pl every 2 -> albedo at global steps 0, 2 = albedo-phase
    steps 0, 1: R1 and path length each run once (before: at every even global step = every albedo step, twice)."""
    calls = {"r1": 0, "pl": 0}
    r1 = phase_losses.r1_penalty

    def counting_r1(*args, **kwargs):
        calls["r1"] += 1
        return r1(*args, **kwargs)

    monkeypatch.setattr(phase_losses, "r1_penalty", counting_r1)
    model = tiny_module(head, teacher, r1_interval=2, pl_interval=2)
    pl_forward = model.path_length.forward

    def counting_pl(*args, **kwargs):
        calls["pl"] += 1
        return pl_forward(*args, **kwargs)

    monkeypatch.setattr(model.path_length, "forward", counting_pl)
    _fit(model, 4, tmp_path)
    assert calls == {"r1": 1, "pl": 1}


def _recording(module: torch.nn.Module) -> list[torch.Tensor]:
    seen: list[torch.Tensor] = []
    module.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach().clone()))
    return seen


def test_discriminator_and_generator_see_the_same_fake(head, teacher, tmp_path):
    """Defect 2: the D step and G's adversarial term feed D the same fake — G_A's raw synthesis output, unclamped
    (StyleGAN2). G_A is biased out of [0, 1] so a clamp in either place would show."""
    model = tiny_module(head, teacher, cycle=(("albedo", 1),), r1_interval=1000, pl_interval=1000)
    with torch.no_grad():
        last_rgb = [m for n, m in model.G.synthesis.named_modules() if n.endswith("torgb")][-1]
        last_rgb.bias.fill_(3.0)  # raw (x + 1) / 2 well above 1
    seen = _recording(model.D)
    _fit(model, 1, tmp_path)
    real, d_fake, g_fake = seen  # D step: real, fake; G step: fake
    assert d_fake.max() > 1.5  # unclamped: a clamp would cap the D input at 1
    torch.testing.assert_close(d_fake, g_fake, rtol=0, atol=0)


def test_path_length_is_measured_as_stylegan2(head, teacher, tmp_path, monkeypatch):
    """Defect 9: the path-length penalty sees G_A's synthesis output x on the [-1, 1] scale (not (x + 1) / 2, which
    halves the Jacobian) generated from untruncated latents (psi = 1) of the batch's z, even when training samples
    are truncated."""
    import copy

    model = tiny_module(head, teacher, cycle=(("albedo", 1),), r1_interval=1000, pl_interval=1, truncation_psi=0.5)
    g_before = copy.deepcopy(model.G)
    mapped: list[tuple[torch.Tensor, float | None, torch.Tensor]] = []
    mapping = model.teacher.mapping

    def recording_mapping(z, psi=None):
        out = mapping(z, psi)
        mapped.append((z.detach().clone(), psi, out.detach().clone()))
        return out

    monkeypatch.setattr(model.teacher, "mapping", recording_mapping)
    captured: list[tuple[torch.Tensor, torch.Tensor]] = []
    pl_forward = model.path_length.forward

    def capturing(images, ws):
        captured.append((images.detach().clone(), ws.detach().clone()))
        return pl_forward(images, ws)

    monkeypatch.setattr(model.path_length, "forward", capturing)
    _fit(model, 1, tmp_path)
    ((images, ws),) = captured
    (z, psi_train, _), (z_pl, psi_pl, ws_pl) = mapped  # the training sample, then the path-length latents
    assert psi_train == 0.5 and psi_pl == 1.0 and torch.equal(z, z_pl)
    torch.testing.assert_close(ws, g_before.select_ws(ws_pl))
    with torch.no_grad():
        x = g_before.synthesis(g_before.select_ws(ws_pl), noise_mode="const", fused_modconv=False)
    torch.testing.assert_close(images, x)
    assert images.min() < 0  # the [-1, 1] scale


def test_generator_sizes_that_differ_from_the_teacher_are_an_error(project_root, synthetic_data_dir, tmp_path,
                                                                   monkeypatch):
    """Defect 5: albedo_init=teacher copies the teacher's synthesis network, so a configured G_A size that differs
    from the teacher's is an error raised before G_A or D is built (it used to be silently ignored for G_A while D
    kept it); null takes the teacher's value for G_A and D alike."""
    from albedogan.models import builder
    from albedogan.nets import stylegan2

    cfg = _debug_cfg_with_stylegan2_teacher(project_root, synthetic_data_dir, tmp_path)
    cfg.model.albedo_generator.channel_base = 512
    built: list[str] = []
    init = stylegan2.Discriminator.__init__

    def recording_init(self, *args, **kwargs):
        built.append("D")
        init(self, *args, **kwargs)

    monkeypatch.setattr(stylegan2.Discriminator, "__init__", recording_init)
    with pytest.raises(ValueError, match=r"model\.albedo_generator\.channel_base=512 \(teacher: 256\)"):
        builder.build_training(cfg)
    assert built == []
    cfg.model.albedo_generator.channel_base = None
    cfg.model.albedo_generator.channel_max = None
    model, _ = builder.build_training(cfg)
    assert (model.G.init_kwargs["channel_base"], model.G.init_kwargs["channel_max"]) == (256, 16)
    reference = Discriminator(img_resolution=16, channel_base=256, channel_max=16)
    assert {k: v.shape for k, v in model.D.state_dict().items()} == {
        k: v.shape for k, v in reference.state_dict().items()}
    cfg.albedo_init = "random"  # no teacher to take null sizes from
    with pytest.raises(ValueError, match="channel_base is null"):
        builder.build_training(cfg)


def test_one_home_for_defaults(project_root, head, teacher):
    """Defect 6: the loss-weight records and the module's hyper-parameters have no Python defaults (the YAML is the
    only home; the old LossWeights disagreed with it on five values), every record field is in the YAML, and the
    .ckpt prefixes inference reads are exactly the training module's attribute names."""
    import inspect

    from omegaconf import OmegaConf

    from albedogan.models.weights_file import CKPT_PREFIXES

    for record in (AlbedoLossWeights, ShapeLossWeights):
        assert all(f.default is dataclasses.MISSING for f in dataclasses.fields(record)), record
    yaml = OmegaConf.load(project_root / "conf" / "model" / "albedogan.yaml")
    assert set(yaml.albedo_weights) - {"_target_"} == {f.name for f in dataclasses.fields(AlbedoLossWeights)}
    assert set(yaml.shape_weights) - {"_target_"} == {f.name for f in dataclasses.fields(ShapeLossWeights)}
    params = inspect.signature(AlbedoGANModule.__init__).parameters
    objects = {"self", "identity_embedder", "perceptual", "landmark_detector"}  # built objects, default None
    defaulted = {k for k, p in params.items() if p.default is not inspect.Parameter.empty} - objects
    assert defaulted == set(), defaulted
    plain = {k for k in params if k not in objects | {"teacher", "head", "estimator", "albedo_generator"}}
    assert plain <= set(yaml.keys()) | {"seed"}, plain - set(yaml.keys())
    infer = OmegaConf.load(project_root / "conf" / "infer.yaml")
    assert "checkpoint_prefixes" not in infer and "albedo_generator" not in infer
    model = tiny_module(head, teacher)
    for part, prefix in CKPT_PREFIXES.items():
        own = getattr(model, "G_ema").module if part == "albedo_generator" else model.estimator
        keys = {k[len(prefix):] for k in model.state_dict() if k.startswith(prefix)}
        assert keys == set(own.state_dict()), part


def test_compiled_training_matches_eager_and_checkpoints_keep_their_keys(head, teacher, tmp_path):
    """model.compile: two steps (albedo with lazy R1 + path length through the eager modules, then shape) of a
    compiled module (aot_eager backend: dynamo + AOTAutograd, no code generation) give the eager parameters to
    <= 1e-5, and its state dict (what a checkpoint holds) has the eager keys, so either loads the other strictly."""
    from albedogan.utils.compile import is_compiled

    cycle = (("albedo", 1), ("shape", 1))
    ref = tiny_module(head, teacher, cycle=cycle)
    _fit(ref, 2, tmp_path / "eager")
    model = tiny_module(head, teacher, cycle=cycle, compile=True, compile_backend="aot_eager")
    assert model.compiled and is_compiled(model.G) and is_compiled(model.D) and is_compiled(model.renderer.shader)
    _fit(model, 2, tmp_path / "compiled")
    assert is_compiled(model.G) and is_compiled(model.D), "a compiled module fell back to eager"
    a, b = ref.state_dict(), model.state_dict()
    assert list(a) == list(b) and not any("_orig_mod" in k for k in b)
    for k in a:
        if a[k].is_floating_point():
            torch.testing.assert_close(b[k], a[k], atol=1e-5, rtol=1e-5, msg=lambda m, k=k: f"{k}: {m}")
    assert any(not torch.equal(a[k], v) for k, v in tiny_module(head, teacher, cycle=cycle).state_dict().items()
               if v.is_floating_point())  # it did train
    tiny_module(head, teacher, cycle=cycle).load_state_dict(b, strict=True)


def _step_gradients(model: AlbedoGANModule, steps: int, batch_size: int, tmp_path) -> list[list[torch.Tensor]]:
    """The gradients every optimiser step of ``steps`` training steps applies (one list per step)."""
    from torch.optim.optimizer import register_optimizer_step_pre_hook

    seen: list[list[torch.Tensor]] = []

    def record(optimizer, args, kwargs):
        seen.append([p.grad.detach().clone() for g in optimizer.param_groups for p in g["params"]
                     if p.grad is not None])

    handle = register_optimizer_step_pre_hook(record)
    try:
        _fit(model, steps, tmp_path, batch_size)
    finally:
        handle.remove()
    return seen


@pytest.mark.parametrize("micro_batch", [1, 3])
def test_micro_batches_accumulate_the_whole_batch_gradient(head, teacher, tmp_path, micro_batch):
    """model.micro_batch: a batch of 4 run in micro-batches of 1 (or 3 + 1) gives every optimiser step (D with lazy
    R1, G with the render terms, then the shape step) the whole-batch gradient to <= 1e-5. D's minibatch-std groups
    are per micro-batch, as in NVIDIA's batch_gpu, so this D uses groups of 1 in both runs; the path-length running
    mean is per micro-batch (its weight is 0 here, and the next test runs it)."""
    weights = _weights(TINY["albedo_weights"], path_length=0.0)
    cycle = (("albedo", 1), ("shape", 1))

    def build(**kwargs):
        torch.manual_seed(1)  # the same D in both runs (tiny_module seeds the rest)
        return tiny_module(head, teacher, cycle=cycle, r1_interval=1, albedo_weights=weights,
                           discriminator=Discriminator(img_resolution=16, channel_base=256, channel_max=16,
                                                       mbstd_group_size=1), **kwargs)

    whole = _step_gradients(build(), 2, 4, tmp_path / "whole")
    split = _step_gradients(build(micro_batch=micro_batch), 2, 4, tmp_path / "split")
    assert len(whole) == len(split) == 3  # D, G, shape
    for step, (a, b) in enumerate(zip(whole, split)):
        assert len(a) == len(b) and any(g.abs().max() > 0 for g in a)
        for ga, gb in zip(a, b):
            torch.testing.assert_close(gb, ga, atol=1e-5, rtol=1e-4, msg=lambda m, s=step: f"optimiser step {s}: {m}")


def test_micro_batches_run_path_length_and_log_the_batch_terms(head, teacher, tmp_path):
    """With lazy R1 and path length due, micro-batches of 1 train both phases, update the path-length running mean
    once per micro-batch, and log finite batch terms."""
    model = tiny_module(head, teacher, cycle=(("albedo", 1), ("shape", 1)), r1_interval=1, pl_interval=1,
                        micro_batch=1)
    assert model.micro_batches(3) == [slice(0, 1), slice(1, 2), slice(2, 3)]
    calls = []
    original = model.path_length.forward
    model.path_length.forward = lambda *a, **k: calls.append(a[0].shape[0]) or original(*a, **k)
    trainer = _fit(model, 2, tmp_path)
    assert calls == [1, 1]  # batch 2 in micro-batches of 1
    logged = trainer.callback_metrics
    assert {"train/albedo/r1", "train/albedo/path_length", "train/shape/photometric"} <= set(logged)
    assert all(torch.isfinite(logged[k]) for k in logged)


def test_loggers_get_only_the_terms_of_the_step_s_phase(head, teacher, tmp_path):
    """Lightning re-emits the last value of every logged name at each logging step; the module drops the previous
    steps' terms, so a shape-phase row of the CSV log carries no (stale) albedo terms and vice versa."""
    import csv

    from pytorch_lightning.loggers import CSVLogger

    model = tiny_module(head, teacher, cycle=(("albedo", 1), ("shape", 1)))
    trainer = pl.Trainer(max_steps=4, accelerator="cpu", devices=1, logger=CSVLogger(tmp_path, name="csv"),
                         log_every_n_steps=1, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, limit_val_batches=0, default_root_dir=tmp_path)
    trainer.fit(model, datamodule=LatentDataModule(batch_size=2, z_dim=16))
    rows = [r for r in csv.DictReader(open(next(tmp_path.rglob("metrics.csv")))) if r.get("train/phase")]
    assert [r["train/phase"] for r in rows] == ["0.0", "1.0", "0.0", "1.0"]
    for r in rows:
        phases = {k.split("/")[1] for k, v in r.items() if v and k.startswith(("train/albedo/", "train/shape/"))}
        assert phases == ({"albedo"} if r["train/phase"] == "0.0" else {"shape"}), r
