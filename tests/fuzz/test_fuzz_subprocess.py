"""Corrupted files never crash the interpreter (segfault/abort in native code) nor hang: loaded in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.fuzz.targets import TARGETS

ROOT = Path(__file__).resolve().parents[2]
PER_TARGET = 12
TIMEOUT_S = 240


def test_corruptions_do_not_crash_the_interpreter(valid_files, tmp_path) -> None:
    for target in TARGETS:
        (tmp_path / f"valid_{target.name}{target.suffix}").write_bytes(valid_files[target.name])
    result = tmp_path / "result.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "tests.fuzz.crash_worker", str(tmp_path), str(PER_TARGET), str(result)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT_S,
    )
    assert proc.returncode == 0, f"worker died with code {proc.returncode} (negative = signal):\n{proc.stderr[-3000:]}"
    outcomes = json.loads(result.read_text())
    assert set(outcomes) == {t.name for t in TARGETS}
    bad = {name: [k for k in c if k.startswith(("LEAK:", "UNNAMED:"))] for name, c in outcomes.items()}
    assert not any(bad.values()), bad
    for name, counter in outcomes.items():
        assert sum(counter.values()) == PER_TARGET, name
