"""Dataset caches end to end: teacher cache written (killed mid-shard, resumed), read, trained from with exact
resume, per-rank disjoint under 2-process DDP (slow); real-face cache of a folder with bad files; phase B mixing real
photos into experiment=synthetic."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

pytestmark = pytest.mark.integration

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled", "HYDRA_FULL_ERROR": "1"}
CACHE = ["data=teacher_cache", "data.write.num_samples=10", "data.write.shard_size=4", "data.write.batch_size=2"]


def _compose(root: Path, overrides: list[str]):
    with initialize_config_dir(config_dir=str(root / "conf"), version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


def _overrides(root: Path, out: Path, data_dir: Path, cache: Path, *extra: str) -> list[str]:
    return ["experiment=debug", f"paths.root_dir={root}", f"paths.data_dir={data_dir}", f"paths.output_dir={out}",
            "callbacks.rich_progress_bar=null", *CACHE, f"data.root={cache}", *extra]


def _shard_hashes(cache: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(cache.glob("shard-*.tar"))}


_KILL_SCRIPT = """
import os, signal, sys, tarfile
from hydra import compose, initialize_config_dir
from albedogan.caching import run_cache
calls = [0]
original = tarfile.TarFile.addfile
def addfile(self, *args, **kwargs):
    calls[0] += 1
    if calls[0] == 15:  # shard 0 = 4 samples x 3 files; die while writing the 3rd file of shard 1
        os.kill(os.getpid(), signal.SIGKILL)
    return original(self, *args, **kwargs)
tarfile.TarFile.addfile = addfile
with initialize_config_dir(config_dir=sys.argv[1], version_base="1.3"):
    cfg = compose(config_name="train", overrides=sys.argv[2:])
run_cache(cfg)
"""


@pytest.fixture(scope="module")
def reference_cache(project_root, synthetic_data_dir, tmp_path_factory) -> Path:
    """The debug world's 10-sample cache written by two writer ranks (rank 1 first, then rank 0; batch 3)."""
    from albedogan.caching import run_cache

    cache = tmp_path_factory.mktemp("reference_cache")
    for rank in (1, 0):
        os.environ.update(RANK=str(rank), WORLD_SIZE="2")
        try:
            run_cache(_compose(project_root, _overrides(project_root, cache / "run", synthetic_data_dir, cache,
                                                        "data.write.batch_size=3")))
        finally:
            del os.environ["RANK"], os.environ["WORLD_SIZE"]
    return cache


def test_teacher_cache_killed_mid_shard_resumes_to_identical_shards(project_root, synthetic_data_dir, tmp_path,
                                                                     reference_cache):
    cache = tmp_path / "cache"
    args = _overrides(project_root, tmp_path / "run", synthetic_data_dir, cache, "data.write.batch_size=3")
    killed = subprocess.run([sys.executable, "-c", _KILL_SCRIPT, str(project_root / "conf"), *args],
                            cwd=project_root, capture_output=True, text=True, timeout=300, env=ENV)
    assert killed.returncode == -9, killed.stderr[-2000:]
    names = sorted(p.name for p in cache.iterdir())
    assert "shard-000000.tar" in names and "shard-000000.json" in names
    assert "shard-000001.tar" not in names and "manifest.json" not in names  # no partial shard under its name
    assert any(n.startswith(".shard-000001.tar.") and n.endswith(".tmp") for n in names)  # it died mid-write
    from albedogan.caching import run_cache

    result = run_cache(_compose(project_root, args))
    assert result["teacher"] == {"written": 2, "skipped": 1, "num_shards": 3}
    assert not [p for p in cache.iterdir() if p.name.endswith(".tmp")]  # the orphaned temp file is cleaned up
    # deterministic per seed: the same bytes as the reference, written by two writer ranks in another order
    # (bit-equality needs the same write batch size: batched float kernels may round differently)
    assert _shard_hashes(cache) == _shard_hashes(reference_cache)
    manifest = json.loads((cache / "manifest.json").read_text())
    assert manifest["num_samples"] == 10 and [s["samples"] for s in manifest["shards"]] == [4, 4, 2]
    assert [s["sha256"] for s in manifest["shards"]] == list(_shard_hashes(cache).values())
    with pytest.raises(Exception, match="other settings"):  # a rerun with other content settings is refused
        run_cache(_compose(project_root, args + ["data.write.image_format=npy"]))


