"""ImageFolderDataset / ImageFolderDataModule on a tiny FFHQ-style tree with broken files mixed in."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from albedogan.assets.locate import MissingAssetError
from albedogan.datamodules.image_folder import ImageFolderDataModule, ImageFolderDataset, ImageSample

R = 8


def _ffhq_tree(root: Path) -> list[Path]:
    """00000/00000.png .. 00000/00002.png (solid colours, 16x24 landscape) plus two broken files."""
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    good = []
    for k, colour in enumerate(colours):
        path = root / "00000" / f"0000{k}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (24, 16), colour).save(path)
        good.append(path)
    (root / "00000" / "00001b.png").write_bytes(b"")  # empty file, sorts between 00001 and 00002
    (root / "01000").mkdir()
    (root / "01000" / "01000.jpg").write_text("not a jpeg")
    return good


def test_dataset_samples_and_skips_broken_files(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _ffhq_tree(tmp_path)
    ds = ImageFolderDataset(tmp_path, resolution=R)
    names = [p.name for p in ds.paths]
    assert names == ["00000.png", "00001.png", "00001b.png", "00002.png", "01000.jpg"]
    s0 = ds[0]
    assert isinstance(s0, ImageSample) and s0.image.shape == (3, R, R) and s0.image.dtype == torch.float32
    assert torch.allclose(s0.image, torch.tensor([1.0, 0.0, 0.0]).view(3, 1, 1).expand(3, R, R))
    with caplog.at_level(logging.WARNING, logger="albedogan"):
        s2 = ds[2]  # the empty file: replaced by the next readable one, with a warning
    assert s2.index == 3 and s2.path.endswith("00002.png")
    assert torch.allclose(s2.image[:, 0, 0], torch.tensor([0.0, 0.0, 1.0]))
    assert "00001b.png" in caplog.text and "empty" in caplog.text
    s4 = ds[4]  # the text file: wraps around to the first file
    assert s4.index == 0
    assert ds.num_skipped == 2 and ds.skipped == {2: "empty", 4: "not_an_image"}
    assert ds[-1].index == 0
    with pytest.raises(IndexError):
        ds[5]


def test_dataset_all_broken_raises_once(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(b"")
    (tmp_path / "b.jpg").write_text("x")
    ds = ImageFolderDataset(tmp_path, resolution=R)
    with pytest.raises(RuntimeError, match="all 2 image files are unreadable"):
        ds[0]


def test_dataset_crops_the_centre(tmp_path: Path) -> None:
    img = np.zeros((10, 30, 3), np.uint8)
    img[:, 10:20] = 255  # the centred 10x10 square is white, the sides black
    Image.fromarray(img).save(tmp_path / "wide.png")
    sample = ImageFolderDataset(tmp_path / "wide.png", resolution=5)[0]
    assert sample.image.shape == (3, 5, 5) and torch.equal(sample.image, torch.ones(3, 5, 5))


def test_datamodule_batches(tmp_path: Path) -> None:
    _ffhq_tree(tmp_path)
    dm = ImageFolderDataModule(path=str(tmp_path), batch_size=2, resolution=R, shuffle=False)
    batches = list(dm.train_dataloader())
    assert [b.image.shape for b in batches] == [(2, 3, R, R), (2, 3, R, R), (1, 3, R, R)]
    assert batches[0].index.tolist() == [0, 1] and batches[0].path == tuple(str(p) for p in dm.dataset.paths[:2])
    assert batches[0].image.min() >= 0 and batches[0].image.max() <= 1
    predicted = list(dm.predict_dataloader())
    assert sum(len(b.index) for b in predicted) == 5
    shuffled = ImageFolderDataModule(path=str(tmp_path), batch_size=5, resolution=R, drop_last=True)
    torch.manual_seed(0)
    (only,) = list(shuffled.train_dataloader())
    assert only.image.shape == (5, 3, R, R)


@pytest.mark.parametrize("which", ["missing", "empty", "unset"])
def test_datamodule_missing_or_empty_folder_names_config_key(tmp_path: Path, which: str) -> None:
    folder = tmp_path / which
    if which == "empty":
        folder.mkdir()
        (folder / "readme.txt").write_text("no images here")
    if which == "unset":
        with pytest.raises(MissingAssetError, match="data.path"):
            ImageFolderDataModule(path="", batch_size=2, resolution=R)
        return
    dm = ImageFolderDataModule(path=str(folder), batch_size=2, resolution=R)
    with pytest.raises(MissingAssetError) as info:
        dm.setup("fit")
    message = str(info.value)
    assert "data.path" in message and str(folder) in message
