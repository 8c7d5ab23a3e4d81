"""``scripts/eval_fitting.py`` (the numbers of docs/fitting.md) runs on the current world: 2 faces of the procedural
teacher through the estimator, the default fit and the de-lighting, and the fit lowers the landmark and pose error."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


def test_eval_fitting_script_runs_and_fitting_helps(project_root, synthetic_data_dir, tmp_path):
    out = tmp_path / "eval.json"
    env = {**os.environ, "PYTHONPATH": str(project_root), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "scripts/eval_fitting.py", "--n", "2", "--data", str(synthetic_data_dir),
                           "--out", str(out)], cwd=project_root, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    before, after = report["estimator"], report["fitted"]
    assert after["landmark_nme"] < 0.5 * before["landmark_nme"]
    assert after["pose_deg"] < before["pose_deg"]
