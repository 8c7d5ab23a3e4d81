"""Every metric the Lightning modules log is reduced over the DDP ranks (``sync_dist=True``), so rank 0's CSV /
wandb values are the ranks' mean, not rank 0's own (checked end to end at full size in test_fullsize_ddp.py)."""

from __future__ import annotations

import ast
from pathlib import Path

import albedogan.models

SAME_ON_EVERY_RANK = {"train/phase"}  # the schedule's phase index: a function of the step, equal on all ranks


def _log_calls(path: Path) -> list[tuple[str, int, bool]]:
    calls = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "log" \
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "self":
            name = node.args[0]
            text = name.value if isinstance(name, ast.Constant) else ast.unparse(name)
            synced = any(k.arg == "sync_dist" and isinstance(k.value, ast.Constant) and k.value.value is True
                         for k in node.keywords)
            calls.append((text, node.lineno, synced))
    return calls


def test_every_logged_metric_is_reduced_over_ranks():
    folder = Path(albedogan.models.__file__).parent
    calls = [(f.name, *c) for f in sorted(folder.glob("*.py")) for c in _log_calls(f)]
    assert len(calls) >= 6  # the albedo/shape/val metrics of AlbedoGANModule and the estimator's
    unsynced = [(f, line, name) for f, name, line, synced in calls if not synced and name not in SAME_ON_EVERY_RANK]
    assert not unsynced, f"self.log without sync_dist=True: {unsynced}"
