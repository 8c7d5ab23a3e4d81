"""Sharded sample caches: WebDataset-layout tar shards with a byte index, a manifest, and a resumable reader.

On disk (one cache = one folder)::

    <root>/
      cache_config.json       what the cache was written with (a rerun with other settings is refused)
      shard-000000.tar        WebDataset layout: the files of sample ``key`` are ``<key>.<field>`` (``png``, ``npz``,
      shard-000000.json         ``json``), consecutive in the tar; ``webdataset.WebDataset`` streams them as they are
      ...                     sidecar per shard, written after its tar: sha256, size, per sample the byte offset and
      manifest.json             size of each field in the tar (random access), skipped inputs with their reason
                              written once every shard exists: config, shard list with sha256, totals

Writes are atomic (temp file next to the target, fsync, rename: :mod:`albedogan.utils.io`); a shard counts as done
only when its sidecar exists and names the tar's size, so a writer killed mid-shard leaves no partial shard and a
rerun redoes exactly the unfinished ones. Shard ``s`` is written by writer rank ``s % world_size``.

Reading: :class:`ShardedCache` (map-style over ``(shard, sample)`` addresses, ``pread`` at the indexed offsets) with
:class:`RankBatchSampler`, an infinite, seeded, per-rank order: rank ``r`` of ``W`` owns the shards ``s ≡ r (mod W)``
(disjoint across ranks); epoch ``e`` visits its shards in a permutation seeded by ``(seed, e, r)`` and each shard's
samples in a permutation seeded by ``(seed, e, s)``; batches are consecutive runs of that sequence. Batch ``n`` is a
pure function of ``(seed, rank, world, n)``, which makes resume exact: :class:`PositionedLoader` counts consumed
batches (what Lightning saves) and restarts the sampler there.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, Sampler

from albedogan.utils.io import atomic_open, atomic_write_text
from albedogan.utils.logging import get_logger

__all__ = [
    "CacheError",
    "ShardedCache",
    "RankBatchSampler",
    "PositionedLoader",
    "write_shard",
    "shard_done",
    "finalize_manifest",
    "check_cache_config",
    "config_diff",
    "encode_png",
    "decode_png",
    "encode_arrays",
    "decode_arrays",
    "shard_name",
    "resolve_rank",
]

log = get_logger(__name__)

MANIFEST = "manifest.json"
CONFIG = "cache_config.json"
_STATE_VERSION = 1


class CacheError(RuntimeError):
    """A cache folder is missing, incomplete, corrupt or written with other settings (the message says which)."""


def shard_name(shard: int) -> str:
    """``shard-000042``: the file stem of shard 42."""
    return f"shard-{shard:06d}"


def resolve_rank(rank: int | None = None, world_size: int | None = None) -> tuple[int, int]:
    """(rank, world size): explicit values, else ``torch.distributed`` when initialised, else the ``RANK`` /
    ``WORLD_SIZE`` environment (torchrun, SLURM via Lightning), else (0, 1)."""
    if rank is None and world_size is None and dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    rank = int(os.environ.get("RANK", 0)) if rank is None else int(rank)
    world_size = int(os.environ.get("WORLD_SIZE", 1)) if world_size is None else int(world_size)
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
    return rank, world_size


# ---------------------------------------------------------------------------------------------------------------
# field codecs


def encode_png(image: np.ndarray | torch.Tensor) -> bytes:
    """(3, H, W) float tensor in [0, 1] or (H, W, 3) uint8 array -> 8-bit RGB PNG bytes (lossless for 8-bit)."""
    from PIL import Image

    if isinstance(image, torch.Tensor):
        image = (image.detach().float().clamp(0, 1) * 255.0).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def decode_png(data: bytes) -> torch.Tensor:
    """PNG bytes -> (3, H, W) float32 tensor in [0, 1]."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        pixels = np.asarray(img.convert("RGB"))
    return torch.from_numpy(pixels.copy()).permute(2, 0, 1).to(torch.float32) / 255.0


def encode_arrays(arrays: Mapping[str, np.ndarray | torch.Tensor]) -> bytes:
    """Named arrays -> ``.npz`` bytes (uncompressed, no pickled objects)."""
    buf = io.BytesIO()
    np.savez(buf, **{k: (v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v))
                     for k, v in arrays.items()})
    return buf.getvalue()


def decode_arrays(data: bytes) -> dict[str, torch.Tensor]:
    """``.npz`` bytes -> named tensors (``allow_pickle=False``: object arrays are refused)."""
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        return {k: torch.from_numpy(np.array(npz[k])) for k in npz.files}


