"""Teacher latent stream: an infinite, seeded, sharded and resumable supply of StyleGAN2 z vectors.

Index → seed → latent (the whole contract):

* Sample ``i`` (i = 0, 1, 2, ...) has seed ``base_seed * 1_000_003 + i`` (1_000_003 is prime, so the streams of
  nearby base seeds never overlap for the first million samples) and latent
  ``z_i = latents_for_seeds([seed_i], z_dim)[0]`` (one generator per seed: the value depends on ``i`` only).
* Sharding: with DDP world size W (rank r) and K DataLoader workers per rank (worker k; K = 1 when
  ``num_workers=0``), *slot* ``s = r * K + k`` takes the indices ``i ≡ s (mod W * K)``, in increasing order:
  its j-th sample is ``i = s + W * K * j``. Slots are disjoint and together cover every index.
* Order seen by a rank: the DataLoader returns batches round-robin over its workers, so batch n of a rank holds
  the ``batch_size`` consecutive samples j = (n // K) * B ... of slot ``r * K + n % K``.

Resuming: :class:`TeacherLatentStream` keeps a cursor per worker slot (how many samples each slot has produced);
its ``state_dict`` / ``load_state_dict`` save and restore it (plain iteration in the main process advances slot 0).
Worker processes iterate *copies*, so under a DataLoader the position is owned by :class:`LatentStreamLoader`,
which counts consumed batches and is what Lightning saves: ``FitLoop`` stores ``state_dict()`` of every
train dataloader that implements ``state_dict``/``load_state_dict`` (``CombinedLoader._state_dicts``, checkpoint key
``loops.fit_loop.state_dict.combined_loader``) and calls ``load_state_dict`` before the first batch on resume.
The saved position is rank-independent (ranks consume batches in lockstep), so rank 0's checkpoint restores
every rank.
"""

from __future__ import annotations

import itertools
from typing import Any, Iterator, NamedTuple, Sequence

import pytorch_lightning as pl
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, IterableDataset, get_worker_info

from albedogan.utils.seeding import MAX_SEED, latents_for_seeds

__all__ = [
    "SEED_STRIDE",
    "LatentSample",
    "seed_for_index",
    "TeacherLatentStream",
    "LatentStreamLoader",
    "SeedLatentDataset",
    "LatentDataModule",
]

#: Multiplier of ``base_seed`` in ``seed = base_seed * SEED_STRIDE + index`` (a prime).
SEED_STRIDE: int = 1_000_003
_STATE_VERSION = 1


class LatentSample(NamedTuple):
    """One latent (or, after default collation, a batch of N of them).

    Attributes:
        index: stream index i (int; (N,) int64 tensor when batched). For :class:`SeedLatentDataset`, the position
            in its seed list.
        seed: the seed that produced ``z`` (int; (N,) int64 tensor when batched).
        z: (z_dim,) latent ~ N(0, 1) ((N, z_dim) when batched), dtype of the producing dataset.
    """

    index: Any
    seed: Any
    z: torch.Tensor


def seed_for_index(base_seed: int, index: int) -> int:
    """Seed of stream sample ``index``: ``base_seed * SEED_STRIDE + index``."""
    return base_seed * SEED_STRIDE + index


def _resolve_distributed(rank: int | None, world_size: int | None) -> tuple[int, int]:
    """(rank, world size): from ``torch.distributed`` when initialised (explicit values must then agree), else
    from the explicit arguments, else (0, 1)."""
    if dist.is_available() and dist.is_initialized():
        d_rank, d_world = dist.get_rank(), dist.get_world_size()
        if (rank is not None and rank != d_rank) or (world_size is not None and world_size != d_world):
            raise ValueError(
                f"TeacherLatentStream: explicit rank/world_size ({rank}/{world_size}) disagree with torch.distributed "
                f"({d_rank}/{d_world}); leave them unset under DDP"
            )
        return d_rank, d_world
    rank = 0 if rank is None else rank
    world_size = 1 if world_size is None else world_size
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"TeacherLatentStream: need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
    return rank, world_size


