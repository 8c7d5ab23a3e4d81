"""load_image / iter_image_paths / to_tensor on real files written on the fly with Pillow (and a hand-made PNG)."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from albedogan.assets.locate import MissingAssetError
from albedogan.datamodules.images import (
    ImageLoadError,
    NoImagesFoundError,
    center_crop_resize,
    downscale_to_max_side,
    iter_image_paths,
    load_image,
    to_tensor,
)

RED, BLUE = (255, 0, 0), (0, 0, 255)


def _png_bytes(width: int, height: int, bit_depth: int, colour_type: int, raw_rows: bytes) -> bytes:
    """A PNG file written by hand (independent of Pillow's encoder): signature, IHDR, one IDAT, IEND."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw_rows)) + chunk(b"IEND", b"")


def _left_red_right_blue(h: int = 16, w: int = 32) -> np.ndarray:
    img = np.zeros((h, w, 3), np.uint8)
    img[:, : w // 2] = RED
    img[:, w // 2 :] = BLUE
    return img


def _save_jpeg_with_orientation(path: Path, pixels: np.ndarray, orientation: int) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(pixels).save(path, format="JPEG", quality=95, exif=exif)


# ---------------------------------------------------------------------------------------------------------------- EXIF
@pytest.mark.parametrize("orientation,top_colour", [(6, RED), (8, BLUE)])
def test_exif_orientation_is_applied(tmp_path: Path, orientation: int, top_colour: tuple) -> None:
    # Stored 16x32 landscape, left red / right blue. Tag 6 = rotate 90° clockwise to display: the left (red) half
    # ends up on top; tag 8 = 90° counter-clockwise: the right (blue) half ends up on top.
    path = tmp_path / f"o{orientation}.jpg"
    _save_jpeg_with_orientation(path, _left_red_right_blue(), orientation)
    img = load_image(path)
    assert img.shape == (32, 16, 3) and img.dtype == np.uint8
    top, bottom = img[:14].reshape(-1, 3).mean(0), img[18:].reshape(-1, 3).mean(0)
    other = BLUE if top_colour == RED else RED
    np.testing.assert_allclose(top, top_colour, atol=12)
    np.testing.assert_allclose(bottom, other, atol=12)


def test_no_exif_keeps_layout(tmp_path: Path) -> None:
    path = tmp_path / "plain.jpg"
    Image.fromarray(_left_red_right_blue()).save(path, quality=95)
    img = load_image(path)
    assert img.shape == (16, 32, 3)
    np.testing.assert_allclose(img[:, :14].reshape(-1, 3).mean(0), RED, atol=12)


# --------------------------------------------------------------------------------------------------------- pixel modes
def test_greyscale_L_and_1bit(tmp_path: Path) -> None:
    grey = np.arange(48, dtype=np.uint8).reshape(6, 8) * 5
    Image.fromarray(grey, mode="L").save(tmp_path / "g.png")
    out = load_image(tmp_path / "g.png")
    assert out.shape == (6, 8, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], grey)
    bits = np.zeros((4, 4), bool)
    bits[0, :] = True
    Image.fromarray(bits).convert("1").save(tmp_path / "b.png")
    out1 = load_image(tmp_path / "b.png")
    np.testing.assert_array_equal(out1[0], np.full((4, 3), 255))
    np.testing.assert_array_equal(out1[1:], 0)


def test_16bit_greyscale_png_scaled(tmp_path: Path) -> None:
    values = np.array([[0, 257, 32896, 65535], [128, 1000, 40000, 65280]], np.uint16)
    rows = b"".join(b"\x00" + r.astype(">u2").tobytes() for r in values)  # filter 0, big-endian samples
    (tmp_path / "g16.png").write_bytes(_png_bytes(4, 2, 16, 0, rows))
    out = load_image(tmp_path / "g16.png")
    expected = np.rint(values / 257.0).astype(np.uint8)  # 65535 -> 255, 257 -> 1
    np.testing.assert_array_equal(out[:, :, 0], expected)
    np.testing.assert_array_equal(out[:, :, 2], expected)


def test_16bit_rgb_png_high_byte(tmp_path: Path) -> None:
    values = np.array([[[65535, 0, 32768], [256, 512, 65280]]], np.uint16)  # (1, 2, 3)
    rows = b"\x00" + values.astype(">u2").tobytes()
    (tmp_path / "rgb16.png").write_bytes(_png_bytes(2, 1, 16, 2, rows))
    out = load_image(tmp_path / "rgb16.png")
    assert out.shape == (1, 2, 3)
    assert np.abs(out.astype(int) - np.rint(values / 257.0)).max() <= 1  # Pillow keeps the high byte


def test_cmyk_jpeg(tmp_path: Path) -> None:
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg", quality=95)
    assert Image.open(tmp_path / "cmyk.jpg").mode == "CMYK"
    out = load_image(tmp_path / "cmyk.jpg")
    np.testing.assert_allclose(out.reshape(-1, 3).mean(0), RED, atol=10)


@pytest.mark.parametrize("ext", ["png", "gif"])
def test_palette_images(tmp_path: Path, ext: str) -> None:
    colours = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [250, 250, 0]], np.uint8)
    pixels = colours[np.arange(24).reshape(4, 6) % 4]  # (4, 6, 3)
    img = Image.fromarray(pixels).convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    img.save(tmp_path / f"p.{ext}")
    assert Image.open(tmp_path / f"p.{ext}").mode == "P"
    np.testing.assert_array_equal(load_image(tmp_path / f"p.{ext}"), pixels)


