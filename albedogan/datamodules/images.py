"""Robust photo loading: any image a real folder contains becomes an (H, W, 3) uint8 RGB array, or one typed error.

Conventions (one home for all image-file I/O in albedogan):

* Output of :func:`load_image` is a C-contiguous ``numpy.ndarray`` of shape (H, W, 3), dtype ``uint8``, RGB order,
  row 0 at the top of the image *as displayed*: the EXIF ``Orientation`` tag is applied (a phone photo stored
  sideways with tag 6/8 comes back upright). Malformed EXIF is ignored with a logged warning (the pixels are fine).
* Pixel modes: ``L`` / ``1`` / ``I;16*`` / ``I`` greyscale are replicated to three channels; 16-bit samples
  (0..65535) are scaled to 8 bits by ``round(v / 257)`` (65535 → 255 exactly); ``I`` (32-bit int) is read as
  16-bit data and clipped to [0, 65535]. 16-bit RGB(A) PNGs are reduced to 8 bits by Pillow itself.
  ``CMYK`` (incl. Adobe-inverted JPEGs, which Pillow un-inverts) and ``YCbCr`` use Pillow's naive conversion
  (embedded ICC profiles are ignored). Palette (``P``) images are expanded through their palette.
* Transparency (``RGBA``, ``LA``, ``PA``, palette with a ``transparency`` entry) is **composited over a solid
  background** (white by default, ``background=``) with straight (non-premultiplied) alpha:
  ``rgb = alpha * colour + (1 - alpha) * background``. This is deterministic, unlike dropping alpha, which exposes
  whatever colour the encoder left under fully transparent pixels.
* Multi-frame files (animated GIF/WebP, multi-page TIFF) give their first frame.
* Float (``F``) and other exotic modes raise :class:`ImageLoadError` with reason ``"unreadable"``.

Failures raise :class:`ImageLoadError` (a ``ValueError``) carrying ``path`` and a machine-readable ``reason``:

* ``"empty"``: a 0-byte file;
* ``"not_an_image"``: Pillow cannot identify it (text, HTML, HEIC/SVG without plugins);
* ``"truncated"``: the pixel data ends early. Partial loads are not returned, unless other code sets Pillow's
  global ``ImageFile.LOAD_TRUNCATED_IMAGES = True`` (this module never touches that global);
* ``"too_large"``: more pixels than ``max_pixels`` or than Pillow's absolute guard ``2 * Image.MAX_IMAGE_PIXELS``,
  checked from the header before any pixel is decoded;
* ``"unreadable"``: missing path, a directory, permission denied, corrupt data, unsupported pixel mode.
"""

from __future__ import annotations

import glob
import os
import warnings
from pathlib import Path
from typing import Iterable, Sequence, Union

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from albedogan.assets.locate import MissingAssetError
from albedogan.utils.logging import get_logger

__all__ = [
    "IMAGE_EXTENSIONS",
    "DEFAULT_MAX_PIXELS",
    "ImageLoadError",
    "NoImagesFoundError",
    "load_image",
    "iter_image_paths",
    "to_tensor",
    "downscale_to_max_side",
    "center_crop_resize",
]

_log = get_logger(__name__)

#: File extensions (lower case, with dot) that folder and glob specs pick up; matching is case-insensitive.
IMAGE_EXTENSIONS: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"})

#: Default decompression-bomb guard: 100 megapixels (a 10000 x 10000 image decodes to 300 MB of uint8 RGB).
DEFAULT_MAX_PIXELS: int = 100_000_000

ImageSpec = Union[str, os.PathLike, Sequence[Union[str, os.PathLike]]]

_REASONS = ("not_an_image", "truncated", "too_large", "empty", "unreadable")
_GLOB_CHARS = ("*", "?", "[")


