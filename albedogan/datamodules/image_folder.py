"""Image-folder datasets (FFHQ ``00000/00000.png`` layout, or any photo collection) and their DataModule.

Every file goes through :func:`albedogan.datamodules.images.load_image` (EXIF orientation, any pixel mode → RGB,
decompression-bomb guard), then :func:`~albedogan.datamodules.images.center_crop_resize` (largest centred square,
antialiased resize to ``resolution``). A file that fails to load is *skipped*, not fatal: the item is replaced by
the next readable file (cyclically), a warning names the file and reason once, and the dataset counts it
(:attr:`ImageFolderDataset.skipped`; per process, so with DataLoader workers each worker keeps its own record).
"""

from __future__ import annotations

import os
from typing import NamedTuple

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from albedogan.assets.locate import MissingAssetError
from albedogan.datamodules.images import (
    DEFAULT_MAX_PIXELS,
    ImageLoadError,
    ImageSpec,
    NoImagesFoundError,
    center_crop_resize,
    iter_image_paths,
    load_image,
    to_tensor,
)
from albedogan.utils.logging import get_logger

__all__ = ["ImageSample", "ImageFolderDataset", "ImageFolderDataModule"]

_log = get_logger(__name__)


class ImageSample(NamedTuple):
    """One image (or, after default collation, a batch of N).

    Attributes:
        image: (3, R, R) RGB in [0, 1], float32 ((N, 3, R, R) when batched); R = the dataset's ``resolution``.
        index: position of the file actually returned in :attr:`ImageFolderDataset.paths` (differs from the
            requested index when that file was skipped); (N,) int64 when batched.
        path: that file's path as a string (a tuple of N strings when batched).
    """

    image: torch.Tensor
    index: int
    path: str


class ImageFolderDataset(Dataset):
    """Square RGB crops of every image matched by an image spec.

    Args:
        spec: file, folder, glob or list of them (see :func:`~albedogan.datamodules.images.iter_image_paths`).
        resolution: output side R in pixels.
        recursive: search sub-folders of folder specs.
        max_pixels: decompression-bomb guard per file (``None``: Pillow's own limit only).

    Raises:
        NoImagesFoundError: the spec matches no image file.
    """

    def __init__(
        self,
        spec: ImageSpec,
        resolution: int,
        recursive: bool = True,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
    ) -> None:
        if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 1:
            raise ValueError(f"ImageFolderDataset: resolution must be a positive integer, got {resolution!r}")
        self.paths = iter_image_paths(spec, recursive=recursive)
        self.resolution = resolution
        self.max_pixels = max_pixels
        self.skipped: dict[int, str] = {}  # index -> reason, files found unreadable in this process

    @property
    def num_skipped(self) -> int:
        """How many files this process has found unreadable so far."""
        return len(self.skipped)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> ImageSample:
        n = len(self.paths)
        if not -n <= index < n:
            raise IndexError(f"ImageFolderDataset: index {index} out of range for {n} images")
        index %= n
        for offset in range(n):
            j = (index + offset) % n
            if j in self.skipped:
                continue
            try:
                pixels = load_image(self.paths[j], max_pixels=self.max_pixels)
            except ImageLoadError as err:
                self.skipped[j] = err.reason
                _log.warning("skipping unreadable image (%d skipped so far): %s", len(self.skipped), err)
                continue
            return ImageSample(to_tensor(center_crop_resize(pixels, self.resolution)), j, str(self.paths[j]))
        reasons = sorted(set(self.skipped.values()))
        raise RuntimeError(
            f"ImageFolderDataset: all {n} image files are unreadable (reasons: {', '.join(reasons)}); "
            f"first one: {self.paths[0]}"
        )


class ImageFolderDataModule(pl.LightningDataModule):
    """Batches of :class:`ImageSample` from an image folder (config group ``data``).

    Args:
        path: file, folder, glob or list of them (config key ``data.path``).
        batch_size: images per batch and per device.
        resolution: square output side in pixels.
        num_workers: DataLoader worker processes.
        recursive: search sub-folders.
        shuffle: shuffle the training order (seeded by Lightning's ``seed_everything``).
        drop_last: drop the last incomplete training batch.
        max_pixels: decompression-bomb guard per file.
    """

    def __init__(
        self,
        path: ImageSpec,
        batch_size: int,
        resolution: int,
        num_workers: int = 0,
        recursive: bool = True,
        shuffle: bool = True,
        drop_last: bool = False,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
    ) -> None:
        super().__init__()
        if path in (None, ""):
            raise MissingAssetError("data.path is not set; set `data.path=<folder of images>`")
        self.path = path
        self.batch_size = batch_size
        self.resolution = resolution
        self.num_workers = num_workers
        self.recursive = recursive
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.max_pixels = max_pixels
        self.dataset: ImageFolderDataset | None = None

    def setup(self, stage: str | None = None) -> None:
        """Index the image files (cheap: no pixel is decoded here).

        Raises:
            MissingAssetError: the folder is missing or holds no image, naming it and the key ``data.path``.
        """
        if self.dataset is not None:
            return
        try:
            self.dataset = ImageFolderDataset(self.path, self.resolution, self.recursive, self.max_pixels)
        except NoImagesFoundError as err:
            shown = self.path if isinstance(self.path, (str, os.PathLike)) else list(self.path)
            raise MissingAssetError(
                f"data.path={shown!s} holds no usable images (missing or empty folder?). "
                f"Set `data.path=<folder of images>`.\n{err}"
            ) from err

    def _loader(self, shuffle: bool, drop_last: bool) -> DataLoader:
        self.setup()
        return DataLoader(
            self.dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            drop_last=drop_last,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        """Shuffled (if ``shuffle``) batches of :class:`ImageSample`."""
        return self._loader(self.shuffle, self.drop_last)

    def predict_dataloader(self) -> DataLoader:
        """All files in path order, no shuffling, last partial batch kept (for reconstruction)."""
        return self._loader(False, False)
