"""``mode=evaluate``: generator / ground-truth metrics on the tiny world, the NoW path on a real photo, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from albedogan.inference.evaluate import generator_metrics, run_evaluate, with_yaw
from albedogan.models.estimator import build_embedded_estimator
from tests.helpers.now_world import now_world
from tests.helpers.inference_world import CLI_OVERRIDES, tiny_pipeline, tiny_teacher, write_tiny_checkpoint

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.safetensors", seed=1)


def test_generator_and_ground_truth_metrics(synthetic_head_model, checkpoint):
    pipeline = tiny_pipeline(synthetic_head_model, checkpoint)  # oracle estimator: exact shape and landmarks
    metrics, notes = generator_metrics(pipeline, [0, 1, 2, 3], batch_size=2, novel_yaws=(0.4,))
    for key in ("FID_sface", "KID_sface_mean", "LPIPS_render_vs_teacher", "identity_similarity_novel_pose",
                "albedo_error", "albedo_error_unwrapped_baseline", "shape_error_mm", "landmark_error_px"):
        assert key in metrics and np.isfinite(metrics[key]), key
    assert metrics["shape_error_mm"] == pytest.approx(0.0, abs=1e-4)
    assert metrics["landmark_error_px"] < 0.5
    assert 0 < metrics["albedo_error"] < 1 and -1 <= metrics["identity_similarity_novel_pose"] <= 1
    assert "feature space: sface" in notes


def test_with_yaw_adds_rotation_only(synthetic_head_model):
    import torch

    teacher = tiny_teacher(synthetic_head_model)
    truth = teacher.sample(torch.randn(2, 16)).truth
    turned = with_yaw(truth.estimate, 0.3)
    assert torch.allclose(turned.params.global_pose[:, 1] - truth.estimate.params.global_pose[:, 1],
                          torch.full((2,), 0.3))
    assert torch.equal(turned.params.shape, truth.estimate.params.shape) and torch.equal(turned.cam, truth.estimate.cam)


def test_now_predictions_and_scores(synthetic_head_model, checkpoint, tmp_path):
    head = synthetic_head_model
    estimator = build_embedded_estimator(n_shape=head.n_shape, n_exp=head.n_exp, input_size=32, channels=(8,),
                                         hidden_dim=16)  # untrained: predicts the mean (template) face
    pipeline = tiny_pipeline(head, checkpoint, estimator=estimator)
    data = now_world(tmp_path, head)
    report = run_evaluate(pipeline, tmp_path / "out", n=2, batch_size=2, novel_yaws=(0.3,), checkpoint=str(checkpoint),
                          now={"dataset_root": str(data), "split": "val"})
    metrics = json.loads(report.read_text())
    assert metrics["checkpoints"]["inference_weights"]["sha256"]
    m = metrics["metrics"]
    # the template prediction against the template scan: aligned by Procrustes, errors ~0 mm
    assert m["NoW_nonmetric_median_mm"] < 1e-3 and m["NoW_nonmetric_mean_mm"] < 1e-3
    now = json.loads((tmp_path / "out" / "now_result.json").read_text())
    assert now["count"] == 1 and now["missing"] == ["S1/selfie/IMG_2"]  # the blank photo has no face
    assert (tmp_path / "out" / "now_predictions" / "S1" / "selfie" / "IMG_1.npy").is_file()
    assert (tmp_path / "out" / "eval_report.md").is_file() and (tmp_path / "out" / "eval_report.png").is_file()


def test_cli_evaluate(project_root, synthetic_data_dir, checkpoint, tmp_path):
    out = subprocess.run(
        [sys.executable, "infer.py", "mode=evaluate", f"paths.data_dir={synthetic_data_dir}",
         f"checkpoint={checkpoint}", "estimator=ground_truth", *CLI_OVERRIDES, "mode.n=2", "mode.batch_size=2",
         "mode.novel_yaws=[0.3]", f"output_dir={tmp_path}", f"hydra.run.dir={tmp_path}/hydra"],
        cwd=project_root, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads((tmp_path / "eval_report.json").read_text())
    assert "albedo_error" in report["metrics"] and report["config"]["mode"]["n"] == 2