def test_palette_with_transparency_goes_to_background(tmp_path: Path) -> None:
    img = Image.new("P", (2, 1))
    img.putpalette([10, 20, 30, 200, 0, 0] + [0] * (256 * 3 - 6))
    img.putpixel((0, 0), 0)
    img.putpixel((1, 0), 1)
    img.save(tmp_path / "pt.png", transparency=0)
    np.testing.assert_array_equal(load_image(tmp_path / "pt.png"), [[[255, 255, 255], [200, 0, 0]]])


def test_rgba_and_la_composited_on_background(tmp_path: Path) -> None:
    rgba = np.array([[[10, 20, 30, 0], [10, 20, 30, 255], [200, 100, 0, 128]]], np.uint8)
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    a = rgba[..., 3:].astype(float) / 255.0
    expected = np.rint(a * rgba[..., :3] + (1 - a) * 255.0).astype(np.uint8)
    np.testing.assert_array_equal(load_image(tmp_path / "a.png"), expected)
    black = np.rint(a * rgba[..., :3]).astype(np.uint8)
    np.testing.assert_array_equal(load_image(tmp_path / "a.png", background=(0, 0, 0)), black)
    la = np.array([[[100, 0], [100, 255]]], np.uint8)
    Image.fromarray(la, mode="LA").save(tmp_path / "la.png")
    np.testing.assert_array_equal(load_image(tmp_path / "la.png"), [[[255] * 3, [100] * 3]])


def test_float_mode_is_rejected(tmp_path: Path) -> None:
    Image.fromarray(np.zeros((3, 3), np.float32), mode="F").save(tmp_path / "f.tif")
    with pytest.raises(ImageLoadError) as info:
        load_image(tmp_path / "f.tif")
    assert info.value.reason == "unreadable" and "mode 'F'" in str(info.value)


# ------------------------------------------------------------------------------------------------------------ failures
def _expect(path: Path, reason: str, **kwargs) -> ImageLoadError:
    with pytest.raises(ImageLoadError) as info:
        load_image(path, **kwargs)
    err = info.value
    assert err.reason == reason, str(err)
    assert err.path == path and str(path) in str(err)
    assert isinstance(err, ValueError)
    return err


@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_truncated_jpeg(tmp_path: Path, keep: float) -> None:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, format="JPEG")
    data = buf.getvalue()
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: int(len(data) * keep)])
    _expect(path, "truncated")


def test_truncated_png(tmp_path: Path) -> None:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(buf, format="PNG")
    (tmp_path / "cut.png").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    _expect(tmp_path / "cut.png", "truncated")


def test_text_file_named_jpg_empty_file_directory_and_missing(tmp_path: Path) -> None:
    (tmp_path / "notes.jpg").write_text("this is not a photo\n")
    _expect(tmp_path / "notes.jpg", "not_an_image")
    (tmp_path / "empty.png").write_bytes(b"")
    _expect(tmp_path / "empty.png", "empty")
    (tmp_path / "folder.jpg").mkdir()
    assert "directory" in str(_expect(tmp_path / "folder.jpg", "unreadable"))
    assert "does not exist" in str(_expect(tmp_path / "nope.jpg", "unreadable"))


def test_decompression_bomb_header_is_refused_before_decoding(tmp_path: Path) -> None:
    # A 100-byte file that declares 100000 x 100000 pixels (10 gigapixels): refused from the header.
    (tmp_path / "bomb.png").write_bytes(_png_bytes(100_000, 100_000, 8, 2, b"\x00" * 10))
    err = _expect(tmp_path / "bomb.png", "too_large")
    assert "100000" in str(err)
    # Our own (configurable) limit, with the size in the message.
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(tmp_path / "small.png")
    err = _expect(tmp_path / "small.png", "too_large", max_pixels=100)
    assert "30x20" in str(err)
    assert load_image(tmp_path / "small.png", max_pixels=600).shape == (20, 30, 3)


def test_error_survives_pickling(tmp_path: Path) -> None:
    import pickle

    err = ImageLoadError(tmp_path / "x.jpg", "truncated", "cut")
    back = pickle.loads(pickle.dumps(err))  # noqa: S301 - our own object, round trip only
    assert back.reason == "truncated" and back.path == err.path and str(back) == str(err)
    with pytest.raises(ValueError, match="unknown reason"):
        ImageLoadError("x", "bogus", "detail")


