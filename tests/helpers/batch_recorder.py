"""A Lightning callback that records which sample indices each rank trained on (for the DDP shard test)."""

from __future__ import annotations

import json
from pathlib import Path

import pytorch_lightning as pl


class BatchRecorder(pl.Callback):
    """Writes ``<out>/rank<r>.json``: the ``index`` values of every training batch this rank received."""

    def __init__(self, out: str) -> None:
        self.out = out
        self.seen: list[list[int]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        part = getattr(batch, "teacher", batch)
        self.seen.append([int(i) for i in part.index.tolist()])

    def on_train_end(self, trainer, pl_module) -> None:
        path = Path(self.out) / f"rank{trainer.global_rank}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.seen))