class ImageLoadError(ValueError):
    """An image file could not be turned into pixels.

    Attributes:
        path: the offending file.
        reason: one of ``"not_an_image"``, ``"truncated"``, ``"too_large"``, ``"empty"``, ``"unreadable"``.
    """

    def __init__(self, path: str | os.PathLike, reason: str, detail: str) -> None:
        if reason not in _REASONS:
            raise ValueError(f"ImageLoadError: unknown reason {reason!r}; expected one of {_REASONS}")
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"cannot load image {self.path} ({reason}): {detail}")

    def __reduce__(self):  # keep path/reason when pickled across DataLoader worker processes
        detail = str(self).split("): ", 1)[-1]
        return (type(self), (self.path, self.reason, detail))


class NoImagesFoundError(MissingAssetError):
    """An image spec (file, folder, glob or list of them) matched no image file."""


def _check_max_pixels(path: Path, size: tuple[int, int], max_pixels: int | None) -> None:
    width, height = size
    if max_pixels is not None and width * height > max_pixels:
        raise ImageLoadError(
            path,
            "too_large",
            f"{width}x{height} = {width * height / 1e6:.1f} MP exceeds the limit of {max_pixels / 1e6:.1f} MP "
            "(decompression-bomb guard); if the file is trusted raise the limit (infer.py: `mode.max_pixels=`, "
            "e.g. mode.max_pixels=300000000), or downscale it first",
        )


def _to_rgb(img: Image.Image, path: Path, background: tuple[int, int, int]) -> np.ndarray:
    """Convert a loaded Pillow image of any supported mode to (H, W, 3) uint8 RGB (see module docstring)."""
    mode = img.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        values = np.asarray(img).astype(np.float64)  # (H, W) raw 16-bit (or int32) samples
        grey = np.clip(np.rint(np.clip(values, 0.0, 65535.0) / 257.0), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2))
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif mode == "PA":
        img = img.convert("RGBA")
    elif mode in ("LA", "La", "RGBa"):
        img = img.convert("RGBA")
    if img.mode == "RGBA":
        rgba = np.asarray(img).astype(np.float32)  # (H, W, 4) in [0, 255]
        alpha = rgba[:, :, 3:4] / 255.0
        bg = np.asarray(background, dtype=np.float32).reshape(1, 1, 3)
        rgb = alpha * rgba[:, :, :3] + (1.0 - alpha) * bg
        return np.ascontiguousarray(np.clip(np.rint(rgb), 0, 255).astype(np.uint8))
    if img.mode in ("1", "L", "RGB", "RGBX", "CMYK", "YCbCr"):
        return np.ascontiguousarray(np.asarray(img.convert("RGB"), dtype=np.uint8))
    raise ImageLoadError(
        path, "unreadable", f"unsupported pixel mode {img.mode!r}; re-save it as 8/16-bit RGB or greyscale PNG/JPEG"
    )