# ------------------------------------------------------------------------------------------------- resizing + tensors
def test_max_side_and_downscale(tmp_path: Path) -> None:
    pixels = _left_red_right_blue(20, 40)
    Image.fromarray(pixels).save(tmp_path / "w.png")
    small = load_image(tmp_path / "w.png", max_side=10)
    assert small.shape == (5, 10, 3)
    np.testing.assert_array_equal(small[:, :4], np.broadcast_to(np.array(RED, np.uint8), (5, 4, 3)))
    np.testing.assert_array_equal(downscale_to_max_side(pixels, 64), pixels)  # already small: unchanged
    Image.fromarray(_left_red_right_blue(200, 400)).save(tmp_path / "big.jpg", quality=95)
    assert load_image(tmp_path / "big.jpg", max_side=50).shape == (25, 50, 3)  # JPEG draft path


def test_center_crop_resize_keeps_the_centre() -> None:
    img = np.zeros((4, 8, 3), np.uint8)
    img[:, :2] = RED
    img[:, 2:6] = (0, 255, 0)
    img[:, 6:] = BLUE
    out = center_crop_resize(img, 2)
    assert out.shape == (2, 2, 3)
    np.testing.assert_array_equal(out, np.broadcast_to(np.array([0, 255, 0], np.uint8), (2, 2, 3)))
    assert center_crop_resize(img, 8).shape == (8, 8, 3)


def test_to_tensor_values_and_validation() -> None:
    img = np.array([[[0, 128, 255], [1, 2, 3]]], np.uint8)  # (1, 2, 3)
    t = to_tensor(img)
    assert t.shape == (3, 1, 2) and t.dtype == torch.float32
    assert torch.equal(t[:, 0, 0], torch.tensor([0.0, 128.0, 255.0]) / 255.0)
    assert to_tensor(img, torch.float64).dtype == torch.float64
    for bad in (np.zeros((2, 2), np.uint8), np.zeros((2, 2, 4), np.uint8), np.zeros((2, 2, 3), np.float32)):
        with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
            to_tensor(bad)


# --------------------------------------------------------------------------------------------------------- path specs
def _make_tree(root: Path) -> None:
    tiny = Image.new("RGB", (2, 2))
    for rel in ("00000/00000.png", "00000/00001.PNG", "01000/01000.jpg", "a.JPEG", "b.webp", "c.TIFF"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        tiny.save(root / rel, format={"png": "PNG", "jpg": "JPEG", "jpeg": "JPEG", "webp": "WEBP", "tiff": "TIFF"}[
            rel.rsplit(".", 1)[1].lower()
        ])
    (root / "notes.txt").write_text("x")
    (root / "._a.jpg").write_bytes(b"\x00\x05")  # macOS AppleDouble junk
    (root / ".cache").mkdir()
    tiny.save(root / ".cache" / "thumb.png")


def test_iter_image_paths_folder_recursive_and_flat(tmp_path: Path) -> None:
    _make_tree(tmp_path)
    rel = [p.relative_to(tmp_path).as_posix() for p in iter_image_paths(tmp_path)]
    assert rel == ["00000/00000.png", "00000/00001.PNG", "01000/01000.jpg", "a.JPEG", "b.webp", "c.TIFF"]
    flat = [p.name for p in iter_image_paths(str(tmp_path), recursive=False)]
    assert flat == ["a.JPEG", "b.webp", "c.TIFF"]


def test_iter_image_paths_glob_file_and_list(tmp_path: Path) -> None:
    _make_tree(tmp_path)
    assert [p.name for p in iter_image_paths(str(tmp_path / "*" / "*.png"))] == ["00000.png"]
    everything = [p.relative_to(tmp_path).as_posix() for p in iter_image_paths(str(tmp_path / "**" / "*"))]
    assert everything == ["00000/00000.png", "00000/00001.PNG", "01000/01000.jpg", "a.JPEG", "b.webp", "c.TIFF"]
    assert iter_image_paths(tmp_path / "notes.txt") == [tmp_path / "notes.txt"]  # explicit file: taken as given
    listed = iter_image_paths([tmp_path / "a.JPEG", tmp_path / "00000", str(tmp_path / "a.JPEG")])
    assert [p.name for p in listed] == ["a.JPEG", "00000.png", "00001.PNG"]


def test_iter_image_paths_nothing_found(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    for spec in (tmp_path / "empty", tmp_path / "missing", str(tmp_path / "*.png"), []):
        with pytest.raises(NoImagesFoundError, match="no image files found") as info:
            iter_image_paths(spec)
        assert isinstance(info.value, MissingAssetError)
    with pytest.raises(NoImagesFoundError, match="missing"):
        iter_image_paths(tmp_path / "missing")
