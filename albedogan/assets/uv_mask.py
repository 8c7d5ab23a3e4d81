"""Reader of FLAME's UV region masks ``uv_face_mask.png`` / ``uv_face_eye_mask.png`` (256² RGBA, mask = channel 0
/ 255)."""

from __future__ import annotations

import os

import numpy as np

from albedogan.assets.arrays import DECA_OBTAIN, FLAME_OBTAIN
from albedogan.assets.locate import AssetFormatError, AssetSpec, require_file

__all__ = ["UV_FACE_MASK_SPEC", "UV_FACE_EYE_MASK_SPEC", "load_uv_mask"]

UV_FACE_MASK_SPEC = AssetSpec(
    "FLAME UV face mask (uv_face_mask.png)", "flame.uv_face_mask_path", f"{FLAME_OBTAIN} or {DECA_OBTAIN}"
)
UV_FACE_EYE_MASK_SPEC = AssetSpec(
    "FLAME UV face+eye mask (uv_face_eye_mask.png)", "flame.uv_face_eye_mask_path", f"{FLAME_OBTAIN} or {DECA_OBTAIN}"
)


def load_uv_mask(png_path: str | os.PathLike, spec: AssetSpec = UV_FACE_MASK_SPEC) -> np.ndarray:
    """Read a UV mask PNG: (H, W) float32 in [0, 1] = channel 0 / max value (255 for 8-bit PNGs).

    Args:
        png_path: the PNG (grey, RGB or RGBA; official masks are 256² RGBA).
        spec: how the file is described if missing.
    """
    import imageio.v3 as iio

    path = require_file(png_path, spec)
    try:
        img = np.asarray(iio.imread(path.read_bytes(), extension=".png"))
    except Exception as err:  # imageio raises many types for corrupt images
        raise AssetFormatError(f"{path}: not a readable PNG image ({type(err).__name__}: {err})") from err
    if img.ndim == 3:
        img = img[..., 0]
    if img.ndim != 2 or img.dtype not in (np.uint8, np.uint16):
        raise AssetFormatError(f"{path}: expected an 8/16-bit (H, W[, C]) mask image, got {img.dtype} {img.shape}")
    return (img.astype(np.float32) / float(np.iinfo(img.dtype).max)).astype(np.float32)
