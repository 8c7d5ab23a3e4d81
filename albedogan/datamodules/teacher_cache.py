"""Cached teacher samples (``data=teacher_cache``): write once with ``python cache.py``, train from it many times.

Sample ``i`` (0 <= i < ``num_samples``) is the latent stream's sample i: seed ``base_seed * 1_000_003 + i``
(:func:`~albedogan.datamodules.latent_stream.seed_for_index`), z from that seed alone
(:func:`~albedogan.utils.seeding.latents_for_seeds`), so a cached sample does not depend on the shard, rank or rerun
that produced it (byte-identical shards for the same ``write.batch_size``; another write batch size may round the
batched float kernels differently, ~1e-7). Shard ``s`` holds samples ``s * shard_size ...`` (the last shard may be shorter). Each
sample (WebDataset key = the zero-padded index) has:

* ``json``: ``{"index", "seed"}``;
* ``png`` (``image_format: png``, 8-bit RGB, lossless for the 8-bit image) or ``image`` inside the npz
  (``image_format: npy``, float32: bit-exact teacher output);
* ``npz``: ``z`` (z_dim,), ``ws`` (num_ws, w_dim), with ``store_estimate`` the estimator's
  :class:`~albedogan.structures.FaceEstimate` (``estimate.shape`` ... ``estimate.cam``, ``estimate.light``), with
  ``store_target`` the self-distillation target (every field of
  :class:`~albedogan.models.targets.AlbedoTarget`: ``target.texture`` (3, R, R), ``target.weight`` (1, R, R), ...), and
  with ``store_truth`` the procedural world's ground truth (``truth.*``).

Format, atomic writes, resume and the per-rank read order: :mod:`albedogan.datamodules.shards`. Training reads the
cache with :class:`TeacherCacheDataModule`; validation still samples the teacher on the fly at ``val_seeds``.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Mapping, NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from albedogan.datamodules.latent_stream import LatentDataModule, seed_for_index
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
from albedogan.structures import FaceEstimate, FlameParams, GroundTruth, TeacherSample
from albedogan.utils.logging import get_logger
from albedogan.utils.seeding import latents_for_seeds

__all__ = [
    "CachedTeacherSample",
    "TeacherCacheDataModule",
    "write_teacher_cache",
    "estimate_to_arrays",
    "estimate_from_arrays",
    "resize_images",
]

log = get_logger(__name__)

_PARAM_FIELDS = ("shape", "expression", "global_pose", "neck_pose", "jaw_pose", "eye_pose")
IMAGE_FORMATS = ("png", "npy")


def estimate_to_arrays(estimate: FaceEstimate, prefix: str) -> dict[str, torch.Tensor]:
    """Flatten a (batched) :class:`FaceEstimate` to ``{prefix.shape: (N, S), ..., prefix.cam: (N, 3),
    prefix.light: (N, 9, 3)}``."""
    out = {f"{prefix}.{k}": getattr(estimate.params, k) for k in _PARAM_FIELDS}
    out[f"{prefix}.cam"], out[f"{prefix}.light"] = estimate.cam, estimate.light
    return out


def estimate_from_arrays(arrays: Mapping[str, torch.Tensor], prefix: str) -> FaceEstimate:
    """Inverse of :func:`estimate_to_arrays`."""
    params = FlameParams(**{k: arrays[f"{prefix}.{k}"] for k in _PARAM_FIELDS})
    return FaceEstimate(params, arrays[f"{prefix}.cam"], arrays[f"{prefix}.light"])


def resize_images(images: torch.Tensor, size: int) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, size, size), antialiased bilinear; returned unchanged when already that size."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


class CachedTeacherSample(NamedTuple):
    """One cached teacher sample (after default collation: a batch of N; every tensor gains a leading N).

    Attributes:
        index: stream index i (int; (N,) int64 batched).
        seed: the seed of z (int; (N,) int64 batched).
        z: (z_dim,) float32 latent.
        ws: (num_ws, w_dim) float32 W+ latents the teacher image was synthesised from (what G_A is fed).
        image: (3, H, W) float32 teacher image in [0, 1].
        estimate: flattened FaceEstimate (``estimate.shape`` ...), or ``{}`` when not cached / not used.
        target: the fields of :class:`~albedogan.models.targets.AlbedoTarget` (``texture`` (3, R, R), ``weight``,
            ``visibility`` (1, R, R), ``visible_fraction``, ``completed_fraction`` ()) or ``{}``.
        truth: flattened :class:`~albedogan.structures.GroundTruth` (``estimate.*``, ``albedo``, ``landmarks2d``,
            ``alpha``) or ``{}``.
    """

    index: Any
    seed: Any
    z: torch.Tensor
    ws: torch.Tensor
    image: torch.Tensor
    estimate: dict
    target: dict
    truth: dict

    def teacher_sample(self) -> TeacherSample:
        """The batch as the teacher would have returned it (same device as the tensors)."""
        truth = None
        if self.truth:
            truth = GroundTruth(estimate_from_arrays(self.truth, "estimate"), self.truth["albedo"],
                                self.truth["landmarks2d"], self.truth["alpha"])
        return TeacherSample(self.image, self.ws, self.z, truth)

    def face_estimate(self) -> FaceEstimate | None:
        """The cached estimate, or None."""
        return estimate_from_arrays(self.estimate, "estimate") if self.estimate else None


def _decoder(image_size: int | None, use_estimate: bool, use_target: bool):
    def decode(key: str, fields: dict[str, bytes]) -> CachedTeacherSample:
        meta = json.loads(fields["json"])
        arrays = decode_arrays(fields["npz"])
        image = decode_png(fields["png"]) if "png" in fields else arrays["image"]
        if image_size is not None:
            image = resize_images(image[None], image_size)[0]
        estimate = {k: v for k, v in arrays.items() if k.startswith("estimate.")} if use_estimate else {}
        target = ({k.split(".", 1)[1]: v for k, v in arrays.items() if k.startswith("target.")}
                  if use_target else {})
        truth = {k.split(".", 1)[1]: v for k, v in arrays.items() if k.startswith("truth.")}
        return CachedTeacherSample(int(meta["index"]), int(meta["seed"]), arrays["z"], arrays["ws"], image,
                                   estimate, target, truth)

    return decode


@torch.no_grad()
def write_teacher_cache(
    root: str | Path,
    teacher: nn.Module,
    estimator: nn.Module | None,
    target_builder: nn.Module | None,
    num_samples: int,
    shard_size: int,
    base_seed: int = 0,
    image_size: int | None = None,
    image_format: str = "png",
    store_estimate: bool = True,
    store_target: bool = True,
    store_truth: bool = True,
    batch_size: int = 16,
    truncation_psi: float | None = None,
    rank: int | None = None,
    world_size: int | None = None,
    device: torch.device | str = "cpu",
    config: Mapping[str, Any] | None = None,
) -> dict[str, int]:
    """Write (or finish) this rank's shards of a teacher cache; the last writer to finish writes the manifest.

    Args:
        root: cache folder.
        teacher: the frozen teacher (``sample(z, psi) -> TeacherSample``).
        estimator: image -> FaceEstimate (eval mode, no grad); needed when ``store_estimate`` or ``store_target``.
        target_builder: ``(image, estimate) -> AlbedoTarget``; needed when ``store_target``.
        num_samples: samples in the cache.
        shard_size: samples per shard.
        base_seed: stream seed (sample i has seed ``base_seed * 1_000_003 + i``).
        image_size: stored image side (antialiased resize; None = the teacher's).
        image_format: ``"png"`` (8-bit) or ``"npy"`` (float32, exact).
        store_estimate, store_target, store_truth: which optional parts to store (truth only when the teacher has
            ground truth).
        batch_size: teacher batch while writing (does not change the result).
        truncation_psi: teacher truncation (None = the teacher's default).
        rank, world_size: this writer writes shards ``s % world_size == rank`` (default: :func:`resolve_rank`).
        device: where the teacher, estimator and target builder run.
        config: settings recorded in ``cache_config.json`` and the manifest; a rerun with other settings is refused.

    Returns:
        ``{"written": shards written now, "skipped": shards already done, "num_shards": total}``.
    """
    if image_format not in IMAGE_FORMATS:
        raise ValueError(f"data.write.image_format must be one of {IMAGE_FORMATS}, got {image_format!r}")
    if num_samples < 1 or shard_size < 1 or batch_size < 1:
        raise ValueError(f"need num_samples, shard_size, batch_size >= 1; got {num_samples}, {shard_size}, "
                         f"{batch_size}")
    if (store_estimate or store_target) and estimator is None:
        raise ValueError("storing estimates or targets needs an estimator")
    if store_target and target_builder is None:
        raise ValueError("storing targets needs a target builder (model.target_builder)")
    rank, world_size = resolve_rank(rank, world_size)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    check_cache_config(root, dict(config or {}))
    num_shards = -(-num_samples // shard_size)
    if num_shards < world_size:
        log.warning("teacher cache: %d shards for %d writers: some writers have nothing to do", num_shards,
                    world_size)
    teacher = teacher.to(device).eval()
    if estimator is not None:
        estimator = estimator.to(device).eval()
    if target_builder is not None:
        target_builder = target_builder.to(device).eval()
    z_dim = int(teacher.z_dim)
    written = skipped = 0
    for shard in range(rank, num_shards, world_size):
        if shard_done(root, shard):
            skipped += 1
            continue
        indices = list(range(shard * shard_size, min((shard + 1) * shard_size, num_samples)))
        samples: list[tuple[str, dict[str, bytes]]] = []
        for start in range(0, len(indices), batch_size):
            chunk = indices[start:start + batch_size]
            seeds = [seed_for_index(base_seed, i) for i in chunk]
            z = latents_for_seeds(seeds, z_dim, device=device)
            sample: TeacherSample = teacher.sample(z, truncation_psi)
            arrays: dict[str, torch.Tensor] = {"z": z, "ws": sample.ws}
            estimate = None
            if store_estimate or store_target:
                estimate = estimator(sample.image, truth=sample.truth)
            if store_estimate:
                arrays.update(estimate_to_arrays(estimate, "estimate"))
            if store_target:
                target = target_builder(sample.image, estimate)
                arrays.update({f"target.{f.name}": getattr(target, f.name) for f in dataclasses.fields(target)})
            if store_truth and sample.truth is not None:
                t = sample.truth
                arrays.update(estimate_to_arrays(t.estimate, "truth.estimate"))
                arrays.update({"truth.albedo": t.albedo, "truth.landmarks2d": t.landmarks2d, "truth.alpha": t.alpha})
            image = resize_images(sample.image, image_size or sample.image.shape[-1]).clamp(0, 1)
            if image_format == "npy":
                arrays["image"] = image
            for k, (i, seed) in enumerate(zip(chunk, seeds)):
                fields = {"json": json.dumps({"index": i, "seed": seed}).encode(),
                          "npz": encode_arrays({name: a[k].float() for name, a in arrays.items()})}
                if image_format == "png":
                    fields["png"] = encode_png(image[k])
                samples.append((f"{i:09d}", fields))
        write_shard(root, shard, samples)
        written += 1
        log.info("teacher cache: wrote shard %d/%d (%d samples) to %s", shard + 1, num_shards, len(samples), root)
    if finalize_manifest(root, num_shards, {"kind": "teacher"}):
        log.info("teacher cache complete: %s (%d samples in %d shards)", root, num_samples, num_shards)
    return {"written": written, "skipped": skipped, "num_shards": num_shards}


class TeacherCacheDataModule(LatentDataModule):
    """Training batches of :class:`CachedTeacherSample` from a cache written by :func:`write_teacher_cache`;
    validation latents at ``val_seeds`` (sampled on the fly, as with ``data=latent``).

    Args:
        root: the cache folder (``data.root``).
        batch_size: samples per batch and per device.
        z_dim: latent size (taken from the teacher; must match the cache).
        image_size: image side training needs (the teacher's render size): cached images of another size are
            resized (antialiased) on load.
        shuffle: seeded per-epoch shard and sample permutation (False: cache order).
        seed: order seed.
        use_estimate: hand the cached FaceEstimate to phase A instead of running the estimator.
        use_target: hand the cached distillation target to phase A instead of building it.
        write: the writer settings (``python cache.py`` reads them); the cache must have been written with these.
        source: the teacher / estimator settings the cache must have been written with.
        verify_checksums: hash every shard against the manifest at setup.
        num_workers, val_seeds, rank, world_size, lookahead, mix: as :class:`LatentDataModule`.
    """

    def __init__(
        self,
        root: str,
        batch_size: int,
        z_dim: int = 512,
        image_size: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        use_estimate: bool = True,
        use_target: bool = True,
        write: Mapping[str, Any] | None = None,
        source: Mapping[str, Any] | None = None,
        verify_checksums: bool = False,
        num_workers: int = 0,
        val_seeds: Sequence[int] = tuple(range(8)),
        rank: int | None = None,
        world_size: int | None = None,
        lookahead: int = 1,
        mix: Any = None,
    ) -> None:
        super().__init__(batch_size, z_dim, seed, num_workers, val_seeds, rank, world_size, lookahead, mix)
        self.root = str(root)
        self.image_size = image_size
        self.shuffle, self.seed = shuffle, int(seed)
        self.use_estimate, self.use_target = bool(use_estimate), bool(use_target)
        self.expected_config = cache_config(write, source) if write is not None else None
        self.verify_checksums = verify_checksums
        self.cache: ShardedCache | None = None

    def setup(self, stage: str | None = None) -> None:
        """Open the cache and check it was written with this configuration.

        Raises:
            CacheError: no finished cache at ``root`` (says how to write it), or one written with other settings.
        """
        if self.cache is not None:
            return
        cache = ShardedCache(self.root, _decoder(self.image_size, self.use_estimate, self.use_target),
                             self.verify_checksums)
        if cache.manifest.get("kind") != "teacher":
            raise CacheError(f"{self.root} is not a teacher cache (kind {cache.manifest.get('kind')!r})")
        detail = config_diff(cache.config, self.expected_config) if self.expected_config is not None else ""
        if detail:
            raise CacheError(f"the teacher cache at {self.root} was written with other settings ({detail}); train "
                             "with the overrides the cache was written with, or write a new cache (data.root)")
        z = cache[(0, 0)].z
        if z.shape[-1] != self.z_dim:
            raise CacheError(f"{self.root}: cached z has {z.shape[-1]} dims, the teacher takes {self.z_dim}")
        first = cache[(0, 0)]
        for part, wanted, present in (("estimate", self.use_estimate, first.estimate),
                                      ("target", self.use_target, first.target)):
            if wanted and not present:
                raise CacheError(f"{self.root} stores no {part}; write it with data.write.store_{part}=true or "
                                 f"train with data.use_{part}=false")
        self.cache = cache

    def _train_source(self, start: int) -> PositionedLoader:
        self.setup()
        loader = PositionedLoader(self.cache, self.batch_size, self.seed, self.shuffle, self.rank, self.world_size,
                                  self.num_workers, self.lookahead,
                                  identity={"cache_samples": len(self.cache), "cache_seed": self.cache.config.get(
                                      "write", {}).get("base_seed")})
        loader.batches_consumed = start
        return loader


#: Writer settings that do not change what is written (left out of the cache's identity).
_RUN_ONLY_KEYS = ("batch_size", "device")


def cache_config(write: Mapping[str, Any] | None, source: Mapping[str, Any] | None) -> dict[str, Any]:
    """What a teacher cache records as its identity: the writer settings that change its content (not
    ``batch_size`` / ``device``) and the teacher / estimator settings."""
    write = {k: v for k, v in dict(write or {}).items() if k not in _RUN_ONLY_KEYS}
    return json.loads(json.dumps({"write": write, "source": dict(source or {})}))

