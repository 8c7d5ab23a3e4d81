"""Real photos for phase B (``data=images`` / ``data.mix``): detect, landmark, align and crop once into a cache,
then mix the crops into training batches.

Caching (``python cache.py data=images data.mix.path=photos/``): every image file of ``path`` (a folder in FFHQ's
``00000/00000.png`` layout or any tree, a glob, or a list; sorted, see
:func:`~albedogan.datamodules.images.iter_image_paths`) is loaded robustly
(:func:`~albedogan.datamodules.images.load_image`: EXIF rotation, any pixel mode, decompression-bomb guard), its
largest face detected (YuNet by default), cropped as the estimator expects (DECA's square box crop,
:func:`~albedogan.datamodules.alignment.encoder_crop`) and stored with its landmarks in the sharded format of
:mod:`albedogan.datamodules.shards` (file ``i`` goes to shard ``i // shard_size``). Files that cannot be used are
skipped with a reason (``unreadable``/``truncated``/... from the loader, ``no_face``, ``tiny_face``) recorded in
the shard sidecars and counted in the manifest (``num_skipped``, ``skipped_reasons``).

Landmarks: the five detector points always (``landmarks5``, used to crop); with a ``landmark_detector`` (an
object with ``landmarks(image uint8 (H, W, 3), FaceDetection) -> (K, 2) pixels | None`` and ``n_points``, the
landmark-detector interface of ``albedogan.datamodules.landmarks``, e.g. dlib's 68-point predictor; or a plain
callable with that signature giving 68 points) also its points, and ``landmarks`` / ``landmark_set`` say which set
phase B fits: ``"ibug68"`` or ``"yunet5"`` (recorded in the cache config and manifest). A face the landmark
detector gives no points for is skipped (``no_landmarks``). All landmarks are stored in image NDC of
the crop (x right, y down, pixel centres at integers: :func:`~albedogan.render.cameras.pixels_to_ndc`), so they do
not depend on the resolution the crop is used at.

Mixing: :class:`RealFaceMix` (``data.mix``) wraps the teacher loader; every training batch becomes a
:class:`MixedBatch` whose ``real`` part holds ``round(B * f / (1 - f))`` crops for ``real_fraction = f`` (so real
crops are a fraction f of phase B's images). The module uses them only in phase B (no albedo target: G_A never
sees real photos).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, NamedTuple

import numpy as np
import torch

from albedogan.datamodules.images import ImageLoadError, ImageSpec, iter_image_paths, load_image
from albedogan.datamodules.shards import (
    CacheError,
    PositionedLoader,
    ShardedCache,
    check_cache_config,
    config_diff,
    decode_arrays,
    decode_png,
    encode_arrays,
    encode_png,
    finalize_manifest,
    resolve_rank,
    shard_done,
    write_shard,
)
from albedogan.datamodules.teacher_cache import resize_images
from albedogan.render.cameras import pixels_to_ndc
from albedogan.utils.logging import get_logger

__all__ = ["RealFaceSample", "MixedBatch", "MixedLoader", "RealFaceMix", "write_face_cache", "LANDMARK_SETS"]

log = get_logger(__name__)

#: Landmark sets a face cache can hold: the detector's 5 points or the 68 iBUG points.
LANDMARK_SETS: tuple[str, ...] = ("yunet5", "ibug68")


class RealFaceSample(NamedTuple):
    """One cached real face crop (after default collation: a batch of N).

    Attributes:
        index: position of the source file in the sorted file list (int; (N,) int64 batched).
        image: (3, S, S) float32 crop in [0, 1].
        landmarks: (K, 2) float32 image-NDC landmarks of the crop, K = 68 (``ibug68``) or 5 (``yunet5``).
        landmarks5: (5, 2) float32 image-NDC detector points (eyes, nose tip, mouth corners; ArcFace order).
        score: () float32 detection confidence in [0, 1].
    """

    index: Any
    image: torch.Tensor
    landmarks: torch.Tensor
    landmarks5: torch.Tensor
    score: torch.Tensor


class MixedBatch(NamedTuple):
    """A training batch with real photos: ``teacher`` (a :class:`~albedogan.datamodules.latent_stream.
    LatentSample` or :class:`~albedogan.datamodules.teacher_cache.CachedTeacherSample` batch), ``real`` (a
    :class:`RealFaceSample` batch) and ``real_fraction`` (float: the share of phase B's loss the real part gets)."""

    teacher: Any
    real: RealFaceSample
    real_fraction: float


def _files_digest(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(os.fspath(p).encode() + b"\0")
    return h.hexdigest()


def _landmark_count(landmark_detector: Any) -> int:
    """Points per face of a landmark detector (its ``n_points``; 68 for a plain callable)."""
    return int(getattr(landmark_detector, "n_points", 68))


def _crop_face(pixels: np.ndarray, detector: Any, landmark_detector: Callable | None, resolution: int,
               crop_scale: float, min_face_size: float) -> tuple[str, str, dict[str, Any] | None]:
    """(reason, detail, record): record = crop + NDC landmarks, or None with the reason it was skipped."""
    from albedogan.datamodules.alignment import encoder_crop

    found = detector.detect(pixels)
    if not found:
        return "no_face", f"no face found in the {pixels.shape[1]}x{pixels.shape[0]} image", None
    det = max(found, key=lambda d: d.width * d.height)
    if min(det.width, det.height) < min_face_size:
        return "tiny_face", f"largest face {det.width:.0f}x{det.height:.0f} px < min_face_size={min_face_size}", None
    crop = encoder_crop(pixels, det, size=resolution, scale=crop_scale)

    def ndc(points: np.ndarray) -> torch.Tensor:
        return pixels_to_ndc(torch.as_tensor(crop.to_crop(np.asarray(points, np.float64))), (resolution, resolution))

    record = {"image": crop.image, "landmarks5": ndc(det.landmarks5), "score": float(det.score),
              "n_faces": len(found)}
    if landmark_detector is not None:
        points = getattr(landmark_detector, "landmarks", landmark_detector)(pixels, det)
        if points is None:
            return "no_landmarks", "the landmark detector found no landmarks on the detected face", None
        points = np.asarray(points, dtype=np.float64)
        expected = _landmark_count(landmark_detector)
        if points.shape != (expected, 2):
            raise ValueError(f"landmark_detector returned shape {points.shape}, expected ({expected}, 2) pixels")
        record["landmarks"] = ndc(points)
    else:
        record["landmarks"] = record["landmarks5"]
    return "", "", record


def write_face_cache(
    root: str | Path,
    path: ImageSpec,
    detector: Any,
    resolution: int = 224,
    crop_scale: float = 1.25,
    min_face_size: float = 24.0,
    max_pixels: int | None = 100_000_000,
    max_side: int | None = 2048,
    shard_size: int = 256,
    recursive: bool = True,
    landmark_detector: Callable | None = None,
    rank: int | None = None,
    world_size: int | None = None,
    config: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Detect, align and crop every photo of ``path`` into a face cache (this rank's shards; resumable).

    Args:
        root: cache folder.
        path: file, folder, glob or list (``data.mix.path``).
        detector: a :class:`~albedogan.datamodules.detection.FaceDetector`.
        resolution: crop side S in pixels.
        crop_scale: crop side relative to the detector box (DECA: 1.25).
        min_face_size: faces whose box is smaller (pixels, after ``max_side`` downscaling) are skipped.
        max_pixels, max_side: loader guards (see :func:`~albedogan.datamodules.images.load_image`).
        shard_size: files per shard.
        recursive: search sub-folders.
        landmark_detector: optional landmark detector (module docstring).
        rank, world_size: writer rank (default :func:`~albedogan.datamodules.shards.resolve_rank`).
        config: settings recorded with the cache (a rerun with other settings is refused).

    Returns:
        ``{"written", "skipped_shards", "num_shards", "files", "complete"}`` and, once complete, ``"num_samples"``,
        ``"num_skipped"`` and ``"skipped_reasons"`` from the manifest.
    """
    rank, world_size = resolve_rank(rank, world_size)
    paths = iter_image_paths(path, recursive=recursive)
    root = Path(root)
    landmark_set = "yunet5" if landmark_detector is None or _landmark_count(landmark_detector) == 5 else "ibug68"
    if landmark_detector is not None and _landmark_count(landmark_detector) not in (5, 68):
        raise ValueError(f"landmark_detector gives {_landmark_count(landmark_detector)} points; 5 or 68 are supported")
    config = {**dict(config or {}), "files": len(paths), "files_sha256": _files_digest(paths),
              "landmark_set": landmark_set, "resolution": resolution}
    check_cache_config(root, config)
    num_shards = -(-len(paths) // shard_size)
    written = done = 0
    for shard in range(rank, num_shards, world_size):
        if shard_done(root, shard):
            done += 1
            continue
        samples, skipped = [], []
        for i in range(shard * shard_size, min((shard + 1) * shard_size, len(paths))):
            file = paths[i]
            try:
                pixels = load_image(file, max_pixels=max_pixels, max_side=max_side)
                reason, detail, record = _crop_face(pixels, detector, landmark_detector, resolution, crop_scale,
                                                    min_face_size)
            except ImageLoadError as err:
                reason, detail, record = err.reason, str(err), None
            if record is None:
                log.warning("face cache: skipping %s (%s): %s", file, reason, detail)
                skipped.append({"input": os.fspath(file), "reason": reason, "detail": detail})
                continue
            meta = {"index": i, "path": os.fspath(file), "score": record["score"], "n_faces": record["n_faces"],
                    "landmark_set": landmark_set}
            arrays = {"landmarks": record["landmarks"].float(), "landmarks5": record["landmarks5"].float(),
                      "score": np.float32(record["score"])}
            samples.append((f"{i:09d}", {"json": json.dumps(meta).encode(), "png": encode_png(record["image"]),
                                         "npz": encode_arrays(arrays)}))
        write_shard(root, shard, samples, skipped)
        written += 1
        log.info("face cache: shard %d/%d: %d faces, %d skipped", shard + 1, num_shards, len(samples), len(skipped))
    complete = finalize_manifest(root, num_shards, {"kind": "faces", "landmark_set": landmark_set})
    result: dict[str, Any] = {"written": written, "skipped_shards": done, "num_shards": num_shards,
                              "files": len(paths), "complete": complete}
    if complete:
        manifest = json.loads((root / "manifest.json").read_text())
        result.update({k: manifest[k] for k in ("num_samples", "num_skipped", "skipped_reasons")})
        log.info("face cache complete: %s: %d faces from %d files, %d skipped %s", root, manifest["num_samples"],
                 len(paths), manifest["num_skipped"], manifest["skipped_reasons"])
    return result


def _face_decoder(image_size: int | None) -> Callable[[str, dict[str, bytes]], RealFaceSample]:
    def decode(key: str, fields: dict[str, bytes]) -> RealFaceSample:
        meta = json.loads(fields["json"])
        arrays = decode_arrays(fields["npz"])
        image = decode_png(fields["png"])
        if image_size is not None:
            image = resize_images(image[None], image_size)[0]
        return RealFaceSample(int(meta["index"]), image, arrays["landmarks"], arrays["landmarks5"], arrays["score"])

    return decode


class MixedLoader:
    """Zip of a teacher loader and an (infinite) real-face loader, yielding :class:`MixedBatch`; its position is
    both loaders' positions (``state_dict``/``load_state_dict``, what Lightning saves)."""

    def __init__(self, teacher: Any, real: PositionedLoader, real_fraction: float) -> None:
        self.teacher, self.real, self.real_fraction = teacher, real, float(real_fraction)

    @property
    def batch_size(self) -> int:
        return self.teacher.batch_size

    def __iter__(self) -> Iterator[MixedBatch]:
        for teacher, real in zip(self.teacher, self.real):
            yield MixedBatch(teacher, real, self.real_fraction)

    def state_dict(self) -> dict[str, Any]:
        return {"teacher": self.teacher.state_dict(), "real": self.real.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if set(state) != {"teacher", "real"}:
            raise KeyError(f"MixedLoader.load_state_dict: expected keys teacher, real; got {sorted(state)} (was the "
                           "run saved without data.mix? resume with the same data settings)")
        self.teacher.load_state_dict(state["teacher"])
        self.real.load_state_dict(state["real"])


class RealFaceMix:
    """Settings of the real-photo part of phase B (``data.mix``) and the face cache it reads.

    Args:
        real_fraction: f in [0, 1): share of phase B's images that are real crops (0 = no real photos).
        path: the photos (file, folder, glob or list); only ``cache.py`` reads it.
        root: the face cache folder.
        image_size: crop side training uses (the teacher's image size; crops of another size are resized).
        resolution: crop side stored in the cache.
        crop_scale, min_face_size, max_pixels, max_side, recursive, shard_size: cropping / loading settings (see
            :func:`write_face_cache`).
        detector: face detector kind for :func:`~albedogan.datamodules.detection.build_face_detector`.
        landmark_detector: optional landmark detector (module docstring), e.g. ``build_landmark_detector`` with
            ``kind: dlib68``; None = the face detector's 5 points.
        shuffle: seeded per-epoch order of the real crops.
        seed: order seed.
        num_workers: DataLoader workers of the real part.
        rank, world_size: explicit rank (default: ``torch.distributed`` when initialised).
    """

    def __init__(
        self,
        real_fraction: float = 0.0,
        path: ImageSpec | None = None,
        root: str | None = None,
        image_size: int | None = None,
        resolution: int = 224,
        crop_scale: float = 1.25,
        min_face_size: float = 24.0,
        max_pixels: int | None = 100_000_000,
        max_side: int | None = 2048,
        recursive: bool = True,
        shard_size: int = 256,
        detector: str = "yunet",
        landmark_detector: Callable | None = None,
        shuffle: bool = True,
        seed: int = 0,
        num_workers: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        if not 0.0 <= float(real_fraction) < 1.0:
            raise ValueError(f"data.mix.real_fraction must be in [0, 1), got {real_fraction}")
        if float(real_fraction) > 0 and not root:
            raise ValueError("data.mix.root (the face cache folder) is not set")
        self.real_fraction = float(real_fraction)
        self.path, self.root, self.image_size = path, root, image_size
        self.resolution, self.crop_scale, self.min_face_size = int(resolution), float(crop_scale), float(min_face_size)
        self.max_pixels, self.max_side, self.recursive = max_pixels, max_side, bool(recursive)
        self.shard_size, self.detector, self.landmark_detector = int(shard_size), detector, landmark_detector
        self.shuffle, self.seed, self.num_workers = bool(shuffle), int(seed), int(num_workers)
        self.rank, self.world_size = rank, world_size

    @property
    def active(self) -> bool:
        """Whether training batches carry real photos."""
        return self.real_fraction > 0

    def real_batch_size(self, batch_size: int) -> int:
        """``round(B * f / (1 - f))``, at least 1."""
        return max(1, round(batch_size * self.real_fraction / (1.0 - self.real_fraction)))

    def cache_settings(self) -> dict[str, Any]:
        """What the face cache records (a cache written with other settings is refused)."""
        return {"resolution": self.resolution, "crop_scale": self.crop_scale, "min_face_size": self.min_face_size,
                "max_pixels": self.max_pixels, "max_side": self.max_side, "recursive": self.recursive,
                "shard_size": self.shard_size, "detector": self.detector}

    def write_cache(self, rank: int | None = None, world_size: int | None = None) -> dict[str, Any]:
        """Write (or finish) the face cache from ``path`` (``python cache.py``)."""
        from albedogan.datamodules.detection import build_face_detector

        if self.path in (None, ""):
            raise ValueError("data.mix.path is not set: give the photo folder, e.g. data.mix.path=photos/")
        if not self.root:
            raise ValueError("data.mix.root (the face cache folder) is not set")
        return write_face_cache(
            self.root, self.path, build_face_detector(self.detector), self.resolution, self.crop_scale,
            self.min_face_size, self.max_pixels, self.max_side, self.shard_size, self.recursive,
            self.landmark_detector, rank, world_size, config={"kind": "faces", **self.cache_settings()})

    def open(self) -> ShardedCache:
        """The finished face cache.

        Raises:
            CacheError: missing / unfinished cache (says how to write it) or one written with other settings.
        """
        cache = ShardedCache(self.root, _face_decoder(self.image_size))
        if cache.manifest.get("kind") != "faces":
            raise CacheError(f"{self.root} is not a face cache (kind {cache.manifest.get('kind')!r})")
        detail = config_diff({k: cache.config.get(k) for k in self.cache_settings()}, self.cache_settings())
        if detail:
            raise CacheError(f"the face cache at {self.root} was written with other settings ({detail})")
        if cache.config.get("landmark_set") not in LANDMARK_SETS:
            raise CacheError(f"{self.root}: unknown landmark_set {cache.config.get('landmark_set')!r}")
        return cache

    def wrap(self, teacher_loader: Any, batch_size: int, lookahead: int) -> MixedLoader:
        """Mix the real-face cache into ``teacher_loader``'s batches."""
        cache = self.open()
        real = PositionedLoader(cache, self.real_batch_size(batch_size), self.seed, self.shuffle, self.rank,
                                self.world_size, self.num_workers, lookahead,
                                identity={"faces": len(cache), "landmark_set": cache.config["landmark_set"]})
        return MixedLoader(teacher_loader, real, self.real_fraction)