class TeacherLatentStream(IterableDataset):
    """Infinite stream of :class:`LatentSample` (see the module docstring for index, seed and sharding rules).

    Args:
        z_dim: latent size (512 for StyleGAN2).
        base_seed: run seed, >= 0; sample i uses seed ``base_seed * 1_000_003 + i``.
        rank: DDP rank; taken from ``torch.distributed`` when it is initialised, else this value (default 0).
        world_size: DDP world size; as ``rank`` (default 1).
        dtype: floating dtype of ``z``.
    """

    def __init__(
        self,
        z_dim: int,
        base_seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        if isinstance(z_dim, bool) or not isinstance(z_dim, int) or z_dim < 1:
            raise ValueError(f"TeacherLatentStream: z_dim must be a positive integer, got {z_dim!r}")
        if isinstance(base_seed, bool) or not isinstance(base_seed, int) or base_seed < 0:
            raise ValueError(f"TeacherLatentStream: base_seed must be an integer >= 0, got {base_seed!r}")
        if base_seed * SEED_STRIDE > MAX_SEED // 2:
            raise ValueError(f"TeacherLatentStream: base_seed {base_seed} is too large (seeds must fit in 64 bits)")
        self.z_dim = z_dim
        self.base_seed = base_seed
        self.dtype = dtype
        self._rank_arg = rank
        self._world_arg = world_size
        self._bound: tuple[int, int] | None = None  # (rank, world) fixed in the main process before workers start
        self._cursor: list[int] = [0]  # samples already produced, per worker slot of this rank
        self._rotation = 0  # worker process p serves slot (p + rotation) % K (set by set_batch_position)

    # -- sharding -------------------------------------------------------------------------------------------------
    def bind_distributed(self) -> tuple[int, int]:
        """Resolve and freeze (rank, world size) in the calling (main) process; workers inherit the result."""
        if self._bound is None:
            self._bound = _resolve_distributed(self._rank_arg, self._world_arg)
        return self._bound

    def sample(self, index: int) -> LatentSample:
        """The sample at stream ``index`` (pure function of ``base_seed`` and ``index``)."""
        seed = seed_for_index(self.base_seed, index)
        return LatentSample(index, seed, latents_for_seeds([seed], self.z_dim, dtype=self.dtype)[0])

    def __iter__(self) -> Iterator[LatentSample]:
        info = get_worker_info()
        num_workers = 1 if info is None else info.num_workers
        # The DataLoader always asks worker process 0 first; after a resume the next batch belongs to slot
        # `batches % K`, so process p plays slot (p + rotation) % K.
        worker = 0 if info is None else (info.id + self._rotation) % num_workers
        if len(self._cursor) != num_workers:
            if any(self._cursor):
                raise RuntimeError(
                    f"TeacherLatentStream: its position was saved for {len(self._cursor)} worker slot(s) but it is "
                    f"iterated by {num_workers}; resume with the same num_workers"
                )
            self._cursor = [0] * num_workers
        rank, world = self.bind_distributed()
        slot, stride = rank * num_workers + worker, world * num_workers
        for j in itertools.count(self._cursor[worker]):
            self._cursor[worker] = j + 1  # counted as consumed once handed out
            yield self.sample(slot + stride * j)

    # -- resume ---------------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Position of this stream: ``cursor[k]`` samples already produced by worker slot k, so the next index of
        slot k is ``(rank * K + k) + world_size * K * cursor[k]`` (for K = 1 and one process: ``cursor[0]``);
        ``rotation``: which slot worker process 0 serves first."""
        return {
            "version": _STATE_VERSION,
            "base_seed": self.base_seed,
            "z_dim": self.z_dim,
            "cursor": list(self._cursor),
            "rotation": self._rotation,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a position saved by :meth:`state_dict` (same ``base_seed`` and ``z_dim`` required)."""
        expected = {"version", "base_seed", "z_dim", "cursor", "rotation"}
        if set(state) != expected:
            raise KeyError(
                f"TeacherLatentStream.load_state_dict: expected keys {sorted(expected)}, got {sorted(state)}"
            )
        for key in ("version", "base_seed", "z_dim"):
            mine = _STATE_VERSION if key == "version" else getattr(self, key)
            if state[key] != mine:
                raise ValueError(
                    f"TeacherLatentStream.load_state_dict: saved {key}={state[key]!r} but this stream has {mine!r}; "
                    "resume with the configuration of the saved run"
                )
        cursor = [int(c) for c in state["cursor"]]
        if not cursor or any(c < 0 for c in cursor):
            raise ValueError(f"TeacherLatentStream.load_state_dict: invalid cursor {state['cursor']!r}")
        rotation = int(state["rotation"])
        if not 0 <= rotation < len(cursor):
            raise ValueError(f"TeacherLatentStream.load_state_dict: invalid rotation {rotation} ({len(cursor)} slots)")
        self._cursor = cursor
        self._rotation = rotation

    def set_batch_position(self, batches: int, batch_size: int, num_workers: int) -> None:
        """Place every worker slot's cursor where it is after this rank consumed ``batches`` batches.

        Worker slot k (of K = max(1, num_workers)) delivered ceil((batches - k) / K) batches of ``batch_size``, and
        the next batch belongs to slot ``batches % K``, which worker process 0 then serves (the DataLoader starts
        its round-robin at process 0).
        """
        slots = max(1, num_workers)
        self._cursor = [batch_size * max(0, -(-(batches - k) // slots)) for k in range(slots)]
        self._rotation = batches % slots


class LatentStreamLoader(DataLoader):
    """DataLoader over a :class:`TeacherLatentStream` that knows its position, for exact resume (also in Lightning).

    Batches are :class:`LatentSample` with ``index``/``seed`` (N,) int64 and ``z`` (N, z_dim).

    Args:
        dataset: the stream.
        batch_size: N.
        num_workers: worker processes (0: load in the main process).
        lookahead: batches the consumer fetches ahead of use; they are not counted as consumed. Lightning's training
            loop prefetches one batch (``_PrefetchDataFetcher``) for an iterable of unknown length, so
            :class:`LatentDataModule` uses 1; a plain ``for batch in loader`` loop uses 0.
        start_batches: position to start from (batches already consumed).
        **kwargs: forwarded to :class:`torch.utils.data.DataLoader` (e.g. ``pin_memory``); ``shuffle``, ``sampler``
            and ``persistent_workers`` are not allowed (a persistent worker would keep a stale position).
    """

    def __init__(
        self,
        dataset: TeacherLatentStream,
        batch_size: int,
        num_workers: int = 0,
        lookahead: int = 0,
        start_batches: int = 0,
        **kwargs: Any,
    ) -> None:
        if not isinstance(dataset, TeacherLatentStream):
            raise TypeError(f"LatentStreamLoader needs a TeacherLatentStream, got {type(dataset).__name__}")
        for bad in ("shuffle", "sampler", "batch_sampler", "persistent_workers"):
            if kwargs.get(bad):
                raise ValueError(f"LatentStreamLoader: `{bad}` is not supported for the latent stream")
            kwargs.pop(bad, None)
        if batch_size < 1 or lookahead < 0 or start_batches < 0:
            raise ValueError(
                f"LatentStreamLoader: need batch_size >= 1, lookahead >= 0, start_batches >= 0; got "
                f"{batch_size}, {lookahead}, {start_batches}"
            )
        super().__init__(dataset, batch_size=batch_size, num_workers=num_workers, **kwargs)
        self.lookahead = lookahead
        self.batches_consumed = start_batches

    def __iter__(self) -> Iterator[LatentSample]:  # type: ignore[override]
        stream: TeacherLatentStream = self.dataset  # type: ignore[assignment]
        stream.bind_distributed()  # in the main process, before workers copy the dataset
        start = self.batches_consumed
        stream.set_batch_position(start, self.batch_size, self.num_workers)
        for yielded, batch in enumerate(super().__iter__(), start=1):
            self.batches_consumed = start + max(0, yielded - self.lookahead)
            yield batch

    def state_dict(self) -> dict[str, Any]:
        """Rank-independent position: batches consumed plus the settings an exact resume needs."""
        stream: TeacherLatentStream = self.dataset  # type: ignore[assignment]
        return {
            "version": _STATE_VERSION,
            "batches_consumed": self.batches_consumed,
            "batch_size": self.batch_size,
            "num_workers": self.num_workers,
            "world_size": stream.bind_distributed()[1],
            "base_seed": stream.base_seed,
            "z_dim": stream.z_dim,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a position saved by :meth:`state_dict`; every other saved setting must match."""
        mine = self.state_dict()
        if set(state) != set(mine):
            raise KeyError(f"LatentStreamLoader.load_state_dict: expected keys {sorted(mine)}, got {sorted(state)}")
        diff = {k: (state[k], mine[k]) for k in mine if k != "batches_consumed" and state[k] != mine[k]}
        if diff:
            detail = ", ".join(f"{k}: saved {a!r} vs now {b!r}" for k, (a, b) in diff.items())
            raise ValueError(
                f"LatentStreamLoader.load_state_dict: cannot continue the latent stream exactly ({detail}); "
                "resume with the same data settings and number of devices"
            )
        self.batches_consumed = int(state["batches_consumed"])


class SeedLatentDataset(Dataset):
    """Fixed latents for a list of seeds (validation / sample grids): item n is seed ``seeds[n]``.

    Args:
        seeds: seeds in [0, 2**64 - 1].
        z_dim: latent size.
        dtype: floating dtype of ``z``.
    """

    def __init__(self, seeds: Sequence[int], z_dim: int, dtype: torch.dtype = torch.float32) -> None:
        self.seeds = [int(s) for s in seeds]
        if not self.seeds:
            raise ValueError("SeedLatentDataset: the seed list is empty; give at least one seed (data.val_seeds)")
        self._z = latents_for_seeds(self.seeds, z_dim, dtype=dtype)  # (S, z_dim), computed once

    def __len__(self) -> int:
        return len(self.seeds)

    def __getitem__(self, n: int) -> LatentSample:
        return LatentSample(n, self.seeds[n], self._z[n])


class LatentDataModule(pl.LightningDataModule):
    """Latents for AlbedoGAN training: an infinite seeded train stream and a fixed validation seed set.

    Args:
        batch_size: latents per batch and per device.
        z_dim: latent size (512 for StyleGAN2).
        base_seed: stream seed (sample i uses seed ``base_seed * 1_000_003 + i``).
        num_workers: DataLoader worker processes (0 is fine: drawing latents is cheap).
        val_seeds: seeds of the validation latents (fixed across runs and epochs).
        rank: DDP rank override when ``torch.distributed`` is not initialised.
        world_size: DDP world size override, as ``rank``.
        lookahead: batches Lightning fetches before using them (1 with the default training fetcher; use 0 when
            ``training_step`` takes ``dataloader_iter``, which disables prefetching); see :class:`LatentStreamLoader`.
        mix: optional :class:`~albedogan.datamodules.real_faces.RealFaceMix`: with ``real_fraction > 0`` every
            training batch is a :class:`~albedogan.datamodules.real_faces.MixedBatch` (teacher part + real photos
            for phase B).
    """

    def __init__(
        self,
        batch_size: int,
        z_dim: int = 512,
        base_seed: int = 0,
        num_workers: int = 0,
        val_seeds: Sequence[int] = tuple(range(8)),
        rank: int | None = None,
        world_size: int | None = None,
        lookahead: int = 1,
        mix: Any = None,
    ) -> None:
        super().__init__()
        self.lookahead = lookahead
        self.mix = mix
        self.batch_size = batch_size
        self.z_dim = z_dim
        self.base_seed = base_seed
        self.num_workers = num_workers
        self.val_seeds = list(val_seeds)
        self.rank = rank
        self.world_size = world_size
        self._train_loader: Any = None

    def _train_source(self, start: int) -> Any:
        """The teacher part of the training batches, starting after ``start`` consumed batches."""
        stream = TeacherLatentStream(self.z_dim, self.base_seed, rank=self.rank, world_size=self.world_size)
        return LatentStreamLoader(
            stream, self.batch_size, num_workers=self.num_workers, lookahead=self.lookahead, start_batches=start
        )

    def train_dataloader(self) -> Any:
        """The stream loader (mixed with real photos when ``mix`` asks for them); a re-created loader continues
        where the previous one stopped."""
        if self._train_loader is not None:
            state = self._train_loader.state_dict()
            self._train_loader = self._wrap(self._train_source(0))
            self._train_loader.load_state_dict(state)
        else:
            self._train_loader = self._wrap(self._train_source(0))
        return self._train_loader

    def _wrap(self, loader: Any) -> Any:
        if self.mix is None or not self.mix.active:
            return loader
        return self.mix.wrap(loader, self.batch_size, self.lookahead)

    def val_dataloader(self) -> DataLoader:
        """Batches of :class:`LatentSample` for ``val_seeds``, in order."""
        return DataLoader(
            SeedLatentDataset(self.val_seeds, self.z_dim), batch_size=self.batch_size, shuffle=False, num_workers=0
        )