# ---------------------------------------------------------------------------------------------------------------
# writing


def _sha256(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def config_diff(saved: Mapping[str, Any], now: Mapping[str, Any]) -> str:
    """``"key: cache <saved> vs now <now>; ..."`` for every top-level key whose values differ ("" when none)."""
    keys = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))
    return "; ".join(f"{k}: cache {saved.get(k)!r} vs now {now.get(k)!r}" for k in keys)


def check_cache_config(root: str | os.PathLike, config: Mapping[str, Any]) -> None:
    """Record ``config`` in ``root/cache_config.json``, or check that an existing cache was written with it.

    Raises:
        CacheError: the folder holds a cache written with other settings (lists every differing key).
    """
    path = Path(root) / CONFIG
    config = json.loads(json.dumps(dict(config)))  # plain JSON values, as they are read back
    if path.is_file():
        detail = config_diff(json.loads(path.read_text()), config)
        if detail:
            raise CacheError(f"{root} holds a cache written with other settings ({detail}); choose another "
                             "data.root or delete that folder to rewrite it")
        return
    atomic_write_text(path, json.dumps(config, indent=2, sort_keys=True))


def shard_done(root: str | os.PathLike, shard: int) -> bool:
    """Whether shard ``shard`` is complete: its sidecar exists and its tar has the recorded size."""
    root = Path(root)
    side, tar = root / f"{shard_name(shard)}.json", root / f"{shard_name(shard)}.tar"
    if not side.is_file() or not tar.is_file():
        return False
    try:
        meta = json.loads(side.read_text())
    except (OSError, ValueError):
        return False
    return int(meta.get("bytes", -1)) == tar.stat().st_size


def write_shard(
    root: str | os.PathLike,
    shard: int,
    samples: Sequence[tuple[str, Mapping[str, bytes]]],
    skipped: Sequence[Mapping[str, str]] = (),
) -> dict[str, Any]:
    """Write one shard atomically: the tar (``<key>.<field>`` members, sorted by field name within a sample,
    fixed mtime so equal content gives equal bytes), then its sidecar index.

    Args:
        root: cache folder.
        shard: shard number.
        samples: ``(key, {field: bytes})`` in order; keys must be unique and free of dots.
        skipped: inputs of this shard that were not cached, each ``{"input": ..., "reason": ..., "detail": ...}``.

    Returns:
        The sidecar record (also written to ``shard-NNNNNN.json``).
    """
    root = Path(root)
    tar_path = root / f"{shard_name(shard)}.tar"
    index: list[dict[str, Any]] = []
    with atomic_open(tar_path, "wb") as fh:
        with tarfile.open(fileobj=fh, mode="w", format=tarfile.USTAR_FORMAT) as tar:
            for key, fields in samples:
                if "." in key:
                    raise ValueError(f"write_shard: sample key {key!r} must not contain a dot")
                entry: dict[str, Any] = {"key": key}
                for field in sorted(fields):
                    data = fields[field]
                    info = tarfile.TarInfo(f"{key}.{field}")
                    info.size, info.mtime, info.mode = len(data), 0, 0o644
                    header_at = tar.offset  # a USTAR header is one block; the data follows it
                    tar.addfile(info, io.BytesIO(data))
                    entry[field] = [header_at + tarfile.BLOCKSIZE, len(data)]
                index.append(entry)
    meta = {"shard": shard, "file": tar_path.name, "bytes": tar_path.stat().st_size, "sha256": _sha256(tar_path),
            "samples": index, "skipped": list(skipped)}
    atomic_write_text(root / f"{shard_name(shard)}.json", json.dumps(meta))
    return meta


def finalize_manifest(root: str | os.PathLike, num_shards: int, extra: Mapping[str, Any] | None = None) -> bool:
    """Write ``manifest.json`` when every shard ``0 .. num_shards - 1`` is done; returns whether it was written.

    Any writer may call it when it has finished its own shards; the last one to finish writes it (atomically, the
    same content whoever writes it).
    """
    root = Path(root)
    if not all(shard_done(root, s) for s in range(num_shards)):
        return False
    config = json.loads((root / CONFIG).read_text())
    shards, skipped = [], []
    for s in range(num_shards):
        meta = json.loads((root / f"{shard_name(s)}.json").read_text())
        shards.append({"file": meta["file"], "samples": len(meta["samples"]), "bytes": meta["bytes"],
                       "sha256": meta["sha256"]})
        skipped += meta["skipped"]
    reasons: dict[str, int] = {}
    for item in skipped:
        reasons[item["reason"]] = reasons.get(item["reason"], 0) + 1
    manifest = {"version": _STATE_VERSION, "config": config, "num_samples": sum(s["samples"] for s in shards),
                "num_skipped": len(skipped), "skipped_reasons": reasons, "shards": shards, **dict(extra or {})}
    atomic_write_text(root / MANIFEST, json.dumps(manifest, indent=2))
    return True


