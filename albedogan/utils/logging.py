"""Rank-zero logger: only the global-rank-0 process of a DDP job emits messages (use instead of ``print``)."""

from __future__ import annotations

import logging
import os

__all__ = ["get_logger"]


def _global_rank() -> int:
    for var in ("RANK", "SLURM_PROCID", "LOCAL_RANK"):
        if var in os.environ:
            try:
                return int(os.environ[var])
            except ValueError:
                pass
    return 0


class _RankZeroFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:  # noqa: A003 - logging API name
        return _global_rank() == 0


def get_logger(name: str) -> logging.Logger:
    """Return a logger under the ``albedogan`` namespace that is silent on non-zero ranks."""
    logger = logging.getLogger(name if name.startswith("albedogan") else f"albedogan.{name}")
    if not any(isinstance(f, _RankZeroFilter) for f in logger.filters):
        logger.addFilter(_RankZeroFilter())
    return logger
