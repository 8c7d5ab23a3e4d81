"""Image grids of training progress: teacher image | render with G_A's albedo | G_A albedo | target (| true albedo).

Every ``every_n_steps`` training steps (on global rank 0 only) the callback asks the module for a
:class:`~albedogan.models.albedogan_module.Preview` of fixed latents and writes one grid: to W&B (an image plus
``wandb.Object3D`` meshes of the estimated heads) when the trainer's logger is a ``WandbLogger``, otherwise to
``<output_dir>/grid_step{step:07d}.png`` (atomic write). The module owns no I/O or plotting; this callback does.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import imageio.v3 as iio
import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from albedogan.utils.io import atomic_write_bytes
from albedogan.utils.logging import get_logger

__all__ = ["ImageGridCallback", "make_grid"]

log = get_logger(__name__)


def make_grid(columns: list[torch.Tensor], size: int | None = None) -> np.ndarray:
    """Tile image batches into rows (one per sample) and columns (one per batch in ``columns``).

    Args:
        columns: K tensors (N, 3, Hk, Wk) float in [0, 1] (values are clamped); each resized to ``size``.
        size: side of each cell in pixels (default: the largest input side).

    Returns:
        (N·size, K·size, 3) uint8 RGB image.
    """
    if not columns:
        raise ValueError("make_grid: no columns")
    n = columns[0].shape[0]
    size = size or max(max(c.shape[-2:]) for c in columns)
    cells = []
    for c in columns:
        if c.shape[0] != n or c.ndim != 4 or c.shape[1] != 3:
            raise ValueError(f"make_grid: every column must be ({n}, 3, H, W), got {tuple(c.shape)}")
        cells.append(F.interpolate(c.detach().float().cpu(), size=(size, size), mode="bilinear", align_corners=False))
    grid = torch.stack(cells, dim=1)  # (N, K, 3, S, S)
    grid = grid.permute(0, 3, 1, 4, 2).reshape(n * size, len(columns) * size, 3)  # (N·S, K·S, 3)
    return (grid.clamp(0, 1) * 255).round().to(torch.uint8).numpy()


class ImageGridCallback(pl.Callback):
    """Log teacher / render / albedo grids at intervals (see the module docstring).

    Args:
        every_n_steps: interval in training steps (> 0); a grid is also written at the end of training.
        num_samples: latents shown (rows).
        seed: seed of the fixed latents.
        output_dir: PNG folder when not logging to W&B.
        cell_size: pixels per cell (None = largest input side).
        log_meshes: with W&B, also log the estimated meshes as ``wandb.Object3D``.
    """

    def __init__(
        self,
        every_n_steps: int = 1000,
        num_samples: int = 8,
        seed: int = 12345,
        output_dir: str = "images",
        cell_size: int | None = None,
        log_meshes: bool = True,
    ) -> None:
        super().__init__()
        if every_n_steps <= 0:
            raise ValueError(f"ImageGridCallback: every_n_steps must be > 0, got {every_n_steps}")
        self.every_n_steps = int(every_n_steps)
        self.num_samples = int(num_samples)
        self.seed = int(seed)
        self.output_dir = Path(output_dir)
        self.cell_size = cell_size
        self.log_meshes = log_meshes
        self.written: list[Path] = []
        self._last_step = -1

    def _latents(self, pl_module: pl.LightningModule) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed)
        z_dim = int(pl_module.teacher.z_dim)
        return torch.randn(self.num_samples, z_dim, generator=g).to(pl_module.device)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        step = trainer.global_step
        if step % self.every_n_steps == 0 and step != self._last_step:
            self.log_grid(trainer, pl_module)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.global_step != self._last_step:
            self.log_grid(trainer, pl_module)

    def log_grid(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Render the preview and write/log it (global rank 0 only)."""
        self._last_step = trainer.global_step
        if trainer.global_rank != 0:
            return
        preview = pl_module.preview(self._latents(pl_module))
        cols = [preview.teacher, preview.render, preview.albedo, preview.target]
        if preview.truth_albedo is not None:
            cols.append(preview.truth_albedo)
        grid = make_grid(cols, self.cell_size)
        step = trainer.global_step
        wandb_logger = next((lg for lg in trainer.loggers if type(lg).__name__ == "WandbLogger"), None)
        if wandb_logger is not None:
            import wandb

            payload: dict[str, Any] = {"images/grid": wandb.Image(grid, caption="teacher | render | albedo | target")}
            if self.log_meshes:
                # (V, 3) vertex clouds of the estimated heads (FLAME metres); W&B renders them in 3D
                verts = preview.vertices.detach().float().cpu().numpy()
                payload["meshes"] = [wandb.Object3D(v) for v in verts]
            wandb_logger.experiment.log(payload, step=step)
            return
        buf = io.BytesIO()
        iio.imwrite(buf, grid, extension=".png")
        path = self.output_dir / f"grid_step{step:07d}.png"
        atomic_write_bytes(path, buf.getvalue())
        self.written.append(path)
        log.info("image grid -> %s", path)
