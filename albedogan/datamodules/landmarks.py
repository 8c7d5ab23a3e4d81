"""Facial landmarks on real photos, given a detector's face (box + five points).

One interface (:class:`LandmarkDetector`: ``landmarks(image, detection) -> (68, 2) | (5, 2) | None``) with:

* :class:`Dlib68Detector` (``landmarks=dlib68``): dlib's 68-point iBUG 300-W shape predictor — the same 68-point
  convention as FLAME's landmark embedding — from the ``dlib-bin`` wheel, with the model file
  ``shape_predictor_68_face_landmarks.dat`` shipped by the ``face-recognition-models`` package. dlib's own HOG face
  detector is *not* used (it misses side-lit faces); the predictor runs on the YuNet face, in a crop rotated upright
  by the YuNet eye line (dlib's predictor was trained on upright faces), with the box dlib's detector would give
  (calibrated on real photos: a square of 0.93 x the YuNet box's mean side, centre 0.04 of it lower).
  Licence: the model was trained on the iBUG 300-W data set, whose licence excludes commercial use.
* :class:`YuNet5Landmarks` (``landmarks=yunet5``): the detector's own five points (no extra model).
* ``landmarks=none``: no landmarks (:func:`build_landmark_detector` returns None).

Coordinates: (x, y) pixels of the input image, x right, y down, integer coordinates at pixel centres (the
convention of :mod:`albedogan.datamodules.alignment`).
"""

from __future__ import annotations

import math
from typing import Optional, Protocol, runtime_checkable

import numpy as np

from albedogan.datamodules.detection import FaceDetection, to_rgb_uint8

__all__ = [
    "DLIB_MODEL_FILE",
    "Dlib68Detector",
    "LANDMARK_KINDS",
    "LandmarkDetector",
    "MissingLandmarkModelError",
    "YuNet5Landmarks",
    "build_landmark_detector",
    "dlib_model_path",
    "five_from_68",
    "roll_degrees",
]

DLIB_MODEL_FILE = "shape_predictor_68_face_landmarks.dat"
LANDMARK_KINDS = ("dlib68", "yunet5", "none")

# iBUG-68 indices: eyes 36-41 (image left) / 42-47 (image right), nose tip 30, mouth corners 48 / 54
_LEFT_EYE = slice(36, 42)
_RIGHT_EYE = slice(42, 48)

# YuNet box -> the square box dlib's frontal detector gives for the same face (measured on astronaut + t1.jpg)
_DLIB_BOX_SCALE = 0.93
_DLIB_BOX_SHIFT = 0.04


class MissingLandmarkModelError(ImportError):
    """The landmark model (or its Python package) is not installed; the message names what to install."""


@runtime_checkable
class LandmarkDetector(Protocol):
    """Anything with ``landmarks(image, detection) -> (K, 2) float64 pixels, or None`` and ``n_points``."""

    n_points: int

    def landmarks(self, image: np.ndarray, detection: FaceDetection) -> Optional[np.ndarray]:  # pragma: no cover
        ...


def five_from_68(lmk68: np.ndarray) -> np.ndarray:
    """(..., 68, 2) iBUG points -> (..., 5, 2) in YuNet/ArcFace order: eye centres, nose tip, mouth corners."""
    pts = np.asarray(lmk68, dtype=np.float64)
    return np.stack([pts[..., _LEFT_EYE, :].mean(-2), pts[..., _RIGHT_EYE, :].mean(-2), pts[..., 30, :],
                     pts[..., 48, :], pts[..., 54, :]], axis=-2)


def roll_degrees(points: np.ndarray) -> float:
    """In-plane roll (degrees, positive = the image-right eye lower, clockwise on screen) from 5 or 68 points."""
    pts = np.asarray(points, dtype=np.float64)
    five = five_from_68(pts) if pts.shape[0] == 68 else pts
    dx, dy = five[1] - five[0]
    return math.degrees(math.atan2(dy, dx))


def dlib_model_path() -> str:
    """Path of ``shape_predictor_68_face_landmarks.dat`` inside the installed ``face-recognition-models`` package.

    Raises:
        MissingLandmarkModelError: the package (or the file in it) is missing.
    """
    from pathlib import Path

    try:
        import face_recognition_models
    except ImportError as err:
        raise MissingLandmarkModelError(
            "landmarks=dlib68 needs the 68-point model from the `face-recognition-models` package: "
            "`pip install face-recognition-models` (or `make install`), or choose landmarks=yunet5|none") from err
    path = Path(face_recognition_models.__file__).parent / "models" / DLIB_MODEL_FILE
    if not path.is_file():
        raise MissingLandmarkModelError(f"{path} is missing: reinstall `face-recognition-models`")
    return str(path)