def load_image(
    path: str | os.PathLike,
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    max_side: int | None = None,
    background: tuple[int, int, int] = (255, 255, 255),
) -> np.ndarray:
    """Load one image file as upright RGB pixels.

    Args:
        path: image file (any format Pillow reads: JPEG, PNG, WebP, BMP, TIFF, GIF, ...).
        max_pixels: refuse images whose header declares more than this many pixels (width * height), before any
            pixel is decoded; ``None`` disables this guard (Pillow's own ``2 * MAX_IMAGE_PIXELS`` still applies).
        max_side: if given, downscale (area-averaging) so that max(H, W) <= max_side; JPEGs are decoded at a
            reduced DCT scale first, which is much faster for big photos.
        background: RGB colour in [0, 255] under transparent pixels.

    Returns:
        (H, W, 3) uint8 RGB array in [0, 255], EXIF orientation applied.

    Raises:
        ImageLoadError: with ``reason`` in {"empty", "not_an_image", "truncated", "too_large", "unreadable"}.
    """
    path = Path(path)
    if max_side is not None and max_side < 1:
        raise ValueError(f"load_image: max_side must be a positive integer or None, got {max_side}")
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ImageLoadError(path, "unreadable", "the file does not exist; check the path") from None
    except OSError as err:
        raise ImageLoadError(path, "unreadable", f"cannot stat the file: {err.strerror or err}") from err
    if path.is_dir():
        raise ImageLoadError(
            path, "unreadable", "this is a directory, not an image file; pass a file, or the folder as an image spec"
        )
    if st.st_size == 0:
        raise ImageLoadError(path, "empty", "the file has 0 bytes (interrupted download or copy?)")

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own max_pixels guard decides
            with Image.open(path) as img:
                _check_max_pixels(path, img.size, max_pixels)
                if max_side is not None and img.format == "JPEG":
                    img.draft("RGB", (max_side, max_side))  # decode at >= max_side per dim, DCT-scaled
                img.seek(0)
                img.load()
                try:
                    upright = ImageOps.exif_transpose(img)
                except Exception as err:  # noqa: BLE001 - malformed EXIF must not lose a valid photo
                    _log.warning("ignoring malformed EXIF orientation in %s: %s", path, err)
                    upright = img
                pixels = _to_rgb(upright, path, background)
    except ImageLoadError:
        raise
    except Image.DecompressionBombError as err:
        raise ImageLoadError(path, "too_large", f"{err}; downscale the file before use") from err
    except UnidentifiedImageError as err:
        raise ImageLoadError(
            path, "not_an_image", "the content is not an image format Pillow can read (wrong extension? text/HTML?)"
        ) from err
    except (OSError, SyntaxError, EOFError, ValueError) as err:
        text = str(err)
        if isinstance(err, EOFError) or "truncated" in text.lower() or "broken data stream" in text.lower():
            detail = f"the pixel data ends early ({text}); re-download or re-export the file"
            raise ImageLoadError(path, "truncated", detail) from err
        if isinstance(err, PermissionError):
            raise ImageLoadError(path, "unreadable", "permission denied; check the file's permissions") from err
        raise ImageLoadError(path, "unreadable", f"decoding failed: {text or type(err).__name__}") from err
    if max_side is not None:
        pixels = downscale_to_max_side(pixels, max_side)
    return pixels


def _check_image_array(image: np.ndarray, name: str) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        got = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"{name}: expected an (H, W, 3) uint8 RGB array (as from load_image), got {got}")


def _resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Antialiased resize of (H, W, 3) uint8 to (height, width, 3) uint8 (Pillow box filter down, bicubic up)."""
    h, w = image.shape[:2]
    if (w, h) == (width, height):
        return image
    shrinking = width <= w and height <= h
    resample = Image.Resampling.BOX if shrinking else Image.Resampling.BICUBIC
    return np.asarray(Image.fromarray(image).resize((width, height), resample=resample), dtype=np.uint8)


def downscale_to_max_side(image: np.ndarray, max_side: int) -> np.ndarray:
    """Shrink an image (aspect ratio kept, area averaging) so that its longer side is at most ``max_side``.

    Args:
        image: (H, W, 3) uint8 RGB.
        max_side: largest allowed H or W in pixels (>= 1). Images already small enough are returned unchanged.

    Returns:
        (h, w, 3) uint8 with max(h, w) <= max_side and h/w ≈ H/W (each side at least 1 pixel).
    """
    _check_image_array(image, "downscale_to_max_side")
    h, w = image.shape[:2]
    if max(h, w) <= max_side:
        return image
    scale = max_side / max(h, w)
    return _resize(image, max(1, min(max_side, round(w * scale))), max(1, min(max_side, round(h * scale))))


def center_crop_resize(image: np.ndarray, size: int) -> np.ndarray:
    """Crop the largest centred square and resize it to ``size`` x ``size`` (antialiased).

    Args:
        image: (H, W, 3) uint8 RGB.
        size: output side in pixels (>= 1).

    Returns:
        (size, size, 3) uint8 RGB. The crop keeps rows/columns ``[(H - s) // 2, (H - s) // 2 + s)`` with
        s = min(H, W) (the extra odd pixel is dropped from the bottom/right).
    """
    _check_image_array(image, "center_crop_resize")
    if size < 1:
        raise ValueError(f"center_crop_resize: size must be >= 1, got {size}")
    h, w = image.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    square = np.ascontiguousarray(image[top : top + side, left : left + side])
    return _resize(square, size, size)


def to_tensor(image: np.ndarray, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Convert an (H, W, 3) uint8 RGB array to a (3, H, W) floating tensor in [0, 1] (value / 255).

    Args:
        image: (H, W, 3) uint8 RGB, as returned by :func:`load_image`.
        dtype: floating output dtype.

    Returns:
        (3, H, W) tensor of ``dtype`` on the CPU, channels R, G, B, range [0, 1]. The input is not modified.
    """
    _check_image_array(image, "to_tensor")
    if not dtype.is_floating_point:
        raise ValueError(f"to_tensor: dtype must be floating, got {dtype}")
    chw = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))  # (3, H, W) uint8, a new array
    return chw.to(dtype) / 255.0


