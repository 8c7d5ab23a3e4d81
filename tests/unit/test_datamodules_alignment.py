"""Face detection and alignment on real photos shipped by installed packages (no downloads).

Photos: ``skimage.data.astronaut()`` (one face) and insightface's ``t1.jpg`` (six faces: counted by eye).
References: skimage's similarity estimate and ``skimage.transform.warp`` (independent implementations).
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import cv2
import imageio.v3 as iio
import numpy as np
import pytest
import skimage.data
import torch
from skimage.transform import AffineTransform, estimate_transform, warp

from albedogan.datamodules.alignment import (
    ARCFACE_TEMPLATE_112,
    align_faces,
    arcface_crop,
    encoder_crop,
    encoder_crop_matrices,
    estimate_similarity,
    invert_affine,
    transform_points,
    warp_affine,
)
from albedogan.datamodules.detection import (
    FaceDetection,
    YuNetDetector,
    build_face_detector,
    to_rgb_uint8,
)

T1_PATH = Path(__import__("insightface").__file__).parent / "data" / "images" / "t1.jpg"
T1_FACES = 6  # counted by looking at the photo: six people around a poker table


@pytest.fixture(scope="module")
def detector() -> YuNetDetector:
    return YuNetDetector()


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return skimage.data.astronaut()


@pytest.fixture(scope="module")
def group_photo() -> np.ndarray:
    return iio.imread(T1_PATH)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _match_all(found: list[FaceDetection], expected: list[FaceDetection], min_iou: float = 0.6) -> None:
    for e in expected:
        best = max((_iou(e.box, f.box) for f in found), default=0.0)
        assert best > min_iou, f"face at {np.round(e.box)} not re-found (best IoU {best:.2f})"


# ---------------------------------------------------------------------------------------------------------------
# geometry against independent references


def test_estimate_similarity_matches_skimage_batched() -> None:
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 300, (4, 5, 2))
    dst_shared = ARCFACE_TEMPLATE_112.double()
    dst_each = torch.from_numpy(rng.uniform(0, 112, (4, 5, 2)))
    m_shared = estimate_similarity(torch.from_numpy(src), dst_shared)
    m_each = estimate_similarity(torch.from_numpy(src), dst_each)
    assert m_shared.shape == (4, 2, 3) and m_shared.dtype == torch.float64
    for i in range(4):
        ref = estimate_transform("similarity", src[i], dst_shared.numpy()).params[:2]
        np.testing.assert_allclose(m_shared[i].numpy(), ref, atol=1e-9)
        ref = estimate_transform("similarity", src[i], dst_each[i].numpy()).params[:2]
        np.testing.assert_allclose(m_each[i].numpy(), ref, atol=1e-9)


def test_estimate_similarity_recovers_exact_transform_and_is_differentiable() -> None:
    angle, s, t = 0.4, 1.7, torch.tensor([12.0, -3.0], dtype=torch.float64)
    rot = s * torch.tensor([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]], dtype=torch.float64)
    src = torch.rand(1, 5, 2, dtype=torch.float64) * 50
    dst = src[0] @ rot.T + t
    m = estimate_similarity(src, dst)[0]
    torch.testing.assert_close(m[:, :2], rot)
    torch.testing.assert_close(m[:, 2], t)
    src_g = src.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: estimate_similarity(x, ARCFACE_TEMPLATE_112.double()), (src_g,))
    with pytest.raises(ValueError, match="coincide"):
        estimate_similarity(torch.ones(1, 5, 2), ARCFACE_TEMPLATE_112)


def test_warp_affine_matches_skimage_warp_and_has_gradients() -> None:
    rng = np.random.default_rng(1)
    img = rng.uniform(0, 1, (40, 50, 3))
    m = np.array([[0.8, 0.3, 5.2], [-0.25, 0.9, -3.1]])
    images = torch.from_numpy(img).permute(2, 0, 1)[None]
    matrices = torch.from_numpy(m)[None].requires_grad_(True)
    out = warp_affine(images, matrices, (35, 30))
    ref = warp(img, AffineTransform(matrix=np.linalg.inv(np.vstack([m, [0, 0, 1]]))), output_shape=(35, 30), order=1)
    np.testing.assert_allclose(out[0].permute(1, 2, 0).detach().numpy(), ref, atol=1e-9)
    out.sum().backward()
    assert matrices.grad is not None and torch.isfinite(matrices.grad).all() and matrices.grad.abs().sum() > 0
    # identity matrix reproduces the image exactly (pixel centres on integer coordinates)
    eye = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(warp_affine(images, eye, (40, 50)), images)
    with pytest.raises(TypeError, match="floating"):
        warp_affine(torch.zeros(1, 3, 4, 4, dtype=torch.uint8), eye, (4, 4))


def test_invert_and_transform_round_trip_numpy_and_torch() -> None:
    m = np.array([[1.3, -0.4, 20.0], [0.4, 1.3, -7.0]])
    pts = np.random.default_rng(2).uniform(0, 100, (7, 2))
    np.testing.assert_allclose(transform_points(transform_points(pts, m), invert_affine(m)), pts, atol=1e-9)
    mt = torch.from_numpy(m)[None].expand(3, 2, 3)
    pt = torch.from_numpy(pts)[None].expand(3, 7, 2)
    torch.testing.assert_close(transform_points(transform_points(pt, mt), invert_affine(mt)), pt)


def test_encoder_crop_matrix_follows_deca_rule() -> None:
    box = torch.tensor([[100.0, 50.0, 200.0, 190.0]], dtype=torch.float64)  # w 100, h 140 -> mean side 120
    m = encoder_crop_matrices(box, size=224, scale=1.25)[0].numpy()
    side, cx, cy = 150.0, 150.0, 120.0 + 0.12 * 120.0
    corners = np.array([[cx - side / 2, cy - side / 2], [cx + side / 2, cy + side / 2]])
    np.testing.assert_allclose(transform_points(corners, m), [[0.0, 0.0], [223.0, 223.0]], atol=1e-9)
    with pytest.raises(ValueError, match="x1 > x0"):
        encoder_crop_matrices(torch.tensor([[10.0, 10.0, 5.0, 5.0]]))


# ---------------------------------------------------------------------------------------------------------------
# detection on real photos


def test_detects_astronaut_and_group_photo(detector, astronaut, group_photo) -> None:
    faces = detector.detect(astronaut)
    assert len(faces) == 1
    x0, y0, x1, y1 = faces[0].box
    assert 150 < x0 < 220 and 40 < y0 < 100 and 240 < x1 < 300 and 150 < y1 < 220  # Eileen Collins' face
    left_eye, right_eye = faces[0].landmarks5[:2]
    assert left_eye[0] < right_eye[0] and abs(left_eye[1] - right_eye[1]) < 15
    group = detector.detect(group_photo)
    assert len(group) == T1_FACES
    assert all(a.score >= b.score for a, b in zip(group, group[1:]))
    assert all(f.score > 0.6 for f in group)
    # faces do not overlap (NMS) and every landmark lies inside its box
    for i, f in enumerate(group):
        assert all(_iou(f.box, g.box) < 0.1 for g in group[i + 1 :])
        assert ((f.landmarks5 >= f.box[:2] - 2) & (f.landmarks5 <= f.box[2:] + 2)).all()


@pytest.mark.parametrize("factor", [2.5, 0.3])
def test_rescaled_photos_still_detected(detector, astronaut, group_photo, factor) -> None:
    for photo in (astronaut, group_photo):
        base = detector.detect(photo)
        h, w = photo.shape[:2]
        size = (round(w * factor), round(h * factor))
        resized = cv2.resize(photo, size, interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_CUBIC)
        found = detector.detect(resized)
        assert len(found) == len(base)
        _match_all(found, [f.scaled(factor) for f in base])


def test_grayscale_photos_still_detected(detector, astronaut, group_photo) -> None:
    for photo in (astronaut, group_photo):
        gray = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)
        assert to_rgb_uint8(gray).shape == photo.shape
        found = detector.detect(gray)
        assert len(found) == len(detector.detect(photo))
        _match_all(found, detector.detect(photo), min_iou=0.8)


def test_thresholds_and_top_k_are_applied(group_photo) -> None:
    assert len(YuNetDetector(top_k=2).detect(group_photo)) == 2
    assert len(YuNetDetector(score_threshold=0.99).detect(group_photo)) < T1_FACES
    with pytest.raises(ValueError, match="thresholds"):
        YuNetDetector(score_threshold=1.5)


def test_detector_pickles_and_rejects_bad_images(detector, astronaut) -> None:
    clone = pickle.loads(pickle.dumps(detector))
    assert len(clone.detect(astronaut)) == 1
    assert len(detector.detect(astronaut.astype(np.float32) / 255.0)) == 1
    with pytest.raises(ValueError, match="HxWx3"):
        detector.detect(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(ValueError, match="landmarks5"):
        FaceDetection(box=np.zeros(4), landmarks5=np.zeros((4, 2)), score=1.0)


def test_build_face_detector_falls_back_to_yunet_without_insightface_pack(tmp_path, caplog) -> None:
    caplog.set_level(logging.INFO, logger="albedogan")
    det = build_face_detector(kind="insightface", model_root=tmp_path / "buffalo_l")
    assert isinstance(det, YuNetDetector)
    assert any("using YuNet" in r.getMessage() for r in caplog.records)
    assert isinstance(build_face_detector(kind="auto", model_root=tmp_path, nms_threshold=0.5), YuNetDetector)
    with pytest.raises(ValueError, match="kind"):
        build_face_detector(kind="mtcnn")


# ---------------------------------------------------------------------------------------------------------------
# alignment of real faces


def test_arcface_crops_put_eyes_on_template(detector, astronaut, group_photo) -> None:
    template = ARCFACE_TEMPLATE_112.numpy()
    eye_errors = []
    for photo in (astronaut, group_photo):
        for face in detector.detect(photo):
            crop = arcface_crop(photo, face.landmarks5)
            assert crop.image.shape == (112, 112, 3) and crop.image.dtype == np.uint8
            err = np.linalg.norm(crop.to_crop(face.landmarks5) - template, axis=1)
            eye_errors.append(err[:2])
            # round trip: the inverse matrix maps crop points back onto the photo
            np.testing.assert_allclose(crop.to_source(crop.to_crop(face.landmarks5)), face.landmarks5, atol=1e-6)
    eye_errors = np.stack(eye_errors)
    assert len(eye_errors) == 1 + T1_FACES
    assert eye_errors[0].max() < 5.0  # frontal astronaut
    assert np.median(eye_errors) < 4.0 and eye_errors.max() < 12.0  # turned faces in t1 fit the template less well


def test_aligned_crop_redetection_matches_warped_points(detector, astronaut, group_photo) -> None:
    """Re-detect on a (padded) aligned crop: the detector finds the eyes where the warp put them."""
    template = ARCFACE_TEMPLATE_112.double() * 1.25 + 42.0  # 224 canvas, face in the middle
    for photo in (astronaut, group_photo):
        faces = detector.detect(photo)
        images = torch.from_numpy(photo).permute(2, 0, 1)[None].float().expand(len(faces), -1, -1, -1) / 255.0
        pts = torch.from_numpy(np.stack([f.landmarks5 for f in faces]))
        crops = align_faces(images, pts.float(), template.float(), out_size=(224, 224))
        matrices = estimate_similarity(pts, template)
        expected = transform_points(pts, matrices).numpy()
        for crop, exp in zip(crops, expected):
            again = detector.detect((crop.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
            assert len(again) == 1
            eye_err = np.linalg.norm(again[0].landmarks5[:2] - exp[:2], axis=1)
            assert eye_err.max() < 12.0, eye_err  # YuNet's landmark jitter is ~5 px at this scale


def test_encoder_crop_centres_face_numpy_and_torch_agree(detector, astronaut, group_photo) -> None:
    for photo in (astronaut, group_photo):
        faces = detector.detect(photo)
        for face in faces[:3]:
            crop = encoder_crop(photo, face)
            assert crop.image.shape == (224, 224, 3) and crop.image.dtype == np.uint8
            again = detector.detect(crop.image)
            assert len(again) >= 1
            centre = again[0].center
            assert np.abs(centre - 111.5).max() < 0.15 * 224, centre  # face centred (DECA shifts box down 12%)
            side = (again[0].width + again[0].height) / 2
            assert 0.6 < side / (223 / 1.25) < 1.3
            # round trip of the matrix: detected points in the crop map back near the original detection
            back = crop.to_source(again[0].landmarks5)
            # (YuNet itself moves its points by up to ~8% of the face size when only the framing changes)
            assert np.linalg.norm(back - face.landmarks5, axis=1).max() < 0.12 * face.width
        # batched torch version equals the numpy one
        boxes = torch.from_numpy(np.stack([f.box for f in faces]))
        images = torch.from_numpy(photo).permute(2, 0, 1)[None].double().expand(len(faces), -1, -1, -1)
        batch = encoder_crop(images, boxes)
        assert batch.image.shape == (len(faces), 3, 224, 224) and batch.matrix.shape == (len(faces), 2, 3)
        ref = encoder_crop(photo, faces[0])
        np.testing.assert_allclose(batch.matrix[0].numpy(), ref.matrix, atol=1e-9)
        diff = np.abs(batch.image[0].permute(1, 2, 0).numpy().round() - ref.image.astype(np.float64))
        assert diff.max() <= 1.0
