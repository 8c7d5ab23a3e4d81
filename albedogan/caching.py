"""What ``python cache.py`` runs: write the dataset caches the composed ``data`` config reads.

``cache.py`` composes the same ``conf/train.yaml`` as ``train.py``, so the overrides that train from a cache are
the ones that wrote it (``python cache.py experiment=ffhq data=teacher_cache`` then ``python train.py
experiment=ffhq data=teacher_cache``). It writes

* the teacher cache when ``data`` is a :class:`~albedogan.datamodules.teacher_cache.TeacherCacheDataModule`
  (teacher, estimator and target builder built as for training; settings under ``data.write``);
* the real-face cache when ``data.mix.path`` is set (``data=images``, or any data config with a ``mix``).

Both resume (finished shards are skipped) and shard over writers: under ``torchrun --nproc-per-node K cache.py``
(or with ``RANK``/``WORLD_SIZE`` set) writer r writes shards ``s % K == r``; the last to finish writes the manifest.
"""

from __future__ import annotations

from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from albedogan.utils.logging import get_logger
from albedogan.utils.seeding import seed_everything

__all__ = ["run_cache"]

log = get_logger(__name__)


def _write_teacher(cfg: DictConfig) -> dict[str, Any]:
    from albedogan.datamodules.teacher_cache import cache_config, write_teacher_cache
    from albedogan.entry import resolve_device
    from albedogan.models.builder import check_training_assets, instantiate_with

    check_training_assets(cfg)
    data, write = cfg.data, cfg.data.write
    head = hydra.utils.instantiate(cfg.flame)
    teacher = instantiate_with(cfg.teacher, head=head)
    needs_estimate = bool(write.store_estimate) or bool(write.store_target)
    estimator = instantiate_with(cfg.estimator, head=head) if needs_estimate else None
    target_builder = instantiate_with(cfg.model.target_builder, head=head) if bool(write.store_target) else None
    plain = OmegaConf.to_container
    return write_teacher_cache(
        data.root, teacher, estimator, target_builder, int(write.num_samples), int(write.shard_size),
        base_seed=int(write.base_seed), image_size=write.image_size, image_format=str(write.image_format),
        store_estimate=bool(write.store_estimate), store_target=bool(write.store_target),
        store_truth=bool(write.store_truth), batch_size=int(write.batch_size), truncation_psi=write.truncation_psi,
        device=resolve_device(str(write.device)),
        config=cache_config(plain(write, resolve=True), plain(data.source, resolve=True)),
    )


def run_cache(cfg: DictConfig) -> dict[str, Any]:
    """Write every cache the ``data`` config names (module docstring); returns what each writer reported.

    Raises:
        ValueError: the ``data`` config names no cache (neither ``data=teacher_cache`` nor ``data.mix.path``).
    """
    seed_everything(int(cfg.seed))
    results: dict[str, Any] = {}
    target = str(cfg.data.get("_target_", ""))
    if target.endswith("TeacherCacheDataModule"):
        results["teacher"] = _write_teacher(cfg)
    mix = cfg.data.get("mix")
    if mix is not None and mix.get("path"):
        results["faces"] = hydra.utils.instantiate(mix).write_cache()
    if not results:
        raise ValueError("cache.py: nothing to cache: choose data=teacher_cache (teacher samples) and/or set "
                         "data.mix.path=<photo folder> (real faces, e.g. data=images data.mix.path=photos/)")
    log.info("cache.py: %s", results)
    return results
