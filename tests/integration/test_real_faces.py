"""Real photos for phase B: a photo tree with bad files is cached (faces kept, bad files skipped and counted), and
a short experiment=synthetic run with data.mix.real_fraction=0.5 trains phase B on the real crops."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from tests.helpers.real_faces import write_photo_folder

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    folder = tmp_path_factory.mktemp("photos")
    return folder, write_photo_folder(folder)


def _compose(root: Path, overrides: list[str]):
    with initialize_config_dir(config_dir=str(root / "conf"), version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


def _overrides(root, data_dir, out, photos, faces, *extra, data="images"):
    # the procedural world frames whole heads: a wider crop than DECA's 1.25 matches its images
    return ["experiment=synthetic", f"paths.root_dir={root}", f"paths.data_dir={data_dir}",
            f"paths.output_dir={out}", "callbacks.rich_progress_bar=null", f"data={data}", f"data.mix.path={photos}",
            f"data.mix.root={faces}", "data.mix.shard_size=4", "data.mix.crop_scale=2.0", *extra]


@pytest.fixture(scope="module")
def face_cache(project_root, synthetic_data_dir, tmp_path_factory, photos) -> tuple[Path, dict]:
    """The photo tree cached once: (cache folder, what cache.py reported)."""
    from albedogan.caching import run_cache

    faces = tmp_path_factory.mktemp("faces")
    cfg = _compose(project_root, _overrides(project_root, synthetic_data_dir, faces / "run", photos[0], faces))
    return faces, run_cache(cfg)["faces"]


def test_face_cache_skips_and_counts_bad_files(project_root, synthetic_data_dir, tmp_path, photos, face_cache):
    from albedogan.caching import run_cache
    from albedogan.datamodules.real_faces import RealFaceMix

    folder, expected = photos
    faces, result = face_cache
    cfg = _compose(project_root, _overrides(project_root, synthetic_data_dir, tmp_path / "o", folder, faces))
    n_ok = sum(v == "ok" for v in expected.values())
    assert result["complete"] and result["files"] == len(expected) == 12
    assert result["num_samples"] == n_ok and result["num_skipped"] == len(expected) - n_ok
    assert result["skipped_reasons"]["not_an_image"] == 1 and result["skipped_reasons"]["truncated"] == 1
    assert result["skipped_reasons"].get("no_face", 0) + result["skipped_reasons"].get("tiny_face", 0) == 2
    skipped = {}
    for side in sorted(faces.glob("shard-*.json")):
        for item in json.loads(side.read_text())["skipped"]:
            skipped[str(Path(item["input"]).relative_to(folder))] = item["reason"]
    assert skipped.keys() == {k for k, v in expected.items() if v != "ok"}
    assert all(reason in expected[k].split("|") for k, reason in skipped.items())
    # a rerun resumes (nothing to do) and the crops read back with NDC landmarks inside the crop
    assert run_cache(cfg)["faces"]["written"] == 0
    mix = RealFaceMix(0.5, root=str(faces), image_size=64, shard_size=4, crop_scale=2.0)
    cache = mix.open()
    sample = cache[(0, 0)]
    assert sample.image.shape == (3, 64, 64) and sample.landmarks.shape == (5, 2)
    assert json.loads((faces / "manifest.json").read_text())["landmark_set"] == "yunet5"
    assert bool((sample.landmarks.abs() < 0.8).all()) and float(sample.score) > 0.5
    # eyes above the nose above the mouth (y grows downward), left eye left of the right eye
    eyes_y, nose_y, mouth_y = sample.landmarks[:2, 1].mean(), sample.landmarks[2, 1], sample.landmarks[3:, 1].mean()
    assert eyes_y < nose_y < mouth_y and sample.landmarks[0, 0] < sample.landmarks[1, 0]
    with pytest.raises(Exception, match="other settings"):
        RealFaceMix(0.5, root=str(faces), shard_size=4, crop_scale=1.25).open()


def test_synthetic_run_trains_phase_b_on_real_photos(project_root, synthetic_data_dir, tmp_path, photos, face_cache):
    from albedogan.entry import run_train

    folder, (faces, _) = photos[0], face_cache
    # the default data=latent with the mix switched on (data=images is the same with real_fraction 0.5 preset)
    args = _overrides(project_root, synthetic_data_dir, tmp_path / "run", folder, faces,
                      "data.mix.real_fraction=0.5", "trainer.max_steps=4",
                      "model.schedule.cycle=[[albedo,1],[shape,1]]",
                      "trainer.limit_val_batches=0", "callbacks.image_grid=null",
                      "logger.csv.flush_logs_every_n_steps=1", "trainer.log_every_n_steps=1", data="latent")
    cfg = _compose(project_root, args)
    metrics = run_train(cfg)
    for name in ("train/shape/real_landmark", "train/shape/real_photometric", "train/shape/landmark"):
        assert name in metrics, sorted(metrics)
        assert torch.isfinite(torch.tensor(metrics[name]))
    assert metrics["train/shape/real_landmark"] > 0
    state = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert state["global_step"] == 4
    loader_state = state["loops"]["fit_loop"]["state_dict"]["combined_loader"][0]
    assert set(loader_state) == {"teacher", "real"} and loader_state["real"]["batches_consumed"] == 4


def test_real_terms_send_gradients_to_the_estimator(project_root, synthetic_data_dir, tmp_path, photos,
                                                    face_cache):
    """The real-photo terms alone move what phase B trains (the shape readout), not G_A."""
    from albedogan.models.builder import build_training
    from albedogan.models.real_faces import mean_albedo, real_face_terms

    cfg = _compose(project_root, _overrides(project_root, synthetic_data_dir, tmp_path / "o", photos[0],
                                            face_cache[0]))
    model, data = build_training(cfg)
    batch = next(iter(data.train_dataloader()))
    size = cfg.teacher.image_size  # real crops come at the teacher's image size
    assert batch.real.image.shape == (4, 3, size, size) and batch.real_fraction == 0.5  # round(4 * 0.5 / 0.5)
    model.estimator.train()
    terms = real_face_terms(batch.real, model.estimator, mean_albedo(model.teacher, model.G_ema, model.device),
                            model._render, model.shape_loss)
    assert {"photometric", "landmark"} <= set(terms)
    sum(terms.values()).backward()
    trained = [p for p in model.estimator.parameters() if p.requires_grad]
    assert trained and any(p.grad is not None and p.grad.abs().sum() > 0 for p in trained)
    assert all(p.grad is None for p in model.G.parameters())


class _Fake68:
    """A 68-point landmark detector stand-in (iBUG layout around the detector's 5 points) for the cache plumbing."""

    n_points = 68

    def landmarks(self, image, detection):
        import numpy as np

        five = detection.landmarks5
        pts = np.repeat(five[2:3], 68, axis=0)  # nose tip everywhere else
        pts[36:42], pts[42:48], pts[48], pts[54] = five[0], five[1], five[3], five[4]
        return pts


def test_68_point_landmarks_are_cached_and_fitted(project_root, synthetic_data_dir, tmp_path, photos, face_cache):
    from albedogan.datamodules.real_faces import RealFaceMix, write_face_cache
    from albedogan.datamodules.detection import build_face_detector
    from albedogan.models.builder import build_training
    from albedogan.models.real_faces import mean_albedo, real_face_terms

    faces = tmp_path / "faces68"
    result = write_face_cache(faces, photos[0] / "00000", build_face_detector("yunet"), resolution=64,
                              crop_scale=2.0, shard_size=4, landmark_detector=_Fake68(),
                              config={"kind": "faces", **RealFaceMix(shard_size=4, crop_scale=2.0,
                                                                    resolution=64).cache_settings()})
    assert result["num_samples"] == 2
    assert json.loads((faces / "manifest.json").read_text())["landmark_set"] == "ibug68"
    cfg = _compose(project_root, _overrides(project_root, synthetic_data_dir, tmp_path / "o", photos[0],
                                            face_cache[0]))
    cache = RealFaceMix(0.5, root=str(faces), image_size=cfg.teacher.image_size, shard_size=4, crop_scale=2.0,
                        resolution=64).open()
    sample = cache[(0, 0)]
    assert sample.landmarks.shape == (68, 2)
    assert torch.allclose(sample.landmarks[36:42].mean(0), sample.landmarks5[0])
    model, _ = build_training(cfg)
    batch = type(sample)(*[torch.stack([torch.as_tensor(getattr(cache[(0, j)], f)) for j in range(2)])
                           for f in sample._fields])
    terms = real_face_terms(batch, model.estimator, mean_albedo(model.teacher, model.G_ema, model.device),
                            model._render, model.shape_loss)
    assert torch.isfinite(terms["landmark"]) and terms["landmark"] > 0
