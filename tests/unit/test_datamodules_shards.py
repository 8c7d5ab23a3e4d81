"""Sharded cache format: tar layout readable by webdataset, byte index, atomic shards, per-rank order, resume."""

from __future__ import annotations

import json

import pytest
import torch

from albedogan.datamodules.shards import (
    CacheError,
    PositionedLoader,
    RankBatchSampler,
    ShardedCache,
    check_cache_config,
    decode_arrays,
    encode_arrays,
    finalize_manifest,
    shard_done,
    write_shard,
)


def _write(root, sizes):
    check_cache_config(root, {"kind": "test"})
    i = 0
    for s, n in enumerate(sizes):
        samples = []
        for _ in range(n):
            samples.append((f"{i:06d}", {"json": json.dumps({"i": i}).encode(),
                                          "npz": encode_arrays({"x": torch.full((2,), float(i))})}))
            i += 1
        write_shard(root, s, samples, skipped=[{"input": f"bad{s}", "reason": "no_face", "detail": ""}])
    assert finalize_manifest(root, len(sizes), {"kind": "test"})


def _decode(key, fields):
    return int(json.loads(fields["json"])["i"]), decode_arrays(fields["npz"])["x"]


def test_shards_random_access_and_webdataset(tmp_path):
    import webdataset as wds

    _write(tmp_path, [3, 4, 2])
    cache = ShardedCache(tmp_path, _decode, verify_checksums=True)
    assert cache.shard_sizes() == [3, 4, 2] and len(cache) == 9
    assert cache[(1, 2)][0] == 5 and torch.equal(cache[(1, 2)][1], torch.full((2,), 5.0))
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["num_skipped"] == 3 and manifest["skipped_reasons"] == {"no_face": 3}
    keys = [s["__key__"] for s in wds.WebDataset(str(tmp_path / "shard-000001.tar"), shardshuffle=False)]
    assert keys == ["000003", "000004", "000005", "000006"]


def test_incomplete_or_corrupt_cache_is_refused(tmp_path):
    check_cache_config(tmp_path, {"kind": "test"})
    write_shard(tmp_path, 0, [("a", {"json": b"{}"})])
    assert not finalize_manifest(tmp_path, 2)  # shard 1 missing: no manifest
    with pytest.raises(CacheError, match="no manifest.json"):
        ShardedCache(tmp_path, _decode)
    with pytest.raises(CacheError, match="other settings"):
        check_cache_config(tmp_path, {"kind": "other"})
    _write(tmp_path / "b", [2, 2])
    with open(tmp_path / "b" / "shard-000001.tar", "r+b") as fh:
        fh.seek(600)
        fh.write(b"X")
    with pytest.raises(CacheError, match="sha256"):
        ShardedCache(tmp_path / "b", _decode, verify_checksums=True)
    (tmp_path / "b" / "shard-000001.json").unlink()
    assert not shard_done(tmp_path / "b", 1)  # a tar without its sidecar is not a finished shard


def test_rank_order_is_disjoint_covering_and_reshuffled(tmp_path):
    sizes = [3, 4, 2, 5, 1]
    per_rank = []
    for rank in range(2):
        sampler = RankBatchSampler(sizes, batch_size=2, rank=rank, world_size=2, seed=3)
        it = sampler.addresses(0)
        epoch0 = [next(it) for _ in range(sampler.total)]
        epoch1 = [next(it) for _ in range(sampler.total)]
        assert sorted(epoch0) == sorted(epoch1) and epoch0 != epoch1  # every epoch once, in a new order
        assert {s for s, _ in epoch0} == {s for s in range(len(sizes)) if s % 2 == rank}
        per_rank.append(set(epoch0))
    assert not per_rank[0] & per_rank[1]
    assert len(per_rank[0] | per_rank[1]) == sum(sizes)
    with pytest.raises(CacheError, match="owns no cached sample"):
        RankBatchSampler([3], batch_size=2, rank=1, world_size=2)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_positioned_loader_resumes_exactly(tmp_path, num_workers):
    _write(tmp_path, [3, 4, 2])
    cache = ShardedCache(tmp_path, _decode)

    def loader():
        return PositionedLoader(cache, 2, seed=1, rank=0, world_size=1, num_workers=num_workers,
                                collate_fn=lambda items: [i for i, _ in items])

    straight = loader()
    it = iter(straight)
    reference = [next(it) for _ in range(12)]  # > one epoch (9 samples)
    first = loader()
    it = iter(first)
    head = [next(it) for _ in range(5)]
    state = first.state_dict()
    assert state["batches_consumed"] == 5
    second = loader()
    second.load_state_dict(state)
    it = iter(second)
    assert head + [next(it) for _ in range(7)] == reference
    other = PositionedLoader(cache, 3, seed=1, rank=0, world_size=1)
    with pytest.raises(ValueError, match="batch_size"):
        other.load_state_dict(state)