class Dlib68Detector:
    """dlib's 68-point shape predictor on a detector's face (see the module docstring).

    Args:
        model_path: the ``.dat`` file; default the one in ``face-recognition-models``.
        upright: rotate the face upright before predicting (recommended): first by the detector's eye line, then
            (``passes`` > 1) by the eye line of the previous pass's 68 points (YuNet's points drift on rolled faces).
        crop_size: side (pixels) of the upright working crop.
        passes: prediction passes (each ~3 ms).
    """

    n_points = 68

    def __init__(self, model_path: Optional[str] = None, upright: bool = True, crop_size: int = 256,
                 passes: int = 2) -> None:
        try:
            import dlib
        except ImportError as err:
            raise MissingLandmarkModelError(
                "landmarks=dlib68 needs dlib: `pip install dlib-bin` (a binary wheel; or `make install`), or "
                "choose landmarks=yunet5|none") from err
        self.model_path = model_path or dlib_model_path()
        self._dlib = dlib
        self._predictor = dlib.shape_predictor(str(self.model_path))
        self.upright = bool(upright)
        self.crop_size = int(crop_size)
        self.passes = max(1, int(passes))

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_predictor"] = state["_dlib"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        import dlib

        self.__dict__.update(state)
        self._dlib = dlib
        self._predictor = dlib.shape_predictor(str(self.model_path))

    def landmarks(self, image: np.ndarray, detection: FaceDetection) -> Optional[np.ndarray]:
        """(68, 2) float64 pixel coordinates of ``detection``'s face in ``image`` (H, W, 3) RGB uint8."""
        rgb = to_rgb_uint8(image)
        pts = self._predict(rgb, detection, roll_degrees(detection.landmarks5))
        for _ in range(self.passes - 1):
            pts = self._predict(rgb, detection, roll_degrees(pts))
        return pts

    def _predict(self, rgb: np.ndarray, detection: FaceDetection, roll: float) -> np.ndarray:
        from albedogan.datamodules.alignment import invert_affine, transform_points, warp_numpy

        side = 0.5 * (detection.width + detection.height)
        centre = detection.center + np.array([0.0, _DLIB_BOX_SHIFT * side])
        angle = math.radians(roll) if self.upright else 0.0
        # similarity: rotate by -roll about the face centre, scale the face box to half the crop, centre it
        k = self.crop_size / (2.0 * side)
        c, s = math.cos(-angle) * k, math.sin(-angle) * k
        half = (self.crop_size - 1) / 2.0
        matrix = np.array([[c, -s, half - (c * centre[0] - s * centre[1])],
                           [s, c, half - (s * centre[0] + c * centre[1])]])
        crop = warp_numpy(rgb, matrix, (self.crop_size, self.crop_size))
        box_half = 0.5 * _DLIB_BOX_SCALE * side * k
        rect = self._dlib.rectangle(int(round(half - box_half)), int(round(half - box_half)),
                                    int(round(half + box_half)), int(round(half + box_half)))
        shape = self._predictor(np.ascontiguousarray(crop), rect)
        pts = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)  # 68 points, not pixels
        return transform_points(pts, invert_affine(matrix))


class YuNet5Landmarks:
    """The detector's own five points (ArcFace order) as the landmarks; nothing else to install."""

    n_points = 5

    def landmarks(self, image: np.ndarray, detection: FaceDetection) -> Optional[np.ndarray]:
        """(5, 2) float64 pixel coordinates (the detection's ``landmarks5``)."""
        return np.asarray(detection.landmarks5, dtype=np.float64).copy()


def build_landmark_detector(kind: str = "dlib68", model_path: Optional[str] = None) -> Optional[LandmarkDetector]:
    """``dlib68`` | ``yunet5`` | ``none`` (returns None) — the ``landmarks`` config group.

    Raises:
        ValueError: an unknown kind.
        MissingLandmarkModelError: dlib68 without dlib / the model package.
    """
    if kind not in LANDMARK_KINDS:
        raise ValueError(f"landmarks: kind must be one of {LANDMARK_KINDS}, got {kind!r} (config group `landmarks`)")
    if kind == "none":
        return None
    if kind == "yunet5":
        return YuNet5Landmarks()
    return Dlib68Detector(model_path=model_path)