# ---------------------------------------------------------------------------------------------------------------
# reading


@dataclass(frozen=True)
class _ShardInfo:
    path: Path
    samples: list[dict[str, Any]]


class ShardedCache(Dataset):
    """Random access to a finished cache: item ``(shard, j)`` is ``decode(key, {field: bytes})`` of sample ``j`` of
    shard ``shard`` (bytes read with ``os.pread`` at the indexed offsets: safe in forked DataLoader workers).

    Args:
        root: cache folder holding ``manifest.json``.
        decode: ``(key, fields) -> sample``.
        verify_checksums: hash every shard against the manifest (reads every byte once) instead of checking sizes.

    Raises:
        CacheError: no manifest (the writer has not finished), or a shard is missing / has another size or hash.
    """

    def __init__(self, root: str | os.PathLike, decode: Callable[[str, dict[str, bytes]], Any],
                 verify_checksums: bool = False) -> None:
        self.root = Path(root)
        manifest_path = self.root / MANIFEST
        if not manifest_path.is_file():
            raise CacheError(f"{self.root} has no {MANIFEST}: the cache does not exist or was not finished; write "
                             "it with `python cache.py <the same overrides as for train.py>` (it resumes)")
        self.manifest: dict[str, Any] = json.loads(manifest_path.read_text())
        self.decode = decode
        self.shards: list[_ShardInfo] = []
        for entry in self.manifest["shards"]:
            path = self.root / entry["file"]
            if not path.is_file() or path.stat().st_size != entry["bytes"]:
                raise CacheError(f"cache shard {path} is missing or has another size than {MANIFEST} records; "
                                 "rewrite the cache (delete the folder and run cache.py again)")
            if verify_checksums and _sha256(path) != entry["sha256"]:
                raise CacheError(f"cache shard {path} does not match its sha256 in {MANIFEST}; rewrite the cache")
            side = json.loads((self.root / f"{path.stem}.json").read_text())
            self.shards.append(_ShardInfo(path, side["samples"]))

    @property
    def config(self) -> dict[str, Any]:
        return self.manifest["config"]

    def shard_sizes(self) -> list[int]:
        return [len(s.samples) for s in self.shards]

    def __len__(self) -> int:
        return sum(self.shard_sizes())

    def read(self, shard: int, j: int) -> tuple[str, dict[str, bytes]]:
        """Raw ``(key, {field: bytes})`` of sample ``j`` of shard ``shard``."""
        info = self.shards[shard]
        entry = info.samples[j]
        fd = os.open(info.path, os.O_RDONLY)
        try:
            fields = {f: os.pread(fd, size, offset) for f, (offset, size) in
                      ((f, v) for f, v in entry.items() if f != "key")}
        finally:
            os.close(fd)
        return entry["key"], fields

    def __getitem__(self, address: tuple[int, int]) -> Any:
        shard, j = address
        return self.decode(*self.read(int(shard), int(j)))


def _permutation(n: int, *seed_parts: int) -> list[int]:
    g = torch.Generator().manual_seed(int(np.random.SeedSequence(list(seed_parts)).generate_state(1)[0]))
    return torch.randperm(n, generator=g).tolist()


