"""Export the inference weights (G_A's EMA + the estimator) as one safetensors file when training ends."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Optional

import pytorch_lightning as pl

from albedogan.models.weights_file import CKPT_WORLD_ENTRY, export_inference_weights, world_record
from albedogan.utils.logging import get_logger

__all__ = ["ExportInferenceWeights"]

log = get_logger(__name__)


class ExportInferenceWeights(pl.Callback):
    """On ``fit`` end (global rank 0), write :func:`albedogan.models.weights_file.export_inference_weights`; every
    Lightning checkpoint also records the world (:data:`~albedogan.models.weights_file.CKPT_WORLD_ENTRY`), so
    ``infer.py checkpoint=<last.ckpt>`` checks it like an export's.

    Args:
        path: the ``.safetensors`` file to write (atomically).
        world: the teacher / estimator / flame config sections the run was trained with; recorded (without paths)
            in the file's metadata so inference can check it builds the same world.
    """

    def __init__(self, path: str | os.PathLike, world: Optional[Mapping[str, Any]] = None) -> None:
        self.path = Path(path)
        self.world = world_record(world)

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        checkpoint[CKPT_WORLD_ENTRY] = self.world

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.global_rank != 0:
            return
        export_inference_weights(pl_module, self.path, metadata={"world": self.world, "step": trainer.global_step})
        log.info("exported inference weights (step %d) to %s", trainer.global_step, self.path)
