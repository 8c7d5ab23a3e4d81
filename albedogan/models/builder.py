"""Build everything ``python train.py`` trains from a composed Hydra config (kept apart from the module itself:
the LightningModule receives built objects, never the config).

Shared objects are injected one way only (:func:`instantiate_with`): a config node *declares* each built object it
needs as a mandatory key (``head: ???``, ``teacher: ???``, ...) and receives exactly those; nothing inspects
signatures. Values that are plain config (``n_shape``, ``seed``, ...) are interpolations (``${flame.n_shape}``).

Order: check every asset path (one error lists all missing files) -> head model -> teacher -> estimator -> target
builder -> G_A size rule (:func:`resolve_albedo_generator`, before G_A or D is built) -> optional identity /
perceptual networks (only when a weight uses them) -> G_A (initialised from a StyleGAN2 teacher's synthesis network
when ``albedo_init: teacher``) -> the model -> the latent data module. A model config without an
``albedo_generator`` entry (``model=estimator_pretrain``: :class:`~albedogan.models.estimator_pretrain.
EstimatorPretrainModule`) gets teacher, head, estimator and target builder only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
from omegaconf import DictConfig, MissingMandatoryValue, OmegaConf

from albedogan.assets.locate import MissingAssetError
from albedogan.utils.logging import get_logger

__all__ = [
    "GENERATOR_SIZE_KEYS",
    "build_training",
    "check_training_assets",
    "instantiate_group",
    "instantiate_with",
    "resolve_albedo_generator",
]

log = get_logger(__name__)

#: G_A settings that ``albedo_init: teacher`` takes from a StyleGAN2 teacher's synthesis network (the UV
#: discriminator follows them through interpolation in ``conf/model/albedogan.yaml``).
GENERATOR_SIZE_KEYS: tuple[str, ...] = ("channel_base", "channel_max", "num_fp16_res", "conv_clamp")


def instantiate_with(node: DictConfig, **shared: Any) -> Any:
    """``hydra.utils.instantiate(node)``, passing each shared object whose name ``node`` declares as a key.

    Example: ``conf/teacher/procedural.yaml`` has ``head: ???`` and receives the head model; the StyleGAN2 teacher's
    config declares no ``head`` and receives nothing. A shared object the node does not declare is not passed.
    """
    declared = set(node.keys())  # `in node` is False for a `???` entry
    return hydra.utils.instantiate(node, **{k: v for k, v in shared.items() if k in declared})


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


def resolve_albedo_generator(cfg: DictConfig, synthesis: Any | None) -> None:
    """Apply the G_A size rule to ``cfg.model.albedo_generator`` in place (called before G_A and D are built).

    With ``albedo_init: teacher`` and a teacher that has a StyleGAN2 synthesis network, G_A is a copy of it, so
    its :data:`GENERATOR_SIZE_KEYS` are the teacher's: a null entry is filled with the teacher's value (and reaches
    the discriminator through its interpolations), an equal one is kept, and a different one is an error — a size
    setting is never silently ignored. Otherwise (``albedo_init: random`` or a teacher without synthesis network)
    every entry must be set.

    Raises:
        ValueError: a configured size differs from the teacher's, a size is null without a teacher to take it
            from, or ``albedo_init`` is not ``teacher`` / ``random``.
    """
    init = cfg.get("albedo_init", "teacher")
    if init not in ("teacher", "random"):
        raise ValueError(f"albedo_init={init!r}: expected 'teacher' or 'random'")
    node = cfg.model.albedo_generator
    if init == "teacher" and synthesis is not None:
        conflicts = []
        for key in GENERATOR_SIZE_KEYS:
            theirs, ours = getattr(synthesis, key), node.get(key)
            if ours is None:
                OmegaConf.update(cfg, f"model.albedo_generator.{key}", theirs, force_add=True)
            elif ours != theirs:
                conflicts.append(f"  model.albedo_generator.{key}={ours!r} (teacher: {theirs!r})")
        if conflicts:
            raise ValueError(
                "albedo_init=teacher copies the teacher's synthesis network into G_A, but these G_A settings "
                "differ from the teacher's:\n" + "\n".join(conflicts) + "\nSet them to null (= the teacher's, also "
                "used by the discriminator) or to the teacher's values, or train G_A from scratch with "
                "albedo_init=random"
            )
        return
    unset = [key for key in GENERATOR_SIZE_KEYS[:2] if node.get(key) is None]
    if unset:
        reason = "albedo_init=random" if init == "random" else "the teacher has no StyleGAN2 synthesis network"
        raise ValueError(f"model.albedo_generator.{unset[0]} is null, but {reason}: nothing to take it from; set "
                         f"model.albedo_generator.{'/'.join(unset)}")


def build_training(cfg: DictConfig) -> tuple[pl.LightningModule, pl.LightningDataModule]:
    """Build the module and the data module from a composed ``train.yaml`` config (see the module docstring).

    The config is not modified (a copy receives the values taken from the teacher: ``w_dim``, ``z_dim`` and, with
    ``albedo_init: teacher``, G_A's sizes).
    """
    from albedogan.nets.albedo_generator import AlbedoGenerator

    check_training_assets(cfg)
    cfg = cfg.copy()
    head = hydra.utils.instantiate(cfg.flame)
    teacher = instantiate_with(cfg.teacher, head=head)
    estimator = instantiate_with(cfg.estimator, head=head)
    _fill(cfg, "data.z_dim", int(teacher.z_dim))
    target_builder = (instantiate_with(cfg.model.target_builder, head=head)
                      if cfg.model.get("target_builder") is not None else None)
    shared: dict[str, Any] = dict(teacher=teacher, head=head, estimator=estimator, target_builder=target_builder)
    if "albedo_generator" not in cfg.model.keys():
        # a module that trains the estimator alone (models.estimator_pretrain): no G_A, D or loss networks
        return instantiate_with(cfg.model, **shared), hydra.utils.instantiate(cfg.data)
    _fill(cfg, "model.albedo_generator.w_dim", int(teacher.w_dim))
    synthesis = getattr(getattr(teacher, "generator", None), "synthesis", None)  # a StyleGAN2 teacher's
    resolve_albedo_generator(cfg, synthesis)
    albedo_w, shape_w = cfg.model.albedo_weights, cfg.model.shape_weights
    uses_id = albedo_w.identity > 0 or shape_w.identity > 0
    uses_pc = albedo_w.perceptual > 0 or shape_w.perceptual > 0
    identity = hydra.utils.instantiate(cfg.model.identity_embedder) if uses_id else None
    perceptual = hydra.utils.instantiate(cfg.model.perceptual) if uses_pc else None
    albedo_generator = hydra.utils.instantiate(cfg.model.albedo_generator)
    if cfg.get("albedo_init", "teacher") == "teacher" and synthesis is not None:
        albedo_generator = AlbedoGenerator.from_teacher(synthesis, albedo_generator.uv_resolution)
    model = instantiate_with(cfg.model, **shared, albedo_generator=albedo_generator, identity_embedder=identity,
                             perceptual=perceptual)
    datamodule = hydra.utils.instantiate(cfg.data)
    return model, datamodule


def instantiate_group(node: DictConfig | None) -> list[Any]:
    """Every ``_target_`` entry of a callbacks/logger group (null or empty = none)."""
    if not node:
        return []
    if "_target_" in node:
        return [hydra.utils.instantiate(node)]
    return [hydra.utils.instantiate(v) for v in node.values() if v is not None and "_target_" in v]
