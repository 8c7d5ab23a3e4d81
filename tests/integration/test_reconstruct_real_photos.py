"""``mode=reconstruct`` with the default fitting on real photos shipped inside installed packages (skimage's
astronaut, insightface's sample images): NME thresholds, roll recovered, rotation found, every face of a group."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from omegaconf import OmegaConf
from PIL import Image
from skimage import data

from albedogan.datamodules.landmarks import Dlib68Detector, MissingLandmarkModelError, build_landmark_detector
from albedogan.inference.reconstruct import run_reconstruct
from tests.helpers.real_faces import _site_packages

pytestmark = pytest.mark.integration

# thresholds: fitted 68 vs detected 68 (/ IOD). The astronaut upright, rolled by +-25 degrees and turned by 90 degrees
# measured 0.030-0.033 with the v4 head's iBUG-style landmark embedding and 0.042-0.045 with the v3 one (whose contour
# ran over the ears at uneven spacing and whose brows were too narrow): 0.04 separates them. YuNet's and dlib's five
# points disagree by 0.1-0.2 IOD themselves.
NME_68 = 0.04
FIVE_POINT_SLACK = 0.03


def _rolled(img: np.ndarray, degrees: float) -> np.ndarray:
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    return cv2.warpAffine(img, m, (w, h), borderMode=cv2.BORDER_REFLECT)


@pytest.fixture(scope="module")
def pipeline(synthetic_data_dir):
    """The shipped embedded world: the synthetic head + the pre-trained embedded estimator at the sizes of
    ``conf/world/synthetic.yaml`` (read from the preset, so the test follows the shipped checkpoint)."""
    from albedogan.bench.bm_reconstruct import embedded_world_estimator
    from albedogan.flame.head import HeadModel
    from albedogan.inference.pipeline import build_pipeline
    from tests.helpers.inference_world import tiny_teacher

    est, n_shape, n_exp = embedded_world_estimator()
    head = HeadModel.synthetic(synthetic_data_dir, n_shape=n_shape, n_exp=n_exp)
    return build_pipeline(tiny_teacher(head), head, est, None, allow_no_checkpoint=True, render_size=128,
                          uv_resolution=64)


@pytest.fixture(scope="module")
def fit(project_root):
    return OmegaConf.to_container(OmegaConf.load(project_root / "conf" / "fit" / "photometric.yaml"))


def _faces(out, name):
    summary = json.loads((out / "summary.json").read_text())
    entry = next(i for i in summary["inputs"] if i["input"].endswith(name))
    return entry, [json.loads((Path(f["folder"]) / "landmarks.json").read_text()) for f in entry["faces"]]


def test_frontal_rolled_and_rotated_photos_fit(pipeline, fit, tmp_path):
    face = data.astronaut()
    photos = {"upright.png": face, "roll20.png": _rolled(face, 20), "roll-25.png": _rolled(face, -25),
              "rot90.png": np.ascontiguousarray(np.rot90(face, -1))}
    for name, img in photos.items():
        Image.fromarray(img).save(tmp_path / name)
    out = tmp_path / "out"
    assert run_reconstruct(pipeline, str(tmp_path), out, detector="yunet", fit=fit, glb=False) == 0
    _, (up,) = _faces(out, "upright.png")
    for name, img in photos.items():
        entry, (rec,) = _faces(out, name)
        assert rec["quality"] == "ok" and rec["nme_68"] < NME_68, (name, rec["nme_68"])
        # the fitted five points are no further from YuNet's than dlib's own subset is (+ slack)
        assert rec["nme_5"] <= rec["nme_68_detector_5"] + FIVE_POINT_SLACK, name
        fitted = np.asarray(rec["fitted_68"])
        assert fitted.shape == (68, 2) and (fitted >= 0).all() and (fitted[:, 0] < img.shape[1]).all()
    for name, roll in (("roll20.png", -20.0), ("roll-25.png", 25.0)):  # cv2's positive angle turns the face CCW
        _, (rec,) = _faces(out, name)
        assert abs(rec["roll_deg"] - (up["roll_deg"] + roll)) < 4.0, (name, rec["roll_deg"], up["roll_deg"])
    entry, (rec,) = _faces(out, "rot90.png")
    assert entry["rotation"] == 90 and rec["rotation"] == 90
    assert abs(rec["roll_deg"] - (up["roll_deg"] + 90)) < 4.0  # reported in the rotated photo's own pixels
    assert (out / "contact_sheet.png").is_file()
    # the smile's opening: the render shows what the photo shows between the lips (FaceRenderer's interior colour),
    # not the skin fill of the back of the head seen through the parted mesh lips (0.15 darker before)
    folder = Path(up["folder"])
    matrix = np.load(folder / "params.npz")["crop_matrix"]
    inner = np.asarray(up["detected_68"])[60:68] @ matrix[:, :2].T + matrix[:, 2]  # crop pixels
    crop = np.asarray(Image.open(folder / "crop.png"), dtype=float) / 255
    render = np.asarray(Image.open(folder / "render.png"), dtype=float) / 255

    def mean_in_mouth(img: np.ndarray) -> np.ndarray:
        mask = np.zeros(img.shape[:2], np.uint8)
        cv2.fillPoly(mask, [np.round(inner * img.shape[0] / crop.shape[0]).astype(np.int32)], 1)
        return img[mask > 0].mean(0)

    assert np.abs(mean_in_mouth(render) - mean_in_mouth(crop)).max() < 0.06


def test_group_photo_gives_every_face(pipeline, fit, tmp_path):
    group = cv2.imread(str(_site_packages() / "insightface" / "data" / "images" / "t1.jpg"))[:, :, ::-1]
    Image.fromarray(np.ascontiguousarray(group)).save(tmp_path / "t1.png")
    small = dict(fit)
    small["stages"] = [dict(fit["stages"][0], iters=40)]  # landmark stage only: six faces in one batch
    out = tmp_path / "out"
    assert run_reconstruct(pipeline, str(tmp_path / "t1.png"), out, detector="yunet", fit=small, faces="all",
                           glb=False) == 0
    entry, records = _faces(out, "t1.png")
    assert len(records) == 6 and all(r["quality"] in ("ok", "poor_fit") for r in records)
    assert sorted((out / "t1").glob("face_*/mesh.obj")).__len__() == 6
    areas = [(r["box"][2] - r["box"][0]) * (r["box"][3] - r["box"][1]) for r in records]
    assert areas == sorted(areas, reverse=True)
    assert max(r["nme_68"] for r in records) < 0.2


def test_grey_photo_renders_grey_and_side_light_is_removed(pipeline, fit, tmp_path):
    """Grey in, grey out (light applied once, no colour cast); a strong side light darkens one half of the photo,
    and the de-lit albedo's left/right brightness ratio is closer to 1 than the photo's."""
    face = data.astronaut()
    Image.fromarray(face).convert("L").save(tmp_path / "grey.png")
    x = np.linspace(0.25, 1.0, face.shape[1])[None, :, None]
    Image.fromarray((face * x).astype(np.uint8)).save(tmp_path / "side.png")
    out = tmp_path / "out"
    assert run_reconstruct(pipeline, str(tmp_path), out, detector="yunet", fit=fit, glb=False) == 0
    render = np.asarray(Image.open(out / "grey" / "render.png"), dtype=float)
    alb = np.asarray(Image.open(out / "grey" / "mesh_albedo.png"), dtype=float)
    for img in (render, alb):
        assert np.abs(img[..., 2] - img[..., 0]).mean() < 2.0 and np.abs(img[..., 1] - img[..., 0]).mean() < 2.0
    # the two cheeks' halves of the crop (photo) and of the unlit albedo rendered in the same framing
    def halves(img: np.ndarray) -> float:
        h, w = img.shape
        band = img[h // 3:2 * h // 3]
        return band[:, w // 4:w // 2].mean() / band[:, w // 2:3 * w // 4].mean()

    photo_ratio = halves(np.asarray(Image.open(out / "side" / "crop.png"), dtype=float).mean(-1))
    albedo_ratio = halves(np.asarray(Image.open(out / "side" / "albedo_render.png"), dtype=float).mean(-1))
    assert abs(np.log(albedo_ratio)) < abs(np.log(photo_ratio)) * 0.7, (albedo_ratio, photo_ratio)


def test_landmark_detector_group_and_missing_model(monkeypatch):
    assert build_landmark_detector("none") is None
    assert build_landmark_detector("yunet5").n_points == 5
    with pytest.raises(ValueError, match="dlib68"):
        build_landmark_detector("fan")
    det = build_landmark_detector("dlib68")
    assert isinstance(det, Dlib68Detector)
    import builtins

    real_import = builtins.__import__

    def no_models(name, *a, **k):
        if name == "face_recognition_models":
            raise ImportError("not installed")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_models)
    with pytest.raises(MissingLandmarkModelError, match="face-recognition-models"):
        build_landmark_detector("dlib68")