def _has_image_ext(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def _walk_folder(folder: Path, recursive: bool) -> list[Path]:
    """Image files under ``folder`` (hidden files/folders such as ``.DS_Store``, ``._x.jpg`` skipped), sorted."""
    found: list[Path] = []
    if recursive:
        for root, dirs, files in os.walk(folder, followlinks=False):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            found.extend(Path(root) / f for f in files if not f.startswith(".") and _has_image_ext(Path(f)))
    else:
        found = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and _has_image_ext(p)]
    return sorted(found, key=lambda p: p.as_posix())


def _expand_one(spec: str | os.PathLike, recursive: bool) -> tuple[list[Path], str]:
    text = os.path.expanduser(os.fspath(spec))
    path = Path(text)
    if path.is_file():
        return [path], "file"
    if path.is_dir():
        return _walk_folder(path, recursive), "folder"
    if any(c in text for c in _GLOB_CHARS):
        matches = sorted(glob.glob(text, recursive=True))
        return [Path(m) for m in matches if Path(m).is_file() and _has_image_ext(Path(m))], "glob"
    return [], "missing"


def iter_image_paths(spec: ImageSpec, *, recursive: bool = True) -> list[Path]:
    """Expand an image spec into a sorted, de-duplicated list of image files.

    Args:
        spec: one of
            * a file path: returned as is (whatever its extension; :func:`load_image` judges the content);
            * a folder: image files inside it (extensions :data:`IMAGE_EXTENSIONS`, case-insensitive), searched
              recursively when ``recursive`` (e.g. FFHQ ``00000/00000.png``), hidden entries skipped, sorted by
              POSIX path;
            * a glob pattern (contains ``*``, ``?`` or ``[``; ``**`` recurses): matching image files, sorted;
            * a list/tuple of the above: concatenated in the given order, duplicates dropped (first kept).
        recursive: descend into sub-folders of folder specs.

    Returns:
        Non-empty list of paths.

    Raises:
        NoImagesFoundError: when nothing matches; the message lists every spec entry and what it was.
    """
    entries: Iterable[str | os.PathLike] = [spec] if isinstance(spec, (str, os.PathLike)) else list(spec)
    result: list[Path] = []
    seen: set[Path] = set()
    report: list[str] = []
    for entry in entries:
        if not isinstance(entry, (str, os.PathLike)):
            raise TypeError(f"iter_image_paths: spec entries must be paths or strings, got {type(entry).__name__}")
        paths, kind = _expand_one(entry, recursive)
        report.append(f"  - {os.fspath(entry)!s}: {kind}, {len(paths)} image(s)")
        for p in paths:
            key = p.resolve()
            if key not in seen:
                seen.add(key)
                result.append(p)
    if not result:
        exts = " ".join(sorted(IMAGE_EXTENSIONS))
        raise NoImagesFoundError(
            "no image files found for spec:\n" + "\n".join(report or ["  - (empty list)"]) + f"\n"
            f"Give an existing image file, a folder containing {exts} files"
            f"{'' if recursive else ' (recursive=False: sub-folders were not searched)'}, or a glob pattern."
        )
    return result
