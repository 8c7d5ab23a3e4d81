"""Build everything ``python train.py`` trains from a composed Hydra config (kept apart from the module itself:
the LightningModule receives built objects, never the config).

Order: check every asset path (one error lists all missing files) -> head model -> teacher (``head`` injected when
its target takes it) -> estimator -> target builder -> optional identity / perceptual networks (only when a weight
uses them) -> G_A (initialised from a StyleGAN2 teacher's synthesis network when ``albedo_init: teacher``) -> the
:class:`~albedogan.models.albedogan_module.AlbedoGANModule` -> the latent data module. A ``model`` whose target takes
no ``albedo_generator`` (``model=estimator_pretrain``: :class:`~albedogan.models.estimator_pretrain.
EstimatorPretrainModule`) gets teacher, head, estimator and target builder only.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
from omegaconf import DictConfig, MissingMandatoryValue, OmegaConf
from torch import nn

from albedogan.assets.locate import MissingAssetError
from albedogan.utils.logging import get_logger

__all__ = ["build_training", "check_training_assets", "instantiate_group"]

log = get_logger(__name__)


def _accepts(target: Any, name: str) -> bool:
    """Whether the callable ``target`` takes a keyword argument ``name`` (or ``**kwargs``)."""
    try:
        params = inspect.signature(target).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def _instantiate_with_head(node: DictConfig, head: nn.Module) -> Any:
    """``hydra.utils.instantiate(node)``, passing ``head=head`` when the target accepts it."""
    target = hydra.utils.get_object(node._target_)
    return hydra.utils.instantiate(node, head=head) if _accepts(target, "head") else hydra.utils.instantiate(node)


def _fill(cfg: DictConfig, key: str, value: Any) -> None:
    """Set ``key`` when the config leaves it missing (``???``/null); a conflicting explicit value is an error."""
    try:
        current = OmegaConf.select(cfg, key, throw_on_missing=True)
    except MissingMandatoryValue:
        current = None
    if current is None:
        OmegaConf.update(cfg, key, value, force_add=True)
    elif current != value:
        raise ValueError(f"config {key}={current!r} disagrees with the teacher ({value!r}); remove the override")


def check_training_assets(cfg: DictConfig) -> None:
    """Raise ONE :class:`~albedogan.assets.locate.MissingAssetError` listing every missing training file.

    Checked before anything is built: every config value under ``flame``, ``teacher``, ``estimator`` and ``model``
    whose key ends in ``_path`` (FLAME model, landmark embedding, UV template and masks, StyleGAN2 checkpoint, DECA
    and MICA archives, identity/perceptual weights when given). Null values are not checked.
    """
    missing: list[str] = []
    for group in ("flame", "teacher", "estimator", "model"):
        node = cfg.get(group)
        if not isinstance(node, DictConfig):
            continue
        stack: list[tuple[str, DictConfig]] = [(group, node)]
        while stack:
            prefix, sub = stack.pop()
            for key in sub:
                if OmegaConf.is_missing(sub, key):
                    continue
                value = sub[key]
                if isinstance(value, DictConfig):
                    stack.append((f"{prefix}.{key}", value))
                elif str(key).endswith("_path") and isinstance(value, str) and not Path(value).is_file():
                    missing.append(f"  {prefix}.{key}: {value}")
    if missing:
        raise MissingAssetError(
            "training needs these files, which do not exist:\n" + "\n".join(sorted(missing)) + "\n"
            "Put them there (official assets go under paths.assets_dir, see README 'Official assets'), point the "
            "keys at your copies on the command line, or train in the embedded world: python train.py "
            "experiment=synthetic"
        )


def build_training(cfg: DictConfig) -> tuple[pl.LightningModule, pl.LightningDataModule]:
    """Build the module and the data module from a composed ``train.yaml`` config (see the module docstring).

    The config is not modified (a copy receives the values taken from the teacher: ``w_dim``, ``z_dim``).
    """
    from albedogan.nets.albedo_generator import AlbedoGenerator

    check_training_assets(cfg)
    cfg = cfg.copy()
    head = hydra.utils.instantiate(cfg.flame)
    teacher = _instantiate_with_head(cfg.teacher, head)
    estimator = _instantiate_with_head(cfg.estimator, head)
    _fill(cfg, "data.z_dim", int(teacher.z_dim))
    target_builder = (hydra.utils.instantiate(cfg.model.target_builder, head=head)
                      if cfg.model.get("target_builder") is not None else None)
    common = dict(teacher=teacher, head=head, estimator=estimator, target_builder=target_builder, seed=int(cfg.seed))
    if not _accepts(hydra.utils.get_object(cfg.model._target_), "albedo_generator"):
        # a module that trains the estimator alone (models.estimator_pretrain): no G_A, D or loss networks
        return hydra.utils.instantiate(cfg.model, **common), hydra.utils.instantiate(cfg.data)
    _fill(cfg, "model.albedo_generator.w_dim", int(teacher.w_dim))
    weights = cfg.model.loss_weights
    uses_id = weights.get("identity", 0) > 0 or weights.get("shape_identity", 0) > 0
    uses_pc = weights.get("perceptual", 0) > 0 or weights.get("shape_perceptual", 0) > 0
    identity = hydra.utils.instantiate(cfg.model.identity_embedder) if uses_id else None
    perceptual = hydra.utils.instantiate(cfg.model.perceptual) if uses_pc else None
    albedo_generator = hydra.utils.instantiate(cfg.model.albedo_generator)
    synthesis = getattr(teacher, "generator", None)
    if cfg.get("albedo_init", "teacher") == "teacher" and synthesis is not None:
        albedo_generator = AlbedoGenerator.from_teacher(synthesis, albedo_generator.uv_resolution)
    model = hydra.utils.instantiate(
        cfg.model, **common, albedo_generator=albedo_generator, identity_embedder=identity, perceptual=perceptual
    )
    datamodule = hydra.utils.instantiate(cfg.data)
    return model, datamodule


def instantiate_group(node: DictConfig | None) -> list[Any]:
    """Every ``_target_`` entry of a callbacks/logger group (null or empty = none)."""
    if not node:
        return []
    if "_target_" in node:
        return [hydra.utils.instantiate(node)]
    return [hydra.utils.instantiate(v) for v in node.values() if v is not None and "_target_" in v]
