"""Evaluation sets as data configs: ``infer.py mode=evaluate data=now`` and ``data=photo_scans`` compose,
instantiate and run (NoW tree and a photo folder with a scan, built from the head template and real photos)."""

from __future__ import annotations

import json
from pathlib import Path

import hydra
import pytest
from hydra import compose, initialize_config_dir
from PIL import Image
from skimage import data as skdata

from albedogan.assets.locate import MissingAssetError
from albedogan.datamodules.eval_sets import NowEvalSet, PhotoScanSet
from albedogan.models.estimator import build_embedded_estimator
from tests.helpers.inference_world import tiny_pipeline, write_tiny_checkpoint
from tests.helpers.now_world import now_world, write_template_scan

pytestmark = pytest.mark.integration


def _evaluate_mode(root: Path, out: Path, *overrides: str):
    with initialize_config_dir(config_dir=str(root / "conf"), version_base="1.3"):
        cfg = compose(config_name="infer", overrides=["mode=evaluate", f"output_dir={out}", f"paths.root_dir={root}",
                                                      "mode.n=2", "mode.batch_size=2", "mode.novel_yaws=[0.3]",
                                                      *overrides])
    return hydra.utils.instantiate(cfg.mode)


@pytest.fixture(scope="module")
def pipeline(synthetic_head_model, tmp_path_factory):
    head = synthetic_head_model
    checkpoint = write_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.safetensors", seed=1)
    estimator = build_embedded_estimator(n_shape=head.n_shape, n_exp=head.n_exp, input_size=32, channels=(8,),
                                         hidden_dim=16)  # untrained: predicts the mean (template) face
    return tiny_pipeline(head, checkpoint, estimator=estimator)


def test_now_from_data_config(project_root, synthetic_head_model, pipeline, tmp_path):
    root = now_world(tmp_path, synthetic_head_model)
    evaluate = _evaluate_mode(project_root, tmp_path / "out", "data=now", f"data.root={root}")
    assert isinstance(evaluate.keywords["data"], NowEvalSet) and evaluate.keywords["data"].split == "val"
    report = json.loads(evaluate(pipeline=pipeline).read_text())
    assert report["metrics"]["NoW_nonmetric_median_mm"] < 1e-3  # template prediction vs template scan
    now = json.loads((tmp_path / "out" / "now_result.json").read_text())
    assert now["count"] == 1 and now["missing"] == ["S1/selfie/IMG_2"]
    with pytest.raises(Exception, match="imagepathstest.txt"):  # hydra wraps the MissingAssetError
        _evaluate_mode(project_root, tmp_path / "o2", "data=now", f"data.root={root}", "data.split=test")


def test_photo_folder_with_optional_scans(project_root, synthetic_head_model, pipeline, tmp_path):
    photos = tmp_path / "photos"
    (photos / "alice").mkdir(parents=True)
    (photos / "nobody").mkdir()
    Image.fromarray(skdata.astronaut()).save(photos / "alice" / "front.jpg")
    Image.fromarray(skdata.astronaut()[:, ::-1].copy()).save(photos / "alice" / "mirrored.png")
    write_template_scan(photos / "alice", "scan", synthetic_head_model)  # one scan for the folder
    Image.fromarray(skdata.astronaut()).save(photos / "nobody" / "unscanned.jpg")
    Image.new("RGB", (64, 64), "white").save(photos / "nobody" / "blank.jpg")
    evaluate = _evaluate_mode(project_root, tmp_path / "out", "data=photo_scans", f"data.path={photos}")
    dataset = evaluate.keywords["data"]
    assert isinstance(dataset, PhotoScanSet)
    items = {i.key: i for i in dataset.items()}
    assert items["alice/front"].scan == photos / "alice" / "scan.obj" and items["nobody/unscanned"].scan is None
    metrics = json.loads(evaluate(pipeline=pipeline).read_text())["metrics"]
    assert metrics["photos_fitted"] == 3 and metrics["photos_skipped"] == 1 and metrics["photos_with_scan"] == 2
    assert metrics["scan_nonmetric_median_mm"] < 1e-3
    rows = json.loads((tmp_path / "out" / "photo_scans_result.json").read_text())
    assert [r["status"] for r in rows].count("skipped") == 1
    assert (tmp_path / "out" / "photo_predictions" / "nobody" / "unscanned.obj").is_file()
    (photos / "alice" / "scan_picked_points.pp").unlink()
    with pytest.raises(MissingAssetError, match="no landmark file"):
        dataset.items()