class RankBatchSampler(Sampler):
    """Infinite batches of ``(shard, sample)`` addresses for one rank (order: see the module docstring).

    Args:
        shard_sizes: samples per shard of the whole cache.
        batch_size: addresses per batch.
        rank, world_size: this rank owns the shards ``s`` with ``s % world_size == rank``.
        seed: order seed.
        shuffle: permute shards and samples per epoch (False: shard order, then sample order, every epoch).
        start_batch: first batch to yield (resume position).

    Raises:
        CacheError: this rank owns no sample (fewer non-empty shards than ranks).
    """

    def __init__(self, shard_sizes: Sequence[int], batch_size: int, rank: int, world_size: int, seed: int = 0,
                 shuffle: bool = True, start_batch: int = 0) -> None:
        self.shards = [s for s in range(len(shard_sizes)) if s % world_size == rank and shard_sizes[s] > 0]
        self.sizes = list(shard_sizes)
        if not self.shards:
            raise CacheError(f"rank {rank} of {world_size} owns no cached sample ({len(shard_sizes)} shards, sizes "
                             f"{list(shard_sizes)}): write at least as many non-empty shards as there are ranks")
        self.total = sum(self.sizes[s] for s in self.shards)
        self.batch_size, self.rank, self.world_size = int(batch_size), rank, world_size
        self.seed, self.shuffle, self.start_batch = int(seed), bool(shuffle), int(start_batch)

    def _epoch(self, epoch: int) -> list[tuple[int, int]]:
        order = ([self.shards[i] for i in _permutation(len(self.shards), self.seed, epoch, self.rank)]
                 if self.shuffle else self.shards)
        out: list[tuple[int, int]] = []
        for s in order:
            n = self.sizes[s]
            inner = _permutation(n, self.seed, epoch, 1_000_003 + s) if self.shuffle else range(n)
            out += [(s, j) for j in inner]
        return out

    def addresses(self, start: int) -> Iterator[tuple[int, int]]:
        """The rank's address sequence from flat position ``start`` on (infinite)."""
        epoch, offset = divmod(start, self.total)
        while True:
            seq = self._epoch(epoch)
            yield from seq[offset:]
            epoch, offset = epoch + 1, 0

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        it = self.addresses(self.start_batch * self.batch_size)
        while True:
            yield [next(it) for _ in range(self.batch_size)]


class PositionedLoader:
    """Iterable of batches of a :class:`ShardedCache` that knows how many batches were consumed (exact resume).

    Not a ``DataLoader`` subclass on purpose: Lightning would replace the sampler of a map-style ``DataLoader`` with
    a ``DistributedSampler``; the per-rank order here is :class:`RankBatchSampler`'s.

    ``state_dict``/``load_state_dict`` are what Lightning stores for a train dataloader (as for
    :class:`~albedogan.datamodules.latent_stream.LatentStreamLoader`, whose ``lookahead`` rule this follows: batches
    fetched ahead of use are not counted).

    Args:
        dataset: the cache.
        batch_size, seed, shuffle: as :class:`RankBatchSampler`.
        rank, world_size: explicit rank (None: :func:`resolve_rank` when iteration starts).
        num_workers: DataLoader workers.
        lookahead: batches fetched before use (1 under Lightning's training loop).
        collate_fn: batch collation.
        identity: extra settings that must match on resume (e.g. the cache's config hash).
    """

    def __init__(self, dataset: ShardedCache, batch_size: int, seed: int = 0, shuffle: bool = True,
                 rank: int | None = None, world_size: int | None = None, num_workers: int = 0, lookahead: int = 0,
                 collate_fn: Callable | None = None, identity: Mapping[str, Any] | None = None) -> None:
        self.dataset, self.num_workers = dataset, int(num_workers)
        self._bs, self.seed, self.shuffle = int(batch_size), int(seed), bool(shuffle)
        self._rank_arg, self._world_arg = rank, world_size
        self.lookahead, self.batches_consumed = int(lookahead), 0
        self._collate = collate_fn
        self.identity = dict(identity or {})

    def _sampler(self, start: int) -> RankBatchSampler:
        rank, world = resolve_rank(self._rank_arg, self._world_arg)
        return RankBatchSampler(self.dataset.shard_sizes(), self._bs, rank, world, self.seed, self.shuffle, start)

    @property
    def batch_size(self) -> int:
        return self._bs

    def __iter__(self) -> Iterator[Any]:
        start = self.batches_consumed
        sampler = self._sampler(start)
        loader = DataLoader(self.dataset, batch_sampler=sampler, num_workers=self.num_workers,
                            collate_fn=self._collate)
        for yielded, batch in enumerate(loader, start=1):
            self.batches_consumed = start + max(0, yielded - self.lookahead)
            yield batch

    def state_dict(self) -> dict[str, Any]:
        return {"version": _STATE_VERSION, "batches_consumed": self.batches_consumed, "batch_size": self._bs,
                "seed": self.seed, "shuffle": self.shuffle, "world_size": resolve_rank(self._rank_arg,
                                                                                       self._world_arg)[1],
                **self.identity}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        mine = self.state_dict()
        diff = {k: (state.get(k), mine.get(k)) for k in set(mine) | set(state)
                if k != "batches_consumed" and state.get(k) != mine.get(k)}
        if diff:
            detail = ", ".join(f"{k}: saved {a!r} vs now {b!r}" for k, (a, b) in sorted(diff.items()))
            raise ValueError(f"cache loader: cannot continue exactly ({detail}); resume with the same data settings, "
                             "cache and number of devices")
        self.batches_consumed = int(state["batches_consumed"])


def wait_for(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll ``predicate`` until true (e.g. rank 0 waiting for the manifest another rank writes)."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise CacheError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.2)
