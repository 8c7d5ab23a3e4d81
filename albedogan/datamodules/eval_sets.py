"""Evaluation sets as ``data`` configs for ``python infer.py mode=evaluate data=...``.

* :class:`NowEvalSet` (``data=now``): the NoW benchmark folder; ``split`` picks the official image list
  (``imagepathsvalidation.txt`` / ``imagepathstest.txt``, :data:`NOW_IMAGE_LISTS`), every
  listed photo is fitted and scored against its subject's scan (:mod:`albedogan.eval.now`).
* :class:`PhotoScanSet` (``data=photo_scans``): any folder of photos, optionally with a 3D scan per photo or per
  folder: photo ``<rel>/<stem>.<ext>`` pairs with ``<scans_dir>/<rel>/<stem>.{obj,ply}`` or, failing that,
  ``<scans_dir>/<rel>/scan.{obj,ply}`` (one scan for a folder of photos of one person), and with 7 NoW landmarks
  of that scan (``<scan stem>``, ``<scan stem>_picked_points`` (MeshLab's name) or ``<scan stem>_lmks`` with
  ``.pp`` / ``.txt`` / ``.npy``, in the scan's unit, mm for the metric variant). Photos
  without a scan are fitted and exported only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from albedogan.assets.locate import MissingAssetError
from albedogan.datamodules.images import iter_image_paths

__all__ = ["NOW_IMAGE_LISTS", "NowEvalSet", "PhotoScanSet", "PhotoScanItem"]

NOW_IMAGE_LISTS: dict[str, str] = {"val": "imagepathsvalidation.txt", "test": "imagepathstest.txt"}
"""NoW's image lists per split, relative to the dataset folder."""

_SCAN_EXTS = (".obj", ".ply")
_LMK_EXTS = (".pp", ".txt", ".npy")
_LMK_SUFFIXES = ("", "_picked_points", "_lmks")


@dataclass(frozen=True)
class NowEvalSet:
    """The NoW benchmark (``data=now``).

    Attributes:
        root: NoW folder (image lists, ``scans/``, ``scans_lmks_onlypp/``, ``iphone_pictures/``).
        split: ``"val"`` or ``"test"`` (the official image list; the test scans are not public: ``test`` needs a
            NoW folder that has them, else export predictions with ``predictions_only`` and submit them).
        challenge: ``""`` (all) or one NoW challenge (``selfie``, ``neutral``, ``multiview_neutral``, ...).
        images_dir: photo folder (default ``<root>/iphone_pictures``).
        predictions_root: score existing predictions in NoW's layout instead of fitting.
        metric: metric variant (no scale in the alignment).
        detector: face detector kind.
        predictions_only: write the predictions, do not score (e.g. the test split).
    """

    root: str
    split: str = "val"
    challenge: str = ""
    images_dir: Optional[str] = None
    predictions_root: Optional[str] = None
    metric: bool = False
    detector: str = "auto"
    predictions_only: bool = False

    def __post_init__(self) -> None:
        if self.root in (None, "", "???"):
            raise MissingAssetError("data.root is not set: give the NoW dataset folder, e.g. data.root=/data/NoW")
        if self.split not in NOW_IMAGE_LISTS:
            raise ValueError(f"data.split must be one of {sorted(NOW_IMAGE_LISTS)}, got {self.split!r}")
        image_list = Path(self.root) / NOW_IMAGE_LISTS[self.split]
        if not image_list.is_file():
            raise MissingAssetError(f"NoW image list not found: {image_list} (data.root must be the NoW folder "
                                    f"holding {NOW_IMAGE_LISTS[self.split]})")

    def now_options(self) -> dict[str, Any]:
        """The options :func:`~albedogan.inference.evaluate.run_evaluate` takes as ``now``."""
        return {"dataset_root": self.root, "split": self.split, "challenge": self.challenge,
                "images_dir": self.images_dir, "predictions_root": self.predictions_root, "metric": self.metric,
                "detector": self.detector, "score": not self.predictions_only}


@dataclass(frozen=True)
class PhotoScanItem:
    """One photo: ``photo`` path, ``key`` (relative path without extension), optional ``scan`` and ``landmarks``."""

    photo: Path
    key: str
    scan: Optional[Path]
    landmarks: Optional[Path]


def _first(stem: Path, exts: tuple[str, ...]) -> Optional[Path]:
    for ext in exts:
        p = stem.with_name(stem.name + ext)
        if p.is_file():
            return p
    return None


@dataclass(frozen=True)
class PhotoScanSet:
    """A folder of photos with optional scans (``data=photo_scans``; pairing rule: module docstring).

    Attributes:
        path: photo folder (any tree).
        scans_dir: where scans live (default: next to the photos, same relative layout).
        metric: metric variant of the scan error (no scale; predictions in metres, scans in mm).
        detector: face detector kind.
        recursive: search sub-folders.
    """

    path: str
    scans_dir: Optional[str] = None
    metric: bool = False
    detector: str = "auto"
    recursive: bool = True

    def __post_init__(self) -> None:
        if self.path in (None, "", "???"):
            raise MissingAssetError("data.path is not set: give the photo folder, e.g. data.path=photos/")
        if not Path(self.path).is_dir():
            raise MissingAssetError(f"data.path={self.path} is not a folder of photos")

    def items(self) -> list[PhotoScanItem]:
        """Every photo with its scan and landmark files (None where absent); a scan without landmarks is an error.

        Raises:
            MissingAssetError: a scan has no landmark file (names the scan and the file names looked for).
        """
        root = Path(self.path)
        scans = Path(self.scans_dir) if self.scans_dir else root
        out = []
        for photo in iter_image_paths(root, recursive=self.recursive):
            rel = photo.relative_to(root).with_suffix("")
            scan = _first(scans / rel, _SCAN_EXTS) or _first(scans / rel.parent / "scan", _SCAN_EXTS)
            landmarks = None
            if scan is not None:
                stem = scan.with_suffix("")
                names = [stem.with_name(stem.name + suffix) for suffix in _LMK_SUFFIXES]
                landmarks = next((p for p in (_first(n, _LMK_EXTS) for n in names) if p is not None), None)
                if landmarks is None:
                    raise MissingAssetError(
                        f"scan {scan} has no landmark file ({', '.join(n.name + '.pp|txt|npy' for n in names)}): "
                        "the evaluation aligns the prediction to the scan with 7 NoW landmarks")
            out.append(PhotoScanItem(photo, os.fspath(rel), scan, landmarks))
        return out
