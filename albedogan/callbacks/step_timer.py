"""Wall time, phase and peak memory of every training step, written as JSON when training ends."""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

from albedogan.utils.io import atomic_write_text

__all__ = ["StepTimer"]


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MiB (``getrusage``; kB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


class StepTimer(pl.Callback):
    """Record each training batch's wall time (seconds), the phase it ran (``pl_module.schedule.phase_at``) and the
    peak RSS / peak CUDA memory after it; write ``{"steps": [...], "summary": {...}}`` to ``path`` on fit end
    (global rank 0). The summary gives mean seconds per step per phase, excluding each phase's first step (warm-up).

    Add it to a run without editing configs: ``+callbacks.step_timer._target_=albedogan.callbacks.step_timer.StepTimer
    +callbacks.step_timer.path=steps.json``.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.steps: list[dict[str, Any]] = []
        self._start = 0.0
        self._phase: str | None = None

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        schedule = getattr(pl_module, "schedule", None)
        self._phase = schedule.phase_at(trainer.global_step) if schedule is not None else None
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        record = {"step": int(trainer.global_step), "phase": self._phase,
                  "seconds": time.perf_counter() - self._start, "peak_rss_mb": peak_rss_mb()}
        if torch.cuda.is_available():
            record["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2 ** 20
        self.steps.append(record)

    def summary(self) -> dict[str, Any]:
        """Mean s/step per phase (first step of each phase left out when there are more), overall peak RSS."""
        out: dict[str, Any] = {"peak_rss_mb": max((s["peak_rss_mb"] for s in self.steps), default=peak_rss_mb())}
        for phase in sorted({str(s["phase"]) for s in self.steps}):
            times = [s["seconds"] for s in self.steps if str(s["phase"]) == phase]
            warm = times[1:] if len(times) > 1 else times
            out[f"{phase}_seconds_per_step"] = sum(warm) / len(warm)
            out[f"{phase}_steps"] = len(times)
        return out

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.global_rank != 0:
            return
        atomic_write_text(self.path, json.dumps({"steps": self.steps, "summary": self.summary()}, indent=1))
