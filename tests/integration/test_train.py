"""``python train.py``: the debug experiment runs both phases end to end, resume from last.ckpt is exact, checkpoint
writes are atomic, experiment=ffhq without assets lists every missing file; slow: 2-process CPU DDP, multirun."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

pytestmark = pytest.mark.integration

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled", "HYDRA_FULL_ERROR": "1"}


def _compose(root: Path, overrides: list[str]):
    with initialize_config_dir(config_dir=str(root / "conf"), version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


def _debug_overrides(root: Path, out: Path, data_dir: Path, *extra: str) -> list[str]:
    return ["experiment=debug", f"paths.root_dir={root}", f"paths.data_dir={data_dir}", f"paths.output_dir={out}",
            "callbacks.rich_progress_bar=null", *extra]


def _metric_columns(run_dir: Path) -> set[str]:
    (metrics,) = run_dir.rglob("metrics.csv")
    with open(metrics) as f:
        return set(next(csv.reader(f)))


def _trained_state(ckpt: Path) -> dict[str, torch.Tensor]:
    state = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    return {k: v for k, v in state.items() if k.split(".")[0] in ("G", "D", "G_ema", "estimator", "path_length")}


def test_debug_cli_runs_both_phases(project_root, synthetic_data_dir, tmp_path):
    out = subprocess.run(
        [sys.executable, "train.py", "experiment=debug", f"paths.log_dir={tmp_path}",
         f"paths.data_dir={synthetic_data_dir}", "callbacks.rich_progress_bar=null"],
        cwd=project_root, capture_output=True, text=True, timeout=300, env=ENV,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    (run_dir,) = (tmp_path / "train" / "runs").iterdir()
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert (run_dir / "config.yaml").is_file()
    assert list((run_dir / "images").glob("grid_step*.png"))
    cols = _metric_columns(run_dir)
    for name in ("train/phase", "train/albedo/d_logistic", "train/albedo/r1", "train/albedo/distill",
                 "train/albedo/photometric", "train/albedo/path_length", "train/shape/photometric",
                 "train/shape/landmark", "val/albedo_error", "val/albedo_error_unwrapped", "val/albedo_error_target",
                 "val/shape_error_mm"):
        assert name in cols, name
    state = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert state["global_step"] == 6
    assert not any(k.startswith(("teacher.", "head.")) for k in state["state_dict"])


def test_resume_reproduces_uninterrupted_run(project_root, synthetic_data_dir, tmp_path):
    _check_resume_is_exact(project_root, synthetic_data_dir, tmp_path)


@pytest.mark.slow
def test_resume_of_a_compiled_run_is_exact(project_root, synthetic_data_dir, tmp_path):
    """model.compile=true (aot_eager backend): checkpoints keep the eager keys and a resumed compiled run equals the
    uninterrupted compiled run exactly."""
    _check_resume_is_exact(project_root, synthetic_data_dir, tmp_path, "model.compile=true",
                           "model.compile_backend=aot_eager")


def _check_resume_is_exact(project_root, synthetic_data_dir, tmp_path, *extra: str) -> None:
    from albedogan.entry import run_train

    # 4 steps = albedo (warm-up), albedo, albedo, shape; the second half holds both phases, lazy R1 and path length
    fast = ["trainer.max_steps=4", "trainer.limit_val_batches=0", "callbacks.image_grid=null",
            "callbacks.model_checkpoint.every_n_train_steps=2", *extra]
    straight = tmp_path / "straight"
    run_train(_compose(project_root, _debug_overrides(project_root, straight, synthetic_data_dir, *fast)))
    first = tmp_path / "first"
    run_train(_compose(project_root, _debug_overrides(project_root, first, synthetic_data_dir, *fast,
                                                      "trainer.max_steps=2")))
    half = first / "checkpoints" / "last.ckpt"
    assert torch.load(half, map_location="cpu", weights_only=True)["global_step"] == 2
    resumed = tmp_path / "resumed"
    run_train(_compose(project_root, _debug_overrides(project_root, resumed, synthetic_data_dir, *fast,
                                                      f"ckpt_path={half}")))
    a = _trained_state(straight / "checkpoints" / "last.ckpt")
    b = _trained_state(resumed / "checkpoints" / "last.ckpt")
    assert a.keys() == b.keys() and len(a) > 50
    h = _trained_state(half)
    assert any(not torch.equal(h[k], a[k]) for k in a)  # the second half did train
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs after resume"


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    """Lightning's checkpoint IO (what ModelCheckpoint uses) never leaves a half-written file behind."""
    from fsspec.implementations import local
    from pytorch_lightning.plugins.io import TorchCheckpointIO

    io = TorchCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"w": torch.arange(10.0)}, path)
    good = path.read_bytes()
    real_write = local.LocalFileOpener.write

    def broken_write(self, data):
        real_write(self, bytes(data)[: len(data) // 2])
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(local.LocalFileOpener, "write", broken_write)
    with pytest.raises(OSError, match="disk full"):
        io.save_checkpoint({"w": torch.arange(1000.0)}, path)
    monkeypatch.undo()
    assert path.read_bytes() == good  # the previous checkpoint is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]  # no partial temp file either
    torch.testing.assert_close(torch.load(path, weights_only=True)["w"], torch.arange(10.0))


def test_ffhq_without_assets_lists_every_missing_file(project_root, tmp_path):
    from albedogan.assets.locate import MissingAssetError
    from albedogan.models.builder import build_training

    assets = tmp_path / "assets"
    cfg = _compose(project_root, ["experiment=ffhq", f"paths.root_dir={project_root}", f"paths.assets_dir={assets}",
                                  f"paths.output_dir={tmp_path}"])
    with pytest.raises(MissingAssetError) as err:
        build_training(cfg)
    msg = str(err.value)
    for name in ("FLAME2020/generic_model.pkl", "landmark_embedding.npy", "head_template.obj", "uv_face_mask.png",
                 "uv_face_eye_mask.png", "stylegan2-ffhq-config-f.pt", "deca_model.tar", "mica.tar",
                 "arcface/backbone.pth"):
        assert str(assets / name) in msg, name
    assert "teacher.checkpoint_path" in msg and "estimator.deca_path" in msg


def test_ffhq_cli_fails_with_the_list(project_root, tmp_path):
    out = subprocess.run(
        [sys.executable, "train.py", "experiment=ffhq", f"paths.assets_dir={tmp_path}", f"paths.log_dir={tmp_path}"],
        cwd=project_root, capture_output=True, text=True, timeout=120, env=ENV,
    )
    assert out.returncode != 0
    assert "MissingAssetError" in out.stderr and "mica.tar" in out.stderr and "generic_model.pkl" in out.stderr


def test_config_yaml_written_by_global_rank_0_only(tmp_path, monkeypatch):
    """Every DDP process runs the entry point; only global rank 0 (launcher environment) writes config.yaml."""
    from omegaconf import OmegaConf
    from pytorch_lightning.utilities import rank_zero_only

    from albedogan.entry import _save_config

    cfg = OmegaConf.create({"seed": 3, "output_dir": "ignored"})
    monkeypatch.setattr(rank_zero_only, "rank", 1)
    _save_config(cfg, tmp_path / "r1")
    assert not (tmp_path / "r1" / "config.yaml").exists()
    monkeypatch.setattr(rank_zero_only, "rank", 0)
    _save_config(cfg, tmp_path / "r0")
    assert OmegaConf.load(tmp_path / "r0" / "config.yaml").seed == 3


@pytest.mark.slow
def test_ddp_two_cpu_processes(project_root, synthetic_data_dir, tmp_path):
    out = subprocess.run(
        [sys.executable, "train.py", "experiment=debug", "trainer=ddp_sim", "trainer.max_steps=3",
         f"paths.log_dir={tmp_path}", f"paths.data_dir={synthetic_data_dir}", "callbacks.rich_progress_bar=null"],
        cwd=project_root, capture_output=True, text=True, timeout=600, env=ENV,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    (run_dir,) = (tmp_path / "train" / "runs").iterdir()
    state = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert state["global_step"] == 3


@pytest.mark.slow
def test_torchrun_two_ranks_write_one_hydra_folder(project_root, synthetic_data_dir, tmp_path):
    """Under torchrun every rank runs train.py itself: only rank 0 writes ``.hydra/`` and the run's log; rank 1
    logs to ``train_rank1.log`` (albedogan.cli.launch.rank_overrides) and the run trains to its last step."""
    run_dir = tmp_path / "run"
    out = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29533", "train.py",
         "experiment=debug", "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2",
         "trainer.precision=32-true", "trainer.max_steps=2", f"paths.log_dir={tmp_path}",
         f"paths.data_dir={synthetic_data_dir}", "callbacks.rich_progress_bar=null", f"output_dir={run_dir}"],
        cwd=project_root, capture_output=True, text=True, timeout=600, env=ENV,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert sorted(p.name for p in (run_dir / ".hydra").iterdir()) == ["config.yaml", "hydra.yaml", "overrides.yaml"]
    overrides = (run_dir / ".hydra" / "overrides.yaml").read_text()
    assert "output_subdir" not in overrides  # rank 0's own command line
    assert (run_dir / "train.log").is_file() and (run_dir / "train_rank1.log").is_file()
    state = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert state["global_step"] == 2


def test_rank_overrides_for_external_launchers():
    from albedogan.cli.launch import launcher_rank, rank_overrides

    assert launcher_rank({"RANK": "3"}) == 3 and launcher_rank({"SLURM_PROCID": "1"}) == 1
    assert launcher_rank({}) == 0 and launcher_rank({"RANK": "x"}) == 0
    assert rank_overrides(["experiment=ffhq"], "train", 0) == []
    extra = rank_overrides(["experiment=ffhq"], "train", 2)
    assert extra[0] == "hydra.output_subdir=null" and extra[1].endswith("/train_rank2.log")
    assert rank_overrides(["hydra.output_subdir=.r1", "hydra.job_logging.handlers.file.filename=x.log"], "train",
                          1) == []


@pytest.mark.slow
def test_multirun_sweep_completes_both_jobs(project_root, synthetic_data_dir, tmp_path):
    out = subprocess.run(
        [sys.executable, "train.py", "-m", "experiment=debug", "model.lr_g=1e-3,2e-3", "trainer.max_steps=3",
         f"paths.log_dir={tmp_path}", f"paths.data_dir={synthetic_data_dir}", "callbacks.rich_progress_bar=null"],
        cwd=project_root, capture_output=True, text=True, timeout=600, env=ENV,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    (sweep,) = (tmp_path / "train" / "multiruns").iterdir()
    for job in ("0", "1"):
        assert (sweep / job / "checkpoints" / "last.ckpt").is_file(), job
    lrs = [torch.load(sweep / j / "checkpoints" / "last.ckpt", weights_only=True)["hyper_parameters"]["lr_g"]
           for j in ("0", "1")]
    assert lrs == [1e-3, 2e-3]


def test_learning_curves_script(tmp_path):
    """scripts/learning_curves.py turns a CSV log into PNG curves and first/last/min numbers."""
    import importlib.util

    import imageio.v3 as iio

    spec = importlib.util.spec_from_file_location("learning_curves", Path(__file__).parents[2] / "scripts" /
                                                  "learning_curves.py")
    lc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lc)
    run = tmp_path / "run" / "csv" / "version_0"
    run.mkdir(parents=True)
    lines = ["step,train/phase,val/albedo_error,val/albedo_error_live,val/albedo_error_unwrapped,val/shape_error_mm,"
             "val/landmark_error_px"]
    for s in range(0, 100, 10):
        lines.append(f"{s},{1.0 if s >= 50 else 0.0},,,,,")
        lines.append(f"{s},,{0.3 - s / 1000},{0.31 - s / 1000},0.12,{5 - s / 100},2.0")
    (run / "metrics.csv").write_text("\n".join(lines) + "\n")
    numbers = lc.main([str(tmp_path / "run")])
    assert numbers["albedo_error"]["first"] == (0, 0.3) and numbers["albedo_error"]["last"] == (90, pytest.approx(0.21))
    assert numbers["shape_error_mm"]["min"] == (90, pytest.approx(4.1))
    img = iio.imread(tmp_path / "run" / "curves" / "albedo.png")
    assert img.shape == (400, 640, 3) and img.min() < 100  # something was drawn
    assert (tmp_path / "run" / "curves" / "shape.png").is_file()
    pre = tmp_path / "pre" / "csv" / "version_0"
    pre.mkdir(parents=True)
    rows = ["step,val/pose_error,val/cam_error,val/light_error,val/expression_error,val/landmark_error_px,"
            "val/albedo_error_target"] + [f"{s},{1 - s / 200},0.9,0.8,0.7,{2 - s / 100},0.06" for s in range(0, 100, 10)]
    (pre / "metrics.csv").write_text("\n".join(rows) + "\n")
    numbers = lc.main([str(tmp_path / "pre")])
    assert numbers["pose"]["last"] == (90, pytest.approx(0.55))
    assert numbers["albedo_error_target x100"]["first"] == (0, pytest.approx(6.0))
    assert (tmp_path / "pre" / "curves" / "estimator.png").is_file()
    assert (tmp_path / "pre" / "curves" / "estimator_pixels.png").is_file()
    # a resumed run: version_1 continues version_0 (from an earlier checkpoint: its rows from step 60 win)
    resumed = tmp_path / "pre" / "csv" / "version_1"
    resumed.mkdir()
    rows = [rows[0]] + [f"{s},0.1,0.9,0.8,0.7,1.0,0.05" for s in range(60, 130, 10)]
    (resumed / "metrics.csv").write_text("\n".join(rows) + "\n")
    numbers = lc.main([str(tmp_path / "pre")])
    assert numbers["pose"]["first"] == (0, pytest.approx(1.0)) and numbers["pose"]["last"] == (120, pytest.approx(0.1))
    assert [s for s, _ in lc.series(lc.read_metrics(tmp_path / "pre"), "val/pose_error")] == list(range(0, 130, 10))


def test_wandb_offline_logs_grids_and_meshes(project_root, synthetic_data_dir, tmp_path):
    """logger=wandb with WANDB_MODE=offline: no account, no network; image grids and Object3D meshes are written."""
    env = {**ENV, "WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path), "WANDB_SILENT": "true",
           "WANDB_API_KEY": "", "WANDB_CONFIG_DIR": str(tmp_path / "wandb_config"), "WANDB_CACHE_DIR": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "train.py", "experiment=debug", "logger=wandb", f"paths.log_dir={tmp_path}",
         f"paths.data_dir={synthetic_data_dir}", "callbacks.rich_progress_bar=null"],
        cwd=project_root, capture_output=True, text=True, timeout=300, env=env,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    (run,) = (tmp_path / "train" / "runs").glob("*/wandb/offline-run-*")
    media = run / "files" / "media"
    assert list(media.glob("images/**/grid_*.png")), sorted(p.name for p in media.rglob("*"))
    meshes = list(media.glob("object3D/meshes_*.pts.json"))
    assert meshes
    import json

    points = json.loads(meshes[0].read_text())
    assert len(points) > 1000 and len(points[0]) == 3  # a vertex cloud of the estimated head
    assert list(run.glob("*.wandb"))  # the offline run file `wandb sync` uploads later


def test_estimator_pretraining_cli_exports_loadable_weights(project_root, synthetic_data_dir, tmp_path):
    """experiment=synthetic_estimator: train.py builds EstimatorPretrainModule (no G_A), and the export callback writes
    an estimator-only weights file that the embedded estimator of world=synthetic loads through weights_path."""
    out = subprocess.run(
        [sys.executable, "train.py", "experiment=synthetic_estimator", f"paths.log_dir={tmp_path}",
         f"paths.data_dir={synthetic_data_dir}", "callbacks.rich_progress_bar=null", "trainer.max_steps=3",
         "trainer.val_check_interval=3", "+trainer.limit_val_batches=1", "data.batch_size=4", "data.val_seeds=[1,2,3,4]",
         "model.calibration_samples=16", "trainer.log_every_n_steps=1"],
        cwd=project_root, capture_output=True, text=True, timeout=300, env=ENV,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    (run_dir,) = (tmp_path / "train" / "runs").iterdir()
    assert {"val/pose_error", "val/landmark_error_px", "val/albedo_error_target", "train/landmark"} <= _metric_columns(
        run_dir)
    export = run_dir / "checkpoints" / "inference.safetensors"
    from albedogan.models.weights_file import load_inference_weights

    weights = load_inference_weights(export)
    assert weights.albedo_generator is None and weights.estimator_state
    cfg = _compose(project_root, ["experiment=synthetic", f"paths.root_dir={project_root}",
                                  f"paths.data_dir={synthetic_data_dir}", f"paths.output_dir={tmp_path / 'x'}",
                                  f"estimator.weights_path={export}"])
    import hydra

    estimator = hydra.utils.instantiate(cfg.estimator)
    for key, value in estimator.state_dict().items():
        assert torch.equal(value, weights.estimator_state[key]), key


#: infer.py overrides that rebuild experiment=debug's world (world=synthetic at smaller sizes, untrained estimator)
DEBUG_WORLD_FOR_INFER = [
    "flame.n_shape=20", "flame.n_exp=10", "teacher.uv_resolution=32", "teacher.z_dim=16", "teacher.w_dim=16",
    "teacher.calibration_samples=64", "teacher.coefficients.n_shape_active=null",
    "teacher.coefficients.n_exp_active=null",
    "estimator.channels=[8,16]", "estimator.hidden_dim=32", "estimator.pooling=mean", "estimator.weights_path=null",
]


def test_train_without_logger_then_infer_from_last_ckpt(project_root, synthetic_data_dir, tmp_path):
    """Issue 10 defects 3 and 4: ``train.py ... logger=none`` runs (no LearningRateMonitor without a logger), and
    ``infer.py checkpoint=<its last.ckpt> mode=generate`` rebuilds G_A from the constructor arguments the module
    saved, loads the estimator, checks the world recorded in the .ckpt, and writes the faces."""
    out = subprocess.run(
        [sys.executable, "train.py", "experiment=debug", "logger=none", "trainer.max_steps=2",
         "trainer.limit_val_batches=0", "callbacks.image_grid=null", f"paths.log_dir={tmp_path}",
         f"paths.data_dir={synthetic_data_dir}", "callbacks.rich_progress_bar=null"],
        cwd=project_root, capture_output=True, text=True, timeout=300, env=ENV,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    (run_dir,) = (tmp_path / "train" / "runs").iterdir()
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert state["hyper_parameters"]["albedo_generator_kwargs"]["uv_resolution"] == 16
    assert state["albedogan_world"]["flame"] == {"n_shape": 20, "n_exp": 10}
    assert not list(run_dir.rglob("metrics.csv"))  # no logger wrote anything
    faces = tmp_path / "faces"
    out = subprocess.run(
        [sys.executable, "infer.py", "mode=generate", "mode.n=2", f"checkpoint={ckpt}", f"output_dir={faces}",
         f"paths.data_dir={synthetic_data_dir}", "render_size=32", *DEBUG_WORLD_FOR_INFER],
        cwd=project_root, capture_output=True, text=True, timeout=300, env=ENV,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    for seed in ("seed0000", "seed0001"):
        assert {"mesh.obj", "params.npz", "render.png"} <= {p.name for p in (faces / seed).iterdir()}, seed
    from albedogan.models.weights_file import load_inference_weights

    weights = load_inference_weights(ckpt)
    ema = {k[len("G_ema.module."):]: v for k, v in state["state_dict"].items() if k.startswith("G_ema.module.")}
    assert all(torch.equal(weights.albedo_generator.state_dict()[k], v) for k, v in ema.items())
    # another world than the one trained in is refused with the recorded difference
    out = subprocess.run(
        [sys.executable, "infer.py", "mode=generate", "mode.n=1", f"checkpoint={ckpt}", f"output_dir={faces}2",
         f"paths.data_dir={synthetic_data_dir}", *DEBUG_WORLD_FOR_INFER, "flame.n_exp=12"],
        cwd=project_root, capture_output=True, text=True, timeout=300, env=ENV,
    )
    assert out.returncode != 0 and "flame.n_exp: trained with 10, configured 12" in out.stderr, out.stderr[-2000:]
