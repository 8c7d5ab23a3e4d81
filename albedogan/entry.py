"""What ``train.py`` and ``infer.py`` run once Hydra has composed the config (kept out of the scripts so tests can
call them with a composed config)."""

from __future__ import annotations

import inspect
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from albedogan.utils.io import atomic_write_text
from albedogan.utils.logging import get_logger
from albedogan.utils.seeding import seed_everything

__all__ = ["build_pipeline_from_config", "resolve_device", "run_dir", "run_infer", "run_train"]

log = get_logger(__name__)


def resolve_device(name: str) -> torch.device:
    """``auto`` → CUDA when available, else CPU; anything else is passed to ``torch.device``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={name!r} requested but CUDA is not available; use device=cpu or device=auto")
    return device


def run_dir(cfg: DictConfig) -> Path:
    """Where a run writes: ``output_dir`` (Hydra's run directory follows it); in a sweep (``-m``) each job's own
    directory, which then becomes its ``output_dir``."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if "output_dir" in cfg and HydraConfig.initialized():
        raw = str(cfg._get_node("output_dir")._value())
        if HydraConfig.get().mode == RunMode.MULTIRUN or "${now:" in raw:  # the default: Hydra's own directory
            with open_dict(cfg):
                cfg.output_dir = str(HydraConfig.get().runtime.output_dir)
    if "output_dir" not in cfg:
        return Path(cfg.paths.output_dir)
    return Path(cfg.output_dir)


def _save_config(cfg: DictConfig, output_dir: str | Path) -> None:
    """Write the resolved config to ``<output_dir>/config.yaml`` — on global rank 0 only (every DDP process runs the
    entry point; the rank comes from the launcher's environment: ``RANK`` / ``LOCAL_RANK`` / ``SLURM_PROCID``)."""
    from pytorch_lightning.utilities import rank_zero_only

    if "output_dir" in cfg:  # the default holds a timestamp: record the folder actually used
        with open_dict(cfg):
            cfg.output_dir = str(output_dir)
    if getattr(rank_zero_only, "rank", 0) != 0:
        return
    atomic_write_text(Path(output_dir) / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))


def build_pipeline_from_config(cfg: DictConfig, head, device: torch.device):
    """Instantiate teacher and estimator from ``cfg`` (shared objects injected as in training:
    :func:`~albedogan.models.builder.instantiate_with`) and load ``cfg.checkpoint``."""
    from albedogan.inference.pipeline import build_pipeline
    from albedogan.models.builder import instantiate_with
    from albedogan.models.weights_file import load_inference_weights

    if cfg.checkpoint is not None and not Path(str(cfg.checkpoint)).is_file():
        load_inference_weights(cfg.checkpoint)  # raises the missing-checkpoint error before anything is built
    teacher = instantiate_with(cfg.teacher, head=head)
    estimator = instantiate_with(cfg.estimator, head=head) if cfg.get("estimator") is not None else None
    return build_pipeline(
        teacher, head, estimator, cfg.checkpoint,
        allow_no_checkpoint=bool(cfg.allow_no_checkpoint),
        render_size=int(cfg.render_size), uv_resolution=int(cfg.uv_resolution),
        mouth_interior=None if cfg.get("mouth_interior") is None else list(cfg.mouth_interior),
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
    _save_config(cfg, run_dir(cfg))
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
    _save_config(cfg, run_dir(cfg))
    model, datamodule = build_training(cfg)
    callbacks = instantiate_group(cfg.get("callbacks"))
    loggers = instantiate_group(cfg.get("logger"))
    if not loggers:  # logger=none: Lightning's LearningRateMonitor refuses to run without a logger
        from pytorch_lightning.callbacks import LearningRateMonitor

        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    from albedogan.models.checkpoint import AtomicCheckpointIO  # temp file next to the target: atomic on any fs

    trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False,
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
