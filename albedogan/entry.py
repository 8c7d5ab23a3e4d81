"""What ``train.py`` and ``infer.py`` run once Hydra has composed the config (kept out of the scripts so tests can
call them with a composed config)."""

from __future__ import annotations

from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from albedogan.utils.io import atomic_write_text
from albedogan.utils.logging import get_logger

__all__ = ["resolve_device", "run_infer", "run_train"]

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


def run_infer(cfg: DictConfig) -> int:
    """Build the head model and run the selected ``mode``; returns the process exit status."""
    torch.manual_seed(cfg.seed)
    device = resolve_device(cfg.device)
    output_dir = Path(cfg.output_dir)
    _save_config(cfg, output_dir)
    head = hydra.utils.instantiate(cfg.flame)
    mode = hydra.utils.instantiate(cfg.mode)
    result = mode(head=head, seed=cfg.seed, device=device)
    log.info("wrote %s", result)
    return 0


def run_train(cfg: DictConfig) -> None:
    """Training loop entry (the AlbedoGAN LightningModule arrives with the training issue)."""
    raise NotImplementedError(
        "python train.py: the AlbedoGAN training loop is not part of this version yet (tracked as the 'Training' "
        "issue); `python train.py --cfg job` shows the composed configuration"
    )