def test_cached_samples_are_the_teacher_samples(project_root, synthetic_data_dir, tmp_path):
    """npy format: image, ws, estimate and target equal what the teacher / estimator / target builder give."""
    from albedogan.caching import run_cache
    from albedogan.datamodules.latent_stream import seed_for_index
    from albedogan.models.builder import build_training
    from albedogan.utils.seeding import latents_for_seeds

    cache = tmp_path / "npy"
    cfg = _compose(project_root, _overrides(project_root, tmp_path / "run", synthetic_data_dir, cache,
                                            "data.write.image_format=npy", "data.shuffle=false"))
    run_cache(cfg)
    model, data = build_training(cfg)
    batch = next(iter(data.train_dataloader()))
    assert batch.index.tolist() == [0, 1]
    z = latents_for_seeds([seed_for_index(0, i) for i in (0, 1)], model.teacher.z_dim)
    sample = model.teacher.sample(z)
    assert torch.equal(batch.z, z) and torch.equal(batch.ws, sample.ws) and torch.equal(batch.image, sample.image)
    model.estimator.eval()
    with torch.no_grad():
        estimate = model.estimator(sample.image, truth=sample.truth)
        target = model.target_builder(sample.image, estimate)
    assert torch.allclose(batch.face_estimate().cam, estimate.cam, atol=1e-6)
    assert torch.allclose(batch.target["texture"], target.texture, atol=1e-6)
    truth = batch.teacher_sample().truth
    assert torch.equal(truth.landmarks2d, sample.truth.landmarks2d)


def _trained_state(ckpt: Path) -> dict[str, torch.Tensor]:
    state = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    return {k: v for k, v in state.items() if k.split(".")[0] in ("G", "D", "G_ema", "estimator")}


def test_training_from_cache_resumes_exactly(project_root, synthetic_data_dir, tmp_path, reference_cache):
    from albedogan.entry import run_train

    # 7 steps = A A A S A A S (debug schedule): cached estimate/target in phase A, the estimator trained in phase B;
    # 14 samples from a 10-sample cache: the resumed part (steps 4-7) crosses an epoch boundary (reshuffled order)
    fast = ["trainer.max_steps=7", "trainer.limit_val_batches=0", "callbacks.image_grid=null",
            "callbacks.model_checkpoint.every_n_train_steps=3"]

    def run(name: str, *extra: str) -> Path:
        out = tmp_path / name
        run_train(_compose(project_root, _overrides(project_root, out, synthetic_data_dir, reference_cache, *fast,
                                                    *extra)))
        return out / "checkpoints" / "last.ckpt"

    straight = run("straight")
    half = run("first", "trainer.max_steps=3")
    saved = torch.load(half, map_location="cpu", weights_only=True)
    assert saved["loops"]["fit_loop"]["state_dict"]["combined_loader"][0]["batches_consumed"] == 3
    resumed = run("resumed", f"ckpt_path={half}")
    a, b = _trained_state(straight), _trained_state(resumed)
    assert a.keys() == b.keys() and len(a) > 50
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs after resume"


def test_missing_cache_says_how_to_write_it(project_root, synthetic_data_dir, tmp_path):
    from albedogan.datamodules.shards import CacheError
    from albedogan.entry import run_train

    with pytest.raises(CacheError, match="python cache.py"):
        run_train(_compose(project_root, _overrides(project_root, tmp_path / "o", synthetic_data_dir,
                                                    tmp_path / "none", "trainer.max_steps=1")))


@pytest.mark.slow
def test_ddp_ranks_read_disjoint_shards(project_root, synthetic_data_dir, tmp_path, reference_cache):
    record = tmp_path / "seen"
    out = subprocess.run(
        [sys.executable, "train.py", *_overrides(project_root, tmp_path / "o", synthetic_data_dir, reference_cache)[:1],
         f"paths.data_dir={synthetic_data_dir}", f"paths.log_dir={tmp_path}", "callbacks.rich_progress_bar=null",
         *CACHE, f"data.root={reference_cache}", "trainer=ddp_sim", "trainer.max_steps=4",
         "trainer.limit_val_batches=0", "callbacks.image_grid=null",
         f"+callbacks.record={{_target_:tests.helpers.batch_recorder.BatchRecorder,out:'{record}'}}"],
        cwd=project_root, capture_output=True, text=True, timeout=600, env=ENV,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    seen = [sorted({i for batch in json.loads((record / f"rank{r}.json").read_text()) for i in batch})
            for r in (0, 1)]
    # shards of 4: rank 0 owns shards 0 and 2 (samples 0-3, 8-9), rank 1 shard 1 (samples 4-7)
    assert set(seen[0]) <= {0, 1, 2, 3, 8, 9} and set(seen[1]) <= {4, 5, 6, 7}
    assert len(seen[0]) >= 6 and len(seen[1]) == 4
