"""A Lightning callback recording, per DDP rank, what the DDP checks need (``tests/integration/test_fullsize_ddp.py``).

``<out>/rank<r>.json`` holds:

* ``train_index`` / ``val_seed``: the latent-stream indices of every training batch and the seeds of every validation
  batch this rank received (disjointness across ranks);
* ``logged``: every ``(step, name, value)`` the module passed to ``self.log`` on this rank, *before* Lightning's
  cross-rank reduction (the logged values on rank 0 must be the means of these);
* ``writes``: every file this process opened for writing or renamed into place under ``watch`` (Python audit events
  ``open`` / ``os.rename`` / ``os.replace``; only rank 0 may write checkpoints, exports, images and logs);
* ``peak_rss_mb``: this process's peak resident set size (``getrusage``).
"""

from __future__ import annotations

import json
import os
import resource
import sys
from pathlib import Path
from typing import Any

import pytorch_lightning as pl

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def _is_write(mode: Any, flags: Any) -> bool:
    if isinstance(mode, str):
        return any(c in mode for c in "wax+")
    return isinstance(flags, int) and bool(flags & _WRITE_FLAGS)


class DDPProbe(pl.Callback):
    """Record this rank's batches, raw logged values, file writes under ``watch`` and peak RSS into ``out``."""

    def __init__(self, out: str, watch: str) -> None:
        self.out = Path(out)
        self.watch = os.path.realpath(watch)
        self.record: dict[str, Any] = {"train_index": [], "val_seed": [], "logged": [], "writes": []}
        self._hooked = False

    def _audit(self, event: str, args: tuple) -> None:
        if event == "open":
            path, mode, flags = args
            if not isinstance(path, (str, bytes, os.PathLike)) or not _is_write(mode, flags):
                return
        elif event in ("os.rename", "os.replace"):
            path = args[1]
        else:
            return
        path = os.path.realpath(os.fsdecode(path))
        if path.startswith(self.watch + os.sep):
            self.record["writes"].append(os.path.relpath(path, self.watch))

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self.record["rank"] = trainer.global_rank
        self.record["world_size"] = trainer.world_size
        if self._hooked:
            return
        self._hooked = True
        sys.addaudithook(self._audit)  # for the life of this (rank's) process
        original = pl_module.log

        def log(name: str, value: Any, *args: Any, **kwargs: Any) -> None:
            self.record["logged"].append([trainer.global_step, name, float(value)])
            original(name, value, *args, **kwargs)

        pl_module.log = log  # instance attribute: shadows LightningModule.log for this module only

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        part = getattr(batch, "teacher", batch)
        self.record["train_index"].extend(int(i) for i in part.index.tolist())

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        self.record["val_seed"].extend(int(s) for s in batch.seed.tolist())

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self.record["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / f"rank{trainer.global_rank}.json").write_text(json.dumps(self.record))
