"""FLAME layer: linear blend skinning (:mod:`.lbs`), landmarks with DECA's dynamic contour (:mod:`.landmarks`)
and the :class:`FLAME` module (:mod:`.flame`). Asset reading lives in :mod:`albedogan.assets` (one reader
module per file format)."""

from albedogan.flame.flame import FLAME
from albedogan.flame.landmarks import (
    NOW_LANDMARK_ROWS,
    barycentric_landmarks,
    contour_rows,
    contour_yaw_degrees,
    now_landmarks,
    rotation_yaw_degrees,
)
from albedogan.flame.lbs import batch_rodrigues, blend_shapes, lbs, pose_features, rigid_transforms, vertices2joints

__all__ = [
    "FLAME",
    "NOW_LANDMARK_ROWS",
    "barycentric_landmarks",
    "batch_rodrigues",
    "blend_shapes",
    "contour_rows",
    "contour_yaw_degrees",
    "lbs",
    "now_landmarks",
    "pose_features",
    "rigid_transforms",
    "rotation_yaw_degrees",
    "vertices2joints",
]
