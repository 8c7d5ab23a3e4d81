"""Per-seed latents, the teacher latent stream (sharding, resume) and LatentDataModule, incl. a Lightning resume."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch

from albedogan.datamodules.latent_stream import (
    SEED_STRIDE,
    LatentDataModule,
    LatentSample,
    LatentStreamLoader,
    SeedLatentDataset,
    TeacherLatentStream,
)
from albedogan.utils.seeding import latents_for_seeds, seed_everything

Z = 8


def _ref_z(seed: int, dim: int = Z) -> torch.Tensor:
    """Independent reference: a fresh generator for this seed, standard normal draw."""
    return torch.randn(dim, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------------------------------------------ seeding
def test_latents_for_seeds_independent_of_batch_composition() -> None:
    alone = latents_for_seeds([7], Z)
    mixed = latents_for_seeds([3, 7, 11, 7], Z)
    reordered = latents_for_seeds([11, 3, 7], Z)
    assert alone.shape == (1, Z) and mixed.shape == (4, Z) and alone.dtype == torch.float32
    assert torch.equal(alone[0], _ref_z(7))
    assert torch.equal(mixed[1], alone[0]) and torch.equal(mixed[3], alone[0]) and torch.equal(reordered[2], alone[0])
    assert torch.equal(mixed[0], reordered[1]) and not torch.equal(mixed[0], mixed[1])
    assert torch.equal(latents_for_seeds([7], Z, dtype=torch.float64)[0], _ref_z(7).double())
    big = latents_for_seeds([2**64 - 1], 2)
    assert torch.isfinite(big).all()
    assert latents_for_seeds([], Z).shape == (0, Z)


@pytest.mark.parametrize("bad", [-1, 2**64, 1.5, True])
def test_latents_for_seeds_rejects_bad_seeds(bad) -> None:
    with pytest.raises((ValueError, TypeError), match="seeds\\[0\\]"):
        latents_for_seeds([bad], Z)


def test_seed_everything_is_reproducible() -> None:
    import random

    import numpy as np

    seed_everything(123)
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    seed_everything(123)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == a
    with pytest.raises(ValueError):
        seed_everything(2**33)


# ------------------------------------------------------------------------------------------------------------- stream
def test_stream_samples_follow_the_index_seed_contract() -> None:
    stream = TeacherLatentStream(Z, base_seed=5)
    got = list(itertools.islice(stream, 4))
    for i, sample in enumerate(got):
        assert isinstance(sample, LatentSample)
        assert sample.index == i and sample.seed == 5 * SEED_STRIDE + i
        assert torch.equal(sample.z, _ref_z(5 * SEED_STRIDE + i))


def test_stream_ranks_are_disjoint_and_complete_without_workers() -> None:
    world = 3
    streams = [TeacherLatentStream(Z, 0, rank=r, world_size=world) for r in range(world)]
    taken = [[s.index for s in itertools.islice(stream, 4)] for stream in streams]
    assert taken == [[r + world * j for j in range(4)] for r in range(world)]
    assert sorted(itertools.chain(*taken)) == list(range(12))


def test_stream_ranks_and_workers_disjoint_and_complete() -> None:
    # 2 ranks x 2 workers, batch 3, 4 batches per rank: each worker slot delivers 2 batches = 6 samples.
    seen: dict[int, torch.Tensor] = {}
    for rank in range(2):
        loader = LatentStreamLoader(TeacherLatentStream(Z, 1, rank=rank, world_size=2), batch_size=3, num_workers=2)
        batches = list(itertools.islice(loader, 4))
        for n, batch in enumerate(batches):
            slot = rank * 2 + n % 2  # batches alternate between the rank's two workers
            expected = [slot + 4 * j for j in range((n // 2) * 3, (n // 2) * 3 + 3)]
            assert batch.index.tolist() == expected
            for i, z in zip(batch.index.tolist(), batch.z):
                assert i not in seen
                seen[i] = z
    assert sorted(seen) == list(range(24))
    assert all(torch.equal(z, _ref_z(1 * SEED_STRIDE + i)) for i, z in seen.items())


def test_stream_plain_resume_is_exact() -> None:
    uninterrupted = list(itertools.islice(TeacherLatentStream(Z, 2, rank=1, world_size=2), 10))
    first = TeacherLatentStream(Z, 2, rank=1, world_size=2)
    head = list(itertools.islice(first, 4))
    state = first.state_dict()
    assert state["cursor"] == [4]
    second = TeacherLatentStream(Z, 2, rank=1, world_size=2)
    second.load_state_dict(state)
    tail = list(itertools.islice(second, 6))
    for a, b in zip(head + tail, uninterrupted):
        assert a.index == b.index and a.seed == b.seed and torch.equal(a.z, b.z)
    with pytest.raises(ValueError, match="base_seed"):
        TeacherLatentStream(Z, 3).load_state_dict(state)
    with pytest.raises(KeyError):
        TeacherLatentStream(Z, 2).load_state_dict({"cursor": [1]})


def _expected_batch(n: int, rank: int, world: int, workers: int, batch: int) -> list[int]:
    """Indices of batch n of a rank, from the documented sharding rule (independent of the implementation)."""
    k = max(1, workers)
    slot = rank * k + n % k
    return [slot + world * k * j for j in range((n // k) * batch, (n // k) * batch + batch)]


@pytest.mark.parametrize("num_workers", [0, 2])
def test_loader_resume_is_exact(num_workers: int) -> None:
    def make() -> LatentStreamLoader:
        stream = TeacherLatentStream(Z, 4, rank=1, world_size=2)
        return LatentStreamLoader(stream, batch_size=2, num_workers=num_workers)

    reference = [_expected_batch(n, 1, 2, num_workers, 2) for n in range(7)]
    first = make()
    head = [b.index.tolist() for b in itertools.islice(first, 3)]
    state = first.state_dict()
    assert state["batches_consumed"] == 3
    second = make()
    second.load_state_dict(state)
    second_batches = list(itertools.islice(second, 3))
    tail = [b.index.tolist() for b in second_batches]
    assert head + tail == reference[:6]
    assert torch.equal(second_batches[0].z[1], _ref_z(4 * SEED_STRIDE + reference[3][1]))
    # a new iterator over the same loader continues, it does not restart
    assert [b.index.tolist() for b in itertools.islice(second, 1)] == reference[6:]


def test_loader_lookahead_and_mismatch() -> None:
    loader = LatentStreamLoader(TeacherLatentStream(Z, 0), batch_size=2, lookahead=1)
    list(itertools.islice(loader, 3))  # consumer prefetched 1: only 2 were used
    assert loader.state_dict()["batches_consumed"] == 2
    other = LatentStreamLoader(TeacherLatentStream(Z, 0), batch_size=3)
    with pytest.raises(ValueError, match="batch_size"):
        other.load_state_dict(loader.state_dict())
    with pytest.raises(ValueError, match="shuffle"):
        LatentStreamLoader(TeacherLatentStream(Z, 0), batch_size=2, shuffle=True)


def test_seed_latent_dataset() -> None:
    ds = SeedLatentDataset([9, 4], Z)
    assert len(ds) == 2 and ds[1].seed == 4 and ds[1].index == 1 and torch.equal(ds[1].z, _ref_z(4))
    with pytest.raises(ValueError, match="val_seeds"):
        SeedLatentDataset([], Z)


# --------------------------------------------------------------------------------------------------------- datamodule
def test_latent_datamodule_shapes() -> None:
    dm = LatentDataModule(batch_size=4, z_dim=Z, base_seed=1, val_seeds=[10, 11, 12])
    batch = next(iter(dm.train_dataloader()))
    assert batch.z.shape == (4, Z) and batch.z.dtype == torch.float32
    assert batch.index.tolist() == [0, 1, 2, 3] and batch.seed.tolist() == [SEED_STRIDE + i for i in range(4)]
    val = list(dm.val_dataloader())
    assert [v.z.shape for v in val] == [(3, Z)] and val[0].seed.tolist() == [10, 11, 12]
    assert torch.equal(val[0].z[2], _ref_z(12))


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_lightning_resume_continues_the_stream_exactly(tmp_path: Path) -> None:
    """Fit 6 steps in one go vs 3 steps + checkpoint + resume: the resumed run sees exactly the same latents."""
    import pytorch_lightning as pl

    class Recorder(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(Z, 1)
            self.seen: list[list[int]] = []

        def training_step(self, batch: LatentSample, batch_idx: int) -> torch.Tensor:
            self.seen.append(batch.index.tolist())
            return self.lin(batch.z).pow(2).mean()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    def fit(max_steps: int, ckpt_path: str | None = None, callbacks=()) -> list[list[int]]:
        model = Recorder()
        trainer = pl.Trainer(
            max_steps=max_steps, accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
            enable_model_summary=False, enable_checkpointing=bool(callbacks), callbacks=list(callbacks),
            default_root_dir=tmp_path, num_sanity_val_steps=0, limit_val_batches=0,
        )
        trainer.fit(model, datamodule=LatentDataModule(batch_size=2, z_dim=Z, base_seed=3), ckpt_path=ckpt_path)
        return model.seen

    full = fit(6)
    ckpt = pl.callbacks.ModelCheckpoint(dirpath=tmp_path / "ck", every_n_train_steps=3, save_top_k=-1)
    interrupted = fit(4, callbacks=[ckpt])
    assert interrupted == full[:4]
    (path,) = [p for p in (tmp_path / "ck").glob("*.ckpt") if "step=3" in p.name]
    state = torch.load(path, weights_only=True)["loops"]["fit_loop"]["state_dict"]["combined_loader"]
    assert state[0]["batches_consumed"] == 3
    resumed = fit(6, ckpt_path=str(path))
    assert resumed == full[3:]


def test_rank_comes_from_torch_distributed_when_initialised(tmp_path: Path) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        assert TeacherLatentStream(Z, 0).bind_distributed() == (0, 1)
        assert TeacherLatentStream(Z, 0, rank=0, world_size=1).bind_distributed() == (0, 1)
        with pytest.raises(ValueError, match="disagree with torch.distributed"):
            TeacherLatentStream(Z, 0, rank=1, world_size=2).bind_distributed()
    finally:
        dist.destroy_process_group()
    assert TeacherLatentStream(Z, 0, rank=1, world_size=2).bind_distributed() == (1, 2)
    with pytest.raises(ValueError, match="rank < world_size"):
        TeacherLatentStream(Z, 0, rank=2, world_size=2).bind_distributed()
