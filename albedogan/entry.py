"""What ``train.py`` and ``infer.py`` run once Hydra has composed the config (kept out of the scripts so tests can
call them with a composed config)."""

from __future__ import annotations

import inspect
from pathlib import Path

import hydra
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf

from albedogan.utils.io import atomic_write_text
from albedogan.utils.logging import get_logger
from albedogan.utils.seeding import seed_everything

__all__ = ["build_pipeline_from_config", "resolve_device", "run_infer", "run_train"]

log = get_logger(__name__)


def resolve_device(name: str) -> torch.device:
    """``auto`` → CUDA when available, else CPU; anything else is passed to ``torch.device``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={name!r} requested but CUDA is not available; use device=cpu or device=auto")
    return device


def _save_config(cfg: DictConfig, output_dir: str | Path) -> None:
    atomic_write_text(Path(output_dir) / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))


def build_pipeline_from_config(cfg: DictConfig, head, device: torch.device):
    """Instantiate teacher (``head`` injected) and estimator from ``cfg`` and load ``cfg.checkpoint``."""
    from albedogan.inference.pipeline import build_pipeline, load_inference_weights

    if cfg.checkpoint is not None and not Path(str(cfg.checkpoint)).is_file():
        load_inference_weights(cfg.checkpoint)  # raises the missing-checkpoint error before anything is built
    teacher = hydra.utils.instantiate(cfg.teacher, head=head)
    from albedogan.models.builder import _instantiate_with_head

    estimator = _instantiate_with_head(cfg.estimator, head) if cfg.get("estimator") is not None else None
    g_kwargs = cfg.get("albedo_generator")
    prefixes = cfg.get("checkpoint_prefixes")
    return build_pipeline(
        teacher, head, estimator, cfg.checkpoint,
        allow_no_checkpoint=bool(cfg.allow_no_checkpoint),
        render_size=int(cfg.render_size), uv_resolution=int(cfg.uv_resolution),
        albedo_generator_kwargs=OmegaConf.to_container(g_kwargs, resolve=True) if g_kwargs is not None else None,
        checkpoint_prefixes=OmegaConf.to_container(prefixes, resolve=True) if prefixes is not None else None,
        device=device,
        world={"teacher": cfg.teacher, "estimator": cfg.get("estimator") or {},
               "flame": {"n_shape": cfg.flame.n_shape, "n_exp": cfg.flame.n_exp}},
    )


def run_infer(cfg: DictConfig) -> int:
    """Build the head model (and, for modes that take a ``pipeline``, the :class:`FacePipeline`) and run ``mode``.

    The mode is a partial callable from ``conf/mode/``; it receives ``seed``, ``device`` and either ``head`` or
    ``pipeline`` (whichever its signature names). An integer result is the exit status (e.g. reconstruct returns 1
    when any input failed); anything else is logged and the status is 0.
    """
    seed_everything(int(cfg.seed))
    device = resolve_device(cfg.device)
    output_dir = Path(cfg.output_dir)
    _save_config(cfg, output_dir)
    mode = hydra.utils.instantiate(cfg.mode)
    params = inspect.signature(mode).parameters
    head = hydra.utils.instantiate(cfg.flame)
    kwargs = {"seed": int(cfg.seed), "device": device}
    if "pipeline" in params:
        kwargs["pipeline"] = build_pipeline_from_config(cfg, head, device)
    else:
        kwargs["head"] = head
    result = mode(**kwargs)
    if isinstance(result, int) and not isinstance(result, bool):
        return result
    log.info("wrote %s", result)
    return 0


def run_train(cfg: DictConfig) -> dict[str, float]:
    """Compose -> build -> ``trainer.fit`` (resuming from ``cfg.ckpt_path`` when set).

    Returns:
        The trainer's final ``callback_metrics`` as floats (what a Hydra sweeper would read).
    """
    from albedogan.models.builder import build_training, instantiate_group

    seed_everything(int(cfg.seed))
    output_dir = Path(cfg.paths.output_dir)
    _save_config(cfg, output_dir)
    model, datamodule = build_training(cfg)
    callbacks = instantiate_group(cfg.get("callbacks"))
    loggers = instantiate_group(cfg.get("logger"))
    from albedogan.models.checkpoint import AtomicCheckpointIO  # temp file next to the target: atomic on any fs

    trainer: pl.Trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False,
                                                  plugins=[AtomicCheckpointIO()])
    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    finally:
        for lg in loggers:
            finish = getattr(getattr(lg, "experiment", None), "finish", None)
            if type(lg).__name__ == "WandbLogger" and callable(finish):
                finish()  # close the W&B run so the next multirun job starts clean
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if getattr(v, "numel", lambda: 1)() == 1}
    log.info("training finished at step %d: %s", trainer.global_step, metrics)
    return metrics
