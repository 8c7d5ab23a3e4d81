"""Subprocess worker: load deterministic corruptions of valid files; a native crash shows as a signal exit code.

Usage: ``python -m tests.fuzz.crash_worker <folder> <per_target> <result.json>`` where ``<folder>`` holds
``valid_<target><suffix>`` files. Writes ``{target: {outcome: count}}``; outcome "LEAK:<type>" marks an unclear error.
"""

from __future__ import annotations

import collections
import json
import sys
from pathlib import Path

import numpy as np

from tests.fuzz.targets import CLEAR_ERRORS, TARGETS


def corrupt(valid: bytes, rng: np.random.Generator) -> bytes:
    """One of: truncation, a burst of 1-8 random byte changes, or random bytes after the valid header."""
    kind = rng.integers(3)
    if kind == 0:
        return valid[: int(rng.integers(0, len(valid)))]
    if kind == 1:
        data = bytearray(valid)
        for pos in rng.integers(0, len(valid), int(rng.integers(1, 9))):
            data[pos] = int(rng.integers(256))
        return bytes(data)
    head = int(rng.integers(1, min(len(valid), 64) + 1))
    return valid[:head] + rng.bytes(int(rng.integers(0, 256)))


def main(folder: Path, per_target: int, result: Path) -> None:
    outcomes: dict[str, collections.Counter] = {}
    for target in TARGETS:
        valid = (folder / f"valid_{target.name}{target.suffix}").read_bytes()
        rng = np.random.default_rng(sum(target.name.encode()))
        counter: collections.Counter = collections.Counter()
        for i in range(per_target):
            path = folder / f"corrupt_{target.name}_{i}{target.suffix}"
            path.write_bytes(corrupt(valid, rng))
            try:
                target.load(path)
                counter["ok"] += 1
            except CLEAR_ERRORS as err:
                counter[type(err).__name__ if path.name in str(err) else f"UNNAMED:{type(err).__name__}"] += 1
            except Exception as err:  # noqa: BLE001 - the property under test
                counter[f"LEAK:{type(err).__module__}.{type(err).__name__}:{str(err)[:120]}"] += 1
        outcomes[target.name] = counter
    result.write_text(json.dumps(outcomes, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]))
